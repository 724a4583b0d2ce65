//! Self-Paced Learning (SPL), the paper's curriculum baseline.
//!
//! Within each mini-batch of M instances the K largest-loss ("hardest") instances are
//! dropped, with K falling linearly from M-1 at the start to 0 after `epochs_to_all`
//! (E) epochs: `K = round((M - 1) * max(0, 1 - epochs / E))`. From then on all data are
//! used. The paper's curves are labelled "SPL-E".

use l2t_envs::{TeachingInfo, TeachingObservation};
use serde::{Deserialize, Serialize};

use crate::error::{invalid_config, Result};
use crate::teacher::{KeepMask, Teacher};
use l2t_envs::{Column, FeatureLayout};

/// Settings of [`SelfPacedLearning`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplConfig {
    /// E: epochs after which every instance is used.
    pub epochs_to_all: f64,
}

impl Default for SplConfig {
    fn default() -> Self {
        Self { epochs_to_all: 2.0 }
    }
}

/// Drops the hardest instances of each batch, fewer as training goes on.
#[derive(Debug, Clone)]
pub struct SelfPacedLearning {
    config: SplConfig,
    loss: Column,
}

impl SelfPacedLearning {
    /// SPL for an environment with feature layout `layout` (it reads `loss`).
    pub fn new(config: SplConfig, layout: &FeatureLayout) -> Result<Self> {
        if !(config.epochs_to_all.is_finite() && config.epochs_to_all > 0.0) {
            return Err(invalid_config(
                "epochs_to_all",
                format!("E = {} must be positive", config.epochs_to_all),
            ));
        }
        let loss = layout.column("loss")?;
        Ok(Self { config, loss })
    }

    /// K, the number of largest-loss instances dropped from a batch of `m` after
    /// `epochs` epochs.
    pub fn dropped_count(&self, m: usize, epochs: f64) -> usize {
        let remaining = (1.0 - epochs / self.config.epochs_to_all).max(0.0);
        ((m.saturating_sub(1)) as f64 * remaining).round() as usize
    }
}

impl Teacher for SelfPacedLearning {
    fn name(&self) -> &str {
        "spl"
    }

    fn columns(&self) -> Vec<String> {
        vec![self.loss.name().to_string()]
    }

    fn act(&mut self, observation: &TeachingObservation, info: &TeachingInfo) -> Result<KeepMask> {
        let losses = observation.at(&self.loss)?;
        let m = losses.len();
        let k = self.dropped_count(m, info.epochs);
        // Indices by descending loss; the first K are dropped. Stable on ties.
        let mut order: Vec<usize> = (0..m).collect();
        order.sort_by(|&a, &b| losses[b].total_cmp(&losses[a]));
        let mut mask = KeepMask::from_elem(m, true);
        for &i in &order[..k] {
            mask[i] = false;
        }
        Ok(mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k_falls_linearly_to_zero() {
        let names = FeatureLayout::new(vec!["loss".to_string()]);
        let spl = SelfPacedLearning::new(SplConfig { epochs_to_all: 2.0 }, &names).unwrap();
        assert_eq!(spl.dropped_count(20, 0.0), 19);
        assert_eq!(spl.dropped_count(20, 1.0), 10);
        assert_eq!(spl.dropped_count(20, 2.0), 0);
        assert_eq!(spl.dropped_count(20, 5.0), 0);
        assert!(SelfPacedLearning::new(SplConfig { epochs_to_all: 0.0 }, &names).is_err());
        assert!(SelfPacedLearning::new(
            SplConfig::default(),
            &FeatureLayout::new(vec!["margin".to_string()])
        )
        .is_err());
    }
}
