"""RTATL losses: masking, gradients into the backbone, AUNCE/OT sign and determinism, MAL meta step."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from runtime.aus import DEFAULT_MODEL_AUS, au_name
from train.losses import (
    TeacherObjective,
    aunce_loss,
    expression_pseudo_labels,
    flow_epe,
    mal_loss,
    masked_bce,
    masked_l1,
    ot_relation_loss,
    total_loss,
)
from train.losses.mal import (
    EXPRESSIONS,
    MetaAuxLearner,
    expression_targets,
    mal_weights,
)
from train.model import create_teacher

AUS = tuple(au_name(n) for n in DEFAULT_MODEL_AUS)
SIZE = 64


def tiny_teacher(backbone: str = "resnet10t", **kw):
    torch.manual_seed(0)
    opts = {"backbone": backbone, "pretrained": False, "input_size": SIZE, "dim": 32, "relation_heads": 2,
            "relation_depth": 1, "aunce_dim": 16, "mask_ratio": 0.5, "mask_patch": 0.2, "aunce": True,
            "ot": True, "mal": True}
    return create_teacher(**{**opts, **kw})


def make_batch(b: int = 6, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    labels = (torch.rand(b, len(AUS), generator=g) < 0.3).float()
    labels[0] = 0.0  # neutral
    labels[1, [AUS.index("AU06"), AUS.index("AU12")]] = 1.0  # happiness, nothing else
    labels[1, [i for i, a in enumerate(AUS) if a not in ("AU06", "AU12")]] = 0.0
    return {"image": torch.randn(b, 3, SIZE, SIZE, generator=g),
            "image2": torch.randn(b, 3, SIZE, SIZE, generator=g),
            "labels": labels, "mask": torch.rand(b, len(AUS), generator=g) < 0.9,
            "landmarks": torch.rand(b, 478, 2, generator=g) * SIZE,
            "flow": torch.randn(b, 2, SIZE // 4, SIZE // 4, generator=g),
            "flow_valid": torch.tensor([True, False, True] * (b // 3)),
            "expression": torch.tensor([-1, -1, 3] + [-1] * (b - 3))}


# --- BCE, pixel losses ----------------------------------------------------------------------------

def test_masked_bce_ignores_unknown_labels():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(5, 4, generator=g, requires_grad=True)
    labels = (torch.rand(5, 4, generator=g) < 0.5).float()
    mask = torch.rand(5, 4, generator=g) < 0.6
    pw = torch.tensor([1.0, 2.0, 3.0, 0.5])
    loss1 = masked_bce(logits, labels, mask, pw)
    (g1,) = torch.autograd.grad(loss1, logits)
    other = torch.where(mask, labels, torch.full_like(labels, float("nan")))  # masked values changed
    loss2 = masked_bce(logits, other, mask, pw)
    (g2,) = torch.autograd.grad(loss2, logits)
    assert torch.equal(loss1, loss2) and torch.equal(g1, g2)
    assert (g1[~mask] == 0).all()
    ref = F.binary_cross_entropy_with_logits(logits[mask], labels[mask], pos_weight=pw.expand(5, 4)[mask])
    torch.testing.assert_close(loss1, ref)  # normalised by the number of known entries
    assert masked_bce(logits, labels, torch.zeros_like(mask)).item() == 0.0


def test_pixel_losses_score_only_what_they_should():
    pred, target = torch.zeros(2, 3, 8, 8), torch.ones(2, 3, 8, 8)
    mask = torch.zeros(2, 1, 8, 8)
    mask[0, 0, :2, :2] = 1
    target[:, :, 4:, 4:] = 100.0  # unmasked pixels: ignored
    assert masked_l1(pred, target, mask).item() == pytest.approx(1.0)
    flow_p = torch.zeros(3, 2, 4, 4)
    flow_t = torch.zeros(3, 2, 4, 4)
    flow_t[0, 0] = 3.0
    flow_t[0, 1] = 4.0
    flow_t[1] = float("nan")  # an invalid sample may hold anything
    valid = torch.tensor([True, False, True])
    assert flow_epe(flow_p, flow_t, valid).item() == pytest.approx(2.5, abs=1e-3)  # (5 + 0) / 2
    p = flow_p.clone().requires_grad_()
    flow_epe(p, flow_t, valid).backward()
    assert torch.isfinite(p.grad).all() and (p.grad[1] == 0).all()
    assert flow_epe(flow_p, flow_t, torch.zeros(3, dtype=torch.bool)).item() == 0.0


# --- gradients of every term reach the backbone ----------------------------------------------------

def test_every_term_reaches_the_first_conv():
    model = tiny_teacher().train()
    batch = make_batch()
    g = torch.Generator().manual_seed(0)
    out = model(batch, generator=g)
    targets = expression_targets(batch, AUS)
    assert (targets >= 0).any()
    terms = {
        "au": masked_bce(out["logits"], batch["labels"], batch["mask"]),
        "inpaint": masked_l1(out["inpaint"], batch["image"], out["inpaint_mask"]),
        "flow": flow_epe(out["flow"], batch["flow"], batch["flow_valid"]),
        "aunce": aunce_loss(out["embed"], batch["labels"], batch["mask"], out["embed2"], generator=g),
        "ot": ot_relation_loss(out["tokens"], batch["labels"], batch["mask"], out["tokens2"]),
        "mal": mal_loss(out["expression_logits"], targets,
                        mal_weights(model.mal_weight, out["expression_logits"], targets).detach()),
    }
    first = next(m for m in model.net.backbone.modules() if isinstance(m, torch.nn.Conv2d)).weight
    for name, value in terms.items():
        assert torch.isfinite(value), name
        (grad,) = torch.autograd.grad(value, first, retain_graph=True)
        assert grad.abs().sum() > 0, f"{name} does not reach the backbone"


def test_total_loss_is_the_weighted_sum_of_the_terms_that_are_on():
    model = tiny_teacher(lambda_flow=0.25, lambda_ot=2.0).train()
    batch = make_batch()
    out = model(batch, generator=torch.Generator().manual_seed(0))
    total, terms = total_loss(out, batch, model.cfg, generator=torch.Generator().manual_seed(0),
                              mal_weight_net=model.mal_weight)
    assert tuple(terms) == model.cfg.terms() == ("au", "inpaint", "flow", "aunce", "ot", "mal")
    cfg = model.cfg
    expect = (terms["au"] + cfg.lambda_inpaint * terms["inpaint"] + 0.25 * terms["flow"]
              + cfg.lambda_aunce * terms["aunce"] + 2.0 * terms["ot"] + cfg.lambda_mal * terms["mal"])
    assert total.item() == pytest.approx(expect, rel=1e-5)
    assert all(isinstance(v, float) for v in terms.values())
    plain = tiny_teacher(inpaint=False, flow=False, aunce=False, ot=False, mal=False).train()
    _, t = total_loss(plain(batch), batch, plain.cfg)
    assert tuple(t) == ("au",)
    with pytest.raises(ValueError, match="flow"):
        total_loss(out, {k: v for k, v in batch.items() if k != "flow"}, cfg)


# --- AUNCE ---------------------------------------------------------------------------------------

def _features(labels: torch.Tensor, consistent: bool, seed: int, dim: int = 16) -> torch.Tensor:
    """Per-AU embeddings: label prototypes plus noise (consistent) or pure noise."""
    g = torch.Generator().manual_seed(seed)
    b, a = labels.shape
    noise = torch.randn(b, a, dim, generator=g)
    if not consistent:
        return F.normalize(noise, dim=-1)
    protos = torch.randn(a, 2, dim, generator=torch.Generator().manual_seed(99))
    z = protos[torch.arange(a)[None].expand(b, a), labels.long()]
    return F.normalize(z + 0.1 * noise, dim=-1)


def _labels(b: int = 16, a: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, a, generator=g) < 0.5).float(), torch.rand(b, a, generator=g) < 0.9


def test_aunce_prefers_label_consistent_features():
    labels, mask = _labels()
    for seed in range(3):
        lo = aunce_loss(_features(labels, True, seed), labels, mask, _features(labels, True, seed + 10),
                        generator=torch.Generator().manual_seed(seed))
        hi = aunce_loss(_features(labels, False, seed), labels, mask, _features(labels, False, seed + 10),
                        generator=torch.Generator().manual_seed(seed))
        assert lo < hi


def test_aunce_is_deterministic_and_ignores_masked_labels():
    labels, mask = _labels()
    z1 = _features(labels, False, 0).requires_grad_()
    z2 = _features(labels, False, 1)
    values = [aunce_loss(z1, labels, mask, z2, generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    assert values[0].item() == values[1].item()
    flipped = torch.where(mask, labels, 1 - labels)
    other = aunce_loss(z1, flipped, mask, z2, generator=torch.Generator().manual_seed(7))
    assert other.item() == pytest.approx(values[0].item(), rel=1e-6)
    seeds = {round(aunce_loss(z1, labels, mask, z2, generator=torch.Generator().manual_seed(s)).item(), 6)
             for s in range(8)}
    assert len(seeds) > 1  # the positive kind is drawn at random
    single = aunce_loss(z1, labels, mask, None, generator=torch.Generator().manual_seed(7))
    assert torch.isfinite(single)
    single.backward()
    assert torch.isfinite(z1.grad).all() and z1.grad.abs().sum() > 0


def test_aunce_hand_computed_single_au():
    # two images, one AU, two views; labels 1 and 0 -> each anchor's only negative is the other image
    z = F.normalize(torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]]), dim=-1)
    z2 = F.normalize(torch.tensor([[[1.0, 0.2]], [[0.2, 1.0]]]), dim=-1)
    labels, mask = torch.tensor([[1.0], [0.0]]), torch.ones(2, 1, dtype=torch.bool)
    g = torch.Generator().manual_seed(0)
    value = aunce_loss(z, labels, mask, z2, temperature=0.5, p_similar=0.0, p_mean=0.0, generator=g)
    rows, lab = torch.cat([z, z2])[:, 0], [1, 0, 1, 0]
    expect = 0.0
    for p in range(4):
        q = (p + 2) % 4  # the other view
        pos = (rows[p] @ rows[q]) / 0.5
        beta = 1.2 if lab[p] else 0.8
        negs = [beta * (rows[p] @ rows[n]) / 0.5 for n in range(4) if lab[n] != lab[p]]
        expect += -pos + torch.logsumexp(torch.stack([pos, *negs]), 0)
    assert value.item() == pytest.approx(expect.item() / 4, rel=1e-5)


# --- OT ------------------------------------------------------------------------------------------

def test_ot_prefers_label_consistent_features_and_backpropagates():
    labels, mask = _labels(b=12, a=5, seed=3)
    lo = ot_relation_loss(_features(labels, True, 0), labels, mask, _features(labels, True, 1))
    hi = ot_relation_loss(_features(labels, False, 0), labels, mask, _features(labels, False, 1))
    assert 0.0 <= lo < hi <= 1.0
    z = _features(labels, False, 0).requires_grad_()
    ot_relation_loss(z, labels, mask).backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    alone = ot_relation_loss(z, labels, torch.zeros_like(mask))  # nothing known: nothing to align
    assert alone.item() == 0.0 and alone.requires_grad


# --- MAL -----------------------------------------------------------------------------------------

def test_expression_pseudo_labels():
    idx = {a: i for i, a in enumerate(AUS)}
    labels = torch.zeros(5, len(AUS))
    mask = torch.ones(5, len(AUS), dtype=torch.bool)
    labels[1, [idx["AU06"], idx["AU12"]]] = 1  # happiness
    labels[2, [idx[a] for a in ("AU01", "AU02", "AU04", "AU07", "AU26")]] = 1  # fear (contains surprise)
    labels[3, [idx[a] for a in ("AU06", "AU12", "AU01", "AU04", "AU15")]] = 1  # happy + sad: ambiguous
    mask[4, :10] = False  # too little known to call it neutral
    got = expression_pseudo_labels(labels, mask, AUS).tolist()
    names = [EXPRESSIONS[c] if c >= 0 else None for c in got]
    assert names == ["neutral", "happiness", "fear", None, None]


def test_meta_step_updates_only_the_weighting_net():
    model = tiny_teacher().train()
    batch, meta_batch = make_batch(seed=0), make_batch(seed=1)
    learner = MetaAuxLearner(model, lr=1e-2, inner_lr=0.1)
    before = [p.detach().clone() for p in model.mal_weight.parameters()]
    net_before = {k: v.clone() for k, v in model.net.state_dict().items()}
    meta = learner.meta_step(batch, meta_batch)
    assert meta is not None and math.isfinite(meta)
    after = list(model.mal_weight.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(after, before))
    assert all(p.grad is None for p in after)  # nothing left for the task optimiser
    for k, v in model.net.state_dict().items():  # weights and BN statistics untouched
        assert torch.equal(v, net_before[k]), k


def test_meta_step_skips_a_non_finite_update_and_ignores_autocast():
    """A NaN in the second-order step leaves the weighting net as it was (the run goes on); under
    an active bfloat16 autocast the meta step still computes in float32."""
    model = tiny_teacher(dropout=0.0).train()
    learner = MetaAuxLearner(model, lr=1e-2, inner_lr=0.1)
    before = [p.detach().clone() for p in model.mal_weight.parameters()]
    bad = make_batch(seed=0)
    bad["labels"] = torch.full_like(bad["labels"], float("nan"))  # known labels of NaN: NaN meta loss
    bad["mask"][:] = True
    bad["expression"] = torch.zeros(bad["image"].shape[0], dtype=torch.long)
    assert learner.meta_step(bad) is None and learner.skipped == 1
    assert all(torch.equal(a, b) for a, b in zip(model.mal_weight.parameters(), before))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fp = learner.meta_step(make_batch(seed=1))
    learner2 = MetaAuxLearner(tiny_teacher(dropout=0.0).train(), lr=1e-2, inner_lr=0.1)
    assert fp == pytest.approx(learner2.meta_step(make_batch(seed=1)), rel=1e-6)  # same as without autocast


def test_mobilenet_needs_the_cheap_lookahead():
    model = tiny_teacher("mobilenetv3_small_050", mal_lookahead="au_branch")
    with pytest.raises(ValueError, match="mal_lookahead=au_branch"):
        MetaAuxLearner(model, lookahead="all")
    assert MetaAuxLearner(model, lookahead="au_branch").meta_step(make_batch()) is not None


def test_objective_step_trains():
    model = tiny_teacher().train()
    objective = TeacherObjective(model, pos_weight=torch.full((len(AUS),), 2.0),
                                 generator=torch.Generator().manual_seed(0))
    opt = torch.optim.SGD(model.main_parameters(), lr=0.01)
    batch = make_batch()
    loss, terms = objective(batch)
    assert set(terms) == {"au", "inpaint", "flow", "aunce", "ot", "mal", "mal_meta"}
    loss.backward()
    assert all(p.grad is None for p in model.mal_weight.parameters())
    opt.step()
    state = objective.state_dict()
    assert state["steps"] == 1 and state["mal"] is not None
