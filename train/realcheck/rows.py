"""The real check's rows from per-face and per-frame outputs (ours and the peer's), and the table.

Label kinds stay visible in every row: AU12 on London = real (smiling photos show AU12); neutral =
real (posed neutral faces: no AU active); clip = silver (MediaPipe blendshapes, IMAGE mode, with
``train.data.silver``'s dead zone and distrust rules). Faces a system did not find are counted in
their own row and left out of that system's other rows, never dropped silently.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from train.realcheck.metrics import agreement, binary_row, lit_row, mean_defined

GOALS = {"au12_roc_auc": (">= 0.99", lambda v: v >= 0.99), "au12_accuracy": (">= 0.95", lambda v: v >= 0.95),
         "neutral_lit_per_face": ("<= 0.10", lambda v: v <= 0.10)}
HIGHER_IS_BETTER = {"au12_roc_auc": True, "au12_accuracy": True, "neutral_lit_per_face": False,
                    "faces_not_found": False, "clip_accuracy": True, "clip_f1": True}
TITLES = {
    "au12_roc_auc": ("AU12 ROC-AUC, smiling vs neutral (held-out faces)", "real"),
    "au12_accuracy": ("AU12 accuracy at the card's threshold (MediaPipe: 0.5)", "real"),
    "neutral_lit_per_face": ("AUs lit per neutral face (mean)", "real (posed neutral: no AU)"),
    "faces_not_found": ("held-out photos without a face found", "-"),
    "clip_accuracy": ("clip: agreement with silver, accuracy (mean over AUs)", "silver"),
    "clip_f1": ("clip: agreement with silver, F1 (mean over AUs)", "silver"),
}


def photo_rows(faces: Sequence[Mapping], probs: Sequence[Mapping[str, float] | None],
               thresholds: Mapping[str, float]) -> dict:
    """AU12 and false-positive rows of one system over the held-out photos.

    Args:
        faces: per photo ``{"expression": "smiling"|"neutral", ...}``.
        probs: per photo ``{AU: prob}``, None where no face was found.
        thresholds: ``{AU: threshold}`` for the AUs this system outputs.
    """
    found = [(f, p) for f, p in zip(faces, probs) if p is not None]
    rows: dict = {"faces_not_found": {"value": len(faces) - len(found), "of": len(faces),
                                      "not_found": [f"{f['dataset']}/{f['expression']}/{f['face_id']}"
                                                    for f, p in zip(faces, probs) if p is None]}}
    if "AU12" in thresholds:
        y = [int(f["expression"] == "smiling") for f, _ in found]
        b = binary_row(y, [p["AU12"] for _, p in found], thresholds["AU12"])
        rows["au12_roc_auc"] = {"value": b["roc_auc"], "pos": b["pos"], "neg": b["neg"]}
        rows["au12_accuracy"] = {"value": b["accuracy"], "pos": b["pos"], "neg": b["neg"],
                                 "threshold": b["threshold"]}
    lit = lit_row([p for f, p in found if f["expression"] == "neutral"], thresholds)
    rows["neutral_lit_per_face"] = {"value": lit["mean_lit"], **{k: v for k, v in lit.items() if k != "mean_lit"}}
    return rows


def clip_rows(silver: Mapping[str, Sequence[float | None]], probs: Sequence[Mapping[str, float] | None],
              thresholds: Mapping[str, float]) -> tuple[dict, dict]:
    """Per-AU agreement with silver, and the two summary rows (mean accuracy, mean F1).

    Args:
        silver: ``{AU: per-frame 1.0/0.0/None}`` for the AUs that have silver labels.
        probs: per frame ``{AU: prob}`` or None (no face).
        thresholds: ``{AU: threshold}`` of this system; AUs it lacks are left out.
    """
    per_au = {a: agreement(s, [None if p is None else p.get(a) for p in probs], thresholds[a])
              for a, s in silver.items() if a in thresholds}
    return per_au, {"clip_accuracy": {"value": mean_defined([r["accuracy"] for r in per_au.values()])},
                    "clip_f1": {"value": mean_defined([r["f1"] for r in per_au.values()])}}


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def verdict(key: str, ours, peer) -> str:
    """Whether ours meets the issue's goal and is ahead of the peer on this row."""
    parts = []
    if key in GOALS and ours is not None:
        parts.append("goal met" if GOALS[key][1](ours) else "goal missed")
    if ours is not None and peer is not None:
        better = ours > peer if HIGHER_IS_BETTER[key] else ours < peer
        parts.append("ahead of MediaPipe" if better else "level with MediaPipe" if ours == peer
                     else "behind MediaPipe")
    return ", ".join(parts) or "-"


def _trained(training: Mapping) -> str:
    """"open, real, silver, synthetic labels" from the card's training section."""
    parts = list(training.get("datasets") or [])
    if training.get("label_kinds"):
        parts.append(", ".join(training["label_kinds"]) + " labels")
    return ", ".join(parts) or "data not stated"


def markdown(report: Mapping) -> str:
    """The table (row, labels, ours, MediaPipe, goal, verdict) and the per-AU details."""
    ours, peer = report["rows"]["ours"], report["rows"].get("peer")
    skip = report["peer"].get("skipped")
    lines = [f"# Real-face check: `{report['engine']}`", "",
             (f"Engine: {report['backend']} {report['precision']}, model {report['model'].get('name', '?')} "
             f"(trained on {_trained(report.get('training') or {})}). Held-out faces: "
             f"{report['photos']['total']} photos; clip: {report['clip'].get('frames', 0)} frames. "
             f"Our thresholds: the card's; MediaPipe: blendshape score >= {report['peer']['threshold']} "
             "(scores as probabilities)."), ""]
    if skip:
        lines += [f"MediaPipe peer skipped: {skip}", ""]
    if report["clip"].get("silver_skipped"):
        lines += [f"Clip agreement skipped: {report['clip']['silver_skipped']}", ""]
    lines += ["| row | labels | ours | MediaPipe | goal | verdict |", "|---|---|---|---|---|---|"]
    for key, (title, kind) in TITLES.items():
        o = ours.get(key, {}).get("value")
        p = None if peer is None else peer.get(key, {}).get("value")
        if key == "faces_not_found":
            o_s = f"{o} of {ours[key]['of']}"
            p_s = "skipped" if peer is None else f"{p} of {peer[key]['of']}"
        else:
            o_s, p_s = _fmt(o), "skipped" if peer is None else _fmt(p)
        goal = GOALS.get(key, ("no more than MediaPipe" if key == "faces_not_found" else "ahead of MediaPipe",))[0]
        lines.append(f"| {title} | {kind} | {o_s} | {p_s} | {goal} | {verdict(key, o, p)} |")
    lines += ["", ("Clip rows compare against silver labels made by MediaPipe itself (IMAGE mode, dead zone "
              f"{report['clip'].get('silver', {}).get('rule', {}).get('neg', '?')}-"
              f"{report['clip'].get('silver', {}).get('rule', {}).get('pos', '?')}); the peer's clip rows are "
              "MediaPipe in VIDEO mode against its own IMAGE-mode labels, not against ground truth (MediaPipe "
              "calls the clip's sad face a smile; `python -m train.clipcheck` reads the clip against eye-coded "
              "labels). The clip's frames are in the open training data (labels v3: unlabelled, for flow and "
              "inpainting; v2: silver), so it is not held out."), ""]
    lit_o = ours.get("neutral_lit_per_face", {}).get("per_au", {})
    lit_p = {} if peer is None else peer.get("neutral_lit_per_face", {}).get("per_au", {})
    lines += ["## Which AUs lit on neutral faces (count of faces)", "", "| AU | ours | MediaPipe |", "|---|---|---|"]
    for a in sorted(set(lit_o) | set(lit_p)):
        lines.append(f"| {a} | {lit_o.get(a, 'n/a')} | {lit_p.get(a, 'no blendshape') if peer else 'skipped'} |")
    per = report["clip"].get("per_au", {})
    if per:
        lines += ["", "## Clip agreement with silver per AU", "",
                  "| AU | frames (ours) | silver pos | ours acc | ours F1 | MediaPipe acc | MediaPipe F1 |",
                  "|---|---|---|---|---|---|---|"]
        for a, r in per.items():
            o, p = r["ours"], r.get("peer")
            p_acc, p_f1 = (_fmt(p["accuracy"]), _fmt(p["f1"])) if p else ("skipped", "skipped")
            lines.append(f"| {a} | {o['frames']} | {o['silver_pos']} | {_fmt(o['accuracy'])} | {_fmt(o['f1'])} | "
                         f"{p_acc} | {p_f1} |")
    if report.get("command"):
        lines += ["", f"Command: `{report['command']}`"]
    return "\n".join(lines) + "\n"
