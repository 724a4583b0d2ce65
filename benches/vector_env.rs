//! Throughput of parallel teaching episodes: one `TeachingEnv`, a `SyncVectorEnv` of 4,
//! a `ThreadedVectorEnv` of 2 and 4 envs on 2 worker threads, an `EnvPool` of 2
//! workers running whole episodes, and the `BatchedTeachingEnv` with 1, 4 and 16 envs.
//!
//! `cargo bench --bench vector_env`. Fixed workload: NoTeach (every mask all-true) on
//! the `fashion-mnist-mlp` preset's student half (MLP 784-500-10, Adam 1e-3, M = 20,
//! dev evaluation of 1,500 instances every 10 iterations), with T' = 200 so that every
//! episode is exactly 200 steps and ends by truncation (tau = 0.86 is not reached that
//! early). Every configuration runs the same 3,200 env-steps (16 episodes of 200 steps,
//! summed over its envs; autoreset included); the table gives the wall time, env-steps
//! per second and episodes per minute, and the speed-up over one env. Random data of
//! the same shape stand in when the Fashion-MNIST files are missing.
//!
//! libtorch runs on 1 intra-op thread (the threaded rows' parallelism is their 2
//! workers), except the last row (the batched env with 16
//! envs on 2 threads). See BENCHMARKS.md for a reference run.

use std::time::Instant;

use anyhow::Result;
use ndarray::Array1;
use tch::{Device, Kind, Tensor};

use l2t::envs::{
    BatchedTeachingEnv, Dataset, Env, EnvFactory, EnvJob, EnvPool, MlpConfig, MlpStudent,
    SyncVectorEnv, TeachingConfig, TeachingEnv, ThreadedVectorEnv, VectorEnv,
};
use l2t::presets::{default_data_dir, Preset};

const EPISODE_STEPS: usize = 200;
const TOTAL_EPISODES: usize = 16;

/// The preset's MDP with T' = 200: NoTeach episodes of exactly 200 steps.
fn workload_config() -> TeachingConfig {
    TeachingConfig {
        max_iterations: EPISODE_STEPS,
        ..Preset::fashion_mnist_mlp().teaching
    }
}

/// The student half and the dev split of the preset, or random data of their shape.
fn data() -> Result<(Dataset, Dataset, String)> {
    let data_dir = default_data_dir();
    let mut preset = Preset::fashion_mnist_mlp();
    preset.teaching = workload_config();
    match preset.build(&data_dir) {
        Ok(envs) => {
            let env = envs.student_env;
            let label = format!(
                "real Fashion-MNIST, student half ({} instances), dev {} instances",
                env.train_data().len(),
                env.dev_data().len()
            );
            Ok((
                env.train_data().shallow_clone(),
                env.dev_data().shallow_clone(),
                label,
            ))
        }
        Err(e) => {
            eprintln!("NOTE: Fashion-MNIST did not load ({e}); using RANDOM data of its shape");
            tch::manual_seed(0);
            let random = |name: &str, n: i64| -> Result<Dataset> {
                Ok(Dataset::new(
                    name,
                    Tensor::randn([n, 784], (Kind::Float, Device::Cpu)),
                    Tensor::randint(10, [n], (Kind::Int64, Device::Cpu)),
                    10,
                )?)
            };
            Ok((
                random("random/train", 30_000)?,
                random("random/dev", 1_500)?,
                "RANDOM data, 30000 x 784 train, 1500 dev".into(),
            ))
        }
    }
}

/// One result row.
struct Row {
    what: String,
    threads: i32,
    seconds: f64,
    env_steps: usize,
    episodes: usize,
}

/// Runs `steps` vector steps of NoTeach on `env`; returns (env-steps, episodes ended).
fn drive(
    env: &mut dyn VectorEnv<
        Observation = l2t::envs::TeachingObservation,
        Action = Array1<bool>,
        Info = l2t::envs::TeachingInfo,
    >,
    steps: usize,
    m: usize,
) -> Result<(usize, usize)> {
    let n = env.num_envs();
    let actions = vec![Array1::from_elem(m, true); n];
    env.reset(Some(0))?;
    let mut episodes = 0;
    for _ in 0..steps {
        let step = env.step(&actions)?;
        episodes += (0..n).filter(|&i| step.done(i)).count();
    }
    Ok((steps * n, episodes))
}

fn main() -> Result<()> {
    let (train, dev, label) = data()?;
    let config = workload_config();
    let m = config.batch_size;
    let student = MlpConfig::mnist();
    let total_steps = TOTAL_EPISODES * EPISODE_STEPS;
    println!("l2t vector_env benchmark");
    println!(
        "  machine:  nproc {}, load avg {} (at start)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    println!("  data:     {label}");
    println!(
        "  workload: NoTeach, M = {m}, T' = {EPISODE_STEPS} (episodes of {EPISODE_STEPS} steps), \
         eval_every {}, {total_steps} env-steps per row",
        config.eval_every
    );
    let mut rows = Vec::new();
    let mut timed = |what: String,
                     threads: i32,
                     run: &mut dyn FnMut() -> Result<(usize, usize)>|
     -> Result<()> {
        tch::set_num_threads(threads);
        eprintln!("running {what} ({threads} thread(s)) ...");
        let start = Instant::now();
        let (env_steps, episodes) = run()?;
        rows.push(Row {
            what,
            threads,
            seconds: start.elapsed().as_secs_f64(),
            env_steps,
            episodes,
        });
        Ok(())
    };

    // 1 env: a plain TeachingEnv, reset after each episode.
    let mut single = TeachingEnv::new(
        config.clone(),
        Box::new(MlpStudent::new(student.clone(), Device::Cpu)?),
        train.shallow_clone(),
        dev.shallow_clone(),
    )?;
    timed("TeachingEnv, 1 env".into(), 1, &mut || {
        let all = Array1::from_elem(m, true);
        let mut episodes = 0;
        single.reset(Some(0))?;
        for _ in 0..total_steps {
            if single.step(&all)?.done() {
                episodes += 1;
                single.reset(None)?;
            }
        }
        Ok((total_steps, episodes))
    })?;

    let mut sync = SyncVectorEnv::new(
        (0..4)
            .map(|_| {
                TeachingEnv::new(
                    config.clone(),
                    Box::new(MlpStudent::new(student.clone(), Device::Cpu)?),
                    train.shallow_clone(),
                    dev.shallow_clone(),
                )
            })
            .collect::<l2t::envs::Result<Vec<_>>>()?,
    )?;
    timed("SyncVectorEnv, 4 envs".into(), 1, &mut || {
        drive(&mut sync, total_steps / 4, m)
    })?;

    // The same TeachingEnvs on worker threads (each builds its own env; libtorch on 1
    // intra-op thread, the workers are the parallelism).
    let env_factories = |n: usize| -> Vec<EnvFactory<TeachingEnv>> {
        (0..n)
            .map(|_| {
                let (config, student) = (config.clone(), student.clone());
                let (train, dev) = (train.shallow_clone(), dev.shallow_clone());
                Box::new(move || {
                    TeachingEnv::new(
                        config,
                        Box::new(MlpStudent::new(student, Device::Cpu)?),
                        train,
                        dev,
                    )
                }) as EnvFactory<TeachingEnv>
            })
            .collect()
    };
    for (n, workers) in [(2, 2), (4, 2)] {
        let mut threaded = ThreadedVectorEnv::new(env_factories(n), workers)?;
        timed(
            format!("Threaded, {n} envs, {workers} workers"),
            1,
            &mut || drive(&mut threaded, total_steps / n, m),
        )?;
    }

    // Whole episodes on an EnvPool: the 2 workers meet once per call, not per step.
    let workers = 2;
    let mut pool = EnvPool::new(env_factories(workers))?;
    timed(
        format!("EnvPool, {workers} workers, episodes"),
        1,
        &mut || {
            let jobs = (0..TOTAL_EPISODES as u64)
                .map(|seed| {
                    Box::new(move |env: &mut TeachingEnv| -> l2t::envs::Result<usize> {
                        let all = Array1::from_elem(m, true);
                        env.reset(Some(seed))?;
                        let mut steps = 1;
                        while !env.step(&all)?.done() {
                            steps += 1;
                        }
                        Ok(steps)
                    }) as EnvJob<TeachingEnv, _>
                })
                .collect();
            let steps = pool
                .run(jobs)?
                .into_iter()
                .collect::<l2t::envs::Result<Vec<usize>>>()?;
            Ok((steps.iter().sum(), steps.len()))
        },
    )?;

    for (n, threads) in [(1, 1), (4, 1), (16, 1), (16, 2)] {
        let mut batched = BatchedTeachingEnv::new(
            config.clone(),
            student.clone(),
            n,
            train.shallow_clone(),
            dev.shallow_clone(),
            Device::Cpu,
        )?;
        timed(
            format!("BatchedTeachingEnv, {n} env(s)"),
            threads,
            &mut || drive(&mut batched, total_steps / n, m),
        )?;
    }

    let base = rows[0].env_steps as f64 / rows[0].seconds;
    println!();
    println!(
        "| {:<30} | {:>7} | {:>8} | {:>12} | {:>12} | {:>8} | {:>10} |",
        "what", "threads", "wall s", "env-steps/s", "episodes/min", "episodes", "vs 1 env"
    );
    println!(
        "|{:-<32}|{:-<9}|{:-<10}|{:-<14}|{:-<14}|{:-<10}|{:-<12}|",
        "", "", "", "", "", "", ""
    );
    for r in &rows {
        let rate = r.env_steps as f64 / r.seconds;
        println!(
            "| {:<30} | {:>7} | {:>8.1} | {:>12.1} | {:>12.2} | {:>8} | {:>9.2}x |",
            r.what,
            r.threads,
            r.seconds,
            rate,
            r.episodes as f64 / r.seconds * 60.0,
            r.episodes,
            rate / base
        );
    }
    println!();
    println!("load average at the end: {}", load_average());
    Ok(())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
