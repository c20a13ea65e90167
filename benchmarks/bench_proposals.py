"""Candidate CPTS: our partition against the naive spopt call, on the Isère (issue 9).

Run: python benchmarks/bench_proposals.py [--repeat 5] [--spopt-python PATH] [--report]

* ours: ``cpts_geo.propose_territories`` on the Isère with the shipped territories,
  ``--target 20`` (median of ``--repeat`` warm runs; the first, cold call is shown apart);
  budget 30 s (exit status 1 beyond);
* spopt: ``MaxPHeuristic(gdf, w, ["x", "y"], "population", 40000, top_n=2)``, the other
  arguments left to their defaults, on the same uncovered communes and the same contiguity
  (borders of positive length, ``ContiguityGraph.to_libpysal``, as a ``W`` keyed by row);
  ``x``, ``y``: the communes' centroids in Lambert-93 (km); seeded with ``np.random.seed(0)``
  (spopt draws from numpy's global state). One run: it takes seconds to minutes. Timed when
  spopt imports in this interpreter (``pip install 'cpts-geo[bench]'``), or in the one given by
  ``--spopt-python`` (or ``CPTS_GEO_SPOPT_PYTHON``), which needs cpts_geo's dependencies too;
  otherwise the line says it was not run;
* ``--report``: the figures of the README (Isère, Hautes-Alpes, Bouches-du-Rhône, Corse-du-Sud,
  with the shipped territories and with none).

The machine's load average is printed before and after: timings on a shared machine vary.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cpts_geo  # noqa: E402
from cpts_geo.analysis.inputs import prepare  # noqa: E402

BUDGET = 30.0
DEP, TARGET, FLOOR, CEILING = "38", 20, 40_000, 175_000


def territories() -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # two misspelt names in the Loire file
        return cpts_geo.read_territories(ROOT / "data" / "territories")


def ours(repeat: int) -> dict:
    t = territories()
    communes = cpts_geo.load_communes(DEP, arrondissements=True)
    t0 = time.perf_counter()
    result = cpts_geo.propose_territories(communes, t, departements=DEP, target=TARGET)
    cold = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = cpts_geo.propose_territories(communes, t, departements=DEP, target=TARGET)
        times.append(time.perf_counter() - t0)
    c = result.candidates
    return {"method": "cpts_geo.propose_territories (target 20 in all)",
            "seconds": statistics.median(times), "cold_seconds": cold,
            "n": len(c), "n_total": result.summary["n_total"],
            "pop_min": int(c["population"].min()), "pop_max": int(c["population"].max()),
            "n_above_max": int((c["population"] > CEILING).sum()),
            "n_below_floor": int((c["population"] < FLOOR).sum()),
            "epci_split": result.summary["epci_split"],
            "polsby_popper_median": float(c["polsby_popper"].median())}


def spopt_here() -> dict:
    """The naive spopt call, in this interpreter."""
    from importlib.metadata import version

    import libpysal
    from spopt.region import MaxPHeuristic

    t = territories()
    communes = cpts_geo.load_communes(DEP, arrondissements=True)
    p = prepare(communes, t, whole_departements=[DEP])
    gap = p.scoped([DEP]) & ~p.per_commune["covered"].to_numpy()
    gdf = p.communes[gap].to_crs(2154).reset_index(drop=True)
    gdf["population"] = gdf["population"].astype(float)
    centre = gdf.geometry.centroid
    gdf["x"], gdf["y"] = centre.x / 1000, centre.y / 1000
    # the shared graph as libpysal weights, keyed by row position as spopt wants them
    graph = p.graph.to_libpysal(gdf["insee"].tolist())
    pos = {code: i for i, code in enumerate(gdf["insee"])}
    w = libpysal.weights.W({pos[k]: [pos[n] for n in v if n != k]
                            for k, v in graph.to_W().neighbors.items()}, silence_warnings=True)
    np.random.seed(0)
    t0 = time.perf_counter()
    model = MaxPHeuristic(gdf, w, ["x", "y"], "population", FLOOR, top_n=2)
    model.solve()
    seconds = time.perf_counter() - t0
    labels = np.asarray(model.labels_)
    _, inv = np.unique(labels, return_inverse=True)
    pops = np.bincount(inv.ravel(), weights=gdf["population"].to_numpy())
    epci = gdf["epci"].astype(str).to_numpy()
    split = sum(len(set(labels[epci == e])) > 1 for e in set(epci))
    return {"method": f"spopt {version('spopt')} MaxPHeuristic (naive call, floor 40,000)",
            "seconds": seconds, "n": len(pops), "n_total": len(pops) + 1,
            "pop_min": int(pops.min()), "pop_max": int(pops.max()),
            "n_above_max": int((pops > CEILING).sum()),
            "n_below_floor": int((pops < FLOOR).sum()), "epci_split": int(split),
            "python": sys.version.split()[0], "libpysal": version("libpysal"),
            "numpy": version("numpy")}


def spopt(python: str | None) -> dict | str:
    try:
        import spopt  # noqa: F401
    except ImportError:
        if not python:
            return ("spopt is not installed here (pip install 'cpts-geo[bench]'), and no "
                    "--spopt-python was given: not run")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
        run = subprocess.run([python, __file__, "--spopt-only"], capture_output=True,
                             text=True, env=env)
        if run.returncode != 0:
            return f"spopt run with {python} failed: {run.stderr.strip().splitlines()[-1:]}"
        return json.loads(run.stdout.strip().splitlines()[-1])
    return spopt_here()


def report() -> pd.DataFrame:
    """The README's figures: four départements, with the shipped territories and with none."""
    t = territories()
    rows = []
    cases = [("38", 20, None), ("05", None, None), ("05", 8, None), ("05", 8, "05"),
             ("13", None, None), ("2A", None, None), ("2A", 3, None)]
    for dep, target, mountain in cases:
        communes = cpts_geo.load_communes(dep, arrondissements=True)
        for name, terr in (("shipped", t), ("none", None)):
            if mountain and name == "shipped":
                continue
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = cpts_geo.propose_territories(communes, terr, departements=dep,
                                                 target=target, mountain=mountain)
            seconds = time.perf_counter() - t0
            c, s = r.candidates, r.summary
            rows.append({
                "dep": dep, "territories": name, "target": target or "",
                "mountain": mountain or "", "uncovered": s["n_uncovered_communes"],
                "population": s["uncovered_population"], "existing": s["n_existing"],
                "proposed": s["n_proposed"], "total": s["n_total"],
                "pop_min": int(c["population"].min()) if len(c) else "",
                "pop_max": int(c["population"].max()) if len(c) else "",
                "classes_1234": "/".join(str(int((c["size_class"] == k).sum()))
                                         for k in (1, 2, 3, 4)),
                "below_floor": s["n_below_floor"], "above_max": s["n_above_max"],
                "epci_split": s["epci_split"],
                "pp_median": round(float(c["polsby_popper"].median()), 2) if len(c) else "",
                "seconds": round(seconds, 2), "reason": r.reason,
            })
    return pd.DataFrame(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--spopt-python", default=os.environ.get("CPTS_GEO_SPOPT_PYTHON"))
    parser.add_argument("--spopt-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-spopt", action="store_true", help="time ours only")
    parser.add_argument("--report", action="store_true", help="the README's figures")
    args = parser.parse_args()
    if args.spopt_only:
        print(json.dumps(spopt_here()))
        return 0
    print(f"load average before: {os.getloadavg()}  ({os.cpu_count()} cores)")
    if args.report:
        pd.set_option("display.width", 250)
        pd.set_option("display.max_colwidth", 400)
        print(report().to_string(index=False))
    mine = ours(args.repeat)
    rows = [mine]
    other = "not run (--no-spopt)" if args.no_spopt else spopt(args.spopt_python)
    if isinstance(other, dict):
        rows.append(other)
    table = pd.DataFrame(rows)
    table["seconds"] = table["seconds"].round(2)
    print(f"Isère ({DEP}), uncovered communes of the shipped territories; median of "
          f"{args.repeat} warm runs for ours (cold first call: {mine['cold_seconds']:.2f} s), "
          "one run for spopt")
    print(table.drop(columns=["cold_seconds"], errors="ignore").to_string(index=False))
    if isinstance(other, str):
        print(f"spopt: {other}")
    print(f"load average after: {os.getloadavg()}")
    ok = mine["seconds"] < BUDGET and 17 <= mine["n_total"] <= 23
    print(f"budget: under {BUDGET:.0f} s and 17 to 23 CPTS in all: {'ok' if ok else 'EXCEEDED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
