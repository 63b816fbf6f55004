"""One synthetic v3 sample: mix -> posed render with the v3 look -> light -> occluders -> roll ->
camera, and the labels that survive all of it.

Order follows the scene: the light falls on the face, a hand or glasses sit in front of it (lit by
the room, so the colour cast and exposure come after them), the head rolls in the frame, and the
camera blurs, samples (at a lower resolution for a face further away), adds noise and compresses.
Labels: the render's (``facs.labels_for``: weight >= B, AU25 also when the lips part), an AU hidden
by an occluder becomes unknown, AU07 is unknown on a closed eye (a shut lid cannot show its
tightening), and on a smiling base ``bases.combine`` adds what the photo already shows. Flow keeps
its meaning (to the base photo) and is 0 on an occluder (it was there in the base frame too).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import Delaunay

from runtime.aus import au_name
from train.data.ict import camera
from train.data.ict.bases import base_labels, combine, combine_intensity, is_smiling
from train.data.ict.facs import IMPLIES, LABELLED_AUS, fac_intensity
from train.data.ict.mixes import Mix, draw_v3
from train.data.ict.model import ICTModel
from train.data.ict.occluders import SUNGLASSES_HIDE, draw_glasses, draw_hand, hidden_aus
from train.data.ict.options import ICTOptions
from train.data.ict.pose import roll_matrix, roll_scale, rotated_normals
from train.data.ict.projection import Correspondence
from train.data.ict.render import render_full


@dataclass
class BaseFace:
    """A base photo prepared once: its mesh, model fit and light triangulation."""

    path: Path
    photo: np.ndarray
    mesh: np.ndarray
    corr: Correspondence
    tri: Delaunay
    base: dict[str, int] | None   # ``bases.base_labels``: None = neutral

    @classmethod
    def of(cls, path: Path, photo: np.ndarray, mesh: np.ndarray, corr: Correspondence) -> BaseFace:
        return cls(Path(path), photo, mesh, corr, Delaunay(corr.positions), base_labels(path))

    @property
    def smiling(self) -> bool:
        return is_smiling(self.path)


@dataclass
class Composed:
    image: np.ndarray
    flow: np.ndarray
    points: np.ndarray
    labels: dict[str, int]        # known labels only
    intensity: dict[str, float]   # known FACS 0-5 intensities
    mix: Mix
    pose: tuple[float, float, float]  # yaw, pitch, roll (degrees)
    occluders: tuple[str, ...]
    hidden: tuple[int, ...]


def _intensities(mix: Mix, labels: dict[str, int]) -> dict[str, float]:
    eff = {a: mix.weights.get(a, 0.0) for a in LABELLED_AUS}
    for src, implied in IMPLIES.items():
        for a in implied:
            eff[a] = max(eff[a], mix.weights.get(src, 0.0))
    out = {au_name(a): fac_intensity(w) for a, w in eff.items()}
    if labels.get("AU25") == 1 and eff[25] == 0:
        del out["AU25"]  # parted by another AU (the lip rule): present, at no intensity we know
    return out


def compose_v3(face: BaseFace, rng: np.random.Generator, opts: ICTOptions, model: ICTModel) -> Composed:
    """Draw and render one v3 sample of ``face`` (every draw from ``rng``, in a fixed order)."""
    mix = draw_v3(rng, opts, face.smiling)
    posed = mix.kind == "negative" or rng.random() < opts.p_pose
    yaw = float(rng.uniform(-opts.max_yaw, opts.max_yaw)) if posed else 0.0
    pitch = float(rng.uniform(-opts.max_pitch, opts.max_pitch)) if posed else 0.0
    r = render_full(face.photo, face.mesh, mix.weights, rng, model=model, correspondence=face.corr,
                    sides=mix.sides, pose=(yaw, pitch), motion=mix.motion, version=3)
    image, flow, points = r.image, r.flow, r.moved_points
    labels = combine(r.labels, face.base)
    iod = float(np.linalg.norm(r.moved68[42:48].mean(0) - r.moved68[36:42].mean(0)))
    use_camera = rng.random() < opts.p_camera
    if use_camera and rng.random() < 0.7:
        normals = rotated_normals(model, yaw, pitch)[face.corr.vertices] @ face.corr.projection.rotation.T
        gain = camera.light_gain(image.shape[:2], face.tri, normals, rng, iod)
        image = np.clip(image.astype(np.float32) * gain[..., None], 0, 255).round().astype(np.uint8)
    cover = np.zeros(image.shape[:2], np.float32)
    occluders: list[str] = []
    hidden: set[int] = set()
    if rng.random() < opts.p_glasses:
        image, lens, sun = draw_glasses(image, r.moved68, rng)
        occluders.append("sunglasses" if sun else "glasses")
        if sun:
            cover = np.maximum(cover, lens)
            hidden |= set(SUNGLASSES_HIDE)
    if rng.random() < opts.p_hand:
        target = "mouth" if rng.random() < 0.6 else "eyes"
        image, alpha = draw_hand(image, r.moved68, target, rng)
        occluders.append(f"hand_{target}")
        cover = np.maximum(cover, alpha)
        hidden |= hidden_aus(alpha, r.moved68)
    if mix.weights.get(43, 0.0) >= 0.5:
        hidden.add(7)
    flow = flow * (cover < 0.5)[..., None]
    for a in hidden:
        labels.pop(au_name(a), None)
    roll = 0.0
    if rng.random() < opts.p_roll:
        roll = float(rng.uniform(-opts.max_roll, opts.max_roll))
        m = roll_matrix(r.moved68.mean(0), roll)
        image, flow, points, _ = roll_scale(image, flow, points, m)
    if use_camera:
        scale = float(rng.uniform(*opts.scale)) if rng.random() < 0.5 else 1.0
        image = camera.capture(image, rng, iod, scale)
    intensity = combine_intensity(_intensities(mix, labels), labels, face.base)
    intensity = {a: v for a, v in intensity.items() if a in labels}
    return Composed(image, flow, points, labels, intensity, mix, (yaw, pitch, roll), tuple(occluders),
                    tuple(sorted(hidden)))
