"""``python -m export.bench --dir DIR [--json OUT] [--md OUT]``: the export benchmark.

Per artifact of a ``python -m export`` run (DIR/parity.json): size, CPU latency (2 threads, batch 1
and 4, ONNX Runtime / LiteRT through the runtime's engines, pre/post-processing included), mean F1
on the evaluation split, Δ vs the PyTorch model and vs the teacher (students: the run's
metrics.json ``teacher``), and the issue's goals checked against them.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from runtime.cli import TIMED_RUNS, threads_option
from train.cli import OneLineParser, guarded

GOAL_INT8_TFLITE_MS = 0.5
GOAL_INT8_TFLITE_MB = 3.0
GOAL_INT8_VS_FP32_POINTS = -0.5
FLOAT_TWIN = {"onnx-int8": "onnx", "tflite-int8": "tflite"}


def bench_dir(out_dir: Path, runs: int = 200, threads: int = 2) -> dict[str, Any]:
    from export.latency import time_engine

    parity = json.loads((out_dir / "parity.json").read_text())
    ck = Path(parity["checkpoint"])
    metrics_path = ck.parent / "metrics.json"
    run = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    teacher = (run.get("teacher") or {}).get("f1", {}).get("mean")
    teacher = None if teacher is None else 100.0 * teacher
    rows = []
    for e in parity["artifacts"]:
        path = out_dir / e["file"]
        lat = {b: time_engine(str(path), runs=runs, batch=b, threads=threads) for b in (1, 4)}
        rows.append({"file": e["file"], "format": e["format"], "precision": e["precision"],
                     "size_mb": round(e["size_bytes"] / 1e6, 3), "backend": lat[1]["backend"],
                     "p50_ms_b1": round(lat[1]["p50_ms"], 4), "p50_ms_b4": round(lat[4]["p50_ms"], 4),
                     "per_face_ms_b4": round(lat[4]["p50_ms"] / 4, 4), "f1_mean": e["f1_mean"],
                     "delta_vs_torch": e["f1_mean_delta_vs_torch"],
                     "delta_vs_teacher": None if teacher is None or e["f1_mean"] is None else
                     round(e["f1_mean"] - teacher, 3), "max_abs_dprob": e["max_abs_dprob"],
                     "parity_passed": e["passed"]})
    by_format = {r["format"]: r for r in rows}
    goals = []
    for r in rows:
        if r["format"] == "tflite-int8":
            goals.append({"goal": f"INT8 TFLite <= {GOAL_INT8_TFLITE_MS} ms (batch 1, {threads} threads)",
                          "value": r["p50_ms_b1"], "met": r["p50_ms_b1"] <= GOAL_INT8_TFLITE_MS})
            goals.append({"goal": f"INT8 TFLite <= {GOAL_INT8_TFLITE_MB} MB", "value": r["size_mb"],
                          "met": r["size_mb"] <= GOAL_INT8_TFLITE_MB})
        twin = by_format.get(FLOAT_TWIN.get(r["format"], ""))
        if twin and r["f1_mean"] is not None and twin["f1_mean"] is not None:
            d = round(r["f1_mean"] - twin["f1_mean"], 3)
            goals.append({"goal": f"{r['file']} mean F1 >= {twin['file']} {GOAL_INT8_VS_FP32_POINTS}", "value": d,
                          "met": d >= GOAL_INT8_VS_FP32_POINTS})
    return {"checkpoint": str(ck), "task": "student" if teacher is not None else "teacher", "eval": parity["eval"],
            "torch_f1_mean": parity["torch_f1_mean"], "teacher_f1_mean": teacher, "threads": threads,
            "runs": runs, "artifacts": rows, "goals": goals}


def markdown(res: dict[str, Any]) -> str:
    def fmt(v, spec="{:.2f}"):
        return "–" if v is None else spec.format(v)

    teacher = f", teacher {fmt(res['teacher_f1_mean'])}" if res["teacher_f1_mean"] is not None else ""
    head = (f"Checkpoint `{res['checkpoint']}` ({res['task']}); evaluation {res['eval']}; PyTorch mean F1 "
            f"{fmt(res['torch_f1_mean'])}{teacher}; CPU {res['threads']} threads, p50 of {res['runs']} runs.")
    lines = [head, "",
             ("| artifact | backend | precision | size MB | b1 ms | b4 ms (per face) | mean F1 | Δ vs PyTorch | "
              "Δ vs teacher | max abs Δp | parity |"),
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in res["artifacts"]:
        lines.append(f"| {r['file']} | {r['backend']} | {r['precision']} | {r['size_mb']:.2f} | {r['p50_ms_b1']:.3f} | "
                     f"{r['p50_ms_b4']:.3f} ({r['per_face_ms_b4']:.3f}) | {fmt(r['f1_mean'])} | "
                     f"{fmt(r['delta_vs_torch'], '{:+.2f}')} | {fmt(r['delta_vs_teacher'], '{:+.2f}')} | "
                     f"{r['max_abs_dprob']:.1e} | {'ok' if r['parity_passed'] else 'FAILED'} |")
    lines += ["", "| goal | value | met |", "|---|---:|---|"]
    lines += [f"| {g['goal']} | {g['value']} | {'yes' if g['met'] else 'no'} |" for g in res["goals"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m export.bench", description=__doc__.splitlines()[0])
    p.add_argument("--dir", required=True, type=Path, help="the --out of a `python -m export` run")
    p.add_argument("--runs", type=TIMED_RUNS, default=200)
    p.add_argument("--threads", type=threads_option(), default=2,
                   help="CPU threads for inference (1 to 2 per CPU core)")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--md", type=Path, default=None)
    return guarded(_run, p.parse_args(argv))


def _run(args) -> int:
    if not (args.dir / "parity.json").is_file():
        raise FileNotFoundError(f"{args.dir}/parity.json not found; run `python -m export ... --out {args.dir}` "
                                "first")
    res = bench_dir(args.dir, args.runs, args.threads)
    text = markdown(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    if args.md:
        args.md.write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
