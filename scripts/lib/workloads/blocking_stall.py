"""blocking_stall: a blocking or CPU-heavy call among light requests, run inline or
offloaded to threads or to processes. Answers from how much work offloading pays
off, with an interval, and what one offload costs.

Every cell runs several times, interleaved with the others; a cell's figures are
medians over its runs, and two cells are compared over their runs (stats.py), less
the share the floor shows the machine's hiccups to have lifted (host_share), so that
one hiccup of the machine moves neither a figure nor a verdict.

Summary layout (JSON-friendly, numbers as string keys):
  series[model][kind][offload][rate][workers][work_us] = {light_p50_us, ..., lag_p99_us,
                                          light_per_s, heavy_per_s, heavy_every_us,
                                          stall_p50_us (inline only), cpu_wait_share,
                                          involuntary_switches, scheduled, completed, failed:
                                          medians over the runs; repetitions; runs {field:
                                          [one value per run]} for RUN_FIELDS}
                                          work_us 0 (inline only) is the machine's floor
  break_even_us[model][kind][target]     work_us from which offloading pays off (see the rule
                                         below); null where it never does, or unknown
  break_even[model][kind][target]        the same with its interval and the verdict at each
                                         size: status (pays_off | never | too_few_runs | missing),
                                         from_us, low_us, high_us, never_consistent, estimate_us
                                         (where the estimates alone put it: crossover_estimate),
                                         resampled {low_us, high_us, never} (where the rule puts
                                         it on resamples of the runs, which the interval holds
                                         too: resampled_break_even), verdicts
                                         {work_us: win | loss | no_difference | too_few_runs},
                                         ratios {work_us: {estimate, low, high, coverage}},
                                         floor_p99_us and host_share (the floor the verdicts
                                         hold inline against, and the share of each cell's runs
                                         they leave out as the machine's hiccups), rate, workers, ...
  offload_cost_us[model][target]         heavy p50 offloaded minus inline at the smallest sizes,
                                         kind:cpu (Hodges–Lehmann over their runs); null if unmeasured
  offload_cost[model][kind][target]      the same per kind, with its interval: cost_us, low_us,
                                         high_us, coverage, work_us, ...
  cpu_waits[model][kind][target]         where offloading left light p99 above the floor, whether
                                         the serving thread's wait for a CPU explains it
  calibration {thread_rtt_us, thread_rtt_cross_core_us, pipe_rtt_us, pipe_rtt_cross_core_us,
               thread_pool_rtt_us, process_pool_rtt_us}
                                         the calibrated round trips; null where not measured
                                         (no cross-core ones on a one-core machine)
  checks {stall_visible, sleep_offload_bounded, offload_cost_vs_rtt}: validity checks,
                                         measured (see the constants below)
  work_sizes, rates, repetitions [fewest, most], errors, count_mismatches
"""

import math

import numpy as np

from markdown import answer, checks_table, section
from plotting import color_for, plt, save
import results as res
import stats
from units import format_range_us, format_signed_us, format_us

NAME = "blocking_stall"

INLINE = "inline"
TARGETS = ("threads", "processes")
OFFLOAD_ORDER = (INLINE,) + TARGETS
KIND_ORDER = ("cpu", "sleep")
MODEL_ORDER = ("event_loop", "fibers", "thread_pool", *res.PEER_MODELS)
# The Answers put each language's loop beside the C++ event loop's.
ANSWER_ORDER = ("event_loop", "peer_asyncio", "peer_node", "fibers", "thread_pool")
# Go runs each request as a goroutine: no loop, no offload; its cells run once with
# GOMAXPROCS=1 and once with one P per core (the workers key), and what it answers is how
# far light p99 rises above its floor.
GO = "peer_go"
# The offload cost headline uses CPU work, the cleaner measure of the hand-off alone.
HEADLINE_KIND = "cpu"
# Inline with no work: heavy requests that cost what light ones do. Its light p99 is
# the machine's floor for this schedule, the lowest any offload can reach.
FLOOR_WORK_US = 0

# Per-request figures of each run, kept in the series as medians over the runs.
POINT_FIELDS = ("light_p50_us", "light_p90_us", "light_p99_us", "light_p999_us", "light_max_us",
                "heavy_p50_us", "heavy_p99_us", "lag_p99_us", "lag_max_us", "light_per_s", "heavy_per_s",
                "heavy_every_us", "stall_p50_us", "cpu_wait_share", "involuntary_switches",
                "scheduled", "completed", "failed")
# Figures kept run by run too: what the verdicts, the costs and the CPU waits compare.
# (failed: every failed request is counted, not only the median run's.)
RUN_FIELDS = ("light_p99_us", "heavy_p50_us", "cpu_wait_share", "failed")
COUNT_FIELDS = ("scheduled", "completed", "failed")
# Counters are doubles; a count differing by less than this is the same count.
COUNT_TOLERANCE = 0.5

# The rule, written once (verdict and break_even below). A hiccup of the machine (on a
# VM, a halted vCPU resumed late) lifts the p99 of the run it lands in and never lowers
# one, whatever the model does. The floor, with no work, counts them: host_share is the
# share of its runs lifted past HOST_HICCUP_FACTOR x the median of its lower half, at
# most a half, and every cell compared drops that share of its runs, the highest
# (without_host_hiccups). A model's own stalls stay: those of an offloaded cell that
# the floor does not have (a worker placed on the loop's CPU) are not trimmed. On the
# shared 2-core VM the share of floor runs above 300 µs moved from 6% to 56% within an
# hour, and with all runs compared the floor went from 90 to 440 µs and every
# break-even with it. At each work size, the light p99s of the runs left offloaded and
# inline give an interval for their ratio (stats.py, 95%). Offloading
#   wins      where that interval lies below BEATS_INLINE_BY, and inline's p99 lies
#             above floor / BEATS_INLINE_BY with confidence too (the interval of
#             inline's median, stats.median_interval, against the floor's median):
#             nearer the floor, BEATS_INLINE_BY x inline is under the floor, which no
#             offload reaches, so a "win" there could only be noise. The floor pools
#             the floor runs of both kinds (_floor_runs), and the second pass runs them
#             again;
#   loses     where the interval lies above LOSES_TO_INLINE_BY;
#   makes no difference otherwise; a size with too few runs for an interval has no
#             verdict.
# It pays off from W where it wins at W and, at every larger size, the ratio's estimate
# lies below BEATS_INLINE_BY (crossover_estimate: it looks like a win there, and so loses
# nowhere). Not "wins at every larger size": one hiccup in a few runs keeps a size from a
# sure win, and would move the break-even above it. Not "loses at no larger size" either:
# where the ratio runs near the margin for a decade (CPU work offloaded to processes on
# the 2-core VM while the workers ran at the loop's priority, so that a worker woken on
# the loop's CPU held it), a lone sure win low in that stretch made the break-even 100x
# lower in one run than in the next. The estimate is a median of every pair of runs, so
# one spike does not lift it. The break-even's interval answers two questions, and holds
# both answers. Where could the true break-even be? Every size where the true ratios may
# lie within each size's interval so that offloading wins there and at every larger
# size, and not at the size below (break_even). Where would this rule
# put it in another run? The middle 95% of the break-evens it gives on RESAMPLES
# resamples of the runs (resampled_break_even). The first alone is too narrow above a
# sure win at the margin: on the VM, in three runs of fibers' kind:sleep offloaded to
# threads, the ratio at 50 µs lay at 0.64-0.76 with the top of its interval at
# 0.76-0.83, so one run found a sure win there and ended its interval at 50 µs, where
# the other two found 100. The second alone is too narrow below: no resample finds a
# sure win where the estimate lies above the margin.
BEATS_INLINE_BY = 0.8
LOSES_TO_INLINE_BY = 1 / BEATS_INLINE_BY
WIN, LOSS, NO_DIFFERENCE, TOO_FEW_RUNS = "win", "loss", "no_difference", "too_few_runs"
VERDICT_MARKS = {WIN: "✓", LOSS: "✗", NO_DIFFERENCE: "·", TOO_FEW_RUNS: "?"}
# Power where it decides. A cell's runs hiccup with the machine (on the shared 2-core
# VM, 10-45% of 200 ms runs, depending on the hour, had a light p99 of 0.3-3 ms where the
# others sat near 100 µs), and a hiccup run of the offloaded cell spoils its pairs with
# every inline run. So scripts/bench runs every cell a first time (repetitions() in
# blocking_stall.cpp: 10 short runs), then the cells from the size below the crossover
# estimate to two sizes above it EXTRA_RUNS more times (cells_to_refine): the sizes that
# decide a break-even get 24 runs, which outlast eight hiccups the floor does not
# account for (the 95% interval at 24 a side drops the 192 most extreme of 576 pairs),
# and the sizes far from it, whose verdicts decide nothing, keep fewer. Two above: there
# the ratio has only just dipped under the margin, and a sure win comes a size or two
# higher, where it lies further below. One below: a few hiccups in its 10 runs can hold
# a size's estimate above the margin, and so the crossover estimate one size too high;
# its 24 runs may then show a sure win.
EXTRA_RUNS = 14
# Enough resamples that the 2.5% at either end are five of them; the draw is seeded, so
# that a summary regenerates unchanged.
RESAMPLES = 200
# A break-even's sentence names the stall the inline call caused where it was more than
# this many times the nominal work (a short blocking call holds its thread longer).
STALL_UNLIKE_WORK = 2

# Validity checks.
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
#    where the data lacks it. All figures are medians over the runs.
STALL_VISIBLE_FROM_US = 1000
ONE_THREAD_MODELS = ("event_loop", "fibers")
P99_TAIL = 0.01  # the share of light requests above their p99
STALL_P99_SHARE = 0.95
# 2. Offloaded to threads, kind:sleep keeps light p99 under the larger of this and
#    SLEEP_RTT_FACTOR x the calibrated thread round trip (across cores where measured,
#    as in check 3), up to CHECK_UP_TO_US of work.
SLEEP_OFFLOAD_LIMIT_US = 1000
SLEEP_RTT_FACTOR = 2
CHECK_UP_TO_US = 10000
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

# The offload cost pools the sizes below this many times the smallest (1, 2 and 5 µs in
# the default grid, where that triples the runs; a grid in decades has one): the work
# there is small against the hand-off.
COST_SIZES_SPAN = 10

# Where an offloaded cell's light p99 stays above LOSES_TO_INLINE_BY x the floor, the
# serving thread's wait for a CPU explains it when that wait took at least this share
# of the run: light requests that arrive while their thread waits for a CPU wait too,
# so a P99_TAIL share of waiting alone puts the p99 inside those waits.
CPU_WAIT_EXPLAINS = P99_TAIL

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
KIND_MARKERS = {"cpu": "o", "sleep": "s"}

# How the sentences name things.
MODEL_PHRASES = {"event_loop": "the event loop", "fibers": "fibers on one thread",
                 "thread_pool": "thread-pool tasks",
                 "peer_asyncio": "Python asyncio (to_thread, ProcessPoolExecutor)",
                 "peer_node": "Node (worker_threads)"}
KIND_PHRASES = {"cpu": "CPU work", "sleep": "a blocking call"}
TARGET_PHRASES = {"threads": "a thread pool", "processes": "a process pool"}

TITLE = "blocking_stall: a blocking call among light requests"
PLOT_CROSSOVER = "blocking_stall_crossover_{model}_{kind}"
PLOT_TRADE = "blocking_stall_trade_{model}"


def _num_key(text):
    return float(text)


def _num(text):
    value = float(text)
    return int(value) if value.is_integer() else value


# ---------------------------------------------------------------- the rule

HOST_HICCUP_FACTOR = 2
MAX_HOST_SHARE = 0.5
# The fewest runs of a cell that give a verdict, whatever share of them the host took:
# what is left needs stats.min_runs().
MIN_RUNS = math.ceil(stats.min_runs() / (1 - MAX_HOST_SHARE)) - 1


def host_share(floor_runs):
    """The share of the floor's runs (light p99s) that the machine's hiccups lifted:
    those above HOST_HICCUP_FACTOR x the median of their lower half, at most
    MAX_HOST_SHARE; 0 without floor runs."""
    floor = sorted(v for v in floor_runs if v > 0)
    if not floor:
        return 0.0
    calm = stats.median(floor[:(len(floor) + 1) // 2])
    return min(MAX_HOST_SHARE, sum(v > HOST_HICCUP_FACTOR * calm for v in floor) / len(floor))


def without_host_hiccups(runs, share):
    """A cell's runs less the highest `share` of them (that many runs, rounded down); a
    p99 of zero or less is no measurement and is left out."""
    runs = sorted(v for v in runs if v > 0)
    return runs[:math.ceil(len(runs) * (1 - share) - 1e-9)]


def floor_us(floor_runs):
    """The floor every verdict holds inline against: the median of its runs less the
    host's share of them."""
    return stats.median(without_host_hiccups(floor_runs, host_share(floor_runs)))


def verdict(inline_runs, offload_runs, floor_runs=None):
    """One size's comparison of light p99 over each cell's runs less host_share of
    them: {verdict, ratio, lifted, could_win, looks_like_win}. ratio: offloaded to inline
    (stats.ratio_interval); lifted: the interval of inline's median over the floor's
    median, None without floor runs (then the floor condition is left out). could_win:
    whether the data allow a win here (the break-even's interval asks), None with too
    few runs; looks_like_win: whether the estimates alone say so, confidence aside (the
    break-even asks it of every size above it)."""
    floor_runs = [v for v in floor_runs or [] if v > 0]
    share = host_share(floor_runs)
    inline_runs, offload_runs = without_host_hiccups(inline_runs, share), without_host_hiccups(offload_runs, share)
    if not inline_runs or not offload_runs:
        empty = {"estimate": None, "low": None, "high": None, "coverage": None}
        return {"verdict": TOO_FEW_RUNS, "ratio": empty, "lifted": None, "could_win": None, "looks_like_win": False}
    ratio = stats.ratio_interval(offload_runs, inline_runs)
    lifted = None
    if floor_runs:
        floor = floor_us(floor_runs)
        low, high, _ = stats.median_interval(inline_runs)
        lifted = {"low": low / floor, "high": high / floor, "floor_us": floor}
    out = {"verdict": TOO_FEW_RUNS, "ratio": ratio, "lifted": lifted, "could_win": None,
           "looks_like_win": ratio["estimate"] < BEATS_INLINE_BY and (
               lifted is None or stats.median(inline_runs) / lifted["floor_us"] > LOSES_TO_INLINE_BY)}
    if ratio["low"] is None:
        return out
    clear_of_floor = lifted is None or lifted["low"] > LOSES_TO_INLINE_BY
    near_floor = lifted is not None and lifted["high"] <= LOSES_TO_INLINE_BY
    if ratio["high"] < BEATS_INLINE_BY and clear_of_floor:
        out["verdict"] = WIN
    elif ratio["low"] > LOSES_TO_INLINE_BY:
        out["verdict"] = LOSS
    else:
        out["verdict"] = NO_DIFFERENCE
    out["could_win"] = ratio["low"] < BEATS_INLINE_BY and not near_floor
    return out


def crossover_estimate(sizes, comparisons):
    """The smallest size from which the estimates look like a win at every size,
    confidence aside; None where the largest does not. The break-even is the first
    sure win from here on, and the second pass runs the cells here and just above,
    where it is decided. A lone size that looks like a win below one that does not is
    not it: with few runs such dips come and go."""
    found = None
    for size, c in reversed(list(zip(sizes, comparisons))):
        if not c["looks_like_win"]:
            break
        found = size
    return found


def break_even(sizes, comparisons):
    """sizes ascending, comparisons[i] = verdict(...) at sizes[i]. Returns {status,
    from_us, low_us, high_us, never_consistent}:
      from_us: the smallest size where offloading wins and from which every size looks
        like a win (at or above crossover_estimate);
      low_us, high_us: the smallest and largest size that could be the true break-even,
        that is, every size from it on could win and the size below it could not;
      never_consistent: whether the data also allow that it never pays off (the
        largest size is no sure win).
    status: pays_off, never, or too_few_runs where some size has no interval."""
    out = {"status": TOO_FEW_RUNS, "from_us": None, "low_us": None, "high_us": None, "never_consistent": None}
    if not sizes or any(c["verdict"] == TOO_FEW_RUNS for c in comparisons):
        return out
    estimate = crossover_estimate(sizes, comparisons)
    winners = [] if estimate is None else [s for s, c in zip(sizes, comparisons) if s >= estimate and c["verdict"] == WIN]
    consistent = [sizes[b] for b in range(len(sizes))
                  if all(c["could_win"] for c in comparisons[b:]) and (b == 0 or comparisons[b - 1]["verdict"] != WIN)]
    out.update(status="pays_off" if winners else "never",
               from_us=winners[0] if winners else None,
               low_us=consistent[0] if consistent else None,
               high_us=consistent[-1] if consistent else None,
               never_consistent=comparisons[-1]["verdict"] != WIN)
    return out


def resampled_break_even(sizes, inline, offload, floor_runs, resamples=RESAMPLES):
    """The middle stats.CONFIDENCE of the break-evens the rule gives on `resamples`
    resamples of the runs: each size's inline and offloaded runs ({work_us: [light p99
    of each run]}) and the floor's drawn again with replacement. Returns {low_us,
    high_us, never}: the smallest and largest size in that middle, None where all of it
    never pays off, and whether some of it does not."""
    rng = np.random.default_rng(0)

    def draw(runs):
        return list(rng.choice(runs, len(runs))) if len(runs) else []

    ranks = []  # a break-even's place in sizes; never is len(sizes), beyond the largest
    for _ in range(resamples):
        floor = draw(floor_runs)
        found = break_even(sizes, [verdict(draw(inline[w]), draw(offload[w]), floor) for w in sizes])["from_us"]
        ranks.append(len(sizes) if found is None else sizes.index(found))
    ranks.sort()
    tail = (1 - stats.CONFIDENCE) / 2
    low, high = ranks[int(tail * resamples)], ranks[math.ceil((1 - tail) * resamples) - 1]
    paying = low < len(sizes)
    return {"low_us": sizes[low] if paying else None, "high_us": sizes[min(high, len(sizes) - 1)] if paying else None,
            "never": high == len(sizes)}


def with_resampled_interval(found, sizes, inline, offload, floor_runs):
    """break_even's result with its interval widened to hold resampled_break_even's,
    which it keeps under "resampled"; as it was where a size has too few runs."""
    if found["status"] == TOO_FEW_RUNS:
        return found
    resampled = resampled_break_even(sizes, inline, offload, floor_runs)
    ends = [(e["low_us"], e["high_us"]) for e in (found, resampled) if e["low_us"] is not None]
    return dict(found, resampled=resampled,
                low_us=min(low for low, _ in ends) if ends else None,
                high_us=max(high for _, high in ends) if ends else None,
                never_consistent=found["never_consistent"] or resampled["never"])


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
        if any(res.finite(v) is None for v in (work, p["rate"], p.get("workers", 1))):
            errors.append({"name": r["name"], "message": "work_us, rate and workers must be numbers"})
            continue
        node = series
        for part in key:
            node = node.setdefault(part, {})
        node[str(work)] = _point(r)
    series = _sorted_series(series)

    context = results.get("context") or {}
    calibration = {name: res.finite(context.get("calib_" + name)) for name in CALIBRATION_LABELS}
    break_evens = {model: {kind: {target: _break_even(by_kind, kind, target) for target in TARGETS}
                           for kind in by_kind}
                   for model, by_kind in series.items()}
    offload_cost = {model: {kind: {target: _offload_cost(by_offload, target) for target in TARGETS}
                            for kind, by_offload in by_kind.items()}
                    for model, by_kind in series.items()}
    headline = {model: {target: (by_kind.get(HEADLINE_KIND, {}).get(target) or {}).get("cost_us")
                        for target in TARGETS}
                for model, by_kind in offload_cost.items()}
    counts = [p["repetitions"] for *_, p in _walk(series)]

    summary = {
        "series": series,
        "break_even_us": {model: {kind: {t: b["from_us"] for t, b in by_target.items()}
                                  for kind, by_target in by_kind.items()}
                          for model, by_kind in break_evens.items()},
        "break_even": break_evens,
        "offload_cost_us": headline,
        "offload_cost": offload_cost,
        "cpu_waits": {model: {kind: {target: _cpu_waits(by_kind, kind, target) for target in TARGETS
                                     if target in by_offload}
                              for kind, by_offload in by_kind.items()}
                      for model, by_kind in series.items()},
        "calibration": calibration,
        "work_sizes": sorted({_num(w) for _, _, _, _, _, w, _ in _walk(series)}),
        "rates": sorted({_num(rate) for _, _, _, rate, _, _, _ in _walk(series)}),
        "repetitions": [min(counts), max(counts)] if counts else None,
        "errors": errors,
        "count_mismatches": _count_mismatches(records, results),
    }
    summary["checks"] = _checks(summary)
    return summary


def _point(record):
    """A cell's figures: medians over its runs, and the runs of RUN_FIELDS."""
    point = {}
    for field in POINT_FIELDS:
        values = res.run_values(record, field)
        point[field] = stats.median(values) if values else None
    point["repetitions"] = len(res.run_values(record, "light_p99_us"))
    point["runs"] = {field: values for field in RUN_FIELDS if (values := res.run_values(record, field))}
    return point


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


def _points(by_offload, offload, basis):
    """{work_us: point} of one offload mode at basis, the floor (work 0) left out."""
    rate, workers = basis
    return {_num(w): p for w, p in by_offload[offload][rate][workers].items() if _num(w) != FLOOR_WORK_US}


def _column(by_offload, offload, basis, field):
    """{work_us: median} of one field at basis, numbers only, the floor left out."""
    return {w: v for w, p in _points(by_offload, offload, basis).items()
            if (v := res.finite(p.get(field))) is not None}


def _runs(by_offload, offload, basis, field):
    """{work_us: [value of each run]} of one RUN_FIELD at basis, the floor left out."""
    return {w: p["runs"][field] for w, p in _points(by_offload, offload, basis).items()
            if p.get("runs", {}).get(field)}


def _floor_runs(by_kind, basis):
    """The light p99 of every floor run at basis (inline, no work), of both kinds: with no
    work a heavy request of either kind is the same request, and the floor, which the rule
    holds every size against, has the runs of both; [] where not measured. A p99 of zero
    or less is no measurement and is left out."""
    rate, workers = basis
    floors = (by_offload.get(INLINE, {}).get(rate, {}).get(workers, {}).get(str(FLOOR_WORK_US))
              for by_offload in by_kind.values())
    return [v for point in floors if point for v in point.get("runs", {}).get("light_p99_us", []) if v > 0]


def _paired(by_offload, target, field):
    """(basis, inline runs, offload runs, common work_us) for one RUN_FIELD, inline
    against target at their shared basis; None when they share no basis or no work_us."""
    basis = _basis(by_offload, (INLINE, target))
    if basis is None:
        return None
    inline = _runs(by_offload, INLINE, basis, field)
    offload = _runs(by_offload, target, basis, field)
    common = sorted(set(inline) & set(offload))
    return (basis, inline, offload, common) if common else None


def _break_even(by_kind, kind, target):
    """The rule applied to one model, kind and target, on light p99 at the lowest
    rate and the most workers both measured."""
    by_offload = by_kind[kind]
    result = {"status": "missing", "from_us": None, "low_us": None, "high_us": None, "never_consistent": None,
              "estimate_us": None, "verdicts": {}, "ratios": {}, "rate": None, "workers": None,
              "smallest_work_us": None, "largest_work_us": None}
    paired = _paired(by_offload, target, "light_p99_us")
    if paired is None:
        return result
    basis, inline, offload, common = paired
    floor = _floor_runs(by_kind, basis)
    comparisons = [verdict(inline[w], offload[w], floor) for w in common]
    found = with_resampled_interval(break_even(common, comparisons), common, inline, offload, floor)
    result.update(found, estimate_us=crossover_estimate(common, comparisons),
                  rate=_num(basis[0]), workers=_num(basis[1]),
                  smallest_work_us=common[0], largest_work_us=common[-1],
                  verdicts={str(w): c["verdict"] for w, c in zip(common, comparisons)},
                  ratios={str(w): c["ratio"] for w, c in zip(common, comparisons)},
                  floor_p99_us=floor_us(floor) if floor else None,
                  host_share=host_share(floor))
    if result["from_us"] is not None:
        at = result["from_us"]
        result.update(inline_p99_us=stats.median(inline[at]), offload_p99_us=stats.median(offload[at]),
                      inline_stall_us=_column(by_offload, INLINE, basis, "stall_p50_us").get(at))
    return result


def cells_to_refine(summary):
    """The cells a second pass runs EXTRA_RUNS more times: for each model, kind and
    target of concbench's own, inline and offloaded from the size below the crossover
    estimate to two sizes above it, and the floor of each kind, which every verdict is
    held against. Returns {(model, kind, offload, rate, workers, work_us)}, numbers as in
    benchmark names."""
    cells = set()
    for model, by_kind in summary["break_even"].items():
        if res.is_peer(model):  # each of their runs starts a process: too dear for more
            continue
        for kind, by_target in by_kind.items():
            for target, found in by_target.items():
                if found["estimate_us"] is None:
                    continue
                sizes = [_num(w) for w in found["verdicts"]]
                at = sizes.index(found["estimate_us"])
                for work in sizes[max(at - 1, 0):at + 3]:
                    for offload in (INLINE, target):
                        cells.add((model, kind, offload, found["rate"], found["workers"], work))
                for floor_kind in by_kind:
                    cells.add((model, floor_kind, INLINE, found["rate"], found["workers"], FLOOR_WORK_US))
    ran = {(model, kind, offload, _num(rate), _num(workers), _num(work))
           for model, kind, offload, rate, workers, work, _ in _walk(summary["series"])}
    return cells & ran  # a floor may not have run (a filter)


def _offload_cost(by_offload, target):
    """Heavy p50 offloaded minus inline where the work is smallest: the sizes both
    measured within COST_SIZES_SPAN of the smallest, each run taken against inline's
    median at its size, pooled; the Hodges–Lehmann shift over them, with its interval
    (None with too few runs). One size alone gives too few runs for a figure that holds:
    a heavy p50 is the median of a hundred or so requests."""
    paired = _paired(by_offload, target, "heavy_p50_us")
    if paired is None:
        return None
    basis, inline, offload, common = paired
    sizes = [w for w in common if w < COST_SIZES_SPAN * common[0]]
    # Each run less its nominal work, so that sizes pool: a figure independent of the
    # runs, which centring on their own median would not be.
    offloaded = [o - w for w in sizes for o in offload[w]]
    inlined = [i - w for w in sizes for i in inline[w]]
    shift = stats.shift_interval(offloaded, inlined)
    return {"cost_us": shift["estimate"], "low_us": shift["low"], "high_us": shift["high"],
            "coverage": shift["coverage"], "work_us": sizes[0], "up_to_us": sizes[-1],
            "runs_us": [o - stats.median(inlined) for o in offloaded],  # what scripts/compare tests
            "rate": _num(basis[0]), "workers": _num(basis[1])}


def _cpu_waits(by_kind, kind, target):
    """Where target's light p99 stays above LOSES_TO_INLINE_BY x floor_us (medians of the
    runs less the host's share, as the rule takes them), the sizes whose serving thread
    waited for a CPU at least CPU_WAIT_EXPLAINS of the run (explained) and those where
    it did not (the offload's own cost), with each size's median wait share. None
    without a floor or wait counters."""
    by_offload = by_kind[kind]
    basis = _basis(by_offload, (INLINE, target))
    floor_runs = _floor_runs(by_kind, basis) if basis else []
    if not floor_runs:
        return None
    floor, host = floor_us(floor_runs), host_share(floor_runs)
    p99 = {w: stats.median(kept) for w, runs in _runs(by_offload, target, basis, "light_p99_us").items()
           if (kept := without_host_hiccups(runs, host))}
    share = _column(by_offload, target, basis, "cpu_wait_share")
    if not share:
        return None
    lifted = [w for w in sorted(p99) if p99[w] > LOSES_TO_INLINE_BY * floor and w in share]
    return {"floor_p99_us": floor, "shares": {str(w): v for w, v in sorted(share.items())},
            "explained_us": [w for w in lifted if share[w] >= CPU_WAIT_EXPLAINS],
            "unexplained_us": [w for w in lifted if share[w] < CPU_WAIT_EXPLAINS],
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
    if problem := res.unusable_counters(entry, COUNT_FIELDS):
        return problem
    counts = {field: res.finite(entry.get(field)) for field in COUNT_FIELDS}
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
        if res.is_peer(model):  # the checks hold concbench's own pools to its calibration
            continue
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


def stated(summary):
    """The figures this workload states, for scripts/compare (see compare.py)."""
    out = []
    for model, by_kind in summary["break_even"].items():
        for kind, by_target in by_kind.items():
            for target, found in by_target.items():
                if found["status"] in ("missing", TOO_FEW_RUNS):
                    continue
                out.append({"key": f"break_even/{model}/{kind}/{target}", "unit": "µs", "better": None,
                            "label": f"{model}, kind:{kind}: {target} pays off from",
                            "value": found["from_us"], "text": _break_even_text(found), "runs": None})
    for model, by_kind in summary["offload_cost"].items():
        for kind, by_target in by_kind.items():
            for target, cost in by_target.items():
                if cost:
                    out.append({"key": f"offload_cost/{model}/{kind}/{target}", "unit": "µs", "better": "lower",
                                "label": f"{model}, kind:{kind}: one offload to {target} costs",
                                "value": cost["cost_us"], "text": _cost_text(cost), "runs": cost["runs_us"]})
    return out


# ---------------------------------------------------------------- formatting

def _work_axis(ax, sizes):
    ax.set_xscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([format_us(s) for s in sizes], rotation=30, ha="right")
    ax.minorticks_off()
    ax.set_xlabel("work per heavy request (work_us, log scale)")


def _legend(ax):
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")


def _title_settings(rate, workers, repetitions):
    runs = "" if repetitions is None else f", {_runs_phrase(repetitions)} per cell"
    return f"light rate {_num(rate):g}/s, {_plural(_num(workers), 'worker')}{runs}"


def _runs_phrase(repetitions):
    low, high = repetitions
    return _plural(low, "run") if low == high else f"{low:g}–{high:g} runs"


def _plural(n, word):
    return f"{n:g} {word}{'' if n == 1 else 's'}"


# ---------------------------------------------------------------- plots

def plot(summary, plots_dir):
    written = []
    for model, by_kind in summary["series"].items():
        if model == GO:  # nothing offloaded, nothing crossed: its table says it all
            continue
        for kind, by_offload in by_kind.items():
            written += _plot_crossover(summary, model, kind, by_offload, plots_dir)
        written += _plot_trade(summary, model, plots_dir)
    return written


def _plot_crossover(summary, model, kind, by_offload, plots_dir):
    """Median light p99 by work per offload mode, bars over the middle half of the runs,
    filled markers where the rule finds a win, the floor as a band and each break-even
    with its interval (a bar along the top)."""
    basis = _basis(by_offload, (INLINE,)) or _basis(by_offload, tuple(by_offload)[:1])
    if basis is None:
        return []
    fig, ax = plt.subplots(figsize=(9, 5.5))
    ax.grid(True, which="major", alpha=0.3)
    sizes = set()
    for offload in by_offload:
        if basis[0] not in by_offload[offload] or basis[1] not in by_offload[offload][basis[0]]:
            continue
        points = {w: p for w, p in _points(by_offload, offload, basis).items()
                  if (res.finite(p.get("light_p99_us")) or 0) > 0}
        if not points:
            continue
        works = sorted(points)
        sizes.update(works)
        medians = [points[w]["light_p99_us"] for w in works]
        quartiles = [_quartiles(points[w].get("runs", {}).get("light_p99_us") or [points[w]["light_p99_us"]])
                     for w in works]
        color = OFFLOAD_COLORS.get(offload, color_for(offload))
        ax.errorbar(works, medians, yerr=[[m - q[0] for m, q in zip(medians, quartiles)],
                                          [q[1] - m for m, q in zip(medians, quartiles)]],
                    color=color, marker="o", markerfacecolor="white", capsize=3, label=offload)
        found = summary["break_even"][model][kind].get(offload, {})
        if offload in TARGETS and (found.get("rate"), found.get("workers")) == (_num(basis[0]), _num(basis[1])):
            verdicts = found["verdicts"]
            won = [(w, m) for w, m in zip(works, medians) if verdicts.get(str(w)) == WIN]
            if won:
                ax.plot([w for w, _ in won], [m for _, m in won], linestyle="none", marker="o", color=color,
                        zorder=4, label=f"{offload} wins (rule above)")
    if not sizes:
        plt.close(fig)
        return []
    sizes = sorted(sizes)
    floor = _floor_runs(summary["series"][model], basis)
    if floor:
        low, high = _quartiles(floor)
        ax.axhspan(low, high, color="gray", alpha=0.15, label=f"floor, no work (middle half): {format_range_us(low, high)}")
        ax.axhline(LOSES_TO_INLINE_BY * floor_us(floor), color="gray", linewidth=1, linestyle=(0, (1, 3)),
                   label=f"floor / {BEATS_INLINE_BY:g}: inline must exceed this for a win")
    ax.plot(sizes, sizes, color="lightgray", linewidth=1, zorder=1, label="y = work (a full stall)")
    # concbench's own round trips: a peer's pools are not what they measure.
    for target, styles in ({} if res.is_peer(model) else REFERENCE_STYLES).items():
        for names, style in zip((WAKE_ROUND_TRIPS[target], (POOL_ROUND_TRIPS[target],)), styles):
            name, value = _first_known(summary["calibration"], names)
            if name:
                ax.axhline(value, color="gray", linestyle=style, linewidth=1,
                           label=f"{CALIBRATION_LABELS[name]} {format_us(value)}")
    for row, target in enumerate(TARGETS):
        found = summary["break_even"][model][kind][target]
        if found["workers"] != _num(basis[1]) or found["rate"] != _num(basis[0]):
            continue
        if found["low_us"] is not None:  # x in data, y in axes units: a bar along the top
            ax.plot([found["low_us"], found["high_us"]], [0.97 - 0.03 * row] * 2, transform=ax.get_xaxis_transform(),
                    color=OFFLOAD_COLORS[target], linewidth=4, alpha=0.5, solid_capstyle="butt",
                    label=f"{target} break-even interval")
        if found["from_us"] is not None:
            ax.axvline(found["from_us"], color=OFFLOAD_COLORS[target], linestyle=":", linewidth=1.5,
                       label=f"{target} pays off from {_break_even_text(found)}")
    _work_axis(ax, sizes)
    ax.set_yscale("log")
    ax.set_ylabel("light-request latency p99 (µs, log scale)")
    ax.set_title(f"blocking_stall: {model}, kind:{kind}: light p99 by work per heavy request\n"
                 f"median of the runs, bars: middle half; {_title_settings(*basis, summary['repetitions'])}",
                 fontsize="medium")
    _legend(ax)
    return save(fig, plots_dir, PLOT_CROSSOVER.format(model=model, kind=kind))


def _plot_trade(summary, model, plots_dir):
    """Both sides of an offload, per target and kind: the light p99 it buys (ratio to
    inline) and the heavy p50 it costs (offloaded minus inline), each an estimate over
    the runs with its interval where the runs allow one."""
    fig, (gain, cost) = plt.subplots(1, 2, figsize=(13, 5.5))
    sizes, basis_seen = set(), set()
    for kind, by_offload in summary["series"][model].items():
        for target in TARGETS:
            found = summary["break_even"][model][kind][target]
            heavy = _paired(by_offload, target, "heavy_p50_us")
            if not found["ratios"] or heavy is None:
                continue
            basis_seen.add((found["rate"], found["workers"]))
            style = dict(color=OFFLOAD_COLORS[target], linestyle=KIND_STYLES.get(kind, ":"),
                         marker=KIND_MARKERS.get(kind, "^"), capsize=3, label=f"{target}, kind:{kind}")
            works = sorted(found["ratios"], key=_num_key)
            sizes.update(_num(w) for w in works)
            _interval_line(gain, [_num(w) for w in works], [found["ratios"][w] for w in works], style)
            _, inline, offload, common = heavy
            shifts = [stats.shift_interval(offload[w], inline[w]) for w in common]
            _interval_line(cost, common, shifts, style)
    if not sizes:
        plt.close(fig)
        return []
    sizes = sorted(sizes)
    gain.axhline(1, color="lightgray", linewidth=1)
    gain.axhline(BEATS_INLINE_BY, color="gray", linestyle="--", linewidth=1,
                 label=f"{BEATS_INLINE_BY:g}: a win lies wholly below")
    gain.axhline(LOSES_TO_INLINE_BY, color="gray", linestyle=":", linewidth=1,
                 label=f"{LOSES_TO_INLINE_BY:g}: a loss lies wholly above")
    gain.set_yscale("log")
    gain.set_ylabel("light p99 offloaded ÷ inline (log scale; below 1: offloading helps)")
    gain.set_title("what the light requests gain")
    cost.axhline(0, color="lightgray", linewidth=1)
    cost.set_yscale("symlog", linthresh=10)
    cost.set_ylabel("heavy p50 offloaded − inline (µs, symmetric log scale)")
    cost.set_title("what each heavy request pays")
    for ax in (gain, cost):
        ax.grid(True, which="major", alpha=0.3)
        _work_axis(ax, sizes)
    gain.legend(fontsize="small")
    settings = "; ".join(_title_settings(rate, workers, summary["repetitions"]) for rate, workers in sorted(basis_seen))
    fig.suptitle(f"blocking_stall: {model}, the trade of an offload\n"
                 f"estimates over the runs, bars: {stats.CONFIDENCE:.0%} intervals; {settings}")
    return save(fig, plots_dir, PLOT_TRADE.format(model=model))


def _quartiles(values):
    values = sorted(values)
    return (float(np.percentile(values, 25)), float(np.percentile(values, 75)))


def _interval_line(ax, works, estimates, style):
    """A line of {estimate, low, high} by work, with bars where an interval exists."""
    values = [e["estimate"] for e in estimates]
    low = [v - (e["low"] if e["low"] is not None else v) for v, e in zip(values, estimates)]
    high = [(e["high"] if e["high"] is not None else v) - v for v, e in zip(values, estimates)]
    ax.errorbar(works, values, yerr=[low, high], **style)


# ---------------------------------------------------------------- report

def report(summary, plots):
    """Markdown section; plots are paths relative to the report (plots/x.png)."""
    runs = f"{_runs_phrase(summary['repetitions'])} per cell, interleaved" if summary["repetitions"] else "no runs"
    if summary["repetitions"] and summary["repetitions"][1] > summary["repetitions"][0]:
        runs += ("; the most where the break-evens are decided: a second pass runs the cells from the size "
                 "below each crossover estimate to two sizes above it again, and the floors")
    intro = ("Light requests arrive open-loop at a fixed rate (latency counts from their scheduled "
             "arrival); heavy requests hold their thread for `work_us`, hashing (kind:cpu) or blocked "
             "in a read (kind:sleep), either inline or offloaded to threads or to processes. Inline with "
             f"no work is the machine's floor. Every cell ran several times ({runs}); figures are medians "
             "over the runs. "
             "**The rule.** A hiccup of the machine lifts the p99 of the run it lands in and never lowers "
             "one, whatever the model does; the floor counts them (its runs above "
             f"{HOST_HICCUP_FACTOR:g}× the median of its lower half, at most {MAX_HOST_SHARE:.0%}), and every "
             "cell compared leaves out that share of its runs, its highest. At each size, the runs left give a "
             f"{stats.CONFIDENCE:.0%} interval for light p99 "
             "offloaded ÷ inline (Hodges–Lehmann, distribution-free). Offloading *wins* where that interval "
             f"lies below {BEATS_INLINE_BY:g} and the interval of inline's median p99 lies above the floor's "
             f"median ÷ {BEATS_INLINE_BY:g} (the floor's runs of both kinds, pooled: with no work the "
             f"requests are the same; nearer the floor, {BEATS_INLINE_BY:g}× inline is a latency no "
             f"offload reaches); it *loses* where the interval lies above {LOSES_TO_INLINE_BY:g}; otherwise it makes "
             f"no difference. It *pays off from W* where it wins at W and, at every larger size, the ratio's "
             f"estimate (the median of every pair of runs) lies below {BEATS_INLINE_BY:g}, so that a lone win "
             "in a stretch near the margin is not taken for the break-even; the interval beside a break-even "
             "holds every size the data allow to be it, and the middle "
             f"{stats.CONFIDENCE:.0%} of the break-evens the rule gives on {RESAMPLES} resamples of the runs "
             "(each cell's runs drawn again with replacement): above a sure win at the margin, another run "
             "may well find none there. The offload cost is "
             "heavy p50 offloaded minus inline where the work is smallest (the sizes below "
             f"{COST_SIZES_SPAN:g}× the smallest, pooled), with its interval.")
    if any(res.is_peer(model) for model in summary["series"]):
        intro += (" The peer_ rows are the same schedule served by programs in other languages (peers/), "
                  "each request checked like the C++ models'; their kind:cpu work is sized by their own "
                  "SHA-256 (see Calibration), so that `work_us` takes as long in every language, and they "
                  "run fewer sizes outside `--full`.")
    tables = ([_break_even_table(summary), _verdict_table(summary), _p99_table(summary), _go_table(summary),
               _wait_table(summary), _checks_table(summary)] if summary["series"] else [])
    errors = [f"`{e['name']}`: {e['message']}" for e in summary["errors"]]
    errors += [f"`{m['name']}`" + (f" (repetition {m['repetition']})" if m["repetition"] is not None else "")
               + f": {m['message']}" for m in summary["count_mismatches"]]
    return section(TITLE, intro, plots, tables, errors, conclusions(summary))


def answers(summary):
    """The Answers lines of the report: where offloading pays off, per model, and
    what one offload costs."""
    out = []
    for model in sorted(summary["break_even"], key=res.rank_in(ANSWER_ORDER)):
        by_kind = summary["break_even"][model]
        parts = []
        for kind, by_target in by_kind.items():
            found = [f"to {t} {'from ' if f['from_us'] is not None else ''}{_break_even_text(f)}"
                     for t, f in by_target.items() if f["status"] != "missing"]
            if found:
                parts.append(f"{KIND_PHRASES.get(kind, kind)}: " + ", ".join(found))
        if parts:
            out.append(answer(f"When does offloading from {MODEL_PHRASES.get(model, model)} pay off?",
                              "; ".join(parts) + " (break-even in work per heavy request; interval in brackets).",
                              TITLE))
    costs = []
    for model, by_kind in summary["offload_cost"].items():
        by_target = by_kind.get(HEADLINE_KIND, {})
        parts = [f"{_cost_text(c)} to {t}" for t, c in by_target.items() if c]
        if parts:
            costs.append(f"from {MODEL_PHRASES.get(model, model)}, {_and(parts)}")
    if costs:
        out.append(answer("What does one offload cost?", "; ".join(costs) + f" on a heavy request's p50 "
                          f"(kind:{HEADLINE_KIND}, the smallest work).", TITLE))
    go = _go_rises(summary)
    if go:
        out.append(answer("And Go, with a goroutine per request?", "Light p99 over its floor at the largest work, "
                          + "; ".join(go) + ".", TITLE))
    return out


def _go_rises(summary):
    """'CPU work (10 ms): 1.2× with GOMAXPROCS=2, 40× with GOMAXPROCS=1', per kind: how
    far Go's light p99 rises over its own floor (same GOMAXPROCS) at the largest work."""
    out = []
    for kind, by_offload in summary["series"].get(GO, {}).items():
        by_rate = by_offload.get(INLINE, {})
        if not by_rate:
            continue
        rate = min(by_rate, key=_num_key)
        parts, largest = [], None
        for workers in sorted(by_rate[rate], key=_num_key, reverse=True):
            points = by_rate[rate][workers]
            floor = res.finite((points.get(str(FLOOR_WORK_US)) or {}).get("light_p99_us"))
            works = [w for w in points if _num(w) != FLOOR_WORK_US and res.finite(points[w].get("light_p99_us"))]
            if floor and works:
                largest = max(works, key=_num_key)
                parts.append(f"{points[largest]['light_p99_us'] / floor:.3g}× with GOMAXPROCS={_num(workers):g}")
        if parts:
            out.append(f"{KIND_PHRASES.get(kind, kind)} ({format_us(_num(largest))}): " + ", ".join(parts))
    return out


def _go_table(summary):
    """Go's light p99 at each size, per kind and GOMAXPROCS (the workers key)."""
    by_kind = summary["series"].get(GO)
    if not by_kind:
        return []
    sizes = sorted({_num(w) for _, _, _, _, _, w, _ in _walk({GO: by_kind})})
    lines = ["Go runs every request as a goroutine: no loop to stall and nothing to offload to. Its light "
             "p99 (median of the runs) with one P and with one per core, against its own floor:", ""]
    lines += _sizes_header(sizes, "kind | GOMAXPROCS")
    for kind, by_offload in by_kind.items():
        by_rate = by_offload.get(INLINE, {})
        for rate in sorted(by_rate, key=_num_key)[:1]:
            for workers, points in sorted(by_rate[rate].items(), key=lambda item: _num_key(item[0])):
                cells = [format_us(v) if (v := res.finite((points.get(str(s)) or {}).get("light_p99_us")))
                         is not None else "–" for s in sizes]
                lines.append(f"| {kind} | {_num(workers):g} | " + " | ".join(cells) + " |")
    return lines


def _break_even_text(found):
    """'2 ms (1–5 ms)', 'never (to 10 ms)', ...: a break-even with its interval."""
    if found["status"] == "missing":
        return "–"
    if found["status"] == TOO_FEW_RUNS:
        return "? (too few runs)"
    if found["status"] == "never":
        text = f"never (to {format_us(found['largest_work_us'])}"
        if found["low_us"] is not None:  # no sure win, but the data allow one
            text += f"; could be {format_range_us(found['low_us'], found['high_us'])}"
        return text + ")"
    interval = format_range_us(found["low_us"], found["high_us"])
    if found["never_consistent"]:
        interval += " or never"
    return f"{format_us(found['from_us'])} ({interval})"


def _cost_text(cost):
    if cost is None:
        return "–"
    text = format_signed_us(cost["cost_us"])
    if cost["low_us"] is not None:
        text += f" ({format_signed_us(cost['low_us'])} to {format_signed_us(cost['high_us'])})"
    return text


def _break_even_table(summary):
    lines = ["Break-even (interval: every size the data allow, and where resampled runs put it) and "
             "offload cost (interval), "
             "at the lowest light rate and the most workers:",
             "",
             "| model | kind | rate | workers | threads pays off from | processes pays off from "
             "| threads offload cost | processes offload cost |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for model, by_kind in summary["break_even"].items():
        for kind, by_target in by_kind.items():
            found = [by_target[t] for t in TARGETS]
            if all(f["status"] == "missing" for f in found):  # Go: nothing to offload to
                continue
            basis = next((f for f in found if f["rate"] is not None), None)
            rate = f"{basis['rate']:g}/s" if basis else "–"
            workers = f"{basis['workers']:g}" if basis else "–"
            costs = [_cost_text(summary["offload_cost"][model][kind][t]) for t in TARGETS]
            lines.append(f"| {model} | {kind} | {rate} | {workers} | "
                         + " | ".join(_break_even_text(f) for f in found) + " | " + " | ".join(costs) + " |")
    return lines


def _sizes_header(sizes, first):
    return [f"| {first} | " + " | ".join(format_us(s) if s != FLOOR_WORK_US else "floor" for s in sizes) + " |",
            "|" + "---|" * first.count("|") + "---|" + ":---:|" * len(sizes)]


def _verdict_table(summary):
    sizes = [s for s in summary["work_sizes"] if s != FLOOR_WORK_US]
    marks = ", ".join(f"{mark} {v.replace('_', ' ')}" for v, mark in VERDICT_MARKS.items())
    lines = [f"The rule's verdict at each size ({marks}):", ""] + _sizes_header(sizes, "model | kind | target")
    for model, by_kind in summary["break_even"].items():
        for kind, by_target in by_kind.items():
            for target, found in by_target.items():
                if found["verdicts"]:
                    cells = [VERDICT_MARKS.get(found["verdicts"].get(str(s)), "") for s in sizes]
                    lines.append(f"| {model} | {kind} | {target} | " + " | ".join(cells) + " |")
    return lines


def _table_points(by_offload):
    """(offload, {work: point}) per offload mode at the lowest rate and most workers it has."""
    for offload, by_rate in by_offload.items():
        rate = min(by_rate, key=_num_key)
        workers = max(by_rate[rate], key=_num_key)
        yield offload, by_rate[rate][workers]


def _p99_table(summary):
    sizes = summary["work_sizes"]
    lines = ["Light-request p99, median of the runs (lowest light rate, most workers measured):", ""]
    lines += _sizes_header(sizes, "model | kind | offload")
    for model, by_kind in summary["series"].items():
        for kind, by_offload in by_kind.items():
            for offload, points in _table_points(by_offload):
                cells = [format_us(v) if (v := res.finite((points.get(str(s)) or {}).get("light_p99_us")))
                         is not None else "–" for s in sizes]
                lines.append(f"| {model} | {kind} | {offload} | " + " | ".join(cells) + " |")
    return lines


def _wait_table(summary):
    sizes = summary["work_sizes"]
    rows = []
    for model, by_kind in summary["series"].items():
        for kind, by_offload in by_kind.items():
            for offload, points in _table_points(by_offload):
                shares = [res.finite((points.get(str(s)) or {}).get("cpu_wait_share")) for s in sizes]
                if any(v is not None for v in shares):
                    rows.append(f"| {model} | {kind} | {offload} | "
                                + " | ".join("–" if v is None else f"{100 * v:.2g}%" for v in shares) + " |")
    if not rows:
        return []
    return (["Share of the run the threads serving light requests waited for a CPU (run-queue wait, "
             f"median of the runs); from {CPU_WAIT_EXPLAINS:.0%} on, that wait alone reaches the light p99:",
             ""] + _sizes_header(sizes, "model | kind | offload") + rows)


def _and(items):
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def conclusions(summary):
    """Sentences computed from the summary; nothing here is typed by hand."""
    return (_break_even_sentences(summary) + _cost_sentences(summary) + _wait_sentences(summary)
            + _failed_sentences(summary))


def _pays_off_phrase(found):
    if found["status"] == TOO_FEW_RUNS:
        return (f"has no verdict: too few runs per cell for a {stats.CONFIDENCE:.0%} interval "
                f"(the rule needs {MIN_RUNS})")
    if found["status"] == "never":
        phrase = f"never pays off up to {format_us(found['largest_work_us'])} (the largest work measured)"
        if found["low_us"] is not None:
            phrase += f", though the data allow a break-even at {format_range_us(found['low_us'], found['high_us'])}"
        return phrase
    interval = format_range_us(found["low_us"], found["high_us"])
    phrase = (f"pays off already at the smallest work measured, {format_us(found['from_us'])}"
              if found["from_us"] == found["smallest_work_us"] else
              f"pays off from {format_us(found['from_us'])} of work")
    phrase += f" (interval {interval}" + (", or never)" if found["never_consistent"] else ")")
    stall = found.get("inline_stall_us")
    if stall is not None and stall > STALL_UNLIKE_WORK * found["from_us"]:
        # A short blocking call is rarely as short as asked (timer slack, wake-up):
        # the break-even is in nominal work, the stall it caused is what explains it.
        phrase += f", a call that held its thread for {format_us(stall)} inline"
    return phrase


def _break_even_sentences(summary):
    out = []
    for model, by_kind in summary["break_even"].items():
        for kind, by_target in by_kind.items():
            parts = [(t, _pays_off_phrase(by_target[t])) for t in TARGETS if by_target[t]["status"] != "missing"]
            if not parts:
                continue
            first_target, first = parts[0]
            sentence = (f"Offloading {KIND_PHRASES.get(kind, 'kind:' + kind)} from {MODEL_PHRASES.get(model, model)} "
                        f"to {TARGET_PHRASES[first_target]} {first}")
            for target, phrase in parts[1:]:
                sentence += f"; to {TARGET_PHRASES[target]} it {phrase}"
            out.append(sentence + ".")
    return out


def _cost_sentences(summary):
    out = []
    for model, by_kind in summary["offload_cost"].items():
        costs = by_kind.get(HEADLINE_KIND, {})
        parts = [f"{_cost_text(costs[t])} to {t}" for t in TARGETS if costs.get(t)]
        if not parts:
            continue
        at = next(costs[t] for t in TARGETS if costs.get(t))
        out.append(f"One offload from {MODEL_PHRASES.get(model, model)} adds {_and(parts)} to a heavy "
                   f"request's p50 (kind:{HEADLINE_KIND}, {format_range_us(at['work_us'], at['up_to_us'])} of work).")
    refs = [f"{CALIBRATION_LABELS[name]} {format_us(value)}"
            for name, value in summary["calibration"].items() if value]
    if out and refs:
        out.append(f"Calibrated on this machine for comparison: {_and(refs)}.")
    return out


def _wait_sentences(summary):
    """Where the CPU wait explains an offloaded cell's lifted p99: the loop waited for a
    CPU, which no faster hand-off would fix."""
    out = []
    for model, by_kind in summary["cpu_waits"].items():
        for kind, by_target in by_kind.items():
            for target, waits in by_target.items():
                if not waits or not waits["explained_us"]:
                    continue
                explained = waits["explained_us"]
                lifted = len(explained) + len(waits["unexplained_us"])
                sizes = (format_us(explained[0]) if len(explained) == 1
                         else f"{len(explained)} of them, {format_range_us(explained[0], explained[-1])}")
                share = _percent_range([waits["shares"][str(w)] for w in explained])
                out.append(f"Offloaded to {target} ({model}, kind:{kind}), light p99 stayed above "
                           f"{LOSES_TO_INLINE_BY:g}× the floor ({format_us(waits['floor_p99_us'])}) at "
                           f"{_plural(lifted, 'size')}; at {sizes}, the threads serving light requests waited "
                           f"for a CPU {share} of the run: there the stall is the loop waiting for a CPU, not "
                           "the offload's own cost.")
    return out


def _percent_range(shares):
    low, high = min(shares), max(shares)
    return f"{100 * low:.2g}%" if f"{100 * low:.2g}" == f"{100 * high:.2g}" else f"{100 * low:.2g}–{100 * high:.2g}%"


def _setting(model, check):
    workers = check.get("workers")
    return model if workers in (None, 1) else f"{model} with {_plural(workers, 'worker')}"


def _checks_table(summary):
    checks = summary["checks"]
    rows = []
    for model, by_kind in checks["stall_visible"].items():
        for kind, check in by_kind.items():
            row = _stall_row(f"inline stall visible ({_setting(model, check)}, kind:{kind})", check)
            if row:
                rows.append(row)
    for model, check in checks["sleep_offload_bounded"].items():
        if check["held"] is None:
            continue
        span = format_us(check["largest_work_us"])
        if not check["covers_sweep"]:
            span += f" only (of {format_us(CHECK_UP_TO_US)})"
        rows.append((f"threads offload bounds kind:sleep ({_setting(model, check)})",
                     f"light p99 < {format_us(check['limit_us'])} up to {span}",
                     f"worst {format_us(check['worst_p99_us'])} at {format_us(check['worst_work_us'])}",
                     check["held"]))
    for model, by_target in checks["offload_cost_vs_rtt"].items():
        for target, check in by_target.items():
            rows.append(_cost_row(model, target, check))
    intro = (f"Checks. Inline stall: W is the inline call's stall (as timed where measured, else work_us) and I "
             f"the interval between heavy requests; a share W/I of light requests meets a stall, so light p99 "
             f"is predicted at W − {P99_TAIL:g}·I; checked from work_us ≥ {format_us(STALL_VISIBLE_FROM_US)}. "
             f"Offload cost: against the round trip to a sleeping core (the unpinned one where no cross-core "
             f"one was measured).")
    return checks_table(intro, rows)


def _stall_row(name, check):
    if check["held"] is None:
        return (name, "–", check["reason"], None) if check.get("reason") else None
    limit = (f"light p99 ≥ {STALL_P99_SHARE:g}× predicted; light max ≥ W − "
             f"{format_us(check['light_gap_us'])} (one light interval)")
    p99 = f"lowest light p99 {format_us(check['worst_p99_us'])} at {format_us(check['worst_work_us'])}"
    if check["worst_p99_vs_predicted"] is not None:
        p99 += f", {check['worst_p99_vs_predicted']:.2f}× predicted"
    most = (f"lowest light max {format_us(check['worst_max_us'])} at {format_us(check['worst_max_work_us'])}, "
            f"{check['worst_max_vs_stall']:.2f}× the stall")
    low, high = check["stall_vs_work"]
    timed = f"; inline calls took {low:.2f}–{high:.2f}× work_us" if check["stall_measured"] else ""
    return name, limit, f"{p99}; {most}{timed}", check["held"]


def _cost_row(model, target, check):
    limit = (f"≤ {ROUND_TRIP_TOLERANCE:g}× the {CALIBRATION_LABELS[check['reference']]} "
             f"({format_us(check['reference_us'])})")
    measured = f"{format_us(check['cost_us'])}, {check['ratio']:.2f}×"
    if check["reference"] != check["same_core"] and check["same_core_us"]:
        measured += f"; {check['same_core_ratio']:.2f}× the unpinned one ({format_us(check['same_core_us'])})"
    if check["pool_us"]:
        measured += f"; {check['pool_ratio']:.2f}× the pool's ({format_us(check['pool_us'])})"
    return f"{target} offload cost ({model})", limit, measured, check["held"]


def _failed_sentences(summary):
    failed = [(model, kind, offload, runs) for model, kind, offload, _, _, _, p in _walk(summary["series"])
              if (runs := [n for n in p.get("runs", {}).get("failed", []) if n > 0])]
    if not failed:
        return []
    total = sum(sum(runs) for *_, runs in failed)
    count = sum(len(runs) for *_, runs in failed)
    return [f"{_plural(total, 'request')} failed across {_plural(count, 'run')} "
            f"({_and(sorted({f'{m}/{k}/{o}' for m, k, o, _ in failed}))}); they are counted, not dropped."]
