import copy
import io
import json
import tempfile
import unittest
from contextlib import redirect_stderr
from pathlib import Path

from synthetic import cpu_hash_results
from test_blocking_stall import stall_results
from test_fan_out import fan_results
from test_producer_consumer import pc_results

import compare


def write_run(data):
    run = Path(tempfile.mkdtemp())
    (run / "results.json").write_text(json.dumps(data))
    return run


def slower(data, factor, prefix):
    """data with every throughput and light p99 of benchmarks under prefix scaled by factor."""
    data = copy.deepcopy(data)
    for b in data["benchmarks"]:
        if b["name"].startswith(prefix):
            for field in ("bytes_per_second", "items_per_second"):
                if field in b:
                    b[field] /= factor
            if "heavy_p50_us" in b and "offload:inline" not in b["name"]:
                b["heavy_p50_us"] += 100
    return data


def both(a, b):
    data = copy.deepcopy(a)
    data["benchmarks"] += copy.deepcopy(b["benchmarks"])
    return data


def cpu_hash_repeated(scale=1.0):
    """cpu_hash_results with five repetitions of every entry, ±2% apart."""
    data = cpu_hash_results()
    repeated = []
    for b in data["benchmarks"]:
        for i, f in enumerate((0.98, 0.99, 1.0, 1.01, 1.02)):
            entry = dict(b, repetition_index=i, repetitions=5)
            if "bytes_per_second" in entry:
                entry["bytes_per_second"] *= f * scale
            repeated.append(entry)
    data["benchmarks"] = repeated
    return data


class CompareTest(unittest.TestCase):
    def run_compare(self, a, b, *extra):
        out = Path(tempfile.mkdtemp()) / "cmp"
        err = io.StringIO()
        with redirect_stderr(err):
            status = compare.main([str(write_run(a)), str(write_run(b)), "--out", str(out), *extra])
        text = (out / compare.COMPARE_FILE).read_text() if status == 0 else None
        return status, text, err.getvalue(), out

    def test_same_run_has_ratio_one_and_no_difference(self):
        data = both(cpu_hash_repeated(), stall_results())
        status, text, _, out = self.run_compare(data, data)
        self.assertEqual(status, 0)
        self.assertIn("| serial, 16 KiB blocks, 1 workers: throughput | 200 MB/s | 200 MB/s | 1 | "
                      "no significant difference (p = 1) |", text)
        self.assertIn("| event_loop, kind:cpu: threads pays off from | 100 µs (100 µs) | 100 µs (100 µs) | 1 |", text)
        self.assertIn("## Environment", text)
        self.assertTrue((out / "plots" / "compare_cpu_hash.png").is_file())

    def test_a_slower_run_is_significantly_worse(self):
        a = both(cpu_hash_repeated(), stall_results())
        b = both(cpu_hash_repeated(scale=0.5), stall_results())
        _, text, _, _ = self.run_compare(a, b)
        self.assertIn("| serial, 16 KiB blocks, 1 workers: throughput | 200 MB/s | 100 MB/s | 0.5 | "
                      "B worse, significant (p = 0.0079) |", text)
        b = both(cpu_hash_repeated(scale=2), stall_results())
        _, text, _, _ = self.run_compare(a, b)
        self.assertIn("| 200 MB/s | 400 MB/s | 2 | B better, significant (p = 0.0079) |", text)

    def test_an_offload_that_costs_more_is_worse(self):
        a = stall_results()
        b = slower(a, 1, "blocking_stall/event_loop/kind:cpu")
        _, text, _, _ = self.run_compare(a, b)
        self.assertIn("| event_loop, kind:cpu: one offload to threads costs | +11 µs (+8 µs to +14 µs) | "
                      "+111 µs (+108 µs to +114 µs) | 10.1 | B worse, significant (p = 4.1e-05) |", text)

    def test_single_runs_are_not_tested(self):
        data = cpu_hash_results()
        _, text, _, _ = self.run_compare(data, data)
        self.assertIn("too few runs to test (1 and 1)", text)

    def test_machines_of_different_sizes_meet_at_common_counts_and_at_their_largest(self):
        a = cpu_hash_repeated()
        b = cpu_hash_repeated()
        for entry in b["benchmarks"]:
            if "workers:2/" in entry["name"]:
                for key in ("name", "run_name"):
                    entry[key] = entry[key].replace("workers:2/", "workers:4/")
        _, text, _, _ = self.run_compare(a, b)
        self.assertIn("| thread_pool, 16 KiB blocks, 1 workers: throughput |", text)
        self.assertNotIn("thread_pool, 16 KiB blocks, 2 workers", text)
        self.assertRegex(text, r"\| thread_pool, 16 KiB blocks: efficiency at its most workers \| "
                               r"[^|]+ \(2 workers\) \| [^|]+ \(4 workers\) \|")

    def test_environment_differences_are_marked(self):
        a = cpu_hash_results()
        b = copy.deepcopy(a)
        b["context"]["cores"] = "16"
        _, text, _, _ = self.run_compare(a, b)
        self.assertIn("| cores ≠ | 2 | 16 |", text)
        self.assertIn("| CPU | Test CPU | Test CPU |", text)

    def test_workload_in_one_run_only(self):
        _, text, _, _ = self.run_compare(cpu_hash_results(), both(cpu_hash_results(), stall_results()))
        self.assertIn("Only B ran blocking_stall, or the two share no figure.", text)

    def test_missing_and_malformed_runs_fail_clearly(self):
        good = write_run(cpu_hash_results())
        bad = Path(tempfile.mkdtemp())
        (bad / "results.json").write_text("{not json")
        listed = Path(tempfile.mkdtemp())
        (listed / "results.json").write_text(json.dumps(dict(cpu_hash_results(), context=[1, 2])))
        for args, message in (([str(good), "/nonexistent/run"], "/nonexistent/run is not a directory"),
                              ([str(good), str(bad)], "is not valid JSON"),
                              ([str(good), str(listed)], '"context" is not an object'),
                              ([str(good), str(Path(tempfile.mkdtemp()))], "results.json does not exist")):
            err = io.StringIO()
            with redirect_stderr(err):
                self.assertEqual(compare.main(args + ["--out", tempfile.mkdtemp()]), 1)
            self.assertIn(message, err.getvalue())
            self.assertNotIn("Traceback", err.getvalue())

    def test_out_that_is_a_file_fails_clearly(self):
        good = write_run(cpu_hash_results())
        file = Path(tempfile.mkdtemp()) / "file"
        file.write_text("x")
        err = io.StringIO()
        with redirect_stderr(err):
            self.assertEqual(compare.main([str(good), str(good), "--out", str(file)]), 1)
        self.assertIn("exists and is not a directory", err.getvalue())

    def test_every_workload_states_its_headline_figures(self):
        data = both(both(cpu_hash_results(), stall_results()), both(fan_results(), pc_results()))
        _, text, _, out = self.run_compare(data, data)
        for row in ("| event_loop: wall time ÷ ideal, N=10000, K=100, delay 10 ms | 1.02× | 1.02× | 1 |",
                    "| event_loop: requests/s ÷ wrk's, K=64, delay 0 | 0.92× | 0.92× | 1 |",
                    "| event_loop, 1x1, Q=64: messages/s | 12M msg/s | 12M msg/s | 1 | too few runs to test (3 "
                    "and 3) |"):
            self.assertIn(row, text)
        for workload in ("cpu_hash", "blocking_stall", "fan_out", "producer_consumer"):
            self.assertIn(f"## {workload}", text)
            self.assertTrue((out / "plots" / f"compare_{workload}.png").is_file(), workload)

    def test_format_value(self):
        self.assertEqual([compare.format_value(v, u) for v, u in
                          ((10000, "µs"), (2.5e6, "µs"), (1.5e9, "B/s"), (2.34e5, "msg/s"), (0.953, "×"), (None, "×"))],
                         ["10 ms", "2.5 s", "1.5 GB/s", "234k msg/s", "0.953×", "–"])


if __name__ == "__main__":
    unittest.main()
