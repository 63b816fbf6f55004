"""Open data (`python -m train.data open`, labels v3): every label with its kind, counted right, on a small subset."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime.align import five_points, similarity_transform, template_points
from train.data.cache import LABEL_KINDS, CacheData
from train.data.holdout import is_held_out, is_held_out_subject

LIMIT, N_ICT = 2, 12


@pytest.fixture(scope="module")
def open_v2(data_dir, face_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("open_v2") / "open"
    proc = subprocess.run([sys.executable, "-m", "train.data", "open", "--data", str(data_dir), "--out", str(out),
                           "--ict", str(N_ICT), "--limit", str(LIMIT), "--face-model", face_model],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def _first_trainable(folder: Path, dataset: str) -> list[str]:
    return [p.stem for p in sorted(folder.glob("*.jpg")) if not is_held_out(dataset, p.stem)][:LIMIT]


def test_every_label_kind_is_counted(open_v2, data_dir):
    m = json.loads((open_v2 / "manifest.json").read_text())
    kinds = m["label_kinds"]
    smiling = _first_trainable(data_dir / "london" / "smiling", "london")
    neutral = _first_trainable(data_dir / "london" / "neutral", "london") + _first_trainable(data_dir / "canada",
                                                                                             "canada")
    # real: the smiles are AU12 positives; posed neutral faces are negatives of every AU
    assert kinds["AU12"]["real"] == {"pos": len(smiling), "neg": len(neutral)}
    assert kinds["AU04"]["real"] == {"pos": 0, "neg": len(neutral)}
    assert kinds["AU06"]["real"] == {"pos": 0, "neg": len(neutral)}  # AU6 of a smile: unknown, not negative
    # synthetic: every AU of every render is known
    for au in m["labels"]:
        assert sum(kinds[au]["synthetic"].values()) == N_ICT
    # labels v3 (the default): no silver label at all; the clip's frames are kept, every AU unknown
    clip = m["parts"]["real"]["frames"] - len(smiling) - len(neutral)
    assert clip == LIMIT and m["labels_policy"] == "v3"
    assert not any("silver" in kinds[au] for au in m["labels"])
    # eye: the smiles' AU01/AU04/AU25/AU26 as the two coders agreed (read from the table itself)
    with (Path(__file__).parents[1] / "train" / "data" / "eye" / "consensus.csv").open() as fh:
        table = {row["image"]: row for row in csv.DictReader(fh)}
    for au in ("AU01", "AU04", "AU25", "AU26"):
        codes = [int(table[f"london_{s}.png"][au]) for s in smiling]
        assert kinds[au].get("eye", {"pos": 0, "neg": 0}) == {"pos": codes.count(1), "neg": codes.count(0)}, au
    assert "eye" not in kinds["AU12"] and "eye" not in kinds["AU06"]
    assert m["attribution"] and any("CC BY" in a for a in m["attribution"])


def test_kinds_are_stored_per_sample(open_v2):
    data = CacheData(open_v2)
    kind, mask, labels = data.field("kind"), data.field("mask"), data.field("labels")
    names = np.array(data.subjects)[data.field("subject")]
    j12, j6 = data.aus.index("AU12"), data.aus.index("AU06")
    real = kind[:, j12] == LABEL_KINDS.index("real")
    smiles = real & (labels[:, j12] == 1) & mask[:, j12]
    assert smiles.sum() == LIMIT and not mask[smiles, j6].any()
    assert not any(is_held_out_subject(s) for s in names)
    assert {s.partition("_")[0] for s in names} >= {"london", "canada", "pexels"}


def test_ict_crops_are_aligned_like_the_runtime(open_v2):
    ict = CacheData(open_v2 / "ict")
    assert len(ict) == N_ICT
    want = template_points(int(ict.meta["crop_size"]))
    for i in range(len(ict)):
        s = ict.sample(i)
        lm = s["landmarks"].astype(np.float64)
        lm = lm[~np.isnan(lm).any(1)]
        # aligning the crop's own mesh again is the identity: the crop is the runtime's alignment
        m = similarity_transform(five_points(lm), want)
        assert np.abs(m[:, :2] - np.eye(2)).max() < 0.01 and np.abs(m[:, 2]).max() < 1.0
        assert s["flow_valid"] and np.isfinite(s["flow"].astype(np.float32)).all()


def test_deploy_split_and_real_oversampling(open_v2):
    from train.config import TrainConfig
    from train.data.policy import oversample_real, split_indices

    data = CacheData(open_v2)
    names = np.array(data.subjects)[data.field("subject")]
    idx = split_indices(data, TrainConfig(data=str(open_v2), split="deploy", val_fraction=0.1))
    parts = {k: set(names[v]) for k, v in idx.items()}
    assert parts["val"] and parts["test"] and not (parts["val"] & parts["test"]) and not (parts["train"] & parts["val"])
    assert all(s.startswith(("london_", "canada_")) for s in parts["val"] | parts["test"])
    assert "pexels_wolfganglanger" in parts["train"]  # the clip (one person, the flow frames) always trains
    train = idx["train"]
    real = ((data.field("kind")[train] == LABEL_KINDS.index("real")) & data.field("mask")[train]).any(1)
    more = oversample_real(data, train, 3)
    assert len(more) == len(train) + 2 * real.sum() and real.sum() > 0
    counts = np.bincount(more, minlength=len(data))
    assert set(counts[train[real]]) == {3} and set(counts[train[~real]]) == {1}
    with pytest.raises(ValueError, match="split"):
        TrainConfig(split="nope")


def test_split_seed_keeps_the_split_and_finds_a_teachers_training_identities(open_v2, tmp_path):
    from train.config import TrainConfig
    from train.data.policy import split_indices, teacher_trained_subjects

    data = CacheData(open_v2)
    names = np.array(data.subjects)[data.field("subject")]

    def split(**kw) -> dict[str, set[str]]:
        idx = split_indices(data, TrainConfig(data=str(open_v2), split="deploy", **kw))
        return {k: set(names[v]) for k, v in idx.items()}

    s0, s1 = split(seed=0), split(seed=1)
    assert s0["val"] != s1["val"]  # the seed draws the split ...
    assert split(seed=1, split_seed=0) == s0 and split(seed=0, split_seed=1) == s1  # ... unless split_seed does
    assert split(seed=1, split_seed=-1) == s1  # -1 (the default): checkpoints without the key split as before
    with pytest.raises(ValueError, match="split_seed"):
        TrainConfig(split_seed=-2)

    teacher = TrainConfig(data=str(open_v2), split="deploy", seed=0)
    # a student seed whose validation or test identities have samples the seed-0 teacher trained on
    k = next(k for k in range(1, 50) if (split(seed=k)["val"] | split(seed=k)["test"]) & s0["train"])
    student = split_indices(data, TrainConfig(data=str(open_v2), split="deploy", seed=k))
    leaked = teacher_trained_subjects(data, teacher, student)
    assert leaked and set(leaked) == (split(seed=k)["val"] | split(seed=k)["test"]) & s0["train"]
    kept = split_indices(data, TrainConfig(data=str(open_v2), split="deploy", seed=k, split_seed=0))
    assert teacher_trained_subjects(data, teacher, kept) == []
    assert teacher_trained_subjects(data, None, student) == []  # a teacher that records no split
    elsewhere = TrainConfig(data=str(tmp_path / "other"), split="deploy", seed=0)
    assert teacher_trained_subjects(data, elsewhere, student) == []  # trained on another cache
