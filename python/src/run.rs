//! `l2t.compare` and `l2t.train`: the Python face of [`run_with`].
//!
//! A run config (a built-in run by name, a TOML text or file, as the `l2t` command
//! takes them) with the command's overrides, its built-in teachers, and teachers
//! written in Python ([`PythonTeacher`]: a callable `f(obs, info) -> mask` or an object
//! with `act(obs, info)` and optionally `observe(reward, done)`). Everything runs in
//! the library's one run ([`run_with`]) with the GIL released, so the run folder is the
//! `l2t` command's: `summary.md` with the paired columns, `report.json`, the CSVs,
//! `events.jsonl` and the figures. The evaluation workers take the GIL only inside a
//! Python teacher's `act` and `observe`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ndarray::{Array1, Ix1};
use numpy::IntoPyArray;
use pyo3::exceptions::{
    PyBlockingIOError, PyFileExistsError, PyFileNotFoundError, PyOSError, PyPermissionError,
    PyRuntimeError, PyTypeError, PyValueError,
};
use pyo3::intern;
use pyo3::prelude::*;

use l2t::config::{
    DeviceChoice, Interface, Overrides, RunConfig, TeacherEntry, LONG_RUNS, TRANSFERS,
};
use l2t::experiment::{
    claim_with_trained, run_with, shipped_teachers, training_files, ExperimentError, Progress,
    UserTeacher,
};
use l2t::presets::{Preset, PRESETS};
use l2t::run_dir::RunDir;
use l2t_agents::{AgentError, KeepMask, Teacher, TeacherConfig};
use l2t_envs::{FeatureLayout, TeachingInfo, TeachingObservation};
use pyo3::types::{PyString, PyTuple};

use crate::errors::{agent_error, build_error};
use crate::interrupt::{run_interruptible, SecondInterrupt};
use crate::{
    count_arg, data_folder, info_dict, mask_array, override_teaching, set_threads, u64_arg,
};

/// The first exception a Python teacher of the run raised, to be raised again once
/// the run has stopped (the exception itself, with its traceback).
type Failure = Arc<Mutex<Option<PyErr>>>;

/// A teacher written in Python, for [`run_with`]: `Send` (it holds the object as a
/// `Py<PyAny>`), it takes the GIL inside `act` and `observe` only.
struct PythonTeacher {
    label: String,
    object: Py<PyAny>,
    /// Call `object.act(obs, info)` (else `object(obs, info)`).
    has_act: bool,
    /// Call `object.observe(reward, done)` after each step.
    has_observe: bool,
    /// Call `object.bind(feature_names)` before the first `act` on a layout.
    has_bind: bool,
    /// The columns the object declares (`object.columns`), checked before the run.
    columns: Vec<String>,
    /// The layout last handed to the object, and its names as the tuple that goes in
    /// every info dict as `feature_names`.
    bound: Option<(FeatureLayout, Py<PyTuple>)>,
    failure: Failure,
}

impl PythonTeacher {
    /// The teacher of `object`: an object with a callable `act`, or a callable.
    fn new(label: String, object: &Bound<'_, PyAny>, failure: Failure) -> PyResult<Self> {
        let py = object.py();
        let callable_attr = |name: &Bound<'_, pyo3::types::PyString>| -> PyResult<bool> {
            Ok(object.hasattr(name)? && object.getattr(name)?.is_callable())
        };
        let has_act = callable_attr(intern!(py, "act"))?;
        if !has_act && !object.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "teacher `{label}` must be a callable f(obs, info) -> mask, an object with \
                 act(obs, info), or a built-in teacher (a kind name, a JSON config or a dict), \
                 got {}",
                crate::type_name(object)
            )));
        }
        let has_observe = has_act && callable_attr(intern!(py, "observe"))?;
        let has_bind = has_act && callable_attr(intern!(py, "bind"))?;
        let columns = match object.getattr_opt(intern!(py, "columns"))? {
            Some(value) if !value.is_none() && !value.is_callable() => {
                if value.is_instance_of::<PyString>() {
                    return Err(PyTypeError::new_err(format!(
                        "teacher `{label}`: columns must be a sequence of column names, got \
                         the string {value}"
                    )));
                }
                value.extract::<Vec<String>>().map_err(|_| {
                    PyTypeError::new_err(format!(
                        "teacher `{label}`: columns must be a sequence of column names (str), \
                         got {}",
                        crate::type_name(&value)
                    ))
                })?
            }
            _ => Vec::new(),
        };
        Ok(Self {
            label,
            object: object.clone().unbind(),
            has_act,
            has_observe,
            has_bind,
            columns,
            bound: None,
            failure,
        })
    }

    /// The `feature_names` tuple of `layout`, calling the object's `bind` first when
    /// the layout is new to it.
    fn bind<'py>(
        &mut self,
        py: Python<'py>,
        layout: &FeatureLayout,
    ) -> PyResult<Bound<'py, PyTuple>> {
        if let Some((bound, names)) = &self.bound {
            if bound.matches(layout) {
                return Ok(names.bind(py).clone());
            }
        }
        let names = PyTuple::new(py, layout.names())?;
        if self.has_bind {
            self.object
                .bind(py)
                .call_method1(intern!(py, "bind"), (names.clone(),))?;
        }
        self.bound = Some((layout.clone(), names.clone().unbind()));
        Ok(names)
    }

    /// Keeps `error` (the run's first) for the caller and stops the run with its text.
    fn fail(&self, error: PyErr) -> AgentError {
        let reason = format!("the Python teacher `{}` raised {error}", self.label);
        if let Ok(mut slot) = self.failure.lock() {
            slot.get_or_insert(error);
        }
        AgentError::InvalidConfig {
            field: "python teacher",
            reason,
        }
    }
}

impl Teacher for PythonTeacher {
    fn name(&self) -> &str {
        &self.label
    }

    fn columns(&self) -> Vec<String> {
        self.columns.clone()
    }

    fn act(
        &mut self,
        observation: &TeachingObservation,
        info: &TeachingInfo,
    ) -> l2t_agents::Result<KeepMask> {
        let m = observation.features.nrows();
        let result = Python::attach(|py| -> PyResult<Array1<bool>> {
            let names = self.bind(py, &observation.layout)?;
            let object = self.object.bind(py);
            let features = observation.features.clone().into_pyarray(py);
            let info = info_dict(py, info)?;
            info.set_item(intern!(py, "feature_names"), names)?;
            let mask = if self.has_act {
                object.call_method1(intern!(py, "act"), (features, info))?
            } else {
                object.call1((features, info))?
            };
            let what = format!("the keep-mask of teacher `{}`", self.label);
            mask_array(&mask, &[m], &what)?
                .into_dimensionality::<Ix1>()
                .map_err(|e| PyRuntimeError::new_err(e.to_string()))
        });
        result.map_err(|e| self.fail(e))
    }

    fn observe(&mut self, reward: f64, done: bool) -> l2t_agents::Result<()> {
        if !self.has_observe {
            return Ok(());
        }
        Python::attach(|py| {
            self.object
                .bind(py)
                .call_method1(intern!(py, "observe"), (reward, done))
                .map(drop)
        })
        .map_err(|e| self.fail(e))
    }
}

/// The `l2t` command's message for a name that is no built-in run.
fn unknown(name: &str) -> String {
    format!(
        "unknown preset `{name}`; presets: {}; longer runs: {}; transfers: {}; or pass a run \
         config (TOML text, or a path to a .toml file)",
        PRESETS.join(", "),
        LONG_RUNS.join(", "),
        TRANSFERS.join(", ")
    )
}

/// The run config of `source` and its name (the `l2t` command's folder name): a
/// `.toml` file (`is_path`, or a one-line text ending in `.toml`), a built-in run
/// ([`RunConfig::named`]: a preset, a transfer or a longer run), or TOML text.
fn resolve_config(source: &str, is_path: bool) -> PyResult<(RunConfig, String)> {
    let one_line = !source.contains('\n');
    if is_path || (one_line && source.trim_end().ends_with(".toml")) {
        let config = RunConfig::from_toml_file(Path::new(source.trim()))
            .map_err(|e| experiment_error(e, None, Path::new("")))?;
        let name = config.preset.name.clone();
        return Ok((config, name));
    }
    if let Ok(config) = RunConfig::named(source.trim()) {
        return Ok((config, source.trim().to_string()));
    }
    if !one_line || source.contains('=') || source.contains('[') {
        let config =
            RunConfig::from_toml(source).map_err(|e| experiment_error(e, None, Path::new("")))?;
        let name = config.preset.name.clone();
        return Ok((config, name));
    }
    Err(PyValueError::new_err(unknown(source)))
}

/// `label=spec` or `spec`, as `l2t compare --teacher` reads it ([`TeacherEntry::parse`]).
fn parse_teacher(text: &str, preset: &Preset) -> PyResult<TeacherEntry> {
    TeacherEntry::parse(text, preset).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// The keyword arguments that override a run config, as the `l2t` command's flags of the
/// same names: checked here (an integer out of u64's range is a `ValueError` naming it),
/// applied by the library's [`Overrides::apply`], the one implementation the command
/// uses too. `teaching` (a JSON object of `TeachingConfig` fields) is Python's own.
struct PyOverrides<'py> {
    seeds: Option<Bound<'py, PyAny>>,
    first_seed: Option<Bound<'py, PyAny>>,
    episodes: Option<usize>,
    workers: Option<usize>,
    tau: Option<f64>,
    teaching: Option<String>,
    test_every: Option<usize>,
    checkpoint_every: Option<usize>,
    plots: Option<bool>,
    device: Option<String>,
    reference: Option<String>,
}

impl PyOverrides<'_> {
    /// Applies the overrides to `config`; `user_labels` are the Python teachers' labels
    /// (the reference may be one of them).
    fn apply(self, config: &mut RunConfig, user_labels: &[&str]) -> PyResult<()> {
        if let Some(json) = &self.teaching {
            config.preset.teaching = override_teaching(&config.preset.teaching, json)?;
        }
        let device = match &self.device {
            Some(text) => Some(
                text.parse::<DeviceChoice>()
                    .map_err(|e| PyValueError::new_err(format!("device: {e}")))?,
            ),
            None => None,
        };
        let overrides = Overrides {
            episodes: self.episodes,
            seeds: count_arg(self.seeds.as_ref(), "seeds")?,
            first_seed: u64_arg(self.first_seed.as_ref(), "first_seed")?,
            tau: self.tau,
            checkpoint_every: self.checkpoint_every,
            workers: self.workers,
            test_every: self.test_every,
            plots: self.plots,
            device,
            reference: self.reference,
            ..Overrides::default()
        };
        overrides
            .apply(config, Interface::Python, user_labels)
            .map_err(|e| experiment_error(e, None, Path::new("")))
    }
}

/// The exception of a run's error. `preset` (with `data_dir`) adds, to a missing or
/// unreadable data file, what the preset needs and how to fetch it.
pub(crate) fn experiment_error(
    e: ExperimentError,
    preset: Option<&Preset>,
    data_dir: &Path,
) -> PyErr {
    match e {
        ExperimentError::Env(env) | ExperimentError::Agent(AgentError::Env(env)) => match preset {
            Some(preset) => build_error(preset, data_dir, env),
            None => crate::errors::env_error(env),
        },
        ExperimentError::Agent(agent) => agent_error(agent),
        ExperimentError::InvalidSetting { .. }
        | ExperimentError::SeedRange { .. }
        | ExperimentError::InvalidArgument { .. }
        | ExperimentError::Config { .. }
        | ExperimentError::TransferLayout { .. } => PyValueError::new_err(e.to_string()),
        ExperimentError::FolderInUse { path, holder } => PyBlockingIOError::new_err(format!(
            "run folder {} is in use by {holder}; wait for that run to finish, or give this \
             one another out=",
            path.display()
        )),
        ExperimentError::FolderHoldsOtherRun { path, reason } => {
            PyFileExistsError::new_err(format!(
                "run folder {} holds the results of another run: {reason}; pass fresh=True \
                 to clear them first, or choose another out=",
                path.display()
            ))
        }
        ExperimentError::Io { ref source, .. } => match source.kind() {
            std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(e.to_string()),
            std::io::ErrorKind::PermissionDenied => PyPermissionError::new_err(e.to_string()),
            _ => PyOSError::new_err(e.to_string()),
        },
        other => PyRuntimeError::new_err(other.to_string()),
    }
}

/// What a run prints with `verbose=True`: the `l2t --quiet` lines of its phases.
fn log_progress(progress: Progress<'_>) {
    if let Progress::Phase {
        teacher,
        training,
        total,
        done,
    } = progress
    {
        let what = if training { "train" } else { "teach" };
        let resumed = if done > 0 {
            format!(" ({done} episodes read back from the checkpoint)")
        } else {
            String::new()
        };
        eprintln!("{what} {teacher}: {total} episodes{resumed}");
    } else if let Progress::Cleared(removed) = progress {
        for path in removed {
            eprintln!("fresh: removed {}", path.display());
        }
    } else if let Progress::Resumed {
        reused,
        total,
        teachers,
    } = progress
    {
        eprintln!(
            "resumed: {reused} of {total} evaluations from events.jsonl ({})",
            teachers.join(", ")
        );
    }
}

/// Where a run writes: `out`, else `runs/<name>` as the `l2t` command.
fn out_folder(out: Option<PathBuf>, name: &str) -> PathBuf {
    out.unwrap_or_else(|| PathBuf::from("runs").join(name))
}

/// Runs `config` with `user` beside its teachers into `out`, the GIL released; the
/// first exception of a Python teacher is raised as it is. Returns the folder, still
/// held.
#[allow(clippy::too_many_arguments)]
fn execute(
    py: Python<'_>,
    config: &RunConfig,
    user: Vec<UserTeacher>,
    failure: &Failure,
    data_dir: &Path,
    out: &Path,
    fresh: bool,
    shipped: bool,
    verbose: bool,
) -> PyResult<RunDir> {
    let preset = Some(&config.preset);
    let mut run_dir = RunDir::create(out).map_err(|e| experiment_error(e, preset, data_dir))?;
    run_dir.set_fresh(fresh);
    if shipped {
        // As the `l2t` command does: the shipped teachers of the training task copied
        // in where the folder has none of that training identity.
        let records: Vec<_> = user.iter().map(UserTeacher::record).collect();
        let (cleared, reused) =
            claim_with_trained(&mut run_dir, config, &records, &[shipped_teachers(config)])
                .map_err(|e| experiment_error(e, preset, data_dir))?;
        if verbose {
            log_progress(Progress::Cleared(&cleared));
            for teacher in reused {
                eprintln!("{teacher} (shipped with l2t; shipped=False trains it here)");
            }
        }
    }
    // The run goes on a thread of its own; Ctrl-C (a KeyboardInterrupt) cancels it and is
    // raised once it has stopped (crate::interrupt).
    let cancel = run_dir.canceller();
    let (result, interrupted) = run_interruptible(py, &cancel, SecondInterrupt::Wait, || {
        run_with(config, user, data_dir, &mut run_dir, |p| {
            if verbose {
                log_progress(p);
            }
        })
    });
    let result = result.unwrap_or_else(|_| Err(ExperimentError::Worker("the run panicked".into())));
    if let Some(signal) = interrupted {
        return Err(signal);
    }
    match result {
        Ok(_) => Ok(run_dir),
        Err(e) => {
            let raised = failure.lock().ok().and_then(|mut slot| slot.take());
            Err(raised.unwrap_or_else(|| experiment_error(e, preset, data_dir)))
        }
    }
}

/// The native `l2t.compare`: see `python/l2t/run.py`. `python` holds the Python
/// teachers (label, object), `specs` built-in teachers by label (a kind, a JSON config
/// or a checkpoint file), `builtin` the config's teachers to keep (by label) or more
/// built-in teachers (`label=spec` or `spec`); None keeps them all. Returns the
/// folder.
#[pyfunction]
#[pyo3(signature = (
    config, *, is_path = false, python = Vec::new(), specs = Vec::new(), builtin = None,
    seeds = None, first_seed = None, episodes = None, workers = None, tau = None,
    teaching = None, test_every = None, checkpoint_every = None, plots = None, device = None,
    reference = None, out = None, data_dir = None, fresh = false, shipped = true,
    threads = Some(1), verbose = false
))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn compare(
    py: Python<'_>,
    config: &str,
    is_path: bool,
    python: Vec<(String, Bound<'_, PyAny>)>,
    specs: Vec<(String, String)>,
    builtin: Option<Vec<String>>,
    seeds: Option<Bound<'_, PyAny>>,
    first_seed: Option<Bound<'_, PyAny>>,
    episodes: Option<usize>,
    workers: Option<usize>,
    tau: Option<f64>,
    teaching: Option<String>,
    test_every: Option<usize>,
    checkpoint_every: Option<usize>,
    plots: Option<bool>,
    device: Option<String>,
    reference: Option<String>,
    out: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    fresh: bool,
    shipped: bool,
    threads: Option<i32>,
    verbose: bool,
) -> PyResult<PathBuf> {
    let (mut config, name) = resolve_config(config, is_path)?;
    if let Some(chosen) = builtin {
        let mut kept = Vec::with_capacity(chosen.len());
        for item in &chosen {
            match config.teachers.iter().find(|e| &e.label == item) {
                Some(entry) => kept.push(entry.clone()),
                None => kept.push(parse_teacher(item, &config.preset).map_err(|e| {
                    let labels: Vec<&str> =
                        config.teachers.iter().map(|e| e.label.as_str()).collect();
                    PyValueError::new_err(format!(
                        "builtin: `{item}` is not a teacher of the config ({}), and {}",
                        labels.join(", "),
                        e.value(py)
                    ))
                })?),
            }
        }
        config.teachers = kept;
    }
    for (label, spec) in &specs {
        let mut entry = parse_teacher(spec, &config.preset)?;
        entry.label = label.clone();
        config.teachers.push(entry);
    }
    if config.teachers.is_empty() {
        return Err(PyValueError::new_err(
            "a comparison needs at least one built-in teacher: its first row is the \
             reference of the paired differences unless reference= names another (e.g. \
             builtin=[\"no_teach\"])",
        ));
    }
    let python_labels: Vec<&str> = python.iter().map(|(label, _)| label.as_str()).collect();
    PyOverrides {
        seeds,
        first_seed,
        episodes,
        workers,
        tau,
        teaching,
        test_every,
        checkpoint_every,
        plots,
        device,
        reference,
    }
    .apply(&mut config, &python_labels)?;
    config
        .validate()
        .map_err(|e| experiment_error(e, None, Path::new("")))?;
    // The labels run_with refuses, refused before the folder is touched.
    for (i, (label, _)) in python.iter().enumerate() {
        let taken = config.teachers.iter().any(|e| &e.label == label)
            || python[..i].iter().any(|(other, _)| other == label);
        if taken {
            return Err(PyValueError::new_err(format!(
                "invalid experiment setting `teachers.label`: `{label}` is used twice (the \
                 config's teachers are: {})",
                config
                    .teachers
                    .iter()
                    .map(|e| e.label.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let failure: Failure = Arc::new(Mutex::new(None));
    let user = python
        .into_iter()
        .map(|(label, object)| {
            let teacher = PythonTeacher::new(label.clone(), &object, failure.clone())?;
            Ok(UserTeacher {
                label,
                teacher: Box::new(teacher),
            })
        })
        .collect::<PyResult<Vec<_>>>()?;
    set_threads(threads)?;
    let data_dir = data_folder(data_dir);
    let out = out_folder(out, &name);
    execute(
        py, &config, user, &failure, &data_dir, &out, fresh, shipped, verbose,
    )?;
    Ok(out)
}

/// Whether `config` is a teacher that learns (one `l2t train` can train).
fn learns(config: &TeacherConfig) -> bool {
    matches!(
        config,
        TeacherConfig::Reinforce(_)
            | TeacherConfig::ActorCritic(_)
            | TeacherConfig::Es(_)
            | TeacherConfig::Ppo(_)
    )
}

/// The native `l2t.train`: see `python/l2t/run.py`. Trains the learned teacher `teacher`
/// (a kind or a JSON config, `label=` optional) on the config's training task, as `l2t
/// train` does (a run with that one teacher, trained, then evaluated); returns the
/// folder and the checkpoint.
#[pyfunction]
#[pyo3(signature = (
    config, teacher, *, is_path = false, label = None,
    seeds = None, first_seed = None, episodes = None, workers = None, tau = None,
    teaching = None, test_every = None, checkpoint_every = None, plots = None, device = None,
    out = None, data_dir = None, fresh = false, shipped = true, threads = Some(1),
    verbose = false
))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn train(
    py: Python<'_>,
    config: &str,
    teacher: &str,
    is_path: bool,
    label: Option<String>,
    seeds: Option<Bound<'_, PyAny>>,
    first_seed: Option<Bound<'_, PyAny>>,
    episodes: Option<usize>,
    workers: Option<usize>,
    tau: Option<f64>,
    teaching: Option<String>,
    test_every: Option<usize>,
    checkpoint_every: Option<usize>,
    plots: Option<bool>,
    device: Option<String>,
    out: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    fresh: bool,
    shipped: bool,
    threads: Option<i32>,
    verbose: bool,
) -> PyResult<(PathBuf, PathBuf)> {
    let (mut config, name) = resolve_config(config, is_path)?;
    let mut entry = parse_teacher(teacher, &config.preset)?;
    if let Some(label) = label {
        entry.label = label;
    }
    if !learns(&entry.teacher) {
        return Err(PyValueError::new_err(format!(
            "train takes a learned teacher (reinforce, actor_critic, es, ppo, or a JSON config \
             of one), got `{}`",
            entry.teacher.kind()
        )));
    }
    config.teachers = vec![entry.trained()];
    PyOverrides {
        seeds,
        first_seed,
        episodes,
        workers,
        tau,
        teaching,
        test_every,
        checkpoint_every,
        plots,
        device,
        reference: None,
    }
    .apply(&mut config, &[])?;
    config
        .validate()
        .map_err(|e| experiment_error(e, None, Path::new("")))?;
    set_threads(threads)?;
    let data_dir = data_folder(data_dir);
    let out = out_folder(out, &format!("{name}-train"));
    let failure: Failure = Arc::new(Mutex::new(None));
    let run_dir = execute(
        py,
        &config,
        Vec::new(),
        &failure,
        &data_dir,
        &out,
        fresh,
        shipped,
        verbose,
    )?;
    // The file the run trained into (its name hashes the teacher's config and
    // training MDP).
    let checkpoint = training_files(&run_dir, &config, &config.teachers[0])
        .map_err(|e| experiment_error(e, None, &data_dir))?
        .checkpoint;
    Ok((out, checkpoint))
}
