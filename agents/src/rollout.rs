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

use std::path::Path;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use l2t_envs::seeding::{keyed_rng, Stream};
use l2t_envs::{EnvJob, EnvPool, TeachingEnv, TeachingInfo, TeachingObservation};

use crate::episode::{run_episode, EpisodeSummary, UpdateStats};
use crate::error::{AgentError, Result};
use crate::policy::{BernoulliPolicy, KeepRule};
use crate::teacher::{KeepMask, Teacher};

/// The features s_t, actions a_t, student states and rewards r_t of one episode: what
/// the learned teachers learn from (REINFORCE the return, the actor-critic the states
/// and per-step rewards, PPO the per-step rewards). A [`PolicyRollout`]
/// records one with [`Self::record`] and [`Self::add_reward`] while it teaches.
///
/// Rows of all steps are appended to two flat vectors rather than kept as one small
/// tensor per step: a few amortised allocations per episode instead of two per step,
/// which would otherwise be scattered through the heap between the student's
/// weight-sized temporaries and keep it from reusing their space (glibc fragmentation:
/// peak memory 1.2 GiB instead of about 0.3 GiB on the Fashion-MNIST preset).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trajectory {
    /// s_tm, row-major, `feature_dim` columns.
    features: Vec<f32>,
    /// a_tm in {0, 1}, one per row of `features`.
    actions: Vec<f32>,
    /// Rows of each recorded step (M_t), in step order.
    step_rows: Vec<usize>,
    /// The student-state vector of each recorded step, concatenated.
    states: Vec<f32>,
    /// r_t, one per [`Self::add_reward`] call (once per env step in an episode loop).
    step_rewards: Vec<f64>,
    episode_return: f64,
}

impl Trajectory {
    /// Appends one step: the incoming batch's features s_t (`[M, F]`), the student's
    /// state, and the keep-mask a_t sampled for them.
    pub fn record(&mut self, observation: &TeachingObservation, keep_mask: &KeepMask) {
        let features = &observation.features;
        match features.as_slice() {
            Some(rows) => self.features.extend_from_slice(rows),
            None => self.features.extend(features.iter()),
        }
        self.states.extend(observation.student_state.iter());
        self.actions.extend(BernoulliPolicy::actions_of(keep_mask));
        self.step_rows.push(keep_mask.len());
    }

    /// The student-state vectors of the recorded steps, concatenated in step order.
    pub fn states(&self) -> &[f32] {
        &self.states
    }

    /// Adds the reward of the last step: kept as r_t and added to the return.
    pub fn add_reward(&mut self, reward: f64) {
        self.step_rewards.push(reward);
        self.episode_return += reward;
    }

    /// r_t: the rewards added, in order (one per step when the episode loop adds one
    /// per env step, as [`PolicyRollout`] does).
    pub fn step_rewards(&self) -> &[f64] {
        &self.step_rewards
    }

    /// M_t: the rows (instances) of each recorded step, in order.
    pub fn step_rows(&self) -> &[usize] {
        &self.step_rows
    }

    /// a_tm of every step in {0, 1}, one per row of [`Self::feature_rows`].
    pub fn actions(&self) -> &[f32] {
        &self.actions
    }

    /// The return: the sum of the rewards added.
    pub fn episode_return(&self) -> f64 {
        self.episode_return
    }

    /// Instances recorded (rows of s over all steps).
    pub fn instances(&self) -> usize {
        self.actions.len()
    }

    /// s_tm of every step, row-major (`feature_dim` columns).
    pub fn feature_rows(&self) -> &[f32] {
        &self.features
    }

    /// Instances kept (a_tm = 1).
    pub fn instances_kept(&self) -> usize {
        self.actions.iter().filter(|&&a| a > 0.5).count()
    }
}

/// A frozen policy teaching one episode away from its learner: samples
/// a_m ~ Bernoulli(phi(1 | s_m)) from its own stream and records the trajectory.
pub struct PolicyRollout {
    policy: BernoulliPolicy,
    /// How the policy's scores become a mask (per-row Bernoulli by default).
    rule: KeepRule,
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
            rule: KeepRule::new(None, 1),
            sampling_rng,
            trajectory: Trajectory::default(),
        }
    }

    /// The rollout draws its masks by `rule` (k per batch, a pool of batches, a learned
    /// share) instead of one Bernoulli draw per instance. For learners that use the
    /// episode's return only (ES): the recorded actions are then not Bernoulli draws,
    /// so [`BernoulliPolicy::log_prob`] does not score them.
    pub fn keeping_by(mut self, rule: KeepRule) -> Self {
        self.rule = rule;
        self
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

    fn act(&mut self, observation: &TeachingObservation, info: &TeachingInfo) -> Result<KeepMask> {
        let mask = self.rule.sample(
            &self.policy,
            &observation.features,
            info.incoming_batches == 0,
            &mut self.sampling_rng,
        )?;
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

/// A teacher that learns from whole episodes rolled out away from it, K at a time, in
/// [`train_on`]; it saves what it has learned, so that training resumes and the
/// trained teacher teaches elsewhere. A `Box<dyn Learner>` is also a
/// `Box<dyn Teacher>` (trait upcasting), for teaching.
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
    /// Saves what the teacher has learned to `path`, atomically (each learned teacher
    /// with [`crate::checkpoint::save`]); `l2t_agents::load_teacher` reads any kind back.
    fn save_checkpoint(&self, path: &Path) -> Result<()>;
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
