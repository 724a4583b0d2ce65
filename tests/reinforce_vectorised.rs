//! REINFORCE learning from several episodes per update, over a `ThreadedVectorEnv`: one
//! update per K finished episodes, deterministic for a fixed number of envs and the same
//! for any number of workers; and the K episodes of one update rolled out whole
//! on the worker threads of an `EnvPool` (the `Learner` loop), the same for any number
//! of workers.

mod common;

use l2t::agents::{
    run_episode, train_parallel, train_vectorised, AgentError, Baseline, PolicyRollout,
    PooledEpisode, Reinforce, ReinforceConfig, Teacher, Trajectory,
};
use l2t::envs::{EnvFactory, EnvPool, TeachingConfig, TeachingEnv, ThreadedVectorEnv};

const N: usize = 4;

/// Positions of the episodes that completed an update.
fn update_positions(episodes: &[l2t::agents::VecEpisode]) -> Vec<usize> {
    episodes
        .iter()
        .enumerate()
        .filter(|(_, e)| e.update.is_some())
        .map(|(k, _)| k)
        .collect()
}

fn config() -> TeachingConfig {
    TeachingConfig {
        max_iterations: 80,
        ..common::tiny_config()
    }
}

/// N tiny teaching envs on `workers` worker threads.
fn threaded_env(workers: usize) -> ThreadedVectorEnv<TeachingEnv> {
    let factories = (0..N)
        .map(|_| Box::new(|| Ok(common::tiny_env(config()))) as EnvFactory<TeachingEnv>)
        .collect();
    ThreadedVectorEnv::new(factories, workers).unwrap()
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
        let mut env = threaded_env(2);
        let mut reinforce = teacher(N);
        let episodes = train_vectorised(&mut env, &mut reinforce, 12, 3).unwrap();
        (episodes, reinforce.flat_weights(), reinforce.episodes())
    };
    let (episodes, weights, learned) = run();
    assert_eq!(episodes.len(), 12);
    // An update after every 4th finished episode.
    let updates = update_positions(&episodes);
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
fn threaded_workers_train_the_same_teacher_for_any_worker_count() {
    let bits = |w: &[f32]| w.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let run = |workers: usize| {
        let mut env = threaded_env(workers);
        let mut reinforce = teacher(2);
        let episodes = train_vectorised(&mut env, &mut reinforce, 6, 3).unwrap();
        (
            episodes,
            bits(&reinforce.flat_weights()),
            reinforce.episodes(),
        )
    };
    let (episodes, weights, learned) = run(1);
    assert_eq!(episodes.len(), 6);
    assert_eq!(episodes.iter().filter(|e| e.update.is_some()).count(), 3);
    assert_eq!(learned, 6);
    assert!(episodes
        .iter()
        .all(|e| e.instances_kept <= e.instances_seen));
    for workers in [2, N] {
        let (episodes_w, weights_w, _) = run(workers);
        assert_eq!(episodes_w, episodes, "{workers} workers");
        assert_eq!(weights_w, weights, "{workers} workers");
    }
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

fn pool(workers: usize) -> EnvPool<TeachingEnv> {
    let factories = (0..workers)
        .map(|_| Box::new(|| Ok(common::tiny_env(config()))) as EnvFactory<TeachingEnv>)
        .collect();
    EnvPool::new(factories).unwrap()
}

#[test]
fn parallel_rollouts_train_the_same_teacher_for_any_worker_count() {
    let run = |workers: usize| {
        let mut reinforce = teacher(N);
        let mut updates_seen = 0;
        let episodes = train_parallel(
            &mut pool(workers),
            &mut reinforce,
            10,
            3,
            |_, update: &[PooledEpisode]| -> Result<(), AgentError> {
                assert_eq!(update.len(), N);
                updates_seen += 1;
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(updates_seen, 3);
        (episodes, reinforce.flat_weights(), reinforce.episodes())
    };
    let bits = |w: &[f32]| w.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let (episodes, weights, learned) = run(1);
    // Whole updates only: 10 episodes asked, 3 updates of 4 run.
    assert_eq!(episodes.len(), 12);
    let updates: Vec<usize> = episodes
        .iter()
        .enumerate()
        .filter(|(_, e)| e.summary.update.is_some())
        .map(|(k, _)| k)
        .collect();
    assert_eq!(updates, vec![3, 7, 11]);
    assert_eq!(learned, 12);
    let seeds: Vec<u64> = episodes.iter().map(|e| e.seed).collect();
    assert_eq!(seeds, (3..15).collect::<Vec<u64>>());
    assert_ne!(
        weights,
        teacher(N).flat_weights(),
        "the policy did not move"
    );
    assert!(episodes
        .iter()
        .all(|e| e.summary.instances_kept <= e.summary.instances_seen
            && e.summary.instances_seen > 0));
    for workers in [2, 3] {
        let (other, other_weights, other_learned) = run(workers);
        assert_eq!(other_learned, learned);
        assert_eq!(bits(&other_weights), bits(&weights), "{workers} workers");
        for (k, (a, b)) in episodes.iter().zip(&other).enumerate() {
            assert_eq!(b.worker, k % N % workers, "episode {k}");
            let strip = |e: &PooledEpisode| {
                let mut summary = e.summary.clone();
                summary.wall_seconds = 0.0;
                for point in &mut summary.curve {
                    point.seconds = 0.0;
                }
                (e.seed, summary)
            };
            assert_eq!(strip(a), strip(b), "episode {k}, {workers} workers");
        }
    }
}

#[test]
fn a_rollout_is_a_function_of_its_policy_stream_and_seed() {
    let reinforce = teacher(1);
    let once = |env: &mut TeachingEnv, seed: u64| {
        let mut rollout = PolicyRollout::new(
            reinforce.policy().try_clone().unwrap(),
            reinforce.episode_sampling_rng(seed),
        );
        assert_eq!(rollout.name(), "PolicyRollout");
        let summary = run_episode(env, &mut rollout, Some(seed)).unwrap();
        (rollout.into_trajectory(), summary)
    };
    let mut env = common::tiny_env(config());
    let (first, summary) = once(&mut env, 11);
    assert!(first.instances() > 0);
    assert_eq!(summary.instances_seen, first.instances());
    assert_eq!(summary.instances_kept, first.instances_kept());
    assert_eq!(summary.episode_return, first.episode_return());
    // Another episode in between changes nothing: the env is reseeded, the stream is
    // the episode's own.
    let (other, _) = once(&mut env, 12);
    assert_ne!(other, first);
    assert_eq!(once(&mut env, 11).0, first);
    assert_eq!(once(&mut common::tiny_env(config()), 11).0, first);
}

#[test]
fn a_trajectory_of_the_wrong_width_is_refused() {
    let mut reinforce = teacher(1);
    let mut trajectory = Trajectory::default();
    let features = ndarray::Array2::<f32>::zeros((3, 7));
    trajectory.record(&features, &ndarray::Array1::from_elem(3, true));
    let error = reinforce.learn_from(trajectory).unwrap_err().to_string();
    assert!(error.contains("13"), "{error}");
    assert_eq!(reinforce.episodes(), 0);
    // An empty one is ignored.
    assert!(reinforce
        .learn_from(Trajectory::default())
        .unwrap()
        .is_none());
}

#[test]
fn common_random_numbers_with_a_leave_one_out_baseline_train_the_same_for_any_worker_count() {
    let run = |workers: usize| {
        let mut reinforce = Reinforce::new(
            ReinforceConfig {
                episodes_per_update: N,
                baseline: Baseline::LeaveOneOut,
                normalize_advantages: true,
                common_random_numbers: true,
                seed: 5,
                ..ReinforceConfig::default()
            },
            common::tiny_env(config()).feature_names().len(),
        )
        .unwrap();
        let episodes = train_parallel(
            &mut pool(workers),
            &mut reinforce,
            2 * N,
            3,
            |_, _: &[PooledEpisode]| -> Result<(), AgentError> { Ok(()) },
        )
        .unwrap();
        let seeds: Vec<u64> = episodes.iter().map(|e| e.seed).collect();
        let kept: Vec<usize> = episodes.iter().map(|e| e.summary.instances_kept).collect();
        let bits: Vec<u32> = reinforce
            .flat_weights()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        (seeds, kept, bits)
    };
    let (seeds, kept, weights) = run(1);
    // The episodes of an update share their student: seeds 3 (first update) and 3 + N.
    let expected: Vec<u64> = [3u64; N].into_iter().chain([3 + N as u64; N]).collect();
    assert_eq!(seeds, expected);
    // ... but not their masks.
    assert!(kept[..N].windows(2).any(|w| w[0] != w[1]), "{kept:?}");
    assert_eq!(run(2), (seeds, kept, weights));
}
