//! Loss-proportional importance sampling (Katharopoulos & Fleuret, 2018, "Not All
//! Samples Are Created Equal: Deep Learning with Importance Sampling"), adapted to the
//! keep/drop teaching MDP.
//!
//! **The original.** From a large uniformly drawn batch of B instances, a mini-batch is
//! resampled with probabilities g_i proportional to an upper bound on each instance's
//! gradient norm; the loss itself is the cheap bound they compare against. Mixing with
//! the uniform distribution keeps every instance reachable:
//!
//! ```text
//! g_i = (1 - alpha) * l_i / sum_j l_j + alpha / B
//! ```
//!
//! and each sampled gradient is weighted by `1 / (B g_i)` so that the update stays
//! unbiased.
//!
//! **Here.** The incoming batch of M plays the role of B, and the teacher keeps each
//! instance independently with
//!
//! ```text
//! q_i = min(1, kappa * M * g_i)        g_i = (1 - alpha) * l_i / sum_j l_j + alpha / M
//! ```
//!
//! so that about `kappa * M` of the M instances are kept (exactly, in expectation,
//! when no q_i is clipped at 1), and a kept instance's chance is proportional to its
//! loss. `l_i` is the env's `loss` column: the cross-entropy under the current student,
//! `min(loss / (2 ln |Y|), 1)` with the default [`l2t_envs::LossScaling::Fixed`]. The
//! env has no per-instance weights (the student trains on M kept instances with equal
//! weight), so the `1 / (B g_i)` correction has no counterpart: like online batch
//! selection, this is a biased, hard-example-favouring filter, and kappa sets how much
//! of the stream it passes. A batch whose losses sum to zero (or are not finite) is
//! sampled uniformly, `g_i = 1 / M`.
//!
//! One uniform number is drawn per instance from the teacher's own ChaCha stream
//! (`Stream::TeacherSampling` under `seed`), whatever the probabilities.

use l2t_envs::seeding::{stream_rng, Stream};
use l2t_envs::{TeachingInfo, TeachingObservation};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{invalid_config, Result};
use crate::teacher::{bernoulli_mask, KeepMask, Teacher};
use l2t_envs::{Column, FeatureLayout};

/// Settings of [`ImportanceSampling`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportanceSamplingConfig {
    /// kappa: the share of each incoming batch kept in expectation, in (0, 1].
    pub keep_fraction: f64,
    /// alpha: the uniform share of the sampling distribution, in [0, 1] (1: RandTeach
    /// keeping `keep_fraction`).
    pub uniform_mix: f64,
    /// Seed of the teacher's own sampling stream.
    pub seed: u64,
}

impl Default for ImportanceSamplingConfig {
    /// kappa = 0.5, alpha = 0.1.
    fn default() -> Self {
        Self {
            keep_fraction: 0.5,
            uniform_mix: 0.1,
            seed: 0,
        }
    }
}

impl ImportanceSamplingConfig {
    /// Checks every value; the error names the field.
    pub fn validate(&self) -> Result<()> {
        if !(self.keep_fraction > 0.0 && self.keep_fraction <= 1.0) {
            return Err(invalid_config(
                "keep_fraction",
                format!("kappa = {} must be in (0, 1]", self.keep_fraction),
            ));
        }
        if !(0.0..=1.0).contains(&self.uniform_mix) {
            return Err(invalid_config(
                "uniform_mix",
                format!("alpha = {} must be in [0, 1]", self.uniform_mix),
            ));
        }
        Ok(())
    }
}

/// Keeps each instance with a probability proportional to its loss.
#[derive(Debug, Clone)]
pub struct ImportanceSampling {
    config: ImportanceSamplingConfig,
    loss: Column,
    rng: ChaCha8Rng,
}

impl ImportanceSampling {
    /// Loss-proportional sampling for an environment with feature layout `layout` (it
    /// reads `loss`).
    pub fn new(config: ImportanceSamplingConfig, layout: &FeatureLayout) -> Result<Self> {
        config.validate()?;
        let loss = layout.column("loss")?;
        let rng = stream_rng(config.seed, Stream::TeacherSampling);
        Ok(Self { config, loss, rng })
    }

    /// Keep probabilities `q_i = min(1, kappa M g_i)` of instances with these `losses`.
    pub fn keep_probabilities(losses: &[f32], keep_fraction: f64, uniform_mix: f64) -> Vec<f64> {
        let m = losses.len() as f64;
        let total: f64 = losses.iter().map(|&l| f64::from(l.max(0.0))).sum();
        losses
            .iter()
            .map(|&l| {
                let g = if total > 0.0 && total.is_finite() {
                    (1.0 - uniform_mix) * f64::from(l.max(0.0)) / total + uniform_mix / m
                } else {
                    1.0 / m
                };
                (keep_fraction * m * g).min(1.0)
            })
            .collect()
    }
}

impl Teacher for ImportanceSampling {
    fn name(&self) -> &str {
        "importance_sampling"
    }

    fn columns(&self) -> Vec<String> {
        vec![self.loss.name().to_string()]
    }

    fn act(&mut self, observation: &TeachingObservation, _info: &TeachingInfo) -> Result<KeepMask> {
        let losses: Vec<f32> = observation.at(&self.loss)?.to_vec();
        let probabilities =
            Self::keep_probabilities(&losses, self.config.keep_fraction, self.config.uniform_mix);
        Ok(bernoulli_mask(&mut self.rng, &probabilities))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::teacher::{loss_layout as names, loss_observation as observation};

    #[test]
    fn probabilities_are_proportional_to_the_loss_mixed_with_uniform() {
        // M = 4, losses sum to 1: g = 0.9 l + 0.025, q = min(1, 0.5 * 4 * g).
        let q = ImportanceSampling::keep_probabilities(&[0.1, 0.2, 0.3, 0.4], 0.5, 0.1);
        let expected = [0.23, 0.41, 0.59, 0.77];
        for (a, b) in q.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{q:?}");
        }
        // Expected kept = kappa M when nothing is clipped.
        assert!((q.iter().sum::<f64>() - 2.0).abs() < 1e-6);
        // Clipped at 1; alpha = 1 is uniform; all-zero losses are uniform.
        let q = ImportanceSampling::keep_probabilities(&[0.0, 0.0, 0.0, 1.0], 0.5, 0.0);
        assert_eq!(q, vec![0.0, 0.0, 0.0, 1.0]);
        let q = ImportanceSampling::keep_probabilities(&[0.0, 0.9, 0.1, 0.3], 0.25, 1.0);
        assert!(q.iter().all(|&p| (p - 0.25).abs() < 1e-12), "{q:?}");
        let q = ImportanceSampling::keep_probabilities(&[0.0; 5], 0.4, 0.0);
        assert!(q.iter().all(|&p| (p - 0.4).abs() < 1e-12), "{q:?}");
    }

    #[test]
    fn the_teacher_keeps_about_kappa_m_and_favours_large_losses() {
        let losses: Vec<f32> = (0..20).map(|i| (i + 1) as f32 / 20.0).collect();
        let obs = observation(&losses);
        let info = crate::teacher::blank_info();
        let mut teacher = ImportanceSampling::new(
            ImportanceSamplingConfig {
                keep_fraction: 0.3,
                uniform_mix: 0.0,
                seed: 5,
            },
            &names(),
        )
        .unwrap();
        let mut kept = [0usize; 20];
        let rounds = 2000;
        for _ in 0..rounds {
            for (i, k) in teacher.act(&obs, &info).unwrap().iter().enumerate() {
                kept[i] += usize::from(*k);
            }
        }
        let mean_kept = kept.iter().sum::<usize>() as f64 / rounds as f64;
        assert!((mean_kept - 6.0).abs() < 0.2, "{mean_kept}");
        // q_20 = 0.3 * 20 * 20/210 = 0.571, q_1 = 0.0286.
        assert!(kept[19] > 10 * kept[0], "{kept:?}");
        // The same seed gives the same masks.
        let mut a = ImportanceSampling::new(ImportanceSamplingConfig::default(), &names()).unwrap();
        let mut b = ImportanceSampling::new(ImportanceSamplingConfig::default(), &names()).unwrap();
        for _ in 0..5 {
            assert_eq!(a.act(&obs, &info).unwrap(), b.act(&obs, &info).unwrap());
        }
    }

    #[test]
    fn invalid_configs_and_a_missing_loss_column_are_errors() {
        let bad =
            |config: ImportanceSamplingConfig| ImportanceSampling::new(config, &names()).is_err();
        let base = ImportanceSamplingConfig::default();
        for keep_fraction in [0.0, -0.1, 1.5, f64::NAN] {
            assert!(bad(ImportanceSamplingConfig {
                keep_fraction,
                ..base.clone()
            }));
        }
        for uniform_mix in [-0.1, 1.1, f64::NAN] {
            assert!(bad(ImportanceSamplingConfig {
                uniform_mix,
                ..base.clone()
            }));
        }
        assert!(ImportanceSampling::new(
            base,
            &l2t_envs::FeatureLayout::new(vec!["margin".to_string()])
        )
        .is_err());
        assert!(serde_json::from_str::<ImportanceSamplingConfig>(r#"{"keep": 0.5}"#).is_err());
    }

    proptest! {
        /// Every probability is in [0, 1], a larger loss never has a smaller one, and
        /// the expected number kept never exceeds kappa M.
        #[test]
        fn probabilities_are_bounded_monotone_and_budgeted(
            losses in proptest::collection::vec(0.0f32..1.0, 1..40),
            keep_fraction in 0.01f64..1.0,
            uniform_mix in 0.0f64..1.0,
        ) {
            let q = ImportanceSampling::keep_probabilities(&losses, keep_fraction, uniform_mix);
            prop_assert!(q.iter().all(|&p| (0.0..=1.0).contains(&p)));
            for i in 0..losses.len() {
                for j in 0..losses.len() {
                    if losses[i] > losses[j] {
                        prop_assert!(q[i] >= q[j]);
                    }
                }
            }
            let budget = keep_fraction * losses.len() as f64;
            prop_assert!(q.iter().sum::<f64>() <= budget + 1e-9);
        }
    }
}
