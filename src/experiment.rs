//! The experiment layer: train teachers on the teacher half (with checkpoints and
//! resume), teach fresh students on the student half, compare teachers over seeds with
//! confidence intervals, transfer a teacher to another task, and write the run folder.
//!
//! Fairness: every teacher is evaluated with the same environment seeds, so for a
//! given seed all teachers see the same data order and the same student
//! initialisation; only their keep-masks differ.
//!
//! Determinism: teacher-training episode `k` is seeded `first_seed + k` (ES's pairs
//! share the seed of their first episode) and every teacher owns its streams; a
//! learner's episodes run on worker threads with streams of their own, and in
//! evaluation each teacher runs its seeds in order on one worker (teachers side by
//! side). So a resumed training run is bit-identical to an uninterrupted one, for any
//! number of workers, and the same run twice, with any number of workers, writes the
//! same result files apart from their timing fields.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use l2t_agents::{
    checkpoint_episodes, load_teacher, run_episode_recorded, train_parallel, EpisodeSummary,
    Learner, LossRankDrops, PooledEpisode, RandTeach, Recording, Teacher, TeacherConfig,
};
use rand::seq::SliceRandom;

use l2t_envs::seeding::{stream_rng, Stream};
use l2t_envs::student::StudentConfig;
use l2t_envs::{Dataset, EnvFactory, EnvPool, Reward, TeachingConfig, TeachingEnv};

use crate::config::{RunConfig, TeacherEntry};
use crate::run_dir::{short_hash, slug, JsonLines, Manifest, RunDir};
use crate::stats::{
    mean_ci95, paired_differences, probability_of_improvement, PairedDifference, StatsError,
};

/// Error of the experiment layer.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// A teacher or the environment failed.
    #[error(transparent)]
    Agent(#[from] l2t_agents::AgentError),
    /// The environment failed.
    #[error(transparent)]
    Env(#[from] l2t_envs::EnvError),
    /// A worker thread died (panicked) or stopped before its work was done.
    #[error("worker thread: {0}")]
    Worker(String),
    /// An experiment setting is invalid.
    #[error("invalid experiment setting `{field}`: {reason}")]
    InvalidSetting {
        /// The setting.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A run config could not be read.
    #[error("run config {source_name}: {reason}")]
    Config {
        /// The file (or "TOML text").
        source_name: String,
        /// What is wrong, with the field.
        reason: String,
    },
    /// A file of the run folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Two teachers' evaluation seeds could not be paired (a seed evaluated twice).
    #[error("comparing teachers seed by seed: {0}")]
    Stats(#[from] StatsError),
    /// A JSON, JSON-lines or CSV file could not be written or read back.
    #[error("{path}: {reason}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A teacher trained on one task cannot read another task's features.
    #[error(
        "cannot transfer: teachers trained on `{train_task}` read {trained} feature columns, \
         `{eval_task}` has {eval} (different number of classes, or sentence length on one side only)"
    )]
    TransferWidth {
        /// The task the teacher is trained on.
        train_task: String,
        /// The task it would teach.
        eval_task: String,
        /// Feature columns of the training task.
        trained: usize,
        /// Feature columns of the evaluation task.
        eval: usize,
    },
    /// A plot could not be drawn.
    #[error("plot {path}: {reason}")]
    Plot {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Result alias of the experiment layer.
pub type Result<T, E = ExperimentError> = std::result::Result<T, E>;

/// One finished teacher-training episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingEpisode {
    /// Episode index, from 0.
    pub episode: usize,
    /// Its environment seed.
    pub seed: u64,
    /// What happened.
    pub summary: EpisodeSummary,
}

/// Where [`train_resumable`] keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainingFiles {
    /// The teacher checkpoint, rewritten atomically every `checkpoint_every` episodes.
    pub checkpoint: PathBuf,
    /// Finished episodes, one JSON line each, flushed as they finish.
    pub history: PathBuf,
}

/// A trained teacher and its training episodes.
pub struct TrainedTeacher {
    /// The teacher, in evaluation mode.
    pub teacher: Box<dyn Teacher>,
    /// Every training episode, including those of earlier, interrupted runs.
    pub history: Vec<TrainingEpisode>,
    /// Episodes that were read back from a checkpoint instead of being run now.
    pub resumed_from: usize,
}

impl std::fmt::Debug for TrainedTeacher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainedTeacher")
            .field("teacher", &self.teacher.name())
            .field("episodes", &self.history.len())
            .field("resumed_from", &self.resumed_from)
            .finish()
    }
}

/// What teacher training runs on: the training task's teaching MDP, its student and
/// its teacher half, and how many worker threads roll out a [`Learner`]'s episodes.
/// Every env of a training run, sequential or on the pool, is built from it, so the
/// MDP a teacher is trained on is the one the run's config shows.
pub struct TrainingTask {
    /// The teaching MDP of training episodes (tau, T', budgets).
    pub teaching: TeachingConfig,
    /// The student.
    pub student: StudentConfig,
    /// The teacher half's training split.
    pub train: Dataset,
    /// The teacher half's dev split (D'_dev, which decides the reward).
    pub dev: Dataset,
    /// Where students live.
    pub device: tch::Device,
    /// Worker threads (each with its own env) for learners' episodes; at least 1.
    pub workers: usize,
}

impl std::fmt::Debug for TrainingTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainingTask")
            .field("teaching", &self.teaching)
            .field("student", &self.student)
            .field("workers", &self.workers)
            .finish()
    }
}

impl TrainingTask {
    /// The task of `env` (its MDP and splits, shared, not copied) with `student`.
    pub fn of(env: &TeachingEnv, student: StudentConfig, workers: usize) -> Self {
        Self {
            teaching: env.config().clone(),
            student,
            train: env.train_data().shallow_clone(),
            dev: env.dev_data().shallow_clone(),
            device: env.train_data().inputs().device(),
            workers,
        }
    }

    /// A fresh env of the task.
    pub fn env(&self) -> l2t_envs::Result<TeachingEnv> {
        TeachingEnv::new(
            self.teaching.clone(),
            self.student.build(self.device)?,
            self.train.shallow_clone(),
            self.dev.shallow_clone(),
        )
    }

    /// The same task on shared data (shallow copies of the splits), to hand to
    /// another thread: tensors are `Send` but not `Sync`.
    pub fn share(&self) -> Self {
        Self {
            teaching: self.teaching.clone(),
            student: self.student.clone(),
            train: self.train.shallow_clone(),
            dev: self.dev.shallow_clone(),
            device: self.device,
            workers: self.workers,
        }
    }

    /// `workers` envs of the task, one per worker thread (the data is shared). Each
    /// worker runs libtorch with the calling thread's intra-op thread count (OpenMP
    /// keeps that count per thread, and a new thread would otherwise use every core).
    pub fn pool(&self) -> Result<EnvPool<TeachingEnv>> {
        let threads = tch::get_num_threads();
        let factories = (0..self.workers.max(1))
            .map(|_| {
                let task = self.share();
                Box::new(move || {
                    tch::set_num_threads(threads);
                    task.env()
                }) as EnvFactory<TeachingEnv>
            })
            .collect();
        Ok(EnvPool::new(factories)?)
    }
}

/// `size` instances of `dev` drawn without replacement by a permutation from the
/// [`Stream::Data`] stream of `seed` (all of `dev` when it has no more).
pub fn dev_subsample(dev: &Dataset, size: usize, seed: u64) -> Result<Dataset> {
    if size >= dev.len() {
        return Ok(dev.shallow_clone());
    }
    let mut order: Vec<i64> = (0..dev.len() as i64).collect();
    order.shuffle(&mut stream_rng(seed, Stream::Data));
    order.truncate(size);
    order.sort_unstable();
    Ok(dev.subset(format!("{}-subsample-{size}", dev.name()), &order)?)
}

/// Trains the teacher of `config` for `episodes` episodes of `task`, episode `k`
/// seeded `first_seed + k` (a learner that shares seeds within an update, ES, derives
/// them from that), saving a checkpoint every `checkpoint_every` episodes and after the
/// last. The teacher must be a [`Learner`] (every learned teacher is); it is trained by
/// [`train_parallel`], its episodes rolled out on `task.workers` threads, whole updates
/// only (checkpoints after updates). When
/// `files.checkpoint` exists, training resumes from it: the episodes it holds are not
/// run again, so an interrupted run loses at most the episodes since its last
/// checkpoint, and the result is bit-identical to an uninterrupted run, for any number
/// of workers.
pub fn train_resumable(
    task: &TrainingTask,
    config: &TeacherConfig,
    episodes: usize,
    first_seed: u64,
    files: &TrainingFiles,
    checkpoint_every: usize,
    mut on_episode: impl FnMut(&TrainingEpisode),
) -> Result<TrainedTeacher> {
    if checkpoint_every == 0 {
        return Err(ExperimentError::InvalidSetting {
            field: "checkpoint_every",
            reason: "must be at least 1".into(),
        });
    }
    let feature_names = task.env()?.feature_names().to_vec();
    let (mut teacher, mut history) = if files.checkpoint.exists() {
        let done = checkpoint_episodes(&files.checkpoint)?;
        if done > episodes {
            return Err(ExperimentError::InvalidSetting {
                field: "episodes",
                reason: format!(
                    "{episodes} asked, but the checkpoint {} already holds {done}; \
                     use another output folder to train from scratch",
                    files.checkpoint.display()
                ),
            });
        }
        let teacher = load_teacher(&files.checkpoint, Some(feature_names.len()))?;
        let mut history: Vec<TrainingEpisode> = if files.history.exists() {
            JsonLines::read(&files.history)?
        } else {
            Vec::new()
        };
        // Episodes logged after the last checkpoint are run again.
        history.retain(|e| e.episode < done);
        if history.len() != done {
            return Err(ExperimentError::Json {
                path: files.history.clone(),
                reason: format!(
                    "holds {} of the {done} episodes of checkpoint {}",
                    history.len(),
                    files.checkpoint.display()
                ),
            });
        }
        let mut log = JsonLines::open(&files.history, true)?;
        for episode in &history {
            log.append(episode)?;
        }
        (teacher, history)
    } else {
        JsonLines::open(&files.history, true)?;
        (config.build(&feature_names)?, Vec::new())
    };
    let resumed_from = history.len();
    let mut log = JsonLines::open(&files.history, false)?;
    let name = teacher.name().to_string();
    let learner = teacher
        .as_learner()
        .ok_or_else(|| ExperimentError::InvalidSetting {
            field: "teachers.train",
            reason: format!("teacher `{name}` learns nothing, so it cannot be trained"),
        })?;
    let mut pool = task.pool()?;
    let mut saved = resumed_from;
    train_parallel(
        &mut pool,
        learner,
        episodes,
        first_seed,
        |learner: &dyn Learner, update: &[PooledEpisode]| -> Result<()> {
            for episode in update {
                let record = TrainingEpisode {
                    episode: history.len(),
                    seed: episode.seed,
                    summary: episode.summary.clone(),
                };
                log.append(&record)?;
                on_episode(&record);
                history.push(record);
            }
            let learned = learner.episodes_learned();
            if learned >= saved + checkpoint_every || learned >= episodes {
                learner.save_checkpoint(&files.checkpoint)?;
                saved = learned;
            }
            Ok(())
        },
    )?;
    Ok(TrainedTeacher {
        teacher,
        history,
        resumed_from,
    })
}

/// One evaluation episode: a fresh student taught from `reset(seed)` to the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationRecord {
    /// Teacher label.
    pub teacher: String,
    /// Environment seed (data order and student initialisation).
    pub seed: u64,
    /// Test accuracy of the student when the episode ended.
    pub test_accuracy: f64,
    /// The episode, with its learning curve.
    pub episode: EpisodeSummary,
}

/// Teaches one fresh student on `env` from `reset(seed)` with `teacher` (in evaluation
/// mode), measuring test accuracy at the end and every `test_every` dev evaluations.
pub fn evaluate_once(
    env: &mut TeachingEnv,
    teacher: &mut dyn Teacher,
    label: &str,
    seed: u64,
    test: &Dataset,
    test_every: usize,
) -> Result<EvaluationRecord> {
    let episode = run_episode_recorded(
        env,
        teacher,
        Some(seed),
        Recording {
            test: Some(test),
            test_every,
        },
    )?;
    let test_accuracy = match episode.curve.last().and_then(|p| p.test_accuracy) {
        Some(accuracy) => accuracy,
        None => env.evaluate(test)?,
    };
    Ok(EvaluationRecord {
        teacher: label.to_string(),
        seed,
        test_accuracy,
        episode,
    })
}

/// [`evaluate_once`] for every seed of `seeds`, labelled with the teacher's name.
pub fn evaluate_teacher(
    env: &mut TeachingEnv,
    teacher: &mut dyn Teacher,
    seeds: &[u64],
    test: &Dataset,
) -> Result<Vec<EvaluationRecord>> {
    let label = teacher.name().to_string();
    seeds
        .iter()
        .map(|&seed| evaluate_once(env, teacher, &label, seed, test, 0))
        .collect()
}

/// What [`evaluate_side_by_side`] reports, in a fixed order.
enum Finished<'a> {
    /// A teacher's first seed is in.
    Started(&'a str),
    /// One evaluation episode.
    Record(&'a EvaluationRecord),
}

/// Evaluates every `(label, teacher)` of `jobs` on all `seeds` ([`evaluate_once`]),
/// teachers side by side on up to `task.workers` threads, each with an env of `task`
/// of its own. A teacher's seeds run in order on one thread, exactly as one thread
/// running every teacher in turn would run them, so the records do not depend on the
/// number of workers. `report` sees the records in job order, then seed order, each as
/// soon as it and all before it are in: the run's events and progress read the same
/// for any number of workers. The first error (of a job, an env or `report`) stops
/// the workers before their next episode and is returned; a panicking worker is an
/// error too, never a hang.
fn evaluate_side_by_side(
    task: &TrainingTask,
    jobs: Vec<(String, Box<dyn Teacher>)>,
    seeds: &[u64],
    test: &Dataset,
    test_every: usize,
    mut report: impl FnMut(Finished<'_>) -> Result<()>,
) -> Result<Vec<(String, Vec<EvaluationRecord>)>> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Mutex};

    let labels: Vec<String> = jobs.iter().map(|(label, _)| label.clone()).collect();
    let workers = task.workers.clamp(1, jobs.len().max(1));
    let queue = Mutex::new(jobs.into_iter().enumerate().collect::<Vec<_>>());
    let stop = AtomicBool::new(false);
    let threads = tch::get_num_threads();
    let mut slots: Vec<Vec<Option<EvaluationRecord>>> = vec![vec![None; seeds.len()]; labels.len()];
    let mut first_error: Option<ExperimentError> = None;
    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::channel::<(usize, usize, Result<EvaluationRecord>)>();
        let mut handles = Vec::with_capacity(workers);
        for _ in 0..workers {
            // Tensors are Send, not Sync: every worker gets its own handles on the data.
            let (task, test) = (task.share(), test.shallow_clone());
            let (sender, queue, stop) = (sender.clone(), &queue, &stop);
            handles.push(scope.spawn(move || {
                tch::set_num_threads(threads);
                let mut env = match task.env() {
                    Ok(env) => env,
                    Err(e) => {
                        let _ = sender.send((usize::MAX, 0, Err(e.into())));
                        return;
                    }
                };
                loop {
                    // Jobs are taken from the front, in order.
                    let next = match queue.lock() {
                        Ok(mut jobs) if !jobs.is_empty() => jobs.remove(0),
                        _ => return,
                    };
                    let (j, (label, mut teacher)) = next;
                    for (s, &seed) in seeds.iter().enumerate() {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let record = evaluate_once(
                            &mut env,
                            teacher.as_mut(),
                            &label,
                            seed,
                            &test,
                            test_every,
                        );
                        if sender.send((j, s, record)).is_err() {
                            return;
                        }
                    }
                }
            }));
        }
        drop(sender);
        let (mut job, mut seed) = (0, 0);
        for (j, s, record) in receiver {
            match record {
                Ok(record) if j < slots.len() => slots[j][s] = Some(record),
                Ok(_) => {}
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    first_error.get_or_insert(e);
                    continue;
                }
            }
            // Report everything that is now complete in job, then seed order.
            while first_error.is_none() && job < slots.len() {
                let Some(record) = &slots[job][seed] else {
                    break;
                };
                let reported = (if seed == 0 {
                    report(Finished::Started(&labels[job]))
                } else {
                    Ok(())
                })
                .and_then(|()| report(Finished::Record(record)));
                if let Err(e) = reported {
                    stop.store(true, Ordering::Relaxed);
                    first_error = Some(e);
                    break;
                }
                seed += 1;
                if seed == seeds.len() {
                    (job, seed) = (job + 1, 0);
                }
            }
        }
        for handle in handles {
            if handle.join().is_err() && first_error.is_none() {
                first_error = Some(ExperimentError::Worker(
                    "an evaluation worker panicked".into(),
                ));
            }
        }
    });
    if let Some(e) = first_error {
        return Err(e);
    }
    labels
        .into_iter()
        .zip(slots)
        .map(|(label, records)| {
            let records: Option<Vec<EvaluationRecord>> = records.into_iter().collect();
            records.map(|r| (label.clone(), r)).ok_or_else(|| {
                ExperimentError::Worker(format!(
                    "the evaluation of `{label}` stopped before its last seed"
                ))
            })
        })
        .collect()
}

/// Aggregate of one teacher's evaluation records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherSummary {
    /// Teacher name.
    pub teacher: String,
    /// Seeds evaluated.
    pub runs: usize,
    /// Seeds whose student reached tau.
    pub reached: usize,
    /// Mean effective training instances to reach tau; a run that did not reach it
    /// counts at the budget T' * M (so the mean is a lower bound then).
    pub instances_to_tau_mean: f64,
    /// Half-width of the 95% confidence interval of that mean.
    pub instances_to_tau_ci95: f64,
    /// Mean test accuracy at the end of the episodes.
    pub test_accuracy_mean: f64,
    /// Half-width of its 95% confidence interval.
    pub test_accuracy_ci95: f64,
    /// Mean share of instances kept.
    pub kept_ratio_mean: f64,
    /// Mean wall-clock seconds per episode.
    pub wall_seconds_mean: f64,
    /// This teacher against the first row of the summary on the same seeds; `None` for
    /// the first row itself (and in reports written before the column existed).
    #[serde(default)]
    pub vs_first: Option<VersusFirst>,
}

/// One teacher against the reference (the first row of the summary), seed by seed.
/// Every teacher is evaluated on the same seeds (same data order, same initial
/// student), so pairing by seed removes the variance the teachers share and shows a
/// difference the per-teacher intervals hide.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VersusFirst {
    /// Effective instances to tau of this teacher minus the reference's, seed by seed,
    /// over the seeds where both reached tau (negative: this teacher needs fewer).
    pub instances_to_tau: PairedDifference,
    /// Probability of improvement: the chance that a run of this teacher needs fewer
    /// effective instances to tau than a run of the reference (ties count one half),
    /// over all runs, a run that missed tau counting at the budget T' * M (so it loses
    /// to every run that reached tau, and two misses tie).
    pub probability_of_improvement: f64,
}

/// Effective instances to tau of each record, the budget `budget_instances` standing in
/// for a run that never reached tau.
fn instances_or_budget(records: &[EvaluationRecord], budget_instances: usize) -> Vec<f64> {
    records
        .iter()
        .map(|r| {
            r.episode
                .effective_instances_to_tau
                .unwrap_or(budget_instances) as f64
        })
        .collect()
}

/// `(seed, effective instances to tau)` of the records that reached tau.
fn seeds_reached(records: &[EvaluationRecord]) -> Vec<(u64, f64)> {
    records
        .iter()
        .filter_map(|r| {
            r.episode
                .effective_instances_to_tau
                .map(|i| (r.seed, i as f64))
        })
        .collect()
}

/// Compares one teacher's `records` with the reference's (`first`) seed by seed: see
/// [`VersusFirst`]. `budget_instances` (T' * M) stands in for runs that missed tau in
/// the probability of improvement.
///
/// Errors: [`ExperimentError::Stats`] when a seed appears twice in one teacher's records.
pub fn versus_first(
    first: &[EvaluationRecord],
    records: &[EvaluationRecord],
    budget_instances: usize,
) -> Result<VersusFirst> {
    Ok(VersusFirst {
        instances_to_tau: paired_differences(&seeds_reached(records), &seeds_reached(first))?,
        probability_of_improvement: probability_of_improvement(
            &instances_or_budget(first, budget_instances),
            &instances_or_budget(records, budget_instances),
        ),
    })
}

/// Summarises `records` of one teacher; `budget_instances` (T' * M) stands in for runs
/// that never reached tau.
pub fn summarise(
    teacher: &str,
    records: &[EvaluationRecord],
    budget_instances: usize,
) -> TeacherSummary {
    let instances = instances_or_budget(records, budget_instances);
    let accuracies: Vec<f64> = records.iter().map(|r| r.test_accuracy).collect();
    let kept: Vec<f64> = records
        .iter()
        .map(|r| r.episode.instances_kept as f64 / r.episode.instances_seen.max(1) as f64)
        .collect();
    let wall: Vec<f64> = records.iter().map(|r| r.episode.wall_seconds).collect();
    let (instances_to_tau_mean, instances_to_tau_ci95) = mean_ci95(&instances);
    let (test_accuracy_mean, test_accuracy_ci95) = mean_ci95(&accuracies);
    TeacherSummary {
        teacher: teacher.to_string(),
        runs: records.len(),
        reached: records
            .iter()
            .filter(|r| r.episode.effective_instances_to_tau.is_some())
            .count(),
        instances_to_tau_mean,
        instances_to_tau_ci95,
        test_accuracy_mean,
        test_accuracy_ci95,
        kept_ratio_mean: mean_ci95(&kept).0,
        wall_seconds_mean: mean_ci95(&wall).0,
        vs_first: None,
    }
}

/// A markdown table of teacher summaries, the first row being the reference: mean
/// instances relative to it, and (from [`TeacherSummary::vs_first`]) the paired
/// per-seed difference to it with the number of seeds where both reached tau, and the
/// probability of needing fewer instances than it.
pub fn markdown_table(summaries: &[TeacherSummary]) -> String {
    let mut out = String::from(
        "| teacher | reached tau | effective instances to tau (mean ± 95% CI) | vs first row | paired difference to first row (mean ± 95% CI, seeds where both reached tau) | P(fewer instances than first row) | test accuracy at end | kept ratio | s / episode |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    let reference = summaries.first().map(|s| s.instances_to_tau_mean);
    for s in summaries {
        let relative = reference.filter(|r| *r > 0.0).map_or("-".to_string(), |r| {
            format!("{:.0}%", 100.0 * s.instances_to_tau_mean / r)
        });
        let (paired, improvement) = match &s.vs_first {
            None => ("-".to_string(), "-".to_string()),
            Some(v) => {
                let d = &v.instances_to_tau;
                let paired = match d.pairs {
                    0 => "no seed where both reached tau".to_string(),
                    1 => format!("{:+.0} (1 seed)", d.mean),
                    n => format!("{:+.0} ± {:.0} ({n} seeds)", d.mean, d.ci95),
                };
                (paired, format!("{:.2}", v.probability_of_improvement))
            }
        };
        out.push_str(&format!(
            "| {} | {}/{} | {:.0} ± {:.0} | {} | {} | {} | {:.4} ± {:.4} | {:.3} | {:.2} |\n",
            s.teacher,
            s.reached,
            s.runs,
            s.instances_to_tau_mean,
            s.instances_to_tau_ci95,
            relative,
            paired,
            improvement,
            s.test_accuracy_mean,
            s.test_accuracy_ci95,
            s.kept_ratio_mean,
            s.wall_seconds_mean
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    /// A record of `teacher` on `seed` that reached tau after `instances`, or not.
    fn record(teacher: &str, seed: u64, instances: Option<usize>) -> EvaluationRecord {
        EvaluationRecord {
            teacher: teacher.to_string(),
            seed,
            test_accuracy: 0.9,
            episode: EpisodeSummary {
                episode_return: 0.0,
                terminated: instances.is_some(),
                truncated: instances.is_none(),
                steps: 10,
                iterations: 10,
                iterations_to_tau: instances.map(|i| i / 10),
                effective_instances_to_tau: instances,
                instances_seen: 100,
                instances_kept: 100,
                best_dev_accuracy: 0.9,
                epoch_drop_ratios: Vec::new(),
                wall_seconds: 1.0,
                update: None,
                curve: Vec::new(),
                loss_rank_drops: Vec::new(),
            },
        }
    }

    #[test]
    fn paired_column_compares_seed_by_seed_with_the_first_row() {
        let budget = 1000;
        let first = [
            record("a", 1, Some(500)),
            record("a", 2, Some(600)),
            record("a", 3, Some(700)),
            record("a", 4, None),
        ];
        // In another order. `b` missed tau on seed 3 and `a` on seed 4, so only seeds 1
        // and 2 pair up: differences -100 and -200.
        let other = [
            record("b", 2, Some(400)),
            record("b", 1, Some(400)),
            record("b", 3, None),
            record("b", 4, Some(900)),
        ];
        let versus = versus_first(&first, &other, budget).unwrap();
        assert_eq!(versus.instances_to_tau.pairs, 2);
        assert_relative_eq!(versus.instances_to_tau.mean, -150.0);
        // Differences -200, -100: sample sd 70.71, so t(0.975, 1) * 70.71 / sqrt(2) = 635.3.
        assert_relative_eq!(versus.instances_to_tau.ci95, 635.31, epsilon = 0.01);
        // b's 400, 400, 1000 (budget), 900 against a's 500, 600, 700, 1000:
        // each 400 is below all 4 (8), 1000 ties one (0.5), 900 is below the budget (1):
        // 9.5 / 16.
        assert_relative_eq!(versus.probability_of_improvement, 9.5 / 16.0);

        let mut summaries = vec![
            summarise("a", &first, budget),
            summarise("b", &other, budget),
        ];
        summaries[1].vs_first = Some(versus);
        let table = markdown_table(&summaries);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        for line in &lines {
            assert_eq!(line.matches('|').count(), 10, "{line}");
        }
        assert!(
            lines[0].contains("| paired difference to first row"),
            "{}",
            lines[0]
        );
        assert!(lines[2].contains("| - | - |"), "{}", lines[2]);
        assert!(
            lines[3].contains("| -150 ± 635 (2 seeds) | 0.59 |"),
            "{}",
            lines[3]
        );

        let none = versus_first(&first, &[record("c", 9, Some(1))], budget).unwrap();
        assert_eq!(none.instances_to_tau.pairs, 0);
        summaries[1].vs_first = Some(none);
        assert!(markdown_table(&summaries).contains("| no seed where both reached tau |"));

        let twice = [record("d", 1, Some(1)), record("d", 1, Some(2))];
        assert!(matches!(
            versus_first(&first, &twice, budget),
            Err(ExperimentError::Stats(StatsError::DuplicateSeed(1)))
        ));
    }
}

/// Effective instances and wall-clock to reach one dev-accuracy level, over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelSummary {
    /// Teacher label.
    pub teacher: String,
    /// The dev-accuracy level (reached when exceeded, like tau).
    pub level: f64,
    /// Seeds evaluated.
    pub runs: usize,
    /// Seeds whose student exceeded the level.
    pub reached: usize,
    /// Mean effective instances to the level (budget T' * M for runs that missed it).
    pub instances_mean: f64,
    /// Half-width of its 95% confidence interval.
    pub instances_ci95: f64,
    /// Mean wall-clock seconds to the level (episode length for runs that missed it).
    pub seconds_mean: f64,
    /// Half-width of its 95% confidence interval.
    pub seconds_ci95: f64,
}

/// The first point of an episode's curve whose dev accuracy exceeds `level`.
fn first_above(episode: &EpisodeSummary, level: f64) -> Option<&l2t_agents::CurvePoint> {
    episode
        .curve
        .iter()
        .find(|p| p.iteration > 0 && p.dev_accuracy > level)
}

/// Per-level summaries of one teacher's `records`.
pub fn level_summaries(
    teacher: &str,
    records: &[EvaluationRecord],
    levels: &[f64],
    budget_instances: usize,
) -> Vec<LevelSummary> {
    levels
        .iter()
        .map(|&level| {
            let hits: Vec<Option<&l2t_agents::CurvePoint>> = records
                .iter()
                .map(|r| first_above(&r.episode, level))
                .collect();
            let instances: Vec<f64> = hits
                .iter()
                .map(|h| h.map_or(budget_instances, |p| p.effective_instances) as f64)
                .collect();
            let seconds: Vec<f64> = hits
                .iter()
                .zip(records)
                .map(|(h, r)| h.map_or(r.episode.wall_seconds, |p| p.seconds))
                .collect();
            let (instances_mean, instances_ci95) = mean_ci95(&instances);
            let (seconds_mean, seconds_ci95) = mean_ci95(&seconds);
            LevelSummary {
                teacher: teacher.to_string(),
                level,
                runs: records.len(),
                reached: hits.iter().filter(|h| h.is_some()).count(),
                instances_mean,
                instances_ci95,
                seconds_mean,
                seconds_ci95,
            }
        })
        .collect()
}

/// A markdown table of level summaries: one row per teacher and level.
pub fn levels_table(levels: &[LevelSummary]) -> String {
    let mut out = String::from(
        "| teacher | dev accuracy level | reached | effective instances (mean ± 95% CI) | wall-clock seconds (mean ± 95% CI) |\n|---|---|---|---|---|\n",
    );
    for l in levels {
        out.push_str(&format!(
            "| {} | {:.3} | {}/{} | {:.0} ± {:.0} | {:.2} ± {:.2} |\n",
            l.teacher,
            l.level,
            l.reached,
            l.runs,
            l.instances_mean,
            l.instances_ci95,
            l.seconds_mean,
            l.seconds_ci95
        ));
    }
    out
}

/// The per-epoch drop ratio of `records` (mean over seeds, epoch by epoch): the
/// schedule a matched RandTeach replays.
pub fn per_epoch_drop_ratio(records: &[EvaluationRecord]) -> Vec<f64> {
    let epochs = records
        .iter()
        .map(|r| r.episode.epoch_drop_ratios.len())
        .max()
        .unwrap_or(0);
    (0..epochs)
        .map(|e| {
            let ratios: Vec<f64> = records
                .iter()
                .filter_map(|r| r.episode.epoch_drop_ratios.get(e).copied())
                .collect();
            mean_ci95(&ratios).0
        })
        .collect()
}

/// The per-epoch drop ratio of the teacher labelled `label` in the evaluation events
/// of an earlier run: `run` is its folder or its `events.jsonl`.
pub fn per_epoch_drop_ratio_from_run(run: &Path, label: &str) -> Result<Vec<f64>> {
    let path = if run.is_dir() {
        run.join("events.jsonl")
    } else {
        run.to_path_buf()
    };
    let records: Vec<EvaluationRecord> = JsonLines::read::<Event>(&path)?
        .into_iter()
        .filter_map(|event| match event {
            Event::Evaluation(record) if record.teacher == label => Some(record),
            _ => None,
        })
        .collect();
    if records.is_empty() {
        return Err(ExperimentError::Json {
            path,
            reason: format!("no evaluation episode of a teacher labelled `{label}`"),
        });
    }
    Ok(per_epoch_drop_ratio(&records))
}

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
    Evaluation(EvaluationRecord),
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
    /// Plots that could not be drawn in full (e.g. a PNG without a font; the SVG is
    /// there), as messages.
    #[serde(default)]
    pub plot_warnings: Vec<String>,
}

impl Report {
    /// The comparison as a markdown table.
    pub fn table(&self) -> String {
        markdown_table(&self.summaries)
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
            "# {}\n\nTeachers compared on fresh students of the student half, {} seeds each; \
             effective training instances = student updates x M (M = {}); tau = {}.\n\n",
            preset.name,
            preset.eval_seeds,
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
        out.push_str(
            "The paired difference is a teacher's effective instances to tau minus the first \
             row's on the same seed, over the seeds where both reached tau. P(fewer instances) \
             is the probability of improvement over all seeds (ties count one half; a run that \
             missed tau counts at the budget T' x M).\n\n",
        );
        out.push_str(&self.table());
        out.push_str("\n## Effective instances and wall-clock to each dev-accuracy level\n\n");
        out.push_str(&levels_table(&self.levels));
        out
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
}

/// Environment seed of the first teacher-training episode (episode k: + k); far from
/// the evaluation seeds 0, 1, ... so no training episode repeats an evaluation one.
pub const FIRST_TRAINING_SEED: u64 = 1_000;

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

/// A teacher of your own in a comparison: any [`Teacher`], under a label of its own.
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
/// given, with the paired difference to the first row), the same lines in
/// `events.jsonl` and the CSVs, and its curves in the figures. A label used twice is
/// an error naming it.
pub fn run_with(
    config: &RunConfig,
    user: Vec<UserTeacher>,
    data_dir: &Path,
    out: &mut RunDir,
    mut progress: impl FnMut(Progress<'_>),
) -> Result<Report> {
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
    let device = config.device.device()?;
    let seeds: Vec<u64> = (0..config.preset.eval_seeds as u64).collect();
    out.write_json(
        "manifest.json",
        &Manifest::new(config, seeds.clone(), FIRST_TRAINING_SEED),
    )?;
    out.write("config.toml", config.to_toml()?.as_bytes())?;

    let envs = config.preset.build_on(data_dir, device)?;
    let eval_width = envs.student_env.feature_names().len();
    let needs_training = config.teachers.iter().any(|e| e.train);
    let transfer_env = match (&config.train_on, needs_training) {
        (Some(train_on), true) => Some(train_on.build_on(data_dir, device)?.teacher_env),
        _ => None,
    };
    let training_preset = config.training_preset();
    if needs_training {
        let train_env = transfer_env.as_ref().unwrap_or(&envs.teacher_env);
        let trained = train_env.feature_names().len();
        if trained != eval_width {
            return Err(ExperimentError::TransferWidth {
                train_task: training_preset.name.clone(),
                eval_task: config.preset.name.clone(),
                trained,
                eval: eval_width,
            });
        }
    }

    // 1. Train the learned teachers on the training task's teacher half.
    let mut teachers: HashMap<String, Box<dyn Teacher>> = HashMap::new();
    let mut training = Vec::new();
    if needs_training {
        let train_env = transfer_env.as_ref().unwrap_or(&envs.teacher_env);
        let mut task = TrainingTask::of(
            train_env,
            training_preset.student.clone(),
            config.training.worker_count(),
        );
        task.teaching = config.training_teaching();
        if let Some(size) = config.training.dev_subsample {
            task.dev = dev_subsample(&task.dev, size, config.training_preset().split_seed)?;
        }
        for entry in config.teachers.iter().filter(|e| e.train) {
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
            let trained = train_resumable(
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
            training.push(TrainingRun {
                teacher: entry.label.clone(),
                task: training_preset.name.clone(),
                episodes: trained.history,
            });
            teachers.insert(entry.label.clone(), trained.teacher);
        }
    }

    // 2. Teach fresh students of the student half, teachers side by side on the
    //    workers: unmatched teachers first, so that a matched RandTeach can replay its
    //    target's drop schedule.
    let feature_names = envs.student_env.feature_names().to_vec();
    let budget = config.preset.teaching.max_iterations * config.preset.teaching.batch_size;
    let mut records: HashMap<String, Vec<EvaluationRecord>> = HashMap::new();
    let (unmatched, matched): (Vec<&TeacherEntry>, Vec<&TeacherEntry>) = config
        .teachers
        .iter()
        .partition(|e| e.match_drop_ratio_of.is_none());
    let evaluation = TrainingTask::of(
        &envs.student_env,
        config.preset.student.clone(),
        config.training.worker_count(),
    );
    let user_labels: Vec<String> = user.iter().map(|u| u.label.clone()).collect();
    let mut user_jobs: Vec<(String, Box<dyn Teacher>)> =
        user.into_iter().map(|u| (u.label, u.teacher)).collect();
    for phase in [unmatched, matched] {
        let mut jobs = Vec::with_capacity(phase.len() + user_jobs.len());
        for entry in phase {
            let teacher: Box<dyn Teacher> = match teachers.remove(&entry.label) {
                Some(trained) => trained,
                None => match (&entry.match_drop_ratio_of, &entry.teacher) {
                    (Some(target), TeacherConfig::RandTeach(rand_config)) => {
                        let schedule = match &entry.match_run {
                            Some(run) => per_epoch_drop_ratio_from_run(run, target)?,
                            None => {
                                per_epoch_drop_ratio(records.get(target).map_or(&[][..], |r| r))
                            }
                        };
                        let mut rand_config = rand_config.clone();
                        rand_config.per_epoch_drop_ratio = schedule;
                        Box::new(RandTeach::new(rand_config)?)
                    }
                    _ => entry.teacher.build(&feature_names)?,
                },
            };
            jobs.push((entry.label.clone(), teacher));
        }
        // The user's teachers run with the unmatched ones (a matched RandTeach may
        // replay one of them).
        jobs.append(&mut user_jobs);
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
                        out.event(&Event::Evaluation(record.clone()))?;
                        progress(Progress::Evaluated(record));
                    }
                }
                Ok(())
            },
        )?;
        records.extend(done);
    }

    // 3. Aggregate in the config's order, then the user's, and write the folder.
    let levels = config.levels();
    let mut summaries = Vec::new();
    let mut level_rows = Vec::new();
    let mut evaluations = Vec::new();
    let mut spans = Vec::new();
    let table_order = config.teachers.iter().map(|e| &e.label).chain(&user_labels);
    for label in table_order {
        let teacher_records = records.remove(label).unwrap_or_default();
        summaries.push(summarise(label, &teacher_records, budget));
        level_rows.extend(level_summaries(label, &teacher_records, &levels, budget));
        let start = evaluations.len();
        evaluations.extend(teacher_records);
        spans.push(start..evaluations.len());
    }
    if let Some(first) = spans.first() {
        let first = &evaluations[first.clone()];
        for (summary, span) in summaries.iter_mut().zip(&spans).skip(1) {
            summary.vs_first = Some(versus_first(first, &evaluations[span.clone()], budget)?);
        }
    }
    let mut report = Report {
        config: config.clone(),
        training,
        evaluations,
        summaries,
        levels: level_rows,
        plot_warnings: Vec::new(),
    };
    if config.report.plots {
        report.plot_warnings = write_plots(out, &report)?;
    }
    write_results(out, &report)?;
    Ok(report)
}

/// The checkpoint and history files of `entry` trained under `config`: named after
/// the label and a hash of everything that decides the training except the episode
/// count and the number of workers (the training task and its training MDP, the
/// teacher), so that asking for more episodes resumes, and a changed config starts
/// afresh.
pub fn training_files(
    out: &RunDir,
    config: &RunConfig,
    entry: &TeacherEntry,
) -> Result<TrainingFiles> {
    let mut identity = config.training_preset().clone();
    identity.episodes = 0;
    identity.eval_seeds = 0;
    identity.teaching = config.training_teaching();
    let identity = (identity, &entry.teacher, config.training.dev_subsample);
    let text = serde_json::to_string(&identity).map_err(|e| ExperimentError::Json {
        path: out.root().to_path_buf(),
        reason: e.to_string(),
    })?;
    let stem = format!("{}-{}", slug(&entry.label), short_hash(&text));
    Ok(TrainingFiles {
        checkpoint: out.path(&format!("{stem}.ckpt")),
        history: out.path(&format!("{stem}-training.jsonl")),
    })
}

/// Writes `report.json`, `summary.md` and the CSV curves of `report` into `out`.
pub fn write_results(out: &RunDir, report: &Report) -> Result<()> {
    out.write_json("report.json", report)?;
    out.write("summary.md", report.summary_markdown().as_bytes())?;
    let option = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    let mut curves = Vec::new();
    let mut drops = Vec::new();
    for r in &report.evaluations {
        for p in &r.episode.curve {
            curves.push(vec![
                r.teacher.clone(),
                r.seed.to_string(),
                p.iteration.to_string(),
                p.effective_instances.to_string(),
                p.dev_accuracy.to_string(),
                option(p.test_accuracy),
                format!("{:.3}", p.seconds),
            ]);
        }
        for w in &r.episode.loss_rank_drops {
            for (bucket, share) in w.dropped_shares().iter().enumerate() {
                drops.push(vec![
                    r.teacher.clone(),
                    r.seed.to_string(),
                    w.iteration.to_string(),
                    (bucket + 1).to_string(),
                    w.seen[bucket].to_string(),
                    w.dropped[bucket].to_string(),
                    share.to_string(),
                ]);
            }
        }
    }
    out.write_csv(
        "curves.csv",
        &[
            "teacher",
            "seed",
            "iteration",
            "effective_instances",
            "dev_accuracy",
            "test_accuracy",
            "seconds",
        ],
        &curves,
    )?;
    out.write_csv(
        "loss_rank_drops.csv",
        &[
            "teacher",
            "seed",
            "iteration",
            "loss_rank_bucket",
            "seen",
            "dropped",
            "dropped_share",
        ],
        &drops,
    )?;
    let training: Vec<Vec<String>> = report
        .training
        .iter()
        .flat_map(|run| {
            run.episodes.iter().map(move |e| {
                let s = &e.summary;
                vec![
                    run.teacher.clone(),
                    e.episode.to_string(),
                    e.seed.to_string(),
                    s.episode_return.to_string(),
                    s.effective_instances_to_tau
                        .map_or(String::new(), |i| i.to_string()),
                    (s.instances_kept as f64 / s.instances_seen.max(1) as f64).to_string(),
                    s.best_dev_accuracy.to_string(),
                    format!("{:.3}", s.wall_seconds),
                ]
            })
        })
        .collect();
    out.write_csv(
        "training.csv",
        &[
            "teacher",
            "episode",
            "seed",
            "return",
            "effective_instances_to_tau",
            "kept_ratio",
            "best_dev_accuracy",
            "seconds",
        ],
        &training,
    )?;
    let per_update: Vec<Vec<String>> = report
        .training
        .iter()
        .flat_map(|run| {
            training_drops(run)
                .into_iter()
                .flat_map(move |(episode, counts)| {
                    let by = [
                        ("loss_rank", counts.dropped_shares()),
                        ("margin", counts.margin_dropped_shares()),
                    ];
                    by.into_iter().flat_map(move |(kind, shares)| {
                        shares.into_iter().enumerate().map(move |(bucket, share)| {
                            vec![
                                run.teacher.clone(),
                                episode.to_string(),
                                kind.to_string(),
                                (bucket + 1).to_string(),
                                share.to_string(),
                            ]
                        })
                    })
                })
        })
        .collect();
    out.write_csv(
        "training_drops.csv",
        &[
            "teacher",
            "episodes",
            "bucket_by",
            "bucket",
            "dropped_share",
        ],
        &per_update,
    )?;
    Ok(())
}

/// Points on the x grid of the convergence plot.
const CONVERGENCE_GRID_POINTS: usize = 80;

/// Draws the run's figures into `out` (SVG and PNG each): `convergence` (dev accuracy
/// against effective training instances per teacher, mean and 95% band over seeds;
/// the paper's convergence figure), `filtered_data` (share of each loss-rank bucket
/// dropped over training, per teacher that drops anything; the paper's analysis
/// figure) and `teacher_training` (episode returns of the learned teachers). A missing
/// PNG font is not an error: the SVGs are written and the message is returned.
pub fn write_plots(out: &RunDir, report: &Report) -> Result<Vec<String>> {
    use crate::plots::{
        band_from_seeds, linear_grid, moving_average, plot_convergence, plot_filtered_data,
        plot_teacher_training, ChartLabels, CurveSeries, DropPoint, DroppedShares, PlotError,
        TeacherCurve,
    };
    let mut warnings = Vec::new();
    let mut keep_going = |result: std::result::Result<crate::plots::PlotFiles, PlotError>,
                          stem: &str|
     -> Result<()> {
        match result {
            Ok(_) => Ok(()),
            Err(error @ PlotError::FontNotFound { .. }) => {
                warnings.push(error.to_string());
                Ok(())
            }
            Err(error) => Err(ExperimentError::Plot {
                path: out.path(stem),
                reason: error.to_string(),
            }),
        }
    };
    let preset = &report.config.preset;
    let labels: Vec<&str> = report
        .summaries
        .iter()
        .map(|summary| summary.teacher.as_str())
        .collect();

    // Convergence: per-seed step curves on a common grid.
    let max_x = report
        .evaluations
        .iter()
        .flat_map(|r| r.episode.curve.iter().map(|p| p.effective_instances))
        .max()
        .unwrap_or(0) as f64;
    if max_x > 0.0 {
        let grid = linear_grid(0.0, max_x, CONVERGENCE_GRID_POINTS);
        let mut series = Vec::new();
        for label in &labels {
            let seeds: Vec<Vec<(f64, f64)>> = report
                .records_of(label)
                .iter()
                .map(|r| {
                    r.episode
                        .curve
                        .iter()
                        .map(|p| (p.effective_instances as f64, p.dev_accuracy))
                        .collect()
                })
                .collect();
            if seeds.iter().any(|s| !s.is_empty()) {
                let mut band =
                    band_from_seeds(*label, &seeds, &grid).map_err(|e| ExperimentError::Plot {
                        path: out.path("convergence"),
                        reason: e.to_string(),
                    })?;
                // Accuracies live in [0, 1]; so does the band drawn around them.
                for point in &mut band.points {
                    point.lower = point.lower.max(0.0);
                    point.upper = point.upper.min(1.0);
                }
                series.push(band);
            }
        }
        let tau = preset
            .teaching
            .thresholds
            .iter()
            .map(|t| t.accuracy)
            .reduce(f64::max);
        let chart = ChartLabels::new(
            &format!(
                "{}: dev accuracy of fresh students (mean, 95% CI over {} seeds)",
                preset.name, preset.eval_seeds
            ),
            "effective training instances (updates x M)",
            "dev accuracy",
        );
        keep_going(
            plot_convergence(out.path("convergence"), &series, &chart, tau),
            "convergence",
        )?;
    }

    // Filtered data: windows of steps, pooled over seeds.
    let m = preset.teaching.batch_size as f64;
    let mut dropped = Vec::new();
    for label in &labels {
        let records = report.records_of(label);
        let windows = records
            .iter()
            .map(|r| r.episode.loss_rank_drops.len())
            .max()
            .unwrap_or(0);
        let mut points = Vec::with_capacity(windows);
        let mut drops_anything = false;
        for k in 0..windows {
            let in_window: Vec<&LossRankDrops> = records
                .iter()
                .filter_map(|r| r.episode.loss_rank_drops.get(k))
                .collect();
            let mut pooled = LossRankDrops::empty(0);
            for window in &in_window {
                pooled.absorb(window);
            }
            drops_anything |= pooled.dropped.iter().any(|&d| d > 0);
            let x = in_window.iter().map(|w| w.iteration as f64).sum::<f64>()
                / in_window.len().max(1) as f64
                * m;
            points.push(DropPoint {
                x,
                shares: pooled.dropped_shares(),
            });
        }
        if drops_anything {
            dropped.push(DroppedShares {
                label: label.to_string(),
                points,
            });
        }
    }
    if !dropped.is_empty() {
        let chart = ChartLabels::new(
            &format!(
                "{}: share of each loss-rank bucket dropped (1 = lowest loss)",
                preset.name
            ),
            "effective training instances (updates x M)",
            "share dropped",
        );
        keep_going(
            plot_filtered_data(out.path("filtered_data"), &dropped, &chart),
            "filtered_data",
        )?;
    }

    // Teacher training: episode returns and their moving average.
    let curves: Vec<TeacherCurve> = report
        .training
        .iter()
        .filter(|run| !run.episodes.is_empty())
        .map(|run| {
            let values: Vec<(f64, f64)> = run
                .episodes
                .iter()
                .map(|e| ((e.episode + 1) as f64, e.summary.episode_return))
                .collect();
            TeacherCurve {
                label: run.teacher.clone(),
                secondary: Some(CurveSeries {
                    label: "moving average (5)".into(),
                    points: moving_average(&values, 5),
                }),
                values,
            }
        })
        .collect();
    if !curves.is_empty() {
        let reward = match report.config.training_teaching().reward {
            Reward::IterationsToTau => "reward -ln(i_tau / T')".to_string(),
            Reward::DevAccuracyArea { iterations } => {
                format!("reward: area under the dev curve over {iterations} updates")
            }
            Reward::DevLossDecrease { iterations } => {
                format!("reward: dev-loss drop over {iterations} updates")
            }
        };
        let chart = ChartLabels::new(
            &format!(
                "{}: teacher training on {} ({reward} per episode)",
                preset.name,
                report.config.training_preset().name
            ),
            "episode",
            "episode return",
        );
        keep_going(
            plot_teacher_training(out.path("teacher_training"), &curves, &chart),
            "teacher_training",
        )?;
        // What the policy learned, update by update: the share of each loss-rank
        // bucket its training episodes dropped.
        let per_update: Vec<DroppedShares> = report
            .training
            .iter()
            .map(|run| DroppedShares {
                label: run.teacher.clone(),
                points: training_drops(run)
                    .into_iter()
                    .map(|(episode, counts)| DropPoint {
                        x: episode as f64,
                        shares: counts.dropped_shares(),
                    })
                    .collect(),
            })
            .filter(|run| !run.points.is_empty())
            .collect();
        if !per_update.is_empty() {
            let chart = ChartLabels::new(
                &format!(
                    "{}: share of each loss-rank bucket dropped per teacher update (1 = lowest loss)",
                    preset.name
                ),
                "training episodes",
                "share dropped",
            );
            keep_going(
                plot_filtered_data(out.path("training_drops"), &per_update, &chart),
                "training_drops",
            )?;
        }
    }
    Ok(warnings)
}

/// What the training episodes of each update of `run` dropped, pooled over the
/// update's episodes (an update closes with the episode whose summary carries it):
/// `(episodes so far, counts)` per update, with the counts per loss-rank bucket and per
/// margin bucket ([`LossRankDrops::dropped_shares`],
/// [`LossRankDrops::margin_dropped_shares`]). For a Bernoulli policy the shares estimate
/// its mean drop probability per bucket at that update.
pub fn training_drops(run: &TrainingRun) -> Vec<(usize, LossRankDrops)> {
    let mut points = Vec::new();
    let mut update = LossRankDrops::empty(0);
    for episode in &run.episodes {
        for window in &episode.summary.loss_rank_drops {
            update.absorb(window);
        }
        if episode.summary.update.is_some() && update.seen.iter().any(|&n| n > 0) {
            let done = std::mem::replace(&mut update, LossRankDrops::empty(0));
            points.push((episode.episode + 1, done));
        }
    }
    points
}
