"""The RTATL teacher: config, backbone registry, AU anchors, heads, export module and ONNX export."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from runtime.align import TEMPLATES
from runtime.aus import CATALOG, DEFAULT_MODEL_AUS, au_name
from train.model import BACKBONES, TeacherConfig, create_backbone, create_teacher
from train.model.au_centres import (
    canonical_au_centres,
    canonical_au_points,
    mesh_au_points,
)
from train.model.aux_heads import roi_mask

TINY = [n for n, s in BACKBONES.items() if s.test_only]
AUS = tuple(au_name(n) for n in DEFAULT_MODEL_AUS)
SIZE = 64


def tiny_teacher(backbone: str = "resnet10t", **kw):
    opts = {"backbone": backbone, "pretrained": False, "input_size": SIZE, "dim": 32, "relation_heads": 2,
            "relation_depth": 1, "aunce_dim": 16, "mask_ratio": 0.5, "mask_patch": 0.2}
    if backbone.startswith("mobilenetv3"):
        opts["mal_lookahead"] = "au_branch"
    torch.manual_seed(0)
    return create_teacher(**{**opts, **kw})


def make_batch(b: int = 4, size: int = SIZE, seed: int = 0, n_aus: int = len(AUS)) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(b, 3, size, size, generator=g),
            "image2": torch.randn(b, 3, size, size, generator=g),
            "labels": (torch.rand(b, n_aus, generator=g) < 0.4).float(),
            "mask": torch.rand(b, n_aus, generator=g) < 0.85,
            "landmarks": torch.rand(b, 478, 2, generator=g) * size,
            "flow": torch.randn(b, 2, size // 4, size // 4, generator=g),
            "flow_valid": torch.tensor([True, False] * (b // 2)),
            "index": torch.arange(b)}


# --- config -----------------------------------------------------------------------------------

def test_config_rejects_unknown_keys_with_a_hint():
    with pytest.raises(ValueError, match=r"unknown TeacherConfig key 'backbon'.*did you mean 'backbone'"):
        TeacherConfig.from_dict({"backbon": "resnet50"})


@pytest.mark.parametrize("raw, match", [
    ({"pretrained": "maybe"}, "expected a boolean"),
    ({"dim": 1.5}, "expected an integer"),
    ({"lambda_flow": -1}, "lambda_flow must be >= 0"),
    ({"aus": ["AU12", "smile"]}, "not an AU name"),
    ({"aus": ["12"]}, "'AU12'-style"),
    ({"mal_lookahead": "half"}, "mal_lookahead"),
    ({"dim": 30, "relation_heads": 4}, "divisible"),
    ({"aunce_p_similar": 0.7, "aunce_p_mean": 0.6}, "aunce_p_similar"),
])
def test_config_rejects_bad_values(raw, match):
    with pytest.raises(ValueError, match=match):
        TeacherConfig.from_dict(raw)


def test_config_round_trip_and_coercion():
    cfg = TeacherConfig.from_dict({"dim": "64", "aunce": "true", "lambda_ot": 1, "aus": "AU01,AU12"})
    assert cfg.dim == 64 and cfg.aunce is True and cfg.lambda_ot == 1.0 and cfg.aus == ("AU01", "AU12")
    assert TeacherConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.terms() == ("au", "inpaint", "flow", "aunce")


def test_unknown_backbone_names_the_closest():
    with pytest.raises(ValueError, match="did you mean 'resnet50'"):
        create_backbone("resnet5O")


# --- AU anchors ---------------------------------------------------------------------------------

def test_canonical_points_follow_the_template():
    aus = list(CATALOG)
    pts = canonical_au_points(aus)
    assert pts.shape == (len(aus), 2, 2) and ((pts > 0) & (pts < 1)).all()
    np.testing.assert_allclose(pts[:, 0, 0] + pts[:, 1, 0], 1.0, atol=1e-6)  # mirror-symmetric
    t = TEMPLATES["default"]
    np.testing.assert_allclose(pts[aus.index(12)], t[3:5], atol=1e-6)  # AU12 = the mouth corners
    brow, chin = canonical_au_centres(["AU01", "AU17"])
    assert brow[1] < t[0, 1] < t[3, 1] < chin[1]  # brows above the eyes, chin below the mouth
    small = canonical_au_points(aus, scale=0.8)  # a smaller face: anchors move towards the centre
    np.testing.assert_allclose(small - 0.5, (pts - 0.5) * 0.8, atol=1e-6)


def test_mesh_points_use_the_catalog_and_fall_back():
    lm = torch.rand(2, 478, 2) * 100
    lm[1, CATALOG[12].centre_mesh[0]] = -1.0  # the data layer's "missing"
    fallback = torch.full((2, 2, 2), 7.0)
    pts = mesh_au_points(lm, ["AU12", "AU17"], fallback=fallback)
    assert pts.shape == (2, 2, 2, 2)
    torch.testing.assert_close(pts[0, 0], lm[0, list(CATALOG[12].centre_mesh)])
    torch.testing.assert_close(pts[0, 1], lm[0, [199, 199]])
    torch.testing.assert_close(pts[1, 0], fallback[0])  # one missing point: the whole AU falls back
    with pytest.raises(ValueError, match="468"):
        mesh_au_points(torch.zeros(1, 68, 2), ["AU12"])


def test_roi_mask_covers_chosen_anchors_only():
    pts = torch.tensor([[[[16.0, 16.0], [48.0, 16.0]], [[32.0, 50.0], [32.0, 50.0]]]]).repeat(3, 1, 1, 1)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    m = roi_mask(pts, (64, 64), patch=0.125, ratio=0.5, generator=g1)
    assert m.shape == (3, 1, 64, 64)
    assert torch.equal(m, roi_mask(pts, (64, 64), patch=0.125, ratio=0.5, generator=g2))
    for i in range(3):
        area = int(m[i].sum())
        assert area in (2 * 64, 64, 3 * 64)  # 8x8 squares: one AU with two sides, the other, or both
        assert m[i, 0, 0, 0] == 0 and m[i, 0, 63, 63] == 0
    full = roi_mask(pts, (64, 64), patch=0.125, ratio=1.0)
    assert int(full[0].sum()) == 3 * 64 and full[0, 0, 16, 16] == 1 and full[0, 0, 50, 32] == 1


# --- teacher ------------------------------------------------------------------------------------

@pytest.mark.parametrize("backbone", TINY)
def test_teacher_forward_backward_shapes(backbone):
    model = tiny_teacher(backbone, aunce=True, ot=True, mal=True, intensity_head=True).train()
    batch = make_batch()
    out = model(batch, generator=torch.Generator().manual_seed(0))
    b, a = 4, len(AUS)
    assert out["logits"].shape == (b, a) and out["tokens"].shape == (b, a, 32)
    assert out["flow"].shape == (b, 2, SIZE // 4, SIZE // 4)
    assert out["inpaint"].shape == (b, 3, SIZE, SIZE) and out["inpaint_mask"].shape == (b, 1, SIZE, SIZE)
    assert out["embed"].shape == out["embed2"].shape == (b, a, 16)
    assert out["tokens2"].shape == (b, a, 32) and out["expression_logits"].shape == (b, 7)
    assert out["intensity"].shape == (b, a) and (out["intensity"] >= 0).all()
    loss = sum(v.float().mean() for k, v in out.items() if k != "inpaint_mask")
    loss.backward()
    first = next(m for m in model.net.backbone.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0
    model.eval()
    assert set(model(batch)) == {"logits", "tokens", "intensity"}  # eval: no auxiliary heads


def test_timm_style_methods_agree():
    net = tiny_teacher().eval().export_module()
    x = make_batch()["image"]
    with torch.no_grad():
        inter = net.forward_intermediates(x)
        tokens = net.forward_features(x)
        torch.testing.assert_close(tokens, inter["tokens"])
        torch.testing.assert_close(net.forward_head(tokens), net(x))
        assert net.forward_head(tokens, pre_logits=True) is tokens
    assert [f.shape[-1] for f in inter["features"]] == [SIZE // 8, SIZE // 16, SIZE // 32]
    assert inter["attn"].shape == (4, len(AUS), SIZE // 8, SIZE // 8)
    torch.testing.assert_close(inter["attn"].sum(dim=(-2, -1)), torch.ones(4, len(AUS)))


def test_attention_prior_peaks_at_the_canonical_anchor():
    net = create_teacher(backbone="test_convnext", pretrained=False, input_size=224, dim=32,
                         relation_heads=2, aus=("AU12", "AU17")).net
    prior = net.au_branch.attention.prior.detach()  # (A, 28, 28)
    grid = prior.shape[-1]
    y, x = divmod(int(prior[1].argmax()), grid)  # AU17: one anchor, the chin
    cx, cy = canonical_au_centres(["AU17"])[0]
    assert abs((x + 0.5) / grid - cx) < 1 / grid and abs((y + 0.5) / grid - cy) < 1 / grid


def test_export_module_has_no_auxiliary_heads():
    model = tiny_teacher(aunce=True, ot=True, mal=True)
    net = model.export_module()
    names = {type(m).__name__ for m in net.modules()}
    assert not names & {"InpaintDecoder", "FlowDecoder", "ExpressionHead", "TokenProjector", "WeightNet"}
    keys = set(net.state_dict())
    assert all(k.startswith(("backbone.", "au_branch.")) for k in keys)
    teacher_keys = set(model.state_dict())
    assert {f"net.{k}" for k in keys} <= teacher_keys
    heads = ("inpaint_head.", "flow_head.", "expr_head.", "aunce_head.", "mal_weight.")
    assert {k.split(".")[0] + "." for k in teacher_keys if not k.startswith("net.")} == set(heads)


def test_export_module_matches_teacher_logits():
    model = tiny_teacher(aunce=True, mal=True).eval()
    batch = make_batch()
    with torch.no_grad():
        full = model(batch)["logits"]
        exported = model.export_module()(batch["image"])
    torch.testing.assert_close(exported, full)


def test_onnx_export_runs_and_matches():
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    net = tiny_teacher().eval().export_module()
    f = io.BytesIO()
    torch.onnx.export(net, (torch.randn(2, 3, SIZE, SIZE),), f, dynamo=False, opset_version=17,
                      input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    onnx.checker.check_model(onnx.load_from_string(f.getvalue()))
    sess = ort.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, SIZE, SIZE)
    with torch.no_grad():
        ref = net(x).numpy()
    got = sess.run(None, {"image": x.numpy()})[0]
    assert got.shape == (3, len(AUS))
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_inpainting_pass_leaves_batchnorm_running_statistics_alone():
    """The masked images feed BatchNorm's batch statistics, never its running ones: a training
    forward with inpainting updates them exactly as one without the auxiliary heads does."""
    a = tiny_teacher(inpaint=True, flow=False).train()
    b = tiny_teacher(inpaint=True, flow=False).train()
    batch = make_batch(4)
    a(batch, generator=torch.Generator().manual_seed(0))
    b(batch, aux=False)
    bn_a = [m for m in a.net.modules() if isinstance(m, torch.nn.BatchNorm2d)]  # the exported detector
    bn_b = [m for m in b.net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bn_a and all(m.track_running_stats for m in bn_a)
    for x, y in zip(bn_a, bn_b):
        assert torch.equal(x.running_mean, y.running_mean) and torch.equal(x.running_var, y.running_var)
        assert int(x.num_batches_tracked) == int(y.num_batches_tracked) == 1

