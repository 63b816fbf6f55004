"""The parity gate: every artifact, run through the RUNTIME's engine, next to the PyTorch model.

Float artifacts must match the PyTorch probabilities (max |Δprob| <= 1e-3 FP32, 1e-2 FP16, before
the card's calibration); INT8 ones may differ per crop but must decide as FP32 on at least 90 % of
the crops per AU (one-sided 95 % Wilson bound) and must not lose more than 1.0 mean-F1 point beyond
doubt (the paired bootstrap CI of the delta wholly below -1.0 fails): ``export.int8_gate``.
A model with an intensity output is gated on it too, on the 0-5 scale (``intensity_parity``).
Results go to ``DIR/parity.json``, each card's ``parity``, and ``X.parity.npz`` beside each engine
(the reference ``device_tests.parity`` checks on the board).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export.crops import CropSet
from runtime.card import ModelCard

REFERENCE_CROPS = 32  # crops in X.parity.npz: enough to catch a broken engine, small to copy


@dataclass(frozen=True)
class Gate:
    fp32_max_dprob: float = 1e-3
    fp16_max_dprob: float = 1e-2
    int8_max_f1_drop: float = 1.0  # mean-F1 points (F1 x 100): fails when the whole bootstrap CI is below -it
    int8_board_tolerance: float = 0.05  # floor of the board tolerance for INT8 references
    int8_min_agreement: float = 0.9  # per AU: INT8 decides as FP32 on at least this share (one-sided bound)
    int8_agreement_confidence: float = 0.95  # of the Wilson lower bound on that share
    int8_bootstrap_resamples: int = 2000
    int8_bootstrap_ci: float = 0.95  # two-sided coverage of the F1 delta's CI
    int8_bootstrap_seed: int = 0
    fp32_max_dintensity: float = 5e-3  # the intensity output, FACS 0-5: the probability limits x 5
    fp16_max_dintensity: float = 5e-2
    int8_max_mean_dintensity: float = 0.25
    int8_board_tolerance_intensity: float = 0.25


def f1_scores(decisions: np.ndarray, data: CropSet) -> tuple[np.ndarray, float | None]:
    """Per-AU F1 of N×A decisions (NaN where unknown) and their mean (None when no AU has known labels)."""
    from train.metrics import f1_per_au

    if data.labels is None or data.mask is None:
        return np.full(decisions.shape[1], np.nan), None
    f1 = f1_per_au(decisions.astype(np.float64), data.labels, data.mask, 0.5)
    known = f1[~np.isnan(f1)]
    return f1, (float(known.mean()) if len(known) else None)


def raw_thresholds(card: ModelCard) -> np.ndarray:
    """The probability each AU is decided at before calibration: the calibration's 0.5 mapped back,
    or the card's thresholds (an uncalibrated card)."""
    if card.calibration is not None:
        return card.calibration.thresholds()
    return np.array([card.threshold(a) for a in card.aus])


def artifact_probs(path: Path, crops: np.ndarray, threads: int = 2, calibrated: bool = False) -> np.ndarray:
    """What ``runtime.load_engine(path)`` gives on ``crops`` (the runtime's own pre/post-processing),
    before the card's calibration unless ``calibrated`` (PyTorch's references are before it)."""
    from runtime import load_engine

    with load_engine(path, threads=threads) as engine:
        return engine.infer(crops, calibrated=calibrated)


def artifact_outputs(path: Path, crops: np.ndarray, threads: int = 2
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The engine's probabilities before calibration, its decisions as the runtime makes them
    (calibrated output at the card's thresholds) and its intensities (None without them)."""
    from runtime import load_engine

    with load_engine(path, threads=threads) as engine:
        thr = np.array([engine.card.threshold(a) for a in engine.aus], np.float32)
        probs, intensity = engine.infer_with_intensity(crops, calibrated=False)
        return probs, engine.infer(crops) >= thr, intensity


def check_artifact(path: Path, fmt: str, precision: str, data: CropSet, torch_probs: np.ndarray,
                   torch_thresholds: np.ndarray, aus: list[str], gate: Gate, threads: int = 2,
                   torch_intensity: np.ndarray | None = None, intensity_aus: list[str] | None = None) -> dict[str, Any]:
    """Run ``path`` through ``runtime.load_engine`` on ``data.crops``; the parity.json entry.

    Probabilities are compared before calibration (the conversion check); F1, neutral faces and
    the INT8 decision agreement use each side's decisions: PyTorch's probabilities at
    ``torch_thresholds``, the artifact's as the runtime decides with its own card (an INT8 card
    has thresholds and calibration fitted on its own validation outputs). ``torch_intensity``:
    PyTorch's intensities of ``intensity_aus`` (the second output), gated as well."""
    probs, decided, intensity = artifact_outputs(path, data.crops, threads)
    torch_decided = torch_probs >= torch_thresholds[None, :]
    d = np.abs(probs.astype(np.float64) - torch_probs)
    f1, f1_mean = f1_scores(decided, data)
    t_f1, t_mean = f1_scores(torch_decided, data)
    delta = None if f1_mean is None or t_mean is None else 100.0 * (f1_mean - t_mean)
    entry: dict[str, Any] = {
        "file": path.name, "format": fmt, "precision": precision, "size_bytes": path.stat().st_size,
        "max_abs_dprob": float(d.max()) if d.size else 0.0, "mean_abs_dprob": float(d.mean()) if d.size else 0.0,
        "f1_mean": None if f1_mean is None else round(100.0 * f1_mean, 3),
        "f1_mean_delta_vs_torch": None if delta is None else round(delta, 3),
        "f1_delta_vs_torch": {a: (None if np.isnan(x) or np.isnan(y) else round(100.0 * (x - y), 3))
                              for a, x, y in zip(aus, f1, t_f1)},
        "n_crops": len(data),
    }
    if data.real is not None and data.labels is not None:
        from train.metrics import neutral_lit

        entry["neutral_faces"] = neutral_lit(decided.astype(np.float64), data.labels, data.mask, data.real, aus,
                                             np.full(len(aus), 0.5))
    if precision == "int8":
        entry.update(int8_verdict(decided, torch_decided, data, aus, gate))
    else:
        limit = gate.fp16_max_dprob if precision == "fp16" else gate.fp32_max_dprob
        entry["limit"] = {"max_abs_dprob": limit}
        entry["passed"] = bool(entry["max_abs_dprob"] <= limit)
    if torch_intensity is not None:
        entry.update(intensity_parity(intensity, torch_intensity, data, aus, intensity_aus or [], precision, gate))
        entry["passed"] = bool(entry["passed"] and entry["intensity_passed"])
    entry["_probs"] = probs  # for the reference file; dropped before JSON
    return entry


def intensity_parity(got: np.ndarray | None, want: np.ndarray, data: CropSet, aus: list[str],
                     intensity_aus: list[str], precision: str, gate: Gate) -> dict[str, Any]:
    """The parity.json keys of the intensity output: |Δintensity| vs PyTorch and its limit (max
    |Δ| for float artifacts, mean |Δ| for INT8), and the MAE of both against the crops' intensity
    labels where they have some."""
    if got is None or got.shape != want.shape:
        return {"intensity_passed": False, "intensity_reason": "the runtime read no intensity output of the "
                                                              "shape PyTorch gives; check the card's output.intensity"}
    d = np.abs(got.astype(np.float64) - want)
    out: dict[str, Any] = {"max_abs_dintensity": float(d.max()) if d.size else 0.0,
                           "mean_abs_dintensity": float(d.mean()) if d.size else 0.0}
    if precision == "int8":
        out["intensity_limit"] = {"mean_abs_dintensity": gate.int8_max_mean_dintensity}
        out["intensity_passed"] = out["mean_abs_dintensity"] <= gate.int8_max_mean_dintensity
    else:
        limit = gate.fp16_max_dintensity if precision == "fp16" else gate.fp32_max_dintensity
        out["intensity_limit"] = {"max_abs_dintensity": limit}
        out["intensity_passed"] = out["max_abs_dintensity"] <= limit
    if data.intensity is not None:
        labels = data.intensity[:, [aus.index(a) for a in intensity_aus]]
        known = np.isfinite(labels)
        if known.any():
            mae, t_mae = (float(np.abs(x[known] - labels[known]).mean()) for x in (got, want))
            out.update(intensity_mae=round(mae, 4), intensity_mae_delta_vs_torch=round(mae - t_mae, 4))
    return out


def int8_verdict(decided: np.ndarray, torch_decided: np.ndarray, data: CropSet, aus: list[str],
                 gate: Gate) -> dict[str, Any]:
    """The INT8 gate (``export.int8_gate``): every AU's decision agreement with FP32 at least
    ``int8_min_agreement`` by its one-sided Wilson bound, and the mean-F1 delta's paired bootstrap
    CI not wholly below ``-int8_max_f1_drop``. Labels are needed for the F1 part only."""
    from export.int8_gate import agreement, f1_delta_ci, wilson_lower

    agree, n = agreement(decided, torch_decided)
    lower = wilson_lower(agree, n, gate.int8_agreement_confidence)
    ci = (None if data.labels is None or data.mask is None else
          f1_delta_ci(decided, torch_decided, data.labels, data.mask, gate.int8_bootstrap_resamples,
                      gate.int8_bootstrap_ci, gate.int8_bootstrap_seed))
    agreement_ok = bool(n > 0 and lower.min() >= gate.int8_min_agreement)
    f1_ok = ci is not None and ci.high is not None and ci.high >= -gate.int8_max_f1_drop
    out: dict[str, Any] = {
        "limit": {"f1_mean_drop_points": gate.int8_max_f1_drop, "min_agreement": gate.int8_min_agreement},
        "agreement": {a: round(float(k) / max(n, 1), 4) for a, k in zip(aus, agree)},
        "agreement_lower": {a: round(float(v), 4) for a, v in zip(aus, lower)},
        "agreement_min_lower": round(float(lower.min()), 4) if n else None,
        "f1_mean_delta_ci": None if ci is None or ci.low is None else [round(ci.low, 3), round(ci.high, 3)],
        "checks": {"agreement": agreement_ok, "f1_delta_ci": f1_ok},
        "passed": agreement_ok and f1_ok,
    }
    if ci is None or ci.point is None:
        out["reason"] = "no known labels in the evaluation crops to judge an INT8 artifact's F1"
    return out


def board_tolerance(entry: dict[str, Any], gate: Gate) -> float:
    """Max |Δprob| vs PyTorch allowed on the board for this artifact's precision."""
    if entry["precision"] == "int8":
        return float(max(gate.int8_board_tolerance, 1.5 * entry["max_abs_dprob"]))
    return gate.fp16_max_dprob if entry["precision"] == "fp16" else gate.fp32_max_dprob


def board_tolerance_intensity(entry: dict[str, Any], gate: Gate) -> float:
    """Max |Δintensity| vs PyTorch allowed on the board (an entry with ``max_abs_dintensity``)."""
    if entry["precision"] == "int8":
        return float(max(gate.int8_board_tolerance_intensity, 1.5 * entry["max_abs_dintensity"]))
    return gate.fp16_max_dintensity if entry["precision"] == "fp16" else gate.fp32_max_dintensity


def write_reference(path: Path, crops: np.ndarray, expected: np.ndarray, tolerance: float, aus: list[str],
                    precision: str, intensity: tuple[np.ndarray, float, list[str]] | None = None) -> Path:
    """``X.parity.npz`` (shared interface: crops, expected, tolerance, aus, precision); ``expected``
    are PyTorch's probabilities before the card's calibration (``device_tests.parity`` compares the
    engine's output before it too). With ``intensity`` = (PyTorch's intensities, tolerance, their
    AUs) also ``expected_intensity``, ``intensity_tolerance`` and ``intensity_aus``."""
    out = path.with_name(path.name + ".parity.npz")
    n = min(REFERENCE_CROPS, len(crops))
    extra = {}
    if intensity is not None:
        extra = {"expected_intensity": np.asarray(intensity[0][:n], np.float32),
                 "intensity_tolerance": np.float32(intensity[1]), "intensity_aus": np.array(intensity[2])}
    np.savez_compressed(out, crops=np.ascontiguousarray(crops[:n], np.uint8),
                        expected=np.asarray(expected[:n], np.float32), tolerance=np.float32(tolerance),
                        aus=np.array(aus), precision=np.array(precision), **extra)
    return out


def write_report(out_dir: Path, entries: list[dict[str, Any]], torch_f1: float | None, gate: Gate,
                 source: str, checkpoint: str) -> Path:
    """``DIR/parity.json``: the gate, the PyTorch reference, one entry per artifact."""
    report = {"checkpoint": checkpoint, "eval": source, "gate": asdict(gate),
              "torch_f1_mean": None if torch_f1 is None else round(100.0 * torch_f1, 3),
              "artifacts": [{k: v for k, v in e.items() if not k.startswith("_")} for e in entries],
              "passed": all(e["passed"] for e in entries)}
    path = out_dir / "parity.json"
    path.write_text(json.dumps(report, indent=2))
    return path


def _probs_passed(entry: dict[str, Any]) -> bool:
    if entry["precision"] == "int8":
        return all(entry.get("checks", {"f1": False}).values())
    return entry["max_abs_dprob"] <= entry["limit"]["max_abs_dprob"]


def failure_line(entry: dict[str, Any]) -> str:
    if entry.get("intensity_passed") is False and _probs_passed(entry):
        return (f"parity FAILED {entry['file']}: the intensity output, "
                f"{entry.get('intensity_reason') or entry.get('intensity_limit')} exceeded (max |Δ| "
                f"{entry.get('max_abs_dintensity')}, mean {entry.get('mean_abs_dintensity')} vs PyTorch); the "
                "conversion changed the intensity output")
    if entry["precision"] == "int8":
        checks, limit = entry.get("checks", {}), entry["limit"]
        if "agreement" in entry and not checks.get("agreement", True):
            worst = min(entry["agreement_lower"], key=entry["agreement_lower"].get)
            return (f"parity FAILED {entry['file']}: {worst} decides as FP32 on {entry['agreement'][worst]:.1%} of "
                    f"{entry['n_crops']} crops (lower bound {entry['agreement_lower'][worst]:.3f} < "
                    f"{limit['min_agreement']}); calibrate on more/other crops or keep FP32")
        if entry["f1_mean_delta_vs_torch"] is None:
            return f"parity FAILED {entry['file']}: {entry.get('reason')}"
        ci = entry.get("f1_mean_delta_ci")
        span = f" (95% CI {ci[0]:+.2f} to {ci[1]:+.2f})" if ci else ""
        return (f"parity FAILED {entry['file']}: mean F1 {entry['f1_mean_delta_vs_torch']:+.2f} points vs PyTorch"
                f"{span}, limit -{limit['f1_mean_drop_points']}; calibrate on more/other crops or keep FP32")
    return (f"parity FAILED {entry['file']}: max |Δprob| {entry['max_abs_dprob']:.2e} > "
            f"{entry['limit']['max_abs_dprob']:.0e} vs PyTorch; the conversion changed the model")
