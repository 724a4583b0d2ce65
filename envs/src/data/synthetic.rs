//! A seeded synthetic classification task that runs in seconds.
//!
//! Instances of class `y` are drawn around a class centre `mu_y`, with a per-instance
//! spread, so that easy (near the centre), hard (in the overlap between classes) and,
//! in the training split only, mislabelled instances (label replaced by another class
//! with probability `label_noise`) all exist. Dev and test labels are clean, so a
//! teacher that learns to drop mislabelled or useless instances is rewarded.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::{Dataset, TaskData};
use crate::error::{invalid_config, Result};
use crate::seeding::{stream_rng, Stream};

/// Shape and difficulty of the synthetic task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Number of classes |Y|.
    pub num_classes: usize,
    /// Input dimension.
    pub input_dim: usize,
    /// Training instances.
    pub train_size: usize,
    /// Dev instances (reward).
    pub dev_size: usize,
    /// Test instances (reporting).
    pub test_size: usize,
    /// Standard deviation of the class centres around the origin; larger is easier.
    pub separation: f64,
    /// Share of training labels replaced by a uniformly drawn other class.
    pub label_noise: f64,
    /// Seed of the data itself (independent of the episode seed, so episodes with
    /// different seeds see the same task).
    pub data_seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            num_classes: 10,
            input_dim: 32,
            train_size: 6000,
            dev_size: 1000,
            test_size: 2000,
            separation: 0.55,
            label_noise: 0.2,
            data_seed: 0,
        }
    }
}

impl SyntheticConfig {
    /// Generates the three splits.
    pub fn generate(&self) -> Result<TaskData> {
        if self.num_classes < 2 {
            return Err(invalid_config("num_classes", "must be at least 2"));
        }
        if self.input_dim == 0 {
            return Err(invalid_config("input_dim", "must be positive"));
        }
        for (field, size) in [
            ("train_size", self.train_size),
            ("dev_size", self.dev_size),
            ("test_size", self.test_size),
        ] {
            if size == 0 {
                return Err(invalid_config(field, "must be positive"));
            }
        }
        if !(0.0..1.0).contains(&self.label_noise) {
            return Err(invalid_config("label_noise", "must be in [0, 1)"));
        }
        if !(self.separation.is_finite() && self.separation > 0.0) {
            return Err(invalid_config("separation", "must be positive and finite"));
        }
        // Each instance: its inputs as f32, twice (the generated vector and the tensor
        // made from it), and its label as i64.
        let instances = self.train_size as u128 + self.dev_size as u128 + self.test_size as u128;
        crate::memory::ensure_fits(
            "train_size",
            "the synthetic splits (train_size + dev_size + test_size instances of input_dim floats)",
            instances * (self.input_dim as u128 * 8 + 8),
        )?;
        let mut rng = stream_rng(self.data_seed, Stream::Data);
        let centres: Vec<f32> = (0..self.num_classes * self.input_dim)
            .map(|_| (self.separation * normal(&mut rng)) as f32)
            .collect();
        let train = self.split(
            "synthetic/train",
            self.train_size,
            self.label_noise,
            &centres,
            &mut rng,
        )?;
        let dev = self.split("synthetic/dev", self.dev_size, 0.0, &centres, &mut rng)?;
        let test = self.split("synthetic/test", self.test_size, 0.0, &centres, &mut rng)?;
        Ok(TaskData { train, dev, test })
    }

    fn split(
        &self,
        name: &str,
        n: usize,
        label_noise: f64,
        centres: &[f32],
        rng: &mut ChaCha8Rng,
    ) -> Result<Dataset> {
        let d = self.input_dim;
        let c = self.num_classes;
        let mut inputs = Vec::with_capacity(n * d);
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            let class = rng.gen_range(0..c);
            // Per-instance spread: some instances sit at their centre, others far out.
            let spread = rng.gen_range(0.5..1.5);
            for j in 0..d {
                inputs.push(centres[class * d + j] + (spread * normal(rng)) as f32);
            }
            let label = if rng.gen_bool(label_noise) {
                (class + rng.gen_range(1..c)) % c
            } else {
                class
            };
            labels.push(label as i64);
        }
        let inputs = Tensor::from_slice(&inputs).view([n as i64, d as i64]);
        Dataset::new(name, inputs, Tensor::from_slice(&labels), c)
    }
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    StandardNormal.sample(rng)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_seeded() {
        let config = SyntheticConfig {
            train_size: 50,
            dev_size: 10,
            test_size: 10,
            ..Default::default()
        };
        let a = config.generate().unwrap();
        let b = config.generate().unwrap();
        assert!(a.train.inputs().equal(b.train.inputs()));
        assert!(a.train.labels().equal(b.train.labels()));
        let other = SyntheticConfig {
            data_seed: 1,
            ..config.clone()
        }
        .generate()
        .unwrap();
        assert!(!a.train.inputs().equal(other.train.inputs()));
        assert_eq!(a.train.input_shape(), vec![32]);
    }

    #[test]
    fn invalid_values_are_errors() {
        let bad = SyntheticConfig {
            label_noise: 1.5,
            ..Default::default()
        };
        assert!(bad.generate().is_err());
        let bad = SyntheticConfig {
            train_size: 0,
            ..Default::default()
        };
        assert!(bad.generate().is_err());
    }
}
