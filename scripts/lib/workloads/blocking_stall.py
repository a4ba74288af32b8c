"""blocking_stall: a blocking or CPU-heavy call among light requests, run inline or
offloaded to threads or to processes. Answers from how much work offloading pays
off, and what one offload costs.

Summary layout (JSON-friendly, numbers as string keys):
  series[model][kind][offload][rate][workers][work_us] = {light_p50_us, ..., lag_p99_us,
                                          light_per_s, heavy_per_s, heavy_every_us,
                                          stall_p50_us (inline only), scheduled, completed, failed}
  break_even_us[model][kind][target]     work_us from which offloading keeps beating inline
                                         on light p99 (at most BEATS_INLINE_BY x inline's);
                                         null where it never does (or unmeasured)
  break_even[model][kind][target]        the same with how it was found: status
                                         (pays_off | never | missing), rate, workers, ...
  offload_cost_us[model][target]         heavy p50 offloaded minus inline at the smallest
                                         work_us, kind:cpu; null where not measured
  offload_cost[model][kind][target]      the same per kind, with the numbers behind it
  calibration {thread_rtt_us, thread_rtt_cross_core_us, pipe_rtt_us, pipe_rtt_cross_core_us,
               thread_pool_rtt_us, process_pool_rtt_us}
                                         the calibrated round trips; null where not measured
                                         (no cross-core ones on a one-core machine)
  checks {stall_visible, sleep_offload_bounded, offload_cost_vs_rtt}: the issue's
                                         validity checks, measured (see the constants below)
  work_sizes, rates, errors, count_mismatches
"""

import math

from markdown import section
from plotting import color_for, plt, save
import results as res

NAME = "blocking_stall"

INLINE = "inline"
TARGETS = ("threads", "processes")
OFFLOAD_ORDER = (INLINE,) + TARGETS
KIND_ORDER = ("cpu", "sleep")
MODEL_ORDER = ("event_loop", "fibers", "thread_pool")
# The offload cost headline uses CPU work: a 1 us nanosleep really sleeps far longer,
# so kind:cpu is the cleaner measure of the hand-off alone.
HEADLINE_KIND = "cpu"

# Per-request figures copied from each benchmark into the series.
POINT_FIELDS = ("light_p50_us", "light_p90_us", "light_p99_us", "light_p999_us", "light_max_us",
                "heavy_p50_us", "heavy_p99_us", "lag_p99_us", "lag_max_us", "light_per_s", "heavy_per_s",
                "heavy_every_us", "stall_p50_us", "scheduled", "completed", "failed")
COUNT_FIELDS = ("scheduled", "completed", "failed")
# Counters are doubles; a count differing by less than this is the same count.
COUNT_TOLERANCE = 0.5

# Offloading beats inline where its light p99 is at most this share of inline's. Where
# the stall is below the machine's own tail (small work), the two p99s are the same
# noise, and one run on a shared machine moves a p99 by about a fifth: a bare "lower"
# would find break-evens in that noise.
BEATS_INLINE_BY = 0.8
# A break-even's sentence names the stall the inline call caused where it was more than
# this many times the nominal work (a 3 µs nanosleep holds its thread for tens of µs).
STALL_UNLIKE_WORK = 2

# Validity checks of the issue.
# 1. Inline, the stall is visible from this much work W. Not as light p99 >= W, which
#    cannot hold: a light request arriving t into a stall waits W - t, and only a share
#    W / I of light requests arrive during one (I = heavy_every_us, the interval between
#    heavy requests), so light p99 is about W - P99_TAIL x I. Held where light p99 reaches
#    STALL_P99_SHARE of that prediction (slack for a percentile of a finite sample) and
#    light max reaches W less one light interval (the first light request after a stall
#    starts arrives within one, and waits the rest). It concerns the models that run
#    every request on one thread; a thread pool's inline call holds one worker of many.
#    W is the inline call as timed where it ran (stall_p50_us), since kind:cpu work
#    matches work_us only as well as its calibration; the nominal work_us stands in
#    where the data lacks it.
STALL_VISIBLE_FROM_US = 1000
ONE_THREAD_MODELS = ("event_loop", "fibers")
P99_TAIL = 0.01  # the share of light requests above their p99
STALL_P99_SHARE = 0.95
# 2. Offloaded to threads, kind:sleep keeps light p99 under the larger of this and
#    SLEEP_RTT_FACTOR x the calibrated thread round trip (across cores where measured,
#    as in check 3), up to CHECK_UP_TO_US of work.
SLEEP_OFFLOAD_LIMIT_US = 1000
SLEEP_RTT_FACTOR = 2
CHECK_UP_TO_US = 100000
# 3. An offload's fixed cost is at most this factor times the round trip to a sleeping
#    core: an idle pool's worker sleeps, and waking it is most of the hand-off. Threads
#    compare with the thread round trip, processes with the pipe's, each across cores
#    (the unpinned one stands in where that was not measured, as on one core). One-sided:
#    an offload the scheduler serves on the same core skips the wake and costs less, which
#    is fine. The unpinned (same-core) round trip and the pool's own are kept beside it.
ROUND_TRIP_TOLERANCE = 1.5
WAKE_ROUND_TRIPS = {"threads": ("thread_rtt_cross_core_us", "thread_rtt_us"),  # (cross-core, same-core)
                    "processes": ("pipe_rtt_cross_core_us", "pipe_rtt_us")}
POOL_ROUND_TRIPS = {"threads": "thread_pool_rtt_us", "processes": "process_pool_rtt_us"}

# summary["calibration"] names; the context key of each is "calib_" + name.
CALIBRATION_LABELS = {"thread_rtt_us": "thread round trip",
                      "thread_rtt_cross_core_us": "thread round trip across cores",
                      "pipe_rtt_us": "pipe round trip",
                      "pipe_rtt_cross_core_us": "pipe round trip across cores",
                      "thread_pool_rtt_us": "thread pool round trip",
                      "process_pool_rtt_us": "process pool round trip"}
# Grey reference lines on the crossover plots, (wake, pool) styles per target: what an
# offload there should cost. Only the wakes of a sleeping core, not the unpinned round
# trips too, so that four lines stay readable.
REFERENCE_STYLES = {"threads": ("--", ":"), "processes": ("-.", (0, (5, 2, 1, 2, 1, 2)))}

# One colour per offload mode in every plot, borrowed from the model that does
# the same job elsewhere in the report (inline = serial, threads = thread_pool, ...).
OFFLOAD_COLORS = {INLINE: color_for("serial"), "threads": color_for("thread_pool"),
                  "processes": color_for("process_pool")}
KIND_STYLES = {"cpu": "-", "sleep": "--"}
RATE_STYLES = ("-", "--", ":", "-.")

# How the sentences name things.
MODEL_PHRASES = {"event_loop": "the event loop", "fibers": "fibers on one thread",
                 "thread_pool": "thread-pool tasks"}
KIND_PHRASES = {"cpu": "CPU work", "sleep": "a blocking call"}
TARGET_PHRASES = {"threads": "a thread pool", "processes": "a process pool"}

PLOT_CROSSOVER = "blocking_stall_crossover_{model}_{kind}"
PLOT_HEAVY = "blocking_stall_heavy_{model}"


def _num_key(text):
    return float(text)


# ---------------------------------------------------------------- summary

def summarize(records, results):
    """records: this workload's reduced runs (see results.reduce_runs)."""
    errors = [{"name": r["name"], "message": r["error"]} for r in records if r["error"]]

    series = {}
    for r in records:
        if r["error"]:
            continue
        p = r["params"]
        try:
            work = p["work_us"]
            key = (r["model"], str(p["kind"]), str(p["offload"]), str(p["rate"]), str(p.get("workers", 1)))
        except KeyError as missing:
            errors.append({"name": r["name"], "message": f"no {missing.args[0]} in the benchmark name"})
            continue
        point = {field: r.get(field) for field in POINT_FIELDS}
        node = series
        for part in key:
            node = node.setdefault(part, {})
        node[str(work)] = point
    series = _sorted_series(series)

    context = results.get("context") or {}
    calibration = {name: res.finite(context.get("calib_" + name)) for name in CALIBRATION_LABELS}
    break_even = {model: {kind: {target: _break_even(by_offload, target) for target in TARGETS}
                          for kind, by_offload in by_kind.items()}
                  for model, by_kind in series.items()}
    offload_cost = {model: {kind: {target: _offload_cost(by_offload, target) for target in TARGETS}
                            for kind, by_offload in by_kind.items()}
                    for model, by_kind in series.items()}
    headline = {model: {target: (by_kind.get(HEADLINE_KIND, {}).get(target) or {}).get("cost_us")
                        for target in TARGETS}
                for model, by_kind in offload_cost.items()}

    summary = {
        "series": series,
        "break_even_us": {model: {kind: {t: b["from_us"] for t, b in by_target.items()}
                                  for kind, by_target in by_kind.items()}
                          for model, by_kind in break_even.items()},
        "break_even": break_even,
        "offload_cost_us": headline,
        "offload_cost": offload_cost,
        "calibration": calibration,
        "work_sizes": sorted({_num(w) for _, _, _, _, _, w, _ in _walk(series)}),
        "rates": sorted({_num(rate) for _, _, _, rate, _, _, _ in _walk(series)}),
        "errors": errors,
        "count_mismatches": _count_mismatches(records, results),
    }
    summary["checks"] = _checks(summary)
    return summary


def _num(text):
    value = float(text)
    return int(value) if value.is_integer() else value


def _sorted_series(series):
    """Models, kinds and offloads in their usual order; numbers in numeric order."""
    out = {}
    for model in sorted(series, key=res.rank_in(MODEL_ORDER)):
        for kind in sorted(series[model], key=res.rank_in(KIND_ORDER)):
            for offload in sorted(series[model][kind], key=res.rank_in(OFFLOAD_ORDER)):
                by_rate = series[model][kind][offload]
                out.setdefault(model, {}).setdefault(kind, {})[offload] = {
                    rate: {workers: {w: by_rate[rate][workers][w]
                                     for w in sorted(by_rate[rate][workers], key=_num_key)}
                           for workers in sorted(by_rate[rate], key=_num_key)}
                    for rate in sorted(by_rate, key=_num_key)}
    return out


def _walk(series):
    for model, by_kind in series.items():
        for kind, by_offload in by_kind.items():
            for offload, by_rate in by_offload.items():
                for rate, by_workers in by_rate.items():
                    for workers, by_work in by_workers.items():
                        for work, point in by_work.items():
                            yield model, kind, offload, rate, workers, work, point


def _basis(by_offload, offloads):
    """(rate, workers) at which every one of offloads was measured: the lowest rate,
    then the most workers. None if there is no such pair."""
    pairs = None
    for offload in offloads:
        here = {(rate, workers) for rate, by_workers in by_offload.get(offload, {}).items()
                for workers in by_workers}
        pairs = here if pairs is None else pairs & here
    if not pairs:
        return None
    return min(pairs, key=lambda rw: (float(rw[0]), -float(rw[1])))


def _column(by_offload, offload, basis, field):
    """{work_us: value} of one field at basis, numbers only."""
    rate, workers = basis
    points = by_offload[offload][rate][workers]
    return {_num(w): v for w, p in points.items() if (v := res.finite(p.get(field))) is not None}


def _paired(by_offload, target, field):
    """(basis, inline, offload, common work_us) for one field, inline against target
    at their shared basis; None when they share no basis or no work_us."""
    basis = _basis(by_offload, (INLINE, target))
    if basis is None:
        return None
    inline = _column(by_offload, INLINE, basis, field)
    offload = _column(by_offload, target, basis, field)
    common = sorted(set(inline) & set(offload))
    return (basis, inline, offload, common) if common else None


def _beats(offload_p99, inline_p99):
    return offload_p99 <= BEATS_INLINE_BY * inline_p99


def _break_even(by_offload, target):
    """The smallest work_us from which target beats inline on light p99 (by the
    BEATS_INLINE_BY margin) at every larger work_us measured by both; from_us is None
    where it never does."""
    result = {"from_us": None, "status": "missing", "rate": None, "workers": None,
              "smallest_work_us": None, "largest_work_us": None, "earlier_wins_us": []}
    paired = _paired(by_offload, target, "light_p99_us")
    if paired is None:
        return result
    basis, inline, offload, common = paired
    result.update(status="never", rate=_num(basis[0]), workers=_num(basis[1]),
                  smallest_work_us=common[0], largest_work_us=common[-1])
    from_us = None
    for work in reversed(common):
        if not _beats(offload[work], inline[work]):
            break
        from_us = work
    if from_us is not None:
        result.update(from_us=from_us, status="pays_off",
                      inline_p99_us=inline[from_us], offload_p99_us=offload[from_us],
                      inline_stall_us=_column(by_offload, INLINE, basis, "stall_p50_us").get(from_us))
    # Sizes below the break-even (or anywhere, if it never pays) where offloading
    # won anyway: a lead that did not last.
    result["earlier_wins_us"] = [w for w in common
                                 if (from_us is None or w < from_us) and _beats(offload[w], inline[w])]
    return result


def _offload_cost(by_offload, target):
    """Heavy p50 offloaded minus heavy p50 inline at the smallest work_us both measured."""
    paired = _paired(by_offload, target, "heavy_p50_us")
    if paired is None:
        return None
    basis, inline, offload, common = paired
    work = common[0]
    return {"cost_us": offload[work] - inline[work], "work_us": work,
            "inline_heavy_p50_us": inline[work], "offload_heavy_p50_us": offload[work],
            "rate": _num(basis[0]), "workers": _num(basis[1])}


def _count_mismatches(records, results):
    """Every benchmark entry (repetitions, not aggregates) must account for every
    request: scheduled == completed + failed. Runs that only left aggregates are
    checked on their reduced record."""
    out, checked = [], set()
    for e in results.get("benchmarks") or []:
        name = e.get("run_name") or e.get("name", "")
        if not name.startswith(NAME + "/") or e.get("error_occurred") or e.get("run_type") == "aggregate":
            continue
        checked.add(name)
        message = _count_problem(e)
        if message:
            rep = e.get("repetition_index")
            out.append({"name": name, "repetition": rep, "message": message})
    for r in records:
        if r["error"] or r["name"] in checked:
            continue
        message = _count_problem(r)
        if message:
            out.append({"name": r["name"], "repetition": None, "message": message})
    return out


def _count_problem(entry):
    counts = {field: res.finite(entry.get(field)) for field in COUNT_FIELDS}
    missing = [field for field, value in counts.items() if value is None]
    if missing:
        return "no " + "/".join(missing) + " counter"
    scheduled, completed, failed = (counts[f] for f in COUNT_FIELDS)
    if abs(scheduled - (completed + failed)) < COUNT_TOLERANCE:
        return None
    gap = scheduled - completed - failed
    what = f"{gap:g} requests unaccounted for" if gap > 0 else f"{-gap:g} more ended than were scheduled"
    return f"scheduled {scheduled:g} ≠ completed {completed:g} + failed {failed:g} ({what})"


# ---------------------------------------------------------------- validity checks

def _checks(summary):
    calibration = summary["calibration"]
    stall, sleep, cost = {}, {}, {}
    for model, by_kind in summary["series"].items():
        for kind, by_offload in by_kind.items():
            if INLINE in by_offload and model in ONE_THREAD_MODELS:
                stall.setdefault(model, {})[kind] = _stall_visible(by_offload)
        if "threads" in by_kind.get("sleep", {}):
            _, thread_rtt_us = _first_known(calibration, WAKE_ROUND_TRIPS["threads"])
            sleep[model] = _sleep_offload_bounded(by_kind["sleep"], thread_rtt_us)
        for target in TARGETS:
            check = _cost_vs_rtt(summary["offload_cost_us"][model][target], target, calibration)
            if check is not None:
                cost.setdefault(model, {})[target] = check
    return {"stall_visible": stall, "sleep_offload_bounded": sleep, "offload_cost_vs_rtt": cost}


def _first_known(calibration, names):
    """(name, value) of the first of names calibrated; (None, None) if none was."""
    return next(((n, calibration[n]) for n in names if calibration.get(n)), (None, None))


def _cost_vs_rtt(cost_us, target, calibration):
    """One offload's fixed cost against the round trip to a sleeping core, with its ratio
    to the same-core and to the pool's own round trip where known; None without a cost
    or a round trip to compare it with."""
    reference, reference_us = _first_known(calibration, WAKE_ROUND_TRIPS[target])
    if cost_us is None or reference is None:
        return None
    check = {"cost_us": cost_us, "reference": reference, "reference_us": reference_us,
             "ratio": cost_us / reference_us, "held": cost_us <= ROUND_TRIP_TOLERANCE * reference_us}
    for field, name in (("same_core", WAKE_ROUND_TRIPS[target][1]), ("pool", POOL_ROUND_TRIPS[target])):
        value = calibration.get(name)
        check.update({field: name, field + "_us": value, field + "_ratio": cost_us / value if value else None})
    return check


def _stall_visible(by_offload):
    """Inline light p99 against its prediction, and light max against work_us, at every
    work_us >= STALL_VISIBLE_FROM_US. held is None where nothing was measured there, or
    (with a reason) where a point lacks a figure the check needs."""
    basis = _basis(by_offload, (INLINE,))
    result = {"held": None, "rate": _num(basis[0]), "workers": _num(basis[1])}
    p99, most, every = (_column(by_offload, INLINE, basis, field)
                        for field in ("light_p99_us", "light_max_us", "heavy_every_us"))
    works = [w for w in sorted(p99) if w >= STALL_VISIBLE_FROM_US]
    if not works:
        return result
    missing = [name for name, column in (("light_max_us", most), ("heavy_every_us", every))
               if any(w not in column for w in works)]
    if missing:
        return dict(result, reason="no " + " or ".join(missing) + " counter in the data")
    # The stall as timed around the inline call where measured, else the nominal work.
    measured = _column(by_offload, INLINE, basis, "stall_p50_us")
    stall = {w: measured.get(w) or w for w in works}
    predicted = {w: max(0, stall[w] - P99_TAIL * every[w]) for w in works}
    light_gap_us = 1e6 / result["rate"]
    p99_work = min(works, key=lambda w: p99[w] / predicted[w] if predicted[w] else math.inf)
    max_work = min(works, key=lambda w: most[w] / stall[w])
    held = all(p99[w] >= STALL_P99_SHARE * predicted[w] and most[w] >= stall[w] - light_gap_us for w in works)
    return dict(result, held=held, light_gap_us=light_gap_us, stall_measured=all(w in measured for w in works),
                stall_vs_work=[min(stall[w] / w for w in works), max(stall[w] / w for w in works)],
                points=len(works), worst_work_us=p99_work, worst_p99_us=p99[p99_work], worst_stall_us=stall[p99_work],
                worst_heavy_every_us=every[p99_work], worst_predicted_p99_us=predicted[p99_work],
                worst_p99_vs_work=p99[p99_work] / p99_work,
                worst_p99_vs_predicted=p99[p99_work] / predicted[p99_work] if predicted[p99_work] else None,
                worst_max_work_us=max_work, worst_max_us=most[max_work], worst_max_vs_work=most[max_work] / max_work,
                worst_max_vs_stall=most[max_work] / stall[max_work])


def _sleep_offload_bounded(by_offload, thread_rtt_us):
    basis = _basis(by_offload, ("threads",))
    limit = max(SLEEP_OFFLOAD_LIMIT_US, SLEEP_RTT_FACTOR * (thread_rtt_us or 0))
    p99 = {w: v for w, v in _column(by_offload, "threads", basis, "light_p99_us").items()
           if w <= CHECK_UP_TO_US}
    if not p99:
        return {"held": None, "limit_us": limit}
    work, value = max(p99.items(), key=lambda wv: wv[1])
    largest = max(p99)
    return {"held": value < limit, "limit_us": limit, "worst_work_us": work, "worst_p99_us": value,
            "largest_work_us": largest, "covers_sweep": largest >= CHECK_UP_TO_US,
            "rate": _num(basis[0]), "workers": _num(basis[1])}


# ---------------------------------------------------------------- formatting

def format_us(us):
    """3 -> '3 µs', 1000 -> '1 ms', 100000 -> '100 ms', 2.5e6 -> '2.5 s'."""
    if us is None:
        return "n/a"
    for unit, size in (("s", 1e6), ("ms", 1e3)):
        if abs(us) >= size:
            return f"{us / size:.3g} {unit}"
    return f"{us:.3g} µs"


def _work_axis(ax, sizes):
    ax.set_xscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([format_us(s) for s in sizes], rotation=30, ha="right")
    ax.minorticks_off()
    ax.set_xlabel("work per heavy request (work_us, log scale)")


def _legend(ax):
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")


def _title_settings(rates, workers):
    rate_text = ", ".join(f"{_num(r):g}" for r in rates)
    return f"light rate {rate_text}/s, {workers} worker{'s' if float(workers) != 1 else ''}"


# ---------------------------------------------------------------- plots

def plot(summary, plots_dir):
    written = []
    for model, by_kind in summary["series"].items():
        for kind, by_offload in by_kind.items():
            written += _plot_crossover(summary, model, kind, by_offload, plots_dir)
        written += _plot_heavy(summary, model, by_kind, plots_dir)
    return written


def _plot_workers(by_offload):
    """The largest worker count measured: one set of lines per plot."""
    return max((w for by_rate in by_offload.values() for by_w in by_rate.values() for w in by_w),
               key=_num_key)


def _lines(by_offload, field, workers):
    """[(offload, rate, [(work_us, value)])] at workers, positive values only (log axes)."""
    out = []
    for offload, by_rate in by_offload.items():
        for rate, by_workers in by_rate.items():
            points = [(_num(w), v) for w, p in by_workers.get(workers, {}).items()
                      if (v := res.finite(p.get(field))) is not None and v > 0]
            if points:
                out.append((offload, rate, points))
    return out


def _plot_crossover(summary, model, kind, by_offload, plots_dir):
    workers = _plot_workers(by_offload)
    lines = _lines(by_offload, "light_p99_us", workers)
    if not lines:
        return []
    rates = sorted({rate for _, rate, _ in lines}, key=_num_key)
    fig, ax = plt.subplots(figsize=(9, 5.5))
    ax.grid(True, which="major", alpha=0.3)
    sizes = sorted({w for _, _, pts in lines for w, _ in pts})
    for offload, rate, points in lines:
        label = offload if len(rates) == 1 else f"{offload}, {_num(rate):g}/s"
        ax.plot([w for w, _ in points], [v for _, v in points], marker="o",
                color=OFFLOAD_COLORS.get(offload, color_for(offload)),
                linestyle=RATE_STYLES[rates.index(rate) % len(RATE_STYLES)], label=label)
    ax.plot(sizes, sizes, color="lightgray", linewidth=1, zorder=1, label="y = work (a full stall)")
    for target, styles in REFERENCE_STYLES.items():
        for names, style in zip((WAKE_ROUND_TRIPS[target], (POOL_ROUND_TRIPS[target],)), styles):
            name, value = _first_known(summary["calibration"], names)
            if name:
                ax.axhline(value, color="gray", linestyle=style, linewidth=1,
                           label=f"{CALIBRATION_LABELS[name]} {format_us(value)}")
    for target in TARGETS:
        found = summary["break_even"][model][kind][target]
        if found["from_us"] is not None and found["workers"] == _num(workers):
            ax.axvline(found["from_us"], color=OFFLOAD_COLORS[target], linestyle=":", linewidth=1.5,
                       label=f"{target} pays off from {format_us(found['from_us'])}"
                             + (f" (at {found['rate']:g}/s)" if len(rates) > 1 else ""))
    _work_axis(ax, sizes)
    ax.set_yscale("log")
    ax.set_ylabel("light-request latency p99 (µs, log scale)")
    ax.set_title(f"blocking_stall: {model}, kind:{kind}: light p99 vs work per heavy request\n"
                 f"({_title_settings(rates, workers)}; lower is better)")
    _legend(ax)
    return save(fig, plots_dir, PLOT_CROSSOVER.format(model=model, kind=kind))


def _plot_heavy(summary, model, by_kind, plots_dir):
    drawn = False
    fig, (lat, thr) = plt.subplots(1, 2, figsize=(13, 5.5))
    sizes, rates_seen, workers_seen = set(), set(), set()
    for kind, by_offload in by_kind.items():
        workers = _plot_workers(by_offload)
        rate = min((r for by_rate in by_offload.values() for r in by_rate), key=_num_key)
        for ax, field in ((lat, "heavy_p50_us"), (thr, "heavy_per_s")):
            for offload, line_rate, points in _lines(by_offload, field, workers):
                if line_rate != rate:
                    continue
                ax.plot([w for w, _ in points], [v for _, v in points], marker="o",
                        color=OFFLOAD_COLORS.get(offload, color_for(offload)),
                        linestyle=KIND_STYLES.get(kind, ":"), label=f"{offload}, kind:{kind}")
                sizes.update(w for w, _ in points)
                rates_seen.add(rate)
                workers_seen.add(workers)
                drawn = True
    if not drawn:
        plt.close(fig)
        return []
    sizes = sorted(sizes)
    lat.plot(sizes, sizes, color="lightgray", linewidth=1, zorder=1, label="y = work")
    for ax in (lat, thr):
        ax.grid(True, which="major", alpha=0.3)
        _work_axis(ax, sizes)
        ax.set_yscale("log")
    lat.set_ylabel("heavy-request latency p50 (µs, log scale)")
    lat.set_title("heavy latency: what the offload costs the request itself")
    thr.set_ylabel("heavy requests completed per second (log scale)")
    thr.set_title("heavy throughput")
    lat.legend(fontsize="small")
    workers = ", ".join(sorted(workers_seen, key=_num_key))
    fig.suptitle(f"blocking_stall: {model}, heavy requests by offload mode "
                 f"({_title_settings(sorted(rates_seen, key=_num_key), workers)})")
    return save(fig, plots_dir, PLOT_HEAVY.format(model=model))


# ---------------------------------------------------------------- report

def report(summary, plots):
    """Markdown section; plots are paths relative to the report (plots/x.png)."""
    intro = ("Light requests arrive open-loop at a fixed rate (latency counts from their scheduled "
             "arrival); heavy requests hold their thread for `work_us`, hashing (kind:cpu) or asleep "
             "in a blocking call (kind:sleep), either inline or offloaded to threads or to processes. "
             f"Offloading pays off where it keeps the light requests' p99 at or below {BEATS_INLINE_BY:g}× "
             "inline's; its fixed cost is the heavy request's extra p50 latency at the smallest work measured.")
    tables = [_break_even_table(summary), _p99_table(summary)] if summary["series"] else []
    errors = [f"`{e['name']}`: {e['message']}" for e in summary["errors"]]
    errors += [f"`{m['name']}`" + (f" (repetition {m['repetition']})" if m["repetition"] is not None else "")
               + f": {m['message']}" for m in summary["count_mismatches"]]
    return section("blocking_stall: a blocking call among light requests", intro, plots, tables, errors,
                   conclusions(summary))


def _break_even_cell(found):
    if found["status"] == "missing":
        return "–"
    if found["status"] == "never":
        return f"never (to {format_us(found['largest_work_us'])})"
    return f"{format_us(found['from_us'])}"


def _cost_cell(cost):
    return "–" if cost is None else f"{cost['cost_us']:+.3g} µs"


def _break_even_table(summary):
    lines = ["Break-even: the work per heavy request from which offloading keeps light p99 at or below "
             f"{BEATS_INLINE_BY:g}× inline's (at the lowest light rate; the margin keeps a break-even out of "
             "the noise where both are the machine's own tail). Offload cost: heavy p50 offloaded minus inline, "
             "at the smallest work.",
             "",
             "| model | kind | rate | workers | threads pays off from | processes pays off from "
             "| threads offload cost | processes offload cost |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for model, by_kind in summary["break_even"].items():
        for kind, by_target in by_kind.items():
            found = [by_target[t] for t in TARGETS]
            basis = next((f for f in found if f["rate"] is not None), None)
            rate = f"{basis['rate']:g}/s" if basis else "–"
            workers = f"{basis['workers']:g}" if basis else "–"
            costs = [_cost_cell(summary["offload_cost"][model][kind][t]) for t in TARGETS]
            lines.append(f"| {model} | {kind} | {rate} | {workers} | "
                         + " | ".join(_break_even_cell(f) for f in found) + " | " + " | ".join(costs) + " |")
    return lines


def _p99_table(summary):
    sizes = summary["work_sizes"]
    lines = ["Light-request p99 by work per heavy request (lowest light rate, most workers measured):", "",
             "| model | kind | offload | " + " | ".join(format_us(s) for s in sizes) + " |",
             "|---|---|---|" + "---:|" * len(sizes)]
    for model, by_kind in summary["series"].items():
        for kind, by_offload in by_kind.items():
            workers = _plot_workers(by_offload)
            for offload, by_rate in by_offload.items():
                rate = min(by_rate, key=_num_key)
                points = by_rate[rate].get(workers) or by_rate[rate][max(by_rate[rate], key=_num_key)]
                cells = []
                for s in sizes:
                    value = res.finite((points.get(str(s)) or {}).get("light_p99_us"))
                    cells.append("–" if value is None else format_us(value))
                lines.append(f"| {model} | {kind} | {offload} | " + " | ".join(cells) + " |")
    return lines


def _and(items):
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def conclusions(summary):
    """Sentences computed from the summary; nothing here is typed by hand."""
    return (_break_even_sentences(summary) + _cost_sentences(summary) + _check_sentences(summary)
            + _failed_sentences(summary))


def _pays_off_phrase(found):
    if found["status"] == "never":
        return f"never pays off up to {format_us(found['largest_work_us'])} (the largest work measured)"
    phrase = (f"pays off already at the smallest work measured, {format_us(found['from_us'])}"
              if found["from_us"] == found["smallest_work_us"] else
              f"pays off from about {format_us(found['from_us'])} of work")
    stall = found.get("inline_stall_us")
    if stall is not None and stall > STALL_UNLIKE_WORK * found["from_us"]:
        # A short blocking call is rarely as short as asked (timer slack, wake-up):
        # the break-even is in nominal work, the stall it caused is what explains it.
        phrase += f" as asked for, a call that held its thread for {format_us(stall)} inline"
    if found["earlier_wins_us"]:
        phrase += (f" (it also won at {_and([format_us(w) for w in found['earlier_wins_us']])}, "
                   f"but not at every size above)")
    return phrase


def _break_even_sentences(summary):
    out = []
    for model, by_kind in summary["break_even"].items():
        for kind, by_target in by_kind.items():
            parts = []
            for target in TARGETS:
                found = by_target[target]
                if found["status"] == "missing":
                    continue
                parts.append((target, _pays_off_phrase(found)))
            if not parts:
                continue
            where = MODEL_PHRASES.get(model, model)
            first_target, first = parts[0]
            sentence = (f"On this machine, offloading {KIND_PHRASES.get(kind, 'kind:' + kind)} from {where} "
                        f"to {TARGET_PHRASES[first_target]} {first}")
            for target, phrase in parts[1:]:
                sentence += f"; to {TARGET_PHRASES[target]} it {phrase}"
            out.append(sentence + ".")
    return out


def _cost_sentences(summary):
    out = []
    for model, by_kind in summary["offload_cost"].items():
        costs = by_kind.get(HEADLINE_KIND, {})
        parts = [f"{costs[t]['cost_us']:.3g} µs to {t}" for t in TARGETS if costs.get(t)]
        if not parts:
            continue
        at = next(costs[t] for t in TARGETS if costs.get(t))
        out.append(f"One offload from {MODEL_PHRASES.get(model, model)} adds {_and(parts)} to a heavy "
                   f"request's p50 (kind:{HEADLINE_KIND}, {format_us(at['work_us'])} of work).")
    refs = [f"{CALIBRATION_LABELS[name]} {format_us(value)}"
            for name, value in summary["calibration"].items() if value]
    if out and refs:
        out.append(f"Calibrated on this machine for comparison: {_and(refs)}.")
    return out


def _plural(n, word):
    return f"{n:g} {word}{'' if n == 1 else 's'}"


def _setting(model, check):
    workers = check.get("workers")
    return model if workers in (None, 1) else f"{model} with {_plural(workers, 'worker')}"


def _verdict(held):
    return "held" if held else "did not hold"


def _check_sentences(summary):
    checks = summary["checks"]
    out = []
    for model, by_kind in checks["stall_visible"].items():
        for kind, check in by_kind.items():
            sentence = _stall_sentence(f"{_setting(model, check)}, kind:{kind}", check)
            if sentence:
                out.append(sentence)
    for model, check in checks["sleep_offload_bounded"].items():
        if check["held"] is None:
            continue
        span = (f"up to {format_us(check['largest_work_us'])}" if check["covers_sweep"] else
                f"up to {format_us(check['largest_work_us'])} only (the check asks for {format_us(CHECK_UP_TO_US)})")
        out.append(f"Check, threads offload bounds kind:sleep ({_setting(model, check)}, "
                   f"light p99 < {format_us(check['limit_us'])} {span}): "
                   f"{_verdict(check['held'])}; worst light p99 {format_us(check['worst_p99_us'])} "
                   f"at {format_us(check['worst_work_us'])} of work.")
    for model, by_target in checks["offload_cost_vs_rtt"].items():
        for target, check in by_target.items():
            out.append(_cost_check_sentence(model, target, check))
    return out


def _stall_sentence(setting, check):
    head = f"Check, inline stall visible ({setting}"
    if check["held"] is None:
        return f"{head}): not computed; {check['reason']}." if check.get("reason") else None
    length = "the inline call's measured p50" if check["stall_measured"] else "work_us"
    rule = (f"light p99 ≥ {STALL_P99_SHARE:g} × the predicted W − {P99_TAIL:g}·I, as a share W/I of light "
            f"requests meets a stall of W every I, and light max ≥ W less one light interval, "
            f"{format_us(check['light_gap_us'])}; W is {length}; at work_us ≥ {format_us(STALL_VISIBLE_FROM_US)}")
    p99 = (f"lowest light p99 {format_us(check['worst_p99_us'])} at {format_us(check['worst_work_us'])} of work, "
           f"{check['worst_p99_vs_work']:.2f}× the work")
    if check["worst_p99_vs_predicted"] is not None:
        p99 += f" and {check['worst_p99_vs_predicted']:.2f}× the predicted {format_us(check['worst_predicted_p99_us'])}"
    most = (f"lowest light max {format_us(check['worst_max_us'])} at {format_us(check['worst_max_work_us'])} "
            f"of work, {check['worst_max_vs_stall']:.2f}× the stall")
    low, high = check["stall_vs_work"]
    timed = (f"; the inline calls took {low:.2f}–{high:.2f}× their work_us"
             if check["stall_measured"] else "")
    return f"{head}, {rule}): {_verdict(check['held'])}; {p99}; {most}{timed}."


def _cost_check_sentence(model, target, check):
    cost = check["cost_us"]
    text = (f"Check, {target} offload cost ≤ {ROUND_TRIP_TOLERANCE:g}× the round trip to a sleeping core "
            f"({model}): {_verdict(check['held'])}; {cost:.3g} µs is {check['ratio']:.2f}× the "
            f"{CALIBRATION_LABELS[check['reference']]} ({format_us(check['reference_us'])})")
    if check["reference"] == check["same_core"]:
        text += ", which stands in for the unmeasured cross-core one"
    elif check["same_core_us"]:
        low, high = sorted((check["same_core_us"], check["reference_us"]))
        where = "below both" if cost < low else "above both" if cost > high else "between"
        text += f", {where} the unpinned round trip ({format_us(check['same_core_us'])}) and the cross-core one"
    if check["pool_us"]:
        text += (f"; and {check['pool_ratio']:.2f}× the {CALIBRATION_LABELS[check['pool']]} "
                 f"({format_us(check['pool_us'])})")
    return text + "."


def _failed_sentences(summary):
    failed = [(model, kind, offload, p) for model, kind, offload, _, _, _, p in _walk(summary["series"])
              if (res.finite(p.get("failed")) or 0) > 0]
    if not failed:
        return []
    total = sum(res.finite(p["failed"]) for *_, p in failed)
    return [f"{_plural(total, 'request')} failed across {_plural(len(failed), 'run')} "
            f"({_and(sorted({f'{m}/{k}/{o}' for m, k, o, _ in failed}))}); they are counted, not dropped."]
