//! Ready-made teaching tasks: a dataset, a student and the MDP settings that go
//! together.

use serde::{Deserialize, Serialize};
use tch::Device;

use l2t_envs::{
    MlpConfig, MlpStudent, OptimizerConfig, Result, SyntheticConfig, TaskData, TeachingConfig,
    TeachingEnv,
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
