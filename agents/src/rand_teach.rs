//! RandTeach: the paper's random data-teaching baseline.
//!
//! Each instance is dropped independently with a probability. The paper matches the
//! per-epoch drop ratio of an L2T run; `per_epoch_drop_ratio` holds that schedule
//! (epoch e uses entry e, the last entry afterwards), and `drop_ratio` is the fixed
//! ratio used without one.

use l2t_envs::seeding::{stream_rng, Stream};
use l2t_envs::{TeachingInfo, TeachingObservation};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{invalid_config, Result};
use crate::teacher::{KeepMask, Teacher};

/// Settings of [`RandTeach`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RandTeachConfig {
    /// Probability of dropping an instance when no schedule is given.
    pub drop_ratio: f64,
    /// Drop probability per epoch of the training split (e.g. read from an L2T run).
    pub per_epoch_drop_ratio: Vec<f64>,
    /// Seed of the teacher's own sampling stream.
    pub seed: u64,
}

impl Default for RandTeachConfig {
    fn default() -> Self {
        Self {
            drop_ratio: 0.5,
            per_epoch_drop_ratio: Vec::new(),
            seed: 0,
        }
    }
}

/// Drops instances at random, from its own seeded stream.
#[derive(Debug, Clone)]
pub struct RandTeach {
    config: RandTeachConfig,
    rng: ChaCha8Rng,
}

impl RandTeach {
    /// A RandTeach teacher; ratios must lie in [0, 1].
    pub fn new(config: RandTeachConfig) -> Result<Self> {
        let valid = |r: f64| (0.0..=1.0).contains(&r);
        if !valid(config.drop_ratio) {
            return Err(invalid_config(
                "drop_ratio",
                format!("{} is outside [0, 1]", config.drop_ratio),
            ));
        }
        if let Some(bad) = config.per_epoch_drop_ratio.iter().find(|r| !valid(**r)) {
            return Err(invalid_config(
                "per_epoch_drop_ratio",
                format!("{bad} is outside [0, 1]"),
            ));
        }
        let rng = stream_rng(config.seed, Stream::Baseline);
        Ok(Self { config, rng })
    }

    /// The drop probability during epoch `epoch` (0-based).
    pub fn drop_ratio_at(&self, epoch: usize) -> f64 {
        match self.config.per_epoch_drop_ratio.as_slice() {
            [] => self.config.drop_ratio,
            schedule => schedule[epoch.min(schedule.len() - 1)],
        }
    }
}

impl Teacher for RandTeach {
    fn name(&self) -> &str {
        "rand_teach"
    }

    fn act(&mut self, observation: &TeachingObservation, info: &TeachingInfo) -> Result<KeepMask> {
        let drop = self.drop_ratio_at(info.epochs.floor() as usize);
        let rng = &mut self.rng;
        Ok(KeepMask::from_shape_fn(
            observation.features.nrows(),
            |_| !rng.gen_bool(drop),
        ))
    }
}
