//! The run folder's result files: `report.json`, `summary.md`, CSVs and figures.

use l2t_agents::{CurvePoint, LossRankDrops};
use l2t_envs::Reward;

use crate::run_dir::RunDir;

use super::*;

/// Writes `report.json`, `summary.md` and the CSV curves of `report` into `out`.
pub fn write_results(out: &RunDir, report: &Report) -> Result<()> {
    out.write_json("report.json", report)?;
    out.write("summary.md", report.summary_markdown().as_bytes())?;
    let option = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    let mut curves = Vec::new();
    let mut drops = Vec::new();
    for r in &report.evaluations {
        for p in &r.episode.curve {
            curves.push(vec![
                r.teacher.clone(),
                r.seed.to_string(),
                p.iteration.to_string(),
                p.effective_instances.to_string(),
                format!("{:.6}", p.training_compute as f64 / 1e9),
                p.dev_accuracy.to_string(),
                option(p.test_accuracy),
                format!("{:.3}", p.seconds),
            ]);
        }
        for w in &r.episode.loss_rank_drops {
            for (bucket, share) in w.dropped_shares().iter().enumerate() {
                drops.push(vec![
                    r.teacher.clone(),
                    r.seed.to_string(),
                    w.iteration.to_string(),
                    (bucket + 1).to_string(),
                    w.seen[bucket].to_string(),
                    w.dropped[bucket].to_string(),
                    share.to_string(),
                ]);
            }
        }
    }
    out.write_csv(
        "curves.csv",
        &[
            "teacher",
            "seed",
            "iteration",
            "effective_instances",
            "training_gflop",
            "dev_accuracy",
            "test_accuracy",
            "seconds",
        ],
        &curves,
    )?;
    out.write_csv(
        "loss_rank_drops.csv",
        &[
            "teacher",
            "seed",
            "iteration",
            "loss_rank_bucket",
            "seen",
            "dropped",
            "dropped_share",
        ],
        &drops,
    )?;
    let training: Vec<Vec<String>> = report
        .training
        .iter()
        .flat_map(|run| {
            run.episodes.iter().map(move |e| {
                let s = &e.summary;
                vec![
                    run.teacher.clone(),
                    e.episode.to_string(),
                    e.seed.to_string(),
                    s.episode_return.to_string(),
                    s.effective_instances_to_tau
                        .map_or(String::new(), |i| i.to_string()),
                    (s.instances_kept as f64 / s.instances_seen.max(1) as f64).to_string(),
                    s.best_dev_accuracy.to_string(),
                    format!("{:.3}", s.wall_seconds),
                ]
            })
        })
        .collect();
    out.write_csv(
        "training.csv",
        &[
            "teacher",
            "episode",
            "seed",
            "return",
            "effective_instances_to_tau",
            "kept_ratio",
            "best_dev_accuracy",
            "seconds",
        ],
        &training,
    )?;
    let per_update: Vec<Vec<String>> = report
        .training
        .iter()
        .flat_map(|run| {
            training_drops(run)
                .into_iter()
                .flat_map(move |(episode, counts)| {
                    let by = [
                        ("loss_rank", counts.dropped_shares()),
                        ("margin", counts.margin_dropped_shares()),
                    ];
                    by.into_iter().flat_map(move |(kind, shares)| {
                        shares.into_iter().enumerate().map(move |(bucket, share)| {
                            vec![
                                run.teacher.clone(),
                                episode.to_string(),
                                kind.to_string(),
                                (bucket + 1).to_string(),
                                share.to_string(),
                            ]
                        })
                    })
                })
        })
        .collect();
    out.write_csv(
        "training_drops.csv",
        &[
            "teacher",
            "episodes",
            "bucket_by",
            "bucket",
            "dropped_share",
        ],
        &per_update,
    )?;
    Ok(())
}

/// A training reward as a figure names it.
fn reward_text(reward: Reward) -> String {
    match reward {
        Reward::IterationsToTau => "reward -ln(i_tau / T')".to_string(),
        Reward::AcceptedInstancesToTau => "reward -ln(accepted / (T' M))".to_string(),
        Reward::DevAccuracyArea { iterations } => {
            format!("reward: area under the dev curve over {iterations} updates")
        }
        Reward::DevLossDecrease { iterations } => {
            format!("reward: dev-loss drop over {iterations} updates")
        }
        Reward::ComputeToTau => "reward -ln(C_tau / C_max)".to_string(),
        Reward::DevAccuracyComputeArea { iterations } => format!(
            "reward: area under the dev curve against training compute over {iterations} \
             updates' worth"
        ),
    }
}

/// Points on the x grid of the convergence plot.
const CONVERGENCE_GRID_POINTS: usize = 80;

/// Draws the run's figures into `out` (SVG and PNG each): `convergence` (dev accuracy
/// against effective training instances per teacher, mean and 95% band over seeds;
/// the paper's convergence figure), `convergence_compute` (the same against training
/// compute, scoring + training GFLOP: the objective a user pays), `filtered_data` (share of each loss-rank bucket
/// dropped over training, per teacher that drops anything; the paper's analysis
/// figure), `teacher_training` (episode returns of the learned teachers) and
/// `training_drops` (share of each loss-rank bucket and of each margin bucket their
/// training episodes dropped, update by update). A missing font is not an error: no
/// figure is drawn and the message is returned.
pub fn write_plots(out: &RunDir, report: &Report) -> Result<Vec<String>> {
    use crate::plots::{
        band_from_seeds, linear_grid, moving_average, plot_convergence, plot_filtered_data,
        plot_teacher_training, ChartLabels, CurveSeries, DropBuckets, DropPoint, DroppedShares,
        PlotError, TeacherCurve,
    };
    let mut warnings = Vec::new();
    let mut keep_going = |result: std::result::Result<crate::plots::PlotFiles, PlotError>,
                          stem: &str|
     -> Result<()> {
        match result {
            Ok(_) => Ok(()),
            Err(error @ PlotError::FontNotFound { .. }) => {
                warnings.push(error.to_string());
                Ok(())
            }
            Err(error) => Err(ExperimentError::Plot {
                path: out.path(stem),
                reason: error.to_string(),
            }),
        }
    };
    let preset = &report.config.preset;
    let labels: Vec<&str> = report
        .summaries
        .iter()
        .map(|summary| summary.teacher.as_str())
        .collect();

    // Convergence, against each objective: per-seed step curves on a common grid.
    type XOf = fn(&CurvePoint) -> f64;
    let convergence: [(&str, &str, XOf); 2] = [
        (
            "convergence",
            "effective training instances (updates x M)",
            |p| p.effective_instances as f64,
        ),
        (
            "convergence_compute",
            "training compute, GFLOP (scoring + training, evaluation excluded)",
            |p| p.training_compute as f64 / 1e9,
        ),
    ];
    for (stem, x_label, x_of) in convergence {
        let max_x = report
            .evaluations
            .iter()
            .flat_map(|r| r.episode.curve.iter().map(x_of))
            .fold(0.0, f64::max);
        if max_x <= 0.0 {
            continue;
        }
        let grid = linear_grid(0.0, max_x, CONVERGENCE_GRID_POINTS);
        let mut series = Vec::new();
        for label in &labels {
            let seeds: Vec<Vec<(f64, f64)>> = report
                .records_of(label)
                .iter()
                .map(|r| {
                    r.episode
                        .curve
                        .iter()
                        .map(|p| (x_of(p), p.dev_accuracy))
                        .collect()
                })
                .collect();
            if seeds.iter().any(|s| !s.is_empty()) {
                let mut band =
                    band_from_seeds(*label, &seeds, &grid).map_err(|e| ExperimentError::Plot {
                        path: out.path(stem),
                        reason: e.to_string(),
                    })?;
                // Accuracies live in [0, 1]; so does the band drawn around them.
                for point in &mut band.points {
                    point.lower = point.lower.max(0.0);
                    point.upper = point.upper.min(1.0);
                }
                series.push(band);
            }
        }
        let tau = preset
            .teaching
            .thresholds
            .iter()
            .map(|t| t.accuracy)
            .reduce(f64::max);
        let chart = ChartLabels::new(
            &format!(
                "{}: dev accuracy of fresh students (mean, 95% CI over {} seeds)",
                preset.name, preset.eval_seeds
            ),
            x_label,
            "dev accuracy",
        );
        keep_going(plot_convergence(out.path(stem), &series, &chart, tau), stem)?;
    }

    // Filtered data: windows of steps, pooled over seeds.
    let m = preset.teaching.batch_size as f64;
    let mut dropped = Vec::new();
    for label in &labels {
        let records = report.records_of(label);
        let windows = records
            .iter()
            .map(|r| r.episode.loss_rank_drops.len())
            .max()
            .unwrap_or(0);
        let mut points = Vec::with_capacity(windows);
        let mut drops_anything = false;
        for k in 0..windows {
            let in_window: Vec<&LossRankDrops> = records
                .iter()
                .filter_map(|r| r.episode.loss_rank_drops.get(k))
                .collect();
            let mut pooled = LossRankDrops::empty(0);
            for window in &in_window {
                pooled.absorb(window);
            }
            drops_anything |= pooled.dropped.iter().any(|&d| d > 0);
            let x = in_window.iter().map(|w| w.iteration as f64).sum::<f64>()
                / in_window.len().max(1) as f64
                * m;
            points.push(DropPoint {
                x,
                shares: pooled.dropped_shares(),
            });
        }
        if drops_anything {
            dropped.push(DroppedShares {
                label: label.to_string(),
                by: DropBuckets::LossRank,
                points,
            });
        }
    }
    if !dropped.is_empty() {
        let chart = ChartLabels::new(
            &format!(
                "{}: share of each loss-rank bucket dropped (1 = lowest loss)",
                preset.name
            ),
            "effective training instances (updates x M)",
            "share dropped",
        );
        keep_going(
            plot_filtered_data(out.path("filtered_data"), &dropped, &chart),
            "filtered_data",
        )?;
    }

    // Teacher training: episode returns and their moving average.
    let curves: Vec<TeacherCurve> = report
        .training
        .iter()
        .filter(|run| !run.episodes.is_empty())
        .map(|run| {
            let values: Vec<(f64, f64)> = run
                .episodes
                .iter()
                .map(|e| ((e.episode + 1) as f64, e.summary.episode_return))
                .collect();
            // A teacher trained on a reward of its own says which in the legend.
            let own_reward = (report.config.teachers.iter())
                .find(|e| e.label == run.teacher)
                .and_then(|e| e.training_reward);
            TeacherCurve {
                label: match own_reward {
                    Some(reward) => format!("{} ({})", run.teacher, reward_text(reward)),
                    None => run.teacher.clone(),
                },
                secondary: Some(CurveSeries {
                    label: "moving average (5)".into(),
                    points: moving_average(&values, 5),
                }),
                values,
            }
        })
        .collect();
    if !curves.is_empty() {
        let reward = reward_text(report.config.training_teaching().reward);
        let chart = ChartLabels::new(
            &format!(
                "{}: teacher training on {} ({reward} per episode)",
                preset.name,
                report.config.training_preset().name
            ),
            "episode",
            "episode return",
        );
        keep_going(
            plot_teacher_training(out.path("teacher_training"), &curves, &chart),
            "teacher_training",
        )?;
        // What the policy learned, update by update: the share of each loss-rank bucket
        // and of each margin bucket its training episodes dropped, side by side.
        let per_update: Vec<DroppedShares> = report
            .training
            .iter()
            .flat_map(|run| {
                let drops = training_drops(run);
                let panel = |by, name: &str, shares: fn(&LossRankDrops) -> [f64; 5]| {
                    let points = (drops.iter())
                        .map(|(episode, counts)| DropPoint {
                            x: *episode as f64,
                            shares: shares(counts),
                        })
                        .collect();
                    let label = format!("{}, by {name}", run.teacher);
                    DroppedShares { label, by, points }
                };
                [
                    panel(
                        DropBuckets::LossRank,
                        "loss rank",
                        LossRankDrops::dropped_shares,
                    ),
                    panel(
                        DropBuckets::Margin,
                        "margin",
                        LossRankDrops::margin_dropped_shares,
                    ),
                ]
            })
            .filter(|panel| !panel.points.is_empty())
            .collect();
        if !per_update.is_empty() {
            let chart = ChartLabels::new(
                &format!(
                    "{}: share dropped per teacher update, by loss-rank bucket and by margin bucket",
                    preset.name
                ),
                "training episodes",
                "share dropped",
            );
            keep_going(
                plot_filtered_data(out.path("training_drops"), &per_update, &chart),
                "training_drops",
            )?;
        }
    }
    Ok(warnings)
}

/// What the training episodes of each update of `run` dropped, pooled over the
/// update's episodes (an update closes with the episode whose summary carries it):
/// `(episodes so far, counts)` per update, with the counts per loss-rank bucket and per
/// margin bucket ([`LossRankDrops::dropped_shares`],
/// [`LossRankDrops::margin_dropped_shares`]). For a Bernoulli policy the shares estimate
/// its mean drop probability per bucket at that update.
pub fn training_drops(run: &TrainingRun) -> Vec<(usize, LossRankDrops)> {
    let mut points = Vec::new();
    let mut update = LossRankDrops::empty(0);
    for episode in &run.episodes {
        for window in &episode.summary.loss_rank_drops {
            update.absorb(window);
        }
        if episode.summary.update.is_some() && update.seen.iter().any(|&n| n > 0) {
            let done = std::mem::replace(&mut update, LossRankDrops::empty(0));
            points.push((episode.episode + 1, done));
        }
    }
    points
}
