"""ICT-FaceKit-driven FACS warps of real London photos (train.data.ict).

Directions and sizes come from FACS and from the ICT shapes read here straight from the npz, not
from the code under test; the warped pixels are checked by re-running the runtime face stage.
"""
from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from runtime.face import FaceStage
from train.data.flow import warp_by_flow
from train.data.ict import facs, render, render_full
from train.data.ict.batch import ICTBatch
from train.data.ict.mesh68 import mesh_to_68
from train.data.ict.model import load_ict

pytestmark = pytest.mark.data

FACES = ("001", "002")
MIN_MOVE_PX = 2.0      # a full-weight AU must move its landmarks at least this much (IOD ~ 110 px)
SHAPE_TOL = 0.35       # relative tolerance between the photo move and the ICT shape's own move
DETECT_FRACTION = 0.5  # the face stage on the warp must see at least this share of the move
# Mesh vertices (MediaPipe numbering): mouth corners, inner brow ends, chin.
R_CORNER, L_CORNER, R_BROW_IN, L_BROW_IN, CHIN = 61, 291, 107, 336, 152


@pytest.fixture(scope="module")
def ict_path(data_dir):
    return data_dir / "ict_facekit" / "ict_face_model_light.npz"


@pytest.fixture(scope="module")
def stage(face_model):
    with FaceStage(face_model=face_model, detector="full", max_faces=1) as s:
        yield s


def detect_mesh(stage, bgr: np.ndarray) -> np.ndarray:
    faces = stage.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    assert faces, "the face stage found no face"
    return faces[0].landmarks


@pytest.fixture(scope="module")
def photos(data_dir, stage):
    out = []
    for fid in FACES:
        bgr = cv2.imread(str(data_dir / "london" / "neutral" / f"{fid}.jpg"))
        assert bgr is not None
        out.append((bgr, detect_mesh(stage, bgr)))
    return out


def ict_scale(ict_path, mesh: np.ndarray) -> float:
    """px per cm, independently of the fit: the photo's jaw width over the ICT neutral's."""
    with np.load(ict_path) as z:
        jaw = z["neutral"][z["landmarks_multipie68"][[0, 16]]]
    p = mesh_to_68(mesh)
    return float(np.linalg.norm(p[16] - p[0]) / np.linalg.norm(jaw[1, :2] - jaw[0, :2]))


def ict_landmark_dy(ict_path, shapes: dict[str, float], row: int) -> float:
    """Image-y move (cm, down positive) of one 68-point landmark under an ICT shape mix, read
    from the npz (the model's y is up)."""
    with np.load(ict_path) as z:
        names = list(z["expression_names"])
        vid = z["landmarks_multipie68"][row]
        return -sum(w * float(z["expression_deltas"][names.index(s), vid, 1]) for s, w in shapes.items())


def test_zero_weight_is_identity(photos, ict_path):
    bgr, mesh = photos[0]
    for aus in ({}, {12: 0.0, 4: 0.0}):
        image, flow, moved, labels = render(bgr, mesh, aus, 0, model=ict_path)
        assert np.array_equal(image, bgr)
        assert np.abs(flow).max() == 0
        assert np.allclose(moved, mesh)
        assert set(labels.values()) == {0}


@pytest.mark.parametrize("k", range(len(FACES)))
def test_au12_raises_and_widens_mouth_corners(photos, ict_path, k):
    bgr, mesh = photos[k]
    _, _, moved, _ = render(bgr, mesh, {12: 1.0}, 0, model=ict_path)
    up = mesh[[R_CORNER, L_CORNER], 1] - moved[[R_CORNER, L_CORNER], 1]
    assert (up > MIN_MOVE_PX).all(), up
    width0 = np.linalg.norm(mesh[L_CORNER, :2] - mesh[R_CORNER, :2])
    width1 = np.linalg.norm(moved[L_CORNER, :2] - moved[R_CORNER, :2])
    assert width1 - width0 > MIN_MOVE_PX
    # The size the 3D shape says: ICT's own corner lift (row 48/54) times the photo's scale.
    want = -ict_landmark_dy(ict_path, {"mouthSmile_L": 1, "mouthSmile_R": 1}, 54) * ict_scale(ict_path, mesh)
    assert up.mean() == pytest.approx(want, rel=SHAPE_TOL)


def test_au4_lowers_brows_and_draws_them_together(photos, ict_path):
    bgr, mesh = photos[0]
    _, _, moved, _ = render(bgr, mesh, {4: 1.0}, 0, model=ict_path)
    down = moved[[R_BROW_IN, L_BROW_IN], 1] - mesh[[R_BROW_IN, L_BROW_IN], 1]
    assert (down > MIN_MOVE_PX).all(), down
    gap0 = abs(mesh[L_BROW_IN, 0] - mesh[R_BROW_IN, 0])
    gap1 = abs(moved[L_BROW_IN, 0] - moved[R_BROW_IN, 0])
    assert gap0 - gap1 > 1.0, (gap0, gap1)
    want = ict_landmark_dy(ict_path, {"browDown_L": 1, "browDown_R": 1}, 21) * ict_scale(ict_path, mesh)
    assert down.mean() == pytest.approx(want, rel=SHAPE_TOL)


def test_au1_raises_inner_brows_au15_lowers_corners(photos, ict_path):
    bgr, mesh = photos[1]
    _, _, moved, _ = render(bgr, mesh, {1: 1.0}, 0, model=ict_path)
    assert (mesh[[R_BROW_IN, L_BROW_IN], 1] - moved[[R_BROW_IN, L_BROW_IN], 1] > MIN_MOVE_PX).all()
    _, _, moved, _ = render(bgr, mesh, {15: 1.0}, 0, model=ict_path)
    assert (moved[[R_CORNER, L_CORNER], 1] - mesh[[R_CORNER, L_CORNER], 1] > MIN_MOVE_PX).all()


def test_lips_parted_by_au10_label_au25(photos, ict_path):
    bgr, mesh = photos[0]
    r = render_full(bgr, mesh, {10: 1.0}, 0, model=ict_path)
    gap = np.linalg.norm(r.moved68[66] - r.moved68[62]) - np.linalg.norm(r.landmarks68[66] - r.landmarks68[62])
    iod = np.linalg.norm(r.landmarks68[42:48].mean(0) - r.landmarks68[36:42].mean(0))
    assert gap > 0.05 * iod and r.labels["AU25"] == 1 and r.labels["AU10"] == 1
    for au in (12, 17, 24):  # lips that stay together (AU17 pushes the lower lip up) are not AU25
        assert render(bgr, mesh, {au: 1.0}, 0, model=ict_path)[3]["AU25"] == 0, au


def test_au26_lowers_the_chin(photos, ict_path):
    bgr, mesh = photos[0]
    _, _, moved, labels = render(bgr, mesh, {26: 1.0}, 0, model=ict_path)
    drop = moved[CHIN, 1] - mesh[CHIN, 1]
    want = ict_landmark_dy(ict_path, {"jawOpen": 0.30}, 8) * ict_scale(ict_path, mesh)
    assert drop > MIN_MOVE_PX and drop == pytest.approx(want, rel=SHAPE_TOL)
    assert labels["AU26"] == 1 and labels["AU25"] == 1  # a jaw drop parts the lips


def test_face_stage_sees_the_pixels_move(photos, ict_path, stage):
    """Re-detect the mesh on the warped photo: the real check that the pixels moved."""
    bgr, mesh = photos[0]
    base = detect_mesh(stage, bgr)
    image, _, moved, _ = render(bgr, mesh, {12: 1.0}, 0, model=ict_path)
    seen = detect_mesh(stage, image)
    lift_seen = (base[[R_CORNER, L_CORNER], 1] - seen[[R_CORNER, L_CORNER], 1]).mean()
    lift_made = (mesh[[R_CORNER, L_CORNER], 1] - moved[[R_CORNER, L_CORNER], 1]).mean()
    assert lift_seen > DETECT_FRACTION * lift_made, (lift_seen, lift_made)
    image, _, moved, _ = render(bgr, mesh, {26: 1.0}, 0, model=ict_path)
    seen = detect_mesh(stage, image)
    assert seen[CHIN, 1] - base[CHIN, 1] > DETECT_FRACTION * (moved[CHIN, 1] - mesh[CHIN, 1])


def test_flow_is_expressive_to_neutral(photos, ict_path):
    bgr, mesh = photos[0]
    r = render_full(bgr, mesh, {12: 1.0, 26: 0.6}, 0, model=ict_path, shading=False)
    # image(q) = photo(q + flow(q)): warping the photo by the flow reproduces the render.
    diff = np.abs(warp_by_flow(bgr, r.flow, cv2.BORDER_REFLECT101).astype(int) - r.image.astype(int))
    assert diff.max() <= 1
    # At a moved mouth corner the flow points back to where it was on the neutral photo.
    for row in (48, 54):
        q = r.moved68[row]
        back = q + r.flow[round(q[1]), round(q[0])]
        assert np.linalg.norm(back - r.landmarks68[row]) < 1.5
        # ... and the dense forward field moves the neutral corner where the ICT landmark goes.
        p = r.landmarks68[row]
        fwd = r.forward[round(p[1]), round(p[0])]
        assert np.linalg.norm(p + fwd - q) < 1.5
    assert r.folded == 0


def test_labels_are_exact():
    assert set(facs.CONTRACT_AUS) <= set(facs.LABELLED_AUS)
    labels = facs.labels_for({12: 0.29, 6: 0.3, 4: 1.0})
    assert set(labels) == {f"AU{a:02d}" for a in facs.LABELLED_AUS}
    assert labels["AU12"] == 0 and labels["AU06"] == 1 and labels["AU04"] == 1
    assert sum(labels.values()) == 2
    assert facs.labels_for({26: 0.5})["AU25"] == 1
    assert facs.labels_for({10: 1.0}, lips_apart=True)["AU25"] == 1
    with pytest.raises(ValueError, match="AU03|AU45|weight"):
        facs.labels_for({12: 1.5})
    with pytest.raises(ValueError, match="AU45"):
        facs.check_weights({45: 0.5})


def test_expressions_match_the_mal_head():
    from train.losses.mal import EXPRESSIONS

    assert facs.EXPRESSIONS == tuple(EXPRESSIONS)
    assert set(facs.PROTOTYPES) | {"neutral"} == set(EXPRESSIONS)


def test_deterministic_with_a_seed(photos, ict_path):
    bgr, mesh = photos[0]
    a = render(bgr, mesh, {6: 0.8, 12: 0.8, 17: 0.7}, 7, model=ict_path)[0]
    b = render(bgr, mesh, {6: 0.8, 12: 0.8, 17: 0.7}, 7, model=ict_path)[0]
    c = render(bgr, mesh, {6: 0.8, 12: 0.8, 17: 0.7}, 8, model=ict_path)[0]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_batch_labels_and_expressions(data_dir, tmp_path, ict_path, face_model):
    for fid in FACES:
        shutil.copy(data_dir / "london" / "neutral" / f"{fid}.jpg", tmp_path / f"{fid}.jpg")
    (tmp_path / "notes.txt").write_text("not a photo")
    runs = [list(ICTBatch([tmp_path], 4, seed=1, model=ict_path, face_model=face_model, p_neutral=0.2,
                          p_prototype=0.5)) for _ in range(2)]
    assert len(runs[0]) == 4
    kinds = {np.sign(s.expression) for s in runs[0]}
    assert kinds == {-1, 0, 1}, "seed 1 should give a single AU, a neutral and a prototype"
    for s, t in zip(*runs):
        assert np.array_equal(s.image, t.image) and s.weights == t.weights
        by_weight = facs.labels_for(s.weights)
        assert s.labels == by_weight or s.labels == {**by_weight, "AU25": 1}
        if s.expression > 0:
            name = facs.EXPRESSIONS[s.expression]
            assert set(facs.PROTOTYPES[name]) <= set(s.weights)
            assert all(s.labels[f"AU{a:02d}"] == 1 for a in facs.PROTOTYPES[name])
        elif s.expression == 0:
            assert s.weights == {} and np.array_equal(s.image, cv2.imread(str(tmp_path / f"{s.face_id[-3:]}.jpg")))
        else:
            assert len(s.weights) == 1


def test_bad_input_names_the_problem(photos, ict_path, tmp_path):
    bgr, mesh = photos[0]
    with pytest.raises(ValueError, match="468/478"):
        render(bgr, mesh[:100], {12: 1.0}, 0, model=ict_path)
    with pytest.raises(FileNotFoundError, match="ict_face_model_light"):
        load_ict(tmp_path)
