//! The checkpoint file format of learned teachers, and nothing else: safetensors, the
//! metadata, the checksum, versions, atomic writes and typed errors.
//!
//! What a checkpoint holds is each teacher's business: a learned teacher implements
//! [`Checkpointed`] in its own file (its named tensors, its optimizers' states, its
//! serde state and its progress, both ways), and this module stores and checks them.
//! The registry (`l2t_agents::load_teacher`, beside `TeacherConfig`) reads a file
//! ([`CheckpointFile::read`]) and picks the type by the stored kind. Adding a learned
//! teacher touches its own file and the registry only.
//!
//! A checkpoint restores everything that decides the teacher's future: the network
//! weights, the Adam state of every optimizer, the reward baseline, the episode count
//! (which sets the learning-rate decay) and the position of the action-sampling
//! stream. A teacher loaded from a checkpoint therefore samples the same masks and
//! learns the same weights as the teacher that was saved. Save between updates: the
//! episodes of an update in progress are not stored.
//!
//! # File format (version 4)
//!
//! A checkpoint is one [safetensors](https://github.com/huggingface/safetensors) file, the
//! standard tensor container that tch, PyTorch and most ML tools read:
//!
//! - tensors (f32, little-endian): every network variable as `weight/<name>` with its
//!   shape, in the order of [`Checkpointed::variables`], and each optimizer's moments as
//!   `adam/<k>/<i>/exp_avg` and `adam/<k>/<i>/exp_avg_sq` (optimizer k of
//!   [`Checkpointed::optimizers`], variable i in name order, flattened);
//! - one metadata entry, `l2t`, a JSON object: `format` (`"l2t-teacher"`), `version`
//!   (4), `checksum` and `state`, the serde state as JSON text: the teacher kind
//!   ([`Checkpointed::KIND`]), the teacher's [`Checkpointed::State`] as JSON (stored as
//!   `config_json`), the feature dimension and the names of the feature columns the
//!   teacher was trained on (`feature_names`, [`Checkpointed::layout`]), the variable
//!   names, each optimizer's step counts, the baseline, the episode count and the
//!   sampling stream (ChaCha8 seed, stream, word position): [`Progress`].
//!
//! Version 3 files (earlier builds, without `feature_names`) still load: their layout
//! is known by its width only ([`FeatureLayout::unnamed`]), and
//! [`CheckpointFile::layout_note`] says so. A teacher restored for an env
//! ([`CheckpointFile::restore`] with the env's layout, as training resumes) must have
//! been trained on exactly its columns; a teacher loaded to teach
//! (`l2t_agents::load_teacher`) reads its trained columns by name from any env that has
//! them all, with the same classes ([`l2t_envs::FeatureLayout::positions_in`]).
//!
//! `checksum` is the FNV-1a (64-bit) hash of the state text followed by every tensor's
//! bytes in the order above: with safetensors' own checks of the header and the data
//! length, it detects truncation and corruption; every failure is a typed
//! [`AgentError`] naming the file, never a panic. Files of the hand-made format of
//! earlier builds (versions 1 and 2, starting with `L2TTEACH`) are refused with
//! [`AgentError::UnsupportedCheckpointVersion`]. Files are written through
//! [`l2t_envs::io::write_atomic`] (`<path>.part`, flushed, renamed), so a crash never
//! leaves half a file under the final name.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use rand::SeedableRng as _;
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::error::{AgentError, Result};
use l2t_envs::student::{Adam, AdamState};
use l2t_envs::FeatureLayout;

/// The `format` of every teacher checkpoint's `l2t` metadata.
pub const CHECKPOINT_FORMAT: &str = "l2t-teacher";
/// The format version this build writes.
pub const CHECKPOINT_VERSION: u32 = 4;
/// The earliest format version this build reads (without feature names).
const OLDEST_READABLE_VERSION: u32 = 3;
/// The first bytes of the hand-made checkpoints of earlier builds (versions 1 and 2).
const LEGACY_MAGIC: &[u8; 8] = b"L2TTEACH";
/// The safetensors metadata key holding the [`Header`].
const METADATA_KEY: &str = "l2t";
/// One variable of a network.
#[derive(Debug, Clone, PartialEq)]
struct NamedTensor {
    name: String,
    shape: Vec<i64>,
    values: Vec<f32>,
}

/// The exact position of a ChaCha8 generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RngState {
    seed: [u8; 32],
    stream: u64,
    word_pos: u128,
}

impl RngState {
    fn of(rng: &ChaCha8Rng) -> Self {
        Self {
            seed: rng.get_seed(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos(),
        }
    }

    fn restore(&self) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::from_seed(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(self.word_pos);
        rng
    }
}

/// A checkpoint in memory: the serde state and the tensors.
#[derive(Debug, Clone, PartialEq)]
struct Payload {
    kind: String,
    config_json: String,
    feature_dim: u64,
    /// `None` in a version 3 file.
    feature_names: Option<Vec<String>>,
    weights: Vec<NamedTensor>,
    optimizers: Vec<AdamState>,
    baseline: Option<f64>,
    episodes: u64,
    sampling_rng: RngState,
}

/// The serde part of a checkpoint (everything but the tensors' values).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    kind: String,
    config_json: String,
    feature_dim: u64,
    /// The trained layout's column names (absent in version 3 files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    feature_names: Option<Vec<String>>,
    /// Name and shape of each network variable, in stored order.
    weights: Vec<(String, Vec<i64>)>,
    /// Each optimizer's per-variable step counts.
    adam_steps: Vec<Vec<u64>>,
    baseline: Option<f64>,
    episodes: u64,
    sampling_rng: RngState,
}

/// The `l2t` metadata entry.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    /// FNV-1a of `state` then of every tensor's bytes, as 16 hex digits.
    checksum: String,
    /// [`State`] as JSON text (hashed as written).
    state: String,
}

/// FNV-1a, 64 bits, continued from `hash`: a cheap hash that detects flipped and
/// shifted bytes.
fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn io_error(path: &Path, source: std::io::Error) -> AgentError {
    AgentError::CheckpointIo {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> AgentError {
    AgentError::CorruptCheckpoint {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The tensors of `payload` in stored order: names and little-endian f32 bytes.
fn tensor_bytes(payload: &Payload) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let le = |values: &[f32]| values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = payload
        .weights
        .iter()
        .map(|w| {
            let shape = w.shape.iter().map(|&d| d as usize).collect();
            (format!("weight/{}", w.name), shape, le(&w.values))
        })
        .collect();
    for (k, adam) in payload.optimizers.iter().enumerate() {
        for (i, (m, v)) in adam.exp_avg.iter().zip(&adam.exp_avg_sq).enumerate() {
            tensors.push((format!("adam/{k}/{i}/exp_avg"), vec![m.len()], le(m)));
            tensors.push((format!("adam/{k}/{i}/exp_avg_sq"), vec![v.len()], le(v)));
        }
    }
    tensors
}

/// The checksum of a state text and the tensors' bytes.
fn checksum<'a>(state: &str, tensors: impl Iterator<Item = &'a [u8]>) -> String {
    let hash = tensors.fold(fnv1a(FNV_OFFSET, state.as_bytes()), fnv1a);
    format!("{hash:016x}")
}

/// `payload` as safetensors bytes of the current version (tests damage files with it).
#[cfg(test)]
fn encode(payload: &Payload) -> std::result::Result<Vec<u8>, String> {
    encode_as(payload, CHECKPOINT_VERSION)
}

/// `payload` as safetensors bytes of format `version` (tests write version 3 files).
fn encode_as(payload: &Payload, version: u32) -> std::result::Result<Vec<u8>, String> {
    let state = State {
        kind: payload.kind.clone(),
        config_json: payload.config_json.clone(),
        feature_dim: payload.feature_dim,
        feature_names: payload.feature_names.clone(),
        weights: (payload.weights.iter())
            .map(|w| (w.name.clone(), w.shape.clone()))
            .collect(),
        adam_steps: payload.optimizers.iter().map(|a| a.steps.clone()).collect(),
        baseline: payload.baseline,
        episodes: payload.episodes,
        sampling_rng: payload.sampling_rng.clone(),
    };
    let state = serde_json::to_string(&state).map_err(|e| e.to_string())?;
    let tensors = tensor_bytes(payload);
    let header = Header {
        format: CHECKPOINT_FORMAT.into(),
        version,
        checksum: checksum(&state, tensors.iter().map(|(_, _, b)| b.as_slice())),
        state,
    };
    let header = serde_json::to_string(&header).map_err(|e| e.to_string())?;
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            Ok((
                name.as_str(),
                TensorView::new(Dtype::F32, shape.clone(), bytes)?,
            ))
        })
        .collect::<std::result::Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| format!("{e:?}"))?;
    safetensors::tensor::serialize(
        views,
        &Some(HashMap::from([(METADATA_KEY.to_string(), header)])),
    )
    .map_err(|e| format!("{e:?}"))
}

/// Checks `bytes` read from `path` (safetensors structure, format, version, checksum)
/// and decodes the checkpoint.
fn decode(path: &Path, bytes: &[u8]) -> Result<Payload> {
    if bytes.starts_with(LEGACY_MAGIC) {
        let found = bytes
            .get(8..12)
            .and_then(|v| v.try_into().ok())
            .map_or(0, u32::from_le_bytes);
        return Err(AgentError::UnsupportedCheckpointVersion {
            path: path.to_path_buf(),
            found,
            supported: CHECKPOINT_VERSION,
        });
    }
    let tensors = match SafeTensors::deserialize(bytes) {
        Ok(tensors) => tensors,
        // Eight bytes of header length then `{`: a safetensors file, cut or damaged.
        Err(e) if bytes.len() < 9 || bytes[8] == b'{' => {
            return Err(corrupt(
                path,
                format!("truncated or damaged ({} bytes): {e:?}", bytes.len()),
            ))
        }
        Err(_) => {
            return Err(AgentError::NotACheckpoint {
                path: path.to_path_buf(),
            })
        }
    };
    let (_, metadata) = SafeTensors::read_metadata(bytes)
        .map_err(|e| corrupt(path, format!("truncated or damaged: {e:?}")))?;
    let Some(header) = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(METADATA_KEY))
    else {
        return Err(AgentError::NotACheckpoint {
            path: path.to_path_buf(),
        });
    };
    let header: Header = serde_json::from_str(header)
        .map_err(|e| corrupt(path, format!("unreadable `{METADATA_KEY}` metadata: {e}")))?;
    if header.format != CHECKPOINT_FORMAT {
        return Err(AgentError::NotACheckpoint {
            path: path.to_path_buf(),
        });
    }
    if !(OLDEST_READABLE_VERSION..=CHECKPOINT_VERSION).contains(&header.version) {
        return Err(AgentError::UnsupportedCheckpointVersion {
            path: path.to_path_buf(),
            found: header.version,
            supported: CHECKPOINT_VERSION,
        });
    }
    let state: State = serde_json::from_str(&header.state)
        .map_err(|e| corrupt(path, format!("unreadable state: {e}")))?;
    match &state.feature_names {
        Some(names) if names.len() as u64 != state.feature_dim => {
            return Err(corrupt(
                path,
                format!(
                    "{} feature names for {} features",
                    names.len(),
                    state.feature_dim
                ),
            ))
        }
        None if header.version >= 4 => return Err(corrupt(path, "no feature names")),
        _ => {}
    }
    // Every tensor the state names, in stored order, as f32 values.
    let mut names: Vec<String> = state
        .weights
        .iter()
        .map(|(n, _)| format!("weight/{n}"))
        .collect();
    for (k, steps) in state.adam_steps.iter().enumerate() {
        for i in 0..steps.len() {
            names.push(format!("adam/{k}/{i}/exp_avg"));
            names.push(format!("adam/{k}/{i}/exp_avg_sq"));
        }
    }
    if names.len() != tensors.len() {
        return Err(corrupt(
            path,
            format!("{} tensors, the state names {}", tensors.len(), names.len()),
        ));
    }
    let mut views = Vec::with_capacity(names.len());
    for name in &names {
        let view = tensors
            .tensor(name)
            .map_err(|_| corrupt(path, format!("tensor `{name}` is missing")))?;
        if view.dtype() != Dtype::F32 {
            return Err(corrupt(
                path,
                format!("tensor `{name}` is {:?}, not F32", view.dtype()),
            ));
        }
        views.push(view);
    }
    if checksum(&header.state, views.iter().map(|v| v.data())) != header.checksum {
        return Err(corrupt(path, "the contents do not match their checksum"));
    }
    let mut values = views.iter().map(|v| {
        v.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect::<Vec<f32>>()
    });
    let mut weights = Vec::with_capacity(state.weights.len());
    for ((name, shape), view) in state.weights.into_iter().zip(&views) {
        let stored: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        if stored != shape {
            return Err(corrupt(
                path,
                format!(
                    "variable {name} is stored with shape {stored:?}, the state says {shape:?}"
                ),
            ));
        }
        let values = values.next().unwrap_or_default();
        weights.push(NamedTensor {
            name,
            shape,
            values,
        });
    }
    // A policy reading F features has at least F weights: a larger stored F is damage
    // (and is refused before a layout of F names is made).
    let stored: usize = weights.iter().map(|w| w.values.len()).sum();
    if state.feature_dim > stored as u64 {
        return Err(corrupt(
            path,
            format!("{} features for {stored} stored weights", state.feature_dim),
        ));
    }
    let optimizers = state
        .adam_steps
        .into_iter()
        .map(|steps| {
            let (mut exp_avg, mut exp_avg_sq) = (Vec::new(), Vec::new());
            for _ in 0..steps.len() {
                exp_avg.push(values.next().unwrap_or_default());
                exp_avg_sq.push(values.next().unwrap_or_default());
            }
            AdamState {
                steps,
                exp_avg,
                exp_avg_sq,
            }
        })
        .collect();
    Ok(Payload {
        kind: state.kind,
        config_json: state.config_json,
        feature_dim: state.feature_dim,
        feature_names: state.feature_names,
        weights,
        optimizers,
        baseline: state.baseline,
        episodes: state.episodes,
        sampling_rng: state.sampling_rng,
    })
}

/// What a learned teacher has learned besides its tensors and its config: the
/// episodes it learned from, its reward baseline b (REINFORCE's; `None` elsewhere)
/// and the position of its teaching stream.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Episodes learned from (they set the learning-rate decay and the next seeds).
    pub episodes: usize,
    /// b, where the teacher keeps one.
    pub baseline: Option<f64>,
    /// The stream of the keep-masks the teacher samples when it teaches.
    pub sampling_rng: ChaCha8Rng,
}

/// A learned teacher's side of a checkpoint, implemented in its own file: what it
/// stores (named tensors, optimizer states, a serde state, its [`Progress`]) and how it
/// is rebuilt from them. [`save`] and [`CheckpointFile::restore`] do the rest.
///
/// Loading is: check the kind and the feature width, read the [`Self::State`], check
/// [`Self::parameter_count`] against the stored values (before anything is allocated),
/// [`Self::rebuild`] a fresh teacher, copy the stored values into [`Self::variables`]
/// and [`Self::optimizers_mut`], then [`Self::resume`] its progress.
pub trait Checkpointed: Sized {
    /// The kind stored in the file: the teacher's `TeacherConfig` tag.
    const KIND: &'static str;
    /// The serde state: the config, and what the teacher learned that is not a tensor.
    /// A field added to it later with a serde default still reads older files.
    type State: Serialize + DeserializeOwned;

    /// The serde state to store.
    fn state(&self) -> Self::State;
    /// The feature columns the teacher's networks read, stored by name.
    fn layout(&self) -> &FeatureLayout;
    /// The networks' variables by name, in stored order. Shallow: writing into them
    /// writes into the teacher (how a checkpoint is restored).
    fn variables(&self) -> Vec<(String, Tensor)>;
    /// The optimizers, in stored order.
    fn optimizers(&self) -> Vec<&Adam>;
    /// The optimizers, in stored order, to restore their states.
    fn optimizers_mut(&mut self) -> Vec<&mut Adam>;
    /// What the teacher has learned besides tensors and state.
    fn progress(&self) -> Progress;
    /// Scalars of the networks `state` describes for `feature_dim` features (`None` on
    /// overflow): checked against the file before [`Self::rebuild`] allocates them.
    fn parameter_count(state: &Self::State, feature_dim: usize) -> Option<usize>;
    /// A fresh teacher for `state` reading the columns of `layout`, whose variables and
    /// optimizers then receive the stored values.
    fn rebuild(state: Self::State, layout: &FeatureLayout) -> Result<Self>;
    /// Takes up the stored progress, after the variables and optimizers are restored.
    fn resume(&mut self, progress: Progress) -> Result<()>;

    /// Saves the teacher to `path` with [`save`].
    fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save(self, path.as_ref())
    }

    /// Loads a teacher of this kind from `path`. With `env`, the layout of the env it
    /// will teach on, a checkpoint trained on other columns is refused with
    /// [`AgentError::CheckpointLayout`] naming them; a file of another kind with
    /// [`AgentError::CheckpointKind`].
    fn load(path: impl AsRef<Path>, env: Option<&FeatureLayout>) -> Result<Self> {
        CheckpointFile::read(path)?.restore(env)
    }
}

/// Saves `teacher` to `path` in the format of the [module docs](self), atomically:
/// through `<path>.part`, flushed, then renamed.
pub fn save<T: Checkpointed>(teacher: &T, path: &Path) -> Result<()> {
    let progress = teacher.progress();
    let layout = teacher.layout();
    let payload = Payload {
        kind: T::KIND.to_string(),
        config_json: serde_json::to_string(&teacher.state())
            .map_err(|e| io_error(path, std::io::Error::other(e.to_string())))?,
        feature_dim: layout.len() as u64,
        // A teacher restored from a version 3 file without an env keeps not knowing.
        feature_names: layout.is_named().then(|| layout.names().to_vec()),
        weights: export_weights(teacher.variables())?,
        optimizers: (teacher.optimizers().into_iter())
            .map(Adam::export_state)
            .collect::<std::result::Result<_, _>>()?,
        baseline: progress.baseline,
        episodes: progress.episodes as u64,
        sampling_rng: RngState::of(&progress.sampling_rng),
    };
    // Without names (a version 3 file restored without an env) the file stays version 3.
    let version = if layout.is_named() {
        CHECKPOINT_VERSION
    } else {
        OLDEST_READABLE_VERSION
    };
    let bytes =
        encode_as(&payload, version).map_err(|e| io_error(path, std::io::Error::other(e)))?;
    l2t_envs::io::write_atomic(path, &bytes).map_err(|e| io_error(path, e))
}

/// A checkpoint read from disk and checked (structure, format, version, checksum),
/// not yet turned into a teacher: the registry reads its [`kind`](Self::kind), then
/// [`restores`](Self::restore) the type of that kind.
#[derive(Debug)]
pub struct CheckpointFile {
    path: PathBuf,
    payload: Payload,
}

impl CheckpointFile {
    /// Reads and checks the checkpoint at `path`.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(|e| io_error(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            payload: decode(path, &bytes)?,
        })
    }

    /// The stored teacher kind.
    pub fn kind(&self) -> &str {
        &self.payload.kind
    }

    /// The layout the stored teacher was trained on: its column names, or for a version
    /// 3 file only its width ([`FeatureLayout::unnamed`]).
    pub fn layout(&self) -> FeatureLayout {
        match &self.payload.feature_names {
            Some(names) => FeatureLayout::new(names.clone()),
            None => FeatureLayout::unnamed(self.payload.feature_dim as usize),
        }
    }

    /// For a file of an earlier build, which stored no feature names, the note that
    /// its columns are assumed to be the env's, by width; `None` otherwise.
    pub fn layout_note(&self) -> Option<String> {
        self.payload.feature_names.is_none().then(|| {
            format!(
                "checkpoint {} was written by an earlier build that stored no feature names; \
                 its {} columns are taken to be the env's, by width only (save it again to \
                 store them)",
                self.path.display(),
                self.payload.feature_dim
            )
        })
    }

    /// The error for a teacher trained on the columns of this file, taught on `env`.
    pub fn layout_error(&self, env: &FeatureLayout) -> AgentError {
        AgentError::CheckpointLayout {
            path: self.path.clone(),
            differences: self.layout().differences(env),
        }
    }

    /// The episodes the stored teacher has learned from.
    pub fn episodes(&self) -> Result<usize> {
        episodes_of(&self.path, self.payload.episodes)
    }

    /// The error for a kind no loader knows; `known` lists the kinds that are.
    pub fn unknown_kind(&self, known: &[&str]) -> AgentError {
        corrupt(
            &self.path,
            format!(
                "unknown teacher kind `{}` (known: {})",
                self.payload.kind,
                known.join(", ")
            ),
        )
    }

    /// The teacher stored in the file, as a `T`; `env` as in [`Checkpointed::load`]:
    /// the stored layout must match it exactly (a version 3 file: by width, and the
    /// restored teacher then takes `env`'s names).
    pub fn restore<T: Checkpointed>(self, env: Option<&FeatureLayout>) -> Result<T> {
        let mut layout = self.layout();
        if let Some(env) = env {
            if !layout.matches(env) {
                return Err(self.layout_error(env));
            }
            if !layout.is_named() {
                layout = env.clone();
            }
        }
        let Self { path, payload } = self;
        let path = path.as_path();
        if payload.kind != T::KIND {
            return Err(AgentError::CheckpointKind {
                path: path.to_path_buf(),
                found: payload.kind,
                expected: T::KIND.to_string(),
            });
        }
        let feature_dim = layout.len();
        let state: T::State = serde_json::from_str(&payload.config_json)
            .map_err(|e| corrupt(path, format!("unreadable config: {e}")))?;
        // The stored values bound the networks' size: a damaged or crafted header cannot
        // make a rebuild allocate more than the file holds.
        let stored: usize = payload.weights.iter().map(|w| w.values.len()).sum();
        let expected = T::parameter_count(&state, feature_dim);
        if expected != Some(stored) {
            return Err(corrupt(
                path,
                format!(
                    "{stored} stored weights, a `{}` teacher of {feature_dim} features has {}",
                    T::KIND,
                    expected.map_or("more than fit in memory".into(), |n| n.to_string())
                ),
            ));
        }
        let rebuild_error =
            |e: AgentError| corrupt(path, format!("cannot rebuild the teacher: {e}"));
        let mut teacher = T::rebuild(state, &layout).map_err(rebuild_error)?;
        import_weights(path, teacher.variables(), &payload.weights)?;
        import_optimizers(path, teacher.optimizers_mut(), payload.optimizers)?;
        teacher
            .resume(Progress {
                episodes: episodes_of(path, payload.episodes)?,
                baseline: payload.baseline,
                sampling_rng: payload.sampling_rng.restore(),
            })
            .map_err(rebuild_error)?;
        Ok(teacher)
    }
}

/// The number of episodes the teacher in the checkpoint at `path` has learned from
/// (where resumed training continues).
pub fn checkpoint_episodes(path: impl AsRef<Path>) -> Result<usize> {
    CheckpointFile::read(path)?.episodes()
}

/// The current values of `variables` as stored records.
fn export_weights(variables: Vec<(String, Tensor)>) -> Result<Vec<NamedTensor>> {
    let mut weights = Vec::with_capacity(variables.len());
    for (name, tensor) in variables {
        let values = tch::no_grad(|| Vec::<f32>::try_from(tensor.detach().flatten(0, -1)))?;
        weights.push(NamedTensor {
            name,
            shape: tensor.size(),
            values,
        });
    }
    Ok(weights)
}

/// Copies the stored records into `variables`, which must match them name by name
/// and shape by shape.
fn import_weights(
    path: &Path,
    variables: Vec<(String, Tensor)>,
    stored: &[NamedTensor],
) -> Result<()> {
    let stored_names: Vec<&str> = stored.iter().map(|w| w.name.as_str()).collect();
    let expected: Vec<&str> = variables.iter().map(|(n, _)| n.as_str()).collect();
    if stored_names != expected {
        return Err(corrupt(
            path,
            format!("network variables {stored_names:?}, expected {expected:?}"),
        ));
    }
    for ((name, tensor), stored) in variables.into_iter().zip(stored) {
        let shape = tensor.size();
        let numel: usize = shape.iter().map(|&d| d as usize).product();
        if stored.shape != shape || stored.values.len() != numel {
            return Err(corrupt(
                path,
                format!(
                    "variable {name} has shape {:?} and {} values, expected shape {shape:?}",
                    stored.shape,
                    stored.values.len()
                ),
            ));
        }
        let values = Tensor::from_slice(&stored.values).view(shape.as_slice());
        let mut target = tensor;
        tch::no_grad(|| target.f_copy_(&values))?;
    }
    Ok(())
}

/// Restores the Adam states of `optimizers`, one stored state each, in order.
fn import_optimizers(
    path: &Path,
    optimizers: Vec<&mut Adam>,
    stored: Vec<AdamState>,
) -> Result<()> {
    if optimizers.len() != stored.len() {
        return Err(corrupt(
            path,
            format!(
                "{} optimizer states, expected {}",
                stored.len(),
                optimizers.len()
            ),
        ));
    }
    for (optimizer, state) in optimizers.into_iter().zip(stored) {
        optimizer
            .import_state(state)
            .map_err(|e| corrupt(path, e.to_string()))?;
    }
    Ok(())
}

/// The stored episode count.
fn episodes_of(path: &Path, episodes: u64) -> Result<usize> {
    usize::try_from(episodes).map_err(|_| corrupt(path, "episode count out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::BernoulliPolicy;
    use crate::weights::{mlp_parameter_count, named_trainable_in_name_order};
    use l2t_envs::seeding::{stream_rng, Stream};
    use rand::Rng as _;
    use std::path::PathBuf;
    use tch::Kind;

    /// A learned teacher in miniature, to test the format alone: a policy, its Adam, a
    /// serde state and progress.
    #[derive(Debug)]
    struct Toy {
        hidden: usize,
        layout: FeatureLayout,
        policy: BernoulliPolicy,
        adam: Adam,
        progress: Progress,
    }

    #[derive(Serialize, Deserialize)]
    struct ToyState {
        hidden: usize,
    }

    /// Columns `f0..` of a toy env.
    fn toy_layout(width: usize) -> FeatureLayout {
        FeatureLayout::new((0..width).map(|i| format!("f{i}")).collect())
    }

    impl Toy {
        fn new(hidden: usize, feature_dim: usize) -> Result<Self> {
            Self::for_layout(hidden, &toy_layout(feature_dim))
        }

        fn for_layout(hidden: usize, layout: &FeatureLayout) -> Result<Self> {
            let feature_dim = layout.len();
            let mut init = stream_rng(7, Stream::TeacherInit);
            let (policy, adam) =
                BernoulliPolicy::with_adam(feature_dim, hidden, 0.0, 1e-2, &mut init)?;
            Ok(Self {
                hidden,
                layout: layout.clone(),
                policy,
                adam,
                progress: Progress {
                    episodes: 0,
                    baseline: None,
                    sampling_rng: stream_rng(7, Stream::TeacherSampling),
                },
            })
        }

        /// A toy that has learned something: two Adam steps, progress moved on.
        fn trained(hidden: usize, feature_dim: usize) -> Self {
            let mut toy = Self::new(hidden, feature_dim).unwrap();
            for _ in 0..2 {
                let loss = toy
                    .variables()
                    .iter()
                    .map(|(_, t)| t.square().sum(Kind::Float))
                    .fold(Tensor::from(0.0f32), |a, b| a + b);
                toy.adam.backward_step(&loss).unwrap();
            }
            toy.progress.episodes = 3;
            toy.progress.baseline = Some(0.25);
            let _: u64 = toy.progress.sampling_rng.gen();
            toy
        }

        fn weight_bits(&self) -> Vec<u32> {
            self.policy
                .flat_weights()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect()
        }
    }

    impl Checkpointed for Toy {
        const KIND: &'static str = "toy";
        type State = ToyState;

        fn state(&self) -> ToyState {
            ToyState {
                hidden: self.hidden,
            }
        }
        fn layout(&self) -> &FeatureLayout {
            &self.layout
        }
        fn variables(&self) -> Vec<(String, Tensor)> {
            named_trainable_in_name_order(self.policy.var_store())
        }
        fn optimizers(&self) -> Vec<&Adam> {
            vec![&self.adam]
        }
        fn optimizers_mut(&mut self) -> Vec<&mut Adam> {
            vec![&mut self.adam]
        }
        fn progress(&self) -> Progress {
            self.progress.clone()
        }
        fn parameter_count(state: &ToyState, feature_dim: usize) -> Option<usize> {
            mlp_parameter_count(feature_dim, state.hidden)
        }
        fn rebuild(state: ToyState, layout: &FeatureLayout) -> Result<Self> {
            Self::for_layout(state.hidden, layout)
        }
        fn resume(&mut self, progress: Progress) -> Result<()> {
            self.progress = progress;
            Ok(())
        }
    }

    /// A fresh scratch directory for one test.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(test: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("l2t-checkpoint-{test}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
        fn path(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// A small trained toy's checkpoint and its bytes.
    fn small_checkpoint(scratch: &Scratch) -> (PathBuf, Vec<u8>) {
        let path = scratch.path("small.ckpt");
        Toy::trained(3, 4).save(&path).unwrap();
        let bytes = fs::read(&path).unwrap();
        (path, bytes)
    }

    #[test]
    fn a_round_trip_restores_tensors_optimizers_state_and_progress() {
        let scratch = Scratch::new("round-trip");
        let original = Toy::trained(3, 4);
        let path = scratch.path("toy.ckpt");
        original.save(&path).unwrap();
        assert!(!scratch.path("toy.ckpt.part").exists());
        assert_eq!(checkpoint_episodes(&path).unwrap(), 3);
        let file = CheckpointFile::read(&path).unwrap();
        assert_eq!(file.kind(), "toy");
        let loaded: Toy = file.restore(Some(&toy_layout(4))).unwrap();
        assert_eq!(loaded.hidden, 3);
        assert_eq!(loaded.weight_bits(), original.weight_bits());
        assert_eq!(
            loaded.adam.export_state().unwrap(),
            original.adam.export_state().unwrap()
        );
        assert_eq!(loaded.progress.episodes, 3);
        assert_eq!(loaded.progress.baseline, Some(0.25));
        assert_eq!(
            RngState::of(&loaded.progress.sampling_rng),
            RngState::of(&original.progress.sampling_rng)
        );
        // Saving the loaded teacher reproduces the file byte for byte.
        loaded.save(scratch.path("again.ckpt")).unwrap();
        assert_eq!(
            fs::read(&path).unwrap(),
            fs::read(scratch.path("again.ckpt")).unwrap()
        );
    }

    #[test]
    fn other_feature_columns_are_refused_by_name() {
        let scratch = Scratch::new("width");
        let (path, _) = small_checkpoint(&scratch);
        let error = Toy::load(&path, Some(&toy_layout(25))).unwrap_err();
        assert!(
            matches!(&error, AgentError::CheckpointLayout { differences, .. }
                if differences.contains("not expected f4, f5")),
            "{error}"
        );
        // The same width, one column renamed: refused, naming it.
        let mut names = toy_layout(4).names().to_vec();
        names[2] = "irreducible_loss".into();
        let error = Toy::load(&path, Some(&FeatureLayout::new(names))).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("missing f2")
                && message.contains("not expected irreducible_loss")
                && message.contains("irreducible_loss_feature"),
            "{message}"
        );
        let loaded = Toy::load(&path, Some(&toy_layout(4))).unwrap();
        assert_eq!(loaded.layout(), &toy_layout(4));
        assert!(Toy::load(&path, None).is_ok());
    }

    /// A version 3 file (no feature names) loads with its layout known by width, a
    /// note, and the names of the env it is loaded for.
    #[test]
    fn version_3_files_load_by_width_with_a_note() {
        let scratch = Scratch::new("v3");
        let (path, _) = small_checkpoint(&scratch);
        let mut payload = decode(&path, &fs::read(&path).unwrap()).unwrap();
        payload.feature_names = None;
        let old = scratch.path("v3.ckpt");
        fs::write(&old, encode_as(&payload, 3).unwrap()).unwrap();
        let file = CheckpointFile::read(&old).unwrap();
        assert!(!file.layout().is_named());
        assert!(file.layout_note().unwrap().contains("earlier build"));
        assert!(CheckpointFile::read(&path).unwrap().layout_note().is_none());
        let env = FeatureLayout::new(["a", "b", "c", "d"].map(String::from).to_vec());
        let loaded = Toy::load(&old, Some(&env)).unwrap();
        assert_eq!(loaded.layout(), &env);
        assert!(matches!(
            Toy::load(&old, Some(&toy_layout(5))),
            Err(AgentError::CheckpointLayout { .. })
        ));
        assert!(!Toy::load(&old, None).unwrap().layout().is_named());
        // A version 4 file must name its columns.
        fs::write(&old, encode(&payload).unwrap()).unwrap();
        assert!(matches!(
            Toy::load(&old, None),
            Err(AgentError::CorruptCheckpoint { .. })
        ));
    }

    #[test]
    fn every_truncation_is_a_typed_error() {
        let scratch = Scratch::new("truncated");
        let (path, bytes) = small_checkpoint(&scratch);
        let cut = scratch.path("cut.ckpt");
        let check = |len: usize, result: Result<()>| match result {
            Err(AgentError::CorruptCheckpoint { path, reason }) => {
                assert_eq!(path, cut);
                assert!(reason.contains("truncated"), "{len}: {reason}");
            }
            other => panic!("truncated to {len} bytes: {other:?}"),
        };
        // Every length in memory, a sample of them through the file system.
        for len in 0..bytes.len() {
            check(len, decode(&cut, &bytes[..len]).map(|_| ()));
            if len % 61 == 0 || len < 12 || len + 2 > bytes.len() {
                fs::write(&cut, &bytes[..len]).unwrap();
                check(len, Toy::load(&cut, None).map(|_| ()));
            }
        }
        let message = Toy::load(&cut, None).unwrap_err().to_string();
        assert!(message.contains("cut.ckpt"), "{message}");
        // Appended bytes are refused too.
        let mut longer = bytes.clone();
        longer.push(0);
        fs::write(&cut, &longer).unwrap();
        assert!(matches!(
            Toy::load(&cut, None),
            Err(AgentError::CorruptCheckpoint { .. })
        ));
        assert!(Toy::load(&path, None).is_ok());
    }

    #[test]
    fn every_flipped_byte_is_a_typed_error() {
        let scratch = Scratch::new("flipped");
        let (_, bytes) = small_checkpoint(&scratch);
        let bad = scratch.path("bad.ckpt");
        let typed = |error: &AgentError| {
            matches!(
                error,
                AgentError::NotACheckpoint { .. }
                    | AgentError::UnsupportedCheckpointVersion { .. }
                    | AgentError::CorruptCheckpoint { .. }
            )
        };
        // Where the tensors' bytes start: after the 8-byte length and the header.
        let data_start = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x10;
            let error = decode(&bad, &damaged).unwrap_err();
            assert!(typed(&error), "byte {i}: {error}");
            if i >= data_start {
                assert!(
                    matches!(&error, AgentError::CorruptCheckpoint { reason, .. } if reason.contains("checksum")),
                    "byte {i}: {error}"
                );
            }
            if i % 61 == 0 {
                fs::write(&bad, &damaged).unwrap();
                let error = Toy::load(&bad, None).unwrap_err();
                assert!(typed(&error), "byte {i}: {error}");
            }
        }
    }

    #[test]
    fn wrong_magic_version_kind_and_missing_file() {
        let scratch = Scratch::new("magic");
        let (_, bytes) = small_checkpoint(&scratch);
        let other = scratch.path("other.bin");
        fs::write(&other, b"PK\x03\x04 a zip file, not a checkpoint at all").unwrap();
        let error = Toy::load(&other, None).unwrap_err();
        assert!(matches!(error, AgentError::NotACheckpoint { .. }));
        assert!(error
            .to_string()
            .ends_with("is not an l2t teacher checkpoint"));

        // A later format version (same length, so the header stays consistent).
        let version = br#"\"version\":4,"#;
        let at = (bytes.windows(version.len()))
            .position(|w| w == version)
            .unwrap();
        let mut future = bytes.clone();
        future[at + version.len() - 2] = b'5';
        fs::write(&other, &future).unwrap();
        assert!(matches!(
            Toy::load(&other, None),
            Err(AgentError::UnsupportedCheckpointVersion {
                found: 5,
                supported: 4,
                ..
            })
        ));
        // The hand-made format of earlier builds is refused by version, not misread.
        let mut legacy = LEGACY_MAGIC.to_vec();
        legacy.extend_from_slice(&2u32.to_le_bytes());
        legacy.extend_from_slice(&[0; 40]);
        fs::write(&other, &legacy).unwrap();
        assert!(matches!(
            Toy::load(&other, None),
            Err(AgentError::UnsupportedCheckpointVersion { found: 2, .. })
        ));
        // Another program's safetensors file is not a teacher checkpoint.
        let weights = [0u8; 8];
        let foreign = safetensors::tensor::serialize(
            [("w", TensorView::new(Dtype::F32, vec![2], &weights).unwrap())],
            &None,
        )
        .unwrap();
        fs::write(&other, &foreign).unwrap();
        assert!(matches!(
            Toy::load(&other, None),
            Err(AgentError::NotACheckpoint { .. })
        ));

        // A well-formed checkpoint of another teacher kind.
        let mut payload = decode(&other, &bytes).unwrap();
        payload.kind = "actor_critic".to_string();
        fs::write(&other, encode(&payload).unwrap()).unwrap();
        let error = Toy::load(&other, None).unwrap_err();
        assert!(
            matches!(&error, AgentError::CheckpointKind { found, .. } if found == "actor_critic"),
            "{error}"
        );
        let file = CheckpointFile::read(&other).unwrap();
        let message = file.unknown_kind(&["toy"]).to_string();
        assert!(
            message.contains("actor_critic") && message.contains("toy"),
            "{message}"
        );

        // Consistent hash but inconsistent contents: a weight with the wrong shape.
        let mut payload = decode(&other, &bytes).unwrap();
        let numel = payload.weights[0].values.len() as i64;
        payload.weights[0].shape = vec![1, numel];
        fs::write(&other, encode(&payload).unwrap()).unwrap();
        assert!(matches!(
            Toy::load(&other, None),
            Err(AgentError::CorruptCheckpoint { .. })
        ));

        // A consistent hash but an absurd feature width: refused before any allocation.
        let mut payload = decode(&other, &bytes).unwrap();
        payload.feature_dim = 1 << 40;
        fs::write(&other, encode(&payload).unwrap()).unwrap();
        assert!(matches!(
            Toy::load(&other, None),
            Err(AgentError::CorruptCheckpoint { .. })
        ));

        // A state the teacher cannot read.
        let mut payload = decode(&other, &bytes).unwrap();
        payload.config_json = r#"{"hidden": "three"}"#.into();
        fs::write(&other, encode(&payload).unwrap()).unwrap();
        let error = Toy::load(&other, None).unwrap_err();
        assert!(
            matches!(&error, AgentError::CorruptCheckpoint { reason, .. } if reason.contains("config")),
            "{error}"
        );

        let missing = scratch.path("missing.ckpt");
        let error = Toy::load(&missing, None).unwrap_err();
        match &error {
            AgentError::CheckpointIo { path, source } => {
                assert_eq!(path, &missing);
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
        assert!(error.to_string().contains("missing.ckpt"));
        // Saving into a directory that does not exist is an I/O error too.
        assert!(matches!(
            Toy::new(0, 4)
                .unwrap()
                .save(scratch.path("no/such/dir/t.ckpt")),
            Err(AgentError::CheckpointIo { .. })
        ));
    }
}
