//! Students: the models a teacher teaches.
//!
//! A student owns its network, its optimizer and its schedule. The environment asks
//! it for logits on an incoming batch (no gradient, evaluation mode) to compute the
//! state features, for one optimizer step on exactly M kept instances, and for its
//! accuracy on the dev split. Students whose training forward equals their evaluation
//! forward (the MLP, the CNN) may instead record the observation's forward and train on it
//! ([`Student::reuses_forward`]). Weights are initialised from the environment's own
//! random stream, never from libtorch's global generator.

/// The [`Student`] methods of a plain feed-forward student (the MLP, the CNN): weights
/// drawn from the env's stream with PyTorch's default rule, one optimizer step on the
/// cross-entropy of its `forward`, and, with no dropout, batch norm or augmentation, the
/// observation's forward reused for training. Written once here; the struct needs the
/// fields `vs`, `optimizer` (a [`adam::StudentOptimizer`]) and `config.optimizer`, and
/// a method `forward(&self, &Tensor) -> Tensor`.
macro_rules! feed_forward_student_methods {
    () => {
        fn reset(&mut self, init_rng: &mut ChaCha8Rng) -> Result<()> {
            let vs = &self.vs;
            init_from_stream(vs, init_rng, |name, shape| {
                torch_default_init(name, shape, vs)
            });
            self.optimizer.reset(&self.config.optimizer, &self.vs)?;
            Ok(())
        }

        fn logits(&self, batch: &Batch) -> Tensor {
            tch::no_grad(|| self.forward(&batch.inputs))
        }

        fn train_step(&mut self, batch: &Batch, _noise_rng: &mut ChaCha8Rng) -> Result<f64> {
            let logits = self.forward(&batch.inputs);
            self.train_step_on_logits(&logits, &batch.labels)
        }

        /// True: no dropout, no batch norm, no augmentation, so the observation's
        /// forward is the training forward.
        fn reuses_forward(&self) -> bool {
            true
        }

        /// True: a row's logits are a function of that row alone (no batch statistics,
        /// no padding), bitwise at the batch sizes the env scores (tested).
        fn scores_rows_independently(&self) -> bool {
            true
        }

        fn logits_for_training(&self, batch: &Batch) -> Tensor {
            self.forward(&batch.inputs)
        }

        fn train_step_on_logits(&mut self, logits: &Tensor, labels: &Tensor) -> Result<f64> {
            let loss = logits.cross_entropy_for_logits(labels);
            self.optimizer.backward_step(&loss, None)?;
            Ok(loss.double_value(&[]))
        }
    };
}

pub mod adam;
pub mod cnn;
pub mod lstm;
pub mod mlp;
pub mod resnet;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

use crate::data::{Batch, Dataset};
use crate::error::{invalid_config, EnvError, Result};

pub use adam::{clip_grad_norm, named_trainable_in_name_order, Adam, AdamState};
pub use cnn::{CnnConfig, CnnStudent};
pub use lstm::{LstmConfig, LstmStudent};
pub use mlp::{MlpConfig, MlpStudent};
pub use resnet::{ResNetConfig, ResNetStudent, Shortcut};

/// The floating-point operations of a student's work, counted from its architecture
/// (what the compute columns of every result are made of).
///
/// - forward, per row: 2 per multiply-add of the weighted layers (linear, convolution,
///   LSTM gates) and 1 per bias addition; activations, normalisations, pooling and the
///   loss are left out (a few percent of the total);
/// - backward, per row: twice the forward (the gradients of the weights and of the
///   layers' inputs: the forward-2N, backward-4N rule);
/// - optimizer step: [`OptimizerConfig::flops_per_parameter`] per trainable scalar.
///
/// The LSTM's forward is counted at the split's padded length (`input_shape[0]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StudentFlops {
    /// One row's forward pass.
    pub forward_per_row: u64,
    /// One row's backward pass.
    pub backward_per_row: u64,
    /// One optimizer step.
    pub optimizer_step: u64,
}

impl StudentFlops {
    /// The counts of a student whose forward costs `forward_per_row`, with
    /// `parameters` trainable scalars updated by `optimizer`.
    pub fn new(forward_per_row: u64, parameters: usize, optimizer: &OptimizerConfig) -> Self {
        Self {
            forward_per_row,
            backward_per_row: 2 * forward_per_row,
            optimizer_step: parameters as u64 * optimizer.flops_per_parameter(),
        }
    }

    /// The forward of `rows` rows.
    pub fn forward(&self, rows: u64) -> u64 {
        rows * self.forward_per_row
    }

    /// One update on `rows` rows: their backward and the optimizer step, and their
    /// forward unless the student `reuses_forward` (the scoring forward's graph).
    pub fn update(&self, rows: u64, reuses_forward: bool) -> u64 {
        let forward = if reuses_forward {
            0
        } else {
            self.forward(rows)
        };
        rows * self.backward_per_row + forward + self.optimizer_step
    }
}

/// The FLOPs of a student's pooled proxy ([`Student::pooled_flops`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PooledFlops {
    /// One row's proxy forward.
    pub forward_per_row: u64,
    /// The block sums of the first layer's weights, once per weight change (update).
    pub per_update: u64,
}

/// FLOPs of a dense layer of `inputs` x `outputs` with a bias, per row.
pub(crate) fn linear_flops(inputs: usize, outputs: usize) -> u64 {
    (2 * inputs * outputs + outputs) as u64
}

/// A scoring forward kept so that an update on its rows needs only the backward: the
/// input of every weighted layer and, last, the logits, row `i` of each being instance
/// `i` of the scored batch ([`Student::record`], [`Student::train_step_on_recorded`]).
///
/// This is selective backprop's reuse (Jiang et al., 2019): a teacher that keeps a few
/// rows of many incoming batches trains on the activations computed when it scored
/// them, as long as the weights have not changed since.
#[derive(Debug)]
pub struct Recorded(Vec<Tensor>);

impl Recorded {
    /// The recorded tensors, rows first (layer inputs, then the logits).
    pub fn new(tensors: Vec<Tensor>) -> Self {
        Self(tensors)
    }

    /// The layer inputs and the logits, in forward order.
    pub fn tensors(&self) -> &[Tensor] {
        &self.0
    }

    /// The logits `[n, |Y|]` (the last tensor), as [`Student::logits`] gives them.
    pub fn logits(&self) -> Option<&Tensor> {
        self.0.last()
    }

    /// The rows `start..start + len`, a view (no copy).
    pub fn narrow(&self, start: i64, len: i64) -> Self {
        Self(self.0.iter().map(|t| t.narrow(0, start, len)).collect())
    }

    /// The rows at `index` (an int64 tensor), gathered.
    pub fn select(&self, index: &Tensor) -> Self {
        Self(self.0.iter().map(|t| t.index_select(0, index)).collect())
    }

    /// The rows of `parts` one after another; `parts` must record the same student.
    pub fn cat(parts: &[Recorded]) -> Self {
        match parts {
            [one] => one.shallow_clone(),
            _ => {
                let width = parts.first().map_or(0, |p| p.0.len());
                Self(
                    (0..width)
                        .map(|k| Tensor::cat(&parts.iter().map(|p| &p.0[k]).collect::<Vec<_>>(), 0))
                        .collect(),
                )
            }
        }
    }

    /// The same tensors, shared (no copy).
    pub fn shallow_clone(&self) -> Self {
        Self(self.0.iter().map(Tensor::shallow_clone).collect())
    }
}

/// A model trained by mini-batch gradient steps on the instances a teacher keeps.
pub trait Student {
    /// Number of classes the student predicts.
    fn num_classes(&self) -> usize;
    /// Number of trainable scalars.
    fn num_parameters(&self) -> usize;
    /// The FLOPs of its forward and backward per row of `data` and of one optimizer
    /// step ([`StudentFlops`]).
    fn flops(&self, data: &Dataset) -> StudentFlops;
    /// Checks that the student can read `data` (input shape, classes).
    fn accepts(&self, data: &Dataset) -> Result<()>;
    /// Re-initialises the weights from `init_rng` and forgets the optimizer state and
    /// schedule: a fresh student.
    fn reset(&mut self, init_rng: &mut ChaCha8Rng) -> Result<()>;
    /// Logits `[n, |Y|]` in evaluation mode, without recording gradients.
    fn logits(&self, batch: &Batch) -> Tensor;
    /// One optimizer step on `batch`; returns the mean training loss of the batch
    /// before the step. `noise_rng` drives dropout and any other training noise.
    fn train_step(&mut self, batch: &Batch, noise_rng: &mut ChaCha8Rng) -> Result<f64>;

    /// Whether a forward pass made for the observation may also serve the training
    /// step on the same instances: true only for students whose training-mode forward
    /// equals their evaluation-mode forward (no dropout, no batch norm, no
    /// augmentation). The environment then asks for [`Student::logits_for_training`]
    /// instead of [`Student::logits`] and, when the observed batch becomes the next
    /// training batch before the weights change, calls
    /// [`Student::train_step_on_logits`] on those logits: one forward pass less per
    /// update. Default: false (the ResNet and the LSTM train differently from how they
    /// evaluate).
    fn reuses_forward(&self) -> bool {
        false
    }

    /// Whether [`Student::logits`] of a row depends on that row alone, bitwise, whatever
    /// the other rows of its batch: then the environment may score several incoming
    /// batches in one forward while the weights do not change ([`TeachingEnv`]'s score
    /// ahead) and the observations stay exactly those of one batch at a time. False
    /// (the default) for students whose evaluation pads to the longest row (the LSTM)
    /// or whose kernels are not checked for it (the ResNet).
    ///
    /// [`TeachingEnv`]: crate::TeachingEnv
    fn scores_rows_independently(&self) -> bool {
        false
    }

    /// Logits `[n, |Y|]` with the autograd graph recorded, for a later
    /// [`Student::train_step_on_logits`]; their values equal [`Student::logits`].
    /// Only meaningful when [`Student::reuses_forward`] is true; the default returns
    /// the no-grad logits.
    fn logits_for_training(&self, batch: &Batch) -> Tensor {
        self.logits(batch)
    }

    /// One optimizer step on the cross-entropy of `logits` (from
    /// [`Student::logits_for_training`], computed under the current weights) against
    /// `labels`: the same update as [`Student::train_step`] on that batch, without its
    /// forward pass. Returns the mean training loss before the step. Students that do
    /// not reuse forwards return [`EnvError::Unsupported`].
    fn train_step_on_logits(&mut self, logits: &Tensor, labels: &Tensor) -> Result<f64> {
        let _ = (logits, labels);
        Err(EnvError::Unsupported(
            "train_step_on_logits on a student whose reuses_forward() is false".into(),
        ))
    }

    /// [`Student::logits`] of `batch` together with what an update on any of its rows
    /// needs to skip its own forward ([`Recorded`]), computed without the autograd
    /// graph; `None` (the default) for students without a backward of their own. The
    /// environment records every scoring forward of a student that does, and trains on
    /// the kept rows with [`Student::train_step_on_recorded`] while the weights have not
    /// changed since they were scored.
    fn record(&self, batch: &Batch) -> Option<Recorded> {
        let _ = batch;
        None
    }

    /// One optimizer step on the cross-entropy of recorded rows (from
    /// [`Student::record`] under the current weights, selected and concatenated)
    /// against `labels`: the same update as [`Student::train_step`] on those instances,
    /// without its forward pass. Returns the mean training loss before the step.
    /// Students that do not record return [`EnvError::Unsupported`].
    fn train_step_on_recorded(&mut self, recorded: &Recorded, labels: &Tensor) -> Result<f64> {
        let _ = (recorded, labels);
        Err(EnvError::Unsupported(
            "train_step_on_recorded on a student whose record() is None".into(),
        ))
    }

    /// The FLOPs of [`Student::pooled_logits`] on `data` with blocks of `k x k` pixels
    /// ([`crate::Scoring::Pooled`]), counted as [`StudentFlops`] counts. An error names
    /// `scoring` where the student or the data cannot be pooled; the default refuses:
    /// only the MLP shares its first layer with a pooled proxy.
    fn pooled_flops(&self, data: &Dataset, k: usize) -> Result<PooledFlops> {
        let _ = (data, k);
        Err(invalid_config(
            "scoring",
            "a pooled proxy needs an MLP student on images",
        ))
    }

    /// Logits `[n, |Y|]` of the pooled proxy of this student, without gradient, from
    /// `means`, the `k x k` block means of images of shape `image` = `[C, H, W]`
    /// ([`crate::data::transform::block_means`], `[n, C (H/k) (W/k)]`): through the
    /// first layer with its weights summed over the same blocks, then the rest of the
    /// network. Students without one return [`EnvError::Unsupported`].
    fn pooled_logits(&self, means: &Tensor, image: [i64; 3], k: usize) -> Result<Tensor> {
        let _ = (means, image, k);
        Err(EnvError::Unsupported(
            "pooled_logits on a student without a pooled proxy".into(),
        ))
    }

    /// Accuracy and mean cross-entropy loss (nats) on `data`, evaluated in chunks of
    /// `chunk` instances.
    fn accuracy_and_loss(&self, data: &Dataset, chunk: usize) -> (f64, f64) {
        let n = data.len();
        let chunk = chunk.max(1);
        let (mut correct, mut loss_sum) = (0i64, 0f64);
        let mut start = 0;
        while start < n {
            let len = chunk.min(n - start);
            let batch = data.slice(start, len);
            let logits = self.logits(&batch);
            correct += logits
                .argmax(-1, false)
                .eq_tensor(&batch.labels)
                .sum(Kind::Int64)
                .int64_value(&[]);
            loss_sum += logits
                .cross_entropy_loss::<Tensor>(&batch.labels, None, tch::Reduction::Sum, -100, 0.0)
                .double_value(&[]);
            start += len;
        }
        (correct as f64 / n as f64, loss_sum / n as f64)
    }

    /// Accuracy on `data`, evaluated in chunks of `chunk` instances.
    fn accuracy(&self, data: &Dataset, chunk: usize) -> f64 {
        let n = data.len();
        let chunk = chunk.max(1);
        let mut correct = 0i64;
        let mut start = 0;
        while start < n {
            let len = chunk.min(n - start);
            let batch = data.slice(start, len);
            let predicted = self.logits(&batch).argmax(-1, false);
            correct += predicted
                .eq_tensor(&batch.labels)
                .sum(Kind::Int64)
                .int64_value(&[]);
            start += len;
        }
        correct as f64 / n as f64
    }
}

/// Checks that `data` has the `num_classes` classes the `model` predicts.
pub(crate) fn check_num_classes(data: &Dataset, num_classes: usize, model: &str) -> Result<()> {
    if data.num_classes() != num_classes {
        return Err(EnvError::InvalidDataset {
            name: data.name().to_string(),
            reason: format!(
                "{} classes, the {model} predicts {num_classes}",
                data.num_classes()
            ),
        });
    }
    Ok(())
}

/// The optimizer of a student, with the paper's choices as presets: Adam for the MLP
/// and LSTM, momentum SGD with weight decay and step decays for the ResNets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// Adam (Kingma & Ba).
    Adam {
        /// Learning rate.
        learning_rate: f64,
        /// L2 weight decay.
        #[serde(default)]
        weight_decay: f64,
    },
    /// SGD with momentum and step decays of the learning rate.
    Sgd {
        /// Initial learning rate.
        learning_rate: f64,
        /// Momentum factor.
        momentum: f64,
        /// L2 weight decay.
        weight_decay: f64,
        /// Student iterations at which the learning rate is multiplied by `decay`.
        #[serde(default)]
        milestones: Vec<usize>,
        /// Factor applied at each milestone.
        #[serde(default = "default_decay")]
        decay: f64,
    },
}

impl OptimizerConfig {
    /// FLOPs of one step per trainable scalar. Adam: 3 for the first moment
    /// (b1 m + (1 - b1) g), 4 for the second (b2 v + (1 - b2) g^2), 5 for the update
    /// (p - lr m / (sqrt(v) + eps)); SGD with momentum: 2 for the buffer (mu b + g), 2
    /// for the update; an L2 weight decay adds 2 (g + wd p).
    pub fn flops_per_parameter(&self) -> u64 {
        let (base, decay) = match self {
            Self::Adam { weight_decay, .. } => (12, *weight_decay),
            Self::Sgd { weight_decay, .. } => (4, *weight_decay),
        };
        base + if decay != 0.0 { 2 } else { 0 }
    }
}

fn default_decay() -> f64 {
    0.1
}

impl OptimizerConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        let lr = match self {
            Self::Adam { learning_rate, .. } | Self::Sgd { learning_rate, .. } => *learning_rate,
        };
        if !(lr.is_finite() && lr > 0.0) {
            return Err(invalid_config(
                "optimizer.learning_rate",
                format!("{lr} must be positive"),
            ));
        }
        Ok(())
    }

    /// Builds the optimizer over `vs`.
    pub fn build(&self, vs: &nn::VarStore) -> Result<nn::Optimizer> {
        use nn::OptimizerConfig as _;
        let mut opt = match self {
            Self::Adam {
                learning_rate,
                weight_decay,
            } => nn::Adam {
                wd: *weight_decay,
                ..Default::default()
            }
            .build(vs, *learning_rate)?,
            Self::Sgd {
                learning_rate,
                momentum,
                weight_decay,
                ..
            } => nn::Sgd {
                momentum: *momentum,
                wd: *weight_decay,
                ..Default::default()
            }
            .build(vs, *learning_rate)?,
        };
        opt.set_lr(self.learning_rate_at(0));
        Ok(opt)
    }

    /// The learning rate after `iteration` completed steps (step decays for SGD).
    pub fn learning_rate_at(&self, iteration: usize) -> f64 {
        match self {
            Self::Adam { learning_rate, .. } => *learning_rate,
            Self::Sgd {
                learning_rate,
                milestones,
                decay,
                ..
            } => {
                let passed = milestones.iter().filter(|&&m| iteration >= m).count();
                learning_rate * decay.powi(passed as i32)
            }
        }
    }
}

/// How one parameter tensor is initialised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Uniform in `[-bound, bound]`.
    Uniform(f64),
    /// Normal with mean 0 and this standard deviation.
    Normal(f64),
    /// Every element equal to this value.
    Constant(f64),
}

/// Fan-in of a weight of `shape` (`[out, in, k...]`): `in * prod(k)`.
pub fn fan_in(shape: &[i64]) -> i64 {
    shape.iter().skip(1).product::<i64>().max(1)
}

/// PyTorch's default for linear, convolution and recurrent layers: weights and biases
/// uniform in `±1/sqrt(fan_in)` of the layer's weight. `weight_shape_of` maps a bias
/// name to its weight's shape.
pub fn torch_default_init(name: &str, shape: &[i64], vs: &nn::VarStore) -> Init {
    let fan = if shape.len() >= 2 {
        fan_in(shape)
    } else {
        let weight_name = name
            .rsplit_once('.')
            .map(|(prefix, _)| format!("{prefix}.weight"));
        let variables = vs.variables();
        weight_name
            .and_then(|w| variables.get(&w).map(|t| fan_in(&t.size())))
            .unwrap_or(shape.first().copied().unwrap_or(1))
    };
    Init::Uniform(1.0 / (fan as f64).sqrt())
}

/// Re-initialises every variable of `vs` in name order from `rng`, with the rule
/// `init(name, shape)`. Name order makes the result independent of hash-map order.
pub fn init_from_stream(
    vs: &nn::VarStore,
    rng: &mut ChaCha8Rng,
    mut init: impl FnMut(&str, &[i64]) -> Init,
) {
    let variables = vs.variables();
    let mut names: Vec<&String> = variables.keys().collect();
    names.sort();
    for name in names {
        let mut tensor = variables[name].shallow_clone();
        let shape = tensor.size();
        let numel: i64 = shape.iter().product();
        let values: Vec<f32> = match init(name, &shape) {
            Init::Uniform(bound) => (0..numel)
                .map(|_| rng.gen_range(-bound..=bound) as f32)
                .collect(),
            Init::Normal(std) => (0..numel)
                .map(|_| {
                    let z: f64 = StandardNormal.sample(rng);
                    (std * z) as f32
                })
                .collect(),
            Init::Constant(value) => vec![value as f32; numel as usize],
        };
        let source = Tensor::from_slice(&values)
            .view(shape.as_slice())
            .to_device(tensor.device())
            .to_kind(tensor.kind());
        tch::no_grad(|| {
            tensor.copy_(&source);
        });
    }
}

/// Number of scalars in the trainable variables of `vs`.
pub fn count_parameters(vs: &nn::VarStore) -> usize {
    vs.trainable_variables().iter().map(|t| t.numel()).sum()
}

/// Any of the built-in students, by name in configs (`kind = "mlp" | "cnn" | "res_net" |
/// "lstm"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StudentConfig {
    /// The MLP of the MNIST task.
    Mlp(MlpConfig),
    /// The small CNN of the Fashion-MNIST transfer.
    Cnn(CnnConfig),
    /// The CIFAR ResNet-6n+2.
    ResNet(ResNetConfig),
    /// The LSTM text classifier.
    Lstm(LstmConfig),
}

impl StudentConfig {
    /// Builds the student on `device`; its weights are set by the env's `reset`.
    pub fn build(&self, device: tch::Device) -> Result<Box<dyn Student>> {
        Ok(match self {
            Self::Mlp(config) => Box::new(MlpStudent::new(config.clone(), device)?),
            Self::Cnn(config) => Box::new(CnnStudent::new(config.clone(), device)?),
            Self::ResNet(config) => Box::new(ResNetStudent::new(config.clone(), device)?),
            Self::Lstm(config) => Box::new(LstmStudent::new(config.clone(), device)?),
        })
    }
}

#[cfg(test)]
mod flops_tests {
    use super::*;
    use tch::Device;

    /// A dataset of `n` rows of `shape` (zeros) with 2 classes, for the FLOP counts that
    /// read the input shape.
    fn rows(shape: &[i64], kind: Kind) -> Dataset {
        let mut size = vec![2];
        size.extend_from_slice(shape);
        let inputs = Tensor::zeros(size.as_slice(), (kind, Device::Cpu));
        Dataset::new("rows", inputs, Tensor::from_slice(&[0i64, 1]), 10).unwrap()
    }

    fn adam() -> OptimizerConfig {
        OptimizerConfig::Adam {
            learning_rate: 1e-3,
            weight_decay: 0.0,
        }
    }

    #[test]
    fn mlp_counts_its_dense_layers() {
        // 784-500-10: 2*784*500 + 500 + 2*500*10 + 10.
        let mlp = MlpStudent::new(MlpConfig::mnist(), Device::Cpu).unwrap();
        let flops = mlp.flops(&rows(&[784], Kind::Float));
        assert_eq!(flops.forward_per_row, 794_510);
        assert_eq!(flops.backward_per_row, 2 * 794_510);
        // 397,510 parameters, 12 FLOPs each for Adam.
        assert_eq!(mlp.num_parameters(), 397_510);
        assert_eq!(flops.optimizer_step, 12 * 397_510);
    }

    #[test]
    fn cnn_counts_its_convolutions_at_their_output_sizes() {
        // conv 5x5/2 1->8 at 14x14: 1568 outputs x (2*25*1 + 1); conv 5x5/2 8->16 at
        // 7x7: 784 x (2*25*8 + 1); linear 784->10: 2*7840 + 10.
        let cnn = CnnStudent::new(CnnConfig::fashion_mnist(), Device::Cpu).unwrap();
        let flops = cnn.flops(&rows(&[1, 28, 28], Kind::Float));
        assert_eq!(flops.forward_per_row, 1568 * 51 + 784 * 401 + 15_690);
    }

    #[test]
    fn resnet20_counts_about_41_million_multiply_adds() {
        // Stem 2*9*3*16*32*32; stage 1: 6 convs 16->16 at 32x32; stages 2 and 3: a
        // strided conv c->2c, then 5 convs 2c->2c at half the side; fc 64->10.
        let resnet = ResNetStudent::new(ResNetConfig::cifar(20), Device::Cpu).unwrap();
        let flops = resnet.flops(&rows(&[3, 32, 32], Kind::Float));
        let stage = 2_359_296 + 5 * 4_718_592;
        assert_eq!(
            flops.forward_per_row,
            884_736 + 6 * 4_718_592 + 2 * stage + 1_290
        );
        // SGD with momentum and weight decay: 6 per parameter.
        assert_eq!(flops.optimizer_step, 6 * resnet.num_parameters() as u64);
    }

    #[test]
    fn lstm_counts_its_gates_at_every_position() {
        // e = 4, h = 3, T = 5: per position 2*4*3*(4+3) + 2*4*3 = 192; fc 3->2: 14.
        let config = LstmConfig {
            vocab_size: 10,
            embed_dim: 4,
            hidden_size: 3,
            num_classes: 2,
            dropout: 0.0,
            grad_clip_norm: None,
            optimizer: adam(),
        };
        let lstm = LstmStudent::new(config, Device::Cpu).unwrap();
        let flops = lstm.flops(&rows(&[5], Kind::Int64));
        assert_eq!(flops.forward_per_row, 5 * 192 + 14);
    }
}
