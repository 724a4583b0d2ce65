#!/usr/bin/env bash
# The headline figures: `l2t benchmark`, every benchmark task (fashion-mnist-mlp and the
# transfer fashion-mnist-mlp-to-cnn) on the 20 report seeds (1000000-1000019, which no
# choice of configuration looked at), into runs/benchmark with the leaderboard. The
# teachers the main job trained (runs/fashion-mnist-mlp) are reused, else they are
# trained first (about 8 minutes on 2 cores). Evaluation: about 25 minutes on 2 quiet
# cores for both tasks. Extra arguments go to `l2t benchmark` (e.g. --task
# fashion-mnist-mlp for the main job's task alone).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
L2T_SKIP_PYTHON="${L2T_SKIP_PYTHON:-1}" bash scripts/setup.sh
cargo run --release --bin l2t -- benchmark "$@"
