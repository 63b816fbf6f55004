"""Synthetic v3 (train.data.ict): smiling bases, pose, unilateral actions, occluders, negatives, the
look, the camera, options and the v3 cache part.

Expected labels come from the FACS rules and from ``train/data/eye/consensus.csv`` read here with
the csv module; geometry is checked on the runtime face stage's mesh of the rendered pixels.
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.face import FaceStage
from train.data.flow import warp_by_flow
from train.data.ict import render_full
from train.data.ict.batch import ICTBatch
from train.data.ict.compose import BaseFace, compose_v3
from train.data.ict.mesh68 import mesh_to_68
from train.data.ict.model import load_ict
from train.data.ict.occluders import draw_glasses, draw_hand, hidden_aus
from train.data.ict.options import V3, ict_options
from train.data.ict.pose import roll_matrix, roll_scale
from train.data.ict.projection import correspond

pytestmark = pytest.mark.data

CONSENSUS = Path(__file__).resolve().parents[1] / "train" / "data" / "eye" / "consensus.csv"
R_CORNER, L_CORNER, NOSE_TIP, R_JAW, L_JAW = 61, 291, 1, 234, 454   # MediaPipe mesh vertices
R_LID_UP, R_LID_LO, L_LID_UP, L_LID_LO = 159, 145, 386, 374
NEUTRAL = "011"
MIN_MOVE_PX = 2.0


@pytest.fixture(scope="module")
def ict(data_dir):
    return load_ict(data_dir / "ict_facekit")


@pytest.fixture(scope="module")
def stage(face_model):
    with FaceStage(face_model=face_model, detector="full", max_faces=1) as s:
        yield s


def mesh_of(stage, bgr: np.ndarray) -> np.ndarray:
    faces = stage.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    assert faces, "the face stage found no face"
    return faces[0].landmarks


def base_face(data_dir, stage, ict, folder: str, fid: str) -> BaseFace:
    path = data_dir / "london" / folder / f"{fid}.jpg"
    photo = cv2.imread(str(path))
    mesh = mesh_of(stage, photo)
    return BaseFace.of(path, photo, mesh, correspond(ict, mesh_to_68(mesh), photo.shape[:2]))


@pytest.fixture(scope="module")
def neutral(data_dir, stage, ict):
    return base_face(data_dir, stage, ict, "neutral", NEUTRAL)


def consensus_rows() -> dict[str, dict[str, str]]:
    with CONSENSUS.open(newline="") as fh:
        return {r["image"]: r for r in csv.DictReader(fh)}


def test_unilateral_smile_labels_au12_and_lifts_one_corner(neutral, ict, stage):
    r = render_full(neutral.photo, neutral.mesh, {12: 1.0}, 0, model=ict, correspondence=neutral.corr,
                    sides={12: (1.0, 0.0)}, version=3)
    assert r.labels["AU12"] == 1
    base = neutral.mesh   # the subject's left corner is the image-right one (mesh 291)
    made = base[[L_CORNER, R_CORNER], 1] - r.moved_points[[L_CORNER, R_CORNER], 1]
    assert made[0] > MIN_MOVE_PX and abs(made[1]) < 0.5, made
    # The face stage sees it too (its mesh prior spreads some of the lift to the other corner).
    seen = base[[L_CORNER, R_CORNER], 1] - mesh_of(stage, r.image)[[L_CORNER, R_CORNER], 1]
    assert seen[0] > MIN_MOVE_PX and seen[0] > 1.5 * max(seen[1], 0.3), seen


def test_pose_turns_the_nose_and_keeps_labels(neutral, ict, stage):
    flat = render_full(neutral.photo, neutral.mesh, {12: 0.8}, 0, model=ict, correspondence=neutral.corr, version=3)
    turned = render_full(neutral.photo, neutral.mesh, {12: 0.8}, 0, model=ict, correspondence=neutral.corr,
                         pose=(12.0, 0.0), version=3)
    assert turned.labels == flat.labels and turned.folded == 0
    a, b = mesh_of(stage, flat.image), mesh_of(stage, turned.image)
    nose_shift = abs(b[NOSE_TIP, 0] - a[NOSE_TIP, 0])
    jaw_shift = max(abs(b[R_JAW, 0] - a[R_JAW, 0]), abs(b[L_JAW, 0] - a[L_JAW, 0]))
    assert nose_shift > MIN_MOVE_PX and nose_shift > 2 * jaw_shift, (nose_shift, jaw_shift)
    with pytest.raises(ValueError, match="yaw"):
        render_full(neutral.photo, neutral.mesh, {}, 0, model=ict, correspondence=neutral.corr, pose=(40.0, 0.0),
                    version=3)


def test_roll_keeps_the_flow_meaning(neutral, ict):
    r = render_full(neutral.photo, neutral.mesh, {12: 1.0, 26: 0.6}, 0, model=ict, correspondence=neutral.corr,
                    shading=False, pose=(6.0, -4.0), version=3)
    m = roll_matrix(r.moved68.mean(0), 15.0)
    image, flow, points, _ = roll_scale(r.image, r.flow, r.moved_points, m)
    photo = cv2.warpAffine(neutral.photo, m, neutral.photo.shape[1::-1], flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT101)
    back = warp_by_flow(photo, flow, cv2.BORDER_REFLECT101).astype(int)
    face = cv2.boundingRect(np.round(points[:, :2]).astype(np.int32))
    x, y, w, h = face
    diff = np.abs(back - image.astype(int))[y:y + h, x:x + w]
    assert np.median(diff) <= 2 and np.percentile(diff, 95) <= 12  # two resamplings of a sharp photo


def test_crying_closes_the_eyes(neutral, ict, stage):
    r = render_full(neutral.photo, neutral.mesh, {1: 1.0, 4: 0.8, 15: 1.0, 17: 1.0, 43: 1.0}, 0, model=ict,
                    correspondence=neutral.corr, version=3)
    seen, base = mesh_of(stage, r.image), neutral.mesh
    for up, lo in ((R_LID_UP, R_LID_LO), (L_LID_UP, L_LID_LO)):   # the mesh's eye prior lags
        assert seen[lo, 1] - seen[up, 1] < 0.75 * (base[lo, 1] - base[up, 1])

    def white(img: np.ndarray, ring: np.ndarray) -> float:
        """Share of the photo's eye opening that shows white (the sclera: bright, unsaturated)."""
        inside = np.zeros(img.shape[:2], np.uint8)
        cv2.fillPoly(inside, [np.round(ring).astype(np.int32)], 1)
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
        return float(((hsv[..., 1] < 60) & (hsv[..., 2] > 120))[inside > 0].mean())

    for rows in (slice(36, 42), slice(42, 48)):
        before, after = white(neutral.photo, r.landmarks68[rows]), white(r.image, r.landmarks68[rows])
        assert before > 0.2 and after < 0.3 * before, (before, after)
    assert r.labels["AU43"] == 1 and r.labels["AU01"] == 1 and r.labels["AU04"] == 1 and r.labels["AU15"] == 1


def test_lip_stretch_moves_the_corners_out_where_au12_lifts_them(neutral, ict):
    """A sad face's lip stretch (AU1+4+20+24) widens the mouth with AU12 absent; AU12 lifts the
    corners. What tells them apart is the direction: out for AU20, up for AU12 (FACS)."""
    base = neutral.mesh[[R_CORNER, L_CORNER], :2]
    moved = {}
    for name, aus in (("stretch", {1: 1.0, 4: 0.8, 20: 1.0, 24: 0.8}), ("smile", {12: 1.0})):
        r = render_full(neutral.photo, neutral.mesh, aus, 0, model=ict, correspondence=neutral.corr, version=3)
        moved[name] = (r.moved_points[[R_CORNER, L_CORNER], :2] - base, r.labels)
    (g, g_labels), (s, s_labels) = moved["stretch"], moved["smile"]
    outward_g = -g[0, 0] + g[1, 0]          # the image-left corner moves left, the other right
    up_g, up_s = -g[:, 1].mean(), -s[:, 1].mean()
    assert outward_g > 2 * MIN_MOVE_PX, g
    assert up_s > MIN_MOVE_PX and up_g < 0.5 * up_s and up_g < outward_g / 2, (g, s)
    assert g_labels["AU12"] == 0 and g_labels["AU20"] == 1 and g_labels["AU24"] == 1 and g_labels["AU04"] == 1
    assert s_labels["AU12"] == 1 and s_labels["AU20"] == 0


def test_grief_raises_the_corners_as_the_clips_crying_mouth_does(neutral, ict, stage):
    """The posed grief face (``train.posedcheck``: AU1+4+6+14+20, no AU12) raises the corners the
    mesh sees, as in the clip's crying frames (docs/geometry.md); the stretch alone hardly does (why
    the crying warps never looked like the clip's mouth)."""
    from train.geometrycheck import mouth_shape
    from train.posedcheck import EXPRESSIONS

    def lift(aus: dict[int, float]) -> float:
        r = render_full(neutral.photo, neutral.mesh, aus, 0, model=ict, correspondence=neutral.corr, version=3)
        return float(mouth_shape(mesh_of(stage, r.image)[None, :, :2])["corner_lift"][0])

    # Raised over the neutral photo's own corners, in IODs (on six London faces: grief +0.024 to
    # +0.039, the stretch +0.005 to +0.011, AU12 at C +0.05 to +0.07).
    rest = lift({})
    grief = lift(dict.fromkeys(EXPRESSIONS["grief"].render, 1.0)) - rest
    stretch = lift({1: 1.0, 4: 1.0, 20: 1.0, 24: 0.8}) - rest
    assert grief > 0.018 and stretch < grief / 2, (grief, stretch)


def test_v3_creases_are_visible(neutral, ict):
    """AU4 at E darkens the glabella (FACS: vertical furrows between the brows) far more than v2."""
    p = mesh_to_68(neutral.mesh)
    mid = np.round((p[21] + p[22]) / 2 + [0, -8]).astype(int)
    iod = np.linalg.norm(p[42:48].mean(0) - p[36:42].mean(0))
    r = int(0.12 * iod)

    def darkest(img: np.ndarray) -> float:
        patch = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[mid[1] - r:mid[1] + r, mid[0] - r:mid[0] + r].astype(float)
        return float(np.percentile(patch, 5))

    ref = darkest(neutral.photo)
    v2 = render_full(neutral.photo, neutral.mesh, {4: 1.0}, 0, model=ict, correspondence=neutral.corr).image
    v3 = render_full(neutral.photo, neutral.mesh, {4: 1.0}, 0, model=ict, correspondence=neutral.corr,
                     version=3).image
    assert ref - darkest(v3) > 0.15 * ref and ref - darkest(v3) > 2 * (ref - darkest(v2))


def test_hand_over_mouth_hides_mouth_aus_not_brows(neutral):
    p = mesh_to_68(neutral.mesh)
    for seed in range(8):
        image, alpha = draw_hand(neutral.photo, p, "mouth", np.random.default_rng(seed))
        hidden = hidden_aus(alpha, p)
        assert {12, 25, 26} <= hidden and not {1, 2} & hidden, (seed, hidden)
        assert image.shape == neutral.photo.shape and (alpha > 0.5).mean() > 0.02
    _, alpha = draw_hand(neutral.photo, p, "eyes", np.random.default_rng(0))
    assert {5, 7, 43} <= hidden_aus(alpha, p)
    with pytest.raises(ValueError, match="hand target"):
        draw_hand(neutral.photo, p, "ear", np.random.default_rng(0))


def test_sunglasses_hide_the_eyes_clear_glasses_nothing(neutral):
    p = mesh_to_68(neutral.mesh)
    seen = set()
    for seed in range(12):
        image, alpha, sun = draw_glasses(neutral.photo, p, np.random.default_rng(seed))
        seen.add(sun)
        assert not np.array_equal(image, neutral.photo)
        assert (hidden_aus(alpha, p) >= {5, 7, 43}) if sun else not hidden_aus(alpha, p)
    assert seen == {True, False}


def test_occluded_aus_are_unknown_not_negative(neutral, ict):
    opts = ict_options({"version": 3, "p_hand": 1.0, "p_glasses": 0.0, "p_camera": 0.0})
    for seed in range(6):
        c = compose_v3(neutral, np.random.default_rng((5, seed)), opts, ict)
        assert c.occluders and c.hidden
        for au in c.hidden:
            assert f"AU{au:02d}" not in c.labels and f"AU{au:02d}" not in c.intensity
        if c.occluders[0] == "hand_mouth":
            assert "AU12" not in c.labels and "AU25" not in c.labels


def test_negatives_move_the_face_with_every_au_absent(neutral, ict):
    opts = ict_options({"version": 3, "p_neutral": 0.0, "p_negative": 1.0, "p_prototype": 0.0, "p_hand": 0.0,
                        "p_glasses": 0.0, "p_camera": 0.0})
    for seed in range(4):
        c = compose_v3(neutral, np.random.default_rng((9, seed)), opts, ict)
        assert c.mix.kind == "negative" and c.mix.expression == -1
        assert not np.array_equal(c.image, neutral.photo)
        assert np.abs(c.flow).max() > 1.0            # it moved (head turn and/or motion shapes)
        lips_rule = {"AU25"} if c.labels.get("AU25") == 1 else set()   # a funnel may part the lips
        assert {a for a, v in c.labels.items() if v} == lips_rule
        assert len(c.labels) >= 17 - len(c.hidden)    # every AU known


def test_same_seed_same_sample(neutral, ict):
    a = compose_v3(neutral, np.random.default_rng((3, 7)), V3, ict)
    b = compose_v3(neutral, np.random.default_rng((3, 7)), V3, ict)
    c = compose_v3(neutral, np.random.default_rng((3, 8)), V3, ict)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.flow, b.flow) and a.labels == b.labels
    assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize("fid", ["003", "008", "005"])
def test_smiling_base_labels_follow_the_consensus(data_dir, stage, ict, fid):
    row = consensus_rows()[f"london_{fid}.png"]
    face = base_face(data_dir, stage, ict, "smiling", fid)
    opts = ict_options({"version": 3, "p_hand": 0.0, "p_glasses": 0.0, "p_camera": 0.0, "p_pose": 0.0})
    untouched = ict_options({"version": 3, "p_neutral": 1.0, "p_negative": 0.0, "p_prototype": 0.0,
                             "p_hand": 0.0, "p_glasses": 0.0, "p_camera": 0.0, "p_pose": 0.0, "p_roll": 0.0})
    c = compose_v3(face, np.random.default_rng(0), untouched, ict)
    assert c.labels["AU12"] == 1
    for au in ("AU01", "AU04", "AU25", "AU26"):
        assert c.labels.get(au, -1) == int(row[au]), au        # -1: left out, unknown
    assert "AU06" not in c.labels and "AU17" not in c.labels   # not in the table, not rendered
    # A rendered AU is present whatever the base says; an AU the base lacks stays unknown.
    for seed in range(20):
        c = compose_v3(face, np.random.default_rng((11, seed)), opts, ict)
        for a, w in c.mix.weights.items():
            if w >= 0.3 and a != 43:
                assert c.labels[f"AU{a:02d}"] == 1
        assert c.labels["AU12"] == 1
        for au in ("AU09", "AU10", "AU14"):
            assert c.labels.get(au) == (1 if c.mix.weights.get(int(au[2:]), 0) >= 0.3 else None)
        assert "AU15" not in c.mix.weights   # nothing that undoes the smile


def test_options_validate_and_name_the_key():
    assert ict_options(None).version in (2, 3) and ict_options({"version": 3}) == V3
    with pytest.raises(ValueError, match="p_hand"):
        ict_options({"version": 3, "p_hand": 1.5})
    with pytest.raises(ValueError, match="p_hands"):
        ict_options({"version": 3, "p_hands": 0.1})
    with pytest.raises(ValueError, match="version 3 options"):
        ict_options({"version": 2, "p_glasses": 0.1})
    with pytest.raises(ValueError, match="version"):
        ict_options({"version": 4})


def test_v2_refuses_smiling_photos(data_dir, tmp_path, face_model):
    (tmp_path / "smiling").mkdir()
    shutil.copy(data_dir / "london" / "smiling" / "003.jpg", tmp_path / "smiling" / "003.jpg")
    with pytest.raises(ValueError, match="version 3"):
        ICTBatch([tmp_path / "smiling"], 1, 0, model=data_dir / "ict_facekit", face_model=face_model,
                 options={"version": 2})


@pytest.mark.slow
def test_v3_cache_part(data_dir, tmp_path, face_model):
    """A small v3 cache: unknown labels are mask 0 with NaN intensity, every kind synthetic, FACS 0-5."""
    from train.data.cache import CacheData
    from train.data.ict.cache import ict_cache
    from train.data.records import LABEL_KINDS

    for folder, ids in (("neutral", ("003", "005")), ("smiling", ("003", "008"))):
        (tmp_path / "photos" / folder).mkdir(parents=True)
        for i in ids:
            shutil.copy(data_dir / "london" / folder / f"{i}.jpg", tmp_path / "photos" / folder / f"{i}.jpg")
    folders = [tmp_path / "photos" / "neutral", tmp_path / "photos" / "smiling"]
    manifest = ict_cache(folders, tmp_path / "ict", 24, 0, model=data_dir / "ict_facekit", face_model=face_model,
                         crop_size=128, progress=False, options={"version": 3})
    assert manifest["ict_version"] == 3 and manifest["frames_with_face"] == 24
    assert json.loads((tmp_path / "ict" / "meta.json").read_text())["ict"]["version"] == 3
    data = CacheData(tmp_path / "ict")
    mask, inten, kind = data.field("mask"), data.field("intensity"), data.field("kind")
    assert (~mask).any(), "smiling bases and occluders leave AUs unknown"
    assert np.isnan(inten[~mask]).all()
    known = inten[mask & ~np.isnan(inten)]
    assert known.min() >= 0 and known.max() <= 5
    assert (kind == LABEL_KINDS.index("synthetic")).all()
    subjects = set(json.loads((tmp_path / "ict" / "meta.json").read_text())["subjects"])
    assert subjects == {"london_003", "london_005", "london_008"}
