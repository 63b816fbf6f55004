"""The export pipeline: checkpoint -> every requested artifact -> parity gate -> report.

Kept apart from the CLI so tests and ``export.bench`` call it directly.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from export.build import Artifact, Options, artifact_name
from export.cards import base_card
from export.crops import CropSet, load_crops
from export.formats import Format
from export.model import ExportModel, load_export_model
from export.parity import (
    Gate,
    artifact_probs,
    board_tolerance,
    board_tolerance_intensity,
    check_artifact,
    f1_scores,
    raw_thresholds,
    write_reference,
    write_report,
)
from train.data.policy import split_indices_for
from train.model.input_norm import normalize_crops


@dataclass
class ExportResult:
    artifacts: list[Artifact]
    parity: list[dict[str, Any]]
    parity_path: Path
    failures: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _same_cache(a: str | Path | None, b: str | Path) -> bool:
    return a is not None and Path(a).resolve() == Path(b).resolve()


def calibration_crops(em: ExportModel, calib: Path, size: int) -> CropSet:
    """Real aligned crops for INT8 calibration: the run's train split when ``calib`` is the run's
    own cache (never its test subjects), else the whole cache, spread evenly."""
    from train.data.cache import CacheData

    idx = None
    if _same_cache(em.ck.train_config.get("data"), calib):
        idx = split_indices_for(CacheData(calib), em.ck.train_config, "train")
    return load_crops(calib, em.ck.input_size, idx, limit=size)


def evaluation_crops(em: ExportModel, cache: Path, split: str, size: int) -> CropSet:
    from train.data.cache import CacheData

    idx = split_indices_for(CacheData(cache), em.ck.train_config, split)
    data = load_crops(cache, em.ck.input_size, idx, limit=size, aus=list(em.ck.aus))
    data.source = f"{cache} split {split} ({len(data)} crops)"
    return data


def export(checkpoint: Path, formats: list[Format], calib: Path, out: Path, eval_cache: Path | None = None,
           split: str = "test", opts: Options | None = None, gate: Gate | None = None, eval_size: int = 512,
           log=print) -> ExportResult:
    """Build every format, gate every artifact, write parity.json, cards and references.

    Raises:
        FileNotFoundError / ValueError: a bad checkpoint, cache or split (one line, for exit 2).
        export.trt_support.UnsupportedOps: an op TensorRT cannot parse (unless allowed).
    """
    opts, gate = opts or Options(), gate or Gate()
    em = load_export_model(checkpoint)
    calib_set = calibration_crops(em, calib, opts.calib_size)
    eval_set = evaluation_crops(em, eval_cache or calib, split, eval_size)
    out.mkdir(parents=True, exist_ok=True)
    meta = json.loads((calib / "meta.json").read_text())
    base = base_card(em, meta)
    aus = list(em.ck.aus)
    calib_x = normalize_crops(calib_set.crops, em.ck.mean, em.ck.std)
    torch_probs, torch_intensity = _torch_outputs(em, eval_set)
    thr = raw_thresholds(base)  # PyTorch's decisions: the run's thresholds (0.5 after its calibration)
    _, torch_f1 = f1_scores(torch_probs >= thr[None, :], eval_set)
    log(f"calibration: {calib_set.source}; evaluation: {eval_set.source}")

    built: dict[str, Artifact] = {}
    for fmt in formats:  # the table orders a format after the one it is built from
        path = out / artifact_name(fmt, opts)
        log(f"building {fmt.name} -> {path}")
        built[fmt.name] = fmt.build()(em, base, path, opts, calib_x, fmt, built)
    artifacts = list(built.values())

    entries, warnings = [], list(em.warnings) + [w for a in artifacts for w in a.warnings]
    val_set = validation_crops(em, calib) if any(a.precision == "int8" for a in artifacts) else None
    for art in artifacts:
        if art.precision == "int8" and val_set is not None:
            own_thresholds(em, art, val_set)
            log(f"{art.path.name}: " + ("its logits mapped onto PyTorch's, the run's calibration kept"
                                        if art.card.calibration else "thresholds fitted on its own outputs")
                + f" ({val_set.source})")
        entry = check_artifact(art.path, art.format, art.precision, eval_set, torch_probs, thr, aus, gate,
                               torch_intensity=torch_intensity, intensity_aus=em.intensity_aus)
        tol = board_tolerance(entry, gate)
        ref_intensity = None
        if torch_intensity is not None and "max_abs_dintensity" in entry:
            ref_intensity = (torch_intensity, board_tolerance_intensity(entry, gate), em.intensity_aus)
        ref = write_reference(art.path, eval_set.crops, torch_probs, tol, aus, art.precision, ref_intensity)
        entry.pop("_probs")
        entry["reference"] = ref.name
        art.card.parity = {**entry, "torch_f1_mean": None if torch_f1 is None else round(100 * torch_f1, 3),
                           "eval": eval_set.source, "board_tolerance": tol}
        if ref_intensity is not None:
            art.card.parity["board_tolerance_intensity"] = ref_intensity[1]
        art.card.write(art.path)  # the sidecar gains parity; the ONNX-embedded card is the pre-parity one
        entries.append(entry)
    report = write_report(out, entries, torch_f1, gate, eval_set.source, str(checkpoint))
    return ExportResult(artifacts, entries, report, [e for e in entries if not e["passed"]], warnings)


def validation_crops(em: ExportModel, cache: Path) -> CropSet | None:
    """The run's validation split (labels, real-label masks) when ``cache`` is the run's own cache
    and the split is not empty; else None."""
    from train.data.cache import CacheData

    if not _same_cache(em.ck.train_config.get("data"), cache):
        return None
    idx = split_indices_for(CacheData(cache), em.ck.train_config, "val")
    if not len(idx):
        return None
    data = load_crops(cache, em.ck.input_size, idx, aus=list(em.ck.aus))
    data.source = f"{cache} split val ({len(data)} crops)"
    return data


def own_thresholds(em: ExportModel, art: Artifact, val: CropSet) -> None:
    """An INT8 artifact's decisions, fitted on ITS outputs on the validation split and written into
    its card before the gate reads it (quantisation moves probabilities near 1 the most, where a
    neutral-face budget puts thresholds (0.99+), so PyTorch's cut would not fit).

    A calibrated card keeps the run's calibration and maps this artifact's logits onto PyTorch's
    (per AU, least squares: no labels, so no AU with few validation positives gets a new operating
    point; ``int8_logit_map``); an uncalibrated one gets thresholds by the run's rule
    (``train.metrics.calibrate``) on its outputs."""
    from train.calibration import report
    from train.metrics import budget_rate, calibrate

    run, aus = em.ck.train_config, list(em.ck.aus)
    probs = artifact_probs(art.path, val.crops)  # before calibration
    if art.card.calibration is not None:
        alpha, beta = logit_map(probs, _torch_probs(em, val))
        cal = art.card.calibration
        art.card.calibration = replace(cal, a=cal.a * alpha, b=cal.a * beta + cal.b,
                                       fitted_on=f"{cal.fitted_on}; this artifact's logits mapped onto PyTorch's "
                                                 f"on {val.source}")
        art.card.metrics = {**art.card.metrics, "int8_logit_map": {a: [round(float(x), 4), round(float(y), 4)]
                                                                  for a, x, y in zip(aus, alpha, beta)}}
        own = report(probs, val.labels, val.mask, art.card.calibration, aus, real=val.real)
        art.card.metrics["calibration_ece"] = {"validation": own["ece"]}  # this artifact's, not the run's
        rewrite_card(art)
        return
    budget = float(run.get("neutral_fp_budget", -1.0))  # runs from before the budget: off
    thr, rules = calibrate(probs, val.labels, val.mask, real=val.real, max_fp_rate=budget_rate(budget, len(aus)),
                           neutral_rule=run.get("neutral_fp_rule", "count"))
    art.card.metrics = {**art.card.metrics, "threshold_rules": dict(zip(aus, rules)),
                        "thresholds_from": f"this artifact's outputs on {val.source}"}
    art.card.thresholds = {a: round(float(t), 4) for a, t in zip(aus, thr)}
    rewrite_card(art)


def logit_map(probs: np.ndarray, reference: np.ndarray, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Per AU ``(alpha, beta)`` with ``logit(reference) ~ alpha * logit(probs) + beta`` (least squares;
    a non-positive or degenerate slope keeps alpha 1 and fits the shift alone)."""
    z = np.log(np.clip(probs, eps, 1 - eps) / np.clip(1 - probs, eps, 1))
    zr = np.log(np.clip(reference, eps, 1 - eps) / np.clip(1 - reference, eps, 1))
    alpha, beta = np.ones(z.shape[1]), np.zeros(z.shape[1])
    for j in range(z.shape[1]):
        if z[:, j].std() > 1e-6:
            slope, icpt = np.polyfit(z[:, j], zr[:, j], 1)
            if 0.1 <= slope <= 10.0:
                alpha[j], beta[j] = slope, icpt
                continue
        beta[j] = float(np.mean(zr[:, j] - z[:, j]))
    return alpha, beta


def rewrite_card(art: Artifact) -> None:
    """Write the artifact's card again (an ONNX embeds it first: ``export.tensorrt`` builds from that)."""
    if art.path.suffix == ".onnx":
        from export.to_onnx import embed_card

        embed_card(art.path, art.card)
    art.card.write(art.path)


def _torch_probs(em: ExportModel, data: CropSet) -> np.ndarray:
    return _torch_outputs(em, data)[0]


def _torch_outputs(em: ExportModel, data: CropSet) -> tuple[np.ndarray, np.ndarray | None]:
    """PyTorch's probabilities and intensities (None without the output) on the crops."""
    import torch

    x = torch.from_numpy(normalize_crops(data.crops, em.ck.mean, em.ck.std))
    probs, intensity = em.predict_outputs(x)
    return probs.numpy().astype(np.float64), None if intensity is None else intensity.numpy().astype(np.float64)


def camera_command(path: Path) -> str:
    return f"python -m runtime.camera --engine {path} --source 0"
