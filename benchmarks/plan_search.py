"""Time a full layout search of `colossus plan`: llama3-405b on 16,384 H100, sequence 8K, batch 16M tokens.

    PYTHONPATH=. python benchmarks/plan_search.py [--repeats 5]

Every repeat starts cold (the per-layer cost cache is cleared), so each one is what a user waits for.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

from colossus.plan.hardware import Cluster, get_gpu
from colossus.plan.layout import Workload
from colossus.plan.models import PRESETS
from colossus.plan.search import search
from colossus.plan.step import layer_cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    work = Workload(PRESETS["llama3-405b"], 8192, 16e6, 15e12)
    cluster = Cluster(get_gpu("h100"), 16384)
    times, result = [], None
    for _ in range(args.repeats):
        layer_cost.cache_clear()
        started = time.perf_counter()
        result = search(work, cluster)
        times.append(time.perf_counter() - started)
    best = result.plans[0]
    median = statistics.median(times)
    print(f"llama3-405b on 16,384 x H100-SXM, seq 8192, batch 16M tokens; {platform.processor() or 'cpu'}, "
          f"Python {platform.python_version()}")
    print(f"layouts evaluated: {result.evaluated:,}; fitting layouts kept: top {len(result.plans)}")
    print(f"search time: median {median:.2f} s, min {min(times):.2f} s, max {max(times):.2f} s "
          f"over {args.repeats} cold runs -> {result.evaluated / median:,.0f} layouts/s")
    print(f"best: {best.layout.describe()}: {best.tflops_per_gpu:.0f} TFLOP/s per GPU, MFU {best.mfu:.1%}, "
          f"{best.memory.total:.1f} GiB per GPU")


if __name__ == "__main__":
    main()
