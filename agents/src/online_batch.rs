//! Online batch selection (Loshchilov & Hutter, 2015, "Online Batch Selection for
//! Faster Training of Neural Networks"), adapted to the keep/drop teaching MDP.
//!
//! **The original.** All N training instances are sorted by their latest known loss,
//! descending (rank r = 1 is the largest loss), and mini-batches are *sampled* from
//! that sorted pool with probability
//!
//! ```text
//! p_r ∝ exp(-ln(s_e) * r / N)   i.e.   p_r ∝ s_e^(-r/N)
//! ```
//!
//! where the selection pressure s_e is (up to a factor s_e^(1/N) -> 1) the ratio
//! between the highest and the lowest selection probability. s_e = 1 is uniform
//! sampling; larger s_e favours high-loss instances more. s_e may be decreased over
//! the epochs (their s_e0 -> s_eEnd, exponentially).
//!
//! **Here.** A teacher only keeps or drops the instances of an incoming batch of M, so
//! the ranking is within the batch (its losses are fresh: the env computes them with
//! the current student) and each instance is kept independently with
//!
//! ```text
//! p_r = s_e^(-(r - 1) / (M - 1))          (p = 1 when M = 1)
//! ```
//!
//! which is the same exponential-in-rank law, normalised so that the largest-loss
//! instance is always kept (p_1 = 1) and the ratio between the highest and the lowest
//! keep probability is exactly s_e (p_M = 1 / s_e), as s_e's definition asks. Tied
//! losses share their average rank, so equal losses get equal probabilities and the
//! result does not depend on the order of the batch. s_e = 1 keeps everything (NoTeach).
//! Since the student only updates on M kept instances, a larger s_e means more
//! batches per update, not smaller updates, like the paper's fixed batch size.
//!
//! **Annealing.** With `pressure_end` set, s_e moves from `pressure_start` at epoch 0
//! to `pressure_end` at `anneal_epochs` (epochs of the training split, read from
//! `info.epochs`, fractional) and stays there:
//!
//! - `exponential` (default, as in the paper): geometric interpolation,
//!   `s_e(e) = s_start * (s_end / s_start)^(min(e, E) / E)`, i.e. ln s_e is linear in e;
//! - `linear`: `s_e(e) = s_start + (s_end - s_start) * min(e, E) / E`.
//!
//! One uniform number is drawn per instance from the teacher's own ChaCha stream
//! (`Stream::TeacherSampling` under `seed`), whatever the probabilities, so the stream
//! stays aligned across pressures.

use l2t_envs::seeding::{stream_rng, Stream};
use l2t_envs::{TeachingInfo, TeachingObservation};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{invalid_config, Result};
use crate::teacher::{bernoulli_mask, KeepMask, Teacher};
use l2t_envs::{Column, FeatureLayout};

/// How the selection pressure moves from `pressure_start` to `pressure_end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PressureSchedule {
    /// ln s_e linear in epochs (geometric interpolation), as Loshchilov & Hutter.
    #[default]
    Exponential,
    /// s_e linear in epochs.
    Linear,
}

/// Settings of [`OnlineBatch`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OnlineBatchConfig {
    /// s_e at epoch 0 (the whole run without `pressure_end`); at least 1.
    pub pressure_start: f64,
    /// s_e reached after `anneal_epochs`; `None` keeps `pressure_start` throughout.
    pub pressure_end: Option<f64>,
    /// E: epochs over which s_e is annealed (used only with `pressure_end`).
    pub anneal_epochs: f64,
    /// Interpolation between the two pressures.
    pub schedule: PressureSchedule,
    /// Seed of the teacher's own sampling stream.
    pub seed: u64,
}

impl Default for OnlineBatchConfig {
    /// s_e = 100 throughout: the paper's best fixed pressure for MNIST.
    fn default() -> Self {
        Self {
            pressure_start: 100.0,
            pressure_end: None,
            anneal_epochs: 1.0,
            schedule: PressureSchedule::Exponential,
            seed: 0,
        }
    }
}

impl OnlineBatchConfig {
    /// Checks every value; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let valid_pressure = |s: f64| s.is_finite() && s >= 1.0;
        if !valid_pressure(self.pressure_start) {
            return Err(invalid_config(
                "pressure_start",
                format!(
                    "s_e = {} must be finite and at least 1",
                    self.pressure_start
                ),
            ));
        }
        if let Some(end) = self.pressure_end {
            if !valid_pressure(end) {
                return Err(invalid_config(
                    "pressure_end",
                    format!("s_e = {end} must be finite and at least 1"),
                ));
            }
            if !(self.anneal_epochs.is_finite() && self.anneal_epochs > 0.0) {
                return Err(invalid_config(
                    "anneal_epochs",
                    format!("E = {} must be positive", self.anneal_epochs),
                ));
            }
        }
        Ok(())
    }
}

/// Keeps each instance with a probability that decays exponentially with its loss rank.
#[derive(Debug, Clone)]
pub struct OnlineBatch {
    config: OnlineBatchConfig,
    loss: Column,
    rng: ChaCha8Rng,
}

impl OnlineBatch {
    /// Online batch selection for an environment with feature layout `layout` (it
    /// reads `loss`).
    pub fn new(config: OnlineBatchConfig, layout: &FeatureLayout) -> Result<Self> {
        config.validate()?;
        let loss = layout.column("loss")?;
        let rng = stream_rng(config.seed, Stream::TeacherSampling);
        Ok(Self { config, loss, rng })
    }

    /// The settings.
    pub fn config(&self) -> &OnlineBatchConfig {
        &self.config
    }

    /// The selection pressure s_e after `epochs` epochs of the training split.
    pub fn pressure_at(&self, epochs: f64) -> f64 {
        let start = self.config.pressure_start;
        let Some(end) = self.config.pressure_end else {
            return start;
        };
        let fraction = (epochs / self.config.anneal_epochs).clamp(0.0, 1.0);
        let fraction = if fraction.is_nan() { 0.0 } else { fraction };
        match self.config.schedule {
            PressureSchedule::Exponential => start * (end / start).powf(fraction),
            PressureSchedule::Linear => start + (end - start) * fraction,
        }
    }

    /// Keep probabilities of instances with these `losses` under pressure `pressure`:
    /// `p = pressure^(-(r - 1) / (M - 1))` with r the (tie-averaged) 1-based rank by
    /// descending loss.
    pub fn keep_probabilities(losses: &[f32], pressure: f64) -> Vec<f64> {
        let m = losses.len();
        if m <= 1 {
            return vec![1.0; m];
        }
        // Indices by descending loss (total order: NaN sorts as a largest loss).
        let mut order: Vec<usize> = (0..m).collect();
        order.sort_by(|&a, &b| losses[b].total_cmp(&losses[a]));
        let ln_pressure = pressure.ln();
        let mut probabilities = vec![1.0; m];
        let mut start = 0;
        while start < m {
            // The run order[start..end] holds equal losses: they share the mean rank.
            let mut end = start + 1;
            while end < m && losses[order[end]].total_cmp(&losses[order[start]]).is_eq() {
                end += 1;
            }
            // 0-based ranks start..end-1, mean (start + end - 1) / 2 = r - 1.
            let rank0 = (start + end - 1) as f64 / 2.0;
            let p = (-ln_pressure * rank0 / (m - 1) as f64).exp();
            for &i in &order[start..end] {
                probabilities[i] = p;
            }
            start = end;
        }
        probabilities
    }
}

impl Teacher for OnlineBatch {
    fn name(&self) -> &str {
        "online_batch"
    }

    fn columns(&self) -> Vec<String> {
        vec![self.loss.name().to_string()]
    }

    fn act(&mut self, observation: &TeachingObservation, info: &TeachingInfo) -> Result<KeepMask> {
        let losses: Vec<f32> = observation.at(&self.loss)?.to_vec();
        let probabilities = Self::keep_probabilities(&losses, self.pressure_at(info.epochs));
        Ok(bernoulli_mask(&mut self.rng, &probabilities))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::teacher::{loss_layout as names, loss_observation as observation};

    fn info() -> TeachingInfo {
        crate::teacher::blank_info()
    }

    #[test]
    fn probabilities_fall_with_rank_from_one_to_one_over_pressure() {
        let losses = [0.3f32, 0.9, 0.1, 0.5, 0.7];
        let p = OnlineBatch::keep_probabilities(&losses, 16.0);
        // Ranks: 0.9 -> 1, 0.7 -> 2, 0.5 -> 3, 0.3 -> 4, 0.1 -> 5; p = 16^(-(r-1)/4).
        let expected = [0.125, 1.0, 1.0 / 16.0, 0.25, 0.5];
        for (a, b) in p.iter().zip(expected) {
            assert!((a - b).abs() < 1e-12, "{p:?}");
        }
        // Monotone: a larger loss never has a smaller keep probability.
        for i in 0..losses.len() {
            for j in 0..losses.len() {
                if losses[i] > losses[j] {
                    assert!(p[i] > p[j]);
                }
            }
        }
    }

    #[test]
    fn ties_share_their_mean_rank_and_order_does_not_matter() {
        let p = OnlineBatch::keep_probabilities(&[0.5, 0.9, 0.5, 0.1], 27.0);
        // Ranks 1, (2 + 3) / 2, (2 + 3) / 2, 4 -> 27^0, 27^(-1/2), 27^(-1/2), 27^-1.
        assert_eq!(p[0], p[2]);
        assert!((p[0] - 27f64.powf(-0.5)).abs() < 1e-12);
        assert!((p[1] - 1.0).abs() < 1e-12 && (p[3] - 1.0 / 27.0).abs() < 1e-12);
        let q = OnlineBatch::keep_probabilities(&[0.1, 0.5, 0.5, 0.9], 27.0);
        assert_eq!((q[3], q[1], q[0]), (p[1], p[0], p[3]));
        assert_eq!(OnlineBatch::keep_probabilities(&[0.4], 100.0), vec![1.0]);
        assert!(OnlineBatch::keep_probabilities(&[], 100.0).is_empty());
    }

    #[test]
    fn pressure_one_keeps_everything_and_high_pressure_keeps_the_hardest() {
        let losses: Vec<f32> = (0..20).map(|i| i as f32 / 20.0).collect();
        let obs = observation(&losses);
        let info = info();
        let config = OnlineBatchConfig {
            pressure_start: 1.0,
            ..OnlineBatchConfig::default()
        };
        let mut teacher = OnlineBatch::new(config, &names()).unwrap();
        for _ in 0..10 {
            assert!(teacher.act(&obs, &info).unwrap().iter().all(|&k| k));
        }
        let mut teacher = OnlineBatch::new(
            OnlineBatchConfig {
                pressure_start: 1e6,
                ..OnlineBatchConfig::default()
            },
            &names(),
        )
        .unwrap();
        let mut kept = [0usize; 20];
        for _ in 0..200 {
            for (i, k) in teacher.act(&obs, &info).unwrap().iter().enumerate() {
                kept[i] += usize::from(*k);
            }
        }
        assert_eq!(kept[19], 200, "the largest loss is always kept");
        assert!(
            kept[0] < 5,
            "the smallest loss is kept with p = 1e-6: {kept:?}"
        );
        assert!(kept[15] > kept[5]);
    }

    #[test]
    fn annealing_schedules() {
        let make = |schedule| {
            OnlineBatch::new(
                OnlineBatchConfig {
                    pressure_start: 100.0,
                    pressure_end: Some(1.0),
                    anneal_epochs: 4.0,
                    schedule,
                    seed: 0,
                },
                &names(),
            )
            .unwrap()
        };
        let exponential = make(PressureSchedule::Exponential);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(exponential.pressure_at(0.0), 100.0));
        assert!(close(exponential.pressure_at(2.0), 10.0));
        assert!(close(exponential.pressure_at(1.0), 100f64.powf(0.75)));
        assert!(close(exponential.pressure_at(4.0), 1.0));
        assert!(close(exponential.pressure_at(9.0), 1.0));
        let linear = make(PressureSchedule::Linear);
        assert!(close(linear.pressure_at(0.0), 100.0));
        assert!(close(linear.pressure_at(2.0), 50.5));
        assert!(close(linear.pressure_at(3.0), 25.75));
        assert!(close(linear.pressure_at(10.0), 1.0));
        let constant = OnlineBatch::new(OnlineBatchConfig::default(), &names()).unwrap();
        assert!(close(constant.pressure_at(0.0), 100.0));
        assert!(close(constant.pressure_at(50.0), 100.0));
    }

    #[test]
    fn invalid_configs_and_missing_loss_column_are_errors() {
        let bad = |config: OnlineBatchConfig| OnlineBatch::new(config, &names()).is_err();
        let base = OnlineBatchConfig::default();
        assert!(bad(OnlineBatchConfig {
            pressure_start: 0.5,
            ..base.clone()
        }));
        assert!(bad(OnlineBatchConfig {
            pressure_start: f64::NAN,
            ..base.clone()
        }));
        assert!(bad(OnlineBatchConfig {
            pressure_end: Some(0.9),
            ..base.clone()
        }));
        assert!(bad(OnlineBatchConfig {
            pressure_end: Some(2.0),
            anneal_epochs: 0.0,
            ..base.clone()
        }));
        assert!(OnlineBatch::new(
            base,
            &l2t_envs::FeatureLayout::new(vec!["margin".to_string()])
        )
        .is_err());
        let json = r#"{"pressure_start": 1e8, "pressure_end": 10, "anneal_epochs": 3,
                       "schedule": "linear", "seed": 4}"#;
        let config: OnlineBatchConfig = serde_json::from_str(json).unwrap();
        assert_eq!(config.schedule, PressureSchedule::Linear);
        assert!(serde_json::from_str::<OnlineBatchConfig>(r#"{"pressur": 2}"#).is_err());
    }
}
