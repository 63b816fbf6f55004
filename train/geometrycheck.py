"""``python -m train.geometrycheck``: does the face mesh add AU evidence beyond the network's own?

Issue 18 asks for the mesh in crop coordinates as a second model input, *kept only if it wins on
validation*. Before any backend, export and parity carry a second input, this check answers the
question that decides it, on the run's own split (never its test or held-out faces):

- the geometry is what the runtime would feed: its face mesh, run on each cached aligned crop, in
  crop pixels (the same measurement for real photos and synthetic warps: the cache's synthetic
  landmarks are the warp's exact points, which no camera gives);
- per AU, two logistic regressions fitted on the training rows with a known label (any kind) and
  scored on the validation rows: the network's pooled features (PCA) alone, and the same with the
  mesh (PCA of ``GEOMETRY_POINTS`` about the nose, in inter-ocular distances);
- the mesh is kept when it raises the mean validation ROC-AUC by ``KEEP_MARGIN`` and does not lower
  AU12's on real faces; otherwise the report says ``not kept``.

It also measures the mouth the mesh sees in the clip's crying and laughing frames, next to the
training split's real smiles: whether geometry could tell the crying face from a smile at all.

    python -m train.geometrycheck --checkpoint out/default/student/best.pt --out out/default/geometrycheck
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from runtime.atomic import atomic_write
from runtime.cli import threads_option
from train.cli import OneLineParser, guarded

LIPS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185,
        78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
BROWS = (70, 63, 105, 66, 107, 336, 296, 334, 293, 300)
EYES = (33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380)
NOSE_CHEEKS = (1, 4, 98, 327, 168, 6, 50, 280, 205, 425, 117, 346)
GEOMETRY_POINTS = LIPS + BROWS + EYES + NOSE_CHEEKS  # MediaPipe mesh indices (all < 468)
RIGID = (168, 6, 1)  # nose bridge and tip: the origin (they move least with any AU)
KEEP_MARGIN = 0.005  # mean validation ROC-AUC the mesh must add to be worth a second input
FEATURE_PCS, GEOMETRY_PCS = 64, 40
C = 0.05  # logistic regression's inverse L2 strength (features and mesh standardised first)


def inter_ocular(points: np.ndarray) -> np.ndarray:
    """Distance between the eye centres (mean of each eye's two corners), per face."""
    left, right = points[:, [33, 133]].mean(1), points[:, [362, 263]].mean(1)
    return np.linalg.norm(right - left, axis=1)


def geometry_features(points: np.ndarray) -> np.ndarray:
    """(N, P, 2) mesh points -> (N, 2·len(GEOMETRY_POINTS)): about the nose, in inter-ocular distances."""
    centre = points[:, list(RIGID)].mean(1, keepdims=True)
    g = (points[:, list(GEOMETRY_POINTS)] - centre) / inter_ocular(points)[:, None, None]
    return g.reshape(len(points), -1)


def mouth_shape(points: np.ndarray) -> dict[str, np.ndarray]:
    """How far the lip corners sit above the lips' centre, and the mouth's width, in inter-ocular
    distances (image y points down, so raised corners give a positive lift)."""
    iod = inter_ocular(points)
    corners, centre = points[:, [61, 291]].mean(1), points[:, [13, 14]].mean(1)
    return {"corner_lift": (centre[:, 1] - corners[:, 1]) / iod,
            "width": np.linalg.norm(points[:, 291] - points[:, 61], axis=1) / iod}


def mesh_on_crops(images: np.ndarray, face_model: str | None, threads: int) -> np.ndarray:
    """The runtime's mesh (468 points, crop pixels) on each RGB crop; NaN where it finds no face."""
    from runtime.face import FaceStage

    out = np.full((len(images), 468, 2), np.nan, np.float32)
    with FaceStage(face_model=face_model, max_faces=1, threads=threads) as stage:
        for i, rgb in enumerate(images):
            faces = stage.detect(np.ascontiguousarray(rgb))
            if faces:
                out[i] = faces[0].landmarks[:468, :2]
    return out


def _pca(train: np.ndarray, other: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.decomposition import PCA

    mu, sd = train.mean(0), train.std(0) + 1e-6
    pca = PCA(min(k, *train.shape), random_state=0).fit((train - mu) / sd)
    return pca.transform((train - mu) / sd), pca.transform((other - mu) / sd)


def compare(feat: tuple[np.ndarray, np.ndarray], geom: tuple[np.ndarray, np.ndarray],
            labels: tuple[np.ndarray, np.ndarray], masks: tuple[np.ndarray, np.ndarray],
            real_val: np.ndarray, aus: list[str]) -> dict:
    """Per AU validation ROC-AUC of features alone vs features + mesh (train rows fit, val rows score)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    ftr, fva = _pca(*feat, FEATURE_PCS)
    gtr, gva = _pca(*geom, GEOMETRY_PCS)
    arms = {"features": (ftr, fva), "features+mesh": (np.c_[ftr, gtr], np.c_[fva, gva])}
    rows = {}
    for j, au in enumerate(aus):
        fit_rows, val_rows = masks[0][:, j], masks[1][:, j]
        y, yv = labels[0][:, j] > 0.5, labels[1][:, j] > 0.5
        if len(set(y[fit_rows])) < 2 or len(set(yv[val_rows])) < 2:
            continue  # an AU one split never shows both ways cannot be scored
        real = val_rows & real_val[:, j]
        row = {"val_rows": int(val_rows.sum()), "real_val_rows": int(real.sum())}
        for arm, (xt, xv) in arms.items():
            score = LogisticRegression(C=C, max_iter=5000).fit(xt[fit_rows], y[fit_rows]).decision_function(xv)
            row[arm] = round(float(roc_auc_score(yv[val_rows], score[val_rows])), 4)
            if len(set(yv[real])) == 2:
                row[f"{arm} (real)"] = round(float(roc_auc_score(yv[real], score[real])), 4)
        rows[au] = row
    return rows


def verdict(rows: dict) -> dict:
    """Mean validation AUC per arm and whether the mesh earns a second input."""
    mean = {arm: round(float(np.mean([r[arm] for r in rows.values()])), 4) for arm in ("features", "features+mesh")}
    gain = round(mean["features+mesh"] - mean["features"], 4)
    au12 = rows.get("AU12", {})
    real_drop = au12.get("features+mesh (real)", 0.0) < au12.get("features (real)", 0.0)
    keep = gain >= KEEP_MARGIN and not real_drop
    return {"mean_val_auc": mean, "gain": gain, "margin": KEEP_MARGIN, "keep": keep,
            "decision": "kept: add the mesh as a second input" if keep else
            "not kept: the mesh does not add evidence beyond the network's features on validation"}


def clip_mouth(points: np.ndarray, frames: np.ndarray, smiles: np.ndarray, neutral: np.ndarray) -> dict:
    """The mesh's mouth in the clip's windows (``train.clipcheck``) vs real smiling/neutral training faces."""
    from train.clipcheck import WINDOWS

    def summary(p: np.ndarray) -> dict:
        ok = ~np.isnan(p[:, 0, 0])
        shape = mouth_shape(p[ok]) if ok.any() else {}
        return {"faces": int(ok.sum()),
                **{k: [round(float(q), 3) for q in np.quantile(v, (0.1, 0.5, 0.9))] for k, v in shape.items()}}

    out = {"quantiles": [0.1, 0.5, 0.9], "real_smiling_train": summary(smiles), "real_neutral_train": summary(neutral)}
    for name, first, last, *_ in WINDOWS:
        key = f"clip {name} {first}-{last}"
        if key not in out:
            out[key] = summary(points[(frames >= first) & (frames <= last)])
    return out


def _run(args) -> int:
    import torch

    from train.checkpoint import Checkpoint
    from train.config import TrainConfig
    from train.data.cache import LABEL_KINDS, CacheData
    from train.data.open_data import CLIP_SUBJECT
    from train.data.policy import select_aus, split_indices
    from train.features import pooled_features
    from train.task import task_for_checkpoint

    torch.set_num_threads(args.threads)
    ck = Checkpoint.read(args.checkpoint)
    cfg = TrainConfig.from_dict({**ck.train_config, **({"data": args.cache} if args.cache else {})})
    cache = CacheData(cfg.data)
    aus, cols = select_aus(cache, cfg.aus)
    idx = split_indices(cache, cfg)
    train, val = np.sort(idx["train"]), np.sort(idx["val"])
    model = task_for_checkpoint(ck).model_from_checkpoint(ck).eval()
    feats = [pooled_features(model, cache, ix, ck.input_size, cols, ck.mean, ck.std).x.flatten(1).numpy()
             for ix in (train, val)]  # a teacher's per-AU tokens, flattened
    subjects = np.asarray(cache.field("subject"))
    clip_id = cache.subjects.index(CLIP_SUBJECT) if CLIP_SUBJECT in cache.subjects else -1
    clip = np.sort(np.where(subjects == clip_id)[0])
    rows = np.unique(np.concatenate([train, val, clip]))  # the clip's frames are training rows too
    mesh = dict(zip(rows.tolist(), mesh_on_crops(cache.field("image")[rows], args.face_model, args.threads)))
    labels, masks, kinds = (cache.field(k)[:, cols] for k in ("labels", "mask", "kind"))
    geo, found = [], []
    for ix in (train, val):
        pts = np.stack([mesh[i] for i in ix.tolist()])
        found.append(~np.isnan(pts[:, 0, 0]))
        geo.append(np.nan_to_num(geometry_features(pts)))
    mk = [masks[ix].astype(bool) & f[:, None] for ix, f in zip((train, val), found)]  # no mesh: in neither arm
    real_val = np.isin(kinds[val], [LABEL_KINDS.index("real")])
    table = compare((feats[0], feats[1]), (geo[0], geo[1]), (labels[train], labels[val]), (mk[0], mk[1]), real_val, aus)
    if not table:
        raise ValueError(f"no AU of {cache.root} shows both classes in both the training and the validation split; "
                         "run the check on the cache the model was trained on")
    j12 = aus.index("AU12") if "AU12" in aus else None
    report = {"checkpoint": str(args.checkpoint), "cache": str(cache.root), "split": "train fits, validation scores",
              "geometry": "the runtime's face mesh on each cached crop (crop pixels), about the nose, in IODs",
              "rows": {"train": len(train), "val": len(val), "without_mesh": {
                  "train": int((~found[0]).sum()), "val": int((~found[1]).sum())}},
              "per_au": table, **verdict(table)}
    if j12 is not None and len(clip):
        real_train = masks[train, j12].astype(bool) & (kinds[train, j12] == LABEL_KINDS.index("real"))
        pts = np.stack([mesh[i] for i in train.tolist()])
        smiling = real_train & (labels[train, j12] > 0.5)
        report["clip_mouth"] = clip_mouth(np.stack([mesh[i] for i in clip.tolist()]),
                                          np.asarray(cache.field("frame"))[clip], pts[smiling],
                                          pts[real_train & ~smiling])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "geometrycheck.json", "geometry check", mode="w") as f:
        f.write(json.dumps(report, indent=2))
    m = report["mean_val_auc"]
    print(f"mean validation ROC-AUC over {len(table)} AUs: features {m['features']:.4f}, features+mesh "
          f"{m['features+mesh']:.4f} (gain {report['gain']:+.4f}, margin {KEEP_MARGIN}): {report['decision']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m train.geometrycheck",
                      description="Does the face mesh add AU evidence beyond a checkpoint's features? (validation)")
    p.add_argument("--checkpoint", required=True, help="the run's best.pt (its recorded split is used)")
    p.add_argument("--out", required=True, help="folder for geometrycheck.json")
    p.add_argument("--cache", default="", help="the run's cache (default: the one it recorded)")
    p.add_argument("--face-model", default=None, help="face models (default: the runtime's)")
    p.add_argument("--threads", type=threads_option(), default=2, help="CPU threads (1 to 2 per CPU core)")
    return guarded(_run, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
