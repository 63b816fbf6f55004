"""A contact sheet of ICT-driven renders, to look at: ``python -m train.data.ict.sheet --data
$AU_DATA_DIR --out out/ict_sheet.png [--faces 001 002] [--seed 0]``.

Per face two rows: neutral and single AUs at intensity E, then the six prototypes at D.
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from runtime.face import FaceStage
from train.cli import OneLineParser, guarded
from train.data.ict.facs import FACS_WEIGHT, PROTOTYPES
from train.data.ict.model import load_ict
from train.data.ict.projection import correspond
from train.data.ict.render import points68, render_full

SINGLES: tuple[int, ...] = (12, 4, 26, 1, 15)
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


def contact_sheet(data: Path, faces: list[str], seed: int = 0) -> np.ndarray:
    """The sheet (BGR uint8). Raises FileNotFoundError for a missing photo or model."""
    ict = load_ict(data / "ict_facekit")
    rows = []
    with FaceStage(face_model=str(data / "models" / "mediapipe-0.10.21"), detector="full", max_faces=1) as st:
        for fid in faces:
            path = data / "london" / "neutral" / f"{fid}.jpg"
            photo = cv2.imread(str(path))
            if photo is None:
                raise FileNotFoundError(f"cannot read {path}")
            found = st.detect(cv2.cvtColor(photo, cv2.COLOR_BGR2RGB))
            if not found:
                raise FileNotFoundError(f"no face found in {path}")
            mesh = found[0].landmarks
            corr = correspond(ict, points68(mesh), photo.shape[:2])
            mixes = [("neutral", {})] + [(f"AU{a}", {a: FACS_WEIGHT["E"]}) for a in SINGLES]
            mixes += [(name, {a: FACS_WEIGHT["D"] for a in aus}) for name, aus in PROTOTYPES.items()]
            tiles = [_tile(render_full(photo, mesh, aus, seed, model=ict, correspondence=corr).image, mesh, title)
                     for title, aus in mixes]
            rows += [np.hstack(tiles[:6]), np.hstack(tiles[6:])]
    return np.vstack(rows)


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="python -m train.data.ict.sheet", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="the open data folder (AU_DATA_DIR)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--faces", nargs="+", default=["001", "002"])
    ap.add_argument("--seed", type=int, default=0)
    return guarded(_run, ap.parse_args(argv))


def _run(args) -> int:
    sheet = contact_sheet(args.data, args.faces, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), sheet)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
