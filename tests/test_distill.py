"""Students and distillation: the EfficientNet-Lite ImageNet mapping on real photos, every loss
term's gradient reaching the student, ``python -m distill`` end to end (metrics with the teacher's,
a checkpoint that reloads to the same predictions without its teacher file), exact resume and
one-line CLI errors."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from distill.losses import feature_distill, pseudo_label_bce, relation_distill, relation_matrix, soft_bce
from distill.config import StudentConfig
from train.model.students import STUDENT_ARCHS, create_student

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "smoke.yaml"
SMOKE_DISTILL = REPO / "configs" / "smoke_distill.yaml"
AUS = ["AU01", "AU04", "AU12", "AU25", "AU26"]

torch.set_num_threads(1)


def run(cmd: list[str], ok: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)
    if ok:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def distill_cmd(teacher: Path, *overrides: str, resume: str | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "distill", "--teacher", str(teacher), "--config", str(SMOKE_DISTILL), *overrides]
    return cmd + (["--resume", resume] if resume else [])


# -- EfficientNet-Lite ImageNet weights ---------------------------------------------------------

def _imagenet_input(path: Path, size: int) -> torch.Tensor:
    """Centre square, area-resized, RGB in [-1, 1] (the TF Lite convention)."""
    bgr = cv2.imread(str(path))
    assert bgr is not None, path
    h, w = bgr.shape[:2]
    s = min(h, w)
    sq = bgr[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s, ::-1]
    rgb = cv2.resize(np.ascontiguousarray(sq), (size, size), interpolation=cv2.INTER_AREA)
    return (torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0 - 0.5) / 0.5


@pytest.mark.parametrize("arch,size", [("efficientnet_lite0", 224), ("efficientnet_lite1", 240)])
def test_lite_imagenet_weights_classify_real_photos(arch, size, media):
    import timm
    from timm.data import ImageNetInfo

    from train.model.lite_weights import load_lite_imagenet

    torch.manual_seed(0)
    model = timm.create_model(arch, pretrained=False).eval()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    load_lite_imagenet(model, arch)
    loaded = model.state_dict()
    # num_batches_tracked are step counters (0 in the files and at init), not weights
    same = [k for k, v in loaded.items() if not k.endswith("num_batches_tracked") and torch.equal(v, init[k])]
    assert not same, f"tensors still at their random init: {same[:5]}"
    info = ImageNetInfo()  # class names timm ships (offline)
    with torch.no_grad():
        fox = model(_imagenet_input(media / "no_faces" / "fox-715588_640.jpg", size)).softmax(-1)[0]
        reptile = model(_imagenet_input(media / "no_faces" / "reptile-2042906_640.jpg", size)).softmax(-1)[0]
    assert info.index_to_description(int(fox.argmax())).startswith("red fox")
    top5 = [info.index_to_description(int(i)).lower() for i in reptile.topk(5).indices]
    assert any("lizard" in n or "chameleon" in n for n in top5), top5


def test_lite_mapping_fails_loudly_on_unmatched_or_misshaped_tensors():
    import timm

    from train.model.lite_weights import load_lite_imagenet

    with pytest.raises(ValueError, match="without weights"):  # Lite0 weights lack Lite1's extra blocks
        load_lite_imagenet(timm.create_model("efficientnet_lite1", pretrained=False), "efficientnet_lite0")
    with pytest.raises(ValueError, match="mis-shaped"):  # a 10-class head against the 1000-class weights
        load_lite_imagenet(timm.create_model("efficientnet_lite0", pretrained=False, num_classes=10),
                           "efficientnet_lite0")
    with pytest.raises(ValueError, match="no offline ImageNet weights"):
        load_lite_imagenet(timm.create_model("mobilenetv2_100", pretrained=False), "mobilenetv2_100")


def test_lite_teacher_backbone_loads_every_tensor_it_has():
    """A features_only Lite (the teacher's) takes the weights of the modules it keeps, none at init."""
    from train.model.backbones import create_backbone

    torch.manual_seed(0)
    init = create_backbone("efficientnet_lite2", pretrained=False).state_dict()
    loaded = create_backbone("efficientnet_lite2", pretrained=True).state_dict()
    assert set(init) == set(loaded)
    same = [k for k, v in loaded.items() if not k.endswith("num_batches_tracked") and torch.equal(v, init[k])]
    assert not same, same[:5]


def test_trimmed_lite0_student_is_small_and_keeps_its_imagenet_stem():
    import timm

    from train.model.lite_weights import load_lite_imagenet

    s = create_student({"arch": "efficientnet_lite0", "trim": True}, AUS, 64).eval()
    full = load_lite_imagenet(timm.create_model("efficientnet_lite0", num_classes=0), "efficientnet_lite0")
    assert torch.equal(s.net.backbone.conv_stem.weight, full.conv_stem.weight)
    assert len(s.net.backbone.blocks) == len(full.blocks) - 1 and s.net.head.in_features == 192
    assert sum(p.numel() for p in s.net.parameters()) < 2.5e6  # the INT8 TFLite stays under 3 MB
    assert s(torch.randn(2, 3, 64, 64)).shape == (2, len(AUS))
    with pytest.raises(ValueError, match="trim"):
        StudentConfig.from_dict({"arch": "mobilenetv2_100", "pretrained": False, "trim": True})


# -- students -----------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", STUDENT_ARCHS)
def test_students_by_name(arch):
    cfg = StudentConfig.from_dict({"arch": arch, "pretrained": False, "distill_dim": 8})
    s = create_student(cfg, AUS, 64).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits, tokens = s(x, with_tokens=True)
        assert logits.shape == (2, len(AUS)) and tokens.shape == (2, len(AUS), 8)
        assert s.forward_features(x).shape[0] == 2
        torch.testing.assert_close(s.au_logits(x), logits)
        from distill.task import StudentTask

        exported = StudentTask({"arch": arch, "pretrained": False}).export_module(s)
        assert not any("distill_proj" in k for k in exported.state_dict())  # the projector is training-only
        torch.testing.assert_close(exported(x), logits)
    acts = {type(m).__name__ for m in s.modules()}
    assert not acts & {"Hardswish", "SqueezeExcite", "SEModule", "SiLU", "GELU"}, acts


def test_student_config_rejects_bad_values():
    with pytest.raises(ValueError, match="not a student"):
        StudentConfig.from_dict({"arch": "resnet50"})
    with pytest.raises(ValueError, match="unknown StudentConfig key 'w_sofft'"):
        StudentConfig.from_dict({"arch": "mobilenetv2_100", "pretrained": False, "w_sofft": 1})
    with pytest.raises(ValueError, match="no offline ImageNet weights"):
        StudentConfig.from_dict({"arch": "mobilenetv2_100", "pretrained": True})


def test_student_config_takes_quoted_numbers_and_refuses_words_in_one_line():
    """The one config loader: ``temperature: "2"`` (YAML or key=value) is the number 2, as for the
    teacher's and the run's keys; a word is one line naming the key, never a TypeError."""
    from train.config import TrainConfig

    cfg = TrainConfig.from_yaml(SMOKE_DISTILL, ['model.temperature="2"', "model.pretrained=no"])
    student = StudentConfig.from_dict(cfg.model)
    assert student.temperature == 2.0 and isinstance(student.temperature, float) and student.pretrained is False
    with pytest.raises(ValueError, match=r"^model\.temperature: expected float, got 'two'$"):
        StudentConfig.from_dict({"temperature": "two"})
    with pytest.raises(ValueError, match="model.temperature must be > 0"):
        StudentConfig.from_dict({"temperature": "0"})


# -- loss terms ---------------------------------------------------------------------------------

def test_soft_bce_matches_the_formula_and_is_minimal_at_the_teacher():
    zs, zt, t = torch.tensor([[0.3, -1.2]]), torch.tensor([[2.0, 0.5]]), 2.0
    p, q = 1 / (1 + np.exp(-zt.numpy() / t)), 1 / (1 + np.exp(-zs.numpy() / t))
    expected = -(p * np.log(q) + (1 - p) * np.log(1 - q)).mean() * t * t
    assert float(soft_bce(zs, zt, t)) == pytest.approx(expected, rel=1e-5)
    z = zt.clone().requires_grad_(True)
    soft_bce(z, zt, t).backward()
    assert z.grad.abs().max() < 1e-6  # the student's optimum is the teacher's logits


def test_pseudo_labels_only_where_the_label_is_unknown_and_confident():
    zs = torch.zeros(1, 3, requires_grad=True)
    zt = torch.tensor([[4.0, -4.0, 0.1]])  # confident +, confident -, unsure
    pseudo_label_bce(zs, zt, torch.ones(1, 3, dtype=torch.bool)).backward()
    assert zs.grad.abs().max() == 0  # everything labeled: nothing to pseudo-label
    zs.grad = None
    loss = pseudo_label_bce(zs, zt, torch.zeros(1, 3, dtype=torch.bool), confidence=0.7)
    loss.backward()
    assert loss.item() == pytest.approx(np.log(2), rel=1e-5)  # BCE at logit 0 on the two used entries
    assert zs.grad[0, 0] < 0 < zs.grad[0, 1] and zs.grad[0, 2] == 0


def test_feature_and_relation_terms():
    t = torch.randn(2, 5, 8)
    assert float(feature_distill(t * 3 + 1, t)) < 1e-6  # normalised: scale and offset free
    assert float(relation_distill(t * 2, t)) < 1e-10
    r = relation_matrix(t)
    assert r.shape == (2, 5, 5) and torch.allclose(torch.diagonal(r, dim1=1, dim2=2), torch.ones(2, 5), atol=1e-5)
    assert float(relation_distill(torch.randn(2, 5, 8), t)) > 0.01
    with pytest.raises(ValueError, match="distill_dim"):
        feature_distill(torch.randn(2, 5, 4), t)


def _untrained_teacher(path: Path, input_size: int = 64) -> Path:
    """A teacher checkpoint as the engine writes it (smoke model, untrained): fast and real."""
    import yaml

    from train import checkpoint
    from train.task import TeacherTask

    model_cfg = yaml.safe_load(SMOKE.read_text())["model"]
    torch.manual_seed(1)
    task = TeacherTask()
    model = task.build_model(model_cfg, AUS, input_size)
    checkpoint.save(path, {**task.checkpoint_meta(model_cfg, AUS, input_size), "model": model.state_dict()})
    return path


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory) -> Path:
    return _untrained_teacher(tmp_path_factory.mktemp("teacher") / "teacher.pt")


@pytest.mark.parametrize("term", ["hard", "soft", "pseudo", "feat", "rel"])
def test_every_term_reaches_the_student(term, teacher_ckpt):
    from distill.task import StudentTask

    weights = {f"w_{k}": float(k == term) for k in ("hard", "soft", "pseudo", "feat", "rel")}
    # distill_dim (the projector's width) comes from the teacher when feat or rel is on
    task = StudentTask({"arch": "mobilenetv2_100", "pretrained": False, **weights}, str(teacher_ckpt))
    assert task.cfg.distill_dim == (64 if term in ("feat", "rel") else 0)  # the smoke teacher's dim
    student = task.build_model(task.cfg.to_dict(), AUS, 64).train()
    objective = task.build_objective(student, torch.ones(len(AUS)), torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8, generator=g)
    from train.model.input_norm import normalize

    batch = {"image_u8": u8, "image": normalize(u8, task.mean, task.std),
             "labels": (torch.rand(4, len(AUS), generator=g) > 0.5).float(),
             "mask": torch.tensor([[True] * len(AUS)] * 2 + [[False] * len(AUS)] * 2)}
    if term == "pseudo":  # a confident teacher somewhere, whatever its random init
        objective.cfg.pseudo_confidence = 0.5
    loss, terms = objective(batch)
    assert set(terms) == {term} and loss.item() > 0
    loss.backward()
    first = next(student.net.backbone.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0, f"{term} does not reach the backbone"
    assert all(p.grad is None for p in objective.teacher.parameters())  # frozen teacher
    assert not objective.teacher.training


# -- python -m distill ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_data(data_dir, tmp_path_factory) -> Path:
    """A smaller synthetic cache than the smoke preset's (same recipe)."""
    from train.config import TrainConfig
    from train.data.build import build_from_spec

    cfg = TrainConfig.from_yaml(SMOKE_DISTILL)
    out = tmp_path_factory.mktemp("distill") / "data"
    build_from_spec({**cfg.build, "n": 120, "faces": str(data_dir / "london" / "neutral")}, out)
    return out


COMMON = ["epochs=1", "batch_size=8", "warmup_steps=100"]


@pytest.mark.slow
def test_distill_end_to_end_reload_and_resume(small_data, teacher_ckpt, tmp_path):
    from train import checkpoint
    from train.task import task_for_checkpoint

    teacher = tmp_path / "teacher.pt"
    shutil.copy(teacher_ckpt, teacher)
    full, cut = tmp_path / "full", tmp_path / "cut"
    proc = run(distill_cmd(teacher, f"data={small_data}", f"run_dir={full}", "max_steps=4", *COMMON))
    assert "teacher" in proc.stdout
    m = json.loads((full / "metrics.json").read_text())
    assert {"f1", "auc", "thresholds", "threshold_rules", "loss_terms", "teacher"} <= set(m)
    assert set(m["threshold_rules"]) == set(AUS)
    assert {"hard", "soft", "feat", "rel"} <= set(m["loss_terms"])
    for key in ("f1", "auc"):
        assert set(m["teacher"][key]) == set(AUS) | {"mean"}
    assert m["f1"] != m["teacher"]["f1"]  # two models, not one reported twice
    cal = m["calibration"]  # per-AU, fitted on val, in the card's form (train.calibration)
    assert set(cal["aus"]) == set(AUS) and cal["fitted_on"].startswith("validation: ")
    for a in AUS:  # each AU's threshold maps to 0.5: a * logit(t) + b = 0
        t, ab = m["thresholds"][a], cal["aus"][a]
        assert ab["a"] > 0 and abs(ab["a"] * np.log(t / (1 - t)) + ab["b"]) < 1e-3 * ab["a"]
    assert set(cal["validation"]["ece"]["after"]) == set(AUS) | {"mean"}

    # exact resume: stopped after step 2, continued to 4, the same losses at steps 3 and 4
    run(distill_cmd(teacher, f"data={small_data}", f"run_dir={cut}", "max_steps=2", *COMMON))
    run(distill_cmd(teacher, f"data={small_data}", f"run_dir={cut}", "max_steps=4", *COMMON, resume="auto"))

    def losses(d: Path) -> dict[int, float]:
        rows = [json.loads(x) for x in (d / "steps.jsonl").read_text().splitlines()]
        return {r["step"]: r["loss"] for r in rows}

    lf, lc = losses(full), losses(cut)
    assert sorted(lf) == sorted(lc) == [1, 2, 3, 4]
    for s in (3, 4):
        assert lc[s] == pytest.approx(lf[s], rel=1e-5, abs=1e-6)

    # the student reloads through task_for_checkpoint without its teacher file, and train.eval on
    # it reproduces the run's own test F1 (same thresholds, same normalisation)
    teacher.unlink()
    ck = checkpoint.load(full / "best.pt")
    assert ck["task"] == "student" and ck["teacher_checkpoint"] == str(teacher)
    assert json.loads(ck["model_config"])["arch"] == "efficientnet_lite0" and ck["mean"] == [0.5, 0.5, 0.5]
    task = task_for_checkpoint(ck)
    model = task.model_from_checkpoint(ck).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(task.export_module(model)(x), model.au_logits(x))
    out = tmp_path / "eval.json"
    run([sys.executable, "-m", "train.eval", "--checkpoint", str(full / "best.pt"), "--data", str(small_data),
         "--split", "test", "--out", str(out)])
    assert json.loads(out.read_text())["f1"] == m["f1"]
    # the card's recipe is the command that made it: teacher, config, data and run dir
    from export.cards import recipe_command
    from export.model import load_export_model

    recipe = recipe_command(load_export_model(full / "best.pt"))
    assert recipe.startswith(f"python -m distill --teacher {teacher} --config configs/"), recipe
    # ... with the overrides that made it differ from its preset (epochs 5, batch 16, warm-up 10 there)
    assert recipe.endswith(" epochs=1 batch_size=8 warmup_steps=100 max_steps=4"
                           f" data={small_data} run_dir={full}"), recipe


def test_distill_cli_errors_are_one_line(teacher_ckpt, tmp_path):
    cases = [
        ([sys.executable, "-m", "distill", "--teacher", str(tmp_path / "none.pt"), "--config", str(SMOKE_DISTILL)],
         "teacher checkpoint"),
        (distill_cmd(teacher_ckpt, "model.arch=resnet50"), "not a student"),
        (distill_cmd(teacher_ckpt, "model.w_sofft=1"), "unknown StudentConfig key"),
        (distill_cmd(teacher_ckpt, "epochz=1"), "unknown TrainConfig key"),
    ]
    for cmd, needle in cases:
        proc = run(cmd, ok=False)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert proc.stderr.strip().count("\n") == 0 and needle in proc.stderr, proc.stderr


def test_distill_refuses_validation_identities_its_teacher_trained_on(small_data, teacher_ckpt, tmp_path):
    """A student scored on identities its teacher trained on reads the teacher's memory: distill
    names the split to keep instead of reporting a flattered F1."""
    from train import checkpoint
    from train.config import TrainConfig
    from train.data.cache import CacheData
    from train.data.policy import split_indices

    taught = TrainConfig.from_yaml(SMOKE_DISTILL, [f"data={small_data}", "seed=0"])
    state = checkpoint.load(teacher_ckpt)
    teacher = tmp_path / "teacher.pt"
    checkpoint.save(teacher, {**state, "config": json.dumps(taught.to_dict())})
    cache = CacheData(small_data)
    t_train = set(split_indices(cache, taught)["train"].tolist())
    s_val = split_indices(cache, TrainConfig.from_yaml(SMOKE_DISTILL, [f"data={small_data}", "seed=1"]))["val"]
    assert t_train & set(s_val.tolist()), "precondition: seed 1 validates on some of seed 0's training identities"

    proc = run(distill_cmd(teacher, f"data={small_data}", f"run_dir={tmp_path / 'bad'}", "seed=1", *COMMON), ok=False)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr[-2000:]
    assert "trained its teacher" in proc.stderr and "split_seed=0" in proc.stderr, proc.stderr
    assert not (tmp_path / "bad" / "best.pt").exists()
    # the named fix runs: another seed for the student's training, the teacher's split kept
    run(distill_cmd(teacher, f"data={small_data}", f"run_dir={tmp_path / 'ok'}", "seed=1", "split_seed=0",
                    "max_steps=1", *COMMON))
    assert (tmp_path / "ok" / "best.pt").is_file()


def test_unlabeled_frames_join_with_unknown_labels(small_data, teacher_ckpt):
    """An extra cache mixed in by config: its frames have every AU unknown, so only the teacher
    (pseudo/soft terms) teaches on them; draws are seeded and resumable."""
    from distill.objective import UnlabeledFrames
    from distill.task import StudentTask
    from train.model.input_norm import normalize

    task = StudentTask({"arch": "mobilenetv2_100", "pretrained": False, "w_hard": 0, "w_soft": 0, "w_feat": 0,
                        "w_rel": 0, "w_pseudo": 1, "pseudo_confidence": 0.5, "unlabeled": str(small_data),
                        "unlabeled_batch": 3}, str(teacher_ckpt))
    student = task.build_model(task.cfg.to_dict(), AUS, 64).train()
    objective = task.build_objective(student, torch.ones(len(AUS)), torch.Generator().manual_seed(0))
    u8 = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    batch = {"image_u8": u8, "image": normalize(u8, task.mean, task.std), "labels": torch.zeros(2, len(AUS)),
             "mask": torch.ones(2, len(AUS), dtype=torch.bool)}  # all labeled: pseudo only from the extra frames
    loss, terms = objective(batch)
    assert set(terms) == {"pseudo"} and loss.item() > 0 and objective.state_dict() == {"unlabeled_draws": 1}
    loss.backward()
    assert next(student.net.backbone.parameters()).grad.abs().sum() > 0
    a, b = UnlabeledFrames(str(small_data), 64, 3, seed=0), UnlabeledFrames(str(small_data), 64, 3, seed=0)
    first = a.next()
    assert first.shape == (3, 3, 64, 64) and first.dtype == torch.uint8
    b.draws = 1  # a resumed run continues with draw 1, not draw 0
    assert not torch.equal(b.next(), first) and torch.equal(UnlabeledFrames(str(small_data), 64, 3).next(), first)


def test_teacher_is_frozen_and_must_cover_the_run_aus(teacher_ckpt):
    from distill.teacher import FrozenTeacher, load_teacher_checkpoint

    ck = load_teacher_checkpoint(teacher_ckpt)
    with pytest.raises(ValueError, match="AU06"):
        FrozenTeacher(ck, ["AU01", "AU06"])
    t = FrozenTeacher(ck, ["AU12", "AU01"]).train()  # train() keeps it in eval mode
    assert not t.training and not any(p.requires_grad for p in t.parameters())
    u8 = torch.randint(0, 256, (2, 3, 96, 96), dtype=torch.uint8)  # a student at 96 px: resized to 64
    logits, tokens = t(u8)
    full, _ = FrozenTeacher(ck, AUS)(u8)
    assert logits.shape == (2, 2) and tokens.shape == (2, 2, 64)
    torch.testing.assert_close(logits, full[:, [2, 0]])  # the run's AU order, not the teacher's
