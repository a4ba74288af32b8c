"""scripts/plot as users run it: a subprocess, judged by exit status, stderr and files."""

import json
import subprocess
import tempfile
import unittest
from pathlib import Path

from synthetic import SCRIPTS, cpu_hash_results


def run_plot(*args):
    return subprocess.run([str(SCRIPTS / "plot"), *map(str, args)], capture_output=True, text=True)


class PlotErrorsTest(unittest.TestCase):
    def setUp(self):
        self.dir = Path(tempfile.mkdtemp())

    def assertFailsClearly(self, proc, fragment):
        self.assertEqual(proc.returncode, 1, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, proc.stderr)
        self.assertTrue(lines[0].startswith("error: "), lines[0])
        self.assertIn(fragment, lines[0])

    def test_missing_dir(self):
        self.assertFailsClearly(run_plot(self.dir / "nope"), "not a directory")

    def test_missing_file(self):
        self.assertFailsClearly(run_plot(self.dir), "does not exist")

    def test_malformed_json(self):
        (self.dir / "results.json").write_text('{"benchmarks": [')
        self.assertFailsClearly(run_plot(self.dir), "not valid JSON")

    def test_json_without_benchmarks(self):
        (self.dir / "results.json").write_text(json.dumps({"context": {}}))
        self.assertFailsClearly(run_plot(self.dir), '"benchmarks"')

    def test_context_that_is_not_an_object(self):
        (self.dir / "results.json").write_text(json.dumps({"context": [1], "benchmarks": []}))
        self.assertFailsClearly(run_plot(self.dir), '"context" is not an object')

    def test_plots_that_is_a_file(self):
        (self.dir / "results.json").write_text(json.dumps(cpu_hash_results()))
        (self.dir / "plots").write_text("x")
        self.assertFailsClearly(run_plot(self.dir), "cannot write")

    def test_no_argument_is_usage_error(self):
        self.assertEqual(run_plot().returncode, 2)


class PlotOutputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = Path(tempfile.mkdtemp())
        data = cpu_hash_results()
        data["benchmarks"].append({"name": "unreported_demo/event_loop/n:10", "run_name": "unreported_demo/event_loop/n:10",
                                   "error_occurred": True, "error_message": "timeout"})
        (cls.dir / "results.json").write_text(json.dumps(data))
        cls.proc = run_plot(cls.dir)

    def test_succeeds(self):
        self.assertEqual(self.proc.returncode, 0, self.proc.stderr)

    def test_plots_written(self):
        for stem in ("cpu_hash_throughput_vs_block", "cpu_hash_scaling", "cpu_hash_efficiency"):
            self.assertEqual((self.dir / "plots" / f"{stem}.png").read_bytes()[:8], b"\x89PNG\r\n\x1a\n")
            self.assertIn("<svg", (self.dir / "plots" / f"{stem}.svg").read_text())

    def test_summary_written(self):
        summary = json.loads((self.dir / "summary.json").read_text())
        self.assertAlmostEqual(summary["workloads"]["cpu_hash"]["ship_cost"]["16384"]["2"], 0.35)

    def test_report_written(self):
        report = (self.dir / "REPORT.md").read_text()
        for expected in ("# concbench report", "`scripts/bench --quick`", "| CPU | Test CPU |",
                         "| thread round trip | 28.5 µs |", "| thread round trip across cores | 75 µs |",
                         "| pipe round trip | 40 µs |", "| pipe round trip across cores | n/a |",
                         "| thread pool round trip | 31 µs |", "| process pool round trip | 90 µs |",
                         "| process workers' scheduling policy | SCHED_IDLE |",
                         "## cpu_hash",
                         "](plots/cpu_hash_scaling.png)", "### Conclusions",
                         "result differs from reference",
                         "unreported_demo: 1 runs, 1 errors", "timeout"):
            self.assertIn(expected, report)
        self.assertNotIn("/tmp", report)  # plot paths are relative


if __name__ == "__main__":
    unittest.main()
