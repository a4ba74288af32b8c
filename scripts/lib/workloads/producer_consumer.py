"""producer_consumer: P producers send M messages through a buffer of capacity Q to C
consumers, which spend work_ns of CPU on each. Answers what a channel hand-off costs on
each model (messages per second, against a lock-free single-producer queue whose two
threads spin: the limit), how P, C and Q change it, what it costs in CPU, how long
producers wait on a full buffer (backpressure), and the end-to-end latency from send to
receive, measured open-loop at half the cell's measured rate.

Series are the models. thread_pool is oneTBB's parallel_pipeline (one serial input stage,
the pool's threads consume): it runs only as p:1/c:pool, its shape "1xpool", and plots and
tables show it beside every shape as a reference. moodycamel and spsc_lockfree are labelled
baselines (BASELINES); spsc_lockfree runs 1x1 only. Every selection is at the model's
largest --workers measured (summary["workers"]); only fibers_mt and thread_pool follow
--workers, the others run with workers:1.

Summary layout (JSON-friendly, numbers as string keys):
  models                    every model seen (measured or failed), in report order
  workers[model]            its largest --workers with a valid cell; null if it has none
  shapes                    the P x C shapes measured ("1x1", "1x4", ...; not "1xpool")
  queues                    the Qs measured at work_ns 0, ascending
  cells[model] = [{name, model, p, c (0 = the pool), shape, q, capacity, work_ns, workers,
                   messages, msgs_per_s, wall_ms, cpu_ms, cpus_busy, cpu_ns_per_msg,
                   blocked_send_share, blocked_time_share, latency_rate_per_s,
                   latency_achieved_per_s, achieved_share, fell_behind, latency_messages,
                   latency_samples, latency_p50_us ... latency_max_us}]
                            valid cells at every --workers, sorted; achieved_share is achieved /
                            offered rate of the latency run, fell_behind achieved_share <
                            ON_SCHEDULE (null where the run did not record its achieved rate)
  msgs_per_s[model][shape][q]   messages per second at work_ns 0, at the model's workers
  vs_spsc[model]            msgs/s over spsc_lockfree's at 1x1, Q = VS_SPSC_Q, work_ns 0 (thread_pool
                            at 1xpool); null where either is missing
  vs_spsc_by_q[model][q]    the same at every Q both measured
  q_gain[model][shape] = {from_q, to_q, ratio}   msgs/s at the largest Q over the smallest, work_ns 0
  latency[model][shape] = {q, workers, p50_us, p90_us, p99_us, p999_us, max_us, rate_per_s,
                           achieved_per_s, achieved_share, fell_behind}   at LATENCY_Q, work_ns 0
  fell_behind = [{name, model, shape, q, work_ns, workers, achieved_share}]
                            every valid cell whose latency run fell behind its schedule
  with_work = [{model, shape, q, work_ns, workers, msgs_per_s, vs_no_work, work_cpus, cpus_busy,
                cpu_ns_per_msg, blocked_time_share, latency_p99_us, fell_behind}]
                            cells with work_ns > 0 at the model's workers; vs_no_work: over the
                            same cell at work_ns 0; work_cpus: msgs/s x work_ns, the CPUs the
                            consumers' work alone keeps busy
  workers_compare = [{model, shape, q, work_ns, msgs_per_s: {workers: rate}, low, high, ratio}]
                            cells measured at several --workers; ratio: at the most over the fewest
  capacity_differs = [{model, q, capacity}]   buffers built with another capacity than Q
  spin_ns_per_iteration, cores
  checks {verified: {held, cells, errors}, on_schedule: {held, cells, behind, unknown}}
  errors = [{name, model, shape, q, work_ns, workers, message}]
"""

import math

from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, NullFormatter

from markdown import answer, checks_table, section
from plotting import color_for, plt, save
import results as res
from units import format_per_s as format_rate, format_us

NAME = "producer_consumer"

MODEL_ORDER = ("event_loop", "fibers", "fibers_mt", "thread_pool", "threads_queue", "moodycamel", "spsc_lockfree")
BASELINES = ("moodycamel", "spsc_lockfree")
SPSC = "spsc_lockfree"
# parallel_pipeline: one serial input stage, the pool's threads consume; P and C are not its own.
REFERENCE = "thread_pool"
REFERENCE_NOTE = "parallel_pipeline: P and C not its own"
POOL_SHAPE = "1xpool"
# The headline comparisons run at this Q: deep enough that a hand-off need not wait for
# the other side every message, shallow enough to hold backpressure (the default asked for).
VS_SPSC_Q = 64
LATENCY_Q = 64
# A latency run that delivered less than this share of its offered rate fell behind its
# schedule: its latency counts the backlog (open loop) more than the hand-off.
ON_SCHEDULE = 0.9
# Process CPU over wall from which a cell keeps more than one core busy.
MORE_THAN_ONE_CPU = 1.2
KEY_FIELDS = ("p", "c", "q", "work_ns")
POINT_FIELDS = ("capacity", "messages", "msgs_per_s", "blocked_send_share", "blocked_time_share",
                "latency_rate_per_s", "latency_achieved_per_s", "latency_messages", "latency_samples",
                "latency_p50_us", "latency_p90_us", "latency_p99_us", "latency_p999_us", "latency_max_us")
PERCENTILES = (("p50", "p50_us", "o"), ("p99", "p99_us", "s"), ("p99.9", "p999_us", "^"))

# The project's colours for its models; the extra thread-based model and the baselines get
# their own, so no two models of this workload share one.
_COLORS = {"threads_queue": "tab:purple", "moodycamel": "tab:brown", "spsc_lockfree": "tab:gray"}
SHAPE_COLORS = ("#c6dbef", "#6baed6", "#2171b5", "#08306b", "#fdae6b")

TITLE = "producer_consumer: P producers, C consumers, a buffer of Q"
PLOT_RATE = "producer_consumer_msgs_per_s"
PLOT_LATENCY = "producer_consumer_latency"
PLOT_CPU = "producer_consumer_cpu_backpressure"


_rank = res.rank_in(MODEL_ORDER)


def _shape_rank(shape):
    p, _, c = shape.partition("x")
    return (c == "pool", int(p) if p.isdigit() else 0, int(c) if c.isdigit() else 0, shape)


def shape_of(p, c):
    """'PxC', 'Pxpool' where the pool's threads consume (c 0 or 'pool')."""
    return f"{p:g}x{'pool' if c in (0, 'pool') else format(c, 'g')}"


def model_color(model):
    return _COLORS.get(model) or color_for(model)


# ---------------------------------------------------------------- summary

def summarize(records, results):
    """records: this workload's reduced runs (see results.reduce_runs)."""
    errors, cells = [], {}
    for r in records:
        params = r["params"]
        absent = [f for f in KEY_FIELDS if f not in params]
        where = _where_of(r["model"], params)
        if r["error"] or absent:
            errors.append({"name": r["name"], **where,
                           "message": r["error"] or f"no {absent[0]} in the benchmark name"})
        else:
            cells.setdefault(r["model"], []).append(_cell(r, where))
    models = sorted(set(cells) | {e["model"] for e in errors}, key=_rank)
    context = results.get("context") or {}

    summary = {
        "models": models,
        "workers": {m: max((c["workers"] for c in cells.get(m, [])), default=None) for m in models},
        "cells": {m: sorted(cells[m], key=lambda c: (c["p"], c["c"], c["q"], c["work_ns"], c["workers"]))
                  for m in models if m in cells},
        "errors": errors,
        "spin_ns_per_iteration": res.finite(context.get("producer_consumer_spin_ns_per_iteration")),
        "cores": res.finite(context.get("cores") or context.get("num_cpus")),
    }
    valid = [c for m in summary["cells"] for c in _valid(summary, m)]
    summary["shapes"] = sorted({c["shape"] for c in valid if c["c"] != 0}, key=_shape_rank)
    summary["queues"] = sorted({c["q"] for c in valid if c["work_ns"] == 0})
    summary["msgs_per_s"] = {m: _rates(summary, m) for m in models if _rates(summary, m)}
    summary["vs_spsc_by_q"] = {m: _vs_spsc(summary, m) for m in models}
    summary["vs_spsc"] = {m: by_q.get(str(VS_SPSC_Q)) for m, by_q in summary["vs_spsc_by_q"].items()}
    summary["q_gain"] = {m: _q_gain(summary, m) for m in summary["msgs_per_s"]}
    summary["latency"] = {m: _latency(summary, m) for m in models}
    summary["fell_behind"] = [{f: c[f] for f in ("name", "model", "shape", "q", "work_ns", "workers",
                                                 "achieved_share")}
                              for m in summary["cells"] for c in summary["cells"][m] if c["fell_behind"]]
    summary["with_work"] = _with_work(summary)
    summary["workers_compare"] = _workers_compare(summary)
    summary["capacity_differs"] = sorted(
        ({"model": m, "q": c["q"], "capacity": c["capacity"]} for m in summary["cells"]
         for c in summary["cells"][m] if c["capacity"] is not None and c["capacity"] != c["q"]),
        key=lambda d: (_rank(d["model"]), d["q"]))
    summary["capacity_differs"] = [d for i, d in enumerate(summary["capacity_differs"])
                                   if d not in summary["capacity_differs"][:i]]
    summary["checks"] = _checks(summary)
    return summary


def _where_of(model, params):
    c = params.get("c")
    c = 0 if c == "pool" else c
    return {"model": model, "shape": shape_of(params["p"], c) if "p" in params and c is not None else None,
            "q": params.get("q"), "work_ns": params.get("work_ns"), "workers": params.get("workers", 1)}


def _cell(r, where):
    params = r["params"]
    point = {f: res.finite(r.get(f)) for f in POINT_FIELDS}
    real, cpu = r.get("real_time_ns"), r.get("cpu_time_ns")
    messages = point["messages"]
    rate, achieved = point["latency_rate_per_s"], point["latency_achieved_per_s"]
    share = achieved / rate if achieved is not None and rate else None
    return {"name": r["name"], "model": where["model"], "p": params["p"],
            "c": 0 if params["c"] == "pool" else params["c"],
            "shape": where["shape"], "q": params["q"], "work_ns": params["work_ns"], "workers": where["workers"],
            "wall_ms": real / 1e6 if real is not None else None, "cpu_ms": cpu / 1e6 if cpu is not None else None,
            "cpus_busy": cpu / real if cpu is not None and real else None,
            "cpu_ns_per_msg": cpu / messages if cpu is not None and messages else None,
            **point, "achieved_share": share, "fell_behind": None if share is None else share < ON_SCHEDULE,
            "msgs_per_s_runs": res.run_values(r, "msgs_per_s")}


def _valid(summary, model):
    """The model's valid cells at its largest workers."""
    workers = summary["workers"].get(model)
    return [c for c in summary["cells"].get(model, []) if c["workers"] == workers]


def _find(summary, model, shape, q, work_ns=0):
    return next((c for c in _valid(summary, model) if (c["shape"], c["q"], c["work_ns"]) == (shape, q, work_ns)),
                None)


def _error_at(summary, model, shape, q, work_ns=0):
    """The error message of the model's failed cell, preferring its own workers; None if none."""
    workers = summary["workers"].get(model)
    found = [e for e in summary["errors"]
             if (e["model"], e["shape"], e["q"], e["work_ns"]) == (model, shape, q, work_ns)]
    if not found:
        return None
    return max(found, key=lambda e: (e["workers"] == workers, e["workers"] or 0))["message"]


def _rates(summary, model):
    out = {}
    for c in _valid(summary, model):
        if c["work_ns"] == 0 and c["msgs_per_s"] is not None:
            out.setdefault(c["shape"], {})[str(c["q"])] = c["msgs_per_s"]
    return {shape: dict(sorted(by_q.items(), key=lambda kv: float(kv[0])))
            for shape, by_q in sorted(out.items(), key=lambda kv: _shape_rank(kv[0]))}


def _home_shape(model):
    """The shape compared with spsc_lockfree's 1x1: the pool's own for thread_pool."""
    return POOL_SHAPE if model == REFERENCE else "1x1"


def _vs_spsc(summary, model):
    spsc = summary["msgs_per_s"].get(SPSC, {}).get("1x1", {})
    mine = summary["msgs_per_s"].get(model, {}).get(_home_shape(model), {})
    return {q: mine[q] / spsc[q] for q in mine if spsc.get(q)}


def _q_gain(summary, model):
    out = {}
    for shape, by_q in summary["msgs_per_s"][model].items():
        qs = sorted(by_q, key=float)
        if len(qs) > 1 and by_q[qs[0]]:
            out[shape] = {"from_q": float(qs[0]), "to_q": float(qs[-1]), "ratio": by_q[qs[-1]] / by_q[qs[0]]}
    return out


def _latency(summary, model):
    out = {}
    for c in _valid(summary, model):
        if c["q"] == LATENCY_Q and c["work_ns"] == 0:
            out[c["shape"]] = {"q": c["q"], "workers": c["workers"],
                               **{f: c["latency_" + f] for f in ("p50_us", "p90_us", "p99_us", "p999_us", "max_us")},
                               "rate_per_s": c["latency_rate_per_s"], "achieved_per_s": c["latency_achieved_per_s"],
                               "achieved_share": c["achieved_share"], "fell_behind": c["fell_behind"]}
    return dict(sorted(out.items(), key=lambda kv: _shape_rank(kv[0])))


def _with_work(summary):
    out = []
    for model in summary["models"]:
        for c in _valid(summary, model):
            if not c["work_ns"]:
                continue
            base = _find(summary, model, c["shape"], c["q"])
            rate = c["msgs_per_s"]
            out.append({"model": model, "shape": c["shape"], "q": c["q"], "work_ns": c["work_ns"],
                        "workers": c["workers"], "msgs_per_s": rate,
                        "vs_no_work": rate / base["msgs_per_s"] if rate is not None and base and base["msgs_per_s"]
                        else None,
                        "work_cpus": rate * c["work_ns"] / 1e9 if rate is not None else None,
                        **{f: c[f] for f in ("cpus_busy", "cpu_ns_per_msg", "blocked_time_share", "latency_p99_us",
                                             "fell_behind")}})
    return sorted(out, key=lambda w: (w["work_ns"], _shape_rank(w["shape"]), w["q"], _rank(w["model"])))


def _workers_compare(summary):
    out = []
    for model, cells in summary["cells"].items():
        by_cell = {}
        for c in cells:
            if c["msgs_per_s"] is not None:
                by_cell.setdefault((c["shape"], c["q"], c["work_ns"]), {})[c["workers"]] = c["msgs_per_s"]
        for (shape, q, work_ns), rates in by_cell.items():
            if len(rates) > 1:
                low, high = min(rates), max(rates)
                out.append({"model": model, "shape": shape, "q": q, "work_ns": work_ns,
                            "msgs_per_s": {f"{w:g}": rates[w] for w in sorted(rates)}, "low": low, "high": high,
                            "ratio": rates[high] / rates[low] if rates[low] else None})
    return sorted(out, key=lambda w: (_rank(w["model"]), w["work_ns"], _shape_rank(w["shape"]), w["q"]))


def _checks(summary):
    cells = [c for m in summary["cells"] for c in summary["cells"][m]]
    known = [c for c in cells if c["fell_behind"] is not None]
    behind = sum(1 for c in known if c["fell_behind"])
    return {"verified": {"held": not summary["errors"], "cells": len(cells) + len(summary["errors"]),
                         "errors": len(summary["errors"])},
            "on_schedule": {"held": None if not known else behind == 0, "cells": len(known), "behind": behind,
                            "unknown": len(cells) - len(known)}}


def stated(summary):
    """The figures this workload states, for scripts/compare (see compare.py): each
    model's hand-off rate per shape at Q=VS_SPSC_Q, work_ns 0."""
    out = []
    for model in summary["msgs_per_s"]:
        for shape in summary["shapes"]:
            cell = _find(summary, model, shape, VS_SPSC_Q)
            if cell and cell["msgs_per_s"] is not None:
                out.append({"key": f"msgs_per_s/{model}/{shape}/{VS_SPSC_Q}", "unit": "msg/s", "better": "higher",
                            "label": f"{model}, {shape}, Q={VS_SPSC_Q}: messages/s", "value": cell["msgs_per_s"],
                            "runs": cell["msgs_per_s_runs"] or None, "workers": cell["workers"]})
    return out


# ---------------------------------------------------------------- formatting

def _rate_tick(value, _):
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:g}{unit}"
    return f"{value:g}"


def _ratio(value):
    return "–" if value is None else f"{value:.2f}×" if value < 10 else f"{value:.3g}×"


def _share(value):
    return "–" if value is None else f"{value:.0%}"


def _cpus(value):
    return "–" if value is None else f"{value:.2f}"


def _ns(value):
    if value is None:
        return "–"
    return format_us(value / 1e3) if value >= 1e3 else f"{value:.3g} ns"


def _label(summary, model):
    workers = summary["workers"].get(model)
    text = model + (f" ({workers:g} workers)" if workers and workers > 1 else "")
    if model in BASELINES:
        text += ", baseline" + (" (1x1 only)" if model == SPSC else "")
    if model == REFERENCE:
        text += f" [{REFERENCE_NOTE}]"
    return text


def _with_workers(workers):
    return f" with {workers:g} workers" if workers and workers > 1 else ""


def _and(items):
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# ---------------------------------------------------------------- plots

def plot(summary, plots_dir):
    if not summary["cells"]:
        return []
    return _plot_rate(summary, plots_dir) + _plot_latency(summary, plots_dir) + _plot_cpu(summary, plots_dir)


def _grid(n):
    cols = 2 if n > 1 else 1
    return math.ceil(n / cols), cols


def _legend(ax, handles, labels):
    """One legend right of ax (the top-right panel), outside the data."""
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small")


def _rate_axis(ax):
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(_rate_tick))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _plot_rate(summary, plots_dir):
    shapes, queues = summary["shapes"], summary["queues"]
    if not shapes or not queues:
        return []
    rows, cols = _grid(len(shapes))
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols + 3.5, 4.2 * rows), sharex=True, sharey=True,
                             squeeze=False)
    axes = list(axes.flat)
    handles = {}
    for ax, shape in zip(axes, shapes):
        for model, by_shape in summary["msgs_per_s"].items():
            own = model == REFERENCE and shape not in by_shape
            points = sorted((float(q), v) for q, v in by_shape.get(POOL_SHAPE if own else shape, {}).items() if v > 0)
            if not points:
                continue
            style = ":" if model == REFERENCE else "--" if model in BASELINES else "-"
            line, = ax.plot([q for q, _ in points], [v for _, v in points], marker="o", linestyle=style,
                            color=model_color(model), linewidth=1.5 if style == "-" else 1.3)
            handles.setdefault(_label(summary, model), line)
        ax.set_xscale("log")
        ax.set_xticks(queues)
        ax.set_xticklabels([f"{q:g}" for q in queues])
        ax.minorticks_off()
        _rate_axis(ax)
        ax.grid(True, which="major", alpha=0.3)
        p, _, c = shape.partition("x")
        ax.set_title(f"P×C = {p}×{c} ({p} producer{'s' if p != '1' else ''}, {c} consumer{'s' if c != '1' else ''})")
    for ax in axes[len(shapes):]:
        ax.set_visible(False)
    for ax in axes[(rows - 1) * cols:]:
        ax.set_xlabel("Q: buffer capacity (log scale)")
    for ax in axes[::cols]:
        ax.set_ylabel("messages per second (log)")
    labels = sorted(handles, key=lambda label: _rank(label.split(" ")[0].rstrip(",")))
    _legend(axes[cols - 1], [handles[label] for label in labels], labels)
    fig.suptitle("producer_consumer: messages per second by buffer capacity, work_ns 0 (higher is better)\n"
                 "baselines dashed; thread_pool dotted, its parallel_pipeline in every panel as a reference; "
                 "each model at its largest --workers")
    return save(fig, plots_dir, PLOT_RATE)


def _plot_latency(summary, plots_dir):
    shapes = [s for s in summary["shapes"] if any(s in summary["latency"][m] for m in summary["models"])]
    if not shapes:
        return []
    models = [m for m in summary["models"] if summary["latency"][m]]
    rows, cols = _grid(len(shapes))
    fig, axes = plt.subplots(rows, cols, figsize=(5.6 * cols + 3.5, 4.4 * rows), sharey=True, squeeze=False)
    axes = list(axes.flat)
    any_behind = False
    for ax, shape in zip(axes, shapes):
        for x, model in enumerate(models):
            latency = summary["latency"][model]
            point = latency.get(shape) or (latency.get(POOL_SHAPE) if model == REFERENCE else None)
            if point is None:
                ax.text(x, 0.02, "not run", transform=ax.get_xaxis_transform(), ha="center", fontsize="x-small",
                        color="gray", rotation=90)
                continue
            values = [(label, point[field], marker) for label, field, marker in PERCENTILES if (point[field] or 0) > 0]
            if not values:
                continue
            behind = bool(point["fell_behind"])
            any_behind |= behind
            color = model_color(model)
            if behind:
                ax.axvspan(x - 0.45, x + 0.45, facecolor="none", edgecolor="tab:red", hatch="///", alpha=0.5,
                           linewidth=0)
            ax.plot([x, x], [values[0][1], values[-1][1]], color=color, linewidth=2,
                    linestyle=":" if model == REFERENCE else "--" if model in BASELINES else "-")
            for _, value, marker in values:
                ax.plot([x], [value], marker=marker, markersize=7, color=color,
                        markerfacecolor="white" if behind else color)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: format_us(value)))
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels([m + (f" ({summary['workers'][m]:g}w)" if (summary["workers"][m] or 1) > 1 else "")
                            for m in models], rotation=35, ha="right", fontsize="small")
        ax.set_xlim(-0.6, len(models) - 0.4)
        ax.grid(True, which="major", axis="y", alpha=0.3)
        ax.set_title(f"P×C = {shape.replace('x', '×')}, Q={LATENCY_Q:g}")
    for ax in axes[len(shapes):]:
        ax.set_visible(False)
    for ax in axes[::cols]:
        ax.set_ylabel("latency, send to receive (log)")
    handles = [Line2D([], [], color="black", marker=marker, linestyle="none", label=label)
               for label, _, marker in PERCENTILES]
    handles.append(Line2D([], [], color="gray", linestyle="--", label="baseline"))
    handles.append(Line2D([], [], color="gray", linestyle=":", label=f"thread_pool: {REFERENCE_NOTE}"))
    if any_behind:
        handles.append(Patch(facecolor="none", edgecolor="tab:red", hatch="///",
                             label=f"fell behind its schedule (achieved < {ON_SCHEDULE:g}× offered;\n"
                                   "hollow markers: mostly backlog)"))
    _legend(axes[cols - 1], handles, [h.get_label() for h in handles])
    fig.suptitle(f"producer_consumer: latency percentiles at Q={LATENCY_Q:g}, work_ns 0, open loop at half "
                 "each cell's measured rate (lower is better)\neach model at its largest --workers (w: workers)")
    return save(fig, plots_dir, PLOT_LATENCY)


def _plot_cpu(summary, plots_dir):
    queues = summary["queues"]
    models = [m for m in summary["models"] if m in summary["msgs_per_s"]]
    shapes = summary["shapes"] + [POOL_SHAPE]
    if not queues or not models:
        return []
    fig, axes = plt.subplots(2, len(queues), figsize=(4.6 * len(queues) + 3, 7.5), sharey="row", squeeze=False)
    width = 0.8 / len(shapes)
    for col, q in enumerate(queues):
        for row, field in enumerate(("cpus_busy", "blocked_time_share")):
            ax = axes[row][col]
            for s, shape in enumerate(shapes):
                xs, ys = [], []
                for x, model in enumerate(models):
                    cell = _find(summary, model, shape, q)
                    if cell and cell[field] is not None:
                        # thread_pool has only its own shape: its bar sits in the middle of its slot.
                        xs.append(x if shape == POOL_SHAPE else x - 0.4 + width * (s + 0.5))
                        ys.append(cell[field])
                if xs:
                    ax.bar(xs, ys, width=width, color=SHAPE_COLORS[s % len(SHAPE_COLORS)], edgecolor="white",
                           linewidth=0.5, label=f"P×C = {shape.replace('x', '×')}")
            ax.set_xticks(range(len(models)))
            ax.set_xticklabels(models, rotation=35, ha="right", fontsize="small")
            ax.grid(True, which="major", axis="y", alpha=0.3)
            if row == 0:
                ax.set_title(f"Q={q:g}")
                ax.axhline(1.0, color="gray", linestyle="--", linewidth=1)
                if summary["cores"]:
                    ax.axhline(summary["cores"], color="black", linestyle=":", linewidth=1)
            else:
                ax.set_ylim(0, 1.05)
                ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.0%}"))
    axes[0][0].set_ylabel("CPUs busy\n(process CPU / wall)")
    axes[1][0].set_ylabel("producers' time blocked\non a full buffer")
    handles, labels = {}, []
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in handles:
                handles[label] = handle
                labels.append(label)
    labels.sort(key=lambda label: shapes.index(label.split(" = ")[1].replace("×", "x")))
    extra = [Line2D([], [], color="gray", linestyle="--", label="one core")]
    if summary["cores"]:
        extra.append(Line2D([], [], color="black", linestyle=":", label=f"every core ({summary['cores']:g})"))
    _legend(axes[0][-1], [handles[label] for label in labels] + extra, labels + [h.get_label() for h in extra])
    fig.suptitle("producer_consumer: CPU and backpressure at work_ns 0 (each model at its largest --workers; "
                 "P×C = 1×pool is thread_pool's parallel_pipeline)")
    return save(fig, plots_dir, PLOT_CPU)


# ---------------------------------------------------------------- report

def report(summary, plots):
    """Markdown section; plots are paths relative to the report (plots/x.png)."""
    intro = ("P producers send M messages through a buffer of capacity Q to C consumers, which spend work_ns of "
             "CPU on each. Messages per second come from the timed run; latency, from send to receive, from a "
             "second run paced open-loop at half that rate (from each message's scheduled send time, so a cell "
             f"that cannot keep to the schedule counts its backlog: one that delivers less than {ON_SCHEDULE:g}× "
             "the offered rate is flagged as fallen behind). CPUs busy is process CPU time over wall time: "
             "threads that spin or wait busily show up here. Blocked time is the producers' time waiting on a "
             "full buffer over P × wall (backpressure). "
             f"Baselines: `spsc_lockfree` (boost spsc_queue, both threads spin, 1x1 only: the limit) and "
             f"`moodycamel` (BlockingConcurrentQueue between threads). `thread_pool` is oneTBB's parallel_pipeline "
             "(one serial input stage, the pool's threads consume), run once per Q as 1 × pool and shown beside "
             "every shape as a reference; with Q = 1 its one token runs both stages on one thread in turn, no "
             "hand-off between threads, so its Q=1 figure is not a channel's. A paced producer that is ahead "
             "of its schedule yields (a sleep wakes tens of µs late) and so keeps a core busy: on a machine "
             "with fewer cores than producers and consumers, the thread-based models' latency runs compete "
             "with those spinning producers.")
    if summary["capacity_differs"]:
        built = {}
        for d in summary["capacity_differs"]:
            built.setdefault(d["model"], []).append(f"{d['capacity']:g} at Q={d['q']:g}")
        intro += " Buffers as built: " + "; ".join(f"{m} holds {', '.join(v)}" for m, v in built.items()) + "."
    if summary["spin_ns_per_iteration"]:
        intro += (f" work_ns is spun on a loop calibrated at {summary['spin_ns_per_iteration']:.3g} ns "
                  "per iteration.")
    tables = []
    if summary["msgs_per_s"]:
        tables += [_rate_table(summary), _vs_spsc_table(summary), _latency_table(summary), _cpu_table(summary)]
    if summary["fell_behind"]:
        tables.append(_fell_behind_table(summary))
    if summary["with_work"]:
        tables.append(_work_table(summary))
    if summary["workers_compare"]:
        tables.append(_workers_table(summary))
    tables.append(_checks_table(summary))
    errors = [f"`{e['name']}`: {e['message']}" for e in summary["errors"]]
    return section(TITLE, intro, plots, tables, errors, conclusions(summary))


def answers(summary):
    """The Answers line of the report: the fastest hand-off for each shape."""
    fastest = []
    for shape in summary["shapes"]:
        rates = [(by_shape[shape][str(VS_SPSC_Q)], m) for m, by_shape in summary["msgs_per_s"].items()
                 if str(VS_SPSC_Q) in by_shape.get(shape, {})]
        if rates:
            rate, model = max(rates)
            fastest.append(f"{shape}: {model} ({format_rate(rate)})")
    if not fastest:
        return []
    return [answer("Which hand-off is fastest?", f"Messages per second at Q={VS_SPSC_Q}, work_ns 0: "
                   f"{'; '.join(fastest)}.", TITLE)]


def _table_rows(summary):
    """[(shape, model)] in table order: by shape, thread_pool's own shape last."""
    rows = []
    for shape in summary["shapes"] + [POOL_SHAPE]:
        for model in summary["models"]:
            if shape in summary["msgs_per_s"].get(model, {}) or any(
                    e["model"] == model and e["shape"] == shape and e["work_ns"] == 0 for e in summary["errors"]):
                rows.append((shape, model))
    return rows


def _fastest(summary, shape, q):
    """(rate, model) of the fastest model at shape and Q, baselines and the reference aside."""
    ranked = _ranked(summary, shape, q)
    return ranked[0] if ranked else None


def _ranked(summary, shape, q):
    """[(rate, model)] at shape and Q, fastest first (ties in report order), baselines and the reference aside."""
    rates = [(by_shape[shape][str(q)], m) for m, by_shape in summary["msgs_per_s"].items()
             if m not in BASELINES and m != REFERENCE and str(q) in by_shape.get(shape, {})]
    return sorted(rates, key=lambda x: (-x[0], _rank(x[1])))


def _rate_table(summary):
    queues = summary["queues"]
    lines = ["Messages per second at work_ns 0, each model at its largest --workers; **bold**: the fastest model "
             "at that shape and Q (baselines and the thread_pool reference aside):", "",
             "| P×C | model | workers | " + " | ".join(f"Q={q:g}" for q in queues)
             + f" | Q={queues[-1]:g} / Q={queues[0]:g} |", "|---|---|---:|" + "---:|" * (len(queues) + 1)]
    for shape, model in _table_rows(summary):
        by_q = summary["msgs_per_s"].get(model, {}).get(shape, {})
        best = {q: _fastest(summary, shape, q) for q in queues}
        cells = []
        for q in queues:
            rate = by_q.get(str(q))
            if rate is None:
                error = _error_at(summary, model, shape, q)
                cells.append("error" if error else "–")
            else:
                text = format_rate(rate)
                cells.append(f"**{text}**" if best[q] and best[q][1] == model else text)
        gain = summary["q_gain"].get(model, {}).get(shape)
        workers = summary["workers"].get(model)
        lines.append(f"| {shape} | {model} | {'–' if workers is None else f'{workers:g}'} | " + " | ".join(cells)
                     + f" | {_ratio(gain and gain['ratio'])} |")
    return lines


def _vs_spsc_table(summary):
    queues = summary["queues"]
    spsc = summary["msgs_per_s"].get(SPSC, {}).get("1x1", {})
    lines = [f"Against the lock-free SPSC limit (`{SPSC}` at 1x1, work_ns 0; thread_pool at 1 × pool); the headline "
             f"`vs_spsc` is at Q={VS_SPSC_Q}:", "",
             "| model | workers | " + " | ".join(f"Q={q:g}" for q in queues) + " |",
             "|---|---:|" + "---:|" * len(queues),
             f"| {SPSC} (the limit, msgs/s) | 1 | " + " | ".join(format_rate(spsc.get(str(q))) if str(q) in spsc
                                                         else "–" for q in queues) + " |"]
    for model, by_q in summary["vs_spsc_by_q"].items():
        if model == SPSC:
            continue
        workers = summary["workers"].get(model)
        lines.append(f"| {model} | {'–' if workers is None else f'{workers:g}'} | "
                     + " | ".join(_ratio(by_q.get(str(q))) for q in queues) + " |")
    return lines


def _latency_table(summary):
    lines = [f"Latency from send to receive at Q={LATENCY_Q}, work_ns 0, open loop at half the cell's measured "
             f"rate; ⚠: the run fell behind its schedule (achieved < {ON_SCHEDULE:g}× offered), its latency "
             "mostly backlog:", "",
             "| P×C | model | workers | offered | achieved | p50 | p90 | p99 | p99.9 | max |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for shape, model in _table_rows(summary):
        point = summary["latency"].get(model, {}).get(shape)
        if point is None:
            continue
        achieved = format_rate(point["achieved_per_s"]) if point["achieved_per_s"] is not None else "n/a"
        if point["fell_behind"]:
            achieved += f" ⚠ {point['achieved_share']:.2f}×"
        lines.append(f"| {shape} | {model} | {point['workers']:g} | {format_rate(point['rate_per_s'])} | {achieved} | "
                     + " | ".join(format_us(point[f]) for f in ("p50_us", "p90_us", "p99_us", "p999_us", "max_us"))
                     + " |")
    return lines


def _cpu_table(summary):
    queues = summary["queues"]
    lines = ["CPU and backpressure at work_ns 0. Each cell: CPUs busy (process CPU / wall) · CPU per message · "
             "producers' time blocked on a full buffer:", "",
             "| P×C | model | workers | " + " | ".join(f"Q={q:g}" for q in queues) + " |",
             "|---|---|---:|" + "---:|" * len(queues)]
    for shape, model in _table_rows(summary):
        cells = []
        for q in queues:
            c = _find(summary, model, shape, q)
            cells.append("–" if c is None else
                         f"{_cpus(c['cpus_busy'])} · {_ns(c['cpu_ns_per_msg'])} · {_share(c['blocked_time_share'])}")
        workers = summary["workers"].get(model)
        lines.append(f"| {shape} | {model} | {'–' if workers is None else f'{workers:g}'} | " + " | ".join(cells) + " |")
    return lines


def _fell_behind_table(summary):
    lines = [f"Cells whose latency run fell behind its schedule (achieved < {ON_SCHEDULE:g}× the offered rate), "
             "at every --workers measured:", "",
             "| model | P×C | Q | work_ns | workers | achieved / offered |", "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {f['model']} | {f['shape']} | {f['q']:g} | {f['work_ns']:g} | {f['workers']:g} | "
              f"{f['achieved_share']:.2f}× |" for f in summary["fell_behind"]]
    return lines


def _work_table(summary):
    lines = ["Cells with CPU work per message, each model at its largest --workers. Against work_ns 0: over the same "
             "cell without work; work CPUs: messages per second × work_ns, the CPUs the consumers' work alone "
             "keeps busy:", "",
             "| work_ns | P×C | Q | model | workers | msgs/s | against work_ns 0 | work CPUs | CPUs busy | blocked "
             "| p99 |", "|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for w in summary["with_work"]:
        p99 = format_us(w["latency_p99_us"]) + (" ⚠" if w["fell_behind"] else "")
        lines.append(f"| {w['work_ns']:g} | {w['shape']} | {w['q']:g} | {w['model']} | {w['workers']:g} | "
                     f"{format_rate(w['msgs_per_s'])} | {_ratio(w['vs_no_work'])} | {_cpus(w['work_cpus'])} | "
                     f"{_cpus(w['cpus_busy'])} | {_share(w['blocked_time_share'])} | {p99} |")
    return lines


def _workers_table(summary):
    lines = ["Models that follow --workers, at each worker count measured:", "",
             "| model | work_ns | P×C | Q | msgs/s by workers | most / fewest |", "|---|---:|---|---:|---|---:|"]
    for w in summary["workers_compare"]:
        rates = ", ".join(f"{k}: {format_rate(v)}" for k, v in w["msgs_per_s"].items())
        lines.append(f"| {w['model']} | {w['work_ns']:g} | {w['shape']} | {w['q']:g} | {rates} | {_ratio(w['ratio'])} |")
    return lines


def conclusions(summary):
    """Sentences computed from the summary; nothing here is typed by hand. None without a
    valid cell: the errors say all there is."""
    if not summary["cells"]:
        return []
    # The fastest per shape, the latencies, the runs that fell behind, work and workers each
    # have their table; these say what no single table does.
    return (_reference_sentence(summary) + _spsc_sentence(summary) + _q_sentence(summary)
            + _cpu_sentences(summary) + _backpressure_sentence(summary))


def _reference_sentence(summary):
    rates = summary["msgs_per_s"].get(REFERENCE, {}).get(POOL_SHAPE)
    if not rates:
        return []
    parts = [f"{format_rate(v)} at Q={float(q):g}" for q, v in rates.items()]
    return [f"thread_pool's parallel_pipeline (one serial input stage feeds the pool's threads; P and C are not its "
            f"own){_with_workers(summary['workers'][REFERENCE])} reaches {_and(parts)}."]


def _spsc_sentence(summary):
    spsc = summary["msgs_per_s"].get(SPSC, {}).get("1x1", {}).get(str(VS_SPSC_Q))
    if spsc is None:
        return [f"{SPSC} was not measured at 1x1, Q={VS_SPSC_Q}, work_ns 0: no model is compared with the lock-free "
                "limit."]
    ratios = sorted(((r, m) for m, r in summary["vs_spsc"].items() if r is not None and m != SPSC), reverse=True)
    missing = [m for m, r in summary["vs_spsc"].items() if r is None and m != SPSC]
    if not ratios:
        return [f"{SPSC} reaches {format_rate(spsc)} at 1x1, Q={VS_SPSC_Q}, but no model ran that cell."]
    parts = [f"{m} {_ratio(r)}" + (" (1 × pool)" if m == REFERENCE else "") for r, m in ratios]
    above = [m for r, m in ratios if r > 1]
    text = (f"Against the lock-free SPSC limit at 1x1, Q={VS_SPSC_Q} ({SPSC}, {format_rate(spsc)}): "
            + "; ".join(parts) + ".")
    if above:
        cell = _find(summary, SPSC, "1x1", VS_SPSC_Q)
        busy = (f" (its two spinning threads kept {_cpus(cell['cpus_busy'])} CPUs busy there: it is a limit only "
                "where it has two cores to itself)" if cell and cell["cpus_busy"] is not None else "")
        text += f" {_and(above)} {'beats' if len(above) == 1 else 'beat'} the spinning baseline{busy}."
    if missing:
        text += f" Not compared (no 1x1, Q={VS_SPSC_Q} cell): {_and(missing)}."
    return [text]


def _q_sentence(summary):
    spans = [(g["from_q"], g["to_q"]) for gains in summary["q_gain"].values() for g in gains.values()]
    if not spans:
        return []
    common = max(set(spans), key=lambda span: (spans.count(span), span[1]))
    parts = []
    for model, gains in summary["q_gain"].items():
        ratios = sorted(g["ratio"] for g in gains.values())
        if not ratios:
            continue
        low, high = _ratio(ratios[0]), _ratio(ratios[-1])
        span = low if low == high else f"{low}–{high}"
        notes = [f"Q={g['from_q']:g} → {g['to_q']:g} at {shape}" for shape, g in gains.items()
                 if (g["from_q"], g["to_q"]) != common]
        if len(gains) == 1:
            notes.insert(0, f"at {next(iter(gains))} only")
        parts.append(f"{model} {span}" + (f" ({'; '.join(notes)})" if notes else ""))
    return [f"Going from Q={common[0]:g} to Q={common[1]:g} multiplies messages per second by (range over the "
            "shapes; how much a hand-off per message costs each model): " + "; ".join(parts) + "."]


def _cpu_sentences(summary):
    out, busy = [], []
    for model in summary["models"]:
        cells = [c for c in _valid(summary, model) if c["work_ns"] == 0 and c["cpus_busy"] is not None]
        if not cells:
            continue
        high = max(cells, key=lambda c: c["cpus_busy"])
        if high["cpus_busy"] >= MORE_THAN_ONE_CPU:
            low = min(c["cpus_busy"] for c in cells)
            span = _cpus(low) if _cpus(low) == _cpus(high["cpus_busy"]) else \
                f"{_cpus(low)}–{_cpus(high['cpus_busy'])}"
            busy.append(f"{model} {span} CPUs (most at {high['shape']}, Q={high['q']:g})")
    if busy:
        out.append(f"Process CPU above wall time (≥ {MORE_THAN_ONE_CPU:g} CPUs busy in some cell at work_ns 0; "
                   "threads that spin or wake each other, which the rates above show whether it buys): "
                   + "; ".join(busy) + ".")
    per_msg = sorted(((c["cpu_ns_per_msg"], m, c) for m in summary["models"] for c in _valid(summary, m)
                      if c["work_ns"] == 0 and c["cpu_ns_per_msg"] is not None), key=lambda x: x[0])
    if per_msg:
        (low, low_m, low_c), (high, high_m, high_c) = per_msg[0], per_msg[-1]
        out.append(f"CPU per message at work_ns 0 ranges from {_ns(low)} ({low_m}, {low_c['shape']}, Q={low_c['q']:g}) "
                   f"to {_ns(high)} ({high_m}, {high_c['shape']}, Q={high_c['q']:g})"
                   + (f", {high / low:.3g}× apart" if low > 0 else "") + ".")
    return out


def _backpressure_sentence(summary):
    queues = summary["queues"]
    if len(queues) < 1:
        return []
    low_q, high_q = queues[0], queues[-1]
    parts = []
    for model in summary["models"]:
        spans = []
        for q in sorted({low_q, high_q}):
            shares = [c["blocked_time_share"] for c in _valid(summary, model)
                      if c["q"] == q and c["work_ns"] == 0 and c["blocked_time_share"] is not None]
            if shares:
                low, high = min(shares), max(shares)
                spans.append(_share(low) if _share(low) == _share(high) else f"{_share(low)}–{_share(high)}")
            else:
                spans.append("–")
        if any(span != "–" for span in spans):
            parts.append(f"{model} {' → '.join(spans)}")
    if not parts:
        return []
    head = (f"Producers' time blocked on a full buffer at work_ns 0, Q={low_q:g}" +
            (f" → Q={high_q:g}" if high_q != low_q else ""))
    return [f"{head} (range over the shapes): " + "; ".join(parts) + "."]


def _checks_table(summary):
    verified = summary["checks"]["verified"]
    rows = [("every cell verified", "M messages received once each, checksum equal to the reference",
             f"all {verified['cells']} cells" if verified["held"] else
             f"{verified['errors']} of {verified['cells']} cells failed (under Errors, left out of every table and "
             "plot)", verified["held"])]
    schedule = summary["checks"]["on_schedule"]
    if schedule["held"] is None:
        measured = "no cell recorded latency_achieved_per_s"
    else:
        measured = (f"all {schedule['cells']} cells" if schedule["held"] else
                    f"{schedule['behind']} of {schedule['cells']} fell behind (⚠ above)")
        if schedule["unknown"]:
            measured += f"; {schedule['unknown']} did not record their achieved rate"
    rows.append(("latency runs on schedule", f"achieved ≥ {ON_SCHEDULE:g}× the offered rate", measured,
                 schedule["held"]))
    return checks_table("Checks:", rows)
