#!/usr/bin/env bash
# Create .venv-bench (repo root, git-ignored via .venv-*/) with the peer LR finders that
# benchmarks/bench_torch.py compares lrscope against: torch-lr-finder, fastai, Lightning.
# A separate venv keeps them (and their dependency pins) out of lrscope's own .venv.
#   bash benchmarks/peers/setup.sh            # or: make bench-peers
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python3}"
VENV=.venv-bench
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q -c constraints.txt)
# torch pinned to lrscope's version (CPU wheel) so every finder runs on the same kernels.
"${PIP[@]}" torch==2.13.0 torch-lr-finder fastai lightning scikit-learn
# fastai pulls a torchvision built for another torch; importing it next to torch 2.13 breaks.
# None of the benchmarked code paths needs it (fastai's vision module is never imported).
"$VENV/bin/python" -m pip uninstall -y -q torchvision || true
"${PIP[@]}" -e .
"$VENV/bin/python" -c "import torch, torch_lr_finder, fastai, lightning, sklearn, lrscope; \
print('peers ready: torch', torch.__version__, 'fastai', fastai.__version__, \
'lightning', lightning.__version__)"
