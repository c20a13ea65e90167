"""The static site: content, escaping, changes between runs, lock, and atomicity when a run fails
or is killed. The published pages are also loaded in headless Chromium from 127.0.0.1."""

from __future__ import annotations

import functools
import hashlib
import html
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from helpers import ROOT, SEEDS

from cpts_geo.cli import main
from cpts_geo.errors import PublishError, TerritoryError
from cpts_geo.io import readers
from cpts_geo.publishing import site as site_module
from cpts_geo.publishing.release import lock as _lock
from cpts_geo.publishing.site import publish

pytestmark = pytest.mark.slow  # every test here publishes a site

HOSTILE = "<img src=x onerror=alert(1)>"
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
    """One publication of the seeds plus a hostile CPTS (two Isère communes)."""
    tmp = tmp_path_factory.mktemp("publish")
    terr = _territories(tmp, [(HOSTILE, "38185", "pré-projet"), (HOSTILE, "38151", "pré-projet")])
    result = publish(terr, tmp / "site", progress=False)
    return tmp, result


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


def test_hostile_names_are_text_everywhere(site):
    tmp, _ = site
    for page in ("index.html", "departements/38/index.html"):
        text = (tmp / "site" / page).read_text("utf-8")
        assert "<img" not in text
        assert html.escape(HOSTILE, quote=False) in text or html.escape(HOSTILE) in text
    mapping = (tmp / "site" / "departements" / "38" / "map.html").read_text("utf-8")
    assert "<img src=x" not in mapping


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


def test_a_second_concurrent_run_is_refused(tmp_path, capsys):
    out = tmp_path / "site"
    with _lock(out):
        with pytest.raises(PublishError, match=r"another publication .* is running"):
            publish(_territories(tmp_path), out, progress=False)
        assert main(["publish", "-t", str(_territories(tmp_path)), "--out", str(out)]) == 2
        assert "error: another publication" in capsys.readouterr().err
    assert not out.exists()


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
    # its change report compares with the fixture's publication (the hostile CPTS is gone)
    ch = again.changes
    assert ch["first_publication"] is False and ch["vintage_changed"] is False
    assert [(c["cpts"], c["change"]) for c in ch["cpts"] if c["change"] != "unchanged"] == [
        (HOSTILE, "dissolved")]
    assert {(c["insee"], c["change"]) for c in ch["communes"]} == {
        ("38185", "left"), ("38151", "left")}
    assert [a["area"] for a in ch["areas"]] == ["38"] and ch["areas"][0]["delta"] < 0
    index = (out / "index.html").read_text("utf-8")
    assert "Communes sorties de la couverture : 2" in index and "Grenoble" in index


def test_site_figures_count_real_cpts_not_propositions():
    """Propositions in the files are listed and drawn on the site, not counted in its rates."""
    import cpts_geo
    from cpts_geo.analysis.inputs import prepare
    from cpts_geo.publishing.pages import site_data

    isere = cpts_geo.load_communes("38")
    seeds = cpts_geo.read_territories(SEEDS)
    prop = cpts_geo.propose_territories(isere, seeds, departements="38", target=20)
    both = pd.concat([seeds, prop.territories], ignore_index=True)
    data = site_data(prepare(isere, both))
    real = cpts_geo.coverage(isere, seeds)
    assert data.departements["coverage_rate"].tolist() == real["coverage_rate"].tolist()
    assert int(data.gaps["n_communes"].sum()) == 507
    assert (data.cpts["status"] == "proposition").sum() == 19
