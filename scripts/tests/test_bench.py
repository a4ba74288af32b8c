import contextlib
import io
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest
from pathlib import Path
from unittest import mock

from synthetic import SCRIPTS

import bench
from workloads import blocking_stall

FAKE = SCRIPTS / "tests" / "fake_concbench.py"


class ArgumentsTest(unittest.TestCase):
    def assertRejected(self, *argv):
        with contextlib.redirect_stderr(io.StringIO()) as err, self.assertRaises(SystemExit) as caught:
            bench.parse_args(list(argv))
        self.assertEqual(caught.exception.code, 2, argv)
        self.assertIn("error:", err.getvalue())

    def test_bad_input_rejected(self):
        self.assertRejected("--workers", "0")
        self.assertRejected("--workers", "abc")
        self.assertRejected("--workers", "1,,2")
        self.assertRejected("--repetitions", "-1")
        self.assertRejected("--repetitions", "0")
        self.assertRejected("--min-time", "0")
        self.assertRejected("--min-time", "inf")
        self.assertRejected("--min-time", "nan")
        self.assertRejected("--quick", "--full")
        self.assertRejected("--bogus")

    def test_scripts_bench_checks_arguments_before_set_up(self):
        for argv, message in ((["--workers", "0"], "--workers"), (["--min-time", "inf"], "finite"),
                              (["--out", "/proc/concbench-run"], "cannot be written")):
            began = time.monotonic()
            proc = subprocess.run([str(SCRIPTS / "bench"), *argv], capture_output=True, text=True, timeout=60)
            self.assertLess(time.monotonic() - began, 5, argv)
            self.assertEqual(proc.returncode, 2, proc.stderr)
            self.assertIn(message, proc.stderr)
            self.assertNotIn("configuring and building", proc.stderr)

    def test_out_checked_before_anything_runs(self):
        tmp = Path(tempfile.mkdtemp())
        (tmp / "file").write_text("x")
        (tmp / "busy").mkdir()
        (tmp / "busy" / "notes.txt").write_text("x")
        self.assertRejected("--out", str(tmp / "file"))
        self.assertRejected("--out", str(tmp / "busy"))
        self.assertRejected("--out", "/proc/concbench-run")
        self.assertIn("exists and is not a directory", bench.out_problem(tmp / "file"))
        # An empty directory, an earlier run, or one to be made (and nothing left behind) are fine.
        (tmp / "empty").mkdir()
        (tmp / "earlier").mkdir()
        (tmp / "earlier" / "results.json").write_text("{}")
        for ok in (tmp / "empty", tmp / "earlier", tmp / "new" / "run"):
            self.assertIsNone(bench.out_problem(ok), ok)
        self.assertFalse((tmp / "new").exists())

    def test_suite_defaults_and_overrides(self):
        args = bench.parse_args(["--quick"])
        self.assertEqual((args.suite, args.min_time, args.repetitions), ("quick", 0.05, 1))
        args = bench.parse_args(["--full", "--repetitions", "2", "--workers", "4,1,2,2"])
        self.assertEqual((args.suite, args.min_time, args.repetitions), ("full", 0.5, 2))
        self.assertEqual(args.workers, [1, 2, 4])
        args = bench.parse_args([])
        self.assertEqual((args.suite, args.min_time, args.repetitions), ("default", 0.1, 3))

    def test_default_workers(self):
        self.assertEqual(bench.default_workers(1), [1])
        self.assertEqual(bench.default_workers(2), [1, 2])
        self.assertEqual(bench.default_workers(6), [1, 2, 4, 6])
        self.assertEqual(bench.default_workers(8), [1, 2, 4, 8])

    def test_flags_single_thread_models_only_first(self):
        args = bench.parse_args(["--quick", "--filter", "cpu_hash"])
        self.assertIn("--models=all", bench.concbench_flags(args, 1, first=True))
        later = bench.concbench_flags(args, 2, first=False)
        self.assertIn("--models=parallel", later)
        self.assertIn("--workers=2", later)
        self.assertIn("--benchmark_filter=cpu_hash", later)
        self.assertIn("--benchmark_min_time=0.05", later)


class ProgressTest(unittest.TestCase):
    def test_format_duration(self):
        self.assertEqual(bench.format_duration(0), "0:00")
        self.assertEqual(bench.format_duration(75.4), "1:15")
        self.assertEqual(bench.format_duration(3671), "61:11")

    def test_counts_distinct_names_and_eta(self):
        now = [100.0]
        progress = bench.Progress([{"a/x:1": 1, "a/x:2": 1}, {"b/x:1": 1, "b/x:2": 1}],
                                  start=100.0, clock=lambda: now[0])
        progress.next_run()
        self.assertIsNone(progress.line("Benchmark   Time   CPU   Iterations"))
        self.assertIsNone(progress.line("-----------------------------------"))
        now[0] = 130.0
        self.assertEqual(progress.line("a/x:1   10 ns   10 ns   100"),
                         "[1/4] a/x:1  elapsed 0:30  ETA 1:30")
        self.assertIsNone(progress.line("a/x:1   11 ns   11 ns   100"))  # second repetition
        self.assertIsNone(progress.line("a/x:1_mean   10 ns   10 ns   3"))
        self.assertIsNone(progress.line("b/x:1   10 ns   10 ns   100"))  # not this run's
        now[0] = 160.0
        self.assertEqual(progress.line("a/x:2   10 ns   10 ns   100"),
                         "[2/4] a/x:2  elapsed 1:00  ETA 1:00")
        progress.next_run()
        now[0] = 190.0
        self.assertEqual(progress.line("b/x:2   10 ns   10 ns   100"),
                         "[3/4] b/x:2  elapsed 1:30  ETA 0:30")

    def test_interleaved_repetitions_finish_late(self):
        # Five repetitions each, in random order: when the first of 100 benchmarks
        # finishes, about 0.01^(1/5) = 40% of the repetitions are done, not 1%.
        self.assertAlmostEqual(bench.repetitions_done([5] * 100, 1) / 500, 0.01 ** 0.2, places=3)
        self.assertEqual(bench.repetitions_done([5, 3], 2), 8)
        now = [0.0]
        progress = bench.Progress([{f"a/{i}": 5 for i in range(100)}], start=0.0, clock=lambda: now[0])
        progress.next_run()
        now[0] = 40.0
        self.assertTrue(progress.line("a/7  1 ns").endswith("ETA 1:00"))

    def test_a_batch_added_later_counts(self):
        progress = bench.Progress([{"a/x:1": 5}], start=0.0, clock=lambda: 10.0)
        progress.next_run()
        progress.line("a/x:1  1 ns")
        progress.add_batch({"a/x:1/repeats:9": 9})
        progress.next_run()
        self.assertEqual(progress.line("a/x:1/repeats:9  1 ns"), "[2/2] a/x:1/repeats:9  elapsed 0:10  ETA 0:00")

    def test_repetitions_from_the_name(self):
        self.assertEqual(bench.repetitions_of("b/kind:cpu/iterations:1/repeats:5/real_time", 3), 5)
        self.assertEqual(bench.repetitions_of("cpu_hash/serial/block_bytes:64", 3), 3)


class SecondPassTest(unittest.TestCase):
    """blocking_stall's second pass, planned from a first pass's results."""

    def plan(self, argv):
        from test_blocking_stall import stall_results
        data = stall_results()
        names = {bench.res.registered_name(b["name"]) for b in data["benchmarks"]}

        def listed(binary, flags):  # what concbench would list for these flags
            pattern = next(f.split("=", 1)[1] for f in flags if f.startswith("--benchmark_filter="))
            out = [n + "/iterations:1/repeats:9/process_time/real_time" for n in sorted(names)]
            return [n for n in out if re.search(pattern, n)], None

        with mock.patch.object(bench, "list_benchmarks", listed):
            return bench.second_pass(bench.parse_args(argv + ["--workers", "1,2"]), [data])

    def test_the_cells_at_each_crossover_run_again(self):
        plan = self.plan([])
        self.assertEqual([workers for workers, _, _ in plan], [1, 2])
        workers, flags, names = plan[0]
        self.assertIn(f"--benchmark_repetitions={blocking_stall.EXTRA_RUNS}", flags)
        self.assertIn("--models=all", flags)
        self.assertIn("--models=parallel", plan[1][1])
        self.assertEqual(sum(f.startswith("--benchmark_filter=") for f in flags), 1)
        threads = [n for n in names if "/event_loop/kind:cpu/offload:threads/" in n]
        self.assertEqual([bench.res.parse_name(n)["params"]["work_us"] for n in threads], [10, 100, 1000, 10000])
        # The filter names whole cells: work_us:10 matches neither work_us:100 nor work_us:1000.
        self.assertEqual(len(names), len(set(names)))
        self.assertFalse([n for n in names if "/kind:sleep/offload:processes/" in n])

    def test_none_with_quick_and_an_error_where_concbench_lists_other_cells(self):
        self.assertEqual(self.plan(["--quick"]), [])
        with mock.patch.object(bench, "list_benchmarks", lambda binary, flags: ([], "no match")):
            from test_blocking_stall import stall_results
            with self.assertRaisesRegex(RuntimeError, "second pass.*no match"):
                bench.second_pass(bench.parse_args(["--workers", "1"]), [stall_results()])


class HelpersTest(unittest.TestCase):
    def test_describe_status(self):
        self.assertEqual(bench.describe_status(1), "exited with status 1")
        self.assertEqual(bench.describe_status(-9), "was killed by signal 9 (SIGKILL)")

    def test_parse_openssl_speed(self):
        text = ("The 'numbers' are in 1000s of bytes per second processed.\n"
                "type          16384 bytes\nsha256         1375584.26k\n")
        self.assertAlmostEqual(bench.parse_openssl_speed(text), 1375584260.0)
        self.assertIsNone(bench.parse_openssl_speed(""))

    def test_merge_two_runs(self):
        first = {"context": {"workers": "1", "suite": "quick"}, "benchmarks": [{"name": "a"}]}
        second = {"context": {"workers": "2", "suite": "quick"}, "benchmarks": [{"name": "b"}, {"name": "c"}]}
        merged = bench.merge_runs([first, None, second], [1, 2], ["scripts/bench"], {"p": 1.0})
        self.assertEqual(merged["context"], {"workers": "1,2", "suite": "quick"})
        self.assertEqual([r["workers"] for r in merged["runs"]], ["1", "2"])
        self.assertEqual([b["name"] for b in merged["benchmarks"]], ["a", "b", "c"])
        self.assertEqual(merged["peers"], {"p": 1.0})
        self.assertEqual(merged["command"], ["scripts/bench"])
        self.assertEqual(first["context"]["workers"], "1")  # input left alone

    def test_truncated_json_keeps_finished_entries(self):
        whole = json.dumps({"context": {}, "benchmarks": [{"name": "a"}, {"name": "b"}]}, indent=2)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, "r.json")
            path.write_text(whole[:whole.rindex('"b"')])
            self.assertEqual(bench.load_run_json(path)["benchmarks"], [{"name": "a"}])
            self.assertIsNone(bench.load_run_json(Path(tmp, "missing.json")))

    def test_run_dir_numbering_and_latest_link(self):
        with tempfile.TemporaryDirectory() as tmp:
            first = bench.new_run_dir(tmp, "2025-01-01", "host")
            self.assertEqual(first.name, "2025-01-01-host")
            first.mkdir(parents=True)
            second = bench.new_run_dir(tmp, "2025-01-01", "host")
            self.assertEqual(second.name, "2025-01-01-host-2")
            second.mkdir()
            bench.point_latest(tmp, first)
            bench.point_latest(tmp, second)
            self.assertEqual(os.readlink(Path(tmp, "latest")), "runs/2025-01-01-host-2")


class EndToEndTest(unittest.TestCase):
    """bench.main against a fake concbench: runs, merging, exit status, report."""

    def run_main(self, *argv, env=None):
        out = Path(tempfile.mkdtemp()) / "run"
        with mock.patch.dict(os.environ, env or {}), \
                mock.patch.object(bench, "openssl_sha256_16k", return_value=2e8), \
                contextlib.redirect_stderr(io.StringIO()) as err:
            status = bench.main(["--quick", "--workers", "1,2", "--concbench", str(FAKE),
                                 "--out", str(out), *argv])
        return status, out, err.getvalue()

    def test_runs_each_worker_count_and_reports(self):
        status, out, err = self.run_main()
        self.assertEqual(status, 0, err)
        data = json.loads((out / "results.json").read_text())
        self.assertEqual(data["context"]["workers"], "1,2")
        self.assertEqual(len(data["runs"]), 2)
        self.assertEqual(len(data["benchmarks"]), 14 + 8)  # all models at 1, parallel ones at 2
        self.assertEqual(data["peers"]["openssl_sha256_16k_bytes_per_s"], 2e8)
        self.assertIn("[22/22] ", err)
        self.assertTrue((out / "REPORT.md").is_file())

    def test_sigterm_keeps_what_finished_and_lists_the_rest(self):
        status, out, err = self.run_main(env={"FAKE_CONCBENCH_STOP_PARENT": "1"})
        self.assertEqual(status, 128 + signal.SIGTERM, err)
        self.assertNotIn("Traceback", err)
        data = json.loads((out / "results.json").read_text())
        self.assertEqual(len(data["benchmarks"]), 2)  # what finished before the signal
        self.assertEqual(len(data["missing"]), 22 - 2)  # the rest, the workers=2 run included
        report_head = (out / "REPORT.md").read_text().split("## Answers")[0].split("## Environment")[0]
        self.assertIn("**This run was stopped before the end: 20 benchmarks did not run**", report_head)
        self.assertIn("error: stopped by SIGTERM: 20 of 22 benchmarks missing", err)
        self.assertEqual(signal.getsignal(signal.SIGTERM), signal.SIG_DFL)  # handlers restored

    def test_failed_run_still_written_and_exit_nonzero(self):
        status, out, err = self.run_main(env={"FAKE_CONCBENCH_FAIL": "2"})
        self.assertEqual(status, 1)
        self.assertIn("error: concbench --workers=2 exited with status 1", err)
        self.assertIn("result differs from reference", (out / "REPORT.md").read_text())

    def test_filter_matching_only_single_thread_models(self):
        status, out, err = self.run_main("--filter", "serial")
        self.assertEqual(status, 0, err)
        self.assertIn("nothing to run with workers=2", err)

    def test_filter_matching_nothing(self):
        status, _, err = self.run_main("--filter", "no_such_benchmark")
        self.assertEqual(status, 1)
        self.assertIn("error:", err)

    def test_missing_binary(self):
        with contextlib.redirect_stderr(io.StringIO()) as err:
            status = bench.main(["--concbench", "/nonexistent/concbench"])
        self.assertEqual(status, 1)
        self.assertIn("concbench binary not found", err.getvalue())


if __name__ == "__main__":
    unittest.main()
