//! Compute accounting (issue 34): every step of the tiny env, under any keep-masks,
//! counts exactly the FLOPs its definition gives: one forward per incoming row
//! (scoring); one backward and one optimizer step per update, with a forward of its own
//! only for a student that cannot reuse the scoring forward (training); one forward per
//! dev row evaluated (measurement); and C_tau, the training compute when tau is passed.

mod common;

use ndarray::Array1;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

use l2t::envs::{Env, TeachingEnv};

/// Runs one episode of `env` from `seed` under masks keeping each row with
/// `keep_share`, checking the compute of every info against its definition.
fn check_episode(env: &mut TeachingEnv, seed: u64, keep_share: f64, reuses: bool) -> bool {
    let flops = env.flops();
    let m = env.config().batch_size as u64;
    let dev = env.dev_data().len() as u64;
    let eval_every = env.config().eval_every;
    let per_update = m * flops.backward_per_row
        + flops.optimizer_step
        + if reuses { 0 } else { m * flops.forward_per_row };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (_, mut info) = env.reset(Some(seed)).unwrap();
    let mut reached_tau = false;
    let mut done = false;
    loop {
        // Batches observed: the ones handed so far and the one being shown.
        let observed = info.incoming_batches as u64 + 1;
        assert_eq!(info.compute.scoring, observed * m * flops.forward_per_row);
        assert_eq!(info.compute.training, info.iteration as u64 * per_update);
        let evaluations = 1 + (info.iteration / eval_every) as u64;
        assert_eq!(
            info.compute.measurement,
            evaluations * dev * flops.forward_per_row
        );
        if let Some(i_tau) = info.iterations_to_tau {
            let c_tau = info.compute_to_tau.expect("C_tau with i_tau");
            // Tau was passed in the step of update i_tau: its batch was scored, the
            // next one not yet.
            assert_eq!(
                (c_tau - i_tau as u64 * per_update) % (m * flops.forward_per_row),
                0
            );
            assert!(c_tau < info.compute.training_total());
            reached_tau = true;
        } else {
            assert_eq!(info.compute_to_tau, None);
        }
        if done {
            return reached_tau;
        }
        let mask = Array1::from_shape_fn(m as usize, |_| rng.gen_bool(keep_share));
        let step = env.step(&mask).unwrap();
        done = step.done();
        info = step.info;
    }
}

#[test]
fn compute_to_tau_is_the_training_compute_at_the_step_tau_passed() {
    let mut env = common::tiny_env(common::tiny_config());
    assert!(check_episode(&mut env, 1, 1.0, true), "NoTeach reaches tau");
    // With every batch kept whole, each update is one step: C_tau counts i_tau batches.
    let flops = env.flops();
    let (_, _) = env.reset(Some(1)).unwrap();
    let all = Array1::from_elem(8, true);
    let last = loop {
        let step = env.step(&all).unwrap();
        if step.done() {
            break step.info;
        }
    };
    let i_tau = last.iterations_to_tau.unwrap() as u64;
    let per_update = 8 * flops.backward_per_row + flops.optimizer_step;
    assert_eq!(
        last.compute_to_tau,
        Some(i_tau * (8 * flops.forward_per_row + per_update))
    );
    // Test evaluations are measurement.
    let before = env.info().compute.measurement;
    env.evaluate(env.dev_data()).unwrap();
    assert_eq!(
        env.info().compute.measurement,
        before + env.dev_data().len() as u64 * flops.forward_per_row
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    /// Under any keep share, the counts follow their definitions at every step.
    #[test]
    fn every_step_counts_its_flops(seed in 0u64..1000, keep_share in 0.1f64..1.0) {
        let mut env = common::tiny_env(common::tiny_config());
        check_episode(&mut env, seed, keep_share, true);
    }
}

/// The episode summary carries C_tau and the wall-clock to tau without evaluations.
#[test]
fn the_summary_carries_compute_and_unmeasured_time_to_tau() {
    let mut env = common::tiny_env(common::tiny_config());
    let summary = l2t::agents::run_episode(&mut env, &mut l2t::agents::NoTeach, Some(1)).unwrap();
    assert!(summary.terminated);
    let c_tau = summary.compute_to_tau.unwrap();
    assert!(c_tau > 0 && c_tau <= summary.compute.training_total());
    let seconds = summary.unmeasured_seconds_to_tau.unwrap();
    assert!(seconds > 0.0 && seconds < summary.wall_seconds, "{seconds}");
    assert!(env.measurement_seconds() > 0.0);
}
