"""``python -m device_tests.stages``: what each part of a frame costs alone, on a clip's real faces.

``device_tests.pipeline`` times the stages as they run together, where threads and caches of one part
slow the next. This times each part by itself, on the frames, face regions and meshes that a video-mode
run of the clip produced, so it shows how much of a frame is model time that no code change removes:

- ``mesh``: the face mesh on its ROI (crop + LiteRT), and ``mesh_invoke``: its LiteRT call alone;
- ``align``: the aligned AU crop (``runtime.align.align_face``);
- ``au``: the AU engine on that crop (input LUT, run, calibration), and ``au_invoke``: the run alone
  (LiteRT engines);
- ``measures``: head pose and eye closure from the mesh;
- ``follow``: what a frame between mesh runs costs instead of ``mesh`` with ``--mesh-every N``
  (``runtime.face.follow``: optical flow of the last mesh's rigid points from the previous frame,
  its region's grey copy included).

Medians over ``--runs`` calls, cycling through the clip's frames, in rounds that time every part in
turn (each part's calls consecutive, as alone, but none at a quieter moment than another). JSON: ``{"frames", "runs",
"median_ms": {part: ms}, "engine", "device"}``.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np

from device_tests.results import write_json
from device_tests.sysinfo import device
from runtime.cli import MAX_FRAMES, TIMED_RUNS, threads_option
from train.cli import OneLineParser, guarded

ROUNDS = 10  # rounds of blocks: every part timed in each, so drift lands on all parts alike


def _median_ms(parts: dict[str, Callable[[int], object]], runs: int, frames: int) -> dict[str, float]:
    """Each part's median ms, timed in ``ROUNDS`` rounds of one block of consecutive calls per part
    (warm, as alone), so a burst of other work on a shared machine lands on all parts alike: timed in
    one block each, the AU engine's median once came out below its own model call on a noisy AVX2 EPYC."""
    times: dict[str, list[float]] = {name: [] for name in parts}
    done = 0
    for r in range(ROUNDS):
        block = (runs - done) // (ROUNDS - r)
        for name, fn in parts.items():
            fn(done % frames)  # warm this part's caches before its block
            for i in range(done, done + block):
                t0 = time.perf_counter()
                fn(i % frames)
                times[name].append((time.perf_counter() - t0) * 1e3)
        done += block
    return {name: round(float(np.median(t)), 4) for name, t in times.items()}


def time_stages(engine: str, source: str, frames: int = 100, runs: int = 200, threads: int | None = None,
                face_model: str | None = None) -> dict:
    """Each part's median ms alone (see the module docstring)."""
    from runtime.align import align_face
    from runtime.detector import AUDetector
    from runtime.face.follow import FlowFollower
    from runtime.face.roi import landmark_box

    with AUDetector(engine, max_faces=1, threads=threads, face_model=face_model, mode="video") as det:
        seen = []  # (frame, ROI of the mesh run, landmarks, five points) of frames with a face
        for result, frame in det.stream_frames(source, max_frames=frames):
            tracks = [t for t in det.faces._tracker.tracks if t.missed == 0]
            if result.faces and tracks:
                face = result.faces[0]
                seen.append((frame, tracks[0].roi, face.landmarks, np.asarray(face.landmarks5)))
        if len(seen) < 2:
            raise ValueError(f"{source}: fewer than 2 of its first {frames} frames show a face; use a clip with one")
        mesh, eng, a = det.faces.mesh, det.engine, det._align
        h, w = seen[0][0].shape[:2]

        def crop(i: int) -> np.ndarray:
            return align_face(seen[i][0], seen[i][3], crop_size=int(a["crop_size"]), template=a["template"],
                              scale=float(a["scale"]), out_size=det._size)[0]

        crops = [np.ascontiguousarray(crop(i)[..., ::-1])[None] for i in range(len(seen))]
        follower = FlowFollower()
        patches = [follower.patch(f, lm, landmark_box(lm), True) for f, _, lm, _ in seen]

        def follow(i: int) -> None:
            j = max(i, 1)
            if patches[j - 1] is not None:  # None: a face too small to follow (the mesh runs there)
                follower.follow(patches[j - 1], seen[j][0], seen[j - 1][2], True)

        n = len(seen)
        parts: dict[str, Callable[[int], object]] = {
            "mesh": lambda i: mesh.run(seen[i][0], seen[i][1], True),
            "mesh_invoke": lambda i: mesh.interp.invoke(),
            "align": crop,
            "au": lambda i: eng.infer_with_intensity(crops[i]),
            "measures": lambda i: det.measures(seen[i][2], w, h, None, float(i), eye_landmarks=seen[i][2]),
            "follow": follow,
        }
        if hasattr(eng, "interp"):  # LiteRT: the run alone, on the input the last "au" call set
            parts["au_invoke"] = lambda i: eng.interp.invoke()
        median = _median_ms(parts, runs, n)
    return {"frames": n, "runs": runs, "median_ms": median, "engine": str(engine), "device": device()}


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m device_tests.stages", description=__doc__.splitlines()[0])
    p.add_argument("--engine", default="default")
    p.add_argument("--source", required=True, help="a clip with one face (e.g. the Pexels clip)")
    p.add_argument("--frames", type=MAX_FRAMES, default=100, help="frames of the clip to take faces from")
    p.add_argument("--runs", type=TIMED_RUNS, default=200, help="timed calls per part")
    p.add_argument("--threads", type=threads_option(), default=None,
                   help="CPU threads for inference (1 to 2 per CPU core)")
    p.add_argument("--face-model", default=None)
    p.add_argument("--json", metavar="OUT")
    return guarded(_run, p.parse_args(argv))


def _run(args) -> int:
    res = time_stages(args.engine, args.source, args.frames, args.runs, args.threads, args.face_model)
    write_json(res, args.json)
    print(" ".join(f"{k} {v:.3f}" for k, v in res["median_ms"].items()) + f" ms (median of {res['runs']}, "
          f"{res['frames']} faces)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
