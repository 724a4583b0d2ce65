//! Shared build script of the l2t crates.
//!
//! It checks that libtorch is where `LIBTORCH` says (set by `.cargo/config.toml` to the
//! `.libtorch` link that `scripts/setup.sh` makes, or exported by the user) and bakes its
//! `lib/` folder into the rpath of every binary, test and example of the crate, so they
//! run without `LD_LIBRARY_PATH`. When libtorch is missing the build stops here with the
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
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
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
