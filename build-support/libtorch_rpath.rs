//! Shared build script of the l2t crates.
//!
//! It checks that libtorch is where `LIBTORCH` says (set by `.cargo/config.toml` to the
//! `.libtorch` link that `scripts/setup.sh` makes, or exported by the user) and bakes its
//! `lib/` folder into the rpath of every binary, test and example of the crate, so they
//! run without `LD_LIBRARY_PATH`; not into the Python extension module, which goes into
//! wheels (its package loads libtorch itself). When libtorch is missing the build stops here with the
//! command that fixes it, instead of a linker error deep inside torch-sys.
//!
//! A crate outside the repository that depends on `l2t` gets none of this rpath: a
//! dependency's `rustc-link-arg` reaches only its own targets. So the `l2t` crate, which
//! declares `links = "l2t"`, also exports the libtorch it was built against as build
//! metadata (`cargo:libtorch=DIR`, `cargo:libtorch_lib=DIR/lib`); cargo hands it to the
//! build scripts of direct dependents as `DEP_L2T_LIBTORCH` and `DEP_L2T_LIBTORCH_LIB`,
//! and the one-line `build.rs` of README's "Use l2t from your own crate" (written by
//! `scripts/use-l2t.sh`) turns it into the dependent's rpath.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Some(libtorch) = std::env::var_os("LIBTORCH").map(PathBuf::from) else {
        fail("LIBTORCH is not set");
    };
    let lib = libtorch.join("lib");
    let has_torch = ["libtorch_cpu.so", "libtorch_cpu.dylib", "torch_cpu.lib"]
        .iter()
        .any(|name| lib.join(name).exists());
    if !has_torch {
        fail(&format!(
            "no libtorch found at LIBTORCH={} (expected {}/libtorch_cpu.so)",
            libtorch.display(),
            lib.display()
        ));
    }
    let lib = lib.canonicalize().unwrap_or(lib);
    println!("cargo:rerun-if-changed={}", lib.display());
    if std::env::var_os("CARGO_MANIFEST_LINKS").is_some() {
        // Only the `l2t` crate has `links`; its dependents' build scripts read these.
        let dir = libtorch.canonicalize().unwrap_or_else(|_| libtorch.clone());
        println!("cargo:libtorch={}", dir.display());
        println!("cargo:libtorch_lib={}", lib.display());
    }
    if cfg!(unix) || std::env::var("CARGO_CFG_UNIX").is_ok() {
        if std::env::var("CARGO_PKG_NAME").as_deref() == Ok("l2t-python") {
            // The Python extension module goes into wheels for other machines, so it
            // carries no path of this one: `l2t/_libtorch.py` loads torch's own
            // libtorch (or another the user names) before importing it. Only the
            // crate's Rust examples, which run here, get the rpath.
            println!("cargo:rustc-link-arg-examples=-Wl,-rpath,{}", lib.display());
        } else {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        }
    }
    // Versions for the run manifests and Python's `libtorch_version()`, fixed at build
    // time so that a wheel reports them on any machine: libtorch's `build-version`,
    // tch from Cargo.lock, rustc.
    let libtorch_dir = libtorch.canonicalize().unwrap_or(libtorch);
    let version = libtorch_version(&libtorch_dir);
    println!("cargo:rustc-env=L2T_LIBTORCH_VERSION={version}");
    println!("cargo:rustc-env=L2T_TCH_VERSION={}", locked_version("tch"));
    println!("cargo:rustc-env=L2T_RUSTC_VERSION={}", rustc_version());
}

/// The libtorch release at `libtorch_dir`: its `build-version` file (a libtorch
/// archive, or the set-up's), else the `__version__` of `version.py` when LIBTORCH is an
/// installed torch package's folder (`pip install ./python` builds against it), without
/// its local part (`2.13.0+cu130` is libtorch 2.13.0); "unknown" if neither is there.
fn libtorch_version(libtorch_dir: &std::path::Path) -> String {
    let version_file = libtorch_dir.join("build-version");
    if let Ok(text) = std::fs::read_to_string(&version_file) {
        println!("cargo:rerun-if-changed={}", version_file.display());
        return text.trim().to_string();
    }
    let python_file = libtorch_dir.join("version.py");
    if let Ok(text) = std::fs::read_to_string(&python_file) {
        println!("cargo:rerun-if-changed={}", python_file.display());
        let version = text.lines().find_map(|line| {
            let value = line.strip_prefix("__version__")?.trim_start();
            let value = value.strip_prefix('=')?.trim();
            Some(value.trim_matches(|c| c == '\'' || c == '"').to_string())
        });
        if let Some(version) = version {
            return version.split('+').next().unwrap_or(&version).to_string();
        }
    }
    "unknown".into()
}

/// The version of `package` in the workspace's Cargo.lock ("unknown" if unreadable).
fn locked_version(package: &str) -> String {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let lock = manifest_dir
        .ancestors()
        .map(|dir| dir.join("Cargo.lock"))
        .find(|path| path.exists());
    let Some(lock) = lock else {
        return "unknown".into();
    };
    println!("cargo:rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(&lock).unwrap_or_default();
    let name_line = format!("name = \"{package}\"");
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() == name_line {
            if let Some(version) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = "))
            {
                return version.trim_matches('"').to_string();
            }
        }
    }
    "unknown".into()
}

fn rustc_version() -> String {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Stops the build with `reason` and the commands that fix it: the set-up of the l2t
/// checkout this crate comes from, named by its absolute path so that the line works from
/// a crate of one's own too, and `scripts/use-l2t.sh` for such a crate.
fn fail(reason: &str) -> ! {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let checkout = manifest_dir
        .ancestors()
        .find(|dir| dir.join("scripts/setup.sh").is_file())
        .unwrap_or(&manifest_dir);
    eprintln!();
    eprintln!("error: {reason}.");
    eprintln!("  l2t needs libtorch 2.13.0. Set it up with");
    eprintln!("      bash {}/scripts/setup.sh", checkout.display());
    eprintln!("  which fetches it into the user cache and links it as `.libtorch` in the l2t");
    eprintln!("  checkout, or respects a LIBTORCH you export.");
    if let Some(cached) = setup_libtorch() {
        eprintln!(
            "  The set-up's libtorch is already at {}:",
            cached.display()
        );
        eprintln!("  LIBTORCH={} points l2t at it.", cached.display());
    }
    eprintln!("  A crate of your own that depends on l2t also needs LIBTORCH when it builds and");
    eprintln!("  libtorch on its binaries' rpath; one command sets up both:");
    eprintln!(
        "      bash {}/scripts/use-l2t.sh PATH/TO/YOUR/CRATE",
        checkout.display()
    );
    eprintln!("  (README.md of l2t: \"Use l2t from your own crate\").");
    eprintln!();
    std::process::exit(1);
}

/// The libtorch that `scripts/setup.sh` assembles, if it is complete:
/// `$L2T_CACHE/libtorch-2.13.0-cpu`, the cache defaulting to `$XDG_CACHE_HOME/l2t` or
/// `~/.cache/l2t` as in the set-up (which a build script cannot call into).
fn setup_libtorch() -> Option<PathBuf> {
    let cache = match std::env::var_os("L2T_CACHE") {
        Some(cache) => PathBuf::from(cache),
        None => match std::env::var_os("XDG_CACHE_HOME") {
            Some(xdg) => PathBuf::from(xdg).join("l2t"),
            None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/l2t"),
        },
    };
    let libtorch = cache.join("libtorch-2.13.0-cpu");
    libtorch.join(".complete").is_file().then_some(libtorch)
}
