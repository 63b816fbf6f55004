"""``python -m device_tests.make_engine``: a mobilenet-class AU engine with a card, for TIMING ONLY.

Its weights are random (no trained student exists yet), so its AU outputs mean nothing; the card
says so (``model.trained: false``). It has the size and operators of a real student, which is
what latency and memory benchmarks need. INT8 is calibrated on aligned faces from a real clip.
Beside each engine it writes the parity reference ``X.parity.npz`` (shared interface: crops, the
PyTorch model's probabilities, the board tolerance), so ``device_tests.parity`` can check the engine
on a board. Needs the train and export extras (torch, timm, litert-torch, ai-edge-quantizer).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from runtime.aus import DEFAULT_MODEL_AUS, names
from runtime.card import InputSpec, ModelCard

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
REFERENCE_CROPS = 32  # crops in the parity reference, as the export stage writes it


def calibration_crops(source: str, size: int, crop_size: int, n: int = 64) -> np.ndarray:
    """Aligned RGB face crops from ``source`` through the runtime's own face stage and alignment."""
    import cv2

    from runtime.align import align_face
    from runtime.face import FaceStage
    from runtime.sources import open_source

    crops = []
    with FaceStage() as faces, open_source(source) as src:
        for frame in src:
            rgb = cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB)
            for f in faces.process(rgb)[:1]:
                crops.append(align_face(rgb, f.points5, crop_size=crop_size, out_size=size)[0])
            if len(crops) >= n:
                break
    if not crops:
        raise SystemExit(f"au-edge: error: no face found in {source} for INT8 calibration")
    return np.stack(crops)


def build(out: Path, arch: str, size: int, source: str | None, int8: bool = True) -> Path:
    import timm
    import torch

    from export.to_tflite import card_for_tflite, quantize_int8, to_tflite

    aus = names(DEFAULT_MODEL_AUS)
    torch.manual_seed(0)
    model = timm.create_model(arch, pretrained=False, num_classes=len(aus)).eval()
    module = torch.nn.Sequential(model, torch.nn.Sigmoid()).eval()
    sample = torch.zeros(1, 3, size, size)
    float_path = out.with_name(out.stem + "_float.tflite") if int8 else out
    to_tflite(module, sample, float_path)
    card = ModelCard(
        aus=aus, input=InputSpec(size=(size, size), layout="NCHW", dtype="float32", mean=IMAGENET_MEAN,
                                 std=IMAGENET_STD),
        output_kind="prob", thresholds={a: 0.5 for a in aus},
        alignment={"template": "default", "crop_size": 256, "scale": 1.0},
        model={"name": f"{arch}-untrained-timing", "version": "0", "backbone": arch,
               "params": sum(p.numel() for p in model.parameters()), "trained": False},
        training={"datasets": [], "label_kinds": [], "recipe": "python -m device_tests.make_engine"},
        metrics={}, parity={},
    )
    card.write(float_path)
    crops = (calibration_crops(source, size, 256) if source else
             np.random.default_rng(0).integers(0, 256, (32, size, size, 3), dtype=np.uint8))
    x = ((crops / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32).transpose(0, 3, 1, 2)
    with torch.no_grad():
        expected = module(torch.from_numpy(x[:REFERENCE_CROPS])).numpy()
    write_parity_reference(float_path, crops[:REFERENCE_CROPS], expected, aus, "fp32")
    if not int8:
        return float_path
    quantize_int8(float_path, [x], out)
    card_for_tflite(out, card).write(out)
    write_parity_reference(out, crops[:REFERENCE_CROPS], expected, aus, "int8")
    return out


def write_parity_reference(engine: Path, crops: np.ndarray, expected: np.ndarray, aus: list[str],
                           precision: str) -> Path:
    """``engine.parity.npz``; the tolerance is what this engine shows here against PyTorch, with room
    (1.5x, at least 0.05 for INT8 / 1e-3 for float), as the export stage sets it."""
    from runtime.engines import load_engine

    with load_engine(engine) as eng:
        measured = float(np.abs(eng.infer(crops) - expected).max())
    tolerance = max(0.05 if precision == "int8" else 1e-3, 1.5 * measured)
    ref = engine.with_name(engine.name + ".parity.npz")
    np.savez_compressed(ref, crops=np.ascontiguousarray(crops, np.uint8), expected=expected.astype(np.float32),
                        tolerance=np.float32(tolerance), aus=np.array(aus), precision=np.array(precision))
    return ref


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m device_tests.make_engine", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--arch", default="mobilenetv2_100",
                   help="timm name; mobilenetv2_100 INT8 is 0.46 ms here vs 2.8 ms for mobilenetv3_large_100 INT8")
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--calib-source", default=None, help="video/images with faces for INT8 calibration")
    p.add_argument("--float", action="store_true", help="float32 only, no INT8")
    args = p.parse_args(argv)
    path = build(args.out, args.arch, args.size, args.calib_source, int8=not args.float)
    print(f"wrote {path}, {path.name}.json and {path.name}.parity.npz (random weights: for timing only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
