"""``--engine default``: the AU model shipped inside the package (``runtime/models/default/``).

Two engines of one model ship (``python -m export.install`` puts them there): LiteRT INT8, the
smallest and the fastest on ARM boards, and the FP32 ONNX for machines with ONNX Runtime alone (the
INT8 ONNX is not shipped: ORT's INT8 kernels can saturate on AVX2). The pick only asks whether a
backend is importable (``find_spec``), so it costs no backend import.
"""
from __future__ import annotations

import importlib.util
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

    def describe(self) -> str:
        """The line the CLI prints, e.g. ``default → au_default_int8.tflite (LiteRT INT8)``."""
        return f"default → {self.path.name} ({self.model.backend} {self.model.precision})"


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module without a spec
        return False


def default_engine_choice(models_dir: str | Path | None = None) -> DefaultChoice:
    """The shipped engine this machine can run: LiteRT INT8 when LiteRT is importable, else the ONNX.

    Args:
        models_dir: where the shipped engines are (default: the package's ``runtime/models/default``).

    Raises:
        EngineError: no model is shipped there, or no installed backend runs the shipped ones.
    """
    folder = Path(models_dir) if models_dir is not None else DEFAULT_DIR
    shipped = [m for m in DEFAULT_MODELS if (folder / m.file).is_file()]
    if not shipped:
        raise EngineError(f"no default model is shipped in {folder} (this au-edge was built without one); pass "
                          "--engine PATH to an exported engine (python -m export writes them)")
    for m in shipped:
        if any(_importable(mod) for mod in m.modules):
            return DefaultChoice(folder / m.file, m)
    needs = " or ".join(f"{m.backend} ({' / '.join(m.modules)}) for {m.file}" for m in shipped)
    raise EngineError(f"no inference backend for the default model is installed: it needs {needs}; "
                      f"{RUNTIME_EXTRA}")


def default_engine_path(models_dir: str | Path | None = None) -> Path:
    """The file ``--engine default`` opens (see ``default_engine_choice``)."""
    return default_engine_choice(models_dir).path
