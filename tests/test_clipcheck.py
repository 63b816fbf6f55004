"""``train.clipcheck``: the clip's eye-read windows and codes, counted right, and the CLI on the real clip."""
from __future__ import annotations

import json
import subprocess
import sys

from train.clipcheck import code_rows, window_rows


def _frame(i: int, active: list[str] | None) -> dict:
    return {"frame": i, "time_s": i / 30, "active": active,
            "prob": None if active is None else {"AU04": 0.0, "AU12": 0.0, "AU45": 0.0}}


def test_window_fractions_count_only_frames_with_a_face():
    # sad window 0-60: AU12 on in 3 of the 50 frames with a face (10 frames without one)
    frames = [_frame(i, ["AU12"] if i < 3 else []) for i in range(50)] + [_frame(i, None) for i in range(50, 61)]
    rows = {(r["window"], r["au"]): r for r in window_rows(frames)}
    assert rows[("sad 0-60", "AU12")] == {"window": "sad 0-60", "au": "AU12", "frames": 50, "on": 3,
                                          "fraction": 0.06, "goal": "<= 0.10", "met": True}
    assert rows[("sad 0-60", "AU04")]["met"] is False and rows[("sad 0-60", "AU04")]["on"] == 0
    assert rows[("laugh 312-456", "AU25")] == {"window": "laugh 312-456", "au": "AU25", "frames": 0, "on": 0,
                                               "fraction": None, "goal": ">= 0.80", "met": None}


def test_codes_score_decisions_where_the_coders_agreed():
    frames = [_frame(0, ["AU04"]), _frame(8, []), _frame(16, ["AU04", "AU45"]), _frame(24, None)]
    codes = {0: {"AU04": 1, "AU43": 0}, 8: {"AU04": 1, "AU43": 1}, 16: {"AU04": 0, "AU43": 1},
             24: {"AU04": 1}, 32: {"AU04": 1, "AU01": 1}}
    rows = code_rows(frames, codes)
    # AU04 on frames 0, 8, 16 (24 has no face, 32 was not run): tp 1, fn 1, fp 1
    assert rows["AU04"] == {"n": 3, "pos": 2, "accuracy": 0.333, "f1": 0.5, "read_as": "AU04"}
    # AU43 (eyes closed) is read from the runtime's AU45: 0 right, 8 missed, 16 right
    assert rows["AU43"] == {"n": 3, "pos": 2, "accuracy": 0.667, "f1": 0.667, "read_as": "AU45"}
    assert rows["AU01"]["n"] == 0 and "not output" in rows["AU01"]["note"]


def test_cli_on_the_clip(data_dir, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "train.clipcheck", "--engine", "default", "--data", str(data_dir),
                           "--out", str(tmp_path), "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "clipcheck.json").read_text())
    assert report["label_kind"] == "eye" and report["frames"] > 400
    assert [r["au"] for r in report["windows"]] == ["AU12", "AU04", "AU12", "AU06", "AU25"]
    assert all(r["frames"] > 50 for r in report["windows"])  # a face in (nearly) every window frame
    # the coded frames are every 8th; 160-192 have no face found
    assert 45 <= report["codes"]["AU25"]["n"] <= 55 and "| sad 0-60 | AU12 |" in proc.stdout
