"""A contact sheet of ICT-driven renders, to look at: ``python -m train.data.ict.sheet --data
$AU_DATA_DIR --out out/ict_sheet.png [--faces 001 002] [--seed 0] [--version 2|3]``.

Per face two rows: neutral and single AUs at intensity E, then the six prototypes at D (v2). v3:
the singles include AU6; the second row is v3's expressions at E (laugh, crying, surprise, fear,
anger, disgust); a third row shows sadness at D, unilateral and asymmetric actions, a turned head
and an expression-free negative. Light, occluders and camera are random draws and left out here
(``--samples N --version 3``: N random samples as the cache draws them, with their labels).
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from runtime.cv_path import decode_image
from runtime.face import FaceStage
from train.cli import OneLineParser, guarded
from train.data.ict.facs import FACS_WEIGHT, PROTOTYPES, V3_VARIANTS
from train.data.ict.model import load_ict
from train.data.ict.projection import correspond
from train.data.ict.render import points68, render_full

SINGLES: tuple[int, ...] = (12, 4, 26, 1, 15)
SINGLES_V3: tuple[int, ...] = (12, 4, 26, 1, 6)
V3_ROW2 = ("laugh", "crying", "surprise", "fear", "anger", "disgust")
E, D = FACS_WEIGHT["E"], FACS_WEIGHT["D"]
V3_ROW3: tuple[tuple[str, dict], ...] = (
    ("sadness D", {"aus": {1: D, 4: D, 15: D}}),
    ("AU12 left only", {"aus": {12: E}, "sides": {12: (1.0, 0.0)}}),
    ("AU2 right only", {"aus": {2: E}, "sides": {2: (0.0, 1.0)}}),
    ("AU12+6 asym", {"aus": {12: E, 6: D}, "sides": {12: (1.0, 0.5), 6: (1.0, 0.5)}}),
    ("yaw 12 pitch -7", {"aus": {}, "pose": (12.0, -7.0)}),
    ("negative: pucker, glance", {"aus": {}, "motion": {"mouthPucker": 0.6, "eyeLookUp_L": 0.6,
                                                       "eyeLookUp_R": 0.6}, "pose": (-8.0, 4.0)}),
)
TILE = 220


def _tile(image: np.ndarray, mesh: np.ndarray, title: str) -> np.ndarray:
    x0, y0 = mesh[:, :2].min(0)
    x1, y1 = mesh[:, :2].max(0)
    c, half = np.array([(x0 + x1) / 2, (y0 + y1) / 2]), 0.62 * max(x1 - x0, y1 - y0)
    m = np.array([[TILE / (2 * half), 0, TILE / 2 - c[0] * TILE / (2 * half)],
                  [0, TILE / (2 * half), TILE / 2 - c[1] * TILE / (2 * half)]])
    t = cv2.warpAffine(image, m, (TILE, TILE), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    cv2.putText(t, title, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 160), 1, cv2.LINE_AA)
    return t


def _mixes(version: int) -> list[tuple[str, dict]]:
    if version == 2:
        mixes = [("neutral", {"aus": {}})] + [(f"AU{a}", {"aus": {a: E}}) for a in SINGLES]
        return mixes + [(name, {"aus": {a: D for a in aus}}) for name, aus in PROTOTYPES.items()]
    mixes = [("neutral", {"aus": {}})] + [(f"AU{a} E", {"aus": {a: E}}) for a in SINGLES_V3]
    for name in V3_ROW2:
        _, always, optional = V3_VARIANTS[name]
        mixes.append((f"{name} E", {"aus": {a: E for a in always + optional}}))
    return mixes + list(V3_ROW3)


def contact_sheet(data: Path, faces: list[str], seed: int = 0, version: int = 2) -> np.ndarray:
    """The sheet (BGR uint8). Raises FileNotFoundError for a missing photo or model."""
    ict = load_ict(data / "ict_facekit")
    rows = []
    with FaceStage(face_model=str(data / "models" / "mediapipe-0.10.21"), detector="full", max_faces=1) as st:
        for fid in faces:
            path = data / "london" / "neutral" / f"{fid}.jpg"
            photo = decode_image(path)
            if photo is None:
                raise FileNotFoundError(f"cannot read {path}")
            found = st.detect(cv2.cvtColor(photo, cv2.COLOR_BGR2RGB))
            if not found:
                raise FileNotFoundError(f"no face found in {path}")
            mesh = found[0].landmarks
            corr = correspond(ict, points68(mesh), photo.shape[:2])
            tiles = []
            for title, kw in _mixes(version):
                kw = dict(kw)
                aus = kw.pop("aus")
                r = render_full(photo, mesh, aus, seed, model=ict, correspondence=corr, version=version, **kw)
                tiles.append(_tile(r.image, mesh, title))
            rows += [np.hstack(tiles[k:k + 6]) for k in range(0, len(tiles), 6)]
    return np.vstack(rows)


def _caption(tile: np.ndarray, lines: list[str]) -> np.ndarray:
    for j, line in enumerate(lines):
        for colour, width in (((0, 0, 0), 3), ((255, 255, 255), 1)):
            cv2.putText(tile, line, (3, 13 + 13 * j), cv2.FONT_HERSHEY_SIMPLEX, 0.36, colour, width, cv2.LINE_AA)
    return tile


def sample_sheet(data: Path, n: int, seed: int = 0, version: int = 3, cols: int = 6) -> np.ndarray:
    """``n`` random samples of the open dataset's ICT part (as ``train.data.ict.cache`` draws them),
    captioned with kind, base folder, present AUs, unknown AUs ("?"), occluders and pose."""
    from runtime.aus import DEFAULT_MODEL_AUS, au_name
    from train.data.ict.batch import ICTBatch
    from train.data.ict.cache import ict_folders, trainable

    opts = {"version": version}
    batch = ICTBatch(ict_folders(data, opts), n, seed, model=data / "ict_facekit",
                     face_model=str(data / "models" / "mediapipe-0.10.21"), keep=trainable, options=opts)
    names = [au_name(a) for a in DEFAULT_MODEL_AUS]
    tiles = []
    for s in batch:
        info = s.info or {"kind": "", "occluders": (), "pose": (0, 0, 0)}
        on = " ".join(a[2:] for a in names if s.labels.get(a) == 1)
        unknown = " ".join(a[2:] for a in names if a not in s.labels)
        lines = [f"{s.index} {info['kind']} {s.face_id.split('/')[0]}", on, f"?{unknown}" if unknown else "",
                 " ".join(info["occluders"]) + " pose %.0f %.0f %.0f" % tuple(info["pose"])]
        tiles.append(_caption(_tile(s.image, s.points, ""), lines))
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    return np.vstack([np.hstack(tiles[k:k + cols]) for k in range(0, len(tiles), cols)])


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="python -m train.data.ict.sheet", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="the open data folder (AU_DATA_DIR)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--faces", nargs="+", default=["001", "002"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--version", type=int, choices=(2, 3), default=2)
    ap.add_argument("--samples", type=int, default=0, help="instead: N random samples as the cache draws them")
    return guarded(_run, ap.parse_args(argv))


def _run(args) -> int:
    if args.samples:
        sheet = sample_sheet(args.data, args.samples, args.seed, args.version)
    else:
        sheet = contact_sheet(args.data, args.faces, args.seed, args.version)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), sheet)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
