# Two commands do everything, set-up included: `make demo` and `make test`.
PY := .venv/bin/python

.PHONY: setup demo test lint bench screenshots

setup:
	@bash scripts/setup.sh

# The main job on the built-in sample: simulate the twinned Pt nanodumbbell, write its tilt
# series, angles, truth and a montage figure into out/sample.
demo: setup
	$(PY) -m napari_aet.cli simulate --sample --out out/sample

# The test suite (headless: pytest-xvfb starts a virtual display for the napari tests).
test: setup
	$(PY) -m pytest -q

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

bench: setup
	$(PY) benchmarks/bench_simulate.py

screenshots: setup
	$(PY) scripts/make_screenshots.py
