//! Bad inputs give typed errors that name the problem, never panics.

mod common;

use l2t::envs::{Dataset, Env, EnvError, TeachingConfig, TeachingEnv};
use ndarray::Array1;

fn config_error(config: TeachingConfig) -> String {
    let data = common::tiny_data();
    let student = common::tiny_student(8);
    match TeachingEnv::new(config, student, data.train, data.dev) {
        Err(e @ EnvError::InvalidConfig { .. }) => e.to_string(),
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

#[test]
fn invalid_config_values_name_their_field() {
    let base = common::tiny_config;
    assert!(config_error(TeachingConfig {
        batch_size: 0,
        ..base()
    })
    .contains("batch_size"));
    assert!(config_error(TeachingConfig {
        max_iterations: 0,
        ..base()
    })
    .contains("max_iterations"));
    assert!(config_error(base().with_tau(0.0)).contains("tau"));
    assert!(config_error(base().with_tau(1.5)).contains("tau"));
    assert!(config_error(base().with_tau(f64::NAN)).contains("tau"));
    assert!(config_error(TeachingConfig {
        eval_every: 0,
        ..base()
    })
    .contains("eval_every"));
    assert!(config_error(TeachingConfig {
        max_incoming_batches: Some(0),
        ..base()
    })
    .contains("max_incoming_batches"));
}

#[test]
fn wrong_mask_length_is_an_error() {
    let mut env = common::tiny_env(common::tiny_config());
    env.reset(Some(1)).unwrap();
    for len in [0, 7, 9, 100] {
        let err = env.step(&Array1::from_elem(len, true)).unwrap_err();
        assert!(matches!(err, EnvError::InvalidAction(_)), "{err}");
        assert!(err.to_string().contains(&len.to_string()));
    }
    // The env is still usable after a rejected action.
    env.step(&Array1::from_elem(8, true)).unwrap();
}

#[test]
fn step_before_reset_and_after_end_are_errors() {
    let mut env = common::tiny_env(common::tiny_config());
    assert!(matches!(
        env.step(&Array1::from_elem(8, true)),
        Err(EnvError::ResetNeeded)
    ));
    env.reset(Some(0)).unwrap();
    let keep_all = Array1::from_elem(8, true);
    loop {
        let step = env.step(&keep_all).unwrap();
        if step.done() {
            break;
        }
    }
    assert!(matches!(env.step(&keep_all), Err(EnvError::EpisodeEnded)));
    // A reset starts a new episode.
    env.reset(None).unwrap();
    env.step(&keep_all).unwrap();
}

#[test]
fn nan_training_loss_is_a_typed_error() {
    let data = common::tiny_data();
    // Corrupt the inputs: every feature NaN, so the first update's loss is NaN.
    let poisoned = Dataset::new(
        "poisoned/train",
        data.train.inputs().full_like(f64::NAN),
        data.train.labels().shallow_clone(),
        4,
    )
    .unwrap();
    let student = common::tiny_student(8);
    let mut env = TeachingEnv::new(common::tiny_config(), student, poisoned, data.dev).unwrap();
    env.reset(Some(0)).unwrap();
    let err = env.step(&Array1::from_elem(8, true)).unwrap_err();
    assert!(
        matches!(err, EnvError::NonFiniteLoss { iteration: 1, .. }),
        "{err}"
    );
    // The episode is over: no silent continuation on a broken student.
    assert!(matches!(
        env.step(&Array1::from_elem(8, true)),
        Err(EnvError::EpisodeEnded)
    ));
}

#[test]
fn mismatched_student_and_data_are_errors() {
    let data = common::tiny_data();
    let student = common::tiny_student(9);
    let err = TeachingEnv::new(common::tiny_config(), student, data.train, data.dev).unwrap_err();
    assert!(err.to_string().contains("input_dim 9"), "{err}");
}
