"""``StudentConfig``: the ``model:`` section of a distillation config, validated at construction.

The student itself (arch, pretrained init, dropout, trim) is ``train.model.students``'
``StudentModelConfig``; this class adds what distillation needs: the loss weights (like the
teacher's ``lambda_*``), the soft-target temperature, extra unlabeled frames and the width of the
projector onto the teacher's AU tokens. Loaded with the one config loader (``train.coerce``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from train.coerce import SectionConfig
from train.model.students import StudentModelConfig

LOSS_WEIGHTS = ("w_hard", "w_soft", "w_pseudo", "w_feat", "w_rel", "w_intensity_soft", "w_intensity_hard")


@dataclass
class StudentConfig(StudentModelConfig, SectionConfig):
    """The student (``StudentModelConfig`` fields) and how it is distilled."""

    temperature: float = 2.0  # soft-target BCE temperature
    w_hard: float = 1.0  # masked BCE on labeled AUs
    w_soft: float = 1.0  # temperature-scaled BCE on teacher probabilities (every AU of every sample)
    w_pseudo: float = 0.5  # BCE on teacher pseudo-labels where the label is unknown (mask False)
    pseudo_confidence: float = 0.7  # a pseudo-label counts where max(p, 1-p) >= this
    w_feat: float = 1.0  # projected student tokens vs teacher AU tokens (forward_features)
    w_rel: float = 1.0  # AU x AU similarity matrices, student vs teacher
    # with model.intensity_head: L1 to the teacher's intensities (every AU of every sample) and to
    # the intensity labels where known (NaN elsewhere), both on the FACS 0-5 scale
    w_intensity_soft: float = 1.0
    w_intensity_hard: float = 1.0
    unlabeled: str = ""  # extra cache of unlabeled frames mixed in (e.g. the Pexels pairs cache)
    unlabeled_batch: int = 0  # frames of ``unlabeled`` added to every step (0 = none)
    distill_dim: int = 0  # teacher token width D (set from the teacher; 0 = no projector)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.temperature <= 0:
            raise ValueError(f"model.temperature must be > 0, got {self.temperature}")
        for f in LOSS_WEIGHTS:
            if getattr(self, f) < 0:
                raise ValueError(f"model.{f} must be >= 0, got {getattr(self, f)}")
        if self.unlabeled_batch < 0 or self.distill_dim < 0:
            raise ValueError(f"model.unlabeled_batch and model.distill_dim must be >= 0, got "
                             f"{self.unlabeled_batch} and {self.distill_dim}")
        if self.unlabeled_batch and not self.unlabeled:
            raise ValueError("model.unlabeled_batch > 0 needs model.unlabeled=CACHE_DIR")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
