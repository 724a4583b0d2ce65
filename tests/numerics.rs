//! `--numerics portable` (or `L2T_NUMERICS=portable`) pins MKL, ATen and oneDNN to their
//! AVX2 code paths before libtorch's first operation: a run gives the same report however
//! the mode was chosen, and the same as with the libraries' own variables set outside.
//! On a CPU with AVX-512 it differs from `native`, which shows that the mode took effect.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use common::{small_es_config, without_timing, Scratch};
use l2t::envs::numerics::{portable_supported, NUMERICS_VARIABLE, PORTABLE_SETTINGS};

/// `l2t <args>` with none of the numerics variables in its environment but `set`.
fn l2t(args: &[&str], set: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_l2t"));
    command.args(args).env_remove(NUMERICS_VARIABLE);
    for (name, _) in PORTABLE_SETTINGS {
        command.env_remove(name);
    }
    command
        .envs(set.iter().copied())
        .output()
        .expect("cannot start l2t")
}

/// What `l2t run` of `config` into `out` computed: its report (timings aside) and the
/// irreducible losses of its holdout students (every bit of a float printed), and the
/// numerics its manifest records.
fn run(config: &Path, out: &Path, flags: &[&str], set: &[(&str, &str)]) -> (Value, Value) {
    let (config, out) = (config.to_str().unwrap(), out.to_str().unwrap());
    let mut args = flags.to_vec();
    args.extend(["--quiet", "run", "--config", config, "--out", out]);
    let output = l2t(&args, set);
    assert!(
        output.status.success(),
        "l2t {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read = |name: &str| -> Value {
        let text = std::fs::read_to_string(Path::new(out).join(name)).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let irreducible = std::fs::read_dir(out)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .find(|name| name.starts_with("irreducible-feature-"))
        .expect("the synthetic task reads the irreducible-loss column");
    (
        serde_json::json!([without_timing(read("report.json"), &[]), read(&irreducible)]),
        read("manifest.json")["numerics"].clone(),
    )
}

#[test]
fn portable_numerics_give_one_report_however_chosen() {
    if !portable_supported() {
        let output = l2t(&["--numerics", "portable", "list"], &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("no AVX2"), "{stderr}");
        return;
    }
    let scratch = Scratch::new("numerics", "same");
    let config = scratch.join("config.toml");
    std::fs::write(&config, small_es_config(4, 1).to_toml().unwrap()).unwrap();
    let (flag, flag_mode) = run(
        &config,
        &scratch.join("flag"),
        &["--numerics", "portable"],
        &[],
    );
    let (variable, variable_mode) = run(
        &config,
        &scratch.join("variable"),
        &[],
        &[(NUMERICS_VARIABLE, "portable")],
    );
    let (outside, outside_mode) = run(&config, &scratch.join("outside"), &[], &PORTABLE_SETTINGS);
    assert_eq!(flag_mode, "portable");
    assert_eq!(variable_mode, "portable");
    assert_eq!(
        outside_mode, "portable",
        "the variables set outside are recorded too"
    );
    assert!(flag == variable, "--numerics and L2T_NUMERICS differ");
    assert!(
        flag == outside,
        "--numerics portable differs from MKL_CBWR, ATEN_CPU_CAPABILITY and ONEDNN_MAX_CPU_ISA \
         set outside: the mode was applied after libtorch's first operation"
    );
    let (native, native_mode) = run(&config, &scratch.join("native"), &[], &[]);
    assert_eq!(native_mode, "native");
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        // MKL's sgemm runs its AVX-512 kernels natively here, which round differently.
        assert!(
            native != flag,
            "native and portable numerics gave the same report on a CPU with AVX-512"
        );
    }
}

#[test]
fn bad_numerics_are_refused_naming_the_variable() {
    let output = l2t(&["list"], &[(NUMERICS_VARIABLE, "fast")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("L2T_NUMERICS") && stderr.contains("`fast`"),
        "{stderr}"
    );

    let output = l2t(&["--numerics", "fast", "list"], &[]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "clap refuses the flag's value"
    );

    // A library variable the user set to another path would break the guarantee.
    let output = l2t(
        &["--numerics", "portable", "list"],
        &[("MKL_CBWR", "COMPATIBLE")],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("MKL_CBWR=COMPATIBLE"), "{stderr}");

    // The same variable at portable's own value is fine, and native leaves it alone.
    let modes: &[[&str; 2]] = if portable_supported() {
        &[["--numerics", "portable"], ["--numerics", "native"]]
    } else {
        &[["--numerics", "native"]]
    };
    for flags in modes {
        let mut args = flags.to_vec();
        args.push("list");
        let output = l2t(&args, &[("MKL_CBWR", "AVX2")]);
        assert!(output.status.success(), "{args:?}");
    }
}
