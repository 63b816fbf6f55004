"""The MediaPipe face mesh on LiteRT: a ROI crop in, 468 or 478 3-D landmarks and a face logit out.

``face_landmark.tflite`` (mediapipe wheel) gives 468 points, the ``.task`` bundle's
``face_landmarks_detector.tflite`` 478 (irises added); both take a 192x192 RGB crop in [0, 1] and
return the points in crop pixels plus a face-presence logit. Which output is which is read from
the tensor sizes, not their names (the two files name them differently). The face logit becomes the
tracking test (``quality.presence``) and the reported ``score`` (``quality.confidence``).
"""
from __future__ import annotations

import cv2
import numpy as np

from runtime.face.models import FaceModelError, ModelFile, load_interpreter
from runtime.face.quality import confidence
from runtime.face.roi import Roi, crop_to_frame, warp_matrix


class FaceMesh:
    """``run(frame_rgb, roi) -> (landmarks (N, 3) frame pixels, face logit)``.

    z is scaled like x (frame pixels, relative depth; smaller is nearer the camera).

    Raises:
        FaceModelError: the file is not a valid model or not a face mesh.
    """

    def __init__(self, model: ModelFile, threads: int | None = None):
        self._model = model  # the interpreter reads from these bytes: keep them alive
        self.interp = load_interpreter(model, threads)
        inp = self.interp.get_input_details()[0]
        outs = self.interp.get_output_details()
        sizes = {o["index"]: int(np.prod(o["shape"])) for o in outs}
        pts = [i for i, n in sizes.items() if n in (468 * 3, 478 * 3)]
        score = [i for i, n in sizes.items() if n == 1]
        shape = tuple(int(d) for d in inp["shape"])
        square_rgb = len(shape) == 4 and shape[0] == 1 and shape[1] == shape[2] and shape[3] == 3
        if not square_rgb or len(pts) != 1 or not score:
            raise FaceModelError(
                f"face mesh {model.origin} has input {list(shape)} and outputs of sizes "
                f"{sorted(sizes.values())}, not a MediaPipe face mesh (1xSxSx3 -> 468/478 x 3 + score); "
                "pass face_landmark.tflite or a face_landmarker .task bundle")
        self.size = shape[1]
        self.num_points = sizes[pts[0]] // 3
        self._in, self._pts, self._score = inp["index"], pts[0], score[0]
        self._crop = np.zeros((self.size, self.size, 3), np.uint8)
        self._rgb = np.zeros((self.size, self.size, 3), np.uint8)
        self._input = self.interp.tensor(self._in)  # an accessor: write the input in place, no copy
        self._scale = np.float32(1.0 / 255.0)

    def confidence(self, logit: float) -> float:
        """The face's ``score`` for a logit of this model (``runtime.face.quality``)."""
        return confidence(logit, self.num_points)

    def crop(self, frame_rgb: np.ndarray, roi: Roi, m: np.ndarray | None = None) -> np.ndarray:
        """The model's upright input crop (uint8) for a ROI; replicated border as MediaPipe."""
        cv2.warpAffine(frame_rgb, warp_matrix(roi, self.size, m), (self.size, self.size), dst=self._crop,
                       flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        return self._crop

    def run(self, frame_rgb: np.ndarray, roi: Roi, bgr: bool = False) -> tuple[np.ndarray, float]:
        """Landmarks (N, 3) in frame pixels and the face logit for the face in ``roi``
        (``bgr=True``: the frame is BGR; only the small crop's channels are swapped)."""
        m = crop_to_frame(roi, self.size)
        crop = self.crop(frame_rgb, roi, m)
        if bgr:  # a contiguous swap then a contiguous scale: 5x faster than scaling a reversed view
            crop = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB, dst=self._rgb)
        tensor = self._input()  # a view of the interpreter's buffer: dropped before invoke (LiteRT's rule)
        np.multiply(crop, self._scale, out=tensor[0], casting="unsafe")
        del tensor
        self.interp.invoke()
        logit = float(self.interp.get_tensor(self._score).reshape(-1)[0])
        raw = self.interp.get_tensor(self._pts).reshape(self.num_points, 3)
        out = np.empty((self.num_points, 3), np.float32)
        out[:, :2] = raw[:, :2] @ m[:, :2].T.astype(np.float32) + m[:, 2].astype(np.float32)
        out[:, 2] = raw[:, 2] * np.float32(roi.side / self.size)
        return out, logit

    def close(self) -> None:
        self.interp = self._input = None
