"""cpu_hash: SHA-256 over blocks of memory. Answers when CPU work is worth
offloading to threads or processes, and what shipping the bytes to a process costs.

Summary layout (JSON-friendly, numbers as string keys):
  series[series][block_bytes][workers] = {bytes_per_s, items_per_s, speedup,
                                          efficiency, cpu_per_wall, hashing_cpus,
                                          parent_cpus, bytes_per_cpu_s,
                                          per_cpu_vs_serial, grain}
  serial_bytes_per_s[block_bytes], ship_cost[block_bytes][workers],
  max_workers[series], block_sizes, scaling_block, openssl_16k_bytes_per_s,
  vs_openssl_16k, errors
"""

import math

from markdown import answer, section
from plotting import byte_size_axis, color_for, new_figure, save
import results as res
from units import format_byte_rate as format_rate, format_bytes

NAME = "cpu_hash"

# Conclusions look at blocks this large or larger, where per-task overhead no
# longer dominates; 16 KiB is also the block size of the openssl peer.
LARGE_BLOCK = 16384
# Parallel efficiency (fraction of workers x serial) from which a model "scales".
SCALES_WELL = 0.9
# A single-thread model within this fraction of serial costs nothing worth noting.
SAME_AS_SERIAL = 0.05
# Models that always run on one thread whatever --workers says.
SINGLE_THREAD_MODELS = ("event_loop", "fibers")
SHIP_BYTES = "process_pool ship:bytes"
SHIP_SEED = "process_pool ship:seed"
SERIES_ORDER = ("serial", "event_loop", "fibers", "fibers_mt", "thread_pool", SHIP_BYTES, SHIP_SEED)

TITLE = "cpu_hash: SHA-256 over blocks"
PLOT_THROUGHPUT = "cpu_hash_throughput_vs_block"
PLOT_SCALING = "cpu_hash_scaling"
PLOT_EFFICIENCY = "cpu_hash_efficiency"


def series_of(record):
    """The model, split by how process_pool ships work (bytes vs seed)."""
    ship = record["params"].get("ship", "none")
    return record["model"] if ship == "none" else f"{record['model']} ship:{ship}"


def summarize(records, results):
    """records: this workload's reduced runs (see results.reduce_runs)."""
    errors = [{"name": r["name"], "message": r["error"]} for r in records if r["error"]]

    # Where several grains ran, keep the fastest: the model at its best setting.
    best = {}
    for r in records:
        if r["error"] or not isinstance(r.get("bytes_per_second"), (int, float)):
            continue
        key = (series_of(r), int(r["params"].get("block_bytes", 0)), int(r["params"].get("workers", 1)))
        if key not in best or r["bytes_per_second"] > best[key]["bytes_per_second"]:
            best[key] = r

    serial = {block: r["bytes_per_second"] for (series, block, _), r in best.items() if series == "serial"}
    serial_per_cpu = {block: _cpu_split(r, r["bytes_per_second"], None)["bytes_per_cpu_s"]
                      for (series, block, _), r in best.items() if series == "serial"}

    series = {}
    for (name, block, workers), r in sorted(best.items(), key=lambda item: (_series_rank(item[0][0]), item[0])):
        rate = r["bytes_per_second"]
        base = serial.get(block)
        real, cpu = r.get("real_time_ns"), r.get("cpu_time_ns")
        series.setdefault(name, {}).setdefault(str(block), {})[str(workers)] = {
            "bytes_per_s": rate,
            "items_per_s": r.get("items_per_second"),
            "speedup": rate / base if base else None,
            "efficiency": rate / (workers * base) if base else None,
            # Worker processes' CPU is not in the parent's process time; concbench
            # measures it separately.
            "cpu_per_wall": cpu / real + (r.get("worker_cpus") or 0) if real and cpu is not None else None,
            **_cpu_split(r, rate, serial_per_cpu.get(block)),
            "grain": r["params"].get("grain"),
            "runs": res.run_values(r, "bytes_per_second"),
        }

    ship_cost = {}
    for block, by_workers in series.get(SHIP_BYTES, {}).items():
        for workers, shipped in by_workers.items():
            seeded = series.get(SHIP_SEED, {}).get(block, {}).get(workers)
            if seeded and seeded["bytes_per_s"]:
                ship_cost.setdefault(block, {})[workers] = 1 - shipped["bytes_per_s"] / seeded["bytes_per_s"]

    blocks = sorted({block for (_, block, _) in best})
    openssl = (results.get("peers") or {}).get("openssl_sha256_16k_bytes_per_s")
    return {
        "series": series,
        "serial_bytes_per_s": {str(b): v for b, v in sorted(serial.items())},
        "ship_cost": ship_cost,
        "max_workers": {name: max(int(w) for pts in by_block.values() for w in pts)
                        for name, by_block in series.items()},
        "block_sizes": blocks,
        "scaling_block": _scaling_block(blocks),
        "openssl_16k_bytes_per_s": openssl,
        "vs_openssl_16k": serial[LARGE_BLOCK] / openssl if openssl and LARGE_BLOCK in serial else None,
        "errors": errors,
    }


def _cpu_split(record, rate, serial_per_cpu):
    """Where a point's CPU went: the CPUs busy hashing (worker processes, or the
    process's own threads), the pool's threads in the parent (process_pool only),
    and bytes hashed per CPU second of hashing, also as a fraction of serial's."""
    real, cpu, workers = record.get("real_time_ns"), record.get("cpu_time_ns"), record.get("worker_cpus")
    in_processes = record["model"] == "process_pool"
    if not real or cpu is None or (in_processes and not isinstance(workers, (int, float))):
        return {"hashing_cpus": None, "parent_cpus": None, "bytes_per_cpu_s": None, "per_cpu_vs_serial": None}
    hashing = workers if in_processes else cpu / real
    per_cpu = rate / hashing if hashing else None
    return {"hashing_cpus": hashing,
            "parent_cpus": cpu / real if in_processes else None,
            "bytes_per_cpu_s": per_cpu,
            "per_cpu_vs_serial": per_cpu / serial_per_cpu if per_cpu and serial_per_cpu else None}


def _series_rank(series):
    """Plots and tables list series from serial to process_pool, then the rest."""
    return SERIES_ORDER.index(series) if series in SERIES_ORDER else len(SERIES_ORDER)


def _scaling_block(blocks):
    """16 KiB, else the closest larger size, else the largest measured."""
    large = [b for b in blocks if b >= LARGE_BLOCK]
    return min(large) if large else (max(blocks) if blocks else None)


def _point(summary, series, block, workers):
    return summary["series"].get(series, {}).get(str(block), {}).get(str(workers))


def _at_max_workers(summary, series):
    """[(block, point)] at the series' largest worker count, by block size."""
    workers = summary["max_workers"][series]
    by_block = summary["series"][series]
    return [(int(b), by_block[b][str(workers)]) for b in sorted(by_block, key=int)
            if str(workers) in by_block[b]]


def _rate_unit(rates):
    """(scale, unit) of a plot axis of byte rates."""
    return (1e9, "GB/s") if max(rates, default=0) >= 1e9 else (1e6, "MB/s")


def stated(summary):
    """The figures this workload states, for scripts/compare (see compare.py): each
    series' throughput at the scaling block for every worker count, and its
    efficiency at its most workers (which may differ between two machines)."""
    block = summary["scaling_block"]
    out = []
    for series, by_block in summary["series"].items():
        by_workers = by_block.get(str(block), {})
        for workers, point in sorted(by_workers.items(), key=lambda kv: int(kv[0])):
            out.append({"key": f"throughput/{series}/{block}/{workers}", "unit": "B/s", "better": "higher",
                        "label": f"{series}, {format_bytes(block)} blocks, {workers} workers: throughput",
                        "value": point["bytes_per_s"], "runs": point.get("runs"), "workers": int(workers)})
        most = str(summary["max_workers"][series])
        if most in by_workers and by_workers[most]["efficiency"] is not None:
            out.append({"key": f"efficiency/{series}/{block}/most", "unit": "×", "better": "higher",
                        "label": f"{series}, {format_bytes(block)} blocks: efficiency at its most workers",
                        "value": by_workers[most]["efficiency"], "runs": None, "workers": int(most)})
    return out


# ---------------------------------------------------------------- plots

def plot(summary, plots_dir):
    if not summary["series"]:
        return []
    return (_plot_throughput(summary, plots_dir) + _plot_scaling(summary, plots_dir)
            + _plot_efficiency(summary, plots_dir))


def _legend(ax):
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")


def _plot_throughput(summary, plots_dir):
    fig, ax = new_figure()
    scale, unit = _rate_unit([p["bytes_per_s"] for s in summary["series"] for _, p in _at_max_workers(summary, s)])
    for series in summary["series"]:
        workers = summary["max_workers"][series]
        points = _at_max_workers(summary, series)
        ax.plot([b for b, _ in points], [p["bytes_per_s"] / scale for _, p in points],
                marker="o", color=color_for(series),
                label=f"{series} ({workers} worker{'s' if workers > 1 else ''})")
    byte_size_axis(ax, summary["block_sizes"])
    ax.set_xlabel("block size (log scale)")
    ax.set_ylabel(f"throughput ({unit})")
    ax.set_ylim(bottom=0)
    top = max(summary["max_workers"].values())
    ax.set_title(f"cpu_hash: SHA-256 throughput vs block size\n"
                 f"(each series at its largest worker count; up to {top} workers)")
    _legend(ax)
    return save(fig, plots_dir, PLOT_THROUGHPUT)


def _plot_scaling(summary, plots_dir):
    block = summary["scaling_block"]
    lines = {}
    for series, by_block in summary["series"].items():
        pts = sorted((int(w), p["bytes_per_s"]) for w, p in by_block.get(str(block), {}).items())
        if pts:
            lines[series] = pts
    if not lines:
        return []
    scale, unit = _rate_unit([v for pts in lines.values() for _, v in pts])
    fig, ax = new_figure()
    for series, pts in lines.items():
        ax.plot([w for w, _ in pts], [v / scale for _, v in pts], marker="o",
                color=color_for(series), label=series)
    all_workers = sorted({w for pts in lines.values() for w, _ in pts})
    serial = summary["serial_bytes_per_s"].get(str(block))
    if serial:
        ax.plot(all_workers, [w * serial / scale for w in all_workers], linestyle="--",
                color="gray", label="ideal (workers × serial)", zorder=1)
    ax.set_xticks(all_workers)
    ax.set_xlabel("workers")
    ax.set_ylabel(f"throughput ({unit})")
    ax.set_ylim(bottom=0)
    ax.set_title(f"cpu_hash: scaling with workers at {format_bytes(block)} blocks")
    _legend(ax)
    return save(fig, plots_dir, PLOT_SCALING)


def _plot_efficiency(summary, plots_dir):
    fig, ax = new_figure()
    drawn = False
    for series in summary["series"]:
        points = [(b, p["efficiency"]) for b, p in _at_max_workers(summary, series) if p["efficiency"] is not None]
        if points:
            workers = summary["max_workers"][series]
            ax.plot([b for b, _ in points], [e for _, e in points], marker="o", color=color_for(series),
                    label=f"{series} ({workers} worker{'s' if workers > 1 else ''})")
            drawn = True
    if not drawn:
        fig.clf()
        return []
    ax.axhline(1.0, linestyle="--", color="gray", label="ideal")
    byte_size_axis(ax, summary["block_sizes"])
    ax.set_xlabel("block size (log scale)")
    ax.set_ylabel("parallel efficiency (throughput / (workers × serial))")
    ax.set_ylim(bottom=0)
    ax.set_title("cpu_hash: parallel efficiency vs block size\n(each series at its largest worker count)")
    _legend(ax)
    return save(fig, plots_dir, PLOT_EFFICIENCY)


# ---------------------------------------------------------------- report

def report(summary, plots):
    """Markdown section; plots are paths relative to the report (plots/x.png)."""
    intro = ("Hashes a buffer block by block; each model decides where the blocks are hashed. "
             "Throughput is bytes hashed per second of wall time. Speedup is against `serial` "
             "at the same block size; efficiency is speedup divided by workers.")
    tables = [_table(summary)] if summary["series"] else []
    errors = [f"`{e['name']}`: {e['message']}" for e in summary["errors"]]
    return section(TITLE, intro, plots, tables, errors, conclusions(summary))


def answers(summary):
    """The Answers line of the report: the model that scales best on CPU work."""
    block = summary["scaling_block"]
    best = [(p["bytes_per_s"], s, summary["max_workers"][s], p) for s in summary["series"]
            if summary["max_workers"][s] > 1 and (p := _point(summary, s, block, summary["max_workers"][s]))
            and p["efficiency"] is not None]
    if not best:
        return []
    rate, series, workers, point = max(best, key=lambda b: b[0])
    return [answer("Which model scales best on CPU work?",
                   f"{series}: {format_rate(rate)} with {workers} workers at {format_bytes(block)} blocks, "
                   f"{point['speedup']:.2f}× serial, an efficiency of {point['efficiency']:.2f}.", TITLE)]


def _table(summary):
    blocks = summary["block_sizes"]
    lines = ["Each cell: throughput · speedup vs serial · efficiency, at the series' largest worker count.", "",
             "| series | workers | " + " | ".join(format_bytes(b) for b in blocks) + " |",
             "|---|---:|" + "---:|" * len(blocks)]
    for series in summary["series"]:
        by_block = dict(_at_max_workers(summary, series))
        cells = []
        for b in blocks:
            p = by_block.get(b)
            if p is None:
                cells.append("–")
            elif p["speedup"] is None:
                cells.append(format_rate(p["bytes_per_s"]))
            else:
                cells.append(f"{format_rate(p['bytes_per_s'])} · {p['speedup']:.2f}× · {p['efficiency']:.0%}")
        lines.append(f"| {series} | {summary['max_workers'][series]} | " + " | ".join(cells) + " |")
    return lines


def _span(values, suffix="×"):
    lo, hi = min(values), max(values)
    return f"{lo:.2f}{suffix}" if hi - lo < 0.01 else f"{lo:.2f}–{hi:.2f}{suffix}"


def _and(items):
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def conclusions(summary):
    """Sentences computed from the summary; nothing here is typed by hand."""
    return (_fastest(summary) + _scaling(summary) + _process_cpu(summary) + _single_thread(summary)
            + _ship_cost(summary) + _openssl(summary))


def _fastest(summary):
    blocks = summary["block_sizes"]
    out = []
    for block in sorted({blocks[0], blocks[-1]}) if blocks else []:
        candidates = [(p["bytes_per_s"], s, summary["max_workers"][s], p)
                      for s in summary["series"]
                      for b, p in _at_max_workers(summary, s) if b == block]
        if candidates:
            rate, series, workers, p = max(candidates, key=lambda c: c[0])
            vs = f", {p['speedup']:.2f}× serial" if p["speedup"] is not None and series != "serial" else ""
            out.append(f"Fastest at {format_bytes(block)} blocks: {series} with {workers} "
                       f"worker{'s' if workers > 1 else ''} ({format_rate(rate)}{vs}).")
    return out


def _scaling(summary):
    out = []
    for series, workers in summary["max_workers"].items():
        if workers < 2:
            continue
        points = [(b, p) for b, p in _at_max_workers(summary, series) if p["efficiency"] is not None]
        large = [p["efficiency"] for b, p in points if b >= LARGE_BLOCK]
        if not points:
            continue
        sentence = ""
        if large:
            verdict = "scales" if min(large) >= SCALES_WELL else "falls short of linear scaling"
            sentence = (f"{series} {verdict}: at ≥{format_bytes(LARGE_BLOCK)} blocks it reaches "
                        f"{_span(large)} the ideal with {workers} workers")
        sentence = (sentence + "; " if sentence else f"{series} with {workers} workers: ") + _break_even(points)
        out.append(sentence + ".")
    return out


def _break_even(points):
    """Where offloading starts to beat serial: the smallest block from which every
    larger block has speedup >= 1."""
    speedups = [(b, p["speedup"]) for b, p in points]
    from_block = None
    for b, s in reversed(speedups):
        if s <= 1:
            break
        from_block = b
    if from_block is None:
        best_block, best = max(speedups, key=lambda x: x[1])
        return f"it never beats serial (best {best:.2f}× at {format_bytes(best_block)} blocks)"
    if from_block == speedups[0][0]:
        return f"it beats serial at every block size measured ({speedups[0][1]:.2f}× at {format_bytes(from_block)})"
    below = [(b, s) for b, s in speedups if b < from_block]
    return (f"it beats serial from {format_bytes(from_block)} blocks up "
            f"({below[0][1]:.2f}× serial at {format_bytes(below[0][0])})")


def _process_cpu(summary):
    """Which part of process_pool ship:seed's shortfall is the hashing in the workers
    (slower per CPU second than threads) and which is the hand-off (fewer CPUs busy
    hashing, because the parent's pool thread wakes for each batch of replies)."""
    def large(series):
        if series not in summary["series"]:
            return []
        return [p for b, p in _at_max_workers(summary, series)
                if b >= LARGE_BLOCK and p.get("per_cpu_vs_serial") is not None]

    procs, threads = large(SHIP_SEED), large("thread_pool")
    if not procs:
        return []
    workers = summary["max_workers"][SHIP_SEED]
    text = (f"Where {SHIP_SEED}'s CPU goes at ≥{format_bytes(LARGE_BLOCK)} blocks with {workers} workers: "
            f"the workers hash at {_span([p['per_cpu_vs_serial'] for p in procs])} serial's rate per CPU second "
            f"and are busy {_span([p['hashing_cpus'] for p in procs], '')} of {workers} CPUs; "
            f"the pool's thread in the parent, woken by each batch of replies, uses "
            f"{_span([p['parent_cpus'] for p in procs], '')} CPUs")
    if threads and summary["max_workers"]["thread_pool"] == workers:
        text += (f"; thread_pool's threads hash at {_span([p['per_cpu_vs_serial'] for p in threads])} "
                 f"and are busy {_span([p['hashing_cpus'] for p in threads], '')} CPUs")
        gap = min(p["per_cpu_vs_serial"] for p in threads) - min(p["per_cpu_vs_serial"] for p in procs)
        text += (". So a process hashes as fast as a thread, and the shortfall is the hand-off: fewer CPUs "
                 "left to hash" if gap <= SAME_AS_SERIAL else
                 f". So the workers hash {gap:.0%} slower per CPU second than threads, on top of the CPUs "
                 "the hand-off takes")
    return [text + "."]


def _single_thread(summary):
    close, others, small = [], [], []
    worst = 0.0
    for series in SINGLE_THREAD_MODELS:
        points = [(b, p["speedup"]) for b, p in _at_max_workers(summary, series)
                  if p["speedup"] is not None] if series in summary["series"] else []
        large = [s for b, s in points if b >= LARGE_BLOCK]
        if large:
            deviation = max(abs(1 - s) for s in large)
            if deviation <= SAME_AS_SERIAL:
                close.append(series)
                worst = max(worst, deviation)
            else:
                others.append(f"{series} runs on one thread and reaches {_span(large)} serial "
                              f"at ≥{format_bytes(LARGE_BLOCK)} blocks.")
        if points and points[0][0] < LARGE_BLOCK:
            small.append((points[0][0], f"{series} {points[0][1]:.2f}×"))
    out = []
    if close:
        verb = "runs" if len(close) == 1 else "run"
        out.append(f"{_and(close)} {verb} on one thread: within {max(1, math.ceil(round(worst * 100, 6)))}% "
                   f"of serial at ≥{format_bytes(LARGE_BLOCK)} blocks.")
    out += others
    by_block = {}
    for block, text in small:
        by_block.setdefault(block, []).append(text)
    for block, texts in sorted(by_block.items()):
        out.append(f"At {format_bytes(block)} blocks: {_and(texts)} serial.")
    return out


def _ship_cost(summary):
    costs = summary["ship_cost"]
    if not costs:
        return []
    workers = max(int(w) for by_w in costs.values() for w in by_w)
    at = sorted((int(b), by_w[str(workers)]) for b, by_w in costs.items() if str(workers) in by_w)
    if not at:
        return []

    def phrase(cost, block):
        what = f"{cost:.0%} of the throughput" if cost >= 0 else f"nothing (ship:bytes is {-cost:.0%} faster)"
        return f"{what} at {format_bytes(block)} blocks"

    parts = [phrase(at[-1][1], at[-1][0])]
    if len(at) > 1:
        parts.append(phrase(at[0][1], at[0][0]))
    return [f"Shipping the bytes to worker processes (ship:bytes vs ship:seed) costs "
            f"{' and '.join(parts)}, with {workers} worker{'s' if workers > 1 else ''}."]


def _openssl(summary):
    ratio = summary["vs_openssl_16k"]
    if ratio is None:
        return []
    return [f"Serial SHA-256 at {format_bytes(LARGE_BLOCK)} is {ratio:.2f}× `openssl speed` on this machine."]
