//! The one rollout-and-learn loop of learned teachers (`train_parallel`): the K episodes
//! of each update rolled out whole on the worker threads of an `EnvPool`, then one
//! update; the same teacher for any number of workers (REINFORCE, with and without its
//! variance reducers, and the actor-critic).

mod common;

use l2t::agents::{
    run_episode, train_parallel, ActorCritic, ActorCriticConfig, AgentError, Baseline, Learner,
    PolicyRollout, PooledEpisode, Reinforce, ReinforceConfig, Teacher, Trajectory,
};
use l2t::envs::{EnvFactory, EnvPool, TeachingConfig, TeachingEnv, TeachingObservation};

const N: usize = 4;

fn config() -> TeachingConfig {
    TeachingConfig {
        max_iterations: 80,
        ..common::tiny_config()
    }
}

fn teacher(episodes_per_update: usize) -> Reinforce {
    let config = ReinforceConfig {
        episodes_per_update,
        seed: 5,
        ..ReinforceConfig::default()
    };
    Reinforce::new(config, &common::tiny_layout()).unwrap()
}

#[test]
fn zero_episodes_per_update_is_refused() {
    let config = ReinforceConfig {
        episodes_per_update: 0,
        ..ReinforceConfig::default()
    };
    let error = Reinforce::new(config, &common::tiny_layout())
        .unwrap_err()
        .to_string();
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
        (
            episodes,
            reinforce.flat_weights().unwrap(),
            reinforce.episodes(),
        )
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
        teacher(N).flat_weights().unwrap(),
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
                summary.unmeasured_seconds_to_tau = summary.unmeasured_seconds_to_tau.map(|_| 0.0);
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
        assert_eq!(rollout.name(), "policy_rollout");
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
    let observation = TeachingObservation {
        features: ndarray::Array2::<f32>::zeros((3, 7)),
        student_state: ndarray::Array1::zeros(3),
        layout: l2t::envs::FeatureLayout::unnamed(7),
    };
    trajectory.record(&observation, &ndarray::Array1::from_elem(3, true));
    let error = reinforce.learn(vec![trajectory]).unwrap_err().to_string();
    assert!(error.contains("13"), "{error}");
    assert_eq!(reinforce.episodes(), 0);
    // So are an empty one and the wrong number of episodes.
    assert!(reinforce.learn(vec![Trajectory::default()]).is_err());
    assert!(reinforce.learn(Vec::new()).is_err());
    assert_eq!(reinforce.episodes(), 0);
}

#[test]
fn the_actor_critic_trains_on_the_pool_the_same_for_any_worker_count() {
    let run = |workers: usize| {
        let mut teacher = ActorCritic::new(
            ActorCriticConfig {
                episodes_per_update: 2,
                seed: 5,
                ..ActorCriticConfig::default()
            },
            common::tiny_env(config()).layout(),
        )
        .unwrap();
        let fresh = common::bits(&teacher.policy().flat_weights().unwrap());
        let mut returns = Vec::new();
        let episodes = train_parallel(
            &mut pool(workers),
            &mut teacher,
            4,
            3,
            |_, update: &[PooledEpisode]| -> Result<(), AgentError> {
                returns.extend(update.iter().map(|e| e.summary.episode_return.to_bits()));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(episodes.len(), 4);
        assert_eq!(teacher.episodes(), 4);
        let weights = common::bits(&teacher.policy().flat_weights().unwrap());
        assert_ne!(weights, fresh, "the actor did not move");
        (returns, weights)
    };
    let one = run(1);
    assert_eq!(run(2), one);
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
            common::tiny_env(config()).layout(),
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
            .unwrap()
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
