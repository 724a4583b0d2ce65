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
//! same result files apart from their timing fields. A rerun into the folder of an
//! interrupted run reuses each teacher whose evaluations on every seed it finds in
//! `events.jsonl` under that teacher's identity ([`evaluation_identity`]), and evaluates
//! the others on all their seeds (a teacher's seeds share its streams in order), so its
//! results equal an uninterrupted run's.

mod benchmark;
mod evaluate;
mod irreducible;
mod report;
mod run;
mod summary;
mod train;

pub use benchmark::*;
pub use evaluate::*;
pub use irreducible::*;
pub use report::*;
pub use run::*;
pub use summary::*;
pub use train::*;

use std::path::PathBuf;

use crate::stats::StatsError;

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
    /// No built-in preset or run has this name.
    #[error("unknown {what} `{name}`; {known}")]
    UnknownName {
        /// "preset" or "run".
        what: &'static str,
        /// The name asked for.
        name: String,
        /// The valid names, listed.
        known: String,
    },
    /// An experiment setting is invalid.
    #[error("invalid experiment setting `{field}`: {reason}")]
    InvalidSetting {
        /// The setting.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The evaluation seeds are no range of u64: no seed at all, or `first + seeds` past
    /// 2^64 - 1 (the seeds would wrap around to 0). The names are the arguments as the
    /// user gave them: `--first-seed`/`--seeds` on the command line, `first_seed`/`seeds`
    /// in Python, `[preset] first_eval_seed`/`eval_seeds` in a run config.
    #[error(
        "invalid evaluation seeds: {seeds_name} = {seeds} from {first_name} = {first}: {reason}"
    )]
    SeedRange {
        /// The name of the first seed's argument or field.
        first_name: String,
        /// The first seed.
        first: u64,
        /// The name of the seed count's argument or field.
        seeds_name: String,
        /// The number of seeds.
        seeds: usize,
        /// What is wrong, and the largest first seed that would fit.
        reason: String,
    },
    /// A command-line flag or Python argument is invalid (it names the flag or argument
    /// as the user wrote it).
    #[error("{name}: {reason}")]
    InvalidArgument {
        /// The flag (`--reference`) or argument (`reference`).
        name: String,
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
    /// Another live process holds the run folder (see [`crate::run_dir::FolderLock`]).
    #[error(
        "run folder {path} is in use by {holder}; wait for that run to finish, or give this \
         one another --out"
    )]
    FolderInUse {
        /// The folder.
        path: PathBuf,
        /// Who holds it, as it wrote itself into the lock file.
        holder: String,
    },
    /// The run folder holds the results of a run of another config (see
    /// [`crate::run_dir::RunDir`]: one run per folder).
    #[error(
        "run folder {path} holds the results of another run: {reason}; pass --fresh (Python: \
         fresh=True) to clear them first, or choose another --out (Python: out=)"
    )]
    FolderHoldsOtherRun {
        /// The folder.
        path: PathBuf,
        /// How its run differs from this one.
        reason: String,
    },
    /// The run was cancelled ([`Cancel`]: SIGINT): it stopped with every finished
    /// evaluation in `events.jsonl` and every finished training update in its checkpoint.
    #[error(
        "interrupted: the run stopped; every finished evaluation is in events.jsonl and every \
         finished training update in its teacher's checkpoint"
    )]
    Interrupted,
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
        "cannot transfer: teachers trained on `{train_task}` read other feature columns than \
         `{eval_task}` has: {differences}"
    )]
    TransferLayout {
        /// The task the teacher is trained on.
        train_task: String,
        /// The task it would teach.
        eval_task: String,
        /// The columns that differ, and the setting that causes them.
        differences: String,
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

/// A run's cancellation, shared by everything the run does: raised from outside (the
/// `l2t` command's SIGINT handler, Python's check for a pending `KeyboardInterrupt`),
/// it stops the run at its next safe point: no evaluation episode starts and one in
/// flight ends at its teacher's next step, every finished evaluation is in
/// `events.jsonl`, a learned teacher in training saves its checkpoint after the update
/// in flight, and the run returns [`ExperimentError::Interrupted`]. A clone is a handle
/// on the same flag.
#[derive(Debug, Clone, Default)]
pub struct Cancel(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Cancel {
    /// Stops the run (async-signal-safe: one atomic store).
    pub fn cancel(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether the run was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }

    /// [`ExperimentError::Interrupted`] once cancelled.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            return Err(ExperimentError::Interrupted);
        }
        Ok(())
    }
}

/// Result alias of the experiment layer.
pub type Result<T, E = ExperimentError> = std::result::Result<T, E>;
