//! The MLP's forward reuse (the observation's forward serves the next update) changes
//! nothing but the time: NoTeach and partial-mask episodes give the same trajectory
//! as a student that computes a second forward pass.

mod common;

use l2t::envs::{Batch, Dataset, Env, MlpStudent, Student, TeachingEnv};
use ndarray::Array1;
use rand_chacha::ChaCha8Rng;
use tch::Tensor;

/// An MLP student that never reuses the observation's forward.
struct NoReuse(Box<MlpStudent>);

impl Student for NoReuse {
    fn num_classes(&self) -> usize {
        self.0.num_classes()
    }
    fn num_parameters(&self) -> usize {
        self.0.num_parameters()
    }
    fn flops(&self, data: &Dataset) -> l2t::envs::student::StudentFlops {
        self.0.flops(data)
    }
    fn accepts(&self, data: &Dataset) -> l2t::envs::Result<()> {
        self.0.accepts(data)
    }
    fn reset(&mut self, init_rng: &mut ChaCha8Rng) -> l2t::envs::Result<()> {
        self.0.reset(init_rng)
    }
    fn logits(&self, batch: &Batch) -> Tensor {
        self.0.logits(batch)
    }
    fn train_step(&mut self, batch: &Batch, noise_rng: &mut ChaCha8Rng) -> l2t::envs::Result<f64> {
        self.0.train_step(batch, noise_rng)
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
    let without = trajectory(Box::new(NoReuse(common::tiny_student(8))), all);
    assert!(with.len() > 20);
    assert_eq!(with, without);
}

#[test]
fn reuse_gives_the_same_trajectory_under_partial_masks() {
    // Alternate all-kept steps (reuse applies when the buffer is empty) with partial
    // masks (leftovers: the update gathers and forwards again).
    let mask = |step: usize| Array1::from_shape_fn(8, |i| step % 3 != 1 || i % 3 != 0);
    let with = trajectory(common::tiny_student(8), mask);
    let without = trajectory(Box::new(NoReuse(common::tiny_student(8))), mask);
    assert_eq!(with, without);
}

#[test]
fn only_reusing_students_train_on_recorded_logits() {
    let mut student = NoReuse(common::tiny_student(8));
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
    let (_, without) = finish(Box::new(NoReuse(common::tiny_student(8))));
    assert_eq!(with.iteration, without.iteration);
    assert_eq!(with.compute.scoring, without.compute.scoring);
    assert_eq!(
        without.compute.training - with.compute.training,
        with.iteration as u64 * 8 * flops.forward_per_row
    );
}
