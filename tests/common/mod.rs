//! Small environments shared by the integration tests.

#![allow(dead_code)]

use l2t::envs::{
    MlpConfig, MlpStudent, OptimizerConfig, SyntheticConfig, TaskData, TeachingConfig, TeachingEnv,
};

/// A tiny synthetic task: 400 training instances of 8 features, 4 classes.
pub fn tiny_data() -> TaskData {
    single_thread();
    SyntheticConfig {
        num_classes: 4,
        input_dim: 8,
        train_size: 400,
        dev_size: 100,
        test_size: 100,
        separation: 0.8,
        label_noise: 0.1,
        data_seed: 3,
    }
    .generate()
    .expect("valid synthetic config")
}

/// One libtorch intra-op thread, as the `l2t` command uses: tiny students run several
/// times slower with more threads on a shared 2-core machine.
pub fn single_thread() {
    tch::set_num_threads(1);
}

/// The MLP `input_dim`-16-4 with Adam 1e-2 (input_dim 8 fits [`tiny_data`]).
pub fn tiny_student_config(input_dim: usize) -> MlpConfig {
    MlpConfig {
        input_dim,
        hidden: vec![16],
        num_classes: 4,
        optimizer: OptimizerConfig::Adam {
            learning_rate: 1e-2,
            weight_decay: 0.0,
        },
    }
}

/// An MLP student of [`tiny_student_config`].
pub fn tiny_student(input_dim: usize) -> Box<MlpStudent> {
    single_thread();
    let config = tiny_student_config(input_dim);
    Box::new(MlpStudent::new(config, tch::Device::Cpu).expect("valid student"))
}

/// An environment over [`tiny_data`] with the given MDP settings.
pub fn tiny_env(config: TeachingConfig) -> TeachingEnv {
    let data = tiny_data();
    TeachingEnv::new(config, tiny_student(8), data.train, data.dev).expect("valid env")
}

/// MDP settings for [`tiny_env`]: M = 8, a threshold reached in a few dozen steps.
pub fn tiny_config() -> TeachingConfig {
    TeachingConfig {
        batch_size: 8,
        max_iterations: 300,
        eval_every: 2,
        ..TeachingConfig::default()
    }
    .with_tau(0.7)
}
