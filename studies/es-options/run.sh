#!/usr/bin/env bash
# What each ES option bought: trains ES under each config of this folder (each run also
# evaluates NoTeach and online batch selection on seeds 0-4), then teaches 20 fresh
# students (seeds 0-19) with every trained ES teacher, NoTeach and online batch
# selection, and prints the per-config table of studies/notes/es-options.md.
# About 7 min per config and 12 min for the comparison on 2 cores; run folders resume.
# Needs the set-up (`bash scripts/setup.sh`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
cargo build --release --bin l2t
configs=(base ev20 gen lr25 p1 p2 p2-640 p2s25 h1000)
teachers=(--teacher no_teach --teacher online_batch)
for c in "${configs[@]}"; do
  ./target/release/l2t --quiet run --config "studies/es-options/$c.toml" --out "runs/es-$c"
  teachers+=(--teacher "$c=$(ls runs/es-$c/es-*.ckpt)")
done
./target/release/l2t --quiet compare fashion-mnist-mlp "${teachers[@]}" --seeds 20 \
  --no-plots --out runs/es-options-20
python3 studies/es-options/paired.py runs/es-options-20/report.json
