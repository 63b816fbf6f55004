"""Nothing lost under faults and hostile input (issue 21): every case of the issue, reproduced as a user
meets it: real ``python -m runtime.camera`` / ``python -m train`` processes, real files, a real full
disk (a tmpfs where root may mount one, else a file size limit: RLIMIT_FSIZE), real signals.

Every test failed on the code before the fixes (2fa5ebc) but two that held already (--jsonl and --csv
into a read-only folder, kept as guards); see the case numbers of the issue in the test names (case 9, faces in large frames, is in ``test_face_search.py``; case 6, native
wrappers built and closed from several threads, is not here). Helpers: ``faults.py``.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from faults import (
    REPO,
    USER_FILES,
    cli_cmd,
    env,
    file_size_limit,
    fill,
    long_video,
    mounted_tmpfs,
    one_line_error,
    partial_names,
    run_cli,
    snapshot,
    wait_for,
)

ENGINE = REPO / "runtime" / "models" / "default" / "au_default.onnx"
NON_FINITE = re.compile(r"\b(NaN|-?Infinity)\b")


@pytest.fixture(params=["tmpfs", "rlimit"])
def full_disk(request, tmp_path) -> Callable[[int], tuple[Path, Callable[[], None] | None]]:
    """``full_disk(room)``: a folder holding the user's files where only about ``room`` more bytes fit,
    and the ``preexec_fn`` a run there needs: a tmpfs filled up (ENOSPC), or a file size limit (EFBIG)."""
    folder = tmp_path / "disk"
    stack = contextlib.ExitStack()

    def make(room: int):
        if request.param == "tmpfs":
            stack.enter_context(mounted_tmpfs(folder, "size=2m"))
        folder.mkdir(exist_ok=True)
        for name, data in USER_FILES.items():
            (folder / name).write_bytes(data)
        if request.param == "tmpfs":
            fill(folder, room)
            return folder, None
        return folder, file_size_limit(room)

    with stack:
        yield make


# --- 1: a write error mid-run keeps every existing output ----------------------------------------------

def test_1_full_disk_mid_run_keeps_existing_jsonl_and_csv(full_disk, media):
    folder, preexec = full_disk(8192)  # some 10 frames with a face
    before = snapshot(folder)
    proc = run_cli("--source", media / "WolfgangLanger_Pexels.mp4", "--max-frames", "60", "--jsonl",
                   folder / "o.jsonl", "--csv", folder / "o.csv", preexec=preexec)
    line = one_line_error(proc)
    assert ("o.jsonl" in line or "o.csv" in line) and re.search(r"ENOSPC|EFBIG", line), line
    assert re.search(r"stopped after [1-9]\d* frames and left every existing output as it was", line), line
    assert snapshot(folder) == before  # the user's files byte for byte, no partial file left


def test_1_record_onto_a_full_disk_is_detected_and_keeps_the_old_video(full_disk, media):
    folder, preexec = full_disk(96 * 1024)
    before = snapshot(folder)
    proc = run_cli("--source", media / "WolfgangLanger_Pexels.mp4", "--max-frames", "60", "--record",
                   folder / "o.mp4", "--jsonl", folder / "o.jsonl", preexec=preexec)
    line = one_line_error(proc, "o.mp4")
    assert re.search(r"ENOSPC|EFBIG", line) and re.search(r"stopped after [1-9]\d* frames", line), line
    assert snapshot(folder) == before


def test_1_a_recording_whose_end_does_not_fit_is_refused_before_the_rename(full_disk, media):
    """Ten frames fit (FFmpeg writes them in 32 KiB blocks), the rest of the file and its index do not: no
    write reports it, the finished file read back does."""
    folder, preexec = full_disk(72 * 1024)
    before = snapshot(folder)
    proc = run_cli("--source", media / "WolfgangLanger_Pexels.mp4", "--max-frames", "10", "--record",
                   folder / "o.mp4", preexec=preexec)
    one_line_error(proc, "o.mp4", "the finished file", "no output was committed")
    assert snapshot(folder) == before


# --- 2: a link planted at a partial name is never followed ----------------------------------------------

def test_2_links_planted_at_partial_names_are_not_followed(media, tmp_path):
    victims = tmp_path / "elsewhere"
    victims.mkdir()
    out = tmp_path / "shared"
    out.mkdir()
    for name in ("o.jsonl", "o.csv", "o.mp4"):
        stem, suffix = name.split(".")
        (victims / name).write_text(f"victim {name}\n")
        os.symlink(victims / name, out / f".{stem}.partial.{suffix}")  # the partial names before the fix
    before = snapshot(victims)
    proc = run_cli("--source", media / "multi_face.jpg", "--jsonl", out / "o.jsonl", "--csv", out / "o.csv",
                   "--record", out / "o.mp4")
    assert proc.returncode == 0, proc.stderr
    assert snapshot(victims) == before
    for name in ("o.jsonl", "o.csv", "o.mp4"):
        assert (out / name).is_file() and not (out / name).is_symlink(), name
    assert json.loads((out / "o.jsonl").read_text())["faces"]


def test_2_checkpoints_and_cards_do_not_follow_links_at_their_temporary_names(tmp_path):
    torch = pytest.importorskip("torch")
    from runtime.card import load_card
    from train import checkpoint

    victim = tmp_path / "victim.txt"
    victim.write_text("not yours\n")
    os.symlink(victim, tmp_path / "last.pt.tmp")
    checkpoint.save(tmp_path / "last.pt", {"step": 3, "w": torch.zeros(2)})
    assert checkpoint.load(tmp_path / "last.pt")["step"] == 3 and not (tmp_path / "last.pt").is_symlink()
    engine = tmp_path / "au.onnx"
    os.symlink(ENGINE, engine)
    os.symlink(victim, tmp_path / "au.onnx.json.tmp")
    load_card(ENGINE, check_sha=False).write(engine)
    assert load_card(engine).aus and not (tmp_path / "au.onnx.json").is_symlink()
    assert victim.read_text() == "not yours\n"


# --- 3: a file name that is not UTF-8 --------------------------------------------------------------------

def test_3_a_non_utf8_photo_name_is_written_escaped_or_named(data_dir, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    raw_name = b"caf\xe9 1.jpg"  # Latin-1, as an old camera or a Windows share gives it
    (photos / os.fsdecode(raw_name)).write_bytes((data_dir / "london" / "smiling" / "001.jpg").read_bytes())
    (photos / "b.jpg").write_bytes((data_dir / "london" / "smiling" / "002.jpg").read_bytes())
    jsonl, csv_path = tmp_path / "o.jsonl", tmp_path / "o.csv"
    jsonl.write_bytes(USER_FILES["o.jsonl"])
    csv_path.write_bytes(USER_FILES["o.csv"])
    proc = run_cli("--source", photos, "--csv-format", "openface", "--csv", csv_path, "--jsonl", jsonl)
    assert "Traceback" not in proc.stderr, proc.stderr
    if proc.returncode == 2:  # refused: the name shown, the user's files as they were
        one_line_error(proc, "caf\\xe9 1.jpg")
        assert jsonl.read_bytes() == USER_FILES["o.jsonl"] and csv_path.read_bytes() == USER_FILES["o.csv"]
        return
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(ln) for ln in jsonl.read_text(encoding="utf-8").splitlines()]
    rows = csv_path.read_text(encoding="utf-8").splitlines()
    assert len(records) == 2 and len(rows) == 1 + sum(max(1, len(r["faces"])) for r in records)
    assert {r["source"] for r in records} == {"b.jpg", "caf\\xe9 1.jpg"}
    assert any(row.endswith("caf\\xe9 1.jpg") for row in rows[1:]), rows


def test_3_videos_read_and_recorded_under_non_utf8_names(media, tmp_path):
    """OpenCV takes names as UTF-8 text and crashed (SIGSEGV) on others, for a source and for --record."""
    folder = tmp_path / os.fsdecode(b"d\xe9p\xf4t")
    folder.mkdir()
    source = folder / os.fsdecode(b"clip \xe9t\xe9.mp4")
    source.write_bytes((media / "no_face.mp4").read_bytes())
    record, jsonl = folder / os.fsdecode(b"r\xe9sultat.mp4"), folder / os.fsdecode(b"r\xe9sultat.jsonl")
    proc = run_cli("--source", source, "--max-frames", "20", "--record", record, "--jsonl", jsonl)
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    records = [json.loads(ln) for ln in jsonl.read_text().splitlines()]
    assert len(records) == 20 and records[0]["source"] == "clip \\xe9t\\xe9.mp4"
    link = tmp_path / "recorded.mp4"  # read it back through a UTF-8 name
    link.symlink_to(record)
    cap = cv2.VideoCapture(str(link))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 20
    cap.release()
    assert sorted(os.listdir(folder)) == sorted(p.name for p in (source, record, jsonl))  # no partial left
    url = run_cli("--source", os.fsdecode(b"http://127.0.0.1:9/\xe9t\xe9.mp4"), timeout=60)
    one_line_error(url, "\\xe9t\\xe9.mp4", "UTF-8")


def test_3_training_reads_photos_and_videos_whose_names_are_not_utf8(data_dir, media, tmp_path):
    """The cache's frame reader (every photo and video frame a training run reads), the readers' frame
    count and the realcheck/posedcheck helpers crashed OpenCV (SIGSEGV) on such names; a child process,
    so a regression fails the test instead of killing it."""
    photo, video = tmp_path / os.fsdecode(b"photo caf\xe9.jpg"), tmp_path / os.fsdecode(b"clip \xe9t\xe9.mp4")
    photo.write_bytes((data_dir / "london" / "smiling" / "001.jpg").read_bytes())
    video.write_bytes((media / "WolfgangLanger_Pexels.mp4").read_bytes())
    child = ("import sys, os, numpy as np\n"
             "from pathlib import Path\n"
             "from train.data.cache import _FrameReader\n"
             "from train.data.readers.common import video_frame_count\n"
             "from train.data.records import FrameRecord\n"
             "photo, video = (os.fsdecode(a.encode('utf-8', 'surrogateescape')) for a in sys.argv[1:])\n"
             "rec = FrameRecord('open', 's', 'v', 0, photo, None, None, np.zeros(1, np.float32), np.zeros(1, bool), None)\n"
             "reader = _FrameReader()\n"
             "print(reader.read(rec).shape, reader.read_index(video, 3).shape, video_frame_count(Path(video)))\n")
    names = [os.fsencode(p).decode("utf-8", "surrogateescape") for p in (photo, video)]
    proc = subprocess.run([sys.executable, "-c", child, *names],
                          cwd=REPO, env=env(), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-1000:])
    assert proc.stdout.split() == ["(540,", "540,", "3)", "(360,", "640,", "3)", "472"], proc.stdout
    imread = subprocess.run(["grep", "-rln", "cv2.imread(", "runtime", "train", "distill", "export", "device_tests"],
                            cwd=REPO, capture_output=True, text=True, check=False)
    assert imread.stdout == "", f"cv2.imread takes names as UTF-8 text; use runtime.cv_path.decode_image: {imread.stdout}"


@pytest.mark.slow  # 10-25 s: the demo's H.264 pass, timeline and report
def test_3_the_demo_writes_into_a_folder_whose_name_is_not_utf8(media, tmp_path):
    out = tmp_path / os.fsdecode(b"d\xe9mo")
    face_model = Path(os.environ.get("AU_DATA_DIR", "")) / "models" / "mediapipe-0.10.21"
    proc = subprocess.run([sys.executable, "-m", "demo", "--source", media / "WolfgangLanger_Pexels.mp4", "--out", out,
                           "--max-frames", "8", "--face-model", face_model, "--threads", "1", "--quiet"],
                          cwd=REPO, env=env(), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    assert {"demo.mp4", "demo.jsonl", "frame.png"} <= set(os.listdir(out))


# --- 4: two runs writing one path ---------------------------------------------------------------------

def test_4_two_runs_on_one_path_never_corrupt_each_other(media, tmp_path):
    video = long_video(tmp_path / "long.avi")
    jsonl = tmp_path / "o.jsonl"
    first = subprocess.Popen(cli_cmd("--source", video, "--jsonl", jsonl), cwd=REPO, env=env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any((tmp_path / n).stat().st_size > 2000 for n in partial_names(tmp_path, "o")))
        second = run_cli("--source", media / "no_face.mp4", "--jsonl", jsonl)
        first.send_signal(signal.SIGTERM)  # end the first run now: it commits what it has
        _, first_err = first.communicate(timeout=60)
    finally:
        first.kill()
    for proc, err in ((first, first_err), (second, second.stderr)):
        assert "Traceback" not in err, err
    assert first.returncode in (0, 143), first_err
    if second.returncode == 2:  # refused while the first one wrote
        one_line_error(second, "o.jsonl", "another run")
    else:
        assert second.returncode == 0, second.stderr
    records = [json.loads(ln) for ln in jsonl.read_text().splitlines()]  # every line whole
    assert records and [r["frame"] for r in records] == list(range(len(records)))
    assert {r["source"] for r in records} in ({"long.avi"}, {"no_face.mp4"})  # one run's file, whole
    assert not partial_names(tmp_path, "o")


# --- 5: --threads is bounded ------------------------------------------------------------------------------

def test_5_threads_beyond_the_cores_is_one_line():
    proc = run_cli("--source", "typo.mp4", "--threads", "1000", timeout=60)
    one_line_error(proc, "--threads", "1000", "<=", "core")


THREADED_COMMANDS = ["runtime.camera", "runtime.ros2.node", "demo.__main__", "device_tests.bench", "device_tests.soak",
                     "device_tests.jitter", "device_tests.pipeline", "device_tests.parity", "export.bench",
                     "train.realcheck.__main__", "train.geometrycheck", "device_tests.stages"]


@pytest.mark.parametrize("module", THREADED_COMMANDS)
def test_5_every_command_bounds_threads(module, capsys):
    import importlib

    with pytest.raises(SystemExit) as ended:
        importlib.import_module(module).main(["--threads", "1000"])
    err = capsys.readouterr().err.strip()
    assert ended.value.code == 2 and "\n" not in err and "Traceback" not in err, err
    assert "--threads" in err and "<=" in err and "core" in err, err


BAD_COUNTS = [  # (command, its required options, the count, a value out of range)
    ("device_tests.bench", ["--engine", "x"], "--runs", "0"), ("device_tests.bench", ["--engine", "x"], "--batch", "0"),
    ("export.bench", ["--dir", "x"], "--runs", "-1"),
    ("device_tests.pipeline", ["--engine", "x", "--source", "x"], "--repeat", "0"),
    ("device_tests.pipeline", ["--engine", "x", "--source", "x"], "--max-frames", "-3"),
    ("device_tests.soak", ["--engine", "x", "--source", "x"], "--warmup", "-1"),
    ("device_tests.soak", ["--engine", "x", "--source", "x"], "--frames", "0"),
    ("device_tests.jitter", ["--source", "x"], "--max-frames", "1" + "0" * 20),
    ("device_tests.peer_mediapipe", ["--task", "x", "--source", "x"], "--max-frames", "0"),
    ("export.__main__", ["--checkpoint", "x", "--calib", "x", "--out", "x"], "--eval-size", "0"),
    ("export.__main__", ["--checkpoint", "x", "--calib", "x", "--out", "x"], "--calib-size", "-2"),
]


@pytest.mark.parametrize(("module", "required", "flag", "value"), BAD_COUNTS)
def test_5_every_count_is_bounded(module, required, flag, value, capsys):
    import importlib

    with pytest.raises(SystemExit) as ended:
        importlib.import_module(module).main([*required, flag, value])
    err = capsys.readouterr().err.strip()
    assert ended.value.code == 2 and "\n" not in err and "Traceback" not in err, err
    assert flag in err and value in err and "out of range" in err, err


# --- 7: --record into a read-only folder ---------------------------------------------------------------

@pytest.fixture
def read_only_folder(tmp_path) -> Iterator[Path]:
    """A folder nobody may write into: a read-only tmpfs for root (who ignores modes), else mode 0555."""
    folder = tmp_path / "ro"
    if os.geteuid() == 0:
        with mounted_tmpfs(folder, "ro,size=64k"):
            yield folder
        return
    folder.mkdir()
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


@pytest.mark.parametrize("option, name", [("--record", "o.mp4"), ("--jsonl", "o.jsonl"), ("--csv", "o.csv")])
def test_7_outputs_into_a_read_only_folder_are_one_line(read_only_folder, media, option, name):
    proc = run_cli("--source", media / "multi_face.jpg", option, read_only_folder / name)
    one_line_error(proc, name)


# --- 8: hostile cards -----------------------------------------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000


def _set(path: str, value_json: str) -> Callable[[str], str]:
    """A card edit: ``path`` (``section.key``) set to the JSON text ``value_json`` (any text, even 10**400)."""
    section, key = path.split(".")

    def edit(card: str) -> str:
        data = json.loads(card)
        data[section][key] = "@@VALUE@@"
        return json.dumps(data).replace('"@@VALUE@@"', value_json)
    return edit


HOSTILE_CARDS = {
    "template-list": (_set("alignment.template", '["default"]'), ["alignment.template"]),
    "template-dict": (_set("alignment.template", '{"name": "default"}'), ["alignment.template"]),
    "nested-100000": (_set("training.notes", DEEP), ["nests deeper"]),
    "crop-size-10e400": (_set("alignment.crop_size", "1" + "0" * 400), ["64 bits"]),
    "std-1e-300": (_set("input.std", "[1e-300, 0.5, 0.5]"), ["input.std"]),
    "mean-1e308": (_set("input.mean", "[1e308, 0.5, 0.5]"), ["input.mean"]),
    "scale-1e300": (_set("alignment.scale", "1e300"), ["alignment.scale"]),
    "scale-1e-300": (_set("alignment.scale", "1e-300"), ["alignment.scale"]),
}


@pytest.mark.parametrize("case", list(HOSTILE_CARDS))
def test_8_hostile_cards_are_refused_in_one_line_and_never_reach_the_jsonl(media, tmp_path, case):
    edit, words = HOSTILE_CARDS[case]
    engine = tmp_path / "au.onnx"
    os.symlink(ENGINE, engine)
    (tmp_path / "au.onnx.json").write_text(edit(Path(f"{ENGINE}.json").read_text()))
    proc = run_cli("--engine", engine, "--source", media / "multi_face.jpg", "--jsonl", "-")
    assert not NON_FINITE.search(proc.stdout), proc.stdout[:300]
    one_line_error(proc, "au.onnx.json", *words)


def test_8_no_record_with_a_non_finite_number_is_ever_written(tmp_path):
    from runtime.outputs import JsonlOutput
    from runtime.results import FaceAU, FrameResult

    face = FaceAU(track_id=1, bbox=(1, 2, 30, 30), score=0.9, landmarks5=np.zeros((5, 2)),
                  au_prob={"AU12": float("nan")}, au_active=set())
    path = tmp_path / "o.jsonl"
    out = JsonlOutput(path)
    with pytest.raises(Exception) as caught:
        out.write(FrameResult(frame=0, time_s=0.0, faces=[face], source="x"), None)
        out.close()
    assert "AU12" in str(caught.value) and "\n" not in str(caught.value)
    out.abort()
    assert not path.exists() or not NON_FINITE.search(path.read_text())


# --- 10: a corrupt last.pt, secrets in URLs, partials of killed runs ------------------------------------

@pytest.mark.slow  # about 10 s: torch, timm and the model are built before the checkpoint is read
def test_10_a_corrupt_last_pt_under_resume_auto_is_one_line(tmp_path):
    pytest.importorskip("torch")
    from test_train import _tiny_cache

    data = _tiny_cache(tmp_path / "data", 48, flow=False)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "last.pt").write_bytes(b"PK\x03\x04" + os.urandom(3000))  # a zip cut off mid-write
    proc = subprocess.run([sys.executable, "-m", "train", "--config", str(REPO / "configs" / "smoke.yaml"),
                           "threads=1", f"data={data}", f"run_dir={run_dir}", "build={}", "model.flow=false",
                           "--resume", "auto"], cwd=REPO, env=env(), capture_output=True, text=True, timeout=300,
                          check=False)
    err = proc.stderr.strip()
    assert proc.returncode == 2 and "Traceback" not in err, err[-3000:]
    last = err.splitlines()[-1]
    assert "last.pt" in last and "--resume" in last and last.startswith("au-edge: error:"), err[-3000:]


def test_10_secrets_in_source_urls_never_reach_a_message():
    for url, shown in (("http://ana:hunter2@127.0.0.1:9/live.mp4?token=SECRET123&x=1#frag",
                        "'http://ana:***@127.0.0.1:9/live.mp4?token=***&x=***#***'"),
                       ("rtsp://127.0.0.1:9/live?x=1&token=SECRET123", "'rtsp://127.0.0.1:9/live?x=***&token=***'")):
        proc = run_cli("--source", url, timeout=60)
        line = one_line_error(proc, "127.0.0.1")
        assert "hunter2" not in proc.stderr and "SECRET123" not in proc.stderr, proc.stderr
        assert shown in line, line  # the rest of the message as it was: only the secrets masked


def test_10_partials_left_by_a_killed_run_are_named_in_the_next_summary(media, tmp_path):
    video = long_video(tmp_path / "long.avi")
    jsonl = tmp_path / "o.jsonl"
    jsonl.write_bytes(USER_FILES["o.jsonl"])
    killed = subprocess.Popen(cli_cmd("--source", video, "--jsonl", jsonl), cwd=REPO, env=env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: any((tmp_path / n).stat().st_size > 2000 for n in partial_names(tmp_path, "o")))
    finally:
        killed.kill()
        killed.wait(timeout=30)
    assert jsonl.read_bytes() == USER_FILES["o.jsonl"]  # a SIGKILL never touches the existing file
    left = partial_names(tmp_path, "o")
    assert len(left) == 1
    proc = run_cli("--source", media / "no_face.mp4", "--jsonl", jsonl)
    assert proc.returncode == 0, proc.stderr
    summary = proc.stderr.strip().splitlines()[-1]
    assert left[0] in summary and "killed" in summary, summary
    assert len(jsonl.read_text().splitlines()) > 50


@pytest.mark.parametrize("text, shown", [
    ("gst:rtspsrc location=rtsp://cam/live user-id=ana user-pw=s3cr'et ! decodebin", "user-pw=*** ! decodebin"),
    ("cannot open 'gst:rtspsrc user-pw=s3cret': check it", "user-pw=***': check it"),
    ('password="s3cret words" and token=s3cret,', 'password=*** and token=***,'),
])
def test_10_secrets_outside_urls_are_masked_and_the_message_kept(text, shown):
    from runtime.shown import redact

    assert "s3cr" not in redact(text) and redact(text).endswith(shown), redact(text)


@pytest.mark.parametrize("name, folder", [("bag.v1", True), (os.fsdecode(b"caf\xe9.jsonl"), False)])
def test_10_partials_of_killed_runs_are_found_for_folders_and_any_name(tmp_path, name, folder):
    """A partial whose writer died (here: os._exit, no clean-up) is stale for the next writer of the target."""
    target = tmp_path / name
    child = ("import os, sys\nfrom runtime.atomic import Partial\n"
             "Partial(os.fsdecode(sys.argv[1].encode('utf-8', 'surrogateescape')), 'out', folder=sys.argv[2] == '1')\n"
             "os._exit(0)\n")
    subprocess.run([sys.executable, "-c", child, os.fsencode(target).decode("utf-8", "surrogateescape"),
                    str(int(folder))], check=True, cwd=REPO, env=env())
    from runtime.atomic import Partial

    part = Partial(target, "out", folder=folder)
    try:
        assert [p.name for p in part.stale] == [n for n in os.listdir(tmp_path) if n != part.path.name]
        assert len(part.stale) == 1 and part.stale[0].name.encode("utf-8")  # printable: a summary names it
    finally:
        part.discard()


def test_10_commands_above_the_runtime_redact_their_one_line_too(capsys):
    from train.cli import guarded

    def body() -> int:
        raise ValueError("source rtsp://cam:hunter2@127.0.0.1/live?token=SECRET123 gave no frame")

    assert guarded(body) == 2
    err = capsys.readouterr().err
    assert "hunter2" not in err and "SECRET123" not in err and "rtsp://cam:***@127.0.0.1/live?token=***" in err, err
