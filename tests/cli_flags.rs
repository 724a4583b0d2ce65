//! No flag is ignored (issue 36): every subcommand that takes `--config` is run with a
//! config and each flag, and the flag either shows in the resolved config
//! (`--print-config`, so nothing is trained) or is refused with an error naming it.
//! The run-time flags (`--out`, `--data-dir`, `--fresh`, `--quiet`, `--threads`) are
//! checked by one small real run.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use l2t::agents::TeacherConfig;
use l2t::config::{DeviceChoice, RunConfig, TeacherEntry};
use l2t::envs::Reward;
use l2t::presets::Preset;

use common::{small_synthetic_preset, Scratch};

/// `l2t <args>`, run to its end.
fn l2t(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_l2t"))
        .args(args)
        .output()
        .expect("cannot start l2t")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The config `l2t <args> --print-config` resolves, or its error.
fn resolved(args: &[&str]) -> Result<RunConfig, String> {
    let mut all = args.to_vec();
    all.push("--print-config");
    let output = l2t(&all);
    if !output.status.success() {
        return Err(stderr(&output));
    }
    let text = String::from_utf8(output.stdout).expect("TOML is UTF-8");
    Ok(RunConfig::from_toml(&text).unwrap_or_else(|e| panic!("{all:?}: {e}\n{text}")))
}

/// The synthetic reproduction with only NoTeach and RHO-LOSS (`[preset] name =
/// "synthetic"`), written to `path`.
fn write_config(path: &Path) -> RunConfig {
    let mut config = RunConfig::reproduction(Preset::synthetic());
    config.teachers = vec![
        TeacherEntry::new("no_teach", TeacherConfig::NoTeach),
        TeacherEntry::new("rho_loss", TeacherConfig::RhoLoss(Default::default())),
    ];
    std::fs::write(path, config.to_toml().unwrap()).unwrap();
    config
}

/// A check of one flag on the resolved config.
type Check = fn(&RunConfig) -> bool;

/// Each flag of `RunArgs` that changes the config, with a value and how it shows.
fn flag_cases() -> Vec<(&'static [&'static str], Check)> {
    vec![
        (&["--episodes", "7"], |c| c.preset.episodes == 7),
        (&["--seeds", "9"], |c| c.preset.eval_seeds == 9),
        (&["--first-seed", "123"], |c| {
            c.preset.first_eval_seed == 123
        }),
        (&["--tau", "0.61"], |c| {
            c.preset
                .teaching
                .thresholds
                .iter()
                .map(|t| t.accuracy)
                .collect::<Vec<_>>()
                == [0.61]
        }),
        (&["--checkpoint-every", "3"], |c| c.checkpoint_every == 3),
        (&["--workers", "2"], |c| c.training.workers == 2),
        (&["--train-tau", "0.5"], |c| c.training.tau == Some(0.5)),
        (&["--train-dev", "50"], |c| {
            c.training.dev_subsample == Some(50)
        }),
        (&["--train-area", "100"], |c| {
            c.training.reward == Some(Reward::DevAccuracyArea { iterations: 100 })
        }),
        (&["--train-eval-every", "10"], |c| {
            c.training.eval_every == Some(10)
        }),
        (&["--test-every", "3"], |c| c.report.test_every == 3),
        (&["--train-on", "synthetic"], |c| {
            c.train_on.as_ref().is_some_and(|p| p.name == "synthetic")
        }),
        (&["--no-plots"], |c| !c.report.plots),
        (&["--reference", "rho_loss"], |c| {
            c.report.reference.as_deref() == Some("rho_loss")
        }),
    ]
}

#[test]
fn every_flag_takes_effect_on_top_of_a_config_in_every_subcommand() {
    let scratch = Scratch::new("cli", "flags");
    let path = scratch.join("run.toml");
    let base = write_config(&path);
    let config = path.to_str().unwrap();
    // (subcommand and its own arguments, the teachers it runs with --config alone)
    let subcommands: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["run"], vec!["no_teach", "rho_loss"]),
        (vec!["reproduce", "synthetic"], vec!["no_teach", "rho_loss"]),
        (
            vec![
                "compare",
                "synthetic",
                "--teacher",
                "no_teach",
                "--teacher",
                "rho_loss",
            ],
            vec!["no_teach", "rho_loss"],
        ),
        (
            vec!["evaluate", "synthetic", "--teacher", "rho_loss"],
            vec!["rho_loss"],
        ),
        (vec!["train", "synthetic"], vec!["no_teach", "rho_loss"]),
    ];
    for (subcommand, teachers) in &subcommands {
        let with_config = |extra: &[&str]| {
            let mut args = subcommand.clone();
            args.extend(["--config", config]);
            args.extend(extra);
            resolved(&args)
        };
        let plain = with_config(&[]).unwrap_or_else(|e| panic!("{subcommand:?}: {e}"));
        let labels: Vec<&str> = plain.teachers.iter().map(|e| e.label.as_str()).collect();
        assert_eq!(&labels, teachers, "{subcommand:?}");
        assert_eq!(
            plain.preset, base.preset,
            "{subcommand:?}: the config's task"
        );
        for (flag, check) in flag_cases() {
            let config =
                with_config(flag).unwrap_or_else(|e| panic!("{subcommand:?} {flag:?}: {e}"));
            assert!(
                check(&config),
                "{subcommand:?} {flag:?} did not take effect"
            );
            assert!(
                !check(&plain),
                "{flag:?}: the case must differ from the config"
            );
        }
        // The global --device, before the subcommand (printing needs no CUDA).
        assert_eq!(plain.device, DeviceChoice::Cpu);
        let mut args = vec!["--device", "cuda"];
        args.extend(subcommand);
        args.extend(["--config", config]);
        assert_eq!(resolved(&args).unwrap().device, DeviceChoice::Cuda);
    }
}

#[test]
fn teacher_flags_replace_the_configs_teachers() {
    let scratch = Scratch::new("cli", "teachers");
    let path = scratch.join("run.toml");
    write_config(&path);
    let config = path.to_str().unwrap();
    let labels =
        |c: &RunConfig| -> Vec<String> { c.teachers.iter().map(|e| e.label.clone()).collect() };

    // The case: both teachers run, not only the config's.
    let compared = resolved(&[
        "compare",
        "synthetic",
        "--config",
        config,
        "--teacher",
        "no_teach",
        "--teacher",
        "spl",
    ])
    .unwrap();
    assert_eq!(labels(&compared), ["no_teach", "spl"]);
    assert!(compared.teachers.iter().all(|e| !e.train));

    let evaluated = resolved(&[
        "evaluate",
        "synthetic",
        "--config",
        config,
        "--teacher",
        "mine=spl",
    ])
    .unwrap();
    assert_eq!(labels(&evaluated), ["mine"]);

    let trained = resolved(&["train", "synthetic", "--config", config, "--teacher", "es"]).unwrap();
    assert_eq!(labels(&trained), ["es"]);
    assert!(trained.teachers[0].train, "l2t train trains its --teacher");
    // Without --config, train's teacher is reinforce, trained.
    let default = resolved(&["train", "synthetic"]).unwrap();
    assert_eq!(labels(&default), ["reinforce"]);
    assert!(default.teachers[0].train);

    // A teacher the flag does not know is an error naming the flag's value.
    let error = resolved(&[
        "compare",
        "synthetic",
        "--config",
        config,
        "--teacher",
        "nobody",
    ])
    .unwrap_err();
    assert!(error.contains("`nobody`"), "{error}");
}

#[test]
fn flags_that_cannot_apply_are_refused_by_name() {
    let scratch = Scratch::new("cli", "refused");
    let path = scratch.join("run.toml");
    write_config(&path);
    let config = path.to_str().unwrap();

    // The preset argument is not silently replaced by the config's.
    let error = resolved(&["reproduce", "mnist-mlp", "--config", config]).unwrap_err();
    assert!(
        error.contains("mnist-mlp") && error.contains("--config"),
        "{error}"
    );

    // Seeds past 2^64 - 1: the flags are named.
    let error = resolved(&[
        "run",
        "--config",
        config,
        "--first-seed",
        "18446744073709551615",
        "--seeds",
        "2",
    ])
    .unwrap_err();
    assert!(
        error.contains("--first-seed") && error.contains("--seeds") && error.contains("2^64"),
        "{error}"
    );
    let error = resolved(&["run", "--config", config, "--seeds", "0"]).unwrap_err();
    assert!(
        error.contains("--seeds") && error.contains("at least one"),
        "{error}"
    );
    // A reference that is not a teacher: named, with the teachers listed.
    let error = resolved(&["run", "--config", config, "--reference", "spl"]).unwrap_err();
    assert!(
        error.contains("--reference")
            && error.contains("`no_teach`")
            && error.contains("`rho_loss`"),
        "{error}"
    );
    let error = resolved(&["run", "--config", config, "--train-on", "nowhere"]).unwrap_err();
    assert!(
        error.contains("--train-on") && error.contains("nowhere"),
        "{error}"
    );

    // The benchmark takes its tasks with --task: --config is refused by name.
    let output = l2t(&["benchmark", "--config", config]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--config"), "{}", stderr(&output));

    // --distributed without the mpi feature is refused by name.
    #[cfg(not(feature = "mpi"))]
    {
        let output = l2t(&[
            "run",
            "--config",
            config,
            "--distributed",
            "--out",
            scratch.join("d").to_str().unwrap(),
        ]);
        assert!(!output.status.success());
        assert!(
            stderr(&output).contains("--distributed"),
            "{}",
            stderr(&output)
        );
    }
}

#[test]
fn run_time_flags_take_effect_on_a_small_run_from_a_config() {
    let scratch = Scratch::new("cli", "run");
    let mut config = RunConfig::reproduction(small_synthetic_preset(1));
    config.preset.irreducible_loss_feature = false;
    config.teachers = vec![TeacherEntry::new(
        "spl",
        TeacherConfig::Spl(config.preset.spl()),
    )];
    let path = scratch.join("small.toml");
    std::fs::write(&path, config.to_toml().unwrap()).unwrap();
    let out = scratch.join("out");
    let output = l2t(&[
        "--quiet",
        "--threads",
        "1",
        "evaluate",
        "synthetic",
        "--config",
        path.to_str().unwrap(),
        "--teacher",
        "no_teach",
        "--seeds",
        "1",
        "--no-plots",
        "--fresh",
        "--data-dir",
        scratch.join("no-data").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    // Written where --out says, with the flags' teacher and seeds, and no figure.
    let written = std::fs::read_to_string(out.join("config.toml")).unwrap();
    let written = RunConfig::from_toml(
        &written
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    assert_eq!(written.teachers[0].label, "no_teach");
    assert_eq!(written.preset.eval_seeds, 1);
    assert!(!out.join("convergence.svg").exists());
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(summary.contains("Few seeds (1 < 5)"), "{summary}");
}

/// `l2t list | head -n 1`: a reader that closed the pipe ends the command quietly
/// (killed by SIGPIPE, as other Unix tools) instead of a panic in `println!` on EPIPE.
/// The pipe's read end is closed before the command starts, so its first write fails.
#[cfg(unix)]
#[test]
fn a_closed_stdout_pipe_ends_the_command_quietly() {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::ExitStatusExt;

    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills two new descriptors, each owned once below.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read_end);
    let output = Command::new(env!("CARGO_BIN_EXE_l2t"))
        .args(["list"])
        .stdout(write_end)
        .output()
        .expect("l2t runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}: {stderr}",
        output.status
    );
}
