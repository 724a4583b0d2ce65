//! Proximal policy optimisation (PPO-clip, Schulman et al. 2017) of the teacher's
//! [`BernoulliPolicy`], with a learned critic and generalised advantage estimation
//! (GAE, Schulman et al. 2016), laid out like CleanRL's `ppo.py`.
//!
//! **Rollouts.** One update learns from K = `episodes_per_update` whole episodes that
//! the [`Learner`] loop ([`crate::rollout::train_parallel`]) rolls out with the policy
//! as it is when the update is planned, pi_old. As in REINFORCE, episode k teaches a
//! student seeded `first_seed + k` and samples its masks from a stream keyed by the
//! teacher's seed and that env seed ([`crate::rollout::plan_episodes`]), so the
//! results do not depend on the number of workers. Step t of an episode is one
//! incoming batch of M instances s_t1..s_tM, their M keep decisions
//! a_tm ~ Bernoulli(pi_old(1 | s_tm)) and the env's reward r_t (the paper's
//! -ln(i_tau / T') at the last step, or the dev-accuracy area paid at each dev
//! evaluation).
//!
//! **Critic.** V_psi(s_t) reads the step's mean feature row x_t = (1/M) sum_m s_tm
//! (F -> `critic_hidden` tanh -> 1, the [`crate::actor_critic`] critic's network).
//!
//! **Advantages (GAE).** Per episode, with V = 0 after its last step (every end counts
//! as terminal: the paper's reward is paid there):
//!
//! ```text
//! delta_t = r_t + gamma V(s_{t+1}) - V(s_t)
//! A_t     = sum_{l >= 0} (gamma lambda)^l delta_{t+l}  =  delta_t + gamma lambda A_{t+1}
//! R_t     = A_t + V(s_t)                                  (the critic's target)
//! A_t    <- (A_t - mean A) / (std A + 1e-8)               (over all steps of the update)
//! ```
//!
//! Every keep decision of step t is an action credited with A_t.
//!
//! **Losses.** log pi_old(a_tm | s_tm) is computed once, without gradient, at the start
//! of the update (the learner's policy has not moved since it planned the episodes).
//! Then `epochs` times, the update's steps are shuffled and split into `minibatches`
//! minibatches of whole steps (a step's M instances stay together; `minibatches = 1`
//! is the full batch), and on each
//!
//! ```text
//! rho_tm = exp(log pi_theta(a_tm | s_tm) - log pi_old(a_tm | s_tm))
//! L_clip = -mean_tm min(rho_tm A_t, clip(rho_tm, 1 - eps, 1 + eps) A_t)
//! L_ent  = -entropy_coef mean_tm H(pi_theta(. | s_tm))
//! L_V    = 0.5 mean_t (V_psi(s_t) - R_t)^2
//! ```
//!
//! theta takes one Adam step on L_clip + L_ent and psi one on L_V, each after its
//! gradient's global norm is clipped to `max_grad_norm` (0: no clipping). Actor and
//! critic are two networks with two Adams (the crate's [`Adam`], which checkpoints
//! save), so there is no value-loss coefficient: Adam's step does not depend on a
//! loss's scale. The minibatch order of epoch e of update u is drawn from a stream
//! keyed by (seed, u, e): an update is a function of the teacher and its episodes.
//!
//! **Defaults** are CleanRL's (eps 0.2, lambda 0.95, 4 epochs, 4 minibatches, Adam
//! 3e-4, gradient norm 0.5), except gamma = 1 (the paper's objective is the
//! undiscounted return, paid at the end of episodes of hundreds of steps), no entropy
//! bonus, a critic learning rate of 1e-3, and REINFORCE's actor (12 tanh units, output
//! bias 2.0: keep about 88% at first).
//!
//! When it teaches (evaluation), the teacher samples a_m ~ Bernoulli(pi_theta(1 | s_m))
//! from its own stream.

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use l2t_envs::seeding::{keyed_rng, stream_rng, Stream};
use l2t_envs::{FeatureLayout, TeachingInfo, TeachingObservation};

use crate::actor_critic::{actor_and_critic_checkpoint, Critic};
use crate::checkpoint::Checkpointed;
use crate::episode::UpdateStats;
use crate::error::{invalid_config, AgentError, Result};
use crate::policy::BernoulliPolicy;
use crate::rollout::{plan_episodes, Learner, RolloutJob, Trajectory};
use crate::teacher::{KeepMask, Teacher};
use l2t_envs::student::Adam;

/// Hyper-parameters of [`Ppo`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PpoConfig {
    /// Width of the actor's tanh hidden layer (0: a linear policy).
    pub hidden: usize,
    /// Initial bias of the actor's output unit (2.0: keep about 88% at first).
    pub output_bias: f64,
    /// Width of the critic's tanh hidden layer.
    pub critic_hidden: usize,
    /// Adam learning rate of the actor.
    pub learning_rate: f64,
    /// Adam learning rate of the critic.
    pub critic_learning_rate: f64,
    /// K: episodes rolled out per update.
    pub episodes_per_update: usize,
    /// Passes over an update's steps.
    pub epochs: usize,
    /// Minibatches of whole steps per pass (1: the full batch; at most the steps).
    pub minibatches: usize,
    /// gamma: discount of later rewards.
    pub gamma: f64,
    /// lambda of GAE.
    pub gae_lambda: f64,
    /// eps: the ratio pi_theta / pi_old is clipped to [1 - eps, 1 + eps].
    pub clip_epsilon: f64,
    /// Weight of the mean Bernoulli entropy bonus.
    pub entropy_coef: f64,
    /// Largest global gradient norm of each network per step (0: no clipping).
    pub max_grad_norm: f64,
    /// Seed of the teacher's streams (weights, sampling, minibatch order).
    pub seed: u64,
}

impl Default for PpoConfig {
    fn default() -> Self {
        Self {
            hidden: 12,
            output_bias: 2.0,
            critic_hidden: 12,
            learning_rate: 3e-4,
            critic_learning_rate: 1e-3,
            episodes_per_update: 4,
            epochs: 4,
            minibatches: 4,
            gamma: 1.0,
            gae_lambda: 0.95,
            clip_epsilon: 0.2,
            entropy_coef: 0.0,
            max_grad_norm: 0.5,
            seed: 0,
        }
    }
}

impl PpoConfig {
    /// Checks every field; an error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        for (field, value) in [
            ("learning_rate", self.learning_rate),
            ("critic_learning_rate", self.critic_learning_rate),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(invalid_config(field, format!("{value} must be positive")));
            }
        }
        for (field, value) in [
            ("critic_hidden", self.critic_hidden),
            ("episodes_per_update", self.episodes_per_update),
            ("epochs", self.epochs),
            ("minibatches", self.minibatches),
        ] {
            if value == 0 {
                return Err(invalid_config(field, "must be at least 1"));
            }
        }
        for (field, value) in [("gamma", self.gamma), ("gae_lambda", self.gae_lambda)] {
            if !(0.0..=1.0).contains(&value) {
                return Err(invalid_config(field, format!("{value} must be in [0, 1]")));
            }
        }
        if !(self.clip_epsilon > 0.0 && self.clip_epsilon < 1.0) {
            return Err(invalid_config("clip_epsilon", "must be in (0, 1)"));
        }
        for (field, value) in [
            ("entropy_coef", self.entropy_coef),
            ("max_grad_norm", self.max_grad_norm),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(invalid_config(field, format!("{value} must be >= 0")));
            }
        }
        if !self.output_bias.is_finite() {
            return Err(invalid_config("output_bias", "must be finite"));
        }
        Ok(())
    }
}

/// The PPO teacher: an actor (the keep policy) and a critic, improved one update of K
/// episodes at a time.
pub struct Ppo {
    pub(crate) config: PpoConfig,
    pub(crate) policy: BernoulliPolicy,
    pub(crate) critic: Critic,
    pub(crate) actor_optimizer: Adam,
    pub(crate) critic_optimizer: Adam,
    /// The stream of the masks sampled when teaching (not in training rollouts).
    pub(crate) sampling_rng: ChaCha8Rng,
    pub(crate) episodes: usize,
    /// The feature columns the actor and the critic read.
    pub(crate) layout: FeatureLayout,
}

impl std::fmt::Debug for Ppo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ppo")
            .field("config", &self.config)
            .field("episodes", &self.episodes)
            .finish()
    }
}

impl Ppo {
    /// A PPO teacher for observations with the columns of `layout`.
    pub fn new(config: PpoConfig, layout: &FeatureLayout) -> Result<Self> {
        config.validate()?;
        let feature_dim = layout.len();
        let mut init_rng = stream_rng(config.seed, Stream::TeacherInit);
        let (policy, actor_optimizer) = BernoulliPolicy::with_adam(
            feature_dim,
            config.hidden,
            config.output_bias,
            config.learning_rate,
            &mut init_rng,
        )?;
        let (critic, critic_optimizer) = Critic::with_adam(
            feature_dim,
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

    /// The hyper-parameters.
    pub fn config(&self) -> &PpoConfig {
        &self.config
    }

    /// The actor's policy network.
    pub fn policy(&self) -> &BernoulliPolicy {
        &self.policy
    }

    /// Updates made so far.
    pub fn updates(&self) -> usize {
        self.episodes / self.config.episodes_per_update
    }

    /// The actor's then the critic's weights, each flattened in name order: for
    /// determinism checks and inspection.
    pub fn flat_weights(&self) -> Result<Vec<f32>> {
        let mut flat = self.policy.flat_weights()?;
        flat.extend(crate::weights::flat_trainable(&self.critic.vs)?);
        Ok(flat)
    }

    /// V(x_t) of the mean feature rows `states` (`[T, F]`), without gradient.
    fn values(&self, states: &Tensor) -> Result<Vec<f64>> {
        let values = tch::no_grad(|| Vec::<f32>::try_from(self.critic.values(states)))?;
        Ok(values.into_iter().map(f64::from).collect())
    }

    /// Clears both networks' gradients, back-propagates `loss`, clips and steps.
    fn step(optimizer: &mut Adam, loss: &Tensor, max_grad_norm: f64) -> Result<()> {
        optimizer.zero_grad();
        loss.f_backward()?;
        if max_grad_norm > 0.0 {
            optimizer.clip_grad_norm(max_grad_norm)?;
        }
        Ok(optimizer.step()?)
    }
}

/// GAE of one episode: the advantages A_t and the critic's targets R_t = A_t + V(s_t)
/// for rewards r_t and values V(s_t), with V = 0 after the last step (over the steps
/// both slices cover).
pub fn gae(rewards: &[f64], values: &[f64], gamma: f64, lambda: f64) -> (Vec<f64>, Vec<f64>) {
    let steps = rewards.len().min(values.len());
    let mut advantages = vec![0.0; steps];
    let mut next_advantage = 0.0;
    let mut next_value = 0.0;
    for t in (0..steps).rev() {
        let delta = rewards[t] + gamma * next_value - values[t];
        next_advantage = delta + gamma * lambda * next_advantage;
        advantages[t] = next_advantage;
        next_value = values[t];
    }
    let returns = advantages.iter().zip(values).map(|(a, v)| a + v).collect();
    (advantages, returns)
}

/// L_clip = -mean min(rho A, clip(rho, 1 - eps, 1 + eps) A), rho = exp(log_new - log_old),
/// over instances (all tensors `[n]`).
pub fn clipped_surrogate(
    log_new: &Tensor,
    log_old: &Tensor,
    advantages: &Tensor,
    clip_epsilon: f64,
) -> Tensor {
    let ratio = (log_new - log_old).exp();
    let unclipped = &ratio * advantages;
    let clipped = ratio.clamp(1.0 - clip_epsilon, 1.0 + clip_epsilon) * advantages;
    -unclipped.minimum(&clipped).mean(Kind::Float)
}

/// An update's episodes as flat tensors: every instance (row) and every step.
struct Batch {
    /// s_tm, `[N, F]`.
    features: Tensor,
    /// a_tm, `[N]`.
    actions: Tensor,
    /// x_t, the steps' mean feature rows, `[S, F]`.
    states: Tensor,
    /// First row of each step.
    step_start: Vec<usize>,
    /// Rows of each step.
    step_rows: Vec<usize>,
    /// The step of each row.
    row_step: Tensor,
}

impl Batch {
    /// Checks and flattens `episodes` (one reward per step, `feature_dim` columns).
    fn new(episodes: &[Trajectory], feature_dim: usize) -> Result<Self> {
        let mut features = Vec::new();
        let mut actions = Vec::new();
        let mut states = Vec::new();
        let mut step_start = Vec::new();
        let mut step_rows = Vec::new();
        let mut row_step = Vec::new();
        for (k, episode) in episodes.iter().enumerate() {
            let rows = episode.feature_rows();
            if rows.len() != episode.instances() * feature_dim {
                return Err(AgentError::Observation(format!(
                    "episode {k} holds {} feature values for {} actions, the policy reads {feature_dim} features",
                    rows.len(),
                    episode.instances()
                )));
            }
            let steps = episode.step_rows().len();
            if steps == 0 || episode.step_rewards().len() != steps {
                return Err(AgentError::Observation(format!(
                    "episode {k} has {steps} steps and {} rewards; PPO needs one reward per step, at least one step",
                    episode.step_rewards().len()
                )));
            }
            if let Some(bad) = episode.step_rewards().iter().find(|r| !r.is_finite()) {
                return Err(AgentError::Observation(format!(
                    "episode {k} has a reward of {bad}"
                )));
            }
            let mut start = 0;
            for &m in episode.step_rows() {
                let step = step_rows.len();
                step_start.push(actions.len());
                step_rows.push(m);
                let mut mean = vec![0.0f64; feature_dim];
                for row in
                    rows[start * feature_dim..(start + m) * feature_dim].chunks_exact(feature_dim)
                {
                    for (sum, &value) in mean.iter_mut().zip(row) {
                        *sum += f64::from(value);
                    }
                }
                states.extend(mean.iter().map(|sum| (sum / m.max(1) as f64) as f32));
                row_step.extend(std::iter::repeat_n(step as i64, m));
                actions.extend_from_slice(&episode.actions()[start..start + m]);
                start += m;
            }
            features.extend_from_slice(rows);
        }
        let f = feature_dim as i64;
        Ok(Self {
            features: Tensor::from_slice(&features).view([-1, f]),
            actions: Tensor::from_slice(&actions),
            states: Tensor::from_slice(&states).view([-1, f]),
            step_start,
            step_rows,
            row_step: Tensor::from_slice(&row_step),
        })
    }

    /// The row indices of `steps`, in order.
    fn rows_of(&self, steps: &[usize]) -> Tensor {
        let rows: Vec<i64> = steps
            .iter()
            .flat_map(|&s| self.step_start[s]..self.step_start[s] + self.step_rows[s])
            .map(|r| r as i64)
            .collect();
        Tensor::from_slice(&rows)
    }
}

impl Learner for Ppo {
    /// K episodes with the current policy: episode j is seeded `first_seed + j` and
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

    /// One PPO update from the K episodes of the last plan, each with one reward per
    /// step. Its statistics: the mean return, as baseline the mean V of the episodes'
    /// first steps (before the update), as loss the mean actor loss over the update's
    /// minibatches, the actor's learning rate and the share of instances kept.
    fn learn(&mut self, episodes: Vec<Trajectory>) -> Result<UpdateStats> {
        let k = self.config.episodes_per_update;
        if episodes.len() != k {
            return Err(AgentError::Observation(format!(
                "an update has {k} episodes, {} were given",
                episodes.len()
            )));
        }
        let batch = Batch::new(&episodes, self.policy.input_dim())?;
        let values = self.values(&batch.states)?;

        // GAE per episode, then advantages normalised over the update's steps.
        let (gamma, lambda) = (self.config.gamma, self.config.gae_lambda);
        let mut advantages = Vec::with_capacity(values.len());
        let mut returns = Vec::with_capacity(values.len());
        let mut first_values = Vec::with_capacity(k);
        let mut offset = 0;
        for episode in &episodes {
            let rewards = episode.step_rewards();
            let episode_values = &values[offset..offset + rewards.len()];
            first_values.push(episode_values[0]);
            let (a, r) = gae(rewards, episode_values, gamma, lambda);
            advantages.extend(a);
            returns.extend(r);
            offset += rewards.len();
        }
        let steps = advantages.len();
        let mean = advantages.iter().sum::<f64>() / steps as f64;
        let sd = (advantages.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / steps as f64).sqrt();
        let advantages: Vec<f32> = advantages
            .iter()
            .map(|a| ((a - mean) / (sd + 1e-8)) as f32)
            .collect();
        let returns: Vec<f32> = returns.iter().map(|&r| r as f32).collect();
        let advantages = Tensor::from_slice(&advantages);
        let returns = Tensor::from_slice(&returns);
        let row_advantages = advantages.index_select(0, &batch.row_step);
        let log_old = tch::no_grad(|| self.policy.log_prob(&batch.features, &batch.actions));

        let update = self.updates() as u64;
        let minibatches = self.config.minibatches.min(steps);
        let eps = self.config.clip_epsilon;
        let max_norm = self.config.max_grad_norm;
        let mut policy_loss = 0.0;
        let mut losses = 0usize;
        for epoch in 0..self.config.epochs {
            let mut order: Vec<usize> = (0..steps).collect();
            order.shuffle(&mut keyed_rng(
                &[self.config.seed, update, epoch as u64],
                Stream::Minibatch,
            ));
            for j in 0..minibatches {
                let chosen = &order[j * steps / minibatches..(j + 1) * steps / minibatches];
                let rows = batch.rows_of(chosen);
                let features = batch.features.index_select(0, &rows);
                let log_new = self
                    .policy
                    .log_prob(&features, &batch.actions.index_select(0, &rows));
                let mut actor_loss = clipped_surrogate(
                    &log_new,
                    &log_old.index_select(0, &rows),
                    &row_advantages.index_select(0, &rows),
                    eps,
                );
                if self.config.entropy_coef > 0.0 {
                    let entropy = self.policy.entropy(&features).mean(Kind::Float);
                    actor_loss -= entropy * self.config.entropy_coef;
                }
                Self::step(&mut self.actor_optimizer, &actor_loss, max_norm)?;

                let chosen_steps =
                    Tensor::from_slice(&chosen.iter().map(|&s| s as i64).collect::<Vec<_>>());
                let value = self
                    .critic
                    .values(&batch.states.index_select(0, &chosen_steps));
                let value_loss = (value - returns.index_select(0, &chosen_steps))
                    .square()
                    .mean(Kind::Float)
                    * 0.5;
                Self::step(&mut self.critic_optimizer, &value_loss, max_norm)?;
                policy_loss += actor_loss.double_value(&[]);
                losses += 1;
            }
        }

        self.episodes += k;
        let instances: usize = episodes.iter().map(Trajectory::instances).sum();
        let kept: usize = episodes.iter().map(Trajectory::instances_kept).sum();
        Ok(UpdateStats {
            episode_return: episodes.iter().map(Trajectory::episode_return).sum::<f64>() / k as f64,
            baseline: first_values.iter().sum::<f64>() / k as f64,
            loss: policy_loss / losses.max(1) as f64,
            learning_rate: self.config.learning_rate,
            kept_ratio: if instances == 0 {
                0.0
            } else {
                kept as f64 / instances as f64
            },
        })
    }

    fn episodes_learned(&self) -> usize {
        self.episodes
    }

    fn save_checkpoint(&self, path: &std::path::Path) -> Result<()> {
        self.save(path)
    }
}

// A checkpoint holds both networks, both Adams, the config, the episode count and the
// teaching stream; an update's minibatch order is regenerated from the seed. The critic
// reads a step's mean feature row.
actor_and_critic_checkpoint!(Ppo, PpoConfig, "ppo", |feature_dim| feature_dim);

impl Teacher for Ppo {
    fn name(&self) -> &str {
        "ppo"
    }

    fn columns(&self) -> Vec<String> {
        self.layout.names().to_vec()
    }

    fn act(&mut self, observation: &TeachingObservation, _info: &TeachingInfo) -> Result<KeepMask> {
        let features = observation.features_for(&self.layout)?;
        self.policy
            .sample_features(&features, None, &mut self.sampling_rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12)
    }

    #[test]
    fn gae_matches_a_hand_computed_three_step_episode() {
        // gamma 0.9, lambda 0.8 (gamma lambda = 0.72), V = 0 after the last step:
        // delta = [1 + 0.9 * 1 - 0.5, 0 + 0.9 * -0.5 - 1, 2 + 0 + 0.5] = [1.4, -1.45, 2.5]
        // A_2 = 2.5, A_1 = -1.45 + 0.72 * 2.5 = 0.35, A_0 = 1.4 + 0.72 * 0.35 = 1.652
        let (advantages, returns) = gae(&[1.0, 0.0, 2.0], &[0.5, 1.0, -0.5], 0.9, 0.8);
        assert!(close(&advantages, &[1.652, 0.35, 2.5]), "{advantages:?}");
        assert!(close(&returns, &[2.152, 1.35, 2.0]), "{returns:?}");
        // lambda = 1, gamma = 1: A_t = G_t - V(s_t), R_t = G_t (Monte-Carlo returns).
        let (advantages, returns) = gae(&[1.0, 0.0, 2.0], &[0.5, 1.0, -0.5], 1.0, 1.0);
        assert!(close(&advantages, &[2.5, 1.0, 2.5]), "{advantages:?}");
        assert!(close(&returns, &[3.0, 2.0, 2.0]), "{returns:?}");
    }

    /// d L_clip / d log_new for one instance at ratio `ratio` and advantage `advantage`.
    fn surrogate_gradient(ratio: f64, advantage: f64) -> f64 {
        let log_new = Tensor::from_slice(&[ratio.ln() as f32]).set_requires_grad(true);
        let log_old = Tensor::from_slice(&[0.0f32]);
        let advantages = Tensor::from_slice(&[advantage as f32]);
        clipped_surrogate(&log_new, &log_old, &advantages, 0.2).backward();
        log_new.grad().double_value(&[0])
    }

    #[test]
    fn the_clipped_objective_has_no_gradient_outside_the_clip_region() {
        // Past 1 + eps with A > 0, or below 1 - eps with A < 0: clipped, flat.
        assert_eq!(surrogate_gradient(1.5, 1.0), 0.0);
        assert_eq!(surrogate_gradient(0.5, -1.0), 0.0);
        // Inside the region, and on the pessimistic side outside it, the gradient is
        // -rho A (d rho / d log_new = rho).
        for (ratio, advantage) in [(1.1, 1.0), (0.9, -2.0), (0.5, 1.0), (1.5, -1.0)] {
            let gradient = surrogate_gradient(ratio, advantage);
            assert!(
                (gradient + ratio * advantage).abs() < 1e-5,
                "rho {ratio}, A {advantage}: {gradient}"
            );
        }
    }

    #[test]
    fn invalid_fields_are_named() {
        for (config, field) in [
            (
                PpoConfig {
                    clip_epsilon: 0.0,
                    ..PpoConfig::default()
                },
                "clip_epsilon",
            ),
            (
                PpoConfig {
                    epochs: 0,
                    ..PpoConfig::default()
                },
                "epochs",
            ),
            (
                PpoConfig {
                    gae_lambda: 1.5,
                    ..PpoConfig::default()
                },
                "gae_lambda",
            ),
            (
                PpoConfig {
                    learning_rate: f64::NAN,
                    ..PpoConfig::default()
                },
                "learning_rate",
            ),
        ] {
            match Ppo::new(config, &crate::teacher::test_layout(5)) {
                Err(AgentError::InvalidConfig { field: found, .. }) => assert_eq!(found, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_episode_without_one_reward_per_step_is_refused() {
        let mut ppo = Ppo::new(
            PpoConfig {
                episodes_per_update: 1,
                entropy_coef: 0.01,
                ..PpoConfig::default()
            },
            &crate::teacher::test_layout(2),
        )
        .unwrap();
        let mut episode = Trajectory::default();
        let observation = l2t_envs::TeachingObservation {
            features: ndarray::Array2::from_shape_vec((2, 2), vec![0.1f32, 0.2, 0.3, 0.4]).unwrap(),
            student_state: ndarray::Array1::zeros(3),
            layout: crate::teacher::test_layout(2),
        };
        episode.record(&observation, &KeepMask::from(vec![true, false]));
        episode.record(&observation, &KeepMask::from(vec![true, true]));
        episode.add_reward(1.0);
        assert!(matches!(
            ppo.learn(vec![episode.clone()]),
            Err(AgentError::Observation(_))
        ));
        episode.add_reward(0.5);
        let before = ppo.flat_weights().unwrap();
        let stats = ppo.learn(vec![episode]).unwrap();
        assert_eq!(stats.episode_return, 1.5);
        assert_eq!(stats.kept_ratio, 0.75);
        assert_ne!(ppo.flat_weights().unwrap(), before);
        assert_eq!(ppo.updates(), 1);
    }
}
