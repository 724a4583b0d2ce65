//! Summaries of evaluation records: per-teacher means and intervals, the paired
//! comparison with the reference row (the first teacher unless the run names another),
//! per-level tables and per-epoch drop ratios.

use std::path::Path;

use serde::{Deserialize, Serialize};

use l2t_agents::EpisodeSummary;

use crate::run_dir::JsonLines;
use crate::stats::{mean_ci95, paired_differences, probability_of_improvement, PairedDifference};

use super::*;

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
    /// Mean training compute to reach tau (scoring + training, GFLOP; measurement
    /// excluded); a run that did not reach it counts its whole training compute (a
    /// lower bound then). Zero in reports written before compute was counted.
    #[serde(default)]
    pub compute_to_tau_mean: f64,
    /// Half-width of its 95% confidence interval.
    #[serde(default)]
    pub compute_to_tau_ci95: f64,
    /// Mean test accuracy at the end of the episodes.
    pub test_accuracy_mean: f64,
    /// Half-width of its 95% confidence interval.
    pub test_accuracy_ci95: f64,
    /// Mean share of instances kept.
    pub kept_ratio_mean: f64,
    /// Mean wall-clock seconds per episode.
    pub wall_seconds_mean: f64,
    /// Mean wall-clock seconds to tau with dev and test evaluations excluded, over the
    /// runs that reached tau (`None` where none did, and in earlier reports).
    #[serde(default)]
    pub unmeasured_seconds_to_tau_mean: Option<f64>,
    /// This teacher against the reference row of the summary on the same seeds
    /// ([`super::Report::reference`]: the first row unless the run chose another; the
    /// name stays for the reports written before); `None` for the reference row itself
    /// (and in reports written before the column existed).
    #[serde(default)]
    pub vs_first: Option<Versus>,
}

/// One teacher against a reference (the reference row of the summary, or a baseline in
/// [`Pairing`]), seed by seed. Every teacher is evaluated on the same seeds (same data
/// order, same initial student), so pairing by seed removes the variance the teachers
/// share and shows a difference the per-teacher intervals hide.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Versus {
    /// Effective instances to tau of this teacher minus the reference's, seed by seed,
    /// over the seeds where both reached tau (negative: this teacher needs fewer).
    pub instances_to_tau: PairedDifference,
    /// Probability of improvement: the chance that a run of this teacher needs fewer
    /// effective instances to tau than a run of the reference (ties count one half),
    /// over all runs, a run that missed tau counting at the budget T' * M (so it loses
    /// to every run that reached tau, and two misses tie).
    pub probability_of_improvement: f64,
    /// Training compute to tau (GFLOP) of this teacher minus the reference's, seed by
    /// seed, over the seeds where both reached tau (negative: this teacher needs less).
    #[serde(default)]
    pub compute_to_tau: PairedDifference,
    /// The probability of needing less training compute to tau than the reference (a
    /// run that missed tau counting its whole training compute).
    #[serde(default)]
    pub compute_probability_of_improvement: f64,
}

/// One objective of a comparison: the paper's effective instances to tau, or the
/// training compute to tau in GFLOP (scoring + training, measurement excluded). Lower is
/// better on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objective {
    /// Effective instances to tau.
    Instances,
    /// Training GFLOP to tau.
    Compute,
}

impl Objective {
    /// Both, in the tables' order.
    pub const ALL: [Objective; 2] = [Objective::Instances, Objective::Compute];

    /// The episode's value where it reached tau.
    pub fn to_tau(self, episode: &EpisodeSummary) -> Option<f64> {
        match self {
            Objective::Instances => episode.effective_instances_to_tau.map(|i| i as f64),
            Objective::Compute => episode.compute_to_tau.map(gflop),
        }
    }

    /// The episode's value, a run that missed tau standing in at the budget
    /// `budget_instances` (T' * M) of instances, or at its whole training compute.
    pub fn or_stand_in(self, episode: &EpisodeSummary, budget_instances: usize) -> f64 {
        self.to_tau(episode).unwrap_or(match self {
            Objective::Instances => budget_instances as f64,
            Objective::Compute => gflop(episode.compute.training_total()),
        })
    }
}

/// GFLOP, from FLOPs.
fn gflop(flops: u64) -> f64 {
    flops as f64 * 1e-9
}

/// Decimals that give `largest` (GFLOP) three significant digits: synthetic tasks cost
/// fractions of a GFLOP, image tasks thousands.
pub(crate) fn gflop_decimals(largest: f64) -> usize {
    if largest > 0.0 {
        (2 - largest.log10().floor() as i64).clamp(0, 6) as usize
    } else {
        1
    }
}

/// The `objective` of each record, a miss standing in as [`Objective::or_stand_in`].
fn values(records: &[EvaluationRecord], objective: Objective, budget_instances: usize) -> Vec<f64> {
    (records.iter())
        .map(|r| objective.or_stand_in(&r.episode, budget_instances))
        .collect()
}

/// `(seed, objective)` of the records that reached tau.
fn seeds_reached(records: &[EvaluationRecord], objective: Objective) -> Vec<(u64, f64)> {
    records
        .iter()
        .filter_map(|r| objective.to_tau(&r.episode).map(|v| (r.seed, v)))
        .collect()
}

/// Compares one teacher's `records` with the `reference`'s seed by seed: see
/// [`Versus`]. `budget_instances` (T' * M) stands in for runs that missed tau in
/// the probability of improvement.
///
/// Errors: [`ExperimentError::Stats`] when a seed appears twice in one teacher's records.
pub fn versus(
    reference: &[EvaluationRecord],
    records: &[EvaluationRecord],
    budget_instances: usize,
) -> Result<Versus> {
    Ok(Versus {
        instances_to_tau: paired_differences(
            &seeds_reached(records, Objective::Instances),
            &seeds_reached(reference, Objective::Instances),
        )?,
        probability_of_improvement: probability_of_improvement(
            &values(reference, Objective::Instances, budget_instances),
            &values(records, Objective::Instances, budget_instances),
        ),
        compute_to_tau: paired_differences(
            &seeds_reached(records, Objective::Compute),
            &seeds_reached(reference, Objective::Compute),
        )?,
        compute_probability_of_improvement: probability_of_improvement(
            &values(reference, Objective::Compute, budget_instances),
            &values(records, Objective::Compute, budget_instances),
        ),
    })
}

/// Summarises `records` of one teacher; `budget_instances` (T' * M) stands in for runs
/// that never reached tau.
pub fn summarise(
    teacher: &str,
    records: &[EvaluationRecord],
    budget_instances: usize,
) -> TeacherSummary {
    let instances = values(records, Objective::Instances, budget_instances);
    let accuracies: Vec<f64> = records.iter().map(|r| r.test_accuracy).collect();
    let kept: Vec<f64> = records
        .iter()
        .map(|r| r.episode.instances_kept as f64 / r.episode.instances_seen.max(1) as f64)
        .collect();
    let wall: Vec<f64> = records.iter().map(|r| r.episode.wall_seconds).collect();
    let (instances_to_tau_mean, instances_to_tau_ci95) = mean_ci95(&instances);
    let (compute_to_tau_mean, compute_to_tau_ci95) =
        mean_ci95(&values(records, Objective::Compute, budget_instances));
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
        compute_to_tau_mean,
        compute_to_tau_ci95,
        test_accuracy_mean,
        test_accuracy_ci95,
        kept_ratio_mean: mean_ci95(&kept).0,
        wall_seconds_mean: mean_ci95(&wall).0,
        unmeasured_seconds_to_tau_mean: {
            let seconds: Vec<f64> = (records.iter())
                .filter_map(|r| r.episode.unmeasured_seconds_to_tau)
                .collect();
            (!seconds.is_empty()).then(|| mean_ci95(&seconds).0)
        },
        vs_first: None,
    }
}

/// The fewest seeds per teacher for which the tables show a probability of improvement.
///
/// P compares every run of one teacher with every run of the other (a Mann-Whitney
/// statistic over n x n pairs). With n seeds each and no difference at all between the
/// teachers, P lands on 0 or 1 by chance alone with probability 2 / C(2n, n): 10% at 3
/// seeds, 2.9% at 4, 0.8% at 5. Below 5 seeds a table would often print certainty (1.00
/// or 0.00) where the data hold none, so it prints "n/a" and why; from 5 seeds an
/// extreme P is rare without a real difference. (`report.json` keeps the number.)
pub const MIN_SEEDS_FOR_PROBABILITY: usize = 5;

/// A probability of improvement as a table cell: two decimals, or "n/a (3 seeds < 5)"
/// below [`MIN_SEEDS_FOR_PROBABILITY`] seeds.
pub fn probability_cell(probability: f64, seeds: usize) -> String {
    if seeds < MIN_SEEDS_FOR_PROBABILITY {
        format!("n/a ({seeds} seeds < {MIN_SEEDS_FOR_PROBABILITY})")
    } else {
        format!("{probability:.2}")
    }
}

/// The paragraph `summary.md` puts before its tables when a run has fewer than
/// [`MIN_SEEDS_FOR_PROBABILITY`] seeds: the intervals are wide and unreliable, and P is
/// not shown. Empty from that many seeds.
pub fn small_sample_note(seeds: usize) -> String {
    if seeds >= MIN_SEEDS_FOR_PROBABILITY {
        return String::new();
    }
    format!(
        "**Few seeds ({seeds} < {MIN_SEEDS_FOR_PROBABILITY}):** the 95% intervals, paired \
         ones included, rest on {seeds} values each, so they are wide and unreliable (a \
         t-interval at {seeds} seeds assumes normal errors it cannot check), and the \
         probabilities of improvement are not shown (\"n/a\"): with this few seeds P lands \
         on 0 or 1 by chance alone too often to mean anything. Run at least \
         {MIN_SEEDS_FOR_PROBABILITY} seeds (`--seeds`) before reading a difference.\n\n"
    )
}

/// A markdown table of teacher summaries, paired with the row at `reference` (out of
/// range: none): mean instances relative to it, and (from [`TeacherSummary::vs_first`])
/// the paired per-seed difference to it with the number of seeds where both reached tau,
/// and the probability of needing fewer instances than it ("n/a" below
/// [`MIN_SEEDS_FOR_PROBABILITY`] seeds). The headers name the reference row's teacher.
pub fn markdown_table(summaries: &[TeacherSummary], reference: usize) -> String {
    let against = summaries.get(reference);
    let name = against.map_or("the reference row", |r| r.teacher.as_str());
    let mut out = format!(
        "| teacher | reached tau | effective instances to tau (mean ± 95% CI) | vs {name} | paired difference to {name} (mean ± 95% CI, seeds where both reached tau) | P(fewer instances than {name}) | training GFLOP to tau (mean ± 95% CI) | compute vs {name} | paired GFLOP difference to {name} | P(less compute than {name}) | test accuracy at end | kept ratio | s / episode | s to tau, evaluations excluded |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let relative = |value: f64, reference: Option<f64>| {
        reference
            .filter(|r| *r > 0.0)
            .map_or("-".to_string(), |r| format!("{:.0}%", 100.0 * value / r))
    };
    // GFLOP with three significant digits of the largest mean.
    let largest = (summaries.iter())
        .map(|s| s.compute_to_tau_mean)
        .fold(0.0f64, f64::max);
    let decimals = gflop_decimals(largest);
    for s in summaries {
        let dash = || "-".to_string();
        let seeds = against.map_or(s.runs, |r| r.runs.min(s.runs));
        let (paired, improvement, compute_paired, compute_improvement) = match &s.vs_first {
            None => (dash(), dash(), dash(), dash()),
            Some(v) => (
                paired_cell(&v.instances_to_tau),
                probability_cell(v.probability_of_improvement, seeds),
                gflop_cell(&v.compute_to_tau, decimals),
                probability_cell(v.compute_probability_of_improvement, seeds),
            ),
        };
        out.push_str(&format!(
            "| {} | {}/{} | {:.0} ± {:.0} | {} | {} | {} | {:.*} ± {:.*} | {} | {} | {} | {:.4} ± {:.4} | {:.3} | {:.2} | {} |\n",
            s.teacher,
            s.reached,
            s.runs,
            s.instances_to_tau_mean,
            s.instances_to_tau_ci95,
            relative(s.instances_to_tau_mean, against.map(|f| f.instances_to_tau_mean)),
            paired,
            improvement,
            decimals,
            s.compute_to_tau_mean,
            decimals,
            s.compute_to_tau_ci95,
            relative(s.compute_to_tau_mean, against.map(|f| f.compute_to_tau_mean)),
            compute_paired,
            compute_improvement,
            s.test_accuracy_mean,
            s.test_accuracy_ci95,
            s.kept_ratio_mean,
            s.wall_seconds_mean,
            s.unmeasured_seconds_to_tau_mean
                .map_or("-".to_string(), |t| format!("{t:.2}"))
        ));
    }
    out
}

/// A trained teacher against one untrained teacher of the same run, seed by seed: is
/// it better than each baseline, not only than the reference row?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pairing {
    /// The trained teacher.
    pub teacher: String,
    /// The untrained teacher it is compared with.
    pub reference: String,
    /// `teacher` minus `reference`, seed by seed.
    pub versus: Versus,
}

/// A markdown table of [`Pairing`]s: the paired difference of effective instances to
/// tau and the probability of needing fewer ("n/a" when `seeds`, the run's seeds per
/// teacher, is below [`MIN_SEEDS_FOR_PROBABILITY`]).
pub fn pairings_table(pairings: &[Pairing], seeds: usize) -> String {
    let mut out = String::from(
        "| teacher | against | paired difference in instances (mean ± 95% CI, seeds where both reached tau) | P(fewer instances) | paired difference in training GFLOP | P(less compute) |\n|---|---|---|---|---|---|\n",
    );
    // GFLOP with three significant digits of the largest difference.
    let largest = (pairings.iter())
        .map(|p| p.versus.compute_to_tau.mean.abs())
        .fold(0.0f64, f64::max);
    let decimals = gflop_decimals(largest);
    for p in pairings {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            p.teacher,
            p.reference,
            paired_cell(&p.versus.instances_to_tau),
            probability_cell(p.versus.probability_of_improvement, seeds),
            gflop_cell(&p.versus.compute_to_tau, decimals),
            probability_cell(p.versus.compute_probability_of_improvement, seeds)
        ));
    }
    out
}

/// A paired difference of GFLOP as a table cell with `decimals`: mean ± CI and the
/// number of seeds.
fn gflop_cell(d: &PairedDifference, decimals: usize) -> String {
    match d.pairs {
        0 => "no seed where both reached tau".to_string(),
        1 => format!("{:+.*} (1 seed)", decimals, d.mean),
        n => format!(
            "{:+.*} ± {:.*} ({n} seeds)",
            decimals, d.mean, decimals, d.ci95
        ),
    }
}

/// A paired difference as a table cell: mean ± CI and the number of seeds.
fn paired_cell(d: &PairedDifference) -> String {
    match d.pairs {
        0 => "no seed where both reached tau".to_string(),
        1 => format!("{:+.0} (1 seed)", d.mean),
        n => format!("{:+.0} ± {:.0} ({n} seeds)", d.mean, d.ci95),
    }
}

/// Effective instances and wall-clock to reach one dev-accuracy level, over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelSummary {
    /// Teacher label.
    pub teacher: String,
    /// The dev-accuracy level (reached when exceeded, like tau).
    pub level: f64,
    /// Seeds evaluated.
    pub runs: usize,
    /// Seeds whose student exceeded the level.
    pub reached: usize,
    /// Mean effective instances to the level (budget T' * M for runs that missed it).
    pub instances_mean: f64,
    /// Half-width of its 95% confidence interval.
    pub instances_ci95: f64,
    /// Mean wall-clock seconds to the level (episode length for runs that missed it).
    pub seconds_mean: f64,
    /// Half-width of its 95% confidence interval.
    pub seconds_ci95: f64,
}

/// The first point of an episode's curve whose dev accuracy exceeds `level`.
fn first_above(episode: &EpisodeSummary, level: f64) -> Option<&l2t_agents::CurvePoint> {
    episode
        .curve
        .iter()
        .find(|p| p.iteration > 0 && p.dev_accuracy > level)
}

/// Per-level summaries of one teacher's `records`.
pub fn level_summaries(
    teacher: &str,
    records: &[EvaluationRecord],
    levels: &[f64],
    budget_instances: usize,
) -> Vec<LevelSummary> {
    levels
        .iter()
        .map(|&level| {
            let hits: Vec<Option<&l2t_agents::CurvePoint>> = records
                .iter()
                .map(|r| first_above(&r.episode, level))
                .collect();
            let instances: Vec<f64> = hits
                .iter()
                .map(|h| h.map_or(budget_instances, |p| p.effective_instances) as f64)
                .collect();
            let seconds: Vec<f64> = hits
                .iter()
                .zip(records)
                .map(|(h, r)| h.map_or(r.episode.wall_seconds, |p| p.seconds))
                .collect();
            let (instances_mean, instances_ci95) = mean_ci95(&instances);
            let (seconds_mean, seconds_ci95) = mean_ci95(&seconds);
            LevelSummary {
                teacher: teacher.to_string(),
                level,
                runs: records.len(),
                reached: hits.iter().filter(|h| h.is_some()).count(),
                instances_mean,
                instances_ci95,
                seconds_mean,
                seconds_ci95,
            }
        })
        .collect()
}

/// A markdown table of level summaries: one row per teacher and level.
pub fn levels_table(levels: &[LevelSummary]) -> String {
    let mut out = String::from(
        "| teacher | dev accuracy level | reached | effective instances (mean ± 95% CI) | wall-clock seconds (mean ± 95% CI) |\n|---|---|---|---|---|\n",
    );
    for l in levels {
        out.push_str(&format!(
            "| {} | {:.3} | {}/{} | {:.0} ± {:.0} | {:.2} ± {:.2} |\n",
            l.teacher,
            l.level,
            l.reached,
            l.runs,
            l.instances_mean,
            l.instances_ci95,
            l.seconds_mean,
            l.seconds_ci95
        ));
    }
    out
}

/// The per-epoch drop ratio of `records` (mean over seeds, epoch by epoch): the
/// schedule a matched RandTeach replays.
pub fn per_epoch_drop_ratio(records: &[EvaluationRecord]) -> Vec<f64> {
    let epochs = records
        .iter()
        .map(|r| r.episode.epoch_drop_ratios.len())
        .max()
        .unwrap_or(0);
    (0..epochs)
        .map(|e| {
            let ratios: Vec<f64> = records
                .iter()
                .filter_map(|r| r.episode.epoch_drop_ratios.get(e).copied())
                .collect();
            mean_ci95(&ratios).0
        })
        .collect()
}

/// The per-epoch drop ratio of the teacher labelled `label` in the evaluation events
/// of an earlier run: `run` is its folder or its `events.jsonl`.
pub fn per_epoch_drop_ratio_from_run(run: &Path, label: &str) -> Result<Vec<f64>> {
    let path = if run.is_dir() {
        run.join("events.jsonl")
    } else {
        run.to_path_buf()
    };
    let records: Vec<EvaluationRecord> = JsonLines::read::<Event>(&path)?
        .into_iter()
        .filter_map(|event| match event {
            Event::Evaluation { record, .. } if record.teacher == label => Some(record),
            _ => None,
        })
        .collect();
    if records.is_empty() {
        return Err(ExperimentError::Json {
            path,
            reason: format!("no evaluation episode of a teacher labelled `{label}`"),
        });
    }
    Ok(per_epoch_drop_ratio(&records))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use approx::assert_relative_eq;

    /// A record of `teacher` on `seed` that reached tau after `instances`, or not (also
    /// the benchmark's fixture).
    pub(crate) fn record(teacher: &str, seed: u64, instances: Option<usize>) -> EvaluationRecord {
        EvaluationRecord {
            teacher: teacher.to_string(),
            seed,
            test_accuracy: 0.9,
            episode: EpisodeSummary {
                episode_return: 0.0,
                terminated: instances.is_some(),
                truncated: instances.is_none(),
                steps: 10,
                iterations: 10,
                iterations_to_tau: instances.map(|i| i / 10),
                effective_instances_to_tau: instances,
                // 3 MFLOP per effective instance, 1 GFLOP per 10 seen for a miss.
                compute_to_tau: instances.map(|i| 3_000_000 * i as u64),
                unmeasured_seconds_to_tau: instances.map(|_| 0.5),
                compute: l2t_envs::Compute {
                    scoring: 0,
                    training: 10_000_000_000,
                    measurement: 0,
                },
                instances_seen: 100,
                instances_kept: 100,
                best_dev_accuracy: 0.9,
                epoch_drop_ratios: Vec::new(),
                wall_seconds: 1.0,
                update: None,
                curve: Vec::new(),
                loss_rank_drops: Vec::new(),
            },
        }
    }

    #[test]
    fn paired_column_compares_seed_by_seed_with_the_first_row() {
        let budget = 1000;
        let first = [
            record("a", 1, Some(500)),
            record("a", 2, Some(600)),
            record("a", 3, Some(700)),
            record("a", 4, None),
        ];
        // In another order. `b` missed tau on seed 3 and `a` on seed 4, so only seeds 1
        // and 2 pair up: differences -100 and -200.
        let other = [
            record("b", 2, Some(400)),
            record("b", 1, Some(400)),
            record("b", 3, None),
            record("b", 4, Some(900)),
        ];
        let against_first = versus(&first, &other, budget).unwrap();
        assert_eq!(against_first.instances_to_tau.pairs, 2);
        assert_relative_eq!(against_first.instances_to_tau.mean, -150.0);
        // Differences -200, -100: sample sd 70.71, so t(0.975, 1) * 70.71 / sqrt(2) = 635.3.
        assert_relative_eq!(against_first.instances_to_tau.ci95, 635.31, epsilon = 0.01);
        // b's 400, 400, 1000 (budget), 900 against a's 500, 600, 700, 1000:
        // each 400 is below all 4 (8), 1000 ties one (0.5), 900 is below the budget (1):
        // 9.5 / 16.
        assert_relative_eq!(against_first.probability_of_improvement, 9.5 / 16.0);
        // Compute: 0.003 GFLOP per instance, a miss counting its whole 10 GFLOP.
        assert_eq!(against_first.compute_to_tau.pairs, 2);
        assert_relative_eq!(against_first.compute_to_tau.mean, -0.45, epsilon = 1e-9);
        assert_relative_eq!(against_first.compute_to_tau.ci95, 1.906, epsilon = 0.001);
        assert_relative_eq!(against_first.compute_probability_of_improvement, 9.5 / 16.0);
        assert_relative_eq!(
            summarise("b", &other, budget).compute_to_tau_mean,
            (1.2 + 1.2 + 10.0 + 2.7) / 4.0,
            epsilon = 1e-9
        );

        let mut summaries = vec![
            summarise("a", &first, budget),
            summarise("b", &other, budget),
        ];
        summaries[1].vs_first = Some(against_first);
        let table = markdown_table(&summaries, 0);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        for line in &lines {
            assert_eq!(line.matches('|').count(), 15, "{line}");
        }
        assert!(
            lines[0].contains("| paired difference to a (")
                && lines[0].contains("| P(fewer instances than a) |"),
            "{}",
            lines[0]
        );
        assert!(lines[2].contains("| - | - |"), "{}", lines[2]);
        // 4 seeds, below MIN_SEEDS_FOR_PROBABILITY: P is not shown.
        assert!(
            lines[3].contains("| -150 ± 635 (2 seeds) | n/a (4 seeds < 5) |"),
            "{}",
            lines[3]
        );
        assert!(
            lines[3].contains("| 3.78 ± 6.70 | 98% |")
                && lines[3].contains("| -0.45 ± 1.91 (2 seeds) | n/a (4 seeds < 5) |"),
            "{}",
            lines[3]
        );

        let none = versus(&first, &[record("c", 9, Some(1))], budget).unwrap();
        assert_eq!(none.instances_to_tau.pairs, 0);
        summaries[1].vs_first = Some(none);
        assert!(markdown_table(&summaries, 0).contains("| no seed where both reached tau |"));

        let twice = [record("d", 1, Some(1)), record("d", 1, Some(2))];
        assert!(matches!(
            versus(&first, &twice, budget),
            Err(ExperimentError::Stats(StatsError::DuplicateSeed(1)))
        ));
    }

    /// `n` seeds of `teacher`, from 1, reaching tau after `base + 10 * seed` instances.
    fn seeds_of(teacher: &str, n: u64, base: usize) -> Vec<EvaluationRecord> {
        (1..=n)
            .map(|seed| record(teacher, seed, Some(base + 10 * seed as usize)))
            .collect()
    }

    #[test]
    fn probability_of_improvement_is_shown_from_the_minimum_seed_count() {
        let budget = 10_000;
        for (n, shown) in [(3, false), (4, false), (5, true), (8, true)] {
            let a = seeds_of("a", n, 500);
            let b = seeds_of("b", n, 100);
            let mut summaries = vec![summarise("a", &a, budget), summarise("b", &b, budget)];
            summaries[1].vs_first = Some(versus(&a, &b, budget).unwrap());
            let table = markdown_table(&summaries, 0);
            let row = table.lines().nth(3).unwrap();
            // b needs fewer on every seed: P is 1 wherever it is shown.
            assert_eq!(
                row.contains(&format!("({n} seeds) | 1.00 |")),
                shown,
                "{n} seeds: {row}"
            );
            assert_eq!(
                row.contains(&format!(
                    "| n/a ({n} seeds < {MIN_SEEDS_FOR_PROBABILITY}) |"
                )),
                !shown,
                "{n} seeds: {row}"
            );
            let pairing = Pairing {
                teacher: "b".into(),
                reference: "a".into(),
                versus: summaries[1].vs_first.unwrap(),
            };
            let pairs = pairings_table(&[pairing], n as usize);
            assert_eq!(pairs.contains("n/a ("), !shown, "{pairs}");
            // The note on the intervals comes with the missing P, and only then.
            let note = small_sample_note(n as usize);
            assert_eq!(note.is_empty(), shown, "{note}");
            if !shown {
                assert!(
                    note.contains("wide and unreliable") && note.contains(&format!("{n} < 5")),
                    "{note}"
                );
            }
        }
    }

    #[test]
    fn the_table_pairs_with_the_reference_row_and_names_it() {
        let budget = 10_000;
        let records = [
            seeds_of("no_teach", 5, 1000),
            seeds_of("rho_loss", 5, 500),
            seeds_of("mine", 5, 400),
        ];
        let reference = 1;
        let mut summaries: Vec<TeacherSummary> = records
            .iter()
            .map(|r| summarise(&r[0].teacher, r, budget))
            .collect();
        for (i, summary) in summaries.iter_mut().enumerate() {
            if i != reference {
                summary.vs_first = Some(versus(&records[reference], &records[i], budget).unwrap());
            }
        }
        let table = markdown_table(&summaries, reference);
        let lines: Vec<&str> = table.lines().collect();
        for header in [
            "| vs rho_loss |",
            "| paired difference to rho_loss (",
            "| P(fewer instances than rho_loss) |",
            "| compute vs rho_loss |",
            "| P(less compute than rho_loss) |",
        ] {
            assert!(lines[0].contains(header), "{header}: {}", lines[0]);
        }
        assert!(!lines[0].contains("first row"), "{}", lines[0]);
        // no_teach: 500 more than rho_loss on every seed, 194% of its mean, P 0.
        assert!(
            lines[2].contains("| +500 ± 0 (5 seeds) | 0.00 |") && lines[2].contains("| 194% |"),
            "{}",
            lines[2]
        );
        // The reference row itself has no pairing; mine is 100 fewer on every seed.
        assert!(lines[3].contains("| 100% | - | - |"), "{}", lines[3]);
        assert!(
            lines[4].contains("| -100 ± 0 (5 seeds) | 1.00 |"),
            "{}",
            lines[4]
        );
    }
}
