//! Selective backprop (Jiang et al., 2019, "Accelerating Deep Learning by Focusing on
//! the Biggest Losers"): the compute baseline of data selection.
//!
//! **The original.** Every instance gets its forward pass; only some get the backward.
//! Instance i is kept for the backward with a probability that rises with the
//! percentile of its loss among the R most recent losses:
//!
//! ```text
//! P(keep i) = max(p_min, F_R(l_i) ^ beta)
//! ```
//!
//! where `F_R(l)` is the share of the R recent losses that are at most l, `beta >= 0`
//! sets the selectivity (beta = 0 keeps everything; Jiang et al. use 1 to 3) and
//! `p_min` keeps every instance reachable. The kept instances are trained on as they
//! arrive, once a batch of them has gathered, reusing their forward: the scoring
//! forward is the training forward.
//!
//! **Here.** The env already scores every incoming row with one forward and trains on
//! every M kept rows (reusing that forward where the student allows), which is selective
//! backprop's own pipeline. The teacher reads the `loss` column (a monotone function of
//! the cross-entropy, so its percentiles are the cross-entropy's), keeps the R most
//! recent losses of the episode (this batch's included, so the first batch is ranked
//! against itself), and draws one uniform number per instance from its own ChaCha
//! stream (`Stream::TeacherSampling` under `seed`), whatever the probabilities.

use std::collections::VecDeque;

use l2t_envs::seeding::{stream_rng, Stream};
use l2t_envs::{Column, FeatureLayout, TeachingInfo, TeachingObservation};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{invalid_config, Result};
use crate::teacher::{bernoulli_mask, KeepMask, Teacher};

/// Settings of [`SelectiveBackprop`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SelectiveBackpropConfig {
    /// beta: the exponent of the loss percentile (0 keeps everything).
    pub beta: f64,
    /// R: how many recent losses rank each new one.
    pub history: usize,
    /// p_min: the smallest keep probability, in [0, 1].
    pub min_probability: f64,
    /// Seed of the teacher's own sampling stream.
    pub seed: u64,
}

impl Default for SelectiveBackpropConfig {
    /// beta = 2, R = 1024, p_min = 0.05 (Jiang et al.'s middle setting, and their
    /// history length).
    fn default() -> Self {
        Self {
            beta: 2.0,
            history: 1024,
            min_probability: 0.05,
            seed: 0,
        }
    }
}

impl SelectiveBackpropConfig {
    /// Checks every value; the error names the field.
    pub fn validate(&self) -> Result<()> {
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return Err(invalid_config(
                "beta",
                format!("beta = {} must be at least 0", self.beta),
            ));
        }
        if self.history == 0 {
            return Err(invalid_config("history", "R must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.min_probability) {
            return Err(invalid_config(
                "min_probability",
                format!("p_min = {} must be in [0, 1]", self.min_probability),
            ));
        }
        Ok(())
    }
}

/// Keeps each instance with a probability rising with its loss percentile.
#[derive(Debug, Clone)]
pub struct SelectiveBackprop {
    config: SelectiveBackpropConfig,
    loss: Column,
    /// The R most recent losses of the episode, oldest first.
    recent: VecDeque<f32>,
    rng: ChaCha8Rng,
}

impl SelectiveBackprop {
    /// Selective backprop for an environment with feature layout `layout` (it reads
    /// `loss`).
    pub fn new(config: SelectiveBackpropConfig, layout: &FeatureLayout) -> Result<Self> {
        config.validate()?;
        let loss = layout.column("loss")?;
        let rng = stream_rng(config.seed, Stream::TeacherSampling);
        Ok(Self {
            recent: VecDeque::with_capacity(config.history),
            config,
            loss,
            rng,
        })
    }

    /// `P(keep) = max(p_min, F(l) ^ beta)` of each of `losses`, F the share of `recent`
    /// at most l.
    pub fn keep_probabilities(
        losses: &[f32],
        recent: &[f32],
        beta: f64,
        min_probability: f64,
    ) -> Vec<f64> {
        let mut sorted = recent.to_vec();
        sorted.sort_by(f32::total_cmp);
        let n = sorted.len().max(1) as f64;
        losses
            .iter()
            .map(|&l| {
                let at_most = sorted.partition_point(|&r| r <= l) as f64;
                (at_most / n).powf(beta).max(min_probability).min(1.0)
            })
            .collect()
    }
}

impl Teacher for SelectiveBackprop {
    fn name(&self) -> &str {
        "selective_backprop"
    }

    fn columns(&self) -> Vec<String> {
        vec![self.loss.name().to_string()]
    }

    fn act(&mut self, observation: &TeachingObservation, info: &TeachingInfo) -> Result<KeepMask> {
        if info.incoming_batches == 0 {
            self.recent.clear();
        }
        let losses = observation.at(&self.loss)?.to_vec();
        for &l in &losses {
            if self.recent.len() == self.config.history {
                self.recent.pop_front();
            }
            self.recent.push_back(l);
        }
        let probabilities = Self::keep_probabilities(
            &losses,
            self.recent.make_contiguous(),
            self.config.beta,
            self.config.min_probability,
        );
        Ok(bernoulli_mask(&mut self.rng, &probabilities))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::teacher::{blank_info, loss_layout, loss_observation};
    use proptest::prelude::*;

    #[test]
    fn probabilities_are_the_percentile_to_the_beta() {
        let recent = [0.1f32, 0.2, 0.3, 0.4];
        // 0.3 is above or at 3 of 4: 0.75^2; 0.05 is below all: p_min; 0.9 above all: 1.
        let p = SelectiveBackprop::keep_probabilities(&[0.3, 0.05, 0.9], &recent, 2.0, 0.05);
        assert_eq!(p, vec![0.5625, 0.05, 1.0]);
        // beta = 0 keeps everything.
        let all = SelectiveBackprop::keep_probabilities(&[0.3, 0.05], &recent, 0.0, 0.0);
        assert_eq!(all, vec![1.0, 1.0]);
    }

    #[test]
    fn the_history_is_per_episode_and_bounded() {
        let config = SelectiveBackpropConfig {
            history: 6,
            ..SelectiveBackpropConfig::default()
        };
        let mut teacher = SelectiveBackprop::new(config, &loss_layout()).unwrap();
        let mut info = blank_info();
        teacher
            .act(&loss_observation(&[0.1, 0.2, 0.3, 0.4]), &info)
            .unwrap();
        info.incoming_batches = 1;
        teacher
            .act(&loss_observation(&[0.5, 0.6, 0.7, 0.8]), &info)
            .unwrap();
        assert_eq!(
            teacher.recent.iter().copied().collect::<Vec<_>>(),
            [0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
        );
        info.incoming_batches = 0;
        teacher.act(&loss_observation(&[0.9]), &info).unwrap();
        assert_eq!(
            teacher.recent.len(),
            1,
            "a new episode starts a new history"
        );
    }

    #[test]
    fn invalid_configs_and_a_missing_loss_column_are_errors() {
        let bad = |config: SelectiveBackpropConfig| {
            SelectiveBackprop::new(config, &loss_layout()).is_err()
        };
        let base = SelectiveBackpropConfig::default();
        for beta in [-1.0, f64::NAN] {
            assert!(bad(SelectiveBackpropConfig {
                beta,
                ..base.clone()
            }));
        }
        assert!(bad(SelectiveBackpropConfig {
            history: 0,
            ..base.clone()
        }));
        assert!(bad(SelectiveBackpropConfig {
            min_probability: 1.5,
            ..base.clone()
        }));
        let no_loss = FeatureLayout::new(vec!["margin".into()]);
        assert!(SelectiveBackprop::new(base, &no_loss).is_err());
    }

    proptest! {
        /// A larger loss never has a smaller keep probability, and every probability is
        /// in [p_min, 1].
        #[test]
        fn probabilities_rise_with_the_loss(
            losses in proptest::collection::vec(0.0f32..1.0, 1..30),
            recent in proptest::collection::vec(0.0f32..1.0, 1..60),
            beta in 0.0f64..4.0,
            min_probability in 0.0f64..0.5,
        ) {
            let p = SelectiveBackprop::keep_probabilities(&losses, &recent, beta, min_probability);
            for i in 0..losses.len() {
                prop_assert!(p[i] >= min_probability && p[i] <= 1.0);
                for j in 0..losses.len() {
                    if losses[i] > losses[j] {
                        prop_assert!(p[i] >= p[j]);
                    }
                }
            }
        }
    }
}
