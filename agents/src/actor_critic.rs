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
//! It trains on the crate's one rollout-and-learn loop ([`crate::rollout`]): each
//! update's K = `episodes_per_update` episodes (1 by default) are rolled out whole with
//! a frozen copy of the actor, then one update is made on their samples, so no
//! clipping is needed; [`crate::ppo`] reuses K episodes' samples for several epochs,
//! with PPO's clipped objective and GAE.
//!
//! The update, with `G_kt = sum_{j >= t} r'_kj` (gamma = 1) in episode k:
//!
//! ```text
//! L_actor  = -(1/K) sum_k sum_t A_kt * sum_m log phi(a_ktm | s_ktm)    A_kt = G_kt - V(s_kt), no gradient
//! L_critic = value_coef * (1/K) sum_k sum_t (G_kt - V(s_kt))^2
//! ```
//!
//! minimised with Adam (learning rate decayed like REINFORCE's).

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, Device, Kind, Tensor};

use l2t_envs::seeding::{stream_rng, Stream};
use l2t_envs::student::{init_from_stream, torch_default_init};
use l2t_envs::{FeatureLayout, TeachingInfo, TeachingObservation};

use crate::checkpoint::Checkpointed;
use crate::episode::UpdateStats;
use crate::error::{invalid_config, AgentError, Result};
use crate::policy::BernoulliPolicy;
use crate::rollout::{plan_episodes, Learner, RolloutJob, Trajectory};
use crate::teacher::{KeepMask, Teacher};
use l2t_envs::student::Adam;

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
    /// K: episodes rolled out (in parallel) for one update.
    pub episodes_per_update: usize,
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
            episodes_per_update: 1,
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
        if self.episodes_per_update == 0 {
            return Err(invalid_config("episodes_per_update", "must be at least 1"));
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
        let optimizer = Adam::for_var_store(&critic.vs, learning_rate);
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
    /// The stream of keep-masks sampled by [`Teacher::act`] (teaching, not training).
    pub(crate) sampling_rng: ChaCha8Rng,
    pub(crate) episodes: usize,
    /// The feature columns the actor reads.
    pub(crate) layout: FeatureLayout,
}

impl std::fmt::Debug for ActorCritic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorCritic")
            .field("config", &self.config)
            .field("episodes", &self.episodes)
            .finish()
    }
}

/// The critic's inputs: the student-state vector (progress, average loss, best dev
/// accuracy).
const CRITIC_INPUTS: usize = 3;

impl ActorCritic {
    /// An actor-critic teacher for observations with the columns of `layout`.
    pub fn new(config: ActorCriticConfig, layout: &FeatureLayout) -> Result<Self> {
        config.validate()?;
        let mut init_rng = stream_rng(config.seed, Stream::TeacherInit);
        let (policy, actor_optimizer) = BernoulliPolicy::with_adam(
            layout.len(),
            config.hidden,
            config.output_bias,
            config.learning_rate,
            &mut init_rng,
        )?;
        let (critic, critic_optimizer) = Critic::with_adam(
            CRITIC_INPUTS,
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
            episodes: 0,
            layout: layout.clone(),
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

    /// The shaped rewards r'_t = r_t + c (Phi(s_{t+1}) - Phi(s_t)), Phi(terminal) = 0,
    /// of an episode with per-step `rewards` and student `states` (3 per step).
    fn shaped_rewards(&self, rewards: &[f64], states: &[f32]) -> Vec<f64> {
        let c = self.config.shaping;
        let steps = rewards.len();
        let phi = |t: usize| -> f64 {
            if t >= steps {
                0.0
            } else {
                f64::from(states[3 * t + BEST_DEV_ACCURACY])
            }
        };
        (0..steps)
            .map(|t| rewards[t] + c * (phi(t + 1) - phi(t)))
            .collect()
    }

    /// Episode k's actor and critic losses (not yet divided by K), and V(s_0).
    fn episode_losses(&self, episode: &Trajectory) -> Result<(Tensor, Tensor, f64)> {
        let rewards = episode.step_rewards();
        let rows = episode.step_rows();
        let steps = rewards.len();
        let feature_dim = self.policy.input_dim();
        if steps == 0
            || rows.len() != steps
            || episode.states().len() != 3 * steps
            || episode.feature_rows().len() != episode.instances() * feature_dim
        {
            return Err(AgentError::Observation(format!(
                "an actor-critic episode needs one reward, one student state (3 values) and                  {feature_dim} feature columns per step; it has {steps} rewards, {} steps,                  {} state values and {} feature values for {} instances",
                rows.len(),
                episode.states().len(),
                episode.feature_rows().len(),
                episode.instances()
            )));
        }
        // G_t = sum_{j >= t} r'_j (gamma = 1).
        let shaped = self.shaped_rewards(rewards, episode.states());
        let mut returns = vec![0.0f32; steps];
        let mut running = 0.0;
        for t in (0..steps).rev() {
            running += shaped[t];
            returns[t] = running as f32;
        }
        let returns = Tensor::from_slice(&returns);
        let states = Tensor::from_slice(episode.states()).view([steps as i64, 3]);
        let values = self.critic.values(&states);
        let advantages = (&returns - values.detach()).detach();

        // Each step's M decisions share that step's advantage.
        let features = Tensor::from_slice(episode.feature_rows()).view([-1, feature_dim as i64]);
        let actions = Tensor::from_slice(episode.actions());
        let log_phi_rows = self.policy.log_prob(&features, &actions);
        let step_of_row: Vec<i64> = rows
            .iter()
            .enumerate()
            .flat_map(|(t, &m)| std::iter::repeat_n(t as i64, m))
            .collect();
        let log_phi = Tensor::zeros([steps as i64], (Kind::Float, Device::Cpu)).index_add(
            0,
            &Tensor::from_slice(&step_of_row),
            &log_phi_rows,
        );
        let actor_loss = -(advantages * log_phi).sum(Kind::Float);
        let critic_loss = (&returns - &values).square().sum(Kind::Float);
        let first_value = values.get(0).double_value(&[]);
        Ok((actor_loss, critic_loss, first_value))
    }
}

impl Teacher for ActorCritic {
    fn name(&self) -> &str {
        "actor_critic"
    }

    fn columns(&self) -> Vec<String> {
        self.layout.names().to_vec()
    }

    /// a_m ~ Bernoulli(phi(1 | s_m)), sampled from the teacher's own stream.
    fn act(&mut self, observation: &TeachingObservation, _info: &TeachingInfo) -> Result<KeepMask> {
        let features = observation.features_for(&self.layout)?;
        let f = features.ncols();
        if f != self.policy.input_dim() || observation.student_state.len() != 3 {
            return Err(AgentError::Observation(format!(
                "{f} feature columns and {} state values, the teacher was built for {} and 3",
                observation.student_state.len(),
                self.policy.input_dim()
            )));
        }
        self.policy
            .sample_features(&features, None, &mut self.sampling_rng)
    }
}

impl Learner for ActorCritic {
    /// K episodes with the current actor: episode j is seeded `first_seed + j` and
    /// samples from a stream keyed by the teacher's seed and its env seed.
    fn plan_update(&mut self, first_seed: u64) -> Result<Vec<RolloutJob>> {
        plan_episodes(
            &self.policy,
            self.config.seed,
            self.config.episodes_per_update,
            first_seed,
            false,
        )
    }

    /// One actor and critic step from the K episodes of the last plan. Its statistics:
    /// the mean return, as baseline the mean V(s_0), the summed losses, the actor's
    /// learning rate and the share of instances kept.
    fn learn(&mut self, episodes: Vec<Trajectory>) -> Result<UpdateStats> {
        let k = self.config.episodes_per_update;
        if episodes.len() != k {
            return Err(AgentError::Observation(format!(
                "an update has {k} episodes, {} were given",
                episodes.len()
            )));
        }
        let mut actor_losses = Vec::with_capacity(k);
        let mut critic_losses = Vec::with_capacity(k);
        let mut first_values = 0.0;
        for episode in &episodes {
            let (actor, critic, first_value) = self.episode_losses(episode)?;
            actor_losses.push(actor);
            critic_losses.push(critic);
            first_values += first_value;
        }
        let actor_loss = Tensor::stack(&actor_losses, 0).sum(Kind::Float) / k as f64;
        let critic_loss =
            self.config.value_coef * (Tensor::stack(&critic_losses, 0).sum(Kind::Float) / k as f64);

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
        self.episodes += k;

        let instances: usize = episodes.iter().map(Trajectory::instances).sum();
        let kept: usize = episodes.iter().map(Trajectory::instances_kept).sum();
        Ok(UpdateStats {
            episode_return: episodes.iter().map(Trajectory::episode_return).sum::<f64>() / k as f64,
            baseline: first_values / k as f64,
            loss: actor_loss.double_value(&[]) + critic_loss.double_value(&[]),
            learning_rate,
            kept_ratio: kept as f64 / instances.max(1) as f64,
        })
    }

    fn episodes_learned(&self) -> usize {
        self.episodes
    }

    fn save_checkpoint(&self, path: &std::path::Path) -> Result<()> {
        self.save(path)
    }
}

/// The [`Checkpointed`] impl of a teacher made of an actor (`policy`) and a critic, each
/// with its Adam (`actor_optimizer`, `critic_optimizer`), a `config` with `hidden` and
/// `critic_hidden`, `episodes` and a `sampling_rng`: [`ActorCritic`] and
/// [`Ppo`](crate::ppo::Ppo). A checkpoint holds both networks (the actor's variables
/// prefixed `actor/`, then the critic's prefixed `critic/`), both Adams, the config, the
/// episode count and the teaching stream. `$critic_inputs` maps the feature width to
/// the critic's inputs.
macro_rules! actor_and_critic_checkpoint {
    ($teacher:ty, $config:ty, $kind:literal, $critic_inputs:expr) => {
        impl $crate::checkpoint::Checkpointed for $teacher {
            const KIND: &'static str = $kind;
            type State = $config;

            fn state(&self) -> $config {
                self.config.clone()
            }
            fn layout(&self) -> &l2t_envs::FeatureLayout {
                &self.layout
            }
            fn variables(&self) -> Vec<(String, tch::Tensor)> {
                $crate::weights::prefixed_trainable(&[
                    ("actor", self.policy.var_store()),
                    ("critic", &self.critic.vs),
                ])
            }
            fn optimizers(&self) -> Vec<&l2t_envs::student::Adam> {
                vec![&self.actor_optimizer, &self.critic_optimizer]
            }
            fn optimizers_mut(&mut self) -> Vec<&mut l2t_envs::student::Adam> {
                vec![&mut self.actor_optimizer, &mut self.critic_optimizer]
            }
            fn progress(&self) -> $crate::checkpoint::Progress {
                $crate::checkpoint::Progress {
                    episodes: self.episodes,
                    baseline: None,
                    sampling_rng: self.sampling_rng.clone(),
                }
            }
            fn parameter_count(config: &$config, feature_dim: usize) -> Option<usize> {
                use $crate::weights::mlp_parameter_count;
                let critic_inputs: fn(usize) -> usize = $critic_inputs;
                mlp_parameter_count(feature_dim, config.hidden)?.checked_add(mlp_parameter_count(
                    critic_inputs(feature_dim),
                    config.critic_hidden,
                )?)
            }
            fn rebuild(
                config: $config,
                layout: &l2t_envs::FeatureLayout,
            ) -> $crate::error::Result<Self> {
                Self::new(config, layout)
            }
            fn resume(
                &mut self,
                progress: $crate::checkpoint::Progress,
            ) -> $crate::error::Result<()> {
                self.episodes = progress.episodes;
                self.sampling_rng = progress.sampling_rng;
                Ok(())
            }
        }
    };
}
pub(crate) use actor_and_critic_checkpoint;

actor_and_critic_checkpoint!(ActorCritic, ActorCriticConfig, "actor_critic", |_| {
    CRITIC_INPUTS
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shaping_telescopes_to_minus_the_initial_potential() {
        let teacher = ActorCritic::new(
            ActorCriticConfig::default(),
            &crate::teacher::test_layout(5),
        )
        .unwrap();
        let rewards = [0.0, 0.0, 1.5];
        let states = [0.0, 0.5, 0.1, 0.1, 0.4, 0.3, 0.2, 0.3, 0.6];
        let shaped = teacher.shaped_rewards(&rewards, &states);
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
        assert!(ActorCritic::new(bad, &crate::teacher::test_layout(5)).is_err());
    }
}
