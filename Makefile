# fusionrt developer entry points. `make demo` and `make test` work from a fresh clone: they create
# .venv when missing, install the project with its extras, then run.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
EXTRAS ?= train,onnx,dev
# TensorRT header sets (<version>/include) for `make trt-check`; CI has shared/ beside the clone.
TRT_HEADERS  ?= ../shared/third_party/tensorrt-headers
CUDA_INCLUDE ?= /usr/local/cuda/include

# What a rebuild of the compiled module depends on.
NATIVE_SOURCES := CMakeLists.txt pyproject.toml $(wildcard cmake/*.cmake) \
                  $(shell find csrc -type f 2>/dev/null)

.PHONY: all install demo test bench bench-save bench-compare trt-check clean

all: install

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Build tools first, so the project builds without isolation and keeps build/ between runs; torch
# (as the train extra pins it) too, so the build compiles the ops' C++ torch kernels against it.
$(VENV)/.stamp-build-tools: | $(PY)
	$(PIP) install --quiet "scikit-build-core>=0.10" "pybind11>=2.12" "cmake>=3.26" ninja "torch>=2.5"
	touch $@

# Editable install: Python edits take effect at once; C++ edits rebuild through this target.
$(VENV)/.stamp-install: $(VENV)/.stamp-build-tools $(NATIVE_SOURCES)
	$(PIP) install --no-build-isolation --editable ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.stamp-install

# The fusion study on built-in defaults (CPU, no downloads, ~16 min on 2 cores): report in reports/demo/.
demo: install
	$(PY) -m training.study --config training/configs/study_demo.yaml

test: install trt-check
	$(PY) -m pytest tests

# Compiles csrc/tensorrt/ against every TensorRT header set, so both JetPack generations stay buildable
# on machines without TensorRT; skips (and succeeds) when the headers are absent.
trt-check:
	PYBIND11_INCLUDES="$$($(PY) -m pybind11 --includes 2>/dev/null)" tools/trt_check.sh "$(TRT_HEADERS)" "$(CUDA_INCLUDE)"

# Benchmarks (not part of `make test`; see bench/README.md): BENCH_SUITES files, BENCH_ARGS to pytest.
# Baselines live per machine under .benchmarks/<BENCH_MACHINE>/; bench-compare fails when a median
# regresses by more than BENCH_THRESHOLD against BENCH_BASELINE (a saved run's number, e.g. 0003;
# empty: the machine's latest).
BENCH_MACHINE   ?= $(shell hostname -s)
BENCH_BASELINE  ?=
BENCH_THRESHOLD ?= 10%
BENCH_SUITES    ?= bench
BENCH_ARGS      ?=
BENCH := $(PY) -m pytest $(BENCH_SUITES) --benchmark-only --benchmark-group-by=group \
         --benchmark-columns=min,median,iqr,max,rounds --benchmark-storage=.benchmarks/$(BENCH_MACHINE)

bench: install
	$(BENCH) $(BENCH_ARGS)

bench-save: install
	$(BENCH) --benchmark-save=$(BENCH_MACHINE) $(BENCH_ARGS)

bench-compare: install
	$(BENCH) --benchmark-compare$(if $(BENCH_BASELINE),=$(BENCH_BASELINE)) \
	  --benchmark-compare-fail=median:$(BENCH_THRESHOLD) $(BENCH_ARGS)

clean:
	rm -rf build $(VENV)/.stamp-install
