//! A run: train the learned teachers, evaluate every teacher (the config's and the
//! user's) on the same seeds, and report as it goes.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use l2t_agents::{
    checkpoint_episodes, restore_teacher, CheckpointFile, RandTeach, RhoLoss, Teacher,
    TeacherConfig,
};
use l2t_envs::FeatureLayout;

use crate::config::{reference_index, RunConfig, TeacherEntry, REFERENCE_NAME};
use crate::run_dir::{long_hash, run_identity, Manifest, RunDir};

use super::evaluate::{evaluate_side_by_side, Finished};
use super::*;

/// One line of a run's `events.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A teacher-training episode finished (or was read back from a checkpoint).
    TrainingEpisode {
        /// Teacher label.
        teacher: String,
        /// The episode.
        #[serde(flatten)]
        record: TrainingEpisode,
    },
    /// An evaluation episode finished.
    Evaluation {
        /// The episode.
        #[serde(flatten)]
        record: EvaluationRecord,
        /// The identity of the evaluation ([`evaluation_identity`]: the run's config, the
        /// teacher entry and, for a trained teacher, its checkpoint), which a rerun of the
        /// same config into the folder matches to reuse the teacher's evaluations. Absent
        /// for a teacher of your own (its code is not part of any identity) and in logs
        /// written before it existed: such a line is never reused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        identity: Option<String>,
    },
}

/// The training episodes of one learned teacher.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingRun {
    /// Teacher label.
    pub teacher: String,
    /// The task it was trained on.
    pub task: String,
    /// Its episodes, in order.
    pub episodes: Vec<TrainingEpisode>,
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The resolved config of the run.
    pub config: RunConfig,
    /// The learned teachers' training episodes on the teacher half.
    pub training: Vec<TrainingRun>,
    /// Every evaluation episode on the student half.
    pub evaluations: Vec<EvaluationRecord>,
    /// Per-teacher aggregates, in the config's teacher order.
    pub summaries: Vec<TeacherSummary>,
    /// Effective instances and wall-clock to each accuracy level.
    pub levels: Vec<LevelSummary>,
    /// Each trained teacher against each untrained one but the reference row, seed by
    /// seed (the reference row is in every summary's `vs_first`).
    #[serde(default)]
    pub pairings: Vec<Pairing>,
    /// The label of the reference row, which every summary's `vs_first` pairs with:
    /// `[report] reference` (`--reference`, Python's `reference=`), else the first
    /// row's. Empty in reports written before it could be chosen (the first row then).
    #[serde(default)]
    pub reference: String,
    /// Plots that could not be drawn (e.g. for want of a font), as messages.
    #[serde(default)]
    pub plot_warnings: Vec<String>,
    /// The teachers of your own that ran beside the config's ([`run_with`]): their
    /// labels and the columns they declared.
    #[serde(default)]
    pub user_teachers: Vec<UserTeacherRecord>,
    /// The one-off training compute of the evaluation task's irreducible-loss feature
    /// in FLOPs ([`irreducible_feature_compute`]), where the run has the feature: paid
    /// once per task, apart from every teacher's compute to tau.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub irreducible_feature_compute: Option<u64>,
}

impl Report {
    /// The comparison as a markdown table, paired with the reference row.
    pub fn table(&self) -> String {
        markdown_table(&self.summaries, self.reference_index())
    }

    /// The position of the reference row in `summaries` (0 when the report names none).
    pub fn reference_index(&self) -> usize {
        (self.summaries.iter())
            .position(|s| s.teacher == self.reference)
            .unwrap_or(0)
    }

    /// The evaluation records of the teacher labelled `label`.
    pub fn records_of(&self, label: &str) -> Vec<&EvaluationRecord> {
        self.evaluations
            .iter()
            .filter(|r| r.teacher == label)
            .collect()
    }

    /// `summary.md`: both tables and how they were made.
    pub fn summary_markdown(&self) -> String {
        let preset = &self.config.preset;
        let mut out = format!(
            "# {}\n\nTeachers compared on fresh students of the student half, {} seeds each \
             (seeds {} to {}); effective training instances = student updates x M (M = {}); \
             tau = {}.\n\n",
            preset.name,
            preset.eval_seeds,
            preset.first_eval_seed,
            (preset.first_eval_seed).saturating_add((preset.eval_seeds as u64).saturating_sub(1)),
            preset.teaching.batch_size,
            preset
                .teaching
                .thresholds
                .iter()
                .map(|t| format!("{}", t.accuracy))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let Some(train_on) = &self.config.train_on {
            out.push_str(&format!(
                "Learned teachers were trained on `{}` (transfer).\n\n",
                train_on.name
            ));
        }
        if !self.user_teachers.is_empty() {
            let mine: Vec<String> = self.user_teachers.iter().map(|u| u.describe()).collect();
            out.push_str(&format!(
                "Teachers of your own, beside the config's: {}.\n\n",
                mine.join("; ")
            ));
        }
        let reference = (self.summaries.get(self.reference_index()))
            .map_or("the first row", |s| s.teacher.as_str());
        out.push_str(&format!(
            "The reference row is `{reference}`: every other row is paired with it. The paired \
             difference is a teacher's effective instances to tau minus `{reference}`'s on the \
             same seed, over the seeds where both reached tau. P(fewer instances) is the \
             probability of improvement over all seeds (ties count one half; a run that missed \
             tau counts at the budget T' x M).\n\n"
        ));
        out.push_str(&small_sample_note(preset.eval_seeds));
        out.push_str(&self.table());
        out.push_str(&self.irreducible_feature_note());
        if !self.pairings.is_empty() {
            out.push_str(
                "\n## Trained teachers against each baseline, seed by seed\n\n\
                 A trained teacher's effective instances and training compute to tau minus the \
                 baseline's on the same seed (negative: the trained teacher needs fewer, or \
                 less), as in the table above.\n\n",
            );
            out.push_str(&pairings_table(&self.pairings, preset.eval_seeds));
        }
        out.push_str("\n## Effective instances and wall-clock to each dev-accuracy level\n\n");
        out.push_str(&levels_table(&self.levels));
        out
    }
}

impl Report {
    /// The one-off compute of the irreducible-loss feature beside the reference row's
    /// mean compute to tau, as a paragraph of `summary.md` (empty without the feature).
    fn irreducible_feature_note(&self) -> String {
        let Some(flops) = self.irreducible_feature_compute else {
            return String::new();
        };
        let gflop = flops as f64 / 1e9;
        let decimals = super::summary::gflop_decimals(gflop);
        let against = self
            .summaries
            .get(self.reference_index())
            .filter(|s| s.compute_to_tau_mean > 0.0)
            .map(|s| {
                format!(
                    ", {:.1} times `{}`'s mean training compute to tau",
                    gflop / s.compute_to_tau_mean,
                    s.teacher
                )
            })
            .unwrap_or_default();
        format!(
            "\nThe `irreducible_loss` column cost {gflop:.decimals$} GFLOP once for this task{against}: \
             two holdout students of T' = {} plain updates each and one forward over both \
             training halves (RHO-LOSS's irreducible-loss model). It is shared by every \
             teacher that reads the column and is not in their compute to tau.\n",
            self.config.preset.teaching.max_iterations
        )
    }
}

/// What [`run`] reports as it goes.
#[derive(Debug)]
pub enum Progress<'a> {
    /// A phase starts: training a teacher (`total` episodes, `done` of them read back
    /// from a checkpoint) or evaluating one (`total` seeds).
    Phase {
        /// Teacher label.
        teacher: &'a str,
        /// True for training, false for evaluation.
        training: bool,
        /// Episodes in the phase.
        total: usize,
        /// Episodes already done (resumed).
        done: usize,
    },
    /// A training episode finished.
    Trained(&'a TrainingEpisode),
    /// An evaluation episode finished.
    Evaluated(&'a EvaluationRecord),
    /// The folder was fresh ([`RunDir::set_fresh`]): the files of the earlier run that
    /// were removed before this one started.
    Cleared(&'a [std::path::PathBuf]),
    /// A rerun of the same config into the folder found every seed of `teachers` in its
    /// `events.jsonl` ([`evaluation_identity`]): `reused` of the run's `total`
    /// evaluations are read back, not run again (sent once, before the evaluations).
    Resumed {
        /// Evaluations reused.
        reused: usize,
        /// Evaluations of the run (teachers x seeds).
        total: usize,
        /// The teachers whose evaluations are reused (in the config's order, those matched
        /// to another teacher's drop ratios last).
        teachers: &'a [String],
    },
}

/// Runs `config`: trains the learned teachers on the teacher half of the training
/// task (resuming from checkpoints in `out`), teaches fresh students of the student
/// half with every teacher on the same seeds, and writes the run folder (see
/// [`crate::run_dir`]).
pub fn run(
    config: &RunConfig,
    data_dir: &Path,
    out: &mut RunDir,
    progress: impl FnMut(Progress<'_>),
) -> Result<Report> {
    run_with(config, Vec::new(), data_dir, out, progress)
}

/// What a run folder records of a [`UserTeacher`]: in `report.json`, `manifest.json`,
/// `summary.md` and as a comment in `config.toml` (which stays the config alone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserTeacherRecord {
    /// Its row label.
    pub label: String,
    /// The feature columns it declared ([`Teacher::columns`]), checked against the env.
    pub columns: Vec<String>,
}

impl UserTeacherRecord {
    /// `label` (reads `a`, `b`), or `label` (declares no column).
    pub fn describe(&self) -> String {
        if self.columns.is_empty() {
            format!("`{}` (declares no column)", self.label)
        } else {
            format!("`{}` (reads {})", self.label, self.columns.join(", "))
        }
    }
}

/// A teacher of your own in a comparison: any [`Teacher`], under a label of its own.
///
/// It sees the observations of the env the run builds, whose columns may differ from
/// those of an env you built yourself (a run config with `irreducible_loss_feature`
/// inserts `irreducible_loss` after the labels): read columns by name from each
/// observation, never by an index computed elsewhere. The columns it declares
/// ([`Teacher::columns`]) are checked against the run's env before the first episode.
pub struct UserTeacher {
    /// Its row label in the tables and figures.
    pub label: String,
    /// The teacher, used as it is (train it before, if it learns).
    pub teacher: Box<dyn Teacher>,
}

impl UserTeacher {
    /// `teacher` labelled `label`.
    pub fn new(label: impl Into<String>, teacher: impl Teacher + 'static) -> Self {
        Self {
            label: label.into(),
            teacher: Box::new(teacher),
        }
    }

    /// What the run folder records of it.
    pub fn record(&self) -> UserTeacherRecord {
        UserTeacherRecord {
            label: self.label.clone(),
            columns: self.teacher.columns(),
        }
    }
}

/// Checks the columns each of `user` declares against `layout`, the run's env: an
/// error names the teacher, the column and the env's columns.
fn check_declared_columns(
    user: &[UserTeacherRecord],
    layout: &FeatureLayout,
    task: &str,
) -> Result<()> {
    for mine in user {
        for column in &mine.columns {
            if !layout.contains(column) {
                return Err(ExperimentError::InvalidSetting {
                    field: "teacher columns",
                    reason: format!(
                        "teacher `{}` reads the column `{column}`, which the env of `{task}` \
                         does not have; it has {}",
                        mine.label,
                        layout.describe()
                    ),
                });
            }
        }
    }
    Ok(())
}

impl std::fmt::Debug for UserTeacher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserTeacher")
            .field("label", &self.label)
            .finish()
    }
}

/// [`run`] with teachers of your own beside the config's: each of `user` teaches the
/// same fresh students on the same seeds as the config's teachers, and gets the same
/// rows in `summary.md` and `report.json` (after the config's teachers, in the order
/// given, with the paired difference to the reference row), the same lines in
/// `events.jsonl` and the CSVs, and its curves in the figures. A label used twice is
/// an error naming it.
pub fn run_with(
    config: &RunConfig,
    user: Vec<UserTeacher>,
    data_dir: &Path,
    out: &mut RunDir,
    progress: impl FnMut(Progress<'_>),
) -> Result<Report> {
    run_on(&mut Local, config, user, data_dir, out, progress)?
        .ok_or_else(|| ExperimentError::Worker("a local run stopped after training".into()))
}

/// [`run_with`] with the learned teachers' episodes rolled out by `distribution`:
/// the same files, from the process that [evaluates](Distribution::evaluates) (which
/// returns the report); the others stop after training and return `None`.
pub fn run_on(
    distribution: &mut dyn Distribution,
    config: &RunConfig,
    user: Vec<UserTeacher>,
    data_dir: &Path,
    out: &mut RunDir,
    mut progress: impl FnMut(Progress<'_>),
) -> Result<Option<Report>> {
    config.validate()?;
    for (i, mine) in user.iter().enumerate() {
        let taken = config.teachers.iter().any(|e| e.label == mine.label)
            || user[..i].iter().any(|u| u.label == mine.label);
        if taken {
            return Err(ExperimentError::InvalidSetting {
                field: "teachers.label",
                reason: format!("`{}` is used twice", mine.label),
            });
        }
    }
    // The table's order (the config's teachers, then the user's) and its reference
    // row, checked before anything is trained.
    let table_labels: Vec<String> = (config.teachers.iter().map(|e| e.label.clone()))
        .chain(user.iter().map(|u| u.label.clone()))
        .collect();
    let reference = reference_index(
        &table_labels.iter().map(String::as_str).collect::<Vec<_>>(),
        config.report.reference.as_deref(),
        REFERENCE_NAME,
    )?;
    let device = config.device.device()?;
    let seeds: Vec<u64> = config.evaluation_seeds()?.collect();
    let user_teachers: Vec<UserTeacherRecord> = user.iter().map(UserTeacher::record).collect();
    // One run per folder: another config's results refused (or cleared, fresh), the
    // same config's earlier results removed, before anything is written.
    let cleared = out.claim(config, &user_teachers)?;
    if !cleared.is_empty() {
        progress(Progress::Cleared(&cleared));
    }
    let mut manifest = Manifest::new(config, seeds.clone(), FIRST_TRAINING_SEED);
    manifest.user_teachers = user_teachers.clone();
    out.write_json("manifest.json", &manifest)?;
    let mut config_toml = config.to_toml()?;
    if !user_teachers.is_empty() {
        config_toml.push_str(
            "\n# Teachers of your own that ran beside the config's (not part of the config):\n",
        );
        for mine in &user_teachers {
            config_toml.push_str(&format!("#   {}\n", mine.describe()));
        }
    }
    out.write("config.toml", config_toml.as_bytes())?;

    let mut envs = config.preset.build_on(data_dir, device)?;
    let mut one_off_compute = None;
    if config.preset.irreducible_loss_feature {
        envs = with_irreducible_loss_feature(envs, &config.preset, out.root())?;
        one_off_compute = Some(irreducible_feature_compute(&envs, &config.preset));
    }
    check_declared_columns(
        &user_teachers,
        envs.student_env.layout(),
        &config.preset.name,
    )?;
    let needs_training = config.teachers.iter().any(|e| e.train);
    let transfer_env = match (&config.train_on, needs_training) {
        (Some(train_on), true) => {
            let mut train_envs = train_on.build_on(data_dir, device)?;
            if train_on.irreducible_loss_feature {
                train_envs = with_irreducible_loss_feature(train_envs, train_on, out.root())?;
            }
            Some(train_envs.teacher_env)
        }
        _ => None,
    };
    let training_preset = config.training_preset();
    if needs_training {
        let train_env = transfer_env.as_ref().unwrap_or(&envs.teacher_env);
        let trained = train_env.layout();
        if trained.positions_in(envs.student_env.layout()).is_err() {
            return Err(ExperimentError::TransferLayout {
                train_task: training_preset.name.clone(),
                eval_task: config.preset.name.clone(),
                differences: trained.differences(envs.student_env.layout()),
            });
        }
    }

    // 1. Train the learned teachers on the training task's teacher half.
    let mut teachers: HashMap<String, Box<dyn Teacher>> = HashMap::new();
    // The checkpoint each trained teacher is evaluated with: part of its identity.
    let mut checkpoints: HashMap<String, String> = HashMap::new();
    let mut training = Vec::new();
    if needs_training {
        let train_env = transfer_env.as_ref().unwrap_or(&envs.teacher_env);
        let task = TrainingTask::of(
            train_env,
            training_preset.student.clone(),
            config.training.worker_count(),
        )
        .with_run_settings(config)?
        .with_cancel(out.canceller());
        for entry in config.teachers.iter().filter(|e| e.train) {
            out.canceller().check()?;
            let mut task = task.share();
            task.teaching = config.training_teaching_of(entry);
            let files = training_files(out, config, entry)?;
            let episodes = entry.episodes.unwrap_or(training_preset.episodes);
            let resumed = if files.checkpoint.exists() {
                checkpoint_episodes(&files.checkpoint)?.min(episodes)
            } else {
                0
            };
            progress(Progress::Phase {
                teacher: &entry.label,
                training: true,
                total: episodes,
                done: resumed,
            });
            let trained = train_resumable_on(
                &mut *distribution,
                &task,
                &entry.teacher,
                episodes,
                FIRST_TRAINING_SEED,
                &files,
                config.checkpoint_every,
                |record| progress(Progress::Trained(record)),
            )?;
            for record in &trained.history {
                out.event(&Event::TrainingEpisode {
                    teacher: entry.label.clone(),
                    record: record.clone(),
                })?;
            }
            checkpoints.insert(
                entry.label.clone(),
                format!(
                    "{} after {} episodes",
                    files.checkpoint.file_name().map_or_else(
                        || files.checkpoint.display().to_string(),
                        |name| name.to_string_lossy().into_owned()
                    ),
                    trained.history.len()
                ),
            );
            training.push(TrainingRun {
                teacher: entry.label.clone(),
                task: training_preset.name.clone(),
                episodes: trained.history,
            });
            teachers.insert(entry.label.clone(), trained.teacher);
        }
    }

    if !distribution.evaluates() {
        return Ok(None);
    }

    // 2. Teach fresh students of the student half, teachers side by side on the
    //    workers: unmatched teachers first, so that a matched RandTeach can replay its
    //    target's drop schedule.
    let layout = envs.student_env.layout().clone();
    let budget = config.preset.teaching.max_iterations * config.preset.teaching.batch_size;
    let mut records: HashMap<String, Vec<EvaluationRecord>> = HashMap::new();
    let (unmatched, matched): (Vec<&TeacherEntry>, Vec<&TeacherEntry>) = config
        .teachers
        .iter()
        .partition(|e| e.match_drop_ratio_of.is_none());
    // Resume: a config teacher whose evaluations on every seed are in the folder's log
    // under its identity is not evaluated again (a teacher's seeds share its random
    // streams in order, so a part of them cannot be resumed alone).
    let run_key = run_identity(config, &user_teachers)?;
    let resumable = out.take_resumable();
    let resuming = !resumable.is_empty();
    let mut identities: HashMap<String, String> = HashMap::new();
    let mut reused: Vec<String> = Vec::new();
    for entry in unmatched.iter().chain(&matched) {
        let schedule = matched_schedule(entry, &records)?;
        let identity = teacher_identity(
            &run_key,
            entry,
            checkpoints.get(&entry.label),
            schedule.as_deref(),
        )?;
        let Some(identity) = identity else {
            continue;
        };
        if let Some(found) = finished_records(&resumable, &identity, &entry.label, &seeds) {
            records.insert(entry.label.clone(), found);
            reused.push(entry.label.clone());
        }
        identities.insert(entry.label.clone(), identity);
    }
    if resuming {
        // The log keeps the training lines and the reused evaluations: the lines of a
        // teacher evaluated again go before it runs, so each evaluation is there once.
        out.rewrite_events(|events| {
            (events.into_iter())
                .filter(|event| match event {
                    Event::TrainingEpisode { .. } => true,
                    Event::Evaluation { record, identity } => {
                        reused.contains(&record.teacher)
                            && identity.is_some()
                            && identity.as_ref() == identities.get(&record.teacher)
                            && seeds.contains(&record.seed)
                    }
                })
                .collect()
        })?;
    }
    if !reused.is_empty() {
        progress(Progress::Resumed {
            reused: reused.len() * seeds.len(),
            total: table_labels.len() * seeds.len(),
            teachers: &reused,
        });
    }
    let evaluation = TrainingTask::of(
        &envs.student_env,
        config.preset.student.clone(),
        config.training.worker_count(),
    )
    .with_cancel(out.canceller());
    let mut user_jobs: Vec<(String, Box<dyn Teacher>)> =
        user.into_iter().map(|u| (u.label, u.teacher)).collect();
    // The order an uninterrupted run logs its evaluations in.
    let log_order: Vec<String> = (unmatched.iter().map(|e| e.label.clone()))
        .chain(user_jobs.iter().map(|(label, _)| label.clone()))
        .chain(matched.iter().map(|e| e.label.clone()))
        .collect();
    for phase in [unmatched, matched] {
        out.canceller().check()?;
        let mut jobs = Vec::with_capacity(phase.len() + user_jobs.len());
        for entry in phase.into_iter().filter(|e| !reused.contains(&e.label)) {
            let teacher: Box<dyn Teacher> = match teachers.remove(&entry.label) {
                Some(trained) => trained,
                None => match (&entry.match_drop_ratio_of, &entry.teacher) {
                    (Some(_), TeacherConfig::RandTeach(rand_config)) => {
                        let schedule = matched_schedule(entry, &records)?
                            .unwrap_or_else(|| per_epoch_drop_ratio(&[]));
                        if !identities.contains_key(&entry.label) {
                            if let Some(identity) =
                                teacher_identity(&run_key, entry, None, Some(&schedule))?
                            {
                                identities.insert(entry.label.clone(), identity);
                            }
                        }
                        let mut rand_config = rand_config.clone();
                        rand_config.per_epoch_drop_ratio = schedule;
                        Box::new(RandTeach::new(rand_config)?)
                    }
                    (_, TeacherConfig::RhoLoss(rho)) => {
                        let losses = irreducible_losses(rho, &config.preset, &envs, out)?;
                        Box::new(RhoLoss::new(rho.clone(), &layout, losses)?)
                    }
                    (_, TeacherConfig::Checkpoint { path }) => {
                        let file = CheckpointFile::read(path)?;
                        if let Some(note) = file.layout_note() {
                            eprintln!("note: {note}");
                        }
                        restore_teacher(file, Some(&layout))?
                    }
                    _ => entry.teacher.build(&layout)?,
                },
            };
            jobs.push((entry.label.clone(), teacher));
        }
        // The user's teachers run with the unmatched ones (a matched RandTeach may
        // replay one of them).
        jobs.append(&mut user_jobs);
        if jobs.is_empty() {
            continue;
        }
        let done = evaluate_side_by_side(
            &evaluation,
            jobs,
            &seeds,
            &envs.test,
            config.report.test_every,
            |finished| {
                match finished {
                    Finished::Started(label) => progress(Progress::Phase {
                        teacher: label,
                        training: false,
                        total: seeds.len(),
                        done: 0,
                    }),
                    Finished::Record(record) => {
                        out.event(&Event::Evaluation {
                            record: record.clone(),
                            identity: identities.get(&record.teacher).cloned(),
                        })?;
                        progress(Progress::Evaluated(record));
                    }
                }
                Ok(())
            },
        )?;
        records.extend(done);
    }
    if resuming {
        // Reused and new evaluations in the order of an uninterrupted run's log.
        let position = |label: &str| log_order.iter().position(|l| l == label);
        out.rewrite_events(|mut events| {
            events.sort_by_key(|event| match event {
                Event::TrainingEpisode { .. } => (0, None, 0),
                Event::Evaluation { record, .. } => (1, position(&record.teacher), record.seed),
            });
            events
        })?;
    }

    out.canceller().check()?;
    // 3. Aggregate in the config's order, then the user's, and write the folder.
    let levels = config.levels();
    let mut summaries = Vec::new();
    let mut level_rows = Vec::new();
    let mut evaluations = Vec::new();
    let mut spans = Vec::new();
    for label in &table_labels {
        let teacher_records = records.remove(label).unwrap_or_default();
        summaries.push(summarise(label, &teacher_records, budget));
        level_rows.extend(level_summaries(label, &teacher_records, &levels, budget));
        let start = evaluations.len();
        evaluations.extend(teacher_records);
        spans.push(start..evaluations.len());
    }
    if let Some(reference_span) = spans.get(reference) {
        let against = &evaluations[reference_span.clone()];
        for (i, (summary, span)) in summaries.iter_mut().zip(&spans).enumerate() {
            if i != reference {
                summary.vs_first = Some(versus(against, &evaluations[span.clone()], budget)?);
            }
        }
    }
    // Trained teachers against every untrained one but the reference row.
    let trained = |label: &str| config.teachers.iter().any(|e| e.train && e.label == label);
    let mut pairings = Vec::new();
    for (summary, span) in summaries.iter().zip(&spans) {
        if !trained(&summary.teacher) {
            continue;
        }
        for (i, (baseline, baseline_span)) in summaries.iter().zip(&spans).enumerate() {
            if i == reference || trained(&baseline.teacher) {
                continue;
            }
            pairings.push(Pairing {
                teacher: summary.teacher.clone(),
                reference: baseline.teacher.clone(),
                versus: versus(
                    &evaluations[baseline_span.clone()],
                    &evaluations[span.clone()],
                    budget,
                )?,
            });
        }
    }
    let mut report = Report {
        config: config.clone(),
        training,
        evaluations,
        summaries,
        levels: level_rows,
        pairings,
        reference: table_labels.get(reference).cloned().unwrap_or_default(),
        plot_warnings: Vec::new(),
        user_teachers,
        irreducible_feature_compute: one_off_compute,
    };
    if config.report.plots {
        report.plot_warnings = write_plots(out, &report)?;
    }
    write_results(out, &report)?;
    Ok(Some(report))
}

/// The identity of the evaluations of a config teacher in a run of `run_key` (the run's
/// identity, [`run_identity`]), as [`evaluation_identity`] hashes it: the teacher entry
/// (label and full config), and what else decides its evaluations: the checkpoint a
/// trained teacher is evaluated with (`trained`: its file and episodes, so a teacher
/// trained further is evaluated again), the bytes of a checkpoint file it is loaded
/// from, and the drop schedule a matched RandTeach replays (`schedule`). `None` when it
/// cannot be known: a matched RandTeach whose schedule is not known yet, or a checkpoint
/// file that cannot be read (its evaluations are never reused).
fn teacher_identity(
    run_key: &str,
    entry: &TeacherEntry,
    trained: Option<&String>,
    schedule: Option<&[f64]>,
) -> Result<Option<String>> {
    let mut teacher = format!("teacher `{}`: {}", entry.label, to_json(entry)?);
    if let Some(trained) = trained {
        teacher.push_str(&format!("\ntrained: {trained}"));
    }
    if let TeacherConfig::Checkpoint { path } = &entry.teacher {
        let Ok(bytes) = std::fs::read(path) else {
            return Ok(None);
        };
        teacher.push_str(&format!("\ncheckpoint file: {}", long_hash(&bytes)));
    }
    if let (Some(_), TeacherConfig::RandTeach(_)) = (&entry.match_drop_ratio_of, &entry.teacher) {
        let Some(schedule) = schedule else {
            return Ok(None);
        };
        teacher.push_str(&format!("\ndrop schedule: {}", to_json(&schedule)?));
    }
    Ok(Some(evaluation_identity(run_key, &teacher)))
}

/// `value` as compact JSON, for an identity.
fn to_json(value: &impl Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|e| ExperimentError::Json {
        path: "events.jsonl".into(),
        reason: e.to_string(),
    })
}

/// The identity of one teacher's evaluations in a run: a 64-bit hash (16 hex digits) of
/// the run's identity ([`run_identity`]: the resolved config, the settings that change no
/// number left out) and `teacher`, what identifies the teacher within the run. Logged
/// with each evaluation in `events.jsonl`; a rerun into the folder reuses a teacher's
/// evaluations when it finds all its seeds under the identity it computes itself.
pub fn evaluation_identity(run_key: &str, teacher: &str) -> String {
    long_hash(format!("{run_key}\n{teacher}").as_bytes())
}

/// The drop schedule a RandTeach matched to another teacher replays: from the earlier
/// run it names (`match_run`), else from its target's evaluations in `records`
/// (`None` while they are not in). `None` for a teacher that is not matched.
fn matched_schedule(
    entry: &TeacherEntry,
    records: &HashMap<String, Vec<EvaluationRecord>>,
) -> Result<Option<Vec<f64>>> {
    let (Some(target), TeacherConfig::RandTeach(_)) = (&entry.match_drop_ratio_of, &entry.teacher)
    else {
        return Ok(None);
    };
    Ok(match &entry.match_run {
        Some(run) => Some(per_epoch_drop_ratio_from_run(run, target)?),
        None => records.get(target).map(|r| per_epoch_drop_ratio(r)),
    })
}

/// The records of `label` under `identity` in `resumable` for every seed of `seeds`, in
/// seed order; `None` unless all are there.
fn finished_records(
    resumable: &[(String, EvaluationRecord)],
    identity: &str,
    label: &str,
    seeds: &[u64],
) -> Option<Vec<EvaluationRecord>> {
    seeds
        .iter()
        .map(|&seed| {
            (resumable.iter())
                .find(|(id, r)| id == identity && r.teacher == label && r.seed == seed)
                .map(|(_, record)| record.clone())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_changes_with_what_decides_the_evaluations() {
        let entry = TeacherEntry::new("rand", TeacherConfig::RandTeach(Default::default()));
        let id = |run: &str, entry: &TeacherEntry, trained: Option<&String>| {
            teacher_identity(run, entry, trained, None)
                .unwrap()
                .unwrap()
        };
        let base = id("run", &entry, None);
        assert_eq!(base, id("run", &entry, None));
        assert_eq!(base.len(), 16);
        assert_ne!(base, id("other run", &entry, None));
        let mut other_seed = entry.clone();
        other_seed.teacher = TeacherConfig::RandTeach(l2t_agents::RandTeachConfig {
            seed: 1,
            ..Default::default()
        });
        assert_ne!(base, id("run", &other_seed, None));
        let mut relabelled = entry.clone();
        relabelled.label = "rand2".into();
        assert_ne!(base, id("run", &relabelled, None));
        // A teacher trained further is another teacher.
        let (four, eight) = ("es-1.ckpt after 4 episodes", "es-1.ckpt after 8 episodes");
        assert_ne!(
            id("run", &entry, Some(&four.to_string())),
            id("run", &entry, Some(&eight.to_string()))
        );
        // A matched RandTeach: unknown until its schedule is, then the schedule counts.
        let mut matched = entry.clone();
        matched.match_drop_ratio_of = Some("online_batch".into());
        assert_eq!(teacher_identity("run", &matched, None, None).unwrap(), None);
        let with = |schedule: &[f64]| {
            teacher_identity("run", &matched, None, Some(schedule))
                .unwrap()
                .unwrap()
        };
        assert_eq!(with(&[0.5, 0.25]), with(&[0.5, 0.25]));
        assert_ne!(with(&[0.5, 0.25]), with(&[0.5, 0.26]));
        // A checkpoint teacher whose file cannot be read is never reused.
        let missing = TeacherEntry::new(
            "ckpt",
            TeacherConfig::Checkpoint {
                path: "/nonexistent/teacher.ckpt".into(),
            },
        );
        assert_eq!(teacher_identity("run", &missing, None, None).unwrap(), None);
    }
}
