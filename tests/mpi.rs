//! Distributed teacher training on MPI (feature `mpi`), through the `l2t` command under
//! `mpirun` on localhost: one and two ranks write the same teacher and result files as
//! a one-process run, bit for bit apart from timing fields; a rank that crashes or
//! fails stops the whole job with a clear error, never a hang, and rerunning the
//! command resumes from the last checkpoint and ends as an uninterrupted run.
//!
//! `mpirun` is `$L2T_MPIRUN` when set, else `mpirun --allow-run-as-root --oversubscribe`
//! (OpenMPI: the flags let root run it and put two ranks on fewer cores).
#![cfg(feature = "mpi")]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use l2t::agents::{checkpoint_episodes, EsConfig, TeacherConfig};
use l2t::config::{labels, RunConfig, TeacherEntry};

use common::{csv_without_seconds, file_names, small_synthetic_preset, without_timing, Scratch};

/// The synthetic preset, shrunk so that a run takes seconds, with learned teachers
/// whose updates have several episodes (K = 4, 2, 4 and 3: odd K splits unevenly
/// over two ranks).
fn tiny_config(learned: &[&str], episodes: usize) -> RunConfig {
    let preset = small_synthetic_preset(episodes);
    let mut config = RunConfig::reproduction(preset);
    config.training.workers = 1;
    config.report.test_every = 4;
    let mut teachers = vec![TeacherEntry::new(labels::NO_TEACH, TeacherConfig::NoTeach)];
    for label in learned {
        let teacher = match *label {
            "reinforce" => TeacherConfig::Reinforce(l2t::agents::ReinforceConfig {
                episodes_per_update: 4,
                ..Default::default()
            }),
            "actor_critic" => TeacherConfig::ActorCritic(l2t::agents::ActorCriticConfig {
                episodes_per_update: 2,
                ..Default::default()
            }),
            "es" => TeacherConfig::Es(EsConfig {
                pairs: 2,
                ..Default::default()
            }),
            "ppo" => TeacherConfig::Ppo(l2t::agents::PpoConfig {
                episodes_per_update: 3,
                ..Default::default()
            }),
            other => panic!("no teacher {other}"),
        };
        teachers.push(TeacherEntry::new(*label, teacher).trained());
    }
    config.teachers = teachers;
    config
}

fn write_config(config: &RunConfig, path: &Path) {
    fs::write(path, config.to_toml().unwrap()).unwrap();
}

/// `mpirun` and its flags.
fn mpirun() -> Command {
    let line = std::env::var("L2T_MPIRUN")
        .unwrap_or_else(|_| "mpirun --allow-run-as-root --oversubscribe".into());
    let mut words = line.split_whitespace();
    let mut command = Command::new(words.next().expect("L2T_MPIRUN is empty"));
    command.args(words);
    command
}

/// `l2t --quiet run --config <config> --out <out>`, under `mpirun -np <ranks>
/// ... --distributed` when `ranks` is given, with `env` set; killed (and the test
/// failed) after `limit`. The temporary folder (`TMPDIR`) of every process is `tmp`
/// beside `out`, so the scratch folders of the ranks above 0
/// (`l2t::distributed::scratch_folder`), which a crashed rank cannot remove, stay in
/// the test's own scratch folder.
fn l2t(
    ranks: Option<usize>,
    config: &Path,
    out: &Path,
    env: &[(&str, &str)],
    limit: Duration,
) -> Output {
    let binary = env!("CARGO_BIN_EXE_l2t");
    let mut command = match ranks {
        Some(n) => {
            let mut command = mpirun();
            command.args(["-np", &n.to_string(), binary]);
            command
        }
        None => Command::new(binary),
    };
    command.args(["--quiet", "run", "--config"]);
    command.arg(config).arg("--out").arg(out);
    if ranks.is_some() {
        command.arg("--distributed");
    }
    let tmp = out.with_file_name("tmp");
    fs::create_dir_all(&tmp).unwrap();
    command.env("TMPDIR", &tmp);
    for (key, value) in env {
        command.env(key, value);
    }
    finish(command, limit)
}

/// `command`'s output once it ends; killed (and the test failed) after `limit`.
fn finish(mut command: Command, limit: Duration) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start mpirun or l2t");
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "{command:?} still running after {limit:?} (a hang):\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn succeeded(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Keys that differ between one process and ranks besides timing: the cores the
/// process saw (`mpirun` binds each rank to a core).
const MPI_ONLY: &[&str] = &["cores"];

/// A result file as it compares: JSON and JSON lines without timing fields, CSVs
/// without their `seconds` column, the lock file (who held the folder: pid, host,
/// command, start) not at all, anything else byte for byte.
fn comparable(path: &Path) -> Vec<u8> {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let text = || fs::read_to_string(path).unwrap();
    if name == l2t::run_dir::FolderLock::FILE {
        Vec::new()
    } else if name.ends_with(".jsonl") {
        let lines: Vec<Value> = text()
            .lines()
            .map(|line| without_timing(serde_json::from_str(line).unwrap(), MPI_ONLY))
            .collect();
        serde_json::to_vec(&lines).unwrap()
    } else if name.ends_with(".json") {
        serde_json::to_vec(&without_timing(
            serde_json::from_str(&text()).unwrap(),
            MPI_ONLY,
        ))
        .unwrap()
    } else if name.ends_with(".csv") {
        (csv_without_seconds(path).iter())
            .map(|row| row.join(","))
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes()
    } else if name == "summary.md" {
        // Without the wall-clock columns of each table: those whose header names seconds
        // (s / episode, s to tau with evaluations excluded, seconds to a level).
        let timing = |header: &str| {
            let header = header.trim();
            header == "s / episode" || header.starts_with("s to tau") || header.contains("seconds")
        };
        let mut dropped: Option<Vec<bool>> = None;
        let mut lines = Vec::new();
        for line in text().lines() {
            if !line.starts_with('|') {
                dropped = None;
                lines.push(line.to_string());
                continue;
            }
            let cells: Vec<&str> = line.trim_matches('|').split('|').collect();
            let drop = dropped.get_or_insert_with(|| cells.iter().map(|c| timing(c)).collect());
            let kept: Vec<&str> = (cells.iter().zip(drop.iter()))
                .filter(|(_, d)| !**d)
                .map(|(c, _)| *c)
                .collect();
            lines.push(kept.join("|"));
        }
        lines.join("\n").into_bytes()
    } else {
        fs::read(path).unwrap()
    }
}

/// Asserts that the run folders `a` and `b` hold the same files with the same
/// contents (apart from timing); returns how many files were compared.
fn assert_same_folders(a: &Path, b: &Path) -> usize {
    let files = file_names(a);
    assert_eq!(files, file_names(b), "{} vs {}", a.display(), b.display());
    for name in &files {
        assert!(
            comparable(&a.join(name)) == comparable(&b.join(name)),
            "{name} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
    files.len()
}

fn checkpoints(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ckpt"))
        .collect();
    found.sort();
    found
}

const LIMIT: Duration = Duration::from_secs(300);

#[test]
fn one_and_two_ranks_write_the_files_of_a_one_process_run() {
    let scratch = Scratch::new("mpi", "determinism");
    let config = tiny_config(&["reinforce", "actor_critic", "es", "ppo"], 12);
    let path = scratch.join("config.toml");
    write_config(&config, &path);
    let single = scratch.join("single");
    succeeded(&l2t(None, &path, &single, &[], LIMIT), "one process");
    for ranks in [1, 2] {
        let out = scratch.join(&format!("np{ranks}"));
        let output = l2t(Some(ranks), &path, &out, &[], LIMIT);
        succeeded(&output, &format!("mpirun -np {ranks}"));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("distributed: {ranks} ranks")),
            "no distributed summary:\n{stderr}"
        );
        let compared = assert_same_folders(&single, &out);
        assert!(compared >= 10, "only {compared} files");
        // The four learned teachers' checkpoints, byte for byte.
        let ckpts = checkpoints(&out);
        assert_eq!(ckpts.len(), 4);
        for ckpt in ckpts {
            let name = ckpt.file_name().unwrap();
            assert_eq!(
                fs::read(&ckpt).unwrap(),
                fs::read(single.join(name)).unwrap()
            );
            assert_eq!(checkpoint_episodes(&ckpt).unwrap(), 12);
        }
    }
}

/// Ranks whose floating-point code paths differ (one `native`, one `portable`) would roll
/// out episodes with different bits: refused before anything is trained, naming the
/// rank and the flag, with no hang and nothing written.
#[test]
fn ranks_in_different_numerics_are_refused() {
    let scratch = Scratch::new("mpi", "numerics");
    let path = scratch.join("config.toml");
    write_config(&tiny_config(&["es"], 4), &path);
    let out = scratch.join("out");
    let tmp = scratch.join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    let binary = env!("CARGO_BIN_EXE_l2t");
    let args = [
        "--quiet".as_ref(),
        "run".as_ref(),
        "--config".as_ref(),
        path.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--distributed".as_ref(),
    ];
    // MPMD: rank 0 native, rank 1 portable.
    let mut command = mpirun();
    command.args(["-np", "1", binary]).args(args);
    command.args([":", "-np", "1", "env", "L2T_NUMERICS=portable", binary]);
    command
        .args(args)
        .env("TMPDIR", &tmp)
        .env_remove("L2T_NUMERICS");
    for name in ["MKL_CBWR", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA"] {
        command.env_remove(name);
    }
    let output = finish(command, LIMIT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "ranks in different numerics ran");
    assert!(
        stderr.contains("rank 1 runs numerics `portable` and rank 0 runs `native`")
            && stderr.contains("--numerics"),
        "{stderr}"
    );
    assert!(
        !out.exists() || (checkpoints(&out).is_empty() && !out.join("report.json").exists()),
        "something was trained"
    );
}

#[test]
fn a_crashed_or_failing_rank_stops_the_job_and_a_rerun_resumes() {
    let scratch = Scratch::new("mpi", "fault");
    // REINFORCE, K = 4: 16 episodes are 4 updates, a checkpoint after each.
    let mut config = tiny_config(&["reinforce"], 16);
    config.checkpoint_every = 4;
    let path = scratch.join("config.toml");
    write_config(&config, &path);
    let straight = scratch.join("straight");
    succeeded(&l2t(None, &path, &straight, &[], LIMIT), "one process");

    // Rank 1 crashes (SIGABRT, no MPI_Abort) in the third update's exchange, when
    // rank 0 has checkpointed the second.
    let out = scratch.join("crashed");
    let crash = [("L2T_MPI_FAULT", "1:2:crash")];
    let output = l2t(Some(2), &path, &out, &crash, LIMIT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a crashed rank went unnoticed");
    assert!(stderr.contains("rank 1: injected crash"), "{stderr}");
    let ckpt = checkpoints(&out);
    assert_eq!(ckpt.len(), 1);
    assert_eq!(checkpoint_episodes(&ckpt[0]).unwrap(), 8, "{stderr}");
    assert!(!out.join("report.json").exists());
    // The crashed rank left its scratch folder in the test's temporary folder.
    let left: Vec<_> = fs::read_dir(scratch.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("l2t-rank1-"))
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");

    // Rank 1 fails (an error, then MPI_Abort) in the resumed run's first update: the
    // error names the rank; nothing is lost.
    let fail = [("L2T_MPI_FAULT", "1:0:error")];
    let output = l2t(Some(2), &path, &out, &fail, LIMIT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a failed rank went unnoticed");
    assert!(
        stderr.contains("rank 1 of 2 failed") && stderr.contains("injected error"),
        "{stderr}"
    );
    assert_eq!(checkpoint_episodes(&ckpt[0]).unwrap(), 8);

    // The same command again resumes from episode 8 and ends as the uninterrupted run.
    let output = l2t(Some(2), &path, &out, &[], LIMIT);
    succeeded(&output, "the rerun");
    assert_eq!(checkpoint_episodes(&ckpt[0]).unwrap(), 16);
    let history = fs::read_to_string(ckpt[0].with_file_name(format!(
        "{}-training.jsonl",
        ckpt[0].file_stem().unwrap().to_string_lossy()
    )))
    .unwrap();
    assert_eq!(history.lines().count(), 16);
    assert_same_folders(&straight, &out);
}
