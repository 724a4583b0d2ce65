//! The native core of the `l2t` Python package (`l2t._l2t`), built by maturin.
//!
//! Three classes wrap the Rust library; the package's Python layer (`python/l2t/`) turns
//! them into a `gymnasium.Env`, a `gymnasium.vector.VectorEnv` and a teacher object:
//!
//! - [`Core`]: one [`TeachingEnv`] built from a preset, as the `l2t` command builds it
//!   ([`Preset::build`]); observations are the feature matrix as a `float32` array of
//!   shape `(M, F)`, moved to numpy without copying;
//! - [`VectorCore`]: N envs on a [`ThreadedVectorEnv`] (Gymnasium's three autoreset modes),
//!   stepped with the GIL released;
//! - [`TeacherCore`]: a built-in teacher from a [`TeacherConfig`] (JSON);
//!
//! and two functions run the `l2t` command's runs (the `run` module): `compare` (a run config's
//! teachers and teachers written in Python, through `l2t::experiment::run_with`) and
//! `train` (one learned teacher, as `l2t train`); `cli` runs the `l2t` command itself
//! (the wheel's console script, the `cli` module).
//!
//! Errors are typed Python exceptions (the `errors` module); nothing here panics on user input.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ndarray::{Array1, Array2, Array3, ArrayD, Axis, Ix2};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArray3, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods,
    PyReadonlyArray2, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use l2t::config::RunConfig;
use l2t::experiment::with_irreducible_loss_feature;
use l2t::experiment::TrainingTask;
use l2t::presets::{default_cache_dir, default_data_dir, Preset, PRESETS};
use l2t_agents::{Teacher, TeacherConfig};
use l2t_envs::{
    Autoreset, Env, FeatureLayout, TeachingConfig, TeachingEnv, TeachingInfo, TeachingObservation,
    ThreadedVectorEnv, VectorEnv,
};

mod cli;
mod errors;
mod interrupt;
mod run;

use errors::{agent_error, build_error, env_error, ResetNeeded};

/// The names of the student-state columns, repeated in every row of the features.
const STATE_COLUMNS: [&str; 3] = ["iteration", "average_training_loss", "best_dev_accuracy"];

/// Which half of the preset's training data the env teaches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    /// The teacher half: where teachers are trained (the `l2t` command's training env).
    Teacher,
    /// The student half: where trained teachers are evaluated on fresh students.
    Student,
}

impl Split {
    fn parse(name: &str) -> PyResult<Self> {
        match name {
            "teacher" => Ok(Self::Teacher),
            "student" => Ok(Self::Student),
            other => Err(PyValueError::new_err(format!(
                "split must be \"teacher\" or \"student\", got {other:?}"
            ))),
        }
    }
}

/// The preset `name` with the overrides of its teaching config (a JSON object of
/// [`TeachingConfig`] fields, plus `tau` for a single threshold) and the master seed.
fn resolve_preset(name: &str, teaching: Option<&str>, seed: Option<u64>) -> PyResult<Preset> {
    let mut preset = Preset::named(name).map_err(|e| PyValueError::new_err(e.to_string()))?;
    if let Some(json) = teaching {
        preset.teaching = override_teaching(&preset.teaching, json)?;
    }
    if let Some(seed) = seed {
        preset.teaching.seed = seed;
    }
    preset.teaching.validate().map_err(env_error)?;
    Ok(preset)
}

/// `base` with the top-level fields of the JSON object `json` replaced.
fn override_teaching(base: &TeachingConfig, json: &str) -> PyResult<TeachingConfig> {
    let invalid = |reason: String| PyValueError::new_err(format!("teaching overrides: {reason}"));
    let overrides: serde_json::Value =
        serde_json::from_str(json).map_err(|e| invalid(e.to_string()))?;
    let serde_json::Value::Object(mut overrides) = overrides else {
        return Err(invalid("expected a dict of TeachingConfig fields".into()));
    };
    let tau = match overrides.remove("tau") {
        None => None,
        Some(value) => Some(
            value
                .as_f64()
                .ok_or_else(|| invalid(format!("tau must be a number, got {value}")))?,
        ),
    };
    let mut value = serde_json::to_value(base).map_err(|e| invalid(e.to_string()))?;
    if let serde_json::Value::Object(fields) = &mut value {
        fields.extend(overrides);
    }
    let config: TeachingConfig =
        serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
    Ok(match tau {
        Some(tau) => config.with_tau(tau),
        None => config,
    })
}

/// The data folder: the one given, or the set-up's default ([`default_data_dir`]).
fn data_folder(data_dir: Option<PathBuf>) -> PathBuf {
    data_dir.unwrap_or_else(default_data_dir)
}

/// Loads the preset's data and builds the env of `split`. With `irreducible_loss`
/// (None: as the preset's run, `l2t reproduce <preset>` or `l2t.compare(preset)`, which
/// turns it on), the training splits carry the holdout losses of the feature
/// `irreducible_loss`, computed as a run computes them and cached in the set-up's cache
/// (`irreducible/`), so the env has the columns of the preset's run.
fn build_env(
    preset: &Preset,
    split: Split,
    data_dir: &Path,
    irreducible_loss: Option<bool>,
) -> PyResult<TeachingEnv> {
    let mut envs = preset
        .build(data_dir)
        .map_err(|e| build_error(preset, data_dir, e))?;
    let irreducible_loss = irreducible_loss.unwrap_or_else(|| {
        RunConfig::named(&preset.name).is_ok_and(|run| run.preset.irreducible_loss_feature)
    });
    if irreducible_loss {
        let cache = default_cache_dir().join("irreducible");
        // Without the GIL (libtorch's autograd refuses to train under it once torch is
        // imported), on this thread: `detach` runs the closure here, synchronously.
        let inputs = SameThread((envs, preset.clone()));
        let built = Python::attach(|py| {
            py.detach(move || {
                let (envs, preset) = inputs.get();
                // The holdout students train whatever the thread's torch grad mode.
                SameThread(tch::with_grad(|| {
                    with_irreducible_loss_feature(envs, &preset, &cache)
                }))
            })
        });
        envs = built
            .get()
            .map_err(|e| run::experiment_error(e, Some(preset), data_dir))?;
    }
    Ok(match split {
        Split::Teacher => envs.teacher_env,
        Split::Student => envs.student_env,
    })
}

/// The column indices of the student state in `feature_names`.
fn state_columns(feature_names: &[String]) -> PyResult<[usize; 3]> {
    let mut out = [0; 3];
    for (slot, name) in out.iter_mut().zip(STATE_COLUMNS) {
        *slot = feature_names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| PyValueError::new_err(format!("no feature column {name:?}")))?;
    }
    Ok(out)
}

/// The info as a dict: every field of [`TeachingInfo`], except the ones without a
/// value yet (`None` in Rust; `average_training_loss` before the first update, NaN in
/// Rust), which are left out, as Gymnasium's vector envs expect of optional keys.
fn info_dict<'py>(py: Python<'py>, info: &TeachingInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "iteration"), info.iteration)?;
    d.set_item(intern!(py, "effective_instances"), info.effective_instances)?;
    d.set_item(intern!(py, "incoming_batches"), info.incoming_batches)?;
    d.set_item(intern!(py, "instances_seen"), info.instances_seen)?;
    d.set_item(intern!(py, "instances_kept"), info.instances_kept)?;
    d.set_item(intern!(py, "buffered"), info.buffered)?;
    d.set_item(intern!(py, "epochs"), info.epochs)?;
    d.set_item(intern!(py, "dev_accuracy"), info.dev_accuracy)?;
    d.set_item(intern!(py, "best_dev_accuracy"), info.best_dev_accuracy)?;
    if let Some(loss) = info.dev_loss {
        d.set_item(intern!(py, "dev_loss"), loss)?;
    }
    if !info.average_training_loss.is_nan() {
        d.set_item(
            intern!(py, "average_training_loss"),
            info.average_training_loss,
        )?;
    }
    d.set_item(intern!(py, "updates_this_step"), info.updates_this_step)?;
    d.set_item(intern!(py, "evaluated"), info.evaluated)?;
    d.set_item(
        "threshold_iterations",
        PyList::new(py, info.threshold_iterations.iter().copied())?,
    )?;
    if let Some(i) = info.iterations_to_tau {
        d.set_item(intern!(py, "iterations_to_tau"), i)?;
    }
    d.set_item(
        intern!(py, "incoming_indices"),
        PyList::new(py, info.incoming_indices.iter().copied())?,
    )?;
    let compute = PyDict::new(py);
    compute.set_item(intern!(py, "scoring"), info.compute.scoring)?;
    compute.set_item(intern!(py, "training"), info.compute.training)?;
    compute.set_item(intern!(py, "measurement"), info.compute.measurement)?;
    d.set_item(intern!(py, "compute"), compute)?;
    if let Some(flops) = info.compute_to_tau {
        d.set_item(intern!(py, "compute_to_tau"), flops)?;
    }
    Ok(d)
}

/// The value of `key` in an info dict, `None` when absent or None.
fn info_value<'py>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
    Ok(d.get_item(key)?.filter(|v| !v.is_none()))
}

/// A required field of an info dict.
macro_rules! field {
    ($d:expr, $key:expr, $t:ty) => {
        match info_value($d, $key)? {
            Some(value) => value.extract::<$t>().map_err(|e| {
                PyTypeError::new_err(format!("info[{:?}] has the wrong type: {}", $key, e))
            })?,
            None => {
                return Err(PyValueError::new_err(format!(
                    "info lacks {:?}: pass the info dict the env returned",
                    $key
                )))
            }
        }
    };
}

/// An optional field of an info dict (absent or None: `None`).
macro_rules! optional_field {
    ($d:expr, $key:expr, $t:ty) => {
        match info_value($d, $key)? {
            Some(value) => Some(value.extract::<$t>().map_err(|e| {
                PyTypeError::new_err(format!("info[{:?}] has the wrong type: {}", $key, e))
            })?),
            None => None,
        }
    };
}

/// The [`TeachingInfo`] of an info dict made by [`info_dict`].
fn info_from_dict(d: &Bound<'_, PyDict>) -> PyResult<TeachingInfo> {
    Ok(TeachingInfo {
        iteration: field!(d, "iteration", usize),
        effective_instances: field!(d, "effective_instances", usize),
        incoming_batches: field!(d, "incoming_batches", usize),
        instances_seen: field!(d, "instances_seen", usize),
        instances_kept: field!(d, "instances_kept", usize),
        buffered: field!(d, "buffered", usize),
        epochs: field!(d, "epochs", f64),
        dev_accuracy: field!(d, "dev_accuracy", f64),
        best_dev_accuracy: field!(d, "best_dev_accuracy", f64),
        dev_loss: optional_field!(d, "dev_loss", f64),
        average_training_loss: optional_field!(d, "average_training_loss", f64).unwrap_or(f64::NAN),
        updates_this_step: field!(d, "updates_this_step", usize),
        evaluated: field!(d, "evaluated", bool),
        threshold_iterations: field!(d, "threshold_iterations", Vec<Option<usize>>),
        iterations_to_tau: optional_field!(d, "iterations_to_tau", usize),
        incoming_indices: optional_field!(d, "incoming_indices", Vec<i64>).unwrap_or_default(),
        // What the teachers read of an info does not include its compute.
        compute: Default::default(),
        compute_to_tau: optional_field!(d, "compute_to_tau", u64),
    })
}

/// Converts `$obj`, an array of one of the integer dtypes `$t`, to keep flags.
macro_rules! try_int_mask {
    ($obj:expr, $expected:expr, $($t:ty),*) => {
        $(
            if let Ok(a) = $obj.cast::<PyArrayDyn<$t>>() {
                let ro = a.try_readonly().map_err(|e| PyValueError::new_err(e.to_string()))?;
                let view = ro.as_array();
                #[allow(clippy::unnecessary_cast)]
                if let Some(bad) = view.iter().find(|&&x| x as i128 != 0 && x as i128 != 1) {
                    return Err(PyValueError::new_err(format!(
                        "{}, found {}", $expected(), bad
                    )));
                }
                #[allow(clippy::unnecessary_cast)]
                return Ok(view.mapv(|x| x as i128 != 0));
            }
        )*
    };
}

/// Converts `$obj`, an array of one of the float dtypes `$t`, to keep flags (0.0,
/// -0.0 and 1.0 only: NaN, infinities and fractions are errors).
macro_rules! try_float_mask {
    ($obj:expr, $expected:expr, $($t:ty),*) => {
        $(
            if let Ok(a) = $obj.cast::<PyArrayDyn<$t>>() {
                let ro = a.try_readonly().map_err(|e| PyValueError::new_err(e.to_string()))?;
                let view = ro.as_array();
                if let Some(bad) = view.iter().find(|&&x| x != 0.0 && x != 1.0) {
                    return Err(PyValueError::new_err(format!(
                        "{}, found {}", $expected(), bad
                    )));
                }
                return Ok(view.mapv(|x| x != 0.0));
            }
        )*
    };
}

/// The name of an object's type, for error messages.
fn type_name(object: &Bound<'_, PyAny>) -> String {
    object
        .get_type()
        .name()
        .map_or_else(|_| "an object".to_string(), |n| n.to_string())
}

/// The keep flags of `action`, for every action that
/// `gymnasium.spaces.MultiBinary(shape).contains` accepts: an array (or a nested list
/// or tuple, converted by `numpy.asarray`) of shape `shape` whose entries all equal 0
/// or 1, of dtype bool, an integer or a float dtype (SB3's policies emit float32 0.0
/// and 1.0); true where the entry is 1. The common dtypes (bool, the integers,
/// float32 and float64) are read in Rust; the other numeric and object dtypes are
/// compared by numpy, as `contains` does. The one conversion of the single and the
/// vector env. A wrong shape or entry (0.5, 2, NaN) is a `ValueError`, something that
/// is not an array of numbers (a string, a dtype of text) a `TypeError`, each naming
/// what was expected and what was found.
fn mask_array(action: &Bound<'_, PyAny>, shape: &[usize], what: &str) -> PyResult<ArrayD<bool>> {
    let py = action.py();
    // Formatted only on an error: the happy path is a few microseconds per step.
    let expected = || {
        format!(
            "{what} must be an array of shape {} holding only 0 and 1 (dtype bool, integer or float)",
            shape_text(shape)
        )
    };
    let converted;
    let array = match action.cast::<PyUntypedArray>() {
        Ok(array) => array,
        Err(_) => {
            if action.is_none()
                || action.is_instance_of::<PyString>()
                || action.is_instance_of::<PyBytes>()
            {
                return Err(PyTypeError::new_err(format!(
                    "{}, got {}",
                    expected(),
                    type_name(action)
                )));
            }
            let numpy = py.import(intern!(py, "numpy"))?;
            converted = numpy
                .getattr(intern!(py, "asarray"))?
                .call1((action,))
                .map_err(|e| {
                    let message = format!(
                        "{}, got a {} numpy cannot convert: {e}",
                        expected(),
                        type_name(action)
                    );
                    if e.is_instance_of::<PyValueError>(py) {
                        PyValueError::new_err(message)
                    } else {
                        PyTypeError::new_err(message)
                    }
                })?;
            converted.cast::<PyUntypedArray>().map_err(|_| {
                PyTypeError::new_err(format!("{}, got {}", expected(), type_name(action)))
            })?
        }
    };
    if !matches!(
        array.dtype().kind(),
        b'b' | b'i' | b'u' | b'f' | b'c' | b'O'
    ) {
        return Err(PyTypeError::new_err(format!(
            "{}, got dtype {}",
            expected(),
            array.dtype()
        )));
    }
    if array.shape() != shape {
        return Err(PyValueError::new_err(format!(
            "{}, got shape {}",
            expected(),
            shape_text(array.shape())
        )));
    }
    if let Ok(a) = array.cast::<PyArrayDyn<bool>>() {
        let ro = a
            .try_readonly()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        return Ok(ro.as_array().to_owned());
    }
    try_int_mask!(array, expected, i8, u8, i16, u16, i32, u32, i64, u64);
    try_float_mask!(array, expected, f32, f64);
    numpy_mask(array.as_any(), &expected())
}

/// [`mask_array`] for the dtypes Rust does not read (float16, longdouble, complex,
/// object, non-native byte orders): numpy's own `== 0` and `== 1`, as
/// `MultiBinary.contains` compares.
fn numpy_mask(array: &Bound<'_, PyAny>, expected: &str) -> PyResult<ArrayD<bool>> {
    let py = array.py();
    let numpy = py.import(intern!(py, "numpy"))?;
    let compare = |value: i64| {
        numpy
            .getattr(intern!(py, "equal"))?
            .call1((array, value))?
            .call_method1(intern!(py, "astype"), (intern!(py, "bool"),))
    };
    let not_comparable = |e: PyErr| {
        PyTypeError::new_err(format!("{expected}, got entries numpy cannot compare: {e}"))
    };
    let zero = compare(0).map_err(not_comparable)?;
    let one = compare(1).map_err(not_comparable)?;
    let valid = numpy
        .getattr(intern!(py, "logical_or"))?
        .call1((&zero, &one))?;
    if !valid.call_method0(intern!(py, "all"))?.is_truthy()? {
        let invalid = numpy
            .getattr(intern!(py, "logical_not"))?
            .call1((&valid,))?;
        let bad = array
            .get_item(invalid)?
            .call_method0(intern!(py, "ravel"))?
            .get_item(0)?;
        return Err(PyValueError::new_err(format!(
            "{expected}, found {}",
            bad.str()?
        )));
    }
    let keep = one
        .cast_into::<PyArrayDyn<bool>>()
        .map_err(|e| PyTypeError::new_err(e.to_string()))?;
    let ro = keep
        .try_readonly()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(ro.as_array().to_owned())
}

fn shape_text(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Fails with a clear message for a seed that is not a u64.
fn seed_arg(seed: Option<&Bound<'_, PyAny>>) -> PyResult<Option<u64>> {
    u64_arg(seed, "seed")
}

/// The integer argument `name` as a u64 (None stays None): a negative value or one of
/// 2**64 or more is a `ValueError` naming the argument, where pyo3's own conversion
/// would raise a bare `OverflowError: int too big to convert`.
pub(crate) fn u64_arg(value: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<Option<u64>> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    value.extract::<u64>().map(Some).map_err(|_| {
        PyValueError::new_err(format!(
            "{name} must be None or an integer in [0, 2**64), got {}",
            value.repr().map_or_else(|_| "?".into(), |r| r.to_string())
        ))
    })
}

/// [`u64_arg`] for a count (`usize`, as wide as u64 here).
pub(crate) fn count_arg(value: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<Option<usize>> {
    u64_arg(value, name)?
        .map(|n| {
            usize::try_from(n).map_err(|_| {
                PyValueError::new_err(format!("{name} = {n} is more than this platform counts"))
            })
        })
        .transpose()
}

fn set_threads(threads: Option<i32>) -> PyResult<()> {
    match threads {
        Some(t) if t < 1 => Err(PyValueError::new_err(format!(
            "threads must be at least 1, got {t}"
        ))),
        Some(t) => {
            tch::set_num_threads(t);
            Ok(())
        }
        None => Ok(()),
    }
}

/// Per-column bounds of the feature matrix as two `(M, F)` arrays.
fn bounds(env: &TeachingEnv) -> PyResult<(Array2<f32>, Array2<f32>)> {
    let space = &env.observation_space().features;
    let two_d = |a: &ArrayD<f32>| {
        a.clone()
            .into_dimensionality::<Ix2>()
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))
    };
    Ok((two_d(&space.low)?, two_d(&space.high)?))
}

/// A value handed to [`Python::detach`] on the thread that owns it.
///
/// `detach` runs its closure synchronously on the calling thread with the GIL
/// released; PyO3 asks for `Send` only to keep Python references out of it. The
/// single env is not `Send` (its student is a boxed trait object) but holds no Python
/// reference and never leaves the thread: the pyclass is `unsendable`, so PyO3 refuses
/// other threads before this is reached.
struct SameThread<T>(T);

// SAFETY: see the type's docs: the value is used on the thread that owns it only.
unsafe impl<T> Send for SameThread<T> {}

impl<T> SameThread<T> {
    fn get(self) -> T {
        self.0
    }
}

/// One teaching env built from a preset, as the `l2t` command builds it.
///
/// Not thread-safe (the student is not `Send`): use it from the thread that made it.
#[pyclass(unsendable, module = "l2t._l2t")]
pub struct Core {
    env: TeachingEnv,
    preset: String,
    low: Array2<f32>,
    high: Array2<f32>,
    /// Seconds spent inside the Rust `step` calls, for the overhead benchmark.
    step_seconds: f64,
}

#[pymethods]
impl Core {
    /// Builds the env of `split` ("teacher" or "student") of the preset `preset`.
    #[new]
    #[pyo3(signature = (preset, split = "teacher", data_dir = None, teaching = None, seed = None, threads = Some(1), irreducible_loss = None))]
    fn new(
        preset: &str,
        split: &str,
        data_dir: Option<PathBuf>,
        teaching: Option<&str>,
        seed: Option<&Bound<'_, PyAny>>,
        threads: Option<i32>,
        irreducible_loss: Option<bool>,
    ) -> PyResult<Self> {
        let split = Split::parse(split)?;
        let resolved = resolve_preset(preset, teaching, seed_arg(seed)?)?;
        set_threads(threads)?;
        let env = build_env(&resolved, split, &data_folder(data_dir), irreducible_loss)?;
        let (low, high) = bounds(&env)?;
        Ok(Self {
            env,
            preset: resolved.name.clone(),
            low,
            high,
            step_seconds: 0.0,
        })
    }

    /// Starts an episode; `seed` re-seeds every stream, None continues them.
    #[pyo3(signature = (seed = None))]
    fn reset<'py>(
        &mut self,
        py: Python<'py>,
        seed: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<(Bound<'py, PyArray2<f32>>, Bound<'py, PyDict>)> {
        let seed = seed_arg(seed)?;
        // Without the GIL: libtorch's autograd engine refuses to run under the GIL
        // once torch is imported in the process, and other Python threads may run.
        let env = SameThread(&mut self.env);
        // A fresh student, built with autograd whatever the thread's torch grad mode.
        let (observation, info) = py
            .detach(move || tch::with_grad(|| env.get().reset(seed)))
            .map_err(env_error)?;
        Ok((observation.features.into_pyarray(py), info_dict(py, &info)?))
    }

    /// Applies a keep-mask; returns (features, reward, terminated, truncated, info).
    #[allow(clippy::type_complexity)]
    fn step<'py>(
        &mut self,
        py: Python<'py>,
        action: &Bound<'py, PyAny>,
    ) -> PyResult<(
        Bound<'py, PyArray2<f32>>,
        f64,
        bool,
        bool,
        Bound<'py, PyDict>,
    )> {
        let m = self.env.config().batch_size;
        let mask = mask_array(action, &[m], "the keep-mask")?
            .into_dimensionality()
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        let env = SameThread(&mut self.env);
        let (step, seconds) = py.detach(move || {
            let start = std::time::Instant::now();
            // The student trains with autograd whatever the calling thread's torch grad
            // mode (libtorch's, shared with an imported torch): TorchRL's collectors step
            // envs under torch.no_grad(), which tch would otherwise inherit.
            let step = tch::with_grad(|| env.get().step(&mask));
            (step, start.elapsed().as_secs_f64())
        });
        self.step_seconds += seconds;
        let step = step.map_err(env_error)?;
        Ok((
            step.observation.features.into_pyarray(py),
            step.reward,
            step.terminated,
            step.truncated,
            info_dict(py, &step.info)?,
        ))
    }

    /// Column names of the feature matrix.
    #[getter]
    fn feature_names(&self) -> Vec<String> {
        self.env.feature_names().to_vec()
    }

    /// M: instances per incoming batch (rows of the observation).
    #[getter]
    fn batch_size(&self) -> usize {
        self.env.config().batch_size
    }

    /// Per-column lower bounds of the observation, shape (M, F).
    #[getter]
    fn low<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<f32>> {
        self.low.clone().into_pyarray(py)
    }

    /// Per-column upper bounds of the observation, shape (M, F).
    #[getter]
    fn high<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<f32>> {
        self.high.clone().into_pyarray(py)
    }

    /// The teaching config in force, as JSON.
    #[getter]
    fn config_json(&self) -> PyResult<String> {
        serde_json::to_string(self.env.config()).map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }

    /// The preset's name.
    #[getter]
    fn preset(&self) -> &str {
        &self.preset
    }

    /// Benchmark hook: the seconds spent inside the Rust env's `step` over all `step`
    /// calls so far (the binding's own work excluded).
    #[getter]
    fn _rust_step_seconds(&self) -> f64 {
        self.step_seconds
    }

    /// Benchmark hook (`python/bench/step_overhead.py`): resets with `seed`, then
    /// steps `steps` times in Rust with the mask pattern of the tests, resetting at the
    /// ends of episodes; returns the seconds spent in `step` and a checksum of the
    /// rewards and first features. The reference the binding's overhead is measured on.
    fn _rust_step_loop(&mut self, py: Python<'_>, steps: usize, seed: u64) -> PyResult<(f64, f64)> {
        let m = self.env.config().batch_size;
        let env = SameThread(&mut self.env);
        py.detach(move || {
            let env = env.get();
            env.reset(Some(seed))?;
            let (mut seconds, mut checksum) = (0.0, 0.0f64);
            for t in 0..steps {
                let action = Array1::from_shape_fn(m, |i| {
                    t.is_multiple_of(4) || !(t * 7 + i * 3).is_multiple_of(5)
                });
                let start = std::time::Instant::now();
                let step = env.step(&action)?;
                seconds += start.elapsed().as_secs_f64();
                checksum += step.reward + f64::from(step.observation.features[[0, 0]]);
                if step.done() {
                    env.reset(None)?;
                }
            }
            Ok((seconds, checksum))
        })
        .map_err(env_error)
    }

    /// Accuracy of the current student on the dev split.
    fn dev_accuracy(&self) -> PyResult<f64> {
        self.env.evaluate(self.env.dev_data()).map_err(env_error)
    }
}

/// What [`VectorCore::reset`] returns: the observations (N, M, F) and the infos.
type VecResetOutput<'py> = (Bound<'py, PyArray3<f32>>, Vec<Bound<'py, PyDict>>);

/// The outcome of a vector step, assembled without the GIL.
struct VecOutcome {
    observations: Array3<f32>,
    rewards: Vec<f64>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    infos: Vec<TeachingInfo>,
    final_observations: Vec<Option<Array2<f32>>>,
    final_infos: Vec<Option<TeachingInfo>>,
}

/// The observations of N envs as one `(N, M, F)` array (one copy per env).
fn stack(observations: &[TeachingObservation], m: usize, f: usize) -> Array3<f32> {
    let mut out = Array3::zeros((observations.len(), m, f));
    for (mut row, o) in out.axis_iter_mut(Axis(0)).zip(observations) {
        row.assign(&o.features);
    }
    out
}

/// N teaching envs of one preset on worker threads ([`ThreadedVectorEnv`]): env `i`
/// is seeded with `seed + i`; an env whose episode ends is reset as its [`Autoreset`]
/// mode says (Gymnasium's three modes, all in Rust: the Python class only names them).
#[pyclass(module = "l2t._l2t")]
pub struct VectorCore {
    env: Mutex<ThreadedVectorEnv<TeachingEnv>>,
    autoreset: Autoreset,
    num_envs: usize,
    batch_size: usize,
    num_features: usize,
    feature_names: Vec<String>,
    low: Array2<f32>,
    high: Array2<f32>,
}

#[pymethods]
impl VectorCore {
    /// `num_envs` envs of the preset on `num_workers` threads (default: one per env,
    /// at most the number of cores); the data is loaded once and shared.
    /// `autoreset_mode`: Gymnasium's name of the mode (`"NextStep"`, `"SameStep"`,
    /// `"Disabled"`).
    #[new]
    #[pyo3(signature = (preset, num_envs, split = "teacher", data_dir = None, teaching = None, seed = None, threads = Some(1), num_workers = None, irreducible_loss = None, autoreset_mode = "SameStep"))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        preset: &str,
        num_envs: usize,
        split: &str,
        data_dir: Option<PathBuf>,
        teaching: Option<&str>,
        seed: Option<&Bound<'_, PyAny>>,
        threads: Option<i32>,
        num_workers: Option<usize>,
        irreducible_loss: Option<bool>,
        autoreset_mode: &str,
    ) -> PyResult<Self> {
        if num_envs == 0 {
            return Err(PyValueError::new_err("num_envs must be at least 1"));
        }
        let autoreset = Autoreset::parse(autoreset_mode).map_err(env_error)?;
        let split = Split::parse(split)?;
        let resolved = resolve_preset(preset, teaching, seed_arg(seed)?)?;
        set_threads(threads)?;
        let first = build_env(&resolved, split, &data_folder(data_dir), irreducible_loss)?;
        let (low, high) = bounds(&first)?;
        let feature_names = first.feature_names().to_vec();
        let batch_size = first.config().batch_size;
        let task = TrainingTask::of(&first, resolved.student.clone(), 1);
        drop(first);
        let factories = task.env_factories(num_envs);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = num_workers.unwrap_or(cores).clamp(1, num_envs);
        let env = py
            .detach(|| ThreadedVectorEnv::with_autoreset(factories, workers, autoreset))
            .map_err(|e| build_error(&resolved, Path::new(""), e))?;
        Ok(Self {
            env: Mutex::new(env),
            autoreset,
            num_envs,
            batch_size,
            num_features: feature_names.len(),
            feature_names,
            low,
            high,
        })
    }

    /// Starts an episode in every env: env `i` gets `seed + i`, or continues its
    /// streams when `seed` is None. Returns (observations (N, M, F), infos).
    #[pyo3(signature = (seed = None))]
    fn reset<'py>(
        &self,
        py: Python<'py>,
        seed: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<VecResetOutput<'py>> {
        let seed = seed_arg(seed)?;
        let (m, f) = (self.batch_size, self.num_features);
        let env = &self.env;
        let (observations, infos) = py
            .detach(|| {
                let mut env = env.lock().map_err(|_| poisoned())?;
                let (observations, infos) = env.reset(seed).map_err(VecError::Env)?;
                Ok::<_, VecError>((stack(&observations, m, f), infos))
            })
            .map_err(VecError::into_py)?;
        let infos = infos
            .iter()
            .map(|i| info_dict(py, i))
            .collect::<PyResult<Vec<_>>>()?;
        Ok((observations.into_pyarray(py), infos))
    }

    /// Resets env `i` with `seeds[i]` (None continues its streams) where `mask[i]`,
    /// and leaves the others (Gymnasium's `reset_mask`); returns the observations
    /// (K, M, F) and the infos of the K reset envs, in env order.
    fn reset_some<'py>(
        &self,
        py: Python<'py>,
        seeds: Vec<Option<Bound<'py, PyAny>>>,
        mask: Vec<bool>,
    ) -> PyResult<VecResetOutput<'py>> {
        let seeds = seeds
            .iter()
            .map(|s| seed_arg(s.as_ref()))
            .collect::<PyResult<Vec<_>>>()?;
        let (m, f) = (self.batch_size, self.num_features);
        let env = &self.env;
        let (observations, infos) = py
            .detach(|| {
                let mut env = env.lock().map_err(|_| poisoned())?;
                let reset = env.reset_some(&seeds, &mask).map_err(VecError::Env)?;
                let (observations, infos): (Vec<_>, Vec<_>) = reset.into_iter().flatten().unzip();
                Ok::<_, VecError>((stack(&observations, m, f), infos))
            })
            .map_err(VecError::into_py)?;
        let infos = infos
            .iter()
            .map(|i| info_dict(py, i))
            .collect::<PyResult<Vec<_>>>()?;
        Ok((observations.into_pyarray(py), infos))
    }

    /// Applies `actions` (shape (N, M)) under the autoreset mode; returns
    /// (observations, rewards, terminated, truncated, infos, final_observations,
    /// final_infos), the last two with None where env `i` did not end (always None
    /// but in the same-step mode).
    #[allow(clippy::type_complexity)]
    fn step<'py>(
        &self,
        py: Python<'py>,
        actions: &Bound<'py, PyAny>,
    ) -> PyResult<(
        Bound<'py, PyArray3<f32>>,
        Bound<'py, PyArray1<f64>>,
        Bound<'py, PyArray1<bool>>,
        Bound<'py, PyArray1<bool>>,
        Vec<Bound<'py, PyDict>>,
        Vec<Option<Bound<'py, PyArray2<f32>>>>,
        Vec<Option<Bound<'py, PyDict>>>,
    )> {
        let (n, m, f) = (self.num_envs, self.batch_size, self.num_features);
        let masks = mask_array(actions, &[n, m], "the actions")?;
        let masks: Vec<Array1<bool>> = masks
            .outer_iter()
            .map(|row| row.iter().copied().collect())
            .collect();
        let env = &self.env;
        let out = py
            .detach(|| {
                let mut env = env.lock().map_err(|_| poisoned())?;
                let step = env.step(&masks).map_err(VecError::Env)?;
                Ok::<_, VecError>(VecOutcome {
                    observations: stack(&step.observations, m, f),
                    rewards: step.rewards,
                    terminated: step.terminated,
                    truncated: step.truncated,
                    infos: step.infos,
                    final_observations: step
                        .final_observations
                        .into_iter()
                        .map(|o| o.map(|o| o.features))
                        .collect(),
                    final_infos: step.final_infos,
                })
            })
            .map_err(VecError::into_py)?;
        let infos = out
            .infos
            .iter()
            .map(|i| info_dict(py, i))
            .collect::<PyResult<Vec<_>>>()?;
        let final_infos = out
            .final_infos
            .iter()
            .map(|i| i.as_ref().map(|i| info_dict(py, i)).transpose())
            .collect::<PyResult<Vec<_>>>()?;
        Ok((
            out.observations.into_pyarray(py),
            Array1::from(out.rewards).into_pyarray(py),
            Array1::from(out.terminated).into_pyarray(py),
            Array1::from(out.truncated).into_pyarray(py),
            infos,
            out.final_observations
                .into_iter()
                .map(|o| o.map(|o| o.into_pyarray(py)))
                .collect(),
            final_infos,
        ))
    }

    /// N: the number of envs.
    #[getter]
    fn num_envs(&self) -> usize {
        self.num_envs
    }

    /// Gymnasium's name of the autoreset mode (`AutoresetMode(name)`).
    #[getter]
    fn autoreset_mode(&self) -> &'static str {
        self.autoreset.name()
    }

    /// M: instances per incoming batch.
    #[getter]
    fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Column names of the feature matrix.
    #[getter]
    fn feature_names(&self) -> Vec<String> {
        self.feature_names.clone()
    }

    /// Per-column lower bounds of one env's observation, shape (M, F).
    #[getter]
    fn low<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<f32>> {
        self.low.clone().into_pyarray(py)
    }

    /// Per-column upper bounds of one env's observation, shape (M, F).
    #[getter]
    fn high<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<f32>> {
        self.high.clone().into_pyarray(py)
    }
}

/// An error met without the GIL, turned into a Python exception after.
enum VecError {
    Env(l2t_envs::EnvError),
    Poisoned,
}

impl VecError {
    fn into_py(self) -> PyErr {
        match self {
            VecError::Env(e) => env_error(e),
            VecError::Poisoned => {
                PyRuntimeError::new_err("the vector env failed in an earlier call; make a new one")
            }
        }
    }
}

fn poisoned() -> VecError {
    VecError::Poisoned
}

/// A built-in teacher ([`TeacherConfig`]) for an env's feature layout.
#[pyclass(module = "l2t._l2t")]
pub struct TeacherCore {
    teacher: Mutex<Box<dyn Teacher>>,
    name: String,
    layout: FeatureLayout,
    num_features: usize,
    state_columns: [usize; 3],
}

#[pymethods]
impl TeacherCore {
    /// The teacher of the JSON config `config` (e.g. `{"kind": "spl"}`) for an env
    /// whose feature columns are `feature_names`.
    #[new]
    fn new(config: &str, feature_names: Vec<String>) -> PyResult<Self> {
        let layout = FeatureLayout::new(feature_names);
        let teacher = TeacherConfig::from_json(config)
            .and_then(|c| c.build(&layout))
            .map_err(agent_error)?;
        Ok(Self {
            name: teacher.name().to_string(),
            teacher: Mutex::new(teacher),
            num_features: layout.len(),
            state_columns: state_columns(layout.names())?,
            layout,
        })
    }

    /// The feature columns the teacher was built for.
    #[getter]
    fn feature_names(&self) -> Vec<String> {
        self.layout.names().to_vec()
    }

    /// The keep-mask (int8 0/1, shape (M,)) for the observation `features` (M, F) and
    /// the `info` the env returned with it.
    fn act<'py>(
        &self,
        py: Python<'py>,
        features: &Bound<'py, PyAny>,
        info: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyArray1<i8>>> {
        // An info from an l2t env names its columns: they must be the teacher's.
        if let Some(names) = info_value(info, "feature_names")? {
            let names: Vec<String> = names.extract().map_err(|_| {
                PyTypeError::new_err("info[\"feature_names\"] must be a sequence of str")
            })?;
            let found = FeatureLayout::new(names);
            if !self.layout.matches(&found) {
                return Err(PyValueError::new_err(format!(
                    "teacher `{}` was built for other feature columns than the env's: {}; \
                     build it for the env it teaches (l2t.Teacher(config, env))",
                    self.name,
                    self.layout.differences(&found)
                )));
            }
        }
        let features: PyReadonlyArray2<f32> = features.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "the observation must be a float32 numpy array of shape (M, {})",
                self.num_features
            ))
        })?;
        let features = features.as_array();
        if features.ncols() != self.num_features || features.nrows() == 0 {
            return Err(PyValueError::new_err(format!(
                "the observation must have shape (M, {}), got {}",
                self.num_features,
                shape_text(features.shape())
            )));
        }
        let student_state = Array1::from_iter(self.state_columns.iter().map(|&c| features[[0, c]]));
        let observation = TeachingObservation {
            features: features.to_owned(),
            student_state,
            layout: self.layout.clone(),
        };
        let info = info_from_dict(info)?;
        let teacher = &self.teacher;
        let mask = py
            .detach(|| {
                let mut teacher = teacher.lock().map_err(|_| None)?;
                teacher.act(&observation, &info).map_err(Some)
            })
            .map_err(teacher_error)?;
        Ok(mask.mapv(i8::from).into_pyarray(py))
    }

    /// Records the reward of the last action.
    fn observe(&self, reward: f64, done: bool) -> PyResult<()> {
        let mut teacher = self
            .teacher
            .lock()
            .map_err(|_| PyRuntimeError::new_err("the teacher failed in an earlier call"))?;
        teacher.observe(reward, done).map_err(agent_error)
    }

    /// The teacher's name (as in the `l2t` command's tables).
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }
}

/// A teacher's error, or `None` for a teacher poisoned by an earlier panic.
fn teacher_error(e: Option<l2t_agents::AgentError>) -> PyErr {
    match e {
        Some(e) => agent_error(e),
        None => PyRuntimeError::new_err("the teacher failed in an earlier call"),
    }
}

/// The version of the libtorch this module was built against (the `build-version`
/// file of its folder, read at build time), or None if unknown. `l2t/_libtorch.py`
/// loads a libtorch of this version before it imports the module.
#[pyfunction]
fn libtorch_version() -> Option<&'static str> {
    Some(env!("L2T_LIBTORCH_VERSION")).filter(|v| *v != "unknown")
}

/// The floating-point code paths this process runs, `"native"` or `"portable"`
/// (`l2t_envs::numerics`): chosen by `L2T_NUMERICS` before `import l2t`, or by MKL's,
/// ATen's and oneDNN's own variables set outside.
#[pyfunction]
fn numerics() -> String {
    l2t_envs::Numerics::in_effect().to_string()
}

/// Makes the package's own copy of the shipped teachers (`l2t/checkpoints/`, package
/// data of the wheel) the default folder of shipped teachers, as `import l2t` does.
#[pyfunction]
fn use_packaged_checkpoints(dir: PathBuf) {
    l2t::presets::use_packaged_checkpoints(dir);
}

/// The folder of shipped teachers runs reuse (`$L2T_CHECKPOINTS`, else the package's
/// own copy, else the repository's).
#[pyfunction]
fn shipped_checkpoints_dir() -> PathBuf {
    l2t::presets::shipped_checkpoints_dir()
}

/// The default data folder (`$L2T_DATA`, else the set-up's cache).
#[pyfunction]
fn data_dir() -> PathBuf {
    default_data_dir()
}

/// The native core of the `l2t` package.
#[pymodule]
fn _l2t(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Before any libtorch operation of this module, as the `l2t` command does at its
    // start: `L2T_NUMERICS=portable` pins MKL, ATen and oneDNN to their AVX2 paths.
    l2t_envs::Numerics::from_env()
        .and_then(l2t_envs::Numerics::apply)
        .map_err(env_error)?;
    m.add_class::<Core>()?;
    m.add_class::<VectorCore>()?;
    m.add_class::<TeacherCore>()?;
    m.add_function(wrap_pyfunction!(libtorch_version, m)?)?;
    m.add_function(wrap_pyfunction!(data_dir, m)?)?;
    m.add_function(wrap_pyfunction!(numerics, m)?)?;
    m.add_function(wrap_pyfunction!(use_packaged_checkpoints, m)?)?;
    m.add_function(wrap_pyfunction!(shipped_checkpoints_dir, m)?)?;
    m.add_function(wrap_pyfunction!(run::compare, m)?)?;
    m.add_function(wrap_pyfunction!(run::train, m)?)?;
    m.add_function(wrap_pyfunction!(cli::cli, m)?)?;
    // The crate's version, the one source of `l2t.__version__` and the wheel's version.
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("PRESETS", PRESETS.to_vec())?;
    m.add("TEACHER_KINDS", TeacherConfig::names().to_vec())?;
    m.add("ResetNeeded", m.py().get_type::<ResetNeeded>())?;
    Ok(())
}
