//! The `l2t` command: run the paper's experiments from presets.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use l2t::agents::NoTeach;
use l2t::experiment::{evaluate_teacher, mean_ci95, reproduce};
use l2t::presets::{default_data_dir, Preset, PRESETS};

/// Learning to Teach (Fan et al., ICLR 2018): train teachers and compare them.
#[derive(Debug, Parser)]
#[command(name = "l2t", version, about)]
struct Cli {
    /// libtorch intra-op threads (1 is fastest for the small students on 2 cores).
    #[arg(long, global = true, default_value_t = 1)]
    threads: i32,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train the REINFORCE teacher on the teacher half, then compare it with NoTeach,
    /// RandTeach and SPL on fresh students of the student half.
    Reproduce {
        /// Preset name (see `l2t list`).
        preset: String,
        /// Teacher-training episodes (default: the preset's).
        #[arg(long)]
        episodes: Option<usize>,
        /// Evaluation seeds per teacher (default: the preset's).
        #[arg(long)]
        seeds: Option<usize>,
        /// Dev-accuracy threshold tau (default: the preset's).
        #[arg(long)]
        tau: Option<f64>,
        /// Folder with the data (default: $L2T_DATA or the set-up's cache).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Folder for the results (default: runs/<preset>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the resolved preset as JSON and exit.
        #[arg(long)]
        print_config: bool,
    },
    /// Train fresh students of a preset with NoTeach for a fixed number of updates on
    /// the student half (no early stop) and report their test accuracy.
    Noteach {
        /// Preset name (see `l2t list`).
        preset: String,
        /// Student updates (T'); the episode runs them all.
        #[arg(long)]
        iterations: usize,
        /// Seeds (fresh students).
        #[arg(long, default_value_t = 3)]
        seeds: usize,
        /// Folder with the data (default: $L2T_DATA or the set-up's cache).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// List the presets.
    List,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tch::set_num_threads(cli.threads);
    match cli.command {
        Command::List => {
            for name in PRESETS {
                println!("{name}");
            }
        }
        Command::Noteach {
            preset,
            iterations,
            seeds,
            data_dir,
        } => {
            let Some(mut config) = Preset::named(&preset) else {
                bail!("unknown preset `{preset}`; known: {}", PRESETS.join(", "));
            };
            // tau = 1.0 is never exceeded: every episode runs the full budget.
            config.teaching = config.teaching.with_tau(1.0);
            config.teaching.max_iterations = iterations;
            config.teaching.eval_every = iterations.max(1);
            let data_dir = data_dir.unwrap_or_else(default_data_dir);
            let mut envs = config.build(&data_dir).with_context(|| {
                format!(
                    "preset {preset} (data folder {}) needs {}",
                    data_dir.display(),
                    config.data_requirement()
                )
            })?;
            let seeds: Vec<u64> = (0..seeds as u64).collect();
            let records =
                evaluate_teacher(&mut envs.student_env, &mut NoTeach, &seeds, &envs.test)?;
            for r in &records {
                println!(
                    "seed {}: {} updates of M = {}, test accuracy {:.4}, {:.1}s",
                    r.seed,
                    r.episode.iterations,
                    config.teaching.batch_size,
                    r.test_accuracy,
                    r.episode.wall_seconds
                );
            }
            let accuracies: Vec<f64> = records.iter().map(|r| r.test_accuracy).collect();
            let (mean, half_width) = mean_ci95(&accuracies);
            println!("{preset}: NoTeach test accuracy {mean:.4} ± {half_width:.4} (95% CI, {} seeds) after {iterations} updates", records.len());
        }
        Command::Reproduce {
            preset,
            episodes,
            seeds,
            tau,
            data_dir,
            out,
            print_config,
        } => {
            let Some(mut config) = Preset::named(&preset) else {
                bail!("unknown preset `{preset}`; known: {}", PRESETS.join(", "));
            };
            if let Some(episodes) = episodes {
                config.episodes = episodes;
            }
            if let Some(seeds) = seeds {
                config.eval_seeds = seeds;
            }
            if let Some(tau) = tau {
                config.teaching = config.teaching.with_tau(tau);
            }
            if print_config {
                println!("{}", serde_json::to_string_pretty(&config)?);
                return Ok(());
            }
            let data_dir = data_dir.unwrap_or_else(default_data_dir);
            let report =
                reproduce(&config, &data_dir, |line| eprintln!("{line}")).with_context(|| {
                    format!(
                        "preset {preset} (data folder {}) needs {}",
                        data_dir.display(),
                        config.data_requirement()
                    )
                })?;
            let out = out.unwrap_or_else(|| PathBuf::from("runs").join(&preset));
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let table = report.table();
            write_atomic(&out.join("summary.md"), table.as_bytes())?;
            write_atomic(
                &out.join("report.json"),
                serde_json::to_string_pretty(&report)?.as_bytes(),
            )?;
            println!("\n{table}");
            println!("results written to {}", out.display());
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file and a rename, so an interrupted run
/// never leaves a truncated result.
fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("part");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}
