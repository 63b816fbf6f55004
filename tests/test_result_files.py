"""``runtime.read_results``: the files a real CLI run writes, read back into one DataFrame shape."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from runtime import read_results
from runtime.errors import MissingDependency
from runtime.result_files import ResultsFileError

pd = pytest.importorskip("pandas")  # the dev extra has it; the runtime itself does not need it

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
POSE = {"pitch": "Pitch", "yaw": "Yaw", "roll": "Roll", "tx": "Tx", "ty": "Ty", "tz": "Tz"}


@pytest.fixture(scope="module")
def run_files(data_dir, face_model, tmp_path_factory) -> dict:
    """One real run over face_noface.mov (a face, then ~100 frames without one) in each output format."""
    out = tmp_path_factory.mktemp("results")
    source = data_dir / "media" / "face_noface.mov"
    for extra in (["--jsonl", out / "run.jsonl", "--csv", out / "run.csv"],
                  ["--csv", out / "of.csv", "--csv-format", "openface"]):
        proc = subprocess.run([sys.executable, "-m", "runtime.camera", "--engine", "default", "--source", source,
                               "--no-show", "--face-model", face_model, *map(str, extra)],
                              capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr[-1500:]
    return {"jsonl": out / "run.jsonl", "csv": out / "run.csv", "openface": out / "of.csv"}


def test_jsonl_to_dataframe_holds_the_jsonl_values(run_files):
    records = [json.loads(line) for line in run_files["jsonl"].read_text().splitlines()]
    res = read_results(run_files["jsonl"])
    df = res.to_dataframe()
    assert res.format == "jsonl" and len(df) == sum(max(1, len(r["faces"])) for r in records)
    assert any(not r["faces"] for r in records) and any(r["faces"] for r in records)  # both kinds of frame
    rows = iter(df.to_dict("records"))
    for rec in records:
        for face in rec["faces"] or [None]:
            row = next(rows)
            assert row["frame"] == rec["frame"] and row["timestamp"] == rec["time_s"]
            assert row["source"] == rec["source"]
            if face is None:  # a frame without a face: one row, success 0, nothing else made up
                assert row["success"] == 0 and pd.isna(row["face_id"]) and math.isnan(row["AU12"])
                continue
            assert row["success"] == int(face["score"] >= 0.5)  # as the CSVs write it: a half-hidden face is not
            assert row["face_id"] == face["track_id"] and row["FaceScore"] == face["score"]
            assert [row[c] for c in ("FaceRectX", "FaceRectY", "FaceRectWidth", "FaceRectHeight")] == face["bbox"]
            assert [[row[f"x_{i}"], row[f"y_{i}"]] for i in range(5)] == face["landmarks5"]
            assert {k: row[c] for k, c in POSE.items()} == face["head_pose"]
            assert {a: row[a] for a in face["au_prob"]} == face["au_prob"]
            assert {a for a in face["au_prob"] if row[f"{a}_c"] == 1} == set(face["au_active"])
            assert {a: row[f"{a}_r"] for a in face["au_intensity"]} == face["au_intensity"]
    declared = json.loads((REPO / "runtime" / "models" / "default" / "au_default_int8.tflite.json").read_text())
    intensity_aus = declared["output"]["intensity"]["aus"]  # the shipped model's intensity, from its card
    assert "AU45" in df.columns and sorted(c[:-2] for c in df.columns if c.endswith("_r")) == sorted(intensity_aus)
    assert df["frame"].dtype == np.int64 and str(df["AU12_c"].dtype) == "Int64"


@pytest.mark.parametrize(("fmt", "tolerance"), [
    # both CSVs write timestamps to the millisecond (JSONL: 0.1 ms)
    ("csv", {"timestamp": 5e-4}),
    # OpenFace's precision besides: confidence 2 decimals, pose_R 3 decimals of a radian (0.03 deg)
    # and intensities to 2 decimals (JSONL: 3)
    ("openface", {"timestamp": 5e-4, "FaceScore": 0.0051, "Pitch": 0.03, "Yaw": 0.03, "Roll": 0.03, "_r": 0.0051}),
])
def test_csv_to_dataframe_equals_jsonl_on_shared_columns(run_files, fmt, tolerance):
    ref = read_results(run_files["jsonl"]).to_dataframe()
    res = read_results(run_files[fmt])
    df = res.to_dataframe()
    assert res.format == fmt and len(df) == len(ref)
    shared = [c for c in df.columns if c in ref.columns]
    assert {"frame", "timestamp", "success", "FaceScore", "Pitch", "Tz", "AU12", "AU12_c", "AU45",
            "AU45_c"} <= set(shared)
    assert [c for c in ref.columns if c in shared] == shared  # the same column order
    for col in shared:
        assert df[col].dtype == ref[col].dtype, col
        if col == "face_id" and fmt == "openface":  # OpenFace numbers faces from 0 in order of appearance
            pairs = set(zip(ref[col].dropna(), df[col].dropna()))
            assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})
        elif df[col].dtype.kind == "f":
            atol = tolerance.get(col, tolerance.get("_r", 1e-9) if col.endswith("_r") else 1e-9)
            assert np.allclose(df[col], ref[col], rtol=0, atol=atol, equal_nan=True), col
        else:
            assert df[col].equals(ref[col]), col


def test_without_pandas_one_line_hint(run_files, monkeypatch):
    res = read_results(run_files["csv"])
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if it were not installed
    with pytest.raises(MissingDependency, match="pip install pandas"):
        res.to_dataframe()


def test_not_a_results_file_is_a_clear_error(tmp_path):
    with pytest.raises(ResultsFileError, match="missing.jsonl"):
        read_results(tmp_path / "missing.jsonl")
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(ResultsFileError, match="not an au-edge results file"):
        read_results(other)
    cut = tmp_path / "cut.jsonl"
    cut.write_text('{"frame": 0, "time_s": 0.0, "faces": []}\n{"frame": 1, "ti')
    with pytest.raises(ResultsFileError, match="line 2"):
        read_results(cut)
