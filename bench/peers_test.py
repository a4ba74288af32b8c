"""The peers (peers/) on the cases the C++ clients pass, and concbench's checks of
what a peer replies.

Each peer's fan_out runs against concbench-server and is checked here against the
server's contract (server_test.py's re-implementation): right bodies, failures where
ids draw them, timeouts, fail-fast, and a server that is down. Its blocking_stall
runs through concbench, which verifies every run against reference(). A peer whose
toolchain is missing is skipped with the reason. A stand-in peer that lies shows that
concbench turns a wrong reply into a failed cell with a message, never a number.

Run by CTest with CONCBENCH, CONCBENCH_SERVER and CONCBENCH_PEER_GO set.
"""
import hashlib
import os
import shutil
import subprocess
import tempfile
import textwrap
import time
import unittest
from pathlib import Path

from server_test import Running, body_of, draws_failure

ROOT = Path(__file__).resolve().parent.parent
CONCBENCH = os.environ["CONCBENCH"]
TIMEOUT = 120  # seconds, for any one peer or concbench run

PEERS = {
    "asyncio": ["/usr/bin/python3", str(ROOT / "peers/python/main.py")],
    "go": [os.environ["CONCBENCH_PEER_GO"]],
    "node": ["node", str(ROOT / "peers/node/main.mjs")],
}


def missing(name):
    """Why a peer cannot run here, or None."""
    try:
        done = subprocess.run(PEERS[name] + ["version"], capture_output=True, text=True, timeout=TIMEOUT)
    except OSError as e:
        return str(e)
    return None if done.returncode == 0 else done.stderr.strip() or f"exit {done.returncode}"


class FanOut:
    """A peer's fan_out on each case the C++ clients are tested on; a subclass per peer."""
    peer = None

    @classmethod
    def setUpClass(cls):
        why = missing(cls.peer)
        if why:
            raise unittest.SkipTest(f"peer {cls.peer} is missing: {why}")

    def fan_out(self, server_port, n, k, group="settled", delay_us=0, size=64, fail=0, timeout_ms=1000):
        args = ["fan_out", "--host", "127.0.0.1", "--port", str(server_port),
                "--target", f"/work?delay_us={delay_us}&bytes={size}&fail={fail:g}&id=",
                "--n", str(n), "--k", str(k), "--group", group, "--timeout-ms", str(timeout_ms)]
        done = subprocess.run(PEERS[self.peer] + args, capture_output=True, text=True, timeout=TIMEOUT)
        self.assertEqual(done.returncode, 0, done.stderr)
        lines = done.stdout.splitlines()
        self.assertEqual(lines[-1], "end")
        requests = {}
        extra = {}
        for line in lines[:-1]:
            words = line.split()
            if words[0] == "request":
                self.assertEqual(len(words), 6, line)
                self.assertNotIn(int(words[1]), requests, "an id ended twice")
                requests[int(words[1])] = words[2:]
            else:
                extra[words[0]] = int(words[1])
        self.assertEqual(sorted(requests), list(range(n)), "every id ends exactly once")
        return requests, extra

    def test_bodies_are_the_servers(self):
        with Running() as server:
            requests, extra = self.fan_out(server.port, n=40, k=8, size=3000)
        for id_, (ending, status, latency, digest) in requests.items():
            self.assertEqual((ending, status), ("ok", "200"))
            self.assertEqual(digest, hashlib.sha256(body_of(id_, 3000)).hexdigest()[:16])
            self.assertGreater(int(latency), 0)
        self.assertGreater(extra["wall_ns"], 0)

    def test_failures_where_ids_draw_them(self):
        with Running() as server:
            requests, _ = self.fan_out(server.port, n=300, k=20, fail=0.05)
        failed = {i for i, (ending, status, *_) in requests.items() if ending == "failed"}
        self.assertEqual(failed, {i for i in range(300) if draws_failure(i, 0.05)})
        self.assertTrue(all(requests[i][1] == "500" for i in failed))
        self.assertTrue(all(requests[i][0] == "ok" for i in set(requests) - failed))

    def test_timeouts(self):
        with Running() as server:
            requests, _ = self.fan_out(server.port, n=6, k=3, delay_us=2_000_000, timeout_ms=100)
        self.assertEqual({ending for ending, *_ in requests.values()}, {"timed_out"})
        # Each ended near its timeout, not at the server's answer two seconds later.
        self.assertTrue(all(int(latency) < 1_500_000_000 for _, _, latency, _ in requests.values()))

    def test_fail_fast_cancels_the_rest(self):
        with Running() as server:
            requests, extra = self.fan_out(server.port, n=2000, k=10, group="all", delay_us=1000, fail=0.01)
        endings = [ending for ending, *_ in requests.values()]
        self.assertGreaterEqual(endings.count("failed"), 1)
        self.assertGreater(endings.count("cancelled"), 1000, "the group stops soon after the first failure")
        self.assertEqual(endings.count("timed_out"), 0)
        ok = {i for i, (ending, *_) in requests.items() if ending == "ok"}
        self.assertFalse(any(draws_failure(i, 0.01) for i in ok))
        self.assertIn("cancel_ns", extra)

    def test_a_server_that_is_down_is_a_clear_error(self):
        with Running() as server:
            port = server.port
        start = time.monotonic()
        done = subprocess.run(PEERS[self.peer] + ["fan_out", "--host", "127.0.0.1", "--port", str(port),
                                                  "--target", "/work?id=", "--n", "5", "--k", "2",
                                                  "--group", "settled", "--timeout-ms", "1000"],
                              capture_output=True, text=True, timeout=TIMEOUT)
        self.assertNotEqual(done.returncode, 0)
        self.assertEqual(len(done.stderr.strip().splitlines()), 1, done.stderr)
        self.assertNotIn("end", done.stdout.splitlines())
        self.assertLess(time.monotonic() - start, 10)

    def test_bad_flags(self):
        done = subprocess.run(PEERS[self.peer] + ["fan_out", "--n", "ten"], capture_output=True, text=True,
                              timeout=TIMEOUT)
        self.assertNotEqual(done.returncode, 0)
        self.assertTrue(done.stderr.strip())


class AsyncioFanOut(FanOut, unittest.TestCase):
    peer = "asyncio"


class GoFanOut(FanOut, unittest.TestCase):
    peer = "go"


class NodeFanOut(FanOut, unittest.TestCase):
    peer = "node"


def concbench(*args, env=None):
    return subprocess.run([CONCBENCH, "--workers=2", *args], capture_output=True, text=True, timeout=TIMEOUT,
                          env={**os.environ, **(env or {})})


class ThroughConcbench(unittest.TestCase):
    def test_every_peer_run_is_verified(self):
        """--quick's peer cells: blocking_stall runs checked against reference(), and
        fan_out's fail-fast pair against the server's contract."""
        done = concbench("--suite=quick", "--benchmark_filter=peer_", "--benchmark_format=json")
        self.assertEqual(done.returncode, 0, done.stderr[-3000:])
        for name in PEERS:
            if missing(name) is None:
                self.assertIn(f'"blocking_stall/peer_{name}/kind:cpu/offload:inline/work_us:1000', done.stdout)
                self.assertIn(f'"fan_out/peer_{name}/group:all/', done.stdout)


class LyingPeer(unittest.TestCase):
    """A stand-in asyncio peer (CONCBENCH_PEERS_DIR) that runs the real one and then
    corrupts its reply as FAKE says: concbench must fail the cell with a message."""

    @classmethod
    def setUpClass(cls):
        if missing("asyncio"):
            raise unittest.SkipTest("peer asyncio is missing")
        cls.dir = tempfile.mkdtemp(prefix="concbench-fake-peers-")
        fake = Path(cls.dir, "python")
        fake.mkdir()
        (fake / "main.py").write_text(textwrap.dedent(f"""\
            import os, subprocess, sys
            done = subprocess.run([sys.executable, {str(ROOT / "peers/python/main.py")!r}, *sys.argv[1:]],
                                  capture_output=True, text=True)
            lines = done.stdout.splitlines()
            how = os.environ.get("FAKE", "") if sys.argv[1] in ("fan_out", "blocking_stall") else ""
            requests = [i for i, line in enumerate(lines) if line.startswith("request ")]
            if how == "digest":
                words = lines[requests[0]].split()
                lines[requests[0]] = " ".join(words[:5] + ["0" * 16])
            elif how == "twice":
                lines.insert(0, lines[requests[0]])
            elif how == "lost":
                del lines[requests[-1]]
            elif how == "result":
                words = lines[requests[0]].split()
                lines[requests[0]] = " ".join(words[:3] + [str(int(words[3]) + 1)])
            elif how == "no_wall":
                lines = [line for line in lines if not line.startswith("wall_ns")]
            elif how == "no_end":
                lines.remove("end")
            elif how == "dies":
                print("fake peer: something broke", file=sys.stderr)
                sys.exit(3)
            sys.stdout.write("\\n".join(lines) + "\\n")
            sys.exit(done.returncode)
            """))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def run_fake(self, how, cells):
        return concbench("--suite=quick", f"--benchmark_filter={cells}",
                         env={"CONCBENCH_PEERS_DIR": self.dir, "FAKE": how})

    def test_a_truthful_stand_in_passes(self):
        done = self.run_fake("", "fan_out/peer_asyncio/group:settled")
        self.assertEqual(done.returncode, 0, done.stderr[-2000:])

    def test_every_lie_fails_its_cell_with_a_message(self):
        cases = {("digest", "fan_out/peer_asyncio/group:settled"): "not what the server sends this id",
                 ("twice", "fan_out/peer_asyncio/group:settled"): "ended twice",
                 ("lost", "fan_out/peer_asyncio/group:settled"): "result differs from the reference",
                 ("no_wall", "fan_out/peer_asyncio/group:settled"): "no wall_ns in its reply",
                 ("twice", "blocking_stall/peer_asyncio/kind:cpu/offload:inline/work_us:0/"): "ended twice",
                 ("lost", "blocking_stall/peer_asyncio/kind:cpu/offload:inline/work_us:0/"):
                     "result differs from the reference",
                 ("result", "blocking_stall/peer_asyncio/kind:cpu/offload:inline/work_us:0/"):
                     "not what this request computes",
                 ("no_end", "blocking_stall/peer_asyncio/kind:cpu/offload:inline/work_us:0/"): "without its last line",
                 ("dies", "blocking_stall/peer_asyncio/kind:cpu/offload:inline/work_us:0/"): "something broke"}
        for (how, cells), message in cases.items():
            with self.subTest(how=how, cells=cells):
                done = self.run_fake(how, cells)
                self.assertEqual(done.returncode, 1, done.stderr[-2000:])
                self.assertIn(message, done.stdout + done.stderr)


if __name__ == "__main__":
    unittest.main()
