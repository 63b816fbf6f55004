"""``train.posedcheck``: posed expressions rendered on validation identities' photos, read by an engine.

The criteria are checked on hand-written active sets; the run renders real ICT warps of the shared
London photos of a deploy-split run's validation identities (the tiny test cache's), reads them
with the shipped model through the runtime and writes the report. Never a held-out identity.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from train.posedcheck import EXPRESSIONS, read_right

REPO = Path(__file__).resolve().parents[1]


def test_what_counts_as_read_right():
    surprise, disgust, anger = EXPRESSIONS["surprise"], EXPRESSIONS["disgust"], EXPRESSIONS["anger"]
    assert read_right(surprise, {"AU01", "AU02", "AU26"})
    assert not read_right(surprise, {"AU01", "AU26"})  # AU02 missing
    assert not read_right(surprise, {"AU01", "AU02", "AU04"})  # brows lowered contradicts
    assert read_right(disgust, {"AU10"}) and read_right(disgust, {"AU09", "AU10"})
    assert not read_right(disgust, {"AU10", "AU12"}) and not read_right(disgust, set())
    assert read_right(anger, {"AU04", "AU07"}) and not read_right(anger, {"AU04", "AU12"})
    assert not read_right(anger, None)  # no face found
    grief = EXPRESSIONS["grief"]
    assert read_right(grief, {"AU01", "AU04", "AU06"}) and not read_right(grief, {"AU04", "AU12"})
    assert not grief.issue_row and sum(e.issue_row for e in EXPRESSIONS.values()) == 4


@pytest.mark.slow
def test_a_run_renders_validation_faces_and_reads_them(deploy_run, data_dir, tmp_path):
    from test_default_model import shipped_or_fail

    from train.data.holdout import is_held_out_subject

    shipped_or_fail()
    ckpt = deploy_run
    out = tmp_path / "posed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AU_DATA_DIR": str(data_dir)}
    proc = subprocess.run([sys.executable, "-m", "train.posedcheck", "--checkpoint", str(ckpt), "--out", str(out),
                           "--limit", "2", "--no-peer", "--threads", "1"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "posedcheck.json").read_text())
    assert report["label_kind"] == "synthetic" and report["photos"] == 2
    subjects = {f"london_{Path(f['photo']).stem}" for f in report["faces"]}
    assert len(subjects) == 2 and not any(is_held_out_subject(s) for s in subjects)
    assert all(Path(f["photo"]).parent.name == "neutral" for f in report["faces"])
    for name in EXPRESSIONS:
        row = report["ours"][name]
        assert row["faces"] == 2 and row["found"] == 2 and 0 <= row["read_right"] <= 2
        assert len(list((out / "faces").glob(f"{name}_*.png"))) == 2
    assert "happiness (6+12)" in (out / "posedcheck.md").read_text() and "happiness (6+12)" in proc.stdout
    four = [report["ours"][n]["read_right"] for n, e in EXPRESSIONS.items() if e.issue_row]
    assert report["ours"]["issue_row"] == {"faces": 8, "read_right": sum(four)}


def test_options_out_of_range_are_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "train.posedcheck", "--checkpoint", str(tmp_path / "x.pt"), "--out",
                           str(tmp_path / "o"), "--limit", "-1"], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "--limit -1" in proc.stderr
