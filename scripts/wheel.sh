#!/usr/bin/env bash
# Builds the Python package as a wheel and tests it as a user installs it: in fresh
# virtual environments in a temporary folder outside the repository, one with torch
# 2.13.0 and Stable-Baselines3 (both import orders, an unmodified SB3 PPO script), one
# with neither (the set-up's libtorch, L2T_LIBTORCH, and the errors when none fits);
# the tests are python/wheel_tests/test_wheel.py, run from that folder.
#
#   bash scripts/wheel.sh            # after scripts/setup.sh (scripts/test.sh calls it)
#
# L2T_WHEEL_RELEASE=0 builds the wheel in the dev profile (shares the test build; the
# default is `maturin build --release`, as the README's install). Prints the wheel's
# path and size. The wheel is kept in target/wheels.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
cache="${L2T_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/l2t}"
say() { printf '[l2t wheel] %s\n' "$*" >&2; }

profile=(--release)
[[ "${L2T_WHEEL_RELEASE:-1}" == "0" ]] && profile=()
rm -rf target/wheels
say "maturin build ${profile[*]} -m python/Cargo.toml"
started=$SECONDS
.venv/bin/maturin build "${profile[@]}" -m python/Cargo.toml -o target/wheels \
  >target/maturin-build.log 2>&1 || { cat target/maturin-build.log >&2; exit 1; }
wheel="$(ls target/wheels/l2t-*.whl)"
say "built $wheel ($(du -h "$wheel" | cut -f1), $((SECONDS - started)) s)"
work="$(mktemp -d /tmp/l2t-wheel.XXXXXX)"
trap 'rm -rf "$work"' EXIT
# One shared object, the native module: no libtorch (a copy next to torch's aborts the
# process), and no path of this machine (it finds libtorch through l2t/_libtorch.py).
python3 - "$wheel" "$work/module.so" <<'PY'
import sys, zipfile
libraries = [n for n in zipfile.ZipFile(sys.argv[1]).namelist() if ".so" in n.rsplit("/", 1)[-1]]
if len(libraries) != 1 or not libraries[0].startswith("l2t/_l2t."):
    sys.exit(f"[l2t wheel] the wheel must hold the native module alone, it holds {libraries}")
open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read(libraries[0]))
PY
if readelf -d "$work/module.so" | grep -E 'RPATH|RUNPATH'; then
  say "the native module carries a search path of this machine: it must not"
  exit 1
fi
cp python/wheel_tests/test_wheel.py "$work/"
pip_quiet=(--quiet --disable-pip-version-check)

# torch 2.13.0 as scripts/test.sh installs it (the set-up's cached wheel without its
# dependencies, then what importing it loads), then SB3 without dependencies.
say "venv with torch 2.13.0 and stable-baselines3: $work/torch"
python3 -m venv "$work/torch"
"$work/torch/bin/python" -m pip install "${pip_quiet[@]}" "$wheel" pytest
"$work/torch/bin/python" -m pip install "${pip_quiet[@]}" --no-deps \
  --find-links "$cache/downloads" torch==2.13.0
"$work/torch/bin/python" -m pip install "${pip_quiet[@]}" \
  --find-links "$cache/downloads" -r python/torch-requirements.txt
"$work/torch/bin/python" -m pip install "${pip_quiet[@]}" --no-deps -r python/sb3-requirements.txt
(cd "$work" && L2T_WHEEL_VENV=torch "$work/torch/bin/python" -m pytest -q -p no:cacheprovider test_wheel.py)

say "venv with neither: $work/bare"
python3 -m venv "$work/bare"
"$work/bare/bin/python" -m pip install "${pip_quiet[@]}" "$wheel" pytest
libtorch="$(readlink -f .libtorch)"
(cd "$work" && L2T_WHEEL_VENV=bare L2T_TEST_LIBTORCH="$libtorch" \
  "$work/bare/bin/python" -m pytest -q -p no:cacheprovider test_wheel.py)
