"""concbench's command line: bad input gets a clear message and a non-zero exit.

Run by CTest with the binary's path in CONCBENCH.
"""
import os
import signal
import socket
import subprocess
import time
import unittest

CONCBENCH = os.environ["CONCBENCH"]
SERVER = os.path.join(os.path.dirname(CONCBENCH), "concbench-server")
# A short fan_out cell of the quick suite: 1000 requests at delay 0.
SHORT_FAN_OUT = "--benchmark_filter=^fan_out/serial/group:settled/n:1000/k:10/delay_us:0/bytes:65536/"
# The headline cell: about a second.
LONG_FAN_OUT = "--benchmark_filter=^fan_out/event_loop/group:settled/n:10000/k:100/delay_us:10000/"


def servers():
    """Running concbench-server processes started from this build."""
    r = subprocess.run(["pgrep", "-f", SERVER], capture_output=True, text=True)
    return set(r.stdout.split())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
            ("--target=127.0.0.1:80", "--target must be http://HOST:PORT"),
            ("--target=http://localhost:80", "--target must be http://HOST:PORT"),
            ("--target=http://127.0.0.1:99999", "--target must be http://HOST:PORT"),
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
        # wrk is fan_out's peer, labelled as such: the limit line at delay 0.
        self.assertEqual(models, {"serial", "event_loop", "fibers", "fibers_mt", "thread_pool", "process_pool", "wrk"})
        self.assertIn("cpu_hash/thread_pool/block_bytes:16384/grain:8/ship:none/workers:3", " ".join(names))
        self.assertIn("cpu_hash/serial/block_bytes:16384/grain:8/ship:none/workers:1", " ".join(names))

    def test_parallel_models_only(self):
        r = run("--workers=2", "--suite=quick", "--models=parallel", "--benchmark_list_tests=true")
        self.assertEqual(r.returncode, 0, r.stderr)
        models = {n.split("/")[1] for n in r.stdout.split()}
        self.assertEqual(models, {"fibers_mt", "thread_pool", "process_pool"})


class FanOutServer(unittest.TestCase):
    def test_a_server_that_is_down_is_a_clear_error_at_once(self):
        port = free_port()
        start = time.monotonic()
        r = run("--workers=1", "--suite=quick", f"--target=http://127.0.0.1:{port}", SHORT_FAN_OUT)
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"cannot reach the server at 127.0.0.1:{port}", r.stdout + r.stderr)
        self.assertLess(time.monotonic() - start, 60)  # calibration included; the cell itself fails at once

    def test_the_child_server_is_stopped_at_exit(self):
        before = servers()
        r = run("--workers=1", "--suite=quick", SHORT_FAN_OUT)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(servers(), before)

    def test_the_child_server_dies_with_concbench(self):
        before = servers()
        child = subprocess.Popen([CONCBENCH, "--workers=1", LONG_FAN_OUT],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while servers() == before and time.monotonic() < deadline and child.poll() is None:
                time.sleep(0.05)
            self.assertNotEqual(servers(), before, "concbench never started its server")
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
        deadline = time.monotonic() + 10
        while servers() != before and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(servers(), before, "the server outlived concbench")


if __name__ == "__main__":
    unittest.main()
