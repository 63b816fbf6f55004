"""``python -m device_tests.report --in DIR --out report.md``: the device tests' JSON as one markdown report.

Reads every ``*.json`` in DIR written by ``device_tests`` (``sysinfo``/facts, ``bench``, ``pipeline``,
``parity``, ``soak``), recognises each by its keys, and writes one report to paste into an issue:
the device, end-to-end fps next to the peer with per-stage p50/p99, engine latencies, parity and
soak verdicts, and a latency plot (``<out stem>_latency.png``, matplotlib; without matplotlib the
report says so and has no plot). Files it does not recognise are listed, not dropped silently.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from train.cli import OneLineParser, fail

STAGES = ("decode", "face", "align", "au", "post")


def kind_of(data: dict) -> str | None:
    """Which device test wrote this JSON (None: not one of ours)."""
    if not isinstance(data, dict):
        return None
    if "stages_ms" in data and "fps" in data:
        return "pipeline"
    if "throughput_per_s" in data:
        return "bench"
    if isinstance(data.get("median_ms"), dict) and "runs" in data:
        return "stages"
    if "max_abs_dprob" in data and "reference" in data:
        return "parity"
    if "rss_growth" in data:
        return "soak"
    if isinstance(data.get("rows"), list) and all("jitter" in r for r in data["rows"]):
        return "jitter"
    if set(data) == {"device"}:
        return "facts"
    if "format_version" in data and "aus" in data and "input" in data:
        return "card"  # an engine's model card lying beside it
    return None


def collect(folder: Path) -> tuple[dict[str, list[tuple[str, dict]]], list[str]]:
    found: dict[str, list[tuple[str, dict]]] = {}
    other: list[str] = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            other.append(f"{path.name} (not valid JSON)")
            continue
        kind = kind_of(data)
        if kind is None:
            other.append(path.name)
        else:
            found.setdefault(kind, []).append((path.name, data))
    return found, other


def _f(v, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}" if isinstance(v, (int, float)) else str(v)


def device_lines(dev: dict) -> list[str]:
    parts = [(f"- CPU: {dev.get('cpu', '?')} ({dev.get('cpus', '?')} cores, {dev.get('machine', '?')}), governor "
              f"{dev.get('governor', 'n/a')}; Python {dev.get('python', '?')}")]
    if dev.get("board"):
        parts.append(f"- Board: {dev['board']}")
    jet = dev.get("jetson")
    if jet:
        rel = jet.get("release") or {}
        mode = jet.get("nvpmodel") or {}
        parts.append(f"- Jetson: L4T {rel.get('l4t', '?')} (JetPack {rel.get('jetpack') or 'unknown'}), nvpmodel "
                     f"{mode.get('name', 'n/a')}" + (f" (mode {mode['id']})" if mode.get("id") is not None else ""))
        ts = jet.get("tegrastats") or {}
        if ts:
            temps = ", ".join(f"{k} {v:.1f} °C" for k, v in sorted(ts.get("temps_c", {}).items()))
            parts.append(f"- tegrastats: power {_f(ts.get('power_mw'), 0)} mW, GPU {ts.get('gpu_load_pct', '–')}%, "
                         f"RAM {ts.get('ram_used_mb', '–')}/{ts.get('ram_total_mb', '–')} MB; {temps}")
    pi = dev.get("raspberry_pi")
    if pi:
        thr = pi.get("throttled") or {}
        parts.append(f"- Raspberry Pi: {_f(pi.get('temp_c'), 1)} °C, throttled {thr.get('raw', 'n/a')}"
                     + (f" ({', '.join(thr['flags'])})" if thr.get("flags") else ""))
    return parts


def _mesh_note(p: dict) -> str:
    """How often our mesh ran, when optical flow followed the face between runs (``--mesh-every``)."""
    if p.get("mesh_every", 1) <= 1:
        return ""
    return (f" Our face mesh at least every {p['mesh_every']} frames, optical flow between: "
            f"{p.get('faces_meshed', '?')} mesh runs for {p['frames_with_face']} faces.")


def render(found: dict[str, list[tuple[str, dict]]], other: list[str], plot_name: str | None,
           plot_note: str | None) -> str:
    lines = ["# au-edge device report", ""]
    devices = [d["device"] for rows in found.values() for _, d in rows if isinstance(d.get("device"), dict)]
    if devices:
        lines += ["## Device", "", *device_lines(devices[0]), ""]
    for name, p in found.get("pipeline", []):
        peer = p.get("peer") or {}
        lines += [f"## End to end (`{name}`)", "",
                  (f"{p['frames']} frames, {p['frames_with_face']} with a face; fps on the same basis for both: "
                   f"{p.get('basis', 'without decode')}." + _mesh_note(p)), "",
                  "| | fps | ms/frame p50 | p99 | faces found |", "|---|---|---|---|---|",
                  (f"| au-edge ({p.get('backend', '?')} {p.get('precision', '')}) | {_f(p['fps'], 1)} | "
                   f"{_f(p['p50_ms'])} | {_f(p['p99_ms'])} | {p['frames_with_face']}/{p['frames']} |")]
        if peer:
            lines.append(f"| {peer.get('name', 'peer')} | {_f(peer.get('fps'), 1)} | {_f(peer.get('p50_ms'))} | "
                         f"{_f(peer.get('p99_ms'))} | {peer.get('frames_with_face', '–')} |")
        lines.append("")
        if p.get("ratio_vs_peer") is not None:
            lines += [f"**Ratio peer ms / our ms: {p['ratio_vs_peer']:.2f}** (> 1: au-edge is faster)"
                      + (f"; with the decode thread au-edge runs {p['fps_end_to_end']:.1f} fps" if
                         p.get("fps_end_to_end") else "") + ".", ""]
        lines += ["| stage (ms) | " + " | ".join(STAGES) + " |", "|---|" + "---|" * len(STAGES)]
        for label, key in (("mean", "stages_ms"), ("p50", "stages_p50_ms"), ("p99", "stages_p99_ms")):
            if key in p:
                lines.append(f"| {label} | " + " | ".join(_f(p[key].get(s)) for s in STAGES) + " |")
        kinds = p.get("rss_now_by_kind_mb")
        lines += ["", f"Peak RSS {_f(p.get('rss_mb'), 0)} MB" + (
            f" (at the end: own memory {_f(kinds['anon'], 0)} MB + mapped library pages {_f(kinds['file'], 0)} MB, "
            "which the kernel shares and reclaims)" if kinds else "") + ".", ""]
    for name, st in found.get("stages", []):
        parts = list(st["median_ms"])
        about = f"Medians of {st['runs']} calls over {st['frames']} of the clip's faces (`device_tests.stages`)."
        medians = " | ".join(_f(st["median_ms"][k], 3) for k in parts)
        lines += [f"## Each part alone (`{name}`)", "", about, "", "| ms | " + " | ".join(parts) + " |",
                  "|---|" + "---|" * len(parts), f"| median | {medians} |", ""]
    if found.get("card"):
        lines += ["## Engines (model cards)", "", "| card | model | trained | input | dtype | AUs |",
                  "|---|---|---|---|---|---|"]
        for name, c in found["card"]:
            model, inp = c.get("model") or {}, c.get("input") or {}
            size = "x".join(str(v) for v in inp.get("size", []))
            lines.append(f"| {name} | {model.get('name', '?')} | {'no' if model.get('trained') is False else 'yes'} | "
                         f"{size} {inp.get('layout', '')} | {inp.get('dtype', '?')} | {len(c.get('aus', []))} |")
        lines.append("")
    if found.get("bench"):
        lines += ["## AU engine alone", "",
                  "| file | engine | backend | precision | batch | threads | p50 ms | p90 ms | p99 ms | faces/s | RSS MB |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, b in found["bench"]:
            lines.append(f"| {name} | {Path(str(b['engine'])).name} | {b['backend']} | {b['precision']} | {b['batch']} | "
                         f"{b.get('threads') or 'default'} | {_f(b['p50_ms'])} | {_f(b['p90_ms'])} | "
                         f"{_f(b['p99_ms'])} | {_f(b['throughput_per_s'], 0)} | {_f(b.get('rss_mb'), 0)} |")
        lines.append("")
    if found.get("parity"):
        lines += ["## Parity", "", "| engine | reference | max abs Δprob | mean | tolerance | verdict |",
                  "|---|---|---|---|---|---|"]
        for _, r in found["parity"]:
            lines.append(f"| {Path(r['engine']).name} | {Path(r['reference']).name} | {r['max_abs_dprob']:.4f} | "
                         f"{r['mean_abs_dprob']:.5f} | {r['tolerance']:.4f} | "
                         f"{'passed' if r['passed'] else '**FAILED**'} |")
        lines.append("")
    for name, s in found.get("soak", []):
        lim = s.get("limits", {"rss_growth": 0.05, "p99_drift": 0.2})
        lines += [f"## Soak (`{name}`)", "",
                  (f"{s['frames']} frames: RSS {s['rss_warm_mb']:.1f} → {s['rss_end_mb']:.1f} MB after warm-up "
                   f"({100 * s['rss_growth']:+.1f}%, limit +{100 * lim['rss_growth']:.0f}%); p99 "
                   f"{s['p99_first_ms']:.2f} → {s['p99_last_ms']:.2f} ms "
                   f"({100 * s.get('p99_drift', 0):+.1f}%, limit +{100 * lim['p99_drift']:.0f}%): "
                   f"{'passed' if s['passed'] else '**FAILED**'}."), ""]
    for name, j in found.get("jitter", []):
        lines += [f"## AU-probability jitter (`{name}`)", "",
                  "| AU smoothing | landmark smoothing | jitter (mean \\|Δp\\|) | frame pairs | track ids |",
                  "|---|---|---|---|---|"]
        lines += [f"| {'on' if r['au_smoothing'] else 'off'} | {'on' if r['landmark_smoothing'] else 'off'} | "
                  f"{_f(r['jitter'], 4)} | {r['steps']} | {r['track_ids']} |" for r in j["rows"]]
        lines.append("")
    if plot_name:
        lines += ["## Latency", "", f"![latency]({plot_name})", ""]
    elif plot_note:
        lines += [f"_{plot_note}_", ""]
    if other:
        lines += ["Other files in the folder, not part of this report: " + ", ".join(other) + ".", ""]
    return "\n".join(lines)


def plot(found: dict[str, list[tuple[str, dict]]], out: Path) -> tuple[str | None, str | None]:
    """The latency figure; (file name, None), or (None, why not)."""
    pipes = [p for _, p in found.get("pipeline", []) if p.get("latency_ms")]
    soaks = [s for _, s in found.get("soak", []) if s.get("series")]
    if not pipes and not soaks:
        return None, None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None, "No latency plot: matplotlib is not installed (pip install matplotlib)."
    n = bool(pipes) + bool(soaks)
    fig, axes = plt.subplots(1, n, figsize=(6.5 * n, 3.6), squeeze=False)
    ax_i = 0
    if pipes:
        ax = axes[0][ax_i]
        ax_i += 1
        for p in pipes:
            ax.plot(p["latency_ms"], lw=0.8, label="au-edge per frame")
            if p.get("peer") and p["peer"].get("mean_ms"):
                ax.axhline(p["peer"]["mean_ms"], color="tab:red", ls="--", lw=1,
                           label=f"peer mean ({p['peer']['mean_ms']:.2f} ms)")
            ax.axhline(p["mean_ms"], color="tab:blue", ls=":", lw=1, label=f"au-edge mean ({p['mean_ms']:.2f} ms)")
        ax.set(xlabel="frame", ylabel="ms (without decode)", title="end to end, per frame")
        ax.legend(fontsize=8)
    if soaks:
        ax = axes[0][ax_i]
        for s in soaks:
            x = [w["frame"] for w in s["series"]]
            ax.plot(x, [w["p50_ms"] for w in s["series"]], label="p50")
            ax.plot(x, [w["p99_ms"] for w in s["series"]], label="p99")
            twin = ax.twinx()
            twin.plot(x, [w["rss_mb"] for w in s["series"]], color="gray", ls="--", label="RSS")
            twin.set_ylabel("RSS MB")
        ax.set(xlabel="frame", ylabel="ms", title="soak, per window")
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path = out.with_name(out.stem + "_latency.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name, None


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m device_tests.report", description=__doc__.splitlines()[0])
    p.add_argument("--in", dest="folder", required=True, type=Path, help="folder with the device tests' JSON")
    p.add_argument("--out", required=True, type=Path, help="the markdown report to write")
    args = p.parse_args(argv)
    if not args.folder.is_dir():
        return fail(f"--in {args.folder}: not a folder; pass the folder the device tests wrote their --json "
                    "files to")
    found, other = collect(args.folder)
    if not found:
        return fail(f"no device test JSON in {args.folder} (run device_tests.* with --json "
                    f"{args.folder}/NAME.json first)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot_name, note = plot(found, args.out)
    args.out.write_text(render(found, other, plot_name, note))
    print(f"wrote {args.out}" + (f" and {plot_name}" if plot_name else "") + ": "
          + ", ".join(f"{len(v)} {k}" for k, v in sorted(found.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
