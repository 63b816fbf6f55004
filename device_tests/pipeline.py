"""``python -m device_tests.pipeline``: end-to-end frames/s and per-stage ms on a clip, next to a peer.

Our timing is ``AUDetector.process`` per frame (face, align, AU, post; decode runs in its own thread
and is reported apart), measured in this process; the peer (MediaPipe FaceLandmarker with
blendshapes) runs on the same clip in a child process, timed around ``detect_for_video`` (its decode
and colour conversion outside). ``fps`` and ``peer.fps`` are therefore on the same basis, both
without decode: 1000 / mean ms per frame; ``ratio_vs_peer`` = peer ms/frame ÷ our ms/frame (> 1: we
are faster). ``fps_end_to_end`` is ours with decode (frames / wall time).

JSON (CONTRACTS): ``{"frames", "frames_with_face", "fps", "p50_ms", "p99_ms", "stages_ms": {"decode",
"face", "align", "au", "post"}, "peer": {"name", "fps"} | null, "ratio_vs_peer"}`` plus
``stages_p50_ms``/``stages_p99_ms`` (per stage), ``basis``, ``mesh_every`` and ``faces_meshed`` (our mesh
runs; ``--mesh-every N``: optical flow between), the engine and the device.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from device_tests.sysinfo import current_rss_mb, device, rss_kinds_mb, rss_mb
from runtime.cli import MAX_FRAMES, MESH_EVERY, REPEATS, threads_option
from runtime.errors import AUEdgeError
from train.cli import OneLineParser, guarded

STAGES = ("decode", "face", "align", "au", "post")


def run_pipeline(engine: str, source: str, threads: int | None = None, max_frames: int | None = None,
                 face_model: str | None = None, mesh_every: int = 1) -> dict:
    from runtime.detector import AUDetector

    det = AUDetector(engine, max_faces=1, threads=threads, face_model=face_model, mesh_every=mesh_every)
    meshed = 0
    stages = {k: [] for k in STAGES}
    latency, with_face, n = [], 0, 0
    t_start = time.perf_counter()
    for result in det.stream(source, max_frames=max_frames):
        for k in STAGES:
            stages[k].append(result.stages_ms.get(k, 0.0))
        latency.append(result.latency_ms)
        with_face += bool(result.faces)
        meshed += sum(f.meshed for f in result.faces)
        n += 1
    wall = time.perf_counter() - t_start
    kinds = rss_kinds_mb()  # before close: the detector's memory still held
    det.close()
    if n == 0:
        raise ValueError(f"source {source} gave no frame")
    lat = np.asarray(latency)
    return {"frames": n, "frames_with_face": with_face, "fps": float(1e3 / lat.mean()),
            "basis": "without decode (AUDetector.process; decode in its own thread)",
            "fps_end_to_end": n / wall, "mean_ms": float(lat.mean()),
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "stages_ms": {k: float(np.mean(v)) for k, v in stages.items()},
            "stages_p50_ms": {k: float(np.percentile(v, 50)) for k, v in stages.items()},
            "stages_p99_ms": {k: float(np.percentile(v, 99)) for k, v in stages.items()},
            "latency_ms": [round(float(v), 3) for v in lat],
            "mesh_every": mesh_every, "faces_meshed": meshed,
            "engine": engine, "backend": det.engine.backend, "precision": det.engine.precision,
            "rss_mb": rss_mb(), "rss_now_mb": current_rss_mb(), "rss_now_by_kind_mb": kinds,
            "skipped": dict(det.skipped)}


class PeerError(AUEdgeError):
    """The peer cannot run here (unknown, its model missing, or it failed)."""


def run_peer(name: str, source: str, max_frames: int | None) -> dict | None:
    if name != "mediapipe":
        raise PeerError(f"unknown peer {name!r}; known: mediapipe")
    data = os.environ.get("AU_DATA_DIR")
    task = Path(data or ".") / "models" / "face_landmarker_v2_with_blendshapes.task"
    if not task.is_file():
        raise PeerError(f"peer model {task} not found; set AU_DATA_DIR to the open data")
    cmd = [sys.executable, "-m", "device_tests.peer_mediapipe", "--task", str(task), "--source", source]
    if max_frames:
        cmd += ["--max-frames", str(max_frames)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise PeerError(f"the mediapipe peer failed: {last}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _kinds(kinds: dict[str, float] | None) -> str:
    return f" (at the end: own {kinds['anon']:.0f} MB + mapped files {kinds['file']:.0f} MB)" if kinds else ""


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m device_tests.pipeline", description=__doc__.splitlines()[0])
    p.add_argument("--engine", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--peer", choices=("mediapipe",), default=None)
    p.add_argument("--threads", type=threads_option(), default=None,
                   help="CPU threads for inference (1 to 2 per CPU core)")
    p.add_argument("--max-frames", type=MAX_FRAMES, default=None)
    p.add_argument("--face-model", default=None)
    p.add_argument("--mesh-every", type=MESH_EVERY, default=1, metavar="N",
                   help="our face mesh at least every N frames, optical flow between (default 1: every frame)")
    p.add_argument("--repeat", type=REPEATS, default=1, help="alternate ours/peer N times; report medians "
                   "(shared or virtual machines are noisy)")
    p.add_argument("--json", metavar="OUT")
    return guarded(_run, p.parse_args(argv))


def _run(args) -> int:
    runs, peers = [], []
    for _ in range(max(1, args.repeat)):
        runs.append(run_pipeline(args.engine, args.source, args.threads, args.max_frames, args.face_model,
                                 args.mesh_every))
        if args.peer:
            peers.append(run_peer(args.peer, args.source, args.max_frames))
    ours = sorted(runs, key=lambda r: r["mean_ms"])[len(runs) // 2]  # the median run
    peer = sorted(peers, key=lambda r: r["mean_ms"])[len(peers) // 2] if peers else None
    ours["runs_ms"] = [round(r["mean_ms"], 3) for r in runs]
    ours["peer"] = peer and {"name": peer["name"], "fps": peer["fps"], "mean_ms": peer["mean_ms"],
                             "p50_ms": peer["p50_ms"], "p99_ms": peer["p99_ms"],
                             "frames_with_face": peer["frames_with_face"],
                             "runs_ms": [round(r["mean_ms"], 3) for r in peers]}
    ours["ratio_vs_peer"] = peer["mean_ms"] / ours["mean_ms"] if peer else None
    ours["device"] = device()
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(ours, indent=2))
    st = " ".join(f"{k} {v:.2f}" for k, v in ours["stages_ms"].items())
    print(f"au-edge: {ours['frames']} frames ({ours['frames_with_face']} with a face), {ours['fps']:.1f} fps "
          f"({ours['mean_ms']:.2f} ms/frame; mesh on {ours['faces_meshed']} of {ours['frames_with_face']} faces) "
          f"without decode, {ours['fps_end_to_end']:.1f} fps with the decode thread "
          f"[ms: {st}], peak RSS {ours['rss_mb']:.0f} MB" + _kinds(ours.get("rss_now_by_kind_mb")))
    if peer:
        print(f"peer: {peer['name']}: {peer['mean_ms']:.2f} ms/frame ({peer['frames_with_face']} with a face); "
              f"ratio (peer ms / ours ms) = {ours['ratio_vs_peer']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
