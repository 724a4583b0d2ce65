//! Irreducible losses: the loss of each training instance under a holdout student of
//! the task that never saw it (trained with NoTeach, no early stop).
//!
//! - For RHO-LOSS (see `l2t_agents::rho_loss`, [`irreducible_losses`]): one student
//!   trained on the whole teacher half (the holdout set D_ho, which the student half
//!   never meets) scores the student half's training split, the split RHO-LOSS teaches.
//! - As a feature for every teacher ([`with_irreducible_loss_feature`]): cross-fitted,
//!   so that learned teachers train and teach on the same kind of signal.
//!
//! Both are cached per task (`rho-irreducible-<hash>.json`,
//! `irreducible-feature-<hash>.json`, named after the task and the holdout models'
//! budget): RHO-LOSS's in the run folder, the feature in a folder the caller names (the
//! run folder for a run, the set-up's cache for the Python envs), so a rerun, a run on
//! other seeds in the same folder, or another env of the task trains the holdout
//! models once.

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
    let (name, path) = cache_file("rho-irreducible", preset, iterations, out.root())?;
    let train = envs.student_env.train_data();
    if path.exists() {
        let file: IrreducibleFile = read_json(&path)?;
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
    let teacher_half = envs.teacher_env.train_data().shallow_clone();
    let (holdout, dev_accuracy) =
        holdout_model(&envs.teacher_env, teacher_half, preset, iterations)?;
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

/// The cache file `<prefix>-<hash>.json` of the folder `dir` for holdout models of
/// `iterations` updates on `preset`'s task (its name, then its path): the hash covers
/// the task (data, student, MDP, split), not its episode or seed counts.
fn cache_file(
    prefix: &str,
    preset: &Preset,
    iterations: usize,
    dir: &std::path::Path,
) -> Result<(String, std::path::PathBuf)> {
    let mut identity = preset.clone();
    identity.episodes = 0;
    identity.eval_seeds = 0;
    identity.first_eval_seed = 0;
    let key =
        serde_json::to_string(&(identity, iterations)).map_err(|e| ExperimentError::Json {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
    let name = format!("{prefix}-{}.json", short_hash(&key));
    let path = dir.join(&name);
    Ok((name, path))
}

/// A cached file read back, its errors naming it.
fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| ExperimentError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    serde_json::from_str(&text).map_err(|e| ExperimentError::Json {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// A holdout model: a fresh student of the task trained with NoTeach for `iterations`
/// updates on `train` (no early stop: tau = 1 and one dev evaluation, at the end, on
/// `teacher_env`'s dev split), and its final dev accuracy.
fn holdout_model(
    teacher_env: &TeachingEnv,
    train: Dataset,
    preset: &Preset,
    iterations: usize,
) -> Result<(TeachingEnv, f64)> {
    let mut task = TrainingTask::of(teacher_env, preset.student.clone(), 1);
    task.train = train;
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

/// The one-off training compute of the irreducible-loss feature of `preset` over `envs`
/// ([`with_irreducible_loss_feature`]), in FLOPs, as RHO-LOSS's paper counts it apart
/// from the selection itself: two holdout students of T' plain updates each (M rows
/// scored and trained per update, the forward reused where the student allows), then
/// one forward over every instance they score (the teacher half and the student half's
/// training split). Their final dev evaluations are measurement and not counted. Paid
/// once per task and shared by every teacher that reads the column.
pub fn irreducible_feature_compute(envs: &PresetEnvs, preset: &Preset) -> u64 {
    let env = &envs.teacher_env;
    let flops = env.flops();
    let m = preset.teaching.batch_size as u64;
    let plain_update = flops.forward(m) + flops.update(m, env.student().reuses_forward());
    let holdout = 2 * preset.teaching.max_iterations as u64 * plain_update;
    let scored = (env.train_data().len() + envs.student_env.train_data().len()) as u64;
    holdout + flops.forward(scored)
}

/// The cached irreducible-loss feature of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FeatureFile {
    /// The task's name.
    task: String,
    /// Updates of each holdout model.
    holdout_iterations: usize,
    /// One loss (nats) per instance of the teacher half's training split.
    teacher_half: Vec<f32>,
    /// One loss (nats) per instance of the student half's training split.
    student_half: Vec<f32>,
}

/// `envs` with the `irreducible_loss` feature ([`Preset::irreducible_loss_feature`]):
/// both training splits carry the loss of a holdout model that never saw the
/// instance, cross-fitted so that teacher training and evaluation read the same kind
/// of model. The teacher half is split in two folds (even and odd positions); a
/// student of the task trained with NoTeach for T' updates on each fold scores the
/// other fold, and the one trained on the even fold scores the student half. Cached
/// per task in the folder `cache` (`irreducible-feature-<hash>.json`, written
/// atomically; the run folder for a run).
pub fn with_irreducible_loss_feature(
    envs: PresetEnvs,
    preset: &Preset,
    cache: &std::path::Path,
) -> Result<PresetEnvs> {
    let iterations = preset.teaching.max_iterations;
    let (_, path) = cache_file("irreducible-feature", preset, iterations, cache)?;
    let teacher_train = envs.teacher_env.train_data();
    let student_train = envs.student_env.train_data();
    let file = if path.exists() {
        read_json::<FeatureFile>(&path)?
    } else {
        let n = teacher_train.len() as i64;
        let even: Vec<i64> = (0..n).step_by(2).collect();
        let odd: Vec<i64> = (1..n).step_by(2).collect();
        let fold = |indices: &[i64], tag: &str| {
            teacher_train.subset(format!("{}-{tag}", teacher_train.name()), indices)
        };
        let (even_data, odd_data) = (fold(&even, "even")?, fold(&odd, "odd")?);
        let (on_even, _) = holdout_model(
            &envs.teacher_env,
            even_data.shallow_clone(),
            preset,
            iterations,
        )?;
        let (on_odd, _) = holdout_model(
            &envs.teacher_env,
            odd_data.shallow_clone(),
            preset,
            iterations,
        )?;
        let chunk = preset.teaching.eval_chunk;
        let odd_losses = per_instance_loss(on_even.student(), &odd_data, chunk)?;
        let even_losses = per_instance_loss(on_odd.student(), &even_data, chunk)?;
        let mut teacher_half = vec![0f32; teacher_train.len()];
        for (&i, &l) in even.iter().zip(&even_losses) {
            teacher_half[i as usize] = l;
        }
        for (&i, &l) in odd.iter().zip(&odd_losses) {
            teacher_half[i as usize] = l;
        }
        let student_half = per_instance_loss(on_even.student(), student_train, chunk)?;
        let file = FeatureFile {
            task: preset.name.clone(),
            holdout_iterations: iterations,
            teacher_half,
            student_half,
        };
        let text = serde_json::to_string_pretty(&file).map_err(|e| ExperimentError::Json {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let io = |e| ExperimentError::Io {
            path: path.clone(),
            source: e,
        };
        std::fs::create_dir_all(cache).map_err(io)?;
        l2t_envs::io::write_atomic(&path, text.as_bytes()).map_err(io)?;
        file
    };
    let attach = |env: &TeachingEnv, losses: Vec<f32>| -> Result<TeachingEnv> {
        let train = env
            .train_data()
            .shallow_clone()
            .with_irreducible_loss(losses)?;
        let device = train.inputs().device();
        Ok(TeachingEnv::new(
            env.config().clone(),
            preset.student.build(device)?,
            train,
            env.dev_data().shallow_clone(),
        )?)
    };
    let wrong = |what: &str, have: usize, want: usize| {
        ExperimentError::Json {
        path: path.clone(),
        reason: format!(
            "holds {have} {what} losses for a split of {want}; delete the file to compute them again"
        ),
    }
    };
    if file.teacher_half.len() != teacher_train.len() {
        return Err(wrong(
            "teacher-half",
            file.teacher_half.len(),
            teacher_train.len(),
        ));
    }
    if file.student_half.len() != student_train.len() {
        return Err(wrong(
            "student-half",
            file.student_half.len(),
            student_train.len(),
        ));
    }
    Ok(PresetEnvs {
        teacher_env: attach(&envs.teacher_env, file.teacher_half)?,
        student_env: attach(&envs.student_env, file.student_half)?,
        test: envs.test,
    })
}
