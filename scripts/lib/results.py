"""Reading concbench results: loading and validating results.json, parsing
benchmark names, and reducing Google Benchmark entries to one record per run."""

import json
import math
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

RESULTS_FILE = "results.json"

# Google Benchmark reports times in the unit the benchmark chose; ratios need one.
_NS_PER_UNIT = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}

# Numeric fields averaged over repetitions when no median aggregate exists.
_AVERAGED_FIELDS = ("real_time", "cpu_time", "items_per_second", "bytes_per_second")

_AGGREGATE_SUFFIX = re.compile(r"_(mean|median|stddev|cv)$")
_REPEATS = re.compile(r"/repeats:\d+(?=/|$)")


class ResultsError(Exception):
    """Results that cannot be used; the message is meant for the user as is."""


def run_for_user(action, inputs, output):
    """(0, action()) or, where it meets what a user can cause (unusable results, results
    of an unexpected shape, a place that cannot be written), (1, None) after one
    'error:' line on stderr: scripts give messages, never tracebacks."""
    try:
        return 0, action()
    except ResultsError as e:
        message = str(e)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        message = f"malformed results in {inputs}: {e}"
    except OSError as e:
        message = f"cannot write {output}: {e.strerror or e}" + (f" ({e.filename})" if e.filename else "")
    print(f"error: {message}", file=sys.stderr)
    return 1, None


def load(run_dir):
    """Returns the parsed DIR/results.json, or raises ResultsError saying why not."""
    run_dir = Path(run_dir)
    path = run_dir / RESULTS_FILE
    if not run_dir.is_dir():
        raise ResultsError(f"{run_dir} is not a directory")
    if not path.is_file():
        raise ResultsError(f"{path} does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path} is not valid JSON: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ResultsError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ResultsError(f'{path} has no "benchmarks" list')
    if not isinstance(data.get("context", {}), dict):
        raise ResultsError(f'{path}: "context" is not an object')
    for i, entry in enumerate(data["benchmarks"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ResultsError(f"{path}: benchmarks[{i}] has no name")
    return data


def base_name(name):
    """The run name of a console or JSON name: aggregate suffixes removed."""
    return _AGGREGATE_SUFFIX.sub("", name)


def cell_name(name):
    """The run name without its repetition count: a second pass that runs a cell again
    (scripts/bench, blocking_stall) adds to the cell's runs under the same cell."""
    return _REPEATS.sub("", base_name(name))


def registered_name(name):
    """The name a benchmark was registered under, without the run settings and time
    labels Google Benchmark appends ('/iterations:1/repeats:5/process_time/real_time')."""
    parts = base_name(name).split("/")
    while len(parts) > 2 and (":" not in parts[-1] or parts[-1].partition(":")[0] in RUN_SETTINGS):
        parts.pop()
    return "/".join(parts)


def finite(value):
    """value as a float if it is a finite number (counters may be absent, null or inf), else None."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _number(text):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


# Keys Google Benchmark appends to a name for per-benchmark run settings.
RUN_SETTINGS = {"iterations", "repeats", "min_time", "min_warmup_time", "threads"}


# The same workloads in other languages (peers/), driven by concbench like wrk.
PEER_MODELS = ("peer_asyncio", "peer_go", "peer_node")


def is_peer(model):
    return model.startswith("peer_")


def rank_in(order):
    """A sort key: names in `order` first, in that order, then the others by name."""
    return lambda name: (order.index(name), "") if name in order else (len(order), name)


def parse_name(name):
    """Splits '<workload>/<model>/<key>:<value>/...' into its parts.

    Segments without ':' (Google Benchmark's 'real_time', 'process_time') and the
    run settings it appends ('iterations:1', 'repeats:1') are no parameters."""
    parts = name.split("/")
    params = {}
    for part in parts[2:]:
        key, sep, value = part.partition(":")
        if sep and key not in RUN_SETTINGS:
            params[key] = _number(value)
    return {
        "workload": parts[0],
        "model": parts[1] if len(parts) > 1 else "",
        "params": params,
    }


# What Google Benchmark numbers each entry by, not what it measured.
_ENTRY_INDEXES = {"family_index", "per_family_instance_index", "repetition_index", "repetitions", "threads",
                  "iterations"}


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def reduce_runs(benchmarks):
    """One record per run name: the median aggregate when present, else the mean
    of the repetitions; a run with any failed repetition becomes an error record.

    Record keys: name, workload, model, params, error (message or None), and for
    good runs real_time_ns, cpu_time_ns, items_per_second, bytes_per_second plus
    the custom counters of the chosen entry, and runs: {field: [value of each
    repetition]} (see run_values and spread); with more than one repetition, also
    repetitions (their count)."""
    groups = {}
    for entry in benchmarks:
        groups.setdefault(cell_name(entry.get("run_name") or entry["name"]), []).append(entry)

    records = []
    for entries in groups.values():
        run_name = entries[0].get("run_name") or base_name(entries[0]["name"])
        record = {"name": run_name, **parse_name(run_name), "error": None}
        failed = [e for e in entries if e.get("error_occurred")]
        if failed:
            record["error"] = failed[0].get("error_message") or "error (no message)"
            records.append(record)
            continue
        medians = [e for e in entries if e.get("aggregate_name") == "median"]
        iterations = [e for e in entries if e.get("run_type", "iteration") == "iteration"]
        if len(iterations) > 1:
            record["repetitions"] = len(iterations)
        if iterations:
            record["runs"] = {
                field: values
                for field in iterations[0] if field not in _ENTRY_INDEXES
                if (values := [e[field] for e in iterations if _is_number(e.get(field))])
                and len(values) == len(iterations)}
        if medians:
            chosen = dict(medians[0])
        else:
            if not iterations:
                continue
            chosen = dict(iterations[0])
            for field in _AVERAGED_FIELDS:
                values = [e[field] for e in iterations if isinstance(e.get(field), (int, float))]
                if values:
                    chosen[field] = statistics.fmean(values)
        scale = _NS_PER_UNIT.get(chosen.get("time_unit", "ns"), 1.0)
        for field in ("real_time", "cpu_time"):
            if isinstance(chosen.get(field), (int, float)):
                record[field + "_ns"] = chosen[field] * scale
        for key, value in chosen.items():
            if (_is_number(value) and key not in record and key not in ("real_time", "cpu_time")
                    and key not in _ENTRY_INDEXES):
                record[key] = value
        records.append(record)
    return records


def unusable_counters(entry, fields):
    """'no ok/failed counter', 'failed is nan', ...: why these counters of an entry
    cannot be used (absent, or not a finite number), or None where all can."""
    absent = [f for f in fields if entry.get(f) is None]
    odd = [f"{f} is {entry[f]}" for f in fields if entry.get(f) is not None and finite(entry[f]) is None]
    parts = (["no " + "/".join(absent) + " counter"] if absent else []) + odd
    return "; ".join(parts) or None


def run_values(record, field):
    """The value of field in each repetition of a record (the chosen one alone where
    the repetitions were not kept); finite numbers only."""
    values = (record.get("runs") or {}).get(field)
    if values is None:
        values = [record.get(field)]
    return [v for v in map(finite, values) if v is not None]


def spread(record, field):
    """[lowest, highest] of field over a record's repetitions; None with fewer than two."""
    values = run_values(record, field) if record.get("repetitions", 1) > 1 else []
    return [min(values), max(values)] if len(values) > 1 else None


def write_whole(path, write):
    """Calls write(tmp) on a temporary file beside path, then renames it over path:
    readers never see a half-written file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; reports are for reading
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path, text):
    write_whole(path, lambda tmp: Path(tmp).write_text(text))


def write_json_atomic(path, data):
    write_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


# Fields of Google Benchmark's entries that nothing here reads, left out of results.json:
# how it numbers benchmark families, and one thread per benchmark (concbench's own
# threads are parameters). They made up a fifth of a default run's file.
_UNREAD_FIELDS = {"family_index", "per_family_instance_index"}
# Google Benchmark's aggregates other than the median: no reader takes them (reduce_runs
# takes the median, and every interval comes from the repetitions themselves).
_UNREAD_AGGREGATES = {"mean", "stddev", "cv"}


def compact_entry(entry):
    """entry without what results.json need not repeat: the unread numbering, threads
    when 1, and run_name where base_name(name) gives it back."""
    return {k: v for k, v in entry.items()
            if k not in _UNREAD_FIELDS and not (k == "threads" and v == 1)
            and not (k == "run_name" and v == base_name(entry["name"]))}


def write_results(path, data):
    """results.json: the usual JSON, but one benchmark entry per line, each compacted
    (compact_entry), and without the aggregates no reader takes (_UNREAD_AGGREGATES).
    Twenty-four runs of the decisive blocking_stall cells make thousands of entries,
    which indented run to megabytes; a line each keeps a run's file small and its diffs
    one line per entry."""
    rest = {k: v for k, v in data.items() if k != "benchmarks"}
    head = json.dumps(rest, indent=2)[:-2] + ",\n" if rest else "{\n"  # the object left open
    entries = ",\n".join("    " + json.dumps(compact_entry(entry)) for entry in data["benchmarks"]
                          if entry.get("aggregate_name") not in _UNREAD_AGGREGATES)
    write_atomic(path, head + '  "benchmarks": [\n' + entries + "\n  ]\n}\n")
