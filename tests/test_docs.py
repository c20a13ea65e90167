"""The Jupyter tour runs from top to bottom (code cells executed in order, without Jupyter), the
README's tour prints what it says, and its test command works on a machine without npm."""

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


def test_checks_against_raw_files_skip_with_a_reason_locally_and_fail_in_ci(tmp_path,
                                                                            monkeypatch):
    """Without npm, .ci/fetch_raw.sh skips the tarballs: the tests that need them say why."""
    import conftest

    monkeypatch.setattr(conftest, "RAW_DIR", tmp_path)
    monkeypatch.delenv("CPTS_GEO_REQUIRE_RAW", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"etalab-decoupage-administratif-6\.0\.0\.tgz "
                       r"not downloaded \(install npm, then run \.ci/fetch_raw\.sh\); CI "
                       "requires it"):
        conftest._raw("etalab-decoupage-administratif-6.0.0.tgz")
    monkeypatch.setenv("CPTS_GEO_REQUIRE_RAW", "1")  # as .ci/run sets it
    with pytest.raises(pytest.fail.Exception, match="CPTS_GEO_REQUIRE_RAW is set"):
        conftest._raw("etalab-decoupage-administratif-6.0.0.tgz")
    script = (ROOT / ".ci" / "fetch_raw.sh").read_text("utf-8")
    assert "if command -v npm" in script and "will be skipped" in script
    assert "CPTS_GEO_REQUIRE_RAW=1" in (ROOT / ".ci" / "run").read_text("utf-8")


def test_every_test_the_readme_names_exists():
    """The guarantees of "What happens when things go wrong" cite tests that exist."""
    text = (ROOT / "README.md").read_text("utf-8")
    refs = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", text)
    assert len(refs) >= 30
    missing = [f"{path}::{name}" for path, name in refs
               if not (ROOT / path).is_file()
               or not re.search(rf"^def {name}\(", (ROOT / path).read_text("utf-8"), re.M)]
    assert missing == []
