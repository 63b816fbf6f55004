"""``--engine default``: the AU model shipped inside the package (``runtime/models/default/``).

Two engines of one model ship (``python -m export.install`` puts them there): LiteRT INT8, the
smallest and the fastest on ARM boards and on CPUs with int8 dot products, and the FP32 ONNX (the
INT8 ONNX is not shipped: ORT's INT8 kernels can saturate on AVX2). Where only one backend is
importable (``find_spec``: no backend import) that one runs; where both are, the faster on this CPU,
timed once and remembered (``default_speed``), or the one ``AU_EDGE_DEFAULT_ENGINE`` names.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import EngineError

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "models" / "default"
RUNTIME_EXTRA = "pip install 'au-edge[runtime]'"


@dataclass(frozen=True)
class DefaultModel:
    """One shipped engine: its file in DEFAULT_DIR, the backend that runs it, the modules it needs."""

    file: str
    backend: str  # human name, e.g. "LiteRT"
    precision: str  # of the engine's arithmetic: "INT8" | "FP32"
    modules: tuple[str, ...]  # any one of them importable runs it


# In order of preference.
DEFAULT_MODELS: tuple[DefaultModel, ...] = (
    DefaultModel("au_default_int8.tflite", "LiteRT", "INT8", ("ai_edge_litert", "tflite_runtime")),
    DefaultModel("au_default.onnx", "ONNX Runtime", "FP32", ("onnxruntime",)),
)


@dataclass(frozen=True)
class DefaultChoice:
    path: Path
    model: DefaultModel
    why: str = ""  # how it was picked, when another shipped engine could have run

    def describe(self) -> str:
        """The line the CLI prints, e.g. ``default → au_default_int8.tflite (LiteRT INT8)``, with why
        when both backends are installed (``; timed here: 1.08 vs 2.30 ms``)."""
        why = f"; {self.why}" if self.why else ""
        return f"default → {self.path.name} ({self.model.backend} {self.model.precision}{why})"


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module without a spec
        return False


def default_engine_choice(models_dir: str | Path | None = None, threads: int | None = None) -> DefaultChoice:
    """The shipped engine to run here: the only one an installed backend runs, else the one
    ``AU_EDGE_DEFAULT_ENGINE`` names, else the faster on this CPU (``default_speed``: timed with
    ``threads`` the first time, then read from the user cache).

    Args:
        models_dir: where the shipped engines are (default: the package's ``runtime/models/default``).
        threads: the CPU threads the engine will run with (the timing uses them).

    Raises:
        EngineError: no model is shipped there, no installed backend runs the shipped ones, or
            ``AU_EDGE_DEFAULT_ENGINE`` names a file that is not a runnable shipped engine.
    """
    from runtime.engines import default_speed

    folder = Path(models_dir) if models_dir is not None else DEFAULT_DIR
    shipped = [m for m in DEFAULT_MODELS if (folder / m.file).is_file()]
    if not shipped:
        raise EngineError(f"no default model is shipped in {folder} (this au-edge was built without one); pass "
                          "--engine PATH to an exported engine (python -m export writes them)")
    runnable = [m for m in shipped if any(_importable(mod) for mod in m.modules)]
    if not runnable:
        needs = " or ".join(f"{m.backend} ({' / '.join(m.modules)}) for {m.file}" for m in shipped)
        raise EngineError(f"no inference backend for the default model is installed: it needs {needs}; "
                          f"{RUNTIME_EXTRA}")
    named = os.environ.get(default_speed.ENV_VAR, "").strip()
    if named:
        pick = next((m for m in runnable if m.file == named), None)
        if pick is None:
            raise EngineError(f"{default_speed.ENV_VAR}={named!r} is not a shipped engine this machine can run; "
                              f"use one of: {', '.join(m.file for m in runnable)} (or unset it)")
        return DefaultChoice(folder / pick.file, pick, f"{default_speed.ENV_VAR}")
    if len(runnable) == 1:
        return DefaultChoice(folder / runnable[0].file, runnable[0])
    best, ms, _ = default_speed.fastest([folder / m.file for m in runnable], threads)
    model = next(m for m in runnable if m.file == best.name)
    if not ms:
        return DefaultChoice(best, model, "not timed here")
    times = " vs ".join(f"{ms[m.file]:.2f}" for m in sorted(runnable, key=lambda m: m.file != best.name))
    kept = ("" if all(ms[best.name] <= ms[m.file] for m in runnable) else
            f"; kept: the other not {default_speed.MARGIN:.0%} faster in every round")
    return DefaultChoice(best, model, f"timed here: {times} ms{kept}")


def default_engine_path(models_dir: str | Path | None = None, threads: int | None = None) -> Path:
    """The file ``--engine default`` opens (see ``default_engine_choice``)."""
    return default_engine_choice(models_dir, threads).path
