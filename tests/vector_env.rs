//! Vector envs: `SyncVectorEnv` and `ThreadedVectorEnv` over `TeachingEnv`s and the
//! `BatchedTeachingEnv` give the same teaching trajectories under the same seeds and
//! masks.

mod common;

use l2t::envs::{
    BatchedTeachingEnv, EnvError, EnvFactory, MlpConfig, Space, SyncVectorEnv, TeachingConfig,
    TeachingEnv, TeachingInfo, ThreadedVectorEnv, VecStep, VectorEnv,
};
use ndarray::Array1;

const N: usize = 3;

fn student_config() -> MlpConfig {
    common::tiny_student_config(8)
}

fn config() -> TeachingConfig {
    TeachingConfig {
        max_iterations: 60,
        ..common::tiny_config()
    }
}

fn sync_env() -> SyncVectorEnv<TeachingEnv> {
    SyncVectorEnv::new((0..N).map(|_| common::tiny_env(config())).collect()).unwrap()
}

fn batched_env() -> BatchedTeachingEnv {
    let data = common::tiny_data();
    BatchedTeachingEnv::new(
        config(),
        student_config(),
        N,
        data.train,
        data.dev,
        tch::Device::Cpu,
    )
    .unwrap()
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

#[test]
fn sync_vector_env_is_deterministic_and_autoresets() {
    let (a, fa) = run(&mut sync_env(), 120);
    let (b, fb) = run(&mut sync_env(), 120);
    assert_eq!(a, b);
    assert_eq!(
        fa.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        fb.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    // Episodes ended and were reset on the same step.
    assert!(a.iter().any(|r| r.6), "no episode ended in 120 steps");
}

fn threaded_env(workers: usize) -> ThreadedVectorEnv<TeachingEnv> {
    let factories = (0..N)
        .map(|_| Box::new(|| Ok(common::tiny_env(config()))) as EnvFactory<TeachingEnv>)
        .collect();
    ThreadedVectorEnv::new(factories, workers).unwrap()
}

#[test]
fn threaded_vector_env_is_bit_identical_to_sync_for_any_worker_count() {
    let (sync_rows, sync_features) = run(&mut sync_env(), 120);
    let bits = |f: &[f32]| f.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    for workers in [1, 2, N] {
        let (rows, features) = run(&mut threaded_env(workers), 120);
        assert_eq!(rows, sync_rows, "{workers} workers");
        assert_eq!(bits(&features), bits(&sync_features), "{workers} workers");
    }
}

#[test]
fn batched_env_follows_separate_teaching_envs() {
    let steps = 120;
    let (sync_rows, sync_features) = run(&mut sync_env(), steps);
    let (batched_rows, batched_features) = run(&mut batched_env(), steps);
    assert_eq!(sync_rows.len(), batched_rows.len());
    let mut ends = 0;
    for (k, (s, b)) in sync_rows.iter().zip(&batched_rows).enumerate() {
        let (step, env) = (k / N, k % N);
        // The MDP's counters and decisions agree exactly...
        assert_eq!(
            (s.0, s.1, s.2, s.5, s.6),
            (b.0, b.1, b.2, b.5, b.6),
            "step {step} env {env}: {s:?} vs {b:?}"
        );
        assert!((s.3 - b.3).abs() < 1e-9, "reward at step {step} env {env}");
        // ... the accuracies to float tolerance (batched products round differently
        // from one student's; one dev instance is 0.01 here).
        assert!(
            (s.4 - b.4).abs() <= 0.02,
            "dev accuracy at step {step} env {env}: {} vs {}",
            s.4,
            b.4
        );
        ends += usize::from(s.6);
    }
    assert!(
        ends >= N,
        "expected every env to finish an episode, got {ends} ends"
    );
    let worst = sync_features
        .iter()
        .zip(&batched_features)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-2, "features differ by {worst}");
}

#[test]
fn batched_reuse_changes_nothing() {
    let (with, fwith) = run(&mut batched_env(), 80);
    let mut env = batched_env();
    env.set_forward_reuse(false);
    let (without, fwithout) = run(&mut env, 80);
    assert_eq!(with, without);
    assert_eq!(fwith, fwithout);
}

#[test]
fn batched_env_checks_its_actions_and_spaces() {
    let mut env = batched_env();
    assert!(matches!(
        env.step(&vec![Array1::from_elem(8, true); N]),
        Err(EnvError::ResetNeeded)
    ));
    let (observations, infos) = env.reset(Some(0)).unwrap();
    assert_eq!((observations.len(), infos.len()), (N, N));
    assert!(observations
        .iter()
        .all(|o| env.observation_space().contains(o)));
    let err = env
        .step(&vec![Array1::from_elem(8, true); N - 1])
        .unwrap_err();
    assert!(matches!(err, EnvError::InvalidAction(_)), "{err}");
    let mut bad = vec![Array1::from_elem(8, true); N];
    bad[1] = Array1::from_elem(7, true);
    assert!(matches!(env.step(&bad), Err(EnvError::InvalidAction(_))));
    // Nothing moved: a valid step still starts from iteration 0.
    let step = env.step(&vec![Array1::from_elem(8, true); N]).unwrap();
    assert!(step.infos.iter().all(|i| i.iteration == 1));
    assert_eq!(env.feature_names().len(), 4 + 3 + 4 + 2);
}
