//! Why the paper's REINFORCE does not learn, measured: how many episodes one of its
//! gradient estimates needs before it points anywhere in particular.
//!
//! At a fixed policy theta_0 (the paper's REINFORCE teacher at its initialisation,
//! `Reinforce::new(ReinforceConfig::default(), F)`) the example rolls out N = 2 K_max
//! independent training episodes and records, for each, the return r_k and the score
//!
//! ```text
//! s_k = grad_theta sum_t sum_m log phi_theta(a_ktm | s_ktm)          at theta_0
//! g_k = (r_k - b_k) s_k                                              one episode's estimate
//! ```
//!
//! (`Reinforce::policy_gradient` of the one episode with advantage 1: the same
//! surrogate loss the teacher's update minimises). An update from K episodes uses
//! `g_hat(S) = (1/K) sum_{k in S} g_k`; two disjoint sets A, B of K episodes give two
//! independent estimates of the same gradient mu = E[g], and
//!
//! ```text
//! cos(K) = g_hat(A) . g_hat(B) / (|g_hat(A)| |g_hat(B)|)
//! ```
//!
//! measures how much of an update is signal: 1 when both point along mu, about 0 when
//! they are noise. With sigma^2 = E|g - mu|^2 (the trace of one episode's gradient
//! covariance) and the signal-to-noise ratio of one episode
//!
//! ```text
//! rho = |mu|^2 / sigma^2
//! ```
//!
//! each estimate is mu plus noise of squared norm about sigma^2 / K, nearly orthogonal
//! to mu and to the other estimate's noise in this many dimensions, so
//!
//! ```text
//! cos(K) ~ |mu|^2 / (|mu|^2 + sigma^2 / K) = K rho / (1 + K rho),
//! K(c)   = c / ((1 - c) rho)        episodes per update for cos = c  (1/rho for 0.5, 9/rho for 0.9)
//! ```
//!
//! rho is estimated twice: from moments of all N episodes' g_k, with
//! `|mu|^2 ~ sum_{i != j} g_i . g_j / (N (N - 1))` (unbiased) and
//! `sigma^2 ~ sum_i |g_i - g_bar|^2 / (N - 1)`, with the standard error of that
//! U-statistic (`Var ~ 4 Var(g . mu) / N + 2 E[(g_i . g_j)^2] / (N (N - 1))`) and a
//! one-sided 95% upper bound `max(rho, 0) + 1.645 se` (hence a least number of
//! episodes per update); and by fitting the curve above to the measured mean cosines
//! (weighted least squares in rho >= 0, over the Ks with at least 4 disjoint pairs).
//!
//! **Baselines.** The paper's b is an exponential moving average of past returns:
//! after a few episodes at a fixed policy, an estimate of the mean return that does
//! not depend on the current episode. Its stand-in here (the main columns) is the
//! leave-one-out mean over the whole pool, `b_k = (1/(N - 1)) sum_{j != k} r_j`
//! (the crate's `advantages` with `Baseline::LeaveOneOut` over all N returns): unbiased,
//! and as good a baseline as a moving average can be. It ties the two estimates
//! together only through one of N - 1 returns. The second cosine column uses the
//! leave-one-out mean of the estimate's own K episodes (`Baseline::LeaveOneOut` with
//! K episodes per update, K >= 2), which keeps the two estimates fully independent.
//!
//! **Splits.** For each K, `--resamples` random partitions of the N episodes (a
//! permutation from the `Stream::Minibatch` stream keyed by the seeds, K and the
//! resample) into sets of K; every disjoint pair (A, B) of a partition gives one
//! cosine. The table gives their mean, a standard error `sd / sqrt(N / 2K)` (the pairs
//! of one partition are independent; the partitions reuse the same episodes) and their
//! spread. When only one or two pairs fit in the pool (K >= N/4), every partition
//! splits the same episodes, and the mean over partitions,
//! `E[g_hat(A) . g_hat(B)] ∝ |sum_i g_i|^2 - sum_i |g_i|^2`, restates the pool's moment
//! estimate of |mu|^2 rather than replicating it.
//!
//! **Episodes.** The product's training episodes, built as `l2t reproduce` builds them:
//! preset `fashion-mnist-mlp` with the `irreducible_loss` feature (each instance's
//! cross-fitted holdout loss, which the reproduction's teachers see; off with
//! `--no-irreducible-loss`, the env `examples/reward_snr.rs` builds), the teacher
//! half, the MLP student, the training reward
//! and evaluation interval (`--reward training`, the dev-accuracy area over H updates)
//! or the paper's reward `-ln(i_tau / T')` at the preset's tau (`--reward paper`), on
//! the 1000-instance dev subsample. The episodes are the crate's own
//! ([`l2t::agents::plan_episodes`] with a frozen copy of the policy, run by
//! [`l2t::agents::run_episode`] on an `EnvPool`'s worker threads): episode j is seeded
//! `first_seed + j` (default 1000, the first seed of `l2t reproduce`'s training, so
//! episode 0 is the first episode REINFORCE trains on there) and samples its actions
//! from the stream keyed by the teacher's seed and its env seed. Every number but the
//! timings is a function of the command line, whatever the number of workers.
//!
//! Run: `cargo run --release --example reinforce_gradient_cosine -- [--k-max 64]
//! [--resamples 200] [--seed 0] [--first-seed 1000] [--reward training|paper]
//! [--workers W] [--out runs/reinforce-gradient-cosine] [--from result.json]
//! [--no-irreducible-loss]` (needs the set-up's data:
//! `bash scripts/setup.sh`). Writes `table.md` and `result.json` (with every episode's
//! return and score, to recompute anything) to the output folder; `--from
//! <folder>/result.json` analyses a saved run's episodes again without rolling out.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use l2t::agents::weights::named_trainable_in_name_order;
use l2t::agents::{advantages, plan_episodes, Baseline, Reinforce, ReinforceConfig, Rollouts};
use l2t::config::RunConfig;
use l2t::envs::io::write_atomic;
use l2t::envs::seeding::{keyed_rng, Stream};
use l2t::experiment::{
    dev_subsample, with_irreducible_loss_feature, TrainingTask, FIRST_TRAINING_SEED,
};
use l2t::presets::default_data_dir;
use l2t::run_dir::RunDir;
use l2t::stats::{mean, sample_sd};

/// Which reward the training episodes pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RewardChoice {
    /// `l2t reproduce`'s training reward and evaluation interval.
    Training,
    /// The preset's (the paper's) reward, -ln(i_tau / T') at tau.
    Paper,
}

/// The command line.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Args {
    k_max: usize,
    resamples: usize,
    seed: u64,
    first_seed: u64,
    reward: RewardChoice,
    workers: Option<usize>,
    out: PathBuf,
    /// Analyse the episodes of a saved `result.json` instead of rolling out.
    #[serde(default)]
    from: Option<PathBuf>,
    /// Give the teacher the `irreducible_loss` feature, as `l2t reproduce` does (off:
    /// the preset's own features, as `examples/reward_snr.rs` builds the env).
    #[serde(default)]
    irreducible_loss: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        k_max: 64,
        resamples: 200,
        seed: 0,
        first_seed: FIRST_TRAINING_SEED,
        reward: RewardChoice::Training,
        workers: None,
        out: PathBuf::from("runs/reinforce-gradient-cosine"),
        from: None,
        irreducible_loss: true,
    };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        let mut value = || {
            words
                .next()
                .with_context(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--k-max" => args.k_max = value()?.parse().context("--k-max: a whole number")?,
            "--resamples" => {
                args.resamples = value()?.parse().context("--resamples: a whole number")?
            }
            "--seed" => args.seed = value()?.parse().context("--seed: a whole number")?,
            "--first-seed" => {
                args.first_seed = value()?.parse().context("--first-seed: a whole number")?
            }
            "--workers" => {
                args.workers = Some(value()?.parse().context("--workers: a whole number")?)
            }
            "--reward" => {
                args.reward = match value()?.as_str() {
                    "training" => RewardChoice::Training,
                    "paper" => RewardChoice::Paper,
                    other => bail!("--reward is training or paper, not {other:?}"),
                }
            }
            "--out" => args.out = PathBuf::from(value()?),
            "--from" => args.from = Some(PathBuf::from(value()?)),
            "--no-irreducible-loss" => args.irreducible_loss = false,
            "-h" | "--help" => {
                println!(
                    "reinforce_gradient_cosine [--k-max 64] [--resamples 200] [--seed 0] \
                     [--first-seed 1000] [--reward training|paper] [--workers W] \
                     [--out runs/reinforce-gradient-cosine] [--from result.json] \
                     [--no-irreducible-loss]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    if args.k_max == 0 {
        bail!("--k-max must be at least 1");
    }
    if args.resamples == 0 {
        bail!("--resamples must be at least 1");
    }
    if args.workers == Some(0) {
        bail!("--workers must be at least 1");
    }
    Ok(args)
}

/// One finished episode at theta_0.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EpisodeRecord {
    seed: u64,
    episode_return: f64,
    steps: usize,
    iterations: usize,
    instances_seen: usize,
    instances_kept: usize,
    wall_seconds: f64,
    /// s_k = grad sum log phi(a | s) at theta_0, in `Reinforce::flat_weights` order.
    score: Vec<f32>,
}

/// The cosines of one K.
#[derive(Debug, Clone, Serialize)]
struct Row {
    k: usize,
    /// Disjoint pairs of K-episode sets the N episodes hold.
    disjoint_pairs: usize,
    /// Pool leave-one-out baseline: mean, sd, 10th and 90th percentiles over splits.
    cos_mean: f64,
    cos_sd: f64,
    /// sd / sqrt(disjoint pairs): the pairs of one partition are independent.
    cos_se: f64,
    cos_p10: f64,
    cos_p90: f64,
    /// Leave-one-out baseline within each estimate (K >= 2).
    cos_within_mean: Option<f64>,
    cos_within_sd: Option<f64>,
    /// K rho / (1 + K rho) at rho's upper bound: the most the data allow.
    cos_predicted: f64,
}

/// The cosines and rho of one set of coordinates of the gradient.
#[derive(Debug, Serialize)]
struct Analysis {
    /// Coordinates (weights) of the gradient.
    parameters: usize,
    /// |mu|^2, sigma^2 and rho = |mu|^2 / sigma^2 from moments (pool leave-one-out).
    mu_norm_sq: f64,
    sigma_sq: f64,
    rho_moment: f64,
    rho_moment_se: f64,
    /// rho fitted to the mean cosines (at least 0).
    rho_fit: f64,
    /// One-sided 95% upper bound on rho: max(moments, 0) + 1.645 se.
    rho_upper: f64,
    /// Episodes per update for cos = 0.5 and 0.9, from each rho (infinite for rho <= 0),
    /// and the fewest the upper bound allows.
    k_half_moment: f64,
    k_090_moment: f64,
    k_half_lower: f64,
    k_090_lower: f64,
    k_half_fit: f64,
    k_090_fit: f64,
    rows: Vec<Row>,
}

/// Everything measured, for `result.json`.
#[derive(Debug, Serialize)]
struct Report {
    args: Args,
    preset: String,
    reward: String,
    workers: usize,
    episodes: usize,
    seconds: f64,
    return_mean: f64,
    return_sd: f64,
    kept_ratio: f64,
    /// The whole gradient.
    all: Analysis,
    /// The gradient without the output bias (the uniform keep-rate direction).
    without_output_bias: Analysis,
    /// The output bias's component of mu (pool leave-one-out), and its standard error
    /// over the episodes: negative means "keep fewer".
    output_bias_gradient: f64,
    output_bias_gradient_se: f64,
    records: Vec<EpisodeRecord>,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let norms = (dot(a, a) * dot(b, b)).sqrt();
    if norms > 0.0 {
        dot(a, b) / norms
    } else {
        0.0
    }
}

/// `(1/K) sum_{k in set} advantage_k score_k`.
fn estimate(scores: &[Vec<f64>], set: &[usize], advantage: impl Fn(usize) -> f64) -> Vec<f64> {
    let mut sum = vec![0.0; scores[0].len()];
    for (position, &k) in set.iter().enumerate() {
        let a = advantage(position) / set.len() as f64;
        sum.iter_mut()
            .zip(&scores[k])
            .for_each(|(s, x)| *s += a * x);
    }
    sum
}

/// The q-quantile of `values` (sorted copy, nearest rank).
fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index]
}

/// `(|mu|^2, sigma^2)` from per-episode gradients `g`: the unbiased pairwise mean of
/// `g_i . g_j` (i != j) and the sample trace of the covariance, given `sum = sum_i g_i`
/// and `squares = sum_i |g_i|^2`.
fn moments(sum: &[f64], squares: f64, n: usize) -> (f64, f64) {
    let n = n as f64;
    let total = dot(sum, sum);
    let mu_sq = (total - squares) / (n * (n - 1.0));
    let sigma_sq = (squares - total / n) / (n - 1.0);
    (mu_sq, sigma_sq)
}

/// The rho >= 0 minimising `sum_K w_K (cos_K - K rho / (1 + K rho))^2` for points
/// `(K, cos_K, w_K)`: rho = 0 or a log grid over [1e-7, 1e3], then golden-section
/// refinement around the best grid point.
fn fit_rho(points: &[(usize, f64, f64)]) -> f64 {
    let loss_at = |rho: f64| -> f64 {
        points
            .iter()
            .map(|&(k, c, w)| {
                let model = k as f64 * rho / (1.0 + k as f64 * rho);
                w * (c - model).powi(2)
            })
            .sum()
    };
    let loss = |log_rho: f64| loss_at(log_rho.exp());
    let (lo, hi) = (1e-7f64.ln(), 1e3f64.ln());
    let grid = 400;
    let step = (hi - lo) / grid as f64;
    let best = (0..=grid)
        .map(|i| lo + i as f64 * step)
        .min_by(|a, b| loss(*a).total_cmp(&loss(*b)))
        .unwrap_or(lo);
    let (mut a, mut b) = ((best - step).max(lo), (best + step).min(hi));
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..100 {
        let (c, d) = (b - phi * (b - a), a + phi * (b - a));
        if loss(c) < loss(d) {
            b = d;
        } else {
            a = c;
        }
    }
    let rho = ((a + b) / 2.0).exp();
    if loss_at(0.0) <= loss_at(rho) {
        0.0
    } else {
        rho
    }
}

/// Episodes per update for a cosine of `c` at signal-to-noise ratio `rho`.
fn episodes_for(c: f64, rho: f64) -> f64 {
    if rho > 0.0 {
        c / ((1.0 - c) * rho)
    } else {
        f64::INFINITY
    }
}

/// The cosines of every K and the estimates of rho for per-episode scores `scores`
/// and returns `returns`.
fn analyse(scores: &[Vec<f64>], returns: &[f64], args: &Args) -> Analysis {
    let n = scores.len();
    let parameters = scores[0].len();
    // Pool leave-one-out advantages and the per-episode gradients g_k.
    let pool_advantages = advantages(returns, Baseline::LeaveOneOut, 0.0, false);
    let gradients: Vec<Vec<f64>> = scores
        .iter()
        .zip(&pool_advantages)
        .map(|(s, a)| s.iter().map(|x| a * x).collect())
        .collect();

    // Moments of g, and rho's standard error from the variance of the U-statistic
    // |mu|^2_hat = mean_{i != j} g_i . g_j:
    //   Var ~ 4 Var_i(g_i . mu) / N + 2 E[(g_i . g_j)^2] / (N (N - 1)).
    // (A jackknife linearises |sum g|^2 around sum g, and so understates the spread
    // where mu is near 0.)
    let mut sum = vec![0.0; parameters];
    for g in &gradients {
        sum.iter_mut().zip(g).for_each(|(s, x)| *s += x);
    }
    let squares: f64 = gradients.iter().map(|g| dot(g, g)).sum();
    let (mu_sq, sigma_sq) = moments(&sum, squares, n);
    let rho_moment = mu_sq / sigma_sq;
    let g_bar: Vec<f64> = sum.iter().map(|s| s / n as f64).collect();
    let along_mu: Vec<f64> = gradients.iter().map(|g| dot(g, &g_bar)).collect();
    let mut cross_squares = 0.0;
    for (i, gi) in gradients.iter().enumerate() {
        for gj in &gradients[i + 1..] {
            cross_squares += dot(gi, gj).powi(2);
        }
    }
    let pairs = (n * (n - 1)) as f64;
    let mu_sq_var =
        4.0 * sample_sd(&along_mu).powi(2) / n as f64 + 2.0 * (2.0 * cross_squares / pairs) / pairs;
    let rho_moment_se = mu_sq_var.sqrt() / sigma_sq;

    // Cosines of two disjoint K-episode estimates: every disjoint pair of each random
    // partition of the N episodes into sets of K.
    // Clamped at 0 first: rho cannot be negative, and a negative estimate (chance, in a
    // statistic this heavy-tailed) should not tighten the bound.
    let rho_upper = rho_moment.max(0.0) + 1.645 * rho_moment_se;
    let mut rows = Vec::new();
    let mut k = 1;
    while 2 * k <= n {
        let pairs = n / (2 * k);
        let mut pooled = Vec::with_capacity(args.resamples * pairs);
        let mut within = Vec::with_capacity(args.resamples * pairs);
        for resample in 0..args.resamples as u64 {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut keyed_rng(
                &[args.seed, args.first_seed, k as u64, resample],
                Stream::Minibatch,
            ));
            for pair in order.chunks_exact(2 * k) {
                let (a, b) = pair.split_at(k);
                let by_pool = |set: &[usize]| estimate(scores, set, |p| pool_advantages[set[p]]);
                pooled.push(cosine(&by_pool(a), &by_pool(b)));
                if k >= 2 {
                    let by_own = |set: &[usize]| {
                        let own: Vec<f64> = set.iter().map(|&i| returns[i]).collect();
                        let adv = advantages(&own, Baseline::LeaveOneOut, 0.0, false);
                        estimate(scores, set, |p| adv[p])
                    };
                    within.push(cosine(&by_own(a), &by_own(b)));
                }
            }
        }
        let kr = k as f64 * rho_upper;
        let sd = sample_sd(&pooled);
        rows.push(Row {
            k,
            disjoint_pairs: pairs,
            cos_mean: mean(&pooled),
            cos_sd: sd,
            cos_se: sd / (pairs as f64).sqrt(),
            cos_p10: quantile(&pooled, 0.1),
            cos_p90: quantile(&pooled, 0.9),
            cos_within_mean: (k >= 2).then(|| mean(&within)),
            cos_within_sd: (k >= 2).then(|| sample_sd(&within)),
            cos_predicted: kr / (1.0 + kr),
        });
        k *= 2;
    }
    // The fit uses the Ks with at least 4 disjoint pairs, weighted by 1 / se^2: with
    // fewer, every partition reuses the same few episodes and the rows only restate
    // the pool's moment estimate.
    let points: Vec<(usize, f64, f64)> = rows
        .iter()
        .filter(|r| r.disjoint_pairs >= 4)
        .map(|r| (r.k, r.cos_mean, 1.0 / r.cos_se.max(1e-9).powi(2)))
        .collect();
    let rho_fit = fit_rho(&points);
    Analysis {
        parameters,
        mu_norm_sq: mu_sq,
        sigma_sq,
        rho_moment,
        rho_moment_se,
        rho_fit,
        rho_upper,
        k_half_moment: episodes_for(0.5, rho_moment),
        k_090_moment: episodes_for(0.9, rho_moment),
        k_half_lower: episodes_for(0.5, rho_upper),
        k_090_lower: episodes_for(0.9, rho_upper),
        k_half_fit: episodes_for(0.5, rho_fit),
        k_090_fit: episodes_for(0.9, rho_fit),
        rows,
    }
}

/// The episodes at theta_0 and where they came from: rolled out now, or read back
/// from a `result.json` (`--from`).
struct Rolled {
    preset: String,
    reward: String,
    workers: usize,
    seconds: f64,
    records: Vec<EpisodeRecord>,
}

/// The fields of a saved `result.json` that [`Rolled`] needs.
#[derive(Deserialize)]
struct Saved {
    args: Args,
    preset: String,
    reward: String,
    workers: usize,
    seconds: f64,
    records: Vec<EpisodeRecord>,
}

/// Rolls out the 2 K_max episodes of `args` with frozen copies of theta_0 on the
/// product's training episodes, a chunk at a time so that only the scores (not the
/// trajectories) are kept.
fn roll_out(args: &Args) -> Result<Rolled> {
    let started = Instant::now();
    let mut config = RunConfig::named("fashion-mnist-mlp").context("preset")?;
    if let Some(workers) = args.workers {
        config.training.workers = workers;
    }
    let mut envs = config
        .preset
        .build_on(&default_data_dir(), tch::Device::Cpu)
        .context("building the Fashion-MNIST envs (run `bash scripts/setup.sh` first)")?;
    // As `l2t reproduce`: the reproduction's teachers also see each instance's
    // cross-fitted holdout loss (computed once and cached in the output folder).
    if args.irreducible_loss && config.preset.irreducible_loss_feature {
        let run_dir = RunDir::create(&args.out)?;
        envs = with_irreducible_loss_feature(envs, &config.preset, run_dir.root())?;
    }
    let training_preset = config.training_preset();
    let workers = config.training.worker_count();
    let mut task = TrainingTask::of(&envs.teacher_env, training_preset.student.clone(), workers);
    task.teaching = match args.reward {
        RewardChoice::Training => config.training_teaching(),
        RewardChoice::Paper => training_preset.teaching.clone(),
    };
    if let Some(size) = config.training.dev_subsample {
        task.dev = dev_subsample(&task.dev, size, training_preset.split_seed)?;
    }
    let reward = format!("{:?}", task.teaching.reward);
    let feature_names = envs.teacher_env.feature_names().to_vec();
    let feature_dim = feature_names.len();
    let teacher = theta_0(args.seed, envs.teacher_env.layout())?;
    let n = 2 * args.k_max;
    println!(
        "{n} episodes of `fashion-mnist-mlp` training ({reward}, thresholds {:?}), REINFORCE \
         at theta_0 ({feature_dim} features: {}), {workers} workers",
        task.teaching.thresholds,
        feature_names.join(", ")
    );
    let mut pool = task.pool()?;
    let mut jobs = plan_episodes(teacher.policy(), args.seed, n, args.first_seed, false)?;
    let chunk = 4 * workers.max(1);
    let mut records: Vec<EpisodeRecord> = Vec::with_capacity(n);
    while !jobs.is_empty() {
        let rest = jobs.split_off(chunk.min(jobs.len()));
        let seeds: Vec<u64> = jobs.iter().map(|job| job.seed).collect();
        let done = Rollouts::run(&mut pool, std::mem::replace(&mut jobs, rest))?;
        for (seed, (summary, trajectory)) in seeds.into_iter().zip(done) {
            let score = teacher.policy_gradient(std::slice::from_ref(&trajectory), &[1.0])?;
            records.push(EpisodeRecord {
                seed,
                episode_return: trajectory.episode_return(),
                steps: summary.steps,
                iterations: summary.iterations,
                instances_seen: summary.instances_seen,
                instances_kept: summary.instances_kept,
                wall_seconds: summary.wall_seconds,
                score,
            });
        }
        eprintln!(
            "{} / {n} episodes, {:.0} s",
            records.len(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(Rolled {
        preset: config.preset.name.clone(),
        reward,
        workers,
        seconds: started.elapsed().as_secs_f64(),
        records,
    })
}

/// The paper's REINFORCE teacher at its initialisation for teacher seed `seed`.
fn theta_0(seed: u64, layout: &l2t::envs::FeatureLayout) -> Result<Reinforce> {
    Ok(Reinforce::new(
        ReinforceConfig {
            seed,
            ..ReinforceConfig::default()
        },
        layout,
    )?)
}

fn main() -> Result<()> {
    let mut args = parse_args()?;
    tch::set_num_threads(1);
    let rolled = match &args.from {
        None => roll_out(&args)?,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let saved: Saved = serde_json::from_str(&text).with_context(|| {
                format!("{} is not a result.json of this example", path.display())
            })?;
            // The episodes' seeds and reward are the saved run's; the splits, the
            // output folder and the rest are this command's.
            args.seed = saved.args.seed;
            args.first_seed = saved.args.first_seed;
            args.reward = saved.args.reward;
            args.irreducible_loss = saved.args.irreducible_loss;
            args.k_max = saved.records.len() / 2;
            Rolled {
                preset: saved.preset,
                reward: saved.reward,
                workers: saved.workers,
                seconds: saved.seconds,
                records: saved.records,
            }
        }
    };
    let Rolled {
        preset,
        reward,
        workers,
        seconds,
        records,
    } = rolled;
    let n = records.len();
    if n < 2
        || records
            .iter()
            .any(|r| r.score.len() != records[0].score.len())
    {
        bail!("{n} episodes with scores of one length are needed, at least 2");
    }
    let parameters = records[0].score.len();
    // The policy's layout (12 hidden units): parameters = 12 F + 12 + 12 + 1.
    let hidden = ReinforceConfig::default().hidden;
    let feature_dim = parameters
        .checked_sub(2 * hidden + 1)
        .map_or(0, |inputs| inputs / hidden);
    // Only the width is known here: the scores were written as bare weights.
    let teacher = theta_0(args.seed, &l2t::envs::FeatureLayout::unnamed(feature_dim))
        .with_context(|| format!("{parameters} weights do not fit the paper's policy"))?;
    if teacher.flat_weights()?.len() != parameters {
        bail!("the scores have {parameters} weights, not those of the paper's policy");
    }

    let returns: Vec<f64> = records.iter().map(|r| r.episode_return).collect();
    let scores: Vec<Vec<f64>> = records
        .iter()
        .map(|r| r.score.iter().map(|&x| f64::from(x)).collect())
        .collect();
    let all = analyse(&scores, &returns, &args);
    // The output bias shifts every logit alike: its score is sum_m (a_m - p_m), the
    // episode's kept count minus its expectation, so its gradient says "keep more" or
    // "keep fewer", whichever instances they are.
    let bias = named_trainable_in_name_order(teacher.policy().var_store())
        .iter()
        .scan(0, |offset, (name, t)| {
            let start = *offset;
            *offset += t.numel();
            Some((name.clone(), start))
        })
        .find(|(name, _)| name == "output.bias")
        .map(|(_, start)| start)
        .context("the policy has no output.bias")?;
    let without_bias: Vec<Vec<f64>> = scores
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.remove(bias);
            s
        })
        .collect();
    let selective = analyse(&without_bias, &returns, &args);
    let pool_advantages = advantages(&returns, Baseline::LeaveOneOut, 0.0, false);
    let bias_gradients: Vec<f64> = scores
        .iter()
        .zip(&pool_advantages)
        .map(|(s, a)| a * s[bias])
        .collect();
    let bias_gradient = mean(&bias_gradients);
    let bias_gradient_se = sample_sd(&bias_gradients) / (n as f64).sqrt();

    let seen: usize = records.iter().map(|r| r.instances_seen).sum();
    let kept: usize = records.iter().map(|r| r.instances_kept).sum();
    let episode_seconds = mean(&records.iter().map(|r| r.wall_seconds).collect::<Vec<_>>());
    let report = Report {
        preset,
        reward: reward.clone(),
        workers,
        episodes: n,
        seconds,
        return_mean: mean(&returns),
        return_sd: sample_sd(&returns),
        kept_ratio: kept as f64 / seen.max(1) as f64,
        all,
        without_output_bias: selective,
        output_bias_gradient: bias_gradient,
        output_bias_gradient_se: bias_gradient_se,
        records,
        args,
    };

    let mut table = String::new();
    table.push_str(&format!(
        "REINFORCE (the paper's defaults) at theta_0 on `{}` training episodes ({reward}; \
         {feature_dim} features, {}): {n} episodes (env seeds {}..={}), {parameters} weights, return {:.4} ± {:.4} (sd), \
         kept ratio {:.3}, {episode_seconds:.1} s per episode, {workers} workers, \
         {seconds:.0} s of rollouts; every disjoint pair of {} random partitions per K.\n\n",
        report.preset,
        if report.args.irreducible_loss {
            "with the irreducible_loss feature"
        } else {
            "without the irreducible_loss feature"
        },
        report.args.first_seed,
        report.args.first_seed.wrapping_add(n as u64 - 1),
        report.return_mean,
        report.return_sd,
        report.kept_ratio,
        report.args.resamples,
    ));
    table.push_str(
        "| K (episodes per estimate) | disjoint pairs | cos, pool leave-one-out b: mean ± se (sd) | 10th to 90th percentile | cos, leave-one-out b within the K: mean (sd) | at most: K rho / (1 + K rho), rho's upper bound | cos without the output bias: mean ± se | at most, without it |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for (row, other) in report.all.rows.iter().zip(&report.without_output_bias.rows) {
        let within = match (row.cos_within_mean, row.cos_within_sd) {
            (Some(m), Some(s)) => format!("{m:.3} ({s:.3})"),
            _ => "-".to_string(),
        };
        table.push_str(&format!(
            "| {} | {} | {:.3} ± {:.3} ({:.3}) | {:.3} to {:.3} | {within} | {:.3} | {:.3} ± {:.3} | {:.3} |\n",
            row.k,
            row.disjoint_pairs,
            row.cos_mean,
            row.cos_se,
            row.cos_sd,
            row.cos_p10,
            row.cos_p90,
            row.cos_predicted,
            other.cos_mean,
            other.cos_se,
            other.cos_predicted,
        ));
    }
    let episodes = |k: f64| {
        if k.is_finite() {
            format!("{k:.0}")
        } else {
            "no signal".to_string()
        }
    };
    table.push_str(
        "\nOne episode's gradient g = (r - b) grad sum log phi (pool leave-one-out b); \
         rho = |mu|^2 / E|g - mu|^2 from moments (± U-statistic se; upper: one-sided 95%, \
         max(rho, 0) + 1.645 se) and fitted to the mean cosines of the Ks with at least 4 disjoint \
         pairs; episodes per update K = c / ((1 - c) rho) for a cosine c (the fewest the \
         upper bound allows, then the moment and fitted rho's):\n\n\
         | gradient | weights | \\|mu\\|^2 | E\\|g - mu\\|^2 | rho, moments | rho, upper | rho, fit | K for cos 0.5: at least / moments / fit | K for cos 0.9: at least / moments / fit |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for (name, a) in [
        ("all weights", &report.all),
        ("without the output bias", &report.without_output_bias),
    ] {
        table.push_str(&format!(
            "| {name} | {} | {:.3e} | {:.3e} | {:.2e} ± {:.1e} | {:.2e} | {:.2e} | {} / {} / {} | {} / {} / {} |\n",
            a.parameters,
            a.mu_norm_sq,
            a.sigma_sq,
            a.rho_moment,
            a.rho_moment_se,
            a.rho_upper,
            a.rho_fit,
            episodes(a.k_half_lower),
            episodes(a.k_half_moment),
            episodes(a.k_half_fit),
            episodes(a.k_090_lower),
            episodes(a.k_090_moment),
            episodes(a.k_090_fit),
        ));
    }
    table.push_str(&format!(
        "\nThe output bias's component of mu (its score is the kept count minus its \
         expectation): {:.3e} ± {:.1e} (se over episodes; negative: keep fewer).\n",
        report.output_bias_gradient, report.output_bias_gradient_se,
    ));
    println!("\n{table}");

    std::fs::create_dir_all(&report.args.out)
        .with_context(|| format!("creating {}", report.args.out.display()))?;
    let table_path = report.args.out.join("table.md");
    write_atomic(&table_path, table.as_bytes())
        .with_context(|| format!("writing {}", table_path.display()))?;
    let json_path = report.args.out.join("result.json");
    let json = serde_json::to_vec_pretty(&report).context("serialising the report")?;
    write_atomic(&json_path, &json).with_context(|| format!("writing {}", json_path.display()))?;
    println!("wrote {} and {}", table_path.display(), json_path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fit_recovers_rho_from_the_model_curve() {
        let rho = 0.02;
        let points: Vec<(usize, f64, f64)> = [1, 2, 4, 8, 16, 32]
            .iter()
            .map(|&k| (k, k as f64 * rho / (1.0 + k as f64 * rho), 1.0))
            .collect();
        assert!((fit_rho(&points) / rho - 1.0).abs() < 1e-4);
        assert!((episodes_for(0.5, rho) - 50.0).abs() < 1e-9);
        // No signal: zero, not the grid's floor.
        assert_eq!(
            fit_rho(&[(1, -0.01, 1.0), (4, 0.0, 1.0), (16, -0.02, 1.0)]),
            0.0
        );
    }

    #[test]
    fn moments_of_a_constant_signal_have_no_noise() {
        let g = [vec![1.0, 2.0], vec![1.0, 2.0], vec![1.0, 2.0]];
        let sum = [3.0, 6.0];
        let squares: f64 = g.iter().map(|x| dot(x, x)).sum();
        let (mu_sq, sigma_sq) = moments(&sum, squares, 3);
        assert!((mu_sq - 5.0).abs() < 1e-12 && sigma_sq.abs() < 1e-12);
    }
}
