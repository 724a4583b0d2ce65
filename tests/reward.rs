//! The reward is -ln(i_tau / T') at the step tau is first exceeded and 0 elsewhere;
//! the weighted multi-threshold variant pays each threshold once.

mod common;

use approx::assert_relative_eq;
use l2t::envs::{Env, TeachingConfig, Threshold};
use ndarray::Array1;

/// Runs an episode keeping everything; returns (rewards, final info).
fn keep_all_episode(config: TeachingConfig) -> (Vec<f64>, l2t::envs::TeachingInfo, bool) {
    let mut env = common::tiny_env(config);
    env.reset(Some(4)).unwrap();
    let mut rewards = Vec::new();
    loop {
        let step = env.step(&Array1::from_elem(8, true)).unwrap();
        rewards.push(step.reward);
        if step.done() {
            return (rewards, step.info, step.terminated);
        }
    }
}

#[test]
fn single_threshold_pays_minus_log_of_the_iteration_share_once() {
    let config = common::tiny_config();
    let t_prime = config.max_iterations as f64;
    let (rewards, info, terminated) = keep_all_episode(config);
    assert!(terminated, "the tiny task reaches tau = 0.7");
    let i_tau = info.iterations_to_tau.expect("reached");
    assert!(info.best_dev_accuracy > 0.7);
    let paid: Vec<f64> = rewards.iter().copied().filter(|r| *r != 0.0).collect();
    assert_eq!(paid.len(), 1, "exactly one non-zero reward");
    assert_relative_eq!(paid[0], -(i_tau as f64 / t_prime).ln(), epsilon = 1e-12);
    assert_eq!(
        *rewards.last().unwrap(),
        paid[0],
        "paid on the terminal step"
    );
    assert_eq!(info.iteration, i_tau);
}

#[test]
fn weighted_thresholds_each_pay_once_and_the_last_terminates() {
    let config = TeachingConfig {
        thresholds: vec![
            Threshold {
                accuracy: 0.4,
                weight: 0.25,
            },
            Threshold {
                accuracy: 0.7,
                weight: 0.75,
            },
        ],
        ..common::tiny_config()
    };
    let t_prime = config.max_iterations as f64;
    let (rewards, info, terminated) = keep_all_episode(config);
    assert!(terminated);
    let [Some(i_low), Some(i_high)] = info.threshold_iterations[..] else {
        panic!("both thresholds reached: {:?}", info.threshold_iterations);
    };
    assert!(i_low <= i_high);
    let expected = 0.25 * -(i_low as f64 / t_prime).ln() + 0.75 * -(i_high as f64 / t_prime).ln();
    assert_relative_eq!(rewards.iter().sum::<f64>(), expected, epsilon = 1e-12);
    assert_eq!(info.iterations_to_tau, Some(i_high));
}

#[test]
fn an_unreachable_threshold_truncates_with_zero_reward() {
    let config = TeachingConfig {
        max_iterations: 20,
        ..common::tiny_config()
    }
    .with_tau(1.0);
    let (rewards, info, terminated) = keep_all_episode(config);
    assert!(!terminated);
    assert_eq!(info.iteration, 20, "truncated at T'");
    assert!(rewards.iter().all(|r| *r == 0.0));
    assert_eq!(info.iterations_to_tau, None);
}

#[test]
fn a_teacher_that_keeps_nothing_is_truncated_by_the_batch_budget() {
    let config = TeachingConfig {
        max_incoming_batches: Some(25),
        ..common::tiny_config()
    };
    let mut env = common::tiny_env(config);
    env.reset(Some(0)).unwrap();
    let mut steps = 0;
    loop {
        let step = env.step(&Array1::from_elem(8, false)).unwrap();
        steps += 1;
        assert_eq!(step.info.iteration, 0);
        if step.done() {
            assert!(step.truncated && !step.terminated);
            break;
        }
    }
    assert_eq!(steps, 25);
}
