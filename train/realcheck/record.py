"""Record a read of the held-out set in a model's cards: the card's ``heldout`` block.

A held-out set stops being held out a little every time it is read: a reader of a card must see
how many times the model's own held-out faces were looked at. ``train.realcheck --record DIR``
counts its own read into the cards of the engines in ``DIR`` (an export folder, before
``export.install`` copies it; the install carries the block into the package). A read made before
a card could hold it is recorded with

    python -m train.realcheck.record --report out/realcheck/realcheck.json --engine-file E --dest DIR

The block (every card of the folder gets the same; ``reads`` counts up from the block already there)::

    "heldout": {"set": "...", "reads": 1,
                "last_read": {"date": "2026-12-06", "command": "...", "engine": "au_int8.tflite",
                              "engine_sha256": "...", "results": {"ours": {...}, "peer": {...}}},
                "note": "..."}
"""
from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runtime.atomic import atomic_write
from runtime.card import file_sha256
from train.cli import OneLineParser, guarded

HELD_OUT_SET = ("train.data.holdout: 21 London and 8 Canada identities (neutral and smiling photos) and every "
                "media/people/ photo; never trained on, never used for a decision")
ENGINE_SUFFIXES = (".onnx", ".tflite", ".trt", ".engine")
ROWS = ("au12_roc_auc", "au12_accuracy", "neutral_lit_per_face", "faces_not_found")


def engine_cards(folder: Path) -> list[Path]:
    """The cards (``X.json`` beside engine ``X``) of every engine in ``folder``."""
    cards = sorted(folder / (p.name + ".json") for p in folder.iterdir()
                   if p.suffix in ENGINE_SUFFIXES and (folder / (p.name + ".json")).is_file())
    if not cards:
        raise FileNotFoundError(f"no engine with a card in {folder}; pass the export folder (python -m export --out)")
    return cards


def results(report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The report's headline rows, ours and the peer's: value plus what it was read on."""
    out: dict[str, dict[str, Any]] = {}
    for side, rows in report.get("rows", {}).items():
        out[side] = {k: {kk: vv for kk, vv in rows[k].items() if kk != "not_found"} for k in ROWS if k in rows}
    return out


def record_read(report: Mapping[str, Any], engine_file: Path, folder: Path, note: str = "") -> int:
    """Count one read of the held-out set (``report``, a ``realcheck.json``) into every card in
    ``folder``; returns the new count.

    Raises:
        ValueError: a limited run (``--limit``: a quick look, not the check) or not a realcheck report.
    """
    if "rows" not in report or "held_out" not in report:
        raise ValueError("not a train.realcheck report (no rows / held_out); pass its realcheck.json")
    if report.get("limit") is not None:
        raise ValueError(f"the report is of a --limit {report['limit']} run (a quick look, not the held-out check); "
                         "run train.realcheck without --limit")
    reads = 0
    for card in engine_cards(folder):
        raw = json.loads(card.read_text())
        reads = int(raw.get("heldout", {}).get("reads", 0)) + 1
        raw["heldout"] = {"set": HELD_OUT_SET, "reads": reads, "last_read": {
            "date": dt.date.today().isoformat(), "command": report.get("command", ""), "engine": engine_file.name,
            "engine_sha256": file_sha256(engine_file), "results": results(report)}}
        if note:
            raw["heldout"]["note"] = note
        with atomic_write(card, "model card", mode="w") as f:
            f.write(json.dumps(raw, indent=2) + "\n")
    return reads


def _run(args) -> int:
    report = json.loads(Path(args.report).read_text())
    engine = Path(args.engine_file)
    if not engine.is_file():
        raise FileNotFoundError(f"--engine-file {engine} not found; pass the engine the report read")
    reads = record_read(report, engine, Path(args.dest), args.note)
    print(f"recorded: the held-out set read {reads} time(s) for the model in {args.dest}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m train.realcheck.record", description="Record a held-out read in the cards.")
    p.add_argument("--report", required=True, help="the read's realcheck.json")
    p.add_argument("--engine-file", required=True, help="the engine file it read (its sha256 is recorded)")
    p.add_argument("--dest", required=True, help="the export folder whose cards record it")
    p.add_argument("--note", default="", help="a line kept with the record (e.g. how the read engine relates)")
    return guarded(_run, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
