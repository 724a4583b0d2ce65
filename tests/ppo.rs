//! PPO: the same teacher for any number of workers (with the paper's terminal reward
//! and with the dense dev-accuracy area), and
//! an update that climbs a per-step reward it can see.

mod common;

use l2t::agents::{train_parallel, AgentError, Learner, PooledEpisode, Ppo, PpoConfig, Teacher};
use l2t::envs::{EnvPool, Reward, TeachingConfig, TeachingEnv};

fn config(reward: Reward) -> TeachingConfig {
    TeachingConfig {
        max_iterations: 80,
        reward,
        ..common::tiny_config()
    }
}

fn pool(workers: usize, reward: Reward) -> EnvPool<TeachingEnv> {
    common::tiny_pool(workers, config(reward))
}

fn ppo() -> Ppo {
    let config = PpoConfig {
        seed: 9,
        learning_rate: 1e-3,
        ..PpoConfig::default()
    };
    Ppo::new(config, &common::tiny_layout()).unwrap()
}

fn train(ppo: &mut Ppo, workers: usize, episodes: usize, reward: Reward) -> Vec<PooledEpisode> {
    train_parallel(
        &mut pool(workers, reward),
        ppo,
        episodes,
        100,
        |_, _| -> Result<(), AgentError> { Ok(()) },
    )
    .unwrap()
}

#[test]
fn ppo_trains_the_same_teacher_for_any_worker_count() {
    for reward in [
        Reward::IterationsToTau,
        Reward::DevAccuracyArea { iterations: 40 },
    ] {
        let mut reference = ppo();
        let episodes = train(&mut reference, 1, 8, reward);
        assert_eq!(episodes.len(), 8);
        assert_eq!(reference.updates(), 2);
        let seeds: Vec<u64> = episodes.iter().map(|e| e.seed).collect();
        assert_eq!(seeds, (100..108).collect::<Vec<u64>>());
        assert_eq!(
            episodes
                .iter()
                .filter(|e| e.summary.update.is_some())
                .count(),
            2
        );
        assert_ne!(
            common::bits(&reference.flat_weights().unwrap()),
            common::bits(&ppo().flat_weights().unwrap()),
            "{reward:?}: the weights did not move"
        );
        let mut other = ppo();
        let other_episodes = train(&mut other, 2, 8, reward);
        assert_eq!(
            common::bits(&other.flat_weights().unwrap()),
            common::bits(&reference.flat_weights().unwrap()),
            "{reward:?}, 2 workers"
        );
        assert_eq!(
            common::outcomes(&episodes),
            common::outcomes(&other_episodes)
        );
    }
}

#[test]
fn ppo_climbs_a_reward_for_keeping_the_rows_with_a_high_feature() {
    // A step's reward depends on that step's keep decisions only, so gamma = 0 credits
    // each step with its own reward (with gamma = 1 every step also carries the noise
    // of the later steps' draws, and the same 25 updates move the policy less).
    let (gap_before, gap_after) = ascent(PpoConfig {
        learning_rate: 0.02,
        gamma: 0.0,
        ..PpoConfig::default()
    });
    assert!(gap_before.abs() < 0.1, "{gap_before}");
    assert!(gap_after > 0.5, "gap {gap_before} -> {gap_after}");
}

/// The keep-probability gap between rows with a high and a low column 3, before and
/// after 25 updates of a PPO teacher with `teacher_config` on a reward that pays, at
/// each step, its kept rows whose column 3 is above 0.5 minus its kept rows below,
/// over a few batches of random features (ES's test, paid per step).
fn ascent(teacher_config: PpoConfig) -> (f64, f64) {
    let task = common::KeepHighTask::new();
    let mut teacher = Ppo::new(teacher_config, &common::tiny_layout()).unwrap();
    let gap_before = task.gap(teacher.policy());
    for update in 0..25u64 {
        let jobs = teacher.plan_update(4 * update).unwrap();
        let mut trajectories = Vec::new();
        for job in jobs {
            let mut rollout = job.rollout;
            let rewards = task.teach(&mut rollout);
            for (t, reward) in rewards.iter().enumerate() {
                rollout
                    .observe(reward / 64.0, t + 1 == rewards.len())
                    .unwrap();
            }
            trajectories.push(rollout.into_trajectory());
        }
        teacher.learn(trajectories).unwrap();
    }
    (gap_before, task.gap(teacher.policy()))
}
