"""concbench's command line: bad input gets a clear message and a non-zero exit.

Run by CTest with the binary's path in CONCBENCH.
"""
import os
import subprocess
import unittest

CONCBENCH = os.environ["CONCBENCH"]


def run(*args):
    return subprocess.run([CONCBENCH, *args], capture_output=True, text=True, timeout=120)


class CommandLine(unittest.TestCase):
    def test_unknown_flag(self):
        r = run("--no_such_flag")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unrecognized command-line flag: --no_such_flag", r.stderr)

    def test_bad_values_of_own_flags(self):
        for flag, message in [
            ("--workers=0", "--workers must be a whole number"),
            ("--workers=two", "--workers must be a whole number"),
            ("--workers", "--workers needs =VALUE"),
            ("--suite=huge", "--suite must be quick, default or full"),
            ("--models=some", "--models must be all or parallel"),
            ("--benchmark_format=xml", "--benchmark_format must be console, json or csv"),
        ]:
            with self.subTest(flag=flag):
                r = run(flag)
                self.assertEqual(r.returncode, 2)
                self.assertIn(message, r.stderr)

    def test_filter_that_matches_nothing(self):
        r = run("--workers=1", "--benchmark_filter=^no_such_benchmark$")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no benchmark matches the filter", r.stderr)

    def test_help_lists_own_and_google_benchmark_flags(self):
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--workers=N", r.stdout)
        self.assertIn("--benchmark_filter", r.stdout)

    def test_listing_names_every_model_once_per_parameter_set(self):
        r = run("--workers=3", "--suite=quick", "--benchmark_list_tests=true")
        self.assertEqual(r.returncode, 0, r.stderr)
        names = r.stdout.split()
        self.assertEqual(len(names), len(set(names)))
        models = {n.split("/")[1] for n in names}
        self.assertEqual(models, {"serial", "event_loop", "fibers", "fibers_mt", "thread_pool", "process_pool"})
        self.assertIn("cpu_hash/thread_pool/block_bytes:16384/grain:8/ship:none/workers:3", " ".join(names))
        self.assertIn("cpu_hash/serial/block_bytes:16384/grain:8/ship:none/workers:1", " ".join(names))

    def test_parallel_models_only(self):
        r = run("--workers=2", "--suite=quick", "--models=parallel", "--benchmark_list_tests=true")
        self.assertEqual(r.returncode, 0, r.stderr)
        models = {n.split("/")[1] for n in r.stdout.split()}
        self.assertEqual(models, {"fibers_mt", "thread_pool", "process_pool"})


if __name__ == "__main__":
    unittest.main()
