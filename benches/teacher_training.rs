//! Teacher-training throughput and peak memory: the REINFORCE teacher trained on the
//! `fashion-mnist-mlp` preset's teacher environment, at 1 and 2 libtorch intra-op
//! threads in one run.
//!
//! `cargo bench --bench teacher_training`. A fixed workload timed with
//! `std::time::Instant`: for each thread count a fresh REINFORCE teacher (the preset's
//! config, seed 0) is trained for `L2T_BENCH_EPISODES` episodes (default 6), episode `k`
//! seeded `k`, by the product's loop (`train_parallel` on a one-worker `EnvPool` whose
//! worker runs libtorch at that thread count). The thread counts are interleaved
//! episode by episode (episode 0 at 1 thread, episode 0 at 2 threads, episode 1 at 1
//! thread, ...) on the same data, so a change in the machine's load hits both alike. `L2T_BENCH_THREADS` takes another comma-separated list (default `1,2`).
//!
//! Reported per thread count: episodes per minute, environment steps (incoming batches)
//! per second and student updates per second, over the whole pass and as medians of the
//! per-episode rates; per episode: steps, updates, whether tau was reached, wall time.
//! Memory: the resident set (VmRSS) at start and after the data are loaded and the
//! environment built (i.e. before training), and the peak resident set (VmHWM) during
//! training. The peak is reset (`/proc/self/clear_refs` = 5) right before training
//! and before each episode, so it shows what training adds on top of the loaded data,
//! per thread count; where the reset is refused the process-wide peak is shown and
//! marked.
//!
//! Parallel episodes (after the passes; `L2T_BENCH_WORKERS`, default 2, 0 or 1 to skip):
//! a fresh teacher with K = W episodes per update learns from the same number of
//! episodes on W copies of the teacher env, one per worker thread, libtorch on 1
//! intra-op thread, as whole episodes on an `EnvPool` (`train_parallel`: the workers
//! meet once per update). Episodes per minute and steps per second, against the
//! 1-thread pass.
//!
//! Data: Fashion-MNIST from the default data folder (`~/.cache/l2t/data/fashion-mnist`
//! or `$L2T_DATA`); when the folder is missing the bench says so and exits 0 (random
//! data never reach tau, so they would time a different workload). See BENCHMARKS.md.

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use l2t::agents::{train_parallel, AgentError, PooledEpisode, Reinforce, ReinforceConfig};
use l2t::envs::{EnvPool, TeachingEnv};
use l2t::experiment::TrainingTask;
use l2t::presets::{default_data_dir, Preset};

const DEFAULT_EPISODES: usize = 6;
const DEFAULT_THREADS: [i32; 2] = [1, 2];
/// Episode `k` of every pass is seeded `FIRST_SEED + k`.
const FIRST_SEED: u64 = 0;

/// One finished episode.
#[derive(Debug, Clone)]
struct EpisodeRecord {
    episode: usize,
    steps: usize,
    updates: usize,
    reached_tau: bool,
    episode_return: f64,
    wall_s: f64,
    /// VmHWM after the episode, in KiB (reset before it when `peak_reset`).
    peak_kib: Option<u64>,
    /// VmRSS after the episode, in KiB: a steady climb across episodes would be a leak.
    rss_after_kib: Option<u64>,
    /// 1-minute load average just before the episode (other work on the machine).
    load_before: String,
}

impl EpisodeRecord {
    fn steps_per_s(&self) -> f64 {
        self.steps as f64 / self.wall_s
    }

    fn updates_per_s(&self) -> f64 {
        self.updates as f64 / self.wall_s
    }
}

/// One thread count's teacher, its one-worker pool and its episodes.
struct Pass {
    threads: i32,
    pool: EnvPool<TeachingEnv>,
    teacher: Reinforce,
    episodes: Vec<EpisodeRecord>,
}

/// VmRSS and VmHWM of this process, in KiB.
#[derive(Debug, Clone, Copy, Default)]
struct Memory {
    rss_kib: Option<u64>,
    hwm_kib: Option<u64>,
}

fn memory() -> Memory {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Memory {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
    }
}

/// Resets VmHWM to the current VmRSS (Linux >= 4.0); false where refused.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "-".into(), |k| format!("{:.1}", k as f64 / 1024.0))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => 0.5 * (values[n / 2 - 1] + values[n / 2]),
    }
}

fn env_episodes() -> Result<usize> {
    match std::env::var("L2T_BENCH_EPISODES") {
        Ok(value) => value
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .with_context(|| format!("L2T_BENCH_EPISODES={value:?} is not a positive integer")),
        Err(_) => Ok(DEFAULT_EPISODES),
    }
}

fn env_threads() -> Result<Vec<i32>> {
    let Ok(value) = std::env::var("L2T_BENCH_THREADS") else {
        return Ok(DEFAULT_THREADS.to_vec());
    };
    let threads: Option<Vec<i32>> = value
        .split(',')
        .map(|t| t.trim().parse::<i32>().ok().filter(|&t| t > 0))
        .collect();
    match threads {
        Some(t) if !t.is_empty() => Ok(t),
        _ => {
            bail!("L2T_BENCH_THREADS={value:?} is not a comma-separated list of positive integers")
        }
    }
}

fn main() -> Result<()> {
    let at_start = memory();
    let episodes = env_episodes()?;
    let thread_counts = env_threads()?;
    print_header(episodes, &thread_counts);
    println!("  VmRSS at start: {} MiB", mib(at_start.rss_kib));

    let data_dir = default_data_dir();
    let folder = data_dir.join("fashion-mnist");
    if !folder.exists() {
        println!();
        println!(
            "SKIPPED: no Fashion-MNIST under {} (run `bash scripts/setup.sh`, or point \
             L2T_DATA at a data folder with fashion-mnist/). Random data never reach tau, \
             so they would time a different workload; nothing was measured.",
            folder.display()
        );
        return Ok(());
    }

    let preset = Preset::fashion_mnist_mlp();
    let build_start = Instant::now();
    let envs = preset
        .build(&data_dir)
        .with_context(|| format!("loading Fashion-MNIST from {}", folder.display()))?;
    // Only the teacher half is trained on; the student half and the test split go.
    let env: TeachingEnv = envs.teacher_env;
    drop(envs.student_env);
    drop(envs.test);
    let build_s = build_start.elapsed().as_secs_f64();
    let layout = env.layout().clone();
    let mut passes = thread_counts
        .iter()
        .map(|&threads| {
            // The pool's worker runs libtorch at the creating thread's thread count.
            tch::set_num_threads(threads);
            Ok(Pass {
                threads,
                pool: TrainingTask::of(&env, preset.student.clone(), 1).pool()?,
                teacher: Reinforce::new(ReinforceConfig::default(), &layout)?,
                episodes: Vec::with_capacity(episodes),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let teaching = env.config();
    let taus: Vec<String> = teaching
        .thresholds
        .iter()
        .map(|t| t.accuracy.to_string())
        .collect();
    println!(
        "  workload: {episodes} episodes per thread count, seeds {FIRST_SEED}..={}; preset \
         {}, teacher half {} instances; M = {}, max_iterations {}, incoming-batch budget {}, \
         eval_every {}, tau {}",
        FIRST_SEED + episodes as u64 - 1,
        preset.name,
        env.train_data().len(),
        teaching.batch_size,
        teaching.max_iterations,
        teaching.incoming_batch_budget(),
        teaching.eval_every,
        taus.join(", "),
    );
    let ready = memory();
    println!(
        "  data + env built in {build_s:.1} s; VmRSS before training: {} MiB (VmHWM while \
         loading: {} MiB)",
        mib(ready.rss_kib),
        mib(ready.hwm_kib)
    );
    println!();

    let mut peak_reset = reset_peak();
    let started = Instant::now();
    for k in 0..episodes {
        for pass in passes.iter_mut() {
            let load_before = load_average_1m();
            peak_reset &= reset_peak();
            let t0 = Instant::now();
            // Trains until k + 1 episodes are learned: one more, seeded FIRST_SEED + k.
            let history = train_parallel(
                &mut pass.pool,
                &mut pass.teacher,
                k + 1,
                FIRST_SEED,
                |_, _: &[PooledEpisode]| Ok::<(), AgentError>(()),
            )?;
            let wall_s = t0.elapsed().as_secs_f64();
            let Some(PooledEpisode { summary, .. }) = history.last() else {
                bail!("train_parallel returned no episode");
            };
            let mem = memory();
            let record = EpisodeRecord {
                episode: k,
                steps: summary.steps,
                updates: summary.iterations,
                reached_tau: summary.iterations_to_tau.is_some(),
                episode_return: summary.episode_return,
                wall_s,
                peak_kib: mem.hwm_kib,
                rss_after_kib: mem.rss_kib,
                load_before,
            };
            eprintln!(
                "episode {k} threads {}: {} steps, {} updates, tau {}, {:.1} s",
                pass.threads,
                record.steps,
                record.updates,
                if record.reached_tau {
                    "reached"
                } else {
                    "not reached"
                },
                record.wall_s
            );
            pass.episodes.push(record);
        }
    }
    let total_s = started.elapsed().as_secs_f64();
    let after = memory();

    print_episodes(&passes);
    print_summary(&passes, ready.rss_kib, peak_reset);
    println!(
        "memory: VmRSS at start {} MiB, before training {} MiB, after training {} MiB; \
         process VmHWM at the end {} MiB{}",
        mib(at_start.rss_kib),
        mib(ready.rss_kib),
        mib(after.rss_kib),
        mib(after.hwm_kib),
        if peak_reset {
            " (since the last reset, i.e. the last episode)"
        } else {
            " (whole process: /proc/self/clear_refs refused the reset)"
        }
    );
    println!(
        "load average at the end: {}; training wall time {total_s:.1} s",
        load_average()
    );
    // Every episode must have reached the teacher's update, else this was not teacher
    // training.
    for pass in &passes {
        if pass.teacher.episodes() != episodes {
            bail!(
                "the {}-thread teacher learned from {} of {episodes} episodes",
                pass.threads,
                pass.teacher.episodes()
            );
        }
    }
    // The passes' pools (an env and its student each) go before the parallel pass, so
    // that its peak counts only its own envs.
    drop(passes);
    let workers = env_workers()?;
    if workers > 1 {
        println!(
            "Parallel episodes: REINFORCE with K = {workers} over {workers} teacher envs on \
             {workers} worker threads (libtorch 1 intra-op thread each)"
        );
        println!();
        println!("| workers | episodes from | episodes | tau reached | load 1m before | wall s | episodes/min | env steps (finished episodes) | steps/s | peak VmHWM MiB | peak - VmRSS before MiB |");
        println!("|---------|---------------|----------|-------------|----------------|--------|--------------|-------------------------------|---------|----------------|-------------------------|");
        parallel_pass(&env, &preset, &layout, episodes, workers, ready.rss_kib)?;
        println!();
    }
    Ok(())
}

/// `L2T_BENCH_WORKERS`: worker threads of the parallel pass (default 2; 0 or 1 skip it).
fn env_workers() -> Result<usize> {
    match std::env::var("L2T_BENCH_WORKERS") {
        Err(_) => Ok(2),
        Ok(value) => value
            .trim()
            .parse()
            .with_context(|| format!("L2T_BENCH_WORKERS={value:?} is not a worker count")),
    }
}

/// Parallel episodes: a fresh REINFORCE teacher with K = `workers` episodes per update
/// learns from `episodes` episodes of `workers` copies of the teacher env, one per
/// worker thread, libtorch on 1 intra-op thread. Episode `i` is seeded
/// `FIRST_SEED + i`, as in the passes above.
fn parallel_pass(
    env: &TeachingEnv,
    preset: &Preset,
    layout: &l2t::envs::FeatureLayout,
    episodes: usize,
    workers: usize,
    rss_before_kib: Option<u64>,
) -> Result<()> {
    tch::set_num_threads(1);
    let mut pool = TrainingTask::of(env, preset.student.clone(), workers).pool()?;
    let config = ReinforceConfig {
        episodes_per_update: workers,
        ..ReinforceConfig::default()
    };
    let mut teacher = Reinforce::new(config, layout)?;
    let peak_reset = reset_peak();
    let load_before = load_average_1m();
    let start = Instant::now();
    let finished: Vec<PooledEpisode> = train_parallel(
        &mut pool,
        &mut teacher,
        episodes,
        FIRST_SEED,
        |_, _: &[PooledEpisode]| Ok::<(), AgentError>(()),
    )?;
    let wall_s = start.elapsed().as_secs_f64();
    let mem = memory();
    let seen: usize = finished.iter().map(|e| e.summary.instances_seen).sum();
    let reached = finished
        .iter()
        .filter(|e| e.summary.iterations_to_tau.is_some())
        .count();
    let steps = seen / env.config().batch_size;
    let increment = match (mem.hwm_kib, rss_before_kib) {
        (Some(p), Some(r)) => format!("{:+.1}", (p as f64 - r as f64) / 1024.0),
        _ => "-".into(),
    };
    let source = "env pool";
    println!(
        "| {:>7} | {:>13} | {:>8} | {:>11} | {:>14} | {:>6.1} | {:>12.2} | {:>29} | {:>7.1} | {:>14}{} | {:>23} |",
        workers,
        source,
        finished.len(),
        reached,
        load_before,
        wall_s,
        finished.len() as f64 / wall_s * 60.0,
        steps,
        steps as f64 / wall_s,
        mib(mem.hwm_kib),
        if peak_reset { "" } else { " (process)" },
        increment
    );
    if teacher.episodes() < episodes {
        bail!(
            "the parallel teacher ({source}) learned from {} of {episodes} episodes",
            teacher.episodes()
        );
    }
    Ok(())
}

fn print_episodes(passes: &[Pass]) {
    println!();
    println!(
        "| threads | episode | load 1m before | env steps | updates | tau reached | return | wall s | steps/s | updates/s | VmHWM MiB | VmRSS after MiB |"
    );
    println!("|---------|---------|----------------|-----------|---------|-------------|--------|--------|---------|-----------|-----------|-----------------|");
    for pass in passes {
        for e in &pass.episodes {
            println!(
                "| {:>7} | {:>7} | {:>14} | {:>9} | {:>7} | {:>11} | {:>6.3} | {:>6.1} | {:>7.1} | {:>9.1} | {:>9} | {:>15} |",
                pass.threads,
                e.episode,
                e.load_before,
                e.steps,
                e.updates,
                if e.reached_tau { "yes" } else { "no" },
                e.episode_return,
                e.wall_s,
                e.steps_per_s(),
                e.updates_per_s(),
                mib(e.peak_kib),
                mib(e.rss_after_kib)
            );
        }
    }
    println!();
}

fn print_summary(passes: &[Pass], rss_before_kib: Option<u64>, peak_reset: bool) {
    println!(
        "| threads | episodes | wall s | episodes/min | env steps | steps/s | median steps/s | updates | updates/s | median updates/s | peak VmHWM MiB | peak - VmRSS before MiB |"
    );
    println!("|---------|----------|--------|--------------|-----------|---------|----------------|---------|-----------|------------------|----------------|-------------------------|");
    for pass in passes {
        let wall: f64 = pass.episodes.iter().map(|e| e.wall_s).sum();
        let steps: usize = pass.episodes.iter().map(|e| e.steps).sum();
        let updates: usize = pass.episodes.iter().map(|e| e.updates).sum();
        let peak = pass.episodes.iter().filter_map(|e| e.peak_kib).max();
        let increment = match (peak, rss_before_kib) {
            (Some(p), Some(r)) => format!("{:+.1}", (p as f64 - r as f64) / 1024.0),
            _ => "-".into(),
        };
        println!(
            "| {:>7} | {:>8} | {:>6.1} | {:>12.2} | {:>9} | {:>7.1} | {:>14.1} | {:>7} | {:>9.1} | {:>16.1} | {:>14} | {:>23} |",
            pass.threads,
            pass.episodes.len(),
            wall,
            pass.episodes.len() as f64 / wall * 60.0,
            steps,
            steps as f64 / wall,
            median(pass.episodes.iter().map(EpisodeRecord::steps_per_s).collect()),
            updates,
            updates as f64 / wall,
            median(pass.episodes.iter().map(EpisodeRecord::updates_per_s).collect()),
            mib(peak),
            increment
        );
    }
    println!();
    if !peak_reset {
        println!(
            "NOTE: /proc/self/clear_refs refused the peak reset: the VmHWM columns are the \
             whole process's peak, data loading included."
        );
    }
}

fn print_header(episodes: usize, threads: &[i32]) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = match git(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(s) if !s.is_empty() => " (working tree has uncommitted changes)",
        _ => "",
    };
    let threads: Vec<String> = threads.iter().map(i32::to_string).collect();
    println!("l2t teacher_training benchmark");
    println!("  machine:  nproc {cores}, CPU {cpu}");
    println!(
        "  threads:  tch intra-op {} interleaved per episode (L2T_BENCH_THREADS, default 1,2)",
        threads.join(" and ")
    );
    println!(
        "  episodes: {episodes} per thread count (L2T_BENCH_EPISODES, default {DEFAULT_EPISODES})"
    );
    println!("  commit:   {commit}{dirty}");
    println!("  load avg: {} (at start)", load_average());
}

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

fn load_average_1m() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
