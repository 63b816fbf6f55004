"""What every dataset reader returns: one ``FrameRecord`` per labelled frame, plus the reader's AU
list and its counted skips (``ReadResult``).

Labels are kept as arrays aligned with ``ReadResult.aus`` so the cache copies them without lookups;
``mask`` False means *unknown* (the dataset did not code the AU there), never negative.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from runtime.card import LABEL_KINDS  # the one home of the label kinds (model cards carry them)

__all__ = ["LABEL_KINDS", "FrameRecord", "ReadResult"]


@dataclass(eq=False, slots=True)
class FrameRecord:
    """One labelled frame: a still image (``image_path``) or frame ``video_index`` of ``video_path``.

    ``frame`` is the frame number as the dataset numbers it (BP4D image name, DISFA 1-based line,
    Aff-Wild2 image number); ``video_index`` is the 0-based index into the video file.
    ``au_kinds`` optionally gives a label kind per AU (a photo with a real AU12 and silver others);
    when None every AU has ``label_kind``. ``sequence``: ``image_path`` is frame ``frame`` of a
    numbered image sequence (BP4D, GFT, Aff-Wild2: one folder per sequence, images named by frame
    number), so the cache can read frame ``frame - k`` beside it for the flow target.
    """

    dataset: str
    subject: str
    video: str
    frame: int
    image_path: str | None
    video_path: str | None
    video_index: int | None
    labels: np.ndarray  # float32 (n_aus,) 0/1
    mask: np.ndarray  # bool (n_aus,), False = unknown
    intensity: np.ndarray | None  # float32 (n_aus,), NaN = unknown; None when the dataset has none
    label_kind: str = "real"
    au_kinds: tuple[str, ...] | None = None
    sequence: bool = False

    def __post_init__(self):
        if self.label_kind not in LABEL_KINDS:
            raise ValueError(f"label_kind {self.label_kind!r} is not one of {LABEL_KINDS}")
        if (self.image_path is None) == (self.video_path is None):
            raise ValueError("a FrameRecord needs exactly one of image_path and video_path")
        if self.labels.shape != self.mask.shape:
            raise ValueError(f"labels {self.labels.shape} and mask {self.mask.shape} differ in shape")


@dataclass
class ReadResult:
    """A reader's output: records whose label arrays follow ``aus`` (``AU01`` names), and the
    frames it left out, counted by reason (``{"missing_image": 3}``)."""

    dataset: str
    aus: list[str]
    records: list[FrameRecord]
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def subjects(self) -> list[str]:
        return sorted({r.subject for r in self.records})
