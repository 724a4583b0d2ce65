//! The reward is -ln(i_tau / T') at the step tau is first exceeded and 0 elsewhere;
//! the weighted multi-threshold variant pays each threshold once; RL4Data's variant
//! counts accepted instances instead of iterations; the dev-accuracy
//! area pays acc * eval_every / H at each evaluation up to the horizon H, and the
//! dev-loss reward the loss's drop since the last evaluation; the compute reward is
//! -ln(C_tau / (T' c)), the paper's under NoTeach, and the compute area pays dev accuracy
//! per FLOP up to its budget.

mod common;

use approx::assert_relative_eq;
use l2t::envs::{Env, EnvError, Reward, TeachingConfig, TeachingInfo, Threshold};
use ndarray::Array1;

/// One episode keeping everything, from `reset(Some(4))`.
struct KeepAll {
    /// The info of the reset.
    reset: TeachingInfo,
    /// Every step's reward and info.
    steps: Vec<(f64, TeachingInfo)>,
    terminated: bool,
    truncated: bool,
}

fn keep_all(config: TeachingConfig) -> KeepAll {
    let mut env = common::tiny_env(config);
    let (_, reset) = env.reset(Some(4)).unwrap();
    let mut steps = Vec::new();
    loop {
        let step = env.step(&Array1::from_elem(8, true)).unwrap();
        let done = step.done();
        let (terminated, truncated) = (step.terminated, step.truncated);
        steps.push((step.reward, step.info));
        if done {
            return KeepAll {
                reset,
                steps,
                terminated,
                truncated,
            };
        }
    }
}

/// Runs an episode keeping everything; returns (rewards, final info, terminated).
fn keep_all_episode(config: TeachingConfig) -> (Vec<f64>, TeachingInfo, bool) {
    let mut episode = keep_all(config);
    let rewards = episode.steps.iter().map(|(r, _)| *r).collect();
    let (_, last) = episode.steps.pop().expect("at least one step");
    (rewards, last, episode.terminated)
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

#[test]
fn the_area_reward_pays_the_mean_dev_accuracy_and_ends_at_the_horizon() {
    let horizon = 40;
    let config = TeachingConfig {
        reward: Reward::DevAccuracyArea {
            iterations: horizon,
        },
        ..common::tiny_config()
    };
    let eval_every = config.eval_every;
    let episode = keep_all(config);
    let mut accuracies = Vec::new();
    let mut total = 0.0;
    for (reward, info) in &episode.steps {
        total += reward;
        if info.evaluated {
            accuracies.push(info.dev_accuracy);
            assert_relative_eq!(
                *reward,
                info.dev_accuracy * eval_every as f64 / horizon as f64,
                epsilon = 1e-12
            );
        } else {
            assert_eq!(*reward, 0.0, "only evaluations pay");
        }
    }
    // Not at tau = 0.7: the horizon ends the episode.
    assert!(episode.terminated && !episode.truncated);
    assert_eq!(episode.steps.last().unwrap().1.iteration, horizon);
    assert_eq!(accuracies.len(), horizon / eval_every);
    let mean = accuracies.iter().sum::<f64>() / accuracies.len() as f64;
    assert_relative_eq!(total, mean, epsilon = 1e-12);
    // A teacher whose student passed tau = 0.7 before H still runs to H.
    assert!(accuracies.iter().any(|&a| a > 0.7), "{accuracies:?}");
}

#[test]
fn an_area_horizon_off_the_evaluation_grid_or_past_t_prime_is_refused() {
    for (iterations, field) in [
        (0, "reward.iterations"),
        (41, "reward.iterations"),
        (302, "reward.iterations"),
    ] {
        let config = TeachingConfig {
            reward: Reward::DevAccuracyArea { iterations },
            ..common::tiny_config()
        };
        match config.validate() {
            Err(EnvError::InvalidConfig { field: named, .. }) => assert_eq!(named, field),
            other => panic!("horizon {iterations}: {other:?}"),
        }
    }
}

#[test]
fn the_dev_loss_reward_pays_the_loss_drop_and_ends_at_the_horizon() {
    let horizon = 40;
    let config = TeachingConfig {
        reward: Reward::DevLossDecrease {
            iterations: horizon,
        },
        ..common::tiny_config()
    };
    let episode = keep_all(config);
    let first_loss = episode.reset.dev_loss.expect("measured at reset");
    let mut previous = first_loss;
    let mut total = 0.0;
    for (reward, info) in &episode.steps {
        total += reward;
        if info.evaluated {
            let loss = info.dev_loss.expect("measured");
            assert_relative_eq!(*reward, previous - loss, epsilon = 1e-12);
            previous = loss;
        } else {
            assert_eq!(*reward, 0.0, "only evaluations pay");
        }
    }
    assert!(episode.terminated && !episode.truncated);
    assert_eq!(episode.steps.last().unwrap().1.iteration, horizon);
    // The return telescopes to L_0 - L_H, and training lowered the dev loss.
    assert_relative_eq!(total, first_loss - previous, epsilon = 1e-9);
    assert!(total > 0.0, "{total}");
}

#[test]
fn accepted_instances_reward_pays_minus_log_of_the_accepted_share() {
    let config = TeachingConfig {
        reward: Reward::AcceptedInstancesToTau,
        ..common::tiny_config()
    };
    let budget = (config.max_iterations * config.batch_size) as f64;
    let mut env = common::tiny_env(config);
    env.reset(Some(4)).unwrap();
    // Keep 5 of every 8, so instances wait in the buffer between updates.
    let mask = Array1::from_iter((0..8).map(|m| m < 5));
    let mut paid = Vec::new();
    loop {
        let step = env.step(&mask).unwrap();
        if step.reward != 0.0 {
            paid.push((step.reward, step.info.clone()));
        }
        if step.done() {
            assert!(step.terminated, "the tiny task reaches tau");
            break;
        }
    }
    assert_eq!(paid.len(), 1, "paid once, when tau is passed");
    let (reward, info) = &paid[0];
    let i_tau = info.iterations_to_tau.expect("reached");
    // n counts the buffered instances too, so it is not i_tau * M.
    assert_ne!(info.instances_kept, i_tau * 8);
    assert_relative_eq!(
        *reward,
        -(info.instances_kept as f64 / budget).ln(),
        epsilon = 1e-12
    );
}

/// Keeps a share of every batch (alternate rows), for the compute rewards.
/// Returns every step's (reward, info), c (the compute of a plain update), the
/// scoring of one batch, and whether the episode terminated.
fn keep_half_episode(config: TeachingConfig) -> (Vec<(f64, TeachingInfo)>, u64, u64, bool) {
    let mut env = common::tiny_env(config);
    let flops = env.flops();
    let plain = 8 * (flops.forward_per_row + flops.backward_per_row) + flops.optimizer_step;
    env.reset(Some(4)).unwrap();
    let half = Array1::from_shape_fn(8, |i| i % 2 == 0);
    let mut steps = Vec::new();
    loop {
        let step = env.step(&half).unwrap();
        let (done, terminated) = (step.done(), step.terminated);
        steps.push((step.reward, step.info));
        if done {
            return (steps, plain, 8 * flops.forward_per_row, terminated);
        }
    }
}

#[test]
fn the_compute_reward_is_the_papers_under_no_teach_and_charges_scoring() {
    let config = TeachingConfig {
        reward: Reward::ComputeToTau,
        ..common::tiny_config()
    };
    let t_prime = config.max_iterations as f64;
    // Keeping everything, C_tau = i_tau c: the paper's reward.
    let (rewards, info, terminated) = keep_all_episode(config.clone());
    assert!(terminated);
    let i_tau = info.iterations_to_tau.unwrap() as f64;
    assert_relative_eq!(
        rewards.iter().sum::<f64>(),
        -(i_tau / t_prime).ln(),
        epsilon = 1e-12
    );
    // Keeping half, every update costs two batches' scoring: -ln(C_tau / (T' c)).
    let (steps, plain, _, terminated) = keep_half_episode(config);
    assert!(terminated);
    let last = &steps.last().unwrap().1;
    let c_tau = last.compute_to_tau.unwrap() as f64;
    assert!(c_tau > last.iterations_to_tau.unwrap() as f64 * plain as f64);
    let paid: f64 = steps.iter().map(|(r, _)| r).sum();
    assert_relative_eq!(
        paid,
        -(c_tau / (t_prime * plain as f64)).ln(),
        epsilon = 1e-12
    );
}

#[test]
fn the_compute_reward_truncates_at_its_budget_c_max() {
    // A tau no student reaches: the episode runs out of budget. Keeping half, C_max =
    // T' c is spent in about T' / 2 updates (each pays two batches' scoring), so it ends
    // there, truncated with reward 0, not at T' updates.
    let config = TeachingConfig {
        reward: Reward::ComputeToTau,
        thresholds: vec![Threshold {
            accuracy: 1.0,
            weight: 1.0,
        }],
        ..common::tiny_config()
    };
    let t_prime = config.max_iterations;
    let (steps, plain, scoring, terminated) = keep_half_episode(config.clone());
    assert!(!terminated);
    let last = &steps.last().unwrap().1;
    let budget = t_prime as u64 * plain;
    assert!(last.compute.training_total() >= budget, "{last:?}");
    assert!(last.iteration < t_prime, "{} of {t_prime}", last.iteration);
    // The step before had not spent it (its info also counts the scoring of the batch
    // it shows next).
    let before = &steps[steps.len() - 2].1;
    assert!(before.compute.training_total() < budget + scoring);
    assert!(steps.iter().all(|(reward, _)| *reward == 0.0));
    // The other rewards keep T' updates as their budget.
    let (steps, _, _, terminated) = keep_half_episode(TeachingConfig {
        reward: Reward::IterationsToTau,
        ..config
    });
    assert!(!terminated);
    assert_eq!(steps.last().unwrap().1.iteration, t_prime);
}

#[test]
fn the_compute_area_pays_accuracy_per_flop_up_to_its_budget() {
    let horizon = 40;
    let area = |reward| TeachingConfig {
        reward,
        ..common::tiny_config()
    };
    // Under NoTeach it is the iteration area with the same H.
    let (by_compute, _, _) = keep_all_episode(area(Reward::DevAccuracyComputeArea {
        iterations: horizon,
    }));
    let (by_iterations, _, _) = keep_all_episode(area(Reward::DevAccuracyArea {
        iterations: horizon,
    }));
    assert_eq!(by_compute.len(), by_iterations.len());
    for (a, b) in by_compute.iter().zip(&by_iterations) {
        assert_relative_eq!(a, b, epsilon = 1e-12);
    }
    // Keeping half, the budget of 40 plain updates is spent in fewer updates, each
    // evaluation paying acc * (compute since the previous one) / C_H.
    let (steps, plain, shown, terminated) =
        keep_half_episode(area(Reward::DevAccuracyComputeArea {
            iterations: horizon,
        }));
    assert!(terminated);
    let budget = horizon as u64 * plain;
    let last = &steps.last().unwrap().1;
    assert!(last.compute.training_total() >= budget && last.iteration < horizon);
    let mut previous = 0u64;
    let mut total = 0.0;
    for (reward, info) in &steps {
        total += reward;
        if info.evaluated {
            // The evaluation came before the next batch was shown (and scored).
            let now = info.compute.training_total() - shown;
            let slice = now.min(budget) - previous.min(budget);
            assert_relative_eq!(
                *reward,
                info.dev_accuracy * slice as f64 / budget as f64,
                epsilon = 1e-12
            );
            previous = now;
        }
    }
    assert!(total > 0.0 && total <= 1.0);
}
