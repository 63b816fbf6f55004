"""Synthetic FACS warps on the open London faces: exact maps, AU directions, labels, batches."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.spatial import Delaunay

from train.data import synth as S
from train.data import synth_warp as W
from train.data.synth_appearance import Photometric
from train.data.flow import dis_flow, photometric_error, warp_by_flow
from train.data.synth_templates import EXCLUSIVE, PROFILES, SYNTH_AUS, TEMPLATES
from train.data.tem import (
    FRL189_GROUPS,
    TEM189_FIVE,
    group_indices,
    list_faces,
    load_face,
    read_tem,
    tem_five_points,
)

pytestmark = pytest.mark.data

CROP = 256
MARGIN = 24          # border pixels left out of image comparisons (jitter pulls in the border)
MAX_MAD = 1.0        # gray levels: warping back with the exact flow
MIDLINE = {55, 90, 96, 101, 106, 129, 174, 175, 177}  # FRL points on the facial midline
R_CORNER, L_CORNER = FRL189_GROUPS["mouth_corner_R"][0], FRL189_GROUPS["mouth_corner_L"][0]


@pytest.fixture(scope="module")
def faces(data_dir):
    return list_faces(data_dir / "london" / "neutral")


@pytest.fixture(scope="module")
def face(faces):
    image, points = load_face(faces[0])
    return S.prepare_face(image, points, crop_size=CROP)


def _inner(a: np.ndarray) -> np.ndarray:
    return a[MARGIN:-MARGIN, MARGIN:-MARGIN]


# --------------------------------------------------------------------------- .tem and tables

def test_tem_files_and_five_points(faces):
    assert len(faces) == 82
    for f in faces:
        pts = read_tem(f.tem)
        assert pts.shape == (189, 2) and pts.dtype == np.float32
        five = tem_five_points(pts)
        # subject's right eye / mouth corner on the image's left, nose between eyes and mouth
        assert five[0, 0] < five[2, 0] < five[1, 0] and five[3, 0] < five[4, 0]
        assert five[:2, 1].max() < five[2, 1] < five[3:, 1].min()


def test_tables_are_consistent(tmp_path):
    for name, idx in FRL189_GROUPS.items():
        assert all(0 <= i < 189 for i in idx), name
    assert all(0 <= i < 189 for grp in TEM189_FIVE for i in grp)
    for au, tpl in TEMPLATES.items():
        for mv in tpl.moves:
            group_indices(mv.group)  # every named group exists
            assert mv.profile in PROFILES, (au, mv)
            midline = set(group_indices(mv.group)) & MIDLINE
            assert not (midline and mv.out and mv.profile != "lateral"), (au, mv)
    bad = tmp_path / "bad.tem"
    bad.write_text("189\n1\t2\n")
    with pytest.raises(ValueError):
        read_tem(bad)


def test_no_template_folds_the_mesh_on_any_face(faces):
    """Every AU at full intensity on every face needs at most local damping, never global scaling."""
    for f in faces:
        pts = read_tem(f.tem).astype(np.float64)
        src, keep = W.control_points(pts, (540, 540))
        simplices = Delaunay(src).simplices
        for au in SYNTH_AUS:
            disp = np.zeros_like(src)
            disp[: len(keep)] = W.displacements(pts, {au: 5.0})[keep]
            fixed, damped, scale = W.fold_free(src, disp, simplices)
            assert scale == 1.0 and damped <= 12, (f.face_id, au, damped)
            assert not W.folding(src, src + fixed, simplices).any()


# --------------------------------------------------------------------------- exact maps

def test_zero_intensities_return_the_neutral_image(face):
    neutral, points = face
    for levels in ({}, {"AU12": 0.0, 4: 0}):
        smp = S.render_face(neutral, points, levels)
        assert np.array_equal(smp.image, neutral)
        assert np.abs(smp.flow).max() < 1e-3
        assert all(v == 0 for v in smp.labels.values()) and smp.label_kind == "synthetic"


def test_backward_map_reproduces_render_and_flow_inverts_it(face):
    neutral, points = face
    levels = {"AU12": 4, "AU04": 3, "AU06": 2, "AU01": 2}
    smp = S.render_face(neutral, points, levels, rng=3, pose=S.PoseJitter())
    assert smp.backward_map.shape == smp.flow.shape == (CROP, CROP, 2)
    assert smp.backward_map.dtype == smp.flow.dtype == np.float32
    remapped = cv2.remap(neutral, smp.backward_map, None, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT101)
    assert np.array_equal(remapped, smp.image)
    # the two maps are inverse: q -> backward(q) -> backward(q) + flow(backward(q)) = q
    grid = W.grid(CROP, CROP)
    there = cv2.remap(smp.flow, smp.backward_map, None, cv2.INTER_LINEAR)
    err = np.linalg.norm(smp.backward_map + there - grid, axis=2)
    assert np.median(_inner(err)) < 0.01 and np.percentile(_inner(err), 99) < 0.5


def test_forward_flow_warps_the_render_back_to_neutral(face):
    """neutral(p) ~ render(p + flow(p)); a second bilinear resampling costs some sharpness, which
    is all that is left (a pure rotation jitter alone costs ~1.4 gray levels on this face)."""
    neutral, points = face
    levels = {"AU12": 4, "AU04": 3, "AU06": 2, "AU01": 2}
    smp = S.render_face(neutral, points, levels)
    assert photometric_error(_inner(neutral), _inner(warp_by_flow(smp.image, smp.flow))) <= MAX_MAD
    jit = S.render_face(neutral, points, levels, rng=3, pose=S.PoseJitter())
    only = S.render_face(neutral, points, {}, rng=3, pose=S.PoseJitter())
    floor = photometric_error(_inner(neutral), _inner(warp_by_flow(only.image, only.flow)))
    assert photometric_error(_inner(neutral), _inner(warp_by_flow(jit.image, jit.flow))) <= floor + 0.25


def test_dis_flow_estimates_the_stored_flow(face):
    """Both modules use one direction convention: DIS from neutral to render ~ the exact flow."""
    neutral, points = face
    smp = S.render_face(neutral, points, {"AU12": 5, "AU04": 4}, rng=3, pose=S.PoseJitter())
    epe = np.linalg.norm(_inner(dis_flow(neutral, smp.image) - smp.flow), axis=2)
    assert np.linalg.norm(_inner(smp.flow), axis=2).mean() > 3.0
    assert np.median(epe) < 0.5 and epe.mean() < 1.0


def test_pose_jitter_and_photometric_change_the_image(face):
    neutral, points = face
    smp = S.render_face(neutral, points, {}, rng=5, pose=S.PoseJitter(), photometric=Photometric())
    assert not np.allclose(smp.pose, np.eye(2, 3)) and np.abs(smp.flow).max() > 0.5
    assert photometric_error(neutral, smp.image) > 2.0


# --------------------------------------------------------------------------- AU directions

def test_au12_lifts_and_widens_the_mouth_corners(face):
    neutral, points = face
    smp = S.render_face(neutral, points, {"AU12": 5})
    before, after = points[[R_CORNER, L_CORNER]], smp.landmarks[[R_CORNER, L_CORNER]]
    assert np.all(after[:, 1] < before[:, 1] - 3)                      # up (smaller y)
    assert after[0, 0] < before[0, 0] - 2 and after[1, 0] > before[1, 0] + 2  # outward
    for x, y in before.round().astype(int):
        patch = (slice(y - 6, y + 7), slice(x - 6, x + 7))
        assert photometric_error(neutral[patch], smp.image[patch]) > 4.0
    assert smp.labels["AU12"] == 1 and sum(smp.labels.values()) == 1
    far = (slice(10, 40), slice(10, 40))  # the corner of the crop does not move
    assert np.array_equal(neutral[far], smp.image[far])


def test_au4_lowers_and_draws_the_brows_together(face):
    neutral, points = face
    smp = S.render_face(neutral, points, {"AU04": 5})
    inner_r, inner_l = FRL189_GROUPS["brow_inner_R"][-1], FRL189_GROUPS["brow_inner_L"][0]
    brows = list(group_indices("brow_inner") + group_indices("brow_mid"))
    assert np.all(smp.landmarks[brows, 1] > points[brows, 1] + 1)     # down
    gap_before = points[inner_l, 0] - points[inner_r, 0]
    assert smp.landmarks[inner_l, 0] - smp.landmarks[inner_r, 0] < gap_before - 2


def test_au26_drops_the_chin_and_au43_closes_the_eyes(face):
    neutral, points = face
    chin = FRL189_GROUPS["jaw_chin"][1]
    assert S.render_face(neutral, points, {26: 5}).landmarks[chin, 1] > points[chin, 1] + 8
    closed = S.render_face(neutral, points, {43: 5}).landmarks
    for side in ("R", "L"):
        up, lo = FRL189_GROUPS[f"upper_lid_{side}"], FRL189_GROUPS[f"lower_lid_{side}"]
        gap0 = np.mean(points[list(lo), 1] - points[list(up), 1])
        gap1 = np.mean(closed[list(lo), 1] - closed[list(up), 1])
        assert gap1 < 0.1 * gap0


def test_labels_follow_the_occurrence_threshold(face):
    neutral, points = face
    smp = S.render_face(neutral, points, {"AU01": 0.6, "AU02": 1.0, "AU26": 2.0})
    assert smp.labels["AU01"] == 0 and smp.labels["AU02"] == 1
    assert smp.labels["AU26"] == 1 and smp.labels["AU25"] == 1          # AU26 parts the lips
    assert smp.intensities["AU01"] == pytest.approx(0.6)


def test_bad_requests_are_refused(face):
    neutral, points = face
    with pytest.raises(ValueError):
        S.render_face(neutral, points, {"AU11": 2})      # in the catalog, no template
    with pytest.raises(ValueError):
        S.render_face(neutral, points, {"AU12": 6})
    with pytest.raises(ValueError):
        S.PoseJitter(rotation_deg=-1)


# --------------------------------------------------------------------------- batches

def test_render_dataset_checks_arguments_up_front(data_dir, tmp_path):
    with pytest.raises(ValueError):
        S.render_dataset(data_dir / "london" / "neutral", 2, seed=0, aus=["AU11"])
    with pytest.raises(FileNotFoundError):
        S.render_dataset(tmp_path, 2, seed=0)


def test_render_dataset_is_deterministic_per_seed(data_dir):
    faces_dir = data_dir / "london" / "neutral"
    a = list(S.render_dataset(faces_dir, 4, seed=7, crop_size=128))
    b = list(S.render_dataset(faces_dir, 4, seed=7, crop_size=128))
    c = list(S.render_dataset(faces_dir, 4, seed=8, crop_size=128))
    for x, y in zip(a, b):
        assert np.array_equal(x.image, y.image) and x.labels == y.labels and x.face_id == y.face_id
    assert any(not np.array_equal(x.image, z.image) for x, z in zip(a, c))
    for smp in a:
        active = {int(k[2:]) for k, v in smp.intensities.items() if v > 0}
        assert all(len(active & ex) <= 1 or active & ex == {25, 26} for ex in EXCLUSIVE)
        assert smp.image.shape == (128, 128, 3) and smp.label_kind == "synthetic"


def test_held_out_identities_are_never_rendered(data_dir, tmp_path):
    """The open dataset's warps leave out the held-out London identities (realcheck's faces)."""
    import json

    from train.data.synth_cache import synth_cache
    from train.data.holdout import HELD_OUT, is_held_out_subject

    faces_dir = data_dir / "london" / "neutral"
    synth_cache(faces_dir, tmp_path / "synth", n=4, seed=0, progress=False, hold_out=True)
    subjects = json.loads((tmp_path / "synth" / "meta.json").read_text())["subjects"]
    assert subjects and not any(is_held_out_subject(s) for s in subjects)
    assert len(subjects) == len(list(faces_dir.glob("*.tem"))) - len(HELD_OUT["london"])
    with pytest.raises(FileNotFoundError, match="excluded"):
        S.render_dataset(faces_dir, 1, 0, exclude=[f.face_id for f in list_faces(faces_dir)])
