//! Evolution strategies (OpenAI-ES, Salimans et al. 2017) over the weights of the
//! teacher's [`BernoulliPolicy`].
//!
//! REINFORCE perturbs every one of thousands of keep decisions independently and
//! credits all of them with one noisy terminal reward. ES perturbs the policy as a
//! whole instead: one generation draws n Gaussian directions eps_j over the flat weight
//! vector theta and teaches one episode with each of theta + sigma eps_j and
//! theta - sigma eps_j (antithetic pairs). Both members of a pair see the same student
//! (same initialisation and data order: env seed `first_seed + 2j`) and the same
//! uniforms for their Bernoulli draws (common random numbers), so the difference of
//! their returns measures what the direction changed, not the student's luck
//! ([`CommonRandomNumbers::Pairs`]; with [`CommonRandomNumbers::Generation`] all 2n
//! episodes share one student and one set of uniforms, env seed `first_seed`). The
//! 2n returns R are replaced by their centred ranks F (in [-0.5, 0.5], ties share the
//! mean rank), which makes the update blind to the scale of the reward, and
//!
//! ```text
//! g      = 1 / (2 n sigma) * sum_j (F(theta + sigma eps_j) - F(theta - sigma eps_j)) * eps_j
//! theta <- Adam(theta, -g + weight_decay * theta)      (gradient ascent on E[R])
//! ```
//!
//! R is the env's return: with the paper's reward r = -ln(i_tau / T') (or its weighted
//! multi-threshold variant), fewer student iterations to tau rank higher. ES does not
//! care that the reward is sparse, and its 2n episodes are independent: they run on
//! the worker threads of the [`Learner`] loop ([`crate::rollout::train_parallel`]).
//! The directions are regenerated from `(seed, generation, j)` when learning, so
//! nothing but theta and the Adam state needs saving.
//!
//! **Feature normalisation** (as in ARS, Mania et al. 2018). theta acts on
//! standardised features z = (s - mu) / sd, with mu and sd the mean and standard
//! deviation (floored at 0.01) of every feature row of the training episodes so far,
//! updated after each generation (mu = 0, sd = 1 before the first). A perturbation then
//! moves the keep logit as much through a feature of small spread (the loss of a
//! well-fitted student) as through one of large spread. The policies that teach are
//! theta folded with the statistics, W' = W / sd, b' = b - W' mu, so they read the
//! raw observation.
//!
//! **Policy.** `hidden = 0` (the default) makes phi a linear policy, sigma(w . z + b)
//! over the F features: with F + 1 weights a random direction has a useful component
//! of about 1/sqrt(F + 1), against 1/sqrt(325) for the 25-12-1 network of REINFORCE
//! (which `hidden = 12` gives).
//!
//! **Keep k per batch** (`keep_per_batch = k > 0`). Instead of one Bernoulli draw
//! per instance, the policy keeps exactly k of the M instances of each incoming batch,
//! drawn without replacement from softmax(z_m) over the batch's logits
//! z_m = w . z(s_m) + b (Plackett-Luce; sampled as the Gumbel top-k,
//! [`BernoulliPolicy::sample_top_k`]). The kept share is then fixed at k / M and ES
//! learns only the ranking within a batch and its sharpness (the scale of w), the form
//! of RHO-LOSS, which keeps the top ceil(kappa M) by a fixed score; the bias b and the
//! features constant over a batch (the student state) drop out.
//!
//! **A pool of batches** (`pool = P > 1`, with k or a learned share). RHO-LOSS ranks a
//! big batch of P M rows; so can ES: a row of the current batch is kept when its
//! z_m + g_m (g_m the Gumbel draw of the Plackett-Luce sample) is among the n_t
//! largest of the last P batches', n_t = k P ([`crate::policy::KeepRule`]). A batch of
//! easy rows then gives fewer than k, a hard one more.
//!
//! **A learned kept share** (`learned_share = q_0`). A fixed share cannot be
//! compute-optimal: early in training nearly every row is worth its backward, late
//! few are, and scoring costs a forward either way. The policy then has a second
//! head over the batch's mean standardised row,
//!
//! ```text
//! q_t = sigma(u . mean_m z(s_m) + c),     c starts at logit(q_0)
//! n_t = ceil(q_t P M)
//! ```
//!
//! which ES perturbs and learns with w and b: the student state columns (progress,
//! average loss, best dev accuracy) and the batch's means (its loss, margin, reducible
//! loss) set how many rows are kept; the score w . z(s_m) sets which. Only the
//! episode's return trains either.
//!
//! **Each head its own sigma, and two stages.** With `share_sigma` the share head's
//! weights are perturbed by sigma_u eps and the score's by sigma eps; the estimate is
//! per variable, g_v = 1 / (2 n sigma_v) sum_j (F_j+ - F_j-) eps_j,v. `score_from` starts
//! the score (and the feature statistics) from a trained ES checkpoint, and
//! `frozen_score` leaves it there, so that ES learns the F + 1 weights of the share
//! head alone: the ranking first, then how much of it to keep, each from the env's
//! reward.
//!
//! When it teaches (evaluation), the teacher samples its mask (Bernoulli, k per batch,
//! or the pool's share) from the mean weights theta and its own stream.

use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use l2t_envs::seeding::{keyed_rng, stream_rng, Stream};
use l2t_envs::{FeatureLayout, TeachingInfo, TeachingObservation};

use crate::checkpoint::{Checkpointed, Progress};
use crate::episode::UpdateStats;
use crate::error::{invalid_config, AgentError, Result};
use crate::policy::{BernoulliPolicy, KeepRule};
use crate::rollout::{Learner, PolicyRollout, RolloutJob, Trajectory};
use crate::teacher::{KeepMask, Teacher};
use crate::weights::{mlp_parameter_count, named_trainable_in_name_order};
use l2t_envs::student::Adam;

/// Hyper-parameters of [`EvolutionStrategies`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EsConfig {
    /// Width of the policy's tanh hidden layer (0: a linear policy).
    pub hidden: usize,
    /// Initial bias of the policy's output unit (2.0: keep about 88% at first).
    pub output_bias: f64,
    /// n: antithetic pairs per generation (2n episodes per update). The default of 2
    /// makes more, noisier updates in the same episodes than 4; on Fashion-MNIST it
    /// taught better (studies/notes/es-options.md).
    pub pairs: usize,
    /// sigma: standard deviation of the weight perturbations.
    pub sigma: f64,
    /// Adam learning rate of theta.
    pub learning_rate: f64,
    /// L2 coefficient pulling theta towards 0.
    pub weight_decay: f64,
    /// Which episodes of a generation share the student (initialisation and data
    /// order) and the uniforms of their Bernoulli draws: `"pairs"` (both members of
    /// each pair), `"generation"` (all 2n episodes) or `"off"` (each episode its own).
    /// `true` and `false` read as `"pairs"` and `"off"`.
    pub common_random_numbers: CommonRandomNumbers,
    /// Seed of the teacher's streams (initial weights, directions, sampling).
    pub seed: u64,
    /// k > 0: the policy keeps exactly k instances of each incoming batch, drawn
    /// without replacement from softmax(z) over the batch's logits (see the module
    /// doc); 0 (the default): one Bernoulli(sigma(z)) draw per instance.
    #[serde(skip_serializing_if = "is_zero")]
    pub keep_per_batch: usize,
    /// P: the incoming batches a kept count applies to (1, the default: each batch
    /// alone). P > 1 needs `keep_per_batch` or `learned_share`.
    #[serde(skip_serializing_if = "is_one")]
    pub pool: usize,
    /// q_0: with a value, the policy learns the kept share of each big batch with a
    /// second head that starts at q_0 (see the module doc); `keep_per_batch` must then
    /// be 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learned_share: Option<f64>,
    /// sigma of the share head's weights (u, c), where it should differ from the
    /// score's `sigma` (needs `learned_share`). The kept share is steep in c: at the
    /// score's sigma of 0.5 the two members of a pair kept from 7% to 74%.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share_sigma: Option<f64>,
    /// A checkpoint of an ES teacher for the same columns (and `hidden`), whose score
    /// (w, b) and feature statistics theta starts from; a share head starts at q_0 in
    /// every state (u = 0). The file is read when the teacher is made for training, not
    /// when a checkpoint of this teacher is loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score_from: Option<std::path::PathBuf>,
    /// Only the share head is perturbed and learned; the score stays as it started
    /// (from `score_from`, or its initialisation). Needs `learned_share`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub frozen_score: bool,
}

fn is_zero(value: &usize) -> bool {
    *value == 0
}

fn is_one(value: &usize) -> bool {
    *value == 1
}

impl Default for EsConfig {
    fn default() -> Self {
        Self {
            hidden: 0,
            output_bias: 2.0,
            pairs: 2,
            sigma: 0.5,
            learning_rate: 0.1,
            weight_decay: 0.0,
            common_random_numbers: CommonRandomNumbers::Pairs,
            seed: 0,
            keep_per_batch: 0,
            pool: 1,
            learned_share: None,
            share_sigma: None,
            score_from: None,
            frozen_score: false,
        }
    }
}

/// The common random numbers of one ES generation: which of its episodes teach the
/// same student (initialisation and data order) with the same sampling uniforms, so
/// that their returns differ only by the policy that taught.
///
/// With `Pairs`, `F(theta + sigma eps_j) - F(theta - sigma eps_j)` is free of the
/// student's luck, but the centred ranks still compare pairs on different students.
/// With `Generation`, the 2n returns of an update are all measured on one student, so
/// the ranks order the 2n policies alone; each generation draws a new student.
///
/// In a config: `"off"`, `"pairs"` or `"generation"`; the earlier booleans `true` and
/// `false` read as `"pairs"` and `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommonRandomNumbers {
    /// Every episode has its own student and uniforms.
    Off,
    /// Both members of an antithetic pair share them (the default).
    Pairs,
    /// All 2n episodes of a generation share them.
    Generation,
}

impl<'de> Deserialize<'de> for CommonRandomNumbers {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        struct Setting;
        impl serde::de::Visitor<'_> for Setting {
            type Value = CommonRandomNumbers;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"off\", \"pairs\", \"generation\", true or false")
            }
            fn visit_bool<E: serde::de::Error>(
                self,
                value: bool,
            ) -> std::result::Result<Self::Value, E> {
                Ok(if value {
                    CommonRandomNumbers::Pairs
                } else {
                    CommonRandomNumbers::Off
                })
            }
            fn visit_str<E: serde::de::Error>(
                self,
                value: &str,
            ) -> std::result::Result<Self::Value, E> {
                match value {
                    "off" => Ok(CommonRandomNumbers::Off),
                    "pairs" => Ok(CommonRandomNumbers::Pairs),
                    "generation" => Ok(CommonRandomNumbers::Generation),
                    other => Err(E::invalid_value(serde::de::Unexpected::Str(other), &self)),
                }
            }
        }
        deserializer.deserialize_any(Setting)
    }
}

impl EsConfig {
    /// sigma of the variable `name` of theta; `None` for a variable ES leaves as it is
    /// (the score's, under `frozen_score`).
    fn sigma_of(&self, name: &str) -> Option<f64> {
        if BernoulliPolicy::is_share_variable(name) {
            Some(self.share_sigma.unwrap_or(self.sigma))
        } else if self.frozen_score {
            None
        } else {
            Some(self.sigma)
        }
    }

    /// `Some(k)` where the policy keeps k instances per batch.
    fn keep_per_batch(&self) -> Option<usize> {
        (self.keep_per_batch > 0).then_some(self.keep_per_batch)
    }

    /// The keep rule of a fresh episode.
    fn keep_rule(&self) -> KeepRule {
        KeepRule::new(self.keep_per_batch(), self.pool)
    }

    fn validate(&self) -> Result<()> {
        if self.pairs == 0 {
            return Err(invalid_config("pairs", "must be at least 1"));
        }
        if !(self.sigma.is_finite() && self.sigma > 0.0) {
            return Err(invalid_config("sigma", "must be positive"));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(invalid_config("learning_rate", "must be positive"));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(invalid_config("weight_decay", "must be at least 0"));
        }
        if self.pool == 0 {
            return Err(invalid_config("pool", "must be at least 1"));
        }
        if let Some(q) = self.learned_share {
            crate::policy::check_initial_share(q)?;
            if self.keep_per_batch > 0 {
                return Err(invalid_config(
                    "learned_share",
                    "a learned share sets the kept count: keep_per_batch must be 0",
                ));
            }
        } else if self.pool > 1 && self.keep_per_batch == 0 {
            return Err(invalid_config(
                "pool",
                "a pool of batches needs keep_per_batch > 0 or a learned_share",
            ));
        }
        if let Some(sigma) = self.share_sigma {
            if !(sigma.is_finite() && sigma > 0.0) {
                return Err(invalid_config("share_sigma", "must be positive"));
            }
        }
        for (set, field) in [
            (self.share_sigma.is_some(), "share_sigma"),
            (self.frozen_score, "frozen_score"),
        ] {
            if set && self.learned_share.is_none() {
                return Err(invalid_config(
                    field,
                    "applies to a share head: set learned_share",
                ));
            }
        }
        Ok(())
    }
}

/// The evolution-strategies teacher: a mean policy theta, improved one generation of
/// 2n perturbed episodes at a time.
pub struct EvolutionStrategies {
    pub(crate) config: EsConfig,
    /// theta: the mean policy, over standardised features.
    pub(crate) theta: BernoulliPolicy,
    /// theta folded with `features`: the policy that teaches.
    folded: BernoulliPolicy,
    /// Statistics of the feature rows seen in training.
    pub(crate) features: FeatureStats,
    pub(crate) optimizer: Adam,
    /// The stream of the masks sampled when teaching (not in training rollouts).
    pub(crate) sampling_rng: ChaCha8Rng,
    /// The keep rule when teaching, with its pool.
    rule: KeepRule,
    pub(crate) episodes: usize,
    /// The feature columns the policy reads.
    pub(crate) layout: FeatureLayout,
}

impl std::fmt::Debug for EvolutionStrategies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvolutionStrategies")
            .field("config", &self.config)
            .field("episodes", &self.episodes)
            .finish()
    }
}

impl EvolutionStrategies {
    /// An ES teacher for observations with the columns of `layout`; with
    /// [`EsConfig::score_from`], its score and feature statistics start from that
    /// checkpoint.
    pub fn new(config: EsConfig, layout: &FeatureLayout) -> Result<Self> {
        let mut teacher = Self::fresh(config, layout)?;
        if let Some(path) = teacher.config.score_from.clone() {
            teacher.start_score_from(&path)?;
        }
        Ok(teacher)
    }

    /// A teacher with theta from its initialisation stream.
    fn fresh(config: EsConfig, layout: &FeatureLayout) -> Result<Self> {
        config.validate()?;
        let feature_dim = layout.len();
        let mut init_rng = stream_rng(config.seed, Stream::TeacherInit);
        let policy = BernoulliPolicy::with_share_head(
            feature_dim,
            config.hidden,
            config.output_bias,
            config.learned_share,
            &mut init_rng,
        )?;
        let optimizer = Adam::for_var_store(policy.var_store(), config.learning_rate);
        let features = FeatureStats::new(feature_dim);
        let folded = features.fold(policy.try_clone()?)?;
        Ok(Self {
            sampling_rng: stream_rng(config.seed, Stream::TeacherSampling),
            rule: config.keep_rule(),
            config,
            theta: policy,
            folded,
            features,
            optimizer,
            episodes: 0,
            layout: layout.clone(),
        })
    }

    /// Recomputes the teaching policy from theta and the feature statistics.
    fn refold(&mut self) -> Result<()> {
        self.folded = self.features.fold(self.theta.try_clone()?)?;
        Ok(())
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &EsConfig {
        &self.config
    }

    /// The policy that teaches: theta folded with the feature statistics, over raw
    /// observations.
    pub fn policy(&self) -> &BernoulliPolicy {
        &self.folded
    }

    /// Generations (updates) made so far.
    pub fn generations(&self) -> usize {
        self.episodes / (2 * self.config.pairs)
    }

    /// theta flattened in name order: for determinism checks and inspection.
    pub fn flat_weights(&self) -> Result<Vec<f32>> {
        self.theta.flat_weights()
    }

    /// A stream keyed by the teacher's seed, the generation and the pair: a function
    /// of the three only, so a generation's directions and uniforms do not depend on
    /// what ran before or on which thread.
    fn pair_rng(&self, generation: usize, pair: usize, stream: Stream) -> ChaCha8Rng {
        keyed_rng(&[self.config.seed, generation as u64, pair as u64], stream)
    }

    /// eps_j of `generation`: one standard normal tensor per variable of theta, in
    /// name order.
    fn direction(&self, generation: usize, pair: usize) -> Vec<Tensor> {
        let mut rng = self.pair_rng(generation, pair, Stream::Perturbation);
        named_trainable_in_name_order(self.theta.var_store())
            .iter()
            .map(|(_, variable)| {
                let values: Vec<f32> = (0..variable.numel())
                    .map(|_| StandardNormal.sample(&mut rng))
                    .collect();
                Tensor::from_slice(&values).view(variable.size().as_slice())
            })
            .collect()
    }

    /// A copy of theta + sign * sigma_v * eps_v, sigma_v each variable's sigma
    /// ([`EsConfig::sigma_of`]; a variable without one stays as it is).
    fn perturbed(&self, direction: &[Tensor], sign: f64) -> Result<BernoulliPolicy> {
        let copy = self.theta.try_clone()?;
        let variables = named_trainable_in_name_order(copy.var_store());
        tch::no_grad(|| -> Result<()> {
            for ((name, variable), eps) in variables.iter().zip(direction) {
                if let Some(sigma) = self.config.sigma_of(name) {
                    let mut variable = variable.shallow_clone();
                    let _ = variable.f_add_(&(eps * (sign * sigma)))?;
                }
            }
            Ok(())
        })?;
        Ok(copy)
    }

    /// Starts theta's score (every variable but the share head's) and the feature
    /// statistics from the ES checkpoint `path` ([`EsConfig::score_from`]), and the
    /// share head at q_0 with u = 0.
    fn start_score_from(&mut self, path: &std::path::Path) -> Result<()> {
        let source = Self::load(path, Some(&self.layout))?;
        if source.config.hidden != self.config.hidden {
            return Err(invalid_config(
                "score_from",
                format!(
                    "{} has a policy of {} hidden units, this config {}",
                    path.display(),
                    source.config.hidden,
                    self.config.hidden
                ),
            ));
        }
        let from: std::collections::HashMap<String, Tensor> =
            named_trainable_in_name_order(source.theta.var_store())
                .into_iter()
                .collect();
        tch::no_grad(|| -> Result<()> {
            for (name, variable) in named_trainable_in_name_order(self.theta.var_store()) {
                if name == format!("{}.weight", BernoulliPolicy::SHARE_HEAD) {
                    // u = 0: the share starts at q_0 in every state, the checkpoint's
                    // fixed share when q_0 = k / M.
                    let _ = variable.shallow_clone().f_zero_()?;
                    continue;
                }
                if BernoulliPolicy::is_share_variable(&name) {
                    continue;
                }
                let Some(value) = from.get(&name) else {
                    return Err(invalid_config(
                        "score_from",
                        format!("{} has no variable {name}", path.display()),
                    ));
                };
                let mut variable = variable.shallow_clone();
                variable.f_copy_(value)?;
            }
            Ok(())
        })?;
        self.features = source.features;
        self.refold()
    }
}

/// Running mean and standard deviation of each feature column over the rows seen,
/// kept as exact sums (f64) so that a checkpoint restores them bit for bit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureStats {
    /// Rows added.
    pub count: u64,
    /// Per column: sum of the values.
    pub sum: Vec<f64>,
    /// Per column: sum of the squared values.
    pub sum_sq: Vec<f64>,
}

/// The floor of a feature's standard deviation (constant features are not blown up).
const MIN_SD: f64 = 0.01;

impl FeatureStats {
    /// No rows yet, over `dim` columns (mean 0, sd 1).
    pub fn new(dim: usize) -> Self {
        Self {
            count: 0,
            sum: vec![0.0; dim],
            sum_sq: vec![0.0; dim],
        }
    }

    /// Adds rows (row-major, `sum.len()` columns each).
    pub fn add(&mut self, rows: &[f32]) {
        let dim = self.sum.len();
        if dim == 0 {
            return;
        }
        for row in rows.chunks_exact(dim) {
            for (k, &value) in row.iter().enumerate() {
                let value = f64::from(value);
                self.sum[k] += value;
                self.sum_sq[k] += value * value;
            }
            self.count += 1;
        }
    }

    /// mu and sd per column.
    pub fn mean_sd(&self) -> (Vec<f64>, Vec<f64>) {
        if self.count == 0 {
            return (vec![0.0; self.sum.len()], vec![1.0; self.sum.len()]);
        }
        let n = self.count as f64;
        self.sum
            .iter()
            .zip(&self.sum_sq)
            .map(|(&s, &q)| {
                let mean = s / n;
                (mean, (q / n - mean * mean).max(0.0).sqrt().max(MIN_SD))
            })
            .unzip()
    }

    /// `policy` (over standardised features) made to read raw features, in place: its
    /// first layer's W' = W / sd and b' = b - W' mu, and the same for its share head,
    /// which reads the batch's mean row (a mean of standardised rows is the
    /// standardised mean row).
    pub fn fold(&self, policy: BernoulliPolicy) -> Result<BernoulliPolicy> {
        let first = if policy.hidden_units() > 0 {
            "hidden"
        } else {
            "output"
        };
        let mut layers = vec![first];
        if policy.initial_share().is_some() {
            layers.push(BernoulliPolicy::SHARE_HEAD);
        }
        let variables = policy.var_store().variables();
        let (mean, sd) = self.mean_sd();
        let to_tensor =
            |v: &[f64]| Tensor::from_slice(&v.iter().map(|&x| x as f32).collect::<Vec<_>>());
        let (mean, sd) = (to_tensor(&mean), to_tensor(&sd));
        for layer in layers {
            let (Some(weight), Some(bias)) = (
                variables.get(&format!("{layer}.weight")),
                variables.get(&format!("{layer}.bias")),
            ) else {
                return Err(AgentError::Observation(format!(
                    "the policy has no layer `{layer}`"
                )));
            };
            tch::no_grad(|| -> Result<()> {
                let scaled = weight.f_div(&sd.unsqueeze(0))?;
                let shift = scaled.f_matmul(&mean)?;
                weight.shallow_clone().f_copy_(&scaled)?;
                let _ = bias.shallow_clone().f_sub_(&shift)?;
                Ok(())
            })?;
        }
        Ok(policy)
    }
}

/// Centred ranks of `values` in [-0.5, 0.5] (ties share their mean rank); a single
/// value ranks 0.
pub fn centred_ranks(values: &[f64]) -> Vec<f64> {
    let n = values.len();
    if n < 2 {
        return vec![0.0; n];
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; n];
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let mean_rank = (start + end - 1) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = mean_rank / (n - 1) as f64 - 0.5;
        }
        start = end;
    }
    ranks
}

impl Learner for EvolutionStrategies {
    /// Episodes 2j and 2j + 1 teach with theta + sigma eps_j and theta - sigma eps_j.
    fn plan_update(&mut self, first_seed: u64) -> Result<Vec<RolloutJob>> {
        let generation = self.generations();
        let mut jobs = Vec::with_capacity(2 * self.config.pairs);
        for pair in 0..self.config.pairs {
            let direction = self.direction(generation, pair);
            for (member, sign) in [(0usize, 1.0), (1, -1.0)] {
                let episode = 2 * pair + member;
                // The env seed's offset and the key of the sampling stream.
                let (offset, key) = match self.config.common_random_numbers {
                    CommonRandomNumbers::Off => (episode, episode),
                    CommonRandomNumbers::Pairs => (2 * pair, pair),
                    CommonRandomNumbers::Generation => (0, 0),
                };
                let seed = first_seed.wrapping_add(offset as u64);
                let sampling_rng = self.pair_rng(generation, key, Stream::TeacherSampling);
                let policy = self.features.fold(self.perturbed(&direction, sign)?)?;
                jobs.push(RolloutJob {
                    seed,
                    rollout: PolicyRollout::new(policy, sampling_rng)
                        .keeping_by(self.config.keep_rule()),
                });
            }
        }
        Ok(jobs)
    }

    fn learn(&mut self, episodes: Vec<Trajectory>) -> Result<UpdateStats> {
        let n = self.config.pairs;
        if episodes.len() != 2 * n {
            return Err(AgentError::Observation(format!(
                "a generation has {} episodes, {} were given",
                2 * n,
                episodes.len()
            )));
        }
        let generation = self.generations();
        let returns: Vec<f64> = episodes.iter().map(Trajectory::episode_return).collect();
        if let Some(bad) = returns.iter().find(|r| !r.is_finite()) {
            return Err(AgentError::Observation(format!(
                "an episode of generation {generation} returned {bad}"
            )));
        }
        let ranks = centred_ranks(&returns);
        // g_v = 1 / (2 n sigma_v) sum_j (F_j+ - F_j-) eps_j,v, accumulated per variable
        // v; a variable ES leaves (frozen_score) gets no gradient and no decay.
        let variables = named_trainable_in_name_order(self.theta.var_store());
        let sigmas: Vec<Option<f64>> = variables
            .iter()
            .map(|(name, _)| self.config.sigma_of(name))
            .collect();
        let mut gradient: Vec<Tensor> = variables
            .iter()
            .map(|(_, v)| Tensor::zeros(v.size().as_slice(), (Kind::Float, v.device())))
            .collect();
        for pair in 0..n {
            let difference = ranks[2 * pair] - ranks[2 * pair + 1];
            let direction = self.direction(generation, pair);
            for ((g, eps), sigma) in gradient.iter_mut().zip(direction).zip(&sigmas) {
                if let Some(sigma) = sigma {
                    *g += eps * (difference / (2.0 * n as f64 * sigma));
                }
            }
        }
        // Adam minimises L = -sum theta . g + (wd / 2) |theta|^2, whose gradient is
        // -g + wd * theta.
        let decay = self.config.weight_decay;
        let mut loss = Tensor::zeros([], (Kind::Float, tch::Device::Cpu));
        for (((_, theta), g), sigma) in variables.iter().zip(&gradient).zip(&sigmas) {
            let decay = if sigma.is_some() { decay } else { 0.0 };
            loss = loss - (theta * g).sum(Kind::Float)
                + theta.square().sum(Kind::Float) * (decay / 2.0);
        }
        self.optimizer.backward_step(&loss)?;
        for episode in &episodes {
            self.features.add(episode.feature_rows());
        }
        self.refold()?;
        self.episodes += episodes.len();
        let instances: usize = episodes.iter().map(Trajectory::instances).sum();
        let kept: f64 = episodes
            .iter()
            .map(Trajectory::instances_kept)
            .sum::<usize>() as f64;
        let mean_return = returns.iter().sum::<f64>() / returns.len() as f64;
        Ok(UpdateStats {
            episode_return: mean_return,
            baseline: mean_return,
            loss: loss.double_value(&[]),
            learning_rate: self.config.learning_rate,
            kept_ratio: if instances == 0 {
                0.0
            } else {
                kept / instances as f64
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

/// A checkpoint holds theta, its Adam, the config with the feature statistics beside
/// it (the serde state), the episode count and the teaching stream; a generation's
/// directions are regenerated from the seed.
impl Checkpointed for EvolutionStrategies {
    const KIND: &'static str = "es";
    type State = (EsConfig, FeatureStats);

    fn state(&self) -> (EsConfig, FeatureStats) {
        (self.config.clone(), self.features.clone())
    }
    fn layout(&self) -> &FeatureLayout {
        &self.layout
    }
    fn variables(&self) -> Vec<(String, Tensor)> {
        named_trainable_in_name_order(self.theta.var_store())
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
            baseline: None,
            sampling_rng: self.sampling_rng.clone(),
        }
    }
    fn parameter_count(
        (config, _): &(EsConfig, FeatureStats),
        feature_dim: usize,
    ) -> Option<usize> {
        let share_head = if config.learned_share.is_some() {
            feature_dim.checked_add(1)?
        } else {
            0
        };
        mlp_parameter_count(feature_dim, config.hidden)?.checked_add(share_head)
    }
    fn rebuild(
        (config, features): (EsConfig, FeatureStats),
        layout: &FeatureLayout,
    ) -> Result<Self> {
        let feature_dim = layout.len();
        if features.sum.len() != feature_dim || features.sum_sq.len() != feature_dim {
            return Err(AgentError::Observation(format!(
                "feature statistics of {} columns for {feature_dim} features",
                features.sum.len()
            )));
        }
        let mut teacher = Self::fresh(config, layout)?;
        teacher.features = features;
        Ok(teacher)
    }
    /// Also folds the restored theta with the restored feature statistics.
    fn resume(&mut self, progress: Progress) -> Result<()> {
        self.episodes = progress.episodes;
        self.sampling_rng = progress.sampling_rng;
        self.refold()
    }
}

impl Teacher for EvolutionStrategies {
    fn name(&self) -> &str {
        "es"
    }

    fn columns(&self) -> Vec<String> {
        self.layout.names().to_vec()
    }

    fn act(&mut self, observation: &TeachingObservation, info: &TeachingInfo) -> Result<KeepMask> {
        self.rule.sample(
            &self.folded,
            &*observation.features_for(&self.layout)?,
            info.incoming_batches == 0,
            &mut self.sampling_rng,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centred_ranks_span_minus_half_to_half_and_share_ties() {
        assert_eq!(centred_ranks(&[3.0, 1.0, 2.0]), vec![0.5, -0.5, 0.0]);
        assert_eq!(
            centred_ranks(&[1.0, 1.0, 2.0, 0.0]),
            vec![0.0, 0.0, 0.5, -0.5]
        );
        assert_eq!(centred_ranks(&[7.0]), vec![0.0]);
    }

    #[test]
    fn antithetic_members_are_mirror_images_of_theta() {
        let es =
            EvolutionStrategies::new(EsConfig::default(), &crate::teacher::test_layout(5)).unwrap();
        let direction = es.direction(0, 1);
        let plus = es.perturbed(&direction, 1.0).unwrap();
        let minus = es.perturbed(&direction, -1.0).unwrap();
        let flat = |p: &BernoulliPolicy| {
            named_trainable_in_name_order(p.var_store())
                .iter()
                .flat_map(|(_, t)| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap())
                .collect::<Vec<f32>>()
        };
        let theta = es.flat_weights().unwrap();
        for ((p, m), t) in flat(&plus).iter().zip(flat(&minus)).zip(&theta) {
            assert!(((p + m) / 2.0 - t).abs() < 1e-6);
        }
        assert_ne!(flat(&plus), theta);
        // Directions are a function of (seed, generation, pair).
        assert_eq!(
            Vec::<f32>::try_from(direction[0].flatten(0, -1)).unwrap(),
            Vec::<f32>::try_from(es.direction(0, 1)[0].flatten(0, -1)).unwrap()
        );
    }

    #[test]
    fn each_head_is_perturbed_by_its_own_sigma_and_a_frozen_score_not_at_all() {
        let layout = crate::teacher::test_layout(4);
        for (frozen_score, score_sigma) in [(false, 0.5), (true, 0.0)] {
            let config = EsConfig {
                learned_share: Some(0.3),
                share_sigma: Some(0.1),
                frozen_score,
                ..EsConfig::default()
            };
            let es = EvolutionStrategies::new(config, &layout).unwrap();
            let direction = es.direction(0, 0);
            let minus = es.perturbed(&direction, -1.0).unwrap();
            let moved = named_trainable_in_name_order(minus.var_store());
            let theta = named_trainable_in_name_order(es.theta.var_store());
            assert_eq!(moved.len(), 4);
            for (((name, m), (_, t)), eps) in moved.iter().zip(&theta).zip(&direction) {
                let sigma = if BernoulliPolicy::is_share_variable(name) {
                    0.1
                } else {
                    score_sigma
                };
                let off = (m - t + eps * sigma).abs().max().double_value(&[]);
                assert!(off < 1e-6, "{name}: {off}");
            }
        }
    }

    #[test]
    fn folding_gives_the_share_head_on_raw_rows_what_theta_gives_on_standardised_ones() {
        let config = EsConfig {
            learned_share: Some(0.4),
            ..EsConfig::default()
        };
        let es = EvolutionStrategies::new(config, &crate::teacher::test_layout(3)).unwrap();
        let mut stats = FeatureStats::new(3);
        stats.add(&[1.0, 10.0, -2.0, 3.0, 30.0, 2.0, 2.0, 5.0, 0.0]);
        let folded = stats.fold(es.theta.try_clone().unwrap()).unwrap();
        let raw = [2.5f32, 12.0, 1.0, 1.5, 20.0, -1.0];
        let (mean, sd) = stats.mean_sd();
        let standardised: Vec<f32> = raw
            .iter()
            .enumerate()
            .map(|(i, &x)| ((f64::from(x) - mean[i % 3]) / sd[i % 3]) as f32)
            .collect();
        let rows = |v: &[f32]| Tensor::from_slice(v).view([2, 3]);
        let on_raw = folded.kept_share(&rows(&raw)).unwrap().unwrap();
        let on_standardised = es.theta.kept_share(&rows(&standardised)).unwrap().unwrap();
        assert!(
            (on_raw - on_standardised).abs() < 1e-5,
            "{on_raw} {on_standardised}"
        );
        assert!((on_raw - 0.4).abs() > 1e-3, "the head reads the rows");
    }
}
