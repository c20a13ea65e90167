"""National-scale timings (median of 3). Run: python benchmarks/run.py [--publish]

Budgets (issues 3, 4, 5): warm load of all France < 0.5 s, one département < 0.1 s; national
coverage < 1 s; gaps and outlines < 10 s; publishing every département < 2 min.
Exit status 1 if a budget is exceeded.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import synthetic_territories

import cpts_geo


def timed(fn, repeat=3):
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--publish", action="store_true", help="also time a national publish")
    args = parser.parse_args()
    rows = []
    budgets_ok = True

    def record(name, seconds, budget, extra=""):
        nonlocal budgets_ok
        ok = budget is None or seconds <= budget
        budgets_ok &= ok
        rows.append((name, seconds, budget, "ok" if ok else "OVER", extra))

    cpts_geo.load_communes()  # warm the OS cache and the module caches
    t, france = timed(cpts_geo.load_communes)
    record("load_communes() all France, warm", t, 0.5, f"{len(france)} communes")
    t, _ = timed(lambda: cpts_geo.load_communes("38"))
    record("load_communes('38'), warm", t, 0.1)
    t0 = time.perf_counter()
    terr = synthetic_territories(france)
    build = time.perf_counter() - t0
    n_cpts = terr["cpts_id"].nunique()
    record("build synthetic territories", build, None, f"{n_cpts} CPTS, {len(terr)} rows")
    t, table = timed(lambda: cpts_geo.coverage(france, terr))
    record("coverage(by='departement') national", t, 1.0,
           f"rate {table['covered_population'].sum() / table['population'].sum():.1%}")
    t, _ = timed(lambda: cpts_geo.coverage(france, terr, by="cpts"))
    record("coverage(by='cpts') national", t, 1.0)
    t, gaps = timed(lambda: cpts_geo.find_gaps(france, terr), repeat=1)
    record("find_gaps national", t, 10.0, f"{len(gaps)} zones")
    t, outlines = timed(lambda: cpts_geo.territory_geometries(france, terr), repeat=1)
    record("territory_geometries national", t, 10.0, f"{len(outlines)} outlines")
    t, over = timed(lambda: cpts_geo.find_overlaps(france, terr), repeat=1)
    record("find_overlaps national", t, 10.0, f"{len(over)} communes")
    if args.publish:
        from cpts_geo.publish import publish

        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            res = publish(terr, Path(tmp) / "site", progress=False)
            record("publish all départements", time.perf_counter() - t0, 120.0,
                   f"{len(res.departements)} pages")
    width = max(len(r[0]) for r in rows)
    for name, seconds, budget, status, extra in rows:
        b = "" if budget is None else f"(budget {budget:g} s) {status}"
        print(f"{name:<{width}}  {seconds:7.3f} s  {b:<22} {extra}")
    return 0 if budgets_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
