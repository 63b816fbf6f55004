"""The optional second engine output, AU intensity 0-5 (card ``output.intensity``), for every backend.

``Engine`` inherits ``IntensityOutputs``: ``infer`` stays what it was (probabilities only), and
``infer_with_intensity`` returns ``(probabilities, intensities)``: the intensities of the card's
``output.intensity.aus`` (N × len), or None for a model that declares none, which then runs exactly
as through ``infer``. A backend that can read a second output implements three hooks:
``_intensity_width`` (values per face the engine declares), ``_intensity_quant`` (the engine's own
quantisation of it) and ``_run_with_intensity`` (one legal batch -> both raw outputs); it finds its
two outputs among the engine's with ``split_outputs``.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from runtime.card import ModelCard
from runtime.errors import CardError, EngineError


def split_outputs(names: Sequence[str], card: ModelCard, path: str | Path) -> tuple[str, str | None]:
    """``(AU output, intensity output | None)`` among an engine's output names: the intensity one is
    the card's ``output.intensity.name``, the AU one the first other output (the first output when
    the card declares no intensity, as before intensity existed).

    Raises:
        CardError: the card names an intensity output the engine lacks, or there is no other output.
    """
    spec = card.intensity
    if spec is None:
        return names[0], None
    name = Path(path).name
    if spec.name not in names:
        raise CardError(f"model card {name}.json declares the intensity output {spec.name!r} but {name} has "
                        f"outputs {list(names)}; use the card exported with this engine")
    others = [n for n in names if n != spec.name]
    if not others:
        raise CardError(f"{name}: its only output is the intensity {spec.name!r}, the AU output is missing; "
                        "re-export it")
    return others[0], spec.name


class IntensityOutputs:
    """The intensity half of ``runtime.engines.base.Engine`` (see the module docstring)."""

    card: ModelCard
    path: Path
    backend: str

    # ---- backend hooks -----------------------------------------------------------------------
    def _intensity_width(self) -> int | None:
        """Values per face of the intensity output as the engine declares it (None: dynamic)."""
        return None

    def _intensity_quant(self) -> tuple[float, int] | None:
        return None

    def _run_with_intensity(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One prepared batch -> (raw AU output, raw intensity output), one row per input row."""
        raise EngineError(f"the {self.backend} backend cannot read {self.path.name}'s intensity output; "
                          "update au-edge or use a .onnx/.tflite engine")

    # ---- shared ------------------------------------------------------------------------------
    @property
    def intensity_aus(self) -> list[str]:
        """The AUs ``infer_with_intensity`` gives intensities for, in its column order ([] for none)."""
        spec = self.card.intensity
        return list(spec.aus) if spec else []

    def _check_intensity_against_card(self) -> None:
        spec = self.card.intensity
        if spec is None:
            return
        width = self._intensity_width()
        if width is not None and width != len(spec.aus):
            raise CardError(f"model card {self.path.name}.json vs {self.path.name}: the intensity output "
                            f"{spec.name!r} holds {width} values per face but the card lists {len(spec.aus)} AUs "
                            "in output.intensity.aus; use the card exported with this engine")

    def finish_intensity(self, raw: np.ndarray) -> np.ndarray:
        """Raw intensity output -> N × len(intensity_aus) float32 on the card's range (FACS 0-5)."""
        spec = self.card.intensity
        out = raw.reshape(raw.shape[0], -1)
        quant = self._intensity_quant() or spec.quant
        if quant is not None and np.issubdtype(out.dtype, np.integer):
            out = (out.astype(np.float32) - quant[1]) * quant[0]
        out = out.astype(np.float32, copy=False)
        if not np.isfinite(out).all():
            raise EngineError(f"engine {self.path.name} gave non-finite AU intensities (NaN or infinity); "
                              "re-export it with `python -m export`")
        return np.clip(out, *spec.range)

    def infer_with_intensity(self, crops: np.ndarray, calibrated: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """``(probabilities N×A, intensities N×len(intensity_aus) | None)`` for aligned RGB uint8
        crops; None (and exactly ``infer``'s probabilities) when the card declares no intensity.
        ``calibrated`` applies to the probabilities as in ``infer``; intensities have no calibration."""
        if self.card.intensity is None:
            return self.infer(crops, calibrated), None
        crops = self._checked_crops(crops)
        if len(crops) == 0:
            return np.zeros((0, len(self.aus)), np.float32), np.zeros((0, len(self.intensity_aus)), np.float32)
        probs, intensity = [], []
        for chunk, rows in self._chunks(self.prepare(crops)):
            raw_p, raw_i = self._run_with_intensity(chunk)
            self._check_rows(raw_p, len(chunk))
            self._check_rows(raw_i, len(chunk))
            probs.append(self.finish(np.array(raw_p[:rows]), calibrated))  # copies: raw may be reused buffers
            intensity.append(self.finish_intensity(np.array(raw_i[:rows])))
        return np.concatenate(probs), np.concatenate(intensity)
