//! The data-teaching MDP of "Learning to Teach" (Fan et al., ICLR 2018), in one file.
//!
//! One step follows one incoming mini-batch from arrival to reward:
//!
//! 1. **Incoming batch.** `M` training instances arrive in a seeded order (epochs of
//!    permutations drawn from the env's data-order stream).
//! 2. **Observation.** The student computes logits for them (no gradient), and each
//!    instance gets one feature row (see [`TeachingEnv::feature_names`]):
//!    - data features: the label one-hot (|Y| columns); for text, the sentence length
//!      divided by the maximum length;
//!    - student features: `iteration` = i / T', `average_training_loss` = the mean
//!      loss of all student updates so far divided by 2 ln|Y| and clipped to [0, 1]
//!      (ln|Y| before the first update, the loss of a uniform guess),
//!      `best_dev_accuracy` in [0, 1];
//!    - combined features: the predicted probability of every class (|Y| columns), the
//!      instance's `loss` -log p_y (divided by 2 ln|Y| and clipped to [0, 1], or its
//!      rank within the batch divided by M-1, see [`LossScaling`]) and the `margin`
//!      p_y - max_{y' != y} p_{y'} in [-1, 1].
//!
//!    For |Y| = 10 that is 10 + 3 + 12 = 25 columns, as in the paper.
//! 3. **Action.** The teacher answers with a keep-mask `a` of length M (`a_m = true`
//!    keeps instance m). Any other length is an error.
//! 4. **Accumulation.** Kept instances join a buffer. While it holds at least M, the
//!    student takes one optimizer step on the oldest M of them and the iteration count
//!    `i` grows by one; leftovers wait for the next batch.
//! 5. **Reward.** Every `eval_every` iterations the student is evaluated on the dev
//!    split D'_dev. The first time its accuracy exceeds the threshold tau, at iteration
//!    `i_tau`, the reward is `r = -ln(i_tau / T')` and the episode terminates; every
//!    other step has reward 0. With several weighted thresholds (RL4Data's variant)
//!    each pays `w_k * -ln(i_k / T')` when first passed, and the episode terminates
//!    when all are passed.
//! 6. **Budgets.** The episode is truncated at T' iterations, or after
//!    `max_incoming_batches` incoming batches, so a teacher that keeps nothing ends too.

use std::collections::VecDeque;

use ndarray::{Array1, Array2};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::data::{Batch, Dataset};
use crate::env::{Env, Step};
use crate::error::{invalid_config, EnvError, Result};
use crate::seeding::{stream_rng, Stream};
use crate::spaces::{BoxSpace, MultiBinary, Space, SpaceError};
use crate::student::Student;

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
    /// Student iterations between two dev evaluations (the resolution of i_tau).
    pub eval_every: usize,
    /// Normalisation of the per-instance loss feature.
    pub loss_scaling: LossScaling,
    /// Instances per forward pass when evaluating on the dev split.
    pub eval_chunk: usize,
    /// Master seed used until `reset(Some(seed))` gives another.
    pub seed: u64,
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
            eval_every: 10,
            loss_scaling: LossScaling::Fixed,
            eval_chunk: 2048,
            seed: 0,
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
        Ok(())
    }
}

/// What the teacher sees for one incoming batch.
#[derive(Debug, Clone, PartialEq)]
pub struct TeachingObservation {
    /// One row per instance of the incoming batch, columns as in
    /// [`TeachingEnv::feature_names`].
    pub features: Array2<f32>,
    /// The student-state features (`iteration`, `average_training_loss`,
    /// `best_dev_accuracy`), also repeated in every row of `features`.
    pub student_state: Array1<f32>,
}

/// The observation space: a bounded box for the feature matrix and one for the
/// student-state vector.
#[derive(Debug, Clone, PartialEq)]
pub struct TeachingObservationSpace {
    /// Box of shape `[M, F]` with per-column bounds.
    pub features: BoxSpace,
    /// Box of shape `[3]` in [0, 1].
    pub student_state: BoxSpace,
}

impl Space<TeachingObservation> for TeachingObservationSpace {
    fn contains(&self, value: &TeachingObservation) -> bool {
        self.features.contains_dyn(&value.features)
            && self.student_state.contains_dyn(&value.student_state)
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    NeedsReset,
    Running,
    Ended,
}

/// The data-teaching environment: a student, its training and dev splits, and the MDP.
pub struct TeachingEnv {
    config: TeachingConfig,
    student: Box<dyn Student>,
    train: Dataset,
    dev: Dataset,
    feature_names: Vec<String>,
    observation_space: TeachingObservationSpace,
    action_space: MultiBinary,
    // Random streams, owned by the env and derived from the master seed.
    order_rng: ChaCha8Rng,
    init_rng: ChaCha8Rng,
    noise_rng: ChaCha8Rng,
    // Episode state.
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
    threshold_iterations: Vec<Option<usize>>,
}

impl std::fmt::Debug for TeachingEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeachingEnv")
            .field("config", &self.config)
            .field("train", &self.train.name())
            .field("dev", &self.dev.name())
            .field("iteration", &self.iteration)
            .finish()
    }
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
        let num_classes = train.num_classes();
        let (feature_names, bounds) = feature_layout(num_classes, train.has_lengths());
        let m = config.batch_size;
        let observation_space = TeachingObservationSpace {
            features: BoxSpace::from_columns(&[m, feature_names.len()], &bounds),
            student_state: BoxSpace::from_columns(&[3], &[(0.0, 1.0); 3]),
        };
        let seed = config.seed;
        let n_thresholds = config.thresholds.len();
        Ok(Self {
            action_space: MultiBinary(m),
            observation_space,
            feature_names,
            order_rng: stream_rng(seed, Stream::DataOrder),
            init_rng: stream_rng(seed, Stream::StudentInit),
            noise_rng: stream_rng(seed, Stream::Dropout),
            phase: Phase::NeedsReset,
            order: (0..train.len() as i64).collect(),
            cursor: train.len(),
            incoming: Vec::with_capacity(m),
            buffer: VecDeque::with_capacity(2 * m),
            iteration: 0,
            incoming_batches: 0,
            instances_seen: 0,
            instances_kept: 0,
            loss_sum: 0.0,
            dev_accuracy: 0.0,
            best_dev_accuracy: 0.0,
            threshold_iterations: vec![None; n_thresholds],
            config,
            student,
            train,
            dev,
        })
    }

    /// The config in force.
    pub fn config(&self) -> &TeachingConfig {
        &self.config
    }

    /// Column names of the feature matrix, in order.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// Index of the feature column called `name` (e.g. `"loss"`, `"margin"`).
    pub fn feature_index(&self, name: &str) -> Option<usize> {
        self.feature_names.iter().position(|n| n == name)
    }

    /// The student being taught.
    pub fn student(&self) -> &dyn Student {
        self.student.as_ref()
    }

    /// The training split the teacher filters.
    pub fn train_data(&self) -> &Dataset {
        &self.train
    }

    /// Accuracy of the current student on any split (e.g. the test split, for reports).
    pub fn evaluate(&self, data: &Dataset) -> Result<f64> {
        self.student.accepts(data)?;
        Ok(self.student.accuracy(data, self.config.eval_chunk))
    }

    /// The info value of the current state.
    pub fn info(&self) -> TeachingInfo {
        self.make_info(0, false)
    }

    fn make_info(&self, updates_this_step: usize, evaluated: bool) -> TeachingInfo {
        let iterations_to_tau = if self.threshold_iterations.iter().all(Option::is_some) {
            self.threshold_iterations.iter().flatten().max().copied()
        } else {
            None
        };
        TeachingInfo {
            iteration: self.iteration,
            effective_instances: self.iteration * self.config.batch_size,
            incoming_batches: self.incoming_batches,
            instances_seen: self.instances_seen,
            instances_kept: self.instances_kept,
            buffered: self.buffer.len(),
            epochs: self.instances_seen as f64 / self.train.len() as f64,
            dev_accuracy: self.dev_accuracy,
            best_dev_accuracy: self.best_dev_accuracy,
            average_training_loss: if self.iteration == 0 {
                f64::NAN
            } else {
                self.loss_sum / self.iteration as f64
            },
            updates_this_step,
            evaluated,
            threshold_iterations: self.threshold_iterations.clone(),
            iterations_to_tau,
        }
    }

    /// The student-state features: iteration / T', normalised average training loss,
    /// best dev accuracy.
    fn student_state(&self) -> [f32; 3] {
        let log_classes = (self.train.num_classes() as f64).ln();
        let average_loss = if self.iteration == 0 {
            log_classes
        } else {
            self.loss_sum / self.iteration as f64
        };
        [
            (self.iteration as f64 / self.config.max_iterations as f64).min(1.0) as f32,
            (average_loss / (2.0 * log_classes)).clamp(0.0, 1.0) as f32,
            self.best_dev_accuracy as f32,
        ]
    }

    /// Draws the next M indices of the seeded data order, starting a new epoch (a new
    /// permutation) whenever the current one is used up.
    fn draw_incoming(&mut self) {
        self.incoming.clear();
        while self.incoming.len() < self.config.batch_size {
            if self.cursor == self.order.len() {
                self.order.shuffle(&mut self.order_rng);
                self.cursor = 0;
            }
            self.incoming.push(self.order[self.cursor]);
            self.cursor += 1;
        }
    }

    /// The observation of the incoming batch: one forward pass of the student, all
    /// features computed as tensors, converted to ndarray once at the end.
    fn observe_incoming(&self) -> Result<TeachingObservation> {
        let batch = self.train.batch(&Tensor::from_slice(&self.incoming));
        let state = self.student_state();
        let features = self.featurise(&batch, &state);
        let (rows, cols) = (self.config.batch_size, self.feature_names.len());
        let flat = Vec::<f32>::try_from(features.contiguous().view(-1))?;
        let features =
            Array2::from_shape_vec((rows, cols), flat).map_err(|e| EnvError::InvalidDataset {
                name: self.train.name().to_string(),
                reason: format!("feature matrix shape: {e}"),
            })?;
        Ok(TeachingObservation {
            features,
            student_state: Array1::from_vec(state.to_vec()),
        })
    }

    /// The feature matrix `[M, F]` of `batch`, in the column order of `feature_layout`.
    fn featurise(&self, batch: &Batch, state: &[f32; 3]) -> Tensor {
        let m = batch.len() as i64;
        let num_classes = self.train.num_classes();
        let log_probs = self.student.logits(batch).log_softmax(-1, Kind::Float);
        let probs = log_probs.exp().clamp(0.0, 1.0);
        let labels = batch.labels.unsqueeze(1);
        let label_one_hot = probs.zeros_like().scatter_value(1, &labels, 1.0);
        // Combined features: loss -log p_y and margin p_y - max_{y' != y} p_{y'}.
        let loss = -log_probs.gather(1, &labels, false);
        let p_label = probs.gather(1, &labels, false);
        let best_other = probs
            .masked_fill(&label_one_hot.to_kind(Kind::Bool), -1.0)
            .amax([1].as_slice(), true);
        let margin = (p_label - best_other).clamp(-1.0, 1.0);
        let loss_feature = match self.config.loss_scaling {
            LossScaling::Fixed => (loss / (2.0 * (num_classes as f64).ln())).clamp(0.0, 1.0),
            LossScaling::Rank => {
                let rank = loss
                    .view([-1])
                    .argsort_stable(true, 0, false)
                    .argsort_stable(true, 0, false)
                    .to_kind(Kind::Float);
                (rank / ((m - 1).max(1) as f64)).unsqueeze(1)
            }
        };
        let student_state = Tensor::from_slice(state).view([1, 3]).expand([m, 3], false);
        let mut columns = vec![label_one_hot];
        if let Some(lengths) = &batch.lengths {
            let max_length = self.train.max_length() as f64;
            columns.push(
                (lengths.to_kind(Kind::Float) / max_length)
                    .clamp(0.0, 1.0)
                    .unsqueeze(1),
            );
        }
        columns.extend([student_state, probs, loss_feature, margin]);
        Tensor::cat(&columns, 1)
    }

    /// Evaluates the dev split and credits every threshold passed for the first time;
    /// returns the reward earned.
    fn evaluate_dev(&mut self) -> f64 {
        self.dev_accuracy = self.student.accuracy(&self.dev, self.config.eval_chunk);
        self.best_dev_accuracy = self.best_dev_accuracy.max(self.dev_accuracy);
        let mut reward = 0.0;
        if self.iteration == 0 {
            return reward;
        }
        let t_prime = self.config.max_iterations as f64;
        for (threshold, reached) in self
            .config
            .thresholds
            .iter()
            .zip(self.threshold_iterations.iter_mut())
        {
            if reached.is_none() && self.dev_accuracy > threshold.accuracy {
                *reached = Some(self.iteration);
                // r = -ln(i_tau / T'): larger when the student is faster.
                reward += threshold.weight * -(self.iteration as f64 / t_prime).ln();
            }
        }
        reward
    }
}

/// Column names and bounds of the feature matrix.
fn feature_layout(num_classes: usize, text: bool) -> (Vec<String>, Vec<(f32, f32)>) {
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
            self.order_rng = stream_rng(seed, Stream::DataOrder);
            self.init_rng = stream_rng(seed, Stream::StudentInit);
            self.noise_rng = stream_rng(seed, Stream::Dropout);
        }
        // A fresh student and a fresh epoch; the streams continue unless re-seeded.
        self.student.reset(&mut self.init_rng)?;
        self.order = (0..self.train.len() as i64).collect();
        self.cursor = self.order.len();
        self.buffer.clear();
        self.iteration = 0;
        self.incoming_batches = 0;
        self.instances_seen = 0;
        self.instances_kept = 0;
        self.loss_sum = 0.0;
        self.best_dev_accuracy = 0.0;
        self.threshold_iterations.iter_mut().for_each(|t| *t = None);
        self.evaluate_dev();
        self.draw_incoming();
        let observation = self.observe_incoming()?;
        self.phase = Phase::Running;
        Ok((observation, self.make_info(0, true)))
    }

    fn step(
        &mut self,
        keep_mask: &Array1<bool>,
    ) -> Result<Step<TeachingObservation, TeachingInfo>> {
        match self.phase {
            Phase::NeedsReset => return Err(EnvError::ResetNeeded),
            Phase::Ended => return Err(EnvError::EpisodeEnded),
            Phase::Running => {}
        }
        let m = self.config.batch_size;
        if keep_mask.len() != m {
            return Err(EnvError::InvalidAction(format!(
                "keep-mask has length {}, the batch size M is {m}",
                keep_mask.len()
            )));
        }
        // Kept instances join the buffer, in arrival order.
        let kept_before = self.buffer.len();
        self.buffer.extend(
            self.incoming
                .iter()
                .zip(keep_mask.iter())
                .filter(|(_, &keep)| keep)
                .map(|(&index, _)| index),
        );
        self.instances_kept += self.buffer.len() - kept_before;
        self.instances_seen += m;
        self.incoming_batches += 1;

        // One optimizer step per M kept instances.
        let mut reward = 0.0;
        let mut updates = 0;
        let mut evaluated = false;
        let mut terminated = false;
        let mut truncated = false;
        let mut train_indices = Vec::with_capacity(m);
        while self.buffer.len() >= m {
            train_indices.clear();
            train_indices.extend(self.buffer.drain(..m));
            let batch = self.train.batch(&Tensor::from_slice(&train_indices));
            let loss = self.student.train_step(&batch, &mut self.noise_rng)?;
            if !loss.is_finite() {
                self.phase = Phase::Ended;
                return Err(EnvError::NonFiniteLoss {
                    iteration: self.iteration + 1,
                    loss,
                });
            }
            self.iteration += 1;
            self.loss_sum += loss;
            updates += 1;
            if self.iteration.is_multiple_of(self.config.eval_every) {
                reward += self.evaluate_dev();
                evaluated = true;
            }
            if self.threshold_iterations.iter().all(Option::is_some) {
                terminated = true;
                break;
            }
            if self.iteration >= self.config.max_iterations {
                truncated = true;
                break;
            }
        }
        if !terminated && self.incoming_batches >= self.config.incoming_batch_budget() {
            truncated = true;
        }
        if terminated || truncated {
            self.phase = Phase::Ended;
        }
        self.draw_incoming();
        let observation = self.observe_incoming()?;
        Ok(Step {
            observation,
            reward,
            terminated,
            truncated,
            info: self.make_info(updates, evaluated),
        })
    }
}
