"""``python -m runtime.camera`` as a user runs it: real subprocesses, real files, exit codes."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from engine_factory import AUS
from faults import long_video, only_line_error

from runtime.atomic import partials


def run_cli(*args, timeout=300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runtime.camera", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, **kw)


def test_pexels_clip_to_jsonl_on_stdout_and_csv(tiny_engines, face_model, media, tmp_path):
    """The issue's acceptance command: 472 records with a face in nearly every one."""
    proc = run_cli("--engine", tiny_engines["tflite_int8"], "--source", media / "WolfgangLanger_Pexels.mp4",
                   "--no-show", "--jsonl", "-", "--csv", tmp_path / "au.csv", "--face-model", face_model)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(records) == 472 and [r["frame"] for r in records] == list(range(472))
    assert sum(bool(r["faces"]) for r in records) >= 460
    face = records[200]["faces"][0]
    assert set(face) == {"track_id", "bbox", "score", "landmarks5", "au_prob", "au_active", "head_pose"}
    # the engine's AUs in its order, then AU45 (eye closure) from the mesh
    assert list(face["au_prob"]) == [*AUS, "AU45"] and all(0 <= v <= 1 for v in face["au_prob"].values())
    assert set(face["head_pose"]) == {"pitch", "yaw", "roll", "tx", "ty", "tz"}
    assert len(face["landmarks5"]) == 5 and len(face["bbox"]) == 4
    assert "472 frames" in proc.stderr
    rows = list(csv.DictReader(open(tmp_path / "au.csv")))
    assert len(rows) == 472
    assert {"frame", "timestamp", "face_id", "confidence", "success", "AU12_p", "AU12_c"} <= set(rows[0])


def test_image_folder_and_record(tiny_engines, face_model, media, data_dir, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("001.jpg", "002.jpg", "003.jpg"):
        (folder / name).write_bytes((data_dir / "london" / "smiling" / name).read_bytes())
    out = tmp_path / "ann.mp4"
    proc = run_cli("--engine", tiny_engines["onnx"], "--source", folder, "--no-show", "--jsonl",
                   tmp_path / "o.jsonl", "--record", out, "--face-model", face_model)
    assert proc.returncode == 0, proc.stderr
    recs = [json.loads(x) for x in open(tmp_path / "o.jsonl")]
    assert [r["source"] for r in recs] == ["001.jpg", "002.jpg", "003.jpg"]
    assert all(len(r["faces"]) == 1 for r in recs)
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3


def test_bad_engines_and_sources_exit_2_with_one_line(tiny_engines, face_model, media, tmp_path):
    clip = media / "WolfgangLanger_Pexels.mp4"
    only_line_error(run_cli("--engine", tmp_path / "missing.onnx", "--source", clip, "--no-show"), "not found")
    corrupt = tmp_path / "c.tflite"
    corrupt.write_bytes(b"\x00" * 64)
    only_line_error(run_cli("--engine", corrupt, "--source", clip, "--no-show"), "card")
    nocard = tmp_path / "nocard.onnx"
    nocard.write_bytes(tiny_engines["onnx"].read_bytes())
    only_line_error(run_cli("--engine", nocard, "--source", clip, "--no-show"), "model card", "not found")
    (tmp_path / "nocard.onnx.json").write_text(open(str(tiny_engines["tflite"]) + ".json").read())
    only_line_error(run_cli("--engine", nocard, "--source", clip, "--no-show"), "another engine")
    # --engine default without a shipped model or backend: tests/test_default_model.py
    eng = ("--engine", tiny_engines["onnx"], "--no-show", "--face-model", face_model)
    only_line_error(run_cli(*eng, "--source", tmp_path / "nope.mp4"), "nope.mp4")
    (tmp_path / "notvideo.mp4").write_text("hello")
    only_line_error(run_cli(*eng, "--source", tmp_path / "notvideo.mp4"), "notvideo.mp4")
    only_line_error(run_cli(*eng, "--source", "0"))  # no camera on this machine
    only_line_error(run_cli(*eng, "--source", clip, "--max-faces", "0"), "--max-faces")
    only_line_error(run_cli(*eng, "--source", clip, "--publish", "udp://10.1.2.3:9999"), "10.1.2.3")
    only_line_error(run_cli("--engine", tiny_engines["onnx"], "--no-show", "--source", clip,
                           "--face-model", tmp_path / "nothing_here"), "nothing_here")


def test_no_face_video_writes_a_record_per_frame(tiny_engines, face_model, media):
    proc = run_cli("--engine", tiny_engines["onnx"], "--source", media / "no_face.mp4", "--no-show",
                   "--jsonl", "-", "--face-model", face_model)
    assert proc.returncode == 0, proc.stderr
    recs = [json.loads(x) for x in proc.stdout.splitlines()]
    assert len(recs) > 80 and all(r["faces"] == [] for r in recs)


def test_ctrl_c_closes_outputs_cleanly(tiny_engines, face_model, tmp_path):
    video = tmp_path / "long.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, (96, 64))
    frame = np.full((64, 96, 3), 90, np.uint8)
    for _ in range(20000):
        w.write(frame)
    w.release()
    proc = subprocess.Popen([sys.executable, "-m", "runtime.camera", "--engine", str(tiny_engines["onnx"]),
                             "--source", str(video), "--no-show", "--jsonl", "-", "--face-model", face_model],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.readline()  # it is running
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    for line in out.splitlines():
        json.loads(line)  # every line written is complete


@pytest.mark.skipif(os.environ.get("DISPLAY") is not None, reason="checks the no-display path")
def test_show_without_display_warns_and_runs(tiny_engines, face_model, media):
    proc = run_cli("--engine", tiny_engines["onnx"], "--source", media / "multi_face.jpg", "--show",
                   "--face-model", face_model, "--jsonl", "-")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 1


# --- nothing lost, no surprises ------------------------------------------------------------------------

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def _existing_outputs(tmp_path):
    files = {tmp_path / "o.jsonl": b'{"old": 1}\n', tmp_path / "o.csv": b"old,csv\n1,2\n",
             tmp_path / "o.mp4": b"not really a video, but the user's file"}
    for p, data in files.items():
        p.write_bytes(data)
    return files


def test_a_failed_start_leaves_existing_outputs_byte_identical(tiny_engines, face_model, media, tmp_path):
    files = _existing_outputs(tmp_path)
    outs = ("--jsonl", tmp_path / "o.jsonl", "--csv", tmp_path / "o.csv", "--record", tmp_path / "o.mp4")
    eng = ("--engine", tiny_engines["onnx"], "--no-show", "--face-model", face_model)
    only_line_error(run_cli(*eng, "--source", tmp_path / "typo.mp4", *outs), "typo.mp4")  # source fails
    only_line_error(run_cli("--engine", tmp_path / "nope.onnx", "--source", media / "multi_face.jpg", "--no-show",
                           *outs), "nope.onnx")  # engine fails
    # The source opens and JSONL/CSV/record are opened, then --publish is refused: they are removed again.
    only_line_error(run_cli(*eng, "--source", media / "multi_face.jpg", *outs, "--publish", "udp://10.1.2.3:9"),
                   "10.1.2.3")
    for p, data in files.items():
        assert p.read_bytes() == data, p
    assert sorted(x.name for x in tmp_path.iterdir()) == ["o.csv", "o.jsonl", "o.mp4"]  # no partial files


def _partial_size(target) -> int:
    found = partials(target)
    return found[0].stat().st_size if found else 0


def test_sigterm_closes_outputs_prints_the_summary_and_exits_143(tiny_engines, face_model, tmp_path):
    video = long_video(tmp_path / "long.avi")
    jsonl, rec = tmp_path / "out.jsonl", tmp_path / "out.mp4"
    jsonl.write_text("previous run\n")
    proc = subprocess.Popen([sys.executable, "-m", "runtime.camera", "--engine", str(tiny_engines["onnx"]),
                             "--source", str(video), "--no-show", "--jsonl", str(jsonl), "--record", str(rec),
                             "--face-model", face_model], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while _partial_size(jsonl) <= 2000 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert jsonl.read_text() == "previous run\n"  # still the old file while the run goes on
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "(terminated)" in err and "frames, 0 with a face" in err
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]  # every line complete
    assert 10 < len(records) < 3000 and [r["frame"] for r in records] == list(range(len(records)))
    cap = cv2.VideoCapture(str(rec))  # playable: the container was finished
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == len(records)
    assert not partials(jsonl) and not partials(rec)


@pytest.mark.parametrize("args, words", [
    (("--max-frames", "0"), ["--max-frames", ">= 1"]),
    (("--max-frames", "-5"), ["--max-frames"]),
    (("--threads", "-3"), ["--threads", ">= 1"]),
    (("--threads", "0"), ["--threads"]),
    (("--max-faces", "two"), ["--max-faces", "not an integer"]),
    (("--detect-every", "-1"), ["--detect-every"]),
    (("--mesh-every", "0"), ["--mesh-every", ">= 1"]),
    (("--mesh-every", "2.5"), ["--mesh-every"]),
    (("--calibrate-neutral", "nan"), ["--calibrate-neutral"]),
    (("--calibrate-neutral", "-2"), ["--calibrate-neutral"]),
    (("--mode", "stream"), ["--mode"]),
    (("--csv-format", "excel"), ["--csv-format"]),
])
def test_bad_option_values_are_one_line_and_exit_2(args, words):
    only_line_error(run_cli("--source", "clip.mp4", *args), *words)


def test_version_and_the_au_edge_entry_point():
    from runtime import __version__

    for cmd in ([sys.executable, "-m", "runtime.camera", "--version"], [sys.executable, "-m", "runtime", "--version"],
                [sys.executable, "-m", "runtime", "camera", "--version"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=REPO)
        assert proc.returncode == 0 and proc.stdout.strip() == f"au-edge {__version__}", proc
    proc = subprocess.run([sys.executable, "-m", "runtime", "kamera"], capture_output=True, text=True, timeout=60)
    only_line_error(proc, "kamera", "camera")


def test_au_edge_runs_every_command_of_its_table(capsys):
    """One table (``au_edge_cli.COMMANDS``) above every package: each entry's module has a ``main`` that
    answers ``--help``; the runtime's own table is part of it, and the runtime names no package above it."""
    import importlib

    from au_edge_cli import COMMANDS, main
    from runtime.cli import COMMANDS as RUNTIME_COMMANDS

    assert {"camera", "bench", "pipeline", "parity", "soak", "jitter", "report", "facts"} <= set(COMMANDS)
    assert RUNTIME_COMMANDS.items() <= COMMANDS.items()
    assert all(cmd.module.startswith("runtime.") for cmd in RUNTIME_COMMANDS.values())
    for name, cmd in COMMANDS.items():
        assert callable(importlib.import_module(cmd.module).main), name
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        assert done.value.code == 0, name
        assert capsys.readouterr().out.startswith("usage: "), name
    assert main(["--help"]) == 0
    listed = capsys.readouterr().out
    assert all(f"  {name} " in listed for name in COMMANDS)
    proc = subprocess.run([sys.executable, "-m", "runtime", "bench"], capture_output=True, text=True, timeout=60)
    only_line_error(proc, "'bench'", "au-edge --help")


def test_missing_opencv_is_one_line_with_the_jetson_hint():
    """A runtime-core install without cv2: the import really fails (cv2 is blocked in sys.modules)."""
    code = ("import sys; sys.modules['cv2'] = None\n"
            "from runtime.camera import main\n"
            "sys.exit(main(['--engine', 'x.onnx', '--source', 'clip.mp4', '--no-show']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    only_line_error(proc, "OpenCV", "Jetson", "python3-opencv", "runtime-core")


def test_console_script_is_not_shadowed_by_the_working_directory(tmp_path):
    """The `au-edge` script, generated as pip generates it from pyproject's [project.scripts], run from a
    folder holding a user's own `runtime/` package and `train.py`."""
    import tomllib
    from pip._vendor.distlib.scripts import ScriptMaker

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["au-edge"] == "au_edge_cli:main"
    bin_dir, work = tmp_path / "bin", tmp_path / "work"
    bin_dir.mkdir(), work.mkdir()
    maker = ScriptMaker(None, str(bin_dir))
    maker.executable, maker.variants = sys.executable, {""}
    (script,) = maker.make(f"au-edge = {scripts['au-edge']}")
    (work / "runtime").mkdir()
    (work / "runtime" / "__init__.py").write_text("raise SystemExit('the user runtime/ folder was imported')\n")
    (work / "train.py").write_text("raise SystemExit('the user train.py was imported')\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout stands in for site-packages
    proc = subprocess.run([script, "camera", "--version"], capture_output=True, text=True, timeout=60, cwd=work,
                          env=env)
    assert proc.returncode == 0 and proc.stdout.startswith("au-edge "), proc
    # ... whereas `python -m` puts the working directory first, and the user's folder wins:
    proc = subprocess.run([sys.executable, "-m", "runtime.camera", "--version"], capture_output=True, text=True,
                          timeout=60, cwd=work, env=env)
    assert "user runtime/ folder" in proc.stderr


def test_summary_counts_faces_beyond_max_faces(tiny_engines, face_model, media):
    from runtime.results import FrameResult

    proc = run_cli("--engine", tiny_engines["onnx"], "--source", media / "multi_face.jpg", "--no-show",
                   "--max-faces", "2", "--face-model", face_model, "--jsonl", "-")
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["faces"]) == 2
    if "faces_beyond_max" in FrameResult.__dataclass_fields__:  # the detector reports them (issue 9)
        assert "3 faces beyond --max-faces 2 not processed" in proc.stderr, proc.stderr  # 5 in the photo
    else:
        assert "faces beyond --max-faces 2: 0" in proc.stderr, proc.stderr


def test_mode_flags_reach_the_detector_or_say_why_not(tiny_engines, face_model, media):
    import inspect

    from runtime.detector import AUDetector

    accepted = inspect.signature(AUDetector).parameters
    proc = run_cli("--engine", tiny_engines["onnx"], "--source", media / "multi_face.jpg", "--no-show",
                   "--face-model", face_model, "--mode", "image", "--jsonl", "-")
    if "mode" in accepted:
        assert proc.returncode == 0, proc.stderr
    else:
        only_line_error(proc, "--mode", "newer")
    proc = run_cli("--engine", tiny_engines["onnx"], "--source", media / "multi_face.jpg", "--no-show",
                   "--face-model", face_model, "--detect-every", "1", "--jsonl", "-")
    assert proc.returncode == 0, proc.stderr  # detect_every exists on every AUDetector


def test_openface_csv_for_an_image_folder(tiny_engines, face_model, data_dir, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("001.jpg", "002.jpg"):
        (folder / name).write_bytes((data_dir / "london" / "smiling" / name).read_bytes())
    (folder / "003.jpg").write_bytes((data_dir / "media" / "multi_face.jpg").read_bytes())
    out = tmp_path / "of.csv"
    proc = run_cli("--engine", tiny_engines["onnx"], "--source", folder, "--no-show", "--face-model", face_model,
                   "--csv", out, "--csv-format", "openface", "--max-faces", "8")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open(), skipinitialspace=True))
    assert [r["file"] for r in rows][:2] == ["001.jpg", "002.jpg"] and rows[2]["file"] == "003.jpg"
    assert [r["frame"] for r in rows[:2]] == ["1", "2"] and {r["frame"] for r in rows[2:]} == {"3"}
    assert [r["face_id"] for r in rows[2:]] == [str(i) for i in range(len(rows) - 2)] and len(rows) == 7
    assert all(r["success"] == "1" for r in rows)
