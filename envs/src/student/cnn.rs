//! A small convolutional student for 1x28x28 images (Fashion-MNIST, MNIST): the
//! CPU-sized stand-in for the paper's second architecture, so that a teacher trained
//! on the MLP ([`super::mlp`]) can be measured teaching a different network on the
//! same data (the paper's ResNet-32 to ResNet-110 transfer, in small).
//!
//! Architecture ([`CnnConfig::fashion_mnist`], an all-convolutional LeNet: strided
//! convolutions in place of pooling, as Springenberg et al. 2015):
//!
//! - `conv0`: 5x5 convolution 1 -> 8 channels, stride 2, zero padding 2 (28x28 ->
//!   14x14), ReLU;
//! - `conv1`: 5x5 convolution 8 -> 16 channels, stride 2, zero padding 2 (-> 7x7), ReLU;
//! - flattened (16 * 7 * 7 = 784), then `fc0`: linear 784 -> 10.
//!
//! 11,274 parameters, against the MLP's 397,510: a network with a different inductive
//! bias (local, weight-shared filters) and a different learning curve, with less
//! arithmetic per image (~0.20M multiply-adds against the MLP's ~0.40M), so that one
//! training step on M = 20 images and one dev evaluation cost about what the MLP's do
//! on one CPU thread (`cnn_step_time` below measures both). Strided convolutions, not
//! the classic LeNet's 2x2 max-pooling: libtorch's CPU max-pool over the first block's
//! 8x24x24 maps cost 2 to 3 times the two convolutions together, and made a dev
//! evaluation cost 8 to 10 times the MLP's. Without batch norm or dropout the
//! training forward equals the evaluation forward, so the student reuses the
//! observation's forward ([`Student::reuses_forward`]), like the MLP.
//!
//! Weights are drawn from the environment's stream by [`init_from_stream`] with
//! PyTorch's default rule for convolutions and linear layers ([`torch_default_init`]:
//! uniform in `±1/sqrt(fan_in)`), never from libtorch's global generator; trained with
//! the workspace's [`super::adam::Adam`] (lr 1e-3, as the MLP).

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, Device, Kind, Tensor};

use super::adam::StudentOptimizer;
use super::{
    check_num_classes, count_parameters, init_from_stream, linear_flops, torch_default_init,
    OptimizerConfig, Student, StudentFlops,
};
use crate::data::{Batch, Dataset};
use crate::error::{invalid_config, EnvError, Result};

/// Architecture and optimizer of a convolutional student: blocks of a `kernel_size`
/// convolution with stride 2 and zero padding `kernel_size / 2` (each halves the
/// feature map, rounding up) and ReLU, one per entry of `channels`; then fully
/// connected ReLU layers of widths `hidden`, and a linear layer to the classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CnnConfig {
    /// Shape of one input image, `[channels, height, width]` (Fashion-MNIST: `[1, 28, 28]`).
    pub input_shape: [usize; 3],
    /// Output channels of the convolution blocks, in order (the preset: `[8, 16]`).
    pub channels: Vec<usize>,
    /// Side of the square convolution kernels, odd (the preset: 5).
    pub kernel_size: usize,
    /// Widths of the fully connected ReLU layers after the convolutions (the preset:
    /// none).
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Number of classes.
    pub num_classes: usize,
    /// The optimizer (the preset: Adam, as the MLP).
    pub optimizer: OptimizerConfig,
}

impl CnnConfig {
    /// The Fashion-MNIST CNN of the module documentation: conv 5x5/2 1->8; conv 5x5/2
    /// 8->16; linear 784->10; Adam with learning rate 1e-3.
    pub fn fashion_mnist() -> Self {
        Self {
            input_shape: [1, 28, 28],
            channels: vec![8, 16],
            kernel_size: 5,
            hidden: Vec::new(),
            num_classes: 10,
            optimizer: OptimizerConfig::Adam {
                learning_rate: 1e-3,
                weight_decay: 0.0,
            },
        }
    }

    /// The height and width of the feature map after each convolution block, in order:
    /// each block halves them, rounding up (an odd kernel with padding `k / 2` and
    /// stride 2).
    pub fn feature_map_sizes(&self) -> Vec<[usize; 2]> {
        let mut size = [self.input_shape[1], self.input_shape[2]];
        self.channels
            .iter()
            .map(|_| {
                size = size.map(|s| s.div_ceil(2));
                size
            })
            .collect()
    }

    /// Inputs of the first fully connected layer: the last block's channels times its
    /// feature map's area (the input's size without convolution blocks).
    pub fn flattened_width(&self) -> usize {
        let channels = self.channels.last().copied().unwrap_or(self.input_shape[0]);
        let size = self
            .feature_map_sizes()
            .last()
            .copied()
            .unwrap_or([self.input_shape[1], self.input_shape[2]]);
        channels * size[0] * size[1]
    }

    /// The number of trainable scalars of this architecture.
    pub fn parameter_count(&self) -> u128 {
        let k = self.kernel_size as u128;
        let mut count = 0u128;
        let mut in_channels = self.input_shape[0] as u128;
        for &c in &self.channels {
            let c = c as u128;
            count += c * in_channels * k * k + c;
            in_channels = c;
        }
        let mut width = self.flattened_width() as u128;
        for &h in self.hidden.iter().chain(std::iter::once(&self.num_classes)) {
            count += width * h as u128 + h as u128;
            width = h as u128;
        }
        count
    }

    /// Checks the shapes and the optimizer, and that the weights, their gradients and
    /// the optimizer's moments fit in memory; the error names the field.
    pub fn validate(&self) -> Result<()> {
        if self.input_shape.contains(&0) {
            return Err(invalid_config(
                "student.input_shape",
                format!("{:?} must be positive", self.input_shape),
            ));
        }
        if self.channels.is_empty() {
            return Err(invalid_config(
                "student.channels",
                "needs at least one convolution block",
            ));
        }
        if self.channels.contains(&0) {
            return Err(invalid_config(
                "student.channels",
                "channel counts must be positive",
            ));
        }
        if self.kernel_size.is_multiple_of(2) {
            return Err(invalid_config(
                "student.kernel_size",
                format!(
                    "{} must be odd (padding kernel_size / 2 on each side)",
                    self.kernel_size
                ),
            ));
        }
        if self.hidden.contains(&0) {
            return Err(invalid_config("student.hidden", "widths must be positive"));
        }
        if self.num_classes < 2 {
            return Err(invalid_config("student.num_classes", "must be at least 2"));
        }
        // Weights, their gradients and the optimizer's two moments, as f32.
        crate::memory::ensure_fits(
            "student.channels",
            "the CNN's weights, gradients and optimizer state",
            self.parameter_count() * 16,
        )?;
        self.optimizer.validate()
    }
}

/// A small CNN (see the module documentation), trained with cross-entropy.
pub struct CnnStudent {
    config: CnnConfig,
    vs: nn::VarStore,
    convs: Vec<nn::Conv2D>,
    linears: Vec<nn::Linear>,
    optimizer: StudentOptimizer,
}

impl std::fmt::Debug for CnnStudent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CnnStudent")
            .field("config", &self.config)
            .finish()
    }
}

impl CnnStudent {
    /// Builds the network on `device`. Weights are placeholders until [`Student::reset`].
    pub fn new(config: CnnConfig, device: Device) -> Result<Self> {
        config.validate()?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let k = config.kernel_size as i64;
        let mut in_channels = config.input_shape[0] as i64;
        let mut convs = Vec::with_capacity(config.channels.len());
        for (i, &c) in config.channels.iter().enumerate() {
            convs.push(nn::conv2d(
                &root / format!("conv{i}"),
                in_channels,
                c as i64,
                k,
                nn::ConvConfig {
                    stride: 2,
                    padding: k / 2,
                    ..Default::default()
                },
            ));
            in_channels = c as i64;
        }
        let mut width = config.flattened_width() as i64;
        let mut linears = Vec::with_capacity(config.hidden.len() + 1);
        for (i, &h) in config
            .hidden
            .iter()
            .chain(std::iter::once(&config.num_classes))
            .enumerate()
        {
            linears.push(nn::linear(
                &root / format!("fc{i}"),
                width,
                h as i64,
                Default::default(),
            ));
            width = h as i64;
        }
        let optimizer = StudentOptimizer::build(&config.optimizer, &vs)?;
        Ok(Self {
            config,
            vs,
            convs,
            linears,
            optimizer,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CnnConfig {
        &self.config
    }

    /// The forward pass, recording gradients unless the caller disabled them.
    fn forward(&self, inputs: &Tensor) -> Tensor {
        let mut x = inputs.to_kind(Kind::Float);
        for conv in &self.convs {
            x = conv.forward(&x).relu();
        }
        x = x.flatten(1, -1);
        let last = self.linears.len() - 1;
        for (i, layer) in self.linears.iter().enumerate() {
            x = layer.forward(&x);
            if i < last {
                x = x.relu();
            }
        }
        x
    }
}

impl Student for CnnStudent {
    fn num_classes(&self) -> usize {
        self.config.num_classes
    }

    fn num_parameters(&self) -> usize {
        count_parameters(&self.vs)
    }

    /// Each convolution (k x k x c_in multiply-adds and a bias per output value, at the
    /// block's output size), then the dense layers.
    fn flops(&self, _data: &Dataset) -> StudentFlops {
        let config = &self.config;
        let k = config.kernel_size;
        let mut forward = 0u64;
        let mut in_channels = config.input_shape[0];
        for (&c, size) in config.channels.iter().zip(config.feature_map_sizes()) {
            let outputs = (c * size[0] * size[1]) as u64;
            forward += outputs * (2 * k * k * in_channels) as u64 + outputs;
            in_channels = c;
        }
        let mut width = config.flattened_width();
        for &h in config
            .hidden
            .iter()
            .chain(std::iter::once(&config.num_classes))
        {
            forward += linear_flops(width, h);
            width = h;
        }
        StudentFlops::new(forward, self.num_parameters(), &config.optimizer)
    }

    fn accepts(&self, data: &Dataset) -> Result<()> {
        let shape = data.input_shape();
        let expected: Vec<i64> = self.config.input_shape.iter().map(|&d| d as i64).collect();
        if shape != expected {
            return Err(EnvError::InvalidDataset {
                name: data.name().to_string(),
                reason: format!(
                    "instances have shape {shape:?}, the CNN expects input_shape {expected:?}"
                ),
            });
        }
        let kind = data.inputs().kind();
        if !matches!(
            kind,
            Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
        ) {
            return Err(EnvError::InvalidDataset {
                name: data.name().to_string(),
                reason: format!("inputs are {kind:?}, the CNN expects floating-point images"),
            });
        }
        check_num_classes(data, self.config.num_classes, "CNN")
    }

    feed_forward_student_methods!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeding::{stream_rng, Stream};
    use crate::student::{MlpConfig, MlpStudent};
    use rand::Rng;

    /// `n` images of `shape` whose class is a bright 6x6 patch at one of 10 places on
    /// a noisy background: learnable by a CNN in a few dozen steps.
    fn patch_data(n: usize, seed: u64) -> Dataset {
        let mut rng = stream_rng(seed, Stream::Data);
        let side = 28usize;
        let mut values = vec![0f32; n * side * side];
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let class = i % 10;
            labels.push(class as i64);
            let image = &mut values[i * side * side..(i + 1) * side * side];
            for v in image.iter_mut() {
                *v = rng.gen_range(-0.5f32..0.5);
            }
            let (row, col) = ((class / 5) * 12 + 4, (class % 5) * 5 + 1);
            for r in row..row + 6 {
                for c in col..col + 6 {
                    image[r * side + c] += 2.0;
                }
            }
        }
        Dataset::new(
            "patches",
            Tensor::from_slice(&values).view([n as i64, 1, side as i64, side as i64]),
            Tensor::from_slice(&labels),
            10,
        )
        .unwrap()
    }

    #[test]
    fn shapes_and_parameter_count() {
        let config = CnnConfig::fashion_mnist();
        assert_eq!(config.feature_map_sizes(), vec![[14, 14], [7, 7]]);
        assert_eq!(config.flattened_width(), 784);
        let expected = (8 * 25 + 8) + (16 * 8 * 25 + 16) + (784 * 10 + 10);
        assert_eq!(expected, 11_274);
        assert_eq!(config.parameter_count(), expected as u128);
        let mut student = CnnStudent::new(config, Device::Cpu).unwrap();
        assert_eq!(student.num_parameters(), expected);
        student
            .reset(&mut stream_rng(3, Stream::StudentInit))
            .unwrap();
        let data = patch_data(7, 1);
        student.accepts(&data).unwrap();
        let logits = student.logits(&data.slice(0, 7));
        assert_eq!(logits.size(), vec![7, 10]);
        assert!(!logits.requires_grad());
        let training = student.logits_for_training(&data.slice(0, 7));
        assert!(training.requires_grad());
        assert!(training.detach().allclose(&logits, 1e-6, 1e-6, false));

        // A hidden layer adds its weights.
        let wider = CnnConfig {
            hidden: vec![32],
            ..CnnConfig::fashion_mnist()
        };
        let student = CnnStudent::new(wider.clone(), Device::Cpu).unwrap();
        let count = 208 + 3216 + (784 * 32 + 32) + (32 * 10 + 10);
        assert_eq!(student.num_parameters(), count);
        assert_eq!(wider.parameter_count(), count as u128);

        // Odd sides round up: 3 blocks on 28x28 give 14, 7, 4.
        let deeper = CnnConfig {
            channels: vec![4, 4, 4],
            kernel_size: 3,
            ..CnnConfig::fashion_mnist()
        };
        assert_eq!(deeper.feature_map_sizes(), vec![[14, 14], [7, 7], [4, 4]]);
        let mut student = CnnStudent::new(deeper.clone(), Device::Cpu).unwrap();
        student
            .reset(&mut stream_rng(3, Stream::StudentInit))
            .unwrap();
        assert_eq!(student.logits(&data.slice(0, 7)).size(), vec![7, 10]);
        assert_eq!(student.num_parameters() as u128, deeper.parameter_count());
    }

    #[test]
    fn reset_is_seeded_and_loss_falls() {
        let data = patch_data(100, 2);
        let batch = data.slice(0, 100);
        let mut student = CnnStudent::new(CnnConfig::fashion_mnist(), Device::Cpu).unwrap();
        student
            .reset(&mut stream_rng(5, Stream::StudentInit))
            .unwrap();
        let first_logits = student.logits(&batch);
        // Another student from the same seed draws the same weights; another seed
        // draws others.
        let mut twin = CnnStudent::new(CnnConfig::fashion_mnist(), Device::Cpu).unwrap();
        twin.reset(&mut stream_rng(5, Stream::StudentInit)).unwrap();
        assert!(twin.logits(&batch).equal(&first_logits));
        twin.reset(&mut stream_rng(6, Stream::StudentInit)).unwrap();
        assert!(!twin.logits(&batch).equal(&first_logits));

        let mut noise = stream_rng(5, Stream::Dropout);
        let first = student.train_step(&batch, &mut noise).unwrap();
        let mut last = first;
        for _ in 0..40 {
            last = student.train_step(&batch, &mut noise).unwrap();
        }
        assert!(last < first * 0.5, "loss {first} -> {last}");
        // Reset forgets the training and the optimizer state.
        student
            .reset(&mut stream_rng(5, Stream::StudentInit))
            .unwrap();
        assert!(student.logits(&batch).equal(&first_logits));
        let again = student.train_step(&batch, &mut noise).unwrap();
        assert_eq!(again, first);
    }

    #[test]
    fn training_on_the_observed_logits_is_the_same_step() {
        let data = patch_data(20, 3);
        let batch = data.slice(0, 20);
        let mut a = CnnStudent::new(CnnConfig::fashion_mnist(), Device::Cpu).unwrap();
        let mut b = CnnStudent::new(CnnConfig::fashion_mnist(), Device::Cpu).unwrap();
        a.reset(&mut stream_rng(9, Stream::StudentInit)).unwrap();
        b.reset(&mut stream_rng(9, Stream::StudentInit)).unwrap();
        let mut noise = stream_rng(9, Stream::Dropout);
        for _ in 0..3 {
            let la = a.train_step(&batch, &mut noise).unwrap();
            let logits = b.logits_for_training(&batch);
            let lb = b.train_step_on_logits(&logits, &batch.labels).unwrap();
            assert_eq!(la, lb);
        }
        assert!(a.logits(&batch).equal(&b.logits(&batch)));
    }

    #[test]
    fn bad_configs_name_the_field() {
        let field_of = |config: CnnConfig| match CnnStudent::new(config, Device::Cpu) {
            Err(EnvError::InvalidConfig { field, .. }) => field,
            other => panic!("expected an invalid config, got {other:?}"),
        };
        let base = CnnConfig::fashion_mnist;
        assert_eq!(
            field_of(CnnConfig {
                input_shape: [1, 0, 28],
                ..base()
            }),
            "student.input_shape"
        );
        assert_eq!(
            field_of(CnnConfig {
                channels: vec![],
                ..base()
            }),
            "student.channels"
        );
        assert_eq!(
            field_of(CnnConfig {
                channels: vec![8, 0],
                ..base()
            }),
            "student.channels"
        );
        for kernel_size in [0, 4] {
            assert_eq!(
                field_of(CnnConfig {
                    kernel_size,
                    ..base()
                }),
                "student.kernel_size"
            );
        }
        assert_eq!(
            field_of(CnnConfig {
                hidden: vec![0],
                ..base()
            }),
            "student.hidden"
        );
        assert_eq!(
            field_of(CnnConfig {
                num_classes: 1,
                ..base()
            }),
            "student.num_classes"
        );
        assert_eq!(
            field_of(CnnConfig {
                optimizer: OptimizerConfig::Adam {
                    learning_rate: 0.0,
                    weight_decay: 0.0
                },
                ..base()
            }),
            "optimizer.learning_rate"
        );
    }

    #[test]
    fn refuses_data_of_another_shape() {
        let student = CnnStudent::new(CnnConfig::fashion_mnist(), Device::Cpu).unwrap();
        let flat = Dataset::new(
            "flat",
            Tensor::zeros([4, 784], (Kind::Float, Device::Cpu)),
            Tensor::from_slice(&[0i64, 1, 2, 3]),
            10,
        )
        .unwrap();
        let message = student.accepts(&flat).unwrap_err().to_string();
        assert!(message.contains("input_shape"), "{message}");
    }

    /// Wall time of one training step on M = 20 images and of logits on 1500 images
    /// (a dev evaluation), the CNN against the MLP 784-500-10, one thread.
    /// `cargo test --release -p l2t-envs cnn_step_time -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn cnn_step_time() {
        tch::set_num_threads(1);
        let data = patch_data(1500, 4);
        let batch = data.slice(0, 20);
        let dev = data.slice(0, 1500);
        let flat = Batch {
            inputs: batch.inputs.flatten(1, -1),
            labels: batch.labels.shallow_clone(),
            lengths: None,
        };
        let flat_dev = Batch {
            inputs: dev.inputs.flatten(1, -1),
            labels: dev.labels.shallow_clone(),
            lengths: None,
        };
        let mut cnn = CnnStudent::new(CnnConfig::fashion_mnist(), Device::Cpu).unwrap();
        let mut mlp = MlpStudent::new(MlpConfig::mnist(), Device::Cpu).unwrap();
        let mut rng = stream_rng(1, Stream::StudentInit);
        cnn.reset(&mut rng).unwrap();
        mlp.reset(&mut rng).unwrap();
        let mut noise = stream_rng(1, Stream::Dropout);
        let time = |f: &mut dyn FnMut()| {
            f();
            let n = 200;
            let start = std::time::Instant::now();
            for _ in 0..n {
                f();
            }
            start.elapsed().as_secs_f64() / n as f64 * 1e3
        };
        let cnn_step = time(&mut || {
            let logits = cnn.logits_for_training(&batch);
            cnn.train_step_on_logits(&logits, &batch.labels).unwrap();
        });
        let mlp_step = time(&mut || {
            let logits = mlp.logits_for_training(&flat);
            mlp.train_step_on_logits(&logits, &flat.labels).unwrap();
        });
        let cnn_dev = time(&mut || {
            let _ = cnn.logits(&dev);
        });
        let mlp_dev = time(&mut || {
            let _ = mlp.logits(&flat_dev);
        });
        let _ = mlp.train_step(&flat, &mut noise);
        println!(
            "1 thread: train step on 20 images: CNN {cnn_step:.2} ms, MLP {mlp_step:.2} ms; \
             logits on 1500 images: CNN {cnn_dev:.1} ms, MLP {mlp_dev:.1} ms"
        );
    }
}
