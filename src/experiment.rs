//! The experiment layer: train a teacher on the teacher half, teach fresh students on
//! the student half, and compare teachers over seeds with confidence intervals.
//!
//! Fairness: every teacher is evaluated with the same environment seeds, so for a
//! given seed all teachers see the same data order and the same student
//! initialisation; only their keep-masks differ.

use serde::{Deserialize, Serialize};

use l2t_agents::{run_episode, EpisodeSummary, Teacher};
use l2t_envs::{Dataset, TeachingEnv};

/// Error of the experiment layer.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// A teacher or the environment failed.
    #[error(transparent)]
    Agent(#[from] l2t_agents::AgentError),
    /// The environment failed.
    #[error(transparent)]
    Env(#[from] l2t_envs::EnvError),
    /// An experiment setting is invalid.
    #[error("invalid experiment setting `{field}`: {reason}")]
    InvalidSetting {
        /// The setting.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

/// Result alias of the experiment layer.
pub type Result<T, E = ExperimentError> = std::result::Result<T, E>;

/// Trains `teacher` for `episodes` episodes on `env` (the teacher half), episode `k`
/// seeded with `first_seed + k`. `on_episode` sees every finished episode (progress,
/// logs).
pub fn train_teacher(
    env: &mut TeachingEnv,
    teacher: &mut dyn Teacher,
    episodes: usize,
    first_seed: u64,
    mut on_episode: impl FnMut(usize, &EpisodeSummary),
) -> Result<Vec<EpisodeSummary>> {
    teacher.set_training(true);
    let mut history = Vec::with_capacity(episodes);
    for k in 0..episodes {
        let summary = run_episode(env, teacher, Some(first_seed + k as u64))?;
        on_episode(k, &summary);
        history.push(summary);
    }
    teacher.set_training(false);
    Ok(history)
}

/// One evaluation episode: a fresh student taught from `reset(seed)` to the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationRecord {
    /// Teacher name.
    pub teacher: String,
    /// Environment seed (data order and student initialisation).
    pub seed: u64,
    /// Test accuracy of the student when the episode ended.
    pub test_accuracy: f64,
    /// The episode.
    pub episode: EpisodeSummary,
}

/// Teaches one fresh student per seed with `teacher` (in evaluation mode) and reports
/// test accuracy at the end of each episode.
pub fn evaluate_teacher(
    env: &mut TeachingEnv,
    teacher: &mut dyn Teacher,
    seeds: &[u64],
    test: &Dataset,
) -> Result<Vec<EvaluationRecord>> {
    teacher.set_training(false);
    let mut records = Vec::with_capacity(seeds.len());
    for &seed in seeds {
        let episode = run_episode(env, teacher, Some(seed))?;
        records.push(EvaluationRecord {
            teacher: teacher.name().to_string(),
            seed,
            test_accuracy: env.evaluate(test)?,
            episode,
        });
    }
    Ok(records)
}

/// Mean and half-width of the 95% confidence interval (Student's t) of `values`.
/// The half-width is 0 for fewer than two values.
pub fn mean_ci95(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, 0.0);
    }
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, t_critical_95(n - 1) * (variance / n as f64).sqrt())
}

/// Two-sided 95% critical value of Student's t with `df` degrees of freedom.
fn t_critical_95(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => TABLE[df - 1],
        31..=60 => 2.000,
        61..=120 => 1.980,
        _ => 1.960,
    }
}

/// Aggregate of one teacher's evaluation records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherSummary {
    /// Teacher name.
    pub teacher: String,
    /// Seeds evaluated.
    pub runs: usize,
    /// Seeds whose student reached tau.
    pub reached: usize,
    /// Mean effective training instances to reach tau; a run that did not reach it
    /// counts at the budget T' * M (so the mean is a lower bound then).
    pub instances_to_tau_mean: f64,
    /// Half-width of the 95% confidence interval of that mean.
    pub instances_to_tau_ci95: f64,
    /// Mean test accuracy at the end of the episodes.
    pub test_accuracy_mean: f64,
    /// Half-width of its 95% confidence interval.
    pub test_accuracy_ci95: f64,
    /// Mean share of instances kept.
    pub kept_ratio_mean: f64,
    /// Mean wall-clock seconds per episode.
    pub wall_seconds_mean: f64,
}

/// Summarises `records` of one teacher; `budget_instances` (T' * M) stands in for runs
/// that never reached tau.
pub fn summarise(
    teacher: &str,
    records: &[EvaluationRecord],
    budget_instances: usize,
) -> TeacherSummary {
    let instances: Vec<f64> = records
        .iter()
        .map(|r| {
            r.episode
                .effective_instances_to_tau
                .unwrap_or(budget_instances) as f64
        })
        .collect();
    let accuracies: Vec<f64> = records.iter().map(|r| r.test_accuracy).collect();
    let kept: Vec<f64> = records
        .iter()
        .map(|r| r.episode.instances_kept as f64 / r.episode.instances_seen.max(1) as f64)
        .collect();
    let wall: Vec<f64> = records.iter().map(|r| r.episode.wall_seconds).collect();
    let (instances_to_tau_mean, instances_to_tau_ci95) = mean_ci95(&instances);
    let (test_accuracy_mean, test_accuracy_ci95) = mean_ci95(&accuracies);
    TeacherSummary {
        teacher: teacher.to_string(),
        runs: records.len(),
        reached: records
            .iter()
            .filter(|r| r.episode.effective_instances_to_tau.is_some())
            .count(),
        instances_to_tau_mean,
        instances_to_tau_ci95,
        test_accuracy_mean,
        test_accuracy_ci95,
        kept_ratio_mean: mean_ci95(&kept).0,
        wall_seconds_mean: mean_ci95(&wall).0,
    }
}

/// A markdown table of teacher summaries, the first row being the reference
/// (instances relative to it in the last column).
pub fn markdown_table(summaries: &[TeacherSummary]) -> String {
    let mut out = String::from(
        "| teacher | reached tau | effective instances to tau (mean ± 95% CI) | vs first row | test accuracy at end | kept ratio | s / episode |\n|---|---|---|---|---|---|---|\n",
    );
    let reference = summaries.first().map(|s| s.instances_to_tau_mean);
    for s in summaries {
        let relative = reference.filter(|r| *r > 0.0).map_or("-".to_string(), |r| {
            format!("{:.0}%", 100.0 * s.instances_to_tau_mean / r)
        });
        out.push_str(&format!(
            "| {} | {}/{} | {:.0} ± {:.0} | {} | {:.4} ± {:.4} | {:.3} | {:.2} |\n",
            s.teacher,
            s.reached,
            s.runs,
            s.instances_to_tau_mean,
            s.instances_to_tau_ci95,
            relative,
            s.test_accuracy_mean,
            s.test_accuracy_ci95,
            s.kept_ratio_mean,
            s.wall_seconds_mean
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn confidence_interval_matches_hand_computation() {
        // mean 2, sample sd 1, n = 3: half-width = 4.303 * 1 / sqrt(3).
        let (mean, half) = mean_ci95(&[1.0, 2.0, 3.0]);
        assert_relative_eq!(mean, 2.0);
        assert_relative_eq!(half, 4.303 / 3f64.sqrt(), epsilon = 1e-12);
        assert_eq!(mean_ci95(&[5.0]), (5.0, 0.0));
        assert!(mean_ci95(&[]).0.is_nan());
    }
}

/// The training episodes of one learned teacher.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingRun {
    /// Teacher name.
    pub teacher: String,
    /// Its episodes, in order.
    pub episodes: Vec<EpisodeSummary>,
}

/// Everything a `reproduce` run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The preset that was run.
    pub preset: crate::presets::Preset,
    /// The learned teachers' training episodes on the teacher half.
    pub training: Vec<TrainingRun>,
    /// Every evaluation episode on the student half.
    pub evaluations: Vec<EvaluationRecord>,
    /// Per-teacher aggregates, NoTeach first.
    pub summaries: Vec<TeacherSummary>,
}

impl Report {
    /// The comparison as a markdown table.
    pub fn table(&self) -> String {
        markdown_table(&self.summaries)
    }
}

/// Runs a preset end to end: trains the REINFORCE teacher and the actor-critic teacher
/// on the teacher half (same episode budget and seeds), then teaches fresh students on
/// the student half with NoTeach, RandTeach (matched to the per-epoch drop ratio of the
/// trained REINFORCE teacher, as in the paper), SPL, online batch selection and the
/// trained teachers, over the same seeds. `log` receives one line per episode.
pub fn reproduce(
    preset: &crate::presets::Preset,
    data_dir: &std::path::Path,
    mut log: impl FnMut(&str),
) -> Result<Report> {
    use l2t_agents::{
        ActorCritic, NoTeach, OnlineBatch, RandTeach, RandTeachConfig, Reinforce, SelfPacedLearning,
    };

    if preset.eval_seeds == 0 {
        return Err(ExperimentError::InvalidSetting {
            field: "eval_seeds",
            reason: "must be at least 1".into(),
        });
    }
    let mut envs = preset.build(data_dir)?;
    let feature_names = envs.teacher_env.feature_names().to_vec();
    let budget = preset.teaching.max_iterations * preset.teaching.batch_size;

    let mut l2t = Reinforce::new(preset.reinforce.clone(), feature_names.len())?;
    let mut actor_critic = ActorCritic::new(preset.actor_critic.clone(), feature_names.len())?;
    let mut training = Vec::new();
    for teacher in [&mut l2t as &mut dyn Teacher, &mut actor_critic] {
        let name = teacher.name().to_string();
        let history = train_teacher(
            &mut envs.teacher_env,
            teacher,
            preset.episodes,
            1_000,
            |k, s| {
                log(&format!(
                "train {name} episode {:>3}/{}: reward {:.3}, instances to tau {}, kept {:.3}, best dev {:.4}, {:.1}s",
                k + 1,
                preset.episodes,
                s.episode_return,
                s.effective_instances_to_tau
                    .map_or("not reached".to_string(), |i| i.to_string()),
                s.instances_kept as f64 / s.instances_seen.max(1) as f64,
                s.best_dev_accuracy,
                s.wall_seconds
            ))
            },
        )?;
        training.push(TrainingRun {
            teacher: name,
            episodes: history,
        });
    }

    let seeds: Vec<u64> = (0..preset.eval_seeds as u64).collect();
    let mut evaluate = |teacher: &mut dyn Teacher,
                        log: &mut dyn FnMut(&str)|
     -> Result<Vec<EvaluationRecord>> {
        let records = evaluate_teacher(&mut envs.student_env, teacher, &seeds, &envs.test)?;
        for r in &records {
            log(&format!(
                "evaluate {:<14} seed {}: instances to tau {}, test accuracy {:.4}, kept {:.3}, {:.1}s",
                r.teacher,
                r.seed,
                r.episode
                    .effective_instances_to_tau
                    .map_or("not reached".to_string(), |i| i.to_string()),
                r.test_accuracy,
                r.episode.instances_kept as f64 / r.episode.instances_seen.max(1) as f64,
                r.episode.wall_seconds
            ));
        }
        Ok(records)
    };
    let l2t_records = evaluate(&mut l2t, &mut log)?;
    // RandTeach drops at the per-epoch ratio the trained teacher dropped (mean over seeds).
    let epochs = l2t_records
        .iter()
        .map(|r| r.episode.epoch_drop_ratios.len())
        .max()
        .unwrap_or(0);
    let per_epoch_drop_ratio: Vec<f64> = (0..epochs)
        .map(|e| {
            let ratios: Vec<f64> = l2t_records
                .iter()
                .filter_map(|r| r.episode.epoch_drop_ratios.get(e).copied())
                .collect();
            mean_ci95(&ratios).0
        })
        .collect();
    let mut rand_teach = RandTeach::new(RandTeachConfig {
        per_epoch_drop_ratio,
        seed: 7,
        ..RandTeachConfig::default()
    })?;
    let mut spl = SelfPacedLearning::new(preset.spl.clone(), &feature_names)?;
    let no_teach_records = evaluate(&mut NoTeach, &mut log)?;
    let rand_records = evaluate(&mut rand_teach, &mut log)?;
    let spl_records = evaluate(&mut spl, &mut log)?;
    let mut online_batch = OnlineBatch::new(preset.online_batch.clone(), &feature_names)?;
    let online_batch_records = evaluate(&mut online_batch, &mut log)?;
    let actor_critic_records = evaluate(&mut actor_critic, &mut log)?;

    let groups = [
        ("NoTeach", no_teach_records),
        ("RandTeach (matched)", rand_records),
        (spl.name(), spl_records),
        ("Online batch (L&H)", online_batch_records),
        ("L2T (REINFORCE)", l2t_records),
        ("Actor-critic (shaped)", actor_critic_records),
    ];
    let summaries = groups
        .iter()
        .map(|(name, records)| summarise(name, records, budget))
        .collect();
    Ok(Report {
        preset: preset.clone(),
        training,
        evaluations: groups.into_iter().flat_map(|(_, r)| r).collect(),
        summaries,
    })
}
