# Two commands do everything, set-up included: `make demo` and `make test`.
PY := .venv/bin/python

.PHONY: setup demo test test-all lint bench screenshots

setup:
	@bash scripts/setup.sh

# The main job on the built-in sample: simulate the twinned Pt nanodumbbell (tilt series,
# angles, truth, montage in out/sample), then run the whole pipeline on it (align, GENFIRE,
# trace, analyze, validate) into out/sample/run: atoms.csv, analysis.json, figures/.
demo: setup
	$(PY) -m napari_aet.cli simulate --sample --out out/sample
	$(PY) -m napari_aet.cli run out/sample/tilt_series.h5 --out out/sample/run

# The test suite (headless: pytest-xvfb starts a virtual display for the napari tests), one
# pytest-xdist worker per CPU this process may use (tests/conftest.py gives each its own CPU and
# thread count). `test` (what CI runs) leaves out the tests marked slow: whole runs and
# statistical checks whose capability a faster test also covers; `test-all` runs every test.
# `--dist worksteal`: a worker that runs out of tests takes queued ones from the other, so that
# both finish together (a few tests take 1-2 minutes each).
WORKERS = $(shell $(PY) -c "from napari_aet.core.threads import available_cpus; print(available_cpus())")
test: setup
	$(PY) -m pytest -q -m "not slow" -n $(WORKERS) --dist worksteal --durations=15

test-all: setup
	$(PY) -m pytest -q -n $(WORKERS) --dist worksteal

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

bench: setup
	$(PY) -m napari_aet.cli bench simulate
	$(PY) -m napari_aet.cli bench strain
	$(PY) -m napari_aet.cli bench structure_noise
	$(PY) -m napari_aet.cli bench augment
	$(PY) -m napari_aet.cli bench run

screenshots: setup
	$(PY) scripts/make_screenshots.py
