//! Run folders under concurrent use and impossible sizes (issue 22): a second process
//! on a held folder is refused and changes nothing; a lock left by a killed run never
//! blocks, and the rerun resumes; a history two runs appended to is refused with the
//! way out (`--fresh`); sizes that cannot fit are refused before they allocate.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use l2t::agents::{EsConfig, RandTeach, RandTeachConfig, TeacherConfig};
use l2t::config::{labels, RunConfig, TeacherEntry};
use l2t::envs::{EnvError, SyntheticConfig};
use l2t::experiment::{dev_subsample, run_with, ExperimentError, Progress, Report, UserTeacher};
use l2t::presets::Preset;
use l2t::run_dir::{FolderLock, RunDir};

use common::{file_names, small_synthetic_preset, Scratch};

/// NoTeach and ES (2 pairs) trained for `episodes` episodes on the small synthetic task.
fn es_config(episodes: usize) -> RunConfig {
    common::small_es_config(episodes, 2)
}

fn write_config(config: &RunConfig, path: &Path) {
    fs::write(path, config.to_toml().unwrap()).unwrap();
}

/// `l2t --quiet run --config <config> --out <out> <extra>`, started.
fn spawn_l2t(config: &Path, out: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_l2t"))
        .args(["--quiet", "run", "--config"])
        .arg(config)
        .arg("--out")
        .arg(out)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start l2t")
}

/// Waits for `child`, killing it (and failing) after `limit`.
fn finish(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "l2t still running after {limit:?}:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every file of `dir` with its bytes, sorted by name.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

/// The ES training history file of a run folder.
fn history_file(out: &Path) -> PathBuf {
    fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("es-") && n.ends_with("-training.jsonl"))
        })
        .expect("an ES training history")
}

fn history_episodes(out: &Path) -> Vec<u64> {
    fs::read_to_string(history_file(out))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let value: serde_json::Value = serde_json::from_str(l).unwrap();
            value["episode"].as_u64().unwrap()
        })
        .collect()
}

#[test]
fn a_second_process_on_a_held_folder_is_refused_and_touches_nothing() {
    let scratch = Scratch::new("folder", "held");
    let config_path = scratch.join("run.toml");
    write_config(&es_config(8), &config_path);
    let out = scratch.join("out");

    // A finished run leaves its files; then this test process holds the folder, as a
    // second run in another terminal would.
    let first = finish(spawn_l2t(&config_path, &out, &[]), Duration::from_secs(300));
    assert!(first.status.success(), "{}", stderr(&first));
    let held = RunDir::create(&out).unwrap();
    let before = snapshot(&out);

    let second = finish(spawn_l2t(&config_path, &out, &[]), Duration::from_secs(60));
    assert!(!second.status.success());
    let message = stderr(&second);
    assert!(message.contains("is in use by"), "{message}");
    assert!(message.contains(&out.display().to_string()), "{message}");
    assert!(
        message.contains(&format!("pid {}", std::process::id())),
        "{message}"
    );
    assert_eq!(snapshot(&out), before, "the refused run changed the folder");

    // Within one process too: a second handle on the folder is refused.
    assert!(matches!(
        RunDir::create(&out),
        Err(ExperimentError::FolderInUse { .. })
    ));
    drop(held);
    // Released with its holder.
    let _lock = FolderLock::acquire(&out).unwrap();
}

#[test]
fn a_lock_left_by_a_killed_run_never_blocks_and_the_rerun_resumes() {
    let scratch = Scratch::new("folder", "killed");
    let episodes = 48;
    let config_path = scratch.join("run.toml");
    write_config(&es_config(episodes), &config_path);
    let out = scratch.join("out");

    let mut child = spawn_l2t(&config_path, &out, &[]);
    // Killed (SIGKILL) once it has checkpointed some episodes, and before the end.
    let start = Instant::now();
    loop {
        let logged = fs::read_dir(&out)
            .ok()
            .map(|_| out.clone())
            .filter(|o| {
                fs::read_dir(o).unwrap().any(|e| {
                    e.unwrap()
                        .file_name()
                        .to_str()
                        .is_some_and(|n| n.ends_with("-training.jsonl"))
                })
            })
            .map_or(0, |o| history_episodes(&o).len());
        if logged >= 8 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        assert!(start.elapsed() < Duration::from_secs(300), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(out.join(FolderLock::FILE).exists());
    let done_before = history_episodes(&out).len();
    assert!(done_before < episodes, "killed after the end");

    let rerun = finish(spawn_l2t(&config_path, &out, &[]), Duration::from_secs(300));
    assert!(rerun.status.success(), "{}", stderr(&rerun));
    let logged = history_episodes(&out);
    assert_eq!(logged, (0..episodes as u64).collect::<Vec<_>>());
    assert!(out.join("summary.md").exists());
}

#[test]
fn a_history_two_runs_appended_to_is_refused_with_the_way_out() {
    let scratch = Scratch::new("folder", "doubled");
    let config_path = scratch.join("run.toml");
    write_config(&es_config(8), &config_path);
    let out = scratch.join("out");
    let first = finish(spawn_l2t(&config_path, &out, &[]), Duration::from_secs(300));
    assert!(first.status.success(), "{}", stderr(&first));

    // What two runs appending to one folder left behind: every episode twice.
    let history = history_file(&out);
    let text = fs::read_to_string(&history).unwrap();
    fs::write(&history, format!("{text}{text}")).unwrap();
    let refused = finish(spawn_l2t(&config_path, &out, &[]), Duration::from_secs(60));
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(message.contains("16 lines for the 8 episodes"), "{message}");
    assert!(message.contains("repeated"), "{message}");
    // Its first 8 lines are the checkpoint's episodes: keeping them is offered.
    assert!(message.contains("head -n 8"), "{message}");
    assert!(message.contains("--fresh"), "{message}");

    // Out of order: only a fresh start is offered, and --fresh gives it.
    let lines: Vec<&str> = text.lines().collect();
    let shuffled: Vec<&str> = lines.iter().rev().copied().collect();
    fs::write(&history, shuffled.join("\n") + "\n").unwrap();
    let refused = finish(spawn_l2t(&config_path, &out, &[]), Duration::from_secs(60));
    let message = stderr(&refused);
    assert!(!refused.status.success());
    assert!(message.contains("--fresh"), "{message}");
    assert!(!message.contains("head -n"), "{message}");

    let fresh = finish(
        spawn_l2t(&config_path, &out, &["--fresh"]),
        Duration::from_secs(300),
    );
    assert!(fresh.status.success(), "{}", stderr(&fresh));
    assert!(
        stderr(&fresh).contains("--fresh: removed"),
        "{}",
        stderr(&fresh)
    );
    assert_eq!(history_episodes(&out), (0..8).collect::<Vec<_>>());
}

/// The process's peak resident memory (VmHWM), in bytes, where Linux reports it.
fn peak_rss() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[test]
fn sizes_that_cannot_fit_are_refused_before_they_allocate() {
    common::single_thread();
    let before = peak_rss();
    // A batch larger than the training split: the env is refused
    // before anything of size M exists.
    let mut preset: Preset = small_synthetic_preset(1);
    preset.teaching.batch_size = 100_000_000;
    let error = preset.build(Path::new("unused")).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(
            error,
            EnvError::InvalidConfig {
                field: "batch_size",
                ..
            }
        ),
        "{message}"
    );
    assert!(message.contains("100000000"), "{message}");
    // The teacher half of the 3,000 training instances.
    assert!(message.contains("(1500 instances)"), "{message}");

    // Data that cannot fit in memory: the estimate and the limit, no allocation.
    if l2t::envs::memory::available_bytes().is_some() {
        let huge = SyntheticConfig {
            train_size: 1 << 40,
            ..SyntheticConfig::default()
        };
        let message = huge.generate().unwrap_err().to_string();
        assert!(message.contains("train_size"), "{message}");
        assert!(message.contains("GiB"), "{message}");
        assert!(message.contains("available"), "{message}");

        let mut wide = small_synthetic_preset(1);
        wide.student = match wide.student {
            l2t::envs::StudentConfig::Mlp(mut mlp) => {
                mlp.hidden = vec![1 << 20, 1 << 20];
                l2t::envs::StudentConfig::Mlp(mlp)
            }
            other => panic!("the synthetic student is an MLP, not {other:?}"),
        };
        let message = wide.build(Path::new("unused")).unwrap_err().to_string();
        assert!(message.contains("student.hidden"), "{message}");
    }
    if let (Some(before), Some(after)) = (before, peak_rss()) {
        assert!(
            after < before + (1 << 30),
            "refusing the sizes grew the process by {} bytes",
            after - before
        );
    }

    // A dev subsample larger than the dev split (400 instances).
    let preset = small_synthetic_preset(1);
    let envs = preset.build(Path::new("unused")).unwrap();
    let dev = envs.teacher_env.dev_data();
    let message = dev_subsample(dev, 401, 0).unwrap_err().to_string();
    assert!(message.contains("training.dev_subsample"), "{message}");
    assert!(message.contains("400 instances"), "{message}");
    assert_eq!(dev_subsample(dev, 400, 0).unwrap().len(), 400);
    assert_eq!(dev_subsample(dev, 100, 0).unwrap().len(), 100);
}

#[test]
fn a_folder_holds_one_run_another_config_is_refused_and_fresh_clears_it() {
    let scratch = Scratch::new("folder", "one-run");
    let mut config = es_config(8);
    config.report.plots = true;
    let config_path = scratch.join("run.toml");
    write_config(&config, &config_path);
    let out = scratch.join("out");

    let first = finish(spawn_l2t(&config_path, &out, &[]), Duration::from_secs(300));
    assert!(first.status.success(), "{}", stderr(&first));
    // Figures of the first run (a fake where no font could draw them), a cache of the
    // irreducible-loss feature and a file that is not l2t's.
    let figure = out.join("convergence.png");
    if !figure.exists() {
        fs::write(&figure, b"figure of the first run").unwrap();
    }
    let cache = out.join("irreducible-feature-0123abcd.json");
    fs::write(&cache, b"{}").unwrap();
    let notes = out.join("notes.txt");
    fs::write(&notes, b"mine").unwrap();
    let without_lock = |dir: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        snapshot(dir)
            .into_iter()
            .filter(|(p, _)| !p.ends_with(FolderLock::FILE))
            .collect()
    };
    let before = without_lock(&out);

    // Another config (3 seeds, no plots): refused, naming the folder, the difference and
    // the ways out, and nothing changes.
    let refused = finish(
        spawn_l2t(&config_path, &out, &["--seeds", "3", "--no-plots"]),
        Duration::from_secs(60),
    );
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(message.contains(&out.display().to_string()), "{message}");
    assert!(message.contains("another run"), "{message}");
    assert!(
        message.contains("preset.eval_seeds (was 2, now 3)"),
        "{message}"
    );
    assert!(message.contains("--fresh"), "{message}");
    assert!(message.contains("--out"), "{message}");
    assert_eq!(
        without_lock(&out),
        before,
        "the refused run changed the folder"
    );

    // With --fresh: the earlier run's files are gone, the cache and foreign file stay.
    let fresh = finish(
        spawn_l2t(
            &config_path,
            &out,
            &["--seeds", "3", "--no-plots", "--fresh"],
        ),
        Duration::from_secs(300),
    );
    assert!(fresh.status.success(), "{}", stderr(&fresh));
    let message = stderr(&fresh);
    assert!(message.contains("--fresh: removed"), "{message}");
    assert!(message.contains("convergence.png"), "{message}");
    let files = file_names(&out);
    assert!(
        !files
            .iter()
            .any(|n| n.ends_with(".png") || n.ends_with(".svg")),
        "figures of the earlier run left beside the new summary: {files:?}"
    );
    assert!(cache.exists() && notes.exists(), "{files:?}");
    let summary = fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(summary.contains("3 seeds each"), "{summary}");
    let events = fs::read_to_string(out.join("events.jsonl")).unwrap();
    let evaluations = events.matches("\"event\":\"evaluation\"").count();
    assert_eq!(evaluations, 2 * 3, "{events}");
    // Trained afresh: the ES history has exactly its 8 episodes.
    assert_eq!(history_episodes(&out), (0..8).collect::<Vec<_>>());

    // The same config again (other workers: no number depends on them) is a rerun: it
    // is allowed, resumes from the checkpoint, and leaves the same kind of folder.
    let checkpoint_before = snapshot(&out)
        .into_iter()
        .find(|(p, _)| p.extension().is_some_and(|e| e == "ckpt"))
        .expect("an ES checkpoint");
    let rerun = finish(
        spawn_l2t(
            &config_path,
            &out,
            &["--seeds", "3", "--no-plots", "--workers", "2"],
        ),
        Duration::from_secs(300),
    );
    assert!(rerun.status.success(), "{}", stderr(&rerun));
    assert!(!stderr(&rerun).contains("removed"), "{}", stderr(&rerun));
    // Every evaluation is reused from events.jsonl, and the command says so.
    assert!(
        stderr(&rerun).contains("resumed: 6 of 6 evaluations from events.jsonl (no_teach, es)"),
        "{}",
        stderr(&rerun)
    );
    assert_eq!(
        fs::read_to_string(out.join("events.jsonl"))
            .unwrap()
            .matches("\"event\":\"evaluation\"")
            .count(),
        2 * 3
    );
    assert_eq!(fs::read(&checkpoint_before.0).unwrap(), checkpoint_before.1);
    assert_eq!(file_names(&out), files);
    assert_eq!(history_episodes(&out), (0..8).collect::<Vec<_>>());
}

/// Issue 36, item 2: NoTeach, online batch, ES trained for `episodes` episodes, a
/// RandTeach matched to online batch's drop ratios, on 3 seeds, one worker.
fn resumable_config(episodes: usize) -> RunConfig {
    let mut config = es_config(episodes);
    config.preset.eval_seeds = 3;
    config.teachers.insert(
        1,
        TeacherEntry::new(
            labels::ONLINE_BATCH,
            TeacherConfig::OnlineBatch(Default::default()),
        ),
    );
    let mut matched =
        TeacherEntry::new("rand_matched", TeacherConfig::RandTeach(Default::default()));
    matched.match_drop_ratio_of = Some(labels::ONLINE_BATCH.into());
    config.teachers.push(matched);
    config
}

/// A teacher of your own (a RandTeach under another label): never reused.
fn mine() -> Vec<UserTeacher> {
    let teacher = RandTeach::new(RandTeachConfig {
        drop_ratio: 0.3,
        seed: 7,
        ..Default::default()
    })
    .unwrap();
    vec![UserTeacher::new("mine", teacher)]
}

/// What one run into `out` did: its result, the evaluations it ran, the ones it reused.
struct Outcome {
    result: Result<Report, ExperimentError>,
    evaluated: usize,
    resumed: Option<(usize, usize, Vec<String>)>,
}

/// Runs `config` (with [`mine`]) into `out`, cancelled once `cancel_after` evaluations
/// finished (never when `None`).
fn run_into(config: &RunConfig, out: &Path, cancel_after: Option<usize>) -> Outcome {
    let mut dir = RunDir::create(out).unwrap();
    let cancel = dir.canceller();
    let (mut evaluated, mut resumed) = (0, None);
    let result = run_with(config, mine(), Path::new("unused"), &mut dir, |p| match p {
        Progress::Evaluated(_) => {
            evaluated += 1;
            if cancel_after == Some(evaluated) {
                cancel.cancel();
            }
        }
        Progress::Resumed {
            reused,
            total,
            teachers,
        } => resumed = Some((reused, total, teachers.to_vec())),
        _ => {}
    });
    Outcome {
        result,
        evaluated,
        resumed,
    }
}

/// The evaluation lines of `out`'s events.jsonl as (teacher, seed), checking that each
/// is there once.
fn logged_evaluations(out: &Path) -> Vec<(String, u64)> {
    let text = fs::read_to_string(out.join("events.jsonl")).unwrap();
    let mut found: Vec<(String, u64)> = text
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|event| event["event"] == "evaluation")
        .map(|event| {
            (
                event["teacher"].as_str().unwrap().to_string(),
                event["seed"].as_u64().unwrap(),
            )
        })
        .collect();
    let count = found.len();
    found.sort();
    found.dedup();
    assert_eq!(found.len(), count, "an evaluation logged twice: {text}");
    found
}

/// The config teachers with every one of `seeds` evaluations in `out`'s log.
fn finished_teachers(out: &Path, config: &RunConfig) -> Vec<String> {
    let logged = logged_evaluations(out);
    let seeds = config.preset.eval_seeds;
    (config.teachers.iter())
        .map(|e| e.label.clone())
        .filter(|label| logged.iter().filter(|(t, _)| t == label).count() == seeds)
        .collect()
}

fn json_without_timing(path: &Path) -> serde_json::Value {
    common::without_timing(
        serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap(),
        &[],
    )
}

fn events_without_timing(out: &Path) -> Vec<serde_json::Value> {
    (fs::read_to_string(out.join("events.jsonl"))
        .unwrap()
        .lines())
    .map(|line| common::without_timing(serde_json::from_str(line).unwrap(), &[]))
    .collect()
}

/// A rerun into `b` equals the uninterrupted run into `a`: report.json, events.jsonl,
/// curves.csv and training.csv, timing fields aside.
fn assert_same_results(a: &Path, b: &Path) {
    assert_eq!(
        json_without_timing(&a.join("report.json")),
        json_without_timing(&b.join("report.json")),
        "report.json"
    );
    assert_eq!(
        events_without_timing(a),
        events_without_timing(b),
        "events.jsonl"
    );
    for csv in ["curves.csv", "training.csv"] {
        assert_eq!(
            common::csv_without_seconds(&a.join(csv)),
            common::csv_without_seconds(&b.join(csv)),
            "{csv}"
        );
    }
}

#[test]
fn an_interrupted_run_resumes_only_what_is_missing_and_equals_an_uninterrupted_one() {
    let scratch = Scratch::new("folder", "resume");
    let config = resumable_config(4);
    let seeds = config.preset.eval_seeds;
    let total = (config.teachers.len() + 1) * seeds;
    let (a, b) = (scratch.join("a"), scratch.join("b"));

    let full = run_into(&config, &a, None);
    full.result.unwrap();
    assert_eq!((full.evaluated, full.resumed), (total, None));

    // Interrupted after NoTeach's seeds and one more: online batch (in flight) and the
    // rest are missing.
    let first = run_into(&config, &b, Some(seeds + 1));
    assert!(
        matches!(first.result, Err(ExperimentError::Interrupted)),
        "{:?}",
        first.result.err()
    );
    let finished = finished_teachers(&b, &config);
    assert!(
        finished.contains(&labels::NO_TEACH.to_string()),
        "{finished:?}"
    );
    assert!(finished.len() < config.teachers.len(), "{finished:?}");

    // Rerun, interrupted again once the unmatched teachers are in and the matched one
    // has started: the unmatched ones are reused on the next rerun, the matched one is
    // evaluated again from its first seed (its seeds share its random stream).
    let before = finished.len();
    let rerun_evaluations = (config.teachers.len() - 1 - before + 1) * seeds;
    let second = run_into(&config, &b, Some(rerun_evaluations + 1));
    assert!(
        matches!(second.result, Err(ExperimentError::Interrupted)),
        "{:?}, {} evaluated, {:?}, finished before: {finished:?}",
        second.result.as_ref().err(),
        second.evaluated,
        second.resumed
    );
    let (reused, of, teachers) = second.resumed.expect("a resumed run says so");
    assert_eq!((reused, of, &teachers), (before * seeds, total, &finished));
    let finished = finished_teachers(&b, &config);
    assert!(
        finished.len() == config.teachers.len() - 1
            && !finished.contains(&"rand_matched".to_string()),
        "{finished:?}"
    );

    // Rerun to the end: only the matched teacher and the user's teacher run.
    let third = run_into(&config, &b, None);
    third.result.unwrap();
    let (reused, _, teachers) = third.resumed.unwrap();
    assert_eq!(teachers, finished);
    assert_eq!(reused, finished.len() * seeds);
    assert_eq!(third.evaluated, total - reused);
    assert_eq!(third.evaluated, 2 * seeds);
    assert_same_results(&a, &b);

    // Once more: every config teacher is reused (the matched one too, its source being
    // reused), the user's teacher runs again, and the results stay the same.
    let fourth = run_into(&config, &b, None);
    fourth.result.unwrap();
    let (reused, _, teachers) = fourth.resumed.unwrap();
    assert_eq!(teachers.len(), config.teachers.len());
    assert_eq!((reused, fourth.evaluated), (total - seeds, seeds));
    assert_same_results(&a, &b);
}

#[test]
fn a_changed_teacher_or_a_damaged_log_is_never_reused() {
    let scratch = Scratch::new("folder", "not-reused");
    let config = resumable_config(4);
    let seeds = config.preset.eval_seeds;
    let out = scratch.join("out");
    run_into(&config, &out, None).result.unwrap();

    // Another teacher setting is another config: refused, nothing reused.
    let mut changed = config.clone();
    changed.teachers[1].teacher = TeacherConfig::OnlineBatch(l2t::agents::OnlineBatchConfig {
        seed: 1,
        ..Default::default()
    });
    let refused = run_into(&changed, &out, None);
    assert!(
        matches!(
            refused.result,
            Err(ExperimentError::FolderHoldsOtherRun { .. })
        ),
        "{:?}",
        refused.result.err()
    );

    // Lines of another identity (as a teacher trained further, or of another run, would
    // have) are evaluated again, and replaced.
    let events = out.join("events.jsonl");
    let text = fs::read_to_string(&events).unwrap();
    let edited: Vec<String> = (text.lines())
        .map(|line| {
            let mut event: serde_json::Value = serde_json::from_str(line).unwrap();
            if event["teacher"] == labels::ES {
                event["identity"] = "0000000000000000".into();
            }
            event.to_string()
        })
        .collect();
    fs::write(&events, edited.join("\n") + "\n").unwrap();
    let rerun = run_into(&config, &out, None);
    rerun.result.unwrap();
    let (_, _, teachers) = rerun.resumed.unwrap();
    assert!(!teachers.contains(&labels::ES.to_string()), "{teachers:?}");
    // ES, and the user's teacher.
    assert_eq!(rerun.evaluated, 2 * seeds);
    assert!(!fs::read_to_string(&events)
        .unwrap()
        .contains("0000000000000000"));

    // A damaged line (not the last) is an error naming the file, the line and the way out.
    let text = fs::read_to_string(&events).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[1] = "{\"event\": \"evaluation\", \"teach";
    fs::write(&events, lines.join("\n") + "\n").unwrap();
    let before = snapshot(&out);
    let damaged = run_into(&config, &out, None);
    let message = damaged.result.unwrap_err().to_string();
    // Refused before anything changed (the lock file aside).
    let unchanged = |files: Vec<(PathBuf, Vec<u8>)>| -> Vec<(PathBuf, Vec<u8>)> {
        (files.into_iter())
            .filter(|(p, _)| !p.ends_with(FolderLock::FILE))
            .collect()
    };
    assert_eq!(unchanged(snapshot(&out)), unchanged(before));
    assert!(
        message.contains("events.jsonl")
            && message.contains("line 2")
            && message.contains("--fresh"),
        "{message}"
    );
}

/// ES trains whole generations (2 pairs: 4 episodes), so a run asked for 2 episodes
/// holds 4; rerunning it reads that checkpoint back instead of refusing it, while a run
/// asked for fewer than its last update began with is still refused.
#[test]
fn a_checkpoint_past_the_asked_episodes_by_its_last_update_is_read_back() {
    let scratch = Scratch::new("folder", "whole-updates");
    let out = scratch.join("run");
    let run = |config: &RunConfig| {
        let mut dir = RunDir::create(&out).unwrap();
        run_with(config, Vec::new(), Path::new("unused"), &mut dir, |_| {})
    };
    let two = es_config(2);
    let first = run(&two).unwrap();
    assert_eq!(
        first.training[0].episodes.len(),
        4,
        "one generation of 2 pairs"
    );
    let again = run(&two).unwrap();
    let seeds =
        |r: &Report| -> Vec<u64> { r.training[0].episodes.iter().map(|e| e.seed).collect() };
    assert_eq!(seeds(&again), seeds(&first), "read back, not trained again");
    // Eight episodes: a second generation, then asking for 2 again is refused (its
    // last update began at episode 4).
    run(&es_config(8)).unwrap();
    let error = run(&two).unwrap_err().to_string();
    assert!(
        error.contains("2 asked") && error.contains("holds 8"),
        "{error}"
    );
}

/// An ES that starts from another checkpoint's score (`score_from`) trains under an
/// identity that holds that file's bytes: a changed file trains afresh instead of
/// resuming a checkpoint made from the old one.
#[test]
fn the_training_identity_of_a_score_from_es_holds_the_files_bytes() {
    let scratch = Scratch::new("run-folder", "score-from");
    let out = RunDir::create(&scratch.join("run")).unwrap();
    let score = scratch.join("score.ckpt");
    let mut config = es_config(4);
    let entry = TeacherEntry::new(
        "es_share",
        TeacherConfig::Es(EsConfig {
            learned_share: Some(0.3),
            frozen_score: true,
            score_from: Some(score.clone()),
            ..Default::default()
        }),
    )
    .trained();
    config.teachers.push(entry.clone());
    let checkpoint = || {
        l2t::experiment::training_files(&out, &config, &entry)
            .unwrap()
            .checkpoint
    };
    fs::write(&score, b"one").unwrap();
    let first = checkpoint();
    assert_eq!(checkpoint(), first);
    fs::write(&score, b"two").unwrap();
    assert_ne!(checkpoint(), first);
}
