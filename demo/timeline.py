"""``timeline.png``: one strip per AU, probability over time, active spans shaded, FACS names."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from demo.series import Series
from runtime.aus import CATALOG, au_number

WIDTH_IN, ROW_IN, EXTRA_IN, DPI = 12.0, 0.42, 1.1, 100
LINE, SPAN, THRESH = "#1f5fa8", "#ff9f1c", "#888888"


def plot_timeline(series: Series, thresholds: Mapping[str, float], path: Path, title: str = "") -> Path:
    """Write the timeline PNG (``WIDTH_IN*DPI`` px wide, a fixed height per AU row)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, none opened
    import matplotlib.pyplot as plt

    n = len(series.aus)
    fig, axes = plt.subplots(n, 1, sharex=True, squeeze=False,
                             figsize=(WIDTH_IN, ROW_IN * n + EXTRA_IN), dpi=DPI)
    t = series.time_s
    t_end = float(t[-1]) if len(t) else 1.0
    for ax, (i, au) in zip(axes[:, 0], enumerate(series.aus)):
        for a, b in series.spans(au):
            ax.axvspan(a, b, color=SPAN, alpha=0.45, lw=0)
        ax.plot(t, series.prob[:, i], color=LINE, lw=1.3)
        thr = thresholds.get(au)
        if thr is not None:
            ax.axhline(thr, color=THRESH, lw=0.8, ls=":")
        ax.set_ylim(0, 1)
        ax.set_xlim(0, max(t_end, 1e-3))
        ax.set_yticks([])
        ax.grid(axis="x", color="#e4e4e4", lw=0.6)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.set_ylabel(f"{au}  {CATALOG[au_number(au)].label}", rotation=0, ha="right", va="center",
                      fontsize=10)
    axes[-1, 0].set_xlabel("time (s)", fontsize=10)
    who = f"face track {series.track}" if series.track is not None else "no face found"
    fig.suptitle(title or f"AU probability over time ({who}); shaded: active; dotted: threshold",
                 fontsize=12, x=0.02, ha="left")
    fig.subplots_adjust(left=0.2, right=0.98, top=1 - 0.55 / fig.get_figheight(),
                        bottom=0.55 / fig.get_figheight(), hspace=0.25)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path

