"""concbench-server seen from outside: Python's own HTTP client (and curl, where
installed) against a re-implementation of the contract in fan_out.cpp, plus its
command line and signals.

Run by CTest with the binary's path in CONCBENCH_SERVER.
"""
import http.client
import os
import select
import shutil
import signal
import subprocess
import tempfile
import unittest
import urllib.error
import urllib.request

SERVER = os.environ["CONCBENCH_SERVER"]
TIMEOUT = 10  # seconds, for every wait

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
FAIL_SALT = 0x66A11


def mix(x):
    """splitmix64's finaliser."""
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def body_of(id_, size):
    """64-bit words mix(id) + j * golden, little-endian, the last one cut short."""
    seed = mix(id_)
    words = (size + 7) // 8
    return b"".join(((seed + j * GOLDEN) & MASK).to_bytes(8, "little") for j in range(words))[:size]


def draws_failure(id_, fail):
    if not fail > 0:
        return False
    return (mix(id_ ^ FAIL_SALT) >> 11) * 2.0**-53 < fail


def target(delay_us=0, size=0, fail=0, id_=0):
    return f"/work?delay_us={delay_us}&bytes={size}&fail={fail}&id={id_}"


class Running:
    """A server process for the length of a `with` block; killed at its end whatever happened."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([SERVER, "--port=0", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def __enter__(self):
        try:
            ready, _, _ = select.select([self.proc.stdout], [], [], TIMEOUT)
            if not ready:
                raise AssertionError("the server printed nothing in time")
            line = self.proc.stdout.readline().decode()
            prefix = "concbench-server listening on 127.0.0.1:"
            if not line.startswith(prefix) or not line.endswith("\n"):
                raise AssertionError(f"unexpected first line {line!r}")
            self.port = int(line[len(prefix):])
            return self
        except BaseException:
            self.kill()
            raise

    def __exit__(self, *exc):
        self.kill()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=TIMEOUT)
        self.proc.stdout.close()
        self.proc.stderr.close()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def fetch(self, path):
        """(status, headers, body), for error statuses too."""
        try:
            with urllib.request.urlopen(self.url(path), timeout=TIMEOUT) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            with e:
                return e.code, e.headers, e.read()


class Contract(unittest.TestCase):
    def test_reimplementation_matches_known_values(self):
        # splitmix64 seeded with 0 first returns mix(golden) = 0xe220a8397b1dcdaf.
        self.assertEqual(mix(GOLDEN), 0xE220A8397B1DCDAF)
        # mix(0) = 0, so the body of id 0 counts in steps of golden.
        self.assertEqual(body_of(0, 16), bytes(8) + GOLDEN.to_bytes(8, "little"))
        self.assertEqual(len(body_of(5, 13)), 13)

    def test_bodies_match_the_spec(self):
        with Running() as server:
            for size in (0, 1, 7, 8, 9, 1003, 65536):
                with self.subTest(size=size):
                    status, headers, body = server.fetch(target(size=size, id_=42))
                    self.assertEqual(status, 200)
                    self.assertEqual(headers["Content-Type"], "application/octet-stream")
                    self.assertEqual(headers["Content-Length"], str(size))
                    self.assertEqual(body, body_of(42, size))
            # The delay is applied and the defaults of missing keys hold.
            self.assertEqual(server.fetch("/work?id=3&bytes=100&delay_us=20000")[2], body_of(3, 100))
            status, _, body = server.fetch("/work")
            self.assertEqual((status, body), (200, b""))

    def test_failing_id_gets_500(self):
        failing = next(i for i in range(1000) if draws_failure(i, 0.25))
        passing = next(i for i in range(1000) if not draws_failure(i, 0.25))
        with Running() as server:
            self.assertEqual(server.fetch(target(size=10, fail=0.25, id_=failing))[0], 500)
            self.assertEqual(server.fetch(target(size=10, fail=0.25, id_=passing))[::2], (200, body_of(passing, 10)))

    def test_malformed_target_gets_400(self):
        with Running() as server:
            for path in ("/", "/work?id=-1", "/work?fail=1.5", "/work?bytes=x", "/work?nope=1", "/work?id=1&id=1"):
                with self.subTest(path=path):
                    status, _, body = server.fetch(path)
                    self.assertEqual(status, 400)
                    self.assertTrue(body)

    def test_keep_alive_serves_many_requests_on_one_connection(self):
        with Running("--threads=2") as server:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
            try:
                conn.request("GET", "/nope")  # a 400 keeps the connection too
                r = conn.getresponse()
                r.read()
                self.assertEqual(r.status, 400)
                sock = conn.sock
                for i in range(50):
                    conn.request("GET", target(size=i * 3, id_=i))
                    r = conn.getresponse()
                    self.assertEqual((r.status, r.read()), (200, body_of(i, i * 3)))
                    self.assertIs(conn.sock, sock, "the connection was reopened")
            finally:
                conn.close()

    @unittest.skipUnless(shutil.which("curl"), "curl is not installed")
    def test_curl(self):
        with Running() as server, tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "body")
            r = subprocess.run(
                ["curl", "-sS", "--max-time", str(TIMEOUT), "-o", out, "-w", "%{http_code}",
                 server.url(target(delay_us=1000, size=5000, id_=77))],
                capture_output=True, text=True, timeout=TIMEOUT + 5)
            self.assertEqual((r.returncode, r.stdout), (0, "200"), r.stderr)
            with open(out, "rb") as f:
                self.assertEqual(f.read(), body_of(77, 5000))


class CommandLine(unittest.TestCase):
    def test_bad_flags_exit_2_with_a_message(self):
        for flag, message in [
            ("--port=abc", "--port must be a whole number"),
            ("--port=70000", "--port must be a whole number"),
            ("--threads=0", "--threads must be a whole number"),
            ("--idle-timeout-ms=soon", "--idle-timeout-ms must be a whole number"),
            ("--max-connections=0", "--max-connections must be a whole number"),
            ("--bind=localhost:1", "--bind must be an IP address"),
            ("--port", "--port needs =VALUE"),
            ("--bogus", "unknown argument '--bogus'"),
        ]:
            with self.subTest(flag=flag):
                r = subprocess.run([SERVER, flag], capture_output=True, text=True, timeout=TIMEOUT)
                self.assertEqual(r.returncode, 2)
                self.assertIn(message, r.stderr)
                self.assertEqual(r.stdout, "")

    def test_help(self):
        r = subprocess.run([SERVER, "--help"], capture_output=True, text=True, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0)
        self.assertIn("--idle-timeout-ms=N", r.stdout)
        self.assertIn("--max-connections=N", r.stdout)

    def test_port_in_use_exits_1(self):
        with Running() as server:
            r = subprocess.run([SERVER, f"--port={server.port}"], capture_output=True, text=True, timeout=TIMEOUT)
            self.assertEqual(r.returncode, 1)
            self.assertIn(f"cannot listen on 127.0.0.1:{server.port}", r.stderr)

    def test_sigterm_and_sigint_stop_it_with_0(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            with self.subTest(signal=sig.name), Running() as server:
                # A request waiting on a long delay does not hold the exit up.
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
                try:
                    conn.request("GET", target(delay_us=30_000_000))
                    server.proc.send_signal(sig)
                    self.assertEqual(server.proc.wait(timeout=TIMEOUT), 0)
                finally:
                    conn.close()
                self.assertEqual(server.proc.stderr.read(), b"")


if __name__ == "__main__":
    unittest.main()
