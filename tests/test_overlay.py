"""The annotated frame's overlay: AU panels that never cover each other or, where the frame has room,
the face, on real photos; header text whose shadow is the text shifted at every frame size."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from runtime.outputs import draw_result
from runtime.results import FaceAU, FrameResult

# --- the overlay with many faces ----------------------------------------------------------------------

def test_overlay_panels_never_cover_each_other_with_five_faces(face_model, media):
    from runtime.face import FaceStage

    image = cv2.imread(str(media / "multi_face.jpg"))
    with FaceStage(face_model=face_model, max_faces=8) as stage:
        found = stage.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    assert len(found) >= 5
    from runtime.aus import DEFAULT_MODEL_AUS, names

    aus = names(DEFAULT_MODEL_AUS)  # 15 AUs: tall panels
    faces = [FaceAU(track_id=f.track_id, bbox=tuple(f.bbox), score=f.score, landmarks5=f.points5,
                    au_prob={a: 0.5 for a in aus}, au_active={"AU12"}) for f in found]
    panels: list = []
    drawn = draw_result(image, FrameResult(frame=0, time_s=0.0, faces=faces), aus, panels=panels)
    assert len(panels) == len(faces)  # every face got its panel
    H, W = image.shape[:2]
    for i, (x, y, w, h) in enumerate(panels):
        assert 0 <= x and 0 <= y and x + w <= W and y + h <= H
        for (x2, y2, w2, h2) in panels[i + 1:]:
            assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y, (panels[i], (x2, y2, w2, h2))
        inside = drawn[y + 2:y + h - 2, x + 2:x + w - 2].astype(int)
        assert np.abs(inside - image[y + 2:y + h - 2, x + 2:x + w - 2]).mean() > 5  # really drawn there
    # the same five faces crowded into one corner of a small frame: panels shrink or are counted hidden
    small = np.full((240, 320, 3), 80, np.uint8)
    crowd = [FaceAU(track_id=i, bbox=(10 + 30 * i, 10, 28, 28), score=0.9, landmarks5=np.full((5, 2), 20.0),
                    au_prob={a: 0.5 for a in aus}, au_active=set()) for i in range(5)]
    panels = []
    draw_result(small, FrameResult(frame=0, time_s=0.0, faces=crowd), aus, panels=panels)
    assert 3 <= len(panels) <= 5
    for i, (x, y, w, h) in enumerate(panels):
        for (x2, y2, w2, h2) in panels[i + 1:]:
            assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y


# --- overlay text and panel placement -----------------------------------------------------------------

def _shadow_fit(image: np.ndarray) -> tuple[float, int, int, int]:
    """How well the dark pixels are the bright text shifted: (fit in [0, 1], dx, dy, text height px).

    Measured on the pixels alone (white text, black shadow, a gray frame): the shadow of glyphs must
    lie where the text lies shifted, and fill it where the text does not cover it.
    """
    g = image[..., 1].astype(int)
    H, W = g.shape
    text, text_any, dark, dark_any = g > 200, g > 140, g < 50, g < 116
    best = (0.0, 0, 0, 0)
    for dy in range(6):
        for dx in range(6):
            if dx == dy == 0:
                continue
            moved, moved_any = np.zeros_like(text), np.zeros_like(text)
            moved[dy:, dx:], moved_any[dy:, dx:] = text[:H - dy, :W - dx], text_any[:H - dy, :W - dx]
            uncovered = moved & ~text_any
            fills = (uncovered & dark_any).sum() / max(1, uncovered.sum())
            inside = (dark & moved_any).sum() / max(1, dark.sum())
            if min(fills, inside) > best[0]:
                rows = np.flatnonzero(text.any(axis=1))
                best = (min(fills, inside), dx, dy, int(rows[-1] - rows[0] + 1) if len(rows) else 0)
    return best


@pytest.mark.parametrize("width", [320, 1600])
def test_overlay_text_shadow_is_the_text_shifted_at_every_size(width):
    """The header was illegible on large frames: its shadow was a thicker stroke, and Hershey glyphs
    advance by their thickness, so shadow and text drifted apart along the line."""
    frame = np.full((width * 3 // 4, width, 3), 128, np.uint8)
    drawn = draw_result(frame, FrameResult(frame=12345, time_s=0.0, latency_ms=12.3), ["AU12"])
    fit, dx, dy, height = _shadow_fit(drawn)
    assert fit > 0.85 and dx == dy >= 1, (fit, dx, dy)
    assert height >= width / 80  # the text grows with the frame (>= 20 px tall at 1600 px)


def test_au_panels_stay_off_the_face_when_the_frame_has_room(face_model, media):
    from runtime.aus import DEFAULT_MODEL_AUS, names
    from runtime.face import FaceStage

    aus = names(DEFAULT_MODEL_AUS)  # 15 AUs: tall panels
    photos = sorted((media / "people").glob("*.jpg"))
    assert len(photos) >= 8
    with FaceStage(face_model=face_model, max_faces=None) as stage:
        for path in photos:  # close-ups: the face fills most of a 600x800 frame
            image = cv2.imread(str(path))
            found = stage.detect(image, bgr=True)
            assert len(found) == 1, path.name
            x, y, w, h = (float(v) for v in found[0].bbox)
            face_au = FaceAU(track_id=1, bbox=(x, y, w, h), score=0.9, landmarks5=found[0].points5,
                             au_prob={a: 0.5 for a in aus}, au_active={"AU12"})
            panels: list = []
            draw_result(image, FrameResult(frame=0, time_s=0.0, faces=[face_au]), aus, panels=panels)
            assert len(panels) == 1, path.name
            px, py, pw, ph = panels[0]
            assert px + pw <= x or x + w <= px or py + ph <= y or y + h <= py, (path.name, panels[0], (x, y, w, h))
    # a face that fills the frame leaves no room: its panel is still drawn (the smallest, over it)
    image = np.full((480, 640, 3), 90, np.uint8)
    full = FaceAU(track_id=1, bbox=(0, 0, 640, 480), score=0.9, landmarks5=np.full((5, 2), 200.0),
                  au_prob={a: 0.5 for a in aus}, au_active=set())
    panels = []
    draw_result(image, FrameResult(frame=0, time_s=0.0, faces=[full]), aus, panels=panels)
    assert len(panels) == 1
