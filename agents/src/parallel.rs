//! REINFORCE with its K episodes per update rolled out in parallel, one whole episode
//! per worker thread.
//!
//! Between two updates REINFORCE's policy is fixed, so the K episodes of one update
//! (`episodes_per_update = K`) are independent: each worker of an [`EnvPool`] gets a
//! copy of the policy ([`BernoulliPolicy::try_clone`]) and runs one episode on its own
//! env from reset to end, sampling a_m ~ Bernoulli(phi(1 | s_m)) from the episode's
//! own stream ([`Reinforce::episode_sampling_rng`]); the main thread gathers the K
//! [`Trajectory`]s in episode order and makes the update of [`crate::reinforce`]:
//!
//! ```text
//! L = -(1/K) sum_k (r_k - b) * sum_t sum_m log phi(a_ktm | s_ktm)
//! ```
//!
//! Unlike a vector env ([`crate::episode::train_vectorised`] over a
//! `ThreadedVectorEnv`), the workers do not wait for each other at every step, only
//! once per update: a teaching env's steps cost very different amounts (most only
//! featurise a batch, some train the student, some also evaluate it on the dev split),
//! and a per-step barrier makes every step as slow as the slowest env's.
//!
//! **Determinism.** Episode `i` of a call (counting from 0) resets its env with
//! `seed + i` and samples from the stream keyed by that seed, so the results do not
//! depend on the number of workers W (`tests/reinforce_vectorised.rs`). They differ
//! from `train_vectorised`'s, whose envs share the teacher's one sampling stream.
//!
//! **Throughput.** W workers are busy only when K >= W; K = W (one episode per worker
//! per update) is the natural choice. K = 1, the paper's setting, leaves nothing to
//! parallelise: each episode needs the update of the one before.

use rand_chacha::ChaCha8Rng;

use l2t_envs::{Env, EnvJob, EnvPool, TeachingInfo, TeachingObservation};

use crate::episode::VecEpisode;
use crate::error::Result;
use crate::policy::BernoulliPolicy;
use crate::reinforce::{Reinforce, Trajectory};
use crate::teacher::{KeepMask, Teacher};

/// How one episode rolled out on a worker ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutEnd {
    /// The env's info at the last step.
    pub info: TeachingInfo,
    /// Whether the episode reached its goal (tau) rather than a budget.
    pub terminated: bool,
}

/// Runs one episode of `policy` on `env` from `reset(Some(seed))` to its end, sampling
/// the keep-masks from `sampling_rng`; returns the trajectory and how it ended.
pub fn rollout<E>(
    env: &mut E,
    policy: &BernoulliPolicy,
    sampling_rng: &mut ChaCha8Rng,
    seed: u64,
) -> Result<(Trajectory, RolloutEnd)>
where
    E: Env<Observation = TeachingObservation, Action = KeepMask, Info = TeachingInfo>,
{
    let (mut observation, _info) = env.reset(Some(seed))?;
    let mut trajectory = Trajectory::default();
    loop {
        let keep_mask = policy.sample_features(&observation.features, sampling_rng)?;
        trajectory.record(&observation.features, &keep_mask);
        let step = env.step(&keep_mask)?;
        trajectory.add_reward(step.reward);
        if step.done() {
            return Ok((
                trajectory,
                RolloutEnd {
                    info: step.info,
                    terminated: step.terminated,
                },
            ));
        }
        observation = step.observation;
    }
}

/// Trains `teacher` on `episodes` episodes rolled out on the workers of `pool`, K =
/// `episodes_per_update` at a time (the last round shorter when K does not divide
/// `episodes`; its episodes wait for an update that does not come). Episode `i`
/// resets its env with `seed + i`. Returns one [`VecEpisode`] per episode, in order;
/// `env` is the worker that ran it (`i % W` within its round).
pub fn train_parallel<E>(
    pool: &mut EnvPool<E>,
    teacher: &mut Reinforce,
    episodes: usize,
    seed: u64,
) -> Result<Vec<VecEpisode>>
where
    E: Env<Observation = TeachingObservation, Action = KeepMask, Info = TeachingInfo> + 'static,
{
    teacher.set_training(true);
    let per_update = teacher.config().episodes_per_update;
    let workers = pool.num_workers();
    let mut finished = Vec::with_capacity(episodes);
    while finished.len() < episodes {
        let first = finished.len();
        let round = per_update.min(episodes - first);
        let jobs = (first..first + round)
            .map(|i| {
                let episode_seed = seed.wrapping_add(i as u64);
                let policy = teacher.policy().try_clone()?;
                let mut sampling_rng = teacher.episode_sampling_rng(episode_seed);
                let job: EnvJob<E, Result<(Trajectory, RolloutEnd)>> =
                    Box::new(move |env: &mut E| {
                        rollout(env, &policy, &mut sampling_rng, episode_seed)
                    });
                Ok(job)
            })
            .collect::<Result<Vec<_>>>()?;
        for (j, result) in pool.run(jobs)?.into_iter().enumerate() {
            let (trajectory, end) = result?;
            let episode_return = trajectory.episode_return();
            let update = teacher.learn_from(trajectory)?;
            finished.push(VecEpisode {
                env: j % workers,
                episode_return,
                iterations_to_tau: end.info.iterations_to_tau,
                instances_seen: end.info.instances_seen,
                instances_kept: end.info.instances_kept,
                update,
            });
        }
    }
    teacher.set_training(false);
    Ok(finished)
}
