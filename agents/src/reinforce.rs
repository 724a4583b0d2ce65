//! REINFORCE, the teacher-training algorithm of "Learning to Teach", as the paper and
//! RL4Data specify it.
//!
//! Policy: [`BernoulliPolicy`] (features -> 12 tanh -> 1 sigmoid, output bias 2.0).
//! Each incoming batch's keep-mask is sampled a_m ~ Bernoulli(phi_theta(1 | s_m)) from
//! the teacher's own ChaCha stream. At the end of an episode with terminal reward r_T
//! (the return, since every other reward is 0):
//!
//! ```text
//! grad J(theta) ~ sum_t sum_m grad log phi_theta(a_tm | s_tm) * (r_T - b)
//! ```
//!
//! minimised as the surrogate loss `L = -(r_T - b) * sum_t sum_m log phi(a_tm | s_tm)`
//! with Adam (lr 0.02, multiplied by 0.7 every 50 episodes; the crate's own [`Adam`],
//! libtorch's algorithm with a state that checkpoints can save). The baseline b is an
//! exponential moving average of past returns, `b <- beta * b + (1 - beta) * r_T`,
//! started at the first episode's return (so the first episode makes no update).

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use l2t_envs::seeding::{stream_rng, Stream};
use l2t_envs::{TeachingInfo, TeachingObservation};

use crate::adam::{Adam, AdamConfig};
use crate::error::{invalid_config, AgentError, Result};
use crate::policy::BernoulliPolicy;
use crate::teacher::{KeepMask, Teacher, UpdateStats};

/// Hyper-parameters of [`Reinforce`]; defaults are the paper's and RL4Data's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReinforceConfig {
    /// Width of the tanh hidden layer.
    pub hidden: usize,
    /// Initial bias of the output unit (2.0: keep about 88% at first).
    pub output_bias: f64,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Factor applied to the learning rate every `lr_decay_every` episodes.
    pub lr_decay: f64,
    /// Episodes between two learning-rate decays.
    pub lr_decay_every: usize,
    /// beta of the moving-average reward baseline.
    pub baseline_momentum: f64,
    /// Seed of the teacher's streams (weights and action sampling).
    pub seed: u64,
}

impl Default for ReinforceConfig {
    fn default() -> Self {
        Self {
            hidden: 12,
            output_bias: 2.0,
            learning_rate: 0.02,
            lr_decay: 0.7,
            lr_decay_every: 50,
            baseline_momentum: 0.9,
            seed: 0,
        }
    }
}

impl ReinforceConfig {
    fn validate(&self) -> Result<()> {
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(invalid_config("learning_rate", "must be positive"));
        }
        if !(self.lr_decay > 0.0 && self.lr_decay <= 1.0) {
            return Err(invalid_config("lr_decay", "must be in (0, 1]"));
        }
        if self.lr_decay_every == 0 {
            return Err(invalid_config("lr_decay_every", "must be at least 1"));
        }
        if !(0.0..1.0).contains(&self.baseline_momentum) {
            return Err(invalid_config("baseline_momentum", "must be in [0, 1)"));
        }
        Ok(())
    }
}

/// The REINFORCE teacher.
pub struct Reinforce {
    pub(crate) config: ReinforceConfig,
    pub(crate) policy: BernoulliPolicy,
    pub(crate) optimizer: Adam,
    pub(crate) sampling_rng: ChaCha8Rng,
    training: bool,
    /// Features s_t and actions a_t of the current episode, one tensor per step.
    episode_features: Vec<Tensor>,
    episode_actions: Vec<Tensor>,
    episode_return: f64,
    /// b: moving average of past returns; `None` before the first episode.
    pub(crate) baseline: Option<f64>,
    pub(crate) episodes: usize,
}

impl std::fmt::Debug for Reinforce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reinforce")
            .field("config", &self.config)
            .field("episodes", &self.episodes)
            .field("baseline", &self.baseline)
            .finish()
    }
}

impl Reinforce {
    /// A REINFORCE teacher for observations with `feature_dim` columns.
    pub fn new(config: ReinforceConfig, feature_dim: usize) -> Result<Self> {
        config.validate()?;
        let mut init_rng = stream_rng(config.seed, Stream::TeacherInit);
        let policy = BernoulliPolicy::new(
            feature_dim,
            config.hidden,
            config.output_bias,
            &mut init_rng,
        )?;
        let optimizer = Adam::for_var_store(
            policy.var_store(),
            config.learning_rate,
            AdamConfig::default(),
        )?;
        Ok(Self {
            sampling_rng: stream_rng(config.seed, Stream::TeacherSampling),
            config,
            policy,
            optimizer,
            training: true,
            episode_features: Vec::new(),
            episode_actions: Vec::new(),
            episode_return: 0.0,
            baseline: None,
            episodes: 0,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &ReinforceConfig {
        &self.config
    }

    /// The policy network.
    pub fn policy(&self) -> &BernoulliPolicy {
        &self.policy
    }

    /// Episodes learned from so far.
    pub fn episodes(&self) -> usize {
        self.episodes
    }

    /// The current reward baseline b.
    pub fn baseline(&self) -> Option<f64> {
        self.baseline
    }

    /// The learning rate after `episodes` episodes: lr * decay^(episodes / every).
    pub fn learning_rate_at(&self, episodes: usize) -> f64 {
        let decays = (episodes / self.config.lr_decay_every) as i32;
        self.config.learning_rate * self.config.lr_decay.powi(decays)
    }

    /// All weights flattened in name order: for determinism checks and inspection.
    pub fn flat_weights(&self) -> Vec<f32> {
        let variables = self.policy.var_store().variables();
        let mut names: Vec<_> = variables.keys().cloned().collect();
        names.sort();
        names
            .iter()
            .flat_map(|n| Vec::<f32>::try_from(variables[n].flatten(0, -1)).unwrap_or_default())
            .collect()
    }
}

impl Teacher for Reinforce {
    fn name(&self) -> &str {
        "L2T-REINFORCE"
    }

    fn act(&mut self, observation: &TeachingObservation, _info: &TeachingInfo) -> Result<KeepMask> {
        let f = observation.features.ncols();
        if f != self.policy.input_dim() {
            return Err(AgentError::Observation(format!(
                "{f} feature columns, the policy was built for {}",
                self.policy.input_dim()
            )));
        }
        let features = BernoulliPolicy::features_tensor(&observation.features);
        // a_m ~ Bernoulli(phi(1 | s_m)), drawn from the teacher's own stream.
        let (mask, actions) = self.policy.sample(&features, &mut self.sampling_rng)?;
        if self.training {
            self.episode_features.push(features);
            self.episode_actions.push(actions);
        }
        Ok(mask)
    }

    fn observe(&mut self, reward: f64, _done: bool) -> Result<()> {
        self.episode_return += reward;
        Ok(())
    }

    fn end_episode(&mut self) -> Result<Option<UpdateStats>> {
        let r_t = std::mem::take(&mut self.episode_return);
        let features = std::mem::take(&mut self.episode_features);
        let actions = std::mem::take(&mut self.episode_actions);
        if !self.training || features.is_empty() {
            return Ok(None);
        }
        let b = self.baseline.unwrap_or(r_t);
        let learning_rate = self.learning_rate_at(self.episodes);
        self.optimizer.set_lr(learning_rate);

        // L = -(r_T - b) * sum_t sum_m log phi(a_tm | s_tm), over the whole episode at once.
        let states = Tensor::cat(&features, 0);
        let actions = Tensor::cat(&actions, 0);
        let log_phi = self.policy.log_prob(&states, &actions).sum(Kind::Float);
        let loss = -(r_t - b) * log_phi;
        self.optimizer.backward_step(&loss)?;

        let beta = self.config.baseline_momentum;
        self.baseline = Some(beta * b + (1.0 - beta) * r_t);
        self.episodes += 1;
        let kept_ratio = actions.mean(Kind::Float).double_value(&[]);
        Ok(Some(UpdateStats {
            episode_return: r_t,
            baseline: b,
            loss: loss.double_value(&[]),
            learning_rate,
            kept_ratio,
        }))
    }

    fn save_checkpoint(&self, path: &std::path::Path) -> Result<()> {
        self.save(path)
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
        self.episode_features.clear();
        self.episode_actions.clear();
        self.episode_return = 0.0;
    }
}
