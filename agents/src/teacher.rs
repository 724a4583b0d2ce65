//! The teacher contract: a policy from the teaching observation to a keep-mask.

#[cfg(test)]
use l2t_envs::FeatureLayout;
use l2t_envs::{TeachingInfo, TeachingObservation};
use ndarray::Array1;

use crate::error::Result;

/// Keep-mask over the incoming batch: `true` keeps the instance for training.
pub type KeepMask = Array1<bool>;

/// A teaching policy. The environment loop ([`crate::episode::run_episode`]) is:
///
/// ```text
/// (obs, info) = env.reset(seed)
/// loop { mask = teacher.act(&obs, &info); step = env.step(&mask);
///        teacher.observe(step.reward, step.done()); if done { break } }
/// ```
///
/// Learned teachers also implement `Learner` (in the `rollout` module, which builds on
/// this one): they learn from whole episodes rolled out by frozen copies of their
/// policy, never from their own `act` calls, so teaching with a trained teacher changes
/// nothing in it.
///
/// `info` is passed with the observation so that schedule-driven baselines (SPL,
/// matched RandTeach) can read the epoch count; learned teachers use `obs` only.
///
/// A teacher reads columns by name: `obs.column("loss")?` in `act`, or a
/// [`l2t_envs::Column`] resolved once against the env's layout and read with
/// `obs.at(&column)?`, which refuses an observation of another layout. A teacher that
/// names the columns it reads in [`Teacher::columns`] has them checked against the env
/// before the first episode of a comparison, and listed in its run folder.
/// Teachers are `Send`: a comparison evaluates several side by side on worker
/// threads, each teacher on one thread at a time.
pub trait Teacher: Send {
    /// Short name for logs and tables.
    fn name(&self) -> &str;
    /// The feature columns this teacher reads, by name (all of them for a learned
    /// policy, which reads whole rows). The experiment layer checks them against the
    /// env it builds before the first episode, and records them in the run folder.
    /// Empty (the default): the teacher declares none.
    fn columns(&self) -> Vec<String> {
        Vec::new()
    }
    /// The keep-mask for the incoming batch of `observation`.
    fn act(&mut self, observation: &TeachingObservation, info: &TeachingInfo) -> Result<KeepMask>;
    /// Records the reward of the last action; `done` marks the episode's last step.
    fn observe(&mut self, _reward: f64, _done: bool) -> Result<()> {
        Ok(())
    }
}

/// One Bernoulli draw per instance: keeps instance `i` with `probabilities[i]`,
/// drawing one uniform number per instance from `rng` whatever the probabilities, so
/// that a teacher's stream stays aligned across settings (online batch selection,
/// importance sampling).
pub fn bernoulli_mask(rng: &mut rand_chacha::ChaCha8Rng, probabilities: &[f64]) -> KeepMask {
    use rand::Rng as _;
    KeepMask::from_shape_fn(probabilities.len(), |i| rng.gen::<f64>() < probabilities[i])
}

/// The keep-mask of the `k` largest of `scores` (all of them if `k >= len`); ties keep
/// the earlier row. RHO-LOSS's top ceil(kappa M) and the Gumbel top-k of a policy that
/// keeps k per batch.
pub fn top_k_mask(scores: &[f32], k: usize) -> KeepMask {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut mask = KeepMask::from_elem(scores.len(), false);
    for &i in order.iter().take(k) {
        mask[i] = true;
    }
    mask
}

/// The scores of the last P incoming batches of an episode: the big batch B_t of a
/// teacher that ranks across batches (RHO-LOSS's `pool`, ES's `pool`). The env hands
/// a teacher M rows at a time, so a share kappa of each batch alone cannot go below
/// 1 / M and must keep the same count from a batch of easy rows as from a batch of
/// hard ones; ranked within B_t (the current batch and the P - 1 before it), a row is
/// kept when its score is among the n largest of B_t, so a batch may give more or
/// fewer rows than kappa M, nothing at all included.
#[derive(Debug, Clone, Default)]
pub struct ScorePool {
    size: usize,
    /// The scores of the last `size - 1` batches of this episode, oldest first.
    recent: std::collections::VecDeque<Vec<f32>>,
}

impl ScorePool {
    /// A pool of `size` = P batches (at least 1).
    pub fn new(size: usize) -> Self {
        Self {
            size: size.max(1),
            recent: Default::default(),
        }
    }

    /// P.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Keeps the rows of `scores` (the current batch) whose score is among the `keep`
    /// largest of B_t (all of B_t if it holds fewer; at least one row of B_t), then
    /// remembers `scores` for the next P - 1 batches. `first_of_episode` empties the
    /// pool first: B_t never reaches into another episode. In the first P - 1 batches
    /// B_t holds fewer than P batches and the same `keep` applies to it.
    pub fn keep_top(&mut self, scores: Vec<f32>, keep: usize, first_of_episode: bool) -> KeepMask {
        if first_of_episode {
            self.recent.clear();
        }
        if scores.is_empty() {
            return KeepMask::from_elem(0, false);
        }
        let mut big: Vec<f32> = self.recent.iter().flatten().copied().collect();
        big.extend_from_slice(&scores);
        let keep = keep.clamp(1, big.len());
        big.sort_by(|a, b| b.total_cmp(a));
        let kth = big[keep - 1];
        let mask = KeepMask::from_shape_fn(scores.len(), |i| scores[i] >= kth);
        if self.size > 1 {
            if self.recent.len() + 1 >= self.size {
                self.recent.pop_front();
            }
            self.recent.push_back(scores);
        }
        mask
    }
}

/// A boxed teacher is a teacher: `UserTeacher::new(label, load_teacher(..)?)`.
impl<T: Teacher + ?Sized> Teacher for Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn columns(&self) -> Vec<String> {
        (**self).columns()
    }

    fn act(&mut self, observation: &TeachingObservation, info: &TeachingInfo) -> Result<KeepMask> {
        (**self).act(observation, info)
    }

    fn observe(&mut self, reward: f64, done: bool) -> Result<()> {
        (**self).observe(reward, done)
    }
}

/// A layout of `width` columns `f0..`, for unit tests of policies that read whole rows.
#[cfg(test)]
pub(crate) fn test_layout(width: usize) -> FeatureLayout {
    FeatureLayout::new((0..width).map(|i| format!("f{i}")).collect())
}

/// The layout `label_0`, `loss`, `margin`, for unit tests of the loss-based teachers.
#[cfg(test)]
pub(crate) fn loss_layout() -> FeatureLayout {
    FeatureLayout::new(
        ["label_0", "loss", "margin"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    )
}

/// An observation over [`loss_layout`] whose rows have these `losses`.
#[cfg(test)]
pub(crate) fn loss_observation(losses: &[f32]) -> TeachingObservation {
    let mut features = ndarray::Array2::zeros((losses.len(), 3));
    for (i, &l) in losses.iter().enumerate() {
        features[[i, 1]] = l;
    }
    TeachingObservation {
        features,
        student_state: Array1::zeros(3),
        layout: loss_layout(),
    }
}

/// The info of a fresh episode, for unit tests of teachers that read it.
#[cfg(test)]
pub(crate) fn blank_info() -> l2t_envs::TeachingInfo {
    l2t_envs::TeachingInfo {
        iteration: 0,
        effective_instances: 0,
        incoming_batches: 0,
        instances_seen: 0,
        instances_kept: 0,
        buffered: 0,
        epochs: 0.0,
        dev_accuracy: 0.0,
        best_dev_accuracy: 0.0,
        dev_loss: None,
        average_training_loss: f64::NAN,
        updates_this_step: 0,
        evaluated: false,
        threshold_iterations: Vec::new(),
        iterations_to_tau: None,
        incoming_indices: Vec::new(),
        compute: Default::default(),
        compute_to_tau: None,
    }
}
