#!/usr/bin/env bash
# Runs the test suite on a fresh machine: set-up (idempotent), then every test of the
# workspace. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
cargo test --workspace "$@"
