"""Result objects of the runtime: plain dataclasses of lists, dicts and numpy arrays.

"No face" is an empty ``faces`` list, never ``None``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def shown_prob(p: float) -> float:
    """A probability as the outputs write it (4 decimals), never rounded across 0.5: ``au_prob`` is
    calibrated so that 0.5 is every AU's decision point, and an AU that is off at 0.49996 must not
    read 0.5 in a JSONL or CSV file."""
    r = round(float(p), 4)
    return 0.4999 if p < 0.5 <= r else r


@dataclass
class FaceAU:
    """One tracked face and its AUs, in pixels of the source frame."""

    track_id: int
    bbox: tuple[float, float, float, float]  # x, y, w, h
    score: float
    landmarks5: np.ndarray  # 5x2: right eye, left eye, nose tip, right/left mouth corner (aligned on)
    au_prob: dict[str, float]
    au_active: set[str]
    # Dense mesh (N x 3), when the face stage has it; in video mode One Euro-smoothed (the points
    # the crop was aligned on), in image mode as the mesh gave it.
    landmarks: np.ndarray | None = None
    # Head pose from the mesh (runtime.head_pose): pitch, yaw, roll in degrees; tx, ty, tz in
    # centimetres of the canonical face. None where not computed.
    head_pose: dict[str, float] | None = None
    # AU intensity 0-5, only from an engine that outputs intensity (never derived from au_prob).
    au_intensity: dict[str, float] | None = None
    # Whether the landmarks (and head pose, AU45) are this frame's mesh run; False on a frame that
    # optical flow followed (AUDetector(mesh_every=N > 1)): the last run's, moved with the head.
    meshed: bool = True

    def to_json(self) -> dict:
        out = {
            "track_id": int(self.track_id),
            "bbox": [round(float(v), 2) for v in self.bbox],
            "score": round(float(self.score), 4),
            "landmarks5": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks5[:, :2]],
            "au_prob": {k: shown_prob(v) for k, v in self.au_prob.items()},
            "au_active": sorted(self.au_active),
        }
        # Optional keys (CONTRACTS.md): written only when present, and only finite values (strict JSON).
        intensity = {k: round(float(v), 3) for k, v in (self.au_intensity or {}).items() if math.isfinite(v)}
        if intensity:
            out["au_intensity"] = intensity
        if self.head_pose and all(math.isfinite(v) for v in self.head_pose.values()):
            out["head_pose"] = {k: round(float(v), 2) for k, v in self.head_pose.items()}
        return out


@dataclass
class FrameResult:
    """Everything the runtime knows about one frame."""

    frame: int
    time_s: float
    faces: list[FaceAU] = field(default_factory=list)
    latency_ms: float = 0.0
    stages_ms: dict[str, float] = field(default_factory=dict)  # face, align, au, post
    source: str = ""
    # Faces the detector found in this frame but not processed because max_faces were held
    # (counted on frames where the detector ran: every image in image mode; in video mode when
    # a face is missing, or every detect_every frames). None: no cap applied (max_faces=None).
    faces_beyond_max: int | None = None

    def to_json(self) -> dict:
        """The JSONL record of the project CONTRACTS.md."""
        return {
            "frame": int(self.frame),
            "time_s": round(float(self.time_s), 4),
            "source": self.source,
            "latency_ms": round(float(self.latency_ms), 3),
            "faces": [f.to_json() for f in self.faces],
        } | ({} if self.faces_beyond_max is None else {"faces_beyond_max": int(self.faces_beyond_max)})


@dataclass(frozen=True)
class SkippedFile:
    """A file of an image folder that was not processed: its place in the folder's numbering, its
    name and why (``unreadable_image``: not decodable; ``not_image``: no image suffix, no frame)."""

    frame: int | None
    time_s: float | None
    source: str
    reason: str

    def to_json(self) -> dict:
        """The JSONL record of a skipped file: the frame's keys, ``skipped`` and no faces."""
        time_s = None if self.time_s is None else round(float(self.time_s), 4)
        return {"frame": self.frame, "time_s": time_s, "source": self.source, "skipped": self.reason, "faces": []}
