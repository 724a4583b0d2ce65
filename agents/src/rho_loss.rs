//! RHO-LOSS (Mindermann et al., 2022, "Prioritized Training on Points that are
//! Learnable, Worth Learning, and Not Yet Learnt"), adapted to the keep/drop teaching
//! MDP.
//!
//! **The original.** From a large batch B_t, train on the n_b points with the largest
//! *reducible holdout loss*
//!
//! ```text
//! RHO(x, y) = L[y | x; D_t] - L[y | x; D_ho]
//! ```
//!
//! the training loss under the current model (trained on D_t) minus the *irreducible
//! loss*: the loss under a model trained once on a holdout set D_ho. A point the
//! holdout model also gets wrong (noisy, ambiguous) has a large irreducible loss and is
//! skipped; a point already learnt has a small training loss and is skipped too.
//!
//! **Here.** The incoming batch of M plays B_t, and the teacher keeps its
//! `k = ceil(kappa * M)` instances with the largest
//!
//! ```text
//! RHO_i = -ln p_i(y_i) - IL[index_i]
//! ```
//!
//! where `p_i(y_i)` is the student's probability of the label (the observation's
//! `prob_c` and `label_c` columns: the unscaled cross-entropy, whatever the loss
//! column's [`l2t_envs::LossScaling`]) and `IL` the irreducible losses of the training
//! split the env teaches, read by `info.incoming_indices`. Ties keep the earlier row.
//! The experiment layer computes `IL` with a student of the task trained on the
//! teacher half, which the student half never meets (`l2t::experiment::irreducible`),
//! and caches it per task; its holdout model is the D_ho of the paper.
//!
//! **A big batch across incoming batches** (`pool` > 1). The env hands the teacher M
//! instances at a time, so with `pool = 1` kappa cannot go below 1 / M. With
//! `pool = P` the big batch B_t is the last P incoming batches (the current one and
//! the P - 1 before it, within the episode), and an instance of the current batch is
//! kept when its RHO is among the `ceil(kappa * P * M)` largest of B_t: the online form
//! of the paper's n_b of n_B = P M, which can keep nothing of a batch and so reach
//! kappa = 1 / (P M). In the first P - 1 batches of an episode B_t holds fewer than P
//! batches and the same count is kept from it (all of them if it holds fewer).

use l2t_envs::{Column, FeatureLayout, TeachingInfo, TeachingObservation};
use serde::{Deserialize, Serialize};

use crate::error::{invalid_config, Result};
use crate::teacher::{top_k_mask, KeepMask, ScorePool, Teacher};

/// Settings of [`RhoLoss`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RhoLossConfig {
    /// kappa: the share of each incoming batch kept (n_b / n_B), in (0, 1].
    pub keep_fraction: f64,
    /// Student updates of the holdout (irreducible-loss) model on the teacher half;
    /// `None`: the task's T'.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holdout_iterations: Option<usize>,
    /// P: incoming batches that form the big batch B_t kappa applies to (1: each batch
    /// alone, the default).
    #[serde(skip_serializing_if = "is_one")]
    pub pool: usize,
}

fn is_one(value: &usize) -> bool {
    *value == 1
}

impl Default for RhoLossConfig {
    /// kappa = 0.1, as the paper's n_b / n_B; the holdout model trained for T'.
    fn default() -> Self {
        Self {
            keep_fraction: 0.1,
            holdout_iterations: None,
            pool: 1,
        }
    }
}

impl RhoLossConfig {
    /// Checks every value; the error names the field.
    pub fn validate(&self) -> Result<()> {
        if !(self.keep_fraction > 0.0 && self.keep_fraction <= 1.0) {
            return Err(invalid_config(
                "keep_fraction",
                format!("kappa = {} must be in (0, 1]", self.keep_fraction),
            ));
        }
        if self.holdout_iterations == Some(0) {
            return Err(invalid_config("holdout_iterations", "must be at least 1"));
        }
        if self.pool == 0 {
            return Err(invalid_config("pool", "must be at least 1"));
        }
        Ok(())
    }
}

/// Keeps the instances with the largest reducible holdout loss.
#[derive(Debug, Clone)]
pub struct RhoLoss {
    config: RhoLossConfig,
    /// `(label_c, prob_c)` column pairs.
    classes: Vec<(Column, Column)>,
    irreducible: Vec<f32>,
    /// B_t: the reducible losses of the last `pool` batches of this episode.
    big_batch: ScorePool,
}

impl RhoLoss {
    /// RHO-LOSS for an environment with feature layout `layout` (it reads `label_c` and
    /// `prob_c`) whose training split has the irreducible losses `irreducible`, one per
    /// instance in split order.
    pub fn new(
        config: RhoLossConfig,
        layout: &FeatureLayout,
        irreducible: Vec<f32>,
    ) -> Result<Self> {
        config.validate()?;
        let mut classes = Vec::new();
        for c in 0.. {
            let label = format!("label_{c}");
            if c > 0 && !layout.contains(&label) {
                break;
            }
            classes.push((layout.column(&label)?, layout.column(&format!("prob_{c}"))?));
        }
        if let Some(bad) = irreducible.iter().find(|l| !l.is_finite()) {
            return Err(invalid_config(
                "irreducible",
                format!("irreducible losses must be finite, found {bad}"),
            ));
        }
        Ok(Self {
            big_batch: ScorePool::new(config.pool),
            config,
            classes,
            irreducible,
        })
    }

    /// The reducible losses of an observation's rows, the rows' split indices given.
    pub fn reducible_losses(
        &self,
        observation: &TeachingObservation,
        indices: &[i64],
    ) -> Result<Vec<f32>> {
        let rows = observation.features.nrows();
        if indices.len() != rows {
            return Err(invalid_config(
                "incoming_indices",
                format!(
                    "{} indices for a batch of {rows}: RHO-LOSS needs the env's info",
                    indices.len()
                ),
            ));
        }
        let columns = (self.classes.iter())
            .map(|(label, prob)| Ok((observation.at(label)?, observation.at(prob)?)))
            .collect::<Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(rows);
        for (row, &index) in indices.iter().enumerate() {
            let il = usize::try_from(index)
                .ok()
                .and_then(|i| self.irreducible.get(i))
                .ok_or_else(|| {
                    invalid_config(
                        "irreducible",
                        format!(
                            "no irreducible loss for instance {index}: {} were computed, for \
                             another training split",
                            self.irreducible.len()
                        ),
                    )
                })?;
            let p_label: f32 = columns
                .iter()
                .map(|(label, prob)| label[row] * prob[row])
                .sum();
            out.push(-p_label.max(1e-7).ln() - il);
        }
        Ok(out)
    }

    /// The keep-mask of the `k = ceil(kappa * len)` largest of `scores` (ties: the
    /// earlier row first).
    pub fn top_k(scores: &[f32], keep_fraction: f64) -> KeepMask {
        let k = (keep_fraction * scores.len() as f64).ceil() as usize;
        top_k_mask(scores, k)
    }
}

impl Teacher for RhoLoss {
    fn name(&self) -> &str {
        "rho_loss"
    }

    fn columns(&self) -> Vec<String> {
        (self.classes.iter())
            .flat_map(|(label, prob)| [label.name().to_string(), prob.name().to_string()])
            .collect()
    }

    fn act(&mut self, observation: &TeachingObservation, info: &TeachingInfo) -> Result<KeepMask> {
        let scores = self.reducible_losses(observation, &info.incoming_indices)?;
        let pool = self.config.pool;
        if pool == 1 || scores.is_empty() {
            return Ok(Self::top_k(&scores, self.config.keep_fraction));
        }
        // The ceil(kappa P M) largest RHO of B_t = the recent batches and this one.
        let n = pool * scores.len();
        let k = (self.config.keep_fraction * n as f64).ceil() as usize;
        Ok(self
            .big_batch
            .keep_top(scores, k, info.incoming_batches == 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2};
    use proptest::prelude::*;

    fn names() -> FeatureLayout {
        let names = [
            "label_0",
            "label_1",
            "iteration",
            "prob_0",
            "prob_1",
            "loss",
            "margin",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        FeatureLayout::new(names)
    }

    /// Rows with label `labels[i]` and probability `p_label[i]` of it.
    fn observation(labels: &[usize], p_label: &[f32]) -> TeachingObservation {
        let mut features = Array2::zeros((labels.len(), 7));
        for (i, (&y, &p)) in labels.iter().zip(p_label).enumerate() {
            features[[i, y]] = 1.0;
            features[[i, 3 + y]] = p;
            features[[i, 4 - y]] = 1.0 - p;
        }
        TeachingObservation {
            features,
            student_state: Array1::zeros(3),
            layout: names(),
        }
    }

    #[test]
    fn keeps_the_largest_training_loss_minus_irreducible_loss() {
        // Instances 0..4 of the split; instance 2 is noisy (large IL), 3 learnt.
        let irreducible = vec![0.1, 0.2, 3.0, 0.05];
        let teacher = RhoLoss::new(
            RhoLossConfig {
                keep_fraction: 0.5,
                ..RhoLossConfig::default()
            },
            &names(),
            irreducible,
        )
        .unwrap();
        let obs = observation(&[0, 1, 0, 1], &[0.5, 0.3, 0.01, 0.99]);
        // Rows are instances 3, 2, 1, 0 of the split.
        let indices = [3, 2, 1, 0];
        let rho = teacher.reducible_losses(&obs, &indices).unwrap();
        let expected = [
            -(0.5f32.ln()) - 0.05,
            -(0.3f32.ln()) - 3.0,
            -(0.01f32.ln()) - 0.2,
            -(0.99f32.ln()) - 0.1,
        ];
        for (a, b) in rho.iter().zip(expected) {
            assert!((a - b).abs() < 1e-5, "{rho:?}");
        }
        let mut info = crate::teacher::blank_info();
        info.incoming_indices = indices.to_vec();
        let mut teacher = teacher;
        let mask = teacher.act(&obs, &info).unwrap();
        // The noisy instance (row 1) is dropped although its training loss is large.
        assert_eq!(mask.to_vec(), vec![true, false, true, false]);
    }

    #[test]
    fn a_pool_of_batches_keeps_the_top_of_the_big_batch_and_restarts_each_episode() {
        // Four instances with IL 0; the student's probability of the label sets RHO.
        let mut teacher = RhoLoss::new(
            RhoLossConfig {
                keep_fraction: 0.25,
                pool: 2,
                ..RhoLossConfig::default()
            },
            &names(),
            vec![0.0; 4],
        )
        .unwrap();
        let mut info = crate::teacher::blank_info();
        info.incoming_indices = vec![0, 1];
        // B_t = this batch alone at the start: ceil(0.25 * 4) = 1 of 2 kept.
        let hard = observation(&[0, 1], &[0.1, 0.2]);
        assert_eq!(teacher.act(&hard, &info).unwrap().to_vec(), [true, false]);
        // Next batch: both rows easier than the previous batch's best, none kept.
        info.incoming_batches = 1;
        let easy = observation(&[0, 1], &[0.8, 0.9]);
        assert_eq!(teacher.act(&easy, &info).unwrap().to_vec(), [false, false]);
        // The window slides: B_t is now `easy` and this batch.
        info.incoming_batches = 2;
        let mid = observation(&[0, 1], &[0.5, 0.95]);
        assert_eq!(teacher.act(&mid, &info).unwrap().to_vec(), [true, false]);
        // A new episode (no batch handed out yet) forgets the last one's batches.
        info.incoming_batches = 0;
        assert_eq!(teacher.act(&easy, &info).unwrap().to_vec(), [true, false]);
        let config = RhoLossConfig {
            pool: 0,
            ..RhoLossConfig::default()
        };
        assert!(RhoLoss::new(config, &names(), vec![0.0]).is_err());
    }

    #[test]
    fn top_k_keeps_ceil_kappa_m_with_ties_to_the_earlier_row() {
        let mask = RhoLoss::top_k(&[1.0, 3.0, 3.0, 0.0, 2.0], 0.3);
        assert_eq!(mask.to_vec(), vec![false, true, true, false, false]);
        assert_eq!(
            RhoLoss::top_k(&[0.0; 4], 1.0)
                .iter()
                .filter(|&&k| k)
                .count(),
            4
        );
        assert!(RhoLoss::top_k(&[], 0.5).is_empty());
    }

    #[test]
    fn missing_indices_foreign_splits_and_bad_configs_are_errors() {
        let teacher = RhoLoss::new(RhoLossConfig::default(), &names(), vec![0.0; 2]).unwrap();
        let obs = observation(&[0, 1], &[0.5, 0.5]);
        let message = teacher.reducible_losses(&obs, &[]).unwrap_err().to_string();
        assert!(message.contains("incoming_indices"), "{message}");
        let message = teacher
            .reducible_losses(&obs, &[0, 7])
            .unwrap_err()
            .to_string();
        assert!(message.contains("instance 7"), "{message}");
        for keep_fraction in [0.0, 1.5, f64::NAN] {
            let config = RhoLossConfig {
                keep_fraction,
                ..RhoLossConfig::default()
            };
            assert!(RhoLoss::new(config, &names(), vec![0.0]).is_err());
        }
        let config = RhoLossConfig {
            holdout_iterations: Some(0),
            ..RhoLossConfig::default()
        };
        assert!(RhoLoss::new(config, &names(), vec![0.0]).is_err());
        assert!(RhoLoss::new(RhoLossConfig::default(), &names(), vec![f32::NAN]).is_err());
        assert!(RhoLoss::new(
            RhoLossConfig::default(),
            &FeatureLayout::new(vec!["loss".into()]),
            vec![0.0]
        )
        .is_err());
        assert!(serde_json::from_str::<RhoLossConfig>(r#"{"kapa": 0.1}"#).is_err());
    }

    proptest! {
        /// Exactly ceil(kappa M) kept, and every kept score at least every dropped one.
        #[test]
        fn top_k_is_exact_and_ordered(
            scores in proptest::collection::vec(-5.0f32..5.0, 1..40),
            keep_fraction in 0.01f64..1.0,
        ) {
            let mask = RhoLoss::top_k(&scores, keep_fraction);
            let k = (keep_fraction * scores.len() as f64).ceil() as usize;
            prop_assert_eq!(mask.iter().filter(|&&x| x).count(), k.min(scores.len()));
            let kept_min = scores.iter().zip(&mask).filter(|(_, &x)| x).map(|(s, _)| *s).fold(f32::INFINITY, f32::min);
            let dropped_max = scores.iter().zip(&mask).filter(|(_, &x)| !x).map(|(s, _)| *s).fold(f32::NEG_INFINITY, f32::max);
            prop_assert!(kept_min >= dropped_max);
        }
    }
}
