#!/usr/bin/env python3
"""Stands in for build/release/bench/concbench in tests: same flags, console
lines and JSON shape, made-up numbers. FAKE_CONCBENCH_FAIL=<workers> makes that
run report a failed verification and exit 1, as the real binary does;
FAKE_CONCBENCH_STOP_PARENT=<workers> makes it send SIGTERM to its parent midway."""

import json
import os
import re
import signal
import sys
import time

SINGLE = ["serial", "event_loop", "fibers"]
PARALLEL = [("fibers_mt", "none"), ("thread_pool", "none"),
            ("process_pool", "bytes"), ("process_pool", "seed")]
BLOCKS = [1024, 16384]


def stop_parent_midway(names, out):
    """As `timeout` does to scripts/bench: two benchmarks finish (the JSON streamed so
    far, its array still open), then SIGTERM reaches the parent while this one runs on."""
    entries = [{"name": n, "run_name": n, "run_type": "iteration", "iterations": 5, "real_time": 100.0,
                "cpu_time": 100.0, "time_unit": "us", "bytes_per_second": 1e8} for n in names[:2]]
    with open(out, "w") as f:
        f.write('{"context": {"workers": "1"}, "benchmarks": [\n' + ",\n".join(
            "    " + json.dumps(e).replace(", ", ",\n      ")[:-1] + "\n    }" for e in entries))
    for n in names[:2]:
        print(f"{n}  100 us  100 us  5", flush=True)
    os.kill(os.getppid(), signal.SIGTERM)
    time.sleep(60)  # until the parent passes the signal on
    sys.exit(3)


def main():
    flags = dict(arg[2:].split("=", 1) for arg in sys.argv[1:] if "=" in arg)
    workers = int(flags.get("workers", "1"))
    configs = [] if flags.get("models") == "parallel" else [(m, "none", 1) for m in SINGLE]
    configs += [(m, ship, workers) for m, ship in PARALLEL]
    names = [f"cpu_hash/{m}/block_bytes:{b}/grain:8/ship:{ship}/workers:{w}/real_time"
             for m, ship, w in configs for b in BLOCKS]
    names = [n for n in names if re.search(flags.get("benchmark_filter", ""), n)]
    if not names:
        print("Failed to match any benchmarks", file=sys.stderr)
        return 1
    if flags.get("benchmark_list_tests") == "true":
        print("\n".join(names))
        return 0
    fail = os.environ.get("FAKE_CONCBENCH_FAIL") == str(workers)
    if os.environ.get("FAKE_CONCBENCH_STOP_PARENT") == str(workers):
        stop_parent_midway(names, flags["benchmark_out"])
    entries = []
    for i, name in enumerate(names):
        rate = 1e8 * (1 + i % 3)
        if fail and i == 0:
            entries.append({"name": name, "run_name": name, "run_type": "iteration",
                            "error_occurred": True, "error_message": "result differs from reference"})
            print(f"{name}  ERROR OCCURRED: 'result differs from reference'", flush=True)
            continue
        entries.append({"name": name, "run_name": name, "run_type": "iteration", "iterations": 5,
                        "real_time": 100.0, "cpu_time": 100.0, "time_unit": "us",
                        "bytes_per_second": rate, "items_per_second": rate / 1024})
        print(f"{name}  100 us  100 us  5 bytes_per_second={rate / 1e6:.0f}M/s", flush=True)
    context = {"date": "2025-01-01T00:00:00", "num_cpus": 2, "cpu_model": "Fake CPU",
               "workers": str(workers), "suite": flags.get("suite", "default")}
    with open(flags["benchmark_out"], "w") as f:
        json.dump({"context": context, "benchmarks": entries}, f, indent=2)
    return 1 if fail else 0


if __name__ == "__main__":
    sys.exit(main())
