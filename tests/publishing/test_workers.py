"""Pages built in forked workers (``publish(jobs=2)``): the same site byte for byte as with one
process, the same warnings (once each, in page order), the same error, and a worker that dies
fails the run and leaves the previous site."""

from __future__ import annotations

import os
import re
import signal
import warnings
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from helpers import SEEDS

from cpts_geo.errors import CptsGeoWarning, InputError, Problem, TerritoryError
from cpts_geo.publishing import site as site_module
from cpts_geo.publishing.site import publish
from cpts_geo.publishing.workers import can_fork, run_pages

pytestmark = pytest.mark.skipif(not can_fork(), reason="pages are built in workers on Linux")

#: The random element names of folium (32 hex digits), numbered in order of appearance.
FOLIUM_ID = re.compile(rb"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")


def _canonical(data: bytes) -> bytes:
    names: dict[bytes, bytes] = {}
    return FOLIUM_ID.sub(lambda m: names.setdefault(m.group(), b"id%d" % len(names)), data)


def _site_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): _canonical(p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}


class _Fixed(datetime):
    @classmethod
    def now(cls, tz=None):  # type: ignore[override]
        return datetime(2026, 11, 23, 2, 0, 0, tzinfo=tz)


@pytest.fixture
def territories(tmp_path: Path) -> Path:
    rows = pd.read_csv(SEEDS, dtype=str, keep_default_na=False)
    path = tmp_path / "territories.csv"
    rows[["cpts", "insee", "status", "status_date", "source"]].to_csv(path, index=False)
    return path


# ---------------------------------------------------------------------------------------------
# run_pages alone
# ---------------------------------------------------------------------------------------------
def _warn_page(i: int) -> None:
    warnings.warn(f"page {i}", CptsGeoWarning, stacklevel=1)
    if i % 3 == 0:
        warnings.warn(f"page {i} again", UserWarning, stacklevel=1)


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_warnings_come_once_each_in_page_order(jobs: int) -> None:
    done: list[int] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_pages(_warn_page, 12, jobs, done.append)
    expected = [m for i in range(12)
                for m in ([f"page {i}"] + ([f"page {i} again"] if i % 3 == 0 else []))]
    assert [str(w.message) for w in caught] == expected
    assert [w.category for w in caught][:2] == [CptsGeoWarning, UserWarning]
    assert all(w.filename == __file__ for w in caught)
    assert done == list(range(12))


def test_the_parent_filters_apply_to_the_workers_warnings() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", message=r"page \d+ again")
        run_pages(_warn_page, 6, 2)
    assert [str(w.message) for w in caught] == [f"page {i}" for i in range(6)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", CptsGeoWarning)
        with pytest.raises(CptsGeoWarning, match="page 0"):
            run_pages(_warn_page, 6, 2)


def _fail_at_5(i: int) -> None:
    warnings.warn(f"page {i}", CptsGeoWarning, stacklevel=1)
    if i == 5:
        raise InputError(f"page {i} is wrong")
    if i == 7:
        raise ValueError("a later page fails too, but the first failure is reported")


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_the_first_failing_page_raises_its_error_after_the_warnings_before_it(jobs: int) -> None:
    done: list[int] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(InputError, match=r"^page 5 is wrong$"):
            run_pages(_fail_at_5, 20, jobs, done.append)
    assert [str(w.message) for w in caught] == [f"page {i}" for i in range(6)]
    assert done == list(range(5))


def test_an_error_with_its_own_arguments_is_rebuilt_in_the_parent() -> None:
    """TerritoryError takes its problems, not its message: rebuilt from its state."""
    parent = os.getpid()
    problem = Problem(source="t.csv", row=3, column="insee", value="x", message="bad code")

    def task(i: int) -> None:
        if os.getpid() != parent and i > 0:
            raise TerritoryError([problem])

    with pytest.raises(TerritoryError) as err:
        run_pages(task, 50, 2)
    expected = TerritoryError([problem])
    assert str(err.value) == str(expected)
    assert err.value.problems == expected.problems


def _killed_in_a_worker(parent: int) -> object:
    def task(i: int) -> None:
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
    return task


def test_a_worker_that_dies_fails_the_run() -> None:
    with pytest.raises(RuntimeError, match=r"worker process .* ended"):
        run_pages(_killed_in_a_worker(os.getpid()), 50, 2)  # type: ignore[arg-type]


def test_an_exception_that_cannot_be_pickled_still_reports_its_text() -> None:
    class Local(Exception):  # a local class cannot be pickled
        pass

    parent = os.getpid()

    def task(i: int) -> None:
        if os.getpid() != parent:
            raise Local("only in the worker")

    with pytest.raises((Local, RuntimeError), match="only in the worker"):
        run_pages(task, 50, 2)


def test_jobs_is_checked(tmp_path: Path) -> None:
    for jobs in (0, -1, 1.5, True, "2"):
        with pytest.raises(InputError, match="`jobs`"):
            publish(tmp_path / "none.csv", tmp_path / "site", jobs=jobs)  # type: ignore[arg-type]
    assert not (tmp_path / "site").exists()


# ---------------------------------------------------------------------------------------------
# A real publication
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_two_jobs_publish_the_same_site_byte_for_byte(territories: Path, tmp_path: Path,
                                                      monkeypatch) -> None:
    monkeypatch.setattr(site_module, "datetime", _Fixed)
    sites = {}
    caught = {}
    for jobs in (1, 2):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            r = publish(territories, tmp_path / f"site{jobs}", progress=False, jobs=jobs)
        caught[jobs] = [(w_.category, str(w_.message)) for w_ in w]
        sites[jobs] = _site_bytes(r.release)
        assert len(r.departements) >= 2
    assert sorted(sites[1]) == sorted(sites[2])
    differ = [name for name in sites[1] if sites[1][name] != sites[2][name]]
    assert differ == []
    assert len([n for n in sites[1] if n.startswith("departements/")]) >= 8
    assert caught[1] == caught[2]


@pytest.mark.slow
def test_a_failing_page_in_a_worker_raises_the_error_of_one_process(territories: Path,
                                                                     tmp_path: Path,
                                                                     monkeypatch) -> None:
    out = tmp_path / "site"
    first = publish(territories, out, progress=False)
    before = _site_bytes(out)
    pages = first.departements
    write = site_module._write_departement

    def failing(site, page, *args):  # type: ignore[no-untyped-def]
        site_module.warn(f"building {page.code}")
        if page.code == pages[1]:
            raise TerritoryError([Problem(source="pages", row=None, column="departement",
                                          value=page.code, message="cannot be built")])
        return write(site, page, *args)

    monkeypatch.setattr(site_module, "_write_departement", failing)
    seen = {}
    for jobs in (1, 2):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            with pytest.raises(TerritoryError) as err:
                publish(territories, out, progress=False, jobs=jobs)
        assert err.value.problems[0].value == pages[1]
        seen[jobs] = (str(err.value), [str(x.message) for x in w
                                       if str(x.message).startswith("building")])
        assert _site_bytes(out) == before  # the previous site, untouched
        assert not [p for p in out.with_name("site.releases").iterdir()
                    if p.name.startswith(".build-")]
    assert seen[1] == seen[2]
    assert seen[1][1] == [f"building {pages[0]}", f"building {pages[1]}"]


@pytest.mark.slow
def test_a_worker_killed_leaves_the_previous_site(territories: Path, tmp_path: Path,
                                                  monkeypatch) -> None:
    out = tmp_path / "site"
    publish(territories, out, progress=False)
    before = _site_bytes(out)
    parent = os.getpid()
    write = site_module._write_departement

    def killed(site, page, *args):  # type: ignore[no-untyped-def]
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return write(site, page, *args)

    monkeypatch.setattr(site_module, "_write_departement", killed)
    with pytest.raises(RuntimeError, match="worker process"):
        publish(territories, out, progress=False, jobs=2)
    assert _site_bytes(out) == before
    monkeypatch.setattr(site_module, "_write_departement", write)
    publish(territories, out, progress=False, jobs=2)  # the lock was released
