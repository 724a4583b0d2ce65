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

#[test]
fn the_irreducible_loss_column_holds_each_incoming_instances_holdout_loss() {
    let data = common::tiny_data();
    let n = data.train.len();
    let losses: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.5).collect();
    let train = data
        .train
        .shallow_clone()
        .with_irreducible_loss(losses.clone())
        .unwrap();
    let mut env = l2t::envs::TeachingEnv::new(
        common::tiny_config(),
        common::tiny_student(8),
        train.shallow_clone(),
        data.dev.shallow_clone(),
    )
    .unwrap();
    check_env(&mut env, &CheckOptions::default()).expect("conforms with the extra column");
    let column = env.layout().column("irreducible_loss").unwrap().index();
    // After the label one-hot (4 classes), before the student state.
    assert_eq!(column, 4);
    assert_eq!(env.layout().column("iteration").unwrap().index(), 5);
    let scale = 2.0 * 4f32.ln();
    let (mut obs, mut info) = env.reset(Some(3)).unwrap();
    for _ in 0..5 {
        assert_eq!(info.incoming_indices.len(), obs.features.nrows());
        for (row, &index) in info.incoming_indices.iter().enumerate() {
            let expected = (losses[index as usize] / scale).clamp(0.0, 1.0);
            assert_eq!(obs.features[[row, column]], expected);
        }
        let step = env
            .step(&Array1::from_elem(obs.features.nrows(), true))
            .unwrap();
        (obs, info) = (step.observation, step.info);
    }
    // A subset keeps each instance's loss.
    let subset = train.subset("first-ten", &[9, 3]).unwrap();
    assert_eq!(subset.irreducible_loss().unwrap(), &[losses[9], losses[3]]);
    // Wrong lengths and non-finite losses are refused, naming the split.
    let message = data
        .train
        .shallow_clone()
        .with_irreducible_loss(vec![0.0; 3])
        .unwrap_err()
        .to_string();
    assert!(message.contains("3 irreducible losses"), "{message}");
    let mut bad = losses;
    bad[0] = f32::NAN;
    assert!(data
        .train
        .shallow_clone()
        .with_irreducible_loss(bad)
        .is_err());
}
