//! A small hand-written Adam (Kingma & Ba, 2015) whose state can be checkpointed.
//!
//! tch's `nn::Optimizer` wraps libtorch's C++ optimizer, whose moments cannot be read
//! back, so a teacher trained with it cannot be saved and resumed exactly. This Adam
//! keeps its state in plain `Vec<f32>`s and follows libtorch's `torch::optim::Adam`
//! step for step (same defaults as `nn::Adam::default()`: beta1 0.9, beta2 0.999,
//! eps 1e-8, no weight decay, no AMSGrad). For every parameter p with gradient g,
//! with its own step count t:
//!
//! ```text
//! t   <- t + 1
//! m   <- beta1 * m + (1 - beta1) * g
//! v   <- beta2 * v + (1 - beta2) * g^2
//! p   <- p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//! ```
//!
//! The arithmetic is done in f32 (as libtorch does for f32 tensors) on the CPU in a
//! fixed order, so it is bit-reproducible whatever SIMD the machine offers. A
//! parameter without a gradient is skipped, its step count included, as in libtorch.
//! Parameters are expected to be f32 (the policies of this crate are).

use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

use crate::error::{invalid_config, Result};

/// Hyper-parameters of [`Adam`] other than the learning rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamConfig {
    /// Decay of the first-moment average.
    pub beta1: f64,
    /// Decay of the second-moment average.
    pub beta2: f64,
    /// Added to the bias-corrected root of the second moment.
    pub eps: f64,
}

impl Default for AdamConfig {
    /// libtorch's and tch's defaults: beta1 0.9, beta2 0.999, eps 1e-8.
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

impl AdamConfig {
    /// Checks that betas lie in [0, 1) and eps is non-negative and finite.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.beta1) {
            return Err(invalid_config("beta1", "must be in [0, 1)"));
        }
        if !(0.0..1.0).contains(&self.beta2) {
            return Err(invalid_config("beta2", "must be in [0, 1)"));
        }
        if !(self.eps.is_finite() && self.eps >= 0.0) {
            return Err(invalid_config("eps", "must be finite and non-negative"));
        }
        Ok(())
    }
}

/// The state of [`Adam`]: one entry per parameter, in the optimizer's parameter order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdamState {
    /// Steps taken by each parameter (t).
    pub steps: Vec<u64>,
    /// First moments m, flattened (row-major).
    pub exp_avg: Vec<Vec<f32>>,
    /// Second moments v, flattened (row-major).
    pub exp_avg_sq: Vec<Vec<f32>>,
}

/// Adam over a fixed list of f32 parameter tensors.
pub struct Adam {
    config: AdamConfig,
    learning_rate: f64,
    /// Shallow clones of the parameters: they share storage and gradients.
    params: Vec<Tensor>,
    state: AdamState,
}

impl std::fmt::Debug for Adam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adam")
            .field("config", &self.config)
            .field("learning_rate", &self.learning_rate)
            .field("params", &self.params.len())
            .field("steps", &self.state.steps)
            .finish()
    }
}

impl Adam {
    /// Adam over `params` (which it updates in place) with learning rate `learning_rate`.
    pub fn new(params: Vec<Tensor>, learning_rate: f64, config: AdamConfig) -> Result<Self> {
        config.validate()?;
        let sizes: Vec<usize> = params.iter().map(|p| p.numel()).collect();
        let params = params.iter().map(Tensor::shallow_clone).collect();
        let mut adam = Self {
            config,
            learning_rate,
            params,
            state: AdamState {
                steps: vec![0; sizes.len()],
                exp_avg: sizes.iter().map(|&n| vec![0.0; n]).collect(),
                exp_avg_sq: sizes.iter().map(|&n| vec![0.0; n]).collect(),
            },
        };
        adam.set_lr(learning_rate);
        Ok(adam)
    }

    /// Adam over the trainable variables of `vs`, in the order of their names.
    pub fn for_var_store(
        vs: &nn::VarStore,
        learning_rate: f64,
        config: AdamConfig,
    ) -> Result<Self> {
        Self::new(trainable_in_name_order(vs), learning_rate, config)
    }

    /// The learning rate of the next steps.
    pub fn lr(&self) -> f64 {
        self.learning_rate
    }

    /// Sets the learning rate of the next steps.
    pub fn set_lr(&mut self, learning_rate: f64) {
        self.learning_rate = learning_rate;
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    /// Number of parameter tensors.
    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    /// Clears the gradients of all parameters.
    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.zero_grad();
        }
    }

    /// Clears the gradients, back-propagates `loss` and takes one step.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        self.zero_grad();
        loss.f_backward()?;
        self.step()
    }

    /// Scales the gradients the parameters hold so that their global L2 norm is at most
    /// `max_norm` (see [`l2t_envs::student::clip_grad_norm`]); returns the norm before.
    pub fn clip_grad_norm(&self, max_norm: f64) -> Result<f64> {
        Ok(l2t_envs::student::clip_grad_norm(&self.params, max_norm)?)
    }

    /// One Adam step from the gradients currently held by the parameters.
    pub fn step(&mut self) -> Result<()> {
        let beta1 = self.config.beta1;
        let beta2 = self.config.beta2;
        // Scalars are computed in f64 and used as f32, as libtorch does for f32 tensors.
        let one_minus_beta1 = (1.0 - beta1) as f32;
        let one_minus_beta2 = (1.0 - beta2) as f32;
        let (beta1_f, beta2_f, eps) = (beta1 as f32, beta2 as f32, self.config.eps as f32);
        for (i, p) in self.params.iter_mut().enumerate() {
            let grad = p.grad();
            if !grad.defined() {
                continue;
            }
            let g = Vec::<f32>::try_from(grad.to_kind(Kind::Float).flatten(0, -1))?;
            let mut values = tch::no_grad(|| Vec::<f32>::try_from(p.detach().flatten(0, -1)))?;
            let m = &mut self.state.exp_avg[i];
            let v = &mut self.state.exp_avg_sq[i];
            if g.len() != m.len() || values.len() != m.len() {
                return Err(invalid_config(
                    "adam_state",
                    format!(
                        "Adam parameter {i} has {} values, its state {}",
                        values.len(),
                        m.len()
                    ),
                ));
            }
            self.state.steps[i] += 1;
            let t = self.state.steps[i] as f64;
            let bias_correction1 = 1.0 - beta1.powf(t);
            let bias_correction2 = 1.0 - beta2.powf(t);
            let sqrt_bc2 = bias_correction2.sqrt() as f32;
            let step_size = (self.learning_rate / bias_correction1) as f32;
            for k in 0..values.len() {
                m[k] = m[k] * beta1_f + g[k] * one_minus_beta1;
                v[k] = v[k] * beta2_f + g[k] * g[k] * one_minus_beta2;
                let denom = v[k].sqrt() / sqrt_bc2 + eps;
                values[k] -= step_size * m[k] / denom;
            }
            let updated = Tensor::from_slice(&values).view(p.size().as_slice());
            tch::no_grad(|| p.f_copy_(&updated))?;
        }
        Ok(())
    }

    /// A copy of the state (step counts and moments), for checkpoints.
    pub fn export_state(&self) -> AdamState {
        self.state.clone()
    }

    /// Replaces the state with `state`, which must have one entry of the right size per
    /// parameter.
    pub fn import_state(&mut self, state: AdamState) -> Result<()> {
        let n = self.params.len();
        if state.steps.len() != n || state.exp_avg.len() != n || state.exp_avg_sq.len() != n {
            return Err(invalid_config(
                "adam_state",
                format!(
                    "Adam state for {} parameters, the optimizer has {n}",
                    state.steps.len()
                ),
            ));
        }
        for (i, p) in self.params.iter().enumerate() {
            let size = p.numel();
            if state.exp_avg[i].len() != size || state.exp_avg_sq[i].len() != size {
                return Err(invalid_config(
                    "adam_state",
                    format!(
                        "Adam state of parameter {i} has {} and {} values, the parameter {size}",
                        state.exp_avg[i].len(),
                        state.exp_avg_sq[i].len()
                    ),
                ));
            }
        }
        self.state = state;
        Ok(())
    }
}

/// The trainable variables of `vs` sorted by name (the order [`Adam::for_var_store`]
/// and checkpoints use), with their names.
pub fn named_trainable_in_name_order(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut named: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

/// The values of the trainable variables of `vs`, flattened and concatenated in name
/// order: for determinism checks and inspection.
pub fn flat_trainable(vs: &nn::VarStore) -> Result<Vec<f32>> {
    let mut flat = Vec::new();
    for (_, variable) in named_trainable_in_name_order(vs) {
        flat.extend(Vec::<f32>::try_from(variable.flatten(0, -1))?);
    }
    Ok(flat)
}

fn trainable_in_name_order(vs: &nn::VarStore) -> Vec<Tensor> {
    named_trainable_in_name_order(vs)
        .into_iter()
        .map(|(_, t)| t)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{Module, OptimizerConfig};
    use tch::Device;

    /// A tiny linear model 3 -> 2 with fixed weights, and a fixed regression batch.
    fn model(vs: &nn::VarStore) -> nn::Linear {
        let linear = nn::linear(vs.root() / "lin", 3, 2, Default::default());
        tch::no_grad(|| {
            linear
                .ws
                .shallow_clone()
                .copy_(&Tensor::from_slice(&[0.3f32, -0.2, 0.5, 0.1, 0.4, -0.6]).view([2, 3]));
            if let Some(bs) = &linear.bs {
                bs.shallow_clone()
                    .copy_(&Tensor::from_slice(&[0.05f32, -0.1]));
            }
        });
        linear
    }

    fn loss(linear: &nn::Linear, step: usize) -> Tensor {
        let x = Tensor::from_slice(&[
            1.0f32, 2.0, -1.0, 0.5, -0.3, 0.8, -1.2, 0.7, 0.1, 0.0, 1.5, -2.0,
        ])
        .view([4, 3])
            * (1.0 + 0.1 * step as f64);
        let y = Tensor::from_slice(&[1.0f32, 0.0, -1.0, 2.0, 0.5, 0.5, 0.0, -1.0]).view([4, 2]);
        (linear.forward(&x) - y).square().mean(Kind::Float)
    }

    fn weights(vs: &nn::VarStore) -> Vec<f32> {
        named_trainable_in_name_order(vs)
            .iter()
            .flat_map(|(_, t)| Vec::<f32>::try_from(t.detach().flatten(0, -1)).unwrap())
            .collect()
    }

    #[test]
    fn matches_tch_adam_over_twenty_steps() {
        let reference_vs = nn::VarStore::new(Device::Cpu);
        let reference_model = model(&reference_vs);
        let mut reference = nn::Adam::default().build(&reference_vs, 0.05).unwrap();
        let ours_vs = nn::VarStore::new(Device::Cpu);
        let ours_model = model(&ours_vs);
        let mut ours = Adam::for_var_store(&ours_vs, 0.05, AdamConfig::default()).unwrap();
        assert_eq!(ours.num_params(), 2);
        assert_eq!(weights(&reference_vs), weights(&ours_vs));
        for step in 0..20 {
            // A learning-rate change half-way, as REINFORCE's decay does.
            if step == 10 {
                reference.set_lr(0.02);
                ours.set_lr(0.02);
            }
            reference.backward_step(&loss(&reference_model, step));
            ours.backward_step(&loss(&ours_model, step)).unwrap();
            let (a, b) = (weights(&reference_vs), weights(&ours_vs));
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() < 1e-6, "step {step}: tch {x} vs ours {y}");
            }
        }
        // The weights moved: the comparison is not vacuous.
        assert!(weights(&ours_vs)[0] != 0.3);
    }

    #[test]
    fn state_round_trip_continues_identically() {
        let vs_a = nn::VarStore::new(Device::Cpu);
        let model_a = model(&vs_a);
        let mut adam_a = Adam::for_var_store(&vs_a, 0.05, AdamConfig::default()).unwrap();
        for step in 0..3 {
            adam_a.backward_step(&loss(&model_a, step)).unwrap();
        }
        // A second model with the same weights and an imported state.
        let mut vs_b = nn::VarStore::new(Device::Cpu);
        let model_b = model(&vs_b);
        vs_b.copy(&vs_a).unwrap();
        let mut adam_b = Adam::for_var_store(&vs_b, 0.05, AdamConfig::default()).unwrap();
        adam_b.import_state(adam_a.export_state()).unwrap();
        for step in 3..6 {
            adam_a.backward_step(&loss(&model_a, step)).unwrap();
            adam_b.backward_step(&loss(&model_b, step)).unwrap();
        }
        let bits = |w: Vec<f32>| w.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(weights(&vs_a)), bits(weights(&vs_b)));
        assert_eq!(adam_a.export_state(), adam_b.export_state());
        assert_eq!(adam_a.export_state().steps, vec![6, 6]);
    }

    #[test]
    fn rejects_mismatched_state_and_bad_config() {
        let vs = nn::VarStore::new(Device::Cpu);
        let _ = model(&vs);
        let mut adam = Adam::for_var_store(&vs, 0.05, AdamConfig::default()).unwrap();
        let mut state = adam.export_state();
        state.exp_avg[0].pop();
        assert!(adam.import_state(state).is_err());
        let mut state = adam.export_state();
        state.steps.push(0);
        assert!(adam.import_state(state).is_err());
        let bad = AdamConfig {
            beta1: 1.0,
            ..AdamConfig::default()
        };
        assert!(Adam::for_var_store(&vs, 0.05, bad).is_err());
    }
}
