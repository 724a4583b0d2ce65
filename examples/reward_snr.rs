//! Which training reward tells a better teaching policy from a worse one?
//!
//! A learned teacher can only climb what its training reward measures. This example
//! measures, for several rewards of the teaching MDP, how clearly the return separates
//! a good data-selection policy (online batch selection, which keeps the high-loss
//! instances: about half of NoTeach's instances to tau on Fashion-MNIST) from keeping
//! everything (NoTeach), on the same students:
//!
//! ```text
//! d_s  = R_online_batch(s) - R_no_teach(s)       paired: same student seed s
//! SNR  = mean_s(d_s) / sd_s(d_s)                  how reliably the reward ranks them
//! ```
//!
//! and `mean(d) / sd(R_no_teach)`, the effect against the spread of the return of one
//! fixed policy across students (what an update sees without common random numbers).
//! The episodes are the product's training episodes: Fashion-MNIST's teacher half, the
//! MLP student, dev accuracy on the same 1000-instance subsample as `l2t reproduce`'s
//! training. Every reward is scored on the same seeds.
//!
//! Run: `cargo run --release --example reward_snr -- [seeds]` (default 8 seeds;
//! needs the set-up's data: `bash scripts/setup.sh`).

use anyhow::{Context, Result};
use l2t::agents::{run_episode, OnlineBatchConfig, TeacherConfig};
use l2t::config::RunConfig;
use l2t::envs::{EnvJob, Reward, TeachingConfig, TeachingEnv, Threshold};
use l2t::experiment::{dev_subsample, TrainingTask};
use l2t::presets::default_data_dir;
use l2t::stats::{mean, sample_sd};

fn main() -> Result<()> {
    let seeds: u64 = match std::env::args().nth(1) {
        Some(text) => text
            .parse()
            .context("the argument is the number of seeds")?,
        None => 8,
    };
    tch::set_num_threads(1);
    let config = RunConfig::named("fashion-mnist-mlp").context("preset")?;
    let preset = &config.preset;
    let envs = preset.build_on(&default_data_dir(), tch::Device::Cpu)?;
    let workers = config.training.worker_count();
    let mut task = TrainingTask::of(&envs.teacher_env, preset.student.clone(), workers);
    if let Some(size) = config.training.dev_subsample {
        task.dev = dev_subsample(&task.dev, size, preset.split_seed)?;
    }
    let paper = preset.teaching.clone();
    let area = |iterations| TeachingConfig {
        reward: Reward::DevAccuracyArea { iterations },
        ..paper.clone()
    };
    let levels = [0.80, 0.83, 0.86].map(|accuracy| Threshold {
        accuracy,
        weight: 1.0 / 3.0,
    });
    let rewards: Vec<(&str, TeachingConfig)> = vec![
        ("iterations to tau = 0.86 (the paper's)", paper.clone()),
        ("iterations to tau = 0.80", paper.clone().with_tau(0.80)),
        (
            "weighted thresholds 0.80, 0.83, 0.86",
            TeachingConfig {
                thresholds: levels.to_vec(),
                ..paper.clone()
            },
        ),
        ("dev-accuracy area, H = 250", area(250)),
        ("dev-accuracy area, H = 500", area(500)),
        ("dev-accuracy area, H = 1000", area(1000)),
        (
            "dev-loss decrease, H = 500",
            TeachingConfig {
                reward: Reward::DevLossDecrease { iterations: 500 },
                ..paper.clone()
            },
        ),
    ];
    let teachers = [
        TeacherConfig::NoTeach,
        TeacherConfig::OnlineBatch(OnlineBatchConfig::default()),
    ];
    let layout = envs.teacher_env.layout().clone();
    println!("{seeds} paired seeds, {workers} workers\n");
    println!("| training reward | NoTeach return | online batch return | mean d | sd d | SNR = mean d / sd d | mean d / sd(NoTeach) |");
    println!("|---|---|---|---|---|---|---|");
    for (name, teaching) in rewards {
        task.teaching = teaching;
        let mut pool = task.pool()?;
        let mut jobs: Vec<EnvJob<TeachingEnv, l2t::agents::Result<f64>>> = Vec::new();
        for teacher in &teachers {
            for seed in 0..seeds {
                let (teacher, layout) = (teacher.clone(), layout.clone());
                jobs.push(Box::new(move |env: &mut TeachingEnv| {
                    let mut teacher = teacher.build(&layout)?;
                    Ok(run_episode(env, teacher.as_mut(), Some(10_000 + seed))?.episode_return)
                }));
            }
        }
        let returns = pool
            .run(jobs)?
            .into_iter()
            .collect::<l2t::agents::Result<Vec<f64>>>()?;
        let (no_teach, online) = returns.split_at(seeds as usize);
        let d: Vec<f64> = online.iter().zip(no_teach).map(|(o, n)| o - n).collect();
        let mean_d = mean(&d);
        let (sd_d, sd_no_teach) = (sample_sd(&d), sample_sd(no_teach));
        println!(
            "| {name} | {:.4} | {:.4} | {mean_d:.4} | {sd_d:.4} | {:.2} | {:.2} |",
            mean(no_teach),
            mean(online),
            mean_d / sd_d,
            mean_d / sd_no_teach
        );
    }
    Ok(())
}
