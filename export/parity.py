"""The parity gate: every artifact, run through the RUNTIME's engine, next to the PyTorch model.

Float artifacts must match the PyTorch probabilities (max |Δprob| <= 1e-3 FP32, 1e-2 FP16); INT8
ones may differ per crop but must not lose more than 1.0 mean-F1 point on the evaluation crops.
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
    from runtime import load_engine

    with load_engine(path, threads=threads) as engine:
        return engine.infer(crops)


def check_artifact(path: Path, fmt: str, precision: str, data: CropSet, torch_probs: np.ndarray,
                   thresholds: np.ndarray, aus: list[str], gate: Gate, threads: int = 2,
                   own_thresholds: np.ndarray | None = None) -> dict[str, Any]:
    """Run ``path`` through ``runtime.load_engine`` on ``data.crops``; the parity.json entry.

    ``own_thresholds``: the artifact's card thresholds where they were calibrated on its own
    outputs (INT8); its F1 is taken at those, PyTorch's at ``thresholds``."""
    probs = artifact_probs(path, data.crops, threads)
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
    entry["_probs"] = probs  # for the reference file; dropped before JSON
    return entry


def board_tolerance(entry: dict[str, Any], gate: Gate) -> float:
    """Max |Δprob| vs PyTorch allowed on the board for this artifact's precision."""
    if entry["precision"] == "int8":
        return float(max(gate.int8_board_tolerance, 1.5 * entry["max_abs_dprob"]))
    return gate.fp16_max_dprob if entry["precision"] == "fp16" else gate.fp32_max_dprob


def write_reference(path: Path, crops: np.ndarray, expected: np.ndarray, tolerance: float, aus: list[str],
                    precision: str) -> Path:
    """``X.parity.npz`` (shared interface: crops, expected, tolerance, aus, precision)."""
    out = path.with_name(path.name + ".parity.npz")
    n = min(REFERENCE_CROPS, len(crops))
    np.savez_compressed(out, crops=np.ascontiguousarray(crops[:n], np.uint8),
                        expected=np.asarray(expected[:n], np.float32), tolerance=np.float32(tolerance),
                        aus=np.array(aus), precision=np.array(precision))
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


def failure_line(entry: dict[str, Any]) -> str:
    if entry["precision"] == "int8":
        if entry["f1_mean_delta_vs_torch"] is None:
            return f"parity FAILED {entry['file']}: {entry.get('reason')}"
        return (f"parity FAILED {entry['file']}: mean F1 {entry['f1_mean_delta_vs_torch']:+.2f} points vs PyTorch "
                f"(limit -{entry['limit']['f1_mean_drop_points']}); calibrate on more/other crops or keep FP32")
    return (f"parity FAILED {entry['file']}: max |Δprob| {entry['max_abs_dprob']:.2e} > "
            f"{entry['limit']['max_abs_dprob']:.0e} vs PyTorch; the conversion changed the model")
