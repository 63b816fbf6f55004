"""Model cards for exported artifacts, filled from the checkpoint, its run and the data cache.

Everything a card says is read from somewhere recorded: thresholds, calibration and metrics from
the run's ``metrics.json`` (0.5 when the checkpoint has no run beside it; with the run's per-AU
calibration the thresholds are 0.5 and the card carries the calibration), datasets and label kinds
from the training cache's manifest, alignment from the cache the crops came from.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from export.model import ExportModel
from runtime.calibration import Calibration
from runtime.calibration import parse as parse_calibration
from runtime.card import LABEL_KINDS, InputSpec, ModelCard

CONFIGS = Path(__file__).resolve().parents[1] / "configs"  # the presets a recipe names

VERSION = "0.1.0"


def _manifest(cache: str | Path | None) -> dict[str, Any]:
    if not cache:
        return {}
    path = Path(cache) / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _label_kinds(run_metrics: dict, manifest: dict) -> list[str]:
    kinds = run_metrics.get("label_kinds")
    if kinds:
        return list(kinds)
    kind = manifest.get("label_kind")
    if kind == "mixed":  # the kinds with known labels in the cache (open_data.kind_counts), else all
        per_au = manifest.get("label_kinds") or {}
        present = {k for kinds_of_au in per_au.values() if isinstance(kinds_of_au, dict) for k in kinds_of_au}
        return [k for k in LABEL_KINDS if k in present] or list(LABEL_KINDS)
    return [kind] if kind in LABEL_KINDS else []


def _attribution(manifest: dict, em: ExportModel) -> list[str]:
    """The data's attribution lines (the cache manifest's) plus the initialisation's (the model
    registry's entry, when it started from pretrained weights)."""
    return list(manifest.get("attribution", [])) + ([em.ck.attribution] if em.ck.attribution else [])


def recipe_command(em: ExportModel) -> str:
    """The command that trained the checkpoint, from its recorded config."""
    ck = em.ck
    cfg = ck.train_config
    if not cfg:
        return f"unknown (checkpoint {ck.path.name if ck.path else '?'} records no training config)"
    verb = "python -m distill" if ck.task == "student" else "python -m train"
    name = cfg.get("name", "NAME")
    extra = "".join(f" {k}={cfg[k]}" for k in ("data", "run_dir") if cfg.get(k))
    teacher = f" --teacher {ck.teacher_checkpoint}" if ck.task == "student" and ck.teacher_checkpoint else ""
    return f"{verb}{teacher} --config configs/{name}.yaml{preset_overrides(cfg, name)}{extra}"


def preset_overrides(cfg: dict[str, Any], name: str) -> str:
    """`` key=value`` for every recorded setting that ``configs/NAME.yaml`` does not already hold.

    Why: a run made with ``input_size=96 seed=1`` is not the preset's run; a recipe without them
    reproduces another model. Where (data, run_dir), naming (name), the data build and how the
    machine ran it (threads, workers, logging) are left out; "" when the preset is not in this
    checkout (nothing to compare against).
    """
    from train.config import TrainConfig

    path = CONFIGS / f"{name}.yaml"
    if not path.is_file():
        return ""
    preset = TrainConfig.from_yaml(path, ["data="]).to_dict()  # data is skipped: no ${AU_DATA_DIR} needed
    skip = {"name", "data", "run_dir", "build", "model",  # model: compared key by key below
            "threads", "num_workers", "log_every", "checkpoint_every"}
    out = [f" {k}={_override_text(v)}" for k, v in cfg.items() if k not in skip and k in preset and v != preset[k]]
    model, preset_model = cfg.get("model") or {}, preset["model"]
    out += [f" model.{k}={_override_text(v)}" for k, v in model.items() if preset_model.get(k) != v]
    return "".join(out)


def _override_text(value: Any) -> str:
    """A value as ``key=value`` parses it back (YAML): lists without spaces, booleans lower-case."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def base_card(em: ExportModel, calib_meta: dict[str, Any]) -> ModelCard:
    """The card every artifact starts from (FP32 NCHW float input); formats adjust input/precision.

    Args:
        em: the model being exported.
        calib_meta: the crop cache's meta.json (its alignment is the one the runtime must use).
    """
    run, ck = em.run_metrics, em.ck
    saved_thr = run.get("thresholds", {})
    thresholds = {a: float(saved_thr.get(a, 0.5)) for a in ck.aus}
    calibration = run_calibration(run, list(ck.aus), Path(ck.path or ".").parent / "metrics.json")
    train_data = ck.train_config.get("data") or run.get("data")
    manifest = _manifest(train_data)
    metrics: dict[str, Any] = {}
    if run:
        metrics = {"source": str(Path(ck.path or ".").parent / "metrics.json"), "split": run.get("split"),
                   "data": run.get("data"), "f1": run.get("f1", {}), "auc": run.get("auc", {})}
        if run.get("threshold_rules"):
            metrics["threshold_rules"] = run["threshold_rules"]
        if run.get("neutral_faces"):
            metrics["neutral_faces"] = run["neutral_faces"]
        if "teacher" in run:
            metrics["teacher_f1_mean"] = (run["teacher"].get("f1") or {}).get("mean")
        if em.intensity_aus and run.get("intensity"):
            metrics["intensity"] = run["intensity"]  # the DISFA intensity protocol on the run's test split
        if calibration is not None:  # the thresholds behind it, and how well it held on val (and test)
            metrics["raw_thresholds"] = thresholds
            metrics["calibration_ece"] = {part: run["calibration"][part]["ece"] for part in ("validation", "test")
                                          if isinstance(run["calibration"].get(part), dict)}
    if calibration is not None:
        thresholds = {a: 0.5 for a in ck.aus}
    return ModelCard(
        aus=list(ck.aus),
        input=InputSpec(size=(ck.input_size, ck.input_size), layout="NCHW", dtype="float32",
                        mean=tuple(ck.mean), std=tuple(ck.std), quant=None),
        output_kind="prob",
        thresholds=thresholds,
        alignment={"template": calib_meta.get("template", "default"),
                   "crop_size": int(calib_meta.get("crop_size", ck.input_size)),
                   "scale": float(calib_meta.get("scale", 1.0))},
        model={"name": f"au-edge-{ck.task}-{ck.arch}", "version": VERSION, "backbone": ck.arch,
               "params": em.params, "precision": "fp32", "task": ck.task,
               "checkpoint": ck.path.name if ck.path else ""},
        training={"datasets": [manifest.get("dataset") or (Path(train_data).name if train_data else "unknown")],
                  "label_kinds": _label_kinds(run, manifest), "recipe": recipe_command(em),
                  "data": str(train_data) if train_data else None,
                  "label_counts_by_kind": manifest.get("label_kinds", {}),
                  "attribution": _attribution(manifest, em)},
        metrics=metrics,
        calibration=calibration,
        output={"intensity": em.intensity_card()} if em.intensity_aus else {},
    )


def run_calibration(run: dict[str, Any], aus: list[str], source: Path) -> Calibration | None:
    """The run's per-AU calibration (metrics.json ``calibration``, fitted on val by
    ``train.calibration``), checked as a card's; None for runs without one (their cards keep
    per-AU thresholds)."""
    section = run.get("calibration")
    if not section:
        return None
    return parse_calibration({k: section.get(k) for k in ("method", "fitted_on", "aus")}, aus,
                             {a: 0.5 for a in aus}, where=f"{source}")
