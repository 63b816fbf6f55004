"""``StudentTask``: training a distilled student on the shared training engine (``train.engine.train``).

The student model (registry, rebuild, export) is ``train.task.StudentModelTask``; this subclass
adds what training it needs: the frozen teacher, the distillation objective and the teacher's
metrics on the same evaluation set. The checkpoint records the student config (``model_config``,
with the teacher's token width) and the teacher checkpoint path, so
``task_for_checkpoint(ck).model_from_checkpoint(ck)`` rebuilds the student without the teacher
file or the ImageNet packages.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from distill.config import StudentConfig
from train.task import Objective, StudentModelTask

if TYPE_CHECKING:
    from train.data.cache import CacheData


class StudentTask(StudentModelTask):
    """Args:
        model_cfg: the config's ``model:`` section (``StudentConfig`` fields).
        teacher_checkpoint: path of the frozen teacher (needed to train and for ``extra_metrics``;
            not to rebuild a trained student).
    """

    def __init__(self, model_cfg: dict[str, Any], teacher_checkpoint: str | None = None):
        self.cfg = StudentConfig.from_dict(dict(model_cfg))
        self.teacher_checkpoint = teacher_checkpoint
        self.mean, self.std = self.input_norm(self.cfg.to_dict())
        self._teacher_ck = None
        if teacher_checkpoint and not self.cfg.distill_dim and (self.cfg.w_feat > 0 or self.cfg.w_rel > 0):
            self.cfg.distill_dim = self._teacher_token_dim()

    # -- the teacher -------------------------------------------------------------------------
    def teacher_ck(self):
        """The teacher's ``train.checkpoint.Checkpoint`` (read once)."""
        from distill.teacher import load_teacher_checkpoint

        if not self.teacher_checkpoint:
            raise ValueError("this student task has no teacher checkpoint (pass --teacher CKPT)")
        if self._teacher_ck is None:
            self._teacher_ck = load_teacher_checkpoint(self.teacher_checkpoint)
        return self._teacher_ck

    def teacher(self, aus: list[str], device: torch.device | str = "cpu"):
        from distill.teacher import FrozenTeacher

        return FrozenTeacher(self.teacher_ck(), aus).to(device)

    def _teacher_token_dim(self) -> int:
        return self.teacher(list(self.teacher_ck().aus)[:1]).token_dim()

    # -- Task interface ----------------------------------------------------------------------
    def build_model(self, model_cfg: dict[str, Any], aus: list[str], input_size: int) -> nn.Module:
        cfg = StudentConfig.from_dict({**dict(model_cfg), "distill_dim": model_cfg.get("distill_dim")
                                       or self.cfg.distill_dim})
        return super().build_model(cfg.to_dict(), aus, input_size)

    def build_objective(self, model: nn.Module, pos_weight: torch.Tensor, generator: torch.Generator) -> Objective:
        import os

        from distill.objective import DistillObjective, UnlabeledFrames

        device = next(model.parameters()).device
        unlabeled = None
        if self.cfg.unlabeled_batch > 0:
            seed = int(generator.initial_seed())
            unlabeled = UnlabeledFrames(self.cfg.unlabeled, model.input_size, self.cfg.unlabeled_batch, seed,
                                        int(os.environ.get("RANK", "0")))
        return DistillObjective(model, self.teacher(list(model.aus), device), self.cfg, self.mean, self.std,
                                pos_weight, unlabeled)

    def check_data(self, model_cfg: dict[str, Any], has_flow: bool, where: str, has_intensity: bool = False) -> None:
        cfg = StudentConfig.from_dict(dict(model_cfg))
        if cfg.intensity_head and not has_intensity and not cfg.w_intensity_soft > 0:
            raise ValueError(f"{where}: model.intensity_head is on with model.w_intensity_soft=0, but no training "
                             "frame has a known AU intensity for the run's AUs; use such a cache or a teacher "
                             "with an intensity head (model.w_intensity_soft > 0)")

    def check_split(self, cache: CacheData, idx: dict[str, np.ndarray]) -> None:
        from train.config import TrainConfig
        from train.data.policy import teacher_trained_subjects

        if not self.teacher_checkpoint:
            return
        taught = self.teacher_ck().train_config
        t = TrainConfig.from_dict(taught) if taught else None
        leaked = teacher_trained_subjects(cache, t, idx)
        if leaked:
            raise ValueError(
                f"{cache.root}: {len(leaked)} of the student's validation/test identities trained its teacher "
                f"(e.g. {', '.join(leaked[:3])}), so its scores there would read the teacher's memory; keep the "
                f"teacher's split: split={t.split} fold={t.fold} val_fraction={t.val_fraction} "
                f"split_seed={t.split_draw_seed} (seed= still varies the student's training)")

    def checkpoint_meta(self, model_cfg: dict[str, Any], aus: list[str], input_size: int) -> dict[str, Any]:
        full = {**StudentConfig.from_dict(dict(model_cfg)).to_dict(), "distill_dim": self.cfg.distill_dim}
        meta = super().checkpoint_meta(full, aus, input_size)
        meta["teacher_checkpoint"] = str(self.teacher_checkpoint or "")
        return meta

    def extra_metrics(self, predict_on, aus: list[str], calibrate) -> dict[str, Any]:
        """The teacher on the same evaluation set, thresholds calibrated by the same rule on the
        same val split as the student's, so the two rows compare like for like."""
        from train.metrics import au_report

        if not self.teacher_checkpoint:
            return {}
        teacher = self.teacher(aus)
        mean, std = teacher.mean, teacher.std
        thr = calibrate(*predict_on(teacher, mean, std, split="val"))
        pt, lt, mt = predict_on(teacher, mean, std)
        return {"teacher": {**au_report(pt, lt, mt, aus, thr), "checkpoint": str(self.teacher_checkpoint)}}
