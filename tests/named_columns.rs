//! A teacher reads the observation by name (issue 33): in a run whose config adds the
//! `irreducible_loss` column after the labels (every preset's reproduction does), a
//! user teacher reads the column it names; a column resolved against an env built
//! without the run's settings reads the column of its name, where its bare index would
//! read the one beside it; declared columns are checked before the first episode and
//! recorded in the run folder; a checkpoint loaded as a `Box<dyn Teacher>` is a
//! `UserTeacher` and reads its trained columns by name.

mod common;

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use l2t::agents::{load_teacher, KeepMask, ReinforceConfig, Teacher, TeacherConfig};
use l2t::config::{RunConfig, TeacherEntry};
use l2t::envs::{Column, TeachingInfo, TeachingObservation};
use l2t::experiment::{run_with, Report, UserTeacher};
use l2t::run_dir::RunDir;

use common::{small_synthetic_preset, Scratch};

/// The reproduction config of the small synthetic preset (with `irreducible_loss`),
/// NoTeach as its only teacher.
fn config() -> RunConfig {
    tch::set_num_threads(1);
    let mut config = RunConfig::reproduction(small_synthetic_preset(2));
    assert!(config.preset.irreducible_loss_feature);
    config.teachers = vec![TeacherEntry::new("no_teach", TeacherConfig::NoTeach)];
    config
}

/// The instances kept on each seed by the teacher `label` of `report`.
fn kept(report: &Report, label: &str) -> Vec<usize> {
    (report.records_of(label).iter())
        .map(|r| r.episode.instances_kept)
        .collect()
}

/// The student env the preset builds on its own, without the run's settings (no
/// `irreducible_loss` column).
fn own_env(config: &RunConfig) -> l2t::envs::TeachingEnv {
    let envs = (config.preset)
        .build_on(Path::new("unused"), tch::Device::Cpu)
        .unwrap();
    envs.student_env
}

/// Keeps everything, checking in every row that the column named `loss` is the loss
/// recomputed from the columns named `label_c` and `prob_c`: -ln p_y / (2 ln |Y|),
/// clipped to [0, 1] (the env's fixed loss scaling).
struct LossChecker {
    rows_checked: Arc<AtomicUsize>,
}

impl Teacher for LossChecker {
    fn name(&self) -> &str {
        "loss-checker"
    }

    fn columns(&self) -> Vec<String> {
        vec!["loss".into(), "irreducible_loss".into()]
    }

    fn act(
        &mut self,
        obs: &TeachingObservation,
        _: &TeachingInfo,
    ) -> l2t::agents::Result<KeepMask> {
        let classes = (0..)
            .take_while(|c| obs.layout.contains(&format!("label_{c}")))
            .count();
        assert!(classes >= 2);
        let loss = obs.column("loss")?;
        let scale = 2.0 * (classes as f32).ln();
        for row in 0..obs.features.nrows() {
            let mut p_label = 0.0f32;
            for c in 0..classes {
                let label = obs.column(&format!("label_{c}"))?[row];
                p_label += label * obs.column(&format!("prob_{c}"))?[row];
            }
            let expected = (-p_label.max(1e-30).ln() / scale).clamp(0.0, 1.0);
            assert!(
                (loss[row] - expected).abs() < 1e-4,
                "row {row}: the column named `loss` holds {}, the loss of p_y = {p_label} is \
                 {expected}",
                loss[row]
            );
        }
        self.rows_checked
            .fetch_add(obs.features.nrows(), Ordering::Relaxed);
        Ok(KeepMask::from_elem(obs.features.nrows(), true))
    }
}

#[test]
fn a_user_teacher_reads_the_column_it_names_with_irreducible_loss_inserted() {
    let scratch = Scratch::new("columns", "checker");
    let config = config();
    let rows_checked = Arc::new(AtomicUsize::new(0));
    let mine = UserTeacher::new(
        "checker",
        LossChecker {
            rows_checked: rows_checked.clone(),
        },
    );
    let mut out = RunDir::create(&scratch.join("run")).unwrap();
    let report = run_with(&config, vec![mine], Path::new("unused"), &mut out, |_| {}).unwrap();
    assert!(rows_checked.load(Ordering::Relaxed) > 1000);
    // Keeping everything, it trains exactly as NoTeach does.
    for (mine, reference) in report
        .records_of("checker")
        .iter()
        .zip(report.records_of("no_teach"))
    {
        assert_eq!(mine.episode.iterations, reference.episode.iterations);
    }
    // The run folder says what ran: the label and the declared columns.
    let toml = fs::read_to_string(scratch.join("run/config.toml")).unwrap();
    assert!(
        toml.contains("#   `checker` (reads loss, irreducible_loss)"),
        "{toml}"
    );
    assert!(
        RunConfig::from_toml(&toml).is_ok(),
        "config.toml stays a config"
    );
    let manifest = fs::read_to_string(scratch.join("run/manifest.json")).unwrap();
    assert!(manifest.contains("\"user_teachers\""), "{manifest}");
    let summary = fs::read_to_string(scratch.join("run/summary.md")).unwrap();
    assert!(
        summary.contains("`checker` (reads loss, irreducible_loss)"),
        "{summary}"
    );
    assert_eq!(
        report.user_teachers[0].columns,
        ["loss", "irreducible_loss"]
    );
}

/// Keeps the instances whose margin is below 0.5, reading the margin one of three ways.
enum KeepUnsure {
    /// By name from each observation.
    ByName,
    /// Through a column resolved once, against some env's layout.
    Resolved(Column),
    /// Through a bare index (what issue 33's users computed outside the run).
    BareIndex(usize),
}

impl Teacher for KeepUnsure {
    fn name(&self) -> &str {
        "keep-unsure"
    }

    fn act(
        &mut self,
        obs: &TeachingObservation,
        _: &TeachingInfo,
    ) -> l2t::agents::Result<KeepMask> {
        let margin = match self {
            Self::ByName => obs.column("margin")?,
            Self::Resolved(column) => obs.at(column)?,
            Self::BareIndex(i) => obs.features.column(*i),
        };
        Ok(margin.mapv(|m| m < 0.5))
    }
}

#[test]
fn a_column_from_an_env_without_the_runs_columns_reads_its_name_not_its_index() {
    let scratch = Scratch::new("columns", "stale");
    let config = config();
    // The trap of issue 33: the preset's own env has no `irreducible_loss` column.
    let own = own_env(&config);
    let layout = own.layout();
    assert!(!layout.contains("irreducible_loss"));
    let margin = layout.column("margin").unwrap();
    let mine = vec![
        UserTeacher::new("by_name", KeepUnsure::ByName),
        UserTeacher::new("resolved", KeepUnsure::Resolved(margin.clone())),
        UserTeacher::new("bare_index", KeepUnsure::BareIndex(margin.index())),
    ];
    let mut out = RunDir::create(&scratch.join("run")).unwrap();
    let report = run_with(&config, mine, Path::new("unused"), &mut out, |_| {}).unwrap();
    assert_eq!(kept(&report, "resolved"), kept(&report, "by_name"));
    // The bare index reads `loss`, the column before `margin` in the run's env.
    assert_ne!(kept(&report, "bare_index"), kept(&report, "by_name"));
    // A column the observation lacks is an error naming it.
    let other = l2t::envs::FeatureLayout::new(vec!["margins".into()]);
    let missing = KeepUnsure::Resolved(other.column("margins").unwrap());
    let mut out = RunDir::create(&scratch.join("missing")).unwrap();
    let error = run_with(
        &config,
        vec![UserTeacher::new("missing", missing)],
        Path::new("unused"),
        &mut out,
        |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("no feature column `margins`"), "{error}");
}

/// Declares a column no env has.
struct Misspelt;

impl Teacher for Misspelt {
    fn name(&self) -> &str {
        "misspelt"
    }

    fn columns(&self) -> Vec<String> {
        vec!["margins".into()]
    }

    fn act(
        &mut self,
        obs: &TeachingObservation,
        _: &TeachingInfo,
    ) -> l2t::agents::Result<KeepMask> {
        panic!("act called with {} rows", obs.features.nrows())
    }
}

#[test]
fn a_declared_column_the_env_lacks_stops_the_run_before_any_episode() {
    let scratch = Scratch::new("columns", "misspelt");
    let mut out = RunDir::create(&scratch.join("run")).unwrap();
    let error = run_with(
        &config(),
        vec![UserTeacher::new("mine", Misspelt)],
        Path::new("unused"),
        &mut out,
        |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("`mine` reads the column `margins`") && error.contains("margin"),
        "{error}"
    );
    let events = scratch.join("run/events.jsonl");
    assert!(!events.exists() || fs::read_to_string(events).unwrap().is_empty());
}

#[test]
fn a_loaded_checkpoint_is_a_user_teacher_and_maps_its_columns_by_name() {
    let scratch = Scratch::new("columns", "checkpoint");
    let config = config();
    // A policy trained (here: initialised) on the preset's env without the column...
    let own = own_env(&config);
    let path = scratch.join("reinforce.ckpt");
    fs::create_dir_all(scratch.join("")).unwrap();
    let learner = TeacherConfig::Reinforce(ReinforceConfig::default())
        .build_learner(own.layout())
        .unwrap();
    learner.save_checkpoint(&path).unwrap();
    // ... taught in a run whose env inserts `irreducible_loss`: mapped by name.
    let teacher = load_teacher(&path, None).unwrap();
    assert_eq!(teacher.columns(), own.feature_names().to_vec());
    let mut out = RunDir::create(&scratch.join("run")).unwrap();
    let from_file = TeacherEntry::new(
        "from_file",
        TeacherConfig::Checkpoint { path: path.clone() },
    );
    let mut with_file = config.clone();
    with_file.teachers.push(from_file);
    let report = run_with(
        &with_file,
        vec![UserTeacher::new("loaded", teacher)],
        Path::new("unused"),
        &mut out,
        |_| {},
    )
    .unwrap();
    // The user's copy, loaded without knowing the run's env, reads its trained columns
    // by name as the run's own copy does: both keep the same instances.
    assert_eq!(kept(&report, "loaded"), kept(&report, "from_file"));
}
