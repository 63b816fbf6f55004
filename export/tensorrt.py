"""``python -m export.tensorrt``: build a TensorRT engine from an au-edge ONNX, ON the target device.

An engine is tied to the GPU and the TensorRT version it was built with, so this runs on the
Jetson / GPU machine itself, from the ONNX that ``python -m export`` wrote (the QDQ ONNX for INT8).
One code path for TensorRT 10.x (JetPack 6 stays there) and 11.x, chosen by the installed version:

- INT8: from the Q/DQ nodes of the ONNX, in a strongly typed network (the only INT8 that 11.x has;
  no calibrator on either version).
- FP16: 10.x sets ``BuilderFlag.FP16`` on a weakly typed network; 11.x has no such flag, so it
  needs an FP16 ONNX (e.g. ModelOpt AutoCast) and builds it strongly typed. Which one was used is
  printed and written into the card.
- FP32: a strongly typed network.

Writes the engine, its card ``<out>.json`` (the ONNX's card with the engine's sha256,
``model.precision`` and a ``tensorrt`` section: version, device, batch profile, DLA) and copies
``<onnx>.parity.npz`` to ``<out>.parity.npz`` for ``device_tests.parity``.

UNVERIFIED: written without a GPU or TensorRT; the TensorRT calls follow the 10.x/11.x Python API
reference and have not run on hardware yet. Argument checks, ONNX inspection, the version plan and
the card are tested on CPU (tests/test_export_tensorrt.py).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from runtime.card import ModelCard, card_path, load_card
from runtime.errors import AUEdgeError, CardError, MissingDependency
from runtime.wheel_files import write_atomic
from train.cli import OneLineParser, guarded

DEFAULT_BATCH = (1, 4, 8)  # min, opt, max faces per inference for a dynamic-batch ONNX
CARD_KEY = "au_edge.model_card"  # where export.to_onnx embeds the card


class BuildError(AUEdgeError):
    """A bad option, an unsuitable ONNX or a failed TensorRT build (one line; exit 2)."""


# ---- options and the ONNX ---------------------------------------------------------------------
def parse_batch(text: str) -> tuple[int, int, int]:
    """``"MIN,OPT,MAX"`` (or one number for all three) -> ints with 1 <= MIN <= OPT <= MAX."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) == 1:
        values = values * 3
    if len(values) != 3 or not 1 <= values[0] <= values[1] <= values[2]:
        raise BuildError(f"--batch {text!r}: give MIN,OPT,MAX with 1 <= MIN <= OPT <= MAX (e.g. 1,4,8)")
    return values  # type: ignore[return-value]


@dataclass(frozen=True)
class OnnxInfo:
    """What the build needs to know about the ONNX before TensorRT sees it."""

    input_name: str
    input_shape: tuple[int | str | None, ...]  # batch is an int when static
    has_qdq: bool  # QuantizeLinear/DequantizeLinear nodes: explicit INT8
    has_fp16: bool  # float16 tensors (initializers or casts): an FP16 ONNX

    @property
    def static_batch(self) -> int | None:
        b = self.input_shape[0]
        return b if isinstance(b, int) and b > 0 else None


def _load_onnx(path: Path):
    try:
        import onnx
    except ImportError:
        raise MissingDependency("onnx", "pip install onnx (needed to read the model and its card)") from None
    if not path.is_file():
        raise BuildError(f"--onnx {path}: file not found; pass the .onnx that `python -m export` wrote")
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError and friends for a corrupt file
        raise BuildError(f"--onnx {path}: not a readable ONNX model ({type(e).__name__}); re-export it") from None


def inspect_onnx(model) -> OnnxInfo:
    """Input name/shape and whether the graph is QDQ (INT8) or FP16, from the ONNX protobuf."""
    from onnx import TensorProto

    init = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init]
    if len(inputs) != 1:
        raise BuildError(f"the ONNX has {len(inputs)} inputs ({[i.name for i in inputs]}); an au-edge "
                         "model has one (the aligned crops)")
    dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                 for d in inputs[0].type.tensor_type.shape.dim)
    ops = {n.op_type for n in model.graph.node}
    fp16 = TensorProto.FLOAT16
    has_fp16 = (any(t.data_type == fp16 for t in model.graph.initializer)
                or any(a.name == "to" and a.i == fp16 for n in model.graph.node if n.op_type == "Cast"
                       for a in n.attribute)
                or inputs[0].type.tensor_type.elem_type == fp16)
    return OnnxInfo(inputs[0].name, dims, bool(ops & {"QuantizeLinear", "DequantizeLinear"}), has_fp16)


def onnx_card(path: Path, model) -> ModelCard:
    """The ONNX's card: ``<onnx>.json`` beside it (checked against its sha256), else the copy
    embedded in metadata_props under ``au_edge.model_card``."""
    import json

    if card_path(path).is_file():
        return load_card(path)
    props = {p.key: p.value for p in model.metadata_props}
    if CARD_KEY not in props:
        raise CardError(f"{path} has no model card ({card_path(path).name} beside it or {CARD_KEY} in its "
                        "metadata); use the ONNX that `python -m export` wrote")
    try:
        data = json.loads(props[CARD_KEY])
    except json.JSONDecodeError as e:
        raise CardError(f"{path}: the embedded model card is not valid JSON ({e.msg}); re-export it") from None
    data.setdefault("sha256", "")  # embedding drops it: it would change the file it hashes
    return ModelCard.from_dict(data, where=f"model card embedded in {path.name}")


# ---- the version plan (pure: tested without TensorRT) ------------------------------------------
@dataclass(frozen=True)
class BuildPlan:
    strongly_typed: bool
    fp16_flag: bool  # BuilderFlag.FP16 (TensorRT 10.x only)
    how: str  # one line for the log and the card: where the precision comes from


def check_precision(precision: str, info: OnnxInfo, dla: int | None = None) -> None:
    """The checks that hold for every TensorRT version (run before TensorRT is imported)."""
    if precision == "int8" and not info.has_qdq:
        raise BuildError("--int8 needs a QDQ ONNX (QuantizeLinear/DequantizeLinear nodes): export it with "
                         "`python -m export --formats onnx-int8`; TensorRT 11.x has no INT8 calibrator")
    if precision != "int8" and info.has_qdq:
        raise BuildError("this ONNX is quantised (Q/DQ nodes): build it with --int8")
    if precision == "fp32" and info.has_fp16:
        raise BuildError("this ONNX holds float16 tensors: build it with --fp16")
    if precision == "fp32" and dla is not None:
        raise BuildError("--dla: DLA runs FP16 or INT8 only; add --fp16 or --int8")


def build_plan(trt_major: int, precision: str, info: OnnxInfo, dla: int | None = None) -> BuildPlan:
    """How to build ``precision`` from this ONNX with TensorRT ``trt_major`` (10 or 11+)."""
    check_precision(precision, info, dla)
    if precision == "int8":
        return BuildPlan(True, False, "INT8 from the ONNX's Q/DQ nodes (strongly typed network)")
    if precision == "fp16":
        if info.has_fp16:
            return BuildPlan(True, False, "FP16 from the FP16 ONNX (strongly typed network)")
        if trt_major >= 11:
            raise BuildError(f"TensorRT {trt_major}.x has no FP16 builder flag: convert the ONNX to FP16 first "
                             "(python -m modelopt.onnx.autocast --onnx_path MODEL.onnx) and pass that with --fp16")
        return BuildPlan(False, True, "FP16 by BuilderFlag.FP16 (TensorRT 10.x, weakly typed network)")
    return BuildPlan(True, False, "FP32 (strongly typed network)")


def batch_profile(info: OnnxInfo, batch: tuple[int, int, int] | None) -> tuple[int, int, int] | None:
    """The optimisation profile for a dynamic-batch ONNX; None for a static one."""
    static = info.static_batch
    if static is not None:
        if batch is not None and batch != (static,) * 3:
            raise BuildError(f"the ONNX has a static batch of {static}; drop --batch or re-export with a "
                             "dynamic batch")
        return None
    return batch or DEFAULT_BATCH


# ---- TensorRT (UNVERIFIED on hardware) --------------------------------------------------------
def _device_name(cudart) -> str:
    try:
        err, props = cudart.cudaGetDeviceProperties(0)
        if int(err) == 0:
            name = props.name if isinstance(props.name, str) else bytes(props.name).decode(errors="replace")
            return name.split("\0", 1)[0].strip()
    except Exception:  # a name is only for the card; never fail a build over it
        pass
    model = Path("/proc/device-tree/model")  # Jetson boards
    return model.read_bytes().rstrip(b"\0").decode(errors="replace") if model.is_file() else "unknown"


def build_engine(onnx_path: Path, out: Path, info: OnnxInfo, plan: BuildPlan,
                 profile: tuple[int, int, int] | None, dla: int | None, timing_cache: Path | None) -> dict:
    """Parse, configure and build; returns the card's ``tensorrt`` section. UNVERIFIED."""
    from runtime.engines.tensorrt_engine import import_tensorrt, make_logger

    trt, cudart = import_tensorrt()
    major = int(trt.__version__.split(".")[0])
    logger = make_logger(trt)
    builder = trt.Builder(logger)
    if builder is None:
        raise BuildError(f"TensorRT cannot start a builder: {logger.detail()}; check the GPU (nvidia-smi)")
    flags = 0
    if plan.strongly_typed and major < 11:  # 11.x: always strongly typed, the flag is deprecated
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        for i in range(parser.num_errors):
            e = parser.get_error(i)
            print(f"au-edge: TensorRT parser: {onnx_path.name}: node {e.node()} {e.node_name()!r} "
                  f"({e.node_operator()}): {' '.join(e.desc().split())}", file=sys.stderr)
        raise BuildError(f"TensorRT {trt.__version__} cannot parse {onnx_path.name} ({parser.num_errors} "
                         "error(s) above); re-export with ops the TensorRT ONNX parser supports")
    config = builder.create_builder_config()
    if plan.fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    if profile is not None:
        p = builder.create_optimization_profile()
        rest = tuple(network.get_input(0).shape)[1:]
        p.set_shape(info.input_name, (profile[0], *rest), (profile[1], *rest), (profile[2], *rest))
        config.add_optimization_profile(p)
    if dla is not None:
        if dla < 0 or dla >= builder.num_DLA_cores:
            raise BuildError(f"--dla {dla}: this device has {builder.num_DLA_cores} DLA core(s)")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)  # layers DLA cannot run stay on the GPU
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache and timing_cache.is_file()
                                       else b"")
    config.set_timing_cache(cache, False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BuildError(f"TensorRT {trt.__version__} failed to build {onnx_path.name}: {logger.detail()}")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, bytes(serialized))
    if timing_cache is not None:
        write_atomic(timing_cache, bytes(config.get_timing_cache().serialize()))
    batch = ({"min": profile[0], "opt": profile[1], "max": profile[2]} if profile
             else {"static": info.static_batch})
    return {"version": trt.__version__, "device": _device_name(cudart), "batch": batch, "dla": dla,
            "strongly_typed": plan.strongly_typed or major >= 11, "precision_from": plan.how}


# ---- outputs ----------------------------------------------------------------------------------
def write_outputs(onnx_path: Path, out: Path, card: ModelCard, precision: str, trt_info: dict) -> Path:
    """The engine's card (sha256 of ``out``, ``model.precision``, ``tensorrt``) and the parity
    reference copied beside it. Returns the card's path."""
    card.model = {**card.model, "precision": precision}
    card.extra = {**card.extra, "tensorrt": trt_info}
    written = card.write(out)
    parity = onnx_path.with_name(onnx_path.name + ".parity.npz")
    if parity.is_file():
        shutil.copyfile(parity, out.with_name(out.name + ".parity.npz"))
    return written


EPILOG = """examples (on the Jetson / GPU machine):
  python -m export.tensorrt --onnx au_int8.onnx --out au_int8.trt --int8 --batch 1,4,8 --timing-cache trt.cache
  python -m export.tensorrt --onnx au.onnx --out au_fp16.trt --fp16          # TensorRT 10.x
  python -m export.tensorrt --onnx au_fp16.onnx --out au_fp16.trt --fp16     # TensorRT 11.x: an FP16 ONNX
  python -m export.tensorrt --onnx au_int8.onnx --out au_dla.trt --int8 --dla 0
"""


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m export.tensorrt", epilog=EPILOG,
                      formatter_class=argparse.RawDescriptionHelpFormatter,
                      description="Build a TensorRT engine (10.x or 11.x) from an au-edge ONNX, on the target device.")
    p.add_argument("--onnx", required=True, type=Path, help="the exported ONNX (the QDQ one for --int8)")
    p.add_argument("--out", required=True, type=Path, help="engine file (.trt, .engine or .plan)")
    prec = p.add_mutually_exclusive_group()
    prec.add_argument("--fp16", action="store_true", help="FP16 (10.x: builder flag; 11.x: needs an FP16 ONNX)")
    prec.add_argument("--int8", action="store_true", help="INT8 from the Q/DQ nodes of the ONNX")
    p.add_argument("--batch", metavar="MIN,OPT,MAX", help="batch profile for a dynamic-batch ONNX "
                   f"(default {','.join(map(str, DEFAULT_BATCH))})")
    p.add_argument("--dla", type=int, metavar="N", help="build for DLA core N (Jetson), GPU fallback on")
    p.add_argument("--timing-cache", type=Path, metavar="F", help="timing cache read before and written after")
    return p


def run(args: argparse.Namespace) -> Path:
    """Check everything that can be checked without TensorRT first, then build."""
    if args.out.suffix.lower() not in (".trt", ".engine", ".plan"):
        raise BuildError(f"--out {args.out}: use a .trt, .engine or .plan name (the runtime picks TensorRT by it)")
    batch = parse_batch(args.batch) if args.batch is not None else None
    model = _load_onnx(args.onnx)
    info = inspect_onnx(model)
    card = onnx_card(args.onnx, model)
    precision = "int8" if args.int8 else "fp16" if args.fp16 else "fp32"
    check_precision(precision, info, args.dla)
    profile = batch_profile(info, batch)
    from runtime.engines.tensorrt_engine import import_tensorrt

    trt, _ = import_tensorrt()
    plan = build_plan(int(trt.__version__.split(".")[0]), precision, info, args.dla)
    print(f"TensorRT {trt.__version__}: {plan.how}", file=sys.stderr)
    trt_info = build_engine(args.onnx, args.out, info, plan, profile, args.dla, args.timing_cache)
    write_outputs(args.onnx, args.out, card, precision, trt_info)
    return args.out


def main(argv: Sequence[str] | None = None) -> int:
    return guarded(_main, build_parser().parse_args(argv))


def _main(args: argparse.Namespace) -> int:
    out = run(args)
    parity = out.with_name(out.name + ".parity.npz")
    check = f"  python -m device_tests.parity --engine {out}\n" if parity.is_file() else ""
    print(f"wrote {out} and {card_path(out).name}; check and run it with:\n{check}"
          f"  python -m runtime.camera --engine {out} --source 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
