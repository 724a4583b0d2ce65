//! The experiment layer end to end on a small synthetic preset: identical result files
//! on a rerun, resumed teacher training identical to uninterrupted training, transfer
//! width errors, and RandTeach matched from an earlier run's log.

mod common;

use std::fs;
use std::path::Path;

use serde_json::Value;

use l2t::agents::{ReinforceConfig, TeacherConfig};
use l2t::config::{labels, RunConfig, TeacherEntry};
use l2t::experiment::{
    per_epoch_drop_ratio_from_run, run, run_with, train_resumable, ExperimentError,
    TrainingEpisode, TrainingFiles, TrainingTask, UserTeacher,
};
use l2t::presets::Preset;
use l2t::run_dir::{JsonLines, RunDir};

use common::{csv_without_seconds, small_synthetic_preset, without_timing, Scratch};

/// The synthetic preset, shrunk so that a whole run takes seconds.
fn small_preset() -> Preset {
    // One intra-op thread, as the `l2t` command: tiny students are slower with more.
    tch::set_num_threads(1);
    small_synthetic_preset(3)
}

fn small_config() -> RunConfig {
    let mut config = RunConfig::reproduction(small_preset());
    config.report.test_every = 4;
    // ES (for instances and for compute): two generations of its 2 pairs.
    for entry in &mut config.teachers {
        if entry.label == labels::ES || entry.label == labels::ES_COMPUTE {
            entry.episodes = Some(8);
        }
    }
    config
}

/// Runs `config` into `dir`.
fn run_into(config: &RunConfig, dir: &Path) -> l2t::experiment::Report {
    let mut out = RunDir::create(dir).unwrap();
    run(config, Path::new("unused-data-dir"), &mut out, |_| {}).unwrap()
}

fn json_file(path: &Path) -> Value {
    without_timing(
        serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap(),
        &[],
    )
}

fn jsonl_file(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| without_timing(serde_json::from_str(line).unwrap(), &[]))
        .collect()
}

#[test]
fn the_same_run_twice_writes_the_same_results_for_any_number_of_workers() {
    let scratch = Scratch::new("exp", "rerun");
    // One worker, then three: teacher training and the side-by-side evaluation of the
    // teachers give the same files.
    let mut config = small_config();
    config.training.workers = 1;
    let first = run_into(&config, &scratch.join("a"));
    config.training.workers = 3;
    let second = run_into(&config, &scratch.join("b"));
    config.training.workers = 1;
    assert_eq!(first.summaries.len(), config.teachers.len());
    assert_eq!(first.table().lines().next(), second.table().lines().next());
    let (a, b) = (scratch.join("a"), scratch.join("b"));
    let without_workers = |mut value: Value| {
        if let Some(training) = value.pointer_mut("/config/training") {
            training["workers"] = Value::Null;
        }
        // Without a font, the warnings name each run's own folder.
        if let Some(warnings) = value.get_mut("plot_warnings") {
            *warnings = Value::Null;
        }
        value
    };
    for name in ["report.json", "manifest.json"] {
        assert_eq!(
            without_workers(json_file(&a.join(name))),
            without_workers(json_file(&b.join(name))),
            "{name}"
        );
    }
    assert_eq!(
        jsonl_file(&a.join("events.jsonl")),
        jsonl_file(&b.join("events.jsonl"))
    );
    for name in [
        "curves.csv",
        "training.csv",
        "loss_rank_drops.csv",
        "training_drops.csv",
    ] {
        let rows = csv_without_seconds(&a.join(name));
        assert!(rows.len() > 1, "{name} is empty");
        assert_eq!(rows, csv_without_seconds(&b.join(name)), "{name}");
    }
    // The plots are drawn, and drawn the same (only where a font is installed).
    for stem in [
        "convergence",
        "convergence_compute",
        "filtered_data",
        "teacher_training",
        "training_drops",
    ] {
        for name in [format!("{stem}.svg"), format!("{stem}.png")] {
            if !a.join(&name).exists() {
                assert!(!first.plot_warnings.is_empty(), "no {name} and no warning");
                continue;
            }
            let bytes = fs::read(a.join(&name)).unwrap();
            assert!(bytes.len() > 1_000, "{name}");
            assert_eq!(bytes, fs::read(b.join(&name)).unwrap(), "{name}");
        }
    }
    // The checkpoints of the trained teachers are byte-identical.
    let checkpoints: Vec<_> = fs::read_dir(&a)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".ckpt"))
        .collect();
    // REINFORCE, the actor-critic, ES and ES for compute.
    assert_eq!(checkpoints.len(), 4);
    for name in checkpoints {
        assert_eq!(
            fs::read(a.join(&name)).unwrap(),
            fs::read(b.join(&name)).unwrap()
        );
    }
    // The summary's tables hold every teacher and every level.
    let summary = fs::read_to_string(a.join("summary.md")).unwrap();
    for entry in &config.teachers {
        assert!(summary.contains(&entry.label), "{}", entry.label);
    }
    assert_eq!(
        first.levels.len(),
        config.teachers.len() * config.levels().len()
    );
    // Each trained teacher against each baseline but the first row, seed by seed,
    // recomputed here from the records.
    let trained: Vec<&str> = config
        .teachers
        .iter()
        .filter(|e| e.train)
        .map(|e| e.label.as_str())
        .collect();
    let baselines: Vec<&str> = config.teachers[1..]
        .iter()
        .filter(|e| !e.train)
        .map(|e| e.label.as_str())
        .collect();
    assert_eq!(first.pairings.len(), trained.len() * baselines.len());
    assert!(summary.contains("## Trained teachers against each baseline"));
    // Both objectives, seed by seed: each pairing row has its instance and compute cells.
    assert!(summary.contains("| paired difference in training GFLOP | P(less compute) |"));
    for pairing in &first.pairings {
        let row = format!("| {} | {} | ", pairing.teacher, pairing.reference);
        let line = summary.lines().find(|l| l.starts_with(&row)).unwrap();
        assert_eq!(line.matches(" | ").count(), 5, "{line}");
    }
    for pairing in &first.pairings {
        assert!(trained.contains(&pairing.teacher.as_str()));
        assert!(baselines.contains(&pairing.reference.as_str()));
        let records = |label: &str| -> Vec<_> {
            first
                .evaluations
                .iter()
                .filter(|r| r.teacher == label)
                .cloned()
                .collect()
        };
        let budget = config.preset.teaching.max_iterations * config.preset.teaching.batch_size;
        let expected = l2t::experiment::versus(
            &records(&pairing.reference),
            &records(&pairing.teacher),
            budget,
        )
        .unwrap();
        // As text: a teacher that never reached tau pairs no seed (mean NaN).
        assert_eq!(format!("{:?}", pairing.versus), format!("{expected:?}"));
        assert!(summary.contains(&format!("| {} | {} | ", pairing.teacher, pairing.reference)));
    }
    // Test accuracy was measured along the curves (test_every = 4) and at the end.
    let record = &first.evaluations[0];
    let measured = record
        .episode
        .curve
        .iter()
        .filter(|p| p.test_accuracy.is_some())
        .count();
    assert!(measured >= 2, "{measured} test points");
    assert_eq!(
        record.episode.curve.last().unwrap().test_accuracy,
        Some(record.test_accuracy)
    );
}

#[test]
fn resumed_training_matches_uninterrupted_training() {
    let scratch = Scratch::new("exp", "resume");
    let preset = small_preset();
    let teacher = TeacherConfig::Reinforce(ReinforceConfig {
        seed: 3,
        ..ReinforceConfig::default()
    });
    let files = |dir: &str| TrainingFiles {
        checkpoint: scratch.join(&format!("{dir}.ckpt")),
        history: scratch.join(&format!("{dir}.jsonl")),
    };
    let env = preset.build(Path::new("unused")).unwrap().teacher_env;
    let task = TrainingTask::of(&env, preset.student.clone(), 2);

    // Uninterrupted: 4 episodes.
    let straight =
        train_resumable(&task, &teacher, 4, 1_000, &files("straight"), 1, |_| {}).unwrap();
    assert_eq!(straight.resumed_from, 0);

    // Interrupted after 2 episodes, with a third episode logged but not checkpointed
    // (as if the process died between the log line and the checkpoint).
    let interrupted = files("interrupted");
    train_resumable(&task, &teacher, 2, 1_000, &interrupted, 1, |_| {}).unwrap();
    let mut log = JsonLines::open(&interrupted.history, false).unwrap();
    log.append(&straight.history[2]).unwrap();
    drop(log);
    let mut seen = Vec::new();
    let resumed = train_resumable(&task, &teacher, 4, 1_000, &interrupted, 1, |e| {
        seen.push(e.episode)
    })
    .unwrap();
    assert_eq!(resumed.resumed_from, 2);
    assert_eq!(seen, vec![2, 3]);
    assert_eq!(
        fs::read(&files("straight").checkpoint).unwrap(),
        fs::read(&interrupted.checkpoint).unwrap()
    );
    let masks = |history: &[TrainingEpisode]| -> Vec<(usize, u64, usize, usize)> {
        history
            .iter()
            .map(|e| {
                (
                    e.episode,
                    e.seed,
                    e.summary.instances_kept,
                    e.summary.iterations,
                )
            })
            .collect()
    };
    assert_eq!(masks(&straight.history), masks(&resumed.history));
    let logged: Vec<TrainingEpisode> = JsonLines::read(&interrupted.history).unwrap();
    assert_eq!(masks(&logged), masks(&straight.history));

    // Asking for fewer episodes than the checkpoint holds is a clear error.
    let error = train_resumable(&task, &teacher, 3, 1_000, &interrupted, 1, |_| {})
        .unwrap_err()
        .to_string();
    assert!(error.contains("already holds 4"), "{error}");
}

#[test]
fn a_teacher_cannot_transfer_to_other_feature_columns() {
    let scratch = Scratch::new("exp", "transfer");
    let mut config = small_config();
    let mut four_classes = small_preset();
    four_classes.name = "synthetic-4-classes".into();
    if let l2t::presets::DataSource::Synthetic(data) = &mut four_classes.data {
        data.num_classes = 4;
    }
    if let l2t::envs::StudentConfig::Mlp(mlp) = &mut four_classes.student {
        mlp.num_classes = 4;
    }
    // Both sides read the irreducible_loss column, as the reproduction's teachers do.
    four_classes.irreducible_loss_feature = true;
    config.train_on = Some(four_classes);
    let mut out = RunDir::create(&scratch.join("run")).unwrap();
    let error = run(&config, Path::new("unused"), &mut out, |_| {}).unwrap_err();
    assert!(
        matches!(
            &error,
            ExperimentError::TransferLayout { differences, .. }
                if differences.contains("not expected label_4")
                    && differences.contains("number of classes")
        ),
        "{error}"
    );
    assert!(error.to_string().contains("synthetic-4-classes"), "{error}");
    // Nothing was trained.
    assert!(!fs::read_dir(scratch.join("run")).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".ckpt")));
}

#[test]
fn a_transferred_checkpoint_teaches_and_rand_teach_matches_an_earlier_run() {
    let scratch = Scratch::new("exp", "match");
    let config = small_config();
    let first = run_into(&config, &scratch.join("first"));

    // A second run on a task with other data: the first run's REINFORCE checkpoint
    // teaches it, and RandTeach replays the drop schedule logged by the first run.
    let checkpoint = fs::read_dir(scratch.join("first"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("reinforce-") && name.ends_with(".ckpt")
        })
        .unwrap();
    let mut other = small_preset();
    if let l2t::presets::DataSource::Synthetic(data) = &mut other.data {
        data.data_seed = 11;
    }
    let mut second = RunConfig::reproduction(other);
    second.report.plots = false;
    second.teachers = vec![
        TeacherEntry::new(
            "transferred",
            TeacherConfig::Checkpoint { path: checkpoint },
        ),
        TeacherEntry {
            match_drop_ratio_of: Some(labels::REINFORCE.into()),
            match_run: Some(scratch.join("first")),
            ..TeacherEntry::new("matched", TeacherConfig::RandTeach(Default::default()))
        },
    ];
    let report = run_into(&second, &scratch.join("second"));
    assert_eq!(report.summaries.len(), 2);
    let schedule =
        per_epoch_drop_ratio_from_run(&scratch.join("first"), labels::REINFORCE).unwrap();
    assert!(!schedule.is_empty());
    let expected = l2t::experiment::per_epoch_drop_ratio(
        &first
            .records_of(labels::REINFORCE)
            .into_iter()
            .cloned()
            .collect::<Vec<_>>(),
    );
    assert_eq!(schedule, expected);
    // A label that the log does not hold is an error naming it.
    let error = per_epoch_drop_ratio_from_run(&scratch.join("first"), "nobody")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("nobody") && error.contains("events.jsonl"),
        "{error}"
    );
}

/// A user's teacher: keeps every other instance.
struct EveryOther;

impl l2t::agents::Teacher for EveryOther {
    fn name(&self) -> &str {
        "every-other"
    }

    fn act(
        &mut self,
        observation: &l2t::envs::TeachingObservation,
        _info: &l2t::envs::TeachingInfo,
    ) -> l2t::agents::Result<l2t::agents::KeepMask> {
        let m = observation.features.nrows();
        Ok(ndarray::Array1::from_shape_fn(m, |i| i % 2 == 0))
    }
}

#[test]
fn a_users_teacher_gets_the_same_report_as_the_built_in_ones() {
    let scratch = Scratch::new("exp", "user");
    let mut config = small_config();
    config.teachers = vec![
        TeacherEntry::new("no_teach", TeacherConfig::NoTeach),
        TeacherEntry::new("online", TeacherConfig::OnlineBatch(Default::default())),
    ];
    // On the report seeds, as headline figures are.
    config.preset.first_eval_seed = l2t::presets::REPORT_SEEDS;
    let mut out = RunDir::create(&scratch.join("run")).unwrap();
    let mine = vec![UserTeacher::new("mine", EveryOther)];
    let report = run_with(&config, mine, Path::new("unused"), &mut out, |_| {}).unwrap();
    let labels: Vec<&str> = report
        .summaries
        .iter()
        .map(|s| s.teacher.as_str())
        .collect();
    assert_eq!(labels, ["no_teach", "online", "mine"]);
    let mine = &report.summaries[2];
    assert!(mine.vs_first.is_some(), "paired with the first row");
    let records = report.records_of("mine");
    assert_eq!(records.len(), config.preset.eval_seeds);
    let seeds: Vec<u64> = records.iter().map(|r| r.seed).collect();
    assert_eq!(seeds, [1_000_000, 1_000_001]);
    // Kept half of what it saw, on the same seeds as NoTeach.
    for (record, reference) in records.iter().zip(report.records_of("no_teach")) {
        assert_eq!(record.seed, reference.seed);
        assert_eq!(
            2 * record.episode.instances_kept,
            record.episode.instances_seen
        );
    }
    let summary = fs::read_to_string(scratch.join("run").join("summary.md")).unwrap();
    assert!(summary.contains("| mine |"), "{summary}");
    assert!(summary.contains("(seeds 1000000 to 1000001)"), "{summary}");
    let events = fs::read_to_string(scratch.join("run").join("events.jsonl")).unwrap();
    assert_eq!(events.matches("\"mine\"").count(), config.preset.eval_seeds);
    assert!(
        scratch.join("run").join("convergence.svg").exists() || !report.plot_warnings.is_empty()
    );

    // A label already in the config is refused, naming it.
    let twice = vec![UserTeacher::new("online", EveryOther)];
    let mut out = RunDir::create(&scratch.join("twice")).unwrap();
    let error = run_with(&config, twice, Path::new("unused"), &mut out, |_| {}).unwrap_err();
    assert!(
        error.to_string().contains("`online` is used twice"),
        "{error}"
    );
}

#[test]
fn a_teachers_setting_edited_in_the_toml_changes_the_run_and_a_stray_key_is_named() {
    let scratch = Scratch::new("exp", "toml");
    let mut config = small_config();
    config.report.plots = false;
    config.teachers.retain(|e| e.label == labels::REINFORCE);
    let text = config.to_toml().unwrap();
    // The teacher's learning rate, edited where --print-config shows it.
    let mut value: toml::Value = toml::from_str(&text).unwrap();
    value["teachers"][0]["teacher"]["learning_rate"] = toml::Value::Float(0.5);
    let edited = RunConfig::from_toml(&toml::to_string(&value).unwrap()).unwrap();
    let weights = |config: &RunConfig, dir: &str| {
        let report = run_into(config, &scratch.join(dir));
        let checkpoint = fs::read_dir(scratch.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "ckpt"))
            .unwrap();
        (
            report.training[0].episodes.len(),
            fs::read(checkpoint).unwrap(),
        )
    };
    let (episodes, original) = weights(&config, "original");
    let (same_episodes, changed) = weights(&edited, "edited");
    assert_eq!(episodes, same_episodes);
    assert_ne!(
        original, changed,
        "the edited learning rate changed the teacher"
    );

    // Teachers live in [[teachers]] only: an old `[preset.reinforce]` table, or any key
    // the config does not read, is an error naming it.
    for stray in ["reinforce", "not_a_setting"] {
        let mut value: toml::Value = toml::from_str(&text).unwrap();
        let preset = value["preset"].as_table_mut().unwrap();
        preset.insert(stray.into(), toml::Value::Table(Default::default()));
        let error = RunConfig::from_toml(&toml::to_string(&value).unwrap())
            .unwrap_err()
            .to_string();
        assert!(error.contains(stray), "{error}");
    }
}

#[test]
fn rho_loss_trains_its_holdout_model_once_and_caches_it_per_task() {
    let scratch = Scratch::new("exp", "rho");
    let mut config = small_config();
    config.teachers = vec![
        TeacherEntry::new("no_teach", TeacherConfig::NoTeach),
        TeacherEntry::new(
            "rho",
            TeacherConfig::RhoLoss(l2t::agents::RhoLossConfig {
                keep_fraction: 0.3,
                holdout_iterations: Some(100),
                pool: 1,
            }),
        ),
    ];
    let dir = scratch.join("run");
    let first = run_into(&config, &dir);
    let cached: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("rho-irreducible-"))
        })
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    let file = json_file(&cached[0]);
    let losses = file["irreducible_loss"].as_array().unwrap();
    // One per instance of the student half's training split (1,500 of 3,000).
    assert_eq!(losses.len(), 1500);
    assert!(losses
        .iter()
        .all(|l| l.as_f64().is_some_and(|l| l.is_finite() && l >= 0.0)));
    assert_eq!(file["holdout_iterations"], 100);
    // ceil(0.3 * 20) = 6 of every incoming batch of 20.
    for record in first.records_of("rho") {
        assert_eq!(
            10 * record.episode.instances_kept,
            3 * record.episode.instances_seen
        );
    }

    // A fresh rerun (which would otherwise reuse rho's finished evaluations) reads the
    // cache, which --fresh keeps: the same episodes.
    let bytes = fs::read(&cached[0]).unwrap();
    let mut out = RunDir::create(&dir).unwrap();
    out.set_fresh(true);
    let again = run(&config, Path::new("unused"), &mut out, |_| {}).unwrap();
    drop(out);
    assert_eq!(fs::read(&cached[0]).unwrap(), bytes);
    let kept = |report: &l2t::experiment::Report| -> Vec<(u64, usize, usize)> {
        report
            .records_of("rho")
            .iter()
            .map(|r| (r.seed, r.episode.instances_kept, r.episode.iterations))
            .collect()
    };
    assert_eq!(kept(&first), kept(&again));

    // A cache for another split is refused, naming the file and the fix.
    fs::write(
        &cached[0],
        r#"{"task": "synthetic", "holdout_iterations": 100, "holdout_dev_accuracy": 0.5,
            "irreducible_loss": [0.5]}"#,
    )
    .unwrap();
    let mut out = RunDir::create(&dir).unwrap();
    out.set_fresh(true);
    let error = run(&config, Path::new("unused"), &mut out, |_| {})
        .unwrap_err()
        .to_string();
    assert!(error.contains("rho-irreducible-"), "{error}");
    assert!(error.contains("delete the file"), "{error}");
}

#[test]
fn the_irreducible_loss_feature_is_cross_fitted_once_and_read_by_the_learned_teachers() {
    let scratch = Scratch::new("exp", "il-feature");
    let mut config = small_config();
    config.preset.irreducible_loss_feature = true;
    config.preset.teaching.max_iterations = 100;
    config
        .teachers
        .retain(|e| e.label == labels::NO_TEACH || e.label == labels::ES);
    let dir = scratch.join("run");
    let first = run_into(&config, &dir);
    let cached: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("irreducible-feature-"))
        })
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    let file = json_file(&cached[0]);
    // One loss per instance of each half's training split (1,500 of 3,000 each).
    for half in ["teacher_half", "student_half"] {
        let losses = file[half].as_array().unwrap();
        assert_eq!(losses.len(), 1500, "{half}");
        assert!(losses
            .iter()
            .all(|l| l.as_f64().is_some_and(|l| l.is_finite() && l >= 0.0)));
    }
    // The trained ES teacher reads one more column than without the feature.
    let checkpoint = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "ckpt"))
        .unwrap();
    let env = config
        .preset
        .build(Path::new("unused"))
        .unwrap()
        .student_env;
    let too_narrow = TeacherConfig::Checkpoint {
        path: checkpoint.clone(),
    }
    .build(env.layout())
    .err()
    .unwrap()
    .to_string();
    assert!(
        too_narrow.contains("missing irreducible_loss")
            && too_narrow.contains("`irreducible_loss_feature`"),
        "{too_narrow}"
    );

    // The one-off compute of the feature, counted by hand: two holdout MLPs of T' plain
    // updates (M rows forward, backward = 2 forwards, Adam 12 FLOPs per parameter),
    // then one forward over both training halves; in report.json and summary.md.
    let l2t::envs::StudentConfig::Mlp(mlp) = &config.preset.student else {
        panic!("the synthetic preset's student is an MLP");
    };
    let widths: Vec<u64> = std::iter::once(mlp.input_dim)
        .chain(mlp.hidden.iter().copied())
        .chain([mlp.num_classes])
        .map(|w| w as u64)
        .collect();
    let forward_per_row: u64 = widths.windows(2).map(|w| 2 * w[0] * w[1] + w[1]).sum();
    let parameters: u64 = widths.windows(2).map(|w| w[0] * w[1] + w[1]).sum();
    let m = config.preset.teaching.batch_size as u64;
    let plain_update = m * forward_per_row + m * 2 * forward_per_row + 12 * parameters;
    let hand_count = 2 * 100 * plain_update + 3000 * forward_per_row;
    assert_eq!(first.irreducible_feature_compute, Some(hand_count));
    let summary = fs::read_to_string(dir.join("summary.md")).unwrap();
    let gflop = hand_count as f64 / 1e9;
    let decimals = (2 - gflop.log10().floor() as i64).clamp(0, 6) as usize;
    let gflop = format!("{gflop:.decimals$} GFLOP once");
    assert!(summary.contains(&gflop), "{gflop} not in\n{summary}");

    // A rerun reads the cache and repeats the run.
    let bytes = fs::read(&cached[0]).unwrap();
    let again = run_into(&config, &dir);
    assert_eq!(fs::read(&cached[0]).unwrap(), bytes);
    let outcome = |report: &l2t::experiment::Report| -> Vec<(String, u64, usize)> {
        report
            .evaluations
            .iter()
            .map(|r| (r.teacher.clone(), r.seed, r.episode.instances_kept))
            .collect()
    };
    assert_eq!(outcome(&first), outcome(&again));
}

/// Episodes started and steps taken by the teachers of
/// [`a_failing_teacher_stops_every_worker_before_its_next_episode`], shared with the run.
#[derive(Default)]
struct Counts {
    /// Set by the failing teacher just before it fails.
    failed: std::sync::atomic::AtomicBool,
    failing_episodes: std::sync::atomic::AtomicUsize,
    other_episodes: std::sync::atomic::AtomicUsize,
    /// Episodes the other teacher started, and steps it was asked for, after the failure.
    other_episodes_after: std::sync::atomic::AtomicUsize,
    other_steps_after: std::sync::atomic::AtomicUsize,
}

/// NoTeach that counts its episodes (a new one when `instances_seen` goes back down)
/// and, as `failing`, fails on the first step of its second episode.
struct Counting {
    label: &'static str,
    failing: bool,
    last_seen: Option<usize>,
    counts: std::sync::Arc<Counts>,
}

impl l2t::agents::Teacher for Counting {
    fn name(&self) -> &str {
        self.label
    }

    fn act(
        &mut self,
        observation: &l2t::envs::TeachingObservation,
        info: &l2t::envs::TeachingInfo,
    ) -> l2t::agents::Result<l2t::agents::KeepMask> {
        use std::sync::atomic::Ordering::SeqCst;
        let starts = self
            .last_seen
            .is_none_or(|last| info.instances_seen <= last);
        self.last_seen = Some(info.instances_seen);
        let counts = &self.counts;
        if self.failing {
            if starts && counts.failing_episodes.fetch_add(1, SeqCst) == 1 {
                counts.failed.store(true, SeqCst);
                return Err(l2t::agents::AgentError::InvalidConfig {
                    field: "test teacher",
                    reason: "a deliberate failure".into(),
                });
            }
        } else {
            if starts {
                counts.other_episodes.fetch_add(1, SeqCst);
            }
            if counts.failed.load(SeqCst) {
                counts.other_steps_after.fetch_add(1, SeqCst);
                if starts {
                    counts.other_episodes_after.fetch_add(1, SeqCst);
                }
            }
        }
        Ok(ndarray::Array1::from_elem(
            observation.features.nrows(),
            true,
        ))
    }
}

#[test]
fn a_failing_teacher_stops_every_worker_before_its_next_episode() {
    use std::sync::atomic::Ordering::SeqCst;
    let scratch = Scratch::new("exp", "stop");
    let mut config = small_config();
    config.preset.irreducible_loss_feature = false;
    config.teachers = vec![TeacherEntry::new("no_teach", TeacherConfig::NoTeach)];
    config.preset.eval_seeds = 4;
    // One worker per teacher: the three run side by side.
    config.training.workers = 3;
    let counts = std::sync::Arc::new(Counts::default());
    let teacher = |label, failing| Counting {
        label,
        failing,
        last_seen: None,
        counts: counts.clone(),
    };
    let mine = vec![
        UserTeacher::new("failing", teacher("failing", true)),
        UserTeacher::new("other", teacher("other", false)),
    ];
    let mut out = RunDir::create(&scratch.join("run")).unwrap();
    // A slow consumer of the records (the reporting thread is busy): the workers must
    // stop on their own, not when the reporting thread gets to the error.
    let error = run_with(&config, mine, Path::new("unused"), &mut out, |progress| {
        if let l2t::experiment::Progress::Evaluated(_) = progress {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    })
    .unwrap_err()
    .to_string();
    // The run's error is the teacher's own, not the stop it caused elsewhere.
    assert!(error.contains("a deliberate failure"), "{error}");
    assert!(counts.failed.load(SeqCst));
    // The failed worker started no episode after its failure...
    assert_eq!(counts.failing_episodes.load(SeqCst), 2);
    // ...and the other one neither: its episode in flight ended at its next step (one
    // step may race the failure), and it started no other.
    assert!(
        counts.other_steps_after.load(SeqCst) <= 1,
        "{} steps after the failure",
        counts.other_steps_after.load(SeqCst)
    );
    assert!(counts.other_episodes_after.load(SeqCst) <= 1);
    assert!(counts.other_episodes.load(SeqCst) < 4);
}

#[test]
fn the_reference_row_can_be_any_teacher_even_ones_own() {
    let scratch = Scratch::new("exp", "reference");
    let mut config = small_config();
    config.preset.irreducible_loss_feature = false;
    config.teachers = vec![
        TeacherEntry::new("no_teach", TeacherConfig::NoTeach),
        TeacherEntry::new("online", TeacherConfig::OnlineBatch(Default::default())),
    ];
    config.report.reference = Some("mine".into());
    let mut out = RunDir::create(&scratch.join("run")).unwrap();
    let mine = vec![UserTeacher::new("mine", EveryOther)];
    let report = run_with(&config, mine, Path::new("unused"), &mut out, |_| {}).unwrap();
    assert_eq!(report.reference, "mine");
    let paired: Vec<bool> = report
        .summaries
        .iter()
        .map(|s| s.vs_first.is_some())
        .collect();
    assert_eq!(paired, [true, true, false]);
    // NoTeach against mine is the mirror of mine against NoTeach.
    let no_teach = report.summaries[0].vs_first.unwrap();
    let mine = report.records_of("mine");
    let owned: Vec<_> = mine.into_iter().cloned().collect();
    let no_teach_records: Vec<_> = report.records_of("no_teach").into_iter().cloned().collect();
    let budget = config.preset.teaching.max_iterations * config.preset.teaching.batch_size;
    let mirror = l2t::experiment::versus(&no_teach_records, &owned, budget).unwrap();
    approx::assert_relative_eq!(
        no_teach.instances_to_tau.mean,
        -mirror.instances_to_tau.mean,
        epsilon = 1e-9
    );
    // summary.md and report.json say which row is the reference; 2 seeds: no P, a note.
    let summary = fs::read_to_string(scratch.join("run/summary.md")).unwrap();
    for part in [
        "The reference row is `mine`",
        "| P(fewer instances than mine) |",
        "n/a (2 seeds < 5)",
        "Few seeds (2 < 5)",
    ] {
        assert!(summary.contains(part), "{part}:\n{summary}");
    }
    assert!(!summary.contains("first row"), "{summary}");
    let written = json_file(&scratch.join("run/report.json"));
    assert_eq!(written["reference"], "mine");
    assert_eq!(written["config"]["report"]["reference"], "mine");

    // An unknown reference is refused before anything runs, listing the teachers.
    config.report.reference = Some("nobody".into());
    let mut out = RunDir::create(&scratch.join("refused")).unwrap();
    let error = run_with(&config, Vec::new(), Path::new("unused"), &mut out, |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("[report] reference")
            && error.contains("`nobody`")
            && error.contains("`online`"),
        "{error}"
    );
}
