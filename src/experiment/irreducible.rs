//! RHO-LOSS's irreducible losses (see `l2t_agents::rho_loss`): a student of the task
//! trained once with NoTeach on the teacher half (the holdout set D_ho, which the
//! student half never meets), then its cross-entropy on every instance of the student
//! half's training split, the split RHO-LOSS teaches.
//!
//! Cached per task in the run folder (`rho-irreducible-<hash>.json`, named after the
//! task and the holdout model's budget), so a rerun, or a run on other seeds in the
//! same folder, trains the holdout model once.

use serde::{Deserialize, Serialize};

use l2t_agents::{run_episode, NoTeach, RhoLossConfig};
use l2t_envs::{Dataset, Reward, Student, TeachingEnv};

use crate::presets::{Preset, PresetEnvs};
use crate::run_dir::{short_hash, RunDir};

use super::*;

/// Environment seed of the holdout model's one NoTeach episode: far from the
/// evaluation seeds (selection from 0, report from 1000000) and the training seeds.
pub const HOLDOUT_SEED: u64 = 2_000_000;

/// The cached file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct IrreducibleFile {
    /// The task's name.
    task: String,
    /// Updates of the holdout model.
    holdout_iterations: usize,
    /// Its dev accuracy at the end (on the task's dev split).
    holdout_dev_accuracy: f64,
    /// One loss (nats) per instance of the student half's training split.
    irreducible_loss: Vec<f32>,
}

/// The irreducible losses of `envs.student_env`'s training split for RHO-LOSS with
/// `config` on `preset`: read from the run folder's cache, or computed and cached.
pub fn irreducible_losses(
    config: &RhoLossConfig,
    preset: &Preset,
    envs: &PresetEnvs,
    out: &RunDir,
) -> Result<Vec<f32>> {
    let iterations = config
        .holdout_iterations
        .unwrap_or(preset.teaching.max_iterations);
    let mut identity = preset.clone();
    identity.episodes = 0;
    identity.eval_seeds = 0;
    identity.first_eval_seed = 0;
    let key =
        serde_json::to_string(&(identity, iterations)).map_err(|e| ExperimentError::Json {
            path: out.root().to_path_buf(),
            reason: e.to_string(),
        })?;
    let name = format!("rho-irreducible-{}.json", short_hash(&key));
    let path = out.path(&name);
    let train = envs.student_env.train_data();
    if path.exists() {
        let text = std::fs::read_to_string(&path).map_err(|e| ExperimentError::Io {
            path: path.clone(),
            source: e,
        })?;
        let file: IrreducibleFile =
            serde_json::from_str(&text).map_err(|e| ExperimentError::Json {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if file.irreducible_loss.len() != train.len() {
            return Err(ExperimentError::Json {
                path,
                reason: format!(
                    "holds {} irreducible losses, the training split `{}` has {} instances; \
                     delete the file to compute them again",
                    file.irreducible_loss.len(),
                    train.name(),
                    train.len()
                ),
            });
        }
        return Ok(file.irreducible_loss);
    }
    let (holdout, dev_accuracy) = holdout_model(&envs.teacher_env, preset, iterations)?;
    let irreducible_loss = per_instance_loss(holdout.student(), train, preset.teaching.eval_chunk)?;
    out.write_json(
        &name,
        &IrreducibleFile {
            task: preset.name.clone(),
            holdout_iterations: iterations,
            holdout_dev_accuracy: dev_accuracy,
            irreducible_loss: irreducible_loss.clone(),
        },
    )?;
    Ok(irreducible_loss)
}

/// The holdout model: a fresh student of the task trained with NoTeach for
/// `iterations` updates on the teacher half (no early stop: tau = 1 and one dev
/// evaluation, at the end), and its final dev accuracy.
fn holdout_model(
    teacher_env: &TeachingEnv,
    preset: &Preset,
    iterations: usize,
) -> Result<(TeachingEnv, f64)> {
    let mut task = TrainingTask::of(teacher_env, preset.student.clone(), 1);
    let mut teaching = preset.teaching.clone().with_tau(1.0);
    teaching.max_iterations = iterations;
    teaching.max_incoming_batches = None;
    teaching.eval_every = iterations;
    teaching.reward = Reward::IterationsToTau;
    task.teaching = teaching;
    let mut env = task.env()?;
    run_episode(&mut env, &mut NoTeach, Some(HOLDOUT_SEED))?;
    let accuracy = env.info().dev_accuracy;
    Ok((env, accuracy))
}

/// The cross-entropy (nats) of `student` on every instance of `data`, in order.
fn per_instance_loss(student: &dyn Student, data: &Dataset, chunk: usize) -> Result<Vec<f32>> {
    let chunk = chunk.max(1);
    let mut losses = Vec::with_capacity(data.len());
    let mut start = 0;
    while start < data.len() {
        let len = chunk.min(data.len() - start);
        let batch = data.slice(start, len);
        let nll = student
            .logits(&batch)
            .log_softmax(-1, tch::Kind::Float)
            .gather(1, &batch.labels.unsqueeze(1), false)
            .neg()
            .view([-1])
            .to_kind(tch::Kind::Float)
            .to_device(tch::Device::Cpu);
        let nll = Vec::<f32>::try_from(&nll).map_err(|e| ExperimentError::Env(e.into()))?;
        losses.extend(nll);
        start += len;
    }
    Ok(losses)
}
