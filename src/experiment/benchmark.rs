//! The benchmark's leaderboard: every task's comparison on the same seeds, summed up
//! across tasks as rliable (Agarwal et al., NeurIPS 2021) recommends.
//!
//! Each task is a run (a reproduction: NoTeach, the heuristics and the learned
//! teachers, evaluated on fresh students of its student half). For teacher `t`, task
//! `k` and seed `s`, with `I` the effective instances to tau (the budget T' x M for a
//! run that missed tau):
//!
//! ```text
//! x_{t,k,s}   = I_{t,k,s} / mean_s I_{no_teach,k,s}          normalised score (lower is better)
//! IQM_t       = mean of the middle 50% of { x_{t,k,s} : k, s }, 95% CI by a stratified
//!               bootstrap (seeds resampled within each task)
//! best_k      = the heuristic (neither NoTeach nor learned) with the fewest mean
//!               instances on task k
//! D_{t,k}     = mean_s (I_{t,k,s} - I_{best_k,k,s}), 95% t-interval over the seeds where
//!               both reached tau (paired: same data order, same initial student)
//! P_t         = (1/K) sum_k P(I_{t,k} < I_{best_k,k})    probability of improvement
//!               (Mann-Whitney over all pairs of runs, ties one half), averaged over tasks
//! ```
//!
//! A score normalised by NoTeach's mean puts tasks of different sizes on one scale
//! (NoTeach's IQM is about 1); the IQM is robust to a seed or task far out, yet uses half
//! the runs; the paired difference answers "does it beat the strongest rule on this
//! task", and P whether it tends to across tasks.

use serde::{Deserialize, Serialize};

use l2t_agents::TeacherConfig;

use crate::stats::{
    interquartile_mean, mean_ci95, paired_differences, probability_of_improvement,
    stratified_bootstrap_ci, PairedDifference,
};

use super::*;

/// Bootstrap resamples of the IQM's interval.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;
/// Seed of the bootstrap's stream (fixed, so the leaderboard repeats exactly).
pub const BOOTSTRAP_SEED: u64 = 0;

/// What a teacher is in the leaderboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// NoTeach: the normalisation.
    Reference,
    /// A fixed rule (RandTeach, SPL, online batch, importance sampling, RHO-LOSS, ...).
    Heuristic,
    /// Trained on a teacher half (or read from a checkpoint).
    Learned,
}

/// `(seed, value, reached tau)` of `label`'s runs in `report` on `objective`, by seed
/// ([`Objective::or_stand_in`] for a miss).
fn by_seed(objective: Objective, report: &Report, label: &str) -> Vec<(u64, f64, bool)> {
    let teaching = &report.config.preset.teaching;
    let budget = teaching.max_iterations * teaching.batch_size;
    let mut rows: Vec<(u64, f64, bool)> = (report.records_of(label).into_iter())
        .map(|r| {
            let reached = r.episode.effective_instances_to_tau.is_some();
            (r.seed, objective.or_stand_in(&r.episode, budget), reached)
        })
        .collect();
    rows.sort_by_key(|r| r.0);
    rows
}

/// One teacher on one task, on one objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectiveCell {
    /// Mean of the objective (a miss counts as [`Objective`] says).
    pub mean: f64,
    /// Half-width of its 95% interval.
    pub ci95: f64,
    /// The mean relative to NoTeach's on this task.
    pub relative_to_no_teach: f64,
    /// This teacher minus the task's best heuristic on this objective, seed by seed;
    /// `None` for that heuristic itself, for NoTeach and where the task has none.
    pub vs_best_heuristic: Option<PairedDifference>,
    /// P(this teacher needs less than the best heuristic) on this task.
    pub p_better_than_best_heuristic: Option<f64>,
}

/// One teacher on one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskCell {
    /// The task (the run's preset name).
    pub task: String,
    /// Mean effective instances to tau (a miss counts at the budget).
    pub instances_mean: f64,
    /// Half-width of its 95% interval.
    pub instances_ci95: f64,
    /// Seeds whose student reached tau, of `runs`.
    pub reached: usize,
    /// Seeds evaluated.
    pub runs: usize,
    /// Mean instances relative to NoTeach's mean on this task.
    pub relative_to_no_teach: f64,
    /// This teacher minus the task's best heuristic, seed by seed; `None` for that
    /// heuristic itself, for NoTeach and where the task has no heuristic.
    pub vs_best_heuristic: Option<PairedDifference>,
    /// P(this teacher needs fewer instances than the best heuristic) on this task.
    pub p_fewer_than_best_heuristic: Option<f64>,
    /// The same on training compute to tau (GFLOP), against the task's best heuristic
    /// on compute.
    #[serde(default)]
    pub compute: Option<ObjectiveCell>,
}

/// One teacher across the tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderboardRow {
    /// Teacher label (the same in every task's run).
    pub teacher: String,
    /// NoTeach, a heuristic or a learned teacher.
    pub role: Role,
    /// One cell per task, in the leaderboard's task order.
    pub tasks: Vec<TaskCell>,
    /// Interquartile mean of the normalised scores over every task and seed.
    pub iqm: f64,
    /// Its 95% stratified-bootstrap interval `(lower, upper)`.
    pub iqm_ci95: (f64, f64),
    /// Probability of improvement over each task's best heuristic, averaged over the
    /// tasks; `None` for NoTeach and the heuristics.
    pub p_fewer_than_best_heuristic: Option<f64>,
    /// The IQM of training compute to tau / NoTeach's mean, and its interval.
    #[serde(default)]
    pub compute_iqm: Option<(f64, (f64, f64))>,
    /// P(less compute than each task's best heuristic on compute), averaged over tasks;
    /// `None` for NoTeach and the heuristics.
    #[serde(default)]
    pub p_less_compute_than_best_heuristic: Option<f64>,
}

/// The leaderboard of a benchmark: tasks x teachers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaderboard {
    /// The tasks, in order.
    pub tasks: Vec<String>,
    /// Each task's best heuristic (the fewest mean instances), in task order.
    pub best_heuristics: Vec<Option<String>>,
    /// Each task's best heuristic on training compute to tau, in task order.
    #[serde(default)]
    pub best_compute_heuristics: Vec<Option<String>>,
    /// The first evaluation seed, the same in every task.
    pub first_seed: u64,
    /// Seeds per teacher and task.
    pub seeds: usize,
    /// One row per teacher, best IQM first.
    pub rows: Vec<LeaderboardRow>,
}

/// The role of a run's teacher entry.
pub fn role(entry: &crate::config::TeacherEntry) -> Role {
    match entry.teacher {
        TeacherConfig::NoTeach => Role::Reference,
        TeacherConfig::Checkpoint { .. } => Role::Learned,
        _ if entry.train => Role::Learned,
        _ => Role::Heuristic,
    }
}

fn invalid(reason: String) -> ExperimentError {
    ExperimentError::InvalidSetting {
        field: "benchmark",
        reason,
    }
}

/// Builds the leaderboard of `reports`, one per task, which must share their
/// evaluation seeds and each have a NoTeach row. Teachers are matched by label; a
/// teacher missing from some task is ranked on the tasks it has.
///
/// Errors: [`ExperimentError::InvalidSetting`] (field `benchmark`) for no reports,
/// different seeds, a task without NoTeach or with NoTeach at zero instances;
/// [`ExperimentError::Stats`] for a seed evaluated twice.
pub fn leaderboard(reports: &[Report]) -> Result<Leaderboard> {
    let first = reports
        .first()
        .ok_or_else(|| invalid("no task to rank".into()))?;
    let (first_seed, seeds) = (
        first.config.preset.first_eval_seed,
        first.config.preset.eval_seeds,
    );
    for report in reports {
        let preset = &report.config.preset;
        if (preset.first_eval_seed, preset.eval_seeds) != (first_seed, seeds) {
            return Err(invalid(format!(
                "task {} was evaluated on seeds {}..{}, task {} on {}..{}: a leaderboard \
                 compares tasks on the same seeds",
                preset.name,
                preset.first_eval_seed,
                preset.first_eval_seed + preset.eval_seeds as u64,
                first.config.preset.name,
                first_seed,
                first_seed + seeds as u64
            )));
        }
    }
    // Teachers in the first task's order, then any new ones of later tasks.
    let mut teachers: Vec<(String, Role)> = Vec::new();
    for report in reports {
        for entry in &report.config.teachers {
            if !teachers.iter().any(|(label, _)| *label == entry.label) {
                teachers.push((entry.label.clone(), role(entry)));
            }
        }
    }
    /// One task, with NoTeach's mean and the best heuristic, per objective.
    struct Task<'a> {
        report: &'a Report,
        no_teach_mean: [f64; 2],
        best: [Option<String>; 2],
    }
    let mut tasks = Vec::new();
    for report in reports {
        let name = &report.config.preset.name;
        let roles: Vec<(&str, Role)> = report
            .config
            .teachers
            .iter()
            .map(|e| (e.label.as_str(), role(e)))
            .collect();
        let reference = roles
            .iter()
            .find(|(_, r)| *r == Role::Reference)
            .ok_or_else(|| invalid(format!("task {name} has no no_teach row to normalise by")))?;
        let mean_of = |objective: Objective, label: &str| {
            let values: Vec<f64> = (by_seed(objective, report, label).iter())
                .map(|r| r.1)
                .collect();
            mean_ci95(&values).0
        };
        let mut no_teach_mean = [0.0; 2];
        let mut best = [None, None];
        for (k, objective) in Objective::ALL.into_iter().enumerate() {
            no_teach_mean[k] = mean_of(objective, reference.0);
            best[k] = roles
                .iter()
                .filter(|(_, r)| *r == Role::Heuristic)
                .map(|(label, _)| (label.to_string(), mean_of(objective, label)))
                .filter(|(_, m)| m.is_finite())
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(label, _)| label);
        }
        if !(no_teach_mean[0].is_finite() && no_teach_mean[0] > 0.0) {
            return Err(invalid(format!(
                "task {name}: no_teach has no evaluation to normalise by"
            )));
        }
        tasks.push(Task {
            report,
            no_teach_mean,
            best,
        });
    }
    let mut rows = Vec::new();
    for (label, role) in teachers {
        let mut cells = Vec::new();
        // Per objective: normalised scores by task, and the probabilities of improvement.
        let mut strata: [Vec<Vec<f64>>; 2] = [Vec::new(), Vec::new()];
        let mut improvements: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for task in &tasks {
            let mut objective_cells = Vec::with_capacity(2);
            let mut reached = (0, 0);
            for (k, objective) in Objective::ALL.into_iter().enumerate() {
                let runs = by_seed(objective, task.report, &label);
                if runs.is_empty() {
                    break;
                }
                reached = (runs.iter().filter(|r| r.2).count(), runs.len());
                let values: Vec<f64> = runs.iter().map(|r| r.1).collect();
                let (mean, ci95) = mean_ci95(&values);
                let (vs_best, p_best) = match &task.best[k] {
                    Some(best) if *best != label && role != Role::Reference => {
                        let best_runs = by_seed(objective, task.report, best);
                        let reached = |rows: &[(u64, f64, bool)]| -> Vec<(u64, f64)> {
                            rows.iter().filter(|r| r.2).map(|r| (r.0, r.1)).collect()
                        };
                        let best_values: Vec<f64> = best_runs.iter().map(|r| r.1).collect();
                        (
                            Some(paired_differences(&reached(&runs), &reached(&best_runs))?),
                            // Less is better: P(X < Y) is the improvement of Y's sample over X's.
                            Some(probability_of_improvement(&best_values, &values)),
                        )
                    }
                    _ => (None, None),
                };
                if role == Role::Learned {
                    improvements[k].extend(p_best);
                }
                let reference = task.no_teach_mean[k];
                if reference > 0.0 {
                    strata[k].push(values.iter().map(|v| v / reference).collect());
                }
                objective_cells.push(ObjectiveCell {
                    mean,
                    ci95,
                    relative_to_no_teach: mean / reference,
                    vs_best_heuristic: vs_best,
                    p_better_than_best_heuristic: p_best,
                });
            }
            let mut objective_cells = objective_cells.into_iter();
            let Some(instances) = objective_cells.next() else {
                continue;
            };
            cells.push(TaskCell {
                task: task.report.config.preset.name.clone(),
                instances_mean: instances.mean,
                instances_ci95: instances.ci95,
                reached: reached.0,
                runs: reached.1,
                relative_to_no_teach: instances.relative_to_no_teach,
                vs_best_heuristic: instances.vs_best_heuristic,
                p_fewer_than_best_heuristic: instances.p_better_than_best_heuristic,
                compute: objective_cells.next(),
            });
        }
        if cells.is_empty() {
            continue;
        }
        let mut iqms = Vec::with_capacity(2);
        for stratum in &strata {
            if stratum.len() < cells.len() {
                // A task without compute counts (a report of an earlier build).
                iqms.push(None);
                continue;
            }
            let pooled: Vec<f64> = stratum.iter().flatten().copied().collect();
            let refs: Vec<&[f64]> = stratum.iter().map(Vec::as_slice).collect();
            let ci = stratified_bootstrap_ci(
                &refs,
                interquartile_mean,
                BOOTSTRAP_RESAMPLES,
                0.95,
                BOOTSTRAP_SEED,
            )?;
            iqms.push(Some((interquartile_mean(&pooled), ci)));
        }
        let average =
            |p: &Vec<f64>| (!p.is_empty()).then(|| p.iter().sum::<f64>() / p.len() as f64);
        let (iqm, iqm_ci95) = iqms[0].unwrap_or((f64::NAN, (f64::NAN, f64::NAN)));
        rows.push(LeaderboardRow {
            teacher: label,
            role,
            tasks: cells,
            iqm,
            iqm_ci95,
            p_fewer_than_best_heuristic: average(&improvements[0]),
            compute_iqm: iqms[1],
            p_less_compute_than_best_heuristic: average(&improvements[1]),
        });
    }
    rows.sort_by(|a, b| a.iqm.total_cmp(&b.iqm));
    Ok(Leaderboard {
        tasks: tasks
            .iter()
            .map(|t| t.report.config.preset.name.clone())
            .collect(),
        best_heuristics: tasks.iter().map(|t| t.best[0].clone()).collect(),
        best_compute_heuristics: tasks.iter().map(|t| t.best[1].clone()).collect(),
        first_seed,
        seeds,
        rows,
    })
}

/// "1 task" or "N tasks", for the leaderboard's texts.
pub fn count_tasks(n: usize) -> String {
    if n == 1 {
        "1 task".into()
    } else {
        format!("{n} tasks")
    }
}

impl Leaderboard {
    /// `leaderboard.md`: the table, what each column means and the seeds.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "# Leaderboard\n\n{}, {} seeds each (evaluation seeds {} to {}, the same \
             fresh students for every teacher). Effective instances to tau: a run that missed \
             tau counts at the budget T' x M.\n\n\
             - **% of NoTeach**: mean instances relative to NoTeach's on the task.\n\
             - **vs best heuristic**: instances minus those of the task's best heuristic \
             (the fixed rule with the fewest), seed by seed, mean ± 95% interval over the \
             seeds where both reached tau; negative is better.\n\
             - **IQM**: interquartile mean of instances / NoTeach's mean over every task and \
             seed, with its 95% stratified-bootstrap interval ({} resamples); lower is \
             better.\n\
             - **P(fewer)**: probability that a run needs fewer instances than the best \
             heuristic's, averaged over tasks (learned teachers).\n\
             - **compute**: the same on training compute to tau (GFLOP of scoring and \
             training, measurement excluded; a run that missed tau counts its whole \
             training compute), against each task's best heuristic on compute.\n\n",
            count_tasks(self.tasks.len()),
            self.seeds,
            self.first_seed,
            self.first_seed + self.seeds as u64 - 1,
            BOOTSTRAP_RESAMPLES,
        );
        for (i, (task, best)) in self.tasks.iter().zip(&self.best_heuristics).enumerate() {
            let on_compute = (self.best_compute_heuristics.get(i))
                .and_then(|b| b.as_deref())
                .unwrap_or("none");
            out.push_str(&format!(
                "Best heuristic on `{task}`: {} (instances), {on_compute} (compute).\n",
                best.as_deref().unwrap_or("none")
            ));
        }
        out.push_str("\n| teacher | role |");
        for task in &self.tasks {
            out.push_str(&format!(
                " {task}: % of NoTeach | {task}: vs best heuristic |"
            ));
        }
        out.push_str(" IQM (95% CI) | P(fewer) |");
        for task in &self.tasks {
            out.push_str(&format!(
                " {task}: compute % of NoTeach | {task}: GFLOP vs best heuristic |"
            ));
        }
        out.push_str(" compute IQM (95% CI) | P(less compute) |\n|---|---|");
        out.push_str(&"---|---|".repeat(2 * self.tasks.len() + 2));
        out.push('\n');
        for row in &self.rows {
            let role = match row.role {
                Role::Reference => "reference",
                Role::Heuristic => "heuristic",
                Role::Learned => "learned",
            };
            out.push_str(&format!("| {} | {role} |", row.teacher));
            for task in &self.tasks {
                match row.tasks.iter().find(|c| c.task == *task) {
                    Some(cell) => {
                        let versus = cell.vs_best_heuristic.map_or("".to_string(), |d| {
                            format!("{:+.0} ± {:.0} ({} seeds)", d.mean, d.ci95, d.pairs)
                        });
                        out.push_str(&format!(
                            " {:.0}%{} | {versus} |",
                            100.0 * cell.relative_to_no_teach,
                            if cell.reached < cell.runs {
                                format!(" ({}/{} reached)", cell.reached, cell.runs)
                            } else {
                                String::new()
                            }
                        ));
                    }
                    None => out.push_str(" | |"),
                }
            }
            out.push_str(&format!(
                " {:.3} [{:.3}, {:.3}] | {} |",
                row.iqm,
                row.iqm_ci95.0,
                row.iqm_ci95.1,
                row.p_fewer_than_best_heuristic
                    .map_or(String::new(), |p| format!("{p:.2}"))
            ));
            for task in &self.tasks {
                let cell = (row.tasks.iter())
                    .find(|c| c.task == *task)
                    .and_then(|c| c.compute.as_ref());
                match cell {
                    Some(cell) => {
                        let versus = cell.vs_best_heuristic.map_or(String::new(), |d| {
                            format!("{:+.1} ± {:.1} ({} seeds)", d.mean, d.ci95, d.pairs)
                        });
                        out.push_str(&format!(
                            " {:.0}% | {versus} |",
                            100.0 * cell.relative_to_no_teach
                        ));
                    }
                    None => out.push_str(" | |"),
                }
            }
            let iqm = row.compute_iqm.map_or(String::new(), |(iqm, (lo, hi))| {
                format!("{iqm:.3} [{lo:.3}, {hi:.3}]")
            });
            out.push_str(&format!(
                " {iqm} | {} |\n",
                row.p_less_compute_than_best_heuristic
                    .map_or(String::new(), |p| format!("{p:.2}"))
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::summary::tests::record;
    use super::*;
    use crate::config::{RunConfig, TeacherEntry};
    use approx::assert_relative_eq;
    use l2t_agents::TeacherConfig;

    /// A task whose teachers need `instances[t][s]` on seed `first + s`.
    fn report(
        name: &str,
        first: u64,
        teachers: &[(&str, TeacherConfig, bool, &[Option<usize>])],
    ) -> Report {
        let mut config = RunConfig::named("synthetic").unwrap();
        config.preset.name = name.into();
        config.preset.first_eval_seed = first;
        config.preset.eval_seeds = teachers[0].3.len();
        config.teachers = teachers
            .iter()
            .map(|(label, teacher, train, _)| TeacherEntry {
                train: *train,
                ..TeacherEntry::new(*label, teacher.clone())
            })
            .collect();
        let evaluations = teachers
            .iter()
            .flat_map(|(label, _, _, runs)| {
                runs.iter()
                    .enumerate()
                    .map(move |(s, i)| record(label, first + s as u64, *i))
            })
            .collect();
        Report {
            config,
            training: Vec::new(),
            evaluations,
            summaries: Vec::new(),
            levels: Vec::new(),
            pairings: Vec::new(),
            reference: String::new(),
            plot_warnings: Vec::new(),
            user_teachers: Vec::new(),
            irreducible_feature_compute: None,
        }
    }

    fn heuristic() -> TeacherConfig {
        TeacherConfig::Spl(Default::default())
    }

    #[test]
    fn scores_are_normalised_per_task_and_compared_with_the_best_heuristic() {
        let es = TeacherConfig::Es(Default::default());
        let a = report(
            "a",
            0,
            &[
                (
                    "no_teach",
                    TeacherConfig::NoTeach,
                    false,
                    &[Some(100), Some(100), Some(100), Some(100)],
                ),
                (
                    "rule",
                    heuristic(),
                    false,
                    &[Some(50), Some(60), Some(50), Some(60)],
                ),
                (
                    "weak",
                    heuristic(),
                    false,
                    &[Some(90), Some(90), Some(90), Some(90)],
                ),
                (
                    "es",
                    es.clone(),
                    true,
                    &[Some(40), Some(50), Some(40), None],
                ),
            ],
        );
        let b = report(
            "b",
            0,
            &[
                (
                    "no_teach",
                    TeacherConfig::NoTeach,
                    false,
                    &[Some(1000), Some(1000), Some(1000), Some(1000)],
                ),
                (
                    "rule",
                    heuristic(),
                    false,
                    &[Some(900), Some(900), Some(900), Some(900)],
                ),
                (
                    "weak",
                    heuristic(),
                    false,
                    &[Some(500), Some(500), Some(500), Some(500)],
                ),
                (
                    "es",
                    es,
                    true,
                    &[Some(300), Some(300), Some(300), Some(300)],
                ),
            ],
        );
        let board = leaderboard(&[a, b]).unwrap();
        assert_eq!(
            board.best_heuristics,
            [Some("rule".into()), Some("weak".into())]
        );
        let es = board.rows.iter().find(|r| r.teacher == "es").unwrap();
        assert_eq!(es.role, Role::Learned);
        // Task a: the miss counts at the synthetic preset's budget, 2000 x 20.
        let budget = 2000.0 * 20.0;
        assert_relative_eq!(es.tasks[0].instances_mean, (130.0 + budget) / 4.0);
        // Paired over the three seeds both reached: (40-50, 50-60, 40-50).
        let d = es.tasks[0].vs_best_heuristic.unwrap();
        assert_eq!(d.pairs, 3);
        assert_relative_eq!(d.mean, -10.0);
        // Task b against `weak`, the best there.
        assert_relative_eq!(es.tasks[1].vs_best_heuristic.unwrap().mean, -200.0);
        assert_relative_eq!(es.tasks[1].p_fewer_than_best_heuristic.unwrap(), 1.0);
        // Task a: 3 of es's 4 runs beat both of rule's values' ... counted pair by pair.
        let p_a = es.tasks[0].p_fewer_than_best_heuristic.unwrap();
        // es {40,50,40,budget} vs rule {50,60,50,60}: 40 beats all 4 (x2), 50 beats 2
        // and ties 2 (3), the budget beats none: (8 + 3) / 16.
        assert_relative_eq!(p_a, 11.0 / 16.0);
        assert_relative_eq!(es.p_fewer_than_best_heuristic.unwrap(), (p_a + 1.0) / 2.0);
        // IQM of the pooled normalised scores: a {0.4, 0.5, 0.4, 400}, b {0.3 x 4}:
        // sorted 0.3 0.3 0.3 0.3 | 0.4 0.4 0.5 400 -> middle four 0.3 0.3 0.4 0.4.
        assert_relative_eq!(es.iqm, 0.35);
        assert!(es.iqm_ci95.0 <= es.iqm && es.iqm <= es.iqm_ci95.1);
        let no_teach = board.rows.iter().find(|r| r.teacher == "no_teach").unwrap();
        assert_relative_eq!(no_teach.iqm, 1.0);
        assert_eq!(no_teach.iqm_ci95, (1.0, 1.0));
        assert!(no_teach.tasks[0].vs_best_heuristic.is_none());
        // The best heuristic has no difference to itself, and heuristics no P.
        let rule = board.rows.iter().find(|r| r.teacher == "rule").unwrap();
        assert!(rule.tasks[0].vs_best_heuristic.is_none());
        assert!(rule.tasks[1].vs_best_heuristic.is_some());
        assert!(rule.p_fewer_than_best_heuristic.is_none());
        // Best IQM first.
        assert_eq!(board.rows[0].teacher, "es");
        let text = board.markdown();
        assert!(text.contains("| es | learned |"), "{text}");
        assert!(text.contains("-10 ± "), "{text}");
        assert!(text.contains("(3/4 reached)"), "{text}");

        // Compute: 0.003 GFLOP per instance; es's miss on task a counts its whole 10
        // GFLOP of training compute (the fixture's), not the instance budget.
        let compute = es.tasks[0].compute.as_ref().unwrap();
        assert_relative_eq!(compute.mean, (0.003 * 130.0 + 10.0) / 4.0, epsilon = 1e-12);
        assert_relative_eq!(
            compute.relative_to_no_teach,
            compute.mean / 0.3,
            epsilon = 1e-12
        );
        let d = compute.vs_best_heuristic.unwrap();
        assert_eq!(d.pairs, 3);
        assert_relative_eq!(d.mean, -0.03, epsilon = 1e-12);
        assert_eq!(board.best_compute_heuristics, board.best_heuristics);
        // Normalised compute {0.4, 0.5, 0.4, 33.3} and {0.3 x 4}: the same middle four.
        let (iqm, (lo, hi)) = es.compute_iqm.unwrap();
        assert_relative_eq!(iqm, 0.35, epsilon = 1e-12);
        assert!(lo <= iqm && iqm <= hi);
        assert_relative_eq!(
            es.p_less_compute_than_best_heuristic.unwrap(),
            (11.0 / 16.0 + 1.0) / 2.0
        );
        assert!(
            text.contains("compute IQM (95% CI)") && text.contains("-0.0 ± "),
            "{text}"
        );
    }

    #[test]
    fn tasks_on_different_seeds_or_without_no_teach_are_refused() {
        let runs: &[Option<usize>] = &[Some(10), Some(12)];
        let a = report("a", 0, &[("no_teach", TeacherConfig::NoTeach, false, runs)]);
        let b = report(
            "b",
            1000,
            &[("no_teach", TeacherConfig::NoTeach, false, runs)],
        );
        let error = leaderboard(&[a.clone(), b]).unwrap_err().to_string();
        assert!(error.contains("same seeds"), "{error}");
        let c = report("c", 0, &[("rule", heuristic(), false, runs)]);
        let error = leaderboard(&[a, c]).unwrap_err().to_string();
        assert!(error.contains("task c has no no_teach row"), "{error}");
        assert!(leaderboard(&[]).is_err());
    }
}
