#!/usr/bin/env bash
# Distributed teacher training (issue 15): episodes per minute with 1 and 2 MPI ranks in
# one session, alternating (1, 2, 1, 2) so that other load on the machine hits both
# alike, and the communication per update. Each run prints the `distributed:` line of
# rank 0. Needs `cargo build --release --features mpi --bin l2t` (BENCHMARKS.md).
#
#   bash scripts/bench_mpi.sh                       # fashion-mnist-mlp, REINFORCE K = 4, 16 episodes
#   L2T_BENCH_PRESET=synthetic L2T_BENCH_EPISODES=32 bash scripts/bench_mpi.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=target/release/l2t
preset="${L2T_BENCH_PRESET:-fashion-mnist-mlp}"
episodes="${L2T_BENCH_EPISODES:-16}"
teacher="${L2T_BENCH_TEACHER:-{\"kind\":\"reinforce\",\"episodes_per_update\":4\}}"
read -r -a mpirun <<<"${L2T_MPIRUN:-mpirun --allow-run-as-root --oversubscribe}"
echo "nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
  "commit $(git rev-parse --short HEAD), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "preset $preset, teacher $teacher, $episodes episodes, 1 worker thread per rank"
for ranks in 1 2 1 2; do
  out="$(mktemp -d)"
  "${mpirun[@]}" -np "$ranks" "$bin" --quiet train "$preset" --teacher "$teacher" \
    --episodes "$episodes" --seeds 1 --no-plots --workers 1 --distributed --out "$out" 2>&1 \
    | grep '^distributed'
  rm -rf "$out"
done
echo "load at the end $(cut -d' ' -f1-3 /proc/loadavg)"
