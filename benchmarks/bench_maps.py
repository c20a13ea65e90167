"""Size and time of national coverage maps (run: ``python benchmarks/bench_maps.py``).

Two cases on every commune of France (34,875): the shipped territories (3 CPTS, so the gap layer
covers almost everything) and the synthetic national territories of ``synthetic.py`` (about 830
CPTS of all statuses, gaps and overlaps). Fails if a page reaches the 15 MB budget.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import synthetic_territories

from cpts_geo import load_communes
from cpts_geo.maps import coverage_map, map_html

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 15_000_000


def _cases(communes: pd.DataFrame) -> dict[str, pd.DataFrame]:
    seeds = pd.read_csv(ROOT / "data" / "territories" / "cpts_seeds.csv", dtype=str,
                        keep_default_na=False)
    return {"national_seeds": seeds[["cpts", "insee", "status"]],
            "national_synthetic": synthetic_territories(communes)}


def main() -> int:
    communes = load_communes()
    failed = False
    for name, territories in _cases(communes).items():
        for assets in ("inline", "assets/"):
            t0 = time.perf_counter()
            m = coverage_map(communes, territories, title="CPTS : couverture nationale")
            page = map_html(m, assets=assets)
            seconds = time.perf_counter() - t0
            size = len(page.encode("utf-8"))
            failed |= size >= BUDGET
            print(json.dumps({"case": name, "assets": assets, "bytes": size,
                              "seconds": round(seconds, 2), "budget_ok": size < BUDGET}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
