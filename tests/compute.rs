//! Compute accounting (issue 34): every step of the tiny env, under any keep-masks,
//! counts exactly the FLOPs its definition gives: one forward per incoming row
//! (scoring); one backward and one optimizer step per update, with a forward of its own
//! only for a student that cannot reuse the scoring forward (training); one forward per
//! dev row evaluated (measurement); and C_tau, the training compute when tau is passed.

mod common;

use ndarray::Array1;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

use l2t::envs::{Dataset, Env, EnvError, Scoring, TeachingConfig, TeachingEnv};

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

/// [`common::tiny_env`] with its 8 features read as images of 2 channels of 2 x 2
/// pixels, scored as `scoring` says.
fn image_env(scoring: Scoring) -> Result<TeachingEnv, EnvError> {
    let data = common::tiny_data();
    let images = |d: &Dataset| {
        Dataset::new(
            d.name(),
            d.inputs().view([-1, 2, 2, 2]),
            d.labels().shallow_clone(),
            d.num_classes(),
        )
        .unwrap()
    };
    let config = TeachingConfig {
        scoring,
        ..common::tiny_config()
    };
    TeachingEnv::new(
        config,
        common::tiny_student(8),
        images(&data.train),
        images(&data.dev),
    )
}

/// Under `Scoring::Pooled`, every incoming row costs the proxy's forward (scoring), and
/// every update its rows' full forward and backward, the optimizer step and the block
/// sums of the first layer's weights (training): there is no scoring forward to reuse.
#[test]
fn pooled_scoring_counts_the_proxy_forward_and_a_full_update() {
    let mut env = image_env(Scoring::Pooled { k: 2 }).unwrap();
    let flops = env.flops();
    let pooled = env.student().pooled_flops(env.train_data(), 2).unwrap();
    // 2 channels of one block each, to 16 hidden units, to 4 classes.
    assert_eq!(pooled.forward_per_row, (2 * 2 * 16 + 16) + (2 * 16 * 4 + 4));
    assert!(pooled.forward_per_row < flops.forward_per_row);
    let m = env.config().batch_size as u64;
    let per_update = m * (flops.forward_per_row + flops.backward_per_row)
        + flops.optimizer_step
        + pooled.per_update;
    // The features come from the proxy: not those of the full forward.
    let (first, _) = image_env(Scoring::Full).unwrap().reset(Some(4)).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let (observation, mut info) = env.reset(Some(4)).unwrap();
    let loss = observation.layout.column("loss").unwrap();
    let gap = (&observation.at(&loss).unwrap() - &first.at(&loss).unwrap())
        .iter()
        .fold(0f32, |g, d| g.max(d.abs()));
    assert!(gap > 1e-3, "{gap}");
    for _ in 0..60 {
        let observed = info.incoming_batches as u64 + 1;
        assert_eq!(info.compute.scoring, observed * m * pooled.forward_per_row);
        assert_eq!(info.compute.training, info.iteration as u64 * per_update);
        let mask = Array1::from_shape_fn(m as usize, |_| rng.gen_bool(0.4));
        let step = env.step(&mask).unwrap();
        if step.done() {
            break;
        }
        info = step.info;
    }
    assert!(
        info.iteration > 5,
        "the episode trained: {}",
        info.iteration
    );
}

/// At k = 1 the proxy is the student's forward: the observations of pooled scoring are
/// those of full scoring (to float rounding: another matmul), and under the same masks
/// both students train through the same updates.
#[test]
fn pooled_scoring_at_k_1_observes_what_full_scoring_observes() {
    let mut full = image_env(Scoring::Full).unwrap();
    let mut pooled = image_env(Scoring::Pooled { k: 1 }).unwrap();
    let (mut a, _) = full.reset(Some(9)).unwrap();
    let (mut b, _) = pooled.reset(Some(9)).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    for step in 0..80 {
        let gap = (&a.features - &b.features)
            .iter()
            .fold(0f32, |g, d| g.max(d.abs()));
        assert!(gap < 1e-4, "step {step}: features {gap} apart");
        assert_eq!(a.student_state, b.student_state, "step {step}");
        let mask = Array1::from_shape_fn(8, |_| rng.gen_bool(0.5));
        let (sa, sb) = (full.step(&mask).unwrap(), pooled.step(&mask).unwrap());
        assert_eq!(sa.info.iteration, sb.info.iteration);
        assert_eq!(sa.info.dev_accuracy, sb.info.dev_accuracy, "step {step}");
        if sa.done() {
            assert!(sb.done());
            return;
        }
        (a, b) = (sa.observation, sb.observation);
    }
}

/// A proxy that cannot be built is refused when the env is made, naming the field.
#[test]
fn pooled_scoring_is_refused_by_field_where_no_proxy_exists() {
    let field = |scoring| match image_env(scoring) {
        Err(EnvError::InvalidConfig { field, .. }) => field,
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("{scoring:?} accepted"),
    };
    assert_eq!(field(Scoring::Pooled { k: 0 }), "scoring.k");
    assert_eq!(field(Scoring::Pooled { k: 3 }), "scoring.k");
    // Flat features are no image.
    let data = common::tiny_data();
    let config = TeachingConfig {
        scoring: Scoring::Pooled { k: 2 },
        ..common::tiny_config()
    };
    match TeachingEnv::new(config, common::tiny_student(8), data.train, data.dev) {
        Err(EnvError::InvalidConfig { field, .. }) => assert_eq!(field, "scoring"),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("flat inputs accepted"),
    }
}

/// `scoring` is left out of a serialised config while it is the default, so configs and
/// run folders written before it read back unchanged; a pooled proxy round-trips.
#[test]
fn scoring_serialises_only_when_pooled() {
    let full = serde_json::to_value(TeachingConfig::default()).unwrap();
    assert!(full.get("scoring").is_none(), "{full}");
    let pooled = TeachingConfig {
        scoring: Scoring::Pooled { k: 2 },
        ..TeachingConfig::default()
    };
    let value = serde_json::to_value(&pooled).unwrap();
    assert_eq!(
        value["scoring"],
        serde_json::json!({"kind": "pooled", "k": 2})
    );
    let back: TeachingConfig = serde_json::from_value(value).unwrap();
    assert_eq!(back, pooled);
}
