//! A crate of one's own outside the repository that depends on `l2t` (issue 35, item 1):
//! `scripts/use-l2t.sh` makes it, cargo builds it with nothing exported, and its binary
//! runs without `LD_LIBRARY_PATH`; and when libtorch is missing, the build stops with the
//! set-up command of this checkout, from l2t's build script and from the stub header.
//!
//! The build of the crate shares this checkout's target dir and Cargo.lock and has the
//! same environment as the checkout's own builds (the LIBTORCH and CPLUS_INCLUDE_PATH
//! that use-l2t.sh writes are the values of the checkout's `.cargo/config.toml`), so no
//! dependency is rebuilt: cargo compiles the crate's build script and main.rs and links.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::Scratch;

/// The l2t checkout.
fn checkout() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// This build's target dir (`CARGO_TARGET_TMPDIR` is its `tmp/`).
fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).to_path_buf()
}

/// stdout and stderr of a finished command, for assertion messages.
fn text(output: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A command without what cargo exports to this test from the checkout's config or
/// what a user's shell may hold, so that only the crate's own step can supply it.
fn clean(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    for var in [
        "LIBTORCH",
        "CPLUS_INCLUDE_PATH",
        "LD_LIBRARY_PATH",
        "RUSTFLAGS",
    ] {
        command.env_remove(var);
    }
    command
}

/// Appended to the crate's Cargo.toml by the test only, so that its build reuses the
/// checkout's instead of building a second copy of tch and the crates under it: the
/// features the workspace's other members unify into l2t's dependencies (l2t-python's
/// pyo3 and numpy: `std` of num-complex and num-integer under ndarray; syn 3's
/// `extra-traits` and `visit-mut` for the proc-macros). l2t, l2t-envs and l2t-agents
/// themselves are rebuilt: a dependency gets `profile.dev.package."*"`'s opt-level 2
/// where the workspace gives its members 1 (and their build scripts 0, which no
/// package override can match). use-l2t.sh writes the workspace's `build-override`,
/// so torch-sys's build script is the checkout's unit. A user's crate needs none of
/// this; should it drift, the build is slower, not wrong. The lines before the first
/// table go into `[dependencies]`.
const WORKSPACE_ALIGNMENT: &str = r#"
num-complex = { version = "0.4", features = ["std"] }
num-integer = { version = "0.1", features = ["std"] }

[build-dependencies]
syn = { version = "3", features = ["extra-traits", "visit-mut", "full"] }
"#;

/// main.rs of the crate: a few steps of the synthetic preset's TeachingEnv with a
/// teacher of its own, and one tensor op through the re-exported tch.
const MAIN_RS: &str = r#"use l2t::envs::Env;
use l2t::presets::{default_data_dir, Preset};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut envs = Preset::synthetic().build(&default_data_dir())?;
    let env = &mut envs.student_env;
    let (mut observation, _info) = env.reset(Some(7))?;
    let mut kept = 0;
    for _ in 0..5 {
        let keep_mask = observation.column("loss")?.mapv(|loss| loss > 0.1);
        kept += keep_mask.iter().filter(|&&keep| keep).count();
        let step = env.step(&keep_mask)?;
        assert!(!step.terminated && !step.truncated);
        observation = step.observation;
    }
    let sum = l2t::tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]).sum(l2t::tch::Kind::Float);
    println!("own crate: 5 steps, {kept} instances kept, tch sum {}", f64::try_from(sum)?);
    Ok(())
}
"#;

#[test]
fn a_crate_of_ones_own_builds_and_runs_with_use_l2t() {
    let scratch = Scratch::new("own-crate", "build");
    let dir = scratch.join("my-teacher");
    let script = checkout().join("scripts/use-l2t.sh");
    let made = clean("bash").arg(&script).arg(&dir).output().unwrap();
    assert!(made.status.success(), "use-l2t.sh: {}", text(&made));
    for file in ["Cargo.toml", "Cargo.lock", "build.rs", ".cargo/config.toml"] {
        assert!(dir.join(file).is_file(), "use-l2t.sh wrote no {file}");
    }
    let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("name = \"my-teacher\""), "{manifest}");
    assert!(
        manifest.contains(&format!("l2t = {{ path = '{}' }}", checkout().display())),
        "{manifest}"
    );
    fs::write(dir.join("src/main.rs"), MAIN_RS).unwrap();
    let (dependencies, rest) = WORKSPACE_ALIGNMENT.split_at(
        WORKSPACE_ALIGNMENT
            .find("\n[")
            .expect("the alignment has a table"),
    );
    let aligned = manifest.replacen(
        "[dependencies]\n",
        &format!("[dependencies]{dependencies}"),
        1,
    ) + rest;
    fs::write(dir.join("Cargo.toml"), &aligned).unwrap();

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let started = std::time::Instant::now();
    // l2t's own three crates are rebuilt whatever the alignment (above); at opt-level 0
    // without debug info that takes a third of the time of a dependency's opt-level 2.
    // What is tested is that the crate builds and runs, not how fast it runs.
    let mut quick = Vec::new();
    for package in ["l2t", "l2t-envs", "l2t-agents"] {
        for setting in ["opt-level = 0", "debug = 0"] {
            quick.push("--config".to_string());
            quick.push(format!("profile.dev.package.{package}.{setting}"));
        }
    }
    let built = clean(&cargo)
        .args(["build", "--offline", "--message-format=short"])
        .args(&quick)
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .unwrap();
    assert!(built.status.success(), "cargo build: {}", text(&built));
    eprintln!(
        "own crate: cargo build {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let stderr = String::from_utf8_lossy(&built.stderr);
    for dependency in ["torch-sys", "tch v"] {
        assert!(
            !stderr.contains(&format!("Compiling {dependency}")),
            "the crate rebuilt {dependency}: its environment differs from the checkout's\n{stderr}"
        );
    }

    // Run directly, not through cargo: the rpath alone must find libtorch.
    let binary = target_dir().join("debug/my-teacher");
    let ran = clean(&binary).current_dir(&dir).output().unwrap();
    assert!(ran.status.success(), "{}: {}", binary.display(), text(&ran));
    let stdout = String::from_utf8_lossy(&ran.stdout);
    assert!(
        stdout.starts_with("own crate: 5 steps, ") && stdout.trim_end().ends_with("tch sum 6"),
        "{stdout}"
    );

    // A second run changes nothing and succeeds.
    let build_rs = fs::read_to_string(dir.join("build.rs")).unwrap();
    let again = clean("bash").arg(&script).arg(&dir).output().unwrap();
    assert!(again.status.success(), "use-l2t.sh again: {}", text(&again));
    assert_eq!(fs::read_to_string(dir.join("build.rs")).unwrap(), build_rs);
    assert_eq!(fs::read_to_string(dir.join("Cargo.toml")).unwrap(), aligned);
}

#[test]
fn use_l2t_prints_what_it_cannot_merge_into_an_existing_crate() {
    let scratch = Scratch::new("own-crate", "existing");
    let dir = scratch.join("existing");
    fs::create_dir_all(dir.join(".cargo")).unwrap();
    let manifest = "[package]\nname = \"existing\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
                    [dependencies]\nl2t = { path = \"/somewhere/l2t\" }\n";
    let build_rs = "fn main() {\n    println!(\"cargo:rerun-if-changed=build.rs\");\n}\n";
    let config = "[env]\nMY_VAR = \"1\"\n";
    fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    fs::write(dir.join("build.rs"), build_rs).unwrap();
    fs::write(dir.join(".cargo/config.toml"), config).unwrap();

    let script = checkout().join("scripts/use-l2t.sh");
    let out = clean("bash").arg(&script).arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DEP_L2T_LIBTORCH_LIB"), "{stderr}");
    assert!(
        stderr.contains(&format!("LIBTORCH = '{}/.libtorch'", checkout().display())),
        "{stderr}"
    );
    assert_eq!(
        fs::read_to_string(dir.join("Cargo.toml")).unwrap(),
        manifest
    );
    assert_eq!(fs::read_to_string(dir.join("build.rs")).unwrap(), build_rs);
    assert_eq!(
        fs::read_to_string(dir.join(".cargo/config.toml")).unwrap(),
        config
    );

    // A folder inside the checkout is refused (cargo would take it for a workspace member).
    let inside = clean("bash")
        .arg(&script)
        .arg(checkout().join("target/tmp/inside"))
        .output()
        .unwrap();
    assert_eq!(inside.status.code(), Some(1), "{}", text(&inside));
    assert!(String::from_utf8_lossy(&inside.stderr).contains("inside the l2t checkout"));
}

/// The shared build script, compiled on its own, run as cargo runs it for a crate.
fn build_script() -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("own-crate-build-script");
    fs::create_dir_all(&out).unwrap();
    let binary = out.join("libtorch_rpath");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let compiled = Command::new(rustc)
        .args(["--edition", "2021", "-o"])
        .arg(&binary)
        .arg(checkout().join("build-support/libtorch_rpath.rs"))
        .output()
        .unwrap();
    assert!(compiled.status.success(), "rustc: {}", text(&compiled));
    binary
}

fn run_build_script(binary: &Path, libtorch: Option<&Path>, cache: &Path, links: bool) -> Output {
    let mut command = clean(binary);
    command
        .env("CARGO_MANIFEST_DIR", checkout())
        .env("CARGO_PKG_NAME", "l2t")
        .env("L2T_CACHE", cache)
        .env_remove("CARGO_MANIFEST_LINKS");
    if let Some(libtorch) = libtorch {
        command.env("LIBTORCH", libtorch);
    }
    if links {
        command.env("CARGO_MANIFEST_LINKS", "l2t");
    }
    command.output().unwrap()
}

#[test]
fn a_missing_libtorch_stops_the_build_with_the_set_up_command() {
    let binary = build_script();
    let scratch = Scratch::new("own-crate", "missing");
    let empty_cache = scratch.join("empty-cache");
    let set_up = format!("bash {}/scripts/setup.sh", checkout().display());
    let use_l2t = format!("bash {}/scripts/use-l2t.sh", checkout().display());

    let unset = run_build_script(&binary, None, &empty_cache, true);
    assert_eq!(unset.status.code(), Some(1), "{}", text(&unset));
    let stderr = String::from_utf8_lossy(&unset.stderr);
    assert!(stderr.contains("error: LIBTORCH is not set."), "{stderr}");
    assert!(
        stderr.contains(&set_up) && stderr.contains(&use_l2t),
        "{stderr}"
    );
    assert!(!stderr.contains("already at"), "{stderr}");

    // LIBTORCH at an empty folder, and a complete set-up cache to point at instead.
    let empty = scratch.join("empty-libtorch");
    fs::create_dir_all(&empty).unwrap();
    let cache = scratch.join("cache");
    let cached = cache.join("libtorch-2.13.0-cpu");
    fs::create_dir_all(&cached).unwrap();
    fs::write(cached.join(".complete"), "").unwrap();
    let wrong = run_build_script(&binary, Some(&empty), &cache, true);
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        stderr.contains(&format!(
            "no libtorch found at LIBTORCH={}",
            empty.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains(&set_up), "{stderr}");
    assert!(
        stderr.contains(&format!("LIBTORCH={} points l2t at it", cached.display())),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&wrong.stdout).contains("cargo:libtorch"));

    // A fake libtorch: the rpath, and the metadata only for the crate with `links`.
    let fake = scratch.join("fake-libtorch");
    fs::create_dir_all(fake.join("lib")).unwrap();
    fs::write(fake.join("lib/libtorch_cpu.so"), "").unwrap();
    let lib = fake.join("lib").canonicalize().unwrap();
    let with_links = run_build_script(&binary, Some(&fake), &empty_cache, true);
    assert!(with_links.status.success(), "{}", text(&with_links));
    let stdout = String::from_utf8_lossy(&with_links.stdout);
    assert!(
        stdout.contains(&format!(
            "cargo:rustc-link-arg=-Wl,-rpath,{}",
            lib.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("cargo:libtorch_lib={}\n", lib.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "cargo:libtorch={}\n",
            fake.canonicalize().unwrap().display()
        )),
        "{stdout}"
    );
    let without_links = run_build_script(&binary, Some(&fake), &empty_cache, false);
    assert!(without_links.status.success(), "{}", text(&without_links));
    assert!(!String::from_utf8_lossy(&without_links.stdout).contains("cargo:libtorch"));
    // No build-version: the version is unknown, unless LIBTORCH is an installed torch
    // package's folder (`pip install ./python`), whose version.py gives it.
    assert!(
        stdout.contains("cargo:rustc-env=L2T_LIBTORCH_VERSION=unknown\n"),
        "{stdout}"
    );
    fs::write(
        fake.join("version.py"),
        "from typing import Optional\n__version__ = '2.13.0+cu130'\ndebug = False\n",
    )
    .unwrap();
    let torch_package = run_build_script(&binary, Some(&fake), &empty_cache, false);
    let stdout = String::from_utf8_lossy(&torch_package.stdout);
    assert!(
        stdout.contains("cargo:rustc-env=L2T_LIBTORCH_VERSION=2.13.0\n"),
        "{stdout}"
    );
}

/// What torch-sys's C++ compile meets when LIBTORCH names a folder without libtorch:
/// `-I $LIBTORCH/include` finds nothing, and the stub that use-l2t.sh (and the
/// checkout's config) put last on CPLUS_INCLUDE_PATH stops it with the set-up command.
#[test]
fn the_stub_header_names_the_set_up_when_libtorch_has_no_headers() {
    let scratch = Scratch::new("own-crate", "stub");
    let source = scratch.join("wrapper.cpp");
    fs::write(&source, "#include <torch/torch.h>\n").unwrap();
    let compiler = std::env::var_os("CXX").unwrap_or_else(|| "c++".into());
    let out = clean(compiler)
        .arg("-fsyntax-only")
        .arg("-I")
        .arg(scratch.join("empty-libtorch/include"))
        .arg(&source)
        .env(
            "CPLUS_INCLUDE_PATH",
            checkout().join("build-support/libtorch-missing/include"),
        )
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("libtorch not found. Run `bash scripts/setup.sh`"),
        "{stderr}"
    );
}
