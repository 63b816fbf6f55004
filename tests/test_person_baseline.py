"""The per-person baseline (runtime.neutral.PersonBaseline): crafted probabilities through the object,
then a real engine with a constant offset on one AU through AUDetector on the Pexels clip, the shipped
model on a smiling face played as video, and the CLI switch."""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from engine_factory import AUS, B, base_card, write_onnx
from runtime import AUDetector
from runtime.card import ModelCard
from runtime.errors import CardError
from runtime.neutral import (
    HALF_LIFE_S,
    MARGIN,
    MAX_SHIFT,
    RAMP_S,
    WARMUP_S,
    NeutralCalibration,
    PersonBaseline,
    card_reference,
    check_baseline_options,
    person_baseline,
)

PEXELS = "WolfgangLanger_Pexels.mp4"
FPS = 30.0


def lg(p) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def sg(z) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))


def expected_shift(history: np.ndarray, reference: np.ndarray, ramp: float = 1.0) -> np.ndarray:
    """What the baseline should remove, from numpy's own quantile of the logits seen so far."""
    return np.clip(np.quantile(history, 0.1, axis=0) - reference, 0.0, MAX_SHIFT) * ramp


def default_ramp(age_s: float) -> float:
    """The default fade-in: nothing before WARMUP_S, all of it RAMP_S later."""
    return float(np.clip((age_s - WARMUP_S) / RAMP_S, 0.0, 1.0))


# --- the object, on crafted probabilities ---------------------------------------------------------


def test_a_constant_offset_is_lowered_and_a_typical_face_is_left_alone():
    """AU a: a resting face 1 logit OVER the decision (identity bias); AU b: a typical resting face
    4 logits under it. After warm-up and ramp (1 s each here), a's resting level is brought down by
    its excess over the reference (decision - MARGIN), at most MAX_SHIFT: a is off; b's probabilities
    are returned untouched (the very same values)."""
    rng = np.random.default_rng(3)
    base = PersonBaseline(np.array([0.5, 0.5]), warmup_s=1.0, ramp_s=1.0)
    ref = np.array([-MARGIN, -MARGIN])
    zs, outs = [], []
    for i in range(int(6 * FPS)):
        z = np.array([1.0, -4.0]) + rng.normal(0, 0.3, 2)
        p = sg(z).astype(np.float32)
        zs.append(z)
        outs.append(base(7, p, i / FPS))
        if i / FPS < 1.0:
            assert outs[-1] is p  # warm-up: nothing changes
        else:
            assert outs[-1][1] == p[1]  # AU b is never shifted
    zs, out = np.array(zs), lg(np.array(outs))
    for i in range(int(2 * FPS), len(zs), 15):  # past the 1 s warm-up and the 1 s ramp
        want = zs[i] - expected_shift(zs[:i + 1], ref)
        assert np.allclose(out[i], want, atol=0.12), (i, out[i], want)  # the histogram's 0.1-logit bins
    settled = out[int(2 * FPS):, 0]
    assert (sg(settled) < 0.5).mean() > 0.99 and (sg(zs[int(2 * FPS):, 0]) >= 0.5).mean() > 0.99


def test_warm_up_then_ramp():
    base = PersonBaseline(np.array([0.5]), warmup_s=1.0, warmup_frames=10, ramp_s=1.0)
    p = sg([2.0]).astype(np.float32)  # 4 logits over the reference: the full shift is the cap
    got = {}
    for i in range(int(3 * FPS) + 1):
        got[i] = float(lg(base(1, p, i / FPS))[0])
    assert got[0] == got[29] == pytest.approx(2.0, abs=1e-5)  # under 1 s: no shift
    assert got[45] == pytest.approx(2.0 - 0.5 * MAX_SHIFT, abs=0.02)  # half-way through the ramp
    assert got[90] == pytest.approx(2.0 - MAX_SHIFT, abs=0.02)
    few = PersonBaseline(np.array([0.5]), warmup_frames=10)
    assert [few(1, p, t) is p for t in (0.0, 5.0, 9.0)] == [True] * 3  # 3 frames over 9 s: still warming up


def test_a_person_who_smiles_from_the_first_frame_keeps_au12_on():
    """Smiling (3 logits over the decision) in every frame from the first, for 12 s: the shift grows
    to its cap, so AU12 stays on; once the person relaxes the low quantile falls to the neutral level
    and a later smile is passed through unchanged."""
    rng = np.random.default_rng(4)
    base = PersonBaseline(np.array([0.5]))
    t, outs = 0.0, []
    for _ in range(int(12 * FPS)):
        outs.append(float(base(1, sg([3.0 + rng.normal(0, 0.2)]).astype(np.float32), t)[0]))
        t += 1 / FPS
    assert min(outs) >= 0.5 and base.shift(1, t)[0] == pytest.approx(MAX_SHIFT)
    for _ in range(int(2 * FPS)):  # relaxed for 2 s: more than 10 % of what the track remembers
        base(1, sg([-4.0 + rng.normal(0, 0.3)]).astype(np.float32), t)
        t += 1 / FPS
    assert base.shift(1, t)[0] == 0.0
    smile = sg([3.0]).astype(np.float32)
    assert base(1, smile, t) is smile


def test_memory_is_bounded():
    """An hour of frames keeps one fixed-size histogram whose mass stays at the forgetting's limit
    (its lazy weights rescaled on the way); a thousand faces at once keep at most max_tracks tracks;
    stale tracks and reset() free them."""
    base = PersonBaseline(np.full(15, 0.5))
    p = np.full(15, 0.3, np.float32)
    for i in range(3600):  # an hour at one frame a second
        base(1, p, float(i))
    hist = base._state[1].hist
    limit = 1.0 / (1.0 - 0.5 ** (1.0 / HALF_LIFE_S))  # geometric series of the per-frame decay
    assert hist.counts.shape == (15, 240) and hist.mass() == pytest.approx(limit, rel=0.01)
    many = PersonBaseline(np.full(15, 0.5), max_tracks=64)
    for k in range(1000):
        many(k, p, k * 1e-3)
    assert many.tracks == 64 and set(many._state) == set(range(936, 1000))  # the most recently seen
    many.forget_stale(1.0 + 2.1)
    assert many.tracks == 0
    base.reset()
    assert base.tracks == 0 and base.baseline(1) is None


def test_a_track_gone_for_long_starts_again():
    base = PersonBaseline(np.array([0.5]))
    p = sg([2.0]).astype(np.float32)
    for i in range(90):
        base(1, p, i / FPS)
    assert base.shift(1, 3.0)[0] > 0
    base.forget_stale(3.0 + 2.5)
    assert base.baseline(1) is None and base(1, p, 5.6) is p  # a new warm-up


def test_options_are_checked():
    for kw, name in (({"quantile": 1.0}, "quantile"), ({"margin": -1.0}, "margin"), ({"max_shift": math.nan},
                     "max_shift"), ({"warmup_frames": 0}, "warmup_frames"), ({"half_life_s": 0.0}, "half_life_s")):
        with pytest.raises(ValueError, match=name):
            PersonBaseline(np.array([0.5]), **kw)
    PersonBaseline(np.array([0.5]), half_life_s=math.inf)  # never forgets: allowed
    with pytest.raises(ValueError, match="calibrate_neutral_s=2.0 is a per-person baseline"):
        check_baseline_options(False, 2.0)
    with pytest.raises(ValueError, match="calibrate_neutral_s must be >= 0"):
        check_baseline_options(True, -1.0)


def test_the_card_can_carry_the_neutral_reference():
    card = base_card()
    assert isinstance(person_baseline(card), PersonBaseline)
    assert isinstance(person_baseline(card, enabled=False), NeutralCalibration)
    assert not person_baseline(card, enabled=False).enabled
    assert person_baseline(card, calibrate_neutral_s=2.0).seconds == 2.0
    q, ref = card_reference(card)
    assert q == 0.1 and ref is None
    card.thresholds = {**card.thresholds, "AU12": 0.8}
    card.extra["person_baseline"] = {"quantile": 0.2, "reference": {"AU04": -3.5}}
    q, ref = card_reference(card)
    want = lg([card.threshold(a) for a in card.aus]) - MARGIN
    want[card.aus.index("AU04")] = -3.5
    assert q == 0.2 and np.allclose(ref, want)
    assert person_baseline(card).quantile == 0.2
    for bad, match in (({"reference": {"AU99": 1.0}}, "AU99"), ({"reference": {"AU04": "x"}}, "AU04"),
                       ({"quantile": 2, "reference": {}}, "quantile"), ([1], "must be")):
        card.extra["person_baseline"] = bad
        with pytest.raises(CardError, match=match):
            card_reference(card)
    ModelCard.from_dict(json.loads(card.to_json()))  # an extra section: still a valid card


# --- through AUDetector with real engines ---------------------------------------------------------


@pytest.fixture(scope="module")
def offset_engines(tmp_path_factory):
    """The tiny ONNX engine, and the same with +4 logits on AU04 (its clip logits are -3.9 to -2.5)."""
    out = tmp_path_factory.mktemp("offset")
    plain = write_onnx(out / "plain.onnx")
    base_card().write(plain)
    bias = B.copy()
    bias[AUS.index("AU04")] += 4.0
    offset = write_onnx(out / "offset.onnx", bias=bias)
    base_card().write(offset)
    return {"plain": plain, "offset": offset}


def _clip(engine, face_model, media, n=288, **kw) -> tuple[np.ndarray, np.ndarray]:
    with AUDetector(engine, face_model=face_model, smooth=False, **kw) as det:
        res = [r for r in det.stream(str(media / PEXELS), max_frames=n)]
    assert all(len(r.faces) == 1 for r in res)
    return np.array([r.time_s for r in res]), np.array([[r.faces[0].au_prob[a] for a in AUS] for r in res])


@pytest.mark.slow
def test_the_baseline_lowers_an_offset_injected_into_a_track(offset_engines, face_model, media):
    """+4 logits on AU04 engine-side: without the baseline AU04 reads 'on' through the 12 s; with it
    (the default) it is lowered by the track's excess over the reference (numpy's own quantile of the
    track so far, capped, faded in) and is off once fully shifted; the AUs without an offset come out
    exactly as from the plain engine."""
    times, off = _clip(offset_engines["offset"], face_model, media, person_baseline=False)
    _, on = _clip(offset_engines["offset"], face_model, media)
    _, plain = _clip(offset_engines["plain"], face_model, media)
    k = AUS.index("AU04")
    z = lg(off[:, k])
    age = times - times[0]
    full = age >= WARMUP_S + RAMP_S
    assert full.sum() > 40 and (off[full, k] >= 0.5).mean() > 0.8 and (on[full, k] >= 0.5).mean() == 0.0
    want = np.array([z[i] - expected_shift(z[:i + 1, None], np.array([-MARGIN]), default_ramp(age[i]))[0]
                     for i in range(len(z))])
    assert np.abs(lg(on[:, k]) - want).max() < 0.15
    assert np.array_equal(np.delete(on, k, axis=1), np.delete(plain, k, axis=1))
    warming = age < WARMUP_S
    assert np.array_equal(on[warming], off[warming])


def test_image_mode_is_untouched(offset_engines, face_model, data_dir):
    """Photos (image mode) give the same probabilities with the baseline on (the default) and off,
    even when the same photo is processed again and again (12 s of calls: past the baseline's ramp)."""
    photo = cv2.imread(str(data_dir / "london" / "neutral" / "003.jpg"))
    outs = {}
    for flag in (True, False):
        with AUDetector(offset_engines["offset"], face_model=face_model, mode="image", person_baseline=flag) as det:
            outs[flag] = [det.process(photo, 0.5 * i).faces[0].au_prob for i in range(25)]
    assert outs[True] == outs[False] and outs[True][0] == outs[True][-1]


@pytest.mark.slow
def test_the_shipped_model_keeps_a_smile_from_the_first_frame(data_dir, face_model):
    """London smiling 009 (not held out; AU12 5.1 logits over the decision, the set's median smile),
    played as 12 s of video at 15 fps with small jitter from its first frame: AU12 stays on
    throughout, though the baseline has shifted it by its whole cap at the end."""
    from train.person_baseline_eval import jittered

    photo = cv2.imread(str(data_dir / "london" / "smiling" / "009.jpg"))
    with AUDetector("default", max_faces=1, face_model=face_model) as det:
        res = [det.process(f, i / 15.0) for i, f in enumerate(jittered(photo, 12 * 15, seed=9))]
        shift = det.baseline.shift(1, res[-1].time_s)
    assert all(len(r.faces) == 1 for r in res)
    assert all("AU12" in r.faces[0].au_active for r in res)
    assert shift is not None and shift[det.aus.index("AU12")] == pytest.approx(MAX_SHIFT)


def test_cli_no_person_baseline_gives_the_plain_outputs(offset_engines, face_model, media, tmp_path, capsys):
    """au-edge camera on the clip: --no-person-baseline equals AUDetector(person_baseline=False), the
    default equals AUDetector(); the two differ (AU04's offset); both switches together: one line, exit 2."""
    from runtime.camera import main

    runs = {}
    for flag in ([], ["--no-person-baseline"]):
        out = tmp_path / f"run{len(flag)}.jsonl"
        assert main(["--engine", str(offset_engines["offset"]), "--source", str(media / PEXELS), "--no-show",
                     "--quiet", "--max-frames", "96", "--face-model", face_model, "--jsonl", str(out)]
                    + flag) == 0
        runs[bool(flag)] = [[f["au_prob"][a] for a in AUS] for line in out.read_text().splitlines()
                            for f in json.loads(line)["faces"]]
    for off in (False, True):
        with AUDetector(offset_engines["offset"], face_model=face_model, person_baseline=not off) as det:
            want = [[f.au_prob[a] for a in AUS] for r in det.stream(str(media / PEXELS), max_frames=96)
                    for f in r.faces]
        assert np.abs(np.array(runs[off]) - np.array(want)).max() <= 5e-5  # the JSONL's 4 decimals
    assert not np.allclose(runs[False], runs[True], atol=1e-3)
    capsys.readouterr()
    code = main(["--engine", str(offset_engines["offset"]), "--source", str(media / PEXELS), "--no-show",
                 "--no-person-baseline", "--calibrate-neutral", "2", "--face-model", face_model])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "calibrate_neutral_s=2.0" in err and "person_baseline=False" in err


def test_batch_carries_the_switch(offset_engines, tmp_path, capsys):
    """au-edge batch: --no-person-baseline reaches the detector's settings and their resume key (an input
    done with the baseline runs again without it); with --calibrate-neutral: one line, exit 2, nothing run."""
    from runtime.batch.command import build_parser, main, settings_from

    args = ["clip.mp4", "--out", str(tmp_path / "out"), "--engine", str(offset_engines["offset"])]
    on, _ = settings_from(build_parser().parse_args(args))
    off, _ = settings_from(build_parser().parse_args(args + ["--no-person-baseline"]))
    assert on.person_baseline and not off.person_baseline and on.key() != off.key()
    capsys.readouterr()
    assert main(args + ["--no-person-baseline", "--calibrate-neutral", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "person_baseline=False" in err and not (tmp_path / "out").exists()
