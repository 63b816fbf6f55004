"""The shipped default model: ``python -m export.install``'s checks, the backend pick, and the wheel.

The install and pick tests install the session's tiny real export (conftest ``exported``) into
temporary folders. The wheel test reads ``runtime/models/default/``, the model committed to ship:
it fails under CI=true when that folder holds no model, and skips elsewhere.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from faults import only_line_error

REPO = Path(__file__).resolve().parents[1]
SHIPPED_DIR = REPO / "runtime" / "models" / "default"
# what the install copies (export name -> installed name): the contract of this test, written out
SHIPS = {"au_int8.tflite": "au_default_int8.tflite", "au_fp32.onnx": "au_default.onnx"}
EXTRAS = ("", ".json", ".parity.npz")
INSTALLED = sorted([SHIPS[s] + x for s in SHIPS for x in EXTRAS] + ["MANIFEST.json"])
PINNED_LINE = "default → au_default_int8.tflite (LiteRT INT8; AU_EDGE_DEFAULT_ENGINE)"  # the session's pin
ONNX_LINE = "default → au_default.onnx (ONNX Runtime FP32)"  # the only one when LiteRT is missing
HIDE_LITERT = "import sys; sys.modules['ai_edge_litert'] = None; sys.modules['tflite_runtime'] = None; "
HIDE_ALL = HIDE_LITERT + "sys.modules['onnxruntime'] = None; "
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_install(*args, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "export.install", *map(str, args)], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=timeout, check=False)


def python(code: str, cwd: Path, pythonpath: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**ENV, "PYTHONPATH": str(pythonpath)} if pythonpath else ENV
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture
def export_dir(exported, tmp_path) -> Path:
    """The shipping artifacts of the session's export, copied so a test may break them."""
    out = tmp_path / "export"
    out.mkdir()
    for name in [s + x for s in SHIPS for x in EXTRAS] + ["parity.json"]:
        shutil.copyfile(exported["out"] / name, out / name)
    return out


# ---- python -m export.install ---------------------------------------------------------------------

def test_install_copies_the_shipping_set_byte_for_byte(exported, tmp_path):
    import onnx

    from runtime import load_engine

    dest = tmp_path / "models" / "default"
    proc = run_install("--export", exported["out"], "--dest", dest)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in dest.iterdir()) == INSTALLED
    manifest = json.loads((dest / "MANIFEST.json").read_text())
    assert sorted(manifest["files"]) == sorted(set(INSTALLED) - {"MANIFEST.json"})
    for source, name in SHIPS.items():
        for x in EXTRAS:
            assert (dest / (name + x)).read_bytes() == (exported["out"] / (source + x)).read_bytes(), name + x
        card = json.loads((dest / (name + ".json")).read_text())
        assert card["sha256"] == sha256(dest / name)  # the export's card is valid under the new name
    for name, entry in manifest["files"].items():
        assert entry == {"sha256": sha256(dest / name), "size": (dest / name).stat().st_size,
                         "from": entry["from"]}
    assert manifest["total_size"] == sum((dest / n).stat().st_size for n in manifest["files"])
    props = {p.key: p.value for p in onnx.load(str(dest / "au_default.onnx")).metadata_props}
    sidecar = json.loads((dest / "au_default.onnx.json").read_text())
    assert json.loads(props["au_edge.model_card"])["aus"] == sidecar["aus"]  # the embedded card travelled
    for name in SHIPS.values():  # the runtime opens both under their shipped names
        with load_engine(dest / name, threads=1) as eng:
            assert eng.card.sha256 == manifest["files"][name]["sha256"]
    # a second install replaces the first; a folder holding anything else is refused
    assert run_install("--export", exported["out"], "--dest", dest).returncode == 0
    assert sorted(p.name for p in dest.iterdir()) == INSTALLED
    (dest / "notes.txt").write_text("mine")
    only_line_error(run_install("--export", exported["out"], "--dest", dest), "notes.txt", "--dest")
    assert (dest / "notes.txt").read_text() == "mine"


def _remove(path: Path) -> None:
    path.unlink()


def _card_sha(path: Path, sha: str) -> None:
    card = json.loads(path.read_text())
    card["sha256"] = sha
    path.write_text(json.dumps(card))


def _fail_gate(export: Path) -> None:
    report = json.loads((export / "parity.json").read_text())
    for e in report["artifacts"]:
        if e["file"] == "au_int8.tflite":
            e["passed"], e["f1_mean_delta_vs_torch"] = False, -2.5
    (export / "parity.json").write_text(json.dumps(report))


def _append(path: Path) -> None:
    with open(path, "ab") as f:
        f.write(b"x")


def _grow(export: Path, name: str, extra: int) -> None:
    """Pad ``name`` by ``extra`` bytes and give it a card that matches, so only the size is wrong."""
    with open(export / name, "ab") as f:
        f.write(b"\0" * extra)
    _card_sha(export / (name + ".json"), sha256(export / name))


BREAKS = {
    "missing engine": (lambda d: _remove(d / "au_fp32.onnx"), ("au_fp32.onnx", "not found", "python -m export")),
    "missing card": (lambda d: _remove(d / "au_int8.tflite.json"), ("au_int8.tflite.json", "not found")),
    "missing reference": (lambda d: _remove(d / "au_fp32.onnx.parity.npz"), ("au_fp32.onnx.parity.npz",)),
    "wrong sha256": (lambda d: _card_sha(d / "au_fp32.onnx.json", "0" * 64), ("au_fp32.onnx.json", "000000000000")),
    "engine changed": (lambda d: _append(d / "au_int8.tflite"), ("au_int8.tflite.json", "sha256")),
    "failed gate": (_fail_gate, ("parity FAILED au_int8.tflite", "-2.50", "parity.json")),
    "no parity report": (lambda d: _remove(d / "parity.json"), ("parity.json", "not found")),
    "tflite over 3 MB": (lambda d: _grow(d, "au_int8.tflite", 3_000_000), ("au_default_int8.tflite", "limit 3 MB")),
    "set over 15 MB": (lambda d: _grow(d, "au_fp32.onnx", 14_000_000), ("the whole set", "limit 15 MB")),
}


@pytest.mark.parametrize("case", list(BREAKS))
def test_install_refuses_in_one_line_and_writes_nothing(case, export_dir, tmp_path):
    brk, words = BREAKS[case]
    brk(export_dir)
    dest = tmp_path / "dest"
    proc = run_install("--export", export_dir, "--dest", dest)
    only_line_error(proc, *words)
    if case.endswith("MB"):  # the sizes are printed
        tflite, total = (export_dir / "au_int8.tflite").stat().st_size, sum(
            (export_dir / (s + x)).stat().st_size for s in SHIPS for x in EXTRAS)
        assert f"{tflite / 1e6:.2f} MB" in proc.stderr and f"{total / 1e6:.2f} MB" in proc.stderr
    assert not dest.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".dest")]  # no staging left behind


# ---- the pick and the CLI line, on a copy of the runtime package with the tiny export installed -------

@pytest.fixture(scope="module")
def package(exported, tmp_path_factory) -> Path:
    """A folder whose ``runtime/`` is a copy of this checkout's, with the tiny export shipped in it."""
    from export.install import install

    root = tmp_path_factory.mktemp("package")
    shutil.copytree(REPO / "runtime", root / "runtime", ignore=shutil.ignore_patterns("models", "__pycache__"))
    install(exported["out"], root / "runtime" / "models" / "default")
    return root


PICK = "from runtime.engines import default_engine_choice as c; print(c().describe()); print(c().path)"
UNPIN = "import os; os.environ.pop('AU_EDGE_DEFAULT_ENGINE', None); "


def test_the_pick_is_the_only_runnable_engine_or_the_pinned_one(package):
    folder = package / "runtime" / "models" / "default"
    for hide, line, name in (("", PINNED_LINE, "au_default_int8.tflite"),
                             (HIDE_LITERT + UNPIN, ONNX_LINE, "au_default.onnx")):
        proc = python(hide + PICK, cwd=package)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines() == [line, str(folder / name)]
    proc = python(HIDE_ALL + PICK, cwd=package)
    assert "EngineError" in proc.stderr and "pip install 'au-edge[runtime]'" in proc.stderr.strip().splitlines()[-1]
    for code, named in ((HIDE_LITERT, "au_default_int8.tflite"),  # pinned to an engine that cannot run here
                        ("import os; os.environ['AU_EDGE_DEFAULT_ENGINE'] = 'au_int8.onnx'; ", "au_int8.onnx")):
        proc = python(code + PICK, cwd=package)
        last = proc.stderr.strip().splitlines()[-1]
        assert proc.returncode != 0 and f"AU_EDGE_DEFAULT_ENGINE={named!r}" in last and "use one of" in last, last


def test_another_engine_replaces_the_first_listed_only_when_clearly_faster_in_every_round():
    from runtime.engines.default_speed import MARGIN, pick

    first, second = Path("au_default_int8.tflite"), Path("au_default.onnx")
    assert MARGIN == 0.10

    def rounds(a: list[float], b: list[float]) -> dict[str, list[float]]:
        return {first.name: a, second.name: b}
    assert pick([first, second], rounds([1.0] * 3, [0.95] * 3)) == first  # within the margin: noise
    assert pick([first, second], rounds([1.0] * 3, [0.85] * 3)) == second
    assert pick([first, second], rounds([0.5] * 3, [2.0] * 3)) == first
    # Round medians of one shared AVX2 EPYC's timings (ms): the ONNX's overall median is 22 % lower,
    # but it is not faster in every round, so INT8 stays (device_tests.bench: INT8 2.15, ONNX 2.69).
    assert pick([first, second], rounds([2.61, 4.48, 3.29], [2.93, 3.31, 3.26])) == first
    assert pick([first, second], rounds([2.0, 4.0, 3.0], [1.7, 3.5, 2.6])) == second
    third = Path("au_int8.onnx")  # of two clear winners, the one with the lower median
    assert pick([first, second, third], {**rounds([2.0] * 3, [1.5, 1.7, 1.7]), third.name: [1.6, 1.6, 1.6]}) == third


def test_with_both_backends_the_faster_engine_here_is_timed_once_and_remembered(package, tmp_path):
    """Timed on this machine's CPU (the tiny export's two engines), kept in the user cache, read back."""
    folder = package / "runtime" / "models" / "default"
    env_cache = f"os.environ['XDG_CACHE_HOME'] = {str(tmp_path)!r}; "
    first = python(UNPIN + env_cache + PICK, cwd=package)
    assert first.returncode == 0, first.stderr
    line, path = first.stdout.splitlines()
    cache = json.loads((tmp_path / "au-edge" / "default_engine.json").read_text())
    ms = cache["ms"]
    assert sorted(ms) == ["au_default.onnx", "au_default_int8.tflite"] and all(v > 0 for v in ms.values())
    int8, onnx = cache["rounds"]["au_default_int8.tflite"], cache["rounds"]["au_default.onnx"]
    assert len(int8) == len(onnx) == 7
    assert ms == pytest.approx({n: float(np.median(r)) for n, r in cache["rounds"].items()})
    clearly = all(o < 0.9 * i for o, i in zip(onnx, int8))  # INT8 unless ONNX is 10 % faster in every round
    assert cache["file"] == ("au_default.onnx" if clearly else "au_default_int8.tflite") == Path(path).name
    assert Path(path).parent == folder and cache["key"]["threads"] is None and "cores" in cache["key"]["cpu"]
    other = next(n for n in ms if n != cache["file"])
    kept = "" if ms[cache["file"]] <= ms[other] else "; kept: the other not 10% faster in every round"
    assert line.startswith(f"default → {cache['file']} (") and line.endswith(
        f"; timed here: {ms[cache['file']]:.2f} vs {ms[other]:.2f} ms{kept})")
    cache["file"] = other  # the remembered pick is used as it is: no second timing
    (tmp_path / "au-edge" / "default_engine.json").write_text(json.dumps(cache))
    again = python(UNPIN + env_cache + PICK, cwd=package)
    assert again.returncode == 0 and again.stdout.splitlines()[1] == str(folder / other), again.stderr
    (tmp_path / "au-edge" / "default_engine.json").write_text("{not json")  # a broken cache: timed again
    third = python(UNPIN + env_cache + PICK, cwd=package)
    assert third.returncode == 0, third.stderr
    assert json.loads((tmp_path / "au-edge" / "default_engine.json").read_text())["file"] in ms


def test_the_camera_says_which_engine_default_runs(package, face_model, media):
    args = ["--engine", "default", "--source", str(media / "WolfgangLanger_Pexels.mp4"), "--no-show",
            "--max-frames", "2", "--face-model", face_model, "--jsonl", "-"]
    run = [sys.executable, "-m", "runtime.camera"]
    proc = subprocess.run(run + args, cwd=package, env=ENV, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[0] == f"au-edge: {PINNED_LINE}"
    assert len(proc.stdout.splitlines()) == 2 and json.loads(proc.stdout.splitlines()[0])["faces"]
    quiet = subprocess.run(run + args + ["--quiet"], cwd=package, env=ENV, capture_output=True, text=True,
                           timeout=300, check=False)
    assert quiet.returncode == 0 and "default →" not in quiet.stderr, quiet.stderr
    no_backend = python(HIDE_ALL + f"from runtime.camera import main; sys.exit(main({args!r}))", cwd=package)
    only_line_error(no_backend, "no inference backend", "pip install 'au-edge[runtime]'")


def test_no_shipped_model_is_one_line(tmp_path, media):
    shutil.copytree(REPO / "runtime", tmp_path / "runtime", ignore=shutil.ignore_patterns("models", "__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "runtime.camera", "--engine", "default", "--source",
                           str(media / "WolfgangLanger_Pexels.mp4"), "--no-show"], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=300, check=False)
    only_line_error(proc, "no default model is shipped", "--engine PATH")


# ---- the wheel: the committed default model, installed, away from the checkout ------------------------

def shipped_or_fail() -> Path:
    if (SHIPPED_DIR / "MANIFEST.json").is_file():
        return SHIPPED_DIR
    msg = (f"no default model in {SHIPPED_DIR} (no MANIFEST.json): install one with "
           "`python -m export.install --export DIR` (make default-model)")
    if os.environ.get("CI") == "true":
        pytest.fail(msg)
    pytest.skip(msg)


def _source_copy(dest: Path) -> Path:
    """The checkout without its venvs, outputs and build folders: setuptools writes build/ and
    *.egg-info into the tree it builds, and a stale build/lib would leak old files into the wheel."""
    skip = shutil.ignore_patterns(".git", ".venv*", "out", "runs", "build", "dist", "*.egg-info", "__pycache__",
                                  ".pytest_cache", ".ruff_cache")
    shutil.copytree(REPO, dest, ignore=skip, symlinks=True)
    return dest


CHECK = """
import json, runtime
from device_tests.parity import check
from runtime.engines import default_engine_choice, load_engine
choice = default_engine_choice()
with load_engine("default", threads=1) as eng:
    card_sha = eng.card.sha256
print(json.dumps({"runtime": runtime.__file__, "line": choice.describe(), "path": str(choice.path),
                  "card_sha": card_sha, "parity": check(choice.path, threads=1)}))
"""


@pytest.mark.slow
def test_the_wheel_ships_the_default_model_and_it_runs_installed(tmp_path):
    shipped = shipped_or_fail()
    manifest = json.loads((shipped / "MANIFEST.json").read_text())
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    build = subprocess.run([*pip[:3], "wheel", *pip[3:], "--no-deps", "--no-build-isolation", "--no-index", "-w",
                            str(tmp_path / "dist"), str(_source_copy(tmp_path / "src"))],
                           env=ENV, capture_output=True, text=True, timeout=600, check=False)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("au_edge-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        members = {n[len("runtime/models/default/"):]: zf.read(n) for n in zf.namelist()
                   if n.startswith("runtime/models/default/")}
    assert sorted(members) == sorted([*manifest["files"], "MANIFEST.json"])
    for name, entry in manifest["files"].items():
        assert hashlib.sha256(members[name]).hexdigest() == entry["sha256"] == sha256(shipped / name), name
        assert len(members[name]) == entry["size"]

    site = tmp_path / "site"
    inst = subprocess.run([*pip[:3], "install", *pip[3:], "--no-deps", "--no-index", "--target", str(site),
                           str(wheel)], env=ENV, capture_output=True, text=True, timeout=600, check=False)
    assert inst.returncode == 0, inst.stderr[-3000:]
    away = tmp_path / "elsewhere"  # neither the checkout nor the source copy is importable from here
    away.mkdir()
    for hide, line in (("", PINNED_LINE), (HIDE_LITERT + UNPIN, ONNX_LINE)):
        proc = python(hide + CHECK, cwd=away, pythonpath=site)
        assert proc.returncode == 0, proc.stderr[-3000:]
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        assert Path(got["runtime"]).is_relative_to(site) and Path(got["path"]).is_relative_to(site), got
        assert got["line"] == line
        engine = Path(got["path"])
        assert got["card_sha"] == sha256(engine) == manifest["files"][engine.name]["sha256"]
        card = json.loads(engine.with_name(engine.name + ".json").read_text())
        parity = got["parity"]
        assert parity["reference"] == str(engine) + ".parity.npz"
        assert parity["tolerance"] == pytest.approx(card["parity"]["board_tolerance"], rel=1e-6)
        assert parity["passed"] and parity["max_abs_dprob"] <= parity["tolerance"], parity


def test_camera_without_engine_prints_aus_from_the_shipped_model(data_dir, face_model):
    """Issue 8's acceptance run, on the first frames of the Pexels clip: no --engine at all."""
    shipped = shipped_or_fail()
    card = json.loads((shipped / "au_default_int8.tflite.json").read_text())
    proc = subprocess.run([sys.executable, "-m", "runtime.camera", "--source",
                           str(data_dir / "media" / "WolfgangLanger_Pexels.mp4"), "--no-show", "--jsonl", "-",
                           "--max-frames", "24", "--face-model", face_model],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert PINNED_LINE in proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["frame"] for r in records] == list(range(24))
    faces = [f for r in records for f in r["faces"]]
    assert len(faces) >= 20  # one woman, in view from the first frame
    for f in faces:
        # the card's AUs, then AU45 (eye closure from the mesh, runtime.blink)
        assert list(f["au_prob"]) == [*card["aus"], "AU45"] and all(0.0 <= p <= 1.0 for p in f["au_prob"].values())
        assert set(f["au_active"]) <= {*card["aus"], "AU45"}
