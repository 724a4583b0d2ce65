//! Within-batch relative features: where an instance stands among the M instances of
//! its incoming batch, for policies that threshold each row on its own.
//!
//! A per-instance policy sigma(w . s_m + b) compares each instance with a fixed
//! threshold; RHO-LOSS keeps the top k of the batch, a threshold that moves with the
//! batch. The map appends, for each chosen quantity v (a feature column, or the
//! reducible loss `loss - irreducible_loss`), computed from the observation alone:
//!
//! ```text
//! standardised:  z_m = (v_m - mean_b v) / max(sd_b v, 1e-6)       (sd over the M rows)
//! rank:          r_m = sqrt(12) * (rank_b(v_m) / (M - 1) - 1/2)   (rank 0 = smallest)
//! top rank:      t_m = (1 / (1 + d_m) - mu_M) / sd_M               (d_m = M - 1 - rank_b(v_m))
//! ```
//!
//! with mu_M and sd_M the mean and standard deviation of {1 / (1 + d): d = 0..M-1}, so
//! the policy reads `[s_m, z_m, r_m]` (or `[s_m, z_m, t_m]`, ...). Each has mean 0
//! and a spread of about 1 in every batch (r_m of a batch of 20 spans [-1.73, 1.73]),
//! so they need no running normalisation. The rank r_m moves the logit by the same
//! step between any two neighbours; the top rank t_m (the reciprocal rank from the
//! largest) puts most of its spread between the first few (for M = 20: 3.7 for the
//! largest, 1.4 for the second, 0.7 for the third, -0.3 to -0.6 for the rest), so a
//! modest weight separates "keep the top one or two" from the rest. Ties in the rank keep row order (a stable sort); a batch of one row
//! ranks 0. Everything is tensor arithmetic on the `[M, F]` observation, so a
//! heuristic could compute the same.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::error::{invalid_config, Result};
use crate::teacher::feature_column;

/// A quantity whose within-batch position the policy reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelativeQuantity {
    /// The `loss` column.
    Loss,
    /// The `irreducible_loss` column (the holdout model's loss).
    IrreducibleLoss,
    /// `loss - irreducible_loss`: RHO-LOSS's reducible loss (both columns share the
    /// scaling 1 / (2 ln|Y|)).
    ReducibleLoss,
    /// The `margin` column.
    Margin,
}

/// Which within-batch transforms of each quantity are appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RelativeTransform {
    /// z_m and r_m (two columns per quantity).
    #[default]
    Both,
    /// z_m only.
    Standardised,
    /// r_m only.
    Rank,
    /// z_m and t_m (two columns per quantity).
    StandardisedAndTopRank,
    /// t_m only.
    TopRank,
}

impl RelativeTransform {
    fn columns(self) -> usize {
        match self {
            Self::Both | Self::StandardisedAndTopRank => 2,
            Self::Standardised | Self::Rank | Self::TopRank => 1,
        }
    }

    fn standardised(self) -> bool {
        matches!(
            self,
            Self::Both | Self::Standardised | Self::StandardisedAndTopRank
        )
    }

    fn rank(self) -> bool {
        matches!(self, Self::Both | Self::Rank)
    }

    fn top_rank(self) -> bool {
        matches!(self, Self::StandardisedAndTopRank | Self::TopRank)
    }
}

/// mu_M and sd_M: the mean and standard deviation of 1 / (1 + d) over d = 0..M-1.
fn top_rank_moments(m: i64) -> (f64, f64) {
    let values: Vec<f64> = (0..m).map(|d| 1.0 / (1.0 + d as f64)).collect();
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt().max(1e-6))
}

/// A quantity resolved to observation columns: one column, or the difference of two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolvedQuantity {
    /// Column `0`.
    Column(usize),
    /// Column `0` minus column `1`.
    Difference(usize, usize),
}

/// The resolved map: which quantities, how transformed, over observations of
/// `input_dim` columns. Stored in ES checkpoints, so a loaded teacher needs no names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRelative {
    /// The quantities, in the order their columns are appended.
    pub quantities: Vec<ResolvedQuantity>,
    /// The transforms of each.
    pub transform: RelativeTransform,
    /// Columns of the raw observation.
    pub input_dim: usize,
}

impl BatchRelative {
    /// The map of `quantities` for observations with columns `feature_names`; `None`
    /// when `quantities` is empty (no map). A missing column is an error naming it.
    pub fn resolve(
        quantities: &[RelativeQuantity],
        transform: RelativeTransform,
        feature_names: &[String],
    ) -> Result<Option<Self>> {
        if quantities.is_empty() {
            return Ok(None);
        }
        let column = |name: &str| feature_column(feature_names, name);
        let resolved = quantities
            .iter()
            .map(|q| {
                Ok(match q {
                    RelativeQuantity::Loss => ResolvedQuantity::Column(column("loss")?),
                    RelativeQuantity::IrreducibleLoss => {
                        ResolvedQuantity::Column(column("irreducible_loss")?)
                    }
                    RelativeQuantity::ReducibleLoss => {
                        ResolvedQuantity::Difference(column("loss")?, column("irreducible_loss")?)
                    }
                    RelativeQuantity::Margin => ResolvedQuantity::Column(column("margin")?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Self {
            quantities: resolved,
            transform,
            input_dim: feature_names.len(),
        }))
    }

    /// Checks that every column is inside the observation (a loaded checkpoint).
    pub fn validate(&self) -> Result<()> {
        let inside = |c: usize| c < self.input_dim;
        let ok = !self.quantities.is_empty()
            && self.quantities.iter().all(|q| match *q {
                ResolvedQuantity::Column(c) => inside(c),
                ResolvedQuantity::Difference(a, b) => inside(a) && inside(b),
            });
        if ok {
            Ok(())
        } else {
            Err(invalid_config(
                "batch_relative",
                format!(
                    "columns {:?} outside an observation of {} columns",
                    self.quantities, self.input_dim
                ),
            ))
        }
    }

    /// Columns appended to each row.
    pub fn extra_columns(&self) -> usize {
        self.quantities.len() * self.transform.columns()
    }

    /// Columns of the mapped rows: the observation's and the appended.
    pub fn output_dim(&self) -> usize {
        self.input_dim + self.extra_columns()
    }

    /// `[s, z, r]` for an observation `[M, F]` (float), shape `[M, output_dim]`.
    pub fn apply(&self, features: &Tensor) -> Tensor {
        let m = features.size()[0];
        let values: Vec<Tensor> = self
            .quantities
            .iter()
            .map(|q| match *q {
                ResolvedQuantity::Column(c) => features.select(1, c as i64),
                ResolvedQuantity::Difference(a, b) => {
                    features.select(1, a as i64) - features.select(1, b as i64)
                }
            })
            .collect();
        let values = Tensor::stack(&values, 1); // [M, k]
        let mut columns = vec![features.shallow_clone()];
        // rank_b(v_m), 0 for the smallest (ties by row order).
        let rank = || {
            values
                .argsort_stable(true, 0, false)
                .argsort_stable(true, 0, false)
                .to_kind(Kind::Float)
        };
        if self.transform.standardised() {
            let mean = values.mean_dim(0, true, Kind::Float);
            let centred = &values - mean;
            let sd = centred
                .square()
                .mean_dim(0, true, Kind::Float)
                .sqrt()
                .clamp_min(1e-6);
            columns.push(centred / sd);
        }
        if self.transform.rank() {
            let ranks = if m > 1 {
                (rank() / (m - 1) as f64 - 0.5) * 12f64.sqrt()
            } else {
                values.zeros_like()
            };
            columns.push(ranks);
        }
        if self.transform.top_rank() {
            let top = if m > 1 {
                let (mean, sd) = top_rank_moments(m);
                // 1 / (1 + d) with d = M - 1 - rank.
                let reciprocal = (-rank() + m as f64).reciprocal();
                (reciprocal - mean) / sd
            } else {
                values.zeros_like()
            };
            columns.push(top);
        }
        Tensor::cat(&columns, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["irreducible_loss", "iteration", "loss", "margin"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn reducible_loss_is_standardised_and_ranked_within_the_batch() {
        let map = BatchRelative::resolve(
            &[RelativeQuantity::ReducibleLoss],
            RelativeTransform::Both,
            &names(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(map.quantities, vec![ResolvedQuantity::Difference(2, 0)]);
        assert_eq!(map.output_dim(), 6);
        // Reducible losses 0.1, 0.5, 0.3 (largest in the middle row).
        let rows = [
            0.2f32, 0.0, 0.3, 0.0, //
            0.1, 0.0, 0.6, 0.0, //
            0.0, 0.0, 0.3, 0.0,
        ];
        let out = map.apply(&Tensor::from_slice(&rows).view([3, 4]));
        assert_eq!(out.size(), vec![3, 6]);
        let out = Vec::<f32>::try_from(out.flatten(0, -1)).unwrap();
        // The observation is kept as it was.
        for (row, chunk) in rows.chunks(4).zip(out.chunks(6)) {
            assert_eq!(&chunk[..4], row);
        }
        // z: mean 0.3, sd sqrt(0.08 / 3).
        let sd = (0.08f32 / 3.0).sqrt();
        for (chunk, v) in out.chunks(6).zip([0.1f32, 0.5, 0.3]) {
            assert!((chunk[4] - (v - 0.3) / sd).abs() < 1e-4, "{chunk:?}");
        }
        // r: ranks 0, 2, 1 of 2, centred and scaled by sqrt(12).
        let s = 12f32.sqrt();
        let ranks: Vec<f32> = out.chunks(6).map(|c| c[5]).collect();
        for (r, expected) in ranks.iter().zip([-0.5 * s, 0.5 * s, 0.0]) {
            assert!((r - expected).abs() < 1e-5, "{ranks:?}");
        }
    }

    #[test]
    fn the_top_rank_spreads_the_largest_few() {
        let map = BatchRelative::resolve(
            &[RelativeQuantity::Loss],
            RelativeTransform::TopRank,
            &names(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(map.output_dim(), 5);
        // Losses 0.3, 0.9, 0.1, 0.5: d = 2, 0, 3, 1.
        let mut rows = vec![0f32; 16];
        for (m, loss) in [0.3f32, 0.9, 0.1, 0.5].iter().enumerate() {
            rows[4 * m + 2] = *loss;
        }
        let out = map.apply(&Tensor::from_slice(&rows).view([4, 4]));
        let top: Vec<f32> = Vec::<f32>::try_from(out.select(1, 4)).unwrap();
        let reciprocal = [1.0 / 3.0, 1.0, 0.25, 0.5];
        let mean = (1.0 + 0.5 + 1.0 / 3.0 + 0.25) / 4.0;
        let sd = (reciprocal
            .iter()
            .map(|v: &f64| (v - mean).powi(2))
            .sum::<f64>()
            / 4.0)
            .sqrt();
        for (t, r) in top.iter().zip(reciprocal) {
            assert!((f64::from(*t) - (r - mean) / sd).abs() < 1e-5, "{top:?}");
        }
        // Mean 0 over the batch, the largest on top.
        assert!(top.iter().sum::<f32>().abs() < 1e-5);
        assert!(top[1] > top[3] && top[3] > top[0] && top[0] > top[2]);
    }

    #[test]
    fn a_constant_quantity_maps_to_zeros_and_ties_keep_row_order() {
        let map =
            BatchRelative::resolve(&[RelativeQuantity::Loss], RelativeTransform::Both, &names())
                .unwrap()
                .unwrap();
        let out = map.apply(&Tensor::from_slice(&[0.4f32; 8]).view([2, 4]));
        let out = Vec::<f32>::try_from(out.flatten(0, -1)).unwrap();
        assert_eq!(out[4], 0.0);
        assert_eq!(out[10], 0.0);
        // Equal losses rank by row: the first smallest.
        assert!(out[5] < out[11]);
    }

    #[test]
    fn a_missing_column_is_named_and_no_quantity_means_no_map() {
        let names: Vec<String> = vec!["loss".into()];
        let err = BatchRelative::resolve(
            &[RelativeQuantity::ReducibleLoss],
            RelativeTransform::Rank,
            &names,
        )
        .unwrap_err();
        assert!(err.to_string().contains("irreducible_loss"), "{err}");
        assert!(BatchRelative::resolve(&[], RelativeTransform::Both, &names)
            .unwrap()
            .is_none());
        let bad = BatchRelative {
            quantities: vec![ResolvedQuantity::Column(3)],
            transform: RelativeTransform::Rank,
            input_dim: 3,
        };
        assert!(bad.validate().is_err());
    }
}
