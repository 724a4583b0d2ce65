#!/usr/bin/env bash
# Remakes the trained teachers shipped in python/l2t/checkpoints/ (python/l2t/checkpoints/README.md): trains
# every learned teacher of each run below from scratch (`--no-shipped`), evaluates them
# on one seed only (the evaluation seeds are no part of a teacher's identity), then
# copies the ES teachers' checkpoints and training histories into python/l2t/checkpoints/<run>/.
# About 14 minutes on 2 cores for fashion-mnist-mlp. Extra arguments go to
# `l2t reproduce`. Commit the result with the commit it was made at in
# python/l2t/checkpoints/README.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
L2T_SKIP_PYTHON="${L2T_SKIP_PYTHON:-1}" bash scripts/setup.sh
cargo build --release --bin l2t
for run in fashion-mnist-mlp; do
    out="runs/checkpoints-$run"
    ./target/release/l2t --quiet reproduce "$run" --no-shipped --fresh --seeds 1 --out "$out" "$@"
    rm -rf "python/l2t/checkpoints/$run"
    mkdir -p "python/l2t/checkpoints/$run"
    # The ES teachers (es, es_compute): minutes of training each. REINFORCE and the
    # actor-critic train in about 40 s each, so the main job trains them itself.
    cp "$out"/es-*.ckpt "$out"/es-*-training.jsonl "python/l2t/checkpoints/$run/"
    echo "python/l2t/checkpoints/$run:"
    ls -l "python/l2t/checkpoints/$run"
done
