"""``python -m device_tests.make_engine``: a mobilenet-class AU engine with a card, for TIMING ONLY.

Its weights are random (no trained student is needed), so its AU outputs mean nothing; the card
says so (``model.trained: false``). It has the size and operators of a real student, which is
what latency and memory benchmarks need. It is built as ``python -m export`` builds a student:
the export's TFLite builders (FP32 probabilities; INT8 with int8 logits, calibrated on aligned faces
from a real clip), its model card, and beside each engine its parity reference ``X.parity.npz``
(crops, the PyTorch model's probabilities, the board tolerance), so ``device_tests.parity`` can check
the engine on a board. Needs the train and export extras (torch, timm, litert-torch, ai-edge-quantizer).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from runtime.aus import DEFAULT_MODEL_AUS, names
from train.cli import OneLineParser, guarded

CROP_SIZE = 256  # the runtime's default alignment crop


def calibration_crops(source: str, size: int, crop_size: int, n: int = 64) -> np.ndarray:
    """Aligned RGB face crops from ``source`` through the runtime's own face stage and alignment.

    Raises:
        ValueError: no face in ``source``.
    """
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
        raise ValueError(f"no face found in {source} for INT8 calibration; pass a clip with a face")
    return np.stack(crops)


def untrained_model(arch: str, size: int):
    """The export's view (``ExportModel``) of a randomly initialised timm ``arch`` for the default AUs."""
    import timm
    import torch

    from export.model import ExportModel
    from train.checkpoint import Checkpoint
    from train.model.input_norm import IMAGENET_MEAN, IMAGENET_STD

    aus = names(DEFAULT_MODEL_AUS)
    torch.manual_seed(0)
    model = timm.create_model(arch, pretrained=False, num_classes=len(aus)).eval()
    ck = Checkpoint(task="timing", arch=arch, aus=tuple(aus), input_size=size, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                    model_config={"arch": arch}, train_config={}, teacher_checkpoint="", pretrained=False,
                    attribution="", raw={}, path=None)
    return ExportModel(ck=ck, logits=model)


def build(out: Path, arch: str, size: int, source: str | None, int8: bool = True) -> Path:
    from export.build import Options
    from export.cards import base_card
    from export.formats import FORMATS
    from export.parity import Gate, artifact_probs, board_tolerance, write_reference
    from train.model.input_norm import normalize_crops

    em = untrained_model(arch, size)
    card = base_card(em, {"template": "default", "crop_size": CROP_SIZE, "scale": 1.0})
    card.model.update(name=f"{arch}-untrained-timing", version="0", trained=False)
    card.training = {"datasets": [], "label_kinds": [], "recipe": "python -m device_tests.make_engine"}
    crops = (calibration_crops(source, size, CROP_SIZE) if source else
             np.random.default_rng(0).integers(0, 256, (32, size, size, 3), dtype=np.uint8))
    x = normalize_crops(crops, em.ck.mean, em.ck.std)
    import torch

    expected = em.predict(torch.from_numpy(x)).numpy()
    opts, built = Options(tflite_layout="NCHW"), {}
    float_path = out.with_name(out.stem + "_float.tflite") if int8 else out
    rows = [(FORMATS["tflite"], float_path)] + ([(FORMATS["tflite-int8"], out)] if int8 else [])
    for fmt, path in rows:
        art = fmt.build()(em, card, path, opts, x, fmt, built)
        built[fmt.name] = art
        measured = float(np.abs(artifact_probs(path, crops) - expected).max())
        tol = board_tolerance({"precision": art.precision, "max_abs_dprob": measured}, Gate())
        write_reference(path, crops, expected, tol, list(em.ck.aus), art.precision)
    return out


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m device_tests.make_engine", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--arch", default="mobilenetv2_100",
                   help="timm name; mobilenetv2_100 INT8 is 0.46 ms here vs 2.8 ms for mobilenetv3_large_100 INT8")
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--calib-source", default=None, help="video/images with faces for INT8 calibration")
    p.add_argument("--float", action="store_true", help="float32 only, no INT8")
    return guarded(_run, p.parse_args(argv))


def _run(args) -> int:
    path = build(args.out, args.arch, args.size, args.calib_source, int8=not args.float)
    print(f"wrote {path}, {path.name}.json and {path.name}.parity.npz (random weights: for timing only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
