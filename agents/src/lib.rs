//! Teachers for "Learning to Teach": policies from the teaching observation to a
//! keep-mask, behind one [`Teacher`] trait.
//!
//! - [`NoTeach`], [`RandTeach`], [`SelfPacedLearning`]: the paper's baselines;
//! - [`Reinforce`]: the paper's learned teacher, with its [`BernoulliPolicy`];
//! - [`ActorCritic`]: the same policy with a learned value baseline and optional
//!   potential-based shaping, against REINFORCE's noisy terminal-reward gradient;
//! - [`OnlineBatch`]: online batch selection by loss rank (Loshchilov & Hutter 2015);
//! - [`ImportanceSampling`]: keep probabilities proportional to the loss (Katharopoulos
//!   & Fleuret 2018);
//! - [`RhoLoss`]: keeps the largest reducible holdout loss (Mindermann et al. 2022);
//! - [`TeacherConfig`]: any teacher's config, tagged by `kind`, and its builder;
//! - [`checkpoint`]: saving and loading trained [`Reinforce`], [`ActorCritic`],
//!   [`EvolutionStrategies`] and [`Ppo`] teachers with their [`Adam`] states;
//! - [`run_episode`]: the agent-environment loop;
//! - [`EvolutionStrategies`]: OpenAI-ES over the same policy's weights, antithetic
//!   pairs with common random numbers and rank-normalised returns;
//! - [`Ppo`]: PPO-clip over the same policy, with a critic on each step's mean feature
//!   row and GAE advantages from the env's per-step rewards;
//! - [`train_parallel`]: the one rollout-and-learn loop of every [`Learner`] (REINFORCE,
//!   ES, PPO): each update's episodes rolled out on worker threads.
//!
//! Each teacher is one file, readable top to bottom.

pub mod actor_critic;
pub mod checkpoint;
pub mod config;
pub mod episode;
pub mod error;
pub mod es;
pub mod importance;
pub mod no_teach;
pub mod online_batch;
pub mod parallel;
pub mod policy;
pub mod ppo;
pub mod rand_teach;
pub mod reinforce;
pub mod rho_loss;
pub mod spl;
pub mod teacher;
pub mod weights;

pub use actor_critic::{ActorCritic, ActorCriticConfig};
pub use checkpoint::{checkpoint_episodes, load_teacher, CHECKPOINT_FORMAT, CHECKPOINT_VERSION};
pub use config::TeacherConfig;
pub use episode::{
    run_episode, run_episode_recorded, CurvePoint, EpisodeSummary, LossRankDrops, Recording,
    DROP_WINDOW_STEPS, LOSS_RANK_BUCKETS,
};
pub use error::{AgentError, Result};
pub use es::{CommonRandomNumbers, EsConfig, EvolutionStrategies};
pub use importance::{ImportanceSampling, ImportanceSamplingConfig};
pub use l2t_envs::student::{Adam, AdamState};
pub use no_teach::NoTeach;
pub use online_batch::{OnlineBatch, OnlineBatchConfig, PressureSchedule};
pub use parallel::{
    episode_sampling_rng, plan_episodes, train_on, train_parallel, Learner, PolicyRollout,
    PooledEpisode, Rollout, RolloutJob, Rollouts,
};
pub use policy::BernoulliPolicy;
pub use ppo::{Ppo, PpoConfig};
pub use rand_teach::{RandTeach, RandTeachConfig};
pub use reinforce::{advantages, Baseline, Reinforce, ReinforceConfig, Trajectory};
pub use rho_loss::{RhoLoss, RhoLossConfig};
pub use spl::{SelfPacedLearning, SplConfig};
pub use teacher::{feature_column, KeepMask, Teacher, UpdateStats};
