"""``python -m export --checkpoint CKPT --formats onnx,onnx-int8,tflite,tflite-int8 --calib CACHE --out DIR``.

Builds every requested artifact with its model card, checks every ONNX graph against the TensorRT
parser's operator list, runs the parity gate through the runtime's engines, writes DIR/parity.json,
and prints the command that runs each artifact. Exit 2: bad input (one line), including an option
none of the requested formats takes (the table in ``export.formats``); exit 1: parity failed.
"""
from __future__ import annotations

import sys
from pathlib import Path

from export.formats import FORMATS
from runtime.cli import CROPS
from train.cli import OneLineParser, guarded, warn

# options of the format rows (``export.formats``): argparse dest -> Options/Gate field
FORMAT_OPTIONS = {"opset": "opset", "no_simplify": "simplify", "fp16": "fp16", "tflite_layout": "tflite_layout",
                  "calib_size": "calib_size", "allow_trt_unsupported": "allow_trt_unsupported",
                  "fp32_tol": "fp32_tol", "fp16_tol": "fp16_tol", "int8_max_f1_drop": "int8_max_f1_drop",
                  "int8_min_agreement": "int8_min_agreement"}


def parser() -> OneLineParser:
    p = OneLineParser(prog="python -m export", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, type=Path, help="best.pt of a train/distill run")
    p.add_argument("--formats", required=True, help=f"comma-separated: {','.join(FORMATS)}")
    p.add_argument("--calib", required=True, type=Path, help="aligned-face cache for INT8 calibration")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--eval", type=Path, default=None, help="cache for the parity gate (default: --calib)")
    p.add_argument("--split", default="test", choices=("train", "val", "test", "all"),
                   help="split of --eval as the checkpoint's run defines it")
    p.add_argument("--eval-size", type=CROPS, default=512, help="at most this many evaluation crops")
    p.add_argument("--calib-size", type=CROPS, default=256, help="calibration crops for INT8")
    p.add_argument("--opset", type=int, default=17, help="onnx, onnx-int8")
    p.add_argument("--no-simplify", action="store_true", help="onnx, onnx-int8: skip onnxsim")
    p.add_argument("--fp16", action="store_true", help="tflite: FP16 weights (au_fp16.tflite)")
    p.add_argument("--tflite-layout", default="NHWC", choices=("NHWC", "NCHW"), help="tflite, tflite-int8")
    p.add_argument("--fp32-tol", type=float, default=1e-3, help="max |Δprob| of FP32 artifacts")
    p.add_argument("--fp16-tol", type=float, default=1e-2, help="max |Δprob| of FP16 artifacts")
    p.add_argument("--int8-max-f1-drop", type=float, default=1.0,
                   help="mean-F1 points INT8 may lose (fails when the delta's whole bootstrap CI is below -it)")
    p.add_argument("--int8-min-agreement", type=float, default=0.9,
                   help="per AU, the share of crops INT8 must decide as FP32 (one-sided 95%% Wilson bound)")
    p.add_argument("--allow-trt-unsupported", action="store_true",
                   help="onnx, onnx-int8: warn instead of failing on ops the TensorRT ONNX parser does not support")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    given = {field: getattr(args, dest) for dest, field in FORMAT_OPTIONS.items()
             if getattr(args, dest) != p.get_default(dest)}
    return guarded(_run, args, given, expected=(KeyError, RuntimeError))  # UnsupportedOps, a failed TensorRT build


def _run(args, given: dict) -> int:
    from export.build import Options
    from export.formats import parse_formats, validate_options
    from export.parity import Gate, failure_line
    from export.run import camera_command, export

    formats = parse_formats(args.formats)
    flags = {field: "--" + dest.replace("_", "-") for dest, field in FORMAT_OPTIONS.items()}
    validate_options(formats, given, flag=flags.get)
    for flag, path in (("--checkpoint", args.checkpoint), ("--calib", args.calib), ("--eval", args.eval)):
        if path is not None and not path.exists():
            raise FileNotFoundError(f"{flag} {path} does not exist")
    opts = Options(opset=args.opset, simplify=not args.no_simplify, fp16=args.fp16,
                   tflite_layout=args.tflite_layout, calib_size=args.calib_size,
                   allow_trt_unsupported=args.allow_trt_unsupported)
    if not 0.0 <= args.int8_min_agreement <= 1.0:
        raise ValueError(f"--int8-min-agreement must be a share in [0, 1], got {args.int8_min_agreement}")
    gate = Gate(fp32_max_dprob=args.fp32_tol, fp16_max_dprob=args.fp16_tol, int8_max_f1_drop=args.int8_max_f1_drop,
                int8_min_agreement=args.int8_min_agreement)
    res = export(args.checkpoint, formats, args.calib, args.out, args.eval, args.split, opts, gate,
                 args.eval_size)
    for w in res.warnings:
        warn(w)
    print(f"parity report: {res.parity_path}")
    for e in res.parity:
        f1 = "n/a" if e["f1_mean"] is None else f"{e['f1_mean']:.2f} ({e['f1_mean_delta_vs_torch']:+.2f})"
        ci = e.get("f1_mean_delta_ci")
        extra = (f" CI [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "") + (
            f"  agreement >= {e['agreement_min_lower']:.3f}" if e.get("agreement_min_lower") is not None else "")
        print(f"  {e['file']:18s} {e['precision']:5s} {e['size_bytes'] / 1e6:7.2f} MB  max|Δp| "
              f"{e['max_abs_dprob']:.2e}  mean F1 {f1}{extra}  {'ok' if e['passed'] else 'FAILED'}")
    if res.failures:
        for e in res.failures:
            print(failure_line(e), file=sys.stderr)
        return 1
    print("run them:")
    for a in res.artifacts:
        print(f"  {camera_command(a.path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
