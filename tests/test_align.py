"""The one alignment: 5 points onto the template, the crop and its matrix agree."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from runtime.align import (align_face, alignment_matrix, five_points, invert_affine, similarity_transform,
                           template_points, transform_points)
from runtime.landmarks import MESH_FIVE


def _random_similarity(rng) -> np.ndarray:
    angle, scale = rng.uniform(-0.6, 0.6), rng.uniform(0.4, 3.0)
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    return np.array([[c, -s, rng.uniform(50, 400)], [s, c, rng.uniform(50, 300)]])


@pytest.mark.parametrize("seed", range(5))
def test_similarity_recovers_a_known_transform(seed):
    rng = np.random.default_rng(seed)
    src = rng.uniform(0, 100, (5, 2))
    m = _random_similarity(rng)
    dst = src @ m[:, :2].T + m[:, 2]
    assert np.allclose(similarity_transform(src, dst), m, atol=1e-9)


@pytest.mark.parametrize("crop_size,out_size", [(256, None), (112, None), (256, 112)])
def test_eyes_land_on_the_template_in_the_pixels(crop_size, out_size):
    """Draw the 5 points as dots in a rotated, scaled face; after alignment the dots' centroids
    sit on the template within a pixel (this checks the warp, not only the matrix)."""
    rng = np.random.default_rng(7)
    size = out_size or crop_size
    tmpl_src = template_points(100)  # a face 100 px wide, then moved/rotated/scaled into a frame
    m = _random_similarity(rng)
    m[:, :2] /= np.sqrt(abs(np.linalg.det(m[:, :2])))  # keep the dots resolvable: scale 1
    m[:, :2] *= 2.5
    pts = tmpl_src @ m[:, :2].T + m[:, 2]
    frame = np.zeros((720, 960), np.uint8)
    for x, y in pts:
        cv2.circle(frame, (int(round(x * 16)), int(round(y * 16))), 5 * 16, 255, -1, cv2.LINE_AA, shift=4)
    crop, mat = align_face(frame, pts, crop_size=crop_size, out_size=out_size)
    assert crop.shape == (size, size)
    # out_size: where cv2.resize of the crop_size crop puts the template (pixel centres:
    # u_out = (u + 0.5) * s - 0.5), which is what the training loader feeds the model.
    s = size / crop_size
    want = template_points(crop_size) * s + (s - 1) / 2
    assert np.abs(transform_points(pts, mat) - want).max() < 1e-6
    n, labels, stats, cents = cv2.connectedComponentsWithStats((crop > 40).astype(np.uint8))
    assert n - 1 == 5
    for w in want:
        d = np.linalg.norm(cents[1:] - w, axis=1).min()
        assert d < 1.0, (w, d)


def test_five_points_from_schemes():
    mesh = np.random.default_rng(0).uniform(0, 100, (478, 3))
    five = five_points(mesh)
    assert five.shape == (5, 2)
    assert np.allclose(five[2], mesh[1, :2]) and np.allclose(five[3], mesh[61, :2])
    assert np.allclose(five_points(mesh[:468]), five)
    ibug = np.random.default_rng(1).uniform(0, 100, (68, 2))
    assert np.allclose(five_points(ibug)[0], ibug[36:42].mean(0))
    with pytest.raises(ValueError, match="no 5-point scheme for 7"):
        five_points(np.zeros((7, 2)))


def test_inverse_and_named_templates():
    pts = template_points(300, scale=0.8) + 12.5
    m = alignment_matrix(pts, 112, "arcface")
    back = transform_points(transform_points(pts, m), invert_affine(m))
    assert np.allclose(back, pts)
    with pytest.raises(ValueError, match="unknown alignment template"):
        template_points(112, "nope")


def test_five_points_are_the_scheme_means():
    mesh = np.random.default_rng(3).uniform(0, 500, (478, 3))
    want = np.array([mesh[list(idx), :2].mean(axis=0) for idx in MESH_FIVE])
    assert np.allclose(five_points(mesh), want, atol=1e-9)


def _real_face(data_dir, zoom: float) -> tuple[np.ndarray, np.ndarray]:
    """A Pexels clip frame (optionally enlarged) and its face's 5 points, from the face stage."""
    from runtime.face import FaceStage

    cap = cv2.VideoCapture(str(data_dir / "media" / "WolfgangLanger_Pexels.mp4"))
    ok, bgr = cap.read()
    cap.release()
    assert ok
    rgb = cv2.cvtColor(cv2.resize(bgr, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC), cv2.COLOR_BGR2RGB)
    with FaceStage(face_model=str(data_dir / "models" / "mediapipe-0.10.21"), max_faces=1) as stage:
        face = stage.detect(rgb)[0]
    return rgb, face.points5


@pytest.mark.data
@pytest.mark.parametrize("zoom", [1.0, 0.3, 3.0])
def test_one_warp_matches_crop_then_resize(data_dir, zoom):
    """align_face(out_size=112) warps straight to 112 px; it must look like what training sees:
    the 256-px crop (the cache) area-resized to 112 (the loader). Mean |difference| in 8-bit
    levels, measured 0.86 (a 217-px face, 2x supersampled), 1.00 (a 65-px face, one warp) and
    0.99 (a 650-px face, 2x supersampled); p99 6-9 levels."""
    rgb, p5 = _real_face(data_dir, zoom)
    crop, m = align_face(rgb, p5, 256, out_size=112)
    big, m_big = align_face(rgb, p5, 256)
    want = cv2.resize(big, (112, 112), interpolation=cv2.INTER_AREA)
    diff = np.abs(crop.astype(np.int16) - want.astype(np.int16))
    assert diff.mean() < 1.5, diff.mean()
    assert np.percentile(diff, 99) < 14
    s = 112 / 256
    assert np.allclose(transform_points(p5, m), transform_points(p5, m_big) * s + (s - 1) / 2)


def _umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Umeyama (1991) by SVD with the reflection fix: the textbook form, to check the closed form."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.array([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rot = u @ np.diag(sign) @ vt
    k = (sig * sign).sum() / ((s ** 2).sum() / len(src))
    return np.concatenate([k * rot, (mu_d - k * rot @ mu_s)[:, None]], axis=1)


@pytest.mark.parametrize("seed", range(20))
def test_closed_form_similarity_is_umeyamas_least_squares(seed):
    """Noisy and even mirrored point pairs (no exact similarity exists): the same answer."""
    rng = np.random.default_rng(100 + seed)
    src = rng.uniform(0, 100, (5, 2))
    dst = rng.uniform(0, 100, (5, 2)) if seed % 2 else src[:, ::-1] * 1.7 + rng.normal(0, 2, (5, 2))
    assert np.allclose(similarity_transform(src, dst), _umeyama(src, dst), atol=1e-9)
