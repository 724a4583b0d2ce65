#!/usr/bin/env bash
# Runs the test suite on a fresh machine: set-up (idempotent, which builds the Python
# package into .venv), then every test of the workspace, then the Python package's
# pytest suite (python/tests). Extra arguments go to `cargo test`.
#
# The Python tests run torch 2.13.0 and l2t in one process; torch is installed into
# .venv once (the set-up's cached torch wheel plus the CUDA wheels importing it loads,
# from PyPI: about 1 minute and 3.8 GB); L2T_SKIP_TORCH=1 skips that install, and the two torch tests
# then skip. Stable-Baselines3 (python/sb3-requirements.txt, a few seconds) is installed
# next to torch, for the tests that train SB3's PPO and A2C on the env, and TorchRL
# (python/torchrl-requirements.txt) for the tests that hand it the envs; L2T_SKIP_TORCH=1
# skips them too. Then the wheel (scripts/wheel.sh: `maturin build`, installed into fresh
# venvs outside the checkout, with and without torch; L2T_SKIP_WHEEL=1 or
# L2T_SKIP_TORCH=1 skips it). L2T_SKIP_PYTHON=1 skips the Python package altogether.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
cargo test --workspace "$@"
if [[ "${L2T_SKIP_PYTHON:-0}" != "1" ]]; then
  venv=.venv
  cache="${L2T_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/l2t}"
  if [[ "${L2T_SKIP_TORCH:-0}" != "1" ]] && ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
    echo "[l2t test] installing torch==2.13.0 into $venv (for the torch-and-l2t tests)" >&2
    # Only what importing torch loads (python/torch-requirements.txt), then the set-up's
    # cached wheel without its dependencies: a full `pip install torch` adds ~1 GB more.
    # In this order pip prints no resolver ERROR about the requirements left out.
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      --find-links "$cache/downloads" -r python/torch-requirements.txt
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
      --find-links "$cache/downloads" torch==2.13.0
  fi
  if [[ "${L2T_SKIP_TORCH:-0}" != "1" ]] && ! "$venv/bin/python" -c 'import stable_baselines3' 2>/dev/null; then
    echo "[l2t test] installing stable-baselines3 into $venv (for the SB3 tests)" >&2
    # --no-deps: its requirements are all in .venv already; resolving them would pull
    # the parts of torch's requirements that torch-requirements.txt leaves out.
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
      -r python/sb3-requirements.txt
  fi
  if [[ "${L2T_SKIP_TORCH:-0}" != "1" ]] && ! "$venv/bin/python" -c 'import torchrl' 2>/dev/null; then
    echo "[l2t test] installing torchrl into $venv (for the TorchRL tests)" >&2
    # --no-deps, as SB3: the pins list what .venv lacks (about 5 MB, 5 s with downloads).
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
      -r python/torchrl-requirements.txt
  fi
  "$venv/bin/python" -m pytest -q python/tests
  # The wheel as a user installs it: built, then tested in fresh venvs outside the
  # checkout, with torch 2.13.0 and SB3 and without (scripts/wheel.sh). In the dev
  # profile, whose build the set-up's `maturin develop` already made (about 2 min in
  # all); L2T_WHEEL_RELEASE=1 tests the release wheel (about 5 min more on 2 cores).
  if [[ "${L2T_SKIP_TORCH:-0}" != "1" && "${L2T_SKIP_WHEEL:-0}" != "1" ]]; then
    L2T_WHEEL_RELEASE="${L2T_WHEEL_RELEASE:-0}" bash scripts/wheel.sh
  fi
fi
