//! The rollout-and-learn loop of every learned teacher: the episodes of one update
//! rolled out whole on the worker threads of an [`EnvPool`], then one update.
//!
//! A learned teacher's policy is fixed between two updates, so the episodes of one
//! update are independent. A [`Learner`] plans them ([`Learner::plan_update`]): for
//! each episode an env seed and a [`PolicyRollout`], a frozen copy of a policy
//! ([`BernoulliPolicy::try_clone`], or a perturbed one for evolution strategies) with
//! the episode's own sampling stream. Each job runs [`run_episode`], the one episode
//! loop of the crate, on a worker's env; the main thread gathers the finished
//! episodes in plan order and hands their [`Trajectory`]s to [`Learner::learn`]:
//!
//! ```text
//! for u in updates:
//!     jobs      = learner.plan_update(first_seed + episodes_so_far)   # (seed, frozen policy)
//!     episodes  = pool.run(jobs)                                      # run_episode on W workers
//!     stats     = learner.learn(trajectories(episodes))               # one update
//!     on_update(u, episodes, stats)                                   # logs, checkpoints
//! ```
//!
//! Unlike a vector env, the workers do not wait for each other at every step, only
//! once per update: a teaching env's steps cost very different amounts (most only
//! featurise a batch, some train the student, some also evaluate it on the dev split),
//! and a per-step barrier makes every step as slow as the slowest env's.
//!
//! **Determinism.** A job is a function of its policy, its sampling stream and its env
//! seed only, and [`EnvPool::run`] returns results in job order, so the results do not
//! depend on the number of workers W (`tests/learner_loop.rs`,
//! `tests/evolution.rs`, `tests/ppo.rs`).
//!
//! **Executors.** Where the jobs run is the [`Rollouts`] trait's business: an
//! [`EnvPool`]'s threads ([`train_parallel`]), or processes on several machines (the
//! `l2t` crate's MPI executor), through [`train_on`]. Every executor returns the
//! episodes in plan order, so the update is the same wherever they ran.
//!
//! **Throughput.** W workers are busy only when an update has at least W episodes.

use rand_chacha::ChaCha8Rng;

use l2t_envs::seeding::{keyed_rng, Stream};
use l2t_envs::{EnvJob, EnvPool, TeachingEnv, TeachingInfo, TeachingObservation};

use crate::episode::{run_episode, EpisodeSummary};
use crate::error::{AgentError, Result};
use crate::policy::BernoulliPolicy;
use crate::reinforce::Trajectory;
use crate::teacher::{KeepMask, Teacher, UpdateStats};

/// A frozen policy teaching one episode away from its learner: samples
/// a_m ~ Bernoulli(phi(1 | s_m)) from its own stream and records the trajectory.
pub struct PolicyRollout {
    policy: BernoulliPolicy,
    sampling_rng: ChaCha8Rng,
    trajectory: Trajectory,
}

impl std::fmt::Debug for PolicyRollout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyRollout")
            .field("policy", &self.policy)
            .field("instances", &self.trajectory.instances())
            .finish()
    }
}

impl PolicyRollout {
    /// A rollout of `policy` sampling from `sampling_rng`.
    pub fn new(policy: BernoulliPolicy, sampling_rng: ChaCha8Rng) -> Self {
        Self {
            policy,
            sampling_rng,
            trajectory: Trajectory::default(),
        }
    }

    /// The recorded episode.
    pub fn into_trajectory(self) -> Trajectory {
        self.trajectory
    }
}

impl Teacher for PolicyRollout {
    fn name(&self) -> &str {
        "policy_rollout"
    }

    fn act(&mut self, observation: &TeachingObservation, _info: &TeachingInfo) -> Result<KeepMask> {
        let mask = self
            .policy
            .sample_features(&observation.features, &mut self.sampling_rng)?;
        self.trajectory.record(observation, &mask);
        Ok(mask)
    }

    fn observe(&mut self, reward: f64, _done: bool) -> Result<()> {
        self.trajectory.add_reward(reward);
        Ok(())
    }
}

/// One episode of a planned update: reset the env with `seed`, teach with `rollout`.
#[derive(Debug)]
pub struct RolloutJob {
    /// The env seed (student initialisation and data order).
    pub seed: u64,
    /// The frozen policy and its sampling stream.
    pub rollout: PolicyRollout,
}

/// The action-sampling stream of an episode rolled out away from a teacher seeded
/// `teacher_seed`, keyed by `episode_key` (the episode's env seed): a function of the
/// two only, so an episode samples the same actions whichever thread runs it and
/// whatever ran before.
pub fn episode_sampling_rng(teacher_seed: u64, episode_key: u64) -> ChaCha8Rng {
    keyed_rng(&[teacher_seed, episode_key], Stream::TeacherSampling)
}

/// `episodes` on-policy episodes of a copy of `policy` (REINFORCE's and PPO's plan):
/// episode j is seeded `first_seed + j` and samples from
/// [`episode_sampling_rng`]`(teacher_seed, its seed)`. With `common_student`, every
/// episode is seeded `first_seed` instead (the same student initialisation and data
/// order: common random numbers, so the returns differ by the teacher's choices only)
/// and episode j samples from its own stream keyed by `(teacher_seed, first_seed, j)`.
pub fn plan_episodes(
    policy: &BernoulliPolicy,
    teacher_seed: u64,
    episodes: usize,
    first_seed: u64,
    common_student: bool,
) -> Result<Vec<RolloutJob>> {
    (0..episodes as u64)
        .map(|j| {
            let (seed, sampling_rng) = if common_student {
                let rng = keyed_rng(&[teacher_seed, first_seed, j], Stream::TeacherSampling);
                (first_seed, rng)
            } else {
                let seed = first_seed.wrapping_add(j);
                (seed, episode_sampling_rng(teacher_seed, seed))
            };
            Ok(RolloutJob {
                seed,
                rollout: PolicyRollout::new(policy.try_clone()?, sampling_rng),
            })
        })
        .collect()
}

/// A teacher that learns from whole episodes rolled out away from it, K at a time.
/// [`Teacher::as_learner`] hands it to [`train_parallel`].
pub trait Learner: Teacher {
    /// The episodes of the next update. `first_seed` is the seed the update's first
    /// episode would have if every episode had its own (the loop passes
    /// `first_seed + episodes learned so far`); a learner that shares seeds between
    /// episodes (common random numbers) derives its seeds from it.
    fn plan_update(&mut self, first_seed: u64) -> Result<Vec<RolloutJob>>;
    /// One update from the finished episodes of the last plan, in plan order.
    fn learn(&mut self, episodes: Vec<Trajectory>) -> Result<UpdateStats>;
    /// Episodes learned from so far.
    fn episodes_learned(&self) -> usize;
}

/// One finished episode of [`train_parallel`].
#[derive(Debug, Clone, PartialEq)]
pub struct PooledEpisode {
    /// Its env seed.
    pub seed: u64,
    /// The worker that ran it.
    pub worker: usize,
    /// What happened; `update` is set on the last episode of each update.
    pub summary: EpisodeSummary,
}

/// A finished episode of a planned update: what happened, and what the policy saw
/// and did (the learner's input).
pub type Rollout = (EpisodeSummary, Trajectory);

/// Runs the jobs of one planned update and returns their episodes **in job order**:
/// the executor of [`train_on`]. [`EnvPool`] runs them on its worker threads; the `l2t`
/// crate's MPI executor (feature `mpi`) spreads them over processes. An executor must
/// not change what a job computes (each job is a function of its policy, its sampling
/// stream and its seed), so the update does not depend on where the jobs ran.
pub trait Rollouts {
    /// The jobs' episodes, in job order.
    fn run(&mut self, jobs: Vec<RolloutJob>) -> Result<Vec<Rollout>>;
    /// Parallel workers, for [`PooledEpisode::worker`] (job j is reported on j % W).
    fn workers(&self) -> usize;
}

impl Rollouts for EnvPool<TeachingEnv> {
    fn run(&mut self, jobs: Vec<RolloutJob>) -> Result<Vec<Rollout>> {
        let jobs = jobs
            .into_iter()
            .map(|RolloutJob { seed, mut rollout }| {
                let job: EnvJob<TeachingEnv, Result<Rollout>> =
                    Box::new(move |env: &mut TeachingEnv| {
                        let summary = run_episode(env, &mut rollout, Some(seed))?;
                        Ok((summary, rollout.into_trajectory()))
                    });
                job
            })
            .collect();
        EnvPool::run(self, jobs)
            .map_err(AgentError::from)?
            .into_iter()
            .collect()
    }

    fn workers(&self) -> usize {
        self.num_workers()
    }
}

impl<R: Rollouts + ?Sized> Rollouts for &mut R {
    fn run(&mut self, jobs: Vec<RolloutJob>) -> Result<Vec<Rollout>> {
        (**self).run(jobs)
    }

    fn workers(&self) -> usize {
        (**self).workers()
    }
}

/// Trains `learner` on the workers of `pool` until it has learned from at least
/// `episodes` episodes: [`train_on`] with the pool as executor.
pub fn train_parallel<E: From<AgentError>>(
    pool: &mut EnvPool<TeachingEnv>,
    learner: &mut dyn Learner,
    episodes: usize,
    first_seed: u64,
    on_update: impl FnMut(&dyn Learner, &[PooledEpisode]) -> std::result::Result<(), E>,
) -> std::result::Result<Vec<PooledEpisode>, E> {
    train_on(pool, learner, episodes, first_seed, on_update)
}

/// Trains `learner`, its episodes run by `rollouts`, until it has learned from at least
/// `episodes` episodes (whole updates only: the last one may go past `episodes`).
/// Update `u`'s episodes are planned with `first_seed + episodes learned so far`, so
/// a learner resumed from a checkpoint continues with the seeds it would have had.
/// `on_update` sees the learner after each update and that update's episodes (in plan
/// order), before the next is planned: the place for logs and checkpoints; its error
/// stops training.
pub fn train_on<E: From<AgentError>>(
    rollouts: &mut dyn Rollouts,
    learner: &mut dyn Learner,
    episodes: usize,
    first_seed: u64,
    mut on_update: impl FnMut(&dyn Learner, &[PooledEpisode]) -> std::result::Result<(), E>,
) -> std::result::Result<Vec<PooledEpisode>, E> {
    let workers = rollouts.workers().max(1);
    let mut finished = Vec::new();
    while learner.episodes_learned() < episodes {
        let first = first_seed.wrapping_add(learner.episodes_learned() as u64);
        let plan = learner.plan_update(first)?;
        if plan.is_empty() {
            return Err(AgentError::Observation(
                "the learner planned an update without episodes".into(),
            )
            .into());
        }
        let seeds: Vec<u64> = plan.iter().map(|job| job.seed).collect();
        let count = seeds.len();
        let done = rollouts.run(plan)?;
        if done.len() != count {
            return Err(AgentError::Observation(format!(
                "{count} episodes planned, {} came back",
                done.len()
            ))
            .into());
        }
        let (summaries, trajectories): (Vec<EpisodeSummary>, Vec<Trajectory>) =
            done.into_iter().unzip();
        let stats = learner.learn(trajectories)?;
        let update: Vec<PooledEpisode> = summaries
            .into_iter()
            .zip(seeds)
            .enumerate()
            .map(|(j, (mut summary, seed))| {
                if j + 1 == count {
                    summary.update = Some(stats.clone());
                }
                PooledEpisode {
                    seed,
                    worker: j % workers,
                    summary,
                }
            })
            .collect();
        on_update(&*learner, &update)?;
        finished.extend(update);
    }
    Ok(finished)
}
