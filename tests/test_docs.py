"""The Jupyter tour runs from top to bottom (code cells executed in order, without Jupyter)."""

from __future__ import annotations

import doctest
import html
import json
import re
import warnings

import folium
import pytest
from helpers import ROOT


@pytest.mark.slow
def test_tour_notebook_runs(monkeypatch):
    nb = json.loads((ROOT / "notebooks" / "tour.ipynb").read_text("utf-8"))
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
    monkeypatch.chdir(ROOT / "notebooks")
    namespace: dict = {}
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), "tour.ipynb", "exec"), namespace)
    assert len(namespace["loire"]) == 320
    assert set(namespace["territories"]["cpts"]) >= {"Vallée du Gier", "Sud-Est Grenoblois"}
    m = namespace["cpts_geo"].coverage_map(namespace["communes"], namespace["territories"],
                                           departements="42")
    inline = m._repr_html_()  # what Jupyter shows: Leaflet inlined, nothing from a CDN
    assert isinstance(m, folium.Map) and "L.map(" in html.unescape(inline)
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\S*https?://",
                         html.unescape(inline))


@pytest.mark.slow
def test_readme_python_tour_runs_and_prints_what_it_says(monkeypatch):
    text = (ROOT / "README.md").read_text("utf-8")
    block = re.search(r"```pycon\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(ROOT)
    test = doctest.DocTestParser().get_doctest(block, {}, "README.md", "README.md", 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the tour emits no warning
        runner.run(test)
    assert runner.failures == 0 and runner.tries >= 10


def test_every_test_named_in_what_happens_when_things_go_wrong_exists():
    text = (ROOT / "README.md").read_text("utf-8")
    section = re.search(r"## What happens when things go wrong\n(.*?)\n## ", text, re.S).group(1)
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", section)
    assert len(named) >= 30
    missing = [f"{path}::{name}" for path, name in named
               if not re.search(rf"^def {name}\(", (ROOT / path).read_text("utf-8"), re.M)]
    assert missing == []
