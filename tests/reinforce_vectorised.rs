//! REINFORCE learning from several episodes per update, over a vector env: one update
//! per K finished episodes, deterministic for a fixed number of envs, and the same
//! algorithm with either vector env.

mod common;

use l2t::agents::{train_vectorised, Reinforce, ReinforceConfig};
use l2t::envs::{
    BatchedTeachingEnv, EnvFactory, SyncVectorEnv, TeachingConfig, TeachingEnv, ThreadedVectorEnv,
};

const N: usize = 4;

fn config() -> TeachingConfig {
    TeachingConfig {
        max_iterations: 80,
        ..common::tiny_config()
    }
}

fn batched_env() -> BatchedTeachingEnv {
    let data = common::tiny_data();
    let student = common::tiny_student_config(8);
    BatchedTeachingEnv::new(config(), student, N, data.train, data.dev, tch::Device::Cpu).unwrap()
}

fn teacher(episodes_per_update: usize) -> Reinforce {
    let config = ReinforceConfig {
        episodes_per_update,
        seed: 5,
        ..ReinforceConfig::default()
    };
    Reinforce::new(config, 13).unwrap()
}

#[test]
fn one_update_per_k_finished_episodes_and_reruns_are_identical() {
    let run = || {
        let mut env = batched_env();
        let mut reinforce = teacher(N);
        let episodes = train_vectorised(&mut env, &mut reinforce, 12, 3).unwrap();
        (episodes, reinforce.flat_weights(), reinforce.episodes())
    };
    let (episodes, weights, learned) = run();
    assert_eq!(episodes.len(), 12);
    // An update after every 4th finished episode.
    let updates: Vec<usize> = episodes
        .iter()
        .enumerate()
        .filter(|(_, e)| e.update.is_some())
        .map(|(k, _)| k)
        .collect();
    assert_eq!(updates, vec![3, 7, 11]);
    assert_eq!(learned, 12);
    // Every env contributed episodes.
    for i in 0..N {
        assert!(episodes.iter().any(|e| e.env == i), "env {i}");
    }
    let fresh = teacher(N).flat_weights();
    assert_ne!(weights, fresh, "the policy did not move");
    // Bit-identical rerun.
    let (episodes_again, weights_again, _) = run();
    assert_eq!(episodes, episodes_again);
    let bits = |w: &[f32]| w.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&weights), bits(&weights_again));
}

#[test]
fn the_sync_vector_env_trains_the_same_way() {
    let mut env = SyncVectorEnv::new(
        (0..N)
            .map(|_| common::tiny_env(config()))
            .collect::<Vec<TeachingEnv>>(),
    )
    .unwrap();
    let mut reinforce = teacher(2);
    let episodes = train_vectorised(&mut env, &mut reinforce, 6, 3).unwrap();
    assert_eq!(episodes.len(), 6);
    assert_eq!(episodes.iter().filter(|e| e.update.is_some()).count(), 3);
    assert_eq!(reinforce.episodes(), 6);
    // After training the teacher is in evaluation mode with nothing pending.
    assert!(episodes
        .iter()
        .all(|e| e.instances_kept <= e.instances_seen));
}

#[test]
fn threaded_workers_train_the_teacher_as_the_sync_vector_env_does() {
    let sync_weights = {
        let mut env = SyncVectorEnv::new(
            (0..N)
                .map(|_| common::tiny_env(config()))
                .collect::<Vec<TeachingEnv>>(),
        )
        .unwrap();
        let mut reinforce = teacher(2);
        train_vectorised(&mut env, &mut reinforce, 4, 3).unwrap();
        reinforce.flat_weights()
    };
    let factories = (0..N)
        .map(|_| Box::new(|| Ok(common::tiny_env(config()))) as EnvFactory<TeachingEnv>)
        .collect();
    let mut env = ThreadedVectorEnv::new(factories, 2).unwrap();
    let mut reinforce = teacher(2);
    let episodes = train_vectorised(&mut env, &mut reinforce, 4, 3).unwrap();
    assert_eq!(episodes.len(), 4);
    let bits = |w: &[f32]| w.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&reinforce.flat_weights()), bits(&sync_weights));
}

#[test]
fn zero_episodes_per_update_is_refused() {
    let config = ReinforceConfig {
        episodes_per_update: 0,
        ..ReinforceConfig::default()
    };
    let error = Reinforce::new(config, 13).unwrap_err().to_string();
    assert!(error.contains("episodes_per_update"), "{error}");
}
