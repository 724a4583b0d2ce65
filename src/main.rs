//! The `l2t` command: train teachers, evaluate and compare them, reproduce the paper's
//! experiments from presets. Every run is a TOML config (`--print-config` shows it,
//! `--config` reads one, flags override it) and writes a folder (see `l2t::run_dir`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use l2t::agents::{NoTeach, TeacherConfig};
use l2t::config::{DeviceChoice, RunConfig, TeacherEntry, LONG_RUNS, TRANSFERS};
use l2t::envs::EnvError;
use l2t::experiment::{evaluate_teacher, run, ExperimentError, Progress, Report};
use l2t::presets::{default_data_dir, Preset, PRESETS};
use l2t::run_dir::RunDir;
use l2t::stats::mean_ci95;

/// Learning to Teach (Fan et al., ICLR 2018): train teachers and compare them.
#[derive(Debug, Parser)]
#[command(name = "l2t", version, about)]
struct Cli {
    /// libtorch intra-op threads (1 is fastest for the small students on 2 cores).
    #[arg(long, global = true, default_value_t = 1)]
    threads: i32,
    /// Where students and data live: cpu or cuda (needs a CUDA libtorch).
    #[arg(long, global = true, value_parser = parse_device)]
    device: Option<DeviceChoice>,
    /// No progress bars; one log line per episode on stderr instead.
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The paper's comparison on a preset: train REINFORCE and the actor-critic on the
    /// teacher half, then teach fresh students of the student half with NoTeach,
    /// RandTeach (matched), SPL, online batch selection and the trained teachers.
    Reproduce {
        /// Preset or transfer name (see `l2t list`).
        preset: String,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Train one teacher on a preset's teacher half, with checkpoints (an interrupted
    /// run resumes where it stopped), then evaluate it on the student half.
    Train {
        /// Preset name (see `l2t list`).
        preset: String,
        /// The teacher: a kind (`reinforce`, `actor_critic`) or a JSON config;
        /// `label=...` names it.
        #[arg(long, default_value = "reinforce")]
        teacher: String,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Teach fresh students of a preset's student half with one teacher.
    Evaluate {
        /// Preset name (see `l2t list`).
        preset: String,
        /// The teacher: a kind, a JSON config or a checkpoint file (a teacher trained on
        /// another task is a transfer); `label=...` names it.
        #[arg(long)]
        teacher: String,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Teach fresh students with several teachers on the same seeds and tabulate them.
    Compare {
        /// Preset name (see `l2t list`).
        preset: String,
        /// Teachers (repeat the flag): kinds, JSON configs or checkpoint files, each
        /// optionally `label=...`. The first is the reference row.
        #[arg(long = "teacher", required = true)]
        teachers: Vec<String>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Run a config file as it is (flags still override it).
    Run {
        #[command(flatten)]
        run: RunArgs,
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
    /// List presets, transfers, students and teachers.
    List,
}

/// Options shared by the commands that run an experiment.
#[derive(Debug, Args)]
struct RunArgs {
    /// A run config (TOML) to start from instead of the preset's.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Teacher-training episodes of every learned teacher.
    #[arg(long)]
    episodes: Option<usize>,
    /// Evaluation seeds per teacher.
    #[arg(long)]
    seeds: Option<usize>,
    /// The first evaluation seed (seeds first..first+N). Configurations are chosen on
    /// the selection seeds from 0; headline figures come from the report seeds, from
    /// 1000000 (`l2t::presets::REPORT_SEEDS`).
    #[arg(long)]
    first_seed: Option<u64>,
    /// Dev-accuracy threshold tau.
    #[arg(long)]
    tau: Option<f64>,
    /// Teacher-training episodes between two checkpoints.
    #[arg(long)]
    checkpoint_every: Option<usize>,
    /// Worker threads rolling out the learned teachers' training episodes and
    /// evaluating teachers side by side (0: one per core); the results do not depend
    /// on it.
    #[arg(long)]
    workers: Option<usize>,
    /// A training tau: teacher-training episodes end at this dev accuracy (evaluation
    /// keeps the preset's tau).
    #[arg(long)]
    train_tau: Option<f64>,
    /// Teacher-training episodes measure dev accuracy on this many dev instances.
    #[arg(long)]
    train_dev: Option<usize>,
    /// Teacher-training episodes are rewarded with the area under the dev-accuracy
    /// curve over this many student updates (0: the preset's reward, iterations to
    /// tau); evaluation keeps instances to tau.
    #[arg(long)]
    train_area: Option<usize>,
    /// Teacher-training episodes evaluate the student every this many updates
    /// (evaluation keeps the preset's interval).
    #[arg(long)]
    train_eval_every: Option<usize>,
    /// Dev evaluations between two test-accuracy points of the learning curves.
    #[arg(long)]
    test_every: Option<usize>,
    /// Train the learned teachers on this preset's teacher half (transfer).
    #[arg(long)]
    train_on: Option<String>,
    /// Skip the plots.
    #[arg(long)]
    no_plots: bool,
    /// Folder with the data (default: $L2T_DATA or the set-up's cache).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Folder for the results (default: runs/<name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the resolved config as TOML and exit.
    #[arg(long)]
    print_config: bool,
    /// Train every learned teacher from scratch: remove the output folder's teacher
    /// checkpoints and training histories first (instead of resuming from them).
    #[arg(long)]
    fresh: bool,
    /// Under `mpirun -np N`: spread each update's training episodes over the N ranks
    /// (the same results as one process; rank 0 writes the run folder). Needs a build
    /// with `--features mpi`.
    #[arg(long)]
    distributed: bool,
}

fn parse_device(text: &str) -> Result<DeviceChoice, String> {
    match text {
        "cpu" => Ok(DeviceChoice::Cpu),
        "cuda" => Ok(DeviceChoice::Cuda),
        other => Err(format!("`{other}`: expected cpu or cuda")),
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tch::set_num_threads(cli.threads);
    let context = RunContext {
        device: cli.device,
        quiet: cli.quiet,
    };
    match cli.command {
        Command::List => list(),
        Command::Noteach {
            preset,
            iterations,
            seeds,
            data_dir,
        } => noteach(&preset, iterations, seeds, data_dir),
        Command::Reproduce { preset, run } => {
            let base = RunConfig::named(&preset).with_context(|| unknown(&preset))?;
            execute(base, run, &preset, &context)
        }
        Command::Train {
            preset,
            teacher,
            run,
        } => {
            let mut base = preset_config(&preset)?;
            base.teachers = vec![TeacherEntry::parse(&teacher, &base.preset)?.trained()];
            execute(base, run, &format!("{preset}-train"), &context)
        }
        Command::Evaluate {
            preset,
            teacher,
            run,
        } => {
            let mut base = preset_config(&preset)?;
            base.teachers = vec![TeacherEntry::parse(&teacher, &base.preset)?];
            execute(base, run, &format!("{preset}-evaluate"), &context)
        }
        Command::Compare {
            preset,
            teachers,
            run,
        } => {
            let mut base = preset_config(&preset)?;
            base.teachers = teachers
                .iter()
                .map(|t| TeacherEntry::parse(t, &base.preset))
                .collect::<Result<_, _>>()?;
            execute(base, run, &format!("{preset}-compare"), &context)
        }
        Command::Run { run } => {
            let Some(path) = &run.config else {
                bail!("`l2t run` needs --config <file.toml>");
            };
            let base = RunConfig::from_toml_file(path)?;
            let name = base.preset.name.clone();
            execute(base, run, &name, &context)
        }
    }
}

/// Global options the experiment commands need.
struct RunContext {
    device: Option<DeviceChoice>,
    quiet: bool,
}

fn unknown(name: &str) -> String {
    format!(
        "unknown preset `{name}`; presets: {}; longer runs: {}; transfers: {}",
        PRESETS.join(", "),
        LONG_RUNS.join(", "),
        TRANSFERS.join(", ")
    )
}

fn preset_config(name: &str) -> Result<RunConfig> {
    let preset = Preset::named(name).with_context(|| unknown(name))?;
    Ok(RunConfig::reproduction(preset))
}

/// Applies the flags to `base` (or to the `--config` file), then runs it or prints it.
fn execute(base: RunConfig, args: RunArgs, name: &str, context: &RunContext) -> Result<()> {
    let mut config = match &args.config {
        Some(path) => RunConfig::from_toml_file(path)?,
        None => base,
    };
    if let Some(episodes) = args.episodes {
        config.preset.episodes = episodes;
        for entry in &mut config.teachers {
            entry.episodes = None;
        }
        if let Some(train_on) = &mut config.train_on {
            train_on.episodes = episodes;
        }
    }
    if let Some(seeds) = args.seeds {
        config.preset.eval_seeds = seeds;
    }
    if let Some(first) = args.first_seed {
        config.preset.first_eval_seed = first;
    }
    if let Some(tau) = args.tau {
        config.preset.teaching = config.preset.teaching.clone().with_tau(tau);
    }
    if let Some(every) = args.checkpoint_every {
        config.checkpoint_every = every;
    }
    if let Some(workers) = args.workers {
        config.training.workers = workers;
    }
    if let Some(tau) = args.train_tau {
        config.training.tau = Some(tau);
    }
    if let Some(size) = args.train_dev {
        config.training.dev_subsample = Some(size);
    }
    match args.train_area {
        Some(0) => config.training.reward = None,
        Some(iterations) => {
            config.training.reward = Some(l2t::envs::Reward::DevAccuracyArea { iterations })
        }
        None => {}
    }
    if let Some(every) = args.train_eval_every {
        config.training.eval_every = Some(every);
    }
    if let Some(every) = args.test_every {
        config.report.test_every = every;
    }
    if let Some(train_on) = &args.train_on {
        let mut preset = Preset::named(train_on).with_context(|| unknown(train_on))?;
        if let Some(episodes) = args.episodes {
            preset.episodes = episodes;
        }
        config.train_on = Some(preset);
    }
    if args.no_plots {
        config.report.plots = false;
    }
    if let Some(device) = context.device {
        config.device = device;
    }
    config.validate()?;
    if args.print_config {
        print!("{}", config.to_toml()?);
        return Ok(());
    }
    let data_dir = args.data_dir.unwrap_or_else(default_data_dir);
    let out = args.out.unwrap_or_else(|| PathBuf::from("runs").join(name));
    if args.distributed {
        return execute_distributed(&config, &data_dir, &out, name, args.fresh, context);
    }
    let mut run_dir = RunDir::create(&out)?;
    if args.fresh {
        clear_training_state(&run_dir)?;
    }
    let mut bars = Bars::new(context.quiet);
    let report = run(&config, &data_dir, &mut run_dir, |p| bars.update(p))
        .map_err(|error| run_error(error, &config, name, &data_dir))?;
    bars.finish();
    print_report(&report, &out);
    Ok(())
}

/// `--fresh`: the folder's teacher checkpoints and histories removed, and said so.
fn clear_training_state(run_dir: &RunDir) -> Result<()> {
    for path in run_dir.clear_training_state()? {
        eprintln!("--fresh: removed {}", path.display());
    }
    Ok(())
}

/// The error of a run, with what it needs when a data file is missing or unreadable.
fn run_error(
    error: ExperimentError,
    config: &RunConfig,
    name: &str,
    data_dir: &Path,
) -> anyhow::Error {
    match error {
        error @ ExperimentError::Env(EnvError::Data(_)) => {
            let needs = match &config.train_on {
                Some(train_on) => format!(
                    "{}, and {}",
                    config.preset.data_requirement(),
                    train_on.data_requirement()
                ),
                None => config.preset.data_requirement(),
            };
            anyhow::Error::new(error).context(format!(
                "run {name} (data folder {}) needs {needs}",
                data_dir.display()
            ))
        }
        error => anyhow::Error::new(error).context(format!("run {name}")),
    }
}

/// `--distributed` without the `mpi` feature.
#[cfg(not(feature = "mpi"))]
fn execute_distributed(
    _config: &RunConfig,
    _data_dir: &Path,
    _out: &Path,
    _name: &str,
    _fresh: bool,
    _context: &RunContext,
) -> Result<()> {
    bail!(
        "--distributed needs an l2t built with the `mpi` feature \
         (L2T_MPI=1 bash scripts/setup.sh; cargo build --release --features mpi)"
    )
}

/// The run under MPI: every rank trains, rank 0 alone writes `out`, evaluates and
/// reports; the other ranks keep their copies in a scratch folder and exit after
/// training. An error on any rank is printed with the rank and stops the whole job
/// (`MPI_Abort`), so no rank hangs.
#[cfg(feature = "mpi")]
fn execute_distributed(
    config: &RunConfig,
    data_dir: &Path,
    out: &Path,
    name: &str,
    fresh: bool,
    context: &RunContext,
) -> Result<()> {
    use l2t::distributed::{scratch_folder, Cluster};
    use l2t::experiment::run_on;

    let cluster = Cluster::initialize()?;
    let (rank, size) = (cluster.rank(), cluster.size());
    let folder = if rank == 0 {
        out.to_path_buf()
    } else {
        scratch_folder(rank)
    };
    let mut bars = Bars::new(context.quiet);
    let mut distribution = None;
    let outcome = (|| -> Result<Option<Report>> {
        let dist = distribution.insert(cluster.distribution()?);
        let mut run_dir = RunDir::create(&folder)?;
        if fresh && rank == 0 {
            clear_training_state(&run_dir)?;
        }
        run_on(dist, config, Vec::new(), data_dir, &mut run_dir, |p| {
            if rank == 0 {
                bars.update(p)
            }
        })
        .map_err(|error| run_error(error, config, name, data_dir))
    })();
    if rank != 0 {
        let _ = std::fs::remove_dir_all(&folder);
    }
    match outcome {
        Ok(Some(report)) => {
            bars.finish();
            if let Some(stats) = distribution.as_ref().map(|d| d.stats()) {
                if stats.updates > 0 {
                    eprintln!(
                        "distributed: {size} ranks, {} updates, {} episodes in {:.1} s of training \
                         ({:.2} episodes/min); per update: {:.2} ms communication, {:.1} ms \
                         waiting for slower ranks, {} bytes gathered",
                        stats.updates,
                        stats.episodes,
                        stats.training_seconds,
                        stats.episodes_per_minute(),
                        stats.comm_seconds * 1e3 / stats.updates as f64,
                        stats.wait_seconds * 1e3 / stats.updates as f64,
                        stats.bytes / stats.updates
                    );
                    if let Ok(json) = serde_json::to_string(&stats) {
                        eprintln!("distributed-stats: {json}");
                    }
                }
            }
            print_report(&report, out);
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(error) => {
            eprintln!("l2t: rank {rank} of {size} failed: {error:#}\nl2t: stopping every rank");
            cluster.abort(1)
        }
    }
}

fn print_report(report: &Report, out: &Path) {
    for warning in &report.plot_warnings {
        eprintln!("warning: {warning}");
    }
    println!("\n{}", report.table());
    println!("results written to {}", out.display());
}

/// Progress bars: one per phase (training a teacher, evaluating a teacher), showing
/// the episode, reward, dev accuracy and kept ratio. Off a terminal, or with
/// `--quiet`, one log line per episode on stderr instead.
struct Bars {
    multi: MultiProgress,
    current: Option<ProgressBar>,
    lines: bool,
}

impl Bars {
    fn new(quiet: bool) -> Self {
        let multi = MultiProgress::new();
        let lines = quiet || multi.is_hidden();
        if lines {
            multi.set_draw_target(ProgressDrawTarget::hidden());
        }
        Self {
            multi,
            current: None,
            lines,
        }
    }

    fn update(&mut self, progress: Progress<'_>) {
        match progress {
            Progress::Phase {
                teacher,
                training,
                total,
                done,
            } => {
                if let Some(bar) = self.current.take() {
                    bar.finish();
                }
                let what = if training { "train" } else { "teach" };
                if self.lines {
                    let resumed = if done > 0 {
                        format!(" ({done} episodes read back from the checkpoint)")
                    } else {
                        String::new()
                    };
                    eprintln!("{what} {teacher}: {total} episodes{resumed}");
                    return;
                }
                let bar = self.multi.add(ProgressBar::new(total as u64));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>28} [{bar:25}] {pos}/{len} {elapsed_precise} {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_prefix(format!("{what} {teacher}"));
                bar.set_position(done as u64);
                bar.enable_steady_tick(Duration::from_millis(500));
                self.current = Some(bar);
            }
            Progress::Trained(record) => {
                let s = &record.summary;
                let line = format!(
                    "reward {:.3}, best dev {:.4}, kept {:.3}, to tau {}",
                    s.episode_return,
                    s.best_dev_accuracy,
                    s.instances_kept as f64 / s.instances_seen.max(1) as f64,
                    s.effective_instances_to_tau
                        .map_or("-".to_string(), |i| i.to_string())
                );
                self.advance(&format!("episode {}: {line}", record.episode + 1));
            }
            Progress::Evaluated(record) => {
                let s = &record.episode;
                let line = format!(
                    "seed {}: to tau {}, test {:.4}, best dev {:.4}, kept {:.3}, {:.1}s",
                    record.seed,
                    s.effective_instances_to_tau
                        .map_or("not reached".to_string(), |i| i.to_string()),
                    record.test_accuracy,
                    s.best_dev_accuracy,
                    s.instances_kept as f64 / s.instances_seen.max(1) as f64,
                    s.wall_seconds
                );
                self.advance(&format!("{} {line}", record.teacher));
            }
        }
    }

    fn advance(&self, line: &str) {
        match &self.current {
            Some(bar) => {
                bar.inc(1);
                bar.set_message(line.to_string());
            }
            None => eprintln!("{line}"),
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.current.take() {
            bar.finish();
        }
    }
}

fn list() -> Result<()> {
    println!("presets (l2t reproduce <name>; the first three run on the set-up's data or none):");
    for name in PRESETS {
        let preset = Preset::named(name).with_context(|| unknown(name))?;
        println!("  {name:<24} needs {}", preset.data_requirement());
    }
    println!("longer runs (l2t reproduce <name>):");
    for name in LONG_RUNS {
        let config = RunConfig::named(name).with_context(|| unknown(name))?;
        let episodes: Vec<String> = config
            .teachers
            .iter()
            .filter(|e| e.train)
            .map(|e| {
                let n = e.episodes.unwrap_or(config.preset.episodes);
                format!("{} {n}", e.label)
            })
            .collect();
        println!("  {name:<32} training episodes: {}", episodes.join(", "));
    }
    println!("transfers (l2t reproduce <name>):");
    for name in TRANSFERS {
        let config = RunConfig::named(name).with_context(|| unknown(name))?;
        println!(
            "  {name:<32} teachers trained on {}, teaching {}",
            config.training_preset().name,
            config.preset.data_requirement()
        );
    }
    println!("students: mlp, resnet (6n+2 layers, CIFAR), lstm");
    println!(
        "teachers (--teacher <kind> | <json> | <checkpoint file>): {}",
        TeacherConfig::names().join(", ")
    );
    Ok(())
}

fn noteach(preset: &str, iterations: usize, seeds: usize, data_dir: Option<PathBuf>) -> Result<()> {
    let mut config = Preset::named(preset).with_context(|| unknown(preset))?;
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
    let records = evaluate_teacher(&mut envs.student_env, &mut NoTeach, &seeds, &envs.test)?;
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
    println!(
        "{preset}: NoTeach test accuracy {mean:.4} ± {half_width:.4} (95% CI, {} seeds) after {iterations} updates",
        records.len()
    );
    Ok(())
}
