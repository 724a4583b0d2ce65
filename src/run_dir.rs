//! The folder a run writes: every file is written whole through a temporary name and
//! a rename (an interrupted run never leaves a truncated result), except the event
//! log, which is appended and flushed one JSON line at a time (an interrupted run
//! keeps every event it logged), and rewritten whole (atomically too) only by a rerun
//! that resumes from it ([`RunDir::rewrite_events`]).
//!
//! | file | content |
//! |------|---------|
//! | `manifest.json` | resolved config, seeds, versions, git commit, machine |
//! | `config.toml` | the resolved config, to rerun with `l2t run --config` |
//! | `events.jsonl` | one event per teacher-training or evaluation episode; a rerun of the same config reuses its evaluations ([`RunDir::take_resumable`]) |
//! | `<teacher>-<hash>.ckpt`, `<teacher>-<hash>-training.jsonl` | teacher checkpoint and its finished training episodes (resume) |
//! | `curves.csv`, `training.csv`, `loss_rank_drops.csv`, `training_drops.csv` | learning curves, teacher-training curves, drops by loss rank in evaluation, and by loss rank and margin per teacher update in training |
//! | `summary.md`, `report.json` | the tables and everything behind them |
//! | `*.svg`, `*.png` | the plots |
//! | `l2t.lock` | who holds the folder (see [`FolderLock`]) |
//!
//! **One process at a time.** [`RunDir::create`] takes an exclusive advisory lock on
//! `l2t.lock` before it touches anything else, and holds it until the [`RunDir`] is
//! dropped. A second process on the same folder gets
//! [`ExperimentError::FolderInUse`], naming the holder (pid, host, command, start
//! time), and changes nothing. The lock is the kernel's (`flock`), so it goes with the
//! process that holds it, however that process ends: a lock left by a killed run
//! never blocks the rerun that resumes it.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};

use l2t_envs::io::write_atomic;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::experiment::{EvaluationRecord, Event, ExperimentError, Result};

fn io_error(path: &Path, source: std::io::Error) -> ExperimentError {
    ExperimentError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An append-only JSON-lines file, flushed after every line.
#[derive(Debug)]
pub struct JsonLines {
    path: PathBuf,
    file: File,
}

impl JsonLines {
    /// Opens `path` for appending (created if absent); `truncate` starts it empty.
    pub fn open(path: &Path, truncate: bool) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(!truncate)
            .write(true)
            .truncate(truncate)
            .open(path)
            .map_err(|e| io_error(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends `value` as one line and flushes it.
    pub fn append(&mut self, value: &impl Serialize) -> Result<()> {
        let mut line = serde_json::to_vec(value).map_err(|e| ExperimentError::Json {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.flush())
            .map_err(|e| io_error(&self.path, e))
    }

    /// Reads every line of `path` as a `T`. A last line cut short by an interruption
    /// is ignored; any other unreadable line is an error naming the file and line.
    pub fn read<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
        let file = File::open(path).map_err(|e| io_error(path, e))?;
        let lines: Vec<String> = BufReader::new(file)
            .lines()
            .collect::<std::io::Result<_>>()
            .map_err(|e| io_error(path, e))?;
        let mut values = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(line) {
                Ok(value) => values.push(value),
                Err(_) if i + 1 == lines.len() => break,
                Err(e) => {
                    return Err(ExperimentError::Json {
                        path: path.to_path_buf(),
                        reason: format!("line {}: {e}", i + 1),
                    })
                }
            }
        }
        Ok(values)
    }
}

/// What the run was, where and with what: written before any work starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The `l2t` command line.
    pub command: Vec<String>,
    /// The resolved config.
    pub config: crate::config::RunConfig,
    /// Environment seeds of the evaluation episodes.
    pub evaluation_seeds: Vec<u64>,
    /// Environment seed of the first teacher-training episode (episode k: +k).
    pub first_training_seed: u64,
    /// Versions of the crates and of libtorch.
    pub versions: Versions,
    /// `git rev-parse HEAD` of the working tree, with `-dirty` when it has changes.
    pub git_commit: Option<String>,
    /// The machine: CPU model, cores, OS.
    pub machine: Machine,
    /// libtorch intra-op threads.
    pub threads: i32,
    /// The floating-point code paths the run used (`native` in manifests written before
    /// the field): results match across machines only in `portable`.
    #[serde(default)]
    pub numerics: crate::envs::Numerics,
    /// Seconds since the Unix epoch when the run started (a timing field).
    pub started_unix_seconds: u64,
    /// The teachers of your own that ran beside the config's, with the columns they
    /// declared (none for a run of the config alone).
    #[serde(default)]
    pub user_teachers: Vec<crate::experiment::UserTeacherRecord>,
}

/// Versions that decide the numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versions {
    /// This crate (and its workspace: l2t-envs, l2t-agents).
    pub l2t: String,
    /// The tch crate.
    pub tch: String,
    /// libtorch the binary was built against (its `build-version`, read at build time).
    pub libtorch: Option<String>,
    /// rustc that built the binary.
    pub rustc: String,
}

/// The machine a run came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model name.
    pub cpu: Option<String>,
    /// Logical cores available.
    pub cores: usize,
    /// `std::env::consts::OS` / `ARCH`.
    pub os: String,
}

impl Manifest {
    /// The manifest of a run of `config` started now.
    pub fn new(
        config: &crate::config::RunConfig,
        evaluation_seeds: Vec<u64>,
        first_training_seed: u64,
    ) -> Self {
        Self {
            command: std::env::args().collect(),
            config: config.clone(),
            evaluation_seeds,
            first_training_seed,
            versions: Versions {
                l2t: env!("CARGO_PKG_VERSION").to_string(),
                tch: env!("L2T_TCH_VERSION").to_string(),
                libtorch: libtorch_version(),
                rustc: env!("L2T_RUSTC_VERSION").to_string(),
            },
            git_commit: git_commit(),
            machine: Machine {
                cpu: cpu_model(),
                cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
                os: format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
            },
            threads: tch::get_num_threads(),
            numerics: crate::envs::Numerics::in_effect(),
            started_unix_seconds: unix_seconds(),
            user_teachers: Vec::new(),
        }
    }
}

fn libtorch_version() -> Option<String> {
    Some(env!("L2T_LIBTORCH_VERSION"))
        .filter(|v| *v != "unknown")
        .map(str::to_string)
}

fn git_commit() -> Option<String> {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = run(&["rev-parse", "HEAD"])?;
    let dirty =
        run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    })
}

/// The CPU's model name (`/proc/cpuinfo`), where the system gives one.
pub(crate) fn cpu_model() -> Option<String> {
    let info = fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|m| m.trim().to_string())
}

/// Who holds a run folder: written into its `l2t.lock` by the holder, read by a
/// process that finds the folder taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// The holder's process id.
    pub pid: u32,
    /// The machine it runs on.
    pub host: String,
    /// Its command line.
    pub command: Vec<String>,
    /// Seconds since the Unix epoch when it took the folder.
    pub started_unix_seconds: u64,
}

impl LockHolder {
    fn this_process() -> Self {
        Self {
            pid: std::process::id(),
            host: host_name(),
            command: std::env::args().collect(),
            started_unix_seconds: unix_seconds(),
        }
    }
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ago = unix_seconds().saturating_sub(self.started_unix_seconds);
        write!(
            f,
            "pid {} on {}, started {ago} s ago: `{}`",
            self.pid,
            self.host,
            self.command.join(" ")
        )
    }
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "an unknown host".into())
}

/// An exclusive advisory lock on a run folder (its file `l2t.lock`), held while the
/// value lives. The kernel releases it when the holding process exits or dies, so a
/// stale lock file never blocks; the file itself stays, holding the last holder.
#[derive(Debug)]
pub struct FolderLock {
    path: PathBuf,
    _file: File,
}

impl FolderLock {
    /// The lock file's name inside a run folder.
    pub const FILE: &'static str = "l2t.lock";

    /// Takes the lock of `folder` (which must exist) without waiting: another live
    /// holder gives [`ExperimentError::FolderInUse`] with what it wrote of itself.
    pub fn acquire(folder: &Path) -> Result<Self> {
        let path = folder.join(Self::FILE);
        // Not truncated on open: a process that finds the folder taken must still be
        // able to read who holds it.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path)
                    .ok()
                    .and_then(|text| serde_json::from_str::<LockHolder>(&text).ok())
                    .map_or_else(
                        || "another process (it has not written its name yet)".to_string(),
                        |h| h.to_string(),
                    );
                return Err(ExperimentError::FolderInUse {
                    path: folder.to_path_buf(),
                    holder,
                });
            }
            Err(fs4::TryLockError::Error(e)) => return Err(io_error(&path, e)),
        }
        let mut text =
            serde_json::to_vec(&LockHolder::this_process()).map_err(|e| ExperimentError::Json {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        text.push(b'\n');
        use std::io::Seek as _;
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(&text))
            .and_then(|()| file.flush())
            .map_err(|e| io_error(&path, e))?;
        Ok(Self { path, _file: file })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The files a run derives from its evaluations and training histories: written anew
/// by every run, so removed when a run starts in the folder (a rerun of the same config
/// too), and nothing of an earlier run is left beside a new `summary.md` (a run without
/// plots, or one that cannot draw them for want of a font, leaves no stale figure).
pub const RESULT_FILES: &[&str] = &[
    "summary.md",
    "report.json",
    "curves.csv",
    "training.csv",
    "loss_rank_drops.csv",
    "training_drops.csv",
    "convergence.svg",
    "convergence.png",
    "convergence_compute.svg",
    "convergence_compute.png",
    "filtered_data.svg",
    "filtered_data.png",
    "teacher_training.svg",
    "teacher_training.png",
    "training_drops.svg",
    "training_drops.png",
];

/// The files that record a run itself: its manifest, config and event log. Removed
/// (with the checkpoints and training histories) when `--fresh` clears another run.
pub const RECORD_FILES: &[&str] = &["manifest.json", "config.toml", "events.jsonl"];

/// Whether `name` is a learned teacher's checkpoint or training history (`*.ckpt`,
/// `*-training.jsonl`): the state a rerun of the same config resumes from.
fn is_training_state(name: &str) -> bool {
    name.ends_with(".ckpt") || name.ends_with("-training.jsonl")
}

/// What a run folder's identity is made of: the resolved config with the settings that
/// change no number left out (`training.workers`, `checkpoint_every`, `report.plots`)
/// and the teacher-training episode counts (more episodes resume the same checkpoints),
/// as TOML, and the labels and columns of the user's teachers (their code is not part
/// of it: a Python teacher edited under the same label is the same identity).
pub fn run_identity(
    config: &crate::config::RunConfig,
    user_teachers: &[crate::experiment::UserTeacherRecord],
) -> Result<String> {
    let mut config = config.clone();
    config.training.workers = 0;
    config.checkpoint_every = 0;
    config.report.plots = true;
    // Teacher-training episode counts: asking for more resumes the learned teachers
    // from their checkpoints (whose evaluations are keyed by the episodes trained).
    config.preset.episodes = 0;
    if let Some(train_on) = &mut config.train_on {
        train_on.episodes = 0;
    }
    for entry in &mut config.teachers {
        entry.episodes = None;
    }
    let mut text = config.to_toml()?;
    for mine in user_teachers {
        text.push_str(&format!("\n# user teacher: {}\n", mine.describe()));
    }
    Ok(text)
}

/// Up to four settings in which two identities ([`run_identity`]) differ, as
/// `key (was, now)`; the user teachers' lines as a whole when only they differ.
fn identity_differences(before: &str, now: &str) -> String {
    fn flatten(prefix: &str, value: &toml::Value, into: &mut Vec<(String, String)>) {
        match value {
            toml::Value::Table(table) => {
                for (key, value) in table {
                    let key = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    flatten(&key, value, into);
                }
            }
            other => into.push((prefix.to_string(), other.to_string())),
        }
    }
    let table = |text: &str| {
        let mut pairs = Vec::new();
        if let Ok(value) = text.parse::<toml::Table>() {
            flatten("", &toml::Value::Table(value), &mut pairs);
        }
        pairs
    };
    let (before_pairs, now_pairs) = (table(before), table(now));
    let find = |pairs: &[(String, String)], key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map_or_else(|| "absent".to_string(), |(_, v)| v.clone())
    };
    let mut keys: Vec<&String> = before_pairs
        .iter()
        .chain(&now_pairs)
        .map(|(k, _)| k)
        .collect();
    keys.sort();
    keys.dedup();
    let differing: Vec<String> = keys
        .into_iter()
        .filter_map(|key| {
            let (was, is) = (find(&before_pairs, key), find(&now_pairs, key));
            (was != is).then(|| format!("{key} (was {was}, now {is})"))
        })
        .collect();
    match differing.len() {
        0 => "the teachers of your own differ".to_string(),
        n if n > 4 => format!("{} and {} more", differing[..4].join(", "), n - 4),
        _ => differing.join(", "),
    }
}

/// The output folder of a run, held exclusively by this process (see [`FolderLock`]).
///
/// **One run per folder.** A run [claims](RunDir::claim) the folder for its identity
/// ([`run_identity`]: the resolved config) before it writes anything. A folder whose
/// `manifest.json` records another identity is refused
/// ([`ExperimentError::FolderHoldsOtherRun`]) unless the folder was opened
/// [fresh](RunDir::set_fresh), which removes everything the earlier run wrote: its
/// [results](RESULT_FILES), [records](RECORD_FILES), checkpoints and training
/// histories. A rerun of the same identity is allowed: it removes the earlier results
/// only, and resumes from the checkpoints and from the evaluations of `events.jsonl`
/// ([`RunDir::take_resumable`]; the run reuses a teacher's evaluations when their
/// identity, [`crate::experiment::evaluation_identity`], is the one it computes). The
/// irreducible-loss caches
/// (`rho-irreducible-<hash>.json`, `irreducible-feature-<hash>.json`) always stay:
/// each is named after the hash of everything it was computed from, so a run reads only
/// one that is valid for it, and an unused one changes nothing it reports. Files that
/// are not l2t's are never touched.
#[derive(Debug)]
pub struct RunDir {
    root: PathBuf,
    events: Option<JsonLines>,
    fresh: bool,
    claimed: Option<String>,
    resumable: Vec<(String, EvaluationRecord)>,
    cancel: crate::experiment::Cancel,
    _lock: FolderLock,
}

impl RunDir {
    /// Creates `root` (and parents) and takes its lock. A folder held by another live
    /// process is refused with [`ExperimentError::FolderInUse`] before any of its files
    /// is touched; nothing else is touched until a run [claims](RunDir::claim) it.
    pub fn create(root: &Path) -> Result<Self> {
        fs::create_dir_all(root).map_err(|e| io_error(root, e))?;
        let lock = FolderLock::acquire(root)?;
        Ok(Self {
            root: root.to_path_buf(),
            events: None,
            fresh: false,
            claimed: None,
            resumable: Vec::new(),
            cancel: crate::experiment::Cancel::default(),
            _lock: lock,
        })
    }

    /// `--fresh` (Python's `fresh=True`): the run that claims the folder removes
    /// everything an earlier run wrote into it, whatever that run's config, and trains
    /// every learned teacher from scratch.
    pub fn set_fresh(&mut self, fresh: bool) {
        self.fresh = fresh;
    }

    /// The cancellation of the run in this folder (a handle: [`Cancel::cancel`] on it,
    /// from any thread, stops the run).
    ///
    /// [`Cancel::cancel`]: crate::experiment::Cancel::cancel
    pub fn canceller(&self) -> crate::experiment::Cancel {
        self.cancel.clone()
    }

    /// Shares `cancel` with the run in this folder (e.g. one process-wide cancellation
    /// that a signal handler raises).
    pub fn set_cancel(&mut self, cancel: crate::experiment::Cancel) {
        self.cancel = cancel;
    }

    /// Claims the folder for a run of `config` beside `user_teachers` (the run calls it
    /// before it writes anything; a second claim for the same identity does nothing):
    /// refuses a folder holding another config's run unless fresh, removes what must
    /// not stay beside the new results (see [`RunDir`]), and starts the event log: for a
    /// rerun of the same config (not fresh), with the finished evaluations of the earlier
    /// log only (rewritten atomically, each once; the training lines go, as the run logs
    /// them again from its checkpoints' histories), which [`RunDir::take_resumable`] then
    /// hands to the run; otherwise empty. An unreadable line of that log (but a last one
    /// cut short, an evaluation that did not finish) is an error naming the file and line.
    /// Returns the files removed because the folder was fresh (the results of a rerun
    /// of the same config go silently).
    pub fn claim(
        &mut self,
        config: &crate::config::RunConfig,
        user_teachers: &[crate::experiment::UserTeacherRecord],
    ) -> Result<Vec<PathBuf>> {
        let identity = run_identity(config, user_teachers)?;
        if let Some(claimed) = &self.claimed {
            if *claimed == identity {
                return Ok(Vec::new());
            }
            return Err(ExperimentError::FolderHoldsOtherRun {
                path: self.root.clone(),
                reason: format!(
                    "this process already ran another config into it: {}",
                    identity_differences(claimed, &identity)
                ),
            });
        }
        let manifest = self.path("manifest.json");
        let previous: Option<std::result::Result<String, String>> = if manifest.exists() {
            Some(
                fs::read_to_string(&manifest)
                    .map_err(|e| e.to_string())
                    .and_then(|text| {
                        serde_json::from_str::<Manifest>(&text).map_err(|e| e.to_string())
                    })
                    .and_then(|m| {
                        run_identity(&m.config, &m.user_teachers).map_err(|e| e.to_string())
                    }),
            )
        } else {
            None
        };
        let mut resuming = false;
        let removed = match (&previous, self.fresh) {
            (_, true) => self.remove(|name| {
                RESULT_FILES.contains(&name)
                    || RECORD_FILES.contains(&name)
                    || is_training_state(name)
            })?,
            (None, false) => {
                self.remove(|name| RESULT_FILES.contains(&name))?;
                Vec::new()
            }
            (Some(Ok(before)), false) if *before == identity => {
                // Read first: a log that cannot be resumed from changes nothing.
                self.resumable = self.read_resumable()?;
                self.remove(|name| RESULT_FILES.contains(&name))?;
                resuming = true;
                Vec::new()
            }
            (Some(Ok(before)), false) => {
                return Err(ExperimentError::FolderHoldsOtherRun {
                    path: self.root.clone(),
                    reason: format!(
                        "its manifest.json records another config: {}",
                        identity_differences(before, &identity)
                    ),
                })
            }
            (Some(Err(reason)), false) => {
                return Err(ExperimentError::FolderHoldsOtherRun {
                    path: self.root.clone(),
                    reason: format!("its manifest.json cannot be read ({reason})"),
                })
            }
        };
        if resuming {
            // The finished evaluations stay on disk, each once; the training lines go
            // (this run logs them again from the checkpoints' histories).
            let kept: Vec<Event> = (self.resumable.iter())
                .map(|(identity, record)| Event::Evaluation {
                    record: record.clone(),
                    identity: Some(identity.clone()),
                })
                .collect();
            self.write_events(&kept)?;
        } else {
            self.resumable.clear();
            self.events = Some(JsonLines::open(&self.root.join("events.jsonl"), true)?);
        }
        self.claimed = Some(identity);
        Ok(removed)
    }

    /// The evaluations of the folder's `events.jsonl` that a rerun of the same config may
    /// reuse: those with an identity ([`crate::experiment::evaluation_identity`]), each
    /// `(identity, teacher, seed)` once (the last line of it). A last line cut short by an
    /// interruption is an evaluation that did not finish; any other unreadable line is an
    /// error naming the file and line, and the ways out.
    fn read_resumable(&self) -> Result<Vec<(String, EvaluationRecord)>> {
        let path = self.path("events.jsonl");
        if !path.exists() {
            return Ok(Vec::new());
        }
        let events = JsonLines::read::<Event>(&path).map_err(|error| match error {
            ExperimentError::Json { path, reason } => ExperimentError::Json {
                path,
                reason: format!(
                    "{reason}; a rerun into this folder reuses the finished evaluations of this \
                     file: repair or delete that line, or pass --fresh (Python: fresh=True) to \
                     start the run afresh"
                ),
            },
            other => other,
        })?;
        let mut kept: Vec<(String, EvaluationRecord)> = Vec::new();
        let mut at: std::collections::HashMap<(String, String, u64), usize> =
            std::collections::HashMap::new();
        for event in events {
            let Event::Evaluation {
                record,
                identity: Some(identity),
            } = event
            else {
                continue;
            };
            let key = (identity.clone(), record.teacher.clone(), record.seed);
            match at.get(&key) {
                Some(&i) => kept[i] = (identity, record),
                None => {
                    at.insert(key, kept.len());
                    kept.push((identity, record));
                }
            }
        }
        Ok(kept)
    }

    /// Takes the evaluations that the [claim](RunDir::claim) found in the folder's
    /// `events.jsonl` for a rerun of the same config to reuse, as `(identity, record)`
    /// (none after a fresh claim, or for a folder of no earlier run).
    pub fn take_resumable(&mut self) -> Vec<(String, EvaluationRecord)> {
        std::mem::take(&mut self.resumable)
    }

    /// Rewrites `events.jsonl` as `edit` makes its events, atomically (through a
    /// temporary file and a rename: the file holds the old events or the new, never a
    /// part), then appends to the new file.
    pub fn rewrite_events(&mut self, edit: impl FnOnce(Vec<Event>) -> Vec<Event>) -> Result<()> {
        let path = self.path("events.jsonl");
        let events = if path.exists() {
            JsonLines::read::<Event>(&path)?
        } else {
            Vec::new()
        };
        self.write_events(&edit(events))
    }

    /// Writes `events` as the whole of `events.jsonl`, atomically, and appends to it.
    fn write_events(&mut self, events: &[Event]) -> Result<()> {
        let path = self.path("events.jsonl");
        let mut bytes = Vec::new();
        for event in events {
            serde_json::to_writer(&mut bytes, event).map_err(|e| ExperimentError::Json {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            bytes.push(b'\n');
        }
        // The handle on the file being replaced is closed first.
        self.events = None;
        write_atomic(&path, &bytes).map_err(|e| io_error(&path, e))?;
        self.events = Some(JsonLines::open(&path, false)?);
        Ok(())
    }

    /// Removes the files of the folder (not its subfolders) whose names pass `which`,
    /// with what `write_atomic` left of them half-written (`<name>.part`); returns them.
    fn remove(&self, which: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        let entries = fs::read_dir(&self.root).map_err(|e| io_error(&self.root, e))?;
        for entry in entries {
            let path = entry.map_err(|e| io_error(&self.root, e))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let whole = name.strip_suffix(".part").unwrap_or(name);
            if path.is_file() && name != FolderLock::FILE && which(whole) {
                fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
                removed.push(path);
            }
        }
        removed.sort();
        Ok(removed)
    }

    /// Deletes the learned teachers' checkpoints and training histories of the folder
    /// (`*.ckpt`, `*-training.jsonl`), so that every learned teacher trains afresh.
    /// Returns the files removed. ([`RunDir::set_fresh`] does this and more when the
    /// run claims the folder.)
    pub fn clear_training_state(&self) -> Result<Vec<PathBuf>> {
        self.remove(is_training_state)
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of `name` inside the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Appends one event to `events.jsonl` (started empty by the first event when the
    /// folder was not [claimed](RunDir::claim)).
    pub fn event(&mut self, event: &impl Serialize) -> Result<()> {
        if self.events.is_none() {
            self.events = Some(JsonLines::open(&self.root.join("events.jsonl"), true)?);
        }
        match &mut self.events {
            Some(events) => events.append(event),
            None => Ok(()),
        }
    }

    /// Writes `name` atomically.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(name);
        write_atomic(&path, bytes).map_err(|e| io_error(&path, e))
    }

    /// Writes `value` as pretty JSON to `name`, atomically.
    pub fn write_json(&self, name: &str, value: &impl Serialize) -> Result<()> {
        let text = serde_json::to_string_pretty(value).map_err(|e| ExperimentError::Json {
            path: self.path(name),
            reason: e.to_string(),
        })?;
        self.write(name, text.as_bytes())
    }

    /// Writes `rows` with `header` as CSV to `name`, atomically.
    pub fn write_csv(&self, name: &str, header: &[&str], rows: &[Vec<String>]) -> Result<()> {
        let path = self.path(name);
        let csv_error = |e: csv::Error| ExperimentError::Json {
            path: path.clone(),
            reason: e.to_string(),
        };
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(header).map_err(csv_error)?;
        for row in rows {
            writer.write_record(row).map_err(csv_error)?;
        }
        let bytes = writer.into_inner().map_err(|e| ExperimentError::Json {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_atomic(&path, &bytes).map_err(|e| io_error(&path, e))
    }
}

/// A file-name-safe form of a teacher label: `L2T (REINFORCE)` -> `l2t-reinforce`.
pub fn slug(label: &str) -> String {
    let mut out = String::new();
    for c in label.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// FNV-1a (64 bits) of `bytes` as 16 hex digits: the identity of an evaluation
/// ([`crate::experiment::evaluation_identity`]), where 8 digits would make a collision
/// among a folder's many evaluations conceivable.
pub fn long_hash(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// FNV-1a of `text` as 8 hex digits: names checkpoint files after the config that
/// trained them, so a changed config never resumes from a stale checkpoint.
pub fn short_hash(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{:08x}", hash >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_hashes() {
        assert_eq!(slug("L2T (REINFORCE)"), "l2t-reinforce");
        assert_eq!(slug("Online batch (L&H)"), "online-batch-l-h");
        assert_eq!(short_hash("a"), short_hash("a"));
        assert_ne!(short_hash("a"), short_hash("b"));
        assert_eq!(short_hash("a").len(), 8);
    }

    #[test]
    fn json_lines_survive_a_cut_last_line_but_not_a_damaged_middle() {
        let dir = std::env::temp_dir().join(format!("l2t-jsonl-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.jsonl");
        let mut log = JsonLines::open(&path, true).unwrap();
        for i in 0..3 {
            log.append(&vec![i]).unwrap();
        }
        drop(log);
        let mut text = fs::read_to_string(&path).unwrap();
        text.push_str("[3, 4");
        fs::write(&path, &text).unwrap();
        assert_eq!(
            JsonLines::read::<Vec<i32>>(&path).unwrap(),
            vec![vec![0], vec![1], vec![2]]
        );
        fs::write(&path, "[0]\n{oops\n[2]\n").unwrap();
        let message = JsonLines::read::<Vec<i32>>(&path).unwrap_err().to_string();
        assert!(
            message.contains("line 2") && message.contains("log.jsonl"),
            "{message}"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
