"""The README's Python tour runs and prints what it says, the tests it names exist, the API
reference lists every public name, and its test command works on a machine without npm."""

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


def test_every_public_name_has_its_entry_in_the_api_reference():
    import cpts_geo

    page = (ROOT / "docs" / "reference" / "api.md").read_text("utf-8")
    documented = set(re.findall(r"::: cpts_geo\.(?:[\w.]+\.)?(\w+)", page))
    errors = re.search(r"members: \[(.*?)\]", page).group(1)
    documented |= {name.strip() for name in errors.split(",")}
    assert sorted(set(cpts_geo.__all__) - documented) == []
