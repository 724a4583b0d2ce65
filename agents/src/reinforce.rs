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
//! with Adam (lr 0.02, multiplied by 0.7 every 50 episodes; the workspace's one [`Adam`],
//! libtorch's algorithm with a state that checkpoints can save). The baseline b is an
//! exponential moving average of past returns, `b <- beta * b + (1 - beta) * r_T`,
//! started at the first episode's return (so the first episode makes no update).
//!
//! Training runs on the crate's one rollout-and-learn loop,
//! [`crate::rollout::train_parallel`]: each update's K = `episodes_per_update` episodes
//! are rolled out whole (on worker threads) with a frozen copy of the policy, then
//! [`Learner::learn`] makes one update from them, averaged over the K episodes:
//!
//! ```text
//! L = -(1/K) sum_k (r_k - b) * sum_t sum_m log phi(a_ktm | s_ktm),   b <- beta b + (1 - beta) mean_k r_k
//! ```
//!
//! which is the paper's update for K = 1 (the default). With K >= 2 two variance
//! reducers are config values: a leave-one-out baseline
//! (`b_k = (1/(K-1)) sum_{j != k} r_j`, [`Baseline::LeaveOneOut`]) and normalised
//! advantages (`A_k / sd(A)`); and the K episodes can teach the same student (common
//! random numbers: the same initialisation and data order, each with its own sampling
//! stream), so that `r_k - b_k` measures the teacher's choices, not the student's luck.
//!
//! [`Reinforce::policy_gradient`] returns the estimate `-grad L` for given episodes and
//! advantages without taking a step (`examples/reinforce_gradient_cosine.rs` measures
//! its signal-to-noise ratio with it); the update takes Adam's step on the same loss.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use l2t_envs::seeding::{stream_rng, Stream};
use l2t_envs::{FeatureLayout, TeachingInfo, TeachingObservation};

use crate::checkpoint::{Checkpointed, Progress};
use crate::episode::UpdateStats;
use crate::error::{invalid_config, AgentError, Result};
use crate::policy::BernoulliPolicy;
use crate::rollout::{episode_sampling_rng, plan_episodes, Learner, RolloutJob, Trajectory};
use crate::teacher::{KeepMask, Teacher};
use crate::weights::{mlp_parameter_count, named_trainable_in_name_order};
use l2t_envs::student::Adam;

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
    /// K: finished episodes pooled into one update (1 in the paper). With K > 1, save
    /// checkpoints right after updates (every multiple of K episodes): episodes waiting
    /// for an update are not stored.
    pub episodes_per_update: usize,
    /// The baseline b_k subtracted from episode k's return (the paper's moving average
    /// by default).
    pub baseline: Baseline,
    /// Divide the K advantages by their standard deviation (needs K >= 2).
    pub normalize_advantages: bool,
    /// The K episodes of an update teach the same student (same initialisation and
    /// data order), each with its own sampling stream: common random numbers, so that
    /// `r_k - mean(r)` measures the teacher's choices rather than the student's luck
    /// (RL4Data resets the student to the same saved weights every episode). Needs
    /// K >= 2 (run on the `Learner` loop).
    pub common_random_numbers: bool,
}

/// REINFORCE's baseline b_k for episode k of an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Baseline {
    /// The paper's: an exponential moving average of past returns,
    /// `b <- beta b + (1 - beta) mean_k r_k`, the same b for every episode.
    #[default]
    MovingAverage,
    /// The mean return of the update's other K - 1 episodes (needs K >= 2): unbiased,
    /// and with common random numbers it removes the student's luck of the update.
    LeaveOneOut,
}

/// The advantages `A_k = r_k - b_k` of an update's returns, for `baseline` (with
/// `moving_average` the moving-average value b), optionally divided by their sample
/// standard deviation (left as they are when it is 0).
pub fn advantages(
    returns: &[f64],
    baseline: Baseline,
    moving_average: f64,
    normalize: bool,
) -> Vec<f64> {
    let k = returns.len();
    let total: f64 = returns.iter().sum();
    let mut advantages: Vec<f64> = returns
        .iter()
        .map(|&r| match baseline {
            Baseline::MovingAverage => r - moving_average,
            Baseline::LeaveOneOut if k > 1 => r - (total - r) / (k - 1) as f64,
            Baseline::LeaveOneOut => 0.0,
        })
        .collect();
    if normalize && k > 1 {
        let mean = advantages.iter().sum::<f64>() / k as f64;
        let sd =
            (advantages.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (k - 1) as f64).sqrt();
        if sd > 0.0 {
            advantages.iter_mut().for_each(|a| *a /= sd);
        }
    }
    advantages
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
            episodes_per_update: 1,
            baseline: Baseline::MovingAverage,
            normalize_advantages: false,
            common_random_numbers: false,
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
        if self.episodes_per_update == 0 {
            return Err(invalid_config("episodes_per_update", "must be at least 1"));
        }
        let pooled = self.episodes_per_update >= 2;
        if !pooled && self.baseline == Baseline::LeaveOneOut {
            return Err(invalid_config(
                "baseline",
                "leave_one_out needs episodes_per_update >= 2",
            ));
        }
        if !pooled && (self.normalize_advantages || self.common_random_numbers) {
            let field = if self.normalize_advantages {
                "normalize_advantages"
            } else {
                "common_random_numbers"
            };
            return Err(invalid_config(field, "needs episodes_per_update >= 2"));
        }
        Ok(())
    }
}

/// The REINFORCE teacher.
pub struct Reinforce {
    pub(crate) config: ReinforceConfig,
    pub(crate) policy: BernoulliPolicy,
    pub(crate) optimizer: Adam,
    /// The stream of keep-masks sampled by [`Teacher::act`] (teaching, not training).
    pub(crate) sampling_rng: ChaCha8Rng,
    /// b: moving average of past returns; `None` before the first episode.
    pub(crate) baseline: Option<f64>,
    pub(crate) episodes: usize,
    /// The feature columns the policy reads.
    pub(crate) layout: FeatureLayout,
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
    /// A REINFORCE teacher for observations with the columns of `layout`.
    pub fn new(config: ReinforceConfig, layout: &FeatureLayout) -> Result<Self> {
        config.validate()?;
        let mut init_rng = stream_rng(config.seed, Stream::TeacherInit);
        let (policy, optimizer) = BernoulliPolicy::with_adam(
            layout.len(),
            config.hidden,
            config.output_bias,
            config.learning_rate,
            &mut init_rng,
        )?;
        Ok(Self {
            sampling_rng: stream_rng(config.seed, Stream::TeacherSampling),
            config,
            policy,
            optimizer,
            baseline: None,
            episodes: 0,
            layout: layout.clone(),
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

    /// The action-sampling stream of an episode rolled out away from the teacher
    /// (see [`crate::rollout`]), keyed by the teacher's seed and `episode_key` (the
    /// episode's env seed): a function of the two only, so an episode samples the same
    /// actions whichever thread runs it and whatever ran before.
    pub fn episode_sampling_rng(&self, episode_key: u64) -> ChaCha8Rng {
        episode_sampling_rng(self.config.seed, episode_key)
    }

    /// All weights flattened in name order: for determinism checks and inspection.
    pub fn flat_weights(&self) -> Result<Vec<f32>> {
        self.policy.flat_weights()
    }
}

impl Reinforce {
    /// The surrogate loss of `episodes` with advantages `advantages` (one per episode),
    /// under the policy as it is now:
    ///
    /// ```text
    /// L = -(1/K) sum_k A_k * sum_t sum_m log phi(a_ktm | s_ktm)
    /// ```
    ///
    /// whose negative gradient is the REINFORCE estimate of grad J. The one place the
    /// estimator is written down: [`Learner::learn`] minimises it with Adam and
    /// [`Self::policy_gradient`] returns its gradient. Also returns the actions of all
    /// episodes, concatenated.
    fn surrogate_loss(
        &self,
        episodes: &[Trajectory],
        advantages: &[f64],
    ) -> Result<(Tensor, Tensor)> {
        let k = episodes.len();
        let feature_dim = self.policy.input_dim();
        if k == 0 || advantages.len() != k || episodes.iter().any(|e| e.actions().is_empty()) {
            return Err(AgentError::Observation(format!(
                "a policy gradient needs non-empty episodes and one advantage each: {k} episodes, {} advantages",
                advantages.len()
            )));
        }
        if let Some(e) = episodes
            .iter()
            .find(|e| e.feature_rows().len() != e.instances() * feature_dim)
        {
            return Err(AgentError::Observation(format!(
                "the trajectory holds {} feature values for {} actions, the policy reads {feature_dim} features",
                e.feature_rows().len(),
                e.instances()
            )));
        }
        let mut terms = Vec::with_capacity(k);
        let mut all_actions = Vec::with_capacity(k);
        for (episode, advantage) in episodes.iter().zip(advantages) {
            let states = Tensor::from_slice(episode.feature_rows()).view([-1, feature_dim as i64]);
            let actions = Tensor::from_slice(episode.actions());
            let log_phi = self.policy.log_prob(&states, &actions).sum(Kind::Float);
            terms.push(-*advantage * log_phi);
            all_actions.push(actions);
        }
        let loss = if k == 1 {
            terms.remove(0)
        } else {
            Tensor::stack(&terms, 0).sum(Kind::Float) / k as f64
        };
        Ok((loss, Tensor::cat(&all_actions, 0)))
    }

    /// The policy-gradient estimate of `episodes` (rolled out with the policy as it is
    /// now) for advantages `A_k = r_k - b_k`, one per episode, without changing the
    /// policy or its optimizer:
    ///
    /// ```text
    /// g = -grad L = (1/K) sum_k A_k * sum_t sum_m grad log phi(a_ktm | s_ktm)
    /// ```
    ///
    /// flattened in the order of [`Self::flat_weights`]. The step [`Learner::learn`]
    /// takes is Adam's on this gradient (of the same surrogate loss, with the
    /// advantages of [`advantages`] for the configured baseline); with one episode and
    /// `A = 1` it is that episode's score `grad sum log phi(a | s)`.
    pub fn policy_gradient(&self, episodes: &[Trajectory], advantages: &[f64]) -> Result<Vec<f32>> {
        let (loss, _) = self.surrogate_loss(episodes, advantages)?;
        let weights: Vec<Tensor> =
            crate::weights::named_trainable_in_name_order(self.policy.var_store())
                .into_iter()
                .map(|(_, t)| t)
                .collect();
        let gradients = Tensor::f_run_backward(&[&loss], &weights, false, false)?;
        let mut flat = Vec::new();
        for gradient in gradients {
            flat.extend(Vec::<f32>::try_from(-gradient.flatten(0, -1))?);
        }
        Ok(flat)
    }

    /// One policy-gradient step on K finished episodes, rolled out with the policy as it
    /// is now (on-policy).
    fn update(&mut self, episodes: Vec<Trajectory>) -> Result<UpdateStats> {
        let k = episodes.len();
        if k != self.config.episodes_per_update {
            return Err(AgentError::Observation(format!(
                "an update needs {} episodes, {k} were given",
                self.config.episodes_per_update
            )));
        }
        let returns: Vec<f64> = episodes.iter().map(Trajectory::episode_return).collect();
        let mean_return = returns.iter().sum::<f64>() / k as f64;
        let b = self.baseline.unwrap_or(mean_return);
        let advantages = advantages(
            &returns,
            self.config.baseline,
            b,
            self.config.normalize_advantages,
        );
        let (loss, all_actions) = self.surrogate_loss(&episodes, &advantages)?;
        let learning_rate = self.learning_rate_at(self.episodes);
        self.optimizer.set_lr(learning_rate);
        self.optimizer.backward_step(&loss)?;

        let beta = self.config.baseline_momentum;
        self.baseline = Some(beta * b + (1.0 - beta) * mean_return);
        self.episodes += k;
        let kept_ratio = all_actions.mean(Kind::Float).double_value(&[]);
        Ok(UpdateStats {
            episode_return: mean_return,
            baseline: b,
            loss: loss.double_value(&[]),
            learning_rate,
            kept_ratio,
        })
    }
}

impl Teacher for Reinforce {
    fn name(&self) -> &str {
        "reinforce"
    }

    fn columns(&self) -> Vec<String> {
        self.layout.names().to_vec()
    }

    /// a_m ~ Bernoulli(phi(1 | s_m)), sampled from the teacher's own stream.
    fn act(&mut self, observation: &TeachingObservation, _info: &TeachingInfo) -> Result<KeepMask> {
        let features = observation.features_for(&self.layout)?;
        self.policy
            .sample_features(&features, None, &mut self.sampling_rng)
    }
}

impl Learner for Reinforce {
    /// K episodes with the current policy: episode j is seeded `first_seed + j` and
    /// samples from [`Reinforce::episode_sampling_rng`] of its seed.
    fn plan_update(&mut self, first_seed: u64) -> Result<Vec<RolloutJob>> {
        plan_episodes(
            &self.policy,
            self.config.seed,
            self.config.episodes_per_update,
            first_seed,
            self.config.common_random_numbers,
        )
    }

    fn learn(&mut self, episodes: Vec<Trajectory>) -> Result<UpdateStats> {
        self.update(episodes)
    }

    fn episodes_learned(&self) -> usize {
        self.episodes
    }

    fn save_checkpoint(&self, path: &std::path::Path) -> Result<()> {
        self.save(path)
    }
}

/// A checkpoint holds the policy's variables, its Adam, the config, b, the episode
/// count and the teaching stream.
impl Checkpointed for Reinforce {
    const KIND: &'static str = "reinforce";
    type State = ReinforceConfig;

    fn state(&self) -> ReinforceConfig {
        self.config.clone()
    }
    fn layout(&self) -> &FeatureLayout {
        &self.layout
    }
    fn variables(&self) -> Vec<(String, Tensor)> {
        named_trainable_in_name_order(self.policy.var_store())
    }
    fn optimizers(&self) -> Vec<&Adam> {
        vec![&self.optimizer]
    }
    fn optimizers_mut(&mut self) -> Vec<&mut Adam> {
        vec![&mut self.optimizer]
    }
    fn progress(&self) -> Progress {
        Progress {
            episodes: self.episodes,
            baseline: self.baseline,
            sampling_rng: self.sampling_rng.clone(),
        }
    }
    fn parameter_count(config: &ReinforceConfig, feature_dim: usize) -> Option<usize> {
        mlp_parameter_count(feature_dim, config.hidden)
    }
    fn rebuild(config: ReinforceConfig, layout: &FeatureLayout) -> Result<Self> {
        Self::new(config, layout)
    }
    fn resume(&mut self, progress: Progress) -> Result<()> {
        self.episodes = progress.episodes;
        self.baseline = progress.baseline;
        self.sampling_rng = progress.sampling_rng;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An episode of one step: `features` rows, their keep-mask and the return.
    fn one_step_episode(features: &[[f32; 3]], keep: &[bool], reward: f64) -> Trajectory {
        let observation = l2t_envs::TeachingObservation {
            features: ndarray::Array2::from_shape_fn((features.len(), 3), |(i, j)| features[i][j]),
            student_state: ndarray::Array1::zeros(3),
            layout: crate::teacher::test_layout(3),
        };
        let mut trajectory = Trajectory::default();
        trajectory.record(&observation, &KeepMask::from_vec(keep.to_vec()));
        trajectory.add_reward(reward);
        trajectory
    }

    fn two_episodes() -> Vec<Trajectory> {
        vec![
            one_step_episode(
                &[[0.5, -1.0, 2.0], [0.1, 0.3, -0.2], [-1.5, 0.7, 0.0]],
                &[true, false, true],
                1.0,
            ),
            one_step_episode(&[[2.0, 0.2, -0.4], [0.0, 1.0, 1.0]], &[false, true], 3.0),
        ]
    }

    #[test]
    fn the_policy_gradient_of_a_linear_policy_is_the_analytic_score() {
        // phi(a | s) = sigma(w . s + b)^a (1 - sigma(w . s + b))^(1 - a), so
        // grad_(b, w) log phi(a | s) = (a - sigma(w . s + b)) * (1, s).
        let config = ReinforceConfig {
            hidden: 0,
            ..ReinforceConfig::default()
        };
        let teacher = Reinforce::new(config, &crate::teacher::test_layout(3)).unwrap();
        let episodes = two_episodes();
        let advantages = [0.7, -1.3];
        let before = teacher.flat_weights().unwrap();
        let gradient = teacher.policy_gradient(&episodes, &advantages).unwrap();
        assert_eq!(
            teacher.flat_weights().unwrap(),
            before,
            "the policy is not changed"
        );
        // Name order: output.bias, then output.weight.
        let (bias, weight) = (before[0] as f64, &before[1..]);
        let mut expected = [0.0f64; 4];
        for (episode, advantage) in episodes.iter().zip(advantages) {
            for (row, &action) in episode.feature_rows().chunks(3).zip(episode.actions()) {
                let z = bias
                    + row
                        .iter()
                        .zip(weight)
                        .map(|(s, w)| (s * w) as f64)
                        .sum::<f64>();
                let residual = action as f64 - 1.0 / (1.0 + (-z).exp());
                expected[0] += advantage * residual / 2.0;
                for (e, &s) in expected[1..].iter_mut().zip(row) {
                    *e += advantage * residual * s as f64 / 2.0;
                }
            }
        }
        assert_eq!(gradient.len(), 4);
        for (g, e) in gradient.iter().zip(expected) {
            assert!((*g as f64 - e).abs() < 1e-5, "{gradient:?} vs {expected:?}");
        }
        // One episode with A = 1: its score alone.
        let score = teacher.policy_gradient(&episodes[1..], &[1.0]).unwrap();
        let again = teacher.policy_gradient(&episodes[1..], &[2.0]).unwrap();
        for (s, a) in score.iter().zip(&again) {
            assert!((2.0 * s - a).abs() < 1e-6);
        }
        assert!(teacher.policy_gradient(&episodes, &[1.0]).is_err());
    }

    #[test]
    fn an_update_is_adams_step_along_the_policy_gradient() {
        let config = ReinforceConfig {
            episodes_per_update: 2,
            baseline: Baseline::LeaveOneOut,
            ..ReinforceConfig::default()
        };
        let mut teacher = Reinforce::new(config, &crate::teacher::test_layout(3)).unwrap();
        let episodes = two_episodes();
        let returns: Vec<f64> = episodes.iter().map(Trajectory::episode_return).collect();
        let gradient = teacher
            .policy_gradient(
                &episodes,
                &advantages(&returns, Baseline::LeaveOneOut, 0.0, false),
            )
            .unwrap();
        let before = teacher.flat_weights().unwrap();
        teacher.learn(episodes).unwrap();
        let after = teacher.flat_weights().unwrap();
        // Adam's first step is lr * g / (|g| + eps): ascent along the estimate, lr per
        // coordinate.
        let mut checked = 0;
        for ((g, b), a) in gradient.iter().zip(&before).zip(&after) {
            if g.abs() > 1e-4 {
                assert!(((a - b) - 0.02 * g.signum()).abs() < 1e-5, "{g} {b} {a}");
                checked += 1;
            }
        }
        assert!(
            checked > gradient.len() / 2,
            "{checked} of {}",
            gradient.len()
        );
    }

    #[test]
    fn advantages_by_baseline_and_normalisation() {
        let returns = [1.0, 2.0, 6.0];
        // Moving average: one b for all.
        assert_eq!(
            advantages(&returns, Baseline::MovingAverage, 2.0, false),
            vec![-1.0, 0.0, 4.0]
        );
        // Leave one out: b_k is the mean of the other two.
        assert_eq!(
            advantages(&returns, Baseline::LeaveOneOut, 99.0, false),
            vec![1.0 - 4.0, 2.0 - 3.5, 6.0 - 1.5]
        );
        // Normalised: the same signs, unit sample standard deviation.
        let normalised = advantages(&returns, Baseline::LeaveOneOut, 0.0, true);
        let mean = normalised.iter().sum::<f64>() / 3.0;
        let sd = (normalised.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        assert!((sd - 1.0).abs() < 1e-12, "{sd}");
        assert!(normalised[0] < 0.0 && normalised[2] > 0.0);
        // Equal returns: zero advantages, not a division by zero.
        assert_eq!(
            advantages(&[3.0, 3.0], Baseline::LeaveOneOut, 0.0, true),
            vec![0.0, 0.0]
        );
    }

    #[test]
    fn pooled_options_need_several_episodes_per_update() {
        for (config, field) in [
            (
                ReinforceConfig {
                    baseline: Baseline::LeaveOneOut,
                    ..ReinforceConfig::default()
                },
                "baseline",
            ),
            (
                ReinforceConfig {
                    normalize_advantages: true,
                    ..ReinforceConfig::default()
                },
                "normalize_advantages",
            ),
            (
                ReinforceConfig {
                    common_random_numbers: true,
                    ..ReinforceConfig::default()
                },
                "common_random_numbers",
            ),
        ] {
            let error = Reinforce::new(config, &crate::teacher::test_layout(5))
                .unwrap_err()
                .to_string();
            assert!(error.contains(field), "{error}");
        }
    }

    #[test]
    fn common_random_numbers_share_the_student_but_not_the_sampling_stream() {
        let config = ReinforceConfig {
            episodes_per_update: 3,
            common_random_numbers: true,
            ..ReinforceConfig::default()
        };
        let mut teacher = Reinforce::new(config, &crate::teacher::test_layout(5)).unwrap();
        let jobs = teacher.plan_update(40).unwrap();
        assert!(jobs.iter().all(|job| job.seed == 40));
        let observation = l2t_envs::TeachingObservation {
            features: ndarray::Array2::from_elem((64, 5), 0.3),
            student_state: ndarray::Array1::zeros(3),
            layout: crate::teacher::test_layout(5),
        };
        let info = crate::teacher::blank_info();
        let masks: Vec<KeepMask> = jobs
            .into_iter()
            .map(|mut job| job.rollout.act(&observation, &info).unwrap())
            .collect();
        assert_ne!(
            masks[0], masks[1],
            "each episode samples from its own stream"
        );
        assert_ne!(masks[1], masks[2]);
        // Without common random numbers every episode has its own seed.
        let mut plain = Reinforce::new(
            ReinforceConfig {
                episodes_per_update: 3,
                ..ReinforceConfig::default()
            },
            &crate::teacher::test_layout(5),
        )
        .unwrap();
        let seeds: Vec<u64> = plain
            .plan_update(40)
            .unwrap()
            .iter()
            .map(|j| j.seed)
            .collect();
        assert_eq!(seeds, vec![40, 41, 42]);
    }
}
