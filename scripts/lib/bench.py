"""scripts/bench: run concbench once per worker count, merge the JSON, and write
the report (same code path as scripts/plot). Never measures anything itself."""

import argparse
import datetime
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import results as res

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BINARY = ROOT / "build" / "release" / "bench" / "concbench"
REPORTS_DIR = ROOT / "reports"

# suite -> (min_time seconds, repetitions); explicit flags override.
SUITES = {"quick": (0.05, 1), "default": (0.1, 3), "full": (0.5, 5)}

OPENSSL_CMD = ["openssl", "speed", "-evp", "sha256", "-bytes", "16384", "-seconds", "1"]
STDERR_TAIL_LINES = 20
# How long a stopped concbench gets to exit before it is killed.
STOP_GRACE_S = 10


# ---------------------------------------------------------------- arguments

def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number greater than 0: {text!r}")
    return value


def _worker_list(text):
    counts = [_positive_int(part.strip()) for part in text.split(",")]
    return sorted(set(counts))


def default_workers(cores):
    """1, 2, 4, ... up to the core count, plus the core count itself."""
    counts, n = [], 1
    while n <= cores:
        counts.append(n)
        n *= 2
    return sorted(set(counts + [max(1, cores)]))


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Build and run concbench once per worker count, then write "
                    "results.json, summary.json, plots/ and REPORT.md.")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="suite", action="store_const", const="quick",
                      help="smoke-sized slice: min time 0.05 s, 1 repetition")
    size.add_argument("--full", dest="suite", action="store_const", const="full",
                      help="the whole grid: min time 0.5 s, 5 repetitions")
    parser.add_argument("--filter", metavar="REGEX", help="--benchmark_filter for concbench")
    parser.add_argument("--workers", metavar="LIST", type=_worker_list,
                        help="comma list of worker counts (default: 1,2,4,... up to nproc, and nproc)")
    parser.add_argument("--repetitions", metavar="N", type=_positive_int,
                        help="repetitions per benchmark (default suite: 3; blocking_stall runs each cell "
                             "at least 10 times, 14 with --full, 2 with --quick, then the cells around each "
                             "crossover more often in a second pass)")
    parser.add_argument("--min-time", metavar="S", type=_positive_float, help="seconds per benchmark")
    parser.add_argument("--out", metavar="DIR", type=Path,
                        help="run directory: new, empty, or an earlier run's (default: reports/runs/<date>-<host>; "
                             "updates reports/latest)")
    parser.add_argument("--concbench", metavar="PATH", type=Path, default=DEFAULT_BINARY,
                        help="the benchmark binary (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.out is not None and (problem := out_problem(args.out)):
        parser.error(f"--out {args.out}: {problem}")
    args.suite = args.suite or "default"
    min_time, repetitions = SUITES[args.suite]
    args.min_time = args.min_time or min_time
    args.repetitions = args.repetitions or repetitions
    args.workers = args.workers or default_workers(os.cpu_count() or 1)
    return args


def out_problem(out):
    """Why a run cannot be written to out (checked before anything runs), or None: it
    must be a directory that is empty or holds an earlier run, or one that can be made.
    Tried for real, since permissions alone do not tell (root, /proc, read-only mounts)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        return "exists and is not a directory"
    if out.is_dir() and any(out.iterdir()) and not (out / res.RESULTS_FILE).is_file():
        return "is a directory that holds other files (give an empty one or an earlier run's)"
    created = []
    try:
        for path in [*reversed(out.parents), out]:
            if not path.exists():
                path.mkdir()
                created.append(path)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        return f"cannot be written: {e.strerror or e}"
    finally:
        for path in reversed(created):
            path.rmdir()
    return None


def concbench_flags(args, workers, first):
    """Flags for one run; single-thread models run only with the first count,
    since --workers does not change them."""
    # Interleaved: each repetition of a cell runs at a random point among the others,
    # so that a hiccup of the machine lands on different cells, not on every run of one.
    flags = [f"--suite={args.suite}", f"--workers={workers}",
             f"--models={'all' if first else 'parallel'}",
             f"--benchmark_min_time={args.min_time:g}",
             f"--benchmark_repetitions={args.repetitions}",
             "--benchmark_enable_random_interleaving=true"]
    if args.filter:
        flags.append(f"--benchmark_filter={args.filter}")
    return flags


# ---------------------------------------------------------------- progress

def format_duration(seconds):
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """Counts finished benchmarks from concbench's console lines. A benchmark is
    finished at its first line (repetitions and aggregates repeat the name).

    Repetitions run interleaved, in random order, and Google Benchmark prints a
    benchmark only after its last one: finished benchmarks bunch up at the end of
    each concbench run. So the ETA comes from the share of repetitions done, which
    the finished count gives (see repetitions_done)."""

    def __init__(self, repetitions, start=None, clock=time.monotonic):
        """repetitions: per concbench run, in order, {name: its repetitions}."""
        self.batches, self.clock = [dict(b) for b in repetitions], clock
        self.total = sum(len(b) for b in self.batches)
        self.start = clock() if start is None else start
        self.batch, self.done = -1, []

    def add_batch(self, repetitions):
        """A concbench run planned after the others had started (a second pass)."""
        self.batches.append(dict(repetitions))
        self.total += len(repetitions)

    def next_run(self):
        """Call as each concbench run starts."""
        self.batch += 1
        self.done.append(set())

    def line(self, text):
        """The progress message for a console line, or None if nothing finished."""
        fields = text.split()
        if not fields or self.batch < 0:
            return None
        name = res.base_name(fields[0])
        if name not in self.batches[self.batch] or name in self.done[self.batch]:
            return None
        self.done[self.batch].add(name)
        return self.message(name)

    def share_done(self):
        """The share of all repetitions done so far, earlier runs whole."""
        total = sum(sum(b.values()) for b in self.batches)
        done = sum(sum(b.values()) for b in self.batches[:self.batch])
        current = self.batches[self.batch]
        done += repetitions_done(list(current.values()), len(self.done[self.batch]))
        return done / total if total else 1.0

    def message(self, name):
        i = sum(len(d) for d in self.done)
        elapsed = self.clock() - self.start
        share = self.share_done()
        eta = elapsed / share * (1 - share) if share else 0
        return f"[{i}/{self.total}] {name}  elapsed {format_duration(elapsed)}  ETA {format_duration(eta)}"


def repetitions_done(repetitions, finished):
    """How many of the repetitions of one interleaved run are done when `finished`
    of its benchmarks are. With the repetitions in random order, when a share f of
    them is done a benchmark of R repetitions is finished with probability about
    f^R: f solves sum(f^R) = finished."""
    if finished >= len(repetitions):
        return float(sum(repetitions))
    low, high = 0.0, 1.0
    for _ in range(50):
        f = (low + high) / 2
        low, high = (f, high) if sum(f ** r for r in repetitions) < finished else (low, f)
    return low * sum(repetitions)


def repetitions_of(name, default):
    """A benchmark's repetitions: its name says /repeats:N/ where it sets its own."""
    for part in name.split("/"):
        if part.startswith("repeats:"):
            return int(part.split(":", 1)[1])
    return default


def second_pass(args, runs):
    """blocking_stall's second pass, from the first pass's results: the cells that decide a
    break-even (blocking_stall.cells_to_refine), EXTRA_RUNS more times each. Returns
    [(workers, flags, names)], one concbench run per worker count; [] where no cell needs
    it, and with --quick, whose two runs per cell give no verdicts to refine."""
    if args.suite == "quick":
        return []
    from workloads import blocking_stall  # after set-up, as report is (it plots)
    data = merge_runs(runs, args.workers, [], {})
    records = [r for r in res.reduce_runs(data["benchmarks"])
               if r["workload"] == blocking_stall.NAME and not r["error"]]
    if not records:
        return []
    cells = blocking_stall.cells_to_refine(blocking_stall.summarize(records, data))
    by_workers = {}
    for record in records:
        p = record["params"]
        key = (record["model"], str(p.get("kind")), str(p.get("offload")), p.get("rate"), p.get("workers"),
               p.get("work_us"))
        if key in cells:
            by_workers.setdefault(p["workers"], set()).add(res.registered_name(record["name"]))
    plan = []
    for workers in sorted(by_workers):
        names = sorted(by_workers[workers])
        flags = concbench_flags(args, workers, first=(workers == args.workers[0]))
        flags = [f for f in flags if not f.startswith(("--benchmark_filter=", "--benchmark_repetitions="))]
        flags += [f"--benchmark_repetitions={blocking_stall.EXTRA_RUNS}",
                  "--benchmark_filter=^(" + "|".join(re.escape(n) for n in names) + ")/"]
        listed, error = list_benchmarks(args.concbench, flags)
        if error or len(listed) != len(names):
            raise RuntimeError(f"the second pass (workers={workers}) lists {len(listed)} of its "
                               f"{len(names)} cells" + (f": {error}" if error else ""))
        plan.append((workers, flags, listed))
    return plan


def list_benchmarks(binary, flags):
    """(names, error): the benchmarks these flags would run."""
    proc = subprocess.run([str(binary), *flags, "--benchmark_list_tests=true"],
                          capture_output=True, text=True)
    names = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 and not names:
        return [], (proc.stderr.strip() or proc.stdout.strip() or f"exit status {proc.returncode}")
    return names, None


class Stopped(Exception):
    """SIGINT or SIGTERM arrived (Ctrl-C, timeout, CI): what finished is kept."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum, _frame):
    raise Stopped(signum)


def run_concbench(binary, flags, json_path, stderr_path, progress):
    """Runs one concbench, printing progress to stderr; returns its exit status. On
    Stopped, passes the signal on to concbench, waits for it, and raises again."""
    cmd = [str(binary), *flags, f"--benchmark_out={json_path}",
           "--benchmark_out_format=json", "--benchmark_color=false"]
    with open(stderr_path, "w") as err, \
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1) as proc:
        try:
            for line in proc.stdout:
                message = progress.line(line)
                if message:
                    print(message, file=sys.stderr, flush=True)
        except Stopped as stop:
            proc.send_signal(stop.signum)
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
    return proc.returncode


def describe_status(status):
    """How a child ended, from its Popen return code (negative: the signal that killed it)."""
    if status < 0:
        return f"was killed by signal {-status} ({signal.Signals(-status).name})"
    return f"exited with status {status}"


def load_run_json(path):
    """concbench's JSON, or None. A run that died midway leaves the array open;
    the entries written before that are kept."""
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    # Google Benchmark closes each entry with a line of exactly four spaces and '}'.
    cut = text.rfind("\n    }")
    for candidate in ([text[:cut + 6] + "\n  ]\n}"] if cut >= 0 else []) + [text + "\n  ]\n}"]:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            pass
    return None


def parse_openssl_speed(text):
    """Bytes per second from `openssl speed`'s last line ('sha256  1375584.26k';
    the figure is in 1000s of bytes per second)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    match = re.search(r"([\d.]+)k\s*$", lines[-1])
    return float(match.group(1)) * 1000 if match else None


def openssl_sha256_16k():
    if shutil.which("openssl") is None:
        return None
    try:
        proc = subprocess.run(OPENSSL_CMD, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_openssl_speed(proc.stdout) if proc.returncode == 0 else None


def merge_runs(runs, workers, command, peers):
    """One results.json from the per-worker-count runs (each a concbench JSON)."""
    runs = [r for r in runs if r]
    context = dict(runs[0].get("context", {})) if runs else {}
    context["workers"] = ",".join(str(w) for w in workers)
    return {
        "command": command,
        "context": context,
        "runs": [r.get("context", {}) for r in runs],
        "peers": peers,
        "benchmarks": [b for r in runs for b in r.get("benchmarks", [])],
    }


# ---------------------------------------------------------------- output

def new_run_dir(reports_dir, today, host):
    base = Path(reports_dir) / "runs" / f"{today}-{host}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def point_latest(reports_dir, run_dir):
    """reports/latest -> run_dir, relative, swapped in one rename."""
    reports_dir = Path(reports_dir)
    latest = reports_dir / "latest"
    tmp = reports_dir / f".latest.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(os.path.relpath(run_dir, reports_dir), tmp)
    os.replace(tmp, latest)


def main(argv=None):
    """Runs the suite; SIGINT and SIGTERM stop it, keep what finished (a partial run that
    lists what is missing) and exit 128 + the signal, as a shell reports it."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--check-args"]:  # scripts/bench, before set-up and the build
        parse_args(argv[1:])
        return 0
    args = parse_args(argv)
    previous = {s: signal.signal(s, _raise_stopped) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _run(args, argv)
    except Stopped as stop:
        print(f"stopped by {stop} before any benchmark finished; nothing written", file=sys.stderr)
        return 128 + stop.signum
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _run(args, argv):
    if not args.concbench.is_file() or not os.access(args.concbench, os.X_OK):
        print(f"error: concbench binary not found at {args.concbench}; "
              f"build it with: cmake --preset release && cmake --build --preset release",
              file=sys.stderr)
        return 1

    start = time.monotonic()
    plan, failures = [], []
    for i, workers in enumerate(args.workers):
        flags = concbench_flags(args, workers, first=(i == 0))
        names, error = list_benchmarks(args.concbench, flags)
        if error and i == 0:
            print(f"error: concbench rejected the run (workers={workers}):\n{error}", file=sys.stderr)
            return 1
        if names:
            plan.append((workers, flags, names))
        else:
            print(f"note: nothing to run with workers={workers}", file=sys.stderr)
    total = sum(len(names) for _, _, names in plan)
    if total == 0:
        print("error: no benchmark matches", file=sys.stderr)
        return 1

    peers = {"openssl_sha256_16k_bytes_per_s": openssl_sha256_16k()}
    # Started after the openssl check so that the ETA reflects benchmarks only.
    progress = Progress([{name: repetitions_of(name, args.repetitions) for name in names}
                         for _, _, names in plan])
    runs, stopped = [], None
    batches = list(plan)
    with tempfile.TemporaryDirectory(prefix="concbench-") as tmp:
        for i, (workers, flags, names) in enumerate(batches):
            if i == len(plan):
                print(f"second pass: blocking_stall's {len(names)} cells around the crossovers, "
                      f"{repetitions_of(names[0], 0)} more runs each", file=sys.stderr)
            print(f"concbench --workers={workers}: {len(names)} benchmarks", file=sys.stderr)
            progress.next_run()
            json_path, stderr_path = Path(tmp, f"run{i}.json"), Path(tmp, f"run{i}.err")
            try:
                status = run_concbench(args.concbench, flags, json_path, stderr_path, progress)
            except Stopped as stop:
                stopped = stop
            run = load_run_json(json_path)
            runs.append(run)
            if stopped:
                break
            if status != 0 or run is None:
                tail = stderr_path.read_text(errors="replace").splitlines()[-STDERR_TAIL_LINES:]
                failures.append(f"concbench --workers={workers} {describe_status(status)}"
                                + ("" if run else " and wrote no JSON"))
                print(f"error: {failures[-1]}; its stderr ends with:", file=sys.stderr)
                print("\n".join("  " + line for line in tail), file=sys.stderr)
            if i == len(plan) - 1:
                try:
                    later = second_pass(args, runs)
                except Stopped as stop:
                    stopped = stop
                    break
                except RuntimeError as e:
                    failures.append(str(e))
                    print(f"error: {e}", file=sys.stderr)
                    later = []
                for batch in later:
                    batches.append(batch)
                    progress.add_batch({name: repetitions_of(name, 0) for name in batch[2]})

    if not any(runs):
        if stopped:
            raise stopped
        print("error: no results to write", file=sys.stderr)
        return 1
    merged = merge_runs(runs, args.workers, ["scripts/bench", *argv], peers)
    if stopped:
        finished = {res.base_name(b["name"]) for b in merged["benchmarks"]}
        merged["missing"] = [n for _, _, names in plan for n in names if res.base_name(n) not in finished]
        failures.append(f"stopped by {stopped}: {len(merged['missing'])} of {total} benchmarks missing")
    run_dir = args.out or new_run_dir(REPORTS_DIR, datetime.date.today().isoformat(),
                                      socket.gethostname().split(".")[0])
    run_dir.mkdir(parents=True, exist_ok=True)
    res.write_results(run_dir / res.RESULTS_FILE, merged)
    import report  # here: --check-args runs before set-up has installed matplotlib
    written = report.generate(run_dir)
    if args.out is None:
        point_latest(REPORTS_DIR, run_dir)

    print(f"report: {written[-1]}", file=sys.stderr)
    print(f"total time {format_duration(time.monotonic() - start)}", file=sys.stderr)
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    if stopped:
        return 128 + stopped.signum
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
