"""The offline map in a real headless browser (Debian chromium): polygons drawn, no JS error,
nothing loaded from the network, and hostile names shown as text without running.

Skipped when /usr/bin/chromium is absent, unless CPTS_GEO_REQUIRE_BROWSER=1 (CI), which makes
its absence a failure. The screenshot is kept in ``artifacts/`` at the repository root.
"""

from __future__ import annotations

import functools
import html
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from cpts_geo.maps import coverage_map, save_map

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")

PAYLOAD = "<img src=x onerror=\"document.title='pwned'\">"
SCRIPT_PAYLOAD = "L'Haÿ-les-Roses </script><script>document.title='pwned2'</script>"
COMMUNE_PAYLOAD = "<img src=y onerror=\"document.title='pwned3'\">"

# Injected into the page under test only: records JS errors and the resources loaded, then opens
# the tooltips of the CPTS and of two communes so that their text is in the dumped DOM.
PROBE = """<script>
(function () {
  var root = document.documentElement;
  function note(name, text) { root.setAttribute(name, (root.getAttribute(name) || "") + text); }
  window.addEventListener("error", function (e) { note("data-js-errors", e.message + "|"); });
  window.addEventListener("load", function () {
    setTimeout(function () {
      Object.keys(window).filter(function (k) { return k.indexOf("cpts_geo_json_") === 0; })
        .forEach(function (k) {
          var g = window[k];
          g.eachLayer(function (l) {
            var p = l.feature.properties;
            if (g.options.pane === "cpts_geo_cpts" ||
                (g.options.pane === "cpts_geo_communes" &&
                 (p.insee === "42218" || p.insee === "42110"))) {
              l.openTooltip();
            }
          });
        });
      var urls = performance.getEntriesByType("resource").map(function (e) { return e.name; });
      root.setAttribute("data-resources", urls.join(" "));
      root.setAttribute("data-done", "1");
    }, 500);
  });
})();
</script>"""


def _chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("CPTS_GEO_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{CHROMIUM} is missing but CPTS_GEO_REQUIRE_BROWSER=1 (apt-get install "
                    "chromium)")
    pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[str, Path, list[str]]]:
    """A local HTTP server on 127.0.0.1 serving tmp_path/site; yields (base URL, dir, paths)."""
    site = tmp_path / "site"
    site.mkdir()
    requested: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            requested.append(self.path)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0),
                                functools.partial(Handler, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", site, requested
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _run(chromium: Path, profile: Path, url: str, *action: str) -> subprocess.CompletedProcess:
    cmd = [
        str(chromium), "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--no-first-run",
        "--disable-sync", f"--user-data-dir={profile}", "--window-size=1200,900",
        "--virtual-time-budget=5000", "--enable-logging=stderr", "--v=0",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        *action, url,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.slow
def test_offline_map_in_headless_chromium(tmp_path, server, loire_rhone):
    chromium = _chromium()
    base, site, requested = server

    seeds = pd.read_csv(ROOT / "data" / "territories" / "cpts_seeds.csv", dtype=str,
                        keep_default_na=False)
    terr = seeds[["cpts", "insee", "status"]]
    loire = loire_rhone[loire_rhone["departement"] == "42"]
    epcis = sorted(loire["epci"].dropna().unique())
    hostile = [
        (name, code, "projet de santé validé")
        for name, epci in ((PAYLOAD, epcis[0]), (SCRIPT_PAYLOAD, epcis[1]))
        for code in loire.loc[loire["epci"] == epci, "insee"]
    ]
    terr = pd.concat([terr, pd.DataFrame(hostile, columns=terr.columns)], ignore_index=True)
    communes = loire_rhone.copy()
    communes.loc[communes["insee"] == "42218", "nom"] = COMMUNE_PAYLOAD

    m = coverage_map(communes, terr, departements="42")
    save_map(m, site / "map.html")
    page = (site / "map.html").read_text(encoding="utf-8")
    (site / "map.html").write_text(page.replace("<head>", "<head>\n" + PROBE, 1),
                                   encoding="utf-8")

    url = f"{base}/map.html"
    shot = tmp_path / "map.png"
    done = _run(chromium, tmp_path / "profile1", url, f"--screenshot={shot}")
    assert shot.is_file() and shot.stat().st_size > 20_000, done.stderr[-2000:]
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / "map_loire_offline.png")

    dumped = _run(chromium, tmp_path / "profile2", url, "--dump-dom")
    dom = dumped.stdout
    (ARTIFACTS / "map_loire_offline.dom.html").write_text(dom, encoding="utf-8")
    root_tag = re.search(r"<html[^>]*>", dom).group(0)  # where the probe wrote its findings
    assert 'data-done="1"' in root_tag, dumped.stderr[-2000:]

    # no JS error, no console message at all
    assert "data-js-errors" not in root_tag
    console = [line for line in (done.stderr + dumped.stderr).splitlines()
               if ":CONSOLE" in line or "Uncaught" in line]
    assert console == []

    # the territories are drawn: one SVG path per commune, CPTS, gap zone, outline...
    paths = re.findall(r"<path[^>]*class=\"leaflet-interactive\"", dom)
    assert len(paths) > 320 + 3
    assert "Couverture CPTS — Loire (42)" in dom
    assert 'class="leaflet-control-layers' in dom

    # nothing but the page itself was requested; no resource from elsewhere
    resources = re.search(r'data-resources="([^"]*)"', root_tag).group(1).split()
    assert [r for r in resources if not r.startswith(base)] == []
    assert set(requested) <= {"/map.html", "/favicon.ico"}

    # the payloads did not run: the title is ours, no <img> was created from a name
    title = re.search(r"<title>(.*?)</title>", dom, re.S).group(1)
    assert "pwned" not in title and title.startswith("Couverture CPTS")
    assert "<img" not in dom
    # ... and they are shown as text: in the legend and in the opened tooltips
    tooltips = re.findall(r'<div class="leaflet-tooltip[^"]*"[^>]*>(.*?)</div></div>', dom,
                          re.S)
    text = html.unescape(" ".join(tooltips))
    assert PAYLOAD in text
    assert SCRIPT_PAYLOAD in text
    assert COMMUNE_PAYLOAD in text
    assert "L'Horme (42110)" in text
    assert "Vallée du Gier" in text
    legend = html.unescape(re.search(r'<details class="cpts-geo-legend".*?</details>', dom,
                                     re.S).group(0))
    assert PAYLOAD in legend and SCRIPT_PAYLOAD in legend
