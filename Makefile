# Set-up and the two commands. See README.md and ../shared/CONTRACTS.md.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
export AU_DATA_DIR ?= $(abspath ../shared/data)
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: venv test bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[runtime,train,export,peer,dev]"
	@# mediapipe depends on opencv-contrib-python, which overwrites the same cv2 package as
	@# opencv-python-headless. Keep exactly one OpenCV: the headless build the runtime uses.
	$(PIP) uninstall -q -y opencv-contrib-python opencv-python opencv-python-headless
	$(PIP) install -q --no-deps --force-reinstall opencv-python-headless
	$(PY) -c "import cv2, onnxruntime, torch, timm; print('venv ok: opencv', cv2.__version__, 'torch', torch.__version__)"
	@rm -f $(VENV)/.installed-*
	@touch $@

test: venv
	$(PY) -m pytest -q

bench: venv
	mkdir -p out/bench
	@# 1) the runtime end to end on the Pexels clip next to MediaPipe, 2) the AU engine alone,
	@# 3) the data layer: cache build speed and DataLoader throughput from the open cache
	test -f out/bench/au_int8.tflite || $(PY) -m device_tests.make_engine --out out/bench/au_int8.tflite --calib-source $(AU_DATA_DIR)/media/WolfgangLanger_Pexels.mp4
	$(PY) -m device_tests.pipeline --engine out/bench/au_int8.tflite --source $(AU_DATA_DIR)/media/WolfgangLanger_Pexels.mp4 --peer mediapipe --repeat 5 --json out/bench/pipeline.json
	$(PY) -m device_tests.bench --engine out/bench/au_int8.tflite --json out/bench/bench_tflite_int8.json
	test -f out/data/open/manifest.json || $(PY) -m train.data open --data $(AU_DATA_DIR) --out out/data/open
	$(PY) -m train.data.bench --cache out/data/open --size 112 --workers 2 --build-clip $(AU_DATA_DIR)/media/WolfgangLanger_Pexels.mp4 --json out/bench/data.json
	@# 4) the export chain: smoke teacher -> ONNX/TFLite FP32 and INT8 with the parity gate -> size, latency, F1
	test -f out/bench/teacher/best.pt || $(PY) -m train --config configs/smoke.yaml run_dir=out/bench/teacher
	$(PY) -m export --checkpoint out/bench/teacher/best.pt --formats onnx,onnx-int8,tflite,tflite-int8 --calib out/data/smoke_synth --out out/bench/export
	$(PY) -m export.bench --dir out/bench/export --json out/bench/export.json --md out/bench/export.md

clean:
	rm -rf out .pytest_cache
