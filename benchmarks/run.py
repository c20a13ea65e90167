"""National-scale benchmarks: each stage of cpts_geo next to the plain pandas/geopandas way.

Run: ``python benchmarks/run.py [--publish] [--runs 5] [--quick]``

For every stage, the cpts_geo call and the obvious pandas/geopandas way of producing the same
output are timed interleaved in one process (a warm-up, then ``--runs`` runs of each, medians
reported) and their outputs are checked equal. The table gives the medians, the ratio
(cpts_geo / plain, lower is better), the budget and the peak memory of the process so far; a
scaling table gives the cost against the number of communes (one département, a région, France).

cpts_geo remembers the inputs it validated while they hold the same data (``cpts_geo._snapshot``),
so the timed runs after the warm-up measure a planner's second and later calls on the same
frames; results are computed afresh every time. The column "first" gives one call with that memo
emptied (validation included), the cost of a first call on new frames (imports and the bundle
already loaded by the runs before it).
Results are written to ``benchmarks/results.json`` with the versions and the machine.

Exit status 1 when a stage exceeds its budget. Budgets are about twice the medians measured on
the 2-core machine the README names, so a 2x regression fails.

Data: the 34,875 communes of the bundle and about 830 synthetic CPTS built from real EPCI
(``synthetic.py``), written to a CSV of 23,400 rows for the reading stage.

``--publish`` also publishes the whole site from that CSV with ``bench_site.py`` in a fresh
process, with one process and with two (``--jobs 2``): time and steps (a run without the
memory sampler), memory (a second run with it: this process's peak, and the peaks of the
processes together: RSS, which counts the pages a fork shares once per process, and PSS,
which splits them), the site's weight and files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import synthetic_territories

import cpts_geo
from cpts_geo.analysis.inputs import prepare
from cpts_geo.maps.interactive import map_html, render_map
from cpts_geo.maps.layers import build_overview

HERE = Path(__file__).parent
CHROMIUM = Path("/usr/bin/chromium")

#: Budgets in seconds: about twice the medians measured on the README's 2-core machine (shared,
#: load average about 2) in the runs of benchmarks/results.json, so a 2x regression fails.
BUDGETS = {
    "read + validate the territory CSV": 0.2,
    "coverage by département": 0.025,
    "coverage by CPTS": 0.04,
    "overlaps": 0.025,
    "gap zones": 0.4,
    "CPTS outlines": 0.5,
    "national overview map": 2.5,
}
#: Publishing every département with one process and with two (seconds, about twice the
#: medians measured) and the peak memory of the processes together (PSS, the goal: 1 GiB).
PUBLISH_BUDGET_S = {1: 50.0, 2: 40.0}
PUBLISH_BUDGET_MIB = 1024


def peak_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def first_call(fn: Callable[[], Any]) -> float:
    """Seconds of one call after emptying cpts_geo's memo of validated inputs."""
    from cpts_geo import membership
    from cpts_geo.analysis import inputs

    inputs._MEMO.clear()
    membership._FACTS.clear()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleaved(ours: Callable[[], Any], plain: Callable[[], Any] | None, runs: int
                ) -> tuple[list[float], list[float], Any, Any]:
    """Time ``ours`` and ``plain`` alternately after one warm-up of each."""
    out_ours = ours()
    out_plain = plain() if plain is not None else None
    t_ours, t_plain = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        ours()
        t_ours.append(time.perf_counter() - t0)
        if plain is not None:
            t0 = time.perf_counter()
            plain()
            t_plain.append(time.perf_counter() - t0)
    return t_ours, t_plain, out_ours, out_plain


# ---------------------------------------------------------------------------------------------
# The plain ways
# ---------------------------------------------------------------------------------------------
def plain_read(path: Path, codes: set[str]) -> pd.DataFrame:
    """read_csv and the vectorised checks a careful analyst would write."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert df["insee"].isin(codes).all()
    assert df["status"].isin(cpts_geo.STATUSES).all()
    df["status_date"] = pd.to_datetime(df["status_date"], format="ISO8601")
    assert not df.duplicated(["cpts_id", "insee"]).any()
    return df


def plain_shares(communes: pd.DataFrame, terr: pd.DataFrame) -> pd.DataFrame:
    per = terr.groupby("insee").size().rename("n").reset_index()
    return communes[["insee", "departement", "population"]].merge(per, on="insee", how="left")


def plain_coverage(communes: pd.DataFrame, terr: pd.DataFrame) -> pd.DataFrame:
    df = plain_shares(communes, terr)
    df["covered"] = df["population"].where(df["n"].notna(), 0)
    return df.groupby("departement")[["population", "covered"]].sum()


def plain_cpts(communes: pd.DataFrame, terr: pd.DataFrame) -> pd.DataFrame:
    df = terr.merge(communes[["insee", "population"]], on="insee")
    return df.groupby("cpts_id").agg(population=("population", "sum"), n=("insee", "size"))


def plain_overlaps(terr: pd.DataFrame) -> pd.Index:
    n = terr.groupby("insee").size()
    return n.index[n >= 2]


def plain_gaps(communes: gpd.GeoDataFrame, terr: pd.DataFrame) -> pd.DataFrame:
    gaps = communes[~communes["insee"].isin(set(terr["insee"]))]
    zones = gaps[["geometry"]].dissolve().explode(index_parts=False).reset_index(drop=True)
    zones["zone"] = np.arange(len(zones))
    points = gaps.copy()
    points["geometry"] = gaps.geometry.representative_point()
    joined = gpd.sjoin(points, zones, predicate="within")
    return joined.groupby("zone").agg(population=("population", "sum"),
                                      n=("insee", "size"))


def plain_outlines(communes: gpd.GeoDataFrame, terr: pd.DataFrame) -> gpd.GeoDataFrame:
    df = communes[["insee", "geometry"]].merge(terr[["cpts_id", "insee"]], on="insee")
    return gpd.GeoDataFrame(df, crs=communes.crs).dissolve("cpts_id", method="coverage")


# ---------------------------------------------------------------------------------------------
def chromium_draw_seconds(page: Path) -> float | None:
    """Wall time for headless Chromium to load and draw a page (None without Chromium)."""
    if not CHROMIUM.exists():
        return None
    with tempfile.TemporaryDirectory() as profile:
        t0 = time.perf_counter()
        subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-background-networking", "--disable-component-update",
                        "--no-first-run", "--disable-sync", f"--user-data-dir={profile}",
                        "--dump-dom", page.as_uri()], capture_output=True, check=False,
                       timeout=120)
        return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--publish", action="store_true", help="also publish all départements")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="skip the slow plain ways")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rows: list[dict[str, Any]] = []
    ok = True

    def record(stage: str, t_ours: list[float], t_plain: list[float], check: str,
               extra: str = "", first: float | None = None) -> None:
        nonlocal ok
        ours = statistics.median(t_ours)
        plain = statistics.median(t_plain) if t_plain else None
        budget = BUDGETS.get(stage)
        over = budget is not None and ours > budget
        ok &= not over
        rows.append({"stage": stage, "cpts_geo_s": round(ours, 4),
                     "plain_s": None if plain is None else round(plain, 4),
                     "ratio": None if plain is None else round(ours / plain, 2),
                     "first_call_s": None if first is None else round(first, 4),
                     "budget_s": budget, "over_budget": over, "outputs": check,
                     "peak_mb": round(peak_mb()), "note": extra, "runs": len(t_ours)})
        print(f"{stage:<36} {ours:8.3f} s  plain {plain if plain is None else f'{plain:.3f}'}"
              f"  {check}  {extra}", flush=True)

    load_start = os.getloadavg()
    print(f"load average at the start: {load_start[0]:.2f} (cpus: {os.cpu_count()})", flush=True)
    france = cpts_geo.load_communes()
    codes = set(france["insee"])
    terr_raw = synthetic_territories(france)
    tmp = Path(tempfile.mkdtemp())
    csv_path = tmp / "territories.csv"
    terr_raw.to_csv(csv_path, index=False)
    print(f"{len(france)} communes, {terr_raw['cpts_id'].nunique()} CPTS, "
          f"{len(terr_raw)} rows", flush=True)

    t_o, t_p, m, plain = interleaved(lambda: cpts_geo.read_territories(csv_path),
                                     lambda: plain_read(csv_path, codes), args.runs)
    same = set(zip(m["cpts_id"], m["insee"], strict=True)) == set(
        zip(plain["cpts_id"], plain["insee"], strict=True))
    record("read + validate the territory CSV", t_o, t_p, "equal" if same else "DIFFERENT",
           f"{len(m)} rows")

    t_o, t_p, ours, plain = interleaved(lambda: cpts_geo.coverage(france, m),
                                        lambda: plain_coverage(france, m), args.runs)
    first = first_call(lambda: cpts_geo.coverage(france, m))
    same = np.allclose(ours.set_index("departement")["covered_population"],
                       plain["covered"].reindex(ours["departement"]).to_numpy())
    record("coverage by département", t_o, t_p, "equal" if same else "DIFFERENT", first=first)

    t_o, t_p, ours, plain = interleaved(lambda: cpts_geo.cpts_table(france, m),
                                        lambda: plain_cpts(france, m), args.runs)
    first = first_call(lambda: cpts_geo.cpts_table(france, m))
    same = np.allclose(ours.set_index("cpts_id")["population"],
                       plain["population"].reindex(ours["cpts_id"]).to_numpy())
    record("coverage by CPTS", t_o, t_p, "equal" if same else "DIFFERENT", first=first)

    t_o, t_p, ours, plain = interleaved(lambda: cpts_geo.find_overlaps(france, m),
                                        lambda: plain_overlaps(m), args.runs)
    first = first_call(lambda: cpts_geo.find_overlaps(france, m))
    same = set(ours["insee"]) == set(plain)
    record("overlaps", t_o, t_p, "equal" if same else "DIFFERENT", f"{len(ours)} communes",
           first=first)

    runs = 1 if args.quick else args.runs
    t_o, t_p, ours, plain = interleaved(
        lambda: cpts_geo.find_gaps(france, m),
        None if args.quick else (lambda: plain_gaps(france, m)), runs)
    first = first_call(lambda: cpts_geo.find_gaps(france, m))
    check = "not run"
    if plain is not None:
        # the plain way joins polygons that touch at a point only; zones of shared borders are
        # compared by their population totals and counts
        same = int(ours["population"].sum()) == int(plain["population"].sum())
        check = ("same population" if same else "DIFFERENT") + (
            f", {len(ours)} zones vs {len(plain)} polygons")
    record("gap zones", t_o, t_p, check, f"{len(ours)} zones", first=first)

    t_o, t_p, ours, plain = interleaved(
        lambda: cpts_geo.territory_geometries(france, m),
        None if args.quick else (lambda: plain_outlines(france, m)), runs)
    first = first_call(lambda: cpts_geo.territory_geometries(france, m))
    check = "not run"
    if plain is not None:
        a = shapely.area(ours.set_index("cpts_id").geometry.reindex(plain.index).to_numpy())
        same = np.allclose(a, shapely.area(plain.geometry.to_numpy()), rtol=1e-9)
        check = "equal areas" if same else "DIFFERENT"
    record("CPTS outlines", t_o, t_p, check, f"{len(ours)} outlines", first=first)

    p = prepare(france, m, whole="nation")
    page = tmp / "overview.html"

    def overview() -> None:
        q = prepare(france, m, whole="nation")
        page.write_text(map_html(render_map(build_overview(q)), assets="inline"), "utf-8")

    t_o, _, _, _ = interleaved(overview, None, max(3, runs // 2))
    size = page.stat().st_size / 1e6
    blank = tmp / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>", "utf-8")
    draws = [chromium_draw_seconds(page) for _ in range(3)]
    blanks = [chromium_draw_seconds(blank) for _ in range(3)]
    if None in draws or None in blanks:
        drawn = "no Chromium"
    else:  # Chromium's own start-up (an empty page) is not the map's cost
        wall = statistics.median(d for d in draws if d is not None)
        empty = statistics.median(b for b in blanks if b is not None)
        drawn = (f"drawn in {wall:.2f} s by headless Chromium, {wall - empty:.2f} s beyond "
                 f"an empty page ({empty:.2f} s)")
    record("national overview map", t_o, [], f"{size:.2f} MB", drawn)
    del p

    # scaling: one département, a région, France
    scaling = []
    for label, loader in (("Isère (38)", lambda: cpts_geo.load_communes("38")),
                          ("Auvergne-Rhône-Alpes (84)", lambda: cpts_geo.load_communes(
                              regions="84")),
                          ("France", lambda: france)):
        communes = loader()
        sub = m[m["insee"].isin(set(communes["insee"]))]
        t0 = time.perf_counter()
        cpts_geo.coverage(communes, sub)
        cpts_geo.find_gaps(communes, sub)
        cpts_geo.territory_geometries(communes, sub)
        seconds = time.perf_counter() - t0
        scaling.append({"area": label, "communes": len(communes), "seconds": round(seconds, 3)})
        print(f"scaling {label:<28} {len(communes):6d} communes {seconds:6.3f} s", flush=True)

    publish_info = None
    if args.publish:  # bench_site.py in a fresh process, with one process then two
        publish_info = {}
        for jobs in (1, 2):
            out = tmp / f"publish{jobs}"
            out.mkdir()
            shutil.copy(csv_path, out / "territories.csv")
            info = {}
            for memory in (False, True):  # timed without the memory sampler, then with it
                proc = subprocess.run(
                    [sys.executable, str(HERE / "bench_site.py"), "--out", str(out), "--jobs",
                     str(jobs), *(["--memory"] if memory else [])],
                    capture_output=True, text=True, check=True)
                got = json.loads(proc.stdout[proc.stdout.index("{"):])
                info = got if not memory else {**info, **{
                    k: got[k] for k in ("peak_sum_rss_mib", "peak_sum_pss_mib")}}
            memory = info["peak_sum_pss_mib"] or info["peak_mib"]
            over = info["seconds"] > PUBLISH_BUDGET_S[jobs] or memory > PUBLISH_BUDGET_MIB
            ok &= not over
            publish_info[f"jobs={jobs}"] = info
            print(f"publish all départements, {jobs} process(es): {info['seconds']:.1f} s, "
                  f"{info['pages']} pages, peak {info['peak_mib']} MiB (processes together: "
                  f"RSS {info['peak_sum_rss_mib']} MiB, PSS {info['peak_sum_pss_mib']} MiB), "
                  f"site {info['site_mb']:.1f} MB in {info['files']} files (budget "
                  f"{PUBLISH_BUDGET_S[jobs]:g} s, {PUBLISH_BUDGET_MIB} MiB PSS)"
                  f"{' OVER' if over else ''}", flush=True)

    result = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": os.cpu_count(), "python": platform.python_version()},
        "versions": {"cpts_geo": cpts_geo.__version__, "pandas": pd.__version__,
                     "geopandas": gpd.__version__, "shapely": shapely.__version__,
                     "numpy": np.__version__},
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "stages": rows, "scaling": scaling, "publish": publish_info,
    }
    (HERE / "results.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n",
                                       "utf-8")
    print()
    print(f"{'stage':<36} {'cpts_geo':>9} {'first':>7} {'plain':>9} {'ratio':>6} {'budget':>7} "
          f"{'peak MiB':>8}  outputs")
    for r in rows:
        first = "" if r["first_call_s"] is None else f"{r['first_call_s']:.3f}"
        plain = "" if r["plain_s"] is None else f"{r['plain_s']:.3f}"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
        budget = "" if r["budget_s"] is None else f"{r['budget_s']:g}"
        flag = " OVER" if r["over_budget"] else ""
        print(f"{r['stage']:<36} {r['cpts_geo_s']:9.3f} {first:>7} {plain:>9} {ratio:>6} "
              f"{budget:>7} {r['peak_mb']:>8}  {r['outputs']}{flag}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (2 cores)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
