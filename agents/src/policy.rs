//! The teacher's policy network phi_theta(a | s), separate from the algorithms that
//! train it.
//!
//! phi_theta(a | s) = a * sigma(w . g(s) + b) + (1 - a) * (1 - sigma(w . g(s) + b)):
//! an independent Bernoulli per instance, with g a 3-layer network
//! `features -> hidden tanh -> 1` (25-12-1 for MNIST in the paper), or with 0 hidden
//! units the identity (a linear policy, w . s + b). The output bias starts at 2.0
//! (sigma(2) = 0.88), so that early on most data is kept.
//!
//! **A learned kept share** (optional, [`BernoulliPolicy::with_share_head`]). A
//! second linear head reads the batch's mean feature row, whose student-state columns
//! (progress, average loss, best dev accuracy) and batch-level means (how hard the
//! batch is) are what a fixed share cannot follow:
//!
//! ```text
//! q_t = sigma(u . mean_m s_m + c),      c starts at logit(q_0)
//! ```
//!
//! the share of the big batch kept at step t ([`KeepRule`]): a teacher can keep most
//! of what comes early in training and little late.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tch::{nn, nn::Module, Device, Kind, Tensor};

use l2t_envs::student::{init_from_stream, torch_default_init, Init};

use crate::error::{invalid_config, AgentError, Result};
use crate::teacher::{top_k_mask, KeepMask, ScorePool};
use l2t_envs::student::Adam;

/// The Bernoulli keep-policy network.
pub struct BernoulliPolicy {
    vs: nn::VarStore,
    /// The tanh layer; `None` for a linear policy.
    hidden: Option<nn::Linear>,
    hidden_units: usize,
    output: nn::Linear,
    /// The kept-share head q = sigma(u . mean_m s_m + c); `None` without one.
    share: Option<nn::Linear>,
    /// q_0, the share the head starts at.
    initial_share: Option<f64>,
    input_dim: usize,
    output_bias: f64,
}

impl std::fmt::Debug for BernoulliPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BernoulliPolicy")
            .field("input_dim", &self.input_dim)
            .field("output_bias", &self.output_bias)
            .field("initial_share", &self.initial_share)
            .finish()
    }
}

impl BernoulliPolicy {
    /// The share head's path in the var store: its variables are `share.weight` (u) and
    /// `share.bias` (c). ES perturbs, freezes and restores them by this name.
    pub const SHARE_HEAD: &'static str = "share";

    /// Whether the var-store variable `name` belongs to the share head.
    pub fn is_share_variable(name: &str) -> bool {
        name.strip_prefix(Self::SHARE_HEAD)
            .is_some_and(|rest| rest.starts_with('.'))
    }

    /// A policy over `input_dim` features with `hidden` tanh units (0: linear), weights
    /// drawn from `init_rng` (PyTorch's default ranges) and the output bias set to
    /// `output_bias`.
    pub fn new(
        input_dim: usize,
        hidden: usize,
        output_bias: f64,
        init_rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        Self::with_share_head(input_dim, hidden, output_bias, None, init_rng)
    }

    /// A policy as [`Self::new`] with, for `initial_share = Some(q_0)`, a kept-share
    /// head (see the module doc) whose bias starts at logit(q_0), its weights drawn
    /// after the others' from `init_rng`. q_0 must be in (0, 1).
    pub fn with_share_head(
        input_dim: usize,
        hidden: usize,
        output_bias: f64,
        initial_share: Option<f64>,
        init_rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        if input_dim == 0 {
            return Err(invalid_config("input_dim", "must be positive"));
        }
        if let Some(q) = initial_share {
            check_initial_share(q)?;
        }
        let policy = Self::with_layers(input_dim, hidden, output_bias, initial_share);
        policy.reinitialise(init_rng);
        Ok(policy)
    }

    /// A policy as [`Self::new`] and an [`Adam`] over its weights with `learning_rate`
    /// (default betas): how every learned teacher starts.
    pub fn with_adam(
        input_dim: usize,
        hidden: usize,
        output_bias: f64,
        learning_rate: f64,
        init_rng: &mut ChaCha8Rng,
    ) -> Result<(Self, Adam)> {
        let policy = Self::new(input_dim, hidden, output_bias, init_rng)?;
        let optimizer = Adam::for_var_store(policy.var_store(), learning_rate);
        Ok((policy, optimizer))
    }

    /// The variables and layers of a policy, weights not yet drawn (placeholders from
    /// `nn::linear`, overwritten by [`Self::reinitialise`] or a copy).
    fn with_layers(
        input_dim: usize,
        hidden: usize,
        output_bias: f64,
        initial_share: Option<f64>,
    ) -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let hidden_layer = (hidden > 0).then(|| {
            nn::linear(
                &root / "hidden",
                input_dim as i64,
                hidden as i64,
                Default::default(),
            )
        });
        let output_inputs = if hidden > 0 { hidden } else { input_dim };
        let output = nn::linear(
            &root / "output",
            output_inputs as i64,
            1,
            Default::default(),
        );
        let share = initial_share.map(|_| {
            nn::linear(
                &root / Self::SHARE_HEAD,
                input_dim as i64,
                1,
                Default::default(),
            )
        });
        Self {
            vs,
            hidden: hidden_layer,
            hidden_units: hidden,
            output,
            share,
            initial_share,
            input_dim,
            output_bias,
        }
    }

    /// An independent copy with the same weights (its own variables, no gradient
    /// history): the frozen policy an episode rolled out on another thread samples
    /// from, while the original goes on learning.
    pub fn try_clone(&self) -> Result<Self> {
        let mut copy = Self::with_layers(
            self.input_dim,
            self.hidden_units,
            self.output_bias,
            self.initial_share,
        );
        copy.vs.copy(&self.vs)?;
        Ok(copy)
    }

    /// Draws fresh weights from `init_rng`.
    pub fn reinitialise(&self, init_rng: &mut ChaCha8Rng) {
        let vs = &self.vs;
        let bias = self.output_bias;
        let share_bias = self.initial_share.map(|q| (q / (1.0 - q)).ln());
        init_from_stream(vs, init_rng, |name, shape| {
            if name == "output.bias" {
                Init::Constant(bias)
            } else if let Some(c) =
                share_bias.filter(|_| name == format!("{}.bias", Self::SHARE_HEAD))
            {
                Init::Constant(c)
            } else {
                torch_default_init(name, shape, vs)
            }
        });
    }

    /// Number of input features.
    pub fn input_dim(&self) -> usize {
        self.input_dim
    }

    /// q_0 of the kept-share head; `None` without one.
    pub fn initial_share(&self) -> Option<f64> {
        self.initial_share
    }

    /// The kept share q = sigma(u . mean_m s_m + c) for a batch's features `[M, F]`;
    /// `None` for a policy without a share head or an empty batch.
    pub fn kept_share(&self, features: &Tensor) -> Result<Option<f64>> {
        let Some(share) = &self.share else {
            return Ok(None);
        };
        if features.size().first().copied().unwrap_or(0) == 0 {
            return Ok(None);
        }
        let q = tch::no_grad(|| {
            share
                .forward(&features.mean_dim(0, true, Kind::Float))
                .sigmoid()
        });
        Ok(Some(q.f_double_value(&[0, 0])?))
    }

    /// Tanh hidden units (0 for a linear policy).
    pub fn hidden_units(&self) -> usize {
        self.hidden_units
    }

    /// The trainable weights flattened in name order: for determinism checks and
    /// inspection.
    pub fn flat_weights(&self) -> Result<Vec<f32>> {
        crate::weights::flat_trainable(&self.vs)
    }

    /// The variables, for optimizers and checkpoints.
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// Mutable variables, for loading checkpoints.
    pub fn var_store_mut(&mut self) -> &mut nn::VarStore {
        &mut self.vs
    }

    /// Logits w . g(s) + b, shape `[n]`, for features `[n, F]`.
    pub fn logits(&self, features: &Tensor) -> Tensor {
        match &self.hidden {
            Some(hidden) => self.output.forward(&hidden.forward(features).tanh()),
            None => self.output.forward(features),
        }
        .squeeze_dim(-1)
    }

    /// Keep probabilities sigma(w . g(s) + b), shape `[n]`, without gradient.
    pub fn keep_probabilities(&self, features: &Tensor) -> Tensor {
        tch::no_grad(|| self.logits(features).sigmoid())
    }

    /// log phi(a | s) per instance, shape `[n]`, for actions `a` in {0, 1} (float).
    ///
    /// Uses log sigma(z) = -softplus(-z) and log(1 - sigma(z)) = -softplus(z), which
    /// stay finite where sigma saturates.
    pub fn log_prob(&self, features: &Tensor, actions: &Tensor) -> Tensor {
        let z = self.logits(features);
        let log_keep = -(-&z).softplus();
        let log_drop = -z.softplus();
        actions * log_keep + (1.0 - actions) * log_drop
    }

    /// Entropy of phi(. | s) per instance, shape `[n]`:
    /// H = -p log p - (1 - p) log(1 - p) = p softplus(-z) + (1 - p) softplus(z), with
    /// p = sigma(z), finite where sigma saturates.
    pub fn entropy(&self, features: &Tensor) -> Tensor {
        let z = self.logits(features);
        let p = z.sigmoid();
        &p * (-&z).softplus() + (1.0 - &p) * z.softplus()
    }

    /// Samples the keep-mask `a_m ~ Bernoulli(phi(1 | s_m))` for features `[M, F]`,
    /// one uniform draw per instance from `rng` (the teacher's own stream).
    pub fn sample(&self, features: &Tensor, rng: &mut ChaCha8Rng) -> Result<KeepMask> {
        let keep_probabilities = Vec::<f32>::try_from(self.keep_probabilities(features))?;
        Ok(KeepMask::from_shape_fn(keep_probabilities.len(), |i| {
            rng.gen::<f32>() < keep_probabilities[i]
        }))
    }

    /// Samples a keep-mask that keeps exactly `k` of the `M` rows (all if `k >= M`):
    /// k draws without replacement from softmax(z) over the batch's logits z
    /// (Plackett-Luce), as the Gumbel top-k: the rows of the k largest z_m + g_m with
    /// g_m = -ln(-ln u_m), one uniform u_m per row from `rng` whatever k. With large
    /// logits it keeps the top k of the batch by score, RHO-LOSS's form.
    pub fn sample_top_k(
        &self,
        features: &Tensor,
        k: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<KeepMask> {
        Ok(top_k_mask(&self.gumbel_scores(features, rng)?, k))
    }

    /// z_m + g_m per row: the logits with one Gumbel draw g_m = -ln(-ln u_m) each,
    /// u_m from `rng`. The top k of them are k draws without replacement from
    /// softmax(z).
    fn gumbel_scores(&self, features: &Tensor, rng: &mut ChaCha8Rng) -> Result<Vec<f32>> {
        let logits = Vec::<f32>::try_from(tch::no_grad(|| self.logits(features)))?;
        Ok(logits
            .iter()
            .map(|z| z - (-rng.gen::<f32>().max(f32::MIN_POSITIVE).ln()).ln())
            .collect())
    }

    /// [`Self::sample`] (`keep_per_batch = None`) or [`Self::sample_top_k`] (`Some(k)`)
    /// for an observation's feature matrix `[M, F]`, after checking that it has the F
    /// columns the policy reads.
    pub fn sample_features(
        &self,
        features: &ndarray::Array2<f32>,
        keep_per_batch: Option<usize>,
        rng: &mut ChaCha8Rng,
    ) -> Result<KeepMask> {
        let features = self.checked_features(features)?;
        match keep_per_batch {
            None => self.sample(&features, rng),
            Some(k) => self.sample_top_k(&features, k, rng),
        }
    }

    /// An observation's feature matrix `[M, F]` as a tensor, after checking that it has
    /// the F columns the policy reads.
    fn checked_features(&self, features: &ndarray::Array2<f32>) -> Result<Tensor> {
        let f = features.ncols();
        if f != self.input_dim {
            return Err(AgentError::Observation(format!(
                "{f} feature columns, the policy was built for {}",
                self.input_dim
            )));
        }
        Ok(Self::features_tensor(features))
    }

    /// The actions a_m of a keep-mask as floats (1 keep, 0 drop), the form
    /// [`Self::log_prob`] takes.
    pub fn actions_of(mask: &KeepMask) -> impl Iterator<Item = f32> + '_ {
        mask.iter().map(|&keep| f32::from(u8::from(keep)))
    }

    /// Features as a float tensor `[n, F]` from an ndarray view.
    pub fn features_tensor(features: &ndarray::Array2<f32>) -> Tensor {
        let (rows, cols) = features.dim();
        match features.as_slice() {
            Some(slice) => Tensor::from_slice(slice),
            None => Tensor::from_slice(&features.iter().copied().collect::<Vec<f32>>()),
        }
        .view([rows as i64, cols as i64])
        .to_kind(Kind::Float)
    }
}

/// Checks q_0, the share a kept-share head starts at: it must be in (0, 1) (logit(q_0)
/// is its bias). The error names the config field, `learned_share`.
pub(crate) fn check_initial_share(q: f64) -> Result<()> {
    if q > 0.0 && q < 1.0 {
        Ok(())
    } else {
        Err(invalid_config(
            "learned_share",
            format!("the initial kept share {q} must be in (0, 1)"),
        ))
    }
}

/// How a learned teacher turns its policy's scores into a keep-mask, with the state
/// that carries across an episode's steps (the big batch B_t of a pool).
///
/// With logits z_m, Gumbel draws g_m (one uniform per row from the teacher's stream)
/// and P = `pool`:
/// - no k and no share head: one Bernoulli(sigma(z_m)) draw per row;
/// - `keep_per_batch = k`, P = 1: k rows of each batch, drawn without replacement from
///   softmax(z) (the Gumbel top-k);
/// - a share head, P = 1: the same with k_t = ceil(q_t M), q_t the head's share for the
///   batch;
/// - P > 1: a row of the current batch is kept when z_m + g_m is among the n_t largest
///   of the last P batches' ([`ScorePool`]), with n_t = k P or ceil(q_t P M): the form
///   of RHO-LOSS's big batch, with a learned score (and share).
#[derive(Debug, Clone)]
pub struct KeepRule {
    keep_per_batch: Option<usize>,
    big_batch: ScorePool,
}

impl KeepRule {
    /// The rule for `keep_per_batch` (`None`: per-row Bernoulli, or the share head's
    /// count) over a pool of `pool` batches (1: each batch alone).
    pub fn new(keep_per_batch: Option<usize>, pool: usize) -> Self {
        Self {
            keep_per_batch,
            big_batch: ScorePool::new(pool),
        }
    }

    /// The keep-mask of `policy` for an observation's features `[M, F]`, after checking
    /// that it has the F columns the policy reads; `first_of_episode` (the env's
    /// `incoming_batches == 0`) empties the pool.
    pub fn sample(
        &mut self,
        policy: &BernoulliPolicy,
        features: &ndarray::Array2<f32>,
        first_of_episode: bool,
        rng: &mut ChaCha8Rng,
    ) -> Result<KeepMask> {
        let pool = self.big_batch.size();
        if pool == 1 && policy.share.is_none() {
            return policy.sample_features(features, self.keep_per_batch, rng);
        }
        let rows = features.nrows();
        let tensor = policy.checked_features(features)?;
        let count = match (policy.kept_share(&tensor)?, self.keep_per_batch) {
            (Some(q), _) => (q * (pool * rows) as f64).ceil() as usize,
            (None, Some(k)) => k * pool,
            (None, None) => {
                return Err(invalid_config(
                    "pool",
                    "a pool of batches needs keep_per_batch or a learned share",
                ))
            }
        };
        if pool == 1 {
            return policy.sample_top_k(&tensor, count.max(1), rng);
        }
        let scores = policy.gumbel_scores(&tensor, rng)?;
        Ok(self.big_batch.keep_top(scores, count, first_of_episode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use l2t_envs::seeding::{stream_rng, Stream};

    fn flat(policy: &BernoulliPolicy) -> Vec<f32> {
        let mut variables: Vec<_> = policy.var_store().variables().into_iter().collect();
        variables.sort_by(|a, b| a.0.cmp(&b.0));
        variables
            .iter()
            .flat_map(|(_, t)| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap())
            .collect()
    }

    #[test]
    fn a_clone_has_the_same_weights_and_its_own_variables() {
        let policy =
            BernoulliPolicy::new(5, 4, 2.0, &mut stream_rng(1, Stream::TeacherInit)).unwrap();
        let copy = policy.try_clone().unwrap();
        assert_eq!(flat(&copy), flat(&policy));
        assert_eq!(copy.input_dim(), 5);
        let features = Tensor::from_slice(&[0.5f32; 15]).view([3, 5]);
        let keep = |p: &BernoulliPolicy| Vec::<f32>::try_from(p.keep_probabilities(&features));
        assert_eq!(keep(&copy).unwrap(), keep(&policy).unwrap());
        // Changing the original leaves the copy as it was.
        policy.reinitialise(&mut stream_rng(2, Stream::TeacherInit));
        assert_ne!(flat(&copy), flat(&policy));
    }

    #[test]
    fn top_k_sampling_keeps_k_rows_and_follows_the_logits() {
        let mut rng = stream_rng(3, Stream::TeacherSampling);
        // A linear policy over one feature: the logit grows with the feature.
        let policy = BernoulliPolicy::new(1, 0, 0.0, &mut rng).unwrap();
        tch::no_grad(|| {
            for (name, mut v) in policy.var_store().variables() {
                let value = if name.contains("weight") { 50.0 } else { 0.0 };
                let _ = v.fill_(value);
            }
        });
        let features = Tensor::from_slice(&[0.1f32, 0.9, 0.5, 0.3, 0.7]).view([5, 1]);
        for k in 0..=6 {
            let mask = policy.sample_top_k(&features, k, &mut rng).unwrap();
            assert_eq!(mask.iter().filter(|&&keep| keep).count(), k.min(5));
        }
        // Logits 5 apart: the two largest rows win nearly always.
        let mut top_two = 0;
        for _ in 0..200 {
            let mask = policy.sample_top_k(&features, 2, &mut rng).unwrap();
            top_two += usize::from(mask[1] && mask[4]);
        }
        assert!(top_two > 180, "{top_two}");
        // Equal logits: every row is kept about equally often.
        let flat = Tensor::from_slice(&[0.5f32; 4]).view([4, 1]);
        let mut counts = [0usize; 4];
        for _ in 0..2000 {
            let mask = policy.sample_top_k(&flat, 1, &mut rng).unwrap();
            for (c, &keep) in counts.iter_mut().zip(mask.iter()) {
                *c += usize::from(keep);
            }
        }
        assert!(
            counts.iter().all(|&c| (400..600).contains(&c)),
            "{counts:?}"
        );
    }

    /// A linear policy over 2 features with score weight `w` on feature 0 and, for
    /// `share = Some(q0)`, a share head reading feature 1 with weight 1.
    fn two_feature_policy(share: Option<f64>) -> BernoulliPolicy {
        let mut rng = stream_rng(4, Stream::TeacherInit);
        let policy = BernoulliPolicy::with_share_head(2, 0, 0.0, share, &mut rng).unwrap();
        tch::no_grad(|| {
            for (name, mut v) in policy.var_store().variables() {
                match name.as_str() {
                    "output.weight" => {
                        v.copy_(&Tensor::from_slice(&[100.0f32, 0.0]).view([1, 2]));
                    }
                    "share.weight" => {
                        v.copy_(&Tensor::from_slice(&[0.0f32, 1.0]).view([1, 2]));
                    }
                    _ => {
                        let _ = v.fill_(0.0);
                    }
                }
            }
        });
        policy
    }

    fn batch(scores: &[f32], share_input: f32) -> ndarray::Array2<f32> {
        ndarray::Array2::from_shape_fn((scores.len(), 2), |(i, j)| {
            if j == 0 {
                scores[i]
            } else {
                share_input
            }
        })
    }

    #[test]
    fn the_share_head_starts_at_q0_and_sets_the_count_of_each_batch() {
        let mut rng = stream_rng(5, Stream::TeacherSampling);
        let fresh = BernoulliPolicy::with_share_head(
            3,
            0,
            2.0,
            Some(0.3),
            &mut stream_rng(1, Stream::TeacherInit),
        )
        .unwrap();
        // The weights other than the head's are drawn as without it.
        let plain =
            BernoulliPolicy::new(3, 0, 2.0, &mut stream_rng(1, Stream::TeacherInit)).unwrap();
        let output = |p: &BernoulliPolicy| {
            Vec::<f32>::try_from(p.var_store().variables()["output.weight"].flatten(0, -1)).unwrap()
        };
        assert_eq!(output(&fresh), output(&plain));
        let zeros = Tensor::zeros([4, 3], (Kind::Float, Device::Cpu));
        // u . 0 + logit(0.3) = logit(0.3).
        let q = fresh.kept_share(&zeros).unwrap().unwrap();
        assert!((q - 0.3).abs() < 1e-6, "{q}");
        assert_eq!(plain.kept_share(&zeros).unwrap(), None);

        // q = sigma(mean feature 1): 0 -> 1/2 of M = 8 is 4 rows, 0.85 -> 0.70 is ceil 5.6 = 6.
        let policy = two_feature_policy(Some(0.5));
        let scores = [0.1f32, 0.8, 0.3, 0.9, 0.5, 0.2, 0.7, 0.4];
        let mut rule = KeepRule::new(None, 1);
        let half = rule
            .sample(&policy, &batch(&scores, 0.0), true, &mut rng)
            .unwrap();
        assert_eq!(half.iter().filter(|&&k| k).count(), 4);
        // Logits 100 apart per unit: the largest scores win.
        assert!(half[3] && half[1] && half[6] && half[4], "{half:?}");
        let more = rule
            .sample(&policy, &batch(&scores, 0.85), false, &mut rng)
            .unwrap();
        assert_eq!(more.iter().filter(|&&k| k).count(), 6);
        assert!(BernoulliPolicy::with_share_head(3, 0, 0.0, Some(1.0), &mut rng).is_err());
    }

    #[test]
    fn a_pool_keeps_the_top_of_the_last_batches_and_restarts_each_episode() {
        let mut rng = stream_rng(6, Stream::TeacherSampling);
        let policy = two_feature_policy(None);
        // k = 1 per batch over P = 2 batches: the 2 best of the last 8 rows.
        let mut rule = KeepRule::new(Some(1), 2);
        let first = rule
            .sample(&policy, &batch(&[0.9, 0.8, 0.1, 0.0], 0.0), true, &mut rng)
            .unwrap();
        assert_eq!(first.to_vec(), vec![true, true, false, false]);
        // The earlier batch holds both of the 2 best: nothing of this one is kept.
        let second = rule
            .sample(&policy, &batch(&[0.5, 0.4, 0.3, 0.2], 0.0), false, &mut rng)
            .unwrap();
        assert_eq!(second.iter().filter(|&&k| k).count(), 0);
        // A new episode forgets the earlier batches.
        let fresh = rule
            .sample(&policy, &batch(&[0.5, 0.4, 0.3, 0.2], 0.0), true, &mut rng)
            .unwrap();
        assert_eq!(fresh.to_vec(), vec![true, true, false, false]);
        // Without a pool or share head the rule is sample_features, draw for draw.
        let features = batch(&[0.1, 0.4, 0.2, 0.3], 0.0);
        let mut a = stream_rng(7, Stream::TeacherSampling);
        let mut b = stream_rng(7, Stream::TeacherSampling);
        let by_rule = KeepRule::new(Some(2), 1)
            .sample(&policy, &features, true, &mut a)
            .unwrap();
        let direct = policy.sample_features(&features, Some(2), &mut b).unwrap();
        assert_eq!(by_rule, direct);
        // A pool without a count is refused by name.
        let error = KeepRule::new(None, 2)
            .sample(&policy, &features, true, &mut a)
            .unwrap_err();
        assert!(error.to_string().contains("pool"), "{error}");
    }
}
