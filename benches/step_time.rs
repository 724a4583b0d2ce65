//! Step-time benchmark of the teaching environment against plain tch training loops.
//!
//! `cargo bench --bench step_time [-- SECTION]`, SECTION one of `mlp`, `resnet32`,
//! `lstm` (a substring is enough; no filter runs all three). A fixed workload timed with
//! `std::time::Instant`: warm-up, then timed iterations, one sample per step; the table
//! gives the median and the mean in milliseconds per step. Within the `mlp` section the
//! variants are interleaved in rounds (a1 a2 a3 b r d d1 e e1 e2 e3 e4, twenty times), so
//! that a change in machine load hits all of them alike and their ratios stay
//! meaningful.
//!
//! libtorch runs on one intra-op thread unless `L2T_BENCH_THREADS` says otherwise.
//! `L2T_BENCH_PROFILE=N` makes the `selective` section time only its keep-one loop, for
//! N updates, to run under a profiler.
//! See BENCHMARKS.md for what each row measures and the figures of a reference run.

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use ndarray::{Array1, Array2};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tch::{nn, nn::Module, nn::OptimizerConfig as _, Device, Kind, Tensor};

use l2t::agents::{Reinforce, ReinforceConfig, Teacher};
use l2t::envs::seeding::{stream_rng, Stream};
use l2t::envs::student::{LstmConfig, LstmStudent, ResNetConfig, ResNetStudent};
use l2t::envs::teaching::featurise;
use l2t::envs::{
    Batch, Dataset, Env, MlpConfig, MlpStudent, Student, TeachingConfig, TeachingEnv, TeachingInfo,
    TeachingObservation,
};
use l2t::presets::{default_data_dir, Preset};

const SECTIONS: [&str; 4] = ["mlp", "selective", "resnet32", "lstm"];

/// M of the MLP task.
const MLP_BATCH: usize = 20;
/// MLP: warm-up steps per variant, then rounds of interleaved timed steps.
const MLP_WARMUP: usize = 200;
const MLP_ROUNDS: usize = 20;
const MLP_STEPS_PER_ROUND: usize = 100;

const RESNET_BATCH: i64 = 128;
const RESNET_WARMUP: usize = 3;
const RESNET_TIMED: usize = 5;

const LSTM_BATCH: i64 = 16;
const LSTM_WIDTH: i64 = 100;
const LSTM_VOCAB: usize = 10_002;
const LSTM_WARMUP: usize = 5;
const LSTM_TIMED: usize = 100;

/// Per-step samples of one variant, in milliseconds.
#[derive(Debug, Default, Clone)]
struct Samples(Vec<f64>);

impl Samples {
    fn push_since(&mut self, start: Instant) {
        self.0.push(start.elapsed().as_secs_f64() * 1e3);
    }

    fn median(&self) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => sorted[n / 2],
            _ => 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]),
        }
    }

    fn mean(&self) -> f64 {
        self.0.iter().sum::<f64>() / self.0.len() as f64
    }

    fn total(&self) -> f64 {
        self.0.iter().sum()
    }
}

/// One line of the result table.
struct Row {
    section: &'static str,
    what: String,
    median: f64,
    mean: f64,
    ratio: String,
}

impl Row {
    fn new(section: &'static str, what: impl Into<String>, samples: &Samples) -> Self {
        Self {
            section,
            what: what.into(),
            median: samples.median(),
            mean: samples.mean(),
            ratio: String::new(),
        }
    }

    fn with_ratio(mut self, ratio: impl Into<String>) -> Self {
        self.ratio = ratio.into();
        self
    }
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; any flag is ignored, the first word is the filter.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let selected: Vec<&str> = SECTIONS
        .iter()
        .copied()
        .filter(|s| filter.as_deref().is_none_or(|f| s.contains(f)))
        .collect();
    if selected.is_empty() {
        bail!(
            "no section matches {:?}; the sections are {}",
            filter.unwrap_or_default(),
            SECTIONS.join(", ")
        );
    }

    let threads = match std::env::var("L2T_BENCH_THREADS") {
        Ok(value) => value
            .trim()
            .parse::<i32>()
            .ok()
            .filter(|&t| t > 0)
            .with_context(|| format!("L2T_BENCH_THREADS={value:?} is not a positive integer"))?,
        Err(_) => 1,
    };
    tch::set_num_threads(threads);
    print_header(threads);

    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let started = Instant::now();
    for section in selected {
        let section_start = Instant::now();
        eprintln!("running section {section} ...");
        match section {
            "mlp" => bench_mlp(&mut rows, &mut notes)?,
            "selective" => bench_selective(&mut rows, &mut notes)?,
            "resnet32" => bench_resnet(&mut rows)?,
            "lstm" => bench_lstm(&mut rows)?,
            _ => unreachable!("sections come from SECTIONS"),
        }
        eprintln!(
            "section {section} took {:.1} s",
            section_start.elapsed().as_secs_f64()
        );
    }
    print_table(&rows);
    for note in &notes {
        println!("{note}");
    }
    println!(
        "load average at the end: {}; total wall time {:.1} s",
        load_average(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn print_header(threads: i32) {
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
    println!("l2t step_time benchmark");
    println!("  machine:  nproc {cores}, CPU {cpu}");
    println!(
        "  threads:  tch intra-op {} (requested {threads}: L2T_BENCH_THREADS, default 1)",
        tch::get_num_threads()
    );
    println!("  commit:   {commit}{dirty}");
    println!("  load avg: {} (at start)", load_average());
    println!();
}

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn print_table(rows: &[Row]) {
    let width = rows.iter().map(|r| r.what.len()).max().unwrap_or(4).max(4);
    println!();
    println!(
        "| {:<8} | {:<width$} | {:>10} | {:>10} | {:<24} |",
        "section", "what", "median ms", "mean ms", "ratio"
    );
    println!(
        "|{}|{}|{}|{}|{}|",
        "-".repeat(10),
        "-".repeat(width + 2),
        "-".repeat(12),
        "-".repeat(12),
        "-".repeat(26)
    );
    for r in rows {
        println!(
            "| {:<8} | {:<width$} | {:>10} | {:>10} | {:<24} |",
            r.section,
            r.what,
            ms(r.median),
            ms(r.mean),
            r.ratio
        );
    }
    println!();
}

fn ms(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.3}")
    } else {
        "-".into()
    }
}

// ----------------------------------------------------------------------------------
// mlp

/// The settings of the timed environment: dev evaluation and the end of the episode
/// are pushed out of reach (tau = 1.0 is never exceeded), so every step is the steady
/// state of the MDP.
fn steady_state_config() -> TeachingConfig {
    TeachingConfig {
        batch_size: MLP_BATCH,
        max_iterations: 1_000_000_000,
        max_incoming_batches: Some(1_000_000_000),
        eval_every: 1_000_000,
        ..TeachingConfig::default()
    }
    .with_tau(1.0)
}

/// The student-half environment of the Fashion-MNIST preset (with the steady-state MDP
/// settings), or the same shapes filled with random data when the files are missing.
fn mlp_env(notes: &mut Vec<String>) -> Result<(TeachingEnv, String)> {
    let data_dir = default_data_dir();
    let folder = data_dir.join("fashion-mnist");
    let mut preset = Preset::fashion_mnist_mlp();
    preset.teaching = steady_state_config();
    if folder.exists() {
        match preset.build(&data_dir) {
            Ok(envs) => {
                let n = envs.student_env.train_data().len();
                return Ok((
                    envs.student_env,
                    format!(
                        "real Fashion-MNIST, student half ({n} instances) from {}",
                        folder.display()
                    ),
                ));
            }
            Err(e) => {
                let message = format!(
                    "NOTE: Fashion-MNIST under {} did not load ({e}); the mlp section \
                     uses RANDOM data of the same shape instead",
                    folder.display()
                );
                eprintln!("{message}");
                notes.push(message);
            }
        }
    } else {
        let message = format!(
            "NOTE: no Fashion-MNIST under {} (run `bash scripts/setup.sh`); the mlp section \
             uses RANDOM data of the same shape instead (timings do not depend on the values)",
            folder.display()
        );
        eprintln!("{message}");
        notes.push(message);
    }
    tch::manual_seed(0);
    let random = |name: &str, n: i64| -> Result<Dataset> {
        Ok(Dataset::new(
            name,
            Tensor::randn([n, 784], (Kind::Float, Device::Cpu)),
            Tensor::randint(10, [n], (Kind::Int64, Device::Cpu)),
            10,
        )?)
    };
    let student = MlpStudent::new(MlpConfig::mnist(), Device::Cpu)?;
    let env = TeachingEnv::new(
        preset.teaching.clone(),
        Box::new(student),
        random("random/train", 30_000)?,
        random("random/dev", 1_500)?,
    )?;
    Ok((env, "RANDOM data, 30000 x 784, 10 classes".into()))
}

/// The hand-written baseline: what one would write in tch without the environment.
struct PlainLoop {
    _vs: nn::VarStore,
    l1: nn::Linear,
    l2: nn::Linear,
    optimizer: nn::Optimizer,
}

impl PlainLoop {
    fn new() -> Result<Self> {
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let l1 = nn::linear(&root / "l1", 784, 500, Default::default());
        let l2 = nn::linear(&root / "l2", 500, 10, Default::default());
        let optimizer = nn::Adam::default().build(&vs, 1e-3)?;
        Ok(Self {
            _vs: vs,
            l1,
            l2,
            optimizer,
        })
    }

    fn step(&mut self, inputs: &Tensor, labels: &Tensor, index: &Tensor) {
        let x = inputs.index_select(0, index);
        let y = labels.index_select(0, index);
        let loss = self
            .l2
            .forward(&self.l1.forward(&x).relu())
            .cross_entropy_for_logits(&y);
        self.optimizer.backward_step(&loss);
    }
}

/// The feature work as the env did it before it assembled rows in Rust: a dozen
/// tensor ops (LossScaling::Fixed, image data) and one copy to an `Array2`, from given
/// logits; e3 times it beside e4, the env's current `featurise`.
fn featurise_replica(logits: &Tensor, batch: &Batch, state: &[f32; 3]) -> Result<Array2<f32>> {
    let m = batch.len() as i64;
    let num_classes = 10.0f64;
    let log_probs = logits.log_softmax(-1, Kind::Float);
    let probs = log_probs.exp().clamp(0.0, 1.0);
    let labels = batch.labels.unsqueeze(1);
    let label_one_hot = probs.zeros_like().scatter_value(1, &labels, 1.0);
    let loss = -log_probs.gather(1, &labels, false);
    let p_label = probs.gather(1, &labels, false);
    let best_other = probs
        .masked_fill(&label_one_hot.to_kind(Kind::Bool), -1.0)
        .amax([1].as_slice(), true);
    let margin = (p_label - best_other).clamp(-1.0, 1.0);
    let loss_feature = (loss / (2.0 * num_classes.ln())).clamp(0.0, 1.0);
    let student_state = Tensor::from_slice(state).view([1, 3]).expand([m, 3], false);
    let features = Tensor::cat(
        &[label_one_hot, student_state, probs, loss_feature, margin],
        1,
    );
    let flat = Vec::<f32>::try_from(features.contiguous().view(-1))?;
    Ok(Array2::from_shape_vec((m as usize, 25), flat)?)
}

fn bench_mlp(rows: &mut Vec<Row>, notes: &mut Vec<String>) -> Result<()> {
    let section = "mlp";
    let m = MLP_BATCH;
    let (mut env, data_label) = mlp_env(notes)?;
    notes.push(format!("mlp data: {data_label}"));
    let train = env.train_data().shallow_clone();
    let n = train.len();

    // The fixed random order of the plain loops: one permutation, M-sized windows.
    tch::manual_seed(0);
    let order = Tensor::randperm(n as i64, (Kind::Int64, Device::Cpu));
    let windows = (n / m).max(1);
    let window = |step: usize| order.narrow(0, ((step % windows) * m) as i64, m as i64);

    // a1: hand-written tch loop; a2: an MlpStudent (the env's student type) driven
    // directly, on the same batches.
    let mut plain = PlainLoop::new()?;
    let mut student = MlpStudent::new(MlpConfig::mnist(), Device::Cpu)?;
    student.reset(&mut stream_rng(0, Stream::StudentInit))?;
    let mut noise = stream_rng(0, Stream::Dropout);
    // The hand-written loop flattens the staged images once (a view, no copy).
    let flat_inputs = train.inputs().view([n as i64, -1]);
    let mut plain_step = 0usize;
    let mut student_step = 0usize;
    // a3: a2 plus the one forward pass any L2T observation needs (the next batch's
    // logits, no grad), gathering each batch once: the floor of a teaching env.
    let mut lean = MlpStudent::new(MlpConfig::mnist(), Device::Cpu)?;
    lean.reset(&mut stream_rng(0, Stream::StudentInit))?;
    let mut lean_step = 0usize;
    let mut lean_batch = train.batch(&window(0));
    // r: the env's NoTeach step rewritten in the bench, op for op (indices from Rust
    // vectors, one gather of the incoming batch, the update on the forward recorded by
    // the previous observation, the next batch's recorded forward, feature ops,
    // ndarray), without the env: if r matches b, the env's bookkeeping costs nothing
    // and the pieces below explain b.
    let mut replica = MlpStudent::new(MlpConfig::mnist(), Device::Cpu)?;
    replica.reset(&mut stream_rng(0, Stream::StudentInit))?;
    let replica_order: Vec<i64> = Vec::<i64>::try_from(&order)?;
    let mut replica_cursor = 0usize;
    let mut replica_batch = train.batch(&Tensor::from_slice(&replica_order[0..m]));
    let mut replica_recorded = replica
        .record(&replica_batch)
        .context("the MLP records its forwards")?;

    // b: its own environment stepped with all-true masks (NoTeach): the buffer is
    // always empty before a step, so every update reuses the observation's forward.
    // d, e: a second environment, stepped with the REINFORCE teacher's masks and with
    // all-false masks (observation only); d leaves leftovers in its buffer.
    let all_true = Array1::from_elem(m, true);
    let all_false = Array1::from_elem(m, false);
    let (mut no_teach_env, _) = mlp_env(&mut Vec::new())?;
    let (mut b_obs, mut b_info) = no_teach_env.reset(Some(0))?;
    let mut teacher = Reinforce::new(ReinforceConfig::default(), env.layout())?;
    let (mut obs, mut info): (TeachingObservation, TeachingInfo) = env.reset(Some(0))?;
    // d1: the teacher's act alone, on a fixed observation, with its own teacher.
    let mut act_teacher = Reinforce::new(ReinforceConfig::default(), env.layout())?;
    let (fixed_obs, fixed_info) = (obs.clone(), info.clone());
    let mut d_updates = 0usize;
    let mut resets = 0usize;

    // e1, e2, e3: the parts of the observation (gather, forward, features).
    let mut gather_cursor = 0usize;
    let index_pool: Vec<Vec<i64>> = {
        let mut rng = stream_rng(1, Stream::DataOrder);
        (0..64)
            .map(|_| (0..m).map(|_| rng.gen_range(0..n as i64)).collect())
            .collect()
    };
    let fixed_batch = train.batch(&Tensor::from_slice(&index_pool[0]));
    let fixed_logits = env.student().logits(&fixed_batch);
    let state = [0.5f32, 0.3, 0.8];
    let feature_config = env.config().clone();
    let layout = env.layout().clone();

    let mut a1 = Samples::default();
    let mut a2 = Samples::default();
    let mut a3 = Samples::default();
    let mut d1 = Samples::default();
    let mut b = Samples::default();
    let mut r = Samples::default();
    let mut d = Samples::default();
    let mut e = Samples::default();
    let mut e1 = Samples::default();
    let mut e2 = Samples::default();
    let mut e3 = Samples::default();
    let mut e4 = Samples::default();

    // Steps one variant `count` times; `record` false is the warm-up.
    macro_rules! run_variant {
        ($samples:expr, $count:expr, $record:expr, $body:block) => {
            for _ in 0..$count {
                let start = Instant::now();
                $body
                if $record {
                    $samples.push_since(start);
                }
            }
        };
    }
    // One step of `env` with `mask` (or the teacher's), from the observation `obs` and
    // `info`; the reset after an episode end is not timed.
    macro_rules! env_step {
        ($samples:expr, $count:expr, $record:expr, $mask:expr, $teacher:expr,
         $env:ident, $obs:ident, $info:ident) => {
            for _ in 0..$count {
                let start = Instant::now();
                let mask = if $teacher {
                    teacher.act(&$obs, &$info)?
                } else {
                    $mask.clone()
                };
                let step = $env.step(&mask)?;
                if $teacher {
                    teacher.observe(step.reward, step.done())?;
                }
                if $record {
                    $samples.push_since(start);
                    if $teacher {
                        d_updates += step.info.updates_this_step;
                    }
                }
                let done = step.done();
                $obs = step.observation;
                $info = step.info;
                if done {
                    ($obs, $info) = $env.reset(None)?;
                    resets += 1;
                }
            }
        };
    }

    for round in 0..=MLP_ROUNDS {
        // Round 0 is the warm-up of every variant.
        let record = round > 0;
        let count = if record {
            MLP_STEPS_PER_ROUND
        } else {
            MLP_WARMUP
        };
        run_variant!(a1, count, record, {
            plain.step(&flat_inputs, train.labels(), &window(plain_step));
            plain_step += 1;
        });
        run_variant!(a2, count, record, {
            let batch = train.batch(&window(student_step));
            student.train_step(&batch, &mut noise)?;
            student_step += 1;
        });
        run_variant!(a3, count, record, {
            lean.train_step(&lean_batch, &mut noise)?;
            lean_step += 1;
            lean_batch = train.batch(&window(lean_step));
            let _ = std::hint::black_box(lean.logits(&lean_batch));
        });
        env_step!(
            b,
            count,
            record,
            all_true,
            false,
            no_teach_env,
            b_obs,
            b_info
        );
        run_variant!(r, count, record, {
            replica.train_step_on_recorded(&replica_recorded, &replica_batch.labels)?;
            replica_cursor = (replica_cursor + m) % (windows * m);
            let incoming = replica_order[replica_cursor..replica_cursor + m].to_vec();
            replica_batch = train.batch(&Tensor::from_slice(&incoming));
            replica_recorded = replica
                .record(&replica_batch)
                .context("the MLP records its forwards")?;
            std::hint::black_box(featurise(
                &feature_config,
                &layout,
                &train,
                &replica_recorded
                    .logits()
                    .context("a recording has logits")?
                    .unsqueeze(0),
                &replica_batch.labels.unsqueeze(0),
                None,
                &incoming,
                &[state],
            )?);
        });
        env_step!(d, count, record, all_true, true, env, obs, info);
        run_variant!(d1, count, record, {
            std::hint::black_box(act_teacher.act(&fixed_obs, &fixed_info)?);
        });
        env_step!(e, count, record, all_false, false, env, obs, info);
        run_variant!(e1, count, record, {
            let idx = &index_pool[gather_cursor % index_pool.len()];
            let batch = train.batch(&Tensor::from_slice(idx));
            gather_cursor += 1;
            std::hint::black_box(batch);
        });
        run_variant!(e2, count, record, {
            let _ = std::hint::black_box(env.student().logits(&fixed_batch));
        });
        run_variant!(e3, count, record, {
            std::hint::black_box(featurise_replica(&fixed_logits, &fixed_batch, &state)?);
        });
        run_variant!(e4, count, record, {
            std::hint::black_box(featurise(
                &feature_config,
                &layout,
                &train,
                &fixed_logits.unsqueeze(0),
                &fixed_batch.labels.unsqueeze(0),
                None,
                &[],
                &[state],
            )?);
        });
    }
    if resets > 0 {
        notes.push(format!(
            "mlp: {resets} episode reset(s) during the timed env steps (not timed)"
        ));
    }

    let ratio = |x: &Samples, y: &Samples, label: &str| {
        format!(
            "{:.2}x {label} ({:.2}x mean)",
            x.median() / y.median(),
            x.mean() / y.mean()
        )
    };
    let per_update = d.total() / d_updates.max(1) as f64;
    let b_per_update = b.mean();
    let timed = |what: &str, samples: &Samples| Row::new(section, what, samples);
    let ratio_only = |what: &str, ratio: String| Row {
        section,
        what: what.into(),
        median: f64::NAN,
        mean: f64::NAN,
        ratio,
    };
    rows.extend([
        timed("a1 plain tch loop: index_select + 784-500-10 + Adam", &a1),
        timed("a2 MlpStudent::train_step (Dataset::batch)", &a2)
            .with_ratio(ratio(&a2, &a1, "a2/a1")),
        timed("a3 a2 + logits of the next batch (env floor)", &a3)
            .with_ratio(ratio(&a3, &a1, "a3/a1")),
        timed("b  env step, NoTeach (all kept)", &b),
        timed("r  env step rewritten in the bench (no env)", &r).with_ratio(ratio(&r, &b, "r/b")),
        ratio_only("c  b vs the hand-written loop", ratio(&b, &a1, "b/a1")),
        ratio_only("c  b vs the student's own loop", ratio(&b, &a2, "b/a2")),
        ratio_only("c  b vs the floor a3", ratio(&b, &a3, "b/a3")),
        Row {
            section,
            what: "c  env overhead b - a2, in ms".into(),
            median: b.median() - a2.median(),
            mean: b.mean() - a2.mean(),
            ratio: String::new(),
        },
        timed("d  L2T step: REINFORCE act + step + observe", &d).with_ratio(ratio(&d, &b, "d/b")),
        Row {
            section,
            what: format!(
                "d' the same per student update ({d_updates} updates / {} steps)",
                d.0.len()
            ),
            median: f64::NAN,
            mean: per_update,
            ratio: format!("{:.2}x d'/b (mean)", per_update / b_per_update),
        },
        timed("d1 REINFORCE act alone (to tensor, policy, sampling)", &d1),
        timed("e  env step, nothing kept (observation only)", &e)
            .with_ratio(format!("{:.2}x e/b (mean)", e.mean() / b.mean())),
        timed("e1 gather M=20: from_slice + index_select", &e1),
        timed("e2 student logits M=20, no grad", &e2),
        timed("e3 features as 14 tensor ops + ndarray (before)", &e3),
        timed("e4 featurise: log-softmax, one copy, rows in Rust", &e4),
    ]);
    notes.push(format!(
        "mlp: {} timed steps per variant in {MLP_ROUNDS} interleaved rounds after {MLP_WARMUP} \
         warm-up steps; d' is total d time / student updates",
        a1.0.len()
    ));
    Ok(())
}

// ----------------------------------------------------------------------------------
// resnet32

fn bench_resnet(rows: &mut Vec<Row>) -> Result<()> {
    let section = "resnet32";
    let mut student = ResNetStudent::new(ResNetConfig::cifar(32), Device::Cpu)?;
    student.reset(&mut stream_rng(0, Stream::StudentInit))?;
    let mut noise = stream_rng(0, Stream::Dropout);
    tch::manual_seed(0);
    let batch = Batch {
        inputs: Tensor::randn([RESNET_BATCH, 3, 32, 32], (Kind::Float, Device::Cpu)),
        labels: Tensor::randint(10, [RESNET_BATCH], (Kind::Int64, Device::Cpu)),
        lengths: None,
    };
    let train = time_student(RESNET_WARMUP, RESNET_TIMED, || {
        student.train_step(&batch, &mut noise)?;
        Ok(())
    })?;
    let forward = time_student(RESNET_WARMUP, RESNET_TIMED, || {
        let _ = std::hint::black_box(student.logits(&batch));
        Ok(())
    })?;
    rows.push(Row::new(
        section,
        format!("train_step, M={RESNET_BATCH}, 3x32x32 random ({RESNET_TIMED} timed)"),
        &train,
    ));
    rows.push(
        Row::new(
            section,
            format!("logits (eval, no grad), M={RESNET_BATCH}"),
            &forward,
        )
        .with_ratio(format!(
            "{:.2}x logits/train_step",
            forward.median() / train.median()
        )),
    );
    Ok(())
}

// ----------------------------------------------------------------------------------
// lstm

/// Padded token batches: ids in 1..vocab up to a random length in 20..=100, 0 after.
fn lstm_batches(count: usize, rng: &mut ChaCha8Rng) -> Vec<Batch> {
    (0..count)
        .map(|_| {
            let mut tokens = vec![0i64; (LSTM_BATCH * LSTM_WIDTH) as usize];
            let mut lengths = Vec::with_capacity(LSTM_BATCH as usize);
            for row in tokens.chunks_mut(LSTM_WIDTH as usize) {
                let length = rng.gen_range(20..=LSTM_WIDTH as usize);
                for token in &mut row[..length] {
                    *token = rng.gen_range(1..LSTM_VOCAB as i64);
                }
                lengths.push(length as i64);
            }
            let labels: Vec<i64> = (0..LSTM_BATCH).map(|_| rng.gen_range(0..2)).collect();
            Batch {
                inputs: Tensor::from_slice(&tokens).view([LSTM_BATCH, LSTM_WIDTH]),
                labels: Tensor::from_slice(&labels),
                lengths: Some(Tensor::from_slice(&lengths)),
            }
        })
        .collect()
}

fn bench_lstm(rows: &mut Vec<Row>) -> Result<()> {
    let section = "lstm";
    let mut student = LstmStudent::new(LstmConfig::imdb(LSTM_VOCAB), Device::Cpu)?;
    student.reset(&mut stream_rng(0, Stream::StudentInit))?;
    let mut noise = stream_rng(0, Stream::Dropout);
    let batches = lstm_batches(8, &mut stream_rng(0, Stream::DataOrder));
    let mut i = 0usize;
    let train = time_student(LSTM_WARMUP, LSTM_TIMED, || {
        student.train_step(&batches[i % batches.len()], &mut noise)?;
        i += 1;
        Ok(())
    })?;
    let mut j = 0usize;
    let forward = time_student(LSTM_WARMUP, LSTM_TIMED, || {
        let _ = std::hint::black_box(student.logits(&batches[j % batches.len()]));
        j += 1;
        Ok(())
    })?;
    rows.push(Row::new(
        section,
        format!(
            "train_step, M={LSTM_BATCH}, len 20..={LSTM_WIDTH}, vocab {LSTM_VOCAB} ({LSTM_TIMED} timed)"
        ),
        &train,
    ));
    rows.push(
        Row::new(
            section,
            format!("logits (eval, no grad), M={LSTM_BATCH}"),
            &forward,
        )
        .with_ratio(format!(
            "{:.2}x logits/train_step",
            forward.median() / train.median()
        )),
    );
    Ok(())
}

fn time_student(
    warmup: usize,
    timed: usize,
    mut step: impl FnMut() -> Result<()>,
) -> Result<Samples> {
    for _ in 0..warmup {
        step()?;
    }
    let mut samples = Samples::default();
    for _ in 0..timed {
        let start = Instant::now();
        step()?;
        samples.push_since(start);
    }
    Ok(samples)
}

// ----------------------------------------------------------------------------------
// selective

/// Selective: student updates of the rounds, per variant. Each round measures the
/// roofline next to the variants, so each round gives its own share of it.
const SELECTIVE_ROUNDS: usize = 8;
const SELECTIVE_UPDATES: usize = 25;
const SELECTIVE_WARMUP: usize = 10;

/// Milliseconds per student update and logical training FLOPs (scoring + training, the
/// env's [`Compute`](l2t::envs::Compute)) per update of an env stepped by a teacher.
struct Throughput {
    per_update: Samples,
    flops: u64,
    updates: u64,
    batches: u64,
    /// GFLOP/s and median ms per update of each recorded call of [`time_updates`]
    /// (one per round).
    rounds: Vec<(f64, f64)>,
}

impl Throughput {
    fn new() -> Self {
        Self {
            per_update: Samples::default(),
            flops: 0,
            updates: 0,
            batches: 0,
            rounds: Vec::new(),
        }
    }

    /// The median over the rounds of each round's GFLOP/s over that round's roofline.
    fn share_of(&self, rooflines: &[f64]) -> f64 {
        Samples(
            self.rounds
                .iter()
                .zip(rooflines)
                .map(|((rate, _), peak)| rate / peak)
                .collect(),
        )
        .median()
    }

    fn gflops(&self) -> f64 {
        self.flops as f64 / (self.per_update.total() * 1e-3) / 1e9
    }

    fn batches_per_update(&self) -> f64 {
        self.batches as f64 / self.updates.max(1) as f64
    }
}

/// The keep-one teacher of the bench: the incoming row of the highest loss (RHO-LOSS's
/// rule at kappa = 1 / M without the irreducible loss).
fn keep_highest_loss(observation: &TeachingObservation) -> Result<Array1<bool>> {
    let loss = observation.column("loss")?;
    let best = loss
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i);
    Ok(Array1::from_shape_fn(loss.len(), |i| i == best))
}

/// Steps `env` with `teacher` (keep-one, or NoTeach when `None`) until `updates` student
/// updates are done, timing each update (the steps that led to it); `record` false is
/// the warm-up.
fn time_updates(
    env: &mut TeachingEnv,
    observation: &mut TeachingObservation,
    keep_one: bool,
    updates: usize,
    out: &mut Throughput,
    record: bool,
) -> Result<()> {
    let m = env.config().batch_size;
    let all = Array1::from_elem(m, true);
    let (flops_before, ms_before, samples_before) =
        (out.flops, out.per_update.total(), out.per_update.0.len());
    let mut done = 0;
    let mut start = Instant::now();
    let mut before = env.info().compute.training_total();
    while done < updates {
        let mask = if keep_one {
            keep_highest_loss(observation)?
        } else {
            all.clone()
        };
        let step = env.step(&mask)?;
        *observation = step.observation;
        if record {
            out.batches += 1;
        }
        if step.info.updates_this_step > 0 {
            done += 1;
            let after = step.info.compute.training_total();
            if record {
                out.per_update.push_since(start);
                out.flops += after - before;
                out.updates += 1;
            }
            before = after;
            start = Instant::now();
        }
    }
    if record {
        let (flops, ms) = (out.flops - flops_before, out.per_update.total() - ms_before);
        let median = Samples(out.per_update.0[samples_before..].to_vec()).median();
        out.rounds.push((flops as f64 / (ms * 1e-3) / 1e9, median));
    }
    Ok(())
}

/// The single-thread sgemm roofline: GFLOP/s of `[rows, 784] x [784, 500]`, the
/// student's first layer, at the best of a few row counts (median of 30 runs each).
fn sgemm_roofline() -> f64 {
    let weights = Tensor::randn([784, 500], (Kind::Float, Device::Cpu));
    [400i64, 2000]
        .iter()
        .map(|&rows| {
            let inputs = Tensor::randn([rows, 784], (Kind::Float, Device::Cpu));
            let mut samples = Samples::default();
            for i in 0..35 {
                let start = Instant::now();
                let _ = std::hint::black_box(inputs.matmul(&weights));
                if i >= 5 {
                    samples.push_since(start);
                }
            }
            2.0 * rows as f64 * 784.0 * 500.0 / (samples.median() * 1e-3) / 1e9
        })
        .fold(0.0, f64::max)
}

/// [`sgemm_roofline`] on two threads at once, one libtorch thread each: the mean of
/// their GFLOP/s, the roofline per core when both cores work.
fn sgemm_roofline_side_by_side() -> Result<f64> {
    let rates = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    tch::set_num_threads(1);
                    sgemm_roofline()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("an sgemm thread panicked"))
            })
            .collect::<Result<Vec<f64>>>()
    })?;
    Ok(rates.iter().sum::<f64>() / rates.len() as f64)
}

/// RHO-LOSS's own loop in PyTorch (`benches/big_batch_pytorch.py`), scoring `big` rows
/// and training on `keep` per update; `None` (with a note) where no Python with torch is
/// found (`L2T_BENCH_PYTHON`, else the repository's `.venv`).
fn pytorch_big_batch(big: usize, keep: usize, notes: &mut Vec<String>) -> Option<Samples> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("L2T_BENCH_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/python"));
    let output = Command::new(&python)
        .arg(root.join("benches/big_batch_pytorch.py"))
        .args(["--updates", &(SELECTIVE_UPDATES * 2).to_string()])
        .args(["--big", &big.to_string(), "--keep", &keep.to_string()])
        .output();
    let parsed = output.ok().filter(|o| o.status.success()).and_then(|o| {
        serde_json::from_slice::<serde_json::Value>(&o.stdout)
            .ok()?
            .get("ms_per_update")?
            .as_array()?
            .iter()
            .map(serde_json::Value::as_f64)
            .collect::<Option<Vec<f64>>>()
    });
    if parsed.is_none() {
        notes.push(format!(
            "selective: no PyTorch loop ({} with torch not found or failed; set \
             L2T_BENCH_PYTHON)",
            python.display()
        ));
    }
    parsed.map(Samples)
}

/// A keep-one teacher and NoTeach through the env on the Fashion-MNIST MLP, per student
/// update, as a share of the sgemm roofline measured in the same run (logical FLOPs: each
/// incoming row scored once, each update's forward reused); score ahead on and off; two
/// keep-one workers side by side; and RHO-LOSS's own PyTorch loop on the same work
/// (n_b = 20 M scored, M trained per update).
fn bench_selective(rows: &mut Vec<Row>, notes: &mut Vec<String>) -> Result<()> {
    let section = "select";
    let (mut ahead, data_label) = mlp_env(notes)?;
    notes.push(format!("selective data: {data_label}"));
    if let Ok(value) = std::env::var("L2T_BENCH_PROFILE") {
        // The `k1` loop alone, for a profiler (`perf record`): no other variant, no
        // roofline, no PyTorch loop.
        let updates = value
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .with_context(|| format!("L2T_BENCH_PROFILE={value:?} is not a positive integer"))?;
        let (mut observation, _) = ahead.reset(Some(0))?;
        let mut k1 = Throughput::new();
        time_updates(
            &mut ahead,
            &mut observation,
            true,
            SELECTIVE_WARMUP,
            &mut k1,
            false,
        )?;
        time_updates(&mut ahead, &mut observation, true, updates, &mut k1, true)?;
        rows.push(
            Row::new(
                section,
                "k1 keep-one per update, alone (L2T_BENCH_PROFILE)",
                &k1.per_update,
            )
            .with_ratio(format!("{:.1} GFLOP/s", k1.gflops())),
        );
        return Ok(());
    }
    let (mut one, _) = mlp_env(&mut Vec::new())?;
    one.set_score_ahead(1);
    let (mut plain, _) = mlp_env(&mut Vec::new())?;
    let m = ahead.config().batch_size;
    let (mut ahead_obs, _) = ahead.reset(Some(0))?;
    let (mut one_obs, _) = one.reset(Some(0))?;
    let (mut plain_obs, _) = plain.reset(Some(0))?;
    let mut k16 = Throughput::new();
    let mut k1 = Throughput::new();
    let mut n = Throughput::new();
    let mut roofline = Vec::new();
    let mut pytorch = Samples::default();
    // p / k1 of each round, both medians.
    let mut pytorch_ratios = Vec::new();
    // The parts of a keep-one update: one recorded forward of 20 M rows with their
    // features (score ahead), and one training step on M of its rows (the backward and
    // Adam, the forward reused), as the env runs them.
    let train = ahead.train_data().shallow_clone();
    let big: Vec<i64> = (0..(20 * m) as i64)
        .map(|i| i * 37 % train.len() as i64)
        .collect();
    let big_batch = train.batch(&Tensor::from_slice(&big));
    let kept = Tensor::from_slice(&(0..m as i64).map(|i| i * 20 + 7).collect::<Vec<i64>>());
    let kept_labels = big_batch.labels.index_select(0, &kept);
    let (feature_config, layout) = (ahead.config().clone(), ahead.layout().clone());
    let mut student = MlpStudent::new(MlpConfig::mnist(), Device::Cpu)?;
    student.reset(&mut stream_rng(0, Stream::StudentInit))?;
    let mut score_part = Samples::default();
    let mut train_part = Samples::default();
    for round in 0..=SELECTIVE_ROUNDS {
        let record = round > 0;
        let updates = if record {
            SELECTIVE_UPDATES
        } else {
            SELECTIVE_WARMUP
        };
        let peak = sgemm_roofline();
        if record {
            roofline.push(peak);
        }
        time_updates(&mut ahead, &mut ahead_obs, true, updates, &mut k16, record)?;
        time_updates(&mut one, &mut one_obs, true, updates, &mut k1, record)?;
        time_updates(&mut plain, &mut plain_obs, false, updates, &mut n, record)?;
        for _ in 0..updates {
            let start = Instant::now();
            let recorded = student
                .record(&big_batch)
                .context("the MLP records its forwards")?;
            let logits = recorded
                .logits()
                .context("a recording has logits")?
                .view([20, m as i64, -1]);
            std::hint::black_box(featurise(
                &feature_config,
                &layout,
                &train,
                &logits,
                &big_batch.labels.view([20, m as i64]),
                None,
                &big,
                &[[0.5, 0.3, 0.8]; 20],
            )?);
            if record {
                score_part.push_since(start);
            }
            let start = Instant::now();
            student.train_step_on_recorded(&recorded.select(&kept), &kept_labels)?;
            if record {
                train_part.push_since(start);
            }
        }
        if record {
            if let Some(samples) = pytorch_big_batch(20 * m, m, notes) {
                if let Some(&(_, k1_median)) = k16.rounds.last() {
                    pytorch_ratios.push(samples.median() / k1_median);
                }
                pytorch.0.extend(samples.0);
            }
        }
    }
    // Two keep-one workers side by side, each with its own env, as a pool runs them;
    // their roofline per core is that of two sgemms side by side (the cores share
    // caches and memory), the mean of one measured just before and one just after.
    let pair_before = sgemm_roofline_side_by_side()?;
    let pair: Vec<Throughput> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|worker| {
                scope.spawn(move || -> Result<Throughput> {
                    tch::set_num_threads(1);
                    let (mut env, _) = mlp_env(&mut Vec::new())?;
                    let (mut obs, _) = env.reset(Some(worker))?;
                    let mut out = Throughput::new();
                    time_updates(&mut env, &mut obs, true, SELECTIVE_WARMUP, &mut out, false)?;
                    time_updates(
                        &mut env,
                        &mut obs,
                        true,
                        SELECTIVE_ROUNDS * SELECTIVE_UPDATES,
                        &mut out,
                        true,
                    )?;
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow::anyhow!("a worker panicked"))?)
            .collect::<Result<Vec<_>>>()
    })?;
    let pair_peak = (pair_before + sgemm_roofline_side_by_side()?) / 2.0;
    let peak = Samples(roofline.clone()).median();
    notes.push(format!(
        "selective: sgemm roofline {peak:.1} GFLOP/s on one core (median of {} rounds, \
         {:.1} to {:.1}; {pair_peak:.1} per core with two side by side, around the pair); keep-one scores \
         {:.1} incoming batches per update",
        roofline.len(),
        roofline.iter().copied().fold(f64::INFINITY, f64::min),
        roofline.iter().copied().fold(0.0, f64::max),
        k16.batches_per_update()
    ));
    // Each round's throughput over the roofline measured in that round, median of the
    // rounds (the side-by-side pair: over the roofline around it).
    let share = |t: &Throughput| {
        format!(
            "{:.1} GFLOP/s, {:.0}% of roofline",
            t.gflops(),
            100.0 * t.share_of(&roofline)
        )
    };
    let pair_share = |t: &Throughput| {
        format!(
            "{:.1} GFLOP/s, {:.0}% of roofline",
            t.gflops(),
            100.0 * t.gflops() / pair_peak
        )
    };
    rows.push(
        Row::new(
            section,
            "k1 keep-one per update, score ahead 32",
            &k16.per_update,
        )
        .with_ratio(share(&k16)),
    );
    rows.push(
        Row::new(
            section,
            "k0 keep-one per update, one batch at a time",
            &k1.per_update,
        )
        .with_ratio(format!(
            "{}; k0/k1 {:.2}x",
            share(&k1),
            k1.per_update.median() / k16.per_update.median()
        )),
    );
    for (worker, t) in pair.iter().enumerate() {
        rows.push(
            Row::new(
                section,
                format!("k2 keep-one per update, worker {worker} of 2 side by side"),
                &t.per_update,
            )
            .with_ratio(pair_share(t)),
        );
    }
    rows.push(Row::new(section, "n  NoTeach per update", &n.per_update).with_ratio(share(&n)));
    rows.push(Row::new(
        section,
        format!("s  part: recorded forward + features of {} rows", 20 * m),
        &score_part,
    ));
    rows.push(
        Row::new(
            section,
            format!("t  part: train on {m} recorded rows"),
            &train_part,
        )
        .with_ratio(format!(
            "k1 - s - t = {:.3} ms per update of steps and policy",
            k16.per_update.median() - score_part.median() - train_part.median()
        )),
    );
    if !pytorch.0.is_empty() {
        rows.push(
            Row::new(
                section,
                format!("p  PyTorch: score {} rows, train on top {m}", 20 * m),
                &pytorch,
            )
            .with_ratio(format!(
                "p/k1 {:.2}x (l2t faster above 1; rounds {:.2}x to {:.2}x)",
                Samples(pytorch_ratios.clone()).median(),
                pytorch_ratios.iter().copied().fold(f64::INFINITY, f64::min),
                pytorch_ratios.iter().copied().fold(0.0, f64::max)
            )),
        );
    }
    Ok(())
}
