"""AU45 (eye closure) from the mesh's eyelids (runtime.blink): against human coders on the clip, against
smiling photos, and the per-track reference on synthetic meshes."""
from __future__ import annotations

import csv
import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime import AUDetector
from runtime.blink import SCALES, BlinkEstimator, eye_openness
from runtime.head_pose import canonical_face

DATA = Path(__file__).resolve().parent / "data"
CLIP = "WolfgangLanger_Pexels.mp4"


def _coded(name: str, key: str) -> dict:
    with (DATA / name).open() as f:
        rows = csv.DictReader(line for line in f if not line.startswith("#"))
        return {r[key]: int(r["AU43"]) for r in rows}


def _agreement(pred: dict[int, bool], labels: dict[int, int]) -> dict:
    """Accuracy, F1 of 'closed', Cohen's kappa over the frames both coders agreed on (label 0/1)."""
    pairs = [(pred[f], lab == 1) for f, lab in labels.items() if lab >= 0 and f in pred]
    tp = sum(p and y for p, y in pairs)
    fp = sum(p and not y for p, y in pairs)
    fn = sum(y and not p for p, y in pairs)
    n = len(pairs)
    acc = sum(p == y for p, y in pairs) / n
    chance = ((tp + fp) * (tp + fn) + (n - tp - fp) * (n - tp - fn)) / n ** 2
    return {"n": n, "accuracy": acc, "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0,
            "kappa": (acc - chance) / (1 - chance), "disagree": sorted(f for f, lab in labels.items()
                                                                    if lab >= 0 and f in pred and pred[f] != (lab == 1))}


def _clip_au45(data_dir, face_model: str, detector: str = "full") -> dict[int, bool]:
    with AUDetector("default", max_faces=1, face_model=face_model, detector=detector) as det:
        return {r.frame: "AU45" in r.faces[0].au_active for r in det.stream(str(data_dir / "media" / CLIP))
                if r.faces}


@pytest.mark.parametrize(("mesh", "min_kappa"), [
    # The default 468-point mesh never brings its lids together (calibration: a closed eye still reads
    # 0.46 of open, against 0.16 on the v2 mesh), so from it only "moderate" agreement (Landis & Koch:
    # kappa > 0.4) is required; measured: accuracy 0.87, F1 0.76, kappa 0.67.
    ("default", 0.4),
    # The v2 (478-point) mesh of the .task bundle: "almost perfect" (kappa > 0.8), the band the two
    # human coders reached with each other (0.90); measured: 52/52 frames agree.
    ("v2", 0.8),
])
def test_au45_agrees_with_human_coders_on_the_clip(data_dir, face_model, mesh, min_kappa):
    """Video mode, per-track reference, thresholds set on other data (runtime.blink_calibration), against
    tests/data/clip_eye_AU43.csv (every 8th frame, two coders' consensus; frames they disagreed on are out)."""
    labels = {int(k): v for k, v in _coded("clip_eye_AU43.csv", "frame").items()}
    if mesh == "default":
        pred = _clip_au45(data_dir, face_model)
    else:  # the bundle's own (short-range) detector: offline, no full-range model needed from PyPI
        pred = _clip_au45(data_dir, str(data_dir / "models" / "face_landmarker_v2_with_blendshapes.task"), "short")
    stats = _agreement(pred, labels)
    print(f"\nAU45 vs coders ({mesh} mesh): n {stats['n']} accuracy {stats['accuracy']:.3f} F1 {stats['f1']:.3f} "
          f"kappa {stats['kappa']:.2f}; frames that disagree: {stats['disagree']}")
    assert stats["n"] == 52
    assert stats["kappa"] >= min_kappa, stats


def test_smiling_eyes_are_not_closed_in_image_mode(data_dir, face_model):
    """The 61 coded London smiling photos (all open, many narrowed by AU6) in image mode, judged against
    the population reference: no closure may be reported (none of these photos was used to set it)."""
    labels = _coded("london_smiling_eye_AU43.csv", "file")
    assert len(labels) == 61 and set(labels.values()) == {0}
    closed = []
    with AUDetector("default", mode="image", max_faces=1, face_model=face_model) as det:
        for name in labels:
            face = det.process(cv2.imread(str(data_dir / "london" / "smiling" / name))).faces[0]
            if "AU45" in face.au_active:
                closed.append((name, face.au_prob["AU45"]))
    assert closed == []


def _mesh(openness: float, points: int = 468) -> np.ndarray:
    """The canonical face in pixels with its lids moved so that ``eye_openness`` is ``openness``."""
    canon = canonical_face().vertices
    mesh = np.zeros((points, 3))
    mesh[:468] = canon * np.array([20.0, -20.0, -20.0]) + np.array([320.0, 240.0, 0.0])
    from runtime.blink import _LOWER, _UPPER

    base = eye_openness(mesh).mean()
    mesh[_LOWER, :2] = mesh[_UPPER, :2] + (mesh[_LOWER, :2] - mesh[_UPPER, :2]) * (openness / base)
    assert eye_openness(mesh).mean() == pytest.approx(openness)
    return mesh


@pytest.mark.parametrize("points", [468, 478])
def test_closure_score_is_monotone_and_decides_at_the_midpoint(points):
    scale = SCALES[points]
    blink = BlinkEstimator()
    scores = [blink(_mesh(scale.open * r, points)) for r in np.linspace(0.0, 1.2, 25)]
    assert all(a > b for a, b in itertools.pairwise(scores))  # more open, less closed
    below, above = (blink(_mesh(scale.open * (scale.mid + d), points)) for d in (-0.01, 0.01))
    assert below > 0.5 > above
    assert blink(_mesh(scale.open * scale.closed, points)) > 0.85 and blink(_mesh(scale.open, points)) < 0.01


def test_video_mode_learns_the_persons_open_eyes_but_not_from_a_closed_start():
    scale = SCALES[468]
    blink = BlinkEstimator()
    t = 0.0
    # Eyes closed from the first frame for ~4 s: judged against the population, closed throughout.
    for _ in range(100):
        t += 1 / 25
        assert blink(_mesh(scale.open * scale.closed), track_id=1, t=t) > 0.5
    # Someone whose open eyes are narrower than the population's (0.62 of it) for ~16 s ...
    narrow = 0.62 * scale.open
    for _ in range(400):
        t += 1 / 25
        blink(_mesh(narrow), track_id=2, t=t)
    squint = 0.85 * narrow  # ... narrowing them a little is not a closure for them,
    assert blink(_mesh(squint), track_id=2, t=t + 0.04) < 0.5
    assert blink(_mesh(squint)) > 0.5  # though it reads as one against the population (image mode)
    assert blink(_mesh(0.4 * narrow), track_id=2, t=t + 0.08) > 0.5  # and their real closure still counts
    blink.forget_stale(t + 10.0)
    assert blink._tracks == {}
    assert blink(np.zeros((68, 3))) is None  # not a MediaPipe mesh: no score
