//! Teacher training: the training task, its envs and worker pool, and resumable training
//! of a learned teacher on the crate's one rollout-and-learn loop, with checkpoints.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use l2t_agents::{
    checkpoint_episodes, restore_learner, train_on, AgentError, CheckpointFile, EpisodeSummary,
    EsConfig, Learner, PooledEpisode, Rollouts, Teacher, TeacherConfig,
};
use rand::seq::SliceRandom;

use l2t_envs::seeding::{stream_rng, Stream};
use l2t_envs::student::StudentConfig;
use l2t_envs::{Dataset, EnvFactory, EnvPool, TeachingConfig, TeachingEnv};

use crate::config::{RunConfig, TeacherEntry};
use crate::presets::shipped_checkpoints_dir;
use crate::run_dir::{long_hash, short_hash, slug, JsonLines, RunDir};

use super::*;

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
    /// The run's cancellation: training stops after the update in flight (its
    /// checkpoint saved), evaluation before its next episode or step.
    pub cancel: Cancel,
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
            cancel: Cancel::default(),
        }
    }

    /// The task stopped by `cancel` ([`TrainingTask::cancel`]).
    pub fn with_cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = cancel;
        self
    }

    /// The task with a run config's training settings: the training MDP
    /// ([`RunConfig::training_teaching`]: its tau, its training reward, e.g. the area
    /// under the dev-accuracy curve of the reproduction, and its evaluation interval)
    /// and its dev subsample. What [`run_with`](super::run_with) trains on; a task made
    /// with [`TrainingTask::of`] alone trains with the env's own MDP, the paper's
    /// evaluation reward.
    pub fn with_run_settings(mut self, config: &RunConfig) -> Result<Self> {
        self.teaching = config.training_teaching();
        if let Some(size) = config.training.dev_subsample {
            self.dev = dev_subsample(&self.dev, size, config.training_preset().split_seed)?;
        }
        Ok(self)
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
            cancel: self.cancel.clone(),
        }
    }

    /// `n` factories of envs of the task (the data is shared), for worker threads: each
    /// sets libtorch on its thread to the calling thread's intra-op thread count (OpenMP
    /// keeps that count per thread, and a new thread would otherwise use every core).
    pub fn env_factories(&self, n: usize) -> Vec<EnvFactory<TeachingEnv>> {
        let threads = tch::get_num_threads();
        (0..n)
            .map(|_| {
                let task = self.share();
                Box::new(move || {
                    tch::set_num_threads(threads);
                    task.env()
                }) as EnvFactory<TeachingEnv>
            })
            .collect()
    }

    /// `workers` envs of the task, one per worker thread ([`Self::env_factories`]).
    pub fn pool(&self) -> Result<EnvPool<TeachingEnv>> {
        Ok(EnvPool::new(self.env_factories(self.workers.max(1)))?)
    }
}

/// `size` instances of `dev` drawn without replacement by a permutation from the
/// [`Stream::Data`] stream of `seed` (all of `dev` when it has exactly `size`; more
/// than it has is an error naming `training.dev_subsample`).
pub fn dev_subsample(dev: &Dataset, size: usize, seed: u64) -> Result<Dataset> {
    if size > dev.len() {
        return Err(ExperimentError::InvalidSetting {
            field: "training.dev_subsample",
            reason: format!(
                "{size} is larger than the dev split `{}` ({} instances)",
                dev.name(),
                dev.len()
            ),
        });
    }
    if size == dev.len() {
        return Ok(dev.shallow_clone());
    }
    let mut order: Vec<i64> = (0..dev.len() as i64).collect();
    order.shuffle(&mut stream_rng(seed, Stream::Data));
    order.truncate(size);
    order.sort_unstable();
    Ok(dev.subset(format!("{}-subsample-{size}", dev.name()), &order)?)
}

/// Where a run's learned teachers roll out their episodes, and which process of a
/// distributed run does what. [`Local`] is one process: its own worker pool, every
/// phase, every file. The MPI executor of `l2t::distributed` (feature `mpi`) spreads
/// each update's episodes over the ranks; only rank 0 evaluates and keeps the run
/// folder.
pub trait Distribution {
    /// The executor of a training run's updates, around this process's `pool`.
    fn rollouts<'a>(&'a mut self, pool: &'a mut EnvPool<TeachingEnv>) -> Box<dyn Rollouts + 'a>;
    /// Called before a teacher's training starts: makes `files` (checkpoint and
    /// history) what every process resumes from (a distributed run copies rank 0's).
    fn share_files(&mut self, _files: &TrainingFiles) -> Result<()> {
        Ok(())
    }
    /// Whether this process evaluates the teachers and writes the results after
    /// training (rank 0 of a distributed run; other ranks stop after training).
    fn evaluates(&self) -> bool {
        true
    }
}

/// One process: episodes on its own worker pool.
#[derive(Debug, Clone, Copy, Default)]
pub struct Local;

impl Distribution for Local {
    fn rollouts<'a>(&'a mut self, pool: &'a mut EnvPool<TeachingEnv>) -> Box<dyn Rollouts + 'a> {
        Box::new(pool)
    }
}

/// Trains the teacher of `config` for `episodes` episodes of `task`, episode `k`
/// seeded `first_seed + k` (a learner that shares seeds within an update, ES, derives
/// them from that), saving a checkpoint every `checkpoint_every` episodes and after the
/// last. The teacher must be a [`Learner`] (every learned teacher is); it is trained by
/// [`train_parallel`](l2t_agents::train_parallel), its episodes rolled out on `task.workers` threads, whole updates
/// only (checkpoints after updates). When
/// `files.checkpoint` exists, training resumes from it: the episodes it holds are not
/// run again, so an interrupted run loses at most the episodes since its last
/// checkpoint, and the result is bit-identical to an uninterrupted run, for any number
/// of workers.
///
/// The task's MDP is used as it is. A task made with [`TrainingTask::of`] from a
/// preset's env trains with that env's reward, the paper's -ln(i_tau / T'): the
/// reproduction trains with a smoother reward instead (on Fashion-MNIST, ES learned
/// nothing in 40 episodes of the paper's). To train as `l2t run` does, make the task
/// with [`TrainingTask::with_run_settings`] from the run config.
pub fn train_resumable(
    task: &TrainingTask,
    config: &TeacherConfig,
    episodes: usize,
    first_seed: u64,
    files: &TrainingFiles,
    checkpoint_every: usize,
    on_episode: impl FnMut(&TrainingEpisode),
) -> Result<TrainedTeacher> {
    train_resumable_on(
        &mut Local,
        task,
        config,
        episodes,
        first_seed,
        files,
        checkpoint_every,
        on_episode,
    )
}

/// [`train_resumable`] with the episodes rolled out by `distribution` (its
/// [`Distribution::share_files`] is called first, so every process resumes from the
/// same checkpoint).
#[allow(clippy::too_many_arguments)]
pub fn train_resumable_on(
    distribution: &mut dyn Distribution,
    task: &TrainingTask,
    config: &TeacherConfig,
    episodes: usize,
    first_seed: u64,
    files: &TrainingFiles,
    checkpoint_every: usize,
    mut on_episode: impl FnMut(&TrainingEpisode),
) -> Result<TrainedTeacher> {
    distribution.share_files(files)?;
    if checkpoint_every == 0 {
        return Err(ExperimentError::InvalidSetting {
            field: "checkpoint_every",
            reason: "must be at least 1".into(),
        });
    }
    let layout = task.env()?.layout().clone();
    let (mut learner, mut history) = if files.checkpoint.exists() {
        // Read and checked once: its episode count, then the learner.
        let file = CheckpointFile::read(&files.checkpoint)?;
        let done = file.episodes()?;
        let learner = restore_learner(file, Some(&layout))?;
        let mut history: Vec<TrainingEpisode> = if files.history.exists() {
            JsonLines::read(&files.history)?
        } else {
            Vec::new()
        };
        check_history(&history, done, files)?;
        // Episodes logged after the last checkpoint are run again.
        history.truncate(done);
        if holds_more_than_asked(&history, episodes) {
            return Err(ExperimentError::InvalidSetting {
                field: "episodes",
                reason: format!(
                    "{episodes} asked, but the checkpoint {} already holds {done}; \
                     use another output folder to train from scratch",
                    files.checkpoint.display()
                ),
            });
        }
        let mut log = JsonLines::open(&files.history, true)?;
        for episode in &history {
            log.append(episode)?;
        }
        (learner, history)
    } else {
        let learner = match config.build_learner(&layout) {
            Err(AgentError::NotALearner { teacher }) => {
                return Err(ExperimentError::InvalidSetting {
                    field: "teachers.train",
                    reason: format!("teacher `{teacher}` learns nothing, so it cannot be trained"),
                })
            }
            learner => learner?,
        };
        JsonLines::open(&files.history, true)?;
        (learner, Vec::new())
    };
    let resumed_from = history.len();
    let mut log = JsonLines::open(&files.history, false)?;
    let mut pool = task.pool()?;
    let mut saved = resumed_from;
    let mut rollouts = distribution.rollouts(&mut pool);
    train_on(
        &mut *rollouts,
        &mut *learner,
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
            let cancelled = task.cancel.is_cancelled();
            if learned >= saved + checkpoint_every || learned >= episodes || cancelled {
                learner.save_checkpoint(&files.checkpoint)?;
                saved = learned;
            }
            // Stopped after the update, with everything it learned saved.
            task.cancel.check()
        },
    )?;
    Ok(TrainedTeacher {
        teacher: learner,
        history,
        resumed_from,
    })
}

/// Checks that `history` (the training history's lines, in file order) starts with
/// episodes `0..done`, one line each, the episodes of the checkpoint; lines after those
/// (episodes since the last checkpoint) are allowed and run again. Anything else (a
/// history two processes appended to, a missing or repeated episode) is refused with
/// the way out: keeping the first `done` lines when they are the checkpoint's episodes,
/// or training afresh.
fn check_history(history: &[TrainingEpisode], done: usize, files: &TrainingFiles) -> Result<()> {
    let in_order =
        history.len() >= done && history[..done].iter().zip(0..).all(|(e, k)| e.episode == k);
    let after_in_order = history
        .iter()
        .skip(done)
        .zip(done..)
        .all(|(e, k)| e.episode == k);
    if in_order && after_in_order {
        return Ok(());
    }
    let mut seen = std::collections::BTreeMap::<usize, usize>::new();
    for e in history {
        *seen.entry(e.episode).or_default() += 1;
    }
    let repeated: Vec<String> = seen
        .iter()
        .filter(|(_, &n)| n > 1)
        .take(5)
        .map(|(k, _)| k.to_string())
        .collect();
    let missing = (0..done).filter(|k| !seen.contains_key(k)).count();
    let mut what = format!(
        "holds {} lines for the {done} episodes of checkpoint {}",
        history.len(),
        files.checkpoint.display()
    );
    if !repeated.is_empty() {
        what.push_str(&format!(
            "; episodes repeated (first: {}), as when two runs wrote the same folder",
            repeated.join(", ")
        ));
    }
    if missing > 0 {
        what.push_str(&format!("; {missing} of the checkpoint's episodes missing"));
    }
    let fix = if in_order {
        format!(
            "its first {done} lines are episodes 0..{done}, the checkpoint's: keep them \
             (`head -n {done} {0} > {0}.kept && mv {0}.kept {0}`) and rerun, or rerun with \
             --fresh to train every teacher of the folder from scratch",
            files.history.display()
        )
    } else {
        "rerun with --fresh to train every teacher of the folder from scratch (its \
         checkpoints and training histories are removed), or give the run another --out"
            .to_string()
    };
    Err(ExperimentError::Json {
        path: files.history.clone(),
        reason: format!("{what}. To recover: {fix}"),
    })
}

/// Environment seed of the first teacher-training episode (episode k: + k); far from
/// the evaluation seeds 0, 1, ... so no training episode repeats an evaluation one.
pub const FIRST_TRAINING_SEED: u64 = 1_000;

/// Whether a training `history` (one line per episode of its checkpoint) holds more than
/// the `episodes` asked for. Training stops after whole updates, so a run asked for
/// `episodes` may hold a few more: those of its last update, which began below
/// `episodes`; that is not more.
fn holds_more_than_asked(history: &[TrainingEpisode], episodes: usize) -> bool {
    let done = history.len();
    done > episodes && done - last_update_len(history) >= episodes
}

/// The episodes of the last update in a training `history` (the last episode of each
/// update carries its [`EpisodeSummary::update`]): all of them after one update, none
/// where the history marks no update (then nothing past `episodes` is accepted).
fn last_update_len(history: &[TrainingEpisode]) -> usize {
    let ends: Vec<usize> = (history.iter().enumerate())
        .filter(|(_, e)| e.summary.update.is_some())
        .map(|(i, _)| i)
        .collect();
    match ends.as_slice() {
        [] => 0,
        [_] => history.len(),
        [.., before, _] => history.len() - (before + 1),
    }
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
    identity.first_eval_seed = 0;
    identity.teaching = config.training_teaching_of(entry);
    let identity = (identity, &entry.teacher, config.training.dev_subsample);
    let mut text = serde_json::to_string(&identity).map_err(|e| ExperimentError::Json {
        path: out.root().to_path_buf(),
        reason: e.to_string(),
    })?;
    // An ES that starts from another checkpoint's score: that file's bytes, not only
    // its path, decide the training (an unreadable file fails when the teacher is made).
    if let TeacherConfig::Es(EsConfig {
        score_from: Some(path),
        ..
    }) = &entry.teacher
    {
        let bytes = std::fs::read(path).unwrap_or_default();
        text.push_str(&format!("\nscore_from file: {}", long_hash(&bytes)));
    }
    let stem = format!("{}-{}", slug(&entry.label), short_hash(&text));
    Ok(TrainingFiles {
        checkpoint: out.path(&format!("{stem}.ckpt")),
        history: out.path(&format!("{stem}-training.jsonl")),
    })
}

/// A trained teacher copied into a run folder by [`reuse_trained`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reused {
    /// The teacher's row label.
    pub label: String,
    /// Where its checkpoint came from.
    pub from: PathBuf,
}

/// `reusing <label> trained before: <file>`, the line the `l2t` command and Python's
/// `verbose=True` print for each copy (each adds how to train it instead).
impl std::fmt::Display for Reused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "reusing {} trained before: {}",
            self.label,
            self.from.display()
        )
    }
}

/// Copies into `out` the checkpoint and training history of each trained teacher of
/// `config` that `out` does not hold and the folder `from` does, under the same
/// names: the same training identity ([`training_files`] hashes everything that
/// decides the training but the episode count), so the copy is what training it in
/// `out` would have written, and training then resumes from it (nothing to do when it
/// holds the episodes asked for).
///
/// This is how a run reuses teachers trained elsewhere: `l2t benchmark` those of
/// `l2t reproduce`'s folders, and every run the checkpoints shipped in the
/// repository's `python/l2t/checkpoints/<training task>/`, which keep the main job within its
/// time budget. Not copied: a file of `from` whose name no teacher of `config` has
/// (another config trained it), a checkpoint without its history, and one holding more
/// episodes than the entry asks for (`--episodes 40` trains 40 here). Returns the
/// teachers copied.
pub fn reuse_trained(config: &RunConfig, out: &RunDir, from: &Path) -> Result<Vec<Reused>> {
    let mut reused = Vec::new();
    for entry in config.teachers.iter().filter(|e| e.train) {
        let files = training_files(out, config, entry)?;
        if files.checkpoint.exists() {
            continue;
        }
        let name = |file: &Path| file.file_name().and_then(|n| n.to_str()).map(str::to_owned);
        let (Some(checkpoint_name), Some(history_name)) =
            (name(&files.checkpoint), name(&files.history))
        else {
            continue;
        };
        let (checkpoint, history) = (from.join(&checkpoint_name), from.join(&history_name));
        if !(checkpoint.is_file() && history.is_file()) {
            continue;
        }
        let mut lines: Vec<TrainingEpisode> = JsonLines::read(&history)?;
        lines.truncate(checkpoint_episodes(&checkpoint)?);
        let asked = entry.episodes.unwrap_or(config.training_preset().episodes);
        if holds_more_than_asked(&lines, asked) {
            continue;
        }
        // The history first: a checkpoint is only ever beside its history.
        for (source, name) in [(&history, &history_name), (&checkpoint, &checkpoint_name)] {
            let bytes = std::fs::read(source).map_err(|e| ExperimentError::Io {
                path: source.clone(),
                source: e,
            })?;
            out.write(name, &bytes)?;
        }
        reused.push(Reused {
            label: entry.label.clone(),
            from: checkpoint,
        });
    }
    Ok(reused)
}

/// The trained teachers shipped for `config`'s training task:
/// [`shipped_checkpoints_dir`]`/<training task>`, where a run looks for its learned
/// teachers before training them (unless told not to: `--no-shipped`, `shipped=False`).
pub fn shipped_teachers(config: &RunConfig) -> PathBuf {
    shipped_checkpoints_dir().join(&config.training_preset().name)
}

/// Prepares `out` for a run of `config` beside `user_teachers`: claims it
/// ([`RunDir::claim`]: another config's results refused, or everything cleared when
/// fresh), then copies in, folder by folder of `sources`, the teachers trained there
/// under the same identity ([`reuse_trained`]). Returns the files the claim removed
/// and the teachers copied. The `l2t` command and Python's `l2t.compare` and
/// `l2t.train` prepare their folders with it; the run's own claim then does nothing.
pub fn claim_with_trained(
    out: &mut RunDir,
    config: &RunConfig,
    user_teachers: &[UserTeacherRecord],
    sources: &[PathBuf],
) -> Result<(Vec<PathBuf>, Vec<Reused>)> {
    let removed = out.claim(config, user_teachers)?;
    let mut reused = Vec::new();
    for source in sources {
        reused.extend(reuse_trained(config, out, source)?);
    }
    Ok((removed, reused))
}
