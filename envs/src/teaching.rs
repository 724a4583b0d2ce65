//! The data-teaching MDP of "Learning to Teach" (Fan et al., ICLR 2018), in one file.
//!
//! One step follows one incoming mini-batch from arrival to reward:
//!
//! 1. **Incoming batch.** `M` training instances arrive in a seeded order (epochs of
//!    permutations drawn from the env's data-order stream).
//! 2. **Observation.** The student computes logits for them, and each instance gets one
//!    feature row (see [`TeachingEnv::feature_names`]). Students with a backward of
//!    their own (the MLP) record the forward ([`Student::record`]: every layer's
//!    input and the logits). The rows the teacher keeps are trained on from there
//!    while the weights have not changed, so an update needs only its backward and
//!    the optimizer step (selective backprop's reuse, step 4). Other students whose
//!    training forward equals their evaluation forward ([`Student::reuses_forward`],
//!    the CNN) record the graph of this forward when the buffer is empty: if the
//!    teacher then keeps the whole batch, the update reuses these logits. Otherwise
//!    the logits are computed without gradient.
//!
//!    **A cheaper score** ([`Scoring::Pooled`], a setting of the task; the default is
//!    the student's forward). The logits come from a proxy that shares the student's
//!    weights ([`Student::pooled_logits`], the MLP on images): the image average-pooled
//!    over `k x k` blocks through the first layer's weights summed over the same blocks
//!    (`W1' x'`, equal to `W1 x` where the image is constant within each block), then
//!    the rest of the network. Every feature below is computed from these logits.
//!    Nothing is recorded, so every update makes its own forward (step 4).
//!
//!    **Score ahead** (an engine choice; it changes no observation). While the weights
//!    cannot change before the next few batches arrive, the env scores them in the
//!    same forward as this one and hands out their observations in turn. It looks
//!    ahead d batches, d = ceil((M - b) / k) capped at [`TeachingEnv::set_score_ahead`]
//!    (default [`DEFAULT_SCORE_AHEAD`]), with b the buffered instances and k the most
//!    the teacher kept of one batch in its last [`RECENT_STEPS`] steps (d = 1 before
//!    the first); it never looks past the current epoch's permutation. If an update
//!    comes sooner, the batches scored ahead are scored again under the new weights.
//!    Only students whose logits of a row do not depend on the rest of their batch
//!    ([`Student::scores_rows_independently`], the MLP and the CNN) score ahead, so
//!    every observation equals the one-batch path's bit for bit (tested). A keep-one
//!    teacher's 20 forwards of M = 20 rows per update become one of 400, at about 94%
//!    of the sgemm roofline instead of 65% (`cargo bench --bench step_time --
//!    selective`); NoTeach (k = M) scores one batch at a time as before.
//!    - data features: the label one-hot (|Y| columns); for text, the sentence length
//!      divided by the maximum length; where the training split carries irreducible
//!      losses ([`Dataset::with_irreducible_loss`]), `irreducible_loss` = the loss of
//!      a holdout model that never saw the instance, divided by 2 ln|Y| and clipped to
//!      [0, 1] (RHO-LOSS's signal, for learned teachers);
//!    - student features: `iteration` = i / T', `average_training_loss` = the mean
//!      loss of all student updates so far divided by 2 ln|Y| and clipped to [0, 1]
//!      (ln|Y| before the first update, the loss of a uniform guess),
//!      `best_dev_accuracy` in [0, 1];
//!    - combined features: the predicted probability of every class (|Y| columns), the
//!      instance's `loss` -log p_y (divided by 2 ln|Y| and clipped to [0, 1], or its
//!      rank within the batch divided by M-1, see [`LossScaling`]) and the `margin`
//!      p_y - max_{y' != y} p_{y'} in [-1, 1].
//!
//!    For |Y| = 10 that is 10 + 3 + 12 = 25 columns, as in the paper. [`featurise`]
//!    computes them.
//! 3. **Action.** The teacher answers with a keep-mask `a` of length M (`a_m = true`
//!    keeps instance m). Any other length is an error.
//! 4. **Accumulation.** Kept instances join a buffer. Once it holds M, the student
//!    takes one optimizer step on the oldest M of them and the iteration count `i`
//!    grows by one; leftovers wait for the next batch. The buffer holds fewer than M
//!    before a step and gains at most M, so a step makes at most one update. When
//!    every one of the M was kept since the last update from recorded forwards, the
//!    update trains on their recorded rows ([`Student::train_step_on_recorded`]: one
//!    gather per forward, no forward pass); otherwise (leftovers scored under older
//!    weights) it gathers the M and makes its own forward. Both give the same update
//!    bit for bit (tested).
//! 5. **Reward** ([`Reward`]). Every `eval_every` iterations the student is evaluated
//!    on the dev split D'_dev.
//!    - [`Reward::IterationsToTau`], the paper's: the first time its accuracy exceeds
//!      the threshold tau, at iteration `i_tau`, the reward is `r = -ln(i_tau / T')`
//!      and the episode terminates; every other step has reward 0. With several
//!      weighted thresholds (RL4Data's variant) each pays `w_k * -ln(i_k / T')` when
//!      first passed, and the episode terminates when all are passed.
//!    - [`Reward::AcceptedInstancesToTau`], RL4Data's: the same with `i_tau / T'`
//!      replaced by the accepted instances over `T' M`.
//!    - [`Reward::DevAccuracyArea`] with a horizon of H iterations (a training reward):
//!      each evaluation at iteration i <= H pays `acc_i * eval_every / H`, so the
//!      return is the area under the dev-accuracy curve against effective instances
//!      over the first H * M of them, as a fraction of H * M; the episode terminates
//!      at H. A teacher whose student learns faster per kept instance earns more, and
//!      the return moves smoothly with the teacher's choices instead of jumping with
//!      the one evaluation where the curve crosses tau. Thresholds are still tracked
//!      (`info.iterations_to_tau`) but pay nothing.
//!    - [`Reward::DevLossDecrease`] with a horizon of H iterations (DVRL's per-step
//!      signal): each evaluation at iteration i <= H pays the drop of the mean dev
//!      cross-entropy since the previous evaluation, `L_prev - L_i`, so the return is
//!      `L_0 - L_H`; the episode terminates at H.
//!    - [`Reward::ComputeToTau`]: the paper's form on training compute (step 7),
//!      `r = -ln(C_tau / C_max)` with `C_max = T' c`, c the compute of one update of
//!      plain training.
//!    - [`Reward::DevAccuracyComputeArea`] with a budget of H plain updates: the area
//!      under dev accuracy against training compute up to `C_H = H c`, each evaluation
//!      paying `acc * dC / C_H`; the episode terminates at the first evaluation past
//!      C_H.
//! 6. **Budgets.** The episode is truncated at T' iterations, or after
//!    `max_incoming_batches` incoming batches, so a teacher that keeps nothing ends too.
//!    Under [`Reward::ComputeToTau`] it is also truncated once the training compute
//!    reaches `C_max = T' c`, the budget that reward measures against: past it the
//!    reward could only be negative, and a selective teacher would otherwise score
//!    many times C_max before its T' updates.
//! 7. **Compute** ([`Compute`], from the student's [`StudentFlops`]). Every incoming
//!    batch costs its M rows' forward, or the proxy's under [`Scoring::Pooled`]
//!    ([`PooledFlops`]) (**scoring**); every update costs M rows' backward and one
//!    optimizer step, plus M rows' forward where the student cannot reuse the scoring
//!    forward or the score came from the proxy, plus the proxy's block sums of the
//!    first layer's weights (**training**); every dev evaluation (and test
//!    evaluation, [`TeachingEnv::evaluate`]) costs its rows' forward (**measurement**).
//!    The training compute to tau, `C_tau` = scoring + training when the last threshold
//!    is passed, is the compute axis beside i_tau. It counts the logical work of the
//!    teaching policy (each incoming row scored once, each update's forward reused where
//!    the student allows), not the engine's own choices.
//!
//! The bookkeeping of these phases lives in one private `EpisodeState`, which
//! [`TeachingEnv`] drives.

use std::borrow::Cow;
use std::collections::VecDeque;

use ndarray::{Array1, Array2, ArrayView1};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::data::transform::{block_means, pooled_image_shape};
use crate::data::{Batch, Dataset};
use crate::env::{Env, Step};
use crate::error::{invalid_config, EnvError, Result};
use crate::layout::{Column, FeatureLayout};
use crate::seeding::{stream_rng, Stream};
use crate::spaces::{BoxSpace, MultiBinary, Space, SpaceError};
use crate::student::{PooledFlops, Recorded, Student, StudentFlops};

/// The default cap on the incoming batches the env scores in one forward (see the
/// module docs, step 2, score ahead).
pub const DEFAULT_SCORE_AHEAD: usize = 32;

/// How many of the latest steps' kept counts bound the look-ahead (module docs, step 2).
pub const RECENT_STEPS: usize = 8;

/// One accuracy threshold of the reward and its weight.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// Dev accuracy to exceed, in (0, 1].
    pub accuracy: f64,
    /// Weight of this threshold's reward term.
    pub weight: f64,
}

/// How the per-instance loss column is normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LossScaling {
    /// `min(loss / (2 ln |Y|), 1)`: comparable across batches; 0.5 is a uniform guess.
    #[default]
    Fixed,
    /// Rank of the loss within the batch divided by M-1 (0 = smallest loss): invariant
    /// to the loss scale of the student, so it transfers across tasks.
    Rank,
}

/// What the teacher is rewarded for (see the module docs, phase 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reward {
    /// The paper's: `sum_k w_k * -ln(i_k / T')` as each threshold is first passed; the
    /// episode terminates when all are.
    #[default]
    IterationsToTau,
    /// RL4Data's variant: `sum_k w_k * -ln(n_k / (T' M))` with n_k the instances the
    /// teacher had accepted (kept, trained on or still buffered) when threshold k was
    /// first passed; the episode terminates when all are. It differs from the paper's
    /// `i_k M` by the at most M - 1 instances waiting in the buffer.
    AcceptedInstancesToTau,
    /// The area under the dev-accuracy curve over the first `iterations` (H) student
    /// updates: each evaluation pays `acc * eval_every / H`; the episode terminates at
    /// H. H must be a multiple of `eval_every`.
    DevAccuracyArea {
        /// H: the horizon, in student iterations.
        iterations: usize,
    },
    /// The drop of the mean dev loss over the first `iterations` (H) student updates:
    /// each evaluation pays `L_prev - L_i` (nats); the episode terminates at H. H must be
    /// a multiple of `eval_every`.
    DevLossDecrease {
        /// H: the horizon, in student iterations.
        iterations: usize,
    },
    /// The paper's form with training compute in place of iterations:
    /// `-ln(C_tau / C_max)` when the last threshold is passed, C_tau the training compute
    /// (scoring + training FLOPs) then and `C_max = T' c`, with
    /// `c = M (forward + backward) + optimizer step` (plus M forwards for a student that
    /// cannot reuse the scoring forward) the compute of one update of plain training.
    /// Under NoTeach, C_tau = i_tau c and the reward is the paper's.
    ComputeToTau,
    /// The area under the dev-accuracy curve against training compute, over a budget of
    /// `C_H = H c` (H updates of plain training, c as in [`Reward::ComputeToTau`]): each
    /// evaluation pays `acc * (min(C, C_H) - min(C_prev, C_H)) / C_H` for the compute
    /// since the previous one; the episode terminates at the first evaluation past
    /// C_H. A teacher pays for every row it scores, so it earns more only by teaching
    /// more per FLOP. Under NoTeach it is [`Reward::DevAccuracyArea`] with the same H.
    DevAccuracyComputeArea {
        /// H: the budget, in updates of plain training.
        iterations: usize,
    },
}

impl Reward {
    /// H, for the rewards that run a fixed horizon.
    pub fn horizon(&self) -> Option<usize> {
        match *self {
            Reward::IterationsToTau | Reward::AcceptedInstancesToTau | Reward::ComputeToTau => None,
            Reward::DevAccuracyArea { iterations }
            | Reward::DevLossDecrease { iterations }
            | Reward::DevAccuracyComputeArea { iterations } => Some(iterations),
        }
    }

    /// Whether the dev loss must be measured at evaluations.
    pub fn needs_dev_loss(&self) -> bool {
        matches!(self, Reward::DevLossDecrease { .. })
    }
}

/// What the student computes to score an incoming batch (module docs, step 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Scoring {
    /// The student's own forward, as in the paper; the kept rows' update reuses it
    /// where the student allows.
    #[default]
    Full,
    /// A cheaper proxy that shares the student's weights
    /// ([`Student::pooled_logits`]): each image average-pooled over blocks of
    /// `k x k` pixels, and the first layer's weights summed over the same blocks, so
    /// that `W1' x' = W1 x` wherever the image is constant within each block. The
    /// observation's features come from the proxy's logits, and an update pays the
    /// full forward of its rows (there is no scoring forward to reuse).
    /// At k = 2 on `fashion-mnist-mlp`, RHO-LOSS tuned for compute needs 31% less
    /// training compute to tau so scored than with the full score, in as many
    /// instances (selection seeds; `studies/proxy-score`).
    Pooled {
        /// The side of the square blocks, in pixels; it must divide the image's height
        /// and width.
        k: usize,
    },
}

impl Scoring {
    /// True for [`Scoring::Full`], the default (left out of serialised configs, so
    /// configs and run folders written before this option read back unchanged).
    pub fn is_full(&self) -> bool {
        matches!(self, Scoring::Full)
    }
}

/// Settings of the teaching MDP. Defaults are the paper's MNIST values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TeachingConfig {
    /// M: instances per incoming batch, and per student update.
    pub batch_size: usize,
    /// T': the iteration budget of the student; also the reward's normaliser.
    pub max_iterations: usize,
    /// Bound on incoming batches per episode; `None` means `5 * max_iterations`.
    pub max_incoming_batches: Option<usize>,
    /// Reward thresholds; one entry with weight 1 is the paper's tau.
    pub thresholds: Vec<Threshold>,
    /// What the reward pays for; the paper's iterations to tau by default.
    pub reward: Reward,
    /// Student iterations between two dev evaluations (the resolution of i_tau).
    pub eval_every: usize,
    /// Normalisation of the per-instance loss feature.
    pub loss_scaling: LossScaling,
    /// Instances per forward pass when evaluating on the dev split.
    pub eval_chunk: usize,
    /// Master seed used until `reset(Some(seed))` gives another.
    pub seed: u64,
    /// What scores an incoming batch: the student's forward (the default) or a pooled
    /// proxy of it.
    #[serde(skip_serializing_if = "Scoring::is_full")]
    pub scoring: Scoring,
}

impl Default for TeachingConfig {
    fn default() -> Self {
        Self {
            batch_size: 20,
            max_iterations: 10_000,
            max_incoming_batches: None,
            thresholds: vec![Threshold {
                accuracy: 0.93,
                weight: 1.0,
            }],
            reward: Reward::IterationsToTau,
            eval_every: 10,
            loss_scaling: LossScaling::Fixed,
            eval_chunk: 2048,
            seed: 0,
            scoring: Scoring::Full,
        }
    }
}

impl TeachingConfig {
    /// A config with a single threshold tau.
    pub fn with_tau(mut self, tau: f64) -> Self {
        self.thresholds = vec![Threshold {
            accuracy: tau,
            weight: 1.0,
        }];
        self
    }

    /// The effective bound on incoming batches.
    pub fn incoming_batch_budget(&self) -> usize {
        self.max_incoming_batches
            .unwrap_or(self.max_iterations.saturating_mul(5))
    }

    /// Checks every value; the error names the field.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(invalid_config("batch_size", "M must be at least 1"));
        }
        if self.max_iterations == 0 {
            return Err(invalid_config("max_iterations", "T' must be at least 1"));
        }
        if self.max_incoming_batches == Some(0) {
            return Err(invalid_config("max_incoming_batches", "must be at least 1"));
        }
        if self.thresholds.is_empty() {
            return Err(invalid_config("thresholds", "needs at least one threshold"));
        }
        for t in &self.thresholds {
            if !(t.accuracy > 0.0 && t.accuracy <= 1.0) {
                return Err(invalid_config(
                    "thresholds.accuracy",
                    format!("tau = {} is outside (0, 1]", t.accuracy),
                ));
            }
            if !(t.weight.is_finite() && t.weight > 0.0) {
                return Err(invalid_config(
                    "thresholds.weight",
                    format!("weight {} must be positive and finite", t.weight),
                ));
            }
        }
        if self.eval_every == 0 {
            return Err(invalid_config("eval_every", "must be at least 1"));
        }
        if self.eval_chunk == 0 {
            return Err(invalid_config("eval_chunk", "must be at least 1"));
        }
        if self.scoring == (Scoring::Pooled { k: 0 }) {
            return Err(invalid_config(
                "scoring.k",
                "the block side must be at least 1",
            ));
        }
        if let Some(iterations) = self.reward.horizon() {
            if iterations == 0 || !iterations.is_multiple_of(self.eval_every) {
                return Err(invalid_config(
                    "reward.iterations",
                    format!(
                        "the horizon H = {iterations} must be a positive multiple of \
                         eval_every = {}",
                        self.eval_every
                    ),
                ));
            }
            if iterations > self.max_iterations {
                return Err(invalid_config(
                    "reward.iterations",
                    format!(
                        "the horizon H = {iterations} exceeds T' = {}",
                        self.max_iterations
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// What the teacher sees for one incoming batch, with the names of its columns.
///
/// Read a column by name, `observation.column("loss")?`, or with a [`Column`]
/// resolved once against a [`FeatureLayout`] (`observation.at(&loss)?`): both read the
/// column of that name in this observation's own layout, or fail naming it. A reader
/// of whole rows (a learned policy) asks for them in its own layout
/// ([`TeachingObservation::features_for`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TeachingObservation {
    /// One row per instance of the incoming batch, columns as in `layout`.
    pub features: Array2<f32>,
    /// The student-state features (`iteration`, `average_training_loss`,
    /// `best_dev_accuracy`), also repeated in every row of `features`.
    pub student_state: Array1<f32>,
    /// The names of the columns of `features` (shared by every observation of the env).
    pub layout: FeatureLayout,
}

impl TeachingObservation {
    /// The column called `name`, one value per instance; [`EnvError::UnknownFeature`]
    /// (naming it and listing the columns) where the observation has none.
    pub fn column(&self, name: &str) -> Result<ArrayView1<'_, f32>> {
        Ok(self.features.column(self.layout.column(name)?.index()))
    }

    /// The values of `column`: at its resolved position where this observation has the
    /// layout it was resolved against (one pointer comparison), else looked up again by
    /// its name in this observation's layout. An index resolved against another env is
    /// never applied to this one; a name this observation lacks is
    /// [`EnvError::UnknownFeature`].
    pub fn at(&self, column: &Column) -> Result<ArrayView1<'_, f32>> {
        if column.layout().matches(&self.layout) {
            return Ok(self.features.column(column.index()));
        }
        self.column(column.name())
    }

    /// The feature matrix with the columns of `expected`, in its order: the matrix as it
    /// is where the layouts match, else its columns taken by name where that is exact
    /// ([`FeatureLayout::positions_in`]: e.g. for a policy trained without a column this
    /// env adds); [`EnvError::LayoutMismatch`], naming the differences and their cause,
    /// otherwise.
    pub fn features_for(&self, expected: &FeatureLayout) -> Result<Cow<'_, Array2<f32>>> {
        if expected.matches(&self.layout) {
            return Ok(Cow::Borrowed(&self.features));
        }
        let columns = expected.positions_in(&self.layout)?;
        Ok(Cow::Owned(self.features.select(ndarray::Axis(1), &columns)))
    }
}

/// The observation space: a bounded box for the feature matrix and one for the
/// student-state vector, and the columns' names.
#[derive(Debug, Clone, PartialEq)]
pub struct TeachingObservationSpace {
    /// Box of shape `[M, F]` with per-column bounds.
    pub features: BoxSpace,
    /// Box of shape `[3]` in [0, 1].
    pub student_state: BoxSpace,
    /// The F column names.
    pub layout: FeatureLayout,
}

impl Space<TeachingObservation> for TeachingObservationSpace {
    fn contains(&self, value: &TeachingObservation) -> bool {
        self.features.contains_dyn(&value.features)
            && self.student_state.contains_dyn(&value.student_state)
            && self.layout.matches(&value.layout)
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> TeachingObservation {
        let shape = self.features.shape();
        let features = self
            .features
            .sample(rng)
            .into_shape_with_order((shape[0], shape[1]))
            .unwrap_or_else(|_| Array2::zeros((shape[0], shape[1])));
        let student_state =
            Array1::from_vec(self.student_state.sample(rng).into_raw_vec_and_offset().0);
        TeachingObservation {
            features,
            student_state,
            layout: self.layout.clone(),
        }
    }

    fn validate(&self) -> std::result::Result<(), SpaceError> {
        self.features.validate()?;
        self.student_state.validate()
    }
}

/// Diagnostics of a step: the teaching counters and the student's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeachingInfo {
    /// Student updates so far (i).
    pub iteration: usize,
    /// Effective training instances so far: `iteration * M`.
    pub effective_instances: usize,
    /// Incoming batches handed to the teacher so far, this one excluded.
    pub incoming_batches: usize,
    /// Instances shown to the teacher so far.
    pub instances_seen: usize,
    /// Instances the teacher kept so far.
    pub instances_kept: usize,
    /// Kept instances waiting in the buffer (always fewer than M after a step).
    pub buffered: usize,
    /// Epochs of the training split consumed: `instances_seen / |train|`.
    pub epochs: f64,
    /// Dev accuracy at the latest evaluation.
    pub dev_accuracy: f64,
    /// Best dev accuracy so far.
    pub best_dev_accuracy: f64,
    /// Mean dev cross-entropy at the latest evaluation, where the reward measures it
    /// ([`Reward::DevLossDecrease`]).
    #[serde(default)]
    pub dev_loss: Option<f64>,
    /// Mean training loss over all updates so far (unnormalised; NaN before any).
    pub average_training_loss: f64,
    /// Student updates made during this step.
    pub updates_this_step: usize,
    /// Whether the dev split was evaluated during this step.
    pub evaluated: bool,
    /// For each threshold, the iteration at which it was first exceeded.
    pub threshold_iterations: Vec<Option<usize>>,
    /// i_tau: the iteration at which the last threshold was passed (`None` until then).
    pub iterations_to_tau: Option<usize>,
    /// The incoming batch's instances as indices into the training split, one per row
    /// of the observation's feature matrix: for teachers that keep something per
    /// instance (RHO-LOSS's irreducible losses). Empty where no batch is given.
    #[serde(default)]
    pub incoming_indices: Vec<i64>,
    /// FLOPs of the episode so far, by kind ([`Compute`]).
    #[serde(default)]
    pub compute: Compute,
    /// C_tau: the training compute (scoring + training FLOPs) when the last threshold
    /// was passed (`None` until then).
    #[serde(default)]
    pub compute_to_tau: Option<u64>,
}

/// The floating-point operations of an episode, by kind (see the module docs, step 7).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compute {
    /// Forwards of the incoming batches' rows, to observe them.
    pub scoring: u64,
    /// Backwards and optimizer steps of the updates, and their forwards where the
    /// student cannot reuse the scoring forward.
    pub training: u64,
    /// Forwards of dev and test evaluations (excluded from the training compute).
    pub measurement: u64,
}

impl Compute {
    /// The training compute: scoring + training, measurement excluded.
    pub fn training_total(&self) -> u64 {
        self.scoring + self.training
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    NeedsReset,
    Running,
    Ended,
}

/// The training batch of one student update, as decided by [`EpisodeState::absorb`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Update {
    /// Dataset indices of the M instances, oldest first.
    pub(crate) indices: Vec<i64>,
    /// Whether the M instances are exactly this step's incoming batch, in its order
    /// (the buffer was empty and the teacher kept all M). Then the batch gathered for
    /// the observation, and its logits when the student reuses forwards, were computed
    /// under the current weights and serve the update as they are.
    pub(crate) is_incoming: bool,
}

/// The bookkeeping of one teaching episode: everything of the MDP but the student and
/// the data. [`TeachingEnv`] drives it through the phases of a step,
/// in this order:
///
/// 1. [`check_action`](Self::check_action) and [`absorb`](Self::absorb): the keep-mask
///    joins the buffer; at most one [`Update`] of M instances comes out (the buffer
///    holds fewer than M before a step and gains at most M);
/// 2. the caller trains the student on it, then [`record_update`](Self::record_update)
///    counts the iteration and says whether the dev split is due;
/// 3. the caller evaluates the student, then
///    [`record_evaluation`](Self::record_evaluation) turns the accuracy into the reward;
/// 4. [`end_step`](Self::end_step): terminated / truncated;
/// 5. [`draw_incoming`](Self::draw_incoming): the next M indices, whose observation
///    the caller computes from the student's logits with [`featurise`].
#[derive(Debug)]
pub(crate) struct EpisodeState {
    // Random streams, owned by the env and derived from the master seed.
    order_rng: ChaCha8Rng,
    /// Stream of the student's initial weights.
    pub(crate) init_rng: ChaCha8Rng,
    /// Stream of the student's training noise (dropout, augmentation).
    pub(crate) noise_rng: ChaCha8Rng,
    phase: Phase,
    order: Vec<i64>,
    cursor: usize,
    incoming: Vec<i64>,
    buffer: VecDeque<i64>,
    iteration: usize,
    incoming_batches: usize,
    instances_seen: usize,
    instances_kept: usize,
    loss_sum: f64,
    dev_accuracy: f64,
    best_dev_accuracy: f64,
    dev_loss: Option<f64>,
    threshold_iterations: Vec<Option<usize>>,
    compute: Compute,
    compute_to_tau: Option<u64>,
    /// c: the training compute of one update of plain training (the compute rewards'
    /// unit, [`Reward::ComputeToTau`]).
    plain_update: u64,
    /// The training compute at the previous dev evaluation.
    compute_at_evaluation: u64,
}

impl EpisodeState {
    /// The state before the first reset, with the streams of `config.seed`; c =
    /// `plain_update`.
    pub(crate) fn new(config: &TeachingConfig, train_len: usize, plain_update: u64) -> Self {
        let m = config.batch_size;
        let seed = config.seed;
        Self {
            order_rng: stream_rng(seed, Stream::DataOrder),
            init_rng: stream_rng(seed, Stream::StudentInit),
            noise_rng: stream_rng(seed, Stream::Dropout),
            phase: Phase::NeedsReset,
            order: (0..train_len as i64).collect(),
            cursor: train_len,
            incoming: Vec::with_capacity(m),
            buffer: VecDeque::with_capacity(2 * m),
            iteration: 0,
            incoming_batches: 0,
            instances_seen: 0,
            instances_kept: 0,
            loss_sum: 0.0,
            dev_accuracy: 0.0,
            best_dev_accuracy: 0.0,
            dev_loss: None,
            threshold_iterations: vec![None; config.thresholds.len()],
            compute: Compute::default(),
            compute_to_tau: None,
            plain_update,
            compute_at_evaluation: 0,
        }
    }

    /// Re-seeds every stream from `seed`.
    pub(crate) fn reseed(&mut self, seed: u64) {
        self.order_rng = stream_rng(seed, Stream::DataOrder);
        self.init_rng = stream_rng(seed, Stream::StudentInit);
        self.noise_rng = stream_rng(seed, Stream::Dropout);
    }

    /// Starts an episode: a fresh epoch and zero counters; the streams continue. The
    /// caller resets the student (from `init_rng`) before, and evaluates it
    /// ([`record_evaluation`](Self::record_evaluation)) and draws the first incoming
    /// batch after.
    pub(crate) fn begin(&mut self) {
        let n = self.order.len();
        self.order.clear();
        self.order.extend(0..n as i64);
        self.cursor = n;
        self.buffer.clear();
        self.iteration = 0;
        self.incoming_batches = 0;
        self.instances_seen = 0;
        self.instances_kept = 0;
        self.loss_sum = 0.0;
        self.best_dev_accuracy = 0.0;
        self.threshold_iterations.iter_mut().for_each(|t| *t = None);
        self.compute = Compute::default();
        self.compute_to_tau = None;
        self.compute_at_evaluation = 0;
        self.phase = Phase::Running;
    }

    /// Errors for a step outside a running episode or a keep-mask of the wrong length.
    pub(crate) fn check_action(&self, m: usize, keep_mask: &Array1<bool>) -> Result<()> {
        match self.phase {
            Phase::NeedsReset => return Err(EnvError::ResetNeeded),
            Phase::Ended => return Err(EnvError::EpisodeEnded),
            Phase::Running => {}
        }
        if keep_mask.len() != m {
            return Err(EnvError::InvalidAction(format!(
                "keep-mask has length {}, the batch size M is {m}",
                keep_mask.len()
            )));
        }
        Ok(())
    }

    /// Kept instances join the buffer in arrival order; returns the update of the
    /// oldest M once the buffer holds M. Call after [`check_action`](Self::check_action).
    pub(crate) fn absorb(&mut self, m: usize, keep_mask: &Array1<bool>) -> Option<Update> {
        let kept_before = self.buffer.len();
        self.buffer.extend(
            self.incoming
                .iter()
                .zip(keep_mask.iter())
                .filter(|(_, &keep)| keep)
                .map(|(&index, _)| index),
        );
        let kept = self.buffer.len() - kept_before;
        self.instances_kept += kept;
        self.instances_seen += m;
        self.incoming_batches += 1;
        (self.buffer.len() >= m).then(|| Update {
            indices: self.buffer.drain(..m).collect(),
            is_incoming: kept_before == 0 && kept == m,
        })
    }

    /// Counts the update whose training loss was `loss`; returns whether the dev split
    /// is due. A non-finite loss ends the episode with an error.
    pub(crate) fn record_update(&mut self, config: &TeachingConfig, loss: f64) -> Result<bool> {
        if !loss.is_finite() {
            self.phase = Phase::Ended;
            return Err(EnvError::NonFiniteLoss {
                iteration: self.iteration + 1,
                loss,
            });
        }
        self.iteration += 1;
        self.loss_sum += loss;
        Ok(self.iteration.is_multiple_of(config.eval_every))
    }

    /// Records a dev accuracy (and the dev loss, where the reward measures it), marks
    /// every threshold passed for the first time and returns the reward earned (none at
    /// iteration 0, the evaluation of a reset).
    pub(crate) fn record_evaluation(
        &mut self,
        config: &TeachingConfig,
        accuracy: f64,
        loss: Option<f64>,
    ) -> f64 {
        self.dev_accuracy = accuracy;
        self.best_dev_accuracy = self.best_dev_accuracy.max(accuracy);
        let previous_loss = std::mem::replace(&mut self.dev_loss, loss);
        let compute = self.compute.training_total();
        let previous_compute = std::mem::replace(&mut self.compute_at_evaluation, compute);
        if self.iteration == 0 {
            return 0.0;
        }
        let t_prime = config.max_iterations as f64;
        // The share of the budget used when a threshold is passed: i / T' (the paper's),
        // n / (T' M) in accepted instances (RL4Data's) or C / (T' c) in training compute.
        let share = match config.reward {
            Reward::AcceptedInstancesToTau => {
                self.instances_kept as f64 / (t_prime * config.batch_size as f64)
            }
            Reward::ComputeToTau => compute as f64 / (t_prime * self.plain_update.max(1) as f64),
            _ => self.iteration as f64 / t_prime,
        };
        let mut to_tau = 0.0;
        for (threshold, reached) in config
            .thresholds
            .iter()
            .zip(self.threshold_iterations.iter_mut())
        {
            if reached.is_none() && accuracy > threshold.accuracy {
                *reached = Some(self.iteration);
                // r = -ln(i_tau / T'): larger when the student is faster.
                to_tau += threshold.weight * -share.ln();
            }
        }
        if self.compute_to_tau.is_none() && self.threshold_iterations.iter().all(Option::is_some) {
            self.compute_to_tau = Some(compute);
        }
        match config.reward {
            Reward::IterationsToTau | Reward::AcceptedInstancesToTau | Reward::ComputeToTau => {
                to_tau
            }
            // One slice of the area under dev accuracy against training compute.
            Reward::DevAccuracyComputeArea { iterations } => {
                let budget = (iterations as u64 * self.plain_update).max(1);
                let slice = compute.min(budget) - previous_compute.min(budget);
                accuracy * slice as f64 / budget as f64
            }
            // One slice of the area under the dev curve: acc * eval_every / H.
            Reward::DevAccuracyArea { iterations } if self.iteration <= iterations => {
                accuracy * config.eval_every as f64 / iterations as f64
            }
            Reward::DevAccuracyArea { .. } => 0.0,
            // The dev loss's drop since the last evaluation: L_prev - L_i.
            Reward::DevLossDecrease { iterations } if self.iteration <= iterations => {
                match (previous_loss, loss) {
                    (Some(before), Some(now)) => before - now,
                    _ => 0.0,
                }
            }
            Reward::DevLossDecrease { .. } => 0.0,
        }
    }

    /// Whether the episode ended with this step: `(terminated, truncated)`. Terminated
    /// when every threshold is passed (or at the horizon H of the area reward);
    /// otherwise truncated at T' iterations, at the incoming-batch budget, or (under
    /// [`Reward::ComputeToTau`]) at the compute budget C_max = T' c.
    pub(crate) fn end_step(&mut self, config: &TeachingConfig) -> (bool, bool) {
        let terminated = match (config.reward, config.reward.horizon()) {
            // At the first evaluation past the compute budget.
            (Reward::DevAccuracyComputeArea { iterations }, _) => {
                self.compute_at_evaluation >= iterations as u64 * self.plain_update
            }
            (_, None) => self.threshold_iterations.iter().all(Option::is_some),
            (_, Some(horizon)) => self.iteration >= horizon,
        };
        let compute_budget_spent = config.reward == Reward::ComputeToTau
            && self.compute.training_total()
                >= (config.max_iterations as u64).saturating_mul(self.plain_update);
        let truncated = !terminated
            && (self.iteration >= config.max_iterations
                || self.incoming_batches >= config.incoming_batch_budget()
                || compute_budget_spent);
        if terminated || truncated {
            self.phase = Phase::Ended;
        }
        (terminated, truncated)
    }

    /// Draws the next M indices of the seeded data order, starting a new epoch (a new
    /// permutation) whenever the current one is used up.
    pub(crate) fn draw_incoming(&mut self, m: usize) {
        self.incoming.clear();
        while self.incoming.len() < m {
            if self.cursor == self.order.len() {
                self.order.shuffle(&mut self.order_rng);
                self.cursor = 0;
            }
            self.incoming.push(self.order[self.cursor]);
            self.cursor += 1;
        }
    }

    /// The dataset indices of the incoming batch.
    pub(crate) fn incoming(&self) -> &[i64] {
        &self.incoming
    }

    /// The indices of up to `batches` whole incoming batches of M after the current
    /// one, without drawing them: only those left in the current epoch's permutation,
    /// so that looking ahead never advances the data-order stream.
    pub(crate) fn peek_incoming(&self, m: usize, batches: usize) -> &[i64] {
        let left = (self.order.len() - self.cursor) / m;
        &self.order[self.cursor..self.cursor + left.min(batches) * m]
    }

    /// The number of kept instances waiting for the next update.
    pub(crate) fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The student-state features: iteration / T', normalised average training loss,
    /// best dev accuracy.
    pub(crate) fn student_state(&self, config: &TeachingConfig, num_classes: usize) -> [f32; 3] {
        let log_classes = (num_classes as f64).ln();
        let average_loss = if self.iteration == 0 {
            log_classes
        } else {
            self.loss_sum / self.iteration as f64
        };
        [
            (self.iteration as f64 / config.max_iterations as f64).min(1.0) as f32,
            (average_loss / (2.0 * log_classes)).clamp(0.0, 1.0) as f32,
            self.best_dev_accuracy as f32,
        ]
    }

    /// The info value of the current state.
    pub(crate) fn info(
        &self,
        config: &TeachingConfig,
        train_len: usize,
        updates_this_step: usize,
        evaluated: bool,
    ) -> TeachingInfo {
        let iterations_to_tau = if self.threshold_iterations.iter().all(Option::is_some) {
            self.threshold_iterations.iter().flatten().max().copied()
        } else {
            None
        };
        TeachingInfo {
            iteration: self.iteration,
            effective_instances: self.iteration * config.batch_size,
            incoming_batches: self.incoming_batches,
            instances_seen: self.instances_seen,
            instances_kept: self.instances_kept,
            buffered: self.buffer.len(),
            epochs: self.instances_seen as f64 / train_len as f64,
            dev_accuracy: self.dev_accuracy,
            best_dev_accuracy: self.best_dev_accuracy,
            dev_loss: self.dev_loss,
            average_training_loss: if self.iteration == 0 {
                f64::NAN
            } else {
                self.loss_sum / self.iteration as f64
            },
            updates_this_step,
            evaluated,
            threshold_iterations: self.threshold_iterations.clone(),
            incoming_indices: self.incoming.clone(),
            compute: self.compute,
            compute_to_tau: self.compute_to_tau,
            iterations_to_tau,
        }
    }
}

/// The observations of B incoming batches, with columns as in
/// [`TeachingEnv::feature_names`]: `logits` `[B, M, |Y|]` (without gradient), `labels`
/// `[B, M]`, `lengths` `[B, M]` for text, `indices` the rows' `B * M` indices into
/// `train` (read only when it has irreducible losses), `states[b]` the student-state
/// features of batch b. A [`TeachingEnv`] has B = 1.
///
/// The log-softmax runs as one tensor op; its `[B, M, |Y|]` values and the labels are
/// then copied to Rust once and each row is assembled there (probabilities, one-hot,
/// loss, margin, rank): at M = 20 the dozen small tensor ops this replaces cost more in
/// dispatch than the arithmetic, and the rows are the ndarray the teacher reads anyway.
// The batch's tensors stay separate arguments: the env passes views of its incoming
// batch, and the step-time bench passes replicas of them.
#[allow(clippy::too_many_arguments)]
pub fn featurise(
    config: &TeachingConfig,
    layout: &FeatureLayout,
    train: &Dataset,
    logits: &Tensor,
    labels: &Tensor,
    lengths: Option<&Tensor>,
    indices: &[i64],
    states: &[[f32; 3]],
) -> Result<Vec<TeachingObservation>> {
    let size = logits.size();
    let (b, m, c) = (size[0] as usize, size[1] as usize, size[2] as usize);
    // One copy to host memory (a no-op move on the CPU), then plain Rust.
    let host = |t: Tensor| t.to_device(tch::Device::Cpu).contiguous().view(-1);
    let log_probs = Vec::<f32>::try_from(host(logits.log_softmax(-1, Kind::Float)))?;
    let labels = Vec::<i64>::try_from(host(labels.shallow_clone()))?;
    let lengths = lengths
        .map(|l| Vec::<i64>::try_from(host(l.shallow_clone())))
        .transpose()?;
    if states.len() != b || labels.len() != b * m || log_probs.len() != b * m * c {
        return Err(EnvError::InvalidDataset {
            name: train.name().to_string(),
            reason: format!(
                "featurise: {} states, {} labels, {} log-probabilities for [{b}, {m}, {c}]",
                states.len(),
                labels.len(),
                log_probs.len()
            ),
        });
    }
    let irreducible = train.irreducible_loss();
    if irreducible.is_some() && indices.len() != b * m {
        return Err(EnvError::InvalidDataset {
            name: train.name().to_string(),
            reason: format!(
                "featurise: {} split indices for [{b}, {m}] rows",
                indices.len()
            ),
        });
    }
    let loss_scale = (2.0 * (c as f64).ln()) as f32;
    let max_length = train.max_length() as f32;
    let width = c + usize::from(lengths.is_some()) + usize::from(irreducible.is_some()) + 3 + c + 2;
    if width != layout.len() {
        return Err(EnvError::InvalidDataset {
            name: train.name().to_string(),
            reason: format!(
                "featurise: {width} columns for a layout of {}",
                layout.describe()
            ),
        });
    }
    let mut observations = Vec::with_capacity(b);
    let mut losses = vec![0f32; m];
    let mut order: Vec<usize> = Vec::with_capacity(m);
    for (batch, state) in states.iter().enumerate() {
        let mut rows = Vec::with_capacity(m * width);
        for (row, loss) in losses.iter_mut().enumerate() {
            let at = batch * m + row;
            let lp = &log_probs[at * c..(at + 1) * c];
            let label = usize::try_from(labels[at]).unwrap_or(usize::MAX).min(c - 1);
            // Data features: the label one-hot, and for text the length / max length.
            rows.extend((0..c).map(|k| if k == label { 1.0 } else { 0.0 }));
            if let Some(lengths) = &lengths {
                rows.push((lengths[at] as f32 / max_length).clamp(0.0, 1.0));
            }
            // The holdout model's loss, scaled as the loss column's `Fixed`.
            if let Some(irreducible) = irreducible {
                let il = usize::try_from(indices[at])
                    .ok()
                    .and_then(|i| irreducible.get(i))
                    .copied()
                    .unwrap_or(0.0);
                rows.push((il / loss_scale).clamp(0.0, 1.0));
            }
            // Student features.
            rows.extend_from_slice(state);
            // Combined features: p(y' | x) for every class, loss -log p_y (scaled below)
            // and margin p_y - max_{y' != y} p_{y'}.
            let probs_start = rows.len();
            rows.extend(lp.iter().map(|v| v.exp().clamp(0.0, 1.0)));
            let probs = &rows[probs_start..];
            let best_other = probs
                .iter()
                .enumerate()
                .filter(|&(k, _)| k != label)
                .map(|(_, &p)| p)
                .fold(-1.0f32, f32::max);
            let margin = (probs[label] - best_other).clamp(-1.0, 1.0);
            *loss = -lp[label];
            rows.push(match config.loss_scaling {
                LossScaling::Fixed => (*loss / loss_scale).clamp(0.0, 1.0),
                LossScaling::Rank => 0.0, // filled in below, once all losses are known
            });
            rows.push(margin);
        }
        if config.loss_scaling == LossScaling::Rank {
            // Rank within the batch (0 = smallest loss, ties in arrival order).
            order.clear();
            order.extend(0..m);
            order.sort_by(|&i, &j| losses[i].total_cmp(&losses[j]));
            let denominator = (m.saturating_sub(1)).max(1) as f32;
            for (rank, &row) in order.iter().enumerate() {
                rows[row * width + width - 2] = rank as f32 / denominator;
            }
        }
        let features =
            Array2::from_shape_vec((m, width), rows).map_err(|e| EnvError::InvalidDataset {
                name: train.name().to_string(),
                reason: format!("feature matrix shape: {e}"),
            })?;
        observations.push(TeachingObservation {
            features,
            student_state: Array1::from_vec(state.to_vec()),
            layout: layout.clone(),
        });
    }
    Ok(observations)
}

/// The data-teaching environment: a student, its training and dev splits, and the MDP.
pub struct TeachingEnv {
    config: TeachingConfig,
    student: Box<dyn Student>,
    train: Dataset,
    dev: Dataset,
    observation_space: TeachingObservationSpace,
    action_space: MultiBinary,
    episode: EpisodeState,
    /// The incoming batch as gathered for the observation, so an update on exactly
    /// these instances does not gather them again.
    incoming_batch: Option<Batch>,
    /// Its logits with the autograd graph, when the student reuses forwards but does
    /// not record them.
    incoming_logits: Option<Tensor>,
    /// Where its rows are in a recorded scoring forward, when the student records.
    incoming_recorded: Option<RecordedRows>,
    /// The buffered rows kept since the last update, from recorded scoring forwards
    /// (all under the current weights), oldest first: the newest buffered rows.
    kept_recorded: Vec<KeptRows>,
    /// The id of the next recorded scoring forward.
    next_block: u64,
    /// Incoming batches scored ahead under the current weights, next first (module
    /// docs, step 2).
    ahead: VecDeque<Scored>,
    /// The cap on the batches scored in one forward (1: no look-ahead).
    score_ahead: usize,
    /// The kept counts of the latest [`RECENT_STEPS`] steps, latest last.
    recent_kept: VecDeque<usize>,
    /// Rows scored ahead this episode and dropped because an update came first: the
    /// engine's speculative work, not charged to the teacher.
    discarded_rows: u64,
    /// The student's FLOPs per row and per step, on the training split.
    flops: StudentFlops,
    /// The pooled proxy under [`Scoring::Pooled`]; `None` scores with the student.
    pooled: Option<PooledScoring>,
    /// FLOPs of the test evaluations of this episode ([`TeachingEnv::evaluate`], which
    /// takes `&self`), added to the measurement compute.
    test_measurement: std::cell::Cell<u64>,
    /// Wall-clock seconds of this episode's dev and test evaluations.
    measurement_seconds: std::cell::Cell<f64>,
}

/// An incoming batch scored ahead: its indices, its gathered rows, its observation and,
/// when the student records, where its rows are in the recorded forward.
struct Scored {
    indices: Vec<i64>,
    batch: Batch,
    observation: TeachingObservation,
    recorded: Option<RecordedRows>,
}

/// One recorded scoring forward ([`Student::record`]) and its labels, shared by the
/// incoming batches scored in it; `id` tells forwards apart.
struct Block {
    id: u64,
    recorded: Recorded,
    labels: Tensor,
}

impl Block {
    fn shallow_clone(&self) -> Self {
        Self {
            id: self.id,
            recorded: self.recorded.shallow_clone(),
            labels: self.labels.shallow_clone(),
        }
    }
}

/// An incoming batch's M rows in a recorded forward: rows `offset..offset + M`.
struct RecordedRows {
    block: Block,
    offset: i64,
}

/// Rows of one recorded forward kept since the last update, in arrival order.
struct KeptRows {
    block: Block,
    rows: Vec<i64>,
}

impl KeptRows {
    /// The first `n` rows and their labels: a view where they are consecutive, else a
    /// gather.
    fn first(&self, n: usize) -> (Recorded, Tensor) {
        let rows = &self.rows[..n];
        let consecutive = rows.windows(2).all(|w| w[1] == w[0] + 1);
        match rows.first() {
            Some(&start) if consecutive => (
                self.block.recorded.narrow(start, n as i64),
                self.block.labels.narrow(0, start, n as i64),
            ),
            _ => {
                let index = Tensor::from_slice(rows);
                (
                    self.block.recorded.select(&index),
                    self.block.labels.index_select(0, &index),
                )
            }
        }
    }
}

impl std::fmt::Debug for TeachingEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeachingEnv")
            .field("config", &self.config)
            .field("train", &self.train.name())
            .field("dev", &self.dev.name())
            .field("iteration", &self.episode.iteration)
            .finish()
    }
}

/// Checks that a dev split matches its training split (classes and input shape).
pub(crate) fn check_splits(train: &Dataset, dev: &Dataset) -> Result<()> {
    if train.num_classes() != dev.num_classes() || train.input_shape() != dev.input_shape() {
        return Err(EnvError::InvalidDataset {
            name: dev.name().to_string(),
            reason: format!(
                "dev split ({} classes, inputs {:?}) differs from train split {} ({} classes, inputs {:?})",
                dev.num_classes(),
                dev.input_shape(),
                train.name(),
                train.num_classes(),
                train.input_shape()
            ),
        });
    }
    Ok(())
}

/// Errors for an incoming batch M larger than the training split, before anything of
/// size M is allocated: such a batch can never be drawn from one epoch.
pub(crate) fn check_batch_size(config: &TeachingConfig, train: &Dataset) -> Result<()> {
    if config.batch_size > train.len() {
        return Err(invalid_config(
            "batch_size",
            format!(
                "M = {} is larger than the training split `{}` ({} instances)",
                config.batch_size,
                train.name(),
                train.len()
            ),
        ));
    }
    Ok(())
}

/// The observation space (with the feature layout) of an env with `config` over
/// `train`.
pub(crate) fn spaces(
    config: &TeachingConfig,
    train: &Dataset,
) -> (TeachingObservationSpace, MultiBinary) {
    let (feature_names, bounds) = feature_layout(
        train.num_classes(),
        train.has_lengths(),
        train.irreducible_loss().is_some(),
    );
    let m = config.batch_size;
    let observation_space = TeachingObservationSpace {
        features: BoxSpace::from_columns(&[m, feature_names.len()], &bounds),
        student_state: BoxSpace::from_columns(&[3], &[(0.0, 1.0); 3]),
        layout: FeatureLayout::new(feature_names),
    };
    (observation_space, MultiBinary(m))
}

impl TeachingEnv {
    /// An environment teaching `student` on `train`, rewarded on `dev`.
    pub fn new(
        config: TeachingConfig,
        student: Box<dyn Student>,
        train: Dataset,
        dev: Dataset,
    ) -> Result<Self> {
        config.validate()?;
        student.accepts(&train)?;
        student.accepts(&dev)?;
        check_splits(&train, &dev)?;
        check_batch_size(&config, &train)?;
        let (observation_space, action_space) = spaces(&config, &train);
        let flops = student.flops(&train);
        let pooled = match config.scoring {
            Scoring::Full => None,
            Scoring::Pooled { k } => {
                let flops = student.pooled_flops(&train, k)?;
                let image = pooled_image_shape(&train.input_shape(), k)?;
                let means = tch::no_grad(|| block_means(train.inputs(), image, k))?;
                Some(PooledScoring {
                    k,
                    flops,
                    image,
                    means,
                })
            }
        };
        // c: M rows scored, then trained on (plain training, whatever the scoring).
        let m = config.batch_size as u64;
        let plain_update = flops.forward(m) + flops.update(m, student.reuses_forward());
        let episode = EpisodeState::new(&config, train.len(), plain_update);
        Ok(Self {
            action_space,
            observation_space,
            flops,
            pooled,
            test_measurement: std::cell::Cell::new(0),
            measurement_seconds: std::cell::Cell::new(0.0),
            episode,
            incoming_batch: None,
            incoming_logits: None,
            incoming_recorded: None,
            kept_recorded: Vec::new(),
            next_block: 0,
            ahead: VecDeque::new(),
            score_ahead: DEFAULT_SCORE_AHEAD,
            recent_kept: VecDeque::with_capacity(RECENT_STEPS),
            discarded_rows: 0,
            config,
            student,
            train,
            dev,
        })
    }

    /// Sets the cap on the incoming batches scored in one forward (module docs, step 2;
    /// 1 turns the look-ahead off). An engine setting: the observations, the rewards and
    /// the compute counted are the same whatever it is; only the time differs.
    pub fn set_score_ahead(&mut self, batches: usize) {
        self.score_ahead = batches.max(1);
        self.discard_ahead();
    }

    /// The rows this episode scored ahead and then dropped because an update came
    /// first: the engine's speculative work, which the episode's [`Compute`] (the
    /// teaching policy's logical work) does not count.
    pub fn discarded_scoring_rows(&self) -> u64 {
        self.discarded_rows
    }

    /// The config in force.
    pub fn config(&self) -> &TeachingConfig {
        &self.config
    }

    /// Column names of the feature matrix, in order (`self.layout().names()`).
    pub fn feature_names(&self) -> &[String] {
        self.observation_space.layout.names()
    }

    /// The feature layout every observation of this env carries: resolve columns by
    /// name against it ([`FeatureLayout::column`]).
    pub fn layout(&self) -> &FeatureLayout {
        &self.observation_space.layout
    }

    /// The student being taught.
    pub fn student(&self) -> &dyn Student {
        self.student.as_ref()
    }

    /// The training split the teacher filters.
    pub fn train_data(&self) -> &Dataset {
        &self.train
    }

    /// The dev split that decides the reward.
    pub fn dev_data(&self) -> &Dataset {
        &self.dev
    }

    /// Accuracy of the current student on any split (e.g. the test split, for reports);
    /// its forwards count as measurement compute.
    pub fn evaluate(&self, data: &Dataset) -> Result<f64> {
        self.student.accepts(data)?;
        let cost = self.flops.forward(data.len() as u64);
        self.test_measurement
            .set(self.test_measurement.get() + cost);
        let start = std::time::Instant::now();
        let accuracy = self.student.accuracy(data, self.config.eval_chunk);
        self.add_measurement_time(start);
        Ok(accuracy)
    }

    /// Wall-clock seconds this episode has spent in dev and test evaluations (timing,
    /// not part of the info: the info stays a function of the seed).
    pub fn measurement_seconds(&self) -> f64 {
        self.measurement_seconds.get()
    }

    fn add_measurement_time(&self, start: std::time::Instant) {
        let seconds = self.measurement_seconds.get() + start.elapsed().as_secs_f64();
        self.measurement_seconds.set(seconds);
    }

    /// The student's FLOPs per row and per step ([`StudentFlops`]), on which the
    /// compute of [`TeachingInfo::compute`] is counted.
    pub fn flops(&self) -> StudentFlops {
        self.flops
    }

    /// The dev accuracy, and the dev loss where the reward needs it.
    fn evaluate_dev(&mut self) -> (f64, Option<f64>) {
        self.episode.compute.measurement += self.flops.forward(self.dev.len() as u64);
        let chunk = self.config.eval_chunk;
        let start = std::time::Instant::now();
        let measured = if self.config.reward.needs_dev_loss() {
            let (accuracy, loss) = self.student.accuracy_and_loss(&self.dev, chunk);
            (accuracy, Some(loss))
        } else {
            (self.student.accuracy(&self.dev, chunk), None)
        };
        self.add_measurement_time(start);
        measured
    }

    /// The info value of the current state.
    pub fn info(&self) -> TeachingInfo {
        self.info_after(0, false)
    }

    /// The info after a step with `updates` updates, `evaluated` or not: the episode's,
    /// with the test evaluations' FLOPs in the measurement compute.
    fn info_after(&self, updates: usize, evaluated: bool) -> TeachingInfo {
        let mut info = self
            .episode
            .info(&self.config, self.train.len(), updates, evaluated);
        info.compute.measurement += self.test_measurement.get();
        info
    }

    /// The observation of the incoming batch: from the batches scored ahead when it is
    /// the next of them, otherwise one forward pass of the student over it and the d - 1
    /// batches after it (module docs, step 2; kept with its graph when d = 1, the
    /// buffer is empty and the student reuses forwards), all features computed as
    /// tensors, converted to ndarray once at the end.
    fn observe_incoming(&mut self) -> Result<TeachingObservation> {
        let m = self.config.batch_size;
        self.episode.compute.scoring += match &self.pooled {
            Some(pooled) => pooled.flops.forward_per_row * m as u64,
            None => self.flops.forward(m as u64),
        };
        if let Some(scored) = self.ahead.pop_front() {
            if scored.indices == self.episode.incoming() {
                self.incoming_batch = Some(scored.batch);
                self.incoming_recorded = scored.recorded;
                return Ok(scored.observation);
            }
            // Not the batch that came: the look-ahead is stale.
            self.ahead.push_front(scored);
            self.discard_ahead();
        }
        let depth = self.look_ahead_depth();
        let mut indices = self.episode.incoming().to_vec();
        indices.extend_from_slice(self.episode.peek_incoming(m, depth - 1));
        let d = indices.len() / m;
        let index = Tensor::from_slice(&indices);
        // Under a pooled proxy the batch holds the rows' block means (pooled once, with
        // the env): its forward is not the student's, so nothing is recorded or
        // reused, and an update gathers its rows' pixels (`train`).
        let (batch, recording) = match &self.pooled {
            Some(pooled) => {
                let batch = Batch {
                    inputs: pooled.means.index_select(0, &index),
                    labels: self.train.labels().index_select(0, &index),
                    lengths: None,
                };
                (batch, None)
            }
            None => {
                let batch = self.train.batch(&index);
                let recording = self.student.record(&batch);
                (batch, recording)
            }
        };
        let block = recording.map(|recorded| {
            self.next_block += 1;
            Block {
                id: self.next_block,
                recorded,
                labels: batch.labels.shallow_clone(),
            }
        });
        let logits = match (&self.pooled, &block) {
            (Some(pooled), _) => {
                self.student
                    .pooled_logits(&batch.inputs, pooled.image, pooled.k)?
            }
            (None, Some(block)) => block
                .recorded
                .logits()
                .ok_or_else(|| EnvError::Unsupported("a recorded forward without logits".into()))?
                .shallow_clone(),
            (None, None)
                if d == 1 && self.episode.buffered() == 0 && self.student.reuses_forward() =>
            {
                let logits = self.student.logits_for_training(&batch);
                let values = logits.detach();
                self.incoming_logits = Some(logits);
                values
            }
            (None, None) => self.student.logits(&batch),
        };
        let (d, m) = (d as i64, m as i64);
        let state = self
            .episode
            .student_state(&self.config, self.train.num_classes());
        let observations = featurise(
            &self.config,
            &self.observation_space.layout,
            &self.train,
            &logits.view([d, m, -1]),
            &batch.labels.view([d, m]),
            batch.lengths.as_ref().map(|l| l.view([d, m])).as_ref(),
            &indices,
            &vec![state; d as usize],
        )?;
        let mut observations = observations.into_iter();
        let first = observations
            .next()
            .ok_or_else(|| EnvError::Unsupported("featurise returned no observation".into()))?;
        for (j, observation) in observations.enumerate() {
            let start = (j + 1) * m as usize;
            self.ahead.push_back(Scored {
                indices: indices[start..start + m as usize].to_vec(),
                batch: batch.rows(start, m as usize),
                observation,
                recorded: block.as_ref().map(|block| RecordedRows {
                    block: block.shallow_clone(),
                    offset: start as i64,
                }),
            });
        }
        self.incoming_recorded = block.map(|block| RecordedRows { block, offset: 0 });
        self.incoming_batch = Some(if d == 1 {
            batch
        } else {
            batch.rows(0, m as usize)
        });
        Ok(first)
    }

    /// d, the incoming batches to score in the next forward (module docs, step 2):
    /// ceil((M - b) / k) capped at the look-ahead, 1 before the first step or where
    /// the student's rows are not scored independently.
    fn look_ahead_depth(&self) -> usize {
        if self.score_ahead <= 1 || !self.student.scores_rows_independently() {
            return 1;
        }
        let m = self.config.batch_size;
        match self.recent_kept.iter().max() {
            None => 1,
            Some(0) => self.score_ahead,
            Some(&k) => (m - self.episode.buffered())
                .div_ceil(k)
                .clamp(1, self.score_ahead),
        }
    }

    /// The buffered rows with a recorded forward under the current weights.
    fn kept_recorded_rows(&self) -> usize {
        self.kept_recorded.iter().map(|k| k.rows.len()).sum()
    }

    /// Adds the rows `keep_mask` keeps of the incoming batch at `source` to the
    /// recorded kept rows.
    fn keep_recorded(&mut self, source: RecordedRows, keep_mask: &Array1<bool>) {
        let rows = keep_mask
            .iter()
            .enumerate()
            .filter(|(_, &keep)| keep)
            .map(|(i, _)| source.offset + i as i64);
        match self.kept_recorded.last_mut() {
            Some(last) if last.block.id == source.block.id => last.rows.extend(rows),
            _ => {
                let rows: Vec<i64> = rows.collect();
                if !rows.is_empty() {
                    self.kept_recorded.push(KeptRows {
                        block: source.block,
                        rows,
                    });
                }
            }
        }
    }

    /// The recorded rows of the oldest `m` kept rows and their labels, one gather (or
    /// view) per recorded forward; `None` when fewer than `m` are recorded.
    fn take_recorded(&self, m: usize) -> Option<(Recorded, Tensor)> {
        if self.kept_recorded_rows() < m {
            return None;
        }
        let (mut parts, mut labels, mut left) = (Vec::new(), Vec::new(), m);
        for kept in &self.kept_recorded {
            if left == 0 {
                break;
            }
            let n = left.min(kept.rows.len());
            let (part, part_labels) = kept.first(n);
            parts.push(part);
            labels.push(part_labels);
            left -= n;
        }
        let labels = match labels.as_slice() {
            [one] => one.shallow_clone(),
            _ => Tensor::cat(&labels, 0),
        };
        Some((Recorded::cat(&parts), labels))
    }

    /// Drops the batches scored ahead (the weights changed, or the episode restarts),
    /// counting their rows as discarded.
    fn discard_ahead(&mut self) {
        let m = self.config.batch_size as u64;
        self.discarded_rows += self.ahead.len() as u64 * m;
        self.ahead.clear();
    }

    /// One student update on `update`'s instances; returns its training loss. Their
    /// rows of recorded forwards (with their labels) serve when given; otherwise, when
    /// they are the incoming batch, its gathered rows (and, for students that reuse
    /// forwards, its logits with the graph) serve as they are.
    fn train(
        &mut self,
        update: &Update,
        logits: Option<Tensor>,
        recorded: Option<(Recorded, Tensor)>,
    ) -> Result<f64> {
        // Logical compute: the backward and the step, and a forward of its own only
        // where the student cannot reuse the scoring forward.
        let rows = update.indices.len() as u64;
        self.episode.compute.training += match &self.pooled {
            Some(pooled) => self.flops.update(rows, false) + pooled.flops.per_update,
            None => self.flops.update(rows, self.student.reuses_forward()),
        };
        if let Some((recorded, labels)) = recorded {
            return self.student.train_step_on_recorded(&recorded, &labels);
        }
        // The incoming batch serves as it is unless it holds a proxy's block means.
        let batch = match (
            &self.incoming_batch,
            update.is_incoming && self.pooled.is_none(),
        ) {
            (Some(batch), true) => match logits {
                Some(logits) => return self.student.train_step_on_logits(&logits, &batch.labels),
                None => batch.rows(0, batch.len()),
            },
            _ => self.train.batch(&Tensor::from_slice(&update.indices)),
        };
        // A student that records trains on a fresh recording of the rows (a forward
        // without the graph, then its own backward): the update of `train_step`, bit
        // for bit, without autograd's overhead.
        match self.student.record(&batch) {
            Some(recorded) => self
                .student
                .train_step_on_recorded(&recorded, &batch.labels),
            None => self.student.train_step(&batch, &mut self.episode.noise_rng),
        }
    }
}

/// [`Scoring::Pooled`] as the env runs it: the block side, the proxy's FLOPs, the
/// training images' shape and their block means, pooled once when the env is made.
#[derive(Debug)]
struct PooledScoring {
    k: usize,
    flops: PooledFlops,
    image: [i64; 3],
    means: Tensor,
}

/// Column names and bounds of the feature matrix.
fn feature_layout(
    num_classes: usize,
    text: bool,
    irreducible: bool,
) -> (Vec<String>, Vec<(f32, f32)>) {
    let mut names = Vec::new();
    let mut bounds = Vec::new();
    for c in 0..num_classes {
        names.push(format!("label_{c}"));
        bounds.push((0.0, 1.0));
    }
    if text {
        names.push("sentence_length".into());
        bounds.push((0.0, 1.0));
    }
    if irreducible {
        names.push("irreducible_loss".into());
        bounds.push((0.0, 1.0));
    }
    for name in ["iteration", "average_training_loss", "best_dev_accuracy"] {
        names.push(name.into());
        bounds.push((0.0, 1.0));
    }
    for c in 0..num_classes {
        names.push(format!("prob_{c}"));
        bounds.push((0.0, 1.0));
    }
    names.push("loss".into());
    bounds.push((0.0, 1.0));
    names.push("margin".into());
    bounds.push((-1.0, 1.0));
    (names, bounds)
}

impl Env for TeachingEnv {
    type Observation = TeachingObservation;
    type Action = Array1<bool>;
    type Info = TeachingInfo;
    type ObservationSpace = TeachingObservationSpace;
    type ActionSpace = MultiBinary;

    fn observation_space(&self) -> &TeachingObservationSpace {
        &self.observation_space
    }

    fn action_space(&self) -> &MultiBinary {
        &self.action_space
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<(TeachingObservation, TeachingInfo)> {
        if let Some(seed) = seed {
            self.episode.reseed(seed);
        }
        // A fresh student and a fresh epoch; the streams continue unless re-seeded.
        self.incoming_logits = None;
        self.incoming_recorded = None;
        self.kept_recorded.clear();
        self.ahead.clear();
        self.recent_kept.clear();
        self.discarded_rows = 0;
        self.test_measurement.set(0);
        self.measurement_seconds.set(0.0);
        self.student.reset(&mut self.episode.init_rng)?;
        self.episode.begin();
        let (accuracy, loss) = self.evaluate_dev();
        self.episode.record_evaluation(&self.config, accuracy, loss);
        self.episode.draw_incoming(self.config.batch_size);
        let observation = self.observe_incoming()?;
        Ok((observation, self.info_after(0, true)))
    }

    fn step(
        &mut self,
        keep_mask: &Array1<bool>,
    ) -> Result<Step<TeachingObservation, TeachingInfo>> {
        let m = self.config.batch_size;
        self.episode.check_action(m, keep_mask)?;
        // The recorded logits are valid only until the weights change.
        let logits = self.incoming_logits.take();
        // Buffered rows scored under older weights (leftovers of the last update), then
        // this batch's kept rows, where its forward was recorded.
        let stale = self.episode.buffered() - self.kept_recorded_rows();
        if let Some(source) = self.incoming_recorded.take() {
            self.keep_recorded(source, keep_mask);
        }
        let mut reward = 0.0;
        let mut updates = 0;
        let mut evaluated = false;
        if self.recent_kept.len() == RECENT_STEPS {
            self.recent_kept.pop_front();
        }
        self.recent_kept
            .push_back(keep_mask.iter().filter(|&&keep| keep).count());
        if let Some(update) = self.episode.absorb(m, keep_mask) {
            // The weights change: what was scored ahead, and the kept rows that wait
            // for the next update, are stale.
            self.discard_ahead();
            let recorded = (stale == 0).then(|| self.take_recorded(m)).flatten();
            self.kept_recorded.clear();
            let loss = self.train(&update, logits, recorded)?;
            updates = 1;
            if self.episode.record_update(&self.config, loss)? {
                let (accuracy, loss) = self.evaluate_dev();
                reward += self.episode.record_evaluation(&self.config, accuracy, loss);
                evaluated = true;
            }
        }
        let (terminated, truncated) = self.episode.end_step(&self.config);
        self.episode.draw_incoming(m);
        let observation = self.observe_incoming()?;
        Ok(Step {
            observation,
            reward,
            terminated,
            truncated,
            info: self.info_after(updates, evaluated),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The features as tensor ops (the formulas of the module docs, as the env computed
    /// them before `featurise` assembled rows in Rust), for one batch `[M, |Y|]`.
    fn reference(
        scaling: LossScaling,
        logits: &Tensor,
        labels: &Tensor,
        lengths: Option<(&Tensor, f64)>,
        state: &[f32; 3],
    ) -> Tensor {
        let m = logits.size()[0];
        let c = logits.size()[1];
        let log_probs = logits.log_softmax(-1, Kind::Float);
        let probs = log_probs.exp().clamp(0.0, 1.0);
        let labels = labels.unsqueeze(1);
        let one_hot = probs.zeros_like().scatter_value(1, &labels, 1.0);
        let loss = -log_probs.gather(1, &labels, false);
        let best_other = probs
            .masked_fill(&one_hot.to_kind(Kind::Bool), -1.0)
            .amax([1].as_slice(), true);
        let margin = (probs.gather(1, &labels, false) - best_other).clamp(-1.0, 1.0);
        let loss = match scaling {
            LossScaling::Fixed => (loss / (2.0 * (c as f64).ln())).clamp(0.0, 1.0),
            LossScaling::Rank => {
                let rank = loss
                    .view([-1])
                    .argsort_stable(true, 0, false)
                    .argsort_stable(true, 0, false)
                    .to_kind(Kind::Float);
                (rank / ((m - 1).max(1) as f64)).unsqueeze(1)
            }
        };
        let mut columns = vec![one_hot];
        if let Some((lengths, max)) = lengths {
            columns.push(
                (lengths.to_kind(Kind::Float) / max)
                    .clamp(0.0, 1.0)
                    .unsqueeze(1),
            );
        }
        columns.push(Tensor::from_slice(state).view([1, 3]).expand([m, 3], false));
        columns.extend([probs, loss, margin]);
        Tensor::cat(&columns, 1)
    }

    #[test]
    fn featurise_matches_the_tensor_formulas() {
        tch::manual_seed(3);
        let (b, m, c) = (3i64, 7i64, 4i64);
        let inputs = Tensor::zeros([10, 2], tch::kind::FLOAT_CPU);
        let all_labels = Tensor::from_slice(&[0i64, 1, 2, 3, 0, 1, 2, 3, 0, 1]);
        let text = Dataset::new("text", inputs, all_labels, c as usize)
            .unwrap()
            .with_lengths(Tensor::from_slice(&[5i64; 10]), 40)
            .unwrap();
        // Ties in the logits of batch 0 exercise the rank's tie order.
        let logits = Tensor::randn([b, m, c], tch::kind::FLOAT_CPU) * 3.0;
        logits.get(0).get(1).copy_(&logits.get(0).get(0));
        let labels = Tensor::randint(c, [b, m], tch::kind::INT64_CPU);
        labels.get(0).get(1).copy_(&labels.get(0).get(0));
        let lengths = Tensor::randint_low(1, 60, [b, m], tch::kind::INT64_CPU);
        let states = [[0.1f32, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]];
        for scaling in [LossScaling::Fixed, LossScaling::Rank] {
            let config = TeachingConfig {
                loss_scaling: scaling,
                ..TeachingConfig::default()
            };
            let (names, _) = feature_layout(c as usize, true, false);
            let observations = featurise(
                &config,
                &FeatureLayout::new(names.clone()),
                &text,
                &logits,
                &labels,
                Some(&lengths),
                &[],
                &states,
            )
            .unwrap();
            assert_eq!(observations.len(), b as usize);
            for (i, observation) in observations.iter().enumerate() {
                let i64_i = i as i64;
                let expected = reference(
                    scaling,
                    &logits.get(i64_i),
                    &labels.get(i64_i),
                    Some((&lengths.get(i64_i), 40.0)),
                    &states[i],
                );
                let expected = Vec::<f32>::try_from(expected.view(-1)).unwrap();
                assert_eq!(observation.features.dim(), (m as usize, names.len()));
                for (k, (got, want)) in observation.features.iter().zip(&expected).enumerate() {
                    assert!(
                        (got - want).abs() <= 1e-6,
                        "{scaling:?} batch {i} row {} column {}: {got} vs {want}",
                        k / names.len(),
                        names[k % names.len()]
                    );
                }
                assert_eq!(observation.student_state.to_vec(), states[i].to_vec());
            }
        }
    }
}
