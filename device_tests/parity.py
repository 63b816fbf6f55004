"""``python -m device_tests.parity``: does this engine, on this board, still give the exported answers?

Runs ``runtime.load_engine(PATH).infer(crops, calibrated=False)`` on the reference the export wrote
beside the engine (``PATH.parity.npz``: aligned crops, the PyTorch model's probabilities, the allowed
max |Δprob|) and compares. Both sides are before the card's calibration: it checks the engine, and the
calibration (``runtime.calibration``, numpy arithmetic) is the same on every board. It catches a
TensorRT engine built wrong on the board, a LiteRT delegate that changes the numbers, or a card
that does not match its engine. For a TensorRT engine built on the board from ``au_int8.onnx``,
pass ``--reference au_int8.onnx.parity.npz``; an engine built at another precision than its
reference (FP16 from ``au_fp32.onnx``) needs that precision's tolerance: ``--tolerance 0.01``.

JSON: ``{"engine", "reference", "max_abs_dprob", "mean_abs_dprob", "tolerance", "passed"}``; exit 1
when the check fails (after writing the JSON), 2 for a missing or malformed engine or reference.
A reference of a model with an intensity output (``expected_intensity``, ``intensity_tolerance``,
``intensity_aus``) is checked on it too: ``max_abs_dintensity``, ``mean_abs_dintensity`` and
``intensity_tolerance`` join the JSON, and ``passed`` needs both outputs within their tolerance.
"""
from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import numpy as np

from device_tests.results import finish
from runtime.cli import threads_option
from runtime.errors import AUEdgeError
from train.cli import OneLineParser, guarded

REQUIRED = ("crops", "expected", "tolerance", "aus")


class ParityReferenceError(AUEdgeError):
    """A missing or malformed reference file (one line)."""


def default_reference(engine: str | Path) -> Path:
    p = Path(engine)
    return p.with_name(p.name + ".parity.npz")


def load_reference(path: str | Path) -> dict:
    """The reference arrays, checked (never unpickled: ``allow_pickle=False``).

    Raises:
        ParityReferenceError: missing file, not an npz, missing arrays or inconsistent shapes.
    """
    path = Path(path)
    if not path.is_file():
        raise ParityReferenceError(f"parity reference {path} not found: export writes it beside the engine "
                              f"(pass --reference for an engine built on the board, e.g. au_int8.onnx.parity.npz)")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise ParityReferenceError(f"parity reference {path} is not a readable .npz ({e}); re-export it") from None
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise ParityReferenceError(f"parity reference {path} lacks {missing} (it needs {', '.join(REQUIRED)}); re-export it")
    crops, expected = data["crops"], data["expected"]
    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != np.uint8:
        raise ParityReferenceError(f"parity reference {path}: crops must be N x H x W x 3 uint8, got {crops.shape} "
                              f"{crops.dtype}")
    if expected.shape != (crops.shape[0], len(data["aus"])):
        raise ParityReferenceError(f"parity reference {path}: expected is {expected.shape}, but there are "
                              f"{crops.shape[0]} crops and {len(data['aus'])} AUs")
    return data


def check(engine_path: str | Path, reference: str | Path | None = None, threads: int | None = None,
          tolerance: float | None = None) -> dict:
    """The parity JSON for one engine (see the module docstring).

    Raises:
        ParityReferenceError: bad reference; AUEdgeError: bad engine or card.
    """
    from runtime.engines import load_engine

    ref_path = Path(reference) if reference else default_reference(engine_path)
    ref = load_reference(ref_path)
    eng = load_engine(engine_path, threads=threads)
    try:
        aus = [str(a) for a in ref["aus"]]
        if sorted(aus) != sorted(eng.aus):
            raise ParityReferenceError(f"parity reference {ref_path} is for AUs {aus}, the engine outputs {eng.aus}; "
                                  f"use the reference exported with this engine")
        crops = ref["crops"]
        if tuple(crops.shape[1:3]) != tuple(eng.input_size):
            raise ParityReferenceError(f"parity reference {ref_path} has {crops.shape[1]}x{crops.shape[2]} crops, the "
                                  f"engine takes {eng.input_size[0]}x{eng.input_size[1]}; use its own reference")
        probs, intensity = eng.infer_with_intensity(crops, calibrated=False)
        got = np.asarray(probs, np.float64)[:, [eng.aus.index(a) for a in aus]]
        intensity_aus = list(eng.intensity_aus)
    finally:
        eng.close()
    diff = np.abs(got - ref["expected"].astype(np.float64))
    tolerance = float(ref["tolerance"]) if tolerance is None else float(tolerance)
    max_abs = float(diff.max()) if diff.size else 0.0
    res = {"engine": str(engine_path), "reference": str(ref_path), "max_abs_dprob": max_abs,
           "mean_abs_dprob": float(diff.mean()) if diff.size else 0.0, "tolerance": tolerance,
           "passed": bool(np.isfinite(diff).all() and max_abs <= tolerance)}
    if "expected_intensity" in ref:
        res.update(_intensity_check(ref, ref_path, intensity, intensity_aus))
        res["passed"] = bool(res["passed"] and res["intensity_passed"])
    return res


def _intensity_check(ref: dict, ref_path: Path, got: np.ndarray | None, engine_aus: list[str]) -> dict:
    """The intensity output against the reference's (a second output; FACS 0-5)."""
    aus = [str(a) for a in ref["intensity_aus"]]
    if got is None or not set(aus) <= set(engine_aus):
        raise ParityReferenceError(f"parity reference {ref_path} checks intensities of {aus}, the engine's card "
                                   f"declares {engine_aus or 'none'}; use the reference exported with this engine")
    cols = got[:, [engine_aus.index(a) for a in aus]].astype(np.float64)
    diff = np.abs(cols - ref["expected_intensity"].astype(np.float64))
    tol = float(ref["intensity_tolerance"])
    max_abs = float(diff.max()) if diff.size else 0.0
    return {"max_abs_dintensity": max_abs, "mean_abs_dintensity": float(diff.mean()) if diff.size else 0.0,
            "intensity_tolerance": tol, "intensity_passed": bool(np.isfinite(diff).all() and max_abs <= tol)}


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m device_tests.parity", description=__doc__.splitlines()[0])
    p.add_argument("--engine", required=True)
    p.add_argument("--reference", metavar="NPZ", help="default: ENGINE.parity.npz")
    p.add_argument("--threads", type=threads_option(), default=None,
                   help="CPU threads for inference (1 to 2 per CPU core)")
    p.add_argument("--tolerance", type=float, default=None,
                   help="max |dprob| instead of the reference's (e.g. 0.01 for an FP16 engine vs an FP32 reference)")
    p.add_argument("--json", metavar="OUT")
    args = p.parse_args(argv)
    if args.tolerance is not None and not args.tolerance > 0:
        p.error(f"--tolerance must be > 0, got {args.tolerance}")
    return guarded(_run, args)


def _run(args) -> int:
    res = check(args.engine, args.reference, args.threads, args.tolerance)
    verdict = "passed" if res["passed"] else "FAILED"
    return finish(res, args.json, f"parity {verdict}: {Path(res['engine']).name} max |dprob| "
                  f"{res['max_abs_dprob']:.4f} (tolerance {res['tolerance']:.4f}), mean {res['mean_abs_dprob']:.5f}")


if __name__ == "__main__":
    sys.exit(main())
