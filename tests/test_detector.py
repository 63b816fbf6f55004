"""AUDetector end to end on real media: real face models, real engines (ONNX Runtime and LiteRT)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine_factory import AUS, reference_probs
from runtime import AUDetector, FrameResult
from runtime.align import align_face


def test_multi_face_photo_both_backends_agree(tiny_engines, face_model, media):
    frame = cv2.imread(str(media / "multi_face.jpg"))
    results = {}
    for kind in ("onnx", "tflite"):
        with AUDetector(tiny_engines[kind], max_faces=6, face_model=face_model, smooth=False) as det:
            res = det.process(frame, 0.0)
        assert isinstance(res, FrameResult)
        assert len(res.faces) == 5
        results[kind] = res
    # Same faces and the same AU probabilities (batched inference), within float tolerance.
    a = sorted(results["onnx"].faces, key=lambda f: f.bbox[0])
    b = sorted(results["tflite"].faces, key=lambda f: f.bbox[0])
    for fa, fb in zip(a, b):
        assert np.allclose(fa.bbox, fb.bbox)
        pa, pb = np.array([fa.au_prob[x] for x in AUS]), np.array([fb.au_prob[x] for x in AUS])
        assert np.abs(pa - pb).max() < 1e-4
        assert fa.au_active == {x for x in AUS if fa.au_prob[x] >= 0.5}


def test_probabilities_are_the_engine_on_the_aligned_crop(tiny_engines, face_model, media):
    """The detector's numbers equal an independent computation: align with the card, then the
    numpy reference of the tiny model."""
    frame = cv2.imread(str(media / "multi_face.jpg"))
    with AUDetector(tiny_engines["onnx"], max_faces=1, face_model=face_model, smooth=False) as det:
        face = det.process(frame).faces[0]
        card = det.engine.card
    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    crop, _ = align_face(rgb, face.landmarks5, card.alignment["crop_size"], out_size=card.input.size[0])
    want = reference_probs(crop[None])[0]
    got = np.array([face.au_prob[a] for a in AUS])
    assert np.abs(got - want).max() < 1e-5


def test_max_faces_caps_the_result(tiny_engines, face_model, media):
    frame = cv2.imread(str(media / "multi_face.jpg"))
    with AUDetector(tiny_engines["onnx"], max_faces=2, face_model=face_model) as det:
        assert len(det.process(frame).faces) == 2


@pytest.mark.parametrize("make", [
    lambda f: cv2.cvtColor(f, cv2.COLOR_BGR2GRAY),                    # grayscale
    lambda f: cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)[..., None],         # gray with a channel axis
    lambda f: cv2.cvtColor(f, cv2.COLOR_BGR2BGRA),                    # 4 channels
    lambda f: cv2.resize(f, (4000, 2668)),                            # huge
])
def test_unusual_frames_still_work(tiny_engines, face_model, media, make):
    frame = make(cv2.imread(str(media / "multi_face.jpg")))
    with AUDetector(tiny_engines["onnx"], max_faces=6, face_model=face_model) as det:
        assert len(det.process(frame).faces) >= 4


def test_tiny_and_faceless_frames_are_counted_not_crashed(tiny_engines, face_model):
    with AUDetector(tiny_engines["onnx"], face_model=face_model) as det:
        assert det.process(np.zeros((8, 8, 3), np.uint8)).faces == []
        assert det.skipped["tiny_frame"] == 1
        assert det.process(np.full((240, 320, 3), 127, np.uint8)).faces == []


def test_bad_frames_are_clear_errors(tiny_engines, face_model):
    with AUDetector(tiny_engines["onnx"], face_model=face_model) as det:
        with pytest.raises(ValueError, match="uint8"):
            det.process(np.zeros((64, 64, 3), np.float32))
        with pytest.raises(ValueError, match="shape"):
            det.process(np.zeros((64, 64, 5), np.uint8))


def test_stream_tracks_one_face_and_smooths(tiny_engines, face_model, media):
    with AUDetector(tiny_engines["onnx"], face_model=face_model) as det:
        results = list(det.stream(str(media / "WolfgangLanger_Pexels.mp4"), max_frames=60))
    assert [r.frame for r in results] == list(range(60))
    assert sum(bool(r.faces) for r in results) >= 57
    assert len({f.track_id for r in results for f in r.faces}) == 1
    assert all(r.source == "WolfgangLanger_Pexels.mp4" for r in results)
    assert results[-1].time_s > results[0].time_s


def test_smoothing_reduces_flicker(tiny_engines, face_model, media):
    """Frame-to-frame change of the AU vector is smaller with smoothing on (same frames)."""
    def jitter(smooth: bool) -> float:
        with AUDetector(tiny_engines["onnx"], face_model=face_model, smooth=smooth) as det:
            p = [np.array(list(r.faces[0].au_prob.values())) for r in
                 det.stream(str(media / "WolfgangLanger_Pexels.mp4"), max_frames=40) if r.faces]
        return float(np.abs(np.diff(np.stack(p), axis=0)).mean())

    assert jitter(True) < jitter(False)


def test_face_lost_and_reacquired(tiny_engines, face_model, media):
    """face_noface.mov shows a face for ~72 frames and then none until its end (despite its name);
    its face part is played again after it to check that the detector picks the face up again."""
    frames = []
    cap = cv2.VideoCapture(str(media / "face_noface.mov"))
    while (ok_frame := cap.read())[0]:
        frames.append(ok_frame[1])
    with AUDetector(tiny_engines["onnx"], face_model=face_model) as det:
        ids = [[f.track_id for f in det.process(fr, i / 25).faces] for i, fr in enumerate(frames + frames[:20])]
    n = len(frames)
    assert all(i == [1] for i in ids[:60])
    assert all(i == [] for i in ids[80:n])
    assert all(len(i) == 1 and i[0] != 1 for i in ids[n + 1:])  # re-acquired as a new track


def test_no_face_video_gives_empty_results_for_every_frame(tiny_engines, face_model, media):
    with AUDetector(tiny_engines["onnx"], face_model=face_model) as det:
        results = list(det.stream(str(media / "no_face.mp4")))
    assert len(results) > 80 and all(r.faces == [] for r in results)
