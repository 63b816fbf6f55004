"""``python -m train.evidence`` (occlusion maps) and ``AUDetector.aligned_crop``, on real faces with
the shipped model. Only photos outside the held-out identities are used (train/data/holdout.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from faults import only_line_error

from runtime.detector import AUDetector
from train.data.holdout import is_held_out
from train.evidence import BANDS, band_edges, band_shares, parse_frames, patch_boxes

SMILING = ("003", "005", "007")  # London identities that are not held out
CLIP = "WolfgangLanger_Pexels.mp4"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def smiling(data_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("smiling")
    for face_id in SMILING:
        assert not is_held_out("london", face_id)
        photo = data_dir / "london" / "smiling" / f"{face_id}.jpg"
        assert photo.is_file(), photo
        (folder / photo.name).symlink_to(photo)
    return folder


def evidence(*args, face_model: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "train.evidence", *map(str, args), "--face-model", face_model,
                           "--threads", "1"], capture_output=True, text=True, timeout=300, env=ENV, check=False)


def test_aligned_crop_is_what_the_engine_read(smiling, face_model):
    with AUDetector("default", mode="image", face_model=face_model, threads=1) as det:
        frame = cv2.imread(str(smiling / "003.jpg"))
        face = det.process(frame).faces[0]
        crop = det.aligned_crop(frame, face.landmarks5)
        assert crop.shape == (*det.engine.input_size, 3)
        again = det.engine.infer(np.ascontiguousarray(crop)[None])[0]
    assert np.allclose(again, [face.au_prob[a] for a in det.aus], atol=1e-6)


def test_the_smile_is_found_at_the_mouth_and_the_brow_lowerer_above_the_nose(smiling, media, face_model, tmp_path):
    photos = evidence("--source", smiling, "--au", "AU12", "--out", tmp_path / "photos", face_model=face_model)
    assert photos.returncode == 0, photos.stderr
    report = json.loads((tmp_path / "photos" / "evidence.json").read_text())
    assert report["frames"] == len(SMILING) and report["mode"] == "image"
    au12 = report["aus"]["AU12"]
    assert au12["mean_prob"] > 0.9 and au12["bands"]["mouth"] > 0.6, au12["bands"]
    assert (tmp_path / "photos" / "evidence_AU12.png").is_file() and "| AU12 |" in photos.stdout
    # the clip's grief (frames 16-48): the brow lowerer is read from the brows and eyes, not the mouth
    sad = evidence("--source", media / CLIP, "--frames", "16-48", "--step", "8", "--au", "AU04",
                   "--out", tmp_path / "sad", face_model=face_model)
    assert sad.returncode == 0, sad.stderr
    au04 = json.loads((tmp_path / "sad" / "evidence.json").read_text())["aus"]["AU04"]
    assert au04["bands"]["brows"] + au04["bands"]["eyes"] > 0.5 > au04["bands"]["mouth"], au04["bands"]


def test_bands_follow_the_template_rows():
    alignment = {"crop_size": 112, "template": "default", "scale": 1.0}
    edges = band_edges(alignment, 112)
    assert edges == sorted(edges) and 0 < edges[0] and edges[-1] < 112
    drop = np.zeros((7, 7))
    drop[5, 2:5] = 0.3  # row 5 of 7: centred at 88 px, the template's mouth line (92 px) in a 112 crop
    drop[0, 0] = -0.2   # a rise is not evidence
    assert band_shares(drop, edges, 112) == {**dict.fromkeys(BANDS, 0.0), "mouth": 1.0}
    assert band_shares(np.zeros((7, 7)), edges, 112) == dict.fromkeys(BANDS, 0.0)
    boxes = patch_boxes(112, 7)
    covered = np.zeros((112, 112), bool)
    for x0, y0, x1, y1 in boxes:
        covered[y0:y1, x0:x1] = True
    assert len(boxes) == 49 and covered.all()
    assert parse_frames("0-60") == (0, 60) and parse_frames("5-") == (5, None) and parse_frames(None) == (0, None)


def test_bad_input_is_one_line(smiling, face_model):
    only_line_error(evidence("--source", smiling, "--au", "AU99", face_model=face_model), "AU99", "AU12")
    only_line_error(evidence("--source", smiling, "--frames", "9-3", face_model=face_model), "9-3")
    only_line_error(evidence("--source", smiling / "none", face_model=face_model), "not found")
