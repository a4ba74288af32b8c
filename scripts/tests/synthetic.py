"""Hand-made Google Benchmark entries, so tests know every number in advance."""

import json
import sys
import tempfile
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SCRIPTS / "lib"))

MB = 1e6


def cpu_hash_name(model, block, workers, ship="none", grain=8):
    return f"cpu_hash/{model}/block_bytes:{block}/grain:{grain}/ship:{ship}/workers:{workers}/process_time/real_time"


def entry(name, bytes_per_second, real_time=1000.0, cpu_time=1000.0, time_unit="ns", **extra):
    return {"name": name, "run_name": name, "run_type": "iteration", "repetitions": 1,
            "repetition_index": 0, "iterations": 10, "real_time": real_time,
            "cpu_time": cpu_time, "time_unit": time_unit,
            "bytes_per_second": bytes_per_second, "items_per_second": bytes_per_second / 1024,
            **extra}


def error_entry(name, message):
    return {"name": name, "run_name": name, "run_type": "iteration", "error_occurred": True,
            "error_message": message, "iterations": 0, "real_time": 0, "cpu_time": 0,
            "time_unit": "ns"}


def cpu_hash_results():
    """serial 100 MB/s at 1 KiB and 200 MB/s at 16 KiB; see test_cpu_hash for
    the numbers that follow from these. No pipe round trip across cores, as on a
    machine where it was not measured."""
    n = cpu_hash_name
    benchmarks = [
        entry(n("serial", 1024, 1), 100 * MB),
        entry(n("serial", 16384, 1), 200 * MB),
        entry(n("event_loop", 1024, 1), 80 * MB),
        entry(n("event_loop", 16384, 1), 198 * MB),
        entry(n("thread_pool", 1024, 1), 90 * MB),
        entry(n("thread_pool", 16384, 1), 190 * MB),
        entry(n("thread_pool", 1024, 2), 150 * MB, real_time=1000, cpu_time=500),
        entry(n("thread_pool", 16384, 2), 380 * MB),
        # A slower grain of the same configuration: the summary keeps the best.
        entry(n("thread_pool", 16384, 2, grain=1), 300 * MB),
        entry(n("process_pool", 16384, 2, ship="bytes"), 260 * MB),
        entry(n("process_pool", 16384, 2, ship="seed"), 400 * MB),
        entry(n("process_pool", 1024, 2, ship="bytes"), 95 * MB),
        entry(n("process_pool", 1024, 2, ship="seed"), 100 * MB),
        error_entry(n("fibers_mt", 16384, 2), "result differs from reference"),
    ]
    return {
        "command": ["scripts/bench", "--quick"],
        "context": {"date": "2025-01-01T00:00:00", "cpu_model": "Test CPU", "cores": "2",
                    "workers": "1,2", "compiler": "g++ 12", "calib_post_ns": "50",
                    "calib_thread_rtt_us": "28.5", "calib_thread_rtt_cross_core_us": "75",
                    "calib_pipe_rtt_us": "40", "calib_thread_pool_rtt_us": "31",
                    "calib_process_pool_rtt_us": "90", "calib_sha256_16k_bytes_per_s": "210000000",
                    "process_worker_policy": "SCHED_IDLE"},
        "runs": [],
        "peers": {"openssl_sha256_16k_bytes_per_s": 250 * MB},
        "benchmarks": benchmarks,
    }


class ReportOutput:
    """For a workload's unittest.TestCase: writes the class's results() through
    report.generate once, as scripts/plot runs it, and checks what it drew."""

    @staticmethod
    def results():
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        import report  # after sys.path has scripts/lib
        cls.dir = Path(tempfile.mkdtemp())
        (cls.dir / "results.json").write_text(json.dumps(cls.results()))
        cls.written = report.generate(cls.dir)
        cls.report = (cls.dir / "REPORT.md").read_text()

    def assert_plots_written(self, stems):
        for stem in stems:
            self.assertEqual((self.dir / "plots" / f"{stem}.png").read_bytes()[:8], b"\x89PNG\r\n\x1a\n")
            self.assertIn("<svg", (self.dir / "plots" / f"{stem}.svg").read_text())
            self.assertIn(f"](plots/{stem}.png)", self.report)

    def assert_labels(self, stem, labels):
        svg = (self.dir / "plots" / f"{stem}.svg").read_text()  # text is drawn as paths, named in comments
        for label in labels:
            self.assertTrue(f"<!-- {label} -->" in svg, f"{label!r} not in {stem}.svg")
