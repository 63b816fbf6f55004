"""MediaPipe-style face tracking: the detector finds faces, the mesh follows them.

Each tracked face's next ROI comes from its own landmarks, so the (slower, less precise) detector
runs only when needed (a *search*, ``runtime.face.search``):

- with every detector pass (both ranges; every tile of a large frame on a scene cut or the first
  frame, else the next few): on a scene cut, when a track is just lost, and on the first frame
  without any face;
- with one range, the ranges taking turns (the short-range model costs a quarter of the
  full-range one): while no face is tracked, while a lost track waits, every ``detect_every``
  frames while fewer than ``max_faces`` are tracked (newcomers), and while a tracked face scores
  below ``quality.RELIABLE`` (the mesh is losing it: a detection may put its ROI right again)
  after ``WEAK_RETRY`` frames, then after twice as long each time (up to ``WEAK_RETRY_MAX``,
  back to ``WEAK_RETRY`` after that many frames without a search): a hand held over the face
  costs a few searches, not one every 3 frames.
  Such a search uses the short-range model alone when the weak faces are large (``NEAR_FACE``),
  as MediaPipe's tasks choose their detector by face size.

With ``mesh_every`` N > 1 a reliably tracked face (score >= RELIABLE) is meshed at least every N
frames and followed by optical flow between (``runtime.face.follow``); a refused flow runs the mesh.

A face is lost when the mesh's presence drops below ``min_presence`` (a blink into a blur, a hand
in front, a dropped frame); its track is kept for ``grace_frames`` frames, its mesh tried again at
the last ROI, and a detection overlapping that ROI (IoU > ``REASSOCIATE_IOU``) is given back its
id. A face gone for longer gets a new id (there is no re-identification by appearance).

Never two tracks on one face: a detection over a confidently tracked face is skipped (no mesh run),
one over a weakly tracked face is meshed and, if the mesh is surer there, the track moves to it
(same id); tracks whose landmark boxes come to overlap (IoS > ``SAME_FACE_IOS``) merge into the
older id, keeping the better view. A scene cut (``runtime.face.scenecut``) ends every track: the
faces of the new scene get new ids, so nothing keyed by id (AU smoothing, neutral baseline) carries
over from one person to the next.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from runtime.face import roi as R
from runtime.face.follow import FlowFollower, Patch
from runtime.face.mesh import FaceMesh
from runtime.face.quality import RELIABLE, logit_of
from runtime.face.scenecut import SceneCuts
from runtime.face.search import FaceSearch

DUPLICATE_IOU = 0.5  # as MediaPipe's AssociationNormRectCalculator (min_similarity_threshold)
SAME_FACE_IOS = 0.5  # landmark boxes: intersection over the smaller one above this = one face
REASSOCIATE_IOU = 0.3  # a detection this close to a lost track's last ROI is that face again
GRACE_FRAMES = 8  # ~0.3 s at 25-30 fps: a blink, a blurred or dropped frame, a hand passing
WEAK_RETRY = 3  # frames before the first search while a tracked face scores below RELIABLE
WEAK_RETRY_MAX = 24  # the longest wait between such searches (the wait doubles)
VIDEO_TILES = 2  # tiles of a large frame per full-range search in video mode (they take turns)
NEAR_FACE = 0.2  # of the frame's long side: a face this large the short-range model finds alone


@dataclass
class Track:
    track_id: int
    landmarks: np.ndarray  # (N, 3) frame pixels, as last seen
    logit: float           # the mesh's face logit
    score: float           # quality.confidence of the logit
    roi: R.Roi             # where the face is looked for in the next frame
    bbox: np.ndarray       # x0, y0, x1, y1 of the landmarks
    missed: int = 0        # consecutive frames without the face (0: seen in this frame)
    meshed: bool = True    # the landmarks are this frame's mesh (False: the last one, moved by flow)
    unmeshed: int = 0      # consecutive frames followed by flow since the last mesh run
    patch: Patch | None = None  # this frame's region of the face, where the next frame's flow starts

    def box(self) -> np.ndarray:
        """x0, y0, x1, y1 of the landmarks."""
        return self.bbox

    def take(self, view: Track) -> None:
        """Follow the face to a new view of it (keeping this track's id)."""
        self.landmarks, self.logit, self.score, self.roi, self.bbox, self.missed = (
            view.landmarks, view.logit, view.score, view.roi, view.bbox, 0)
        self.meshed, self.unmeshed, self.patch = view.meshed, view.unmeshed, view.patch

    def moved(self, landmarks: np.ndarray) -> None:
        """Follow the face to landmarks moved by flow (the mesh did not run; score kept)."""
        self.landmarks, self.bbox = landmarks, R.landmark_box(landmarks)
        self.roi = R.from_landmarks(landmarks, box=self.bbox)
        self.meshed, self.unmeshed = False, self.unmeshed + 1


class Tracker:
    """Track state (ids, ROIs, search schedule) over a face search and a mesh it does not own.

    ``beyond_max`` after each call: faces the detector found in that frame but that were not
    processed because ``max_faces`` were already held (0 when the detector did not run).
    ``cut``: whether the last ``step`` frame was a scene cut.
    """

    def __init__(self, search: FaceSearch, mesh: FaceMesh, max_faces: int | None, detect_every: int,
                 min_presence: float, grace_frames: int = GRACE_FRAMES, scene_cuts: bool = True,
                 mesh_every: int = 1):
        self.search, self.mesh = search, mesh
        self.mesh_every = mesh_every
        self.follower = FlowFollower()
        self.bgr = False  # the frames' channel order (set per call by FaceStage)
        self.set_cap(max_faces)
        self.detect_every, self.grace_frames = detect_every, grace_frames
        self._min_logit = logit_of(min_presence)
        self.cuts = SceneCuts() if scene_cuts else None
        self.reset()

    def set_cap(self, max_faces: int | None) -> None:
        """Most faces held at once from the next frame on (``None``: no cap); for a new source, before ``reset``."""
        self.max_faces = max_faces
        self._cap = math.inf if max_faces is None else max_faces

    def reset(self) -> None:
        self.tracks: list[Track] = []  # seen and lost-in-grace tracks
        self._next_id = 1
        self._since_detect = 0
        self._empty = 0  # consecutive frames without any tracked face
        self._weak_wait = WEAK_RETRY  # frames between searches while a face scores low
        self._frame_side = 1  # the last frame's long side (px)
        self.beyond_max = 0
        self.cut = False
        if self.cuts is not None:
            self.cuts.reset()

    def step(self, frame: np.ndarray) -> list[Track]:
        """Follow the tracked faces into this frame, searching for (new or lost) ones when due."""
        self._since_detect += 1
        self.beyond_max = 0
        self._frame_side = max(frame.shape[:2])
        self.cut = self.cuts is not None and self.cuts(frame)
        if self.cut:
            self.tracks = []
        for t in self.tracks:
            if self._follow(frame, t):
                continue
            view = self._mesh(frame, t.roi)
            if view is not None:
                t.take(view)
            else:
                t.missed += 1
        seen = _merge_duplicates([t for t in self.tracks if t.missed == 0])
        lost = [t for t in self.tracks if 0 < t.missed <= self.grace_frames]
        plan = self._plan(seen, lost)
        if plan is not None:
            self._since_detect = 0
            for t in self._new_faces(frame, seen, lost, *plan):
                if not t.track_id:
                    t.track_id, self._next_id = self._next_id, self._next_id + 1
                seen.append(t)
            lost = [t for t in lost if t.missed > 0]
        self._empty = 0 if seen else self._empty + 1
        self.tracks = sorted(seen + lost, key=lambda t: t.track_id)
        if self.mesh_every > 1:
            for t in seen:
                if t.meshed or t.patch is None:  # a followed face may keep its region's patch
                    t.patch = self.follower.patch(frame, t.landmarks, t.bbox, self.bgr)
        return [t for t in self.tracks if t.missed == 0]

    def _follow(self, frame: np.ndarray, t: Track) -> bool:
        """Move a reliably tracked face by flow instead of a mesh run, when one is not due."""
        if t.unmeshed >= self.mesh_every - 1 or t.missed or t.patch is None or t.score < RELIABLE:
            return False
        followed = self.follower.follow(t.patch, frame, t.landmarks, self.bgr)
        if followed is None:
            return False
        t.moved(followed[0])
        t.patch = followed[1]
        return True

    def _plan(self, seen: list[Track], lost: list[Track]) -> tuple[tuple[str, ...], int | None] | None:
        """This frame's search: (detector ranges, tiles: None all / k next), or None for none."""
        first = not seen and not lost and self._empty == 0  # faces just gone, or the first frame
        if self.cut or first:
            return self.search.ranges, None
        if any(t.missed == 1 for t in lost):
            return self.search.ranges, VIDEO_TILES
        weak = [t for t in seen if t.score < RELIABLE]
        if not weak:
            if self._since_detect >= WEAK_RETRY_MAX:  # a long good stretch: back to quick retries
                self._weak_wait = WEAK_RETRY
        elif self._since_detect >= self._weak_wait:
            self._weak_wait = min(2 * self._weak_wait, WEAK_RETRY_MAX)
            if not lost and seen and self.search.short is not None and all(self._near(t) for t in weak):
                return ("short",), 0  # a face this large is the short-range model's (4x cheaper)
            return (self.search.next_range(),), VIDEO_TILES
        periodic = (self.detect_every > 0 and self._since_detect >= self.detect_every
                    and len(seen) < self._cap)
        if not seen or lost or periodic:
            return (self.search.next_range(),), VIDEO_TILES
        return None

    def _near(self, t: Track) -> bool:
        """Whether a face is large enough for the short-range detector (NEAR_FACE of the frame)."""
        x0, y0, x1, y1 = t.bbox
        return max(x1 - x0, y1 - y0) >= NEAR_FACE * self._frame_side

    def detect(self, frame: np.ndarray) -> list[Track]:
        """Faces of one image (every detector pass), best detection first, numbered 1..n;
        tracking state untouched (``beyond_max`` is set for this image)."""
        found = self._new_faces(frame, [], [], self.search.ranges, None, refine=True)
        for i, t in enumerate(found, 1):
            t.track_id = i
        return found

    def _mesh(self, frame: np.ndarray, roi: R.Roi) -> Track | None:
        """The mesh's view of the face in ``roi`` (id 0), or None when it finds none there."""
        lm, logit = self.mesh.run(frame, roi, self.bgr)
        if logit < self._min_logit:
            return None
        box = R.landmark_box(lm)
        return Track(0, lm, logit, self.mesh.confidence(logit), R.from_landmarks(lm, box=box), box)

    def _new_faces(self, frame: np.ndarray, existing: list[Track], lost: list[Track],
                   ranges: tuple[str, ...], tiles: int | None, refine: bool = False) -> list[Track]:
        """Detections the mesh confirms that are not already tracked, up to max_faces in all.

        A detection over a lost track's last ROI revives that track (same object, same id; it is
        returned with ``missed = 0``); one over a tracked face updates that track when the mesh is
        surer there (not returned); other new ones come back with ``track_id = 0``. Faces past
        ``max_faces`` are counted in ``self.beyond_max``, not run through the mesh. ``refine``
        (image mode; video mode's next frame does it anyway): a face the mesh is unsure of at
        the detection's ROI gets a second run at the ROI of its own landmarks.
        """
        dets = self.search.run(frame, self.bgr, ranges, tiles)
        found: list[Track] = []
        self.beyond_max = 0
        for box, kps in zip(dets.boxes, dets.keypoints):
            roi = R.from_detection(box, kps)
            others = existing + found
            over = [t for t in others if R.iou(roi.box(), t.roi.box()) > DUPLICATE_IOU]
            if any(t.score >= RELIABLE for t in over):
                continue  # a confidently tracked face: no mesh run (the common case)
            waiting = [t for t in lost if t.missed > 0]
            owner = max(waiting, key=lambda t: R.iou(roi.box(), t.roi.box()), default=None)
            if owner is not None and R.iou(roi.box(), owner.roi.box()) <= REASSOCIATE_IOU:
                owner = None
            # A lost track keeps its slot through its grace period: it is not a newcomer's.
            if owner is None and not over and len(others) + len(waiting) >= self._cap:
                self.beyond_max += 1
                continue
            view = self._mesh(frame, roi)
            if view is None:
                continue
            if refine and view.score < RELIABLE:  # a poor detection box: the mesh again, at the face's ROI
                again = self._mesh(frame, view.roi)
                if again is not None and again.logit > view.logit:
                    view = again
            same = _same_face(view, others)
            if same is not None:
                if view.logit > same.logit:
                    same.take(view)
                continue
            if owner is not None:
                owner.take(view)
                view = owner
            found.append(view)
        return found


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over the smaller of two x0, y0, x1, y1 boxes."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return float(iw * ih / max(smaller, 1e-9))


def _same_face(view: Track, tracks: list[Track]) -> Track | None:
    """The track whose landmark box holds most of ``view``'s (above SAME_FACE_IOS), if any."""
    box = view.box()
    best = max(tracks, key=lambda t: _overlap(box, t.box()), default=None)
    return best if best is not None and _overlap(box, best.box()) > SAME_FACE_IOS else None


def _merge_duplicates(tracks: list[Track]) -> list[Track]:
    """Tracks that drifted onto one face become one: the older id, with the surer view."""
    out: list[Track] = []
    for t in sorted(tracks, key=lambda t: t.track_id):
        same = _same_face(t, out)
        if same is None:
            out.append(t)
        elif t.logit > same.logit:
            same.take(t)
    return out
