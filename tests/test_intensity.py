"""AU intensity in training, distillation and evaluation: ICC(3,1) against Shrout & Fleiss's
published worked example, the DISFA protocol's masking of unknown labels, batches carrying the
cache's intensities, a teacher whose intensity head trains (its loss term and the protocol in
metrics.json, ``train.eval`` reporting the same), a student distilled from it, and the one-line
stops when there is nothing to learn from."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from train.intensity_metrics import icc_3_1, intensity_labels, intensity_report, pcc

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "smoke.yaml"
SMOKE_DISTILL = REPO / "configs" / "smoke_distill.yaml"
AUS = ["AU01", "AU04", "AU12", "AU25", "AU26"]
SYNTHETIC = 2  # index of "synthetic" in LABEL_KINDS
TINY = ["model.backbone=test_convnext", "model.dim=32", "model.relation_depth=1", "model.inpaint=false",
        "model.flow=false", "epochs=6", "batch_size=16", "lr=0.01", "warmup_steps=0", "threads=1", "build={}"]

torch.set_num_threads(1)


def run(cmd: list[str], ok: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, env=env, check=False)
    if ok:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


# -- the metrics --------------------------------------------------------------------------------

def test_icc_3_1_matches_shrout_and_fleiss_worked_example():
    """Shrout & Fleiss (1979), Psychological Bulletin 86(2), Table 2: six targets rated by four
    judges; their Table 4 gives ICC(3,1) = .71 (and ICC(1,1) = .17, ICC(2,1) = .29)."""
    table = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])
    assert round(icc_3_1(table), 2) == 0.71
    # consistency: a rater who adds a constant agrees perfectly (MAE shows the offset, ICC(3,1) does not)
    truth = np.array([0, 1, 2, 3, 5, 4, 0, 2], float)
    assert icc_3_1(np.stack([truth, truth + 1.5], 1)) == pytest.approx(1.0)
    assert icc_3_1(np.stack([truth, 5 - truth], 1)) == pytest.approx(-1.0)  # opposite ratings
    assert math.isnan(icc_3_1(np.ones((4, 2))))  # no variance at all: undefined, not 1
    assert pcc(truth, 2 * truth + 1) == pytest.approx(1.0) and math.isnan(pcc(truth, np.zeros(8)))


def test_report_scores_known_labels_only_and_keeps_their_kinds():
    truth = np.array([[0, 1], [1, np.nan], [2, 3], [3, np.nan], [4, 5], [5, np.nan]], float)
    pred = np.array([[0.5, 1], [1.5, 9], [2.5, 2], [3.5, 9], [4.5, 5], [5.5, 9]], float)  # 9 where unknown
    kinds = np.array([[0, 2]] * 3 + [[2, 2]] * 3)  # AU01: real for 3 frames, synthetic for 3
    r = intensity_report(pred, truth, ["AU01", "AU12"], kinds, ["real", "silver", "synthetic"])
    assert r["n"] == {"AU01": 6, "AU12": 3}
    assert r["mae"]["AU01"] == pytest.approx(0.5) and r["mae"]["AU12"] == pytest.approx(1 / 3, abs=1e-4)
    assert r["icc"]["AU01"] == pytest.approx(1.0) and r["pcc"]["AU01"] == pytest.approx(1.0)
    assert r["label_kinds"] == ["real", "synthetic"] and set(r["by_label_kind"]) == {"real", "synthetic"}
    assert r["by_label_kind"]["real"]["n"] == {"AU01": 3}
    short = np.array([[1.0], [np.nan], [2.0], [np.nan]])
    assert intensity_report(short, short, ["AU01"]) is None  # fewer than 3 known frames: nothing to report
    labels = intensity_labels(truth, kinds, ["real", "silver", "synthetic"], ["AU01", "AU12"])
    assert labels == {"AU01": {"known": 6, "label_kinds": ["real", "synthetic"]},
                      "AU12": {"known": 3, "label_kinds": ["synthetic"]}}


# -- the data -------------------------------------------------------------------------------------

def brightness_cache(root: Path, n: int = 96, with_intensity: bool = True) -> Path:
    """Grey 64-px crops whose every AU's intensity is 5 x brightness (a signal a tiny net learns in
    a few steps); AU04 unknown (NaN) on every third frame; all of kind synthetic."""
    from train.data.shards import empty_arrays, write_shard

    root.mkdir(parents=True)
    subjects = [f"s{i}" for i in range(8)]
    (root / "meta.json").write_text(json.dumps({"dataset": "synth", "aus": AUS, "crop_size": 64, "subjects": subjects,
                                                "videos": ["v"], "label_kinds": ["real", "silver", "synthetic"]}))
    a = empty_arrays(n, len(AUS), 64)
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, n)
    noise = rng.integers(-10, 10, a["image"].shape)
    a["image"][:] = np.clip(grey[:, None, None, None] + noise, 0, 255).astype(np.uint8)
    level = np.repeat((5 * grey / 255.0)[:, None], len(AUS), 1)
    a["labels"][:], a["mask"][:], a["kind"][:] = level >= 2, True, SYNTHETIC
    if with_intensity:
        a["intensity"][:] = level
        a["intensity"][::3, AUS.index("AU04")] = np.nan
    a["subject"][:] = np.arange(n) % len(subjects)
    write_shard(root, 0, a, n, {})
    return root


def test_batches_carry_the_cache_intensities_with_nan_unknown(tmp_path):
    from train.data.cache import CacheData
    from train.data.torch_data import CacheDataset

    cache = CacheData(brightness_cache(tmp_path / "c", n=6))
    ds = CacheDataset(cache, np.arange(6), 64, columns=np.array([1, 2]))  # AU04, AU12
    item = ds[0]
    stored = cache.sample(0)["intensity"][[1, 2]].astype(np.float32)
    assert item["intensity"].dtype == torch.float32 and item["intensity"].shape == (2,)
    assert math.isnan(item["intensity"][0]) and math.isnan(stored[0])  # frame 0: AU04 unknown
    assert item["intensity"][1] == pytest.approx(float(stored[1]))


# -- the teacher ----------------------------------------------------------------------------------

def train_cmd(*overrides: str) -> list[str]:
    return [sys.executable, "-m", "train", "--config", str(SMOKE), *TINY, *overrides]


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("intensity_teacher")
    data = brightness_cache(root / "data")
    run(train_cmd(f"data={data}", f"run_dir={root / 'run'}", "model.intensity_head=true"))
    return {"data": data, "run": root / "run", "metrics": json.loads((root / "run" / "metrics.json").read_text())}


@pytest.mark.slow
def test_teacher_intensity_head_trains_and_is_reported(teacher_run, tmp_path):
    m = teacher_run["metrics"]
    assert {"au", "intensity"} <= set(m["loss_terms"]) and m["loss_terms"]["intensity"] > 0
    assert m["intensity_labels"]["AU04"]["label_kinds"] == ["synthetic"]
    assert m["intensity_labels"]["AU01"]["known"] > m["intensity_labels"]["AU04"]["known"]  # NaN left out
    block = m["intensity"]
    assert set(block["icc"]) == set(AUS) | {"mean"} and block["label_kinds"] == ["synthetic"]
    assert np.median([block["pcc"][a] for a in AUS]) > 0.5  # brightness -> intensity was learned
    # train.eval on the same split reproduces the run's own intensity protocol
    out = tmp_path / "eval.json"
    proc = run([sys.executable, "-m", "train.eval", "--checkpoint", str(teacher_run["run"] / "best.pt"),
                "--data", str(teacher_run["data"]), "--split", "test", "--out", str(out)])
    assert json.loads(out.read_text())["intensity"] == block and "ICC(3,1)" in proc.stdout


def test_intensity_head_without_intensity_labels_stops_with_one_line(tmp_path):
    data = brightness_cache(tmp_path / "data", n=48, with_intensity=False)
    proc = run(train_cmd(f"data={data}", f"run_dir={tmp_path / 'run'}", "model.intensity_head=true"), ok=False)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr[-2000:]
    assert "intensity_head" in proc.stderr and str(data) in proc.stderr


# -- the student ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_student_distils_intensity_and_exports_both_heads(teacher_run, tmp_path):
    from train import checkpoint
    from train.task import task_for_checkpoint

    out = tmp_path / "student"
    run([sys.executable, "-m", "distill", "--teacher", str(teacher_run["run"] / "best.pt"), "--config",
         str(SMOKE_DISTILL), f"data={teacher_run['data']}", f"run_dir={out}", "model.arch=mobilenetv2_100",
         "model.pretrained=false", "model.intensity_head=true", "epochs=2", "batch_size=16", "threads=1", "build={}"])
    m = json.loads((out / "metrics.json").read_text())
    assert {"intensity_soft", "intensity_hard", "hard", "soft"} <= set(m["loss_terms"])
    assert set(m["intensity"]["mae"]) == set(AUS) | {"mean"} and set(m["intensity_labels"]) == set(AUS)
    ck = checkpoint.load(out / "best.pt")
    assert json.loads(ck["model_config"])["intensity_head"] is True
    net = task_for_checkpoint(ck).export_module(task_for_checkpoint(ck).model_from_checkpoint(ck).eval())
    with torch.no_grad():
        logits, intensity = net.forward_outputs(torch.randn(3, 3, 64, 64))
    assert logits.shape == intensity.shape == (3, len(AUS)) and 0 <= intensity.min() and intensity.max() <= 5


def test_intensity_terms_reach_the_student_and_need_a_teacher_with_intensity(tmp_path):
    from test_distill import _untrained_teacher

    from distill.task import StudentTask
    from train.model.input_norm import normalize

    plain = _untrained_teacher(tmp_path / "plain.pt")  # the smoke teacher, no intensity head
    cfg = {"arch": "mobilenetv2_100", "pretrained": False, "intensity_head": True, "w_hard": 0.0, "w_soft": 0.0,
           "w_pseudo": 0.0, "w_feat": 0.0, "w_rel": 0.0}
    task = StudentTask(cfg, str(plain))
    student = task.build_model(task.cfg.to_dict(), AUS, 64).train()
    with pytest.raises(ValueError, match="w_intensity_soft") as e:
        task.build_objective(student, torch.ones(len(AUS)), torch.Generator().manual_seed(0))
    assert "\n" not in str(e.value)
    task = StudentTask({**cfg, "w_intensity_soft": 0.0}, str(plain))  # labels alone
    objective = task.build_objective(student, torch.ones(len(AUS)), torch.Generator().manual_seed(0))
    u8 = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    target = torch.full((4, len(AUS)), float("nan"))
    target[:2, 2] = torch.tensor([1.0, 4.0])  # two known AU12 intensities
    batch = {"image_u8": u8, "image": normalize(u8, task.mean, task.std), "labels": torch.zeros(4, len(AUS)),
             "mask": torch.zeros(4, len(AUS), dtype=torch.bool), "intensity": target}
    student.eval()  # no dropout: the term can be recomputed from the student's own output
    loss, terms = objective(batch)
    assert set(terms) == {"intensity_hard"} and loss.item() > 0
    with torch.no_grad():
        pred = student.net.forward_outputs(batch["image"])[1]
    want = (abs(float(pred[0, 2]) - 1.0) + abs(float(pred[1, 2]) - 4.0)) / 2  # L1 over the known two
    assert terms["intensity_hard"] == pytest.approx(want, rel=1e-5)
    loss.backward()
    assert student.net.intensity.weight.grad.abs().sum() > 0
    assert next(student.net.backbone.parameters()).grad.abs().sum() > 0


# -- an intensity head for a finished student (distill.intensity_head) ----------------------------

@pytest.mark.slow
def test_a_finished_student_gains_an_intensity_head_with_its_occurrence_unchanged(teacher_run, tmp_path):
    """The shipped model's route: a student distilled without intensity, then a head fitted on its
    frozen features. The occurrence logits stay bit-identical, the intensities follow the cache's
    brightness-made labels, and metrics.json says what export should declare."""
    from train import checkpoint
    from train.task import task_for_checkpoint

    plain = tmp_path / "student"
    run([sys.executable, "-m", "distill", "--teacher", str(teacher_run["run"] / "best.pt"), "--config",
         str(SMOKE_DISTILL), f"data={teacher_run['data']}", f"run_dir={plain}", "model.arch=mobilenetv2_100",
         "model.pretrained=false", "epochs=1", "batch_size=16", "threads=1", "build={}"])
    out = tmp_path / "with_intensity"
    proc = run([sys.executable, "-m", "distill.intensity_head", "--student", str(plain / "best.pt"), "--out", str(out),
                "--views", "0", "--threads", "1", "--min-icc", "0.5"])
    assert "declared for" in proc.stdout, proc.stdout

    old_ck, new_ck = checkpoint.load(plain / "best.pt"), checkpoint.load(out / "best.pt")
    assert json.loads(new_ck["model_config"])["intensity_head"] is True
    nets = [task_for_checkpoint(c).model_from_checkpoint(c).eval() for c in (old_ck, new_ck)]
    grey = torch.linspace(0, 255, 12)
    u8 = grey.view(-1, 1, 1, 1).expand(12, 3, 64, 64)
    x = (u8 / 255.0 - torch.tensor(new_ck["mean"]).view(1, 3, 1, 1)) / torch.tensor(new_ck["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        old_logits = nets[0].au_logits(x)
        new_logits, intensity = nets[1].au_heads(x)
    assert torch.equal(old_logits, new_logits)
    want = (5 * grey / 255.0).numpy()  # the cache's labels: 5 x brightness, every AU
    for j in range(len(AUS)):
        assert pcc(intensity[:, j].numpy(), want) > 0.8, (AUS[j], intensity[:, j])

    m = json.loads((out / "metrics.json").read_text())
    old_m = json.loads((plain / "metrics.json").read_text())
    assert m["f1"] == old_m["f1"] and m["calibration"] == old_m["calibration"]  # the occurrence's numbers carry over
    assert set(m["intensity_labels"]) == set(AUS) and m["intensity_labels"]["AU04"]["label_kinds"] == ["synthetic"]
    val_icc = m["intensity_fit"]["validation"][str(m["intensity_fit"]["weight_decay"])]["icc"]
    assert m["intensity_supported"] == [a for a in AUS if val_icc[a] is not None and val_icc[a] >= 0.5]
    assert set(m["intensity"]["icc"]) == set(AUS) | {"mean"}

    teacher = run([sys.executable, "-m", "distill.intensity_head", "--student", str(teacher_run["run"] / "best.pt"),
                   "--out", str(tmp_path / "no")], ok=False)
    assert teacher.returncode == 2 and teacher.stderr.strip().count("\n") == 0, teacher.stderr
    assert "holds a teacher" in teacher.stderr and not (tmp_path / "no").exists()


@pytest.mark.parametrize("args, words", [(["--views", "-1"], "--views -1"), (["--min-icc", "2"], "--min-icc 2"),
                                         (["--threads", "0"], "--threads 0")])
def test_intensity_head_options_out_of_range_are_one_line(args, words, tmp_path):
    proc = run([sys.executable, "-m", "distill.intensity_head", "--student", str(tmp_path / "none.pt"), "--out",
                str(tmp_path / "o"), *args], ok=False)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and words in proc.stderr, proc.stderr


def test_export_declares_intensity_only_for_the_supported_aus():
    from torch import nn

    from export.model import declared_intensity

    class WithHead(nn.Module):
        has_intensity = True

    labels = {a: {"known": 10, "label_kinds": ["synthetic"]} for a in ("AU01", "AU12", "AU25")}
    assert declared_intensity(WithHead(), AUS, {"intensity_labels": labels}) == (["AU01", "AU12", "AU25"], [])
    declared, warnings = declared_intensity(WithHead(), AUS, {"intensity_labels": labels,
                                                              "intensity_supported": ["AU12", "AU26"]})
    assert declared == ["AU12"] and len(warnings) == 1 and "AU01, AU25" in warnings[0]
    declared, warnings = declared_intensity(WithHead(), AUS, {"intensity_labels": labels, "intensity_supported": []})
    assert declared == [] and "intensity_supported" in warnings[0]
