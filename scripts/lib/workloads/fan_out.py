"""fan_out: N requests to a local HTTP server that answers each after delay_us, at most
K in flight. Answers how close each model gets to the ideal wall time ceil(N / K) x delay
(ideal_ms; a model that holds fewer than K, in_flight_limit, cannot reach it), what holding one request in flight costs (client memory and CPU), how
fast it serves at delay 0 against `wrk` on the same server (the limit), and what failing
fast (group:all) does against letting every request settle (group:settled).

Series are the models, thread_pool split by how it holds requests:
`thread_pool pool:workers` (blocking calls in pool tasks) and `thread_pool pool:per_request`.
Every selection is at the series' largest --workers measured (summary["workers"]).

Summary layout (JSON-friendly: cells are lists, so no numeric keys):
  series                    every series seen (measured, skipped or failed), in report order
  workers[series]           its largest --workers with a valid cell; null if it has none
  cells[series] = [{name, group, n, k, delay_us, bytes, fail, workers, wall_ms, cpu_ms,
                    cpu_us_per_request, in_flight_limit, ideal_ms, ideal_ratio, requests_per_s,
                    latency_p50_us ... latency_max_us, ok, failed, timed_out, cancelled,
                    cancel_us, peak_rss_bytes, bytes_per_in_flight, repetitions,
                    spread: {ideal_ratio, requests_per_s: [lowest, highest]}}]   valid cells only, sorted;
                            a cell run several times holds the median, and its runs' range
  wrk = [{k, delay_us, bytes, requests_per_s, latency_p50_us, latency_p99_us, ideal_ratio,
          repetitions, spread}]
  stated                    the stated cells {ideal, rate} and checks, from the run (see _stated)
  wrk_ideal_ratio           wrk's wall / ideal at the ideal cell's K and delay (the floor); null if not run
  wrk_ideal_spread          {repetitions, range} of that figure
  ideal_ratio[series]       wall / ideal at the stated ideal cell; null where that cell has no valid run
  ideal_cell[series]        the same with status (measured | skipped | error | invalid | not_run |
                            no_ratio), reason, workers, in_flight_limit, ideal_ms, wall_ms,
                            repetitions, range
  rate_vs_wrk[series]       requests/s over wrk's at delay 0, the rate cell's K or the closest K both
                            measured (BASE settings); null where either is missing
  rate_vs_wrk_cell[series]  the same with k, status (measured | no_wrk | not_run | skipped | error |
                            invalid), reason, both rates, and each rate's {repetitions, range}
  footprint[series]         {n, k, delay_us, in_flight_limit, bytes_per_in_flight, peak_rss_bytes,
                             cpu_us_per_request} at the largest K measured at delay > 0; null if none
  groups = [{series, n, k, delay_us, bytes, fail, workers, settled: cell, all: cell}]
                            group:all beside group:settled wherever fail > 0 ran both
  latency_cell {where, reason, series: {series: {p50, p90, p99, p99.9, max}}}  the CDF plot's cell
  checks {event_loop_ideal, fibers_ideal, event_loop_vs_wrk: {held, value, limit, reason,
                                                               repetitions, range},
          counts: {held, cells, mismatches}}
  skipped = [{name, series, reason}], server, errors, count_mismatches, notes
"""

import json
import math

from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from markdown import answer, checks_table, section
from plotting import color_for, new_figure, plt, save
import results as res
from units import format_bytes, format_per_s as format_rate, format_range_us, format_us

NAME = "fan_out"
WRK = "wrk"  # the peer's "model": wrk -t1 -c K against the same server, the rate limit

# The stated cells and the checks come from the run (context fan_out_stated, written by
# concbench from workloads/fan_out/fan_out.hpp). Runs recorded before concbench wrote it
# stated these, which is all this copy is for.
STATED_BEFORE_CONTEXT = {
    "ideal": {"group": "settled", "n": 10000, "k": 100, "delay_us": 10000, "bytes": 64, "fail": 0},
    "rate": {"group": "settled", "n": 10000, "k": 64, "delay_us": 0, "bytes": 64, "fail": 0},
    "checks": {"event_loop_ideal": {"series": "event_loop", "figure": "ideal", "limit": 1.05, "at_most": True},
               "fibers_ideal": {"series": "fibers", "figure": "ideal", "limit": 1.1, "at_most": True},
               "event_loop_vs_wrk": {"series": "event_loop", "figure": "rate_vs_wrk", "limit": 0.9,
                                     "at_most": False}}}
# The summary key holding each check's figure, per series.
CHECK_DETAILS = {"ideal": "ideal_cell", "rate_vs_wrk": "rate_vs_wrk_cell"}
# Comparisons other than group:all's run here: every request settles, small bodies, no
# failures, so cells differ only in N, K and delay.
BASE = {"group": "settled", "bytes": 64, "fail": 0}
# The rate comparison wants as many connections for wrk as requests in flight for the
# model: the rate cell's K, else the K closest to it on a log scale (K is swept in powers).
KEY_FIELDS = ("group", "n", "k", "delay_us", "bytes", "fail")
WRK_FIELDS = ("k", "delay_us", "bytes")
COUNT_FIELDS = ("ok", "failed", "timed_out", "cancelled")
# Counters are doubles; counts differing by less than this are the same count.
COUNT_TOLERANCE = 0.5
POINT_FIELDS = ("in_flight_limit", "ideal_ms", "own_ideal_ms", "ideal_ratio", "requests_per_s", "latency_p50_us",
                "latency_p90_us", "latency_p99_us", "latency_p999_us", "latency_max_us", *COUNT_FIELDS,
                "cancel_us", "peak_rss_bytes", "bytes_per_in_flight")

POOL = "thread_pool pool:workers"
PER_REQUEST = "thread_pool pool:per_request"
SERIES_ORDER = ("serial", "event_loop", "fibers", "fibers_mt", POOL, PER_REQUEST, *res.PEER_MODELS)

# The latency plot's y axis is -log10(1 - q): p50 at 0.3, p90 at 1, p99 at 2, p99.9 at 3.
# q = 1 has no place on it, so the max sits one decade further, labelled as such.
PERCENTILES = (("p50", "latency_p50_us", 0.5), ("p90", "latency_p90_us", 0.9),
               ("p99", "latency_p99_us", 0.99), ("p99.9", "latency_p999_us", 0.999))
MAX_AT = 4
N_STYLES = ("-", "--", ":", "-.")

TITLE = "fan_out: N requests, K in flight"
PLOT_IDEAL = "fan_out_ideal_ratio"
PLOT_RATE = "fan_out_rate_vs_k"
PLOT_LATENCY = "fan_out_latency_cdf"


_rank = res.rank_in(SERIES_ORDER)


def parse(name):
    """(series, params) of a benchmark name: thread_pool's `pool:<workers|per_request>`
    names the series, as cpu_hash's `ship:` does."""
    parsed = res.parse_name(name)
    params = dict(parsed["params"])
    pool = params.pop("pool", None)
    series = parsed["model"] if pool is None else f"{parsed['model']} pool:{pool}"
    return series, params


def _matches(point, where):
    return all(point.get(field) == value for field, value in where.items())


# ---------------------------------------------------------------- summary

def summarize(records, results):
    """records: this workload's reduced runs (see results.reduce_runs)."""
    mismatches = _count_mismatches(records, results)
    invalid = {m["name"] for m in mismatches}
    errors, cells, wrk = [], {}, []
    for r in records:
        series, params = parse(r["name"])
        absent = [f for f in (WRK_FIELDS if series == WRK else KEY_FIELDS) if f not in params]
        if r["error"] or absent:
            errors.append({"name": r["name"], "message": r["error"] or f"no {absent[0]} in the benchmark name"})
        elif series == WRK:
            wrk.append({"k": params.get("k"), "delay_us": params.get("delay_us"), "bytes": params.get("bytes"),
                        **{f: res.finite(r.get(f)) for f in ("requests_per_s", "latency_p50_us", "latency_p99_us",
                                                         "ideal_ratio")}, **_spread(r)})
        elif r["name"] not in invalid:
            cells.setdefault(series, []).append(_cell(r, params))
    skipped, notes = _skipped(results)
    seen = set(cells) | {parse(e["name"])[0] for e in errors + mismatches} | {s["series"] for s in skipped}
    order = sorted(seen - {WRK}, key=_rank)

    summary = {
        "stated": _stated(results),
        "series": order,
        "workers": {s: max((c["workers"] for c in cells.get(s, [])), default=None) for s in order},
        "cells": {s: sorted(cells[s], key=lambda c: tuple(c[f] for f in KEY_FIELDS + ("workers",)))
                  for s in order if s in cells},
        "wrk": sorted(wrk, key=lambda w: (w["delay_us"], w["bytes"], w["k"])),
        "skipped": skipped, "server": (results.get("context") or {}).get("fan_out_server"),
        "errors": errors, "count_mismatches": mismatches, "notes": notes,
    }
    summary["ideal_cell"] = {s: _ideal(summary, s) for s in order}
    wrk_ideal = next((w for w in summary["wrk"] if (w["k"], w["delay_us"], w["bytes"]) ==
                      tuple(summary["stated"]["ideal"][f] for f in ("k", "delay_us", "bytes"))), {})
    summary["wrk_ideal_ratio"] = wrk_ideal.get("ideal_ratio")
    summary["wrk_ideal_spread"] = _runs(wrk_ideal, "ideal_ratio")
    summary["ideal_ratio"] = {s: c["ratio"] for s, c in summary["ideal_cell"].items()}
    summary["rate_vs_wrk_cell"] = {s: _rate_vs_wrk(summary, s) for s in order}
    summary["rate_vs_wrk"] = {s: c["ratio"] for s, c in summary["rate_vs_wrk_cell"].items()}
    summary["footprint"] = {s: _footprint(summary, s) for s in order}
    summary["groups"] = _groups(summary)
    summary["latency_cell"] = _latency_cell(summary)
    summary["checks"] = _checks(summary, records)
    return summary


def _stated(results):
    """The run's stated cells and checks (see STATED_BEFORE_CONTEXT)."""
    text = (results.get("context") or {}).get("fan_out_stated")
    if not text:
        return STATED_BEFORE_CONTEXT
    try:
        stated = json.loads(text)
        if isinstance(stated, dict) and all(isinstance(stated.get(key), dict) for key in ("ideal", "rate", "checks")):
            return stated
    except json.JSONDecodeError:
        pass
    raise res.ResultsError("results.json: context fan_out_stated is not the object concbench writes")


def _cell(r, params):
    n = res.finite(r.get("n")) or params.get("n")
    real, cpu = r.get("real_time_ns"), r.get("cpu_time_ns")
    if res.is_peer(r["model"]):
        cpu = None  # concbench's process time, not the peer's
    wall = res.finite(r.get("wall_ms"))  # the client's own; before it was counted, the cell's real time
    return {"name": r["name"], **{f: params.get(f) for f in KEY_FIELDS}, "workers": params.get("workers", 1),
            "wall_ms": wall if wall is not None else real / 1e6 if real is not None else None,
            "cpu_ms": cpu / 1e6 if cpu is not None else None,
            "cpu_us_per_request": cpu / n / 1e3 if cpu is not None and n else None,
            **{f: res.finite(r.get(f)) for f in POINT_FIELDS}, **_spread(r)}


def _spread(r):
    """How many repetitions a run had (the stated cells repeat; the figures are their
    median) and the lowest and highest ideal_ratio and requests_per_s among them."""
    return {"repetitions": r.get("repetitions", 1),
            "spread": {f: s for f in ("ideal_ratio", "requests_per_s") if (s := res.spread(r, f))},
            "runs": {f: res.run_values(r, f) for f in ("ideal_ratio", "requests_per_s")}}


def _runs(point, field):
    """{repetitions, range, values} of one figure of a cell or wrk entry (see _spread)."""
    return {"repetitions": point.get("repetitions", 1), "range": (point.get("spread") or {}).get(field),
            "values": (point.get("runs") or {}).get(field)}


def _count_mismatches(records, results):
    """Every entry (repetitions, not aggregates) must end each request exactly once:
    ok + failed + timed_out + cancelled == n. Runs that left only aggregates are checked on
    their reduced record. wrk's entries count nothing."""
    out, checked = [], set()
    for e in results.get("benchmarks") or []:
        name = e.get("run_name") or e.get("name", "")
        if (not name.startswith(NAME + "/") or parse(name)[0] == WRK or e.get("error_occurred")
                or e.get("run_type") == "aggregate"):
            continue
        checked.add(name)
        if message := _count_problem(e, parse(name)[1]):
            out.append({"name": name, "repetition": e.get("repetition_index"), "message": message})
    for r in records:
        if r["error"] or r["name"] in checked or parse(r["name"])[0] == WRK:
            continue
        if message := _count_problem(r, r["params"]):
            out.append({"name": r["name"], "repetition": None, "message": message})
    return out


def _count_problem(entry, params):
    n = res.finite(entry.get("n")) or res.finite(params.get("n"))
    if problem := res.unusable_counters(entry, COUNT_FIELDS + (() if n is not None else ("n",))):
        return problem
    counts = {f: res.finite(entry.get(f)) for f in COUNT_FIELDS}
    total = sum(counts.values())
    if abs(total - n) < COUNT_TOLERANCE:
        return None
    return (" + ".join(f"{f} {v:g}" for f, v in counts.items()) + f" = {total:g} ≠ n {n:g} "
            f"({abs(n - total):g} requests {'unaccounted for' if total < n else 'too many'})")


def _skipped(results):
    """context.fan_out_skipped of every run: bench.merge_runs keeps only the first run's
    context as results['context'], each run's own is in results['runs']. Returns
    (skipped, notes); a value that is not a JSON list of {name, reason} becomes a note."""
    contexts = [results.get("context") or {}] + [c for c in results.get("runs") or [] if isinstance(c, dict)]
    skipped, notes, names = [], [], set()
    for context in contexts:
        raw = context.get("fan_out_skipped")
        if raw is None:
            continue
        try:
            items = json.loads(raw) if isinstance(raw, str) else raw
            if not isinstance(items, list) or not all(isinstance(i, dict) and isinstance(i.get("name"), str)
                                                      for i in items):
                raise ValueError("not a list of {name, reason} objects")
        except ValueError as e:
            note = f"context fan_out_skipped is unreadable ({e}); its skipped cells are not listed"
            if note not in notes:
                notes.append(note)
            continue
        for item in items:
            if item["name"] not in names:
                names.add(item["name"])
                skipped.append({"name": item["name"], "series": parse(item["name"])[0],
                                "reason": str(item.get("reason") or "no reason given")})
    return skipped, notes


def _valid(summary, series):
    """The series' valid cells at its largest workers."""
    workers = summary["workers"].get(series)
    return [c for c in summary["cells"].get(series, []) if c["workers"] == workers]


def _select(summary, series, where):
    """{status, reason, cell} for series' cell matching where (the largest N if several):
    measured, or why not (skipped, error or invalid, preferring the series' workers)."""
    found = [c for c in _valid(summary, series) if _matches(c, where)]
    if found:
        return {"status": "measured", "reason": None, "cell": max(found, key=lambda c: c["n"])}
    workers = summary["workers"].get(series)
    why = []
    for status, entries, field in (("skipped", summary["skipped"], "reason"), ("error", summary["errors"], "message"),
                                   ("invalid", summary["count_mismatches"], "message")):
        for e in entries:
            name_series, params = parse(e["name"])
            if name_series == series and _matches(params, where):
                w = params.get("workers", 1)
                why.append(((w == workers, w), status, e[field]))
    if not why:
        return {"status": "not_run", "reason": "not run", "cell": None}
    _, status, reason = max(why, key=lambda x: x[0])
    return {"status": status, "reason": reason, "cell": None}


def _ideal(summary, series):
    got = _select(summary, series, summary["stated"]["ideal"])
    cell = got["cell"] or {}
    if got["cell"] and cell["ideal_ratio"] is None:
        got = dict(got, status="no_ratio", reason="no ideal_ratio counter")
    return {"ratio": cell.get("ideal_ratio"), "status": got["status"], "reason": got["reason"],
            "workers": cell.get("workers"), "in_flight_limit": cell.get("in_flight_limit"),
            "ideal_ms": cell.get("ideal_ms"), "own_ideal_ms": cell.get("own_ideal_ms"), "wall_ms": cell.get("wall_ms"),
            **_runs(cell, "ideal_ratio")}


def _rate_vs_wrk(summary, series):
    where = dict(BASE, delay_us=0)
    result = {"ratio": None, "k": None, "status": None, "reason": None, "requests_per_s": None,
              "wrk_requests_per_s": None, "workers": summary["workers"].get(series)}
    wrk_runs = {w["k"]: w for w in summary["wrk"]
                if w["delay_us"] == 0 and w["bytes"] == BASE["bytes"] and w["requests_per_s"]}
    wrk = {k: w["requests_per_s"] for k, w in wrk_runs.items()}
    if not wrk:
        return dict(result, status="no_wrk", reason="wrk was not measured")
    ks = {c["k"] for c in _valid(summary, series) if _matches(c, where) and c["requests_per_s"]} & set(wrk)
    if not ks:
        got = _select(summary, series, dict(where, k=_rate_k(summary)))  # why not at the stated K, where known
        if got["status"] in ("measured", "not_run"):
            return dict(result, status="not_run", reason="no K measured by both at delay 0")
        return dict(result, status=got["status"], reason=got["reason"])
    k = min(ks, key=lambda k: (abs(math.log(k / _rate_k(summary))), -k))
    cell = _select(summary, series, dict(where, k=k))["cell"]
    rate = cell["requests_per_s"]
    return dict(result, ratio=rate / wrk[k], k=k, status="measured", requests_per_s=rate, wrk_requests_per_s=wrk[k],
                rates=_runs(cell, "requests_per_s"), wrk_rates=_runs(wrk_runs[k], "requests_per_s"))


def _footprint(summary, series):
    cells = [c for c in _valid(summary, series) if _matches(c, BASE) and c["delay_us"] > 0]
    if not cells:
        return None
    # The largest K, and there the smallest N: models that start a task per request
    # (event_loop, fibers) hold N - K waiting tasks too, which N = K leaves out.
    c = max(cells, key=lambda c: (c["k"], -c["n"], c["delay_us"]))
    return {f: c[f] for f in ("n", "k", "delay_us", "workers", "in_flight_limit", "bytes_per_in_flight",
                              "peak_rss_bytes", "cpu_us_per_request")}


def _groups(summary):
    out = []
    for series in summary["series"]:
        cells = _valid(summary, series)
        for fail_all in (c for c in cells if c["group"] == "all" and (c["fail"] or 0) > 0):
            same = {f: fail_all[f] for f in KEY_FIELDS if f != "group"}
            settled = next((c for c in cells if c["group"] == "settled" and _matches(c, same)), None)
            if settled:
                out.append({"series": series, **same, "workers": fail_all["workers"],
                            "settled": settled, "all": fail_all})
    return out


def _latency_cell(summary):
    """The stated ideal cell where any series measured it, else the busiest delay-0 cell
    (largest K, then N) at BASE settings."""
    ideal = summary["stated"]["ideal"]
    if any(_select(summary, s, ideal)["cell"] for s in summary["series"]):
        where, reason = dict(ideal), "the headline cell"
    else:
        zero = [c for s in summary["series"] for c in _valid(summary, s) if _matches(c, dict(BASE, delay_us=0))]
        if not zero:
            return None
        busiest = max(zero, key=lambda c: (c["k"], c["n"]))
        where, reason = dict(BASE, delay_us=0, n=busiest["n"], k=busiest["k"]), "the busiest delay-0 cell"
    points = {}
    for s in summary["series"]:
        cell = _select(summary, s, where)["cell"]
        if cell:
            points[s] = {label: cell[field] for label, field, _ in PERCENTILES}
            points[s]["max"] = cell["latency_max_us"]
    return {"where": where, "reason": reason, "series": points}


def _rate_k(summary):
    return summary["stated"]["rate"]["k"]


def _checks_stated(summary):
    """[(name, (series, summary key of its detail, limit, at_most))] of the run's checks."""
    return [(name, (c["series"], CHECK_DETAILS[c["figure"]], c["limit"], c["at_most"]))
            for name, c in summary["stated"]["checks"].items()]


def _checks(summary, records):
    out = {}
    for check, (series, detail, limit, at_most) in _checks_stated(summary):
        got = summary[detail].get(series) or {"ratio": None, "reason": "not run"}
        value = got["ratio"]
        held = None if value is None else (value <= limit if at_most else value >= limit)
        out[check] = {"held": held, "value": value, "limit": limit, "k": got.get("k"),
                      "reason": got["reason"] if value is None else None,
                      "repetitions": got.get("repetitions", 1), "range": got.get("range")}
    cells = sum(1 for r in records if not r["error"] and parse(r["name"])[0] != WRK)
    out["counts"] = {"held": not summary["count_mismatches"], "cells": cells,
                     "mismatches": len({m["name"] for m in summary["count_mismatches"]})}
    return out


# ---------------------------------------------------------------- formatting

def stated(summary):
    """The figures this workload states, for scripts/compare (see compare.py)."""
    out = []
    for series in summary["series"]:
        ideal = summary["ideal_cell"][series]
        if ideal["ratio"] is not None:
            out.append({"key": f"ideal_ratio/{series}", "unit": "×", "better": "lower",
                        "label": f"{series}: wall time ÷ ideal, {_where_text(summary['stated']['ideal'])}",
                        "value": ideal["ratio"], "runs": ideal.get("values"), "workers": ideal["workers"]})
        rate = summary["rate_vs_wrk_cell"][series]
        if rate["ratio"] is not None:
            wrk = rate["wrk_requests_per_s"]
            out.append({"key": f"rate_vs_wrk/{series}", "unit": "×", "better": "higher",
                        "label": f"{series}: requests/s ÷ wrk's, K={rate['k']:g}, delay 0",
                        "value": rate["ratio"], "workers": rate["workers"],
                        "runs": [v / wrk for v in rate["rates"].get("values") or []] or None})
    return out


def format_ms(ms):
    return "n/a" if ms is None else format_us(ms * 1e3)


def _where_text(where):
    delay = where["delay_us"]
    return f"N={where['n']:g}, K={where['k']:g}, delay {format_us(delay) if delay else '0'}"


def _with_workers(workers):
    return f" with {workers:g} workers" if workers and workers > 1 else ""


def _count(value):
    return "–" if value is None else f"{value:g}"


def _series_color(series):
    # pool:workers is the classic thread pool and keeps its colour; per_request gets a spare one.
    return color_for("thread_pool") if series == POOL else color_for(series)


# ---------------------------------------------------------------- plots

def plot(summary, plots_dir):
    return _plot_ideal(summary, plots_dir) + _plot_rate(summary, plots_dir) + _plot_latency(summary, plots_dir)


def _lines(summary, where, field):
    """[(series, workers, n, [(k, value)])] at each series' workers, positive values only (log axes)."""
    out = []
    for series in summary["series"]:
        by_n = {}
        for c in _valid(summary, series):
            if _matches(c, where) and (c.get(field) or 0) > 0:
                by_n.setdefault(c["n"], []).append((c["k"], c[field]))
        out += [(series, summary["workers"][series], n, sorted(points)) for n, points in sorted(by_n.items())]
    return out


def _draw(ax, lines, ns):
    for series, workers, n, points in lines:
        label = series + (f" ({workers:g} workers)" if workers > 1 else "") + (f", N={n:g}" if len(ns) > 1 else "")
        ax.plot([k for k, _ in points], [v for _, v in points], marker="o", color=_series_color(series),
                linestyle=N_STYLES[ns.index(n) % len(N_STYLES)], label=label)


def _k_axis(ax, ks):
    ax.set_xscale("log")
    ax.set_xticks(ks)
    ax.set_xticklabels([f"{k:g}" for k in ks])
    ax.minorticks_off()
    ax.set_xlabel("K: requests allowed in flight (log scale)")


def _log_if_decades(ax, values):
    if values and max(values) >= 10 * min(values):
        ax.set_yscale("log")


def _legend(ax, axes=None):
    """One legend right of ax, outside the data, from every axes in axes."""
    handles, labels = {}, []
    for a in axes or [ax]:
        for handle, label in zip(*a.get_legend_handles_labels()):
            if label not in handles:
                handles[label] = handle
                labels.append(label)
    ax.legend([handles[label] for label in labels], labels, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              fontsize="small")


def _plot_ideal(summary, plots_dir):
    delays = sorted({c["delay_us"] for s in summary["series"] for c in _valid(summary, s)
                     if _matches(c, BASE) and c["delay_us"] > 0 and c["ideal_ratio"]})
    if not delays:
        return []
    fig, axes = plt.subplots(1, len(delays), figsize=(4.5 * len(delays) + 4, 5.5), sharey=True, squeeze=False)
    axes = list(axes[0])
    values = []
    for ax, delay in zip(axes, delays):
        lines = _lines(summary, dict(BASE, delay_us=delay), "ideal_ratio")
        ns = sorted({n for _, _, n, _ in lines})
        _draw(ax, lines, ns)
        ax.axhline(1.0, color="gray", linestyle="--", linewidth=1, label="ideal: ceil(N / K) × delay")
        _k_axis(ax, sorted({k for *_, points in lines for k, _ in points}))
        ax.grid(True, which="major", alpha=0.3)
        ax.set_title(f"delay {format_us(delay)}" + (f", N={ns[0]:g}" if len(ns) == 1 else ""))
        values += [v for *_, points in lines for _, v in points] + [1.0]
    _log_if_decades(axes[0], values)
    axes[0].set_ylabel("wall time / ideal (1 = ideal; lower is better)")
    _legend(axes[-1], axes)
    fig.suptitle("fan_out: wall time against the ideal by K (group:settled, 64 B bodies, no failures; "
                 "each series at its largest --workers)")
    return save(fig, plots_dir, PLOT_IDEAL)


def _plot_rate(summary, plots_dir):
    lines = _lines(summary, dict(BASE, delay_us=0), "requests_per_s")
    wrk = sorted((w["k"], w["requests_per_s"]) for w in summary["wrk"]
                 if w["delay_us"] == 0 and w["bytes"] == BASE["bytes"] and w["requests_per_s"])
    if not lines:
        return []
    fig, ax = new_figure()
    _draw(ax, lines, sorted({n for _, _, n, _ in lines}))
    if wrk:
        ax.plot([k for k, _ in wrk], [v for _, v in wrk], color="gray", linestyle="--", marker="x",
                label="wrk -c K on the same server (the limit)")
    _k_axis(ax, sorted({k for *_, points in lines for k, _ in points} | {k for k, _ in wrk}))
    _log_if_decades(ax, [v for *_, points in lines for _, v in points] + [v for _, v in wrk])
    ax.set_ylabel("requests per second (higher is better)")
    ax.set_title("fan_out: requests per second at delay 0 by K\n(group:settled, 64 B bodies; "
                 "each series at its largest --workers)")
    _legend(ax)
    return save(fig, plots_dir, PLOT_RATE)


def _plot_latency(summary, plots_dir):
    cell = summary["latency_cell"]
    if not cell or not cell["series"]:
        return []
    fig, ax = new_figure()
    ys = [-math.log10(1 - q) for _, _, q in PERCENTILES] + [MAX_AT]
    labels = [label for label, _, _ in PERCENTILES] + ["max"]
    for series, points in cell["series"].items():
        drawn = [(points[label], y) for label, y in zip(labels, ys) if (points[label] or 0) > 0]
        workers = summary["workers"][series]
        ax.plot([x for x, _ in drawn], [y for _, y in drawn], marker="o", color=_series_color(series),
                label=series + (f" ({workers:g} workers)" if workers > 1 else ""))
    ax.set_xscale("log")
    # Ticks at 1, 2 and 5 of each decade, named in µs/ms/s: the points rarely span a decade.
    ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: format_us(value)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("latency per request (log scale)")
    ax.set_yticks(ys)
    ax.set_yticklabels(labels)
    ax.set_ylabel("percentile (spaced as -log10(1 - q))")
    ax.set_title(f"fan_out: latency percentiles at {_where_text(cell['where'])}\n({cell['reason']}; "
                 f"group:settled, 64 B bodies; each series at its largest --workers)")
    _legend(ax)
    return save(fig, plots_dir, PLOT_LATENCY)


# ---------------------------------------------------------------- report

def report(summary, plots):
    """Markdown section; plots are paths relative to the report (plots/x.png)."""
    intro = ("N requests to a local HTTP server that answers each after `delay_us`, at most K in flight. "
             "The ideal wall time is ceil(N / K) × delay (counter ideal_ms); a model that cannot hold K "
             "(a thread pool doing blocking calls holds one per thread) cannot reach it. At delay 0, requests "
             "per second are compared with `wrk` driving the same server with K connections: the limit. "
             "Memory per in-flight request is the client's resident growth over the run divided by the "
             "requests it held in flight; CPU per request is the client's process CPU time over N.")
    if summary["server"]:
        intro += f" Server: {summary['server']}."
    tables = []
    if summary["cells"]:
        tables += [_ideal_table(summary), _rate_table(summary), _footprint_table(summary)]
    if summary["groups"]:
        tables.append(_groups_table(summary))
    if summary["skipped"]:
        tables.append(["Cells not run:", "", "| cell | reason |", "|---|---|"]
                      + [f"| `{s['name']}` | {s['reason']} |" for s in summary["skipped"]])
    tables.append(_checks_table(summary))
    errors = [f"`{e['name']}`: {e['message']}" for e in summary["errors"]]
    errors += [f"`{m['name']}`" + (f" (repetition {m['repetition']})" if m["repetition"] is not None else "")
               + f": {m['message']}; not a valid run, left out of every table, plot and check"
               for m in summary["count_mismatches"]]
    errors += [f"results.json: {note}" for note in summary["notes"]]
    return section(TITLE, intro, plots, tables, errors, conclusions(summary))


def answers(summary):
    """The Answers lines of the report: each model against the ideal and against wrk."""
    out = []
    ideal = [f"{s} {c['ratio']:.3g}×{_range_text(c)}{_with_workers(c['workers'])}"
             for s, c in summary["ideal_cell"].items() if c["ratio"] is not None]
    if summary.get("wrk_ideal_ratio") is not None:
        ideal.append(f"wrk {summary['wrk_ideal_ratio']:.3g}×")
    if ideal:
        out.append(answer("Fan-out: how close to the ideal?", f"Wall time over the ideal at "
                          f"{_where_text(summary['stated']['ideal'])}: {', '.join(ideal)}.", TITLE))
    rates = [f"{s} {c['ratio']:.3g}× (K={c['k']:g})" for s, c in summary["rate_vs_wrk_cell"].items()
             if c["ratio"] is not None]
    if rates:
        out.append(answer("Fan-out: how close to wrk?", f"Requests per second over wrk's with as many "
                          f"connections, at delay 0: {', '.join(rates)}.", TITLE))
    return out


def _status_cell(got):
    return {"skipped": "skipped: ", "error": "error: ", "invalid": "invalid: "}.get(got["status"], "") + got["reason"]


def _ideal_table(summary):
    lines = [f"Wall time against the ideal at {_where_text(summary['stated']['ideal'])} (group:settled, 64 B bodies, "
             "no failures), each series at its largest --workers:", "",
             "| series | workers | in flight | ideal | wall | wall / ideal |", "|---|---:|---:|---:|---:|---:|"]
    for series, c in summary["ideal_cell"].items():
        if c["status"] != "measured":
            lines.append(f"| {series} | – | – | – | – | {_status_cell(c)} |")
        else:
            lines.append(f"| {series} | {c['workers']:g} | {_count(c['in_flight_limit'])} | "
                         f"{format_ms(c['ideal_ms'])} | {format_ms(c['wall_ms'])} | "
                         + ("–" if c["ratio"] is None else f"{c['ratio']:.3f}×{_range_text(c)}") + " |")
    if summary.get("wrk_ideal_ratio") is not None:
        k = summary["stated"]["ideal"]["k"]
        lines.append(f"| wrk (peer, {k} connections for 2 s) | – | {k} | – | – | "
                     f"{summary['wrk_ideal_ratio']:.3f}×{_range_text(summary['wrk_ideal_spread'])} |")
    if any(c.get("repetitions", 1) > 1 for c in summary["ideal_cell"].values()):
        lines += ["", "With several runs of a cell, its figure is their median, and the runs' lowest and "
                      "highest follow it."]
    return lines


def _range_text(got, low_text=lambda v: f"{v:.3f}", high_text=lambda v: f"{v:.3f}"):
    """' (1.031–1.048 over 3 runs)' for a repeated figure; nothing for one run."""
    if got.get("repetitions", 1) < 2 or not got.get("range"):
        return ""
    low, high = got["range"]
    return f" ({low_text(low)}–{high_text(high)} over {got['repetitions']} runs)"


def _rate_table(summary):
    lines = [f"Requests per second at delay 0 (group:settled, 64 B bodies) against wrk with as many connections "
             f"as K: K={_rate_k(summary)}, else the K closest to it that both measured:", "",
             "| series | workers | K | requests/s | wrk requests/s | vs wrk |", "|---|---:|---:|---:|---:|---:|"]
    for series, c in summary["rate_vs_wrk_cell"].items():
        if c["ratio"] is None:
            lines.append(f"| {series} | – | – | – | – | {_status_cell(c)} |")
        else:
            lines.append(f"| {series} | {c['workers']:g} | {c['k']:g} | "
                         f"{format_rate(c['requests_per_s'])}{_rate_range_text(c['rates'])} | "
                         f"{format_rate(c['wrk_requests_per_s'])}{_rate_range_text(c['wrk_rates'])} | "
                         f"{c['ratio']:.2f}× |")
    return lines


def _rate_range_text(got):
    """' (126k–159k/s over 3 runs)' for a repeated rate; nothing for one run."""
    return _range_text(got, lambda v: format_rate(v).removesuffix("/s"), format_rate)


def _footprint_table(summary):
    lines = ["What holding requests costs the client, at each series' largest K measured at delay > 0 and "
             "there the smallest N (group:settled, 64 B bodies, no failures). Memory per in-flight request "
             "is the client's resident growth over the run divided by the requests in flight; where N > K, "
             "the fibers waiting for a slot are in it too (event_loop starts a request once it has one):", "",
             "| series | workers | N | K | delay | in flight | memory per in-flight request | peak RSS "
             "| client CPU per request |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for series, f in summary["footprint"].items():
        if f is None:
            lines.append(f"| {series} |" + " – |" * 8)
            continue
        memory = "–" if f["bytes_per_in_flight"] is None else format_bytes(f["bytes_per_in_flight"])
        peak = "–" if f["peak_rss_bytes"] is None else format_bytes(f["peak_rss_bytes"])
        lines.append(f"| {series} | {f['workers']:g} | {f['n']:g} | {f['k']:g} | {format_us(f['delay_us'])} | "
                     f"{_count(f['in_flight_limit'])} | {memory} | {peak} | {format_us(f['cpu_us_per_request'])} |")
    return lines


def _groups_table(summary):
    lines = ["Failing fast (group:all stops the rest at the first failure) against letting every request "
             "settle; cancel is the time from the first failure until the last sibling stopped:", "",
             "| series | workers | N | K | delay | fail | group | ok | failed | timed out | cancelled | wall "
             "| cancel |", "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for g in summary["groups"]:
        for group in ("settled", "all"):
            c = g[group]
            lines.append(f"| {g['series']} | {g['workers']:g} | {g['n']:g} | {g['k']:g} | "
                         f"{format_us(g['delay_us']) if g['delay_us'] else '0'} | {g['fail']:g} | {group} | "
                         + " | ".join(_count(c[f]) for f in COUNT_FIELDS)
                         + f" | {format_ms(c['wall_ms'])} | "
                         + ("–" if c["cancel_us"] is None else format_us(c["cancel_us"])) + " |")
    return lines


def conclusions(summary):
    """Sentences computed from the summary; nothing here is typed by hand. None without a
    valid cell: the errors and skipped cells say all there is."""
    if not summary["cells"]:
        return []
    return (_ideal_sentence(summary) + _rate_sentence(summary) + _footprint_sentence(summary)
            + _group_sentences(summary) + _skipped_sentence(summary))


def _missing_phrase(got):
    return {"skipped": f"was skipped ({got['reason']})", "error": f"failed ({got['reason']})",
            "invalid": f"has no valid run ({got['reason']})",
            "no_ratio": "reported no ideal_ratio"}.get(got["status"], got["reason"])


def _ideal_sentence(summary):
    stated = summary["stated"]["ideal"]
    where = _where_text(stated)
    # The ideal as concbench computed it (counter ideal_ms), from any series that ran the cell.
    ideal = format_ms(next((c["ideal_ms"] for c in summary["ideal_cell"].values() if c.get("ideal_ms")), None))
    lead, parts, missing = None, [], []
    for series, c in summary["ideal_cell"].items():
        if c["status"] != "measured" or c["ratio"] is None:
            missing.append(f"{series} {_missing_phrase(c)}")
            continue
        held = ""
        if c["in_flight_limit"] is not None and c["in_flight_limit"] < stated["k"]:
            held = f", holding only {c['in_flight_limit']:g} requests in flight"
            if c.get("own_ideal_ms") is not None:
                held += f" (its own ideal {format_ms(c['own_ideal_ms'])})"
        if lead is None:
            lead = f"{series} completes {where} in {c['ratio']:.3f}× the ideal {ideal}{_with_workers(c['workers'])}{held}"
        else:
            parts.append(f"{series} {c['ratio']:.3f}×{_with_workers(c['workers'])}{held}")
    floor = ([f"wrk, driving the same server with {stated['k']} connections, reaches "
              f"{summary['wrk_ideal_ratio']:.3f}× the ideal there: what this machine and server allow a "
              "lean client (requests that start together finish together, and each batch is "
              "served one request at a time on both sides)."]
             if summary.get("wrk_ideal_ratio") is not None else [])
    if lead is None:
        return [f"No series completed {where}: " + "; ".join(missing) + "."] + floor
    return ["; ".join([lead] + parts + missing) + "."] + floor


def _rate_sentence(summary):
    cells = summary["rate_vs_wrk_cell"]
    if any(c["status"] == "no_wrk" for c in cells.values()):
        return [f"wrk was not measured in this run (no fan_out/wrk entry at delay 0 with {BASE['bytes']} B bodies), "
                "so requests per second have no limit to compare with."]
    parts = []
    for series, c in cells.items():
        if c["ratio"] is None:
            parts.append(f"{series} not compared ({c['reason']})")
            continue
        wanted = _rate_k(summary)
        at = f"K={c['k']:g}" + ("" if c["k"] == wanted else f", the closest to {wanted} measured by both")
        parts.append(f"{series} {c['ratio']:.2f}× at {at} ({format_rate(c['requests_per_s'])} against "
                     f"{format_rate(c['wrk_requests_per_s'])})")
    return [f"At delay 0, requests per second against wrk with as many connections: {'; '.join(parts)}."]


def _footprint_sentence(summary):
    out = []
    for field, what, fmt in (("bytes_per_in_flight", "Client memory per in-flight request", format_bytes),
                             ("cpu_us_per_request", "Client CPU per request", format_us)):
        values = sorted((f[field], s) for s, f in summary["footprint"].items() if f and f[field] is not None)
        if not values:
            continue
        (low, low_s), (high, high_s) = values[0], values[-1]
        span = (f"{fmt(low)} ({low_s})" if len(values) == 1 else
                f"{fmt(low)} for every series" if high == low else
                f"from {fmt(low)} ({low_s}) to {fmt(high)} ({high_s})"
                + (f", {high / low:.3g}× apart" if low > 0 else ""))
        out.append(f"{what}, at each series' largest K measured at delay > 0: {span}.")
    return out


def _group_sentences(summary):
    """What the group table adds up to, in one sentence: how fast group:all stopped and how
    much of the work it spared, across the series (the table gives each)."""
    stopped = [g for g in summary["groups"] if g["all"]["cancel_us"] is not None]
    if not stopped:
        return []
    cancel = [g["all"]["cancel_us"] for g in stopped]
    spared = [g["all"]["cancelled"] / g["n"] for g in stopped if g["all"]["cancelled"] is not None and g["n"]]
    walls = [g["all"]["wall_ms"] / g["settled"]["wall_ms"] for g in stopped
             if g["settled"]["wall_ms"] and g["all"]["wall_ms"]]
    text = (f"Failing fast (group:all, fail {stopped[0]['fail']:g}) stopped "
            f"{format_range_us(min(cancel), max(cancel))} after the first failure")
    if spared:
        text += f", cancelling {_span([100 * v for v in spared], '{:.0f}')}% of the requests"
    if walls:
        text += f", in {_span(walls, '{:.2g}')}× group:settled's wall time"
    return [text + " (the table gives each series)."]


def _span(values, style):
    low, high = style.format(min(values)), style.format(max(values))
    return low if low == high else f"{low}–{high}"


def _skipped_sentence(summary):
    n = len(summary["skipped"])
    if not n:
        return []
    return [f"{n} cell{'s were' if n > 1 else ' was'} not run; the table above gives each reason."]


def _checks_table(summary):
    rows = []
    for name, (series, _, limit, at_most) in _checks_stated(summary):
        check = summary["checks"][name]
        if at_most:
            row = (f"{series} against the ideal", f"≤ {limit:g}× at {_where_text(summary['stated']['ideal'])}")
        else:
            k = f"K={check['k']:g}" if check["k"] is not None else f"K={_rate_k(summary)} or the closest"
            row = (f"{series} against wrk", f"≥ {limit:g}× wrk's requests/s, same connections ({k})")
        measured = check["reason"] if check["held"] is None else f"{check['value']:.3f}×{_range_text(check)}"
        rows.append((*row, measured, check["held"]))
    counts = summary["checks"]["counts"]
    rows.append(("every request accounted for", "ok + failed + timed_out + cancelled = n in every cell",
                 f"all {counts['cells']} cells" if counts["held"] else
                 f"{counts['mismatches']} of {counts['cells']} cells differ (under Errors, left out of every "
                 "table, plot and check)", counts["held"]))
    return checks_table("Checks:", rows)
