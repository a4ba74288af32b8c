"""concbench's command line: bad input gets a clear message and a non-zero exit.

Run by CTest with the binary's path in CONCBENCH.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

CONCBENCH = os.environ["CONCBENCH"]
SERVER = os.path.join(os.path.dirname(CONCBENCH), "concbench-server")
# A short fan_out cell of the quick suite: 1000 requests at delay 0.
SHORT_FAN_OUT = "--benchmark_filter=^fan_out/serial/group:settled/n:1000/k:10/delay_us:0/bytes:65536/"
# The headline cell: about a second.
LONG_FAN_OUT = "--benchmark_filter=^fan_out/event_loop/group:settled/n:10000/k:100/delay_us:10000/"


def servers_of(pid):
    """The concbench-server children of process pid (other tests may run servers of
    their own at the same time, so only the children count)."""
    r = subprocess.run(["pgrep", "-P", str(pid), "-f", SERVER], capture_output=True, text=True)
    return set(r.stdout.split())


def alive(pids):
    return {p for p in pids if os.path.exists(f"/proc/{p}") and "concbench-server" in _cmdline(p)}


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def start_and_find_server(args):
    """Starts concbench with args and waits until its child server runs: (process, server pids)."""
    child = subprocess.Popen([CONCBENCH, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    found = set()
    while not found and time.monotonic() < deadline and child.poll() is None:
        found = servers_of(child.pid)
        time.sleep(0.02)
    return child, found


def gone_within(pids, seconds):
    deadline = time.monotonic() + seconds
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pids)


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
            ("--benchmark_min_time=inf", "--benchmark_min_time must be a finite number of seconds above 0"),
            ("--benchmark_min_time=nan", "--benchmark_min_time must be a finite number of seconds above 0"),
            ("--benchmark_min_time=0", "--benchmark_min_time must be a finite number of seconds above 0"),
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
        # The peers in other languages are listed where their toolchains are installed.
        models = {n.split("/")[1] for n in names} - {"peer_asyncio", "peer_go", "peer_node"}
        # wrk is fan_out's peer, labelled as such: the limit line at delay 0; producer_consumer
        # adds a thread-based variant and two labelled baselines.
        self.assertEqual(models, {"serial", "event_loop", "fibers", "fibers_mt", "thread_pool", "process_pool", "wrk",
                                  "threads_queue", "moodycamel", "spsc_lockfree"})
        self.assertIn("cpu_hash/thread_pool/block_bytes:16384/grain:8/ship:none/workers:3", " ".join(names))
        self.assertIn("cpu_hash/serial/block_bytes:16384/grain:8/ship:none/workers:1", " ".join(names))
        self.assertIn("producer_consumer/thread_pool/p:1/c:pool/q:64/work_ns:0/workers:3/", " ".join(names))
        self.assertIn("producer_consumer/fibers_mt/p:4/c:4/q:1/work_ns:0/workers:3/", " ".join(names))
        spsc = [n for n in names if n.startswith("producer_consumer/spsc_lockfree/")]
        self.assertTrue(spsc and all("/p:1/c:1/" in n for n in spsc), spsc)

    def test_parallel_models_only(self):
        r = run("--workers=2", "--suite=quick", "--models=parallel", "--benchmark_list_tests=true")
        self.assertEqual(r.returncode, 0, r.stderr)
        models = {n.split("/")[1] for n in r.stdout.split()}
        self.assertEqual(models, {"fibers_mt", "thread_pool", "process_pool"})


def stat_fields(pid):
    """The fields of /proc/PID/stat after the command's name, its state first, or
    None once the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds(pid):
    fields = stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") if fields else 0


def sleeping(pid):
    fields = stat_fields(pid)
    return bool(fields) and fields[0] == "S"


class ProcessPoolWorkers(unittest.TestCase):
    def kill_the_worker_in_a_cell(self, cell, when):
        """Runs cell with one worker, kills the worker once it has hashed a while and
        when(pid) holds, and returns (worker, output, exit status)."""
        child = subprocess.Popen([CONCBENCH, "--workers=1", "--benchmark_min_time=3", f"--benchmark_filter=^{cell}"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline, worker = time.monotonic() + 60, None
            while worker is None and time.monotonic() < deadline and child.poll() is None:
                spawners = subprocess.run(["pgrep", "-P", str(child.pid)], capture_output=True, text=True).stdout
                workers = [w for s in spawners.split()
                           for w in subprocess.run(["pgrep", "-P", s], capture_output=True, text=True).stdout.split()]
                # Past 0.2 s of CPU the worker hashes for the cell, not for calibration.
                if len(workers) == 1 and cpu_seconds(workers[0]) > 0.2 and when(workers[0]):
                    worker = workers[0]
                    os.kill(int(worker), signal.SIGKILL)
            self.assertIsNotNone(worker, "no worker to kill")
            out, err = child.communicate(timeout=120)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        return worker, out + err, child.returncode

    def test_a_worker_that_dies_fails_its_cell(self):
        # Killed in a task, the task fails; killed between tasks, none does (they run
        # again) and the harness tells from the replacement. Long tasks make the
        # first likely, short ones and a sleeping worker the second; either may happen.
        for cell, when in [("cpu_hash/process_pool/block_bytes:1048576/grain:1/ship:seed/", lambda pid: True),
                           ("cpu_hash/process_pool/block_bytes:16384/grain:8/ship:seed/", sleeping)]:
            with self.subTest(cell=cell):
                worker, output, status = self.kill_the_worker_in_a_cell(cell, when)
                self.assertRegex(output, f"worker process {worker} was killed by signal 9|"
                                         "a worker process died during the run and was replaced")
                self.assertEqual(status, 1, output)


class FanOutServer(unittest.TestCase):
    def test_a_server_that_is_down_is_a_clear_error_at_once(self):
        port = free_port()
        start = time.monotonic()
        r = run("--workers=1", "--suite=quick", f"--target=http://127.0.0.1:{port}", SHORT_FAN_OUT)
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"cannot reach the server at 127.0.0.1:{port}", r.stdout + r.stderr)
        self.assertLess(time.monotonic() - start, 60)  # calibration included; the cell itself fails at once

    def test_the_child_server_is_stopped_at_exit(self):
        child, found = start_and_find_server(["--workers=1", LONG_FAN_OUT])
        self.assertEqual(child.wait(timeout=120), 0)
        self.assertTrue(found, "concbench never started its server")
        self.assertTrue(gone_within(found, 1), "the server outlived concbench")

    def test_concbench_dies_with_its_parent(self):
        # A parent that starts a long run, says its pid, and is then killed outright.
        starter = subprocess.Popen(
            ["python3", "-c", "import subprocess, sys, time; p = subprocess.Popen(sys.argv[1:], "
             "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(p.pid, flush=True); time.sleep(120)",
             CONCBENCH, "--benchmark_min_time=60", "--benchmark_filter=^cpu_hash/serial/block_bytes:16384/"],
            stdout=subprocess.PIPE, text=True)
        pid = int(starter.stdout.readline())
        try:
            time.sleep(0.5)
            self.assertTrue(os.path.exists(f"/proc/{pid}"), "concbench did not start")
        finally:
            starter.send_signal(signal.SIGKILL)
            starter.wait(timeout=30)
        deadline = time.monotonic() + 10
        while "concbench" in _cmdline(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertNotIn("concbench", _cmdline(pid), "concbench outlived its parent")

    def test_timeout_term_on_a_run_leaves_nothing_running_and_a_partial_report(self):
        out = tempfile.mkdtemp()
        bench = os.path.join(os.path.dirname(__file__), "..", "scripts", "lib", "bench.py")
        run = subprocess.Popen(["timeout", "-s", "TERM", "8", sys.executable, bench, "--concbench", CONCBENCH,
                                # Cells that mostly sleep: timing tests may run beside this one.
                                "--quick", "--workers", "1", "--filter", "^blocking_stall/(event_loop|fibers)/kind:sleep/",
                                "--out", out],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seen = set()
        out_flag = "--benchmark_out=" + os.path.join(tempfile.gettempdir(), "concbench-")  # bench.py's temp files
        while run.poll() is None:
            found = subprocess.run(["pgrep", "-f", "--", out_flag], capture_output=True, text=True).stdout.split()
            seen |= {pid for pid in found if CONCBENCH in _cmdline(pid)}
            time.sleep(0.05)
        _, err = run.communicate()
        self.assertEqual(run.returncode, 124, err)  # timeout's own status after a TERM
        self.assertTrue(seen, "concbench never ran")
        time.sleep(0.5)
        self.assertFalse([pid for pid in seen if CONCBENCH in _cmdline(pid)], "concbench outlived the run")
        with open(os.path.join(out, "REPORT.md")) as f:
            self.assertIn("This run was stopped before the end", f.read(2000))
        self.assertIn("stopped by SIGTERM", err)

    def test_a_server_that_dies_is_started_again_once(self):
        child = subprocess.Popen([CONCBENCH, "--suite=quick", "--workers=1",
                                  "--benchmark_filter=^fan_out/(event_loop|fibers)/"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        killed = set()
        try:
            for _ in range(2):  # the first server, then the one started in its place
                deadline, found = time.monotonic() + 60, set()
                while not found and time.monotonic() < deadline and child.poll() is None:
                    found = servers_of(child.pid) - killed
                    time.sleep(0.02)
                self.assertTrue(found, "no server to kill")
                time.sleep(0.3)  # past its start-up probe: a server that serves, then dies
                for pid in found:
                    os.kill(int(pid), signal.SIGKILL)
                killed |= found
            _, err = child.communicate(timeout=120)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        first, second = sorted(killed, key=int)
        self.assertIn(f"concbench-server (pid {first}) died: signal 9 (Killed); starting it again", err)
        self.assertIn(f"concbench-server (pid {second}) died: signal 9 (Killed) again; the remaining fan_out cells "
                      "fail", err)
        self.assertEqual(child.returncode, 1, err)

    def test_the_child_server_dies_with_concbench(self):
        child, found = start_and_find_server(["--workers=1", LONG_FAN_OUT])
        try:
            self.assertTrue(found, "concbench never started its server")
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
        self.assertTrue(gone_within(found, 10), "the server outlived concbench")

if __name__ == "__main__":
    unittest.main()
