//! `ThreadedVectorEnv` over `TeachingEnv`s gives, for any number of workers, the same
//! teaching trajectories as the same envs stepped one by one by hand under the same
//! seeds and masks, with same-step autoreset.

mod common;

use l2t::envs::{
    Env, EnvFactory, TeachingConfig, TeachingEnv, TeachingInfo, ThreadedVectorEnv, VecStep,
    VectorEnv,
};
use ndarray::Array1;

const N: usize = 3;

fn config() -> TeachingConfig {
    TeachingConfig {
        max_iterations: 60,
        ..common::tiny_config()
    }
}

/// Env 0 keeps everything (NoTeach, the forward-reuse path); env 1 drops every third
/// instance on odd steps; env 2 keeps half (leftovers and steps without an update).
fn mask(env: usize, step: usize) -> Array1<bool> {
    Array1::from_shape_fn(8, |i| match env {
        0 => true,
        1 => step.is_multiple_of(2) || !i.is_multiple_of(3),
        _ => (i + step).is_multiple_of(2),
    })
}

/// Per step and env: (iteration, terminated, truncated, reward, dev accuracy,
/// iterations_to_tau, whether a final info came back); `steps` vector steps.
type Row = (usize, bool, bool, f64, f64, Option<usize>, bool);

fn run(
    env: &mut dyn VectorEnv<
        Observation = l2t::envs::TeachingObservation,
        Action = Array1<bool>,
        Info = TeachingInfo,
    >,
    steps: usize,
) -> (Vec<Row>, Vec<f32>) {
    let (observations, _) = env.reset(Some(7)).unwrap();
    let mut features: Vec<f32> = observations
        .iter()
        .flat_map(|o| o.features.iter().copied())
        .collect();
    let mut rows = Vec::new();
    for step in 0..steps {
        let actions: Vec<Array1<bool>> = (0..N).map(|i| mask(i, step)).collect();
        let result: VecStep<_, TeachingInfo> = env.step(&actions).unwrap();
        for i in 0..N {
            let info = result.final_infos[i].as_ref().unwrap_or(&result.infos[i]);
            rows.push((
                info.iteration,
                result.terminated[i],
                result.truncated[i],
                result.rewards[i],
                info.dev_accuracy,
                info.iterations_to_tau,
                result.final_infos[i].is_some(),
            ));
            assert_eq!(result.done(i), result.final_observations[i].is_some());
        }
        features.extend(
            result
                .observations
                .iter()
                .flat_map(|o| o.features.iter().copied()),
        );
    }
    (rows, features)
}

/// [`run`] without a vector env: N envs, env `i` reset with seed `7 + i`, each stepped
/// in turn and reset with `None` as soon as its episode ends.
fn run_by_hand(steps: usize) -> (Vec<Row>, Vec<f32>) {
    let mut envs: Vec<TeachingEnv> = (0..N).map(|_| common::tiny_env(config())).collect();
    let mut features = Vec::new();
    for (i, env) in envs.iter_mut().enumerate() {
        let (observation, _) = env.reset(Some(7 + i as u64)).unwrap();
        features.extend(observation.features.iter().copied());
    }
    let mut rows = Vec::new();
    for step in 0..steps {
        for (i, env) in envs.iter_mut().enumerate() {
            let result = env.step(&mask(i, step)).unwrap();
            rows.push((
                result.info.iteration,
                result.terminated,
                result.truncated,
                result.reward,
                result.info.dev_accuracy,
                result.info.iterations_to_tau,
                result.done(),
            ));
            let observation = if result.done() {
                env.reset(None).unwrap().0
            } else {
                result.observation
            };
            features.extend(observation.features.iter().copied());
        }
    }
    (rows, features)
}

fn threaded_env(workers: usize) -> ThreadedVectorEnv<TeachingEnv> {
    let factories = (0..N)
        .map(|_| Box::new(|| Ok(common::tiny_env(config()))) as EnvFactory<TeachingEnv>)
        .collect();
    ThreadedVectorEnv::new(factories, workers).unwrap()
}

#[test]
fn threaded_vector_env_is_bit_identical_to_envs_stepped_by_hand_for_any_worker_count() {
    let (rows, features) = run_by_hand(120);
    // Episodes ended and were reset on the same step.
    assert!(rows.iter().any(|r| r.6), "no episode ended in 120 steps");
    let bits = |f: &[f32]| f.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    for workers in [1, 2, N] {
        let (threaded_rows, threaded_features) = run(&mut threaded_env(workers), 120);
        assert_eq!(threaded_rows, rows, "{workers} workers");
        assert_eq!(
            bits(&threaded_features),
            bits(&features),
            "{workers} workers"
        );
    }
}
