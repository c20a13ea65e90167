"""The README's Python tour runs and prints what it says."""

from __future__ import annotations

import doctest
import re
import warnings

import pytest
from helpers import ROOT


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


def test_every_public_name_has_its_entry_in_the_api_reference():
    import cpts_geo

    page = (ROOT / "docs" / "reference" / "api.md").read_text("utf-8")
    documented = set(re.findall(r"::: cpts_geo\.(?:[\w.]+\.)?(\w+)", page))
    errors = re.search(r"members: \[(.*?)\]", page).group(1)
    documented |= {name.strip() for name in errors.split(",")}
    assert sorted(set(cpts_geo.__all__) - documented) == []
