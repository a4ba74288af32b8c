"""scripts/compare A B: two runs side by side. For each workload, the figures both
runs state (each module's stated()), their ratio B/A and, where both runs kept
their repetitions, whether the difference is significant (Mann–Whitney U, as
Google Benchmark's tools/compare.py tests it); then how the environments differ.

A figure is {key, label, value, unit, better (lower | higher | None), runs (the
value of each repetition, or None), workers (optional), text (optional: how the
report writes it)}. Figures match by key; one keyed ".../most" compares each
run at its own largest worker count, so two machines of different sizes meet
there as well as at the counts they share."""

import argparse
import math
import sys
from pathlib import Path

from plotting import plt, save
import report
import results as res
import stats
from units import format_byte_rate, format_per_s, format_us
from workloads import MODULES

COMPARE_FILE = "COMPARE.md"
PLOTS_DIR = "plots"
PLOT_RATIOS = "compare_{workload}"
# A difference is significant where the two-sided p-value is below this.
ALPHA = 0.05

# The report's environment rows, and how each run was repeated.
ENVIRONMENT = [("date", "date"), *report.ENVIRONMENT, ("--benchmark_repetitions", "repetitions"),
               ("interleaved", "interleaved")]


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="scripts/compare",
        description="Put two run directories side by side: the figures both state, their ratio B/A, "
                    "whether each difference is significant, and the environments.")
    parser.add_argument("a", metavar="A", help="the first run directory (the baseline)")
    parser.add_argument("b", metavar="B", help="the second run directory")
    parser.add_argument("--out", metavar="DIR", type=Path,
                        help=f"where to write {COMPARE_FILE} and its plots (default: compare-A-vs-B)")
    args = parser.parse_args(argv)
    out = args.out or Path(f"compare-{Path(args.a).resolve().name}-vs-{Path(args.b).resolve().name}")

    def compare():
        runs = [load(args.a), load(args.b)]
        if out.exists() and not out.is_dir():
            raise res.ResultsError(f"--out {out} exists and is not a directory")
        return write(runs, out)

    status, written = res.run_for_user(compare, f"{args.a} or {args.b}", out)
    if not status:
        print(f"wrote {written[-1]} ({len(written)} files)", file=sys.stderr)
    return status


def load(run_dir):
    """{dir, context, figures {workload: {key: figure}}} of one run."""
    data = res.load(run_dir)
    summaries, _ = report.summarize(data)
    figures = {name: {f["key"]: f for f in MODULES[name].stated(summary)} for name, summary in summaries.items()}
    return {"dir": str(run_dir), "context": data.get("context") or {}, "figures": figures}


def compare_figures(a, b):
    """[row] for the figures both runs state, in A's order: {key, label, unit, better,
    a, b (the figures), ratio (B/A), p, significant, runs: (A's count, B's count)}."""
    rows = []
    for key, fa in a.items():
        fb = b.get(key)
        if fb is None:
            continue
        row = {"key": key, "label": fa["label"], "unit": fa["unit"], "better": fa.get("better"),
               "a": fa, "b": fb, "ratio": None, "p": None, "significant": None,
               "runs": (len(fa.get("runs") or []), len(fb.get("runs") or []))}
        if fa["value"] and fb["value"] is not None and fa["value"] > 0 and fb["value"] >= 0:
            row["ratio"] = fb["value"] / fa["value"]
        if testable(*row["runs"]):
            _, row["p"] = stats.mann_whitney(fb["runs"], fa["runs"])
            row["significant"] = row["p"] < ALPHA
        rows.append(row)
    return rows


def testable(n, m):
    """Whether samples of n and m values can show a difference at ALPHA at all: the
    exact two-sided p-value is never below 2 / C(n+m, n)."""
    return n > 0 and m > 0 and 2 / math.comb(n + m, n) < ALPHA


def difference(row):
    """'B better, significant (p = 0.008)', 'no significant difference (p = 0.4)',
    'too few runs to test (3 and 3)'."""
    if row["p"] is None:
        a, b = row["runs"]
        return "no runs to test" if not (a and b) else f"too few runs to test ({a} and {b})"
    p = f"p = {row['p']:.2g}"
    if not row["significant"]:
        return f"no significant difference ({p})"
    better = _better(row)
    return f"significant ({p})" if better is None else f"B {'better' if better else 'worse'}, significant ({p})"


def format_value(value, unit):
    """A figure in the reports' unit style (units.py)."""
    if value is None:
        return "–"
    if unit == "µs":
        return format_us(value)
    if unit == "B/s":
        return format_byte_rate(value)
    if unit == "msg/s":
        return format_per_s(value).replace("/s", " msg/s")
    if unit == "×":
        return f"{value:.3g}×"
    return f"{value:.3g} {unit}"


def _cell(figure):
    text = figure.get("text") or format_value(figure["value"], figure["unit"])
    workers = figure.get("workers")
    return text if not figure["key"].endswith("/most") else f"{text} ({workers:g} workers)"


def write(runs, out):
    a, b = runs
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# concbench comparison", "",
             f"A: `{a['dir']}`  ", f"B: `{b['dir']}`", "",
             f"B/A is B's figure over A's. A difference is tested where both runs kept enough repetitions of it "
             f"to show one (4 and 4, or 3 and 5): two-sided Mann–Whitney U on their values, significant below "
             f"p = {ALPHA:g}.",
             ""]
    written = []
    for workload in MODULES:
        fa, fb = a["figures"].get(workload), b["figures"].get(workload)
        if not fa and not fb:
            continue
        lines += [f"## {workload}", ""]
        rows = compare_figures(fa or {}, fb or {})
        if not rows:
            only = "A" if fa else "B"
            lines += [f"Only {only} ran {workload}, or the two share no figure.", ""]
            continue
        plot = _plot(workload, rows, out / PLOTS_DIR)
        written += plot
        lines += [f"![{Path(p).name}]({PLOTS_DIR}/{Path(p).name})" for p in plot if str(p).endswith(".png")]
        lines += ["", "| figure | A | B | B/A | difference |", "|---|---:|---:|---:|---|"]
        lines += [f"| {row['label']} | {_cell(row['a'])} | {_cell(row['b'])} | {_ratio_text(row['ratio'])} "
                  f"| {difference(row)} |" for row in rows]
        lines.append("")
    lines += ["## Environment", "", "| | A | B |", "|---|---|---|"]
    for label, keys in ENVIRONMENT:
        values = [report.context_cell(run["context"], keys) for run in runs]
        mark = "" if values[0] == values[1] else " ≠"
        lines.append(f"| {label}{mark} | {values[0]} | {values[1]} |")
    path = out / COMPARE_FILE
    res.write_atomic(path, "\n".join(lines) + "\n")
    return [*written, path]


def _ratio_text(ratio):
    return "–" if ratio is None else f"{ratio:.3g}"


def _plot(workload, rows, plots_dir):
    """B/A per figure on a log axis, with a bar from B's to A's spread where both have runs."""
    drawn = [row for row in rows if row["ratio"] and row["ratio"] > 0]
    if not drawn:
        return []
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.32 * len(drawn)))
    ys = range(len(drawn))
    colors = [{True: "tab:green", False: "tab:red"}.get(_better(row), "tab:gray") if row["significant"]
              else "tab:gray" for row in drawn]
    ax.barh(list(ys), [math.log10(row["ratio"]) for row in drawn], color=colors)
    ax.axvline(0, color="black", linewidth=1)
    ax.set_yticks(list(ys))
    ax.set_yticklabels([row["label"] for row in drawn], fontsize="small")
    ax.invert_yaxis()
    limit = max(abs(math.log10(row["ratio"])) for row in drawn) * 1.1 or 0.1
    ax.set_xlim(-limit, limit)
    ticks = ax.get_xticks()
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{10 ** t:.3g}×" for t in ticks])
    ax.set_xlabel("B / A (log scale); green: B better, red: B worse (significant); grey: not significant or untested")
    ax.set_title(f"{workload}: B against A")
    ax.grid(True, axis="x", alpha=0.3)
    return save(fig, plots_dir, PLOT_RATIOS.format(workload=workload))


def _better(row):
    """Whether B's figure is the better one (None where neither direction is better);
    from the sign of the difference, so that negative figures are judged too."""
    a, b = row["a"]["value"], row["b"]["value"]
    if row["better"] is None or a is None or b is None or a == b:
        return None
    return (b < a) == (row["better"] == "lower")


if __name__ == "__main__":
    sys.exit(main())
