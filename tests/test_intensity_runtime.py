"""The runtime side of AU intensity, without an export: the card's ``output.intensity`` (valid and
refused forms), an ONNX engine with a second output (values computed here in numpy), an engine
without one behaving as before, and the per-track smoothing of intensities."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from engine_factory import (
    AUS,
    MEAN,
    SIZE,
    STD,
    base_card,
    random_crops,
    reference_probs,
)

INTENSITY_AUS = ["AU12", "AU25"]
RNG = np.random.default_rng(7)
W2 = RNG.normal(0, 2.0, (3, len(INTENSITY_AUS))).astype(np.float32)
B2 = RNG.normal(0, 0.5, len(INTENSITY_AUS)).astype(np.float32)


def intensity_section(**overrides) -> dict:
    return {"aus": list(INTENSITY_AUS), "name": "intensity", "range": [0, 5],
            "label_kinds": {"AU12": ["real"], "AU25": ["synthetic"]}, **overrides}


def reference_intensity(crops: np.ndarray) -> np.ndarray:
    x = (crops.astype(np.float64) / 255.0 - np.array(MEAN)) / np.array(STD)
    z = x.mean(axis=(1, 2)) @ W2.astype(np.float64) + B2
    return 5.0 / (1.0 + np.exp(-z))


def write_two_output_onnx(path: Path, intensity_name: str = "intensity", first: str = "au") -> Path:
    """engine_factory's tiny model plus a second head: 5 * sigmoid(pooled @ W2 + B2)."""
    import onnx
    from engine_factory import B, W
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("ReduceMean", ["image"], ["pooled"], axes=[2, 3], keepdims=0),
             helper.make_node("MatMul", ["pooled", "W"], ["mm"]), helper.make_node("Add", ["mm", "B"], ["z"]),
             helper.make_node("Sigmoid", ["z"], ["au"]),
             helper.make_node("MatMul", ["pooled", "W2"], ["mm2"]), helper.make_node("Add", ["mm2", "B2"], ["z2"]),
             helper.make_node("Sigmoid", ["z2"], ["s2"]), helper.make_node("Mul", ["s2", "five"], [intensity_name])]
    outs = {"au": helper.make_tensor_value_info("au", TensorProto.FLOAT, ["batch", len(AUS)]),
            intensity_name: helper.make_tensor_value_info(intensity_name, TensorProto.FLOAT,
                                                          ["batch", len(INTENSITY_AUS)])}
    order = [first] + [n for n in outs if n != first]
    graph = helper.make_graph(
        nodes, "tiny_au_intensity",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])], [outs[n] for n in order],
        initializer=[numpy_helper.from_array(a, n) for a, n in
                     ((W, "W"), (B, "B"), (W2, "W2"), (B2, "B2"), (np.array(5.0, np.float32), "five"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def engine_with_card(tmp_path: Path, section: dict | None, **kw) -> Path:
    path = write_two_output_onnx(tmp_path / "two.onnx", **kw)
    card = base_card()
    if section is not None:
        card.output = {"intensity": section}
    card.write(path)
    return path


@pytest.mark.parametrize("first", ["au", "intensity"])
def test_onnx_engine_returns_both_outputs_by_the_card(tmp_path, first):
    """Whatever the order of the graph's outputs, the card's name picks the intensity."""
    from runtime import load_engine

    path = engine_with_card(tmp_path, intensity_section(), first=first)
    crops = random_crops(7, seed=3)
    with load_engine(path, threads=1) as eng:
        assert eng.intensity_aus == INTENSITY_AUS
        probs, intensity = eng.infer_with_intensity(crops)
        np.testing.assert_allclose(probs, reference_probs(crops), atol=1e-5)
        np.testing.assert_allclose(intensity, reference_intensity(crops), atol=1e-4)
        np.testing.assert_array_equal(eng.infer(crops), probs)
        p0, i0 = eng.infer_with_intensity(crops[:0])
        assert p0.shape == (0, len(AUS)) and i0.shape == (0, len(INTENSITY_AUS))


def test_a_model_without_intensity_runs_as_before(tmp_path, tiny_engines):
    from runtime import load_engine

    crops = random_crops(5, seed=4)
    with load_engine(tiny_engines["onnx"], threads=1) as eng:
        assert eng.intensity_aus == [] and eng.card.intensity is None
        probs, intensity = eng.infer_with_intensity(crops)
        assert intensity is None
        np.testing.assert_array_equal(probs, eng.infer(crops))
    # a two-output engine whose card declares no intensity: the first output, as always
    with load_engine(engine_with_card(tmp_path, None), threads=1) as eng:
        assert eng.infer_with_intensity(crops)[1] is None
        np.testing.assert_allclose(eng.infer(crops), reference_probs(crops), atol=1e-5)


@pytest.mark.parametrize("section,needle", [
    (intensity_section(name="missing"), "declares the intensity output 'missing'"),
    (intensity_section(aus=["AU12"], label_kinds={"AU12": ["real"]}), "holds 2 values per face"),
])
def test_a_card_that_does_not_match_the_engine_is_refused(tmp_path, section, needle):
    from runtime import load_engine
    from runtime.errors import CardError

    with pytest.raises(CardError, match=needle):
        load_engine(engine_with_card(tmp_path, section))


@pytest.mark.parametrize("change,needle", [
    ({"aus": ["AU12", "AU45"]}, "distinct AUs of the card's aus"),
    ({"aus": ["AU99"]}, "AU99 is not in the au-edge catalog"),
    ({"aus": []}, "non-empty list"),
    ({"label_kinds": {"AU12": ["real"]}}, "label_kinds must give"),
    ({"label_kinds": {"AU12": ["real"], "AU25": ["guessed"]}}, "label_kinds['AU25']"),
    ({"name": ""}, "output tensor name"),
    ({"range": [5, 0]}, "range"),
    ({"quant": {"scale": 0, "zero_point": 0}}, "quant"),
])
def test_card_intensity_section_is_validated_in_one_line(tmp_path, change, needle):
    from runtime.card import load_card
    from runtime.errors import CardError

    path = engine_with_card(tmp_path, intensity_section())
    card_file = path.with_name(path.name + ".json")
    data = json.loads(card_file.read_text())
    data["output"]["intensity"].update(change)
    card_file.write_text(json.dumps(data))
    with pytest.raises(CardError, match=needle.replace("[", r"\[").replace("]", r"\]")) as e:
        load_card(path)
    assert "\n" not in str(e.value)


def test_intensities_are_smoothed_per_track_like_probabilities():
    from runtime.smoothing import OneEuroFilter, ValueSmoother

    sm = ValueSmoother()
    steady = np.array([2.0, 4.0], np.float32)
    for k in range(5):
        np.testing.assert_allclose(sm(1, steady, k / 30), steady)  # a steady value is kept as is
    jumped = sm(1, np.array([4.0, 0.0], np.float32), 5 / 30)
    assert 2.0 < jumped[0] < 4.0 and 0.0 < jumped[1] < 4.0  # a jump is followed, not copied
    # on the 0-5 scale the filter moves as the probabilities' filter does on values / 5
    ref = OneEuroFilter()
    for k, v in enumerate([0.4, 0.4, 0.8]):
        want = ref(np.array([v], np.float32), k / 30)
    other = ValueSmoother()
    for k, v in enumerate([2.0, 2.0, 4.0]):
        got = other(3, np.array([v], np.float32), k / 30)
    np.testing.assert_allclose(got / 5, want, rtol=1e-5)
    assert sm(2, steady, 0.0) is steady or np.array_equal(sm(2, steady, 0.0), steady)  # a new track starts fresh
    off = ValueSmoother(enabled=False)
    x = np.array([1.0, 3.0], np.float32)
    assert off(1, x, 0.0) is x
