"""``train.checkpoint.Checkpoint``: the one reading of a checkpoint's model, for checkpoints of every
age (no ``task``, no ``mean``/``std``, no run ``config``), teachers and students alike."""
from __future__ import annotations

import json

import pytest
import torch

from train import checkpoint
from train.checkpoint import Checkpoint
from train.task import StudentModelTask, TeacherTask, task_for_checkpoint

AUS = ["AU01", "AU12"]
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
LITE = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
TEACHER = {"backbone": "test_convnext", "dim": 32, "relation_depth": 1, "relation_heads": 2, "inpaint": False,
           "flow": False}

torch.set_num_threads(1)


def _saved(tmp_path, task, model_cfg: dict, size: int, drop: tuple[str, ...] = (), **extra) -> tuple:
    """A checkpoint as the engine writes it, with the keys of ``drop`` removed (an older writer)."""
    torch.manual_seed(0)
    model = task.build_model(model_cfg, AUS, size)
    state = {"model": model.state_dict(), **task.checkpoint_meta(model_cfg, AUS, size), **extra}
    for key in drop:
        state.pop(key)
    path = tmp_path / "best.pt"
    checkpoint.save(path, state)
    return path, model


@pytest.mark.parametrize("drop", [(), ("mean", "std"), ("task", "mean", "std")])
def test_teacher_checkpoints_of_every_age_read_the_same(tmp_path, drop):
    path, model = _saved(tmp_path, TeacherTask(), TEACHER, 64, drop)
    ck = Checkpoint.read(path)
    assert (ck.task, ck.arch, ck.aus, ck.input_size) == ("teacher", "test_convnext", tuple(AUS), 64)
    assert (ck.mean, ck.std) == IMAGENET and ck.train_config == {} and ck.path == path
    assert not ck.pretrained and ck.attribution == ""
    rebuilt = task_for_checkpoint(ck).model_from_checkpoint(ck).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.au_logits(x), model.eval().au_logits(x))


def test_a_lite_teacher_without_mean_gets_the_lite_normalisation(tmp_path):
    cfg = {**TEACHER, "backbone": "efficientnet_lite0", "pretrained": True}
    path, _ = _saved(tmp_path, TeacherTask(), cfg, 64, ("mean", "std"), config=json.dumps({"name": "x"}))
    ck = Checkpoint.read(path)
    assert (ck.mean, ck.std) == LITE and ck.pretrained and "EfficientNet-Lite" in ck.attribution
    assert ck.train_config == {"name": "x"}


@pytest.mark.parametrize("arch, norm", [("mobilenetv2_100", IMAGENET), ("efficientnet_lite0", LITE)])
def test_student_checkpoints_read_their_registry_entry(tmp_path, arch, norm):
    cfg = {"arch": arch, "pretrained": False, "distill_dim": 4, "w_soft": 1.0}  # distillation keys ride along
    path, model = _saved(tmp_path, StudentModelTask(), cfg, 64, ("mean", "std"), teacher_checkpoint="t.pt")
    ck = Checkpoint.read(path)
    assert (ck.task, ck.arch, ck.mean, ck.std, ck.teacher_checkpoint) == ("student", arch, *norm, "t.pt")
    task = task_for_checkpoint(ck)
    rebuilt = task.model_from_checkpoint(ck).eval()
    assert rebuilt.distill_proj is not None  # the projector's weights load too
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(task.export_module(rebuilt)(x), model.eval().au_logits(x))


def test_what_is_not_a_model_checkpoint_is_one_line(tmp_path):
    path = tmp_path / "x.pt"
    checkpoint.save(path, {"model": {}, "aus": AUS})
    with pytest.raises(ValueError, match=r"lacks \['input_size', 'model_config'\]"):
        Checkpoint.read(path)
    checkpoint.save(path, {"model": {}, "aus": AUS, "input_size": 64, "model_config": "{}", "task": "critic"})
    with pytest.raises(ValueError, match="unknown task 'critic'"):
        Checkpoint.read(path)
    with pytest.raises(FileNotFoundError, match="none.pt"):
        Checkpoint.read(tmp_path / "none.pt")
