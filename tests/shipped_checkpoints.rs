//! Teachers trained elsewhere and reused by identity (issue 34, the main job's time):
//! a checkpoint copied from another folder teaches exactly as training it here would
//! have; another config's, a longer training's or a checkpoint without its history is
//! never copied; `l2t` reuses the checkpoints shipped in `python/l2t/checkpoints/<task>/` unless
//! `--no-shipped`; and the checkpoints this repository ships are the current
//! reproductions' teachers, complete and readable.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use l2t::agents::{checkpoint_episodes, restore_learner, CheckpointFile};
use l2t::config::{labels, RunConfig};
use l2t::experiment::{reuse_trained, run_with, training_files, Progress, Report, TrainingEpisode};
use l2t::run_dir::{JsonLines, RunDir};

use common::{without_timing, Scratch};

/// NoTeach and ES (`pairs` pairs) trained for `episodes` episodes on the small synthetic
/// task.
fn es_config(episodes: usize, pairs: usize) -> RunConfig {
    common::small_es_config(episodes, pairs)
}

/// Runs `config` into `out`: its report and how many training episodes it ran.
fn run_counting(config: &RunConfig, out: &Path) -> (Report, usize) {
    let mut dir = RunDir::create(out).unwrap();
    let mut trained = 0;
    let report = run_with(config, Vec::new(), Path::new("unused"), &mut dir, |p| {
        if let Progress::Trained(_) = p {
            trained += 1;
        }
    })
    .unwrap();
    (report, trained)
}

fn report_json(out: &Path) -> serde_json::Value {
    without_timing(
        serde_json::from_str(&fs::read_to_string(out.join("report.json")).unwrap()).unwrap(),
        &[],
    )
}

fn reused_labels(config: &RunConfig, out: &Path, from: &Path) -> Vec<String> {
    let dir = RunDir::create(out).unwrap();
    (reuse_trained(config, &dir, from).unwrap().into_iter())
        .map(|r| r.label)
        .collect()
}

#[test]
fn a_teacher_trained_elsewhere_teaches_as_if_trained_here() {
    let scratch = Scratch::new("shipped", "reuse");
    let config = es_config(4, 2);
    let (trained_there, episodes) = run_counting(&config, &scratch.join("there"));
    assert_eq!(episodes, 4);

    assert_eq!(
        reused_labels(&config, &scratch.join("here"), &scratch.join("there")),
        [labels::ES]
    );
    let (reused_here, episodes) = run_counting(&config, &scratch.join("here"));
    assert_eq!(episodes, 0, "trained again instead of reusing");
    let histories = |r: &Report| -> Vec<Vec<TrainingEpisode>> {
        r.training.iter().map(|t| t.episodes.clone()).collect()
    };
    assert_eq!(histories(&reused_here), histories(&trained_there));
    assert_eq!(
        report_json(&scratch.join("here")),
        report_json(&scratch.join("there"))
    );
    // Nothing is copied over a folder's own checkpoint.
    assert!(reused_labels(&config, &scratch.join("here"), &scratch.join("there")).is_empty());
}

#[test]
fn another_config_a_longer_training_or_a_lone_checkpoint_is_not_copied() {
    let scratch = Scratch::new("shipped", "refused");
    run_counting(&es_config(8, 2), &scratch.join("eight"));
    // Another teacher config: another identity.
    assert!(reused_labels(&es_config(8, 3), &scratch.join("a"), &scratch.join("eight")).is_empty());
    // Fewer episodes than the checkpoint holds (its last update began at 4): trained
    // here instead of refused later.
    assert!(reused_labels(&es_config(4, 2), &scratch.join("b"), &scratch.join("eight")).is_empty());
    // More episodes: copied, and training goes on from it.
    assert_eq!(
        reused_labels(
            &es_config(12, 2),
            &scratch.join("c"),
            &scratch.join("eight")
        ),
        [labels::ES]
    );
    let (_, episodes) = run_counting(&es_config(12, 2), &scratch.join("c"));
    assert_eq!(episodes, 4, "resumed after the copied 8");
    // A checkpoint without its history.
    let history = fs::read_dir(scratch.join("eight"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("-training.jsonl"))
        .unwrap();
    fs::remove_file(history).unwrap();
    assert!(reused_labels(&es_config(8, 2), &scratch.join("d"), &scratch.join("eight")).is_empty());
}

/// `l2t --quiet run --config <config> --out <out> <extra>` with `L2T_CHECKPOINTS`
/// set to `shipped`: its success and stderr.
fn l2t_run(scratch: &Scratch, shipped: &Path, out: &str, extra: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_l2t"))
        .env("L2T_CHECKPOINTS", shipped)
        .args(["--quiet", "run", "--config"])
        .arg(scratch.join("config.toml"))
        .arg("--out")
        .arg(scratch.join(out))
        .args(extra)
        .output()
        .expect("cannot start l2t");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn l2t_reuses_the_shipped_checkpoints_unless_told_not_to() {
    let scratch = Scratch::new("shipped", "cli");
    let config = es_config(4, 2);
    fs::write(scratch.join("config.toml"), config.to_toml().unwrap()).unwrap();
    let (ok, stderr) = l2t_run(&scratch, &scratch.join("none"), "trained", &[]);
    assert!(ok, "{stderr}");
    // Ship the trained folder's teacher for the config's training task.
    let shipped = scratch.join("shipped");
    let task = shipped.join(&config.training_preset().name);
    fs::create_dir_all(&task).unwrap();
    for entry in fs::read_dir(scratch.join("trained")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".ckpt") || name.ends_with("-training.jsonl") {
            fs::copy(&path, task.join(name)).unwrap();
        }
    }
    let (ok, stderr) = l2t_run(&scratch, &shipped, "reused", &[]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("reusing es trained before") && !stderr.contains("episode 1:"),
        "{stderr}"
    );
    assert_eq!(
        report_json(&scratch.join("reused")),
        report_json(&scratch.join("trained"))
    );
    let (ok, stderr) = l2t_run(&scratch, &shipped, "own", &["--no-shipped"]);
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("reusing"), "{stderr}");
    assert!(stderr.contains("episode 1:"), "not trained:\n{stderr}");
}

/// The repository's shipped teachers, `python/l2t/checkpoints/`.
fn shipped_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/python/l2t/checkpoints"
    ))
}

/// Every file under `python/l2t/checkpoints/<run>/` is the checkpoint or training history of a
/// trained teacher of the built-in run `<run>` under its current training identity,
/// both files present, the history one line per episode the entry asks for and the
/// checkpoint holding them all; and the main job's ES teachers are shipped. A config or
/// identity change without a retrain fails here, with the command that remakes them.
#[test]
fn the_shipped_checkpoints_are_the_current_reproductions_teachers() {
    let remake =
        "remake them with `bash scripts/train-checkpoints.sh` (python/l2t/checkpoints/README.md)";
    let scratch = Scratch::new("shipped", "repository");
    let mut runs = Vec::new();
    for entry in fs::read_dir(shipped_dir()).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_dir() {
            continue;
        }
        let run = path.file_name().unwrap().to_string_lossy().into_owned();
        let config = RunConfig::named(&run)
            .unwrap_or_else(|e| panic!("python/l2t/checkpoints/{run}: not a built-in run: {e}"));
        let out = RunDir::create(&scratch.join(&run)).unwrap();
        let mut expected = Vec::new();
        for teacher in config.teachers.iter().filter(|e| e.train) {
            let files = training_files(&out, &config, teacher).unwrap();
            let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
            let checkpoint = path.join(name(&files.checkpoint));
            let history = path.join(name(&files.history));
            expected.push(name(&files.checkpoint));
            expected.push(name(&files.history));
            if !checkpoint.exists() && !history.exists() {
                continue;
            }
            let label = &teacher.label;
            assert!(
                checkpoint.exists() && history.exists(),
                "python/l2t/checkpoints/{run}: {label} lacks its checkpoint or its history; {remake}"
            );
            let episodes = teacher
                .episodes
                .unwrap_or(config.training_preset().episodes);
            assert_eq!(
                checkpoint_episodes(&checkpoint).unwrap(),
                episodes,
                "python/l2t/checkpoints/{run}: {label}'s episodes; {remake}"
            );
            let lines: Vec<TrainingEpisode> = JsonLines::read(&history).unwrap();
            let indices: Vec<usize> = lines.iter().map(|l| l.episode).collect();
            assert_eq!(
                indices,
                (0..episodes).collect::<Vec<_>>(),
                "python/l2t/checkpoints/{run}: {label}'s history"
            );
            restore_learner(CheckpointFile::read(&checkpoint).unwrap(), None)
                .unwrap_or_else(|e| panic!("python/l2t/checkpoints/{run}: {label}: {e}"));
            runs.push((run.clone(), label.clone()));
        }
        for file in fs::read_dir(&path).unwrap() {
            let name = file.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                expected.contains(&name),
                "python/l2t/checkpoints/{run}/{name} is no teacher of `{run}` under its current \
                 training identity (its config or the identity changed); {remake}"
            );
        }
    }
    for label in [labels::ES, labels::ES_COMPUTE] {
        assert!(
            runs.contains(&("fashion-mnist-mlp".to_string(), label.to_string())),
            "the main job's {label} is not shipped in python/l2t/checkpoints/fashion-mnist-mlp: it \
             would train for minutes; {remake}"
        );
    }
}
