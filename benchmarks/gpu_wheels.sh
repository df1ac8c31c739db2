#!/usr/bin/env bash
# The wheels `make bench-gpu` needs on a GPU machine that cannot reach PyPI (Python 3.12, x86-64), into .whl/,
# which git ignores: carry it to the machine (the device tool: carry [".whl"]).
#   benchmarks/gpu_wheels.sh && make bench-gpu        # the second command on the GPU machine
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
# fla-core: the kernels; flash-linear-attention: fla's own layers, the kernels section's reference
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform any -d .whl \
    fla-core==0.6.0 flash-linear-attention==0.6.0
ls -l .whl
