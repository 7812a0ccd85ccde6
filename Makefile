# fastgan: `make demo` and `make test` set everything up on a fresh machine.
#
#   make demo    .venv + dependencies + extension, then `fastgan train` (the WGAN-GP demo,
#                replacing the last demo run in runs/demo)
#   make test    the same set-up, then the full test suite
#   make bench   the same set-up, then `fastgan bench --quick` (all suites, small configs)
#   make gpu-check  on a GPU machine without network (torch, Triton, nvcc installed): build,
#                doctor, parity tests on the GPU and the quick bench, in 8 minutes
#                (bench/gpu_check.sh); without a GPU it stops after the doctor, exit 0
#   make gpu-wheels  here, before a device run: the wheels of the packages the GPU
#                machine's image lacks, into .whl/ (carry it; gpu-check installs them)
#
# Set-up steps leave stamps in .venv, so a second run reinstalls nothing. With
# FASTGAN_FORCE_CUDA=1 and TORCH_CUDA_ARCH_LIST set (as .ci/run does), the CUDA sources
# are compiled too, without a GPU.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUILD_KIND := $(if $(filter 1,$(FASTGAN_FORCE_CUDA)),cuda,auto)
EXT_SOURCES := setup.py $(wildcard csrc/*.h csrc/*.cpp csrc/graph/*.h csrc/graph/*.cpp csrc/cpu/*.h csrc/cpu/*.cpp csrc/cuda/*.h csrc/cuda/*.cu csrc/cuda/*.cuh)

.PHONY: demo test bench build clean gpu-check gpu-wheels

demo: $(VENV)/.built-$(BUILD_KIND)
	$(VENV)/bin/fastgan train --overwrite

test: $(VENV)/.built-$(BUILD_KIND)
	$(PY) -m pytest -q tests

bench: $(VENV)/.built-$(BUILD_KIND)
	$(VENV)/bin/fastgan bench --quick

build: $(VENV)/.built-$(BUILD_KIND)

gpu-check:
	bash bench/gpu_check.sh

# The GPU machine: CPython 3.12 on x86_64 Linux, torch 2.11 (so torchvision 0.26, which
# torch-fidelity imports), no POT, nvtx or torch-fidelity, and no network. POT 0.9.6's
# wheel is 1.5 MB where 0.9.7's is 33 MB of the device tool's 64 MiB carry.
GPU_PYTHON_VERSION ?= 3.12
GPU_WHEELS ?= pot==0.9.6.post1 nvtx torch-fidelity torchvision==0.26.0

gpu-wheels:
	rm -rf .whl
	$(PYTHON) -m pip download --quiet --only-binary=:all: --no-deps --implementation cp \
		--python-version $(GPU_PYTHON_VERSION) --platform manylinux_2_28_x86_64 \
		--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $(GPU_WHEELS)
	ls -l .whl

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.deps: requirements.txt | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.built-$(BUILD_KIND): $(VENV)/.deps $(EXT_SOURCES)
	rm -f $(VENV)/.built-*
	MAX_JOBS=$${MAX_JOBS:-2} $(PY) -m pip install --quiet --no-build-isolation --no-deps -e .
	touch $@

clean:
	rm -rf build *.egg-info fastgan/_C*.so $(VENV)/.built-*
