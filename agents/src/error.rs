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
    /// A required feature column is missing from the environment's layout.
    #[error("feature column `{0}` is not in the environment's feature layout")]
    MissingFeature(String),
    /// The environment failed while the teacher drove it.
    #[error(transparent)]
    Env(#[from] l2t_envs::EnvError),
    /// libtorch reported an error.
    #[error("libtorch error: {0}")]
    Torch(#[from] tch::TchError),
}

pub(crate) fn invalid_config(field: &'static str, reason: impl Into<String>) -> AgentError {
    AgentError::InvalidConfig {
        field,
        reason: reason.into(),
    }
}

/// Result alias of this crate.
pub type Result<T, E = AgentError> = std::result::Result<T, E>;
