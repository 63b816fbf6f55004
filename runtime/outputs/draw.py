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


Rect = tuple[int, int, int, int]  # x, y, w, h
PANEL_SHRINK = (1.0, 0.75, 0.55)  # panel sizes tried, as fractions of the frame's drawing scale
LABEL_H = 16  # height of a face's label line above its box, at drawing scale 1


def draw_result(frame_bgr: np.ndarray, result: FrameResult, aus: Sequence[str],
                panels: list[Rect] | None = None) -> np.ndarray:
    """A copy of the frame with every face and a one-line frame header drawn on it.

    AU panels are laid out so that they never cover one another (``layout_panels``); a face whose
    panel finds no free place is counted in the header (``panels hidden``). ``panels``, when given,
    receives the rectangles drawn (tests and tools check the layout with it).
    """
    image = np.ascontiguousarray(frame_bgr).copy()
    scale = max(0.75, min(image.shape[:2]) / 480.0)
    header = f"frame {result.frame}  {result.latency_ms:.1f} ms  faces {len(result.faces)}"
    org, font = (int(6 * scale), int(18 * scale)), 0.5 * scale
    (tw, _), base = cv2.getTextSize(header + "  (panels hidden: 9)", FONT, font, text_style(font)[0])
    header_rect = (0, 0, org[0] + tw + 4, org[1] + base + text_style(font)[1] + 2)
    places = layout_panels(image.shape[:2], [f.bbox for f in result.faces], len(aus), scale, [header_rect])
    hidden = 0
    for face, place in zip(result.faces, places):
        _draw_face(image, face, scale)
        if place is None:
            hidden += bool(aus)
            continue
        rect, s = place
        _draw_bars(image, face, aus, rect, s)
        if panels is not None:
            panels.append(rect)
    if hidden:
        header += f"  (panels hidden: {hidden})"
    _text(image, header, org, font, TEXT_ON)
    return image


def panel_size(n_aus: int, scale: float) -> tuple[int, int]:
    """Width and height of one face's AU panel at a drawing scale."""
    row, bar_w, label_w = max(7, int(13 * scale)), int(70 * scale), int(38 * scale)
    return label_w + bar_w + 8, row * n_aus + 6


def layout_panels(shape: tuple[int, int], boxes: Sequence[Sequence[float]], n_aus: int,
                  scale: float, reserved: Sequence[Rect] = ()) -> list[tuple[Rect, float] | None]:
    """One place per face for its AU panel: (rectangle, drawing scale), or None when none is free.

    Panels never overlap each other and stay inside the frame, and never cover a face box while
    the frame has room for them elsewhere: beside the face on the side with the most room, else
    the free place nearest to it, trying smaller panels (``PANEL_SHRINK``) before covering any
    face. Only a frame without such room (a face filling it) gets the smallest panel over a face,
    as near the face's edge as it can be. Faces are placed largest first, so the nearest faces keep
    the best spots. A face's box includes its label line above it (``id 1  0.98``); ``reserved``
    rectangles (the frame's header line) are kept free like other panels.
    """
    H, W = shape
    order = sorted(range(len(boxes)), key=lambda i: -float(boxes[i][2]) * float(boxes[i][3]))
    faces = np.array([[float(v) for v in b] for b in boxes], np.float64).reshape(-1, 4)
    label = LABEL_H * scale
    faces[:, 1] -= label
    faces[:, 3] += label
    placed: list[Rect] = list(reserved)
    out: list[tuple[Rect, float] | None] = [None] * len(boxes)
    if n_aus == 0:
        return out
    for i in order:
        for cover in (False, True):  # off every face at any size first; covering only as a last resort
            for shrink in (PANEL_SHRINK[::-1] if cover else PANEL_SHRINK):
                s = scale * shrink
                pw, ph = panel_size(n_aus, s)
                if pw > W or ph > H:
                    continue
                rect = _best_place(faces[i], faces, placed, pw, ph, W, H, step=max(4, int(8 * s)), cover=cover)
                if rect is not None:
                    placed.append(rect)
                    out[i] = (rect, s)
                    break
            if out[i] is not None:
                break
    return out


def _best_place(box: np.ndarray, faces: np.ndarray, placed: list[Rect], pw: int, ph: int, W: int, H: int,
                step: int, cover: bool = False) -> Rect | None:
    """The free pw x ph rectangle nearest ``box``: first beside it (the side with the most room
    first), else anywhere on a grid; over a face box only when ``cover``."""
    x, y, w, h = box
    gap = 6
    beside = [((x + w + gap, y), W - (x + w)), ((x - pw - gap, y), x), ((x, y + h + gap), H - (y + h)),
              ((x, y - ph - gap), y)]  # (top-left corner, room on that side)
    beside.sort(key=lambda c: -c[1])
    cand = np.array([(int(np.clip(cx, 0, W - pw)), int(np.clip(cy, 0, H - ph))) for (cx, cy), _ in beside])
    rect = _first_free(cand, faces, placed, pw, ph, strict_faces=True)
    if rect is not None:
        return rect
    gx, gy = np.meshgrid(np.arange(0, W - pw + 1, step), np.arange(0, H - ph + 1, step))
    grid = np.stack([gx.ravel(), gy.ravel()], 1)
    cx, cy = x + w / 2, y + h / 2
    # distance from the face centre to the nearest point of the candidate panel
    dx = np.maximum(0, np.maximum(grid[:, 0] - cx, cx - (grid[:, 0] + pw)))
    dy = np.maximum(0, np.maximum(grid[:, 1] - cy, cy - (grid[:, 1] + ph)))
    free = ~_overlaps(grid, pw, ph, np.array(placed, np.float64).reshape(-1, 4))
    if not free.any():
        return None
    covers = _overlaps(grid, pw, ph, faces)
    if not cover:
        free &= ~covers
        if not free.any():
            return None
    # over a face: as far out from its centre as possible, so the least of it is hidden
    cost = np.where(covers, -np.hypot(dx, dy), np.hypot(dx, dy)) if cover else np.hypot(dx, dy)
    cost[~free] = np.inf
    k = int(np.argmin(cost))
    return int(grid[k, 0]), int(grid[k, 1]), pw, ph


def _first_free(cand: np.ndarray, faces: np.ndarray, placed: list[Rect], pw: int, ph: int,
                strict_faces: bool) -> Rect | None:
    bad = _overlaps(cand, pw, ph, np.array(placed, np.float64).reshape(-1, 4))
    if strict_faces:
        bad |= _overlaps(cand, pw, ph, faces)
    for (cx, cy), b in zip(cand, bad):
        if not b:
            return int(cx), int(cy), pw, ph
    return None


def _overlaps(xy: np.ndarray, pw: int, ph: int, rects: np.ndarray) -> np.ndarray:
    """For each top-left corner in ``xy``: does a pw x ph rectangle there intersect any of ``rects``?"""
    if len(rects) == 0 or len(xy) == 0:
        return np.zeros(len(xy), bool)
    x0, y0 = xy[:, 0:1].astype(np.float64), xy[:, 1:2].astype(np.float64)
    rx, ry, rw, rh = (rects[:, k][None, :] for k in range(4))
    hit = (x0 < rx + rw) & (rx < x0 + pw) & (y0 < ry + rh) & (ry < y0 + ph)
    return hit.any(axis=1)


def _draw_face(image: np.ndarray, face: FaceAU, scale: float) -> None:
    color = TRACK_COLORS[int(face.track_id) % len(TRACK_COLORS)]
    x, y, w, h = (int(round(float(v))) for v in face.bbox)
    thick = max(1, round(2 * scale))
    cv2.rectangle(image, (x, y), (x + w, y + h), color, thick, cv2.LINE_AA)
    _text(image, f"id {face.track_id}  {face.score:.2f}", (x, max(12, y - int(5 * scale))), 0.45 * scale, color)
    for (px, py), pc in zip(np.asarray(face.landmarks5)[:, :2], POINT_COLORS):
        center = (int(round(float(px))), int(round(float(py))))
        cv2.circle(image, center, max(2, round(2.5 * scale)), pc, -1, cv2.LINE_AA)


def _draw_bars(image: np.ndarray, face: FaceAU, aus: Sequence[str], rect: Rect, scale: float) -> None:
    """One horizontal bar per AU on a darkened panel at ``rect``, with a tick of the track colour."""
    row, bar_w, label_w, font = max(7, int(13 * scale)), int(70 * scale), int(38 * scale), 0.36 * scale
    px, py, pw, ph = rect
    panel = image[py:py + ph, px:px + pw]
    panel[:] = (panel * 0.35).astype(np.uint8)  # a dark panel that still shows the scene
    color = TRACK_COLORS[int(face.track_id) % len(TRACK_COLORS)]
    cv2.rectangle(image, (px, py), (px + pw - 1, py + ph - 1), color, 1)  # which face it belongs to
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


def text_style(font_scale: float) -> tuple[int, int]:
    """Stroke thickness and drop-shadow offset (px) for text at ``font_scale``."""
    thick = max(1, round(font_scale * 1.5))
    return thick, max(1, round(thick * 0.75 + 0.25))


def _text(image: np.ndarray, text: str, org: tuple[int, int], font_scale: float, color, shadow: bool = True) -> None:
    """Text with a drop shadow: the same glyphs in black, shifted down-right. (A thicker black stroke
    is not a shadow: Hershey glyphs advance by their thickness, so it drifted from the text.)"""
    thick, off = text_style(font_scale)
    if shadow:
        cv2.putText(image, text, (org[0] + off, org[1] + off), FONT, font_scale, (0, 0, 0), thick, cv2.LINE_AA)
    cv2.putText(image, text, org, FONT, font_scale, color, thick, cv2.LINE_AA)
