"""The held-out identities and ``python -m train.realcheck`` as a user runs it (real engine, real
photos, real clip, MediaPipe in its child), with every number recomputed here from the outputs it
saved, independently (scikit-learn, the README's blendshape table)."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from train.data import holdout

ROOT = Path(__file__).resolve().parents[1]


def _ids(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return sorted(r["face_id"] for r in csv.DictReader(f))


def test_held_out_lists_are_the_seeded_draw_disjoint_and_cover_both_sets(data_dir):
    london, canada = _ids(data_dir / "london" / "info.csv"), _ids(data_dir / "canada" / "info.csv")
    assert (len(london), len(canada)) == (82, 30)
    for name, ids in (("london", london), ("canada", canada)):
        held = holdout.HELD_OUT[name]
        assert sorted(held) == holdout.draw(ids) == holdout.draw(list(reversed(ids)))  # literal = the draw
        assert held <= set(ids) and len(held) == -(-len(ids) // 4)  # a quarter, rounded up
        rest = [i for i in ids if not holdout.is_held_out(name, i)]
        assert set(rest).isdisjoint(held) and len(rest) + len(held) == len(ids)
    assert holdout.is_held_out_subject("london_001") and not holdout.is_held_out_subject("london_003")
    assert holdout.is_held_out_subject("canada_049f") and not holdout.is_held_out_subject("canada_003f")
    assert not holdout.is_held_out_subject("pexels_wolfganglanger") and holdout.is_held_out("people", "lisa1")
    with pytest.raises(ValueError, match="unknown dataset 'londn'"):
        holdout.is_held_out("londn", "001")
    faces = holdout.held_out_files(data_dir)
    by = {(f.dataset, f.expression) for f in faces}
    assert by == {("london", "neutral"), ("london", "smiling"), ("canada", "neutral"), ("people", "neutral")}
    london_photos = [f for f in faces if f.dataset == "london"]
    assert len(london_photos) == 2 * len(holdout.HELD_OUT["london"])  # both photos of each identity
    assert all(f.path.is_file() for f in faces)
    people = list((data_dir / "media" / "people").glob("*.jpg"))
    assert len(people) == 8 and len([f for f in faces if f.dataset == "people"]) == len(people)


def test_held_out_files_names_a_missing_photo(tmp_path):
    with pytest.raises(FileNotFoundError, match="london/neutral/001.jpg not found"):
        holdout.held_out_files(tmp_path)


def _tiny_engine(out: Path) -> Path:
    from engine_factory import base_card, write_onnx

    p = write_onnx(out / "tiny.onnx")
    card = base_card()
    card.thresholds = {a: 0.5 for a in card.aus} | {"AU12": 0.4}  # a card threshold that is not 0.5
    card.write(p)
    return p


def _run(*args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "train.realcheck", *map(str, args)], cwd=ROOT, check=False,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def checked(tmp_path_factory, data_dir, face_model):
    pytest.importorskip("mediapipe")
    tmp = tmp_path_factory.mktemp("realcheck")
    engine = _tiny_engine(tmp)
    proc = _run("--engine", engine, "--data", data_dir, "--out", tmp / "out", "--limit", 2,
                "--face-model", face_model)
    assert proc.returncode == 0, proc.stderr
    return engine, tmp / "out", json.loads((tmp / "out" / "realcheck.json").read_text()), proc


def _close(a, b):
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) < 1e-12)


def test_realcheck_numbers_equal_a_direct_computation(checked):
    engine, out, rep, proc = checked
    faces = rep["photos"]["faces"]
    assert len(faces) == 2 + 2 + 2 + 2 and rep["photos"]["total"] == 8  # --limit 2 per group
    thr = json.loads(Path(str(engine) + ".json").read_text())["thresholds"]
    for side, t12 in (("ours", thr["AU12"]), ("peer", 0.5)):
        found = [f for f in faces if f[side] is not None]
        rows = rep["rows"][side]
        assert rows["faces_not_found"]["value"] == len(faces) - len(found)
        y = [int(f["expression"] == "smiling") for f in found]
        s = np.array([f[side]["AU12"] for f in found])
        assert _close(rows["au12_roc_auc"]["value"], roc_auc_score(y, s))
        assert _close(rows["au12_accuracy"]["value"], accuracy_score(y, s >= t12))
        neutral = [f[side] for f in found if f["expression"] == "neutral"]
        t = {a: thr[a] for a in thr} if side == "ours" else {a: 0.5 for a in neutral[0]}
        lit = [[a for a in t if p[a] >= t[a]] for p in neutral]
        assert _close(rows["neutral_lit_per_face"]["value"], float(np.mean([len(x) for x in lit])))
        assert rows["neutral_lit_per_face"]["per_au"] == {a: sum(a in x for x in lit) for a in t}
    # the peer's AU12 is the README's mapping: mean of mouthSmileLeft/Right, from its raw scores
    for f in faces:
        if f["peer"] is not None:
            b = f["peer_blendshapes"]
            assert _close(f["peer"]["AU12"], (b["mouthSmileLeft"] + b["mouthSmileRight"]) / 2)
            assert "AU25" not in f["peer"] and "AU23" not in f["peer"]  # no blendshape of their own
    # clip: agreement per AU with sklearn on the saved series, where silver is known
    series = rep["clip"]["series"]
    assert rep["clip"]["frames"] == len(series["frame"]) == 2
    for a, r in rep["clip"]["per_au"].items():
        sv = series["silver"][a]
        for side, t in (("ours", thr[a]), ("peer", 0.5)):
            keep = [i for i, (v, p) in enumerate(zip(sv, series[side][a])) if v is not None and p is not None]
            y = [int(sv[i]) for i in keep]
            pred = [int(series[side][a][i] >= t) for i in keep]
            assert r[side]["frames"] == len(keep)
            assert _close(r[side]["accuracy"], accuracy_score(y, pred) if keep else None)
            want = f1_score(y, pred, zero_division=0) if (sum(y) + sum(pred)) else None
            assert _close(r[side]["f1"], want)
    assert "AU23" not in rep["clip"]["per_au"] and "AU12" in rep["clip"]["per_au"]
    md = (out / "realcheck.md").read_text()
    assert "| AU12 ROC-AUC" in md and "MediaPipe" in md and proc.stdout == md
    assert "(trained on synthetic labels)" in md  # the card's training section, not "not stated"
    assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_realcheck_goes_through_the_runtime(checked, data_dir, face_model):
    """The saved probabilities of a photo are what AUDetector gives on it, in the order of the photos."""
    import cv2

    from runtime.detector import AUDetector

    engine, _, rep, _ = checked
    face = rep["photos"]["faces"][2]  # a London smiling photo (after 2 neutral ones)
    assert face["expression"] == "smiling" and face["path"].endswith(f"smiling/{face['face_id']}.jpg")
    with AUDetector(str(engine), max_faces=1, face_model=face_model, smooth=False) as det:
        got = det.process(cv2.imread(face["path"]), 0.0).faces[0].au_prob
    assert max(abs(got[a] - face["ours"][a]) for a in got) < 1e-5


def test_realcheck_without_peer_says_so_in_one_line(tmp_path, data_dir, face_model):
    engine = _tiny_engine(tmp_path)
    proc = _run("--engine", engine, "--data", data_dir, "--out", tmp_path / "out", "--limit", 1,
                "--peer", "none", "--face-model", face_model)
    assert proc.returncode == 0, proc.stderr
    rep = json.loads((tmp_path / "out" / "realcheck.json").read_text())
    assert rep["rows"]["peer"] is None and rep["peer"]["skipped"] == "not requested (--peer none)"
    assert "MediaPipe peer skipped: not requested (--peer none)" in proc.stdout
    assert sum("MediaPipe peer skipped" in line for line in proc.stderr.splitlines()) == 1
    assert all("peer" not in f for f in rep["photos"]["faces"])


@pytest.mark.parametrize("kind", ["missing", "garbage", "no_card"])
def test_realcheck_bad_engine_is_one_line_exit_2(tmp_path, data_dir, kind):
    engine = tmp_path / "bad.onnx"
    if kind == "garbage":
        engine.write_bytes(b"not an onnx model")
        _tiny_engine(tmp_path)
        (tmp_path / "tiny.onnx.json").rename(tmp_path / "bad.onnx.json")
    elif kind == "no_card":
        from engine_factory import write_onnx

        write_onnx(engine)
    proc = _run("--engine", engine, "--data", data_dir, "--out", tmp_path / "out", timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("au-edge: error:") and "bad.onnx" in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()


def test_realcheck_bad_data_dir_is_one_line_exit_2(tmp_path):
    proc = _run("--engine", "x.onnx", "--data", tmp_path / "nowhere", timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "nowhere" in proc.stderr and "AU_DATA_DIR" in proc.stderr


# ---- the read counted in the cards (train.realcheck --record, train.realcheck.record) ---------------

def test_a_read_is_counted_in_every_card_of_the_export(checked, exported, tmp_path):
    import hashlib
    import shutil

    from runtime.card import load_card
    from train.realcheck.record import record_read

    _, _, rep, _ = checked
    folder = tmp_path / "export"
    shutil.copytree(exported["out"], folder)
    engine = folder / "au_int8.tflite"
    with pytest.raises(ValueError, match="--limit 2"):  # the fixture's run is a quick look: not a read
        record_read(rep, engine, folder)
    assert all("heldout" not in json.loads(c.read_text()) for c in folder.glob("*.json") if c.name != "parity.json")
    full = {**rep, "limit": None}  # the same report as a full run would write it
    assert record_read(full, engine, folder) == 1 and record_read(full, engine, folder) == 2
    for name in ("au_fp32.onnx", "au_fp32.tflite", "au_int8.tflite", "au_int8.onnx"):
        block = load_card(folder / name).extra["heldout"]  # the card still loads, its sha256 still its engine's
        assert block["reads"] == 2 and block["last_read"]["engine"] == "au_int8.tflite"
        assert block["last_read"]["engine_sha256"] == hashlib.sha256(engine.read_bytes()).hexdigest()
        got = block["last_read"]["results"]["ours"]["au12_roc_auc"]["value"]
        assert got == rep["rows"]["ours"]["au12_roc_auc"]["value"]


def test_record_with_limit_is_refused_before_reading(tmp_path, data_dir):
    proc = _run("--engine", "x.onnx", "--data", data_dir, "--out", tmp_path / "out", "--limit", 2,
                "--record", tmp_path, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "--record" in proc.stderr and "--limit 2" in proc.stderr and not (tmp_path / "out").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = _run("--engine", "x.onnx", "--data", data_dir, "--out", tmp_path / "out", "--record", empty, timeout=120)
    assert proc.returncode == 2 and "no engine with a card" in proc.stderr and not (tmp_path / "out").exists()
