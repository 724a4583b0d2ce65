//! NoTeach: the paper's plain-training baseline, which keeps every instance.

use l2t_envs::{TeachingInfo, TeachingObservation};

use crate::error::Result;
use crate::teacher::{KeepMask, Teacher};

/// Keeps every instance: the student trains on all data in arrival order.
#[derive(Debug, Clone, Default)]
pub struct NoTeach;

impl Teacher for NoTeach {
    fn name(&self) -> &str {
        "no_teach"
    }

    fn act(&mut self, observation: &TeachingObservation, _info: &TeachingInfo) -> Result<KeepMask> {
        Ok(KeepMask::from_elem(observation.features.nrows(), true))
    }
}
