//! The agent-environment loop of one episode, and its summary.

use std::time::Instant;

use l2t_envs::{Dataset, Env, TeachingEnv, TeachingInfo};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::teacher::Teacher;

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
    /// C_tau: the training compute (scoring + training FLOPs) to reach tau
    /// ([`l2t_envs::Compute`]; measurement excluded).
    #[serde(default)]
    pub compute_to_tau: Option<u64>,
    /// The episode's FLOPs by kind.
    #[serde(default)]
    pub compute: l2t_envs::Compute,
    /// Wall-clock seconds to reach tau, dev and test evaluations excluded (what the
    /// teaching itself took: scoring, the policy, training).
    #[serde(default)]
    pub unmeasured_seconds_to_tau: Option<f64>,
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
    /// The teacher's update, set by [`crate::rollout::train_on`] on the last
    /// episode of each update.
    pub update: Option<UpdateStats>,
    /// The student's learning curve: one point per dev evaluation.
    #[serde(default)]
    pub curve: Vec<CurvePoint>,
    /// What the teacher dropped by loss rank within each incoming batch, in windows of
    /// [`DROP_WINDOW_STEPS`] steps (the paper's analysis of the filtered data).
    #[serde(default)]
    pub loss_rank_drops: Vec<LossRankDrops>,
}

/// What a learned teacher reports after an update ([`crate::rollout::Learner::learn`]), carried by the last
/// episode of each update ([`EpisodeSummary::update`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateStats {
    /// The episode's return (sum of rewards).
    pub episode_return: f64,
    /// The reward baseline used for the update.
    pub baseline: f64,
    /// The surrogate loss that was minimised.
    pub loss: f64,
    /// The learning rate of the update.
    pub learning_rate: f64,
    /// Share of instances kept during the episode.
    pub kept_ratio: f64,
}

/// The student's state at one dev evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Student updates so far.
    pub iteration: usize,
    /// Effective training instances so far (iteration * M).
    pub effective_instances: usize,
    /// Training compute so far, in FLOPs: scoring + training, measurement excluded
    /// ([`l2t_envs::Compute::training_total`]); 0 in reports written before it was
    /// recorded.
    #[serde(default)]
    pub training_compute: u64,
    /// Dev accuracy at this point.
    pub dev_accuracy: f64,
    /// Test accuracy at this point, where the episode was asked to measure it.
    pub test_accuracy: Option<f64>,
    /// Wall-clock seconds since the episode's reset.
    pub seconds: f64,
}

/// Number of loss-rank buckets of [`LossRankDrops`] (bucket 0: the lowest losses).
pub const LOSS_RANK_BUCKETS: usize = 5;
/// Environment steps per [`LossRankDrops`] window.
pub const DROP_WINDOW_STEPS: usize = 50;

/// Instances seen and dropped in each loss-rank bucket during one window of steps.
/// An instance's bucket is `rank * 5 / M`, its loss rank within its incoming batch
/// (0 = smallest loss).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossRankDrops {
    /// Student updates at the end of the window.
    pub iteration: usize,
    /// Instances seen per bucket.
    pub seen: [usize; LOSS_RANK_BUCKETS],
    /// Instances dropped per bucket.
    pub dropped: [usize; LOSS_RANK_BUCKETS],
    /// Instances seen per margin bucket: the margin p_y - max_{y' != y} p_{y'} in
    /// [-1, 1] cut into five equal bins (bucket 0: [-1, -0.6), ... bucket 4: [0.6, 1]).
    #[serde(default)]
    pub margin_seen: [usize; LOSS_RANK_BUCKETS],
    /// Instances dropped per margin bucket.
    #[serde(default)]
    pub margin_dropped: [usize; LOSS_RANK_BUCKETS],
}

impl LossRankDrops {
    /// An empty window ending at `iteration`.
    pub fn empty(iteration: usize) -> Self {
        Self {
            iteration,
            seen: [0; LOSS_RANK_BUCKETS],
            dropped: [0; LOSS_RANK_BUCKETS],
            margin_seen: [0; LOSS_RANK_BUCKETS],
            margin_dropped: [0; LOSS_RANK_BUCKETS],
        }
    }

    /// Share of each loss-rank bucket's instances that were dropped (0 for an empty
    /// bucket).
    pub fn dropped_shares(&self) -> [f64; LOSS_RANK_BUCKETS] {
        shares(&self.dropped, &self.seen)
    }

    /// Share of each margin bucket's instances that were dropped (0 for an empty
    /// bucket).
    pub fn margin_dropped_shares(&self) -> [f64; LOSS_RANK_BUCKETS] {
        shares(&self.margin_dropped, &self.margin_seen)
    }

    /// Adds `other`'s counts to this window's.
    pub fn absorb(&mut self, other: &LossRankDrops) {
        for b in 0..LOSS_RANK_BUCKETS {
            self.seen[b] += other.seen[b];
            self.dropped[b] += other.dropped[b];
            self.margin_seen[b] += other.margin_seen[b];
            self.margin_dropped[b] += other.margin_dropped[b];
        }
    }
}

/// `dropped[b] / seen[b]` per bucket, 0 for an empty bucket.
fn shares(
    dropped: &[usize; LOSS_RANK_BUCKETS],
    seen: &[usize; LOSS_RANK_BUCKETS],
) -> [f64; LOSS_RANK_BUCKETS] {
    std::array::from_fn(|b| {
        if seen[b] == 0 {
            0.0
        } else {
            dropped[b] as f64 / seen[b] as f64
        }
    })
}

/// What [`run_episode_recorded`] measures besides the episode itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Recording<'a> {
    /// A split (e.g. the test split) whose accuracy is measured at every
    /// `test_every`-th dev evaluation and at the end, for the learning curve.
    pub test: Option<&'a Dataset>,
    /// Dev evaluations between two test measurements (0: only at the end).
    pub test_every: usize,
}

/// Runs one episode of `teacher` on `env` from `reset(seed)` to its end, then lets the
/// teacher learn. Records the dev-accuracy curve and the drops by loss rank.
pub fn run_episode(
    env: &mut TeachingEnv,
    teacher: &mut dyn Teacher,
    seed: Option<u64>,
) -> Result<EpisodeSummary> {
    run_episode_recorded(env, teacher, seed, Recording::default())
}

/// [`run_episode`], also measuring the accuracy on `recording.test` along the curve.
pub fn run_episode_recorded(
    env: &mut TeachingEnv,
    teacher: &mut dyn Teacher,
    seed: Option<u64>,
    recording: Recording<'_>,
) -> Result<EpisodeSummary> {
    let start = Instant::now();
    let (mut observation, mut info) = env.reset(seed)?;
    // The drop diagnostics read `loss` and `margin` where the env has them.
    let loss_column = env.layout().column("loss").ok();
    let margin_column = env.layout().column("margin").ok();
    let mut episode_return = 0.0;
    let mut unmeasured_seconds_to_tau = None;
    let mut steps = 0;
    let mut evaluations = 0;
    let mut curve = Vec::new();
    let mut record_point = |env: &TeachingEnv, info: &TeachingInfo, test_now: bool| {
        let test_accuracy = match recording.test {
            Some(test) if test_now => Some(env.evaluate(test)),
            _ => None,
        }
        .transpose()?;
        curve.push(CurvePoint {
            iteration: info.iteration,
            effective_instances: info.effective_instances,
            training_compute: info.compute.training_total(),
            dev_accuracy: info.dev_accuracy,
            test_accuracy,
            seconds: start.elapsed().as_secs_f64(),
        });
        Ok::<_, crate::error::AgentError>(())
    };
    record_point(env, &info, true)?;
    // (seen, kept) per epoch of the training split.
    let mut per_epoch: Vec<(usize, usize)> = Vec::new();
    let mut loss_rank_drops: Vec<LossRankDrops> = Vec::new();
    loop {
        let keep_mask = teacher.act(&observation, &info)?;
        let epoch = info.epochs.floor() as usize;
        if per_epoch.len() <= epoch {
            per_epoch.resize(epoch + 1, (0, 0));
        }
        per_epoch[epoch].0 += keep_mask.len();
        per_epoch[epoch].1 += keep_mask.iter().filter(|&&keep| keep).count();
        if let Some(column) = &loss_column {
            if steps % DROP_WINDOW_STEPS == 0 {
                loss_rank_drops.push(LossRankDrops::empty(info.iteration));
            }
            if let Some(window) = loss_rank_drops.last_mut() {
                count_drops_by_loss_rank(
                    observation.at(column)?.iter().copied(),
                    keep_mask.iter().copied(),
                    window,
                );
                if let Some(margin) = &margin_column {
                    count_drops_by_margin(
                        observation.at(margin)?.iter().copied(),
                        keep_mask.iter().copied(),
                        window,
                    );
                }
            }
        }
        let step = env.step(&keep_mask)?;
        if unmeasured_seconds_to_tau.is_none() && step.info.iterations_to_tau.is_some() {
            unmeasured_seconds_to_tau =
                Some(start.elapsed().as_secs_f64() - env.measurement_seconds());
        }
        steps += 1;
        episode_return += step.reward;
        let done = step.done();
        teacher.observe(step.reward, done)?;
        observation = step.observation;
        info = step.info;
        if let Some(window) = loss_rank_drops.last_mut() {
            window.iteration = info.iteration;
        }
        if info.evaluated {
            evaluations += 1;
            let test_now =
                done || (recording.test_every > 0 && evaluations % recording.test_every == 0);
            record_point(env, &info, test_now)?;
        } else if done && recording.test.is_some() {
            record_point(env, &info, true)?;
        }
        if done {
            let m = env.config().batch_size;
            return Ok(EpisodeSummary {
                episode_return,
                terminated: step.terminated,
                truncated: step.truncated,
                steps,
                iterations: info.iteration,
                iterations_to_tau: info.iterations_to_tau,
                effective_instances_to_tau: info.iterations_to_tau.map(|i| i * m),
                compute_to_tau: info.compute_to_tau,
                compute: info.compute,
                unmeasured_seconds_to_tau,
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
                update: None,
                curve,
                loss_rank_drops,
            });
        }
    }
}

/// Adds one incoming batch to `window`: each instance's loss rank within the batch
/// (ties by position) picks its bucket, and a `false` in the keep-mask counts it dropped.
fn count_drops_by_loss_rank(
    losses: impl Iterator<Item = f32>,
    keep_mask: impl Iterator<Item = bool>,
    window: &mut LossRankDrops,
) {
    let rows: Vec<(f32, bool)> = losses.zip(keep_mask).collect();
    let m = rows.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| rows[a].0.total_cmp(&rows[b].0).then(a.cmp(&b)));
    for (rank, &row) in order.iter().enumerate() {
        let bucket = rank * LOSS_RANK_BUCKETS / m;
        window.seen[bucket] += 1;
        if !rows[row].1 {
            window.dropped[bucket] += 1;
        }
    }
}

/// Adds one incoming batch to `window`'s margin buckets: margin m in [-1, 1] falls in
/// bucket `floor((m + 1) / 2 * 5)` (m = 1 in the last), and a `false` in the keep-mask
/// counts it dropped.
fn count_drops_by_margin(
    margins: impl Iterator<Item = f32>,
    keep_mask: impl Iterator<Item = bool>,
    window: &mut LossRankDrops,
) {
    for (margin, keep) in margins.zip(keep_mask) {
        let position = (f64::from(margin) + 1.0) / 2.0 * LOSS_RANK_BUCKETS as f64;
        let bucket = (position.max(0.0) as usize).min(LOSS_RANK_BUCKETS - 1);
        window.margin_seen[bucket] += 1;
        if !keep {
            window.margin_dropped[bucket] += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_counted_in_loss_rank_buckets() {
        let mut window = LossRankDrops::empty(0);
        // Ten instances, losses descending with position; drop the two largest losses
        // (positions 0 and 1) and the smallest one (position 9).
        let losses = (0..10).map(|i| 1.0 - i as f32 / 10.0);
        let keep = (0..10).map(|i| !(i < 2 || i == 9));
        count_drops_by_loss_rank(losses, keep, &mut window);
        assert_eq!(window.seen, [2; 5]);
        assert_eq!(window.dropped, [1, 0, 0, 0, 2]);
        assert_eq!(window.dropped_shares(), [0.5, 0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn drops_are_counted_in_margin_buckets() {
        let mut window = LossRankDrops::empty(0);
        let margins = [-1.0f32, -0.7, -0.59, 0.0, 0.19, 0.6, 0.99, 1.0];
        let keep = [false, true, false, true, false, true, true, false];
        count_drops_by_margin(margins.into_iter(), keep.into_iter(), &mut window);
        assert_eq!(window.margin_seen, [2, 1, 2, 0, 3]);
        assert_eq!(window.margin_dropped, [1, 1, 1, 0, 1]);
        assert_eq!(window.margin_dropped_shares()[3], 0.0, "empty bucket");
        let mut total = LossRankDrops::empty(0);
        total.absorb(&window);
        total.absorb(&window);
        assert_eq!(total.margin_seen, [4, 2, 4, 0, 6]);
    }
}
