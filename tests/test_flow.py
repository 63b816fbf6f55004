"""DIS flow targets: direction convention, compact storage, pair indices, and real video."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from train.data.flow import (
    dis_flow,
    downsample_flow,
    flow_target,
    pair_indices,
    photometric_error,
    upsample_flow,
    warp_by_flow,
)

VIDEO = "media/WolfgangLanger_Pexels.mp4"
CROP = (slice(60, 316), slice(300, 556))  # a fixed 256 px box around the face in this clip
MARGIN = 16                               # pixels per side left out of photometric errors


def _texture(h: int = 128, w: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (h // 4, w // 4)).astype(np.float32)
    return cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)


def test_pair_indices():
    np.testing.assert_array_equal(pair_indices(10, 3, 2), [[0, 3], [2, 5], [4, 7], [6, 9]])
    np.testing.assert_array_equal(pair_indices(4, 3), [[0, 3]])
    assert pair_indices(2, 3).shape == (0, 2)
    for bad in ((10, 0, 1), (10, 1, 0), (-1, 1, 1)):
        with pytest.raises(ValueError):
            pair_indices(*bad)


def test_down_and_upsample_keep_pixels_consistent():
    flow = np.zeros((64, 48, 2), np.float32)
    flow[..., 0], flow[..., 1] = 2.0, -1.0
    small = downsample_flow(flow, 4)
    assert small.dtype == np.float16 and small.shape == (16, 12, 2)
    np.testing.assert_allclose(small[..., 0], 0.5)
    np.testing.assert_allclose(small[..., 1], -0.25)
    np.testing.assert_allclose(upsample_flow(small, (64, 48)), flow, atol=1e-3)
    with pytest.raises(ValueError):
        downsample_flow(flow, 5)


def test_direction_convention_on_a_known_shift():
    a = _texture()
    b = np.roll(a, 3, axis=1)  # b(x) = a(x - 3): content moved 3 px to the right
    flow = dis_flow(a, b)
    inner = flow[MARGIN:-MARGIN, MARGIN:-MARGIN]
    assert abs(np.median(inner[..., 0]) - 3.0) < 0.2 and abs(np.median(inner[..., 1])) < 0.2
    assert photometric_error(a, warp_by_flow(b, flow), MARGIN) < 0.25 * photometric_error(a, b, MARGIN)


def test_bad_inputs():
    a = _texture()
    with pytest.raises(ValueError):
        dis_flow(a, a, preset="slowest")
    with pytest.raises(ValueError):
        dis_flow(a, a[:64])
    with pytest.raises(ValueError):
        warp_by_flow(a, np.zeros((10, 10, 2), np.float32))


def _frames(path: str, wanted: tuple[int, ...]) -> dict[int, np.ndarray]:
    cap = cv2.VideoCapture(path)
    out: dict[int, np.ndarray] = {}
    try:
        for i in range(max(wanted) + 1):
            ok, frame = cap.read()
            assert ok, f"could not decode frame {i} of {path}"
            if i in wanted:
                out[i] = frame[CROP]
    finally:
        cap.release()
    return out


@pytest.mark.data
def test_dis_target_on_real_video_reduces_photometric_error(data_dir):
    k = 3
    frames = _frames(str(data_dir / VIDEO), (100, 100 + k, 300, 300 + k))
    for t in (100, 300):
        a, b = frames[t], frames[t + k]
        stored = flow_target(a, b, factor=4)
        assert stored.dtype == np.float16 and stored.shape == (64, 64, 2)
        flow = upsample_flow(stored, a.shape[:2])
        before = photometric_error(a, b, MARGIN)
        after = photometric_error(a, warp_by_flow(b, flow), MARGIN)
        assert before > 5.0, "the chosen frames should contain motion"
        assert after < 0.5 * before, (t, before, after)
