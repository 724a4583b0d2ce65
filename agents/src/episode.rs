//! The agent-environment loop of one episode, and its summary.

use std::time::Instant;

use l2t_envs::{Env, TeachingEnv};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::teacher::{Teacher, UpdateStats};

/// What one teaching episode achieved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeSummary {
    /// Sum of rewards.
    pub episode_return: f64,
    /// Whether the threshold(s) were reached.
    pub terminated: bool,
    /// Whether a budget cut the episode.
    pub truncated: bool,
    /// Environment steps (incoming batches).
    pub steps: usize,
    /// Student updates made.
    pub iterations: usize,
    /// i_tau, when reached.
    pub iterations_to_tau: Option<usize>,
    /// Effective training instances to reach tau: i_tau * M.
    pub effective_instances_to_tau: Option<usize>,
    /// Instances shown to the teacher.
    pub instances_seen: usize,
    /// Instances kept.
    pub instances_kept: usize,
    /// Best dev accuracy.
    pub best_dev_accuracy: f64,
    /// Share of instances dropped during each epoch of the training split (the schedule
    /// a matched RandTeach replays).
    pub epoch_drop_ratios: Vec<f64>,
    /// Wall-clock seconds of the episode.
    pub wall_seconds: f64,
    /// The teacher's update, if it learned from the episode.
    pub update: Option<UpdateStats>,
}

/// Runs one episode of `teacher` on `env` from `reset(seed)` to its end, then lets the
/// teacher learn.
pub fn run_episode(
    env: &mut TeachingEnv,
    teacher: &mut dyn Teacher,
    seed: Option<u64>,
) -> Result<EpisodeSummary> {
    let start = Instant::now();
    let (mut observation, mut info) = env.reset(seed)?;
    let mut episode_return = 0.0;
    let mut steps = 0;
    // (seen, kept) per epoch of the training split.
    let mut per_epoch: Vec<(usize, usize)> = Vec::new();
    loop {
        let keep_mask = teacher.act(&observation, &info)?;
        let epoch = info.epochs.floor() as usize;
        if per_epoch.len() <= epoch {
            per_epoch.resize(epoch + 1, (0, 0));
        }
        per_epoch[epoch].0 += keep_mask.len();
        per_epoch[epoch].1 += keep_mask.iter().filter(|&&keep| keep).count();
        let step = env.step(&keep_mask)?;
        steps += 1;
        episode_return += step.reward;
        let done = step.done();
        teacher.observe(step.reward, done)?;
        observation = step.observation;
        info = step.info;
        if done {
            let update = teacher.end_episode()?;
            let m = env.config().batch_size;
            return Ok(EpisodeSummary {
                episode_return,
                terminated: step.terminated,
                truncated: step.truncated,
                steps,
                iterations: info.iteration,
                iterations_to_tau: info.iterations_to_tau,
                effective_instances_to_tau: info.iterations_to_tau.map(|i| i * m),
                instances_seen: info.instances_seen,
                instances_kept: info.instances_kept,
                best_dev_accuracy: info.best_dev_accuracy,
                epoch_drop_ratios: per_epoch
                    .iter()
                    .map(|&(seen, kept)| {
                        if seen == 0 {
                            0.0
                        } else {
                            1.0 - kept as f64 / seen as f64
                        }
                    })
                    .collect(),
                wall_seconds: start.elapsed().as_secs_f64(),
                update,
            });
        }
    }
}
