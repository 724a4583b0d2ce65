//! Shared build script of the l2t crates.
//!
//! It checks that libtorch is where `LIBTORCH` says (set by `.cargo/config.toml` to the
//! `.libtorch` link that `scripts/setup.sh` makes, or exported by the user) and bakes its
//! `lib/` folder into the rpath of every binary, test and example of the crate, so they
//! run without `LD_LIBRARY_PATH`; not into the Python extension module, which goes into
//! wheels (its package loads libtorch itself). When libtorch is missing the build stops here with the
//! command that fixes it, instead of a linker error deep inside torch-sys.

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
    let version_file = libtorch_dir.join("build-version");
    let version = match std::fs::read_to_string(&version_file) {
        Ok(text) => {
            println!("cargo:rerun-if-changed={}", version_file.display());
            text.trim().to_string()
        }
        Err(_) => "unknown".into(),
    };
    println!("cargo:rustc-env=L2T_LIBTORCH_VERSION={version}");
    println!("cargo:rustc-env=L2T_TCH_VERSION={}", locked_version("tch"));
    println!("cargo:rustc-env=L2T_RUSTC_VERSION={}", rustc_version());
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

fn fail(reason: &str) -> ! {
    eprintln!();
    eprintln!("error: {reason}.");
    eprintln!("  Run `bash scripts/setup.sh` in the repository root: it fetches libtorch 2.13.0");
    eprintln!(
        "  into the user cache and links it as `.libtorch`, or respects a LIBTORCH you export."
    );
    eprintln!();
    std::process::exit(1);
}
