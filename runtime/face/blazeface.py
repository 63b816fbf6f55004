"""BlazeFace face detection on LiteRT, decoded as MediaPipe's face_detection graphs do.

Letterbox to the square input (ImageToTensorCalculator, keep_aspect_ratio, zero border), SSD
anchors (SsdAnchorsCalculator), box/keypoint decoding with sigmoid scores
(TensorsToDetectionsCalculator), weighted NMS (NonMaxSuppressionCalculator, WEIGHTED, IoU 0.3),
then the letterbox is undone. All vectorised: the 2304 anchors are never looped over in Python.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from runtime.face.models import FaceModelError, ModelFile, load_interpreter


@dataclass(frozen=True)
class DetectorSpec:
    """The options of MediaPipe's face_detection_{full,short}_range.pbtxt."""

    size: int                      # square input side
    strides: tuple[int, ...]       # one per SSD layer; equal consecutive strides share a grid
    interpolated_scale: float      # interpolated_scale_aspect_ratio: > 0 adds one anchor per layer
    num_boxes: int
    min_score: float               # min_score_thresh of the graph
    nms_iou: float = 0.3
    score_clip: float = 100.0


SPECS: dict[str, DetectorSpec] = {
    "full": DetectorSpec(size=192, strides=(4,), interpolated_scale=0.0, num_boxes=2304, min_score=0.6),
    "short": DetectorSpec(size=128, strides=(8, 16, 16, 16), interpolated_scale=1.0, num_boxes=896,
                          min_score=0.5),
}


@dataclass
class Detections:
    """Faces found in one frame, best first, in frame pixels (OpenCV pixel-centre convention)."""

    boxes: np.ndarray      # (n, 4) x, y, w, h
    scores: np.ndarray     # (n,)
    keypoints: np.ndarray  # (n, 6, 2): right eye, left eye, nose tip, mouth, right ear, left ear

    def __len__(self) -> int:
        return len(self.scores)


EMPTY = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 6, 2), np.float32))


def ssd_anchors(spec: DetectorSpec) -> np.ndarray:
    """Anchor centres (n, 2) in [0, 1] as SsdAnchorsCalculator makes them with fixed_anchor_size.

    Consecutive layers with the same stride share one grid and stack their anchors per cell
    (short range: 2 per cell at stride 8, 6 at stride 16). Widths/heights are all 1, so unused.
    """
    centres, i = [], 0
    while i < len(spec.strides):
        stride, per_cell = spec.strides[i], 0
        while i < len(spec.strides) and spec.strides[i] == stride:
            per_cell += 1 + (spec.interpolated_scale > 0)  # aspect ratio 1.0 (+ interpolated scale)
            i += 1
        n = int(np.ceil(spec.size / stride))
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        cells = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(cells, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, points: np.ndarray,
                 iou_thr: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED non-max suppression: each cluster (IoU > thr with its best box)
    becomes the score-weighted mean of its boxes and keypoints, keeping the best score.

    ``boxes`` are (n, 4) xmin, ymin, xmax, ymax; ``points`` (n, k, 2). Inputs sorted by score.
    """
    out_b, out_s, out_p = [], [], []
    idx = np.arange(len(scores))
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while idx.size:
        top = boxes[idx[0]]
        b = boxes[idx]
        iw = np.clip(np.minimum(b[:, 2], top[2]) - np.maximum(b[:, 0], top[0]), 0, None)
        ih = np.clip(np.minimum(b[:, 3], top[3]) - np.maximum(b[:, 1], top[1]), 0, None)
        inter = iw * ih
        union = area[idx] + area[idx[0]] - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
        member = iou > iou_thr
        member[0] = True  # the best box is always its own cluster (even a degenerate one)
        cluster = idx[member]
        w = scores[cluster][:, None]
        total = w.sum()
        out_b.append((boxes[cluster] * w).sum(0) / total)
        out_p.append((points[cluster] * w[:, :, None]).sum(0) / total)
        out_s.append(scores[idx[0]])
        idx = idx[~member]
    if not out_s:
        return boxes[:0], scores[:0].astype(np.float32), points[:0]
    return np.stack(out_b), np.asarray(out_s, np.float32), np.stack(out_p)


class BlazeFace:
    """BlazeFace on LiteRT: ``detect(frame_rgb) -> Detections``.

    Args:
        model: the detector's bytes (from ``runtime.face.models``).
        kind: ``"full"`` (192 px, faces up to ~5 m) or ``"short"`` (128 px, faces within ~2 m).
        threads: LiteRT CPU threads.
        min_score: detection score threshold; the graph's own (0.6 full, 0.5 short) by default.

    Raises:
        FaceModelError: the file is not a valid model or its tensors are not this kind's.
    """

    def __init__(self, model: ModelFile, kind: str = "full", threads: int | None = None,
                 min_score: float | None = None):
        if kind not in SPECS:
            raise ValueError(f"detector must be one of {tuple(SPECS)}, got {kind!r}")
        self.spec = spec = SPECS[kind]
        self.kind = kind
        self._model = model  # the interpreter reads from these bytes: keep them alive
        self.interp = load_interpreter(model, threads)
        inp = self.interp.get_input_details()[0]
        outs = self.interp.get_output_details()
        shapes = sorted(tuple(int(d) for d in o["shape"]) for o in outs)
        want = sorted([(1, spec.num_boxes, 16), (1, spec.num_boxes, 1)])
        if tuple(inp["shape"]) != (1, spec.size, spec.size, 3) or shapes != want:
            raise FaceModelError(
                f"face detector {model.origin} has input {list(inp['shape'])} / outputs {shapes}, not "
                f"BlazeFace {kind} range ({spec.size}x{spec.size}, {spec.num_boxes} anchors); pass the "
                "matching detector= or the right file")
        self._in = inp["index"]
        self._reg = next(o["index"] for o in outs if int(o["shape"][-1]) == 16)
        self._cls = next(o["index"] for o in outs if int(o["shape"][-1]) == 1)
        self.anchors = ssd_anchors(spec)
        assert len(self.anchors) == spec.num_boxes, (len(self.anchors), spec.num_boxes)
        thr = spec.min_score if min_score is None else float(min_score)
        self.min_score = thr
        # Compare logits, not sigmoids: only the few anchors above threshold are decoded.
        with np.errstate(divide="ignore"):
            self._logit_thr = float(np.log(thr) - np.log1p(-thr)) if thr < 1.0 else np.inf
        self._tensor = np.full((1, spec.size, spec.size, 3), -1.0, np.float32)  # -1: black border
        self._frame_shape: tuple[int, int] | None = None
        self._place = (0, 0, 1, 1, 1.0, 1.0)  # pad_x, pad_y, new_w, new_h, sx, sy

    def _letterbox(self, frame: np.ndarray, bgr: bool) -> None:
        """Fit the frame into the square input, centred, zero (black) border, straight into the
        float tensor: one resize and one scale-and-offset pass over the model's pixels only."""
        h, w = frame.shape[:2]
        size = self.spec.size
        if self._frame_shape != (h, w):
            s = size / max(h, w)
            nw, nh = max(1, round(w * s)), max(1, round(h * s))
            self._place = ((size - nw) // 2, (size - nh) // 2, nw, nh, nw / w, nh / h)
            self._tensor.fill(-1.0)
            self._frame_shape = (h, w)
        px, py, nw, nh, _, _ = self._place
        # Bilinear like MediaPipe's own warp: INTER_AREA was tried and scores small faces lower.
        small = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
        if bgr:  # swap the small image (contiguous): scaling a reversed view is several times slower
            small = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        region = self._tensor[0, py:py + nh, px:px + nw]
        np.multiply(small, np.float32(2.0 / 255.0), out=region, casting="unsafe")
        region -= 1.0

    def detect(self, frame_rgb: np.ndarray, bgr: bool = False) -> Detections:
        """Faces in an HxWx3 uint8 RGB frame (BGR with ``bgr=True``), best first."""
        self._letterbox(frame_rgb, bgr)
        self.interp.set_tensor(self._in, self._tensor)
        self.interp.invoke()
        logits = self.interp.get_tensor(self._cls).reshape(-1)
        keep = np.flatnonzero(logits > self._logit_thr)
        if keep.size == 0:
            return EMPTY
        keep = keep[np.argsort(-logits[keep], kind="stable")]
        raw = self.interp.get_tensor(self._reg)[0, keep]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[keep], -self.spec.score_clip, self.spec.score_clip)))
        # reverse_output_order: x, y, w, h; offsets in input pixels relative to the anchor centre.
        s = np.float32(self.spec.size)
        anchor = self.anchors[keep]
        centre = raw[:, :2] / s + anchor
        half = raw[:, 2:4] / (2 * s)
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        points = raw[:, 4:16].reshape(-1, 6, 2) / s + anchor[:, None, :]
        boxes, scores, points = weighted_nms(boxes, scores, points, self.spec.nms_iou)
        # Normalised tensor coords -> frame pixels: undo the letterbox, then pixel edges -> centres.
        px, py, _, _, sx, sy = self._place
        scale = np.array([s / sx, s / sy], np.float32)
        offset = np.array([px / sx + 0.5, py / sy + 0.5], np.float32)
        lo = boxes[:, :2] * scale - offset
        hi = boxes[:, 2:] * scale - offset
        points = points * scale - offset
        return Detections(np.concatenate([lo, hi - lo], axis=1).astype(np.float32),
                          scores.astype(np.float32), points.astype(np.float32))

    def close(self) -> None:
        self.interp = None

