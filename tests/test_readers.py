"""Dataset readers and manifest.json, on fixture trees in the published layouts (the 3-fold
protocol: test_splits.py).

Expected counts are computed here from what ``fixtures_datasets`` wrote (its returned truth), never
by calling the code under test.
"""
from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path

import cv2
import fixtures_datasets as fx
import numpy as np
import pytest

from runtime.errors import AUEdgeError
from train.data.manifest import build_manifest, read_manifest, write_manifest
from train.data.readers import READERS, DatasetError, read_dataset


def name(a: int) -> str:
    return f"AU{a:02d}"


def tally(rows: list[dict], aus: list[int], code) -> tuple[dict, Counter, dict]:
    """Expected manifest label counts, skips and per-frame (value or None) from the fixture truth;
    ``code`` maps a written cell to 1, 0 or None (unknown)."""
    counts = {name(a): {"pos": 0, "neg": 0, "unknown": 0} for a in aus}
    skipped: Counter = Counter()
    kept = {}
    for r in rows:
        values = [code(r["codes"][a]) for a in aus]
        if all(v is None for v in values):
            skipped["unannotated"] += 1
            continue
        if r["image"] is None:
            skipped["missing_image"] += 1
            continue
        kept[(r["video"], r["frame"])] = (r, values)
        for a, v in zip(aus, values):
            counts[name(a)]["unknown" if v is None else "pos" if v == 1 else "neg"] += 1
    return counts, skipped, kept


def check_records(result, kept: dict) -> None:
    """Every record matches its truth row exactly: labels, mask (unknown is masked, not 0), image."""
    assert len(result.records) == len(kept)
    for rec in result.records:
        row, values = kept[(rec.video, rec.frame)]
        assert rec.subject == row["subject"]
        assert os.path.samefile(rec.image_path, row["image"])
        assert rec.video_path is None and rec.video_index is None
        assert rec.labels.dtype == np.float32 and rec.mask.dtype == bool
        for j, v in enumerate(values):
            assert bool(rec.mask[j]) == (v is not None)
            assert rec.labels[j] == (v or 0)


def error_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert isinstance(excinfo.value, AUEdgeError) and "\n" not in msg
    return msg


# --- BP4D -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bp4d(tmp_path_factory):
    root = tmp_path_factory.mktemp("bp4d")
    return root, fx.make_bp4d(root)


def bp4d_code(c: int):
    return None if c == 9 else c


def test_bp4d_counts_and_masks(bp4d):
    root, truth = bp4d
    result = read_dataset("bp4d", root)
    counts, skipped, kept = tally(truth["rows"], fx.BP4D_AUS, bp4d_code)
    assert result.aus == [name(a) for a in fx.BP4D_AUS]
    assert result.skipped == dict(skipped) == {"unannotated": 1, "missing_image": 2}
    check_records(result, kept)
    manifest = build_manifest("bp4d", result.records, result.aus, frames_with_face=len(result.records),
                              skipped=result.skipped)
    assert manifest["labels"] == counts
    assert manifest["frames"] == 3 * 7 - 3
    assert manifest["subjects"] == 3 and manifest["subject_ids"] == ["F001", "F003", "M007"]
    assert manifest["label_kind"] == "real" and manifest["skipped"] == {"missing_image": 2, "unannotated": 1}
    assert sum(c["unknown"] for c in counts.values()) > 0  # the fixture has 9s that stay masked


def test_bp4d_nine_is_masked_not_negative(bp4d):
    root, truth = bp4d
    result = read_dataset("bp4d", root)
    by_key = {(r.video, r.frame): r for r in result.records}
    row = next(r for r in truth["rows"] if r["image"] and 9 in [r["codes"][a] for a in fx.BP4D_AUS]
               and (r["video"], r["frame"]) != fx.BP4D_ALL_NINE)
    j = [row["codes"][a] for a in fx.BP4D_AUS].index(9)
    rec = by_key[(row["video"], row["frame"])]
    assert not rec.mask[j] and rec.labels[j] == 0


def test_bp4d_padded_and_unpadded_frames(bp4d):
    root, _ = bp4d
    result = read_dataset("bp4d", root)
    names = {(r.video, r.frame): Path(r.image_path).name for r in result.records}
    assert names[("F001_T1", 200)] == "0200.jpg"
    assert names[("M007_T8", 10)] == "10.jpg"
    assert names[("F003_T2", 1)] == "0001.jpg"
    assert all(r.frame != 9999 for r in result.records)  # images without a label row are not records


def test_bp4dplus_is_its_own_dataset(bp4d):
    root, _ = bp4d
    result = read_dataset("bp4dplus", root)
    assert result.dataset == "bp4dplus" and {r.dataset for r in result.records} == {"bp4dplus"}


def _bad_bp4d(root: Path, tmp_path: Path, edit) -> Path:
    """Copy F001_T1.csv into a fresh labels folder with ``edit(lines)`` applied."""
    lines = (root / "AUCoding" / "AU_OCC" / "F001_T1.csv").read_text().splitlines()
    edit(lines)
    fx.write_lines(tmp_path / "occ" / "F001_T1.csv", lines)
    return tmp_path / "occ"


def _set_cell(lines: list[str], line: int, cell: int, value: str) -> None:
    cells = lines[line - 1].split(",")
    cells[cell] = value
    lines[line - 1] = ",".join(cells)


BP4D_BAD_ROWS = {  # edit of line 3 (frame 201, a labelled frame with an image) -> message part
    "letter": (lambda ls: _set_cell(ls, 3, 4, "x"), "'x' is not a number"),
    "three": (lambda ls: _set_cell(ls, 3, 4, "3"), "'3' is not 0, 1"),
    "ragged": (lambda ls: ls.__setitem__(2, ls[2] + ",1"), "values where the header has"),
    "duplicate": (lambda ls: ls.__setitem__(2, ls[1]), "frame 200 appears twice"),
}


@pytest.mark.parametrize("case", sorted(BP4D_BAD_ROWS))
def test_bp4d_bad_row_errors_or_counts(bp4d, tmp_path, case):
    root, truth = bp4d
    edit, part = BP4D_BAD_ROWS[case]
    occ = _bad_bp4d(root, tmp_path, edit)
    with pytest.raises(DatasetError) as e:
        read_dataset("bp4d", root, labels_dir=occ)
    msg = error_line(e)
    assert "F001_T1.csv:3:" in msg and part in msg and "strict=False" in msg
    loose = read_dataset("bp4d", root, labels_dir=occ, strict=False)
    good = [r for r in truth["rows"] if r["video"] == "F001_T1" and r["image"]
            and (r["video"], r["frame"]) != fx.BP4D_ALL_NINE]
    assert loose.skipped == {"bad_row": 1, "unannotated": 1}
    assert len(loose.records) == len(good) - 1
    assert 201 not in {r.frame for r in loose.records}


def test_bp4d_missing_header_is_an_error(bp4d, tmp_path):
    root, _ = bp4d
    occ = _bad_bp4d(root, tmp_path, lambda ls: ls.pop(0))
    with pytest.raises(DatasetError) as e:
        read_dataset("bp4d", root, labels_dir=occ, strict=False)
    msg = error_line(e)
    assert "F001_T1.csv:1:" in msg and "header" in msg


def test_bp4d_missing_au_column_is_an_error(bp4d, tmp_path):
    root, _ = bp4d
    occ = _bad_bp4d(root, tmp_path, lambda ls: _set_cell(ls, 1, 23, "55"))  # column 23 renamed
    with pytest.raises(DatasetError) as e:
        read_dataset("bp4d", root, labels_dir=occ)
    assert "F001_T1.csv:1:" in error_line(e) and "AU23" in str(e.value)


def test_bp4d_wrong_images_folder_is_an_error(bp4d, tmp_path):
    root, _ = bp4d
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError) as e:
        read_dataset("bp4d", root, images_dir=tmp_path / "empty")
    assert "no labelled frames" in error_line(e) and "missing_image" in str(e.value)
    with pytest.raises(DatasetError):
        read_dataset("bp4d", tmp_path / "nowhere")


# --- DISFA ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def disfa(tmp_path_factory):
    root = tmp_path_factory.mktemp("disfa")
    return root, fx.make_disfa(root)


def disfa_expected(truth: dict, aus: list[int], camera: str, threshold: float = 2):
    counts = {name(a): {"pos": 0, "neg": 0, "unknown": 0} for a in aus}
    skipped: Counter = Counter()
    kept = {}
    for subject, table in truth["intensity"].items():
        n_video = truth["videos"][subject][camera]
        for frame, values in table.items():
            if n_video is None:
                skipped["missing_video"] += 1
            elif frame > n_video:
                skipped["beyond_video"] += 1
            else:
                kept[(subject, frame)] = [values.get(a) for a in aus]
                for a in aus:
                    v = values.get(a)
                    counts[name(a)]["unknown" if v is None else "pos" if v >= threshold else "neg"] += 1
    return counts, dict(skipped), kept


@pytest.mark.parametrize("camera", ["left", "right"])
def test_disfa_counts_threshold_and_video_frames(disfa, camera):
    root, truth = disfa
    eval_aus = [1, 2, 4, 6, 9, 12, 25, 26]
    result = read_dataset("disfa", root, camera=camera)
    counts, skipped, kept = disfa_expected(truth, eval_aus, camera)
    assert result.aus == [name(a) for a in eval_aus]
    assert result.skipped == skipped
    assert skipped == ({"beyond_video": 2, "missing_video": 6} if camera == "left"
                       else {"beyond_video": 4, "missing_video": 9 + 6})
    assert len(result.records) == len(kept)
    folder, prefix = ("Videos_LeftCamera", "Left") if camera == "left" else ("Video_RightCamera", "Right")
    for rec in result.records:
        values = kept[(rec.subject, rec.frame)]
        assert rec.image_path is None and rec.video_index == rec.frame - 1
        assert Path(rec.video_path) == root / folder / f"{prefix}Video{rec.subject}_comp.avi"
        for j, v in enumerate(values):
            assert bool(rec.mask[j]) == (v is not None)
            assert rec.labels[j] == (v is not None and v >= 2)
            assert (math.isnan(rec.intensity[j]) if v is None else rec.intensity[j] == v)
    manifest = build_manifest("disfa", result.records, result.aus, 0, result.skipped)
    assert manifest["labels"] == counts and manifest["subjects"] == len({s for s, _ in kept})
    assert counts["AU09"]["unknown"] == (1 if camera == "left" else 0)  # the gap in SN002_au9.txt


def test_disfa_threshold_option_and_all_aus(disfa):
    root, truth = disfa
    all12 = read_dataset("disfa", root, aus="all", threshold=3)
    counts, _, _ = disfa_expected(truth, fx.DISFA_CODED, "left", threshold=3)
    assert all12.aus == [name(a) for a in fx.DISFA_CODED]
    assert build_manifest("disfa", all12.records, all12.aus, 0)["labels"] == counts


def test_disfa_frame_count_comes_from_the_video(disfa):
    root, truth = disfa
    result = read_dataset("disfa", root)
    sn001 = [r for r in result.records if r.subject == "SN001"]
    cap = cv2.VideoCapture(sn001[-1].video_path)
    cap.set(cv2.CAP_PROP_POS_FRAMES, sn001[-1].video_index)
    assert cap.read()[0]  # the last kept frame exists ...
    assert len(sn001) == truth["videos"]["SN001"]["left"]  # ... and no later one was kept
    cap.release()


def _disfa_copy(root: Path, tmp_path: Path, edit_au1) -> Path:
    """A one-subject DISFA tree (SN001, symlinked video) whose SN001_au1.txt lines get ``edit_au1``."""
    new = tmp_path / "d"
    for src in (root / "ActionUnit_Labels" / "SN001").iterdir():
        fx.write_lines(new / "ActionUnit_Labels" / "SN001" / src.name, src.read_text().splitlines())
    path = new / "ActionUnit_Labels" / "SN001" / "SN001_au1.txt"
    lines = path.read_text().splitlines()
    edit_au1(lines)
    fx.write_lines(path, lines)
    (new / "Videos_LeftCamera").mkdir()
    os.symlink(root / "Videos_LeftCamera" / "LeftVideoSN001_comp.avi",
               new / "Videos_LeftCamera" / "LeftVideoSN001_comp.avi")
    return new


@pytest.mark.parametrize("bad,part", [("3,7", "not an integer 0..5"), ("3,x", "'x' is not a number"),
                                      ("3,1,2", "3 values"), ("0,1", "not a 1-based frame")])
def test_disfa_bad_line_errors_or_counts(disfa, tmp_path, bad, part):
    root, _ = disfa
    new = _disfa_copy(root, tmp_path, lambda ls: ls.__setitem__(2, bad))
    with pytest.raises(DatasetError) as e:
        read_dataset("disfa", new)
    msg = error_line(e)
    assert "SN001_au1.txt:3:" in msg and part in msg
    loose = read_dataset("disfa", new, strict=False)
    assert loose.skipped == {"bad_row": 1, "beyond_video": 2}
    rec = next(r for r in loose.records if r.frame == 3)
    assert not rec.mask[0] and math.isnan(rec.intensity[0])  # that AU is unknown there, not negative


def test_disfa_missing_au_file_and_bad_options(disfa, tmp_path):
    root, _ = disfa
    new = _disfa_copy(root, tmp_path, lambda ls: None)
    (new / "ActionUnit_Labels" / "SN001" / "SN001_au26.txt").unlink()
    with pytest.raises(DatasetError) as e:
        read_dataset("disfa", new)
    assert "SN001_au26.txt" in error_line(e)
    with pytest.raises(DatasetError, match="camera"):
        read_dataset("disfa", root, camera="center")
    with pytest.raises(DatasetError, match="AU set"):
        read_dataset("disfa", root, aus="some")


# --- Aff-Wild2 --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def affwild2(tmp_path_factory):
    root = tmp_path_factory.mktemp("affwild2")
    return root, fx.make_affwild2(root)


def abaw_code(c: int):
    return None if c == -1 else c


def test_affwild2_counts_and_line_to_image_numbering(affwild2):
    root, truth = affwild2
    result = read_dataset("affwild2", root)
    counts, skipped, kept = tally(truth["rows"], fx.ABAW_AUS, abaw_code)
    assert result.aus == [name(a) for a in fx.ABAW_AUS]
    assert result.skipped == dict(skipped) == {"unannotated": 1, "missing_image": 2}
    check_records(result, kept)
    assert sorted({r.subject for r in result.records}) == ["vidA", "vidB"]
    for rec in result.records:  # image i+1 holds gray level 10*(i+1): the pixels prove the pairing
        assert Path(rec.image_path).name == f"{rec.frame:05d}.jpg"
        assert Path(rec.image_path).parent.name == rec.video
        assert abs(int(cv2.imread(rec.image_path)[8, 8, 0]) - rec.frame * 10) <= 3
    assert build_manifest("affwild2", result.records, result.aus, 0)["labels"] == counts
    assert ("vidA", 6) in kept and ("vidA", 6) in {(r.video, r.frame) for r in result.records}  # no shift


def test_affwild2_root_options(affwild2, tmp_path):
    root, truth = affwild2
    train_only = read_dataset("affwild2", root, sets=["Train_Set"])
    assert {r.video for r in train_only.records} == {"vidA"}
    moved = read_dataset("affwild2", tmp_path, annotations_dir=truth["annotations"],
                         images_dirs=[root / "cropped_aligned"])
    assert len(moved.records) == len(read_dataset("affwild2", root).records)


def _bad_abaw(root: Path, tmp_path: Path, edit) -> Path:
    lines = (root / "Third_ABAW_Annotations" / "AU_Detection_Challenge" / "Train_Set" / "vidA.txt"
             ).read_text().splitlines()
    edit(lines)
    fx.write_lines(tmp_path / "ann" / "vidA.txt", lines)
    return tmp_path / "ann"


@pytest.mark.parametrize("edit,part", [
    (lambda ls: _set_cell(ls, 2, 0, "2"), "'2' is not 0, 1"),
    (lambda ls: ls.__setitem__(1, ls[1] + ",0"), "values where the header has"),
    (lambda ls: ls.insert(1, ""), "blank line inside"),
])
def test_affwild2_bad_line(affwild2, tmp_path, edit, part):
    root, _ = affwild2
    ann = _bad_abaw(root, tmp_path, edit)
    with pytest.raises(DatasetError) as e:
        read_dataset("affwild2", root, annotations_dir=ann)
    msg = error_line(e)
    assert "vidA.txt:2:" in msg and part in msg
    assert read_dataset("affwild2", root, annotations_dir=ann, strict=False).skipped["bad_row"] == 1


def test_affwild2_missing_header(affwild2, tmp_path):
    root, _ = affwild2
    ann = _bad_abaw(root, tmp_path, lambda ls: ls.pop(0))
    with pytest.raises(DatasetError) as e:
        read_dataset("affwild2", root, annotations_dir=ann)
    assert "vidA.txt:1:" in error_line(e) and "AU1,AU2,AU4" in str(e.value)


# --- GFT --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gft(tmp_path_factory):
    root = tmp_path_factory.mktemp("gft")
    return root, fx.make_gft(root)


def gft_code(c: str):
    return None if c in ("9", "") else int(c)


def test_gft_counts_blank_and_nine_masked(gft):
    root, truth = gft
    result = read_dataset("gft", root)
    counts, skipped, kept = tally(truth["rows"], fx.GFT_AUS, gft_code)
    assert result.aus == [name(a) for a in fx.GFT_AUS]
    assert result.skipped == dict(skipped) == {"unannotated": 1, "missing_image": 1}
    check_records(result, kept)
    assert build_manifest("gft", result.records, result.aus, 0)["labels"] == counts
    names = {(r.video, r.frame): Path(r.image_path).name for r in result.records}
    assert names[("001_1", 1)] == "0001.jpg" and names[("002_3", 1)] == "1.jpg"


def test_gft_malformed(gft, tmp_path):
    root, _ = gft
    lines = (root / "AUs" / "001_1.csv").read_text().splitlines()
    fx.write_lines(tmp_path / "a" / "001_1.csv", lines[1:])
    with pytest.raises(DatasetError) as e:
        read_dataset("gft", root, labels_dir=tmp_path / "a")
    assert "001_1.csv:1:" in error_line(e) and "header" in str(e.value)
    _set_cell(lines, 3, 1, "x")
    fx.write_lines(tmp_path / "b" / "001_1.csv", lines)
    with pytest.raises(DatasetError) as e:
        read_dataset("gft", root, labels_dir=tmp_path / "b")
    assert "001_1.csv:3:" in error_line(e) and "AU01" in str(e.value)


# --- manifest CSV -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def manifest_csv(tmp_path_factory):
    root = tmp_path_factory.mktemp("manifest")
    return fx.make_manifest(root)


def test_manifest_csv_reader(manifest_csv):
    result = read_dataset("manifest", manifest_csv)
    assert result.aus == ["AU01", "AU04", "AU12"]
    assert result.skipped == {"unannotated": 1, "missing_image": 1}
    code = {"1": 1, "0": 0, "-1": None, "": None}
    expected = {}
    for path, subject, video, frame, kind, au1, au12, au4, au12_int, exists in fx.MANIFEST_ROWS:
        values = [code[au1], code[au4], code[au12]]
        if exists and any(v is not None for v in values):
            expected[str(manifest_csv.parent / path)] = (subject, video or subject, int(frame), kind or "real",
                                                         values, au12_int)
    assert len(result.records) == len(expected) == 4
    for rec in result.records:
        subject, video, frame, kind, values, au12_int = expected[rec.image_path]
        assert (rec.subject, rec.video, rec.frame, rec.label_kind) == (subject, video, frame, kind)
        assert [bool(m) for m in rec.mask] == [v is not None for v in values]
        assert [float(x) for x in rec.labels] == [float(v or 0) for v in values]
        assert math.isnan(rec.intensity[0]) and math.isnan(rec.intensity[1])  # no AU01/AU04 intensity columns
        want = float(au12_int) if au12_int not in ("", "-1") else math.nan
        assert (math.isnan(rec.intensity[2]) and math.isnan(want)) or rec.intensity[2] == want
    manifest = build_manifest("manifest", result.records, result.aus, 3, result.skipped)
    assert manifest["label_kind"] == "mixed" and manifest["subjects"] == 3
    assert manifest["labels"] == {"AU01": {"pos": 1, "neg": 2, "unknown": 1}, "AU04": {"pos": 1, "neg": 1, "unknown": 2},
                                  "AU12": {"pos": 2, "neg": 2, "unknown": 0}}
    assert len(read_dataset("manifest", manifest_csv.parent).records) == 4  # a folder with one CSV works too


MANIFEST_BAD = {  # header or row edit -> (line in message, message part)
    "no_path": (lambda ls: ls.__setitem__(0, ls[0].replace("path", "file")), 1, "no path column"),
    "unknown_au": (lambda ls: ls.__setitem__(0, ls[0].replace("AU04", "AU03")), 1, "'AU03'"),
    "bad_value": (lambda ls: _set_cell(ls, 2, 5, "2"), 2, "AU01: '2' is not 0, 1"),
    "bad_kind": (lambda ls: _set_cell(ls, 3, 4, "gold"), 3, "label_kind 'gold'"),
    "bad_intensity": (lambda ls: _set_cell(ls, 2, 8, "7"), 2, "intensity '7'"),
    "ragged": (lambda ls: ls.__setitem__(2, ls[2] + ",extra"), 3, "values where the header has"),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_BAD))
def test_manifest_csv_malformed(manifest_csv, tmp_path, case):
    edit, line, part = MANIFEST_BAD[case]
    lines = manifest_csv.read_text().splitlines()
    edit(lines)
    os.symlink(manifest_csv.parent / "imgs", tmp_path / "imgs")
    bad = fx.write_lines(tmp_path / f"bad_{case}.csv", lines)
    with pytest.raises(DatasetError) as e:
        read_dataset("manifest", bad)
    msg = error_line(e)
    assert f"bad_{case}.csv:{line}:" in msg and part in msg
    if line > 1:
        assert read_dataset("manifest", bad, strict=False).skipped["bad_row"] == 1


# --- table ------------------------------------------------------------------------------------------

def test_reader_table(bp4d):
    root, _ = bp4d
    assert {"bp4d", "disfa", "affwild2", "gft", "manifest"} <= set(READERS)
    with pytest.raises(DatasetError, match="did you mean 'bp4d'"):
        read_dataset("bp4", root)
    with pytest.raises(DatasetError, match="unknown option"):
        read_dataset("bp4d", root, camera="left")


# --- manifest.json ----------------------------------------------------------------------------------

def test_manifest_written_atomically(bp4d, tmp_path):
    root, _ = bp4d
    result = read_dataset("bp4d", root)
    manifest = build_manifest("bp4d", result.records, result.aus, frames_with_face=17, skipped={"no_face": 1})
    assert list(manifest)[:7] == ["dataset", "frames", "frames_with_face", "subjects", "labels", "label_kind",
                                  "skipped"]
    out = write_manifest(manifest, tmp_path / "cache" / "manifest.json")
    assert os.listdir(tmp_path / "cache") == ["manifest.json"]  # no temporary left behind
    assert json.loads(out.read_text()) == manifest == read_manifest(out)
    assert manifest["frames_with_face"] == 17 and manifest["skipped"] == {"no_face": 1}
    with pytest.raises(ValueError, match="lacks"):
        write_manifest({"dataset": "x"}, tmp_path / "m.json")
