//! Rust errors as typed Python exceptions.
//!
//! Bad values (config fields, actions, teacher configs) are `ValueError`; missing data
//! files are `FileNotFoundError` with the set-up hint; a size that cannot fit in
//! memory is `MemoryError` (before anything is allocated); a step outside a running
//! episode is [`ResetNeeded`] (a `RuntimeError`); the rest `RuntimeError` or `OSError`.

use std::path::Path;

use pyo3::create_exception;
use pyo3::exceptions::{
    PyFileNotFoundError, PyMemoryError, PyOSError, PyRuntimeError, PyValueError,
};
use pyo3::PyErr;

use l2t::presets::Preset;
use l2t_agents::AgentError;
use l2t_envs::{DataError, EnvError};

create_exception!(
    _l2t,
    ResetNeeded,
    pyo3::exceptions::PyRuntimeError,
    "step was called before reset or after the episode ended: call reset first."
);

/// The exception of an env error.
pub(crate) fn env_error(e: EnvError) -> PyErr {
    match e {
        EnvError::InvalidConfig { .. }
        | EnvError::InvalidAction(_)
        | EnvError::InvalidDataset { .. } => PyValueError::new_err(e.to_string()),
        EnvError::TooLarge { .. } => PyMemoryError::new_err(e.to_string()),
        EnvError::ResetNeeded | EnvError::EpisodeEnded | EnvError::VectorEpisodeEnded { .. } => {
            ResetNeeded::new_err(e.to_string())
        }
        EnvError::Data(DataError::Io { .. }) => PyOSError::new_err(e.to_string()),
        EnvError::Data(_) => PyValueError::new_err(e.to_string()),
        _ => PyRuntimeError::new_err(e.to_string()),
    }
}

/// The exception of an error while building the envs of `preset`: missing or unreadable
/// data files name what the preset needs and how to fetch it.
pub(crate) fn build_error(preset: &Preset, data_dir: &Path, e: EnvError) -> PyErr {
    match e {
        EnvError::Data(data) => {
            let hint = format!(
                "preset {:?} needs {} (data folder: {}; pass data_dir=... or set L2T_DATA). \
                 Run `bash scripts/setup.sh` in the l2t repository: it fetches Fashion-MNIST \
                 and the Rotten Tomatoes CSV; the other datasets are yours to provide",
                preset.name,
                preset.data_requirement(),
                data_dir.display()
            );
            match &data {
                DataError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                    PyFileNotFoundError::new_err(format!("{data}. {hint}"))
                }
                DataError::Io { .. } => PyOSError::new_err(format!("{data}. {hint}")),
                _ => PyValueError::new_err(format!("{data}. {hint}")),
            }
        }
        other => env_error(other),
    }
}

/// The exception of a teacher error.
pub(crate) fn agent_error(e: AgentError) -> PyErr {
    match e {
        AgentError::Env(e) => env_error(e),
        AgentError::CheckpointIo { .. } => PyOSError::new_err(e.to_string()),
        AgentError::Torch(_) => PyRuntimeError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}
