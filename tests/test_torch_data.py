"""Train/serve parity of the model input: the training view of a cached crop is resized the way
the runtime resizes (``runtime.align.align_face(out_size=...)``), with and without jitter."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from runtime.align import align_face, resize_matrix, template_points
from runtime.face import FaceStage
from train.data.torch_data import to_input

CROP, SIZE = 256, 64


@pytest.fixture(scope="module")
def face(data_dir, face_model):
    rgb = cv2.cvtColor(cv2.imread(str(data_dir / "london" / "neutral" / "001.jpg")), cv2.COLOR_BGR2RGB)
    with FaceStage(face_model=face_model, max_faces=1) as stage:
        points5 = stage.detect(rgb)[0].points5
    return rgb, points5


def _similarity(rng: np.random.Generator) -> np.ndarray:
    """A crop->crop similarity like training's jitter (rotation, scale, shift about the centre)."""
    a, s = np.deg2rad(rng.uniform(-8, 8)), rng.uniform(0.93, 1.07)
    c = (CROP - 1) / 2
    m = np.array([[np.cos(a) * s, -np.sin(a) * s, 0], [np.sin(a) * s, np.cos(a) * s, 0]])
    m[:, 2] = np.array([c, c]) + rng.uniform(-0.04, 0.04, 2) * CROP - m[:, :2] @ np.array([c, c])
    return m


def test_unjittered_training_input_is_the_runtime_input_within_a_grey_level(face):
    """The cached crop resized (training) vs the frame warped straight to the input (runtime)."""
    rgb, points5 = face
    crop, _ = align_face(rgb, points5, CROP)
    served, _ = align_face(rgb, points5, CROP, out_size=SIZE)
    diff = np.abs(to_input(crop, None, SIZE).astype(int) - served.astype(int))
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 10, (diff.mean(), np.percentile(diff, 99))


def test_jittered_training_input_matches_the_runtime_within_tolerance(face):
    """Jitter J on the cached crop vs the runtime aligning the photo straight to J∘M: equal up to the
    extra resampling of the crop; warping the 256-px crop straight to 64 px with bilinear and no
    prefilter (the old training path) is several times further off."""
    rgb, points5 = face
    crop, m = align_face(rgb, points5, CROP)
    inner = (slice(12, SIZE - 12), slice(12, SIZE - 12))  # away from the crop's black border
    rng = np.random.default_rng(0)
    for _ in range(4):
        j = _similarity(rng)
        jm = np.vstack([j, [0, 0, 1]]) @ np.vstack([m, [0, 0, 1]])
        # the 5 points that the runtime's alignment maps exactly onto the template through J∘M
        src = cv2.invertAffineTransform(jm[:2])
        pts = template_points(CROP) @ src[:, :2].T + src[:, 2]
        served, got_m = align_face(rgb, pts, CROP, out_size=SIZE)
        assert np.allclose(got_m, resize_matrix(jm[:2], CROP, SIZE), atol=1e-6)
        new = to_input(crop, j, SIZE).astype(float)
        old = cv2.warpAffine(crop, resize_matrix(j, CROP, SIZE), (SIZE, SIZE), flags=cv2.INTER_LINEAR).astype(float)
        err_new = np.abs(new - served)[inner].mean()
        err_old = np.abs(old - served)[inner].mean()
        assert err_new < 2.0, err_new
        assert err_old > 2 * err_new, (err_old, err_new)
