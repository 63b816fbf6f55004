"""The clip's AU timeline: our probability and the peer's score per AU over time, silver shaded."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def _spans(times: Sequence[float], values: Sequence[float | None], want) -> list[tuple[float, float]]:
    """Time spans where ``want(value)`` holds, each frame covering half a step either side."""
    step = (times[-1] - times[0]) / max(len(times) - 1, 1) if len(times) > 1 else 1.0
    spans, start = [], None
    for t, v in zip(times, values):
        if want(v) and start is None:
            start = t - step / 2
        elif not want(v) and start is not None:
            spans.append((start, t - step / 2))
            start = None
    if start is not None:
        spans.append((start, times[-1] + step / 2))
    return spans


def timeline(path: Path, times: Sequence[float], ours: Mapping[str, Sequence[float | None]],
             peer: Mapping[str, Sequence[float | None]] | None, silver: Mapping[str, Sequence[float | None]],
             thresholds: Mapping[str, float], title: str) -> Path:
    """Write a PNG: one panel per AU; green = silver positive, grey = silver unknown (dead zone,
    no face, distrusted negative, or no blendshape for the AU).

    Raises:
        RuntimeError: matplotlib is missing (the train extra has it).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("the timeline needs matplotlib: pip install 'au-edge[train]'") from None
    aus = list(ours)
    fig, axes = plt.subplots(len(aus), 1, figsize=(12, 0.9 * len(aus) + 1.2), sharex=True, squeeze=False)
    for ax, a in zip(axes[:, 0], aus):
        s = silver.get(a, [None] * len(times))
        for lo, hi in _spans(times, s, lambda v: v == 1.0):
            ax.axvspan(lo, hi, color="tab:green", alpha=0.25, lw=0)
        for lo, hi in _spans(times, s, lambda v: v is None):
            ax.axvspan(lo, hi, color="0.85", alpha=0.6, lw=0)
        ax.plot(times, [float("nan") if v is None else v for v in ours[a]], color="tab:blue", lw=1, label="ours")
        if peer is not None and a in peer:
            ax.plot(times, [float("nan") if v is None else v for v in peer[a]], color="tab:orange", lw=1,
                    ls="--", label="MediaPipe")
        ax.axhline(thresholds.get(a, 0.5), color="k", lw=0.5, ls=":")
        ax.set_ylim(-0.02, 1.02)
        ax.set_yticks([0, 1])
        ax.set_ylabel(a, rotation=0, ha="right", va="center")
    axes[0, 0].set_title(title + "  (green: silver positive, grey: silver unknown)", fontsize=9)
    axes[0, 0].legend(loc="upper right", fontsize=7, ncol=2)
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
