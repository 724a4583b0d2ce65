//! Ctrl-C that cancels (issue 36, item 1): SIGINT sent to a real `l2t` process stops it
//! within seconds with exit status 130, every line of `events.jsonl` complete JSON and
//! the learned teacher's checkpoint on disk.
#![cfg(unix)]

mod common;

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use l2t::agents::{EsConfig, TeacherConfig};
use l2t::config::{labels, RunConfig, TeacherEntry};

use common::{small_synthetic_preset, Scratch};

/// `l2t --quiet run --config <config> --out <out>`, started.
fn spawn_l2t(config: &RunConfig, scratch: &Scratch, out: &Path) -> Child {
    let path = scratch.join("run.toml");
    fs::write(&path, config.to_toml().unwrap()).unwrap();
    Command::new(env!("CARGO_BIN_EXE_l2t"))
        .args(["--quiet", "run", "--config"])
        .arg(&path)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start l2t")
}

/// Lines of `path` (none while it does not exist).
fn lines(path: &Path) -> usize {
    fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

/// Waits until `ready()` (failing after a minute or if `child` ends first), sends SIGINT
/// and returns the exit status, stderr and the seconds it took to stop.
fn interrupt(mut child: Child, ready: impl Fn() -> bool) -> (Option<i32>, String, f64) {
    let start = Instant::now();
    while !ready() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended first");
        assert!(start.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let sent = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if sent.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("l2t still running 30 s after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let stop_seconds = sent.elapsed().as_secs_f64();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stderr, stop_seconds)
}

/// Every line of `path` is a complete JSON value; returns how many.
fn complete_lines(path: &Path) -> usize {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "a cut last line");
    for (i, line) in text.lines().enumerate() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("line {} of {} is no JSON: {e}", i + 1, path.display()));
    }
    text.lines().count()
}

#[test]
fn sigint_stops_a_comparison_within_seconds_with_complete_events() {
    let scratch = Scratch::new("sigint", "compare");
    let mut preset = small_synthetic_preset(1);
    preset.eval_seeds = 400;
    let mut config = RunConfig::reproduction(preset);
    config.report.plots = false;
    config.training.workers = 2;
    config.teachers = vec![
        TeacherEntry::new(labels::NO_TEACH, TeacherConfig::NoTeach),
        TeacherEntry::parse("online_batch", &config.preset).unwrap(),
    ];
    let out = scratch.join("out");
    let events = out.join("events.jsonl");
    let child = spawn_l2t(&config, &scratch, &out);
    let (code, stderr, seconds) = interrupt(child, || lines(&events) >= 3);
    eprintln!("compare stopped {seconds:.2} s after SIGINT");
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(seconds < 5.0, "{seconds:.2} s to stop");
    let logged = complete_lines(&events);
    assert!((3..800).contains(&logged), "{logged} events");
    // The run stopped before its results: no summary of a partial run.
    assert!(!out.join("summary.md").exists());
}

#[test]
fn sigint_stops_teacher_training_with_its_checkpoint_saved() {
    let scratch = Scratch::new("sigint", "train");
    let mut config = RunConfig::reproduction(small_synthetic_preset(4000));
    config.report.plots = false;
    config.training.workers = 1;
    config.teachers = vec![TeacherEntry::new(
        labels::ES,
        TeacherConfig::Es(EsConfig {
            pairs: 2,
            ..Default::default()
        }),
    )
    .trained()];
    let out = scratch.join("out");
    let history = |out: &Path| {
        fs::read_dir(out).ok().and_then(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .find(|p| p.to_string_lossy().ends_with("-training.jsonl"))
        })
    };
    let child = spawn_l2t(&config, &scratch, &out);
    let (code, stderr, seconds) =
        interrupt(child, || history(&out).is_some_and(|h| lines(&h) >= 8));
    eprintln!("training stopped {seconds:.2} s after SIGINT");
    assert_eq!(code, Some(130), "{stderr}");
    assert!(seconds < 5.0, "{seconds:.2} s to stop");
    let logged = complete_lines(&history(&out).unwrap());
    assert!(logged < 4000, "the training ran to its end");
    // The checkpoint holds every episode the history logged (saved after the update in
    // flight), so the rerun loses nothing.
    let checkpoint = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "ckpt"))
        .expect("a checkpoint");
    let saved = l2t::agents::checkpoint_episodes(&checkpoint).unwrap();
    assert_eq!(saved, logged, "episodes logged but not in the checkpoint");
    complete_lines(&out.join("events.jsonl"));
}
