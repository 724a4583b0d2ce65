//! The CIFAR ResNet student of the paper's CIFAR-10 task: the 6n+2-layer residual
//! network of He et al. 2016 ("Deep Residual Learning for Image Recognition",
//! Sec. 4.2), trained with momentum SGD.
//!
//! Architecture, for depth `6n + 2`:
//!
//! - a 3x3 convolution to 16 channels, batch norm, ReLU;
//! - three stages of `n` basic blocks with 16, 32 and 64 channels; the first block of
//!   stages 2 and 3 halves the feature map with stride 2. A basic block is
//!   `relu(bn(conv3x3(relu(bn(conv3x3(x))))) + shortcut(x))`;
//! - global average pooling and a linear layer to the classes.
//!
//! Convolutions have no bias (each is followed by batch norm). Shortcuts are identities
//! except where a block changes the shape, where they follow one of He et al.'s
//! options (see [`Shortcut`]): option A (the paper's CIFAR choice, parameter-free) by
//! default, option B (1x1 projection) on request.
//!
//! Initialisation, drawn from the environment's stream by [`init_from_stream`]:
//! convolutions He (Kaiming) normal with `std = sqrt(2 / fan_out)`,
//! `fan_out = out_channels * k * k` (He et al. 2015, as in the reference Torch and
//! torchvision ResNets); batch-norm weights 1 and biases 0, running means 0 and running
//! variances 1; the final linear layer PyTorch's default (uniform `±1/sqrt(fan_in)`).
//!
//! Batch norm uses batch statistics in [`Student::train_step`] (and updates its running
//! statistics there, momentum 0.1, eps 1e-5) and the running statistics in
//! [`Student::logits`].

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, Device, Kind, Tensor};

use super::{
    count_parameters, init_from_stream, linear_flops, torch_default_init, Init, OptimizerConfig,
    Student, StudentFlops,
};
use crate::data::cifar::augment;
use crate::data::{Batch, Dataset};
use crate::error::{invalid_config, EnvError, Result};

/// Channels of the three stages.
const STAGE_CHANNELS: [i64; 3] = [16, 32, 64];

/// How a block whose output shape differs from its input's (stride 2, more channels)
/// forms its shortcut (He et al. 2016, Sec. 3.3). Blocks that keep the shape always
/// use the identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shortcut {
    /// Option A, the paper's choice for CIFAR: the identity, subsampled with stride 2
    /// and zero-padded with the extra channels. Parameter-free, so ResNet-20/32/110
    /// have the published 0.27M/0.46M/1.7M parameters.
    #[default]
    #[serde(alias = "a")]
    ZeroPad,
    /// Option B: a strided 1x1 convolution followed by batch norm (a projection).
    /// Adds two projections (16->32 and 32->64 channels) and their batch norms.
    #[serde(alias = "b")]
    Projection,
}

/// Architecture and optimizer of a CIFAR ResNet student.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResNetConfig {
    /// Number of weighted layers, `6n + 2` (the paper: 32 and 110; also 20, 44, 56).
    pub depth: usize,
    /// Number of classes.
    pub num_classes: usize,
    /// Channels of the input images (3 for CIFAR-10).
    pub input_channels: usize,
    /// Shortcuts of the shape-changing blocks (default: option A, zero padding).
    #[serde(default)]
    pub shortcut: Shortcut,
    /// The optimizer (the paper: momentum SGD).
    pub optimizer: OptimizerConfig,
    /// Training-time augmentation of He et al.: a random crop of the image padded by
    /// this many zero pixels on each side, and a random horizontal flip; drawn from the
    /// environment's noise stream. `None` trains on the images as they are.
    #[serde(default)]
    pub augment_padding: Option<i64>,
}

impl ResNetConfig {
    /// The CIFAR-10 ResNet of `depth` layers with He et al.'s optimizer: SGD with
    /// momentum 0.9, weight decay 1e-4, learning rate 0.1 divided by 10 at student
    /// iterations 32k and 48k (He et al. train 64k iterations at batch 128). He et al.'s
    /// warm-up of ResNet-110 (lr 0.01 for the first ~400 iterations) is not included.
    /// Option A shortcuts.
    pub fn cifar(depth: usize) -> Self {
        Self {
            depth,
            num_classes: 10,
            input_channels: 3,
            shortcut: Shortcut::ZeroPad,
            optimizer: OptimizerConfig::Sgd {
                learning_rate: 0.1,
                momentum: 0.9,
                weight_decay: 1e-4,
                milestones: vec![32_000, 48_000],
                decay: 0.1,
            },
            augment_padding: Some(4),
        }
    }

    /// Number `n` of basic blocks per stage, `(depth - 2) / 6`; an error unless
    /// `depth = 6n + 2` with `n >= 1`.
    pub fn blocks_per_stage(&self) -> Result<usize> {
        if self.depth < 8 || !(self.depth - 2).is_multiple_of(6) {
            return Err(invalid_config(
                "student.depth",
                format!(
                    "{} is not 6n+2 with n >= 1 (e.g. 20, 32, 56, 110)",
                    self.depth
                ),
            ));
        }
        Ok((self.depth - 2) / 6)
    }
}

/// The shortcut of one block.
#[derive(Debug)]
enum BlockShortcut {
    /// The block keeps the shape.
    Identity,
    /// Option A: subsample by `stride`, append `extra` zero channels.
    ZeroPad { stride: i64, extra: i64 },
    /// Option B: 1x1 convolution with `stride`, then batch norm (boxed: the layers
    /// are large next to the other variants).
    Projection(Box<(nn::Conv2D, nn::BatchNorm)>),
}

/// A basic block: two 3x3 convolutions with batch norm and a shortcut.
#[derive(Debug)]
struct BasicBlock {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    conv2: nn::Conv2D,
    bn2: nn::BatchNorm,
    shortcut: BlockShortcut,
}

fn conv3x3(path: nn::Path<'_>, in_channels: i64, out_channels: i64, stride: i64) -> nn::Conv2D {
    let config = nn::ConvConfig {
        stride,
        padding: 1,
        bias: false,
        ..Default::default()
    };
    nn::conv2d(path, in_channels, out_channels, 3, config)
}

fn batch_norm(path: nn::Path<'_>, channels: i64) -> nn::BatchNorm {
    nn::batch_norm2d(path, channels, Default::default())
}

impl BasicBlock {
    fn new(
        path: &nn::Path<'_>,
        in_channels: i64,
        out_channels: i64,
        stride: i64,
        option: Shortcut,
    ) -> Self {
        let shortcut = if stride == 1 && in_channels == out_channels {
            BlockShortcut::Identity
        } else {
            match option {
                Shortcut::ZeroPad => BlockShortcut::ZeroPad {
                    stride,
                    extra: (out_channels - in_channels).max(0),
                },
                Shortcut::Projection => {
                    let config = nn::ConvConfig {
                        stride,
                        bias: false,
                        ..Default::default()
                    };
                    let conv =
                        nn::conv2d(path / "shortcut_conv", in_channels, out_channels, 1, config);
                    let bn = batch_norm(path / "shortcut_bn", out_channels);
                    BlockShortcut::Projection(Box::new((conv, bn)))
                }
            }
        };
        Self {
            conv1: conv3x3(path / "conv1", in_channels, out_channels, stride),
            bn1: batch_norm(path / "bn1", out_channels),
            conv2: conv3x3(path / "conv2", out_channels, out_channels, 1),
            bn2: batch_norm(path / "bn2", out_channels),
            shortcut,
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let out = self.conv1.forward(x).apply_t(&self.bn1, train).relu();
        let out = self.conv2.forward(&out).apply_t(&self.bn2, train);
        let shortcut = match &self.shortcut {
            BlockShortcut::Identity => x.shallow_clone(),
            BlockShortcut::ZeroPad { stride, extra } => {
                let sub = if *stride > 1 {
                    x.slice(2, 0, None, *stride).slice(3, 0, None, *stride)
                } else {
                    x.shallow_clone()
                };
                // Pairs of (before, after) from the last axis: W, H, then channels.
                sub.constant_pad_nd([0, 0, 0, 0, 0, *extra])
            }
            BlockShortcut::Projection(projection) => {
                let (conv, bn) = projection.as_ref();
                conv.forward(x).apply_t(bn, train)
            }
        };
        (out + shortcut).relu()
    }
}

/// The initialisation rule of the ResNet (see the module documentation).
fn resnet_init(name: &str, shape: &[i64], vs: &nn::VarStore) -> Init {
    let (module, param) = name.rsplit_once('.').unwrap_or(("", name));
    let leaf = module.rsplit('.').next().unwrap_or(module);
    match param {
        "running_mean" => return Init::Constant(0.0),
        "running_var" => return Init::Constant(1.0),
        _ => {}
    }
    if leaf.starts_with("bn") || leaf.ends_with("_bn") {
        return Init::Constant(if param == "weight" { 1.0 } else { 0.0 });
    }
    if shape.len() == 4 {
        let fan_out = shape[0] * shape[2] * shape[3];
        return Init::Normal((2.0 / fan_out.max(1) as f64).sqrt());
    }
    torch_default_init(name, shape, vs)
}

/// A CIFAR ResNet (6n+2 layers), trained with cross-entropy.
pub struct ResNetStudent {
    config: ResNetConfig,
    vs: nn::VarStore,
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    blocks: Vec<BasicBlock>,
    fc: nn::Linear,
    optimizer: nn::Optimizer,
    iteration: usize,
}

impl std::fmt::Debug for ResNetStudent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResNetStudent")
            .field("config", &self.config)
            .field("iteration", &self.iteration)
            .finish()
    }
}

impl ResNetStudent {
    /// Builds the network on `device`. Weights are placeholders until [`Student::reset`].
    pub fn new(config: ResNetConfig, device: Device) -> Result<Self> {
        let n = config.blocks_per_stage()?;
        if config.num_classes < 2 {
            return Err(invalid_config("student.num_classes", "must be at least 2"));
        }
        if config.input_channels == 0 {
            return Err(invalid_config("student.input_channels", "must be positive"));
        }
        config.optimizer.validate()?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let conv1 = conv3x3(
            &root / "conv1",
            config.input_channels as i64,
            STAGE_CHANNELS[0],
            1,
        );
        let bn1 = batch_norm(&root / "bn1", STAGE_CHANNELS[0]);
        let mut blocks = Vec::with_capacity(3 * n);
        let mut in_channels = STAGE_CHANNELS[0];
        for (stage, &channels) in STAGE_CHANNELS.iter().enumerate() {
            for b in 0..n {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                let path = &root / format!("stage{}", stage + 1) / format!("block{b}");
                blocks.push(BasicBlock::new(
                    &path,
                    in_channels,
                    channels,
                    stride,
                    config.shortcut,
                ));
                in_channels = channels;
            }
        }
        let fc = nn::linear(
            &root / "fc",
            in_channels,
            config.num_classes as i64,
            Default::default(),
        );
        let optimizer = config.optimizer.build(&vs)?;
        Ok(Self {
            config,
            vs,
            conv1,
            bn1,
            blocks,
            fc,
            optimizer,
            iteration: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ResNetConfig {
        &self.config
    }

    /// Optimizer steps taken since the last reset (drives the learning-rate schedule).
    pub fn iteration(&self) -> usize {
        self.iteration
    }

    /// The learning rate the next [`Student::train_step`] uses.
    pub fn learning_rate(&self) -> f64 {
        self.config.optimizer.learning_rate_at(self.iteration)
    }

    fn forward_t(&self, inputs: &Tensor, train: bool) -> Tensor {
        let x = inputs.to_device(self.vs.device()).to_kind(Kind::Float);
        let mut x = self.conv1.forward(&x).apply_t(&self.bn1, train).relu();
        for block in &self.blocks {
            x = block.forward_t(&x, train);
        }
        let pooled = x.mean_dim([2i64, 3].as_slice(), false, Kind::Float);
        self.fc.forward(&pooled)
    }
}

impl Student for ResNetStudent {
    fn num_classes(&self) -> usize {
        self.config.num_classes
    }

    fn num_parameters(&self) -> usize {
        count_parameters(&self.vs)
    }

    /// The 3x3 convolutions (no bias) of the stem and of every basic block at their
    /// output sizes, option B's 1x1 projections, and the dense layer on the pooled
    /// features; batch norm, ReLU, the zero-pad shortcut and pooling are left out.
    fn flops(&self, data: &Dataset) -> StudentFlops {
        let config = &self.config;
        let shape = data.input_shape();
        let side = |i: usize| shape.get(i).copied().unwrap_or(0).max(0) as u64;
        let (mut height, mut width) = (side(1), side(2));
        let conv = |k: u64, c_in: i64, c_out: i64, h: u64, w: u64| {
            2 * k * k * c_in as u64 * c_out as u64 * h * w
        };
        let mut forward = conv(
            3,
            config.input_channels as i64,
            STAGE_CHANNELS[0],
            height,
            width,
        );
        let blocks = config.blocks_per_stage().unwrap_or(0);
        let mut in_channels = STAGE_CHANNELS[0];
        for (stage, &channels) in STAGE_CHANNELS.iter().enumerate() {
            for b in 0..blocks {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                (height, width) = (height.div_ceil(stride), width.div_ceil(stride));
                forward += conv(3, in_channels, channels, height, width);
                forward += conv(3, channels, channels, height, width);
                let changes = stride > 1 || in_channels != channels;
                if changes && config.shortcut == Shortcut::Projection {
                    forward += conv(1, in_channels, channels, height, width);
                }
                in_channels = channels;
            }
        }
        forward += linear_flops(in_channels as usize, config.num_classes);
        StudentFlops::new(forward, self.num_parameters(), &config.optimizer)
    }

    fn accepts(&self, data: &Dataset) -> Result<()> {
        let invalid = |reason: String| EnvError::InvalidDataset {
            name: data.name().to_string(),
            reason,
        };
        let shape = data.input_shape();
        if shape.len() != 3 || shape.iter().any(|&d| d < 1) {
            return Err(invalid(format!(
                "instances have shape {shape:?}, the ResNet expects images [channels, height, width]"
            )));
        }
        if shape[0] != self.config.input_channels as i64 {
            return Err(invalid(format!(
                "images have {} channels, the ResNet expects input_channels {}",
                shape[0], self.config.input_channels
            )));
        }
        let kind = data.inputs().kind();
        if !matches!(
            kind,
            Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
        ) {
            return Err(invalid(format!(
                "inputs are {kind:?}, the ResNet expects floating-point images"
            )));
        }
        super::check_num_classes(data, self.config.num_classes, "ResNet")
    }

    fn reset(&mut self, init_rng: &mut ChaCha8Rng) -> Result<()> {
        let vs = &self.vs;
        init_from_stream(vs, init_rng, |name, shape| resnet_init(name, shape, vs));
        self.optimizer = self.config.optimizer.build(&self.vs)?;
        self.iteration = 0;
        Ok(())
    }

    fn logits(&self, batch: &Batch) -> Tensor {
        tch::no_grad(|| self.forward_t(&batch.inputs, false))
    }

    fn train_step(&mut self, batch: &Batch, noise_rng: &mut ChaCha8Rng) -> Result<f64> {
        self.optimizer.set_lr(self.learning_rate());
        let labels = batch.labels.to_device(self.vs.device());
        let augmented;
        let inputs = match self.config.augment_padding {
            Some(padding) => {
                augmented = augment(&batch.inputs, noise_rng, padding);
                &augmented
            }
            None => &batch.inputs,
        };
        let loss = self
            .forward_t(inputs, true)
            .cross_entropy_for_logits(&labels);
        self.optimizer.backward_step(&loss);
        self.iteration += 1;
        Ok(loss.double_value(&[]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeding::{stream_rng, Stream};
    use rand::Rng;

    /// Exact parameter count of the option-A CIFAR ResNet with `n` blocks per stage.
    fn expected_parameters(n: usize) -> usize {
        let conv = |i: usize, o: usize| i * o * 9;
        let bn = |c: usize| 2 * c;
        let stem = conv(3, 16) + bn(16);
        let block = |i: usize, o: usize| conv(i, o) + bn(o) + conv(o, o) + bn(o);
        let stages = [(16, 16), (16, 32), (32, 64)]
            .iter()
            .map(|&(i, o)| block(i, o) + (n - 1) * block(o, o))
            .sum::<usize>();
        stem + stages + 64 * 10 + 10
    }

    fn random_batch(n: usize, side: i64, classes: i64, seed: u64) -> Batch {
        let mut rng = stream_rng(seed, Stream::Data);
        let numel = n * 3 * (side * side) as usize;
        let values: Vec<f32> = (0..numel).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let labels: Vec<i64> = (0..n as i64).map(|i| i % classes).collect();
        Batch {
            inputs: Tensor::from_slice(&values).view([n as i64, 3, side, side]),
            labels: Tensor::from_slice(&labels),
            lengths: None,
        }
    }

    fn small_config(depth: usize, optimizer: OptimizerConfig) -> ResNetConfig {
        ResNetConfig {
            optimizer,
            augment_padding: None,
            ..ResNetConfig::cifar(depth)
        }
    }

    #[test]
    fn augmentation_draws_from_the_noise_stream() {
        let config = ResNetConfig {
            augment_padding: Some(4),
            ..small_config(
                8,
                OptimizerConfig::Sgd {
                    learning_rate: 0.05,
                    momentum: 0.9,
                    weight_decay: 0.0,
                    milestones: vec![],
                    decay: 0.1,
                },
            )
        };
        let inputs = Tensor::from_slice(
            &(0..4 * 3 * 16 * 16)
                .map(|i| ((i * 7919) % 255) as f32 / 255.0)
                .collect::<Vec<f32>>(),
        )
        .view([4, 3, 16, 16]);
        let batch = Batch {
            inputs,
            labels: Tensor::from_slice(&[0i64, 1, 2, 3]),
            lengths: None,
        };
        let loss_after_two_steps = |noise_seed: u64| {
            let mut student = ResNetStudent::new(config.clone(), Device::Cpu).unwrap();
            student
                .reset(&mut stream_rng(1, Stream::StudentInit))
                .unwrap();
            let mut noise = stream_rng(noise_seed, Stream::Augmentation);
            student.train_step(&batch, &mut noise).unwrap();
            student.train_step(&batch, &mut noise).unwrap()
        };
        assert_eq!(
            loss_after_two_steps(5).to_bits(),
            loss_after_two_steps(5).to_bits()
        );
        assert_ne!(
            loss_after_two_steps(5).to_bits(),
            loss_after_two_steps(6).to_bits()
        );
    }

    #[test]
    fn parameter_counts_match_he_et_al() {
        // He et al. 2016, Table 6: ResNet-20 0.27M, -32 0.46M, -44 0.66M, -56 0.85M,
        // -110 1.7M.
        for (depth, published) in [
            (20, 0.27e6),
            (32, 0.46e6),
            (44, 0.66e6),
            (56, 0.85e6),
            (110, 1.7e6),
        ] {
            let student = ResNetStudent::new(ResNetConfig::cifar(depth), Device::Cpu).unwrap();
            let count = student.num_parameters();
            println!("ResNet-{depth}: {count} parameters (published {published})");
            assert_eq!(count, expected_parameters((depth - 2) / 6));
            assert!(
                (count as f64 / published - 1.0).abs() < 0.03,
                "ResNet-{depth}: {count}"
            );
        }
    }

    #[test]
    fn projection_shortcuts_add_two_projections() {
        let config = ResNetConfig {
            shortcut: Shortcut::Projection,
            ..ResNetConfig::cifar(20)
        };
        let student = ResNetStudent::new(config, Device::Cpu).unwrap();
        let extra = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64);
        assert_eq!(student.num_parameters(), expected_parameters(3) + extra);
    }

    #[test]
    fn rejects_bad_depth_and_data() {
        for depth in [0, 2, 7, 21, 33] {
            assert!(
                ResNetStudent::new(ResNetConfig::cifar(depth), Device::Cpu).is_err(),
                "{depth}"
            );
        }
        let student = ResNetStudent::new(ResNetConfig::cifar(8), Device::Cpu).unwrap();
        let flat = Dataset::new(
            "flat",
            Tensor::zeros([4, 12], (Kind::Float, Device::Cpu)),
            Tensor::from_slice(&[0i64, 1, 2, 3]),
            10,
        )
        .unwrap();
        assert!(student.accepts(&flat).is_err());
        let gray = Dataset::new(
            "gray",
            Tensor::zeros([4, 1, 8, 8], (Kind::Float, Device::Cpu)),
            Tensor::from_slice(&[0i64, 1, 2, 3]),
            10,
        )
        .unwrap();
        assert!(student.accepts(&gray).is_err());
        let rgb = Dataset::new(
            "rgb",
            Tensor::zeros([4, 3, 8, 8], (Kind::Float, Device::Cpu)),
            Tensor::from_slice(&[0i64, 1, 2, 3]),
            10,
        )
        .unwrap();
        student.accepts(&rgb).unwrap();
    }

    #[test]
    fn shortcut_names_deserialize() {
        let a: Shortcut = shortcut_from_name("a");
        assert_eq!(a, Shortcut::ZeroPad);
        let b: Shortcut = shortcut_from_name("projection");
        assert_eq!(b, Shortcut::Projection);
    }

    /// Deserialises a shortcut from its name, as a config file would.
    fn shortcut_from_name(name: &str) -> Shortcut {
        use serde::de::value::{Error, StrDeserializer};
        use serde::de::IntoDeserializer;
        let de: StrDeserializer<'_, Error> = name.into_deserializer();
        Shortcut::deserialize(de).unwrap()
    }

    #[test]
    fn loss_falls_and_reset_restores_weights_and_running_stats() {
        for shortcut in [Shortcut::ZeroPad, Shortcut::Projection] {
            let config = ResNetConfig {
                shortcut,
                ..small_config(
                    8,
                    OptimizerConfig::Sgd {
                        learning_rate: 0.05,
                        momentum: 0.9,
                        weight_decay: 1e-4,
                        milestones: vec![],
                        decay: 0.1,
                    },
                )
            };
            let mut student = ResNetStudent::new(config, Device::Cpu).unwrap();
            student
                .reset(&mut stream_rng(3, Stream::StudentInit))
                .unwrap();
            let batch = random_batch(8, 16, 4, 5);
            let first_logits = student.logits(&batch);
            assert_eq!(first_logits.size(), [8, 10]);
            let mut noise = stream_rng(3, Stream::Dropout);
            let first = student.train_step(&batch, &mut noise).unwrap();
            let mut last = first;
            for _ in 0..15 {
                last = student.train_step(&batch, &mut noise).unwrap();
            }
            println!("{shortcut:?}: loss {first} -> {last}");
            assert!(last < first * 0.5, "{shortcut:?}: loss {first} -> {last}");
            assert_eq!(student.iteration(), 16);
            assert!(!student
                .logits(&batch)
                .allclose(&first_logits, 1e-5, 1e-5, false));
            // Reset restores weights and batch-norm running statistics bit for bit.
            student
                .reset(&mut stream_rng(3, Stream::StudentInit))
                .unwrap();
            assert_eq!(student.iteration(), 0);
            assert!(student.logits(&batch).equal(&first_logits));
            // A different seed gives a different network.
            student
                .reset(&mut stream_rng(4, Stream::StudentInit))
                .unwrap();
            assert!(!student.logits(&batch).equal(&first_logits));
        }
    }

    #[test]
    fn learning_rate_follows_the_milestones() {
        // Decay 0 at iteration 1: the second step must leave the weights unchanged.
        let config = small_config(
            8,
            OptimizerConfig::Sgd {
                learning_rate: 0.1,
                momentum: 0.0,
                weight_decay: 0.0,
                milestones: vec![1],
                decay: 0.0,
            },
        );
        let mut student = ResNetStudent::new(config, Device::Cpu).unwrap();
        student
            .reset(&mut stream_rng(1, Stream::StudentInit))
            .unwrap();
        let batch = random_batch(4, 8, 4, 2);
        let mut noise = stream_rng(1, Stream::Dropout);
        let snapshot = |s: &ResNetStudent| -> Vec<Tensor> {
            s.vs.trainable_variables()
                .iter()
                .map(|t| t.copy())
                .collect()
        };
        let before = snapshot(&student);
        assert_eq!(student.learning_rate(), 0.1);
        student.train_step(&batch, &mut noise).unwrap();
        let after_first = snapshot(&student);
        assert!(before.iter().zip(&after_first).any(|(a, b)| !a.equal(b)));
        assert_eq!(student.learning_rate(), 0.0);
        student.train_step(&batch, &mut noise).unwrap();
        let after_second = snapshot(&student);
        assert!(after_first
            .iter()
            .zip(&after_second)
            .all(|(a, b)| a.equal(b)));
        // Reset restarts the schedule.
        student
            .reset(&mut stream_rng(1, Stream::StudentInit))
            .unwrap();
        assert_eq!(student.learning_rate(), 0.1);
    }

    #[test]
    fn init_follows_he_and_batch_norm_rules() {
        let mut student = ResNetStudent::new(ResNetConfig::cifar(20), Device::Cpu).unwrap();
        student
            .reset(&mut stream_rng(9, Stream::StudentInit))
            .unwrap();
        let vars = student.vs.variables();
        let w = &vars["stage3.block1.conv2.weight"];
        let expected = (2.0 / (64.0 * 9.0f64)).sqrt();
        let std = w.std(true).double_value(&[]);
        assert!(
            (std / expected - 1.0).abs() < 0.05,
            "std {std} vs {expected}"
        );
        assert!(
            vars["stage2.block0.bn1.weight"].equal(&Tensor::ones([32], (Kind::Float, Device::Cpu)))
        );
        assert!(
            vars["stage2.block0.bn1.bias"].equal(&Tensor::zeros([32], (Kind::Float, Device::Cpu)))
        );
        assert!(vars["bn1.running_var"].equal(&Tensor::ones([16], (Kind::Float, Device::Cpu))));
        assert!(vars["bn1.running_mean"].equal(&Tensor::zeros([16], (Kind::Float, Device::Cpu))));
        let bound = 1.0 / 8.0; // fc: fan_in 64
        assert!(vars["fc.weight"].abs().max().double_value(&[]) <= bound + 1e-6);
        assert!(vars["fc.bias"].abs().max().double_value(&[]) <= bound + 1e-6);
    }

    /// Wall time of one ResNet-32 step at batch 128 on 32x32 inputs, one thread.
    /// `cargo test --release -p l2t-envs resnet32_step_time -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn resnet32_step_time() {
        tch::set_num_threads(1);
        let mut student = ResNetStudent::new(ResNetConfig::cifar(32), Device::Cpu).unwrap();
        student
            .reset(&mut stream_rng(1, Stream::StudentInit))
            .unwrap();
        let batch = random_batch(128, 32, 10, 1);
        let mut noise = stream_rng(1, Stream::Dropout);
        student.train_step(&batch, &mut noise).unwrap();
        let steps = 5;
        let start = std::time::Instant::now();
        for _ in 0..steps {
            student.train_step(&batch, &mut noise).unwrap();
        }
        let per_step = start.elapsed().as_secs_f64() / steps as f64;
        let start = std::time::Instant::now();
        let _ = student.logits(&batch);
        let logits = start.elapsed().as_secs_f64();
        println!(
            "ResNet-32, batch 128, 32x32, 1 thread: {:.1} ms/train_step, {:.1} ms/logits",
            per_step * 1e3,
            logits * 1e3
        );
    }
}
