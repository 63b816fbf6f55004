"""Shared fixtures: the open data (AU_DATA_DIR) and tiny conforming engines."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # test helper modules

# The shipped model's numbers the tests check were read on its INT8 engine; which engine
# ``--engine default`` times faster differs from CPU to CPU (runtime.engines.default_speed), so the
# session pins it. The pick itself is tested in test_default_model.py with the pin removed.
os.environ["AU_EDGE_DEFAULT_ENGINE"] = "au_default_int8.tflite"

# Markers that follow from a test's fixtures, set here so no test that uses one can miss them:
# ``exported`` runs ``python -m export`` in every CPU format (about 30 s, once per session) and
# ``tiny_engines`` builds engines with litert-torch and ai-edge-quantizer (the export extra).
MARKS_BY_FIXTURE = {"exported": ("slow", "export"), "tiny_engines": ("export",)}


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        for fixture, marks in MARKS_BY_FIXTURE.items():
            if fixture in getattr(item, "fixturenames", ()):
                for mark in marks:
                    item.add_marker(getattr(pytest.mark, mark))


def data_dir_or_fail() -> Path:
    """AU_DATA_DIR, or fail under CI=true / skip elsewhere when it is missing (CONTRACTS)."""
    value = os.environ.get("AU_DATA_DIR")
    if value and Path(value).is_dir():
        return Path(value)
    msg = f"AU_DATA_DIR={value!r} is not a directory; set it to the open data folder"
    if os.environ.get("CI") == "true":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return data_dir_or_fail()


@pytest.fixture(scope="session")
def tiny_engines(tmp_path_factory):
    """ONNX (prob, logit, BGR), TFLite (NCHW, NHWC) and INT8 TFLite engines with cards."""
    from engine_factory import build_all

    return build_all(tmp_path_factory.mktemp("engines"))


@pytest.fixture(scope="session")
def face_model(data_dir) -> str:
    """The face models of the open data (offline; the PyPI path is tested in test_face.py)."""
    return str(data_dir / "models" / "mediapipe-0.10.21")


@pytest.fixture(scope="session")
def media(data_dir) -> Path:
    return data_dir / "media"


@pytest.fixture(scope="session")
def setup(data_dir, tmp_path_factory) -> dict[str, Path]:
    """A tiny untrained teacher checkpoint and a tiny cache of real photos (test_export.py's helpers)."""
    from test_export import _cache, _checkpoint

    root = tmp_path_factory.mktemp("export")
    cache = _cache(root / "cache", data_dir)
    return {"cache": cache, "ckpt": _checkpoint(root / "run" / "best.pt", cache), "root": root}


@pytest.fixture
def deploy_run(setup, tmp_path) -> Path:
    """The tiny run's checkpoint with the deploy split a shipped model uses (its own train/val/test identities)."""
    import json

    from train import checkpoint

    raw = checkpoint.load(setup["ckpt"])
    raw["config"] = json.dumps({"data": str(setup["cache"]), "split": "deploy", "val_fraction": 0.15, "seed": 0})
    ckpt = tmp_path / "run" / "best.pt"
    ckpt.parent.mkdir()
    checkpoint.save(ckpt, raw)
    return ckpt


@pytest.fixture(scope="session")
def exported(setup) -> dict:
    """``python -m export`` of that checkpoint in every CPU format, once per session (about a minute)."""
    import json

    from test_export import FORMATS, run_export

    out = setup["root"] / "out"
    proc = run_export("--checkpoint", setup["ckpt"], "--formats", FORMATS, "--calib", setup["cache"],
                      "--out", out, "--split", "all")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"out": out, "stdout": proc.stdout, "parity": json.loads((out / "parity.json").read_text()),
            "files": {f: out / name for f, name in (("onnx", "au_fp32.onnx"), ("onnx-int8", "au_int8.onnx"),
                                                     ("tflite", "au_fp32.tflite"),
                                                     ("tflite-int8", "au_int8.tflite"))}}
