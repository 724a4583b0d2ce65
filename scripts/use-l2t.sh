#!/usr/bin/env bash
# Makes a crate of your own depend on this l2t checkout, ready for `cargo run`:
#
#     bash scripts/use-l2t.sh DIR            # DIR: a new crate, or an existing one
#     bash scripts/use-l2t.sh --git URL DIR  # depend on l2t by git instead of by path
#
# What a crate outside the repository needs, beyond the dependency:
#  - LIBTORCH when it builds (torch-sys, under tch, compiles against it): DIR's
#    `.cargo/config.toml` gets `[env] LIBTORCH`, this checkout's `.libtorch` link (made by
#    scripts/setup.sh, which this script runs first if the link is missing), and, last on
#    the C++ include path, l2t's stub `torch/torch.h`, whose #error names the set-up
#    should that libtorch disappear;
#  - libtorch's lib/ on its binaries' rpath: DIR/build.rs reads the folder that l2t's
#    build script exports (DEP_L2T_LIBTORCH_LIB; l2t declares `links = "l2t"`) and passes
#    it to the linker, as l2t does for its own binaries. A dependency's link arguments
#    never reach its dependents, so this line has to be in the dependent crate.
# A new crate also gets l2t's Cargo.lock (the versions l2t is tested with), l2t's dev
# profile (opt-level 1, dependencies 2: unoptimised students train slowly) and a
# src/main.rs that teaches a student of the synthetic task. In an existing crate nothing
# is overwritten: the l2t dependency is added with `cargo add`, build.rs and the config
# are written when absent (the [env] entries added when the config has none), and what
# cannot be merged safely is printed instead, with exit status 1.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { printf '[l2t use] %s\n' "$*" >&2; }
usage() {
  echo "usage: bash scripts/use-l2t.sh [--git URL] DIR" >&2
  exit 2
}

git_url=""
dir=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --git) [[ $# -ge 2 ]] || usage; git_url="$2"; shift 2 ;;
    -h | --help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option: $1" >&2; usage ;;
    *) [[ -z "$dir" ]] || usage; dir="$1"; shift ;;
  esac
done
[[ -n "$dir" ]] || usage
if [[ "$repo" == *"'"* ]]; then
  say "the l2t checkout's path ($repo) holds a single quote, which the TOML written here cannot"
  exit 1
fi

dir="$(realpath -m "$dir")"
if [[ "$dir" == "$repo" || "$dir" == "$repo/"* ]]; then
  say "$dir is inside the l2t checkout; pick a folder outside it (the checkout is a workspace)"
  exit 1
fi

# libtorch: the set-up, unless this checkout's `.libtorch` already holds one (the Python
# package is skipped unless L2T_SKIP_PYTHON=0: a Rust crate does not need it).
if ! compgen -G "$repo/.libtorch/lib/libtorch_cpu.*" >/dev/null; then
  say "no libtorch at $repo/.libtorch yet: running scripts/setup.sh"
  L2T_SKIP_PYTHON="${L2T_SKIP_PYTHON:-1}" bash "$repo/scripts/setup.sh"
fi

mkdir -p "$dir"
if [[ -n "$git_url" ]]; then
  dependency="l2t = { git = \"$git_url\" }"
  add_args=(--git "$git_url")
else
  dependency="l2t = { path = '$repo' }"
  add_args=(--path "$repo")
fi
todo=0

if [[ ! -f "$dir/Cargo.toml" ]]; then
  name="$(basename "$dir" | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9_\n-' '-')"
  [[ "$name" =~ ^[a-z] ]] || name="crate-$name"
  case "$name" in
    l2t | l2t-envs | l2t-agents | l2t-python | test)
      say "a crate named $name would clash with a crate it depends on; pick another folder name"
      exit 1 ;;
  esac
  say "creating the crate $name in $dir"
  mkdir -p "$dir/src"
  cat >"$dir/Cargo.toml" <<EOF
[package]
name = "$name"
version = "0.1.0"
edition = "2021"

[dependencies]
$dependency

# l2t's own dev profile: the students train in the debug build too, and unoptimised
# tensor and ndarray code makes that needlessly slow.
[profile.dev]
opt-level = 1
debug = "line-tables-only"

[profile.dev.package."*"]
opt-level = 2

# Build scripts with the same debug info in cargo build and cargo clippy or check, so
# that tch's C++ wrapper (torch-sys's build script, minutes) is compiled once, not twice.
[profile.dev.build-override]
debug = "line-tables-only"
EOF
  cp "$repo/Cargo.lock" "$dir/Cargo.lock"
  printf '/target\n' >"$dir/.gitignore"
  cat >"$dir/src/main.rs" <<'EOF'
//! A teacher of one's own on l2t's synthetic task: it keeps the instances whose
//! normalised loss is above 0.1 until the student reaches the task's target accuracy.
use l2t::envs::Env;
use l2t::tasks::SyntheticTask;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut env, _data) = SyntheticTask::default().build()?;
    let (mut observation, _info) = env.reset(Some(0))?;
    loop {
        let keep_mask = observation.column("loss")?.mapv(|loss| loss > 0.1);
        let step = env.step(&keep_mask)?;
        if step.terminated || step.truncated {
            println!(
                "i_tau = {:?}, reward {}",
                step.info.iterations_to_tau, step.reward
            );
            return Ok(());
        }
        observation = step.observation;
    }
}
EOF
elif ! grep -Eq '^[[:space:]]*l2t[[:space:]]*=' "$dir/Cargo.toml"; then
  say "adding the l2t dependency to $dir/Cargo.toml"
  (cd "$dir" && cargo add l2t "${add_args[@]}")
fi

build_line='fn main() { if let Ok(lib) = std::env::var("DEP_L2T_LIBTORCH_LIB") { println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}") } }'
build_script="$dir/build.rs"
if grep -Eq '^[[:space:]]*build[[:space:]]*=' "$dir/Cargo.toml"; then
  build_script="(the build script that $dir/Cargo.toml names)"
fi
if [[ -f "$dir/build.rs" ]] && grep -q DEP_L2T_LIBTORCH_LIB "$dir/build.rs"; then
  :
elif [[ "$build_script" == "$dir/build.rs" && ! -f "$dir/build.rs" ]]; then
  {
    echo '// libtorch on the rpath of this crate'"'"'s binaries, tests and examples: the folder that'
    echo '// l2t'"'"'s build script exports (l2t has `links = "l2t"`; see its README).'
    echo "$build_line"
  } >"$dir/build.rs"
else
  say "add to the main function of $build_script:"
  echo '    if let Ok(lib) = std::env::var("DEP_L2T_LIBTORCH_LIB") { println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}") }' >&2
  todo=1
fi

config="$dir/.cargo/config.toml"
env_entries="LIBTORCH = '$repo/.libtorch'
CPLUS_INCLUDE_PATH = '$repo/build-support/libtorch-missing/include'"
config_comment="# Written by l2t's scripts/use-l2t.sh: the libtorch of the l2t checkout at $repo
# (torch-sys compiles against LIBTORCH; an exported LIBTORCH wins) and, searched last,
# l2t's stub torch/torch.h, whose #error names the set-up if that libtorch is gone."
mkdir -p "$dir/.cargo"
if [[ ! -f "$config" ]]; then
  printf '%s\n[env]\n%s\n' "$config_comment" "$env_entries" >"$config"
elif grep -Eq '^[[:space:]]*LIBTORCH[[:space:]]*=' "$config"; then
  if ! grep -Fq "$repo/.libtorch" "$config"; then
    say "$config sets LIBTORCH already, not to $repo/.libtorch; left as it is"
  fi
elif ! grep -Eq '^[[:space:]]*\[env\][[:space:]]*$' "$config"; then
  printf '\n%s\n[env]\n%s\n' "$config_comment" "$env_entries" >>"$config"
else
  say "$config has an [env] table; add to it:"
  echo "$env_entries" >&2
  todo=1
fi

if [[ "$todo" == 1 ]]; then
  say "not done: add the lines above, then build with cargo as usual"
  exit 1
fi
say "ready: cd $dir && cargo run"
