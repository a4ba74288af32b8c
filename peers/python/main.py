"""concbench's Python asyncio peer.

One sub-command per workload (fan_out, blocking_stall, sha256), flags and reply
as ../README.md describes. The reply is written only once the run is complete,
so any error leaves a one-line message on stderr, a non-zero exit and no `end`.
This module also holds the kernels the workloads share with the C++ models.
"""
import argparse
import asyncio
import hashlib
import platform
import sys
import time

MASK64 = (1 << 64) - 1
GOLDEN64 = 0x9E3779B97F4A7C15


def load_corpus(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def block(corpus: bytes, size: int, i: int) -> memoryview:
    start = (i * 4099) % (len(corpus) - size + 1)
    # A view hands hashlib the bytes without copying them.
    return memoryview(corpus)[start:start + size]


def le64(data) -> int:
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "little")


def cpu_work(corpus: bytes, rid: int, cpu_bytes: int) -> int:
    chunk = min(cpu_bytes, 65536)
    count = -(-cpu_bytes // chunk)
    return sum(le64(block(corpus, chunk, i)) for i in range(rid, rid + count)) & MASK64


def sleep_work(rid: int, work_us: int) -> int:
    time.sleep(work_us / 1e6)
    return (rid + 1) * GOLDEN64 & MASK64


def sha256(args) -> list[str]:
    corpus = load_corpus(args.corpus)
    count = args.total_bytes // args.chunk_bytes
    total = 0
    began = time.perf_counter()
    for i in range(count):
        total += le64(block(corpus, args.chunk_bytes, i))
    seconds = time.perf_counter() - began
    return [f"sha256 {count * args.chunk_bytes} {seconds:.9f} {total & MASK64}"]


class Parser(argparse.ArgumentParser):
    def error(self, message):
        # The protocol wants one line on stderr, not argparse's usage block.
        self.exit(2, f"{self.prog}: error: {message}\n")


def count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def positive(text: str) -> int:
    value = count(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def parse_args(argv):
    parser = Parser(prog="main.py", description="concbench's Python asyncio peer")
    commands = parser.add_subparsers(dest="command", required=True)

    fan_out = commands.add_parser("fan_out")
    fan_out.add_argument("--host", required=True)
    fan_out.add_argument("--port", type=positive, required=True)
    fan_out.add_argument("--target", required=True)
    fan_out.add_argument("--n", type=count, required=True)
    fan_out.add_argument("--k", type=positive, required=True)
    fan_out.add_argument("--group", choices=["all", "settled"], required=True)
    fan_out.add_argument("--timeout-ms", type=positive, required=True)

    stall = commands.add_parser("blocking_stall")
    stall.add_argument("--schedule", required=True)
    stall.add_argument("--corpus", required=True)
    stall.add_argument("--kind", choices=["cpu", "sleep"], required=True)
    stall.add_argument("--offload", choices=["inline", "threads", "processes"], required=True)
    stall.add_argument("--work-us", type=count, required=True)
    stall.add_argument("--cpu-bytes", type=count, required=True)
    stall.add_argument("--workers", type=positive, required=True)

    commands.add_parser("version")

    sha = commands.add_parser("sha256")
    sha.add_argument("--corpus", required=True)
    sha.add_argument("--chunk-bytes", type=positive, required=True)
    sha.add_argument("--total-bytes", type=count, required=True)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        # Imported here: the workload modules import this one for its kernels.
        if args.command == "fan_out":
            import fan_out
            lines = asyncio.run(fan_out.run(args))
        elif args.command == "blocking_stall":
            import blocking_stall
            lines = asyncio.run(blocking_stall.run(args))
        elif args.command == "version":
            # fan_out needs aiohttp: without it this peer is missing. Not imported: it takes 0.3 s.
            from importlib.metadata import version

            if sys.version_info < (3, 11):
                raise RuntimeError("needs Python 3.11 or later (TaskGroup, asyncio.timeout)")
            lines = [f"Python {platform.python_version()}, aiohttp {version('aiohttp')}"]
        else:
            lines = sha256(args)
    except Exception as exc:
        # A TaskGroup wraps what its tasks raised; the first one says why.
        while isinstance(exc, ExceptionGroup):
            exc = exc.exceptions[0]
        print(f"main.py {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    lines.append("end")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
