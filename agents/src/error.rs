//! Typed errors of the teachers.

/// What can go wrong in a teacher.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A configuration value is outside its valid range.
    #[error("invalid teacher config field `{field}`: {reason}")]
    InvalidConfig {
        /// The config field.
        field: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// The observation does not have the layout the teacher was built for.
    #[error("observation mismatch: {0}")]
    Observation(String),
    /// The episodes of an update could not be rolled out or exchanged across processes
    /// (a distributed run: which rank failed, and why).
    #[error("distributed rollouts: {0}")]
    Distributed(String),
    /// The episode was stopped from outside before it ended: another worker of the same
    /// run failed (or the run was cancelled), so its result would be thrown away.
    #[error("stopped: {0}")]
    Stopped(String),
    /// The environment failed while the teacher drove it.
    #[error(transparent)]
    Env(#[from] l2t_envs::EnvError),
    /// libtorch reported an error.
    #[error("libtorch error: {0}")]
    Torch(#[from] tch::TchError),
    /// A checkpoint file could not be read or written.
    #[error("checkpoint {path}: {source}")]
    CheckpointIo {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file does not start with the checkpoint magic string.
    #[error("{path} is not an l2t teacher checkpoint")]
    NotACheckpoint {
        /// The file.
        path: std::path::PathBuf,
    },
    /// The checkpoint was written in a format version this build cannot read.
    #[error(
        "checkpoint {path} has format version {found}; this build reads versions 3 to {supported} (retrain, or load it with the build that wrote it)"
    )]
    UnsupportedCheckpointVersion {
        /// The file.
        path: std::path::PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// The checkpoint is truncated or its contents are damaged or inconsistent.
    #[error("checkpoint {path} is truncated or corrupt: {reason}")]
    CorruptCheckpoint {
        /// The file.
        path: std::path::PathBuf,
        /// What was found wrong.
        reason: String,
    },
    /// The checkpoint holds another kind of teacher than the one being loaded.
    #[error("checkpoint {path} holds a `{found}` teacher, not `{expected}`")]
    CheckpointKind {
        /// The file.
        path: std::path::PathBuf,
        /// The teacher kind stored in the file.
        found: String,
        /// The teacher kind asked for.
        expected: String,
    },
    /// A teacher that learns nothing was asked to train (or to save what it learned).
    #[error("the `{teacher}` teacher learns nothing, so it cannot be trained or checkpointed")]
    NotALearner {
        /// The teacher's kind.
        teacher: String,
    },
    /// The checkpoint's policy was trained on other feature columns than the
    /// environment's, and they cannot be mapped by name.
    #[error(
        "checkpoint {path} was trained on other feature columns than the environment has: \
         {differences}"
    )]
    CheckpointLayout {
        /// The file.
        path: std::path::PathBuf,
        /// Which columns differ, and the setting that causes them.
        differences: String,
    },
}

pub(crate) fn invalid_config(field: &'static str, reason: impl Into<String>) -> AgentError {
    AgentError::InvalidConfig {
        field,
        reason: reason.into(),
    }
}

/// Result alias of this crate.
pub type Result<T, E = AgentError> = std::result::Result<T, E>;
