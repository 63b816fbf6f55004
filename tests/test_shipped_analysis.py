"""What one analysis run of the shipped model gives on the Pexels clip, as a user runs it:
``au-edge --engine default --jsonl --csv --openface-csv`` writes AU probabilities, intensities (for
the AUs the card declares), head pose and AU45 to JSONL and both CSVs, and ``read_results`` turns
each into the same DataFrame.

The expectations on the values come from reading the clip by eye (``train/clipcheck.py``'s windows:
frames 0-60 a sad face with the brows lowered and drawn together, 312-456 a laugh), not from the
code under test.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_default_model import shipped_or_fail

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SAD, LAUGH = (0, 60), (312, 456)
FRAMES = 472


def _au_edge(*args) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "runtime.camera", "--engine", "default", "--no-show", "--threads", "1",
                           *map(str, args)], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def clip_run(media, tmp_path_factory) -> dict:
    shipped = shipped_or_fail()
    out = tmp_path_factory.mktemp("shipped_clip")
    clip = media / "WolfgangLanger_Pexels.mp4"
    _au_edge("--source", clip, "--jsonl", out / "au.jsonl", "--csv", out / "au.csv",
             "--openface-csv", out / "openface.csv")
    card = json.loads((shipped / "au_default_int8.tflite.json").read_text())
    return {"out": out, "card": card}


def _window(df, lo: int, hi: int):
    return df[(df.frame >= lo) & (df.frame <= hi)]


def test_the_card_declares_intensity_with_its_label_kinds(clip_run):
    section = clip_run["card"]["output"]["intensity"]
    assert "AU12" in section["aus"] and "AU06" in section["aus"] and "AU04" in section["aus"]
    assert all(kinds == ["synthetic"] for kinds in section["label_kinds"].values())  # ICT warps' grades only
    assert set(section["aus"]) < set(clip_run["card"]["aus"])  # only the AUs it supports


def test_jsonl_holds_probabilities_intensities_pose_and_au45(clip_run):
    declared = set(clip_run["card"]["output"]["intensity"]["aus"])
    records = [json.loads(line) for line in (clip_run["out"] / "au.jsonl").read_text().splitlines()]
    frames = [r for r in records if "frame" in r and "faces" in r]
    assert len(frames) == FRAMES and sum(bool(r["faces"]) for r in frames) >= 0.98 * FRAMES
    for r in frames:
        for face in r["faces"]:
            assert set(face["au_intensity"]) == declared
            assert all(0.0 <= v <= 5.0 for v in face["au_intensity"].values())
            assert {"pitch", "yaw", "roll"} <= set(face["head_pose"]) and "AU45" in face["au_prob"]
            assert set(clip_run["card"]["aus"]) <= set(face["au_prob"])


def test_every_file_reads_into_the_same_dataframe(clip_run):
    from runtime import read_results

    frames = {name: read_results(clip_run["out"] / name).to_dataframe()
              for name in ("au.jsonl", "au.csv", "openface.csv")}
    declared = clip_run["card"]["output"]["intensity"]["aus"]
    for name, df in frames.items():
        assert len(df[df.face_id.notna()]) >= 0.98 * FRAMES, name  # a face (some half hidden by a hand)
        for col in [f"{a}_r" for a in declared] + ["AU12", "AU12_c", "AU45", "Pitch", "Yaw", "Roll"]:
            assert col in df.columns, (name, col)
        assert "AU07_r" not in df.columns and "AU14_r" not in df.columns  # not declared: no invented column
    a, b, c = (frames[n][frames[n].face_id.notna()].set_index("frame") for n in ("au.jsonl", "au.csv", "openface.csv"))
    common = a.index.intersection(b.index).intersection(c.index)
    assert len(common) >= 0.98 * FRAMES
    assert (a.loc[common, "success"] == b.loc[common, "success"]).all()  # score >= 0.5 in every format
    assert (b.loc[common, "success"] == c.loc[common, "success"]).all()
    for col in ("AU12_r", "AU06_r", "Yaw"):  # the files round to 2-3 decimals; one run and the other agree
        assert np.allclose(a.loc[common, col], b.loc[common, col], atol=0.06), col
        assert np.allclose(b.loc[common, col], c.loc[common, col], atol=0.06), col


def test_intensities_follow_what_the_eye_reads(clip_run):
    from runtime import read_results

    df = read_results(clip_run["out"] / "au.jsonl").to_dataframe()
    sad, laugh = _window(df, *SAD), _window(df, *LAUGH)
    # the laugh: lip corners pulled and cheeks raised, well above the sad frames
    assert laugh.AU12_r.median() >= 1.5 and laugh.AU12_r.median() >= sad.AU12_r.median() + 1.0
    assert laugh.AU06_r.median() >= sad.AU06_r.median() + 1.0
    # the sad face: brows lowered and drawn together, gone in the laugh
    assert sad.AU04_r.median() >= 1.0 and laugh.AU04_r.median() <= 0.5


@pytest.mark.parametrize("flags, words", [
    (["--jsonl", "{d}/a.out", "--csv", "{d}/a.out"], "--jsonl and --csv both write to the same file"),
    (["--csv", "{d}/b.csv", "--openface-csv", "{d}/./b.csv"], "--csv and --openface-csv both write to the same file"),
    (["--jsonl", "-", "--openface-csv", "-"], "--jsonl and --openface-csv both write to stdout"),
])
def test_two_outputs_on_one_file_are_one_line_and_touch_nothing(media, tmp_path, flags, words):
    (tmp_path / "a.out").write_text("the user's file\n")
    args = [f.format(d=tmp_path) for f in flags]
    proc = subprocess.run([sys.executable, "-m", "runtime.camera", "--engine", "default", "--no-show", "--source",
                           str(media / "WolfgangLanger_Pexels.mp4"), *args], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("au-edge: error:"), proc.stderr
    assert words in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "a.out").read_text() == "the user's file\n" and not (tmp_path / "b.csv").exists()
