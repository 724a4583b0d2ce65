//! Observation and action spaces, in the sense of Gymnasium's `spaces`.
//!
//! A space says which values are legal (`contains`), can draw a random legal value
//! (`sample`, from a caller-owned generator) and can check its own definition
//! (`validate`). `check_env` uses all three.

use ndarray::{Array1, ArrayD, IxDyn};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// What a space definition can get wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpaceError {
    /// The shape has a zero-sized or missing dimension where one is required.
    #[error("space shape {0:?} is empty")]
    EmptyShape(Vec<usize>),
    /// `low` or `high` does not have the space's shape.
    #[error("bound shape {bound:?} differs from space shape {shape:?}")]
    BoundShape {
        /// The shape of the bound array.
        bound: Vec<usize>,
        /// The space's shape.
        shape: Vec<usize>,
    },
    /// Some `low` is above its `high`, or a bound is NaN.
    #[error("bound at flat index {index} is invalid: low {low} > high {high} or NaN")]
    Bounds {
        /// Flat index into the bound arrays.
        index: usize,
        /// The lower bound there.
        low: f32,
        /// The upper bound there.
        high: f32,
    },
}

/// A set of legal values of type `T`.
pub trait Space<T> {
    /// Whether `value` lies in the space (shape and bounds).
    fn contains(&self, value: &T) -> bool;
    /// A random legal value, drawn from `rng`.
    fn sample(&self, rng: &mut ChaCha8Rng) -> T;
    /// Checks the space's own definition.
    fn validate(&self) -> Result<(), SpaceError>;
}

/// A box in R^n: an array of a fixed shape with element-wise closed bounds, like
/// Gymnasium's `Box`. Bounds are finite for every space in this crate.
#[derive(Debug, Clone, PartialEq)]
pub struct BoxSpace {
    /// Element-wise lower bounds; their shape is the space's shape.
    pub low: ArrayD<f32>,
    /// Element-wise upper bounds.
    pub high: ArrayD<f32>,
}

impl BoxSpace {
    /// A box with the given bounds (same shape).
    pub fn new(low: ArrayD<f32>, high: ArrayD<f32>) -> Self {
        Self { low, high }
    }

    /// A box of `shape` whose last axis has per-column bounds `(low, high)`, the
    /// layout of a feature matrix (rows are instances, columns are features).
    pub fn from_columns(shape: &[usize], columns: &[(f32, f32)]) -> Self {
        let last = shape.len().saturating_sub(1);
        let low = ArrayD::from_shape_fn(IxDyn(shape), |ix| columns[ix[last]].0);
        let high = ArrayD::from_shape_fn(IxDyn(shape), |ix| columns[ix[last]].1);
        Self { low, high }
    }

    /// The shape of the values in this space.
    pub fn shape(&self) -> &[usize] {
        self.low.shape()
    }

    /// Whether an array of any dimensionality lies in the box.
    pub fn contains_dyn<D: ndarray::Dimension>(&self, value: &ndarray::Array<f32, D>) -> bool {
        value.shape() == self.shape()
            && value
                .iter()
                .zip(self.low.iter().zip(self.high.iter()))
                .all(|(v, (lo, hi))| v.is_finite() && lo <= v && v <= hi)
    }

    fn sample_dyn(&self, rng: &mut ChaCha8Rng) -> ArrayD<f32> {
        let mut out = self.low.clone();
        for (o, hi) in out.iter_mut().zip(self.high.iter()) {
            let lo = *o;
            *o = if hi > &lo {
                rng.gen_range(lo..=*hi)
            } else {
                lo
            };
        }
        out
    }
}

impl Space<ArrayD<f32>> for BoxSpace {
    fn contains(&self, value: &ArrayD<f32>) -> bool {
        self.contains_dyn(value)
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> ArrayD<f32> {
        self.sample_dyn(rng)
    }

    fn validate(&self) -> Result<(), SpaceError> {
        if self.low.shape() != self.high.shape() {
            return Err(SpaceError::BoundShape {
                bound: self.high.shape().to_vec(),
                shape: self.low.shape().to_vec(),
            });
        }
        if self.low.is_empty() {
            return Err(SpaceError::EmptyShape(self.low.shape().to_vec()));
        }
        for (index, (lo, hi)) in self.low.iter().zip(self.high.iter()).enumerate() {
            if lo
                .partial_cmp(hi)
                .is_none_or(|o| o == std::cmp::Ordering::Greater)
            {
                return Err(SpaceError::Bounds {
                    index,
                    low: *lo,
                    high: *hi,
                });
            }
        }
        Ok(())
    }
}

/// `n` independent binary choices, like Gymnasium's `MultiBinary(n)`: the keep-mask of
/// the teaching environment (`true` = keep the instance).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultiBinary(pub usize);

impl Space<Array1<bool>> for MultiBinary {
    fn contains(&self, value: &Array1<bool>) -> bool {
        value.len() == self.0
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> Array1<bool> {
        Array1::from_shape_fn(self.0, |_| rng.gen_bool(0.5))
    }

    fn validate(&self) -> Result<(), SpaceError> {
        if self.0 == 0 {
            return Err(SpaceError::EmptyShape(vec![0]));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn box_contains_its_samples_and_rejects_outside() {
        let space = BoxSpace::from_columns(&[4, 2], &[(0.0, 1.0), (-1.0, 1.0)]);
        space.validate().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for _ in 0..20 {
            assert!(space.contains(&space.sample(&mut rng)));
        }
        let mut outside = space.sample(&mut rng);
        outside[[0, 0]] = -0.5;
        assert!(!space.contains(&outside));
        let wrong_shape = ArrayD::zeros(IxDyn(&[3, 2]));
        assert!(!space.contains(&wrong_shape));
        let mut nan = space.sample(&mut rng);
        nan[[1, 1]] = f32::NAN;
        assert!(!space.contains(&nan));
    }

    #[test]
    fn invalid_definitions_are_reported() {
        let inverted = BoxSpace::from_columns(&[1, 1], &[(1.0, 0.0)]);
        assert!(matches!(
            inverted.validate(),
            Err(SpaceError::Bounds { .. })
        ));
        assert!(MultiBinary(0).validate().is_err());
        let mask = MultiBinary(3);
        assert!(mask.contains(&Array1::from_elem(3, true)));
        assert!(!mask.contains(&Array1::from_elem(4, true)));
    }
}
