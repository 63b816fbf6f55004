"""MediaPipe's FaceLandmarker with blendshapes, wrapped once (training and benchmark only; never
the runtime): the silver labels (``train.data.silver``), the real-face check's peer
(``train.realcheck.peer``) and the benchmark peer (``device_tests.peer_mediapipe``) all use it.

mediapipe is imported here, lazily, with a one-line install hint when it is missing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from runtime.errors import MissingDependency

MODES = ("IMAGE", "VIDEO")
INSTALL = "pip install 'au-edge[peer]'"


def import_mediapipe():
    """The mediapipe module.

    Raises:
        MissingDependency: mediapipe is not installed (with the pip line).
    """
    try:
        import mediapipe
    except ImportError:
        raise MissingDependency("mediapipe", INSTALL) from None
    return mediapipe


class FaceLandmarker:
    """One landmarker over BGR frames in IMAGE or VIDEO mode, blendshapes on.

    Args:
        task: the ``face_landmarker*.task`` bundle.
        mode: ``"IMAGE"`` (every frame on its own) or ``"VIDEO"`` (timestamps in ms, increasing).
        num_faces: faces to find at most.
    """

    def __init__(self, task: str | Path, mode: str = "IMAGE", num_faces: int = 1):
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}; one of {MODES}")
        mp = import_mediapipe()
        from mediapipe.tasks.python import BaseOptions, vision

        self._mp, self.mode = mp, mode
        opts = vision.FaceLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(task)),
                                            running_mode=getattr(vision.RunningMode, mode), num_faces=num_faces,
                                            output_face_blendshapes=True)
        self._lm = vision.FaceLandmarker.create_from_options(opts)

    @property
    def name(self) -> str:
        return f"mediapipe {self._mp.__version__} FaceLandmarker+blendshapes"

    def image(self, bgr: np.ndarray):
        """A BGR frame as MediaPipe's RGB image (kept apart from ``detect`` so it can be timed alone)."""
        import cv2

        return self._mp.Image(image_format=self._mp.ImageFormat.SRGB,
                              data=np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))

    def detect(self, image, t_ms: int | None = None) -> Any:
        """MediaPipe's result for one image (``t_ms`` required in VIDEO mode)."""
        if self.mode == "VIDEO":
            return self._lm.detect_for_video(image, int(t_ms))
        return self._lm.detect(image)

    def scores(self, bgr: np.ndarray, t_ms: int | None = None) -> dict[str, float] | None:
        """The first face's blendshape scores, or None when no face is found."""
        return blendshape_scores(self.detect(self.image(bgr), t_ms))

    def close(self) -> None:
        self._lm.close()

    def __enter__(self) -> FaceLandmarker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def blendshape_scores(result) -> dict[str, float] | None:
    """``{blendshape name: score}`` of a result's first face (None: no face)."""
    if not result.face_blendshapes:
        return None
    return {c.category_name: float(c.score) for c in result.face_blendshapes[0]}
