//! N MLP students of one architecture as one model: the weights of every layer are
//! stacked on a leading student axis, and forward passes are batched matrix products
//! (`baddbmm`), so N students train and evaluate with the op count of one.
//!
//! Each student keeps what makes it an individual [`MlpStudent`]: its initial weights
//! (drawn from its own stream exactly as `MlpStudent::reset` draws them, so student `i`
//! starts bit-identical to an `MlpStudent` reset from the same stream), its own
//! batches, and its own Adam state with its own step count, since students update at
//! different env steps. Only the students named in a training call update.
//!
//! Adam runs student by student on rows of the stacked tensors with
//! [`adam_update`], the same fused single pass as
//! [`MlpStudent`]'s, with each student's own step count and bias corrections. The
//! forward (`baddbmm` against `linear`) rounds differently, so batched students follow
//! the individual ones to float tolerance, not bit for bit.
//!
//! Stacking does not reduce the arithmetic of N students (see BENCHMARKS.md, section
//! `vector_env`): it saves per-op dispatch, and gives libtorch larger ops to spread over
//! several threads.
//!
//! [`MlpStudent`]: super::MlpStudent

use rand_chacha::ChaCha8Rng;
use tch::{nn, Device, Kind, Tensor};

use super::adam::{adam_update, AdamStep};
use super::mlp::{build_layers, layer_widths};
use super::{check_num_classes, init_from_stream, torch_default_init, OptimizerConfig};
use crate::data::Dataset;
use crate::error::{invalid_config, EnvError, Result};
use crate::student::MlpConfig;

/// A forward pass of all N students with its autograd graph, for
/// [`BatchedMlp::train_step_on_recorded`].
#[derive(Debug)]
pub struct RecordedForward {
    /// Leaves sharing storage with the stacked parameters.
    leaves: Vec<Tensor>,
    /// Logits `[N, n, |Y|]` with the graph.
    logits: Tensor,
}

impl RecordedForward {
    /// The logits `[N, n, |Y|]`, detached from the graph.
    pub fn values(&self) -> Tensor {
        self.logits.detach()
    }
}

/// N MLPs of one [`MlpConfig`] (Adam only), stacked on a leading student axis.
pub struct BatchedMlp {
    config: MlpConfig,
    num_students: usize,
    learning_rate: f64,
    weight_decay: f64,
    /// Per layer `l`: `params[2l]` the weights, transposed to `[N, in, out]` so that the
    /// forward is `x @ W` and the gradient comes out contiguous (a transposed gradient
    /// makes every Adam op stride through memory), and `params[2l + 1]` the biases
    /// `[N, out]`. Plain tensors: each training call makes its own leaves.
    params: Vec<Tensor>,
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
    steps: Vec<u32>,
    /// One `MlpStudent`'s variables, used only to draw initial weights in its order.
    template: nn::VarStore,
}

impl std::fmt::Debug for BatchedMlp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchedMlp")
            .field("config", &self.config)
            .field("num_students", &self.num_students)
            .field("steps", &self.steps)
            .finish()
    }
}

impl BatchedMlp {
    /// `num_students` MLPs of `config` on `device`; weights are zero until
    /// [`reset_student`](Self::reset_student).
    pub fn new(config: MlpConfig, num_students: usize, device: Device) -> Result<Self> {
        config.validate()?;
        if num_students == 0 {
            return Err(invalid_config("num_envs", "needs at least one student"));
        }
        let (learning_rate, weight_decay) = match config.optimizer {
            OptimizerConfig::Adam {
                learning_rate,
                weight_decay,
            } => (learning_rate, weight_decay),
            OptimizerConfig::Sgd { .. } => {
                return Err(invalid_config(
                    "student.optimizer",
                    "the batched MLP trains with Adam only",
                ))
            }
        };
        let template = nn::VarStore::new(device);
        let _ = build_layers(&template, &config);
        let n = num_students as i64;
        let widths = layer_widths(&config);
        let mut params = Vec::new();
        for w in widths.windows(2) {
            params.push(Tensor::zeros([n, w[0], w[1]], (Kind::Float, device)));
            params.push(Tensor::zeros([n, w[1]], (Kind::Float, device)));
        }
        let zeros = |ps: &[Tensor]| ps.iter().map(Tensor::zeros_like).collect::<Vec<_>>();
        Ok(Self {
            exp_avg: zeros(&params),
            exp_avg_sq: zeros(&params),
            steps: vec![0; num_students],
            params,
            config,
            num_students,
            learning_rate,
            weight_decay,
            template,
        })
    }

    /// The architecture and optimizer of every student.
    pub fn config(&self) -> &MlpConfig {
        &self.config
    }

    /// Number of students N.
    pub fn num_students(&self) -> usize {
        self.num_students
    }

    /// Adam steps student `i` has taken since its reset.
    pub fn steps(&self, i: usize) -> Option<u32> {
        self.steps.get(i).copied()
    }

    /// Checks that the students can read `data` (input width, classes).
    pub fn accepts(&self, data: &Dataset) -> Result<()> {
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

    fn check_student(&self, i: usize) -> Result<()> {
        if i >= self.num_students {
            return Err(invalid_config(
                "student",
                format!("student {i} of a batch of {}", self.num_students),
            ));
        }
        Ok(())
    }

    /// Re-initialises student `i` from `init_rng` exactly as `MlpStudent::reset` does
    /// (PyTorch's default uniform init, variables in name order) and clears its Adam
    /// state: a fresh student.
    pub fn reset_student(&mut self, i: usize, init_rng: &mut ChaCha8Rng) -> Result<()> {
        self.check_student(i)?;
        let vs = &self.template;
        init_from_stream(vs, init_rng, |name, shape| {
            torch_default_init(name, shape, vs)
        });
        let variables = vs.variables();
        let row = i as i64;
        tch::no_grad(|| -> Result<()> {
            for (index, param) in self.params.iter().enumerate() {
                let (layer, part) = (index / 2, ["weight", "bias"][index % 2]);
                let name = format!("layer{layer}.{part}");
                let value = variables.get(&name).ok_or_else(|| {
                    EnvError::Unsupported(format!("MLP template has no variable {name}"))
                })?;
                // MlpStudent's weights are [out, in]; ours are their transpose.
                let value = if part == "weight" {
                    value.tr()
                } else {
                    value.shallow_clone()
                };
                param.get(row).copy_(&value);
                let _ = self.exp_avg[index].get(row).zero_();
                let _ = self.exp_avg_sq[index].get(row).zero_();
            }
            Ok(())
        })?;
        self.steps[i] = 0;
        Ok(())
    }

    /// Student indices as an int64 tensor on the parameters' device.
    fn index_tensor(&self, students: &[usize]) -> Tensor {
        let indices: Vec<i64> = students.iter().map(|&i| i as i64).collect();
        Tensor::from_slice(&indices).to_device(self.params[0].device())
    }

    /// Whether `students` is every student in order (no gather needed).
    fn is_everyone(&self, students: &[usize]) -> bool {
        students.len() == self.num_students && students.iter().enumerate().all(|(j, &i)| i == j)
    }

    /// The parameters of `students`, as new leaves that record gradients: views of
    /// the stacked tensors for all students, gathered copies for a subset.
    fn leaves(&self, students: &[usize]) -> Vec<Tensor> {
        if self.is_everyone(students) {
            self.params
                .iter()
                .map(|p| p.detach().set_requires_grad(true))
                .collect()
        } else {
            let index = self.index_tensor(students);
            self.params
                .iter()
                .map(|p| p.index_select(0, &index).set_requires_grad(true))
                .collect()
        }
    }

    /// Logits `[k, n, |Y|]` of k students with parameters `params` on inputs
    /// `[k, n, ...]` (or `[1, n, ...]` expanded to all k).
    fn forward(params: &[Tensor], inputs: &Tensor) -> Tensor {
        let k = params[0].size()[0];
        let mut x = inputs.flatten(2, -1);
        if x.size()[0] != k {
            let size = x.size();
            x = x.expand([k, size[1], size[2]], false);
        }
        let layers = params.len() / 2;
        for layer in 0..layers {
            let (weight, bias) = (&params[2 * layer], &params[2 * layer + 1]);
            x = bias.unsqueeze(1).baddbmm(&x, weight, 1.0, 1.0);
            if layer + 1 < layers {
                x = x.relu();
            }
        }
        x
    }

    /// Logits `[k, n, |Y|]` of `students` (all N when `None`) on `inputs` `[k, n, ...]`,
    /// without gradient.
    pub fn logits(&self, students: Option<&[usize]>, inputs: &Tensor) -> Tensor {
        tch::no_grad(|| match students {
            Some(students) if !self.is_everyone(students) => {
                let index = self.index_tensor(students);
                let params: Vec<Tensor> = self
                    .params
                    .iter()
                    .map(|p| p.index_select(0, &index))
                    .collect();
                Self::forward(&params, inputs)
            }
            _ => Self::forward(&self.params, inputs),
        })
    }

    /// The forward pass of all N students on `inputs` `[N, n, ...]` with its graph, for
    /// [`train_step_on_recorded`](Self::train_step_on_recorded) while no weight changes.
    pub fn record_forward(&self, inputs: &Tensor) -> RecordedForward {
        let leaves = self.leaves(&(0..self.num_students).collect::<Vec<_>>());
        let logits = Self::forward(&leaves, inputs);
        RecordedForward { leaves, logits }
    }

    /// One Adam step for each of `students` on its own batch: `inputs[j]` and `labels[j]`
    /// (`[k, M, ...]`, `[k, M]`) are student `students[j]`'s. Returns each student's
    /// mean cross-entropy before the step.
    pub fn train_step(
        &mut self,
        students: &[usize],
        inputs: &Tensor,
        labels: &Tensor,
    ) -> Result<Vec<f64>> {
        for &i in students {
            self.check_student(i)?;
        }
        if students.is_empty() {
            return Ok(Vec::new());
        }
        let leaves = self.leaves(students);
        let logits = Self::forward(&leaves, inputs);
        self.optimise(students, &leaves, &logits, labels)
    }

    /// One Adam step for every student on the logits of `recorded` (made by
    /// [`record_forward`](Self::record_forward) under the current weights) against
    /// `labels` `[N, n]`: the update of [`train_step`](Self::train_step) on those
    /// inputs, without its forward pass.
    pub fn train_step_on_recorded(
        &mut self,
        recorded: RecordedForward,
        labels: &Tensor,
    ) -> Result<Vec<f64>> {
        let everyone: Vec<usize> = (0..self.num_students).collect();
        self.optimise(&everyone, &recorded.leaves, &recorded.logits, labels)
    }

    /// Backward from the summed per-student mean cross-entropies, then Adam on each
    /// student's rows; `leaves[p][j]` belongs to `students[j]`.
    fn optimise(
        &mut self,
        students: &[usize],
        leaves: &[Tensor],
        logits: &Tensor,
        labels: &Tensor,
    ) -> Result<Vec<f64>> {
        let losses = -logits
            .log_softmax(-1, Kind::Float)
            .gather(-1, &labels.unsqueeze(-1), false)
            .squeeze_dim(-1)
            .mean_dim([-1i64].as_slice(), false, Kind::Float);
        losses.sum(Kind::Float).backward();
        let values = Vec::<f64>::try_from(losses.detach().to_kind(Kind::Double))?;
        for &i in students {
            self.steps[i] += 1;
        }
        let everyone = self.is_everyone(students);
        tch::no_grad(|| -> Result<()> {
            let grads: Vec<Tensor> = leaves.iter().map(Tensor::grad).collect();
            // Student by student: its parameters, gradients and moments (about 6 MB
            // for 784-500-10) pass through the cache once, in one fused pass each.
            for (j, &i) in students.iter().enumerate() {
                let (row, student) = (j as i64, i as i64);
                let step = AdamStep::at(self.steps[i], self.learning_rate, self.weight_decay);
                for (index, leaf) in leaves.iter().enumerate() {
                    adam_update(
                        &leaf.get(row),
                        &grads[index].get(row),
                        &self.exp_avg[index].get(student),
                        &self.exp_avg_sq[index].get(student),
                        &step,
                    )?;
                }
            }
            if !everyone {
                // The leaves of a subset are gathered copies: write them back.
                let index_tensor = self.index_tensor(students);
                for (param, leaf) in self.params.iter_mut().zip(leaves) {
                    let _ = param.index_copy_(0, &index_tensor, leaf);
                }
            }
            Ok(())
        })?;
        Ok(values)
    }

    /// Accuracy of each of `students` on `data`, evaluated in chunks of `chunk`
    /// instances shared by all of them.
    pub fn accuracies(&self, students: &[usize], data: &Dataset, chunk: usize) -> Result<Vec<f64>> {
        for &i in students {
            self.check_student(i)?;
        }
        if students.is_empty() {
            return Ok(Vec::new());
        }
        let n = data.len();
        let chunk = chunk.max(1);
        let mut correct = Tensor::zeros(
            [students.len() as i64],
            (Kind::Int64, data.labels().device()),
        );
        let mut start = 0;
        while start < n {
            let len = chunk.min(n - start);
            let batch = data.slice(start, len);
            let predicted = self
                .logits(Some(students), &batch.inputs.unsqueeze(0))
                .argmax(-1, false);
            correct += predicted
                .eq_tensor(&batch.labels.unsqueeze(0))
                .sum_dim_intlist([-1i64].as_slice(), false, Kind::Int64);
            start += len;
        }
        let correct = Vec::<i64>::try_from(correct)?;
        Ok(correct.iter().map(|&c| c as f64 / n as f64).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::SyntheticConfig;
    use crate::seeding::{stream_rng, Stream};
    use crate::student::{MlpStudent, Student};

    fn tiny_config() -> MlpConfig {
        MlpConfig {
            input_dim: 32,
            hidden: vec![16, 8],
            num_classes: 10,
            optimizer: OptimizerConfig::Adam {
                learning_rate: 1e-2,
                weight_decay: 0.0,
            },
        }
    }

    #[test]
    fn students_start_bit_identical_to_mlp_students() {
        let data = SyntheticConfig {
            train_size: 64,
            dev_size: 10,
            test_size: 10,
            ..Default::default()
        }
        .generate()
        .unwrap();
        let mut batched = BatchedMlp::new(tiny_config(), 3, Device::Cpu).unwrap();
        for i in 0..3 {
            batched
                .reset_student(i, &mut stream_rng(10 + i as u64, Stream::StudentInit))
                .unwrap();
        }
        let batch = data.train.slice(0, 64);
        let all = batched.logits(None, &batch.inputs.unsqueeze(0));
        for i in 0..3 {
            let mut single = MlpStudent::new(tiny_config(), Device::Cpu).unwrap();
            single
                .reset(&mut stream_rng(10 + i as u64, Stream::StudentInit))
                .unwrap();
            let expected = single.logits(&batch);
            let got = all.get(i as i64);
            assert!(
                got.allclose(&expected, 1e-6, 1e-6, false),
                "student {i} differs from its MlpStudent"
            );
            // The weights themselves are bit-identical.
            let subset = batched
                .logits(Some(&[i]), &batch.inputs.unsqueeze(0))
                .get(0);
            assert!(subset.equal(&got));
        }
    }

    #[test]
    fn students_train_like_mlp_students_with_their_own_step_counts() {
        let data = SyntheticConfig {
            train_size: 200,
            dev_size: 50,
            test_size: 10,
            ..Default::default()
        }
        .generate()
        .unwrap();
        let n = 3;
        let mut batched = BatchedMlp::new(tiny_config(), n, Device::Cpu).unwrap();
        let mut singles: Vec<MlpStudent> = (0..n)
            .map(|_| MlpStudent::new(tiny_config(), Device::Cpu).unwrap())
            .collect();
        for (i, single) in singles.iter_mut().enumerate() {
            let seed = 20 + i as u64;
            batched
                .reset_student(i, &mut stream_rng(seed, Stream::StudentInit))
                .unwrap();
            single
                .reset(&mut stream_rng(seed, Stream::StudentInit))
                .unwrap();
        }
        let mut noise = stream_rng(0, Stream::Dropout);
        for step in 0..40usize {
            // Student j updates on steps where (step + j) % (j + 1) == 0: all at 0,
            // then at different rates, through both the all-students and the subset
            // paths.
            let students: Vec<usize> = (0..n).filter(|&j| (step + j) % (j + 1) == 0).collect();
            let starts: Vec<usize> = students
                .iter()
                .map(|&j| (step * 7 + j * 13) % 180)
                .collect();
            let batches: Vec<_> = starts.iter().map(|&s| data.train.slice(s, 20)).collect();
            let inputs = Tensor::stack(
                &batches
                    .iter()
                    .map(|b| b.inputs.shallow_clone())
                    .collect::<Vec<_>>(),
                0,
            );
            let labels = Tensor::stack(
                &batches
                    .iter()
                    .map(|b| b.labels.shallow_clone())
                    .collect::<Vec<_>>(),
                0,
            );
            let losses = batched.train_step(&students, &inputs, &labels).unwrap();
            for ((&j, batch), loss) in students.iter().zip(&batches).zip(&losses) {
                let expected = singles[j].train_step(batch, &mut noise).unwrap();
                assert!(
                    (loss - expected).abs() < 1e-4,
                    "step {step} student {j}: {loss} vs {expected}"
                );
            }
        }
        assert_eq!(batched.steps(0), Some(40));
        assert!(batched.steps(1).unwrap() < 40);
        let accuracies = batched.accuracies(&[0, 1, 2], &data.dev, 16).unwrap();
        let dev = data.dev.slice(0, data.dev.len());
        for (i, single) in singles.iter().enumerate() {
            let expected = single.accuracy(&data.dev, 16);
            assert!(
                (accuracies[i] - expected).abs() <= 0.02,
                "{} vs {expected}",
                accuracies[i]
            );
            let got = batched.logits(Some(&[i]), &dev.inputs.unsqueeze(0)).get(0);
            assert!(got.allclose(&single.logits(&dev), 1e-3, 1e-3, false));
        }
    }

    #[test]
    fn recorded_forward_trains_like_a_fresh_one() {
        let data = SyntheticConfig {
            train_size: 100,
            dev_size: 10,
            test_size: 10,
            ..Default::default()
        }
        .generate()
        .unwrap();
        let make = || {
            let mut b = BatchedMlp::new(tiny_config(), 2, Device::Cpu).unwrap();
            for i in 0..2 {
                b.reset_student(i, &mut stream_rng(i as u64, Stream::StudentInit))
                    .unwrap();
            }
            b
        };
        let (mut fresh, mut recorded) = (make(), make());
        let inputs = data.train.inputs().narrow(0, 0, 40).view([2, 20, 32]);
        let labels = data.train.labels().narrow(0, 0, 40).view([2, 20]);
        for _ in 0..5 {
            let a = fresh.train_step(&[0, 1], &inputs, &labels).unwrap();
            let forward = recorded.record_forward(&inputs);
            let b = recorded.train_step_on_recorded(forward, &labels).unwrap();
            assert_eq!(a, b);
        }
        let x = inputs.shallow_clone();
        assert!(fresh.logits(None, &x).equal(&recorded.logits(None, &x)));
    }

    #[test]
    fn rejects_sgd_and_bad_indices() {
        let mut config = tiny_config();
        config.optimizer = OptimizerConfig::Sgd {
            learning_rate: 0.1,
            momentum: 0.9,
            weight_decay: 0.0,
            milestones: vec![],
            decay: 0.1,
        };
        assert!(BatchedMlp::new(config, 2, Device::Cpu).is_err());
        assert!(BatchedMlp::new(tiny_config(), 0, Device::Cpu).is_err());
        let mut batched = BatchedMlp::new(tiny_config(), 2, Device::Cpu).unwrap();
        assert!(batched
            .reset_student(2, &mut stream_rng(0, Stream::StudentInit))
            .is_err());
    }
}
