//! Typed errors of the environments, students and datasets.

use std::path::PathBuf;

/// Everything that can go wrong while building or stepping an environment.
///
/// Each variant names the offending field, file or value, so that a user can fix the
/// input without reading the library's code.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// A configuration value is outside its valid range.
    #[error("invalid config field `{field}`: {reason}")]
    InvalidConfig {
        /// The config field, e.g. `batch_size`.
        field: &'static str,
        /// Why the value is invalid.
        reason: String,
    },
    /// A config asks for more memory than the machine has available
    /// ([`crate::memory::ensure_fits`]); refused before anything is allocated.
    #[error(
        "invalid config field `{field}`: {what} would need about {needs}, more than the \
         {available} this machine has available"
    )]
    TooLarge {
        /// The config field that decides the size.
        field: &'static str,
        /// What would be allocated.
        what: String,
        /// The estimate.
        needs: String,
        /// The memory available (`MemAvailable`).
        available: String,
    },
    /// The action does not fit the action space (e.g. a keep-mask of the wrong length).
    #[error("invalid action: {0}")]
    InvalidAction(String),
    /// `step` was called before the first `reset`.
    #[error("step called before reset: call reset(Some(seed)) first")]
    ResetNeeded,
    /// `step` was called after the episode terminated or was truncated.
    #[error("step called after the episode ended (terminated or truncated): call reset first")]
    EpisodeEnded,
    /// A vector env without autoreset ([`crate::vector::Autoreset::Disabled`]) was
    /// stepped while env `env`'s episode had ended and it was not reset since.
    #[error(
        "env {env} of the vector env: its episode ended and autoreset is disabled: reset it \
         (a reset with env {env} in the mask) before the next step"
    )]
    VectorEpisodeEnded {
        /// The index of the env in the vector env.
        env: usize,
    },
    /// The student's training loss became NaN or infinite.
    #[error("student training loss is not finite ({loss}) at iteration {iteration}")]
    NonFiniteLoss {
        /// The student iteration whose update produced the loss.
        iteration: usize,
        /// The loss value.
        loss: f64,
    },
    /// An operation the object does not offer (e.g. training on recorded logits for a
    /// student whose training forward differs from its evaluation forward).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A worker thread of a [`ThreadedVectorEnv`](crate::threaded::ThreadedVectorEnv)
    /// could not start or has stopped.
    #[error("vector env worker {worker}: {reason}")]
    Worker {
        /// The worker's index.
        worker: usize,
        /// What happened.
        reason: String,
    },
    /// A dataset is unusable for the task (empty, wrong shapes, labels out of range).
    #[error("dataset `{name}`: {reason}")]
    InvalidDataset {
        /// Which split or dataset.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A feature column was asked for by a name the layout does not have.
    #[error("no feature column `{name}`; the env has {available}")]
    UnknownFeature {
        /// The name asked for.
        name: String,
        /// The layout's columns ([`crate::FeatureLayout::describe`]).
        available: String,
    },
    /// A reader of whole rows (a learned policy) built for one feature layout got an
    /// observation that does not hold its columns, with the same classes
    /// ([`crate::FeatureLayout::positions_in`]).
    #[error("feature layout mismatch: the observation's columns differ from the ones the reader was built for: {differences}")]
    LayoutMismatch {
        /// The differences, with the setting that causes them.
        differences: String,
    },
    /// A data file could not be read or parsed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A dataset could not be fetched on first use (`L2T_FETCH=1`,
    /// [`crate::data::fetch::ensure_fetched`]).
    #[error(transparent)]
    Fetch(Box<crate::data::fetch::FetchError>),
    /// libtorch reported an error.
    #[error("libtorch error: {0}")]
    Torch(#[from] tch::TchError),
}

/// Errors of the dataset loaders: each names the file and, where it applies, the byte
/// offset of the problem.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file or folder could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file's content does not follow its format.
    #[error("{path}: malformed at byte {offset}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Byte offset (in the decompressed stream) where the problem was found.
        offset: u64,
        /// What was expected.
        reason: String,
    },
    /// Two files that must agree (images and labels) do not.
    #[error("{path}: {reason}")]
    Mismatch {
        /// The file found to disagree.
        path: PathBuf,
        /// How.
        reason: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = EnvError> = std::result::Result<T, E>;

pub(crate) fn invalid_config(field: &'static str, reason: impl Into<String>) -> EnvError {
    EnvError::InvalidConfig {
        field,
        reason: reason.into(),
    }
}
