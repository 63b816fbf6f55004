"""Synthetic FACS expressions: real neutral faces warped by per-AU landmark displacement templates.

Why: labelled AU data is scarce and licensed; warping the 82 open London neutral faces gives
exact, dense supervision (AU intensities, landmarks and the true flow) for any AU mix.

How: the AU intensities move the 189 FRL landmarks (``synth_templates``), and a piecewise-affine
warp over a Delaunay triangulation of the landmarks plus a fixed ring of points outside the frame
carries the pixels along (``synth_warp``); an optional similarity transform (pose jitter) is
composed into the same warp, so the neutral image is resampled once. Wrinkle shading and
photometric changes come after (``synth_appearance``). This module renders and samples.

Flow conventions (the same as ``train.data.flow``), for an output pixel grid ``(x, y)``:

- ``backward_map[y, x]`` = the absolute neutral-image position that output pixel ``(x, y)``
  shows. The render *is* ``cv2.remap(neutral, backward_map, None, cv2.INTER_LINEAR,
  borderMode=cv2.BORDER_REFLECT101)``, bit-exactly, when ``shading=False`` and
  ``photometric=None``; otherwise shading and photometry are applied on top of that remap.
- ``flow[y, x]`` = where the neutral pixel ``(x, y)`` moves: it lands at ``(x, y) + flow[y, x]``
  in the render (so ``neutral(p) ~ render(p + flow(p))``, what ``dis_flow(neutral, render)``
  estimates). ``flow`` and ``backward_map`` are inverse piecewise-affine maps on the same
  triangles: ``p + flow(p)`` sampled (bilinearly) at ``p = backward_map(q)`` gives ``q`` back to
  ~0.001 px (median); only where a thin band is stretched a lot (parted lips, the closing lid
  fold) does the sampling of the fast-changing flow leave errors of up to a few pixels.

Labels: ``labels[AU] = 1`` when the rendered intensity is at least 1 (FACS A, trace) - the
occurrence rule of BP4D/GFT-style coding; intensities in (0, 1) count as absent.
"""
from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial import Delaunay

from runtime.align import align_face, transform_points
from runtime.aus import au_name, au_number
from train.data.synth_appearance import (
    Photometric,
    apply_photometric,
    draw_photometric,
    shade,
)
from train.data.synth_templates import (
    EXCLUSIVE,
    IMPLIES,
    MAX_INTENSITY,
    OCCURRENCE_THRESHOLD,
    SYNTH_AUS,
    TEMPLATES,
)
from train.data.synth_warp import (
    control_points,
    displacements,
    fold_free,
    grid,
    piecewise_map,
    pwa_points,
)
from train.data.tem import list_faces, load_face, tem_five_points

LABEL_KIND = "synthetic"
STATIC_AUS: tuple[int, ...] = tuple(a for a in SYNTH_AUS if a != 45)  # a blink needs a clip, not a still


@dataclass(frozen=True)
class PoseJitter:
    """Ranges of a random similarity transform about the face centre (uniform in +-range)."""

    rotation_deg: float = 3.0
    scale: float = 0.04   # relative
    shift: float = 0.02   # fraction of the image side

    def __post_init__(self) -> None:
        for name in ("rotation_deg", "scale", "shift"):
            if not 0 <= getattr(self, name) <= (30 if name == "rotation_deg" else 0.2):
                raise ValueError(f"PoseJitter.{name}={getattr(self, name)!r} out of range")


@dataclass
class SynthSample:
    """One render. Arrays are HxW of the output; see the module docstring for the flow maps."""

    image: np.ndarray            # HxWx3 uint8 BGR, the expressive face
    neutral: np.ndarray          # HxWx3 uint8 BGR, the source the maps refer to
    intensities: dict[str, float]  # every synthesizable AU -> rendered intensity in [0, 5]
    labels: dict[str, int]       # occurrence: 1 where intensity >= OCCURRENCE_THRESHOLD (1, FACS A)
    landmarks: np.ndarray        # 189x2 float32, warped FRL points in output pixels
    landmarks5: np.ndarray       # 5x2 float32, runtime 5-point order
    flow: np.ndarray             # HxWx2 float32, forward: neutral (x, y) -> (x, y) + flow
    backward_map: np.ndarray     # HxWx2 float32, absolute neutral position per output pixel
    face_id: str = ""
    label_kind: str = LABEL_KIND
    warp_scale: float = 1.0      # < 1 where all displacements (and intensities) were scaled down
    damped_points: int = 0       # control points whose displacement was damped to avoid a fold
    pose: np.ndarray = field(default_factory=lambda: np.eye(2, 3))  # 2x3 similarity applied


# --------------------------------------------------------------------------- random draws

def _draw_pose(rng: np.random.Generator, pose: PoseJitter | None) -> np.ndarray:
    """(angle_deg, scale, tx, ty) of a jitter draw; zeros/one without jitter."""
    if pose is None:
        return np.array([0.0, 1.0, 0.0, 0.0])
    r = rng.uniform(-1, 1, 4)
    return np.array([r[0] * pose.rotation_deg, 1 + r[1] * pose.scale, r[2] * pose.shift, r[3] * pose.shift])


def _pose_matrix(params: np.ndarray, centre: np.ndarray, size: int) -> np.ndarray:
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(params[0]), float(params[1]))
    m[:, 2] += params[2:] * size
    return m


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _levels(intensities: Mapping[str | int, float]) -> dict[int, float]:
    return {au_number(k): float(v) for k, v in intensities.items() if float(v) != 0.0}


def _labelled(levels: Mapping[int, float]) -> tuple[dict[str, float], dict[str, int]]:
    """Intensities of every synthesizable AU (implied AUs raised) and their occurrence labels."""
    full = {a: float(levels.get(a, 0.0)) for a in SYNTH_AUS}
    for a, implied in IMPLIES.items():
        for b in implied:
            full[b] = max(full[b], full[a])
    return ({au_name(a): v for a, v in full.items()},
            {au_name(a): int(v >= OCCURRENCE_THRESHOLD) for a, v in full.items()})


# --------------------------------------------------------------------------- rendering

def prepare_face(image: np.ndarray, points: np.ndarray, crop_size: int | None = None,
                 template: str = "default", scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The neutral image and its points, either as they are or aligned into a square crop with the
    runtime's own alignment (so renders match what the model sees)."""
    points = np.asarray(points, dtype=np.float64)
    if crop_size is None:
        return image, points
    crop, m = align_face(image, tem_five_points(points), crop_size, template, scale)
    return crop, transform_points(points, m)


def _render(neutral: np.ndarray, points: np.ndarray, levels: dict[int, float], pose: np.ndarray,
            photo: np.ndarray | None, shading: bool, rng: np.random.Generator, face_id: str) -> SynthSample:
    h, w = neutral.shape[:2]
    src, keep = control_points(points, (h, w))
    tri = Delaunay(src)
    disp = np.zeros_like(src)
    disp[: len(keep)] = displacements(points, levels)[keep]
    disp, damped, scale = fold_free(src, disp, tri.simplices)
    if scale < 1.0:
        levels = {a: v * scale for a, v in levels.items()}
    dst = transform_points(src + disp, pose)
    backward = piecewise_map(dst, src, tri.simplices, cv2.invertAffineTransform(pose), (h, w))
    forward = piecewise_map(src, dst, tri.simplices, pose, (h, w)) - grid(h, w)
    image = cv2.remap(neutral, backward, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    landmarks = pwa_points(tri, dst, points).astype(np.float32)
    if shading:
        image = shade(image, landmarks, levels)
    if photo is not None:
        image = apply_photometric(image, photo, rng)
    intens, labels = _labelled(levels)
    return SynthSample(image=image, neutral=neutral, intensities=intens, labels=labels,
                       landmarks=landmarks, landmarks5=tem_five_points(landmarks).astype(np.float32),
                       flow=forward, backward_map=backward, face_id=face_id, warp_scale=scale,
                       damped_points=damped, pose=pose)


def render_face(neutral: np.ndarray, points: np.ndarray, intensities: Mapping[str | int, float], *,
                rng: np.random.Generator | int | None = None, pose: PoseJitter | None = None,
                photometric: Photometric | None = None, shading: bool = False,
                face_id: str = "") -> SynthSample:
    """Render one neutral face with the given AU intensities.

    Args:
        neutral: HxWx3 uint8 BGR neutral face (full photo or aligned crop, see ``prepare_face``).
        points: its 189 FRL landmarks (Nx2 pixels).
        intensities: AU (``"AU12"`` or ``12``) -> intensity in [0, 5]; absent AUs are 0.
        rng: Generator or seed for the pose and photometric draws (the warp itself is not random).
        pose: similarity jitter ranges, or None for none.
        photometric: brightness/contrast/gamma/noise ranges, or None for none.
        shading: draw wrinkles (AU4 glabella, AU6 crow's feet, AU9 nose bridge, AU10/12 nasolabial,
            AU14 dimples) and darken the opening of parted lips.
        face_id: carried into the sample.

    Returns:
        A ``SynthSample``; with ``shading=False`` and ``photometric=None`` its image equals
        ``cv2.remap(neutral, backward_map, None, INTER_LINEAR, borderMode=BORDER_REFLECT101)``.

    Raises:
        ValueError: unknown AU, intensity outside [0, 5], or not 189 points.
    """
    rng = _as_rng(rng)
    pts = np.asarray(points, dtype=np.float64)[:, :2]
    params = _draw_pose(rng, pose)
    m = _pose_matrix(params, tem_five_points(pts).mean(0), max(neutral.shape[:2]))
    return _render(neutral, pts, _levels(intensities), m, draw_photometric(rng, photometric),
                   shading, rng, face_id)


def sample_intensities(rng: np.random.Generator, aus: Sequence[int | str] = STATIC_AUS,
                       max_active: int = 3, p_neutral: float = 0.1,
                       low: float = OCCURRENCE_THRESHOLD, high: float = MAX_INTENSITY) -> dict[int, float]:
    """A random AU mix: 1..``max_active`` AUs (none with probability ``p_neutral``) with
    intensities uniform in [low, high], never two AUs of one ``EXCLUSIVE`` set."""
    pool = [au_number(a) for a in aus]
    if p_neutral >= 1 or rng.random() < p_neutral or not pool:
        return {}
    want = int(rng.integers(1, max_active + 1))
    chosen: dict[int, float] = {}
    for a in rng.permutation(pool):
        if len(chosen) == want:
            break
        if any(a in ex and chosen.keys() & ex for ex in EXCLUSIVE):
            continue
        chosen[int(a)] = float(rng.uniform(low, high))
    return chosen


def render_dataset(faces_dir: str | Path, n: int, seed: int, aus: Sequence[int | str] = STATIC_AUS, *,
                   crop_size: int | None = 256, max_active: int = 3, p_neutral: float = 0.1,
                   pose: PoseJitter | None = PoseJitter(), photometric: Photometric | None = Photometric(),
                   shading: bool = True, low: float = OCCURRENCE_THRESHOLD,
                   exclude: Collection[str] = ()) -> Iterator[SynthSample]:
    """``n`` random renders over the neutral faces (``NNN.jpg`` + ``NNN.tem``) in ``faces_dir``,
    leaving out the face ids in ``exclude`` (e.g. the held-out identities, ``train.data.holdout``).

    Sample ``i`` depends only on ``(seed, i)``, so workers can split the range and reruns match.
    ``crop_size`` aligns every face with the runtime's default template first (None: full photo).
    ``low`` is the smallest intensity an active AU gets (FACS A = 1; smoke runs use clearer ones).

    Raises:
        FileNotFoundError: no faces in ``faces_dir``. ValueError: ``n < 0`` or an unknown AU.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    for a in aus:
        if au_number(a) not in TEMPLATES:
            raise ValueError(f"no synthesis template for {au_name(au_number(a))}")
    faces = [f for f in list_faces(faces_dir) if f.face_id not in set(exclude)]  # checked now, not at next()
    if not faces:
        raise FileNotFoundError(f"every face in {faces_dir} is excluded; nothing to render")
    return _dataset(faces, n, seed, [au_number(a) for a in aus], crop_size, max_active, p_neutral,
                    pose, photometric, shading, low)


def _dataset(faces: list, n: int, seed: int, aus: list[int], crop_size: int | None, max_active: int,
             p_neutral: float, pose: PoseJitter | None, photometric: Photometric | None,
             shading: bool, low: float = OCCURRENCE_THRESHOLD) -> Iterator[SynthSample]:
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for i in range(n):
        rng = np.random.default_rng((seed, i))
        k = int(rng.integers(len(faces)))
        if k not in cache:
            image, points = prepare_face(*load_face(faces[k]), crop_size=crop_size)
            image.setflags(write=False)  # shared by every sample of this face
            cache[k] = image, points
        levels = sample_intensities(rng, aus, max_active, p_neutral, low=low)
        yield render_face(*cache[k], levels, rng=rng, pose=pose, photometric=photometric,
                          shading=shading, face_id=faces[k].face_id)
