"""The photo workflow as a user runs it: a folder of real photos (one with five people), an unreadable
file and a note beside them, through ``au-edge camera`` and ``python -m demo`` (real subprocesses, a
real ONNX engine, the open data's face models), and the outputs read back with independent readers.
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from faults import only_line_error
from test_cli import run_cli
from test_demo import CLIP, run_demo

from runtime import AUDetector
from runtime.atomic import partials
from runtime.outputs import AnnotatedImages
from runtime.result_files import read_results
from runtime.results import FrameResult

pytestmark = pytest.mark.data

GROUP = "multi_face.jpg"  # five people (the open data's README)


@pytest.fixture(scope="module")
def folder(data_dir, tmp_path_factory) -> Path:
    """In sorted order: a photo with five people, an unreadable .jpg, one person, a note."""
    d = tmp_path_factory.mktemp("photos")
    shutil.copy(data_dir / "media" / GROUP, d / "a_group.jpg")
    (d / "b_broken.jpg").write_bytes(b"not a jpeg")
    shutil.copy(data_dir / "media" / "people" / "lisa1.jpg", d / "c_lisa.jpg")
    (d / "notes.txt").write_text("shot list\n")
    return d


def test_a_photo_folder_from_the_cli(tiny_engines, face_model, folder, tmp_path):
    """Every face of every photo (no cap in image mode), skipped files named in the JSONL and the
    summary, the file column in the CSV, one annotated image per photo; with a cap, faces_beyond_max."""
    ann = tmp_path / "annotated"
    proc = run_cli("--engine", tiny_engines["onnx"], "--source", folder, "--no-show", "--face-model", face_model,
                   "--jsonl", tmp_path / "au.jsonl", "--csv", tmp_path / "au.csv", "--save-annotated", ann)
    assert proc.returncode == 0, proc.stderr
    assert "not_image=1 (notes.txt)" in proc.stderr and "unreadable_image=1 (b_broken.jpg)" in proc.stderr
    assert "no face cap" in proc.stderr
    recs = [json.loads(line) for line in (tmp_path / "au.jsonl").read_text().splitlines()]
    # the note (no frame number) first, then the folder's order
    assert [(r["source"], r.get("skipped")) for r in recs] == [
        ("notes.txt", "not_image"), ("a_group.jpg", None), ("b_broken.jpg", "unreadable_image"), ("c_lisa.jpg", None)]
    assert recs[0]["frame"] is None and recs[2]["frame"] == 1 and recs[2]["faces"] == []
    assert [len(r["faces"]) for r in recs] == [0, 5, 0, 1]
    assert all("faces_beyond_max" not in r for r in recs)  # no cap applied

    with open(tmp_path / "au.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[-1] == "file"
    assert [r["file"] for r in rows] == ["a_group.jpg"] * 5 + ["c_lisa.jpg"]  # processed photos only
    df = read_results(tmp_path / "au.jsonl").to_dataframe()  # the skipped records give no rows
    assert list(df.source) == ["a_group.jpg"] * 5 + ["c_lisa.jpg"] and df.success.all()

    assert sorted(p.name for p in ann.iterdir()) == ["a_group.jpg", "c_lisa.jpg"]
    assert partials(ann) == []
    for name in ("a_group.jpg", "c_lisa.jpg"):
        got, photo = cv2.imread(str(ann / name)), cv2.imread(str(folder / name))
        assert got.shape == photo.shape and np.abs(got.astype(int) - photo).mean() > 1.0  # drawn on

    capped = run_cli("--engine", tiny_engines["onnx"], "--source", folder, "--no-show", "--face-model",
                     face_model, "--jsonl", "-", "--max-faces", "2")
    assert capped.returncode == 0, capped.stderr
    beyond = {r["source"]: r.get("faces_beyond_max") for r in map(json.loads, capped.stdout.splitlines())}
    assert beyond == {"notes.txt": None, "a_group.jpg": 3, "b_broken.jpg": None, "c_lisa.jpg": 0}
    assert "3 faces beyond --max-faces 2" in capped.stderr


def test_save_annotated_refuses_videos_and_the_photos_own_folder(tiny_engines, face_model, folder, media, tmp_path):
    eng = ("--engine", tiny_engines["onnx"], "--no-show", "--face-model", face_model)
    only_line_error(run_cli(*eng, "--source", media / CLIP, "--save-annotated", tmp_path / "a"), "--record")
    only_line_error(run_cli(*eng, "--source", folder, "--save-annotated", folder), "overwrite")
    assert not (tmp_path / "a").exists()


def test_annotated_images_are_committed_only_when_the_run_ends_well(tmp_path):
    photo = np.full((120, 160, 3), 60, np.uint8)
    result = FrameResult(frame=0, time_s=0.0, source="p.png")
    out = tmp_path / "ann"
    failed = AnnotatedImages(out, ["AU12"])
    failed.write(result, photo)
    failed.abort()
    assert (not out.exists() or list(out.iterdir()) == []) and partials(out) == []
    out.mkdir(exist_ok=True)
    cv2.imwrite(str(out / "p.png"), np.zeros((10, 10, 3), np.uint8))  # an earlier run's copy
    ok = AnnotatedImages(out, ["AU12"])
    ok.write(result, photo)
    assert cv2.imread(str(out / "p.png")).shape == (10, 10, 3)  # not replaced before close
    ok.close()
    assert cv2.imread(str(out / "p.png")).shape == photo.shape and partials(out) == []


def test_auto_cap_follows_the_running_mode(tiny_engines, face_model, media):
    """max_faces='auto' (the default): every face of a photo stream, VIDEO_MAX_FACES in video mode."""
    from runtime.detector import VIDEO_MAX_FACES

    group = cv2.imread(str(media / GROUP))
    with AUDetector(tiny_engines["onnx"], face_model=face_model) as det:
        photos = list(det.stream(str(media / GROUP)))
        assert len(photos[0].faces) == 5 and photos[0].faces_beyond_max is None
        video = det.process(group, 0.0)
    assert len(video.faces) == VIDEO_MAX_FACES == 4 and video.faces_beyond_max == 1


def test_the_demo_on_photos_then_a_video_never_mixes_two_runs(tiny_engines, face_model, folder, data_dir, media,
                                                               tmp_path):
    """`make demo SOURCE=folder`: a per-photo table and chart, the annotated photos; a later run removes
    what it does not make again (photos/ after a video, frame.png when no face was found)."""
    out = tmp_path / "demo"
    base = ("--engine", tiny_engines["onnx"], "--face-model", face_model, "--out", out, "--quiet")
    proc = run_demo(*base, "--source", folder)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["demo.csv", "demo.jsonl", "demo.mp4", "frame.png", "photos",
                                                     "report.html", "timeline.png"]
    assert sorted(p.name for p in (out / "photos").iterdir()) == ["a_group.jpg", "c_lisa.jpg"]
    table = proc.stdout.split("per photo")[1].splitlines()[1:5]
    assert [line.split()[0] for line in table] == ["notes.txt", "a_group.jpg", "b_broken.jpg", "c_lisa.jpg"]
    assert "5 faces" in table[1] and "skipped: unreadable_image" in table[2] and "1 face " in table[3]
    assert "2 photos, 2 with a face, 6 faces, 2 skipped" in proc.stdout
    chart = cv2.imread(str(out / "timeline.png"))  # one row per face: (0.3 in x 6 + 1.6 in) at 100 dpi
    assert chart.shape[:2] == (round((0.3 * 6 + 1.6) * 100), 1200)
    assert "AU probability per face" in (out / "report.html").read_text()
    slideshow = cv2.VideoCapture(str(out / "demo.mp4"))
    assert int(slideshow.get(cv2.CAP_PROP_FRAME_COUNT)) == 2
    slideshow.release()

    empty = tmp_path / "no_faces"
    empty.mkdir()
    shutil.copy(next(iter(sorted((data_dir / "media" / "no_faces").iterdir()))), empty / "flower.jpg")
    proc = run_demo(*base, "--source", empty)
    assert proc.returncode == 0, proc.stderr
    assert not (out / "frame.png").exists() and [p.name for p in (out / "photos").iterdir()] == ["flower.jpg"]

    proc = run_demo(*base, "--source", media / CLIP, "--max-frames", 3)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["demo.csv", "demo.jsonl", "demo.mp4", "frame.png",
                                                     "report.html", "timeline.png"]
    assert "file" not in (out / "demo.csv").read_text().splitlines()[0].split(",")
