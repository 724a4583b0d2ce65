#!/usr/bin/env bash
# The main job on a fresh machine: set-up (idempotent), then the Fashion-MNIST
# reproduction: train REINFORCE and the actor-critic on the teacher half (the ES teachers
# come trained from python/l2t/checkpoints/; --no-shipped trains them too), then teach fresh
# students on the student half with every teacher and the heuristics.
# Extra arguments go to `l2t reproduce` (e.g. --episodes 40 --seeds 10).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# The main job needs no Python: its set-up skips the Python package (scripts/test.sh
# and a plain `bash scripts/setup.sh` build it).
L2T_SKIP_PYTHON="${L2T_SKIP_PYTHON:-1}" bash scripts/setup.sh
cargo run --release --bin l2t -- reproduce fashion-mnist-mlp "$@"
