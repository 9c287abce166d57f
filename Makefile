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
# Downloads the checks below can rebuild (a compile-only CUDA 12, an arm64 root); kept outside the
# checkout so a fresh clone on the same machine reuses them. Delete the folder to start over.
FUSIONRT_CACHE ?= $(HOME)/.cache/fusionrt
# `make cuda-check`: this machine's CUDA and a CUDA 12 (JetPack 6's major), for Orin and Thor.
CUDA_NVCC    ?= /usr/local/cuda/bin/nvcc
CUDA12_ROOT  ?= $(FUSIONRT_CACHE)/cuda-12.4
CUDA_ARCHS   ?= 87 110
# `make aarch64-check`: the arm64 root it runs in, and the torch-free tests it runs there.
AARCH64_ROOT  ?= $(FUSIONRT_CACHE)/aarch64-bookworm
AARCH64_TESTS ?= tests/test_numeric.py tests/test_fuzz.py tests/test_plugin_fields.py

# What a rebuild of the compiled module depends on.
NATIVE_SOURCES := CMakeLists.txt pyproject.toml $(wildcard cmake/*.cmake) \
                  $(shell find csrc -type f 2>/dev/null)

.PHONY: all install serve-env demo test bench bench-save bench-compare trt-check cuda-check aarch64-check device-check clean

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

# The fusion study on built-in defaults (CPU, no downloads; ~16 min on 2 cores: see README): report in reports/demo/.
demo: install
	$(PY) -m training.study --config training/configs/study_demo.yaml

test: install serve-env trt-check cuda-check
	$(PY) -m pytest tests --durations=15

# The Triton serve environment (tools/serve_env.sh): nvidia-pytriton's tritonserver, which pins numpy < 2
# and so lives outside $(VENV), with the deployment packages and this checkout's fusionrt (its _C linked
# from $(VENV), not rebuilt). tests/test_serving_server.py serves bundles from it; `fusionrt serve` finds it.
SERVE_VENV ?= .venv-serve
$(SERVE_VENV)/.stamp-serve: $(VENV)/.stamp-install tools/serve_env.sh
	PYTHON=$(PYTHON) tools/serve_env.sh $(VENV) $(SERVE_VENV)
	touch $@

serve-env: $(SERVE_VENV)/.stamp-serve

# Compiles csrc/tensorrt/ against every TensorRT header set, so both JetPack generations stay buildable
# on machines without TensorRT; skips (and succeeds) when the headers are absent.
trt-check:
	PYBIND11_INCLUDES="$$($(PY) -m pybind11 --includes 2>/dev/null)" tools/trt_check.sh "$(TRT_HEADERS)" "$(CUDA_INCLUDE)"

# A check that passed is recorded under FUSIONRT_CACHE by a hash of what decides it, so a rerun or a
# fresh clone of an already checked tree skips it. $(call passed_record,NAME,FILES,FACTS): the record's
# path for check NAME over the contents of FILES and the text FACTS.
passed_record = $(FUSIONRT_CACHE)/passed/$(1)-$(shell { cat $(sort $(2)); echo '$(3)'; } | sha256sum | cut -c1-16)
TORCH_DIST = $(notdir $(wildcard $(VENV)/lib/python*/site-packages/torch-*.dist-info))

# Compiles every CUDA source, the C++ sources' CUDA paths and the torch CUDA registration with CUDA 12
# (laid out by tools/cuda12_toolkit.sh) and this machine's CUDA (skipped when absent).
CUDA_CHECK_PASSED = $(call passed_record,cuda-check,$(NATIVE_SOURCES) tools/cuda_check.sh,\
                      $(TORCH_DIST) $(shell $(CUDA_NVCC) --version 2>/dev/null | tail -n 1))
cuda-check: $(CUDA_CHECK_PASSED).cuda12 $(CUDA_CHECK_PASSED).system
	@echo "cuda-check: passed for this tree (recorded as $(CUDA_CHECK_PASSED).*)"

$(CUDA_CHECK_PASSED).cuda12: | $(VENV)/.stamp-build-tools
	PYTHON=$(PY) tools/cuda12_toolkit.sh "$(CUDA12_ROOT)"
	PYTHON=$(PY) tools/cuda_check.sh "$(CUDA12_ROOT)/bin/nvcc" build/cuda-check/cuda12 $(CUDA_ARCHS)
	mkdir -p $(@D) && touch $@

$(CUDA_CHECK_PASSED).system: | $(VENV)/.stamp-build-tools
	@if [ ! -x "$(CUDA_NVCC)" ]; then echo "cuda-check: no CUDA at $(CUDA_NVCC) (set CUDA_NVCC): only CUDA 12 checked"; exit 0; fi; \
	PYTHON=$(PY) tools/cuda_check.sh "$(CUDA_NVCC)" build/cuda-check/system $(CUDA_ARCHS) && mkdir -p $(@D) && touch $@

# Cross-compiles fusionrt._C for aarch64 and runs `fusionrt info` and AARCH64_TESTS under qemu-aarch64 in
# a Debian arm64 root (tools/aarch64_check.sh; installs qemu-user-static and the cross g++ when absent).
AARCH64_CHECK_PASSED = $(call passed_record,aarch64-check,$(NATIVE_SOURCES) tools/aarch64_check.sh \
                         $(shell find python/fusionrt -name '*.py') $(wildcard tests/*.py),$(AARCH64_TESTS))
aarch64-check: $(AARCH64_CHECK_PASSED)
	@echo "aarch64-check: passed for this tree (recorded as $(AARCH64_CHECK_PASSED))"

$(AARCH64_CHECK_PASSED): | $(VENV)/.stamp-build-tools
	PYTHON=$(PY) tools/aarch64_check.sh "$(AARCH64_ROOT)" build/aarch64 $(AARCH64_TESTS)
	mkdir -p $(@D) && touch $@

# The one command for the first GPU or Jetson (tools/device_check.py): builds in place for that GPU, runs
# the CUDA and TensorRT tests and the GPU benchmarks, writes reports/device/summary.{md,json}; without
# a GPU it says so in one line. Runs under .venv when there is one, else under the machine's python3
# with the packages it has (a GPU host or a Jetson, no network needed): DEVICE_PYTHON picks another.
DEVICE_PYTHON ?= $(if $(wildcard $(PY)),$(PY),$(PYTHON))
device-check:
	@$(DEVICE_PYTHON) tools/device_check.py

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
