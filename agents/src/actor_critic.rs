//! An actor-critic teacher (A2C with Monte-Carlo returns), answering L2T's weak spot:
//! one sparse terminal reward shared by thousands of keep/drop decisions makes the
//! REINFORCE gradient very noisy.
//!
//! Same actor as REINFORCE (the per-instance [`BernoulliPolicy`] on the same features),
//! plus two variance reducers:
//!
//! 1. **A learned value baseline.** A critic V_psi(s_t) on the student-state vector
//!    (iteration / T', average training loss, best dev accuracy) predicts the return
//!    still to come from step t. Each step's decisions are credited with the advantage
//!    `A_t = G_t - V_psi(s_t)` instead of the episode-wide `r_T - b`, so the luck of the
//!    episode (data order, initialisation) that is already visible in the student's
//!    state no longer counts as the teacher's merit.
//! 2. **Optional potential-based shaping** (Ng, Harada & Russell 1999) on dev accuracy:
//!    `r'_t = r_t + c * (Phi(s_{t+1}) - Phi(s_t))` with `Phi(s) = best_dev_accuracy(s)`
//!    and `Phi = 0` at the terminal state. The shaping terms telescope to `-c Phi(s_0)`,
//!    which no action changes, so the optimal policy of the terminal objective is kept,
//!    while steps that raised the student's accuracy get immediate credit.
//!
//! The update is made once per episode on that episode's samples, so no clipping is
//! needed; [`crate::ppo`] reuses K episodes' samples for several epochs, with PPO's
//! clipped objective and GAE.
//!
//! Update at the end of each episode, with `G_t = sum_{k >= t} r'_k` (gamma = 1):
//!
//! ```text
//! L_actor  = - sum_t A_t * sum_m log phi(a_tm | s_tm)        A_t = G_t - V(s_t), no gradient
//! L_critic = value_coef * sum_t (G_t - V(s_t))^2
//! ```
//!
//! minimised with Adam (learning rate decayed like REINFORCE's).

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, Device, Kind, Tensor};

use l2t_envs::seeding::{stream_rng, Stream};
use l2t_envs::student::{init_from_stream, torch_default_init};
use l2t_envs::{TeachingInfo, TeachingObservation};

use crate::adam::{Adam, AdamConfig};
use crate::error::{invalid_config, AgentError, Result};
use crate::policy::BernoulliPolicy;
use crate::teacher::{KeepMask, Teacher, UpdateStats};

/// Index of `best_dev_accuracy` in the observation's student-state vector.
const BEST_DEV_ACCURACY: usize = 2;

/// Hyper-parameters of [`ActorCritic`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActorCriticConfig {
    /// Width of the actor's tanh hidden layer (as REINFORCE's).
    pub hidden: usize,
    /// Initial bias of the actor's output (as REINFORCE's: keep about 88% at first).
    pub output_bias: f64,
    /// Width of the critic's tanh hidden layer.
    pub critic_hidden: usize,
    /// Adam learning rate of the actor.
    pub learning_rate: f64,
    /// Adam learning rate of the critic.
    pub critic_learning_rate: f64,
    /// Factor applied to both learning rates every `lr_decay_every` episodes.
    pub lr_decay: f64,
    /// Episodes between two decays.
    pub lr_decay_every: usize,
    /// c: weight of the potential-based shaping on dev accuracy (0 turns it off).
    pub shaping: f64,
    /// Weight of the critic's squared error.
    pub value_coef: f64,
    /// Seed of the teacher's streams.
    pub seed: u64,
}

impl Default for ActorCriticConfig {
    fn default() -> Self {
        Self {
            hidden: 12,
            output_bias: 2.0,
            critic_hidden: 16,
            learning_rate: 0.005,
            critic_learning_rate: 0.01,
            lr_decay: 0.7,
            lr_decay_every: 50,
            shaping: 1.0,
            value_coef: 1.0,
            seed: 0,
        }
    }
}

impl ActorCriticConfig {
    fn validate(&self) -> Result<()> {
        for (field, value) in [
            ("learning_rate", self.learning_rate),
            ("critic_learning_rate", self.critic_learning_rate),
            ("value_coef", self.value_coef),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(invalid_config(field, format!("{value} must be positive")));
            }
        }
        if !(self.shaping.is_finite() && self.shaping >= 0.0) {
            return Err(invalid_config("shaping", "must be finite and >= 0"));
        }
        if !(self.lr_decay > 0.0 && self.lr_decay <= 1.0) {
            return Err(invalid_config("lr_decay", "must be in (0, 1]"));
        }
        if self.lr_decay_every == 0 {
            return Err(invalid_config("lr_decay_every", "must be at least 1"));
        }
        if self.critic_hidden == 0 {
            return Err(invalid_config("critic_hidden", "must be positive"));
        }
        Ok(())
    }
}

/// A state-value critic V_psi(s): `state_dim -> hidden tanh -> 1` (the actor-critic's on
/// the student-state vector, PPO's on a step's mean feature row).
pub(crate) struct Critic {
    pub(crate) vs: nn::VarStore,
    hidden: nn::Linear,
    output: nn::Linear,
}

impl Critic {
    /// A `state_dim`-`hidden`-1 critic, weights drawn from `init_rng`.
    pub(crate) fn new(state_dim: usize, hidden: usize, init_rng: &mut ChaCha8Rng) -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let hidden_layer = nn::linear(
            &root / "hidden",
            state_dim as i64,
            hidden as i64,
            Default::default(),
        );
        let output = nn::linear(&root / "output", hidden as i64, 1, Default::default());
        init_from_stream(&vs, init_rng, |name, shape| {
            torch_default_init(name, shape, &vs)
        });
        Self {
            vs,
            hidden: hidden_layer,
            output,
        }
    }

    /// A critic as [`Self::new`] and an [`Adam`] over its weights with `learning_rate`.
    pub(crate) fn with_adam(
        state_dim: usize,
        hidden: usize,
        learning_rate: f64,
        init_rng: &mut ChaCha8Rng,
    ) -> Result<(Self, Adam)> {
        let critic = Self::new(state_dim, hidden, init_rng);
        let optimizer = Adam::for_var_store(&critic.vs, learning_rate, AdamConfig::default())?;
        Ok((critic, optimizer))
    }

    /// V(s) for states `[T, state_dim]`, shape `[T]`.
    pub(crate) fn values(&self, states: &Tensor) -> Tensor {
        self.output
            .forward(&self.hidden.forward(states).tanh())
            .squeeze_dim(-1)
    }
}

/// The actor-critic teacher.
pub struct ActorCritic {
    pub(crate) config: ActorCriticConfig,
    pub(crate) policy: BernoulliPolicy,
    pub(crate) critic: Critic,
    // The crate's Adam (not libtorch's), so that a checkpoint can store its state.
    pub(crate) actor_optimizer: Adam,
    pub(crate) critic_optimizer: Adam,
    pub(crate) sampling_rng: ChaCha8Rng,
    training: bool,
    /// The current episode, appended per step to flat vectors (a few amortised
    /// allocations per episode, as in [`crate::reinforce`]): the features' rows
    /// (row-major), their actions in {0, 1}, the rows of each step, the student state
    /// (3 per step) and the reward.
    episode_features: Vec<f32>,
    episode_actions: Vec<f32>,
    episode_rows: Vec<usize>,
    episode_states: Vec<f32>,
    episode_rewards: Vec<f64>,
    pub(crate) episodes: usize,
}

impl std::fmt::Debug for ActorCritic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorCritic")
            .field("config", &self.config)
            .field("episodes", &self.episodes)
            .finish()
    }
}

impl ActorCritic {
    /// An actor-critic teacher for observations with `feature_dim` columns.
    pub fn new(config: ActorCriticConfig, feature_dim: usize) -> Result<Self> {
        config.validate()?;
        let mut init_rng = stream_rng(config.seed, Stream::TeacherInit);
        let (policy, actor_optimizer) = BernoulliPolicy::with_adam(
            feature_dim,
            config.hidden,
            config.output_bias,
            config.learning_rate,
            &mut init_rng,
        )?;
        let (critic, critic_optimizer) = Critic::with_adam(
            3,
            config.critic_hidden,
            config.critic_learning_rate,
            &mut init_rng,
        )?;
        Ok(Self {
            sampling_rng: stream_rng(config.seed, Stream::TeacherSampling),
            config,
            policy,
            critic,
            actor_optimizer,
            critic_optimizer,
            training: true,
            episode_features: Vec::new(),
            episode_actions: Vec::new(),
            episode_rows: Vec::new(),
            episode_states: Vec::new(),
            episode_rewards: Vec::new(),
            episodes: 0,
        })
    }

    /// The actor's policy network.
    pub fn policy(&self) -> &BernoulliPolicy {
        &self.policy
    }

    /// Episodes learned from so far.
    pub fn episodes(&self) -> usize {
        self.episodes
    }

    /// The decay factor of the learning rates after `episodes` episodes.
    fn decay_at(&self, episodes: usize) -> f64 {
        self.config
            .lr_decay
            .powi((episodes / self.config.lr_decay_every) as i32)
    }

    /// The shaped rewards r'_t = r_t + c (Phi(s_{t+1}) - Phi(s_t)), Phi(terminal) = 0.
    fn shaped_rewards(&self) -> Vec<f64> {
        let c = self.config.shaping;
        let steps = self.episode_rewards.len();
        let phi = |t: usize| -> f64 {
            if t >= steps {
                0.0
            } else {
                f64::from(self.episode_states[3 * t + BEST_DEV_ACCURACY])
            }
        };
        (0..steps)
            .map(|t| self.episode_rewards[t] + c * (phi(t + 1) - phi(t)))
            .collect()
    }
}

impl Teacher for ActorCritic {
    fn name(&self) -> &str {
        "ActorCritic"
    }

    fn act(&mut self, observation: &TeachingObservation, _info: &TeachingInfo) -> Result<KeepMask> {
        let f = observation.features.ncols();
        if f != self.policy.input_dim() || observation.student_state.len() != 3 {
            return Err(AgentError::Observation(format!(
                "{f} feature columns and {} state values, the teacher was built for {} and 3",
                observation.student_state.len(),
                self.policy.input_dim()
            )));
        }
        let features = BernoulliPolicy::features_tensor(&observation.features);
        // a_m ~ Bernoulli(phi(1 | s_m)), drawn from the teacher's own stream.
        let mask = self.policy.sample(&features, &mut self.sampling_rng)?;
        if self.training {
            match observation.features.as_slice() {
                Some(rows) => self.episode_features.extend_from_slice(rows),
                None => self.episode_features.extend(observation.features.iter()),
            }
            self.episode_actions
                .extend(BernoulliPolicy::actions_of(&mask));
            self.episode_rows.push(mask.len());
            self.episode_states.extend(observation.student_state.iter());
        }
        Ok(mask)
    }

    fn observe(&mut self, reward: f64, _done: bool) -> Result<()> {
        if self.training {
            self.episode_rewards.push(reward);
        }
        Ok(())
    }

    fn end_episode(&mut self) -> Result<Option<UpdateStats>> {
        let steps = self.episode_rewards.len();
        if !self.training || steps == 0 || self.episode_rows.len() != steps {
            self.clear_episode();
            return Ok(None);
        }
        let episode_return: f64 = self.episode_rewards.iter().sum();
        // G_t = sum_{k >= t} r'_k (gamma = 1).
        let shaped = self.shaped_rewards();
        let mut returns = vec![0.0f32; steps];
        let mut running = 0.0;
        for t in (0..steps).rev() {
            running += shaped[t];
            returns[t] = running as f32;
        }
        let returns = Tensor::from_slice(&returns);
        let states = Tensor::from_slice(&self.episode_states).view([steps as i64, 3]);
        let values = self.critic.values(&states);
        let advantages = (&returns - values.detach()).detach();

        // Actor: each step's M decisions share that step's advantage.
        let feature_dim = self.policy.input_dim();
        let mut per_step_log_phi = Vec::with_capacity(steps);
        let mut start = 0;
        for &rows in &self.episode_rows {
            let s = Tensor::from_slice(
                &self.episode_features[start * feature_dim..][..rows * feature_dim],
            )
            .view([rows as i64, feature_dim as i64]);
            let a = Tensor::from_slice(&self.episode_actions[start..start + rows]);
            per_step_log_phi.push(self.policy.log_prob(&s, &a).sum(Kind::Float));
            start += rows;
        }
        let log_phi = Tensor::stack(&per_step_log_phi, 0);
        let actor_loss = -(advantages * log_phi).sum(Kind::Float);
        let critic_loss = self.config.value_coef * (&returns - &values).square().sum(Kind::Float);

        let decay = self.decay_at(self.episodes);
        let learning_rate = self.config.learning_rate * decay;
        self.actor_optimizer.set_lr(learning_rate);
        self.critic_optimizer
            .set_lr(self.config.critic_learning_rate * decay);
        self.actor_optimizer.zero_grad();
        self.critic_optimizer.zero_grad();
        (&actor_loss + &critic_loss).backward();
        self.actor_optimizer.step()?;
        self.critic_optimizer.step()?;
        self.episodes += 1;

        let kept_ratio = Tensor::from_slice(&self.episode_actions)
            .mean(Kind::Float)
            .double_value(&[]);
        let baseline = values.get(0).double_value(&[]);
        let loss = actor_loss.double_value(&[]) + critic_loss.double_value(&[]);
        self.clear_episode();
        Ok(Some(UpdateStats {
            episode_return,
            baseline,
            loss,
            learning_rate,
            kept_ratio,
        }))
    }

    fn save_checkpoint(&self, path: &std::path::Path) -> Result<()> {
        self.save(path)
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
        self.clear_episode();
    }
}

impl ActorCritic {
    fn clear_episode(&mut self) {
        self.episode_features.clear();
        self.episode_actions.clear();
        self.episode_rows.clear();
        self.episode_states.clear();
        self.episode_rewards.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shaping_telescopes_to_minus_the_initial_potential() {
        let mut teacher = ActorCritic::new(ActorCriticConfig::default(), 5).unwrap();
        teacher.episode_rewards = vec![0.0, 0.0, 1.5];
        teacher.episode_states = vec![0.0, 0.5, 0.1, 0.1, 0.4, 0.3, 0.2, 0.3, 0.6];
        let shaped = teacher.shaped_rewards();
        let total: f64 = shaped.iter().sum();
        // sum r' = sum r - c * Phi(s_0)
        assert!((total - (1.5 - 0.1f32 as f64)).abs() < 1e-6, "{total}");
        assert!((shaped[0] - (0.3f32 as f64 - 0.1f32 as f64)).abs() < 1e-6);
    }

    #[test]
    fn invalid_config_is_an_error() {
        let bad = ActorCriticConfig {
            shaping: -1.0,
            ..ActorCriticConfig::default()
        };
        assert!(ActorCritic::new(bad, 5).is_err());
    }
}
