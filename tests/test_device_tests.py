"""device_tests on real engines and media: parity, soak, pipeline, the board parsers and the report."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from engine_factory import AUS, base_card, random_crops, reference_probs, write_onnx

from device_tests import board_parsers as bp

REPO = Path(__file__).resolve().parents[1]
PARITY_KEYS = {"engine", "reference", "max_abs_dprob", "mean_abs_dprob", "tolerance", "passed"}
SOAK_KEYS = {"frames", "rss_warm_mb", "rss_end_mb", "rss_growth", "p99_first_ms", "p99_last_ms", "passed"}
PIPELINE_KEYS = {"frames", "frames_with_face", "fps", "p50_ms", "p99_ms", "stages_ms", "peer", "ratio_vs_peer"}


def _dt(name: str, *args, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"device_tests.{name}", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


# --- parity -----------------------------------------------------------------------------------------

@pytest.fixture
def engine_with_reference(tmp_path):
    """A tiny ONNX engine and the reference npz the export would write, expected computed in numpy."""
    eng = write_onnx(tmp_path / "au.onnx")
    base_card().write(eng)
    crops = random_crops(24, seed=5)
    np.savez(tmp_path / "au.onnx.parity.npz", crops=crops, expected=reference_probs(crops).astype(np.float32),
             tolerance=np.float32(1e-4), aus=np.array(AUS), precision=np.array("fp32"))
    return eng


def test_parity_passes_on_the_engine_and_fails_once_it_is_perturbed(engine_with_reference, tmp_path):
    import onnx
    from onnx import numpy_helper

    out = tmp_path / "parity.json"
    proc = _dt("parity", "--engine", engine_with_reference, "--json", out)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    assert set(res) == PARITY_KEYS and res["passed"] is True
    assert res["max_abs_dprob"] < 1e-4 and res["reference"].endswith("au.onnx.parity.npz")
    # Perturb the engine (as a broken build would): one bias moves, the card is re-signed to match.
    model = onnx.load(str(engine_with_reference))
    for init in model.graph.initializer:
        if init.name == "B":
            b = numpy_helper.to_array(init).copy()
            b[3] += 0.3
            init.CopyFrom(numpy_helper.from_array(b, "B"))
    bad = tmp_path / "bad.onnx"
    onnx.save(model, str(bad))
    base_card().write(bad)
    proc = _dt("parity", "--engine", bad, "--reference", tmp_path / "au.onnx.parity.npz", "--json", out)
    assert proc.returncode == 1, proc.stderr
    res = json.loads(out.read_text())
    assert res["passed"] is False and res["max_abs_dprob"] > 0.01 and "FAILED" in proc.stdout
    # --tolerance replaces the reference's (an engine built at another precision than its reference)
    loose = res["max_abs_dprob"] * 1.01
    proc = _dt("parity", "--engine", bad, "--reference", tmp_path / "au.onnx.parity.npz", "--tolerance", loose,
               "--json", out)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["tolerance"] == pytest.approx(loose)


def test_parity_compares_before_the_cards_calibration(engine_with_reference, tmp_path):
    """References hold PyTorch's probabilities before calibration: an engine whose card calibrates
    (here: a strong scale and shift) still matches its reference, as the same engine uncalibrated."""
    from runtime.calibration import from_thresholds

    card = base_card()
    card.calibration = from_thresholds({a: 0.8 for a in AUS}, AUS, "test", "validation: none",
                                       scales={a: 3.0 for a in AUS})
    card.write(engine_with_reference)
    out = tmp_path / "parity.json"
    proc = _dt("parity", "--engine", engine_with_reference, "--json", out)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["max_abs_dprob"] < 1e-4


def test_parity_bad_references_are_one_line_exit_2(engine_with_reference, tmp_path):
    proc = _dt("parity", "--engine", engine_with_reference, "--reference", tmp_path / "none.npz")
    assert proc.returncode == 2 and "none.npz" in proc.stderr and proc.stderr.count("\n") == 1
    np.savez(tmp_path / "other.npz", crops=random_crops(2), expected=np.zeros((2, 3), np.float32),
             tolerance=np.float32(0.1), aus=np.array(["AU01", "AU02", "AU04"]))
    proc = _dt("parity", "--engine", engine_with_reference, "--reference", tmp_path / "other.npz")
    assert proc.returncode == 2 and "AUs" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "junk.npz").write_bytes(b"junk")
    proc = _dt("parity", "--engine", engine_with_reference, "--reference", tmp_path / "junk.npz")
    assert proc.returncode == 2 and "junk.npz" in proc.stderr and "Traceback" not in proc.stderr


# --- soak -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    eng = write_onnx(tmp_path_factory.mktemp("soak") / "tiny.onnx")
    base_card().write(eng)
    return eng


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory):
    """100 small frames (a grey scene, no face): a soak loops it; cheap enough for seconds-long tests."""
    import cv2

    path = tmp_path_factory.mktemp("clip") / "small.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (160, 120))
    for i in range(100):
        w.write(np.full((120, 160, 3), 60 + i, np.uint8))
    w.release()
    return path


def _detector(cls, tiny_onnx, face_model):
    return cls(str(tiny_onnx), max_faces=1, face_model=face_model)


LEAKY = """
import json, sys
import numpy as np
from device_tests.soak import run_soak
from runtime.detector import AUDetector
hoard = []

class Leaky(AUDetector):
    def process(self, frame, t=None):
        hoard.append(np.ones(16_384))  # 128 KB per frame, touched, never freed
        return super().process(frame, t)

engine, clip, face_model = sys.argv[1:4]
res = run_soak(engine, clip, frames=300, warmup=40, windows=8,
               detector=Leaky(engine, max_faces=1, face_model=face_model))
print(json.dumps({k: v for k, v in res.items() if k != "device"}))
"""


def test_soak_fails_on_a_leaking_pipeline(tiny_onnx, face_model, small_clip):
    """In its own process, as on a board (this test process's RSS holds the other tests' engines)."""
    proc = subprocess.run([sys.executable, "-c", LEAKY, str(tiny_onnx), str(small_clip), face_model],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert SOAK_KEYS <= set(res) and res["frames"] == 300  # 100 frames a pass: the file looped
    assert res["rss_growth"] > 0.05 and res["rss_ok"] is False and res["passed"] is False


def test_soak_fails_on_latency_that_creeps(tiny_onnx, face_model, small_clip):
    from device_tests.soak import run_soak
    from runtime.detector import AUDetector

    class Creeping(AUDetector):
        calls = 0

        def process(self, frame, t=None):
            t0 = time.perf_counter()
            result = super().process(frame, t)
            self.calls += 1
            if self.calls > 150:  # after a while every frame takes 60 ms longer (e.g. a list that grew)
                time.sleep(0.06)
            result.latency_ms = (time.perf_counter() - t0) * 1e3
            return result

    res = run_soak(str(tiny_onnx), str(small_clip), frames=200, warmup=40, windows=8,
                   detector=_detector(Creeping, tiny_onnx, face_model))
    assert res["p99_last_ms"] > 1.2 * res["p99_first_ms"] and res["latency_ok"] is False
    assert res["passed"] is False


def test_soak_real_pipeline_short_run_cli(tiny_onnx, face_model, small_clip, tmp_path):
    """The real pipeline keeps its memory flat. (Its p99 verdict is a timing on a shared machine: it is
    reported, not asserted.)"""
    out = tmp_path / "soak.json"
    proc = _dt("soak", "--engine", tiny_onnx, "--source", small_clip, "--frames", 400,
               "--warmup", 60, "--face-model", face_model, "--json", out)
    res = json.loads(out.read_text())
    assert proc.returncode == (0 if res["passed"] else 1), proc.stderr
    assert SOAK_KEYS <= set(res) and res["frames"] == 400 and len(res["series"]) == 20
    assert res["rss_ok"] is True and abs(res["rss_growth"]) < 0.05, res


# --- pipeline ---------------------------------------------------------------------------------------

def test_pipeline_json_and_the_peer_on_the_same_basis(tiny_onnx, face_model, media, tmp_path):
    out = tmp_path / "pipeline.json"
    proc = _dt("pipeline", "--engine", tiny_onnx, "--source", media / "WolfgangLanger_Pexels.mp4", "--max-frames",
               40, "--face-model", face_model, "--peer", "mediapipe", "--json", out)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    assert PIPELINE_KEYS <= set(res) and set(res["stages_ms"]) == {"decode", "face", "align", "au", "post"}
    assert set(res["stages_p50_ms"]) == set(res["stages_p99_ms"]) == set(res["stages_ms"])
    assert res["frames"] == 40 and res["frames_with_face"] >= 38
    assert res["fps"] == pytest.approx(1000 / res["mean_ms"])  # without decode ...
    peer = res["peer"]
    assert {"name", "fps"} <= set(peer) and peer["fps"] == pytest.approx(1000 / peer["mean_ms"])  # ... both
    assert res["ratio_vs_peer"] == pytest.approx(peer["mean_ms"] / res["mean_ms"])
    assert res["ratio_vs_peer"] == pytest.approx(res["fps"] / peer["fps"])
    assert len(res["latency_ms"]) == 40
    kinds = res["rss_now_by_kind_mb"]  # Linux: own memory and mapped files add up to the RSS (to a few MB)
    assert kinds["anon"] > 10 and kinds["file"] > 10 and abs(kinds["anon"] + kinds["file"] - res["rss_now_mb"]) < 8


def test_pipeline_with_the_mesh_every_3rd_frame_says_how_often_it_ran(tiny_onnx, face_model, media, tmp_path):
    out = tmp_path / "pipeline_mesh_every_3.json"
    proc = _dt("pipeline", "--engine", tiny_onnx, "--source", media / "WolfgangLanger_Pexels.mp4", "--max-frames",
               40, "--face-model", face_model, "--mesh-every", 3, "--json", out)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    assert res["mesh_every"] == 3 and res["frames_with_face"] >= 38
    assert res["frames_with_face"] // 3 <= res["faces_meshed"] <= res["frames_with_face"] // 3 + 4  # the free face
    assert f"mesh on {res['faces_meshed']} of {res['frames_with_face']} faces" in proc.stdout
    assert _dt("report", "--in", tmp_path, "--out", tmp_path / "report.md").returncode == 0
    assert f"{res['faces_meshed']} mesh runs for {res['frames_with_face']} faces" in (tmp_path / "report.md").read_text()


def test_stages_time_each_part_alone_on_the_clips_faces(face_model, media, tmp_path):
    """The shipped model's parts, each by itself (device_tests.stages), on the clip's first faces."""
    from test_default_model import shipped_or_fail

    shipped_or_fail()
    out = tmp_path / "stages.json"
    proc = _dt("stages", "--source", media / "WolfgangLanger_Pexels.mp4", "--frames", 12, "--runs", 30,
               "--face-model", face_model, "--threads", 1, "--json", out)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    ms = res["median_ms"]
    assert set(ms) == {"mesh", "mesh_invoke", "align", "au", "au_invoke", "measures", "follow"}  # LiteRT INT8
    assert res["frames"] == 12 and res["runs"] == 30 and all(v > 0 for v in ms.values())
    assert ms["mesh_invoke"] < ms["mesh"] and ms["au_invoke"] < ms["au"]  # a part's model call is inside it
    assert ms["follow"] < ms["mesh"]  # a frame between mesh runs is cheaper than a run (or --mesh-every is moot)
    assert "mesh" in proc.stdout.splitlines()[-1] and "median of 30" in proc.stdout
    report = _dt("report", "--in", tmp_path, "--out", tmp_path / "report.md")
    assert report.returncode == 0, report.stderr
    assert "## Each part alone (`stages.json`)" in (tmp_path / "report.md").read_text()
    no_face = _dt("stages", "--source", media / "no_face.mp4", "--frames", 10, "--runs", 5, "--face-model", face_model)
    assert no_face.returncode == 2 and "fewer than 2" in no_face.stderr and "Traceback" not in no_face.stderr


# --- board facts: parsers on samples of the real formats --------------------------------------------
# Written from the formats NVIDIA and Raspberry Pi document and the lines their tools print.

TEGRA_ORIN_NANO = ("11-03-2026 09:12:44 RAM 2811/7620MB (lfb 6x4MB) SWAP 0/3810MB (cached 0MB) "
                   "CPU [12%@1510,3%@1510,0%@1510,7%@1510,off,off] GR3D_FREQ 41% cpu@52.281C soc2@50.5C "
                   "soc0@51.218C gpu@51.906C tj@52.281C soc1@50.843C VDD_IN 6120mW/5988mW "
                   "VDD_CPU_GPU_CV 1544mW/1490mW VDD_SOC 1702mW/1688mW")
TEGRA_AGX_ORIN = ("RAM 5120/30536MB (lfb 180x4MB) SWAP 0/15268MB (cached 0MB) CPU [8%@2201,4%@2201,off,off,"
                  "2%@2201,1%@2201,off,off] GR3D_FREQ 12% cpu@48.5C soc0@47.25C gpu@46C "
                  "VDD_GPU_SOC 3600mW/3550mW VDD_CPU_CV 1200mW/1180mW VIN_SYS_5V0 4800mW/4790mW "
                  "VDDQ_VDD2_1V8AO 500mW/498mW")
TEGRA_NANO_JP4 = ("RAM 1630/3964MB (lfb 120x4MB) SWAP 0/1982MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
                  "CPU [21%@1479,18%@1479,off,off] EMC_FREQ 3%@1600 GR3D_FREQ 0%@921 APE 25 PLL@33C CPU@36.5C "
                  "PMIC@50C GPU@34C AO@41.5C thermal@35.25C POM_5V_IN 2440/2305 POM_5V_GPU 40/38 POM_5V_CPU 610/560")


def test_tegrastats_lines_of_three_generations():
    o = bp.parse_tegrastats(TEGRA_ORIN_NANO)
    assert (o["ram_used_mb"], o["ram_total_mb"], o["gpu_load_pct"]) == (2811, 7620, 41)
    assert o["cpu_load_pct"] == [12, 3, 0, 7, None, None]
    assert o["temps_c"]["cpu"] == pytest.approx(52.281) and o["temps_c"]["tj"] == pytest.approx(52.281)
    assert o["rails_mw"]["VDD_SOC"] == [1702, 1688] and o["power_mw"] == 6120  # VDD_IN: the board input
    a = bp.parse_tegrastats(TEGRA_AGX_ORIN)
    assert a["power_mw"] == 3600 + 1200 + 4800 + 500  # no input rail: the sum of the rails
    assert set(a["temps_c"]) == {"cpu", "soc0", "gpu"}
    n = bp.parse_tegrastats(TEGRA_NANO_JP4)
    assert n["power_mw"] == 2440 and n["rails_mw"]["POM_5V_CPU"] == [610, 560]  # no mW unit before JP5
    assert n["temps_c"]["cpu"] == pytest.approx(36.5) and n["temps_c"]["thermal"] == pytest.approx(35.25)
    assert "IRAM" not in n["rails_mw"] and n["gpu_load_pct"] == 0
    assert bp.parse_tegrastats("no stats here") == {}


def test_nv_tegra_release_and_nvpmodel():
    jp6 = "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8 01:49:37 UTC 2025\n"
    jp5 = ("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, DATE: Tue Aug  1 19:57:35 UTC 2023\n"
           "# KERNEL_VARIANT: oot\nTARGET_USERSPACE_LIB_DIR=nvidia\n")
    assert bp.parse_nv_tegra_release(jp6) == {"l4t": "36.4.3", "board": "generic", "jetpack": "6.2"}
    assert bp.parse_nv_tegra_release(jp5) == {"l4t": "35.4.1", "board": "t186ref", "jetpack": "5.1.2"}
    r = bp.parse_nv_tegra_release("# R32 (release), REVISION: 7, GCID: 1, BOARD: t210ref, EABI: aarch64")
    assert r["l4t"] == "32.7.0" and r["jetpack"] is None  # unknown to the table: not guessed
    assert bp.parse_nv_tegra_release("garbage") is None
    assert bp.parse_nvpmodel("NV Power Mode: MAXN\n0\n") == {"name": "MAXN", "id": 0}
    assert bp.parse_nvpmodel("NVPM WARN: power mode is not set!\nNV Power Mode: 15W\n1\n") == {"name": "15W", "id": 1}
    assert bp.parse_nvpmodel("nvpmodel: command failed") is None


def test_raspberry_pi_vcgencmd():
    assert bp.parse_vcgencmd_temp("temp=48.3'C\n") == pytest.approx(48.3)
    assert bp.parse_vcgencmd_temp("error=1 error_msg=\"Command not registered\"") is None
    assert bp.parse_throttled("throttled=0x0\n") == {"raw": "0x0", "flags": []}
    assert bp.parse_throttled("throttled=0x50005\n") == {
        "raw": "0x50005", "flags": ["under_voltage", "throttled", "under_voltage_occurred", "throttled_occurred"]}


def test_device_facts_here_are_read_only_and_complete():
    proc = _dt("sysinfo")
    assert proc.returncode == 0, proc.stderr
    dev = json.loads(proc.stdout)["device"]
    assert dev["cpus"] >= 1 and dev["machine"] and dev["python"]
    assert ("jetson" in dev) == Path("/etc/nv_tegra_release").exists()


# --- report, and the runtime extra alone ----------------------------------------------------------------

def test_report_from_the_json_of_the_device_tests(tiny_onnx, engine_with_reference, face_model, media, small_clip,
                                                 tmp_path):
    out_dir = tmp_path / "bench"
    out_dir.mkdir()
    assert _dt("parity", "--engine", engine_with_reference, "--json", out_dir / "parity.json").returncode == 0
    assert _dt("bench", "--engine", tiny_onnx, "--runs", 20, "--json", out_dir / "bench.json").returncode == 0
    assert _dt("pipeline", "--engine", tiny_onnx, "--source", media / "no_face.mp4", "--max-frames", 20,
               "--face-model", face_model, "--json", out_dir / "pipeline.json").returncode == 0
    _dt("soak", "--engine", tiny_onnx, "--source", small_clip, "--frames", 300, "--warmup", 50,
        "--face-model", face_model, "--json", out_dir / "soak.json")
    assert _dt("sysinfo", "--json", out_dir / "device.json").returncode == 0
    (out_dir / "notes.json").write_text('{"something": "else"}')
    (out_dir / "au.onnx.json").write_text(Path(str(engine_with_reference) + ".json").read_text())  # a card
    proc = _dt("report", "--in", out_dir, "--out", out_dir / "report.md")
    assert proc.returncode == 0, proc.stderr
    md = (out_dir / "report.md").read_text()
    pipe, bench, soak = (json.loads((out_dir / f"{n}.json").read_text()) for n in ("pipeline", "bench", "soak"))
    for section in ("## Device", "## End to end", "## Engines (model cards)", "## AU engine alone", "## Parity",
                    "## Soak", "## Latency"):
        assert section in md, md
    assert f"{pipe['fps']:.1f}" in md and f"{bench['p50_ms']:.2f}" in md and f"{soak['rss_warm_mb']:.1f}" in md
    assert "notes.json" in md  # not ours: listed, not dropped silently
    assert "| au.onnx.json | tiny-test | yes | 64x64 NCHW | float32 | 15 |" in md
    png = out_dir / "report_latency.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "(report_latency.png)" in md
    proc = _dt("report", "--in", tmp_path / "nowhere", "--out", tmp_path / "r.md")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1


def test_device_tests_run_with_the_runtime_extra_alone(engine_with_reference, tmp_path):
    """No torch, no matplotlib (the runtime extra): parity, facts and report still work; no plot, said so."""
    (tmp_path / "in").mkdir()
    code = f"""
import sys
sys.modules['torch'] = None; sys.modules['matplotlib'] = None
from device_tests import parity, soak, pipeline, bench, sysinfo, report
assert parity.main(['--engine', {str(engine_with_reference)!r}, '--json', {str(tmp_path / 'in' / 'p.json')!r}]) == 0
assert report.main(['--in', {str(tmp_path / 'in')!r}, '--out', {str(tmp_path / 'r.md')!r}]) == 0
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "r.md").read_text()
    assert "## Parity" in md and "matplotlib is not installed" not in md  # parity alone has nothing to plot


# --- jitter -----------------------------------------------------------------------------------------

def test_jitter_rows_equal_a_direct_computation_and_smoothing_steadies(face_model, media, tmp_path):
    """The shipped model on 40 frames of the clip: the CLI's numbers are what AUDetector gives when
    computed here, and the per-track AU smoothing lowers frame-to-frame jitter."""
    from runtime.detector import AUDetector

    out = tmp_path / "jitter.json"
    clip = media / "WolfgangLanger_Pexels.mp4"
    proc = _dt("jitter", "--source", clip, "--max-frames", 40, "--face-model", face_model, "--json", out)
    assert proc.returncode == 0, proc.stderr
    rows = {(r["au_smoothing"], r["landmark_smoothing"]): r for r in json.loads(out.read_text())["rows"]}
    assert len(rows) == 4 and all(r["frames"] == 40 and r["track_ids"] == [1] for r in rows.values())
    det = AUDetector("default", max_faces=1, smooth=False, smooth_landmarks=False, face_model=face_model)
    p = [np.array([r.faces[0].au_prob[a] for a in det.aus]) for r in det.stream(str(clip), max_frames=40)]
    det.close()
    assert rows[(False, False)]["jitter"] == pytest.approx(np.mean([np.abs(b - a).mean() for a, b in zip(p, p[1:])]))
    assert rows[(True, True)]["jitter"] < rows[(False, False)]["jitter"]
    assert _dt("jitter", "--source", clip, "--max-frames", 1).returncode == 2
    assert _dt("report", "--in", tmp_path, "--out", tmp_path / "report.md").returncode == 0
    md = (tmp_path / "report.md").read_text()
    assert "## AU-probability jitter" in md and f"| off | off | {rows[(False, False)]['jitter']:.4f} |" in md
