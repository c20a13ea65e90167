"""Publish the whole site on the national synthetic data and report time, memory and weight.

Run: ``python benchmarks/bench_site.py [--jobs N] [--memory] [--out DIR]``

Data as ``run.py --publish``: the 34,875 communes of the bundle and about 830 synthetic CPTS
(``synthetic.py``). Prints the steps' timings, the peak memory, the site's weight and file count
(and the heaviest kinds of files), with the load average (the machine may be shared).

Memory: ``peak_mib`` is this process's own peak (``ru_maxrss``). With ``--memory``, a separate
process samples ``/proc`` (Linux) for ``peak_sum_rss_mib``, the peak of the sum of the resident
sizes of this process and its page workers (``--jobs``), every 50 ms (pages shared after a fork
count once per process there, so it overstates what they use together), and for
``peak_sum_pss_mib``, the proportional set size (shared pages split between their processes:
what they use), every second; the sampling slows the run (reading PSS walks the processes'
page tables), so time it without ``--memory``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import synthetic_territories

import cpts_geo

#: Run in a separate process: samples the sum of the RSS and PSS of a process and its children
#: until its standard input is closed, then prints the peaks in MiB.
SAMPLER = r"""
import os, select, sys
pid = int(sys.argv[1])

def tree(p):
    out = [p]
    try:
        for t in os.listdir(f"/proc/{p}/task"):
            with open(f"/proc/{p}/task/{t}/children") as f:
                for c in f.read().split():
                    out += tree(int(c))
    except OSError:
        pass
    return out

def kib(p, path, key):
    try:
        with open(f"/proc/{p}/{path}") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0

rss = pss = 0
n = 0
while not select.select([sys.stdin], [], [], 0.05)[0]:
    procs = tree(pid)
    rss = max(rss, sum(kib(p, "status", "VmRSS:") for p in procs))
    if n % 20 == 0:  # walking the page tables costs the kernel (and the process) much more
        pss = max(pss, sum(kib(p, "smaps_rollup", "Pss:") for p in procs))
    n += 1
print(round(rss / 1024), round(pss / 1024))
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", help="publish there (default: a temporary folder)")
    parser.add_argument("--departements", nargs="*", help="only these pages")
    parser.add_argument("--jobs", type=int, default=1, help="processes building the pages")
    parser.add_argument("--memory", action="store_true",
                        help="sample the memory of the processes together (slows the run: "
                        "time it without)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from cpts_geo.publishing.site import publish

    tmp = Path(args.out or tempfile.mkdtemp())
    tmp.mkdir(parents=True, exist_ok=True)
    csv_path = tmp / "territories.csv"
    if not csv_path.exists():
        synthetic_territories(cpts_geo.load_communes()).to_csv(csv_path, index=False)
    sampler = (subprocess.Popen([sys.executable, "-c", SAMPLER, str(os.getpid())],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               if args.memory and sys.platform.startswith("linux") else None)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    r = publish(csv_path, tmp / "site", progress=False, departements=args.departements,
                jobs=args.jobs)
    wall = time.perf_counter() - t0
    sum_rss = sum_pss = None
    if sampler is not None:
        sum_rss, sum_pss = map(int, sampler.communicate("")[0].split())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    files = [f for f in (tmp / "site").resolve().rglob("*") if f.is_file()]
    weight = sum(f.stat().st_size for f in files)
    by_kind: Counter[str] = Counter()
    for f in files:
        kind = "".join(f.suffixes[-2:]) if f.name.endswith((".gz", ".json")) else f.suffix
        by_kind[kind] += f.stat().st_size
    print(json.dumps({"seconds": r.seconds, "wall_s": round(wall, 1),
                      "pages": len(r.departements), "jobs": args.jobs,
                      "peak_mib": round(peak), "peak_sum_rss_mib": sum_rss,
                      "peak_sum_pss_mib": sum_pss,
                      "site_mb": round(weight / 1e6, 1), "files": len(files),
                      "timings": r.timings,
                      "load_before_after": [round(load0, 2), round(os.getloadavg()[0], 2)],
                      "weight_mb_by_kind": {k: round(v / 1e6, 1)
                                            for k, v in by_kind.most_common(8)}}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
