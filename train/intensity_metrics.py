"""AU intensity metrics as the DISFA intensity protocol reports them: ICC(3,1), MAE and PCC per AU.

Intensity papers on DISFA (and BP4D's FERA 2015 subset) score each AU over every frame of the test
subjects whose intensity is coded, on the FACS 0-5 scale: the intraclass correlation ICC(3,1)
between prediction and label (Shrout & Fleiss 1979, case 3: two-way mixed, consistency, single
measures), the mean absolute error and Pearson's r. Unknown labels (NaN) are left out per AU, never
counted as 0.

ICC(3,1) of an n targets × k raters table (here k = 2: the model and the coder), from the two-way
ANOVA without replication (Shrout & Fleiss, Table 1):

    BMS = k · Σ_i (ȳ_i. − ȳ)² / (n − 1)                      between-targets mean square
    JMS = n · Σ_j (ȳ_.j − ȳ)² / (k − 1)                      between-raters mean square
    EMS = (Σ_ij (y_ij − ȳ)² − (n − 1)·BMS − (k − 1)·JMS) / ((n − 1)(k − 1))   residual
    ICC(3,1) = (BMS − EMS) / (BMS + (k − 1)·EMS)

Raters are fixed effects, so a constant offset between model and coder does not lower it (MAE
shows that); ICC(2,1) would.
"""
from __future__ import annotations

import numpy as np

PROTOCOL = ("DISFA intensity protocol: ICC(3,1), MAE and PCC per AU over the frames with a known "
            "FACS 0-5 intensity label")
MIN_FRAMES = 3  # fewer known frames: no correlation worth reporting


def icc_3_1(table: np.ndarray) -> float:
    """ICC(3,1) of an ``n × k`` table (rows: targets, columns: raters); NaN when undefined
    (fewer than 2 targets or raters, or no variance at all).

    Raises:
        ValueError: not a 2-D table.
    """
    y = np.asarray(table, np.float64)
    if y.ndim != 2:
        raise ValueError(f"icc_3_1 needs an n x k table, got shape {y.shape}")
    n, k = y.shape
    if n < 2 or k < 2:
        return float("nan")
    grand = y.mean()
    bms = k * ((y.mean(1) - grand) ** 2).sum() / (n - 1)
    jms = n * ((y.mean(0) - grand) ** 2).sum() / (k - 1)
    ems = (((y - grand) ** 2).sum() - (n - 1) * bms - (k - 1) * jms) / ((n - 1) * (k - 1))
    denom = bms + (k - 1) * ems
    return float((bms - ems) / denom) if denom > 0 else float("nan")


def pcc(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's r; NaN where either side is constant."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    da, db = a - a.mean(), b - b.mean()
    denom = np.sqrt((da ** 2).sum() * (db ** 2).sum())
    return float((da * db).sum() / denom) if denom > 0 else float("nan")


def _named(values: dict[str, float]) -> dict[str, float | None]:
    out = {a: (None if np.isnan(v) else round(float(v), 4)) for a, v in values.items()}
    known = [v for v in values.values() if not np.isnan(v)]
    out["mean"] = round(float(np.mean(known)), 4) if known else None
    return out


def intensity_scores(pred: np.ndarray, target: np.ndarray, aus: list[str]) -> dict:
    """``{"icc", "mae", "pcc"}`` per AU (+ ``mean``) and ``n`` (known frames per AU) for every AU
    with at least ``MIN_FRAMES`` known labels.

    Args:
        pred: N×A model intensities (0-5).
        target: N×A labels (0-5), NaN = unknown.
        aus: the A column names.
    """
    icc, mae, r, n = {}, {}, {}, {}
    for j, au in enumerate(aus):
        known = np.isfinite(target[:, j])
        if known.sum() < MIN_FRAMES:
            continue
        p, t = pred[known, j].astype(np.float64), target[known, j].astype(np.float64)
        icc[au] = icc_3_1(np.stack([p, t], axis=1))
        mae[au] = float(np.abs(p - t).mean())
        r[au] = pcc(p, t)
        n[au] = int(known.sum())
    return {"icc": _named(icc), "mae": _named(mae), "pcc": _named(r), "n": n}


def intensity_report(pred: np.ndarray, target: np.ndarray, aus: list[str], kinds: np.ndarray | None = None,
                     kind_names: list[str] | None = None) -> dict | None:
    """The metrics.json ``intensity`` block, or None when no AU has enough known labels.

    With ``kinds`` (N×A label-kind codes, indices into ``kind_names``) it names the kinds of the
    labels scored (``label_kinds``) and, when they mix, scores each kind apart (``by_label_kind``),
    so synthetic grades are never reported as coded ones.
    """
    scores = intensity_scores(pred, target, aus)
    if not scores["n"]:
        return None
    report = {"protocol": PROTOCOL, **scores}
    if kinds is not None and kind_names is not None:
        known = np.isfinite(target)
        present = sorted({int(k) for k in np.unique(kinds[known])})
        report["label_kinds"] = [kind_names[k] for k in present]
        if len(present) > 1:
            report["by_label_kind"] = {}
            for k in present:
                masked = np.where(kinds == k, target, np.nan)
                per = intensity_scores(pred, masked, aus)
                if per["n"]:
                    report["by_label_kind"][kind_names[k]] = per
    return report


def intensity_labels(target: np.ndarray, kinds: np.ndarray, kind_names: list[str], aus: list[str]) -> dict:
    """``{AU: {"known": n, "label_kinds": [...]}}`` for every AU with a known intensity label:
    what an exported intensity output is declared for, and the kinds of label behind it."""
    out = {}
    for j, au in enumerate(aus):
        known = np.isfinite(target[:, j])
        if known.any():
            out[au] = {"known": int(known.sum()),
                       "label_kinds": [kind_names[int(k)] for k in sorted(np.unique(kinds[known, j]))]}
    return out
