"""Turns DIR/results.json into DIR/summary.json, DIR/plots/ and DIR/REPORT.md.

The page frame (environment, calibration) lives here; each workload's numbers,
plots and conclusions come from its module in workloads/."""

import json
import shlex
from pathlib import Path

import results as res
from units import format_byte_rate, format_us
from workloads import MODULES

SUMMARY_FILE = "summary.json"
# A stopped run's report names this many of the benchmarks it lacks, then counts the rest.
MISSING_SHOWN = 10
# The Answers at the top of the report, in the order a reader asks them: offloading
# first, then CPU scaling, fan-out and hand-offs.
ANSWER_ORDER = ("blocking_stall", "cpu_hash", "fan_out", "producer_consumer")
REPORT_FILE = "REPORT.md"
PLOTS_DIR = "plots"

# (label, context keys, first present wins) rows of the environment table.
ENVIRONMENT = [
    ("CPU", "cpu_model"), ("cores", ("cores", "num_cpus")), ("MHz per CPU", "mhz_per_cpu"), ("workers", "workers"),
    ("process workers' scheduling policy", "process_worker_policy"), ("suite", "suite"),
    ("host", "host_name"), ("compiler", "compiler"), ("flags", "cxx_flags"),
    ("build type", "build_type"), ("Boost", "boost_version"), ("oneTBB", "onetbb_version"),
    ("OpenSSL", "openssl_version"), ("Google Benchmark", "benchmark_version"),
    ("git commit", "git_commit"), ("load average", "load_avg"),
]


def generate(run_dir):
    """Writes summary, plots and report from run_dir/results.json; returns the
    written paths. Raises results.ResultsError for unusable input."""
    run_dir = Path(run_dir)
    data = res.load(run_dir)
    summaries, by_workload = summarize(data)
    sections, written = [], []
    for name, summary in summaries.items():
        module = MODULES[name]
        plots = module.plot(summary, run_dir / PLOTS_DIR)
        written += plots
        sections.append(module.report(summary, [f"{PLOTS_DIR}/{Path(p).name}" for p in plots]))
    unreported = {w: rs for w, rs in by_workload.items() if w not in MODULES}
    if unreported:
        sections.append(_unreported_section(unreported))

    summary_path = run_dir / SUMMARY_FILE
    res.write_json_atomic(summary_path, {"source": res.RESULTS_FILE, "workloads": summaries})
    report_path = run_dir / REPORT_FILE
    res.write_atomic(report_path, _page(data, summaries, sections))
    return [summary_path, *written, report_path]


def summarize(data):
    """({workload: summary} for the workloads with a module, {workload: records}) of
    one loaded results.json."""
    by_workload = {}
    for record in res.reduce_runs(data["benchmarks"]):
        by_workload.setdefault(record["workload"], []).append(record)
    summaries = {name: module.summarize(by_workload[name], data)
                 for name, module in MODULES.items() if name in by_workload}
    return summaries, by_workload


def _page(data, summaries, sections):
    context = data.get("context") or {}
    command = data.get("command")
    if isinstance(command, list):
        command = shlex.join(str(c) for c in command)
    lines = ["# concbench report", "",
             f"Date: {_get(context, 'date')}  ",
             f"Command: `{command or 'n/a'}`", ""]
    missing = data.get("missing") or []
    if missing:
        shown = ", ".join(f"`{name}`" for name in missing[:MISSING_SHOWN])
        more = f" and {len(missing) - MISSING_SHOWN} more" if len(missing) > MISSING_SHOWN else ""
        lines += [f"**This run was stopped before the end: {len(missing)} benchmarks did not run** "
                  f"(results.json lists them under \"missing\"): {shown}{more}.", ""]
    answers = [line for name in ANSWER_ORDER if name in summaries for line in MODULES[name].answers(summaries[name])]
    if answers:
        lines += ["## Answers", "", "On this machine, in this run; each line links to its section.", ""]
        lines += [f"- {line}" for line in answers] + [""]
    lines += ["## Environment", "", "| | |", "|---|---|"]
    lines += [f"| {label} | {context_cell(context, key)} |" for label, key in ENVIRONMENT]
    lines += ["", "## Calibration", "",
              "Measured on this machine just before the benchmarks; they explain most offload costs.", "",
              "| measure | value | what it means |", "|---|---:|---|"]
    lines += [f"| {label} | {value} | {meaning} |" for label, value, meaning in _calibration(data)]
    lines.append("")
    if not data["benchmarks"]:
        lines += ["No benchmarks in this run.", ""]
    for section in sections:
        lines += [section, ""]
    return "\n".join(lines).rstrip() + "\n"


def _calibration(data):
    context = data.get("context") or {}
    baselines = data.get("peers") or {}  # scripts/bench's own measures (openssl speed)
    sha = _float(context.get("calib_sha256_16k_bytes_per_s"))
    openssl = _float(baselines.get("openssl_sha256_16k_bytes_per_s"))

    def us(key):
        return format_us(_float(context.get(key)))

    return [
        ("same-thread post", _fmt(_float(context.get("calib_post_ns")), "ns"),
         "cost to queue and run an empty task on the current thread: the floor of any event-loop hop"),
        ("thread round trip", us("calib_thread_rtt_us"),
         "hand a sleeping thread a message and get its answer back, unpinned: the scheduler usually "
         "keeps both threads on one core, so this is the same-core cost"),
        ("thread round trip across cores", us("calib_thread_rtt_cross_core_us"),
         "the same with the two threads pinned to two cores, each asleep when reached: the cost of "
         "waking a sleeping core, what an offload to an idle thread pool pays (n/a on one core)"),
        ("pipe round trip", us("calib_pipe_rtt_us"),
         "message a sleeping worker process through a pipe and back, unpinned (usually on one core)"),
        ("pipe round trip across cores", us("calib_pipe_rtt_cross_core_us"),
         "the same pinned to two cores: the floor of a process-pool call that wakes another core "
         "(n/a on one core)"),
        ("thread pool round trip", us("calib_thread_pool_rtt_us"),
         "an empty task offloaded from a coroutine on the event loop to concbench's thread pool and "
         "back: the fixed cost of each offload to threads"),
        ("process pool round trip", us("calib_process_pool_rtt_us"),
         "the same through concbench's process pool: the fixed cost of each offload to processes"),
        ("SHA-256, one core, 16 KiB", format_byte_rate(sha),
         "concbench's hash kernel on one core: the work unit of cpu_hash"),
        ("openssl speed, 16 KiB", format_byte_rate(openssl),
         "`openssl speed -evp sha256 -bytes 16384`: the reference implementation on this machine"),
        ("concbench / openssl", _fmt(sha / openssl if sha and openssl else None, "×"),
         "near 1 means the kernel is as fast as OpenSSL's, so speedups are against an honest baseline"),
    ] + _peer_rows(context, sha)


# What each peer's own SHA-256 is, in the words of the calibration table.
PEER_HASHES = {"asyncio": "hashlib", "go": "crypto/sha256", "node": "node:crypto"}


def _peer_rows(context, sha):
    """A calibration row per peer: its language's SHA-256 on 16 KiB blocks against the
    kernel's (it sizes the peer's kind:cpu work), or why the peer did not run."""
    try:
        peers = json.loads(context.get("peers") or "{}")
    except json.JSONDecodeError:
        raise res.ResultsError("results.json: context peers is not the JSON object concbench writes") from None
    rows = []
    for name, peer in peers.items():
        label = f"SHA-256 in {name} ({PEER_HASHES.get(name, 'its own')}), 16 KiB"
        if peer.get("missing"):
            rows.append((f"peer {name}", "not run", _one_line(peer["missing"])))
        elif peer.get("sha256_error"):
            rows.append((label, "failed", _one_line(peer["sha256_error"]) + "; its blocking_stall cells did not run"))
        else:
            rate = _float(peer.get("sha256_16k_bytes_per_s"))
            ratio = f"{rate / sha:.2f}× concbench's kernel" if rate and sha else "no kernel figure to compare"
            rows.append((label, format_byte_rate(rate), f"{peer.get('version', '')}: {ratio}; the peer's kind:cpu "
                         "work is sized by it"))
    return rows


def _one_line(text):
    """A peer's message as one table cell: its lines joined, its pipes escaped."""
    return _cell("; ".join(line for line in str(text).splitlines() if line.strip()))


def _unreported_section(unreported):
    lines = ["## Other workloads", "",
             "These workloads have no report module yet; their numbers are in results.json.", ""]
    for workload, records in sorted(unreported.items()):
        errors = [r for r in records if r["error"]]
        lines.append(f"- {workload}: {len(records)} runs, {len(errors)} errors")
        lines += [f"  - `{r['name']}`: {r['error']}" for r in errors]
    return "\n".join(lines)


def context_cell(context, keys):
    """A context value as a table cell: the first of keys present, else n/a."""
    return _cell(_get(context, keys))


def _get(context, keys):
    for key in (keys,) if isinstance(keys, str) else keys:
        if context.get(key) not in (None, ""):
            return context[key]
    return "n/a"


def _cell(value):
    if isinstance(value, list):
        value = ", ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in value)
    return str(value).replace("|", "\\|")


def _float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _fmt(value, unit):
    if value is None:
        return "n/a"
    return f"{value:.3g} {unit}" if unit != "×" else f"{value:.2f}×"
