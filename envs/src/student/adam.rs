//! The crate's one Adam (Kingma & Ba, 2015): the students' optimizer and the learned
//! teachers', one fused pass over each parameter tensor, with a state that checkpoints
//! can save and restore exactly.
//!
//! libtorch's `torch::optim::Adam` (what `tch::nn::Adam` runs) updates a parameter in
//! about ten element-wise passes and allocates three temporaries of its size per step.
//! On the 784-500-10 MLP that is about 4 ms of a 5.5 ms training step (studies/notes/benchmarks-history.md,
//! `step_time`), for 0.4M parameters. This module computes the same update, per
//! element, in a single pass that reads the gradient and the parameter once and
//! updates the parameter and both moments in place, with no allocation:
//!
//! ```text
//! g <- g + weight_decay * p                          (L2 decay, as libtorch's Adam)
//! m <- m + (1 - beta1) (g - m)                       (lerp, as PyTorch's Adam)
//! v <- beta2 v + (1 - beta2) g^2
//! p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//! ```
//!
//! The single pass runs on contiguous `f32` tensors on the CPU (the students' case),
//! compiled for AVX2 where the CPU has it (the same IEEE operations per element, so
//! the same bits as the SSE2 build on normal numbers; tested).
//!
//! **Subnormal numbers are flushed to zero in the AVX2 pass** (MXCSR's FTZ and DAZ, set
//! for the pass and restored after it). Late in training, a unit that no kept row
//! activates decays its moments geometrically (`m` by `beta1` per step), and the
//! gradients of confident predictions square below `f32::MIN_POSITIVE`; each operation
//! on such a subnormal takes a microcode assist of some hundred cycles. On the
//! 784-500-10 MLP taught by a keep-one teacher, Adam grew to 19% of an update after a
//! few thousand updates on an Intel Xeon; with the flush the update takes 3.1 ms
//! instead of 3.7 there, and 3.1 instead of 3.3 over the first 500 (BENCHMARKS.md,
//! `L2T_BENCH_PROFILE`). A flushed value is below `1.2e-38`: the parameter step it
//! would have given is at most `lr * 1.2e-38 / eps`, about `1e-33`, which leaves any
//! parameter above about `1e-26` in magnitude exactly as it was. Measured: five of the
//! main job's teachers on 8 seeds (40 evaluation episodes), the three holdout students
//! of the irreducible loss (6000 updates each) and a 24-episode ES training gave the
//! same bits with and without the flush. The SSE2 pass (CPUs without AVX2) and other
//! architectures keep subnormals.
//!
//! Any other tensor (CUDA, other dtypes, strided views) takes the same formulas as
//! libtorch ops. The update matches libtorch's Adam to float rounding, not bit for bit
//! (the operations are the same, their rounding order is not); tests check both paths
//! against `tch::nn::Adam`. As in libtorch, every parameter has its own step count t,
//! and a parameter without a gradient is skipped, its step count included.
//!
//! tch's `nn::Optimizer` wraps libtorch's C++ optimizer, whose moments cannot be read
//! back; [`Adam::export_state`] / [`Adam::import_state`] give this one's (step counts
//! and moments), so a teacher resumed from a checkpoint continues bit for bit.

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use super::OptimizerConfig;
use crate::error::{EnvError, Result};

/// beta1, libtorch's default.
pub const BETA1: f64 = 0.9;
/// beta2, libtorch's default.
pub const BETA2: f64 = 0.999;
/// eps, libtorch's default.
pub const EPS: f64 = 1e-8;

/// The scalars of one Adam update at step `t` (1 for the first update).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamStep {
    /// `-lr / (1 - beta1^t)`.
    pub neg_step_size: f64,
    /// `sqrt(1 - beta2^t)`.
    pub sqrt_bias_correction2: f64,
    /// L2 weight decay added to the gradient.
    pub weight_decay: f64,
}

impl AdamStep {
    /// The scalars for update number `t` (counted from 1) with learning rate `lr`,
    /// computed in f64 as libtorch does.
    pub fn at(t: u64, learning_rate: f64, weight_decay: f64) -> Self {
        let t = t.max(1) as f64;
        Self {
            neg_step_size: -learning_rate / (1.0 - BETA1.powf(t)),
            sqrt_bias_correction2: (1.0 - BETA2.powf(t)).sqrt(),
            weight_decay,
        }
    }
}

/// One Adam update of `param` from `grad`, in place on `param`, `exp_avg` (m) and
/// `exp_avg_sq` (v). All four tensors must have the same number of elements; `grad`
/// is not modified.
pub fn adam_update(
    param: &Tensor,
    grad: &Tensor,
    exp_avg: &Tensor,
    exp_avg_sq: &Tensor,
    step: &AdamStep,
) -> Result<()> {
    let numel = param.numel();
    for (name, tensor) in [
        ("grad", grad),
        ("exp_avg", exp_avg),
        ("exp_avg_sq", exp_avg_sq),
    ] {
        if tensor.numel() != numel {
            return Err(tch::TchError::Shape(format!(
                "Adam: {name} has {} elements, the parameter {numel}",
                tensor.numel()
            ))
            .into());
        }
    }
    let fusable = [param, grad, exp_avg, exp_avg_sq]
        .iter()
        .all(|t| t.device() == Device::Cpu && t.kind() == Kind::Float && t.is_contiguous());
    let pointers = [param, grad, exp_avg, exp_avg_sq].map(|t| t.data_ptr() as usize);
    let distinct = (0..4).all(|i| (i + 1..4).all(|j| pointers[i] != pointers[j]));
    if fusable && distinct && numel > 0 {
        // SAFETY: the four tensors are contiguous f32 CPU tensors of `numel` elements
        // (checked above), so each data pointer addresses `numel` initialised f32s that
        // live as long as the borrowed tensors. Their storages start at distinct
        // addresses; the students' parameters, gradients and moments are separate
        // allocations (or disjoint rows of separate stacks), so the slices do not
        // overlap. Nothing else touches them during this call: libtorch runs no op on
        // them concurrently unless the caller shares them across threads, which the
        // students never do.
        let (p, g, m, v) = unsafe {
            (
                std::slice::from_raw_parts_mut(pointers[0] as *mut f32, numel),
                std::slice::from_raw_parts(pointers[1] as *const f32, numel),
                std::slice::from_raw_parts_mut(pointers[2] as *mut f32, numel),
                std::slice::from_raw_parts_mut(pointers[3] as *mut f32, numel),
            )
        };
        fused_update_dispatch(p, g, m, v, step);
    } else {
        tensor_update(param, grad, exp_avg, exp_avg_sq, step);
    }
    Ok(())
}

/// [`fused_update`] compiled for AVX2 where the CPU has it (8 lanes instead of SSE2's
/// 4), with subnormal numbers flushed to zero (module docs), else as it is.
fn fused_update_dispatch(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], step: &AdamStep) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        let _flushed = FlushSubnormals::new();
        // SAFETY: the CPU supports AVX2 (checked just above).
        unsafe { fused_update_avx2(p, g, m, v, step) };
        return;
    }
    fused_update(p, g, m, v, step);
}

/// While alive, the calling thread's SSE control register (MXCSR) flushes subnormal
/// results to zero (FTZ) and reads subnormal operands as zero (DAZ); dropping it
/// restores the register as it was, so nothing outside the Adam pass sees the change.
#[cfg(target_arch = "x86_64")]
struct FlushSubnormals {
    saved: u32,
}

#[cfg(target_arch = "x86_64")]
impl FlushSubnormals {
    /// MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6) flags.
    const FTZ_DAZ: u32 = (1 << 15) | (1 << 6);

    fn new() -> Self {
        let saved = mxcsr();
        // SAFETY: the value differs from the one just read only in FTZ and DAZ, flags
        // every CPU with AVX2 (the only caller) supports. Float code the compiler could
        // move across the write is inside `fused_update_avx2`, a call it cannot inline
        // here (it enables a target feature this function does not have).
        unsafe { set_mxcsr(saved | Self::FTZ_DAZ) };
        Self { saved }
    }
}

#[cfg(target_arch = "x86_64")]
impl Drop for FlushSubnormals {
    fn drop(&mut self) {
        // SAFETY: restores the value `new` read on this thread.
        unsafe { set_mxcsr(self.saved) };
    }
}

/// The calling thread's MXCSR (`stmxcsr`).
#[cfg(target_arch = "x86_64")]
fn mxcsr() -> u32 {
    let mut csr = 0u32;
    // SAFETY: `stmxcsr` stores the 32-bit register into `csr`, a live local.
    unsafe {
        std::arch::asm!("stmxcsr [{0}]", in(reg) &mut csr, options(nostack, preserves_flags))
    };
    csr
}

/// Loads `csr` into the calling thread's MXCSR (`ldmxcsr`).
///
/// # Safety
/// `csr` must set no reserved bit, and the caller owns the consequences for float code
/// that runs before the register is restored.
#[cfg(target_arch = "x86_64")]
unsafe fn set_mxcsr(csr: u32) {
    std::arch::asm!("ldmxcsr [{0}]", in(reg) &csr, options(nostack, preserves_flags, readonly));
}

/// [`fused_update`] with AVX2 enabled.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline(never)]
unsafe fn fused_update_avx2(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    step: &AdamStep,
) {
    fused_update(p, g, m, v, step);
}

/// The single pass over plain slices; the formulas of the module docs, in f32.
#[inline(always)]
fn fused_update(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], step: &AdamStep) {
    let one_minus_beta1 = (1.0 - BETA1) as f32;
    let beta2 = BETA2 as f32;
    let one_minus_beta2 = (1.0 - BETA2) as f32;
    let eps = EPS as f32;
    let neg_step_size = step.neg_step_size as f32;
    let sqrt_bc2 = step.sqrt_bias_correction2 as f32;
    let weight_decay = step.weight_decay as f32;
    let decay = step.weight_decay != 0.0;
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = if decay { g + weight_decay * *p } else { g };
        *m += one_minus_beta1 * (g - *m);
        *v = beta2 * *v + one_minus_beta2 * (g * g);
        let denom = v.sqrt() / sqrt_bc2 + eps;
        *p += neg_step_size * (*m / denom);
    }
}

/// The same update as libtorch ops, for tensors the single pass cannot take.
fn tensor_update(
    param: &Tensor,
    grad: &Tensor,
    exp_avg: &Tensor,
    exp_avg_sq: &Tensor,
    step: &AdamStep,
) {
    tch::no_grad(|| {
        let (mut param, mut exp_avg, mut exp_avg_sq) = (
            param.shallow_clone(),
            exp_avg.shallow_clone(),
            exp_avg_sq.shallow_clone(),
        );
        let grad = grad.view_as(&param);
        let grad = if step.weight_decay != 0.0 {
            &grad + &param * step.weight_decay
        } else {
            grad
        };
        let _ = exp_avg.lerp_(&grad.view_as(&exp_avg), 1.0 - BETA1);
        let _ = exp_avg_sq.g_mul_scalar_(BETA2);
        let _ = exp_avg_sq.g_add_(&(grad.square() * (1.0 - BETA2)).view_as(&exp_avg_sq));
        let denom = exp_avg_sq.sqrt() / step.sqrt_bias_correction2 + EPS;
        let _ = param.g_add_(&((&exp_avg / denom) * step.neg_step_size).view_as(&param));
    });
}

/// The state of an [`Adam`]: one entry per parameter, in the optimizer's parameter
/// order (what a checkpoint stores).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdamState {
    /// Steps taken by each parameter (t).
    pub steps: Vec<u64>,
    /// First moments m, flattened (row-major).
    pub exp_avg: Vec<Vec<f32>>,
    /// Second moments v, flattened (row-major).
    pub exp_avg_sq: Vec<Vec<f32>>,
}

/// Adam over a fixed list of parameters (leaves that record gradients), each with its
/// moments and step count, updated in place by [`adam_update`].
#[derive(Debug)]
pub struct Adam {
    learning_rate: f64,
    weight_decay: f64,
    params: Vec<Tensor>,
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
    steps: Vec<u64>,
}

impl Adam {
    /// Adam over `params` (shallow clones: they share storage and gradients), moments
    /// at zero, with L2 `weight_decay` added to the gradients.
    pub fn new(params: Vec<Tensor>, learning_rate: f64, weight_decay: f64) -> Self {
        let zeros =
            |ps: &[Tensor]| tch::no_grad(|| ps.iter().map(Tensor::zeros_like).collect::<Vec<_>>());
        Self {
            exp_avg: zeros(&params),
            exp_avg_sq: zeros(&params),
            steps: vec![0; params.len()],
            params,
            learning_rate,
            weight_decay,
        }
    }

    /// Adam over the trainable variables of `vs` sorted by name (the order checkpoints
    /// store states in), without weight decay.
    pub fn for_var_store(vs: &nn::VarStore, learning_rate: f64) -> Self {
        let params = named_trainable_in_name_order(vs)
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        Self::new(params, learning_rate, 0.0)
    }

    /// The learning rate of the next steps.
    pub fn lr(&self) -> f64 {
        self.learning_rate
    }

    /// Sets the learning rate of the next steps.
    pub fn set_lr(&mut self, learning_rate: f64) {
        self.learning_rate = learning_rate;
    }

    /// Number of parameter tensors.
    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    /// Updates taken by the first parameter since construction or the last
    /// [`reset`](Self::reset) (every parameter's, when all have gradients).
    pub fn steps(&self) -> u64 {
        self.steps.first().copied().unwrap_or(0)
    }

    /// Forgets the moments and the step counts (a fresh optimizer, same parameters).
    pub fn reset(&mut self) {
        tch::no_grad(|| {
            for moment in self.exp_avg.iter_mut().chain(self.exp_avg_sq.iter_mut()) {
                let _ = moment.zero_();
            }
        });
        self.steps.iter_mut().for_each(|t| *t = 0);
    }

    /// Sets every parameter's gradient to zero.
    pub fn zero_grad(&mut self) {
        for param in &mut self.params {
            let mut grad = param.grad();
            if grad.defined() {
                let _ = grad.zero_();
            }
        }
    }

    /// One update of every parameter that has a gradient.
    pub fn step(&mut self) -> Result<()> {
        for i in 0..self.params.len() {
            let grad = self.params[i].grad();
            if grad.defined() {
                self.update(i, &grad)?;
            }
        }
        Ok(())
    }

    /// One update of parameter `i` from `grad`, its step count advanced.
    fn update(&mut self, i: usize, grad: &Tensor) -> Result<()> {
        self.steps[i] += 1;
        let step = AdamStep::at(self.steps[i], self.learning_rate, self.weight_decay);
        adam_update(
            &self.params[i],
            grad,
            &self.exp_avg[i],
            &self.exp_avg_sq[i],
            &step,
        )
    }

    /// One update of the parameters in `gradients` from the gradients given beside
    /// them instead of their `.grad` (a backward computed by hand, as
    /// [`crate::student::Student::train_step_on_recorded`] does); the others are
    /// skipped, their step counts included. A parameter that is not one of this
    /// optimizer's is an [`EnvError::InvalidConfig`].
    pub fn step_with_gradients(&mut self, gradients: &[(&Tensor, Tensor)]) -> Result<()> {
        for (param, grad) in gradients {
            let i = self
                .params
                .iter()
                .position(|p| p.data_ptr() == param.data_ptr())
                .ok_or_else(|| EnvError::InvalidConfig {
                    field: "gradients",
                    reason: format!(
                        "a gradient for a parameter of shape {:?} that this Adam does not update",
                        param.size()
                    ),
                })?;
            self.update(i, grad)?;
        }
        Ok(())
    }

    /// Zeroes the gradients, back-propagates `loss` and takes one step.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        self.zero_grad();
        loss.f_backward()?;
        self.step()
    }

    /// As [`backward_step`](Self::backward_step), with the gradients first scaled so that
    /// their global L2 norm is at most `max_norm` (as `tch`'s `clip_grad_norm`: scaled by
    /// `max_norm / (norm + 1e-6)` when that is below 1).
    pub fn backward_step_clip_norm(&mut self, loss: &Tensor, max_norm: f64) -> Result<()> {
        self.zero_grad();
        loss.f_backward()?;
        self.clip_grad_norm(max_norm)?;
        self.step()
    }

    /// Scales the gradients the parameters hold so that their global L2 norm is at most
    /// `max_norm` ([`clip_grad_norm`]); returns the norm before.
    pub fn clip_grad_norm(&self, max_norm: f64) -> Result<f64> {
        clip_grad_norm(&self.params, max_norm)
    }

    /// A copy of the state (step counts and moments), for checkpoints.
    pub fn export_state(&self) -> Result<AdamState> {
        let flat = |ts: &[Tensor]| -> Result<Vec<Vec<f32>>> {
            ts.iter()
                .map(|t| Ok(Vec::<f32>::try_from(t.flatten(0, -1))?))
                .collect()
        };
        Ok(AdamState {
            steps: self.steps.clone(),
            exp_avg: flat(&self.exp_avg)?,
            exp_avg_sq: flat(&self.exp_avg_sq)?,
        })
    }

    /// Replaces the state with `state`, which must have one entry of the right size per
    /// parameter; otherwise an [`EnvError::InvalidConfig`] naming `adam_state`.
    pub fn import_state(&mut self, state: AdamState) -> Result<()> {
        let n = self.params.len();
        let invalid = |reason: String| EnvError::InvalidConfig {
            field: "adam_state",
            reason,
        };
        if state.steps.len() != n || state.exp_avg.len() != n || state.exp_avg_sq.len() != n {
            return Err(invalid(format!(
                "Adam state for {} parameters, the optimizer has {n}",
                state.steps.len()
            )));
        }
        for (i, p) in self.params.iter().enumerate() {
            let size = p.numel();
            if state.exp_avg[i].len() != size || state.exp_avg_sq[i].len() != size {
                return Err(invalid(format!(
                    "Adam state of parameter {i} has {} and {} values, the parameter {size}",
                    state.exp_avg[i].len(),
                    state.exp_avg_sq[i].len()
                )));
            }
        }
        tch::no_grad(|| -> Result<()> {
            for (i, p) in self.params.iter().enumerate() {
                let shape = p.size();
                let m = Tensor::from_slice(&state.exp_avg[i]).view(shape.as_slice());
                let v = Tensor::from_slice(&state.exp_avg_sq[i]).view(shape.as_slice());
                self.exp_avg[i].f_copy_(&m)?;
                self.exp_avg_sq[i].f_copy_(&v)?;
            }
            Ok(())
        })?;
        self.steps = state.steps;
        Ok(())
    }
}

/// The trainable variables of `vs` sorted by name (the order of
/// [`Adam::for_var_store`] and of teacher checkpoints), with their names.
pub fn named_trainable_in_name_order(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut named: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

/// Scales the gradients of `params` in place so that their global L2 norm is at most
/// `max_norm` (as `tch`'s `clip_grad_norm`: by `max_norm / (norm + 1e-6)` when that is
/// below 1); parameters without a gradient are skipped. Returns the norm before
/// clipping (0 when no parameter has a gradient).
pub fn clip_grad_norm(params: &[Tensor], max_norm: f64) -> Result<f64> {
    tch::no_grad(|| -> Result<f64> {
        let grads: Vec<Tensor> = params
            .iter()
            .map(Tensor::grad)
            .filter(Tensor::defined)
            .collect();
        if grads.is_empty() {
            return Ok(0.0);
        }
        let norms: Vec<Tensor> = grads.iter().map(Tensor::norm).collect();
        let total_norm = f64::try_from(Tensor::stack(&norms, 0).norm())?;
        let clip_coef = max_norm / (total_norm + 1e-6);
        if clip_coef < 1.0 {
            for mut grad in grads {
                let _ = grad.f_mul_scalar_(clip_coef)?;
            }
        }
        Ok(total_norm)
    })
}

/// A student's optimizer as its config asks: Adam as [`Adam`] (the update is a large
/// share of a small model's step), SGD as libtorch's.
pub(crate) enum StudentOptimizer {
    Adam(Adam),
    Torch(nn::Optimizer),
}

impl StudentOptimizer {
    /// The optimizer of `config` over the trainable variables of `vs`.
    pub(crate) fn build(config: &OptimizerConfig, vs: &nn::VarStore) -> Result<Self> {
        Ok(match config {
            OptimizerConfig::Adam {
                learning_rate,
                weight_decay,
            } => Self::Adam(Adam::new(
                vs.trainable_variables(),
                *learning_rate,
                *weight_decay,
            )),
            OptimizerConfig::Sgd { .. } => Self::Torch(config.build(vs)?),
        })
    }

    /// A fresh optimizer state after the student's weights were redrawn.
    pub(crate) fn reset(&mut self, config: &OptimizerConfig, vs: &nn::VarStore) -> Result<()> {
        match self {
            Self::Adam(adam) => adam.reset(),
            Self::Torch(_) => *self = Self::build(config, vs)?,
        }
        Ok(())
    }

    /// Zeroes the gradients, back-propagates `loss`, clips the gradients' global norm
    /// at `clip_norm` when given, and takes one step.
    pub(crate) fn backward_step(&mut self, loss: &Tensor, clip_norm: Option<f64>) -> Result<()> {
        match (self, clip_norm) {
            (Self::Adam(adam), None) => adam.backward_step(loss),
            (Self::Adam(adam), Some(max)) => adam.backward_step_clip_norm(loss, max),
            (Self::Torch(optimizer), None) => {
                optimizer.backward_step(loss);
                Ok(())
            }
            (Self::Torch(optimizer), Some(max)) => {
                optimizer.backward_step_clip_norm(loss, max);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use tch::nn::{self, Module, OptimizerConfig};

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
    }

    /// Trains the same small net with libtorch's Adam and with `Adam`.
    /// Returns the trained weights, flattened in name order.
    fn compare_with_libtorch(weight_decay: f64, clip_norm: Option<f64>) -> Vec<f32> {
        // The same weights in both nets, set from a formula rather than libtorch's
        // global generator (which tests running in parallel would share).
        let build = || {
            let vs = nn::VarStore::new(Device::Cpu);
            let net = nn::seq()
                .add(nn::linear(vs.root() / "a", 12, 9, Default::default()))
                .add_fn(|x| x.tanh())
                .add(nn::linear(vs.root() / "b", 9, 3, Default::default()));
            tch::no_grad(|| {
                let mut variables: Vec<_> = vs.variables().into_iter().collect();
                variables.sort_by(|a, b| a.0.cmp(&b.0));
                for (k, (_, mut var)) in variables.into_iter().enumerate() {
                    let n = var.numel();
                    let init: Vec<f32> = (0..n)
                        .map(|i| 0.3 * ((i * 7 + k * 13) as f32 * 0.61).sin())
                        .collect();
                    var.copy_(&Tensor::from_slice(&init).view_as(&var));
                }
            });
            (vs, net)
        };
        let x = Tensor::from_slice(&(0..60).map(|i| (i as f32 * 0.37).sin()).collect::<Vec<_>>())
            .view([5, 12]);
        let y = Tensor::from_slice(&[0i64, 2, 1, 1, 0]);

        let (vs_ref, net_ref) = build();
        let mut reference = nn::Adam {
            wd: weight_decay,
            ..Default::default()
        }
        .build(&vs_ref, 1e-2)
        .unwrap();
        let (vs, net) = build();
        let mut fused = Adam::new(vs.trainable_variables(), 1e-2, weight_decay);
        for _ in 0..25 {
            let loss_ref = net_ref.forward(&x).cross_entropy_for_logits(&y);
            let loss = net.forward(&x).cross_entropy_for_logits(&y);
            match clip_norm {
                None => {
                    reference.backward_step(&loss_ref);
                    fused.backward_step(&loss).unwrap();
                }
                Some(max) => {
                    reference.backward_step_clip_norm(&loss_ref, max);
                    fused.backward_step_clip_norm(&loss, max).unwrap();
                }
            }
        }
        assert_eq!(fused.steps(), 25);
        let (a, b) = (vs_ref.variables(), vs.variables());
        for (name, value) in &a {
            for (x, y) in values(value).iter().zip(values(&b[name])) {
                assert_abs_diff_eq!(*x, y, epsilon = 1e-5);
            }
        }
        let mut names: Vec<_> = b.keys().cloned().collect();
        names.sort();
        names.iter().flat_map(|n| values(&b[n])).collect()
    }

    /// The AVX2 build of the single pass (where the CPU has it) gives the portable
    /// build's bits, with and without weight decay, on values from zero to large (none
    /// of them subnormal, which the AVX2 pass flushes: the next test).
    #[test]
    fn the_dispatched_pass_equals_the_portable_pass_bit_for_bit() {
        let n = 1037;
        let wave = |k: f32| -> Vec<f32> {
            (0..n)
                .map(|i| {
                    let x = (i as f32 * k).sin();
                    if i % 97 == 0 {
                        0.0
                    } else {
                        x * 10f32.powi(i % 7 - 3)
                    }
                })
                .collect()
        };
        for (t, weight_decay) in [(1, 0.0), (7, 0.0), (300, 1e-4)] {
            let step = AdamStep::at(t, 1e-3, weight_decay);
            let g = wave(0.37);
            let (mut p1, mut m1, mut v1) = (wave(0.11), wave(0.23), wave(0.05));
            v1.iter_mut().for_each(|v| *v = v.abs());
            let (mut p2, mut m2, mut v2) = (p1.clone(), m1.clone(), v1.clone());
            fused_update(&mut p1, &g, &mut m1, &mut v1, &step);
            fused_update_dispatch(&mut p2, &g, &mut m2, &mut v2, &step);
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&p1), bits(&p2), "parameters at t = {t}");
            assert_eq!(bits(&m1), bits(&m2), "first moments at t = {t}");
            assert_eq!(bits(&v1), bits(&v2), "second moments at t = {t}");
        }
    }

    /// The AVX2 pass flushes subnormal moments to zero where the portable pass keeps
    /// them, gives the same parameters, and leaves the thread's MXCSR as it found it.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_pass_flushes_subnormals_and_restores_the_control_register() {
        if !std::is_x86_feature_detected!("avx2") {
            return;
        }
        let n = 67;
        let tiny = f32::MIN_POSITIVE / 4.0;
        let g: Vec<f32> = (0..n)
            .map(|i| if i % 2 == 0 { 0.0 } else { 1e-3 })
            .collect();
        let p: Vec<f32> = (0..n).map(|i| 0.01 * (i as f32 + 1.0)).collect();
        let step = AdamStep::at(1000, 1e-3, 0.0);
        let (mut p1, mut m1, mut v1) = (p.clone(), vec![tiny; n], vec![tiny; n]);
        let (mut p2, mut m2, mut v2) = (p, vec![tiny; n], vec![tiny; n]);
        fused_update(&mut p1, &g, &mut m1, &mut v1, &step);
        // Read after the portable pass, which raises the underflow and denormal flags.
        let before = mxcsr();
        fused_update_dispatch(&mut p2, &g, &mut m2, &mut v2, &step);
        assert_eq!(mxcsr(), before, "MXCSR restored after the pass");
        for i in (0..n).step_by(2) {
            assert!(
                m1[i] > 0.0 && !m1[i].is_normal(),
                "portable keeps {}",
                m1[i]
            );
            assert_eq!(m2[i].to_bits(), 0, "AVX2 flushes the decayed moment at {i}");
            assert_eq!(
                v2[i].to_bits(),
                0,
                "AVX2 flushes the decayed second moment at {i}"
            );
        }
        for i in (1..n).step_by(2) {
            assert_eq!(
                m1[i].to_bits(),
                m2[i].to_bits(),
                "normal moments agree at {i}"
            );
            assert_eq!(
                v1[i].to_bits(),
                v2[i].to_bits(),
                "normal moments agree at {i}"
            );
        }
        let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&p1), bits(&p2), "the parameters do not see the flush");
    }

    #[test]
    fn fused_adam_follows_libtorch_adam() {
        compare_with_libtorch(0.0, None);
    }

    #[test]
    fn fused_adam_clips_the_gradient_norm_as_libtorch_does() {
        // A norm of 0.05 clips this net's gradients: the weights end elsewhere.
        let clipped = compare_with_libtorch(0.0, Some(0.05));
        assert_ne!(clipped, compare_with_libtorch(0.0, None));
    }

    #[test]
    fn fused_adam_follows_libtorch_adam_with_weight_decay() {
        compare_with_libtorch(1e-2, None);
    }

    #[test]
    fn single_pass_and_tensor_ops_agree() {
        let shape = [6, 7];
        let init = |seed: f32| {
            Tensor::from_slice(&(0..42).map(|i| (i as f32 * seed).cos()).collect::<Vec<_>>())
                .view(shape)
        };
        let grad = init(0.7);
        let step = AdamStep::at(3, 1e-2, 1e-3);
        // Contiguous tensors take the single pass.
        let (p1, m1, v1) = (init(0.3), init(0.11) * 0.1, init(0.13).abs() * 0.01);
        adam_update(&p1, &grad, &m1, &v1, &step).unwrap();
        // Transposed (non-contiguous) views of the same values take the tensor ops.
        let t = |x: &Tensor| x.tr().contiguous().tr();
        let (p2, m2, v2) = (
            t(&init(0.3)),
            t(&(init(0.11) * 0.1)),
            t(&(init(0.13).abs() * 0.01)),
        );
        assert!(!p2.is_contiguous());
        adam_update(&p2, &t(&grad), &m2, &v2, &step).unwrap();
        for (a, b) in [(&p1, &p2), (&m1, &m2), (&v1, &v2)] {
            for (x, y) in values(a).iter().zip(values(&b.contiguous())) {
                assert_abs_diff_eq!(*x, y, epsilon = 1e-6);
            }
        }
    }

    #[test]
    fn reset_forgets_moments_and_steps() {
        let p = Tensor::from_slice(&[1.0f32, -2.0, 3.0]).set_requires_grad(true);
        let mut adam = Adam::new(vec![p.shallow_clone()], 0.1, 0.0);
        adam.backward_step(&(&p * &p).sum(Kind::Float)).unwrap();
        // The first step moves every weight by lr against its gradient's sign.
        assert_abs_diff_eq!(values(&p)[..], [0.9f32, -1.9, 2.9][..], epsilon = 1e-5);
        adam.reset();
        assert_eq!(adam.steps(), 0);
        assert!(adam
            .exp_avg
            .iter()
            .all(|m| values(m).iter().all(|&x| x == 0.0)));
    }

    #[test]
    fn mismatched_sizes_are_an_error() {
        let p = Tensor::zeros([4], (Kind::Float, Device::Cpu));
        let short = Tensor::zeros([3], (Kind::Float, Device::Cpu));
        let err = adam_update(
            &p,
            &short,
            &p.zeros_like(),
            &p.zeros_like(),
            &AdamStep::at(1, 0.1, 0.0),
        )
        .unwrap_err();
        assert!(err.to_string().contains("grad has 3 elements"), "{err}");
    }

    /// `steps` Adam steps on a small linear model (fixed weights and batch), from `adam`.
    fn train_linear(linear: &nn::Linear, adam: &mut Adam, steps: std::ops::Range<usize>) {
        for step in steps {
            let x = Tensor::from_slice(&[1.0f32, 2.0, -1.0, 0.5, -0.3, 0.8]).view([2, 3])
                * (1.0 + 0.1 * step as f64);
            let y = Tensor::from_slice(&[1.0f32, 0.0, -1.0, 2.0]).view([2, 2]);
            adam.backward_step(&(linear.forward(&x) - y).square().mean(Kind::Float))
                .unwrap();
        }
    }

    fn linear_in(vs: &nn::VarStore) -> nn::Linear {
        let linear = nn::linear(vs.root() / "lin", 3, 2, Default::default());
        tch::no_grad(|| {
            linear
                .ws
                .shallow_clone()
                .copy_(&Tensor::from_slice(&[0.3f32, -0.2, 0.5, 0.1, 0.4, -0.6]).view([2, 3]));
        });
        linear
    }

    #[test]
    fn state_round_trip_continues_bit_for_bit() {
        let vs_a = nn::VarStore::new(Device::Cpu);
        let model_a = linear_in(&vs_a);
        let mut adam_a = Adam::for_var_store(&vs_a, 0.05);
        assert_eq!(adam_a.num_params(), 2);
        train_linear(&model_a, &mut adam_a, 0..3);
        let mut vs_b = nn::VarStore::new(Device::Cpu);
        let model_b = linear_in(&vs_b);
        vs_b.copy(&vs_a).unwrap();
        let mut adam_b = Adam::for_var_store(&vs_b, 0.05);
        adam_b.import_state(adam_a.export_state().unwrap()).unwrap();
        train_linear(&model_a, &mut adam_a, 3..6);
        train_linear(&model_b, &mut adam_b, 3..6);
        let bits = |vs: &nn::VarStore| -> Vec<u32> {
            named_trainable_in_name_order(vs)
                .iter()
                .flat_map(|(_, t)| values(t))
                .map(f32::to_bits)
                .collect()
        };
        assert_eq!(bits(&vs_a), bits(&vs_b));
        let state = adam_a.export_state().unwrap();
        assert_eq!(state, adam_b.export_state().unwrap());
        assert_eq!(state.steps, vec![6, 6]);
        assert!(state.exp_avg[0].iter().any(|&m| m != 0.0));
    }

    #[test]
    fn a_mismatched_state_is_refused_by_name() {
        let vs = nn::VarStore::new(Device::Cpu);
        let _ = linear_in(&vs);
        let mut adam = Adam::for_var_store(&vs, 0.05);
        let mut state = adam.export_state().unwrap();
        state.exp_avg[0].pop();
        let error = adam.import_state(state).unwrap_err().to_string();
        assert!(error.contains("adam_state"), "{error}");
        let mut state = adam.export_state().unwrap();
        state.steps.push(0);
        assert!(adam.import_state(state).is_err());
    }
}
