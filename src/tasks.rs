//! Ready-made teaching tasks: a dataset, a student and the MDP settings that go
//! together.

use serde::{Deserialize, Serialize};
use tch::Device;

use rand::seq::SliceRandom;

use l2t_envs::seeding::{stream_rng, Stream};
use l2t_envs::{
    Dataset, MlpConfig, MlpStudent, OptimizerConfig, Result, SyntheticConfig, TaskData,
    TeachingConfig, TeachingEnv,
};

/// The synthetic task: Gaussian clusters with label noise and an MLP student. Runs in
/// seconds, so tests and examples can train teachers on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticTask {
    /// The data.
    pub data: SyntheticConfig,
    /// Hidden layer widths of the MLP student.
    pub hidden: Vec<usize>,
    /// The student's optimizer.
    pub optimizer: OptimizerConfig,
    /// The MDP.
    pub teaching: TeachingConfig,
}

impl Default for SyntheticTask {
    fn default() -> Self {
        Self {
            data: SyntheticConfig::default(),
            hidden: vec![64],
            optimizer: OptimizerConfig::Adam {
                learning_rate: 1e-3,
                weight_decay: 0.0,
            },
            teaching: TeachingConfig {
                batch_size: 20,
                max_iterations: 2_000,
                eval_every: 5,
                ..TeachingConfig::default()
            }
            .with_tau(0.80),
        }
    }
}

impl SyntheticTask {
    /// Generates the data and builds the environment (student on CPU).
    pub fn build(&self) -> Result<(TeachingEnv, TaskData)> {
        let data = self.data.generate()?;
        let student = MlpStudent::new(
            MlpConfig {
                input_dim: self.data.input_dim,
                hidden: self.hidden.clone(),
                num_classes: self.data.num_classes,
                optimizer: self.optimizer.clone(),
            },
            Device::Cpu,
        )?;
        let env = TeachingEnv::new(
            self.teaching.clone(),
            Box::new(student),
            data.train.shallow_clone(),
            data.dev.shallow_clone(),
        )?;
        Ok((env, data))
    }
}

/// The paper's data protocol over a training set: an even split into a teacher half
/// and a student half, and 5% of the teacher half held out as the reward's dev set.
#[derive(Debug)]
pub struct TeachingSplits {
    /// The teacher half minus the dev set: where the teacher is trained.
    pub teacher_train: Dataset,
    /// D'_dev: 5% of the teacher half, used only for the reward.
    pub dev: Dataset,
    /// The student half: where a trained teacher teaches fresh students.
    pub student_train: Dataset,
}

impl TeachingSplits {
    /// Splits `train` with a permutation drawn from `seed`'s data stream; `dev_share`
    /// of the teacher half becomes the dev set (0.05 in the paper).
    pub fn new(train: &Dataset, dev_share: f64, seed: u64) -> Result<Self> {
        if !(dev_share > 0.0 && dev_share < 1.0) {
            return Err(l2t_envs::EnvError::InvalidConfig {
                field: "dev_share",
                reason: format!("{dev_share} is outside (0, 1)"),
            });
        }
        let mut order: Vec<i64> = (0..train.len() as i64).collect();
        order.shuffle(&mut stream_rng(seed, Stream::Data));
        let half = order.len() / 2;
        let dev_len = ((half as f64) * dev_share).round().max(1.0) as usize;
        let name = train.name();
        Ok(Self {
            dev: train.subset(format!("{name}/dev"), &order[..dev_len])?,
            teacher_train: train.subset(format!("{name}/teacher-half"), &order[dev_len..half])?,
            student_train: train.subset(format!("{name}/student-half"), &order[half..])?,
        })
    }

    /// Splits `train` evenly into the two halves and uses a separately held-out `dev`
    /// split for the reward (the synthetic task, whose dev labels are clean).
    pub fn with_dev(train: &Dataset, dev: Dataset, seed: u64) -> Result<Self> {
        let mut order: Vec<i64> = (0..train.len() as i64).collect();
        order.shuffle(&mut stream_rng(seed, Stream::Data));
        let half = order.len() / 2;
        let name = train.name();
        Ok(Self {
            dev,
            teacher_train: train.subset(format!("{name}/teacher-half"), &order[..half])?,
            student_train: train.subset(format!("{name}/student-half"), &order[half..])?,
        })
    }
}
