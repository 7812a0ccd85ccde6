#!/usr/bin/env bash
# `make gpu-check`: one command for a fresh GPU machine that has torch, Triton and nvcc
# but no network (and perhaps another torch version). Within 8 minutes it
#   1. records the machine (nvidia-smi, torch, CUDA, Triton, nvcc),
#   2. installs, from the wheels that `make gpu-wheels` put in .whl/ (carried to the
#      machine), the packages the tests import that its image lacks (POT, nvtx,
#      torch-fidelity and its torchvision), into .whl/site on PYTHONPATH; any still
#      missing are named in summary.txt and the tests that stop on importing them are
#      reported as skipped, naming the package (tests/conftest.py),
#   3. builds the extension in place against the torch at hand (the CUDA sources for
#      this GPU's architecture only),
#   4. runs `fastgan doctor`,
#   5. runs the parity tests on the GPU (FASTGAN_TEST_DEVICE=cuda: backends cuda,
#      eager and compiled Triton),
#   6. runs `fastgan bench --quick` (CUDA-event timing, CUDA-graph and
#      torch.compile(mode="reduce-overhead") peers),
# writing each stage's output and summary.txt to one folder: $GPU_CHECK_OUT, else
# $OUT/gpu-check (the device tool's output folder), else runs/gpu-check. Without a GPU
# it stops after the doctor, says so, and exits 0. GPU_CHECK_BUILD=0 skips the build.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${GPU_CHECK_OUT:-${OUT:+$OUT/gpu-check}}"
out="${out:-runs/gpu-check}"
mkdir -p "$out"
: > "$out/summary.txt"
py="${PYTHON:-}"
[ -n "$py" ] || { [ -x .venv/bin/python ] && py=.venv/bin/python || py=python3; }
deadline=$(( $(date +%s) + ${GPU_CHECK_SECONDS:-470} ))
failed=0

say() { echo "$*" | tee -a "$out/summary.txt"; }

# stage NAME SECONDS COMMAND...: runs COMMAND for at most SECONDS (less if the
# deadline is nearer), its output in NAME.txt
stage() {
  local name=$1 cap=$2 left start rc
  shift 2
  left=$(( deadline - $(date +%s) ))
  [ "$left" -lt "$cap" ] && cap=$left
  if [ "$cap" -le 5 ]; then say "$name: not run (the 8-minute budget is spent)"; failed=1; return 1; fi
  start=$(date +%s)
  timeout "$cap" "$@" > "$out/$name.txt" 2>&1
  rc=$?
  [ "$rc" -eq 0 ] || failed=1
  say "$name: exit $rc$([ "$rc" -eq 124 ] && echo ' (timed out)') in $(( $(date +%s) - start )) s -> $out/$name.txt"
  return "$rc"
}

stage machine 60 bash -c "nvidia-smi || true; nvcc --version || true; $py - <<'PY'
import sys, torch
print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda,
      'gpu', torch.cuda.get_device_name() if torch.cuda.is_available() else None)
try:
    import triton; print('triton', triton.__version__)
except ImportError:
    print('triton: not installed')
PY"
# import name:wheel name of the optional packages (torch-fidelity imports torchvision), and
# the wheels' folder (GPU_CHECK_OPTIONAL and GPU_CHECK_WHEELS override them, for tests)
OPTIONAL="${GPU_CHECK_OPTIONAL:-ot:pot nvtx:nvtx torchvision:torchvision torch_fidelity:torch_fidelity}"
WHEELS="${GPU_CHECK_WHEELS:-.whl}"
missing() {
  local pair
  for pair in $OPTIONAL; do "$py" -c "import ${pair%%:*}" > /dev/null 2>&1 || echo "$pair"; done
}
install_wheels() {  # the wheels in $WHEELS of the missing packages, into $WHEELS/site
  local pair wheels=() w
  shopt -s nocaseglob nullglob
  for pair in $(missing); do wheels+=("$WHEELS/${pair#*:}"-*.whl); done
  shopt -u nocaseglob nullglob
  [ "${#wheels[@]}" -gt 0 ] || { echo "nothing to install"; return 0; }
  echo "installing ${wheels[*]}"
  "$py" -m pip install --no-index --no-deps --target "$WHEELS/site" "${wheels[@]}" && return 0
  for w in "${wheels[@]}"; do "$py" -m zipfile -e "$w" "$WHEELS/site" || return 1; done  # (no pip: a wheel is a zip)
}
WHEELS=$(cd "$WHEELS" 2>/dev/null && pwd || echo "$PWD/$WHEELS")
export PYTHONPATH="$WHEELS/site${PYTHONPATH:+:$PYTHONPATH}"
if [ -d "$WHEELS" ]; then
  stage wheels 60 bash -c "$(declare -p OPTIONAL WHEELS py); $(declare -f missing install_wheels); install_wheels"
else
  say "wheels: no $WHEELS folder (run \`make gpu-wheels\` before the device run and carry .whl)"
fi
still=$(missing | sed 's/:.*//' | paste -sd, -)
if [ -n "$still" ]; then
  export FASTGAN_TEST_MISSING="$still"
  say "missing packages: $still; the tests that import them are reported as skipped, naming the package"
fi
gpu=$($py -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo 0)
if [ "$gpu" = 1 ]; then
  export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-$($py -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())")}"
fi
if [ "${GPU_CHECK_BUILD:-1}" = 1 ]; then
  # pip's editable install, or (no pip, an old one) setuptools' in-place build
  stage build 300 env MAX_JOBS="${MAX_JOBS:-$(nproc)}" bash -c \
    "'$py' -m pip install --no-index --no-build-isolation --no-deps -e . || '$py' setup.py build_ext --inplace"
fi
stage doctor 90 "$py" -m fastgan doctor
if [ "$gpu" != 1 ]; then
  say "no GPU is present: the build and doctor ran; the parity tests on cuda/triton and the GPU bench need a GPU"
  exit 0
fi
# the graph step's Triton variant on conv critics is checked by the doctor above and on
# MLPs by test_critic_parity (every constexpr specialisation of the conv graphs would
# compile here)
stage parity 200 env FASTGAN_TEST_DEVICE=cuda "$py" -m pytest -v -p no:cacheprovider -rfE \
  -k "not ((test_chain or test_graph or test_projection) and triton)" \
  tests/test_bias_act.py tests/test_critic_parity.py tests/test_critic_autograd.py tests/test_penalties.py \
  tests/test_optim.py tests/test_nn.py tests/test_conversions.py tests/test_chain.py tests/test_graph.py \
  tests/test_projection.py
stage bench 200 "$py" -m fastgan bench --quick --out "$out/bench"
say "gpu-check: $([ "$failed" = 0 ] && echo 'every stage passed' || echo 'some stages failed (see above)')"
exit "$failed"
