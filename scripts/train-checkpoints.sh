#!/usr/bin/env bash
# Remakes the trained teachers shipped in checkpoints/ (checkpoints/README.md): trains
# every learned teacher of each run below from scratch (`--no-shipped`), evaluates them
# on one seed only (the evaluation seeds are no part of a teacher's identity), then
# copies the ES teachers' checkpoints and training histories into checkpoints/<run>/.
# About 14 minutes on 2 cores for fashion-mnist-mlp. Extra arguments go to
# `l2t reproduce`. Commit the result with the commit it was made at in
# checkpoints/README.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
L2T_SKIP_PYTHON="${L2T_SKIP_PYTHON:-1}" bash scripts/setup.sh
cargo build --release --bin l2t
for run in fashion-mnist-mlp; do
    out="runs/checkpoints-$run"
    ./target/release/l2t --quiet reproduce "$run" --no-shipped --fresh --seeds 1 --out "$out" "$@"
    rm -rf "checkpoints/$run"
    mkdir -p "checkpoints/$run"
    # The ES teachers (es, es_compute): minutes of training each. REINFORCE and the
    # actor-critic train in about 40 s each, so the main job trains them itself.
    cp "$out"/es-*.ckpt "$out"/es-*-training.jsonl "checkpoints/$run/"
    echo "checkpoints/$run:"
    ls -l "checkpoints/$run"
done
