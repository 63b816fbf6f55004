"""One batch policy for every backend (runtime/engines/base.py): chunk to the engine's maximum, pad
to its static size or minimum, run, slice. Real ONNX Runtime and LiteRT sessions on tiny engines
with a static batch of 1, a static batch of 4 and a dynamic batch, against a numpy reference."""
from __future__ import annotations

import numpy as np
import pytest

from engine_factory import AUS, SIZE, build_batch_variants, random_crops, reference_probs
from runtime.engines import load_engine
from runtime.engines.base import BatchPolicy
from runtime.engines.onnx_engine import OnnxEngine
from runtime.errors import EngineError

TOL = {"onnx": 1e-5, "litert": 1e-4}
DECLARED = {"static1": (1, 1), "static4": (4, 4), "dynamic": (1, None)}  # (min, max) each file declares


@pytest.fixture(scope="module")
def batch_engines(tmp_path_factory, tiny_engines):
    return build_batch_variants(tmp_path_factory.mktemp("batch"), tiny_engines["tflite"])


@pytest.mark.filterwarnings("ignore:Warning. Enabling `experimental_preserve_all_tensors`")
def test_the_tflite_files_really_have_the_batch_they_claim(batch_engines):
    """Read with LiteRT itself, not the engine code: static 4 is [4, ...], dynamic is -1."""
    from ai_edge_litert.interpreter import Interpreter

    for kind, want in (("static1", 1), ("static4", 4), ("dynamic", -1)):
        detail = Interpreter(str(batch_engines[("litert", kind)])).get_input_details()[0]
        assert list(detail["shape_signature"]) == [want, 3, SIZE, SIZE], kind


@pytest.mark.parametrize("n", [1, 3, 4, 5])
@pytest.mark.parametrize("kind", ["static1", "static4", "dynamic"])
@pytest.mark.parametrize("backend", ["onnx", "litert"])
def test_every_backend_every_batch_kind_matches_numpy(batch_engines, backend, kind, n):
    crops = random_crops(n, seed=10 * n + len(kind))
    with load_engine(batch_engines[(backend, kind)], threads=1) as eng:
        assert (eng.batch.min, eng.batch.max) == DECLARED[kind]
        probs = eng.infer(crops)
    assert probs.shape == (n, len(AUS)) and probs.dtype == np.float32
    assert np.abs(probs - reference_probs(crops)).max() <= TOL[backend]


@pytest.mark.parametrize("backend", ["onnx", "litert"])
def test_dynamic_engine_follows_changing_batch_sizes(batch_engines, backend):
    """One engine, batch sizes up and down (LiteRT re-allocates its tensors each time)."""
    with load_engine(batch_engines[(backend, "dynamic")], threads=1) as eng:
        for n in (5, 1, 3, 1, 4):
            crops = random_crops(n, seed=n)
            assert np.abs(eng.infer(crops) - reference_probs(crops)).max() <= TOL[backend]


class _ProfileOnnx(OnnxEngine):
    """A real ONNX Runtime session on the dynamic model, declaring a TensorRT-style profile
    (min 2, opt 3, max 4) and recording the batch sizes the base class hands to the backend."""

    def _batch_policy(self) -> BatchPolicy:
        return BatchPolicy(min=2, max=4, opt=3)

    def _run(self, x):
        self.sizes.append(len(x))
        return super()._run(x)


@pytest.mark.parametrize("n, sizes", [(1, [2]), (2, [2]), (3, [3]), (4, [4]), (5, [4, 2]), (9, [4, 4, 2])])
def test_profile_minimum_padding_and_maximum_chunking(batch_engines, n, sizes):
    from runtime.card import load_card

    path = batch_engines[("onnx", "dynamic")]
    eng = _ProfileOnnx(path, load_card(path), threads=1)
    eng.sizes = []
    crops = random_crops(n, seed=n)
    probs = eng.infer(crops)
    assert eng.sizes == sizes
    assert probs.shape == (n, len(AUS))
    assert np.abs(probs - reference_probs(crops)).max() <= TOL["onnx"]


def test_batch_plans():
    assert BatchPolicy.static(1).plan(3) == [(0, 1, 1), (1, 2, 1), (2, 3, 1)]
    assert BatchPolicy.static(4).plan(3) == [(0, 3, 4)]
    assert BatchPolicy.static(4).plan(5) == [(0, 4, 4), (4, 5, 4)]
    assert BatchPolicy().plan(5) == [(0, 5, 5)]
    assert BatchPolicy(min=2, max=8, opt=4).plan(17) == [(0, 8, 8), (8, 16, 8), (16, 17, 2)]
    assert BatchPolicy.static(4).is_static and not BatchPolicy(1, 4).is_static


@pytest.mark.parametrize("bad", [dict(min=0), dict(min=4, max=2), dict(min=1, max=4, opt=8),
                                 dict(min=2, max=4, opt=1)])
def test_invalid_batch_ranges_are_one_line_errors(bad):
    with pytest.raises(EngineError, match="invalid batch range"):
        BatchPolicy(**bad)


def test_a_backend_returning_the_wrong_row_count_is_an_error(batch_engines):
    from runtime.card import load_card

    class Short(OnnxEngine):
        def _run(self, x):
            return super()._run(x)[:1]

    path = batch_engines[("onnx", "dynamic")]
    with pytest.raises(EngineError, match="returned 1 rows for a batch of 3"):
        Short(path, load_card(path)).infer(random_crops(3))
