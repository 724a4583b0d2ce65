//! The engine's two ways of computing less change nothing but the time:
//! - the MLP's forward reuse (the observation's forward serves the next update):
//!   NoTeach and partial-mask episodes give the same trajectory as a student that
//!   computes a second forward pass;
//! - score ahead (several incoming batches scored in one forward while the weights
//!   cannot change): keep-one, keep-none and mixed teachers see bit for bit the
//!   observations, rewards and compute of one batch at a time, on the tiny MLP, the
//!   Fashion-MNIST-sized MLP and the CNN;
//! - recorded forwards (the MLP trains on the kept rows' activations from when they
//!   were scored, with its own backward): the same trajectories, bit for bit, as a
//!   student that makes a forward with the graph for every update.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use l2t::envs::student::Recorded;
use l2t::envs::student::{CnnConfig, CnnStudent};
use l2t::envs::{
    Batch, Dataset, Env, MlpConfig, MlpStudent, Student, SyntheticConfig, TaskData, TeachingConfig,
    TeachingEnv,
};
use ndarray::Array1;
use proptest::prelude::*;
use rand_chacha::ChaCha8Rng;
use tch::Tensor;

/// What a [`Wrapped`] student may use of the engine's reuse.
#[derive(Clone, Copy, PartialEq)]
enum Reuse {
    /// Nothing: every update makes its own forward (a student like the LSTM).
    Nothing,
    /// The observation's forward with the graph when the whole batch is kept, no
    /// recorded forwards: the MLP as the engine drove it before recorded forwards.
    Graph,
    /// Whatever the wrapped student offers.
    All,
}

/// A student that counts its scoring forwards (calls of `logits`,
/// `logits_for_training` and `record`) and its updates on recorded rows, offers the
/// engine only the reuse `reuse` allows, and otherwise is the student it wraps.
struct Wrapped {
    inner: Box<dyn Student>,
    reuse: Reuse,
    forwards: Rc<Cell<usize>>,
    recorded_updates: Rc<Cell<usize>>,
}

impl Wrapped {
    fn new(inner: Box<dyn Student>, reuse: Reuse) -> Self {
        Self {
            inner,
            reuse,
            forwards: Rc::new(Cell::new(0)),
            recorded_updates: Rc::new(Cell::new(0)),
        }
    }

    /// The MLP without any reuse.
    fn no_reuse(student: Box<MlpStudent>) -> Box<Self> {
        Box::new(Self::new(student, Reuse::Nothing))
    }
}

impl Student for Wrapped {
    fn num_classes(&self) -> usize {
        self.inner.num_classes()
    }
    fn num_parameters(&self) -> usize {
        self.inner.num_parameters()
    }
    fn flops(&self, data: &Dataset) -> l2t::envs::student::StudentFlops {
        self.inner.flops(data)
    }
    fn accepts(&self, data: &Dataset) -> l2t::envs::Result<()> {
        self.inner.accepts(data)
    }
    fn reset(&mut self, init_rng: &mut ChaCha8Rng) -> l2t::envs::Result<()> {
        self.inner.reset(init_rng)
    }
    fn logits(&self, batch: &Batch) -> Tensor {
        self.forwards.set(self.forwards.get() + 1);
        self.inner.logits(batch)
    }
    fn train_step(&mut self, batch: &Batch, noise_rng: &mut ChaCha8Rng) -> l2t::envs::Result<f64> {
        self.inner.train_step(batch, noise_rng)
    }
    fn reuses_forward(&self) -> bool {
        self.reuse != Reuse::Nothing && self.inner.reuses_forward()
    }
    fn scores_rows_independently(&self) -> bool {
        self.inner.scores_rows_independently()
    }
    fn logits_for_training(&self, batch: &Batch) -> Tensor {
        self.forwards.set(self.forwards.get() + 1);
        match self.reuse {
            Reuse::Nothing => self.inner.logits(batch),
            _ => self.inner.logits_for_training(batch),
        }
    }
    fn train_step_on_logits(&mut self, logits: &Tensor, labels: &Tensor) -> l2t::envs::Result<f64> {
        match self.reuse {
            Reuse::Nothing => Err(l2t::envs::EnvError::Unsupported(
                "train_step_on_logits on a student that does not reuse forwards".into(),
            )),
            _ => self.inner.train_step_on_logits(logits, labels),
        }
    }
    fn record(&self, batch: &Batch) -> Option<Recorded> {
        let recorded = match self.reuse {
            Reuse::All => self.inner.record(batch),
            _ => None,
        };
        if recorded.is_some() {
            self.forwards.set(self.forwards.get() + 1);
        }
        recorded
    }
    fn train_step_on_recorded(
        &mut self,
        recorded: &Recorded,
        labels: &Tensor,
    ) -> l2t::envs::Result<f64> {
        self.recorded_updates.set(self.recorded_updates.get() + 1);
        self.inner.train_step_on_recorded(recorded, labels)
    }
}

/// (dev accuracy bits, reward bits, iteration, feature bits) of every step of two
/// episodes under `mask(step)`.
fn trajectory(student: Box<dyn Student>, mask: impl Fn(usize) -> Array1<bool>) -> Vec<u64> {
    let data = common::tiny_data();
    let mut env = TeachingEnv::new(common::tiny_config(), student, data.train, data.dev).unwrap();
    let mut out = Vec::new();
    for seed in [3, 4] {
        let (observation, _) = env.reset(Some(seed)).unwrap();
        out.extend(observation.features.iter().map(|v| u64::from(v.to_bits())));
        for step in 0.. {
            let result = env.step(&mask(step)).unwrap();
            out.push(result.info.dev_accuracy.to_bits());
            out.push(result.reward.to_bits());
            out.push(result.info.iteration as u64);
            out.extend(
                result
                    .observation
                    .features
                    .iter()
                    .map(|v| u64::from(v.to_bits())),
            );
            if result.done() {
                break;
            }
        }
    }
    out
}

#[test]
fn reuse_gives_the_same_no_teach_trajectory() {
    let all = |_| Array1::from_elem(8, true);
    let with = trajectory(common::tiny_student(8), all);
    let without = trajectory(Wrapped::no_reuse(common::tiny_student(8)), all);
    assert!(with.len() > 20);
    assert_eq!(with, without);
}

#[test]
fn reuse_gives_the_same_trajectory_under_partial_masks() {
    // Alternate all-kept steps (reuse applies when the buffer is empty) with partial
    // masks (leftovers: the update gathers and forwards again).
    let mask = |step: usize| Array1::from_shape_fn(8, |i| step % 3 != 1 || i % 3 != 0);
    let with = trajectory(common::tiny_student(8), mask);
    let without = trajectory(Wrapped::no_reuse(common::tiny_student(8)), mask);
    assert_eq!(with, without);
}

#[test]
fn only_reusing_students_train_on_recorded_logits() {
    let mut student = Wrapped::no_reuse(common::tiny_student(8));
    assert!(!student.reuses_forward());
    let err = student
        .train_step_on_logits(
            &Tensor::zeros([2, 4], tch::kind::FLOAT_CPU),
            &Tensor::zeros([2], tch::kind::INT64_CPU),
        )
        .unwrap_err();
    assert!(err.to_string().contains("unsupported"), "{err}");
}

/// The training compute charges a forward per updated row only to a student that
/// cannot reuse the scoring forward; the trajectories are the same.
#[test]
fn a_student_that_cannot_reuse_pays_a_forward_per_updated_row() {
    let data = common::tiny_data();
    let finish = |student: Box<dyn Student>| {
        let mut env = TeachingEnv::new(
            common::tiny_config(),
            student,
            data.train.shallow_clone(),
            data.dev.shallow_clone(),
        )
        .unwrap();
        env.reset(Some(3)).unwrap();
        let all = Array1::from_elem(8, true);
        loop {
            let step = env.step(&all).unwrap();
            if step.done() {
                return (env.flops(), step.info);
            }
        }
    };
    let (flops, with) = finish(common::tiny_student(8));
    let (_, without) = finish(Wrapped::no_reuse(common::tiny_student(8)));
    assert_eq!(with.iteration, without.iteration);
    assert_eq!(with.compute.scoring, without.compute.scoring);
    assert_eq!(
        without.compute.training - with.compute.training,
        with.iteration as u64 * 8 * flops.forward_per_row
    );
}

/// Every observation's feature bits, reward, iteration, dev accuracy and compute of two
/// episodes under `mask(step, m)`, with the look-ahead capped at `score_ahead`; the
/// scoring forwards the student made; and its updates on recorded rows.
fn run(
    student: Box<dyn Student>,
    data: &TaskData,
    config: &TeachingConfig,
    score_ahead: usize,
    mask: &dyn Fn(usize, usize) -> Array1<bool>,
) -> (Vec<u64>, usize, usize) {
    let student = Wrapped::new(student, Reuse::All);
    let (forwards, recorded) = (student.forwards.clone(), student.recorded_updates.clone());
    let student = Box::new(student);
    let mut env = TeachingEnv::new(
        config.clone(),
        student,
        data.train.shallow_clone(),
        data.dev.shallow_clone(),
    )
    .unwrap();
    env.set_score_ahead(score_ahead);
    let m = config.batch_size;
    let mut out = Vec::new();
    for seed in [5, 6] {
        let (observation, _) = env.reset(Some(seed)).unwrap();
        out.extend(observation.features.iter().map(|v| u64::from(v.to_bits())));
        for step in 0.. {
            let result = env.step(&mask(step, m)).unwrap();
            let info = &result.info;
            out.extend([
                result.reward.to_bits(),
                info.dev_accuracy.to_bits(),
                info.iteration as u64,
                info.compute.scoring,
                info.compute.training,
                info.compute.measurement,
            ]);
            out.extend(
                result
                    .observation
                    .features
                    .iter()
                    .map(|v| u64::from(v.to_bits())),
            );
            out.extend(info.incoming_indices.iter().map(|&i| i as u64));
            if result.done() {
                break;
            }
        }
    }
    (out, forwards.get(), recorded.get())
}

/// Keep-one (the highest index of a rotating choice), then keep-none stretches, then
/// mixed masks: the look-ahead is used, cut short by updates, and off for NoTeach.
fn teaching_masks(step: usize, m: usize) -> Array1<bool> {
    match step % 97 {
        0..=59 => Array1::from_shape_fn(m, |i| i == (step * 7) % m),
        60..=69 => Array1::from_elem(m, false),
        70..=79 => Array1::from_elem(m, true),
        _ => Array1::from_shape_fn(m, |i| (i * 31 + step * 17).is_multiple_of(5)),
    }
}

/// Asserts that scoring ahead gives exactly the one-batch trajectory with fewer than
/// half the forwards.
fn assert_score_ahead_changes_only_the_forwards(
    student: impl Fn() -> Box<dyn Student>,
    data: &TaskData,
    config: &TeachingConfig,
) {
    let (one, one_forwards, _) = run(student(), data, config, 1, &teaching_masks);
    let (ahead, ahead_forwards, _) = run(student(), data, config, 16, &teaching_masks);
    assert!(one.len() > 1000, "the episodes are long enough to test");
    assert_eq!(one.len(), ahead.len());
    let first_difference = one.iter().zip(&ahead).position(|(a, b)| a != b);
    assert_eq!(first_difference, None, "score ahead changed the trajectory");
    assert!(
        // Dev evaluations count too; the keep-one stretches score up to 16 at a time.
        ahead_forwards * 2 < one_forwards,
        "{ahead_forwards} forwards ahead against {one_forwards} one batch at a time"
    );
}

#[test]
fn score_ahead_gives_the_one_batch_trajectory_on_the_tiny_mlp() {
    let data = common::tiny_data();
    let config = TeachingConfig {
        max_iterations: 60,
        ..common::tiny_config()
    };
    assert_score_ahead_changes_only_the_forwards(|| common::tiny_student(8), &data, &config);
}

/// Synthetic data of Fashion-MNIST's shape (784 inputs, 10 classes) from `data_seed`,
/// and a short MDP at M = 20 that never reaches its tau.
fn fashion_mnist_shaped(data_seed: u64) -> (TaskData, TeachingConfig) {
    let data = SyntheticConfig {
        num_classes: 10,
        input_dim: 784,
        train_size: 2000,
        dev_size: 200,
        test_size: 10,
        separation: 0.5,
        label_noise: 0.1,
        data_seed,
    }
    .generate()
    .unwrap();
    let config = TeachingConfig {
        batch_size: 20,
        max_iterations: 25,
        eval_every: 5,
        ..TeachingConfig::default()
    }
    .with_tau(0.99);
    (data, config)
}

/// The Fashion-MNIST MLP's widths (784-500-10) at M = 20, where sgemm picks its
/// blocking by the row count.
#[test]
fn score_ahead_gives_the_one_batch_trajectory_on_the_fashion_mnist_mlp() {
    common::single_thread();
    let (data, config) = fashion_mnist_shaped(4);
    let student = || -> Box<dyn Student> {
        Box::new(MlpStudent::new(MlpConfig::mnist(), tch::Device::Cpu).unwrap())
    };
    assert_score_ahead_changes_only_the_forwards(student, &data, &config);
}

/// The Fashion-MNIST MLP trained on recorded rows (scored ahead or one batch at a
/// time) follows, bit for bit, the trajectory of the same MLP that forwards again with
/// the graph for every update, under keep-one, keep-none, keep-all and mixed masks.
#[test]
fn recorded_forwards_give_the_trajectory_of_a_forward_per_update() {
    common::single_thread();
    let (data, config) = fashion_mnist_shaped(5);
    let mlp = || Box::new(MlpStudent::new(MlpConfig::mnist(), tch::Device::Cpu).unwrap());
    let (before, _, none) = run(
        Box::new(Wrapped::new(mlp(), Reuse::Graph)),
        &data,
        &config,
        1,
        &teaching_masks,
    );
    assert_eq!(none, 0);
    assert!(before.len() > 1000, "the episodes are long enough to test");
    for score_ahead in [1, 16] {
        let (after, _, updates) = run(mlp(), &data, &config, score_ahead, &teaching_masks);
        assert!(updates >= 15, "{updates} updates on recorded rows");
        let first_difference = before.iter().zip(&after).position(|(a, b)| a != b);
        assert_eq!(before.len(), after.len());
        assert_eq!(
            first_difference, None,
            "recorded forwards changed the trajectory (score ahead {score_ahead})"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Under any sequence of keep-masks, scored ahead or not, the MLP trained on
    /// recorded rows follows the trajectory, bit for bit, of the same MLP that forwards
    /// again for every update.
    #[test]
    fn recorded_forwards_change_no_trajectory_under_random_masks(
        masks in prop::collection::vec(any::<u8>(), 1..60),
        score_ahead in prop::sample::select(vec![1usize, 4, 32]),
    ) {
        let data = common::tiny_data();
        let config = TeachingConfig {
            max_iterations: 40,
            ..common::tiny_config()
        };
        let mask = |step: usize, m: usize| {
            let bits = masks[step % masks.len()];
            Array1::from_shape_fn(m, |i| bits >> i & 1 == 1)
        };
        let (before, _, _) = run(
            Box::new(Wrapped::new(common::tiny_student(8), Reuse::Graph)),
            &data,
            &config,
            score_ahead,
            &mask,
        );
        let (after, _, _) = run(common::tiny_student(8), &data, &config, score_ahead, &mask);
        prop_assert_eq!(before, after);
    }
}

#[test]
fn score_ahead_gives_the_one_batch_trajectory_on_the_cnn() {
    common::single_thread();
    // Random 1x12x12 images whose class is the brightest quadrant.
    let n = 600;
    let inputs = Tensor::from_slice(
        &(0..n * 144)
            .map(|i| ((i * 7919 % 1000) as f32 / 1000.0) - 0.5)
            .collect::<Vec<f32>>(),
    )
    .view([n as i64, 1, 12, 12]);
    let labels = inputs
        .view([n as i64, 1, 2, 6, 2, 6])
        .sum_dim_intlist([1, 3, 5].as_slice(), false, tch::Kind::Float)
        .view([n as i64, 4])
        .argmax(-1, false);
    let all = Dataset::new("quadrants", inputs, labels, 4).unwrap();
    let train: Vec<i64> = (0..500).collect();
    let dev: Vec<i64> = (500..600).collect();
    let data = TaskData {
        train: all.subset("train", &train).unwrap(),
        dev: all.subset("dev", &dev).unwrap(),
        test: all.subset("test", &dev).unwrap(),
    };
    let config = TeachingConfig {
        batch_size: 10,
        max_iterations: 30,
        eval_every: 5,
        ..TeachingConfig::default()
    }
    .with_tau(0.99);
    let student = || -> Box<dyn Student> {
        let config = CnnConfig {
            input_shape: [1, 12, 12],
            channels: vec![4, 8],
            num_classes: 4,
            ..CnnConfig::fashion_mnist()
        };
        Box::new(CnnStudent::new(config, tch::Device::Cpu).unwrap())
    };
    assert_score_ahead_changes_only_the_forwards(student, &data, &config);
}
