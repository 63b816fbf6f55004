"""The overlay for ``--record`` and ``--show``: boxes, track ids, the 5 points and per-face AU bars."""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from runtime.results import FaceAU, FrameResult

# BGR. Track colours cycle; active AUs are drawn warm and bright, inactive ones cool and dim.
TRACK_COLORS = ((80, 220, 80), (255, 160, 60), (60, 200, 255), (220, 90, 220), (90, 90, 255), (255, 255, 90))
POINT_COLORS = ((255, 80, 0), (0, 80, 255), (0, 255, 255), (255, 0, 255), (0, 255, 0))  # eyes, nose, mouth
ACTIVE, INACTIVE, TEXT_ON, TEXT_OFF = (0, 170, 255), (170, 120, 60), (255, 255, 255), (170, 170, 170)
FONT = cv2.FONT_HERSHEY_SIMPLEX


class Annotator:
    """Draws one frame once, however many outputs want it (recorder and window share the result)."""

    def __init__(self, aus: Sequence[str]):
        self.aus = list(aus)
        self._last: tuple | None = None  # (result, frame, annotated): holding them keeps identities valid

    def annotate(self, result: FrameResult, frame_bgr: np.ndarray) -> np.ndarray:
        if self._last is not None and self._last[0] is result and self._last[1] is frame_bgr:
            return self._last[2]
        image = draw_result(frame_bgr, result, self.aus)
        self._last = (result, frame_bgr, image)
        return image


def draw_result(frame_bgr: np.ndarray, result: FrameResult, aus: Sequence[str]) -> np.ndarray:
    """A copy of the frame with every face and a one-line frame header drawn on it."""
    image = np.ascontiguousarray(frame_bgr).copy()
    scale = max(0.75, min(image.shape[:2]) / 480.0)
    for face in result.faces:
        _draw_face(image, face, aus, scale)
    header = f"frame {result.frame}  {result.latency_ms:.1f} ms  faces {len(result.faces)}"
    _text(image, header, (int(6 * scale), int(18 * scale)), 0.5 * scale, TEXT_ON)
    return image


def _draw_face(image: np.ndarray, face: FaceAU, aus: Sequence[str], scale: float) -> None:
    color = TRACK_COLORS[int(face.track_id) % len(TRACK_COLORS)]
    x, y, w, h = (int(round(float(v))) for v in face.bbox)
    thick = max(1, round(2 * scale))
    cv2.rectangle(image, (x, y), (x + w, y + h), color, thick, cv2.LINE_AA)
    _text(image, f"id {face.track_id}  {face.score:.2f}", (x, max(12, y - int(5 * scale))), 0.45 * scale, color)
    for (px, py), pc in zip(np.asarray(face.landmarks5)[:, :2], POINT_COLORS):
        cv2.circle(image, (int(round(float(px))), int(round(float(py)))), max(2, round(2.5 * scale)), pc, -1, cv2.LINE_AA)
    _draw_bars(image, face, aus, (x, y, w, h), scale)


def _draw_bars(image: np.ndarray, face: FaceAU, aus: Sequence[str], box: tuple[int, int, int, int],
               scale: float) -> None:
    """One horizontal bar per AU beside the face (right if it fits, else left), on a darkened panel."""
    if not aus:
        return
    H, W = image.shape[:2]
    row, bar_w, label_w, font = max(9, int(13 * scale)), int(70 * scale), int(38 * scale), 0.36 * scale
    pw, ph = label_w + bar_w + 8, row * len(aus) + 6
    x, y, w, _ = box
    px = x + w + 6 if x + w + 6 + pw <= W else x - pw - 6
    px, py = int(np.clip(px, 0, max(0, W - pw))), int(np.clip(y, 0, max(0, H - ph)))
    panel = image[py:py + ph, px:px + pw]
    panel[:] = (panel * 0.35).astype(np.uint8)  # a dark panel that still shows the scene
    for i, au in enumerate(aus):
        top = py + 3 + i * row
        active = au in face.au_active
        _text(image, au, (px + 3, top + row - 3), font, TEXT_ON if active else TEXT_OFF, shadow=False)
        bx = px + label_w
        cv2.rectangle(image, (bx, top + 2), (bx + bar_w, top + row - 2), (70, 70, 70), 1)
        p = face.au_prob.get(au)
        if p is not None:
            fill = round(float(np.clip(p, 0.0, 1.0)) * bar_w)
            if fill > 0:
                cv2.rectangle(image, (bx, top + 2), (bx + fill, top + row - 2), ACTIVE if active else INACTIVE, -1)


def _text(image: np.ndarray, text: str, org: tuple[int, int], font_scale: float, color, shadow: bool = True) -> None:
    thick = max(1, round(font_scale * 1.5))
    if shadow:
        cv2.putText(image, text, org, FONT, font_scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(image, text, org, FONT, font_scale, color, thick, cv2.LINE_AA)
