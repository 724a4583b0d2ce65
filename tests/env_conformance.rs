//! `check_env` passes on the teaching environment and fails on broken environments.

mod common;

use l2t::envs::spaces::{BoxSpace, MultiBinary, Space};
use l2t::envs::{check_env, CheckOptions, Env, EnvError, LossScaling, Step, TeachingConfig};
use ndarray::{Array1, ArrayD, IxDyn};

#[test]
fn teaching_env_passes_check_env() {
    let mut env = common::tiny_env(common::tiny_config());
    check_env(&mut env, &CheckOptions::default()).expect("teaching env conforms");
}

#[test]
fn teaching_env_with_rank_features_passes_check_env() {
    let config = TeachingConfig {
        loss_scaling: LossScaling::Rank,
        ..common::tiny_config()
    };
    let mut env = common::tiny_env(config);
    check_env(&mut env, &CheckOptions::default()).expect("teaching env conforms");
}

#[test]
fn truncation_by_incoming_batches_is_seen_by_check_env() {
    // An unreachable threshold: the episode must still end through a budget.
    let config = TeachingConfig {
        max_incoming_batches: Some(30),
        ..common::tiny_config()
    }
    .with_tau(1.0);
    let mut env = common::tiny_env(config);
    check_env(&mut env, &CheckOptions::default()).expect("ends by truncation");
}

/// A toy env: observation = one number in [0, 1] from the seed; ends after 3 steps.
/// Each flag breaks one promise of the contract.
struct ToyEnv {
    ignores_seed: bool,
    leaves_space: bool,
    steps_after_end: bool,
    never_ends: bool,
    state: f32,
    steps: usize,
    space: BoxSpace,
    actions: MultiBinary,
}

impl ToyEnv {
    fn new() -> Self {
        Self {
            ignores_seed: false,
            leaves_space: false,
            steps_after_end: false,
            never_ends: false,
            state: 0.0,
            steps: 0,
            space: BoxSpace::new(ArrayD::zeros(IxDyn(&[1])), ArrayD::ones(IxDyn(&[1]))),
            actions: MultiBinary(2),
        }
    }

    fn observation(&self) -> ArrayD<f32> {
        let value = if self.leaves_space { 2.0 } else { self.state };
        ArrayD::from_elem(IxDyn(&[1]), value)
    }
}

impl Env for ToyEnv {
    type Observation = ArrayD<f32>;
    type Action = Array1<bool>;
    type Info = ();
    type ObservationSpace = BoxSpace;
    type ActionSpace = MultiBinary;

    fn observation_space(&self) -> &BoxSpace {
        &self.space
    }

    fn action_space(&self) -> &MultiBinary {
        &self.actions
    }

    fn reset(&mut self, seed: Option<u64>) -> l2t::envs::Result<(ArrayD<f32>, ())> {
        if let Some(seed) = seed {
            if !self.ignores_seed {
                self.state = (seed % 100) as f32 / 100.0;
            }
        }
        self.steps = 0;
        Ok((self.observation(), ()))
    }

    fn step(&mut self, action: &Array1<bool>) -> l2t::envs::Result<Step<ArrayD<f32>, ()>> {
        if !self.actions.contains(action) {
            return Err(EnvError::InvalidAction("length".into()));
        }
        if self.steps >= 3 && !self.steps_after_end && !self.never_ends {
            return Err(EnvError::EpisodeEnded);
        }
        self.steps += 1;
        Ok(Step {
            observation: self.observation(),
            reward: 1.0,
            terminated: self.steps >= 3 && !self.never_ends,
            truncated: false,
            info: (),
        })
    }
}

#[test]
fn a_correct_toy_env_passes() {
    check_env(&mut ToyEnv::new(), &CheckOptions::default()).expect("toy env conforms");
}

#[test]
fn check_env_catches_each_broken_promise() {
    type Breakage = fn(&mut ToyEnv);
    let cases: [(&str, Breakage); 4] = [
        ("different seed", |e| e.ignores_seed = true),
        ("inside the observation space", |e| e.leaves_space = true),
        ("after the episode ended", |e| e.steps_after_end = true),
        ("the episode ends", |e| e.never_ends = true),
    ];
    for (expected, breakage) in cases {
        let mut env = ToyEnv::new();
        breakage(&mut env);
        let options = CheckOptions {
            max_episode_steps: 50,
            ..CheckOptions::default()
        };
        let failure = check_env(&mut env, &options).expect_err("broken env must fail");
        assert!(
            failure.to_string().contains(expected),
            "expected a failure about `{expected}`, got: {failure}"
        );
    }
}
