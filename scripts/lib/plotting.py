"""Shared plot helpers: one colour per series across every plot, byte-size axis
labels, and whole-file PNG + SVG output."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on benchmark machines
# Fixed SVG ids: regenerating from the same data gives the same files (clean diffs).
matplotlib.rcParams["svg.hashsalt"] = "concbench"
import matplotlib.pyplot as plt  # noqa: E402

from results import write_whole  # noqa: E402
from units import format_bytes  # noqa: E402

PNG_DPI = 120

# Fixed colours so a model looks the same in every plot and every report.
_SERIES_COLORS = {
    "serial": "black",
    "event_loop": "tab:blue",
    "fibers": "tab:orange",
    "fibers_mt": "tab:green",
    "thread_pool": "tab:red",
    "process_pool": "tab:purple",
    "process_pool ship:bytes": "tab:purple",
    "process_pool ship:seed": "tab:brown",
}
_SPARE_COLORS = ["tab:pink", "tab:olive", "tab:cyan", "tab:gray"]


def color_for(series):
    if series in _SERIES_COLORS:
        return _SERIES_COLORS[series]
    # Stable across runs (unlike hash()), so an unknown series keeps its colour.
    return _SPARE_COLORS[sum(series.encode()) % len(_SPARE_COLORS)]


def byte_size_axis(ax, sizes):
    """Log2 x axis with a labelled tick at each measured size."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes)
    ax.set_xticklabels([format_bytes(s) for s in sizes], rotation=30, ha="right")
    ax.minorticks_off()


def new_figure():
    fig, ax = plt.subplots(figsize=(9, 5.5))
    ax.grid(True, which="major", alpha=0.3)
    return fig, ax


def save(fig, plots_dir, stem):
    """Writes plots_dir/stem.png and .svg whole; returns their paths."""
    plots_dir = Path(plots_dir)
    plots_dir.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    written = []
    for ext in ("png", "svg"):
        path = plots_dir / f"{stem}.{ext}"
        # No date metadata: regenerating from the same data gives the same SVG.
        metadata = {"Date": None} if ext == "svg" else {}
        write_whole(path, lambda tmp: fig.savefig(tmp, format=ext, dpi=PNG_DPI, metadata=metadata))
        written.append(path)
    plt.close(fig)
    return written
