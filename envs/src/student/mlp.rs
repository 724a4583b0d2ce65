//! The multi-layer perceptron student of the paper's MNIST task (784-500-10, ReLU,
//! Adam, as [`super::adam::Adam`]).
//!
//! It records its scoring forwards ([`Student::record`]: every layer's input and the
//! logits) and trains on recorded rows with a backward written out, the one autograd
//! would run, op for op, so the update is bit for bit that of [`Student::train_step`]
//! (tested). With `a_0` the inputs, `z_{l+1} = a_l W_l^T + b_l`,
//! `a_{l+1} = relu(z_{l+1})` and the logits `z_L`, for the mean cross-entropy `L` of
//! M rows:
//!
//! ```text
//! g_L      = d L / d z_L          (log-softmax and NLL backward)
//! dW_l     = g_{l+1}^T a_l,   db_l = sum over rows of g_{l+1}
//! g_l      = (g_{l+1} W_l) * [a_l > 0]          for l >= 1
//! ```

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, Device, Kind, Tensor};

use super::adam::StudentOptimizer;
use super::{
    check_num_classes, count_parameters, init_from_stream, linear_flops, torch_default_init,
    OptimizerConfig, PooledFlops, Recorded, Student, StudentFlops,
};
use crate::data::transform::{block_means, pooled_image_shape};
use crate::data::{Batch, Dataset};
use crate::error::{invalid_config, EnvError, Result};

/// Architecture and optimizer of an MLP student.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// Input features per instance (inputs are flattened).
    pub input_dim: usize,
    /// Widths of the hidden ReLU layers (the paper: `[500]`).
    pub hidden: Vec<usize>,
    /// Number of classes.
    pub num_classes: usize,
    /// The optimizer (the paper: Adam).
    pub optimizer: OptimizerConfig,
}

impl MlpConfig {
    /// The paper's MNIST student: 784-500-10 with Adam (lr 0.001 here; RL4Data used 0.01).
    pub fn mnist() -> Self {
        Self {
            input_dim: 784,
            hidden: vec![500],
            num_classes: 10,
            optimizer: OptimizerConfig::Adam {
                learning_rate: 1e-3,
                weight_decay: 0.0,
            },
        }
    }
}

impl MlpConfig {
    /// Checks the widths and the optimizer; the error names the field.
    pub fn validate(&self) -> Result<()> {
        if self.input_dim == 0 {
            return Err(invalid_config("student.input_dim", "must be positive"));
        }
        if self.num_classes < 2 {
            return Err(invalid_config("student.num_classes", "must be at least 2"));
        }
        if self.hidden.contains(&0) {
            return Err(invalid_config("student.hidden", "widths must be positive"));
        }
        // Weights, their gradients and the optimizer's two moments, as f32.
        let widths: Vec<u128> = std::iter::once(self.input_dim)
            .chain(self.hidden.iter().copied())
            .chain(std::iter::once(self.num_classes))
            .map(|w| w as u128)
            .collect();
        let parameters: u128 = widths.windows(2).map(|w| w[0] * w[1] + w[1]).sum();
        crate::memory::ensure_fits(
            "student.hidden",
            "the MLP's weights, gradients and optimizer state",
            parameters * 16,
        )?;
        self.optimizer.validate()
    }
}

/// An MLP with ReLU hidden layers, trained with cross-entropy.
pub struct MlpStudent {
    config: MlpConfig,
    vs: nn::VarStore,
    layers: Vec<nn::Linear>,
    optimizer: StudentOptimizer,
    /// The weight gradients of [`Student::train_step_on_recorded`], one per layer,
    /// written in place each update (they stay in cache; none is allocated).
    weight_grads: Vec<Tensor>,
}

impl std::fmt::Debug for MlpStudent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlpStudent")
            .field("config", &self.config)
            .finish()
    }
}

impl MlpStudent {
    /// Builds the network on `device`. Weights are placeholders until [`Student::reset`].
    pub fn new(config: MlpConfig, device: Device) -> Result<Self> {
        config.validate()?;
        let vs = nn::VarStore::new(device);
        let layers = build_layers(&vs, &config);
        let optimizer = StudentOptimizer::build(&config.optimizer, &vs)?;
        let weight_grads = tch::no_grad(|| layers.iter().map(|l| l.ws.zeros_like()).collect());
        Ok(Self {
            config,
            vs,
            layers,
            optimizer,
            weight_grads,
        })
    }

    /// The forward pass, recording gradients unless the caller disabled them.
    fn forward(&self, inputs: &Tensor) -> Tensor {
        let mut x = inputs.flatten(1, -1);
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x);
            if i < last {
                x = x.relu();
            }
        }
        x
    }
}

impl Student for MlpStudent {
    fn num_classes(&self) -> usize {
        self.config.num_classes
    }

    fn num_parameters(&self) -> usize {
        count_parameters(&self.vs)
    }

    /// The dense layers, input -> hidden -> classes.
    fn flops(&self, _data: &Dataset) -> StudentFlops {
        let widths = layer_widths(&self.config);
        let forward = (widths.windows(2))
            .map(|w| linear_flops(w[0] as usize, w[1] as usize))
            .sum();
        StudentFlops::new(forward, self.num_parameters(), &self.config.optimizer)
    }

    fn accepts(&self, data: &Dataset) -> Result<()> {
        let features: i64 = data.input_shape().iter().product();
        if features != self.config.input_dim as i64 {
            return Err(EnvError::InvalidDataset {
                name: data.name().to_string(),
                reason: format!(
                    "instances have {features} features, the MLP expects input_dim {}",
                    self.config.input_dim
                ),
            });
        }
        check_num_classes(data, self.config.num_classes, "MLP")
    }

    /// The proxy of [`crate::Scoring::Pooled`]: the first layer on `C (H/k) (W/k)`
    /// block means instead of `C H W` pixels, the rest as the full forward; the block
    /// sums of the first layer's weights are one addition per weight.
    fn pooled_flops(&self, data: &Dataset, k: usize) -> Result<PooledFlops> {
        let [c, h, w] = pooled_image_shape(&data.input_shape(), k)?;
        let k = k as i64;
        let widths = layer_widths(&self.config);
        let first = linear_flops((c * (h / k) * (w / k)) as usize, widths[1] as usize);
        let rest: u64 = (widths.windows(2).skip(1))
            .map(|w| linear_flops(w[0] as usize, w[1] as usize))
            .sum();
        Ok(PooledFlops {
            forward_per_row: first + rest,
            per_update: (widths[0] * widths[1]) as u64,
        })
    }

    /// `relu(x' W1'^T + b1)` through the other layers as in the full forward, with
    /// `x'` the given block means and `W1'` the block sums of the first layer's
    /// weights (`k^2` times their [`block_means`]).
    fn pooled_logits(&self, means: &Tensor, image: [i64; 3], k: usize) -> Result<Tensor> {
        tch::no_grad(|| {
            let first = &self.layers[0];
            let weights = block_means(&first.ws, image, k)?.f_mul_scalar((k * k) as f64)?;
            let mut x = means.f_matmul(&weights.f_tr()?)?;
            if let Some(bias) = &first.bs {
                x = x.f_add(bias)?;
            }
            for layer in &self.layers[1..] {
                x = layer.forward(&x.relu());
            }
            Ok(x)
        })
    }

    /// Every layer's input and the logits, without the graph.
    fn record(&self, batch: &Batch) -> Option<Recorded> {
        tch::no_grad(|| {
            let mut x = batch.inputs.flatten(1, -1);
            let mut recorded = Vec::with_capacity(self.layers.len() + 1);
            let last = self.layers.len() - 1;
            for (i, layer) in self.layers.iter().enumerate() {
                let mut z = layer.forward(&x);
                recorded.push(x);
                x = if i < last { z.relu_() } else { z };
            }
            recorded.push(x);
            Some(Recorded::new(recorded))
        })
    }

    /// The backward of the module docs, then one Adam step; with another optimizer, a
    /// forward with the graph from the recorded inputs and libtorch's backward.
    fn train_step_on_recorded(&mut self, recorded: &Recorded, labels: &Tensor) -> Result<f64> {
        let acts = recorded.tensors();
        let depth = self.layers.len();
        if acts.len() != depth + 1 {
            return Err(EnvError::Unsupported(format!(
                "a recording of {} tensors for an MLP of {depth} layers",
                acts.len()
            )));
        }
        let adam = match &mut self.optimizer {
            StudentOptimizer::Adam(adam) => adam,
            StudentOptimizer::Torch(_) => {
                let logits = self.forward(&acts[0]);
                return self.train_step_on_logits(&logits, labels);
            }
        };
        tch::no_grad(|| {
            let (loss, g) = cross_entropy_backward(&acts[depth], labels)?;
            let mut gradients = Vec::with_capacity(2 * depth);
            dense_backward(
                &self.layers,
                &acts[..depth],
                &self.weight_grads,
                g,
                &mut gradients,
            )?;
            adam.step_with_gradients(&gradients)?;
            Ok(loss)
        })
    }

    feed_forward_student_methods!();
}

/// The mean cross-entropy of `logits` against `labels`, as `cross_entropy_for_logits`
/// computes it, and its gradient with respect to the logits, as autograd computes it
/// (nll_loss's backward, then log_softmax's): where a student's own backward starts
/// ([`Student::train_step_on_recorded`]). Call under `no_grad`.
fn cross_entropy_backward(logits: &Tensor, labels: &Tensor) -> Result<(f64, Tensor)> {
    let log_probs = logits.log_softmax(-1, Kind::Float);
    let loss = log_probs.f_nll_loss(labels, None::<Tensor>, tch::Reduction::Mean, -100)?;
    let device = log_probs.device();
    let total_weight = Tensor::from(labels.size()[0] as f32).to_device(device);
    let g = log_probs.f_nll_loss_backward(
        &Tensor::from(1f32).to_device(device),
        labels,
        None::<Tensor>,
        tch::Reduction::Mean,
        -100,
        &total_weight,
    )?;
    let g = Tensor::f_internal_log_softmax_backward_data(&g, &log_probs, -1, Kind::Float)?;
    Ok((loss.f_double_value(&[])?, g))
}

/// The backward of the linear `layers` with ReLU between them, op for op autograd's:
/// `inputs[l]` is layer l's input (after the previous layer's ReLU), `g` the gradient of
/// the last layer's output. For `z = addmm(b, a, W^T)` autograd computes the weight's
/// gradient as `g^T a` (mm_mat2_backward of the column-major `W^T`), the bias's as `g`
/// summed to its shape, and the input's as `g W`; through the ReLU,
/// `threshold_backward(g, a, 0)`. Each weight's gradient is written into
/// `weight_grads[l]` (no allocation); the pairs (parameter, gradient) join `gradients`.
/// The first layer's input needs no gradient. Call under `no_grad`.
fn dense_backward<'a>(
    layers: &'a [nn::Linear],
    inputs: &[Tensor],
    weight_grads: &[Tensor],
    mut g: Tensor,
    gradients: &mut Vec<(&'a Tensor, Tensor)>,
) -> Result<()> {
    for (l, layer) in layers.iter().enumerate().rev() {
        let _ = g.tr().f_mm_out(&weight_grads[l], &inputs[l])?;
        gradients.push((&layer.ws, weight_grads[l].shallow_clone()));
        if let Some(bias) = &layer.bs {
            gradients.push((bias, g.f_sum_to_size(bias.size())?));
        }
        if l > 0 {
            g = inputs[l].f_threshold_backward(&g.f_mm(&layer.ws)?, 0.0)?;
        }
    }
    Ok(())
}

/// The linear layers `layer0, layer1, ...` of an MLP of `config` in `vs`: the
/// variables (names, shapes, creation) whose name order `init_from_stream` follows, so
/// every model built from them draws the same initial weights from the same stream.
pub(crate) fn build_layers(vs: &nn::VarStore, config: &MlpConfig) -> Vec<nn::Linear> {
    let root = vs.root();
    let widths = layer_widths(config);
    widths
        .windows(2)
        .enumerate()
        .map(|(i, w)| nn::linear(&root / format!("layer{i}"), w[0], w[1], Default::default()))
        .collect()
}

/// Input width, hidden widths and number of classes, in layer order.
pub(crate) fn layer_widths(config: &MlpConfig) -> Vec<i64> {
    let mut widths = vec![config.input_dim as i64];
    widths.extend(config.hidden.iter().map(|&h| h as i64));
    widths.push(config.num_classes as i64);
    widths
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::SyntheticConfig;
    use crate::seeding::{stream_rng, Stream};
    use rand::Rng;

    #[test]
    fn parameter_count_matches_784_500_10() {
        let student = MlpStudent::new(MlpConfig::mnist(), Device::Cpu).unwrap();
        assert_eq!(student.num_parameters(), 784 * 500 + 500 + 500 * 10 + 10);
    }

    #[test]
    fn loss_falls_and_reset_is_seeded() {
        let data = SyntheticConfig {
            train_size: 200,
            dev_size: 10,
            test_size: 10,
            ..Default::default()
        }
        .generate()
        .unwrap();
        let config = MlpConfig {
            input_dim: 32,
            hidden: vec![32],
            num_classes: 10,
            optimizer: OptimizerConfig::Adam {
                learning_rate: 1e-2,
                weight_decay: 0.0,
            },
        };
        let mut student = MlpStudent::new(config, Device::Cpu).unwrap();
        student.accepts(&data.train).unwrap();
        let mut rng = stream_rng(1, Stream::StudentInit);
        student.reset(&mut rng).unwrap();
        let batch = data.train.slice(0, 200);
        let first_logits = student.logits(&batch);
        let mut noise = stream_rng(1, Stream::Dropout);
        let first = student.train_step(&batch, &mut noise).unwrap();
        let mut last = first;
        for _ in 0..30 {
            last = student.train_step(&batch, &mut noise).unwrap();
        }
        assert!(last < first * 0.8, "loss {first} -> {last}");
        student
            .reset(&mut stream_rng(1, Stream::StudentInit))
            .unwrap();
        assert!(student.logits(&batch).equal(&first_logits));
    }

    /// The weights, flattened in layer order.
    fn weights(student: &MlpStudent) -> Vec<Tensor> {
        student
            .layers
            .iter()
            .flat_map(|l| {
                [
                    l.ws.copy(),
                    l.bs.as_ref().map_or(Tensor::new(), Tensor::copy),
                ]
            })
            .collect()
    }

    /// Trains two students of `config` from the same weights for `steps` updates of
    /// `m` rows: one with `train_step` on gathered rows, one on the same rows selected
    /// from a recorded forward of a block of `block` rows; asserts equal losses and
    /// weights bit for bit after every step.
    fn assert_recorded_steps_equal_train_steps(config: MlpConfig, m: i64, block: i64) {
        // Inputs and labels from formulas, not libtorch's global generator.
        let width = config.input_dim as i64;
        let inputs = Tensor::from_slice(
            &(0..block * width)
                .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
                .collect::<Vec<f32>>(),
        )
        .view([block, width]);
        let labels = Tensor::from_slice(
            &(0..block)
                .map(|i| i * 13 % config.num_classes as i64)
                .collect::<Vec<i64>>(),
        );
        let data = Dataset::new("block", inputs, labels, config.num_classes).unwrap();
        let mut plain = MlpStudent::new(config.clone(), Device::Cpu).unwrap();
        let mut reuse = MlpStudent::new(config, Device::Cpu).unwrap();
        plain
            .reset(&mut stream_rng(2, Stream::StudentInit))
            .unwrap();
        reuse
            .reset(&mut stream_rng(2, Stream::StudentInit))
            .unwrap();
        let mut noise = stream_rng(2, Stream::Dropout);
        for step in 0..6i64 {
            // Scattered rows of the block: every (block / m)-th, shifted by the step.
            let rows: Vec<i64> = (0..m).map(|i| (i * (block / m) + step) % block).collect();
            let index = Tensor::from_slice(&rows);
            let recorded = reuse.record(&data.slice(0, block as usize)).unwrap();
            assert!(recorded
                .logits()
                .unwrap()
                .equal(&reuse.logits(&data.slice(0, block as usize))));
            let batch = data.batch(&index);
            let a = plain.train_step(&batch, &mut noise).unwrap();
            let b = reuse
                .train_step_on_recorded(&recorded.select(&index), &batch.labels)
                .unwrap();
            assert_eq!(a.to_bits(), b.to_bits(), "loss at step {step}");
            for (k, (x, y)) in weights(&plain).iter().zip(weights(&reuse)).enumerate() {
                assert!(x.equal(&y), "parameter {k} differs after step {step}");
            }
        }
    }

    /// At one libtorch intra-op thread, as the env runs (`--threads 1`). With two, on an
    /// Intel Xeon with AVX-512 the 400-row forward's hidden activations differ from the
    /// 20-row forward's in the last bits (4.8e-7 at most): libtorch splits the bigger
    /// matrix product differently. The backward alone matches autograd at both.
    #[test]
    fn recorded_steps_equal_train_steps_bit_for_bit() {
        tch::set_num_threads(1);
        assert_recorded_steps_equal_train_steps(MlpConfig::mnist(), 20, 400);
        let deep = MlpConfig {
            input_dim: 40,
            hidden: vec![30, 20],
            num_classes: 5,
            optimizer: OptimizerConfig::Adam {
                learning_rate: 1e-2,
                weight_decay: 1e-3,
            },
        };
        assert_recorded_steps_equal_train_steps(deep.clone(), 8, 64);
        // SGD (libtorch's optimizer): a forward with the graph from the recorded inputs.
        let sgd = MlpConfig {
            optimizer: OptimizerConfig::Sgd {
                learning_rate: 0.1,
                momentum: 0.9,
                weight_decay: 1e-4,
                milestones: vec![],
                decay: 0.1,
            },
            ..deep
        };
        assert_recorded_steps_equal_train_steps(sgd, 8, 64);
    }

    /// The proxy of `Scoring::Pooled`: the full forward at k = 1, and on images that
    /// are constant within each k x k block (where `W1' x' = W1 x` exactly); its FLOPs
    /// on the 784-500-10 MLP; and inputs it cannot pool refused by field.
    #[test]
    fn the_pooled_proxy_is_the_forward_on_block_constant_images() {
        let mut student = MlpStudent::new(MlpConfig::mnist(), Device::Cpu).unwrap();
        student
            .reset(&mut stream_rng(5, Stream::StudentInit))
            .unwrap();
        let labels = Tensor::from_slice(&[0i64, 1, 2, 3, 4, 5]);
        let batch = |inputs: Tensor| Batch {
            inputs,
            labels: labels.shallow_clone(),
            lengths: None,
        };
        let mut rng = stream_rng(6, Stream::Data);
        let mut uniform = |shape: [i64; 4]| {
            let n = shape.iter().product::<i64>() as usize;
            let values: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
            Tensor::from_slice(&values).view(shape)
        };
        let any = uniform([6, 1, 28, 28]);
        let coarse = uniform([6, 1, 14, 14])
            .repeat_interleave_self_int(2, 2, None)
            .repeat_interleave_self_int(2, 3, None);
        let image = [1, 28, 28];
        let proxy = |x: &Tensor, k| {
            let means = block_means(x, image, k).unwrap();
            student.pooled_logits(&means, image, k).unwrap()
        };
        for (k, inputs) in [(1, any.shallow_clone()), (2, coarse)] {
            let pooled = proxy(&inputs, k);
            let full = student.logits(&batch(inputs));
            let gap = (pooled - &full).abs().max().double_value(&[]);
            assert!(gap < 1e-4, "k = {k}: the proxy is {gap} off the forward");
        }
        // On other images the 2 x 2 proxy is an approximation, not the forward.
        let gap = (proxy(&any, 2) - student.logits(&batch(any)))
            .abs()
            .max()
            .double_value(&[]);
        assert!(gap > 1e-3, "{gap}");

        let images = Dataset::new(
            "images",
            Tensor::zeros([6, 1, 28, 28], (Kind::Float, Device::Cpu)),
            labels.shallow_clone(),
            10,
        )
        .unwrap();
        let flops = student.pooled_flops(&images, 2).unwrap();
        assert_eq!(
            flops.forward_per_row,
            (2 * 196 * 500 + 500) + (2 * 500 * 10 + 10)
        );
        assert_eq!(flops.per_update, 784 * 500);
        let field = |e: EnvError| match e {
            EnvError::InvalidConfig { field, .. } => field,
            other => panic!("{other}"),
        };
        assert_eq!(
            field(student.pooled_flops(&images, 3).unwrap_err()),
            "scoring.k"
        );
        let flat = Dataset::new(
            "flat",
            Tensor::zeros([6, 784], (Kind::Float, Device::Cpu)),
            labels,
            10,
        )
        .unwrap();
        assert_eq!(
            field(student.pooled_flops(&flat, 2).unwrap_err()),
            "scoring"
        );
        // Block means of another image shape than the weights' are an error, not a panic.
        let means = Tensor::zeros([6, 49], (Kind::Float, Device::Cpu));
        assert!(student.pooled_logits(&means, [1, 28, 28], 4).is_ok());
        assert!(student.pooled_logits(&means, [1, 30, 30], 2).is_err());
        assert!(student.pooled_logits(&means, [1, 28, 28], 2).is_err());
    }
}
