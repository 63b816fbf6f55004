"""``au-edge batch`` as a user runs it: real clips cut from the Pexels clip, real worker processes, real
kills, and a local Ray instance."""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from faults import only_line_error

from runtime.batch.inputs import Input, assign_stems, expand
from runtime.batch.manifest import COLUMNS, Manifest
from runtime.errors import AUEdgeError, SourceError

CLIP = "WolfgangLanger_Pexels.mp4"
SHORT = 20  # frames per short clip
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def cut(src: Path, dst: Path, start: int, frames: int) -> None:
    """``frames`` frames of ``src`` from ``start`` into a new MP4 (OpenCV's mp4v)."""
    cap = cv2.VideoCapture(str(src))
    cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    fps = cap.get(cv2.CAP_PROP_FPS)
    out = None
    for _ in range(frames):
        ok, frame = cap.read()
        assert ok, (src, start)
        if out is None:
            out = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, frame.shape[1::-1])
        out.write(frame)
    out.release()
    cap.release()


def stills(src: Path, folder: Path, indices: list[int]) -> None:
    folder.mkdir(parents=True)
    cap = cv2.VideoCapture(str(src))
    for i in indices:
        cap.set(cv2.CAP_PROP_POS_FRAMES, i)
        ok, frame = cap.read()
        assert ok
        cv2.imwrite(str(folder / f"{i:04d}.jpg"), frame)
    cap.release()


@pytest.fixture(scope="module")
def recordings(media, tmp_path_factory) -> Path:
    """6 media inputs: 4 short clips, a folder of 3 photos, a truncated MP4; plus a note (not media)."""
    root = tmp_path_factory.mktemp("recordings") / "study"
    root.mkdir()
    for i, start in enumerate((0, 120, 240, 360)):
        cut(media / CLIP, root / f"clip{i}.mp4", start, SHORT)
    stills(media / CLIP, root / "photos", [50, 150, 250])
    (root / "broken.mp4").write_bytes((root / "clip0.mp4").read_bytes()[:2000])  # no moov atom
    (root / "notes.md").write_text("session notes\n")
    return root


def batch(*args, face_model: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runtime", "batch", *map(str, args), "--face-model", face_model],
                          capture_output=True, text=True, timeout=timeout, env=ENV, check=False)


def manifest_rows(out: Path) -> dict[str, dict]:
    with open(out / "manifest.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == COLUMNS
        rows = list(reader)
    assert len({r["input"] for r in rows}) == len(rows)  # one row per input
    return {Path(r["input"]).name: r for r in rows}


def check_outputs(out: Path, rows: dict[str, dict], openface: bool = False) -> None:
    """Every done row agrees with its files: JSONL lines = frames (each frame once, in order), faces in
    them = faces = the CSV's face rows (OpenFace's CSV: a row per face and one per frame without); no
    partial file anywhere in DIR."""
    for name, row in rows.items():
        if row["status"] != "done":
            continue
        records = [json.loads(line) for line in (out / row["jsonl"]).read_text().splitlines()]
        frames = [r["frame"] for r in records]
        assert len(records) == int(row["frames"]) and frames == sorted(set(frames)), name
        assert sum(len(r["faces"]) for r in records) == int(row["faces"]), name
        with open(out / row["csv"], newline="") as f:
            table = list(csv.DictReader(f, skipinitialspace=True))
        if openface:
            assert list(table[0])[:5] == ["frame", "face_id", "timestamp", "confidence", "success"], name
            assert len(table) == sum(max(1, len(r["faces"])) for r in records), name
        else:
            assert sum(1 for r in table if r["face_id"]) == int(row["faces"]), name
        assert float(row["fps"]) > 0 and row["error"] == "", name
    assert [p.name for p in out.iterdir() if ".partial" in p.name] == []


# --- what the arguments name ----------------------------------------------------------------------------

def test_inputs_expand_folders_lists_and_get_unique_stable_stems(recordings, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(recordings / "clip0.mp4", other / "clip0.mp4")
    listing = tmp_path / "list.txt"
    listing.write_text(f"# session 2\n\n{other / 'clip0.mp4'}\nmissing.mp4\nlist.txt\n")
    found = expand([recordings, listing, recordings / "clip1.mp4"])  # clip1 again: one input
    kinds = {(Path(i.path).name, i.kind) for i in found.inputs}
    assert kinds == {("broken.mp4", "video"), ("clip0.mp4", "video"), ("clip1.mp4", "video"), ("clip2.mp4", "video"),
                     ("clip3.mp4", "video"), ("photos", "folder"), ("missing.mp4", "missing"), ("list.txt", "missing")}
    assert len(found.inputs) == 9 and found.ignored == 1  # notes.md
    missing = next(i for i in found.inputs if i.path.endswith("missing.mp4"))
    assert missing.path == str(tmp_path / "missing.mp4") and "list.txt' line 4" in missing.problem
    stems = assign_stems(found.inputs, {})
    assert len({s.casefold() for s in stems.values()}) == len(stems)
    clip0s = [stems[i.path] for i in found.inputs if i.path.endswith("clip0.mp4")]
    assert all(s.startswith("clip0-") and len(s) == len("clip0-") + 8 for s in clip0s)  # both, by path hash
    assert assign_stems(reversed(found.inputs), {}) == stems  # not the order: the same on every run
    # a stem in the manifest stays its input's, and is never given to another
    kept = assign_stems([Input(str(other / "clip0.mp4"), "video")], {str(recordings / "clip0.mp4"): "clip0"})
    assert kept[str(other / "clip0.mp4")].startswith("clip0-")
    assert assign_stems([Input("/x/manifest.mp4", "video")], {}) == {"/x/manifest.mp4": "manifest_"}
    with pytest.raises(SourceError, match="rtsp://cam/live.*stream or camera"):
        expand(["rtsp://cam/live"])
    with pytest.raises(SourceError, match="not found.*nope"):
        expand([tmp_path / "nope"])


def test_a_file_that_is_not_a_manifest_is_refused_not_overwritten(tmp_path):
    (tmp_path / "manifest.csv").write_text("name,value\na,1\n")
    with pytest.raises(AUEdgeError, match="not an au-edge batch manifest.*move it away"):
        Manifest.load(tmp_path)
    assert (tmp_path / "manifest.csv").read_text() == "name,value\na,1\n"


# --- runs ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def first_run(recordings, face_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch") / "results"
    proc = batch(recordings, "--out", out, "--workers", "2", face_model=face_model)
    return out, proc


def test_folder_with_two_workers_writes_outputs_and_a_manifest_that_agrees(first_run):
    out, proc = first_run
    assert proc.returncode == 1, proc.stderr  # one input failed, the others ran
    assert "6 inputs: 6 to run" in proc.stderr and "2 workers" in proc.stderr and "1 other file left out" in proc.stderr
    rows = manifest_rows(out)
    assert set(rows) == {"clip0.mp4", "clip1.mp4", "clip2.mp4", "clip3.mp4", "photos", "broken.mp4"}
    assert {n: (r["status"], int(r["frames"])) for n, r in rows.items() if n != "broken.mp4"} == {
        **{f"clip{i}.mp4": ("done", SHORT) for i in range(4)}, "photos": ("done", 3)}
    assert all(int(r["faces"]) >= int(r["frames"]) - 1 for n, r in rows.items() if n != "broken.mp4")  # one face
    check_outputs(out, rows)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        ["manifest.csv"] + [f"{s}.{x}" for s in ("clip0", "clip1", "clip2", "clip3", "photos") for x in ("jsonl", "csv")])
    photos = [json.loads(line)["source"] for line in (out / "photos.jsonl").read_text().splitlines()]
    assert photos == ["0050.jpg", "0150.jpg", "0250.jpg"]


def test_a_failed_input_is_recorded_and_on_stderr_and_the_others_succeed(first_run):
    out, proc = first_run
    row = manifest_rows(out)["broken.mp4"]
    assert row["status"] == "failed" and "broken.mp4" in row["error"] and row["frames"] == "0"
    assert not (out / "broken.jsonl").exists() and not (out / "broken.csv").exists()
    failed = [line for line in proc.stderr.splitlines() if "failed broken.mp4" in line]
    assert len(failed) == 1 and row["error"] in failed[0]
    assert "5 done now, 0 skipped (done before), 1 failed" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_second_run_skips_what_is_done_and_reruns_changed_and_failed(recordings, face_model, tmp_path, media):
    study = tmp_path / "study"
    shutil.copytree(recordings, study)
    listing = tmp_path / "inputs.txt"
    listing.write_text("study/clip0.mp4\nstudy/clip1.mp4\nstudy/photos\nstudy/missing.mp4\n")
    out = tmp_path / "out"
    first = batch(listing, "--out", out, face_model=face_model)
    assert first.returncode == 1 and "4 inputs: 4 to run" in first.stderr, first.stderr

    def written() -> dict[str, int]:
        return {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name.startswith(("clip", "photos"))}
    before = written()
    again = batch(listing, "--out", out, face_model=face_model)
    assert again.returncode == 1 and "4 inputs: 1 to run, 3 done before and unchanged" in again.stderr, again.stderr
    assert len(before) == 6 and written() == before  # nothing rewritten
    assert manifest_rows(out)["missing.mp4"]["status"] == "failed"  # the failed one ran again
    cut(media / CLIP, study / "clip1.mp4", 400, 12)  # a changed recording runs again
    (study / "missing.mp4").write_bytes((study / "clip0.mp4").read_bytes())  # and the missing one appeared
    third = batch(listing, "--out", out, face_model=face_model)
    assert third.returncode == 0 and "4 inputs: 2 to run, 2 done before" in third.stderr, third.stderr
    rows = manifest_rows(out)
    assert (rows["clip1.mp4"]["frames"], rows["missing.mp4"]["frames"]) == ("12", str(SHORT))
    check_outputs(out, rows)


def test_a_killed_batchs_manifest_partial_is_removed_by_the_next_run_however_young(recordings, face_model, tmp_path):
    """A SIGKILL between the manifest's create and rename leaves its partial; the next batch, holding the
    batch lock, removes it at once (the age rule alone kept it while a quick rerun ended: CI of b76f23e)."""
    out = tmp_path / "out"
    out.mkdir()
    left = out / ".manifest.k1lled00.partial.csv"
    left.write_text("input,status\n")
    future = time.time() + 3600  # young for however long this run takes: only the lock can call it stale
    os.utime(left, (future, future))
    proc = batch(recordings / "photos", "--out", out, face_model=face_model)
    assert proc.returncode == 0, proc.stderr
    assert manifest_rows(out)["photos"]["status"] == "done"
    assert [p.name for p in out.iterdir() if ".partial" in p.name] == []


def _workers(pid: int) -> list[int]:
    """The worker processes of batch ``pid`` (its spawned children; not multiprocessing's resource tracker)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    if not path.exists():
        pytest.skip("needs Linux /proc/PID/task/PID/children")
    found = []
    for child in path.read_text().split():
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(int(child))
        except OSError:
            pass
    return found


def _wait_for(predicate, timeout: float = 120.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def longer(media, tmp_path_factory) -> Path:
    """4 clips of 150 frames (about 2 s each here), so a kill lands inside an input."""
    root = tmp_path_factory.mktemp("longer") / "long"
    root.mkdir()
    for i in range(4):
        cut(media / CLIP, root / f"take{i}.mp4", 80 * i, 150)
    return root


def _done_rows(out: Path) -> int:
    try:
        return sum(r["status"] == "done" for r in manifest_rows(out).values())
    except (OSError, AssertionError):
        return 0


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_completes_without_duplicates_or_partials(longer, face_model, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "runtime", "batch", str(longer), "--out", str(out), "--workers",
                             "2", "--face-model", face_model], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    try:
        _wait_for(lambda: _done_rows(out) >= 1, what="the first finished input")
        workers = _workers(proc.pid)
        assert len(workers) == 2
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_before = _done_rows(out)
    assert 1 <= done_before < 4
    # the workers end with their parent (no orphan goes on writing); what they were writing stays partial
    _wait_for(lambda: not any(Path(f"/proc/{w}").exists() for w in workers), 10, "the workers to end")
    assert [p for p in out.iterdir() if ".partial" in p.name], "the kill landed between inputs"
    rerun = batch(longer, "--out", out, "--workers", "2", face_model=face_model)
    assert rerun.returncode == 0, rerun.stderr
    assert f"4 inputs: {4 - done_before} to run, {done_before} done before" in rerun.stderr
    rows = manifest_rows(out)
    assert {n: (r["status"], r["frames"]) for n, r in rows.items()} == {f"take{i}.mp4": ("done", "150") for i in range(4)}
    check_outputs(out, rows)


@pytest.mark.slow
def test_sigterm_stops_workers_keeps_finished_rows_and_leaves_no_partial(longer, face_model, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "runtime", "batch", str(longer), "--out", str(out), "--workers",
                             "2", "--face-model", face_model], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)
    try:
        _wait_for(lambda: _done_rows(out) >= 1, what="the first finished input")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "not run (interrupted; run the same command again to go on)" in err and "Traceback" not in err
    rows = manifest_rows(out)
    assert 1 <= len(rows) < 4 and all(r["status"] == "done" for r in rows.values())
    check_outputs(out, rows)  # no partial file: the workers were stopped and what they wrote removed


@pytest.mark.slow
def test_a_worker_killed_mid_input_fails_that_input_only(longer, face_model, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "runtime", "batch", str(longer), "--out", str(out), "--workers",
                             "2", "--face-model", face_model, "--csv-format", "openface"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)
    try:
        _wait_for(lambda: any(".partial" in p.name for p in out.iterdir()) if out.is_dir() else False,
                  what="an input being written")
        victim = _workers(proc.pid)[0]
        os.kill(victim, signal.SIGKILL)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    rows = manifest_rows(out)
    failed = {n: r["error"] for n, r in rows.items() if r["status"] == "failed"}
    assert len(failed) == 1 and "killed by SIGKILL" in next(iter(failed.values())), rows
    assert sum(r["status"] == "done" for r in rows.values()) == 3  # a fresh worker took the rest
    check_outputs(out, rows, openface=True)


# --- faults and options ----------------------------------------------------------------------------------

def test_expected_faults_are_one_line_and_exit_2(recordings, face_model, tmp_path):
    from runtime.atomic import held_lock

    only_line_error(batch(tmp_path / "nope.mp4", "--out", tmp_path / "o", face_model=face_model), "not found", "nope.mp4")
    assert not (tmp_path / "o").exists()  # a wrong INPUT leaves nothing behind
    only_line_error(batch(recordings, "--out", tmp_path / "o", "--ray-address", "auto", face_model=face_model),
                   "--ray-address needs --runner ray")
    only_line_error(batch(recordings, "--out", tmp_path / "o", "--workers", "0", face_model=face_model), "--workers")
    (tmp_path / "file").write_text("x")
    only_line_error(batch(recordings, "--out", tmp_path / "file", face_model=face_model), "is a file")
    busy = tmp_path / "busy"
    busy.mkdir()
    with held_lock(busy / ".au-edge-batch.lock", "held by the test"):
        only_line_error(batch(recordings, "--out", busy, face_model=face_model), "another au-edge batch is writing")
    # an engine that cannot load fails every input alike: one line, exit 2, no row recorded
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    proc = batch(recordings / "clip0.mp4", "--out", tmp_path / "o2", "--engine", bad, "--quiet", face_model=face_model)
    only_line_error(proc, "bad.onnx")
    assert not (tmp_path / "o2" / "manifest.csv").exists()


def test_ray_missing_is_one_line_with_the_install_hint(monkeypatch, tmp_path):
    from runtime.batch.job import Job, Settings
    from runtime.batch.ray_runner import RayRunner
    from runtime.errors import MissingDependency

    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray gives: ImportError
    job = Job(str(tmp_path / "a.mp4"), "video", "a", str(tmp_path), "1-1")
    with pytest.raises(MissingDependency, match=r"Ray .*not installed: pip install 'au-edge\[ray\]'"):
        RayRunner(Settings(engine="x.onnx"), 1, None).run([job], lambda row: None)


def test_progress_bar_with_tqdm_and_plain_lines(tmp_path):
    pytest.importorskip("tqdm")
    from runtime.batch.manifest import Row
    from runtime.batch.progress import Progress

    rows = [Row("/a/x.mp4", "done", frames=10, faces=9, fps=50.0), Row("/a/y.mp4", "failed", error="cannot open y")]
    for bar in (True, False):
        stream = io.StringIO()
        p = Progress(2, bar=bar, stream=stream)
        for r in rows:
            p.row(r)
        p.close()
        text = stream.getvalue()
        assert "[2/2] failed y.mp4: cannot open y" in text
        assert ("2/2" in text and "file" in text) if bar else "[1/2] done x.mp4: 10 frames, 9 faces, 50.0 fps" in text
    quiet = io.StringIO()
    p = Progress(2, enabled=False, stream=quiet)
    for r in rows:
        p.row(r)
    assert quiet.getvalue() == "au-edge batch: [2/2] failed y.mp4: cannot open y\n"  # failures even when quiet


# --- Ray -------------------------------------------------------------------------------------------------

def _ray_or_fail():
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("ray is not installed: pip install 'au-edge[ray]' (the dev extra has it)")
        pytest.skip("ray is not installed")


@pytest.mark.slow
def test_ray_runner_on_a_local_instance_gives_the_same_manifest(recordings, face_model, tmp_path):
    _ray_or_fail()
    inputs = (recordings / "clip2.mp4", recordings / "photos")
    local = batch(*inputs, "--out", tmp_path / "local", "--workers", "2", face_model=face_model)
    ray = batch(*inputs, "--out", tmp_path / "ray", "--workers", "2", "--runner", "ray", face_model=face_model)
    if ray.returncode == 2 and "cannot start or reach a local Ray instance" in ray.stderr:  # Ray's fixed 30 s
        ray = batch(*inputs, "--out", tmp_path / "ray", "--workers", "2", "--runner", "ray", face_model=face_model)
    assert local.returncode == 0 and ray.returncode == 0, (local.stderr, ray.stderr)
    assert "ray runner, 2 workers" in ray.stderr
    want, got = manifest_rows(tmp_path / "local"), manifest_rows(tmp_path / "ray")
    same = ("input", "status", "frames", "faces", "error", "jsonl", "csv", "fingerprint", "settings")
    assert {n: [r[c] for c in same] for n, r in got.items()} == {n: [r[c] for c in same] for n, r in want.items()}
    check_outputs(tmp_path / "ray", got)
    for stem in ("clip2", "photos"):  # the same function: the same results (all but the timing)
        assert (tmp_path / "ray" / f"{stem}.csv").read_text() == (tmp_path / "local" / f"{stem}.csv").read_text()
        untimed = [[{k: v for k, v in json.loads(line).items() if k != "latency_ms"}
                    for line in (tmp_path / d / f"{stem}.jsonl").read_text().splitlines()] for d in ("ray", "local")]
        assert untimed[0] == untimed[1]


def test_mesh_every_changes_the_settings_key_only_when_used():
    """Outputs made before ``--mesh-every`` existed (the mesh on every frame) stay done: the key of
    ``mesh_every=1`` is the hash of the other settings alone, as it was; any other value runs again."""
    import hashlib
    from dataclasses import asdict

    from runtime.batch.job import Settings

    plain = Settings(engine="/nonexistent/x.onnx")
    before = {k: v for k, v in asdict(plain).items() if k not in ("threads", "mesh_every")}
    assert plain.key() == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:16]
    assert Settings(engine="/nonexistent/x.onnx", mesh_every=3).key() != plain.key()
