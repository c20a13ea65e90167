"""Publish the whole site on the national synthetic data and report time, memory and weight.

Run: ``python benchmarks/bench_site.py [--profile] [--out DIR]``

Data as ``run.py --publish``: the 34,875 communes of the bundle and about 830 synthetic CPTS
(``synthetic.py``). Prints the steps' timings, the peak memory, the site's weight and file count
(and the heaviest kinds of files), with the load average (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import synthetic_territories

import cpts_geo


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", help="publish there (default: a temporary folder)")
    parser.add_argument("--departements", nargs="*", help="only these pages")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from cpts_geo.publishing.site import publish

    tmp = Path(args.out or tempfile.mkdtemp())
    tmp.mkdir(parents=True, exist_ok=True)
    csv_path = tmp / "territories.csv"
    if not csv_path.exists():
        synthetic_territories(cpts_geo.load_communes()).to_csv(csv_path, index=False)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    r = publish(csv_path, tmp / "site", progress=False, departements=args.departements)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    files = [f for f in (tmp / "site").resolve().rglob("*") if f.is_file()]
    weight = sum(f.stat().st_size for f in files)
    by_kind: Counter[str] = Counter()
    for f in files:
        kind = "".join(f.suffixes[-2:]) if f.name.endswith((".gz", ".json")) else f.suffix
        by_kind[kind] += f.stat().st_size
    print(json.dumps({"seconds": r.seconds, "wall_s": round(wall, 1),
                      "pages": len(r.departements), "peak_mib": round(peak),
                      "site_mb": round(weight / 1e6, 1), "files": len(files),
                      "timings": r.timings,
                      "load_before_after": [round(load0, 2), round(os.getloadavg()[0], 2)],
                      "weight_mb_by_kind": {k: round(v / 1e6, 1)
                                            for k, v in by_kind.most_common(8)}}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
