//! `l2t benchmark` end to end on two small synthetic tasks (run config files): each
//! task's run folder, the leaderboard's files, and a second run that reuses the
//! trained teachers and writes the same leaderboard.

mod common;

use std::fs;
use std::process::Command;

use l2t::agents::{EsConfig, TeacherConfig};
use l2t::config::{labels, RunConfig, TeacherEntry};
use l2t::experiment::{Leaderboard, Role};

use common::{small_synthetic_preset, Scratch};

/// NoTeach, two heuristics and ES (4 training episodes) on the small synthetic task
/// named `name`, with its own data seed.
fn task(name: &str, split_seed: u64) -> RunConfig {
    let mut preset = small_synthetic_preset(4);
    preset.name = name.into();
    preset.split_seed = split_seed;
    let mut config = RunConfig::reproduction(preset);
    config.preset.irreducible_loss_feature = false;
    config.training.workers = 1;
    config.teachers = vec![
        TeacherEntry::new(labels::NO_TEACH, TeacherConfig::NoTeach),
        TeacherEntry::new(labels::SPL, TeacherConfig::Spl(Default::default())),
        TeacherEntry::new(
            labels::ONLINE_BATCH,
            TeacherConfig::OnlineBatch(Default::default()),
        ),
        TeacherEntry::new(labels::ES, TeacherConfig::Es(EsConfig::default())).trained(),
    ];
    config
}

/// `l2t --quiet benchmark --task a.toml --task b.toml ...` in `scratch`: its success and
/// its stderr.
fn l2t_benchmark(scratch: &Scratch, extra: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_l2t"))
        .current_dir(scratch.join(""))
        .args([
            "--quiet",
            "benchmark",
            "--task",
            "a.toml",
            "--task",
            "b.toml",
        ])
        .args([
            "--seeds",
            "2",
            "--first-seed",
            "5",
            "--workers",
            "1",
            "--out",
            "board",
        ])
        .args(extra)
        .output()
        .expect("cannot start l2t");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), stderr)
}

fn benchmark(scratch: &Scratch, extra: &[&str]) -> String {
    let (success, stderr) = l2t_benchmark(scratch, extra);
    assert!(success, "l2t benchmark failed:\n{stderr}");
    stderr
}

#[test]
fn benchmark_ranks_every_task_and_reuses_trained_teachers() {
    let scratch = Scratch::new("benchmark", "two-tasks");
    for (name, file, seed) in [("small-a", "a.toml", 0), ("small-b", "b.toml", 1)] {
        fs::write(scratch.join(file), task(name, seed).to_toml().unwrap()).unwrap();
    }
    benchmark(&scratch, &["--no-plots"]);
    let board_dir = scratch.join("board");
    let json = fs::read_to_string(board_dir.join("leaderboard.json")).unwrap();
    let board: Leaderboard = serde_json::from_str(&json).unwrap();
    assert_eq!(board.tasks, ["small-a", "small-b"]);
    assert_eq!((board.first_seed, board.seeds), (5, 2));
    assert_eq!(board.rows.len(), 4);
    let es = board.rows.iter().find(|r| r.teacher == labels::ES).unwrap();
    assert_eq!(es.role, Role::Learned);
    assert_eq!(es.tasks.len(), 2);
    assert!(es.p_fewer_than_best_heuristic.is_some());
    let no_teach = board
        .rows
        .iter()
        .find(|r| r.teacher == labels::NO_TEACH)
        .unwrap();
    assert_eq!(no_teach.role, Role::Reference);
    for name in ["small-a", "small-b"] {
        assert!(board_dir.join(name).join("report.json").exists());
    }
    let markdown = fs::read_to_string(board_dir.join("leaderboard.md")).unwrap();
    assert!(markdown.contains("| es | learned |"), "{markdown}");
    assert!(markdown.contains("evaluation seeds 5 to 6"), "{markdown}");
    // Again: the teachers are read back from their checkpoints, not trained again, and
    // the leaderboard is the same (its timing line aside).
    let stderr = benchmark(&scratch, &["--no-plots"]);
    assert!(
        stderr.contains("train es: 4 episodes (4 episodes read back from the checkpoint)")
            && !stderr.contains("episode 1: reward"),
        "trained again:\n{stderr}"
    );
    let again: Leaderboard =
        serde_json::from_str(&fs::read_to_string(board_dir.join("leaderboard.json")).unwrap())
            .unwrap();
    assert_eq!(again, board);
}

#[test]
fn benchmark_refuses_two_tasks_of_one_name() {
    let scratch = Scratch::new("benchmark", "same-name");
    for file in ["a.toml", "b.toml"] {
        fs::write(scratch.join(file), task("same", 0).to_toml().unwrap()).unwrap();
    }
    let (success, stderr) = l2t_benchmark(&scratch, &[]);
    assert!(!success);
    assert!(
        stderr.contains("two benchmark tasks are named `same`"),
        "{stderr}"
    );
    assert!(!scratch.join("board").exists());
}
