#!/usr/bin/env bash
# One accelerator check, under 5 minutes on one GPU (see benchmarks/device_check.py for what it prints).
# On a fresh GPU machine, from the repository root:
#   python3 -m pip install -e ".[test]" && python3 -m pip install "jax[cuda12]>=0.10.2,<0.11"
#   bash benchmarks/device_check.sh
# Put the printed figures in README.md's Figures section with the machine and the date.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c "import jax; assert jax.default_backend() != 'cpu', 'no accelerator: jax runs on the CPU (pip install \"jax[cuda12]\")'"
timeout 290 python3 benchmarks/device_check.py "$@"
