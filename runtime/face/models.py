"""Where the face models come from: a folder or ``.task`` bundle, the user cache, else PyPI.

The face models are MediaPipe's (Apache-2.0). They are not shipped in the package: the same
sha256-pinned files are taken from the ``mediapipe`` wheel on PyPI once and cached, so a fresh
install needs nothing but PyPI, and a robot without network can be given a folder or bundle.
"""
from __future__ import annotations

import os
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import AUEdgeError, stderr_line
from runtime.litert import make_interpreter
from runtime.user_cache import user_cache
from runtime.wheel_files import fetch_wheel_files, sha256

ENV_VAR = "AU_FACE_MODEL"
MEDIAPIPE_VERSION = "0.10.21"

FULL_RANGE = "face_detection_full_range_sparse.tflite"
SHORT_RANGE = "face_detection_short_range.tflite"
MESH_468 = "face_landmark.tflite"
TASK_DETECTOR = "face_detector.tflite"            # in a .task bundle: BlazeFace short range
TASK_MESH = "face_landmarks_detector.tflite"      # in a .task bundle: 478-point mesh

# The files of the mediapipe 0.10.21 wheel (identical in every platform's wheel): path in the
# wheel and sha256, so a download that changed upstream is refused rather than run.
WHEEL_FILES: dict[str, tuple[str, str]] = {
    FULL_RANGE: ("mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
                 "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1"),
    SHORT_RANGE: ("mediapipe/modules/face_detection/face_detection_short_range.tflite",
                  "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"),
    MESH_468: ("mediapipe/modules/face_landmark/face_landmark.tflite",
               "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814"),
}

# File names that can fill each role, best first (the 478-point mesh adds the irises).
DETECTOR_NAMES = {"full": (FULL_RANGE,), "short": (SHORT_RANGE, TASK_DETECTOR)}
MESH_NAMES = (TASK_MESH, MESH_468)
DETECTOR_KINDS = tuple(DETECTOR_NAMES)
# "full" also runs the short-range model, for faces too close for the full-range one (a face
# filling the photo): BlazeFace full range is trained on faces up to ~1/3 of the frame.
CLOSE_UP_NAMES = {"full": DETECTOR_NAMES["short"], "short": ()}

_FETCH_LOCK = threading.Lock()  # detectors built in several threads at once fetch the wheel once
_FIX = "pass face_model= (--face-model) a folder with the .tflite files or a face_landmarker .task bundle"


class FaceModelError(AUEdgeError):
    """A face model that is missing, corrupt or cannot be obtained."""


@dataclass(frozen=True)
class ModelFile:
    """One model's bytes and where they came from (named in every error about it)."""

    origin: str
    data: bytes


@dataclass(frozen=True)
class FaceModels:
    detector: ModelFile
    mesh: ModelFile
    close_up: ModelFile | None = None  # the short-range detector beside a full-range one


def cache_dir() -> Path:
    """The user cache for the face models: ``$XDG_CACHE_HOME/au-edge/face_models``."""
    return user_cache("face_models")


def resolve(face_model: str | Path | None = None, detector: str = "full") -> FaceModels:
    """Find the detector and mesh models.

    Order: ``face_model`` (else env ``AU_FACE_MODEL``): a folder or a ``.task`` bundle; then the
    user cache; else the mediapipe wheel from PyPI (into the cache). Roles the given folder or
    bundle lacks (a ``.task`` has no full-range detector) are filled from the cache/PyPI. The
    ``close_up`` detector of ``"full"`` (the short-range model) is optional: a folder without it
    takes it from the cache when the cache has it, else runs without it (with a note), so an
    offline robot given the full-range model and the mesh still starts.

    Raises:
        FaceModelError: the given source is missing or unreadable, or PyPI cannot be reached.
        ValueError: unknown ``detector``.
    """
    if detector not in DETECTOR_NAMES:
        raise ValueError(f"detector must be one of {DETECTOR_KINDS}, got {detector!r}")
    source = face_model if face_model not in (None, "") else os.environ.get(ENV_VAR) or None
    found: dict[str, ModelFile] = {}
    if source is not None:
        found = _read_source(Path(source).expanduser(), detector)
    if "detector" not in found or "mesh" not in found:
        if source is not None:
            missing = f"{detector}-range detector" if "detector" not in found else "face mesh"
            stderr_line(f"au-edge: {source} has no {missing}; taking it from mediapipe {MEDIAPIPE_VERSION} "
                        f"({cache_dir()})")
        for role, mf in _from_cache(detector).items():
            found.setdefault(role, mf)
    if CLOSE_UP_NAMES[detector] and "close_up" not in found:
        found["close_up"] = _cached(cache_dir() / SHORT_RANGE)  # no download for an optional model
        if found["close_up"] is None:
            stderr_line(f"au-edge: {source} has no {SHORT_RANGE}: faces closer than ~0.5 m may be missed; add "
                        f"it there (mediapipe {MEDIAPIPE_VERSION} wheel)")
    return FaceModels(detector=found["detector"], mesh=found["mesh"], close_up=found.get("close_up"))


def _read_source(path: Path, detector: str) -> dict[str, ModelFile]:
    """The roles a folder or ``.task`` bundle can fill, by file name."""
    wanted = (*DETECTOR_NAMES[detector], *CLOSE_UP_NAMES[detector], *MESH_NAMES)
    if path.is_dir():
        files = {p.name: p for p in path.iterdir() if p.name in wanted}
        avail = {name: ModelFile(str(files[name]), _read_bytes(files[name])) for name in files}
    elif path.is_file():
        try:
            with zipfile.ZipFile(path) as zf:
                members = {Path(n).name: n for n in zf.namelist()}
                avail = {name: ModelFile(f"{path}!{name}", zf.read(members[name]))
                          for name in wanted if name in members}
        except (zipfile.BadZipFile, OSError) as e:
            raise FaceModelError(f"face model {path} is neither a folder nor a readable .task bundle (zip: "
                                 f"{e}); {_FIX}") from None
    else:
        raise FaceModelError(f"face model {path} does not exist; {_FIX}, or unset {ENV_VAR}")
    found = {}
    roles = (("detector", DETECTOR_NAMES[detector]), ("mesh", MESH_NAMES), ("close_up", CLOSE_UP_NAMES[detector]))
    for role, names in roles:
        name = next((n for n in names if n in avail), None)
        if name is not None:
            found[role] = avail[name]
    if not found:
        raise FaceModelError(f"face model {path} holds none of {', '.join(sorted(set(wanted)))}; {_FIX}")
    return found


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise FaceModelError(f"cannot read face model {path}: {e.strerror}; check its permissions") from None


def _from_cache(detector: str) -> dict[str, ModelFile]:
    """The wheel's files from the cache, fetched from PyPI first when missing or corrupt."""
    names = {"detector": DETECTOR_NAMES[detector][0], "mesh": MESH_468}
    if CLOSE_UP_NAMES[detector]:
        names["close_up"] = CLOSE_UP_NAMES[detector][0]
    folder = cache_dir()
    good = {role: _cached(folder / name) for role, name in names.items()}
    if any(v is None for v in good.values()):
        with _FETCH_LOCK:  # a thread that waited finds the files another one fetched
            good = {role: _cached(folder / name) for role, name in names.items()}
            if any(v is None for v in good.values()):
                fetch_from_pypi(folder)
                good = {role: _cached(folder / name) for role, name in names.items()}
    for role, mf in good.items():
        if mf is None:  # fetch_from_pypi verified and wrote it; only a racing deletion gets here
            raise FaceModelError(f"face model {folder / names[role]} vanished after download; run again")
    return good  # type: ignore[return-value]


def _cached(path: Path) -> ModelFile | None:
    """A cached file whose sha256 matches, else None (missing, truncated or tampered)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return ModelFile(str(path), data) if sha256(data) == WHEEL_FILES[path.name][1] else None


def fetch_from_pypi(dest: Path) -> None:
    """Download the mediapipe wheel with pip, verify its three face models, write them to ``dest``.

    Explicit platform flags: there is no wheel for every board (aarch64 Linux has none), but the
    .tflite files are the same in all of them, so the x86-64 wheel serves everyone. (0.10.21 is
    tagged manylinux_2_28; 2_17 is kept as a fallback for mirrors that re-tag.)

    Raises:
        FaceModelError: pip failed (network, proxy) or a file's sha256 does not match.
    """
    fetch_wheel_files(f"mediapipe=={MEDIAPIPE_VERSION}", WHEEL_FILES, dest, FaceModelError, _FIX,
                      pip_args=("--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
                                "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"),
                      what="the face models", size="~35 MB")


def load_interpreter(model: ModelFile, threads: int | None):
    """An allocated interpreter, or a one-line error naming the file when it is not a model."""
    try:
        interp = make_interpreter(model.data, threads)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise FaceModelError(f"face model {model.origin} is not a valid .tflite model ({first}); replace it "
                             f"with a good copy (mediapipe {MEDIAPIPE_VERSION} wheel or face_landmarker "
                             ".task), or drop face_model= to use the verified PyPI copy") from None
    return interp
