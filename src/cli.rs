//! The `l2t` command's body: train teachers, evaluate and compare them, reproduce the
//! paper's experiments from presets. Every run is a TOML config (`--print-config` shows
//! it, `--config` reads one, flags override it) and writes a folder (see
//! [`crate::run_dir`]).
//!
//! It is a library module, not the binary's own file, so that the `l2t` binary
//! (`src/main.rs`, a thin wrapper) and the Python wheel's `l2t` console script (the
//! extension's `l2t._l2t.cli`) run one implementation: [`main_with_args`] parses the
//! arguments and runs the command, and returns the exit status instead of exiting the
//! process. As the body of a command it reports with `anyhow`, like a binary; the
//! library's own modules keep their typed errors.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::agents::{NoTeach, TeacherConfig};
use crate::config::{
    DeviceChoice, Interface, Overrides, RunConfig, TeacherEntry, BENCHMARK_TASKS, LONG_RUNS,
    TRANSFERS,
};
use crate::envs::io::write_atomic;
use crate::envs::{EnvError, Numerics};
use crate::experiment::{
    claim_with_trained, evaluate_teacher, leaderboard, run, shipped_teachers, Cancel,
    ExperimentError, Progress, Report,
};
use crate::plots::{plot_intervals, ChartLabels, IntervalRow};
use crate::presets::{default_data_dir, shipped_checkpoints_dir, Preset, PRESETS, REPORT_SEEDS};
use crate::run_dir::RunDir;
use crate::stats::mean_ci95;

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
    /// Floating-point code paths: `native` (the CPU's fastest) or `portable` (MKL, ATen
    /// and oneDNN pinned to AVX2: the same bits on every x86-64 machine with AVX2,
    /// slower on AVX-512 CPUs). Default: `$L2T_NUMERICS`, else native.
    #[arg(long, global = true, value_parser = parse_numerics)]
    numerics: Option<Numerics>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The paper's comparison on a preset: train REINFORCE and the actor-critic on the
    /// teacher half, then teach fresh students of the student half with NoTeach,
    /// RandTeach (matched), SPL, online batch selection and the trained teachers.
    Reproduce {
        /// Preset or transfer name (see `l2t list`); with --config, the config's preset
        /// name.
        preset: String,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Train one teacher on a preset's teacher half, with checkpoints (an interrupted
    /// run resumes where it stopped), then evaluate it on the student half.
    Train {
        /// Preset name (see `l2t list`); with --config, the config's preset name.
        preset: String,
        /// The teacher: a kind (`reinforce`, `actor_critic`) or a JSON config;
        /// `label=...` names it. Default: reinforce. With --config it replaces the
        /// config's teachers (trained); without it the config's teachers run as they are.
        #[arg(long)]
        teacher: Option<String>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Teach fresh students of a preset's student half with one teacher.
    Evaluate {
        /// Preset name (see `l2t list`); with --config, the config's preset name.
        preset: String,
        /// The teacher: a kind, a JSON config or a checkpoint file (a teacher trained on
        /// another task is a transfer); `label=...` names it. With --config it replaces
        /// the config's teachers.
        #[arg(long)]
        teacher: String,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Teach fresh students with several teachers on the same seeds and tabulate them.
    Compare {
        /// Preset name (see `l2t list`); with --config, the config's preset name.
        preset: String,
        /// Teachers (repeat the flag): kinds, JSON configs or checkpoint files, each
        /// optionally `label=...`. The first is the reference row unless --reference
        /// names another. With --config they replace the config's teachers (the
        /// config's task and settings stay).
        #[arg(long = "teacher", required = true)]
        teachers: Vec<String>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// The benchmark: every task's reproduction on the same seeds (by default the 20
    /// report seeds from 1000000), each into `<out>/<task>` (reusing the teachers
    /// `l2t reproduce <task>` trained in `runs/<task>`, for a transfer those of its
    /// training task), then one leaderboard across
    /// tasks: `leaderboard.md`, `leaderboard.json` and `leaderboard.svg/.png` in `<out>`
    /// (default `runs/benchmark`): each task's instances to tau against NoTeach, the
    /// paired difference to its best heuristic, the IQM of the normalised instances with
    /// a stratified-bootstrap interval and the probability of improvement (rliable).
    Benchmark {
        /// Tasks (repeat the flag): built-in runs (default: those `l2t list` names as
        /// the benchmark's) or run config files (`.toml`).
        #[arg(long = "task")]
        tasks: Vec<String>,
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
    /// The paper's datasets: `l2t data fetch <name>...` or `--all`.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
}

/// `l2t data` subcommands.
#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Download datasets from their publishers (or $L2T_DATA_MIRROR), check their
    /// published checksums and lay them out where the presets read them; an interrupted
    /// download resumes. Datasets already there are left alone.
    Fetch {
        /// mnist, fashion-mnist, cifar10, imdb, rotten-tomatoes.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        datasets: Vec<String>,
        /// All five.
        #[arg(long)]
        all: bool,
        /// Folder with the data (default: $L2T_DATA or the set-up's cache).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

/// Options shared by the commands that run an experiment. With --config every one of
/// them applies on top of the config, as on top of a built-in run.
#[derive(Debug, Args)]
struct RunArgs {
    /// A run config (TOML) to start from instead of the preset's: the other flags
    /// (and a subcommand's --teacher) apply on top of it; the preset argument must be
    /// the config's preset name.
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
    /// The reference row: the teacher (by label) every other row is paired with in the
    /// tables (ratio, paired differences, probability of improvement). Default: the
    /// first row.
    #[arg(long)]
    reference: Option<String>,
    /// Folder with the data (default: $L2T_DATA or the set-up's cache).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Folder for the results (default: runs/<name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the resolved config as TOML and exit.
    #[arg(long)]
    print_config: bool,
    /// Start the output folder afresh: remove everything an earlier run wrote into it
    /// (its results, manifest, config, events, teacher checkpoints and training
    /// histories; the irreducible-loss caches stay, each valid for what its name hashes)
    /// and train every learned teacher from scratch (or copy in a shipped one, unless
    /// `--no-shipped`). Without it a folder holding another
    /// config's run is refused; a rerun of the same config removes the earlier results
    /// only and resumes from its checkpoints.
    #[arg(long)]
    fresh: bool,
    /// Train every learned teacher here instead of reusing the checkpoints shipped in
    /// `python/l2t/checkpoints/<training task>/` (or `$L2T_CHECKPOINTS`) for the same training
    /// identity. Without it, a teacher whose identity a shipped checkpoint has is copied
    /// into the output folder and not trained again (`python/l2t/checkpoints/README.md`).
    #[arg(long)]
    no_shipped: bool,
    /// Under `mpirun -np N`: spread each update's training episodes over the N ranks
    /// (the same results as one process; rank 0 writes the run folder). Needs a build
    /// with `--features mpi`.
    #[arg(long)]
    distributed: bool,
}

fn parse_numerics(text: &str) -> Result<Numerics, String> {
    text.parse().map_err(|e: EnvError| e.to_string())
}

fn parse_device(text: &str) -> Result<DeviceChoice, String> {
    text.parse()
}

/// The cancellation the `l2t` binary's SIGINT handler raises ([`on_sigint`]).
static SIGINT_CANCEL: std::sync::LazyLock<Cancel> = std::sync::LazyLock::new(Cancel::default);

/// SIGINT (Ctrl-C): the run stops at its next safe point (the line of `events.jsonl` in
/// writing is finished, the checkpoint of the update in flight saved) and the command
/// exits with 130. A second SIGINT ends the process at once (the default action is back).
#[cfg(unix)]
extern "C" fn on_sigint(_: libc::c_int) {
    // Async-signal-safe: an atomic store (SIGINT_CANCEL is forced before the handler is
    // installed) and signal(2).
    if let Some(cancel) = std::sync::LazyLock::get(&SIGINT_CANCEL) {
        cancel.cancel();
    }
    // SAFETY: restoring the default disposition of SIGINT is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
    }
}

/// Installs the `l2t` binary's SIGINT handler for the whole process and returns the
/// [`Cancel`] it raises, for [`main_with_args`]. For a process that owns its signals (the
/// binary); an embedding one, such as Python, cancels a [`Cancel`] of its own instead.
pub fn install_sigint_handler() -> Cancel {
    std::sync::LazyLock::force(&SIGINT_CANCEL);
    #[cfg(unix)]
    // SAFETY: the handler only stores to an atomic and calls signal(2).
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    SIGINT_CANCEL.clone()
}

/// The exit status of a command stopped by `cancel` (SIGINT's, 128 + 2).
pub const EXIT_INTERRUPTED: i32 = 130;

/// Runs the `l2t` command with `args` (the program name first, as `std::env::args_os`
/// gives them) and returns its exit status: 0 on success (`--help` and `--version`
/// included), 2 for arguments clap refuses (its message printed), 1 for a failed command
/// (`Error: ...` on stderr) and [`EXIT_INTERRUPTED`] once `cancel` stopped the run
/// (every finished evaluation and training update kept, said on stderr). It never exits
/// the process itself.
pub fn main_with_args<I, T>(args: I, cancel: &Cancel) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            // Help and version go to stdout with status 0, usage errors to stderr.
            let _ = error.print();
            return error.exit_code();
        }
    };
    let outcome = run_command(cli, cancel.clone());
    if cancel.is_cancelled() {
        eprintln!(
            "l2t: interrupted (SIGINT): stopped with every finished evaluation in events.jsonl \
             and every finished training update in its checkpoint; rerun the same command to \
             go on"
        );
        return EXIT_INTERRUPTED;
    }
    match outcome {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("Error: {error:?}");
            1
        }
    }
}

fn run_command(cli: Cli, cancel: Cancel) -> Result<()> {
    // Before libtorch's first operation (setting its threads included): MKL, ATen and
    // oneDNN read their code paths once.
    let numerics = match cli.numerics {
        Some(numerics) => numerics,
        None => Numerics::from_env()?,
    };
    numerics.apply()?;
    tch::set_num_threads(cli.threads);
    let context = RunContext {
        device: cli.device,
        quiet: cli.quiet,
        cancel,
    };
    match cli.command {
        Command::List => list(),
        Command::Data {
            command:
                DataCommand::Fetch {
                    datasets,
                    all,
                    data_dir,
                },
        } => data_fetch(&datasets, all, data_dir),
        Command::Noteach {
            preset,
            iterations,
            seeds,
            data_dir,
        } => noteach(&preset, iterations, seeds, data_dir),
        Command::Reproduce { preset, run } => {
            let base = base_config(&preset, &run, RunConfig::named)?;
            execute(base, None, run, &preset, &context)
        }
        Command::Train {
            preset,
            teacher,
            run,
        } => {
            let base = base_config(&preset, &run, preset_config)?;
            // Without --config the one teacher is reinforce unless --teacher names
            // another; with --config only a --teacher replaces the config's teachers.
            let teacher = match (teacher, &run.config) {
                (Some(teacher), _) => Some(teacher),
                (None, None) => Some("reinforce".to_string()),
                (None, Some(_)) => None,
            };
            let teachers = teacher.map(|t| TeacherFlags {
                specs: vec![t],
                trained: true,
            });
            execute(base, teachers, run, &format!("{preset}-train"), &context)
        }
        Command::Evaluate {
            preset,
            teacher,
            run,
        } => {
            let base = base_config(&preset, &run, preset_config)?;
            let teachers = TeacherFlags {
                specs: vec![teacher],
                trained: false,
            };
            execute(
                base,
                Some(teachers),
                run,
                &format!("{preset}-evaluate"),
                &context,
            )
        }
        Command::Compare {
            preset,
            teachers,
            run,
        } => {
            let base = base_config(&preset, &run, preset_config)?;
            let teachers = TeacherFlags {
                specs: teachers,
                trained: false,
            };
            execute(
                base,
                Some(teachers),
                run,
                &format!("{preset}-compare"),
                &context,
            )
        }
        Command::Benchmark { tasks, run } => benchmark(tasks, run, &context),
        Command::Run { run } => {
            let Some(path) = &run.config else {
                bail!("`l2t run` needs --config <file.toml>");
            };
            let base = RunConfig::from_toml_file(path)?;
            let name = base.preset.name.clone();
            execute(base, None, run, &name, &context)
        }
    }
}

/// Global options the experiment commands need.
struct RunContext {
    device: Option<DeviceChoice>,
    quiet: bool,
    /// Stops the runs of this command (SIGINT in the binary, KeyboardInterrupt in Python).
    cancel: Cancel,
}

fn unknown(name: &str) -> String {
    format!(
        "unknown preset `{name}`; presets: {}; longer runs: {}; transfers: {}",
        PRESETS.join(", "),
        LONG_RUNS.join(", "),
        TRANSFERS.join(", ")
    )
}

fn preset_config(name: &str) -> Result<RunConfig, crate::experiment::ExperimentError> {
    Preset::named(name).map(RunConfig::reproduction)
}

/// The config a subcommand starts from: the `--config` file (whose preset must be the
/// one the subcommand names: the name is not silently dropped), else `builtin(preset)`.
fn base_config(
    preset: &str,
    args: &RunArgs,
    builtin: impl Fn(&str) -> Result<RunConfig, crate::experiment::ExperimentError>,
) -> Result<RunConfig> {
    let Some(path) = &args.config else {
        return builtin(preset).map_err(|_| anyhow::anyhow!(unknown(preset)));
    };
    let config = RunConfig::from_toml_file(path)?;
    if config.preset.name != preset {
        bail!(
            "the preset argument `{preset}` is not the preset of --config {} (`{}`): give `{}` \
             (or use `l2t run --config {}`)",
            path.display(),
            config.preset.name,
            config.preset.name,
            path.display()
        );
    }
    Ok(config)
}

/// The teachers a subcommand's `--teacher` flags name: they replace the teachers of the
/// preset's config or of `--config`.
struct TeacherFlags {
    /// Each as `--teacher` takes it ([`TeacherEntry::parse`]).
    specs: Vec<String>,
    /// Trained on the teacher half first (`l2t train`).
    trained: bool,
}

/// Applies the flags to `base`, then runs it or prints it.
fn execute(
    base: RunConfig,
    teachers: Option<TeacherFlags>,
    args: RunArgs,
    name: &str,
    context: &RunContext,
) -> Result<()> {
    let config = configure(base, teachers, &args, context)?;
    if args.print_config {
        print!("{}", config.to_toml()?);
        return Ok(());
    }
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(name));
    if args.distributed {
        return execute_distributed(&config, &data_dir, &out, name, &args, context);
    }
    let mut run_dir = open_run_dir(&out, args.fresh, context)?;
    claim_saying_which(&mut run_dir, &config, &trained_sources(&config, &args, &[]))?;
    let report = run_into(&config, &data_dir, run_dir, name, context)?;
    print_report(&report, &out);
    Ok(())
}

/// Where a run looks for teachers trained before, in order: `extra`, then (unless
/// `--no-shipped`) the shipped checkpoints of the config's training task.
fn trained_sources(config: &RunConfig, args: &RunArgs, extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut sources = extra.to_vec();
    if !args.no_shipped {
        sources.push(shipped_teachers(config));
    }
    sources
}

/// Claims `run_dir` for `config` and copies in the teachers of `sources` trained under
/// the same identity ([`claim_with_trained`]), saying what it removed and reused.
fn claim_saying_which(run_dir: &mut RunDir, config: &RunConfig, sources: &[PathBuf]) -> Result<()> {
    let (removed, reused) = claim_with_trained(run_dir, config, &[], sources)?;
    for path in removed {
        eprintln!("--fresh: removed {}", path.display());
    }
    let shipped = shipped_checkpoints_dir();
    for reused in reused {
        let how = if reused.from.starts_with(&shipped) {
            " (shipped with l2t; --no-shipped trains it here)"
        } else {
            ""
        };
        eprintln!("{reused}{how}");
    }
    Ok(())
}

/// The folder `out`, locked, `--fresh` or not (see [`RunDir`]: one run per folder).
fn open_run_dir(out: &Path, fresh: bool, context: &RunContext) -> Result<RunDir> {
    let mut run_dir = RunDir::create(out)?;
    run_dir.set_fresh(fresh);
    run_dir.set_cancel(context.cancel.clone());
    Ok(run_dir)
}

/// Runs `config` into `run_dir`, with progress bars.
fn run_into(
    config: &RunConfig,
    data_dir: &Path,
    mut run_dir: RunDir,
    name: &str,
    context: &RunContext,
) -> Result<Report> {
    let mut bars = Bars::new(context.quiet);
    let report = run(config, data_dir, &mut run_dir, |p| bars.update(p))
        .map_err(|error| run_error(error, config, name, data_dir))?;
    bars.finish();
    Ok(report)
}

/// `l2t benchmark`: each task's reproduction on the same seeds into `<out>/<task>`
/// (reusing the trained teachers of `runs/<task>`, the folder `l2t reproduce <task>`
/// writes, and for a transfer those of its training task's run), then the leaderboard
/// across tasks.
fn benchmark(tasks: Vec<String>, mut args: RunArgs, context: &RunContext) -> Result<()> {
    if args.config.is_some() || args.distributed || args.print_config || args.train_on.is_some() {
        bail!(
            "`l2t benchmark` takes its tasks with --task (built-in runs or .toml run configs); \
             --config, --train-on, --distributed and --print-config are for one run"
        );
    }
    let tasks = if tasks.is_empty() {
        BENCHMARK_TASKS.iter().map(|t| t.to_string()).collect()
    } else {
        tasks
    };
    args.seeds = Some(args.seeds.unwrap_or(20));
    args.first_seed = Some(args.first_seed.unwrap_or(REPORT_SEEDS));
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs/benchmark"));
    let mut configs = Vec::new();
    for task in &tasks {
        // A built-in run by name, or a run config file (its preset's name names it).
        let base = if task.ends_with(".toml") {
            RunConfig::from_toml_file(Path::new(task))?
        } else {
            RunConfig::named(task)?
        };
        configs.push(configure(base, None, &args, context)?);
    }
    let names: Vec<String> = configs.iter().map(|c| c.preset.name.clone()).collect();
    if let Some(twice) = names
        .iter()
        .enumerate()
        .find_map(|(i, n)| names[..i].contains(n).then_some(n))
    {
        bail!("two benchmark tasks are named `{twice}`: each task needs its own name (its folder)");
    }
    let started = std::time::Instant::now();
    let mut reports = Vec::new();
    for (task, config) in names.iter().zip(&configs) {
        let folder = out.join(task);
        // Trained teachers from `l2t reproduce <task>`'s folder, or, for a transfer,
        // from its training task's run: the main job's, or this benchmark's.
        let trained_on = &config.training_preset().name;
        let mut runs = vec![PathBuf::from("runs").join(task)];
        if trained_on != task {
            runs.push(PathBuf::from("runs").join(trained_on));
            runs.push(out.join(trained_on));
        }
        eprintln!("benchmark: task {task} into {}", folder.display());
        // The folder is claimed (another config's results refused, or cleared with
        // --fresh) before the trained teachers are copied in.
        let mut run_dir = open_run_dir(&folder, args.fresh, context)?;
        claim_saying_which(&mut run_dir, config, &trained_sources(config, &args, &runs))?;
        let report = run_into(config, &data_dir, run_dir, task, context)?;
        print_report(&report, &folder);
        reports.push(report);
    }
    let board = leaderboard(&reports)?;
    let mut text = board.markdown();
    text.push_str(&format!(
        "\nMade by `l2t benchmark` in {:.0} s ({}; each task's run folder is beside \
         this file).\n",
        started.elapsed().as_secs_f64(),
        crate::experiment::count_tasks(tasks.len())
    ));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let write = |name: &str, bytes: &[u8]| {
        let path = out.join(name);
        write_atomic(&path, bytes).with_context(|| format!("writing {}", path.display()))
    };
    write("leaderboard.md", text.as_bytes())?;
    write(
        "leaderboard.json",
        serde_json::to_string_pretty(&board)?.as_bytes(),
    )?;
    if !args.no_plots {
        let rows: Vec<IntervalRow> = board
            .rows
            .iter()
            .map(|r| IntervalRow {
                label: r.teacher.clone(),
                estimate: r.iqm,
                lower: r.iqm_ci95.0,
                upper: r.iqm_ci95.1,
            })
            .collect();
        let labels = ChartLabels::new(
            &format!(
                "IQM of effective instances to tau / NoTeach's, {} x {} seeds (95% CI)",
                crate::experiment::count_tasks(board.tasks.len()),
                board.seeds
            ),
            "effective instances to tau relative to NoTeach (lower is better)",
            "",
        );
        if let Err(error) = plot_intervals(out.join("leaderboard"), &rows, &labels, Some(1.0)) {
            eprintln!("warning: leaderboard figure: {error}");
        }
    }
    println!("\n{text}");
    println!(
        "leaderboard written to {}",
        out.join("leaderboard.md").display()
    );
    Ok(())
}

/// `base` with the `--teacher` flags (replacing its teachers) and the other flags
/// applied ([`Overrides::apply`], the one implementation Python's functions share),
/// validated.
fn configure(
    mut config: RunConfig,
    teachers: Option<TeacherFlags>,
    args: &RunArgs,
    context: &RunContext,
) -> Result<RunConfig> {
    if let Some(flags) = teachers {
        config.teachers = (flags.specs.iter())
            .map(|spec| {
                let entry = TeacherEntry::parse(spec, &config.preset)?;
                Ok(if flags.trained {
                    entry.trained()
                } else {
                    entry
                })
            })
            .collect::<Result<_, crate::experiment::ExperimentError>>()?;
    }
    args.overrides(context)
        .apply(&mut config, Interface::Cli, &[])?;
    config.validate()?;
    Ok(config)
}

impl RunArgs {
    /// The flags that change a run config, as the library's [`Overrides`].
    fn overrides(&self, context: &RunContext) -> Overrides {
        Overrides {
            episodes: self.episodes,
            seeds: self.seeds,
            first_seed: self.first_seed,
            tau: self.tau,
            checkpoint_every: self.checkpoint_every,
            workers: self.workers,
            train_tau: self.train_tau,
            train_dev: self.train_dev,
            train_area: self.train_area,
            train_eval_every: self.train_eval_every,
            test_every: self.test_every,
            train_on: self.train_on.clone(),
            plots: self.no_plots.then_some(false),
            device: context.device,
            reference: self.reference.clone(),
        }
    }
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
    _args: &RunArgs,
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
    args: &RunArgs,
    context: &RunContext,
) -> Result<()> {
    use crate::distributed::{scratch_folder, Cluster};
    use crate::experiment::run_on;

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
        if let Some(warning) = cluster.check_numerics()? {
            if rank == 0 {
                eprintln!("{warning}");
            }
        }
        let dist = distribution.insert(cluster.distribution()?);
        let mut run_dir = open_run_dir(&folder, args.fresh && rank == 0, context)?;
        if rank == 0 {
            // The other ranks get the copied checkpoints as every checkpoint: from rank 0.
            claim_saying_which(&mut run_dir, config, &trained_sources(config, args, &[]))?;
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
            Progress::Cleared(removed) => {
                for path in removed {
                    let line = format!("--fresh: removed {}", path.display());
                    match &self.current {
                        Some(_) => self.multi.suspend(|| eprintln!("{line}")),
                        None => eprintln!("{line}"),
                    }
                }
            }
            Progress::Resumed {
                reused,
                total,
                teachers,
            } => {
                let line = format!(
                    "resumed: {reused} of {total} evaluations from events.jsonl ({})",
                    teachers.join(", ")
                );
                match &self.current {
                    Some(_) => self.multi.suspend(|| eprintln!("{line}")),
                    None => eprintln!("{line}"),
                }
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
        let preset = Preset::named(name).map_err(|_| anyhow::anyhow!(unknown(name)))?;
        println!("  {name:<24} needs {}", preset.data_requirement());
    }
    println!(
        "data (l2t data fetch <name>... | --all [--data-dir D]; L2T_FETCH=1: on first use; \
         L2T_DATA_MIRROR=<base URL>: from a mirror): {}",
        crate::envs::data::fetch::KnownDataset::ALL
            .map(|d| d.name())
            .join(", ")
    );
    println!("longer runs (l2t reproduce <name>):");
    for name in LONG_RUNS {
        let config = RunConfig::named(name)?;
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
        let config = RunConfig::named(name)?;
        println!(
            "  {name:<32} teachers trained on {}, teaching {}",
            config.training_preset().name,
            config.preset.data_requirement()
        );
    }
    println!(
        "benchmark (l2t benchmark; the 20 report seeds): {}",
        BENCHMARK_TASKS.join(", ")
    );
    println!(
        "students: mlp, cnn (two strided convolutions, 1x28x28), resnet (6n+2 layers, CIFAR), lstm"
    );
    println!(
        "teachers (--teacher <kind> | <json> | <checkpoint file>): {}",
        TeacherConfig::names().join(", ")
    );
    Ok(())
}

/// `l2t data fetch`: each dataset into its place in the data folder
/// ([`crate::envs::data::fetch`]), progress on stderr.
fn data_fetch(names: &[String], all: bool, data_dir: Option<PathBuf>) -> Result<()> {
    use crate::envs::data::fetch::{print_event, Fetched, Fetcher, KnownDataset};
    let datasets = match all {
        true => KnownDataset::ALL.to_vec(),
        false => names
            .iter()
            .map(|name| KnownDataset::named(name))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let data_dir = data_dir.unwrap_or_else(default_data_dir);
    let fetcher = Fetcher::from_env()?.on_event(print_event);
    for dataset in datasets {
        let location = dataset.default_location(&data_dir);
        eprintln!("{dataset}: {}", dataset.description());
        let fetched = fetcher
            .fetch(dataset, &location)
            .with_context(|| format!("l2t data fetch {dataset}"))?;
        let what = match fetched {
            Fetched::AlreadyPresent => "already present",
            Fetched::Installed => "fetched and verified",
        };
        println!("{dataset}: {what}: {}", location.display());
    }
    Ok(())
}

fn noteach(preset: &str, iterations: usize, seeds: usize, data_dir: Option<PathBuf>) -> Result<()> {
    let mut config = Preset::named(preset).map_err(|_| anyhow::anyhow!(unknown(preset)))?;
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
