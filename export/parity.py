"""The parity gate: every artifact, run through the RUNTIME's engine, next to the PyTorch model.

Float artifacts must match the PyTorch probabilities (max |Δprob| <= 1e-3 FP32, 1e-2 FP16); INT8
ones may differ per crop but must not lose more than 1.0 mean-F1 point on the evaluation crops.
A model with an intensity output is gated on it too, on the 0-5 scale: max |Δintensity| <= 5e-3
FP32, 5e-2 FP16 (the probability limits times the scale), and a mean |Δintensity| <= 0.25 for INT8
(``max_abs_dintensity``, ``mean_abs_dintensity``; ``intensity_mae`` where the crops have labels).
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

REFERENCE_CROPS = 32  # crops in X.parity.npz: enough to catch a broken engine, small to copy


@dataclass(frozen=True)
class Gate:
    fp32_max_dprob: float = 1e-3
    fp16_max_dprob: float = 1e-2
    int8_max_f1_drop: float = 1.0  # mean-F1 points (F1 x 100)
    int8_board_tolerance: float = 0.05  # floor of the board tolerance for INT8 references
    fp32_max_dintensity: float = 5e-3  # the intensity output, FACS 0-5
    fp16_max_dintensity: float = 5e-2
    int8_max_mean_dintensity: float = 0.25
    int8_board_tolerance_intensity: float = 0.25


def f1_scores(probs: np.ndarray, data: CropSet, thresholds: np.ndarray) -> tuple[np.ndarray, float | None]:
    """Per-AU F1 (NaN where unknown) and their mean (None when no AU has known labels)."""
    from train.metrics import f1_per_au

    if data.labels is None or data.mask is None:
        return np.full(probs.shape[1], np.nan), None
    f1 = f1_per_au(probs, data.labels, data.mask, thresholds)
    known = f1[~np.isnan(f1)]
    return f1, (float(known.mean()) if len(known) else None)


def artifact_probs(path: Path, crops: np.ndarray, threads: int = 2) -> np.ndarray:
    """What ``runtime.load_engine(path)`` gives on ``crops`` (the runtime's own pre/post-processing)."""
    return artifact_outputs(path, crops, threads)[0]


def artifact_outputs(path: Path, crops: np.ndarray, threads: int = 2) -> tuple[np.ndarray, np.ndarray | None]:
    """Probabilities and intensities (None without them) through ``runtime.load_engine(path)``."""
    from runtime import load_engine

    with load_engine(path, threads=threads) as engine:
        return engine.infer_with_intensity(crops)


def check_artifact(path: Path, fmt: str, precision: str, data: CropSet, torch_probs: np.ndarray,
                   thresholds: np.ndarray, aus: list[str], gate: Gate, threads: int = 2,
                   own_thresholds: np.ndarray | None = None, torch_intensity: np.ndarray | None = None,
                   intensity_aus: list[str] | None = None) -> dict[str, Any]:
    """Run ``path`` through ``runtime.load_engine`` on ``data.crops``; the parity.json entry.

    ``own_thresholds``: the artifact's card thresholds where they were calibrated on its own
    outputs (INT8); its F1 is taken at those, PyTorch's at ``thresholds``. ``torch_intensity``:
    PyTorch's intensities of ``intensity_aus`` (the second output), gated as well."""
    probs, intensity = artifact_outputs(path, data.crops, threads)
    d = np.abs(probs.astype(np.float64) - torch_probs)
    f1, f1_mean = f1_scores(probs, data, thresholds if own_thresholds is None else own_thresholds)
    t_f1, t_mean = f1_scores(torch_probs, data, thresholds)
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

        entry["neutral_faces"] = neutral_lit(probs, data.labels, data.mask, data.real, aus,
                                             thresholds if own_thresholds is None else own_thresholds)
    if precision == "int8":
        limit = gate.int8_max_f1_drop
        entry["limit"] = {"f1_mean_drop_points": limit}
        entry["passed"] = delta is not None and delta >= -limit
        if delta is None:
            entry["reason"] = "no known labels in the evaluation crops to judge an INT8 artifact"
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
    """The parity.json keys of the intensity output: |Δintensity| vs PyTorch, its limit, and the
    MAE of both against the crops' intensity labels where they have some."""
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
    """``X.parity.npz`` (shared interface: crops, expected, tolerance, aus, precision; with
    ``intensity`` = (PyTorch's intensities, tolerance, their AUs) also ``expected_intensity``,
    ``intensity_tolerance`` and ``intensity_aus``)."""
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


def _probs_failed(entry: dict[str, Any]) -> bool:
    if entry["precision"] == "int8":
        d = entry["f1_mean_delta_vs_torch"]
        return d is None or d < -entry["limit"]["f1_mean_drop_points"]
    return entry["max_abs_dprob"] > entry["limit"]["max_abs_dprob"]


def failure_line(entry: dict[str, Any]) -> str:
    if entry.get("intensity_passed") is False and not _probs_failed(entry):
        limit = entry.get("intensity_limit", {})
        return (f"parity FAILED {entry['file']}: intensity {entry.get('intensity_reason') or limit} exceeded "
                f"(max |Δ| {entry.get('max_abs_dintensity')}, mean {entry.get('mean_abs_dintensity')}) vs PyTorch; "
                "the conversion changed the intensity output")
    if entry["precision"] == "int8":
        if entry["f1_mean_delta_vs_torch"] is None:
            return f"parity FAILED {entry['file']}: {entry.get('reason')}"
        return (f"parity FAILED {entry['file']}: mean F1 {entry['f1_mean_delta_vs_torch']:+.2f} points vs PyTorch "
                f"(limit -{entry['limit']['f1_mean_drop_points']}); calibrate on more/other crops or keep FP32")
    return (f"parity FAILED {entry['file']}: max |Δprob| {entry['max_abs_dprob']:.2e} > "
            f"{entry['limit']['max_abs_dprob']:.0e} vs PyTorch; the conversion changed the model")
