"""The one engine interface: a batch of aligned RGB crops in, AU probabilities out.

Pre- and post-processing are driven by the model card, so every backend only moves tensors; the
card's per-AU calibration (``runtime.calibration``) is applied here too, for every backend.
Batching is decided here too, once for every backend: a backend declares the batch sizes its
engine file takes (``BatchPolicy``: a static size, or a dynamic range such as a TensorRT
optimisation profile) and runs one batch of a legal size; ``Engine.infer`` chunks a request to the
maximum, pads each chunk up to what the engine needs (the static size, or the range's minimum),
runs it and slices the padding off.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.calibration import logit
from runtime.card import ModelCard
from runtime.engines.intensity import IntensityOutputs
from runtime.errors import CardError, EngineError


@dataclass(frozen=True)
class TensorSpec:
    """What the engine file itself declares for its input (batch dim -1 when dynamic)."""

    shape: tuple[int, ...]
    dtype: str
    quant: tuple[float, int] | None = None  # (scale, zero_point) when the engine is quantised


@dataclass(frozen=True)
class BatchPolicy:
    """The batch sizes an engine file accepts: any ``n`` with ``min <= n <= max``.

    A static engine has ``min == max`` (``BatchPolicy.static(4)``); a dynamic one a range, where
    ``max=None`` means no limit (ONNX Runtime, LiteRT) and a TensorRT optimisation profile gives
    all three of min/opt/max. ``opt`` is what the engine was tuned for; it does not change batching.
    """

    min: int = 1
    max: int | None = None
    opt: int | None = None

    def __post_init__(self) -> None:
        if self.min < 1 or (self.max is not None and self.max < self.min) or (
                self.opt is not None and not (self.min <= self.opt <= (self.max or self.opt))):
            raise EngineError(f"invalid batch range min={self.min} opt={self.opt} max={self.max}; "
                              "rebuild the engine with 1 <= min <= opt <= max")

    @classmethod
    def static(cls, batch: int) -> "BatchPolicy":
        return cls(batch, batch, batch)

    @property
    def is_static(self) -> bool:
        return self.max == self.min

    def plan(self, n: int) -> list[tuple[int, int, int]]:
        """``(start, stop, run_size)`` per chunk for ``n`` samples: chunks of at most ``max``, each
        run at ``max(stop - start, min)`` (the rows past ``stop - start`` are padding)."""
        step = self.max or max(n, 1)
        return [(i, min(i + step, n), max(min(i + step, n) - i, self.min)) for i in range(0, n, step)]

    def describe(self) -> str:
        if self.is_static:
            return f"static batch {self.min}"
        return f"batch {self.min}..{self.max if self.max is not None else 'any'}"


class Engine(IntensityOutputs):
    """Base class: subclasses set ``backend`` and implement ``_input_spec``, ``_output_width``,
    ``_batch_policy`` and ``_run`` (one batch whose size the policy allows); a backend that reads
    the optional intensity output also implements ``IntensityOutputs``' hooks."""

    backend = "base"

    def __init__(self, path: str | Path, card: ModelCard):
        self.path = Path(path)
        self.card = card
        self._check_against_card()
        self._check_intensity_against_card()
        self.batch = self._batch_policy()
        self._lut = self._input_lut()

    # ---- subclass hooks ------------------------------------------------------------------------
    def _input_spec(self) -> TensorSpec:
        raise NotImplementedError

    def _output_width(self) -> int | None:
        """Number of outputs per sample as the engine declares it (None when dynamic/unknown)."""
        raise NotImplementedError

    def _output_quant(self) -> tuple[float, int] | None:
        return None

    def _batch_policy(self) -> BatchPolicy:
        """The batch sizes the engine file takes (read from the file, never guessed)."""
        raise NotImplementedError

    def _run(self, x: np.ndarray) -> np.ndarray:
        """Run one prepared batch whose size ``self.batch`` allows; returns the raw output, one row
        per input row. The result may be a view of a buffer the backend reuses: the base copies."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- shared machinery --------------------------------------------------------------------
    @property
    def aus(self) -> list[str]:
        return self.card.aus

    @property
    def input_size(self) -> tuple[int, int]:
        return self.card.input.size

    @property
    def precision(self) -> str:
        """``model.precision`` of the card when it says (fp32|fp16|int8: a QDQ ONNX or a TensorRT
        engine has float I/O whatever it computes in), else the input tensor's dtype."""
        declared = self.card.model.get("precision")
        if declared:
            return str(declared)
        return self.card.input.dtype if self.card.input.quant else self._input_spec().dtype

    def _check_against_card(self) -> None:
        card, spec = self.card.input, self._input_spec()
        h, w = card.size
        want = (3, h, w) if card.layout == "NCHW" else (h, w, 3)
        where = f"model card {self.path.name}.json vs {self.path.name}"
        if len(spec.shape) != 4 or tuple(spec.shape[1:]) != want:
            raise CardError(f"{where}: the engine's input is {list(spec.shape)} but the card declares "
                            f"{card.layout} {list(want)}; use the card exported with this engine")
        if spec.dtype != card.dtype:
            raise CardError(f"{where}: the engine's input dtype is {spec.dtype} but the card declares "
                            f"{card.dtype}; use the card exported with this engine")
        if spec.quant and card.quant:
            scale, zp = spec.quant
            if abs(scale - float(card.quant["scale"])) > 1e-6 * max(1.0, abs(scale)) or zp != int(
                    card.quant["zero_point"]):
                raise CardError(f"{where}: input quantisation {spec.quant} != card {card.quant}; "
                                "use the card exported with this engine")
        width = self._output_width()
        if width is not None and width != len(self.card.aus):
            raise CardError(f"{where}: the engine outputs {width} values per face but the card lists "
                            f"{len(self.card.aus)} AUs; use the card exported with this engine")

    def _input_lut(self) -> np.ndarray:
        """3 x 256 table: an input channel's 8-bit value -> the engine's input value.

        Normalisation (and quantisation) of a uint8 pixel depends only on its value and channel,
        so one table lookup per pixel replaces float arithmetic on every crop.
        """
        inp = self.card.input
        v = np.arange(256, dtype=np.float32)[None, :]
        mean = np.asarray(inp.mean, np.float32)[:, None] * 255.0
        inv_std = 1.0 / (np.asarray(inp.std, np.float32)[:, None] * 255.0)
        x = (v - mean) * inv_std
        if inp.quant:
            scale, zp = float(inp.quant["scale"]), int(inp.quant["zero_point"])
            info = np.iinfo(np.dtype(inp.dtype))
            x = np.clip(np.rint(x / scale) + zp, info.min, info.max)
        with np.errstate(over="ignore"):
            lut = np.ascontiguousarray(x.astype(inp.dtype))
        if not np.isfinite(lut.astype(np.float64)).all():  # the card's ranges prevent it but for float16
            raise CardError(f"{self.path.name}: the card's input.mean/std give input values beyond {inp.dtype}'s "
                            "range; fix input.mean/std or re-export")
        return lut

    def prepare(self, crops: np.ndarray) -> np.ndarray:
        """N x H x W x 3 uint8 RGB crops (at ``input_size``) -> the engine's input tensor."""
        inp = self.card.input
        src = crops[..., ::-1] if inp.color == "BGR" else crops
        axis = 1 if inp.layout == "NCHW" else 3
        return np.stack([self._lut[c][src[..., c]] for c in range(3)], axis=axis)

    def finish(self, raw: np.ndarray, calibrated: bool = True) -> np.ndarray:
        """Raw engine output -> N x A float32 probabilities in [0, 1], through the card's calibration
        when it has one and ``calibrated`` (the one place every backend's output is calibrated)."""
        out = raw.reshape(raw.shape[0], -1)
        quant = self._output_quant()
        if quant is None and self.card.output.get("quant"):
            q = self.card.output["quant"]
            quant = (float(q["scale"]), int(q["zero_point"]))
        if quant is not None and np.issubdtype(out.dtype, np.integer):
            out = (out.astype(np.float32) - quant[1]) * quant[0]
        out = out.astype(np.float32, copy=False)
        if not np.isfinite(out).all():  # NaN/inf would reach the JSONL; a sane engine never gives them
            raise EngineError(f"engine {self.path.name} gave non-finite AU outputs (NaN or infinity): the engine "
                              "or its card's input normalisation is broken; re-export it with `python -m export`")
        if calibrated and self.card.calibration is not None:
            # from the logits themselves where the engine gives them: sigmoid in float32 would round
            # a logit above ~17 to 1 and lose its value
            z = out if self.card.output_kind == "logit" else logit(np.clip(out, 0.0, 1.0))
            return self.card.calibration.apply(z)
        if self.card.output_kind == "logit":
            with np.errstate(over="ignore"):  # exp(-(-1000)) = inf gives probability 0, as it should
                out = 1.0 / (1.0 + np.exp(-out))
        return np.clip(out, 0.0, 1.0)

    def infer(self, crops: np.ndarray, calibrated: bool = True) -> np.ndarray:
        """AU probabilities (N x A float32) for a batch of aligned RGB uint8 crops (N x H x W x 3).

        ``calibrated=False``: the engine's own probabilities, before the card's calibration (what
        export's parity references hold, and what a calibration is fitted on)."""
        crops = self._checked_crops(crops)
        if len(crops) == 0:
            return np.zeros((0, len(self.aus)), np.float32)
        return self._forward(self.prepare(crops), calibrated)

    def _checked_crops(self, crops: np.ndarray) -> np.ndarray:
        """N x H x W x 3 uint8 at the input size (one crop gains its batch axis), else ValueError."""
        crops = np.asarray(crops)
        if crops.ndim == 3:
            crops = crops[None]
        h, w = self.input_size
        if crops.shape[1:] != (h, w, 3) or crops.dtype != np.uint8:
            raise ValueError(f"crops must be N x {h} x {w} x 3 uint8, got {crops.shape} {crops.dtype}")
        return crops

    def _chunks(self, x: np.ndarray):
        """The batch policy: ``(chunk, rows)`` per chunk of at most the maximum, padded to a legal size
        (``rows`` of it are real)."""
        for start, stop, size in self.batch.plan(len(x)):
            chunk = x[start:stop]
            if size > len(chunk):  # repeat the last real sample: a valid input for any model
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], size - len(chunk), axis=0)])
            yield chunk, stop - start

    def _check_rows(self, raw: np.ndarray, size: int) -> None:
        if raw.shape[0] != size:
            raise EngineError(f"engine {self.path.name} returned {raw.shape[0]} rows for a batch of "
                              f"{size}; re-export it (its output batch must follow its input)")

    def _forward(self, x: np.ndarray, calibrated: bool = True) -> np.ndarray:
        """Run every chunk of the batch policy and slice the padding off."""
        out = []
        for chunk, rows in self._chunks(x):
            raw = self._run(chunk)
            self._check_rows(raw, len(chunk))
            out.append(self.finish(np.array(raw[:rows]), calibrated))  # copy: raw may be a reused buffer
        return out[0] if len(out) == 1 else np.concatenate(out)
