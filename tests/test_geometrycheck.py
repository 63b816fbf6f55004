"""``train.geometrycheck``: whether the face mesh adds AU evidence beyond a network's features.

The measures are checked on points placed by hand; the run measures the runtime's mesh on a tiny
cache of real London photos and fits both arms on a deploy-split run's own train/validation split.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from train.geometrycheck import (
    KEEP_MARGIN,
    geometry_features,
    inter_ocular,
    mouth_shape,
    verdict,
)

REPO = Path(__file__).resolve().parents[1]


def _face(corner_y: float, width: float) -> np.ndarray:
    """A 468-point mesh: eye corners 50 px apart (IOD 50), lips' centre at y 100, corners at ``corner_y``."""
    p = np.zeros((468, 2), np.float32)
    p[[33, 133]] = [[70, 50], [90, 50]]     # left eye centre (80, 50)
    p[[362, 263]] = [[120, 50], [140, 50]]  # right eye centre (130, 50)
    p[[13, 14]] = [[105, 98], [105, 102]]   # inner lips, centre y 100
    p[61], p[291] = [105 - width / 2, corner_y], [105 + width / 2, corner_y]
    p[[168, 6, 1]] = [[105, 50], [105, 60], [105, 70]]
    return p


def test_mouth_shape_in_inter_ocular_distances():
    pts = np.stack([_face(90.0, 40.0), _face(105.0, 50.0)])
    assert inter_ocular(pts) == pytest.approx([50.0, 50.0])
    shape = mouth_shape(pts)
    assert shape["corner_lift"] == pytest.approx([0.2, -0.1])  # 10 px above the centre, then 5 px below
    assert shape["width"] == pytest.approx([0.8, 1.0])


def test_geometry_is_the_same_for_a_moved_and_scaled_face():
    a = _face(92.0, 44.0)
    b = a * 2.5 + np.array([300.0, -40.0], np.float32)
    fa, fb = geometry_features(a[None]), geometry_features(b[None])
    assert fa.shape == (1, 2 * 74)
    assert np.allclose(fa, fb, atol=1e-5)
    # lip corner 61 sits 22 px left of and 32 px below the nose-points' centre (105, 60): (-0.44, 0.64) IOD
    assert np.allclose(fa[0, :2], [-0.44, 0.64], atol=1e-6)


def test_verdict_keeps_the_mesh_only_for_a_clear_gain_without_a_real_au12_loss():
    def rows(f, g, real_f=0.9, real_g=0.9):
        return {"AU01": {"features": f, "features+mesh": g},
                "AU12": {"features": f, "features+mesh": g, "features (real)": real_f, "features+mesh (real)": real_g}}

    assert verdict(rows(0.90, 0.90 + 2 * KEEP_MARGIN))["keep"]
    assert not verdict(rows(0.90, 0.90 + KEEP_MARGIN / 2))["keep"]
    assert not verdict(rows(0.90, 0.95, real_f=0.97, real_g=0.94))["keep"]  # real smiles read worse
    v = verdict(rows(0.90, 0.89))
    assert v["gain"] == pytest.approx(-0.01) and v["decision"].startswith("not kept")


@pytest.mark.slow
def test_a_run_measures_the_mesh_on_the_cache_and_reports_both_arms(deploy_run, data_dir, tmp_path):
    ckpt = deploy_run
    out = tmp_path / "geometry"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AU_DATA_DIR": str(data_dir)}
    proc = subprocess.run([sys.executable, "-m", "train.geometrycheck", "--checkpoint", str(ckpt), "--out", str(out),
                           "--threads", "1"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "geometrycheck.json").read_text())
    rows = report["rows"]
    assert rows["train"] > rows["val"] > 0 and rows["train"] + rows["val"] < 48  # the test split stays unread
    assert report["rows"]["without_mesh"]["train"] + report["rows"]["without_mesh"]["val"] <= 2  # real photos
    au12 = report["per_au"]["AU12"]  # smiling vs neutral photos: both classes in both splits
    assert au12["real_val_rows"] > 0
    for arm in ("features", "features+mesh", "features (real)", "features+mesh (real)"):
        assert 0.0 <= au12[arm] <= 1.0
    assert report["keep"] == (report["gain"] >= KEEP_MARGIN
                              and au12["features+mesh (real)"] >= au12["features (real)"])
    assert "clip_mouth" not in report  # this cache has no clip frames
    assert report["decision"] in proc.stdout


def test_bad_threads_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "train.geometrycheck", "--checkpoint", str(tmp_path / "x.pt"),
                           "--out", str(tmp_path), "--threads", "0"], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 2
    assert "--threads" in proc.stderr and "0 is out of range" in proc.stderr and "Traceback" not in proc.stderr
