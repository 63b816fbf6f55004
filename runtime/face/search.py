"""Where the detectors look: both BlazeFace ranges on the whole frame, and tiles of a large frame.

BlazeFace full range (192 px) finds faces from ~12 px of its input (1/16 of the frame's long side)
up to about a third of the frame; a face that fills the photo (a close-up, worse when turned) it
misses, and the short-range model (128 px, MediaPipe FaceLandmarker's own) finds it. So both run
on the whole frame and their faces are merged, the full-range ones first: a face both find keeps
the full-range box, so photos the full-range model already handled give the same faces as before.

A large frame (long side > ``LARGE_FRAME``) shrinks its faces below what the detector sees: a 4x4
tile of a group photo (4000 px, faces of 100 px) gives faces of 5 px at 192 px. It is also
searched in square tiles, a pyramid of sides ``TILE_SIDE``, 2x, 4x ... up to two thirds of the
frame. Neighbouring tiles overlap by a quarter of their side, so a face up to a quarter tile lies
whole in some tile, and a tile finds faces down to ~1/12 of its side: each level covers faces of
1/12 to 1/4 of its side, the next level (twice the side) 1/6 to 1/2, so the sizes join up without a
gap and every face from ``TILE_SIDE / 12`` (80 px) to the frame's size has a pass that sees it. Boxes
cut by an inner tile edge are dropped (the face is whole in a neighbour or at a coarser level), and
all passes are merged by overlap.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from runtime.face.blazeface import EMPTY, BlazeFace, Detections

TILE_SIDE = 960         # smallest tile (px): a face from ~80 px is found in a frame of any size
TILE_OVERLAP = 0.25     # of a tile's side
LARGE_FRAME = 1440      # long side (px) from which a frame is tiled (a level of TILE_SIDE fits)
EDGE_MARGIN = 0.01      # of a tile's side: a box this near an inner tile edge is a cut-off face
SAME_FACE_IOU = 0.3     # MediaPipe's NMS overlap
SAME_FACE_IOS = 0.5     # intersection over the smaller box: a box mostly inside another


@dataclass(frozen=True)
class Tile:
    """A rectangle of the frame: x0 <= x < x1, y0 <= y < y1 (pixels)."""

    x0: int
    y0: int
    x1: int
    y1: int


def _starts(length: int, side: int) -> list[int]:
    """Tile starts along one axis: evenly spread, neighbours overlapping by >= TILE_OVERLAP."""
    if side >= length:
        return [0]
    step = side * (1.0 - TILE_OVERLAP)
    n = math.ceil((length - side) / step) + 1
    return [round(v) for v in np.linspace(0, length - side, n)]


def tile_pyramid(height: int, width: int) -> list[Tile]:
    """The tiles of a frame, coarse levels first; empty when the frame is not large."""
    long_side = max(height, width)
    if long_side <= LARGE_FRAME:
        return []
    tiles: list[Tile] = []
    side = TILE_SIDE
    while side <= long_side / 1.5:  # the whole frame covers faces above a third of it
        sw, sh = min(side, width), min(side, height)
        level = [Tile(x, y, x + sw, y + sh) for y in _starts(height, sh) for x in _starts(width, sw)]
        tiles = level + tiles
        side *= 2
    return tiles


def _overlaps(box: np.ndarray, kept: np.ndarray) -> bool:
    """Whether an x, y, w, h box is the same face as any kept box (IoU or IoS)."""
    if not len(kept):
        return False
    lo = np.maximum(box[:2], kept[:, :2])
    hi = np.minimum(box[:2] + box[2:], kept[:, :2] + kept[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    a, b = box[2] * box[3], kept[:, 2] * kept[:, 3]
    iou = inter / np.maximum(a + b - inter, 1e-9)
    ios = inter / np.maximum(np.minimum(a, b), 1e-9)
    return bool(np.any((iou > SAME_FACE_IOU) | (ios > SAME_FACE_IOS)))


def merge(passes: list[Detections]) -> Detections:
    """One list from several passes: earlier passes win where boxes are the same face; best
    score first in the result (the order the tracker fills ``max_faces`` in)."""
    keep_b, keep_s, keep_p = [], [], []
    for dets in passes:
        for box, score, pts in zip(dets.boxes, dets.scores, dets.keypoints):
            if not _overlaps(box, np.asarray(keep_b).reshape(-1, 4)):
                keep_b.append(box)
                keep_s.append(score)
                keep_p.append(pts)
    if not keep_s:
        return EMPTY
    order = np.argsort(-np.asarray(keep_s), kind="stable")
    return Detections(np.asarray(keep_b, np.float32)[order], np.asarray(keep_s, np.float32)[order],
                      np.asarray(keep_p, np.float32)[order])


def _in_tile(dets: Detections, tile: Tile, height: int, width: int) -> Detections:
    """Tile detections moved to frame pixels, without boxes cut by an inner tile edge."""
    if not len(dets):
        return dets
    off = np.array([tile.x0, tile.y0], np.float32)
    boxes = dets.boxes.copy()
    boxes[:, :2] += off
    margin = EDGE_MARGIN * max(tile.x1 - tile.x0, tile.y1 - tile.y0)
    lo, hi = boxes[:, :2], boxes[:, :2] + boxes[:, 2:]
    cut = np.zeros(len(boxes), bool)
    if tile.x0 > 0:
        cut |= lo[:, 0] < tile.x0 + margin
    if tile.y0 > 0:
        cut |= lo[:, 1] < tile.y0 + margin
    if tile.x1 < width:
        cut |= hi[:, 0] > tile.x1 - margin
    if tile.y1 < height:
        cut |= hi[:, 1] > tile.y1 - margin
    keep = ~cut
    return Detections(boxes[keep], dets.scores[keep], dets.keypoints[keep] + off)


class FaceSearch:
    """The detector passes over one frame: ``run(frame, ...) -> Detections`` (merged, best first).

    Args:
        full: BlazeFace full range, or None (``detector="short"``).
        short: BlazeFace short range, or None (not available).
    """

    def __init__(self, full: BlazeFace | None, short: BlazeFace | None):
        if full is None and short is None:
            raise ValueError("FaceSearch needs at least one detector")
        self.full, self.short = full, short
        self.ranges = tuple(k for k, d in (("full", full), ("short", short)) if d is not None)
        self._turn = 0
        self._next_tile = 0
        self._tiles_for: tuple[tuple[int, int], list[Tile]] = ((0, 0), [])

    def tiles(self, height: int, width: int) -> list[Tile]:
        """The tile pyramid of a frame size (cached; the full-range model only)."""
        if self.full is None:
            return []
        if self._tiles_for[0] != (height, width):
            self._tiles_for = ((height, width), tile_pyramid(height, width))
        return self._tiles_for[1]

    def next_range(self) -> str:
        """The range for a search that runs one of them: each in turn."""
        kind = self.ranges[self._turn % len(self.ranges)]
        self._turn += 1
        return kind

    def run(self, frame: np.ndarray, bgr: bool, ranges: tuple[str, ...] | None = None,
            tiles: int | None = None) -> Detections:
        """Faces of a frame, merged over the passes.

        Args:
            ranges: which whole-frame passes (``"full"``, ``"short"``); None: every available one.
            tiles: None: every tile of a large frame (with the full-range pass); ``k``: the next
                ``k`` tiles of a rotation over the pyramid (video mode spreads the tiles over its
                searches); 0: none.
        """
        ranges = self.ranges if ranges is None else ranges
        passes = [det.detect(frame, bgr) for kind, det in (("full", self.full), ("short", self.short))
                  if kind in ranges and det is not None]
        if "full" in ranges and tiles != 0:
            h, w = frame.shape[:2]
            pyramid = self.tiles(h, w)
            if pyramid and tiles is not None:
                picked = [pyramid[(self._next_tile + i) % len(pyramid)] for i in range(min(tiles, len(pyramid)))]
                self._next_tile = (self._next_tile + len(picked)) % len(pyramid)
                pyramid = picked
            for t in pyramid:
                passes.append(_in_tile(self.full.detect(frame[t.y0:t.y1, t.x0:t.x1], bgr), t, h, w))
        return merge(passes)

    def close(self) -> None:
        for det in (self.full, self.short):
            if det is not None:
                det.close()
