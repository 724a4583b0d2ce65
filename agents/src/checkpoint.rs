//! Saving and loading trained teachers: [`Reinforce`], [`ActorCritic`],
//! [`EvolutionStrategies`] and [`Ppo`].
//!
//! A checkpoint restores everything that decides the teacher's future: the network
//! weights, the Adam state of every optimizer, the reward baseline, the episode count
//! (which sets the learning-rate decay) and the position of the action-sampling
//! stream. A teacher loaded from a checkpoint therefore samples the same masks and
//! learns the same weights as the teacher that was saved. Save between updates: the
//! episodes of an update in progress are not stored. [`load_teacher`] reads any kind.
//!
//! # File format (version 3)
//!
//! A checkpoint is one [safetensors](https://github.com/huggingface/safetensors) file, the
//! standard tensor container that tch, PyTorch and most ML tools read:
//!
//! - tensors (f32, little-endian): every network variable as `weight/<name>` with its
//!   shape (sorted by name; the actor-critic's and PPO's prefixed `actor/` and
//!   `critic/`), and each optimizer's moments as `adam/<k>/<i>/exp_avg` and
//!   `adam/<k>/<i>/exp_avg_sq` (optimizer k, variable i in name order, flattened);
//! - one metadata entry, `l2t`, a JSON object: `format` (`"l2t-teacher"`), `version`
//!   (3), `checksum` and `state`, the serde state as JSON text: the teacher kind
//!   (`"reinforce"`, `"actor_critic"`, `"es"` or `"ppo"`), the config as JSON (for ES
//!   with the feature statistics; a config field added later with a default still reads
//!   old files), the feature dimension, the variable names, each optimizer's step
//!   counts, the baseline, the episode count and the sampling stream (ChaCha8 seed,
//!   stream, word position).
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
use std::path::Path;

use rand::SeedableRng as _;
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::actor_critic::{ActorCritic, ActorCriticConfig, Critic};
use crate::error::{AgentError, Result};
use crate::es::{EsConfig, EvolutionStrategies, FeatureStats};
use crate::policy::BernoulliPolicy;
use crate::ppo::{Ppo, PpoConfig};
use crate::reinforce::{Reinforce, ReinforceConfig};
use crate::teacher::Teacher;
use crate::weights::named_trainable_in_name_order;
use l2t_envs::student::{Adam, AdamState};

/// The `format` of every teacher checkpoint's `l2t` metadata.
pub const CHECKPOINT_FORMAT: &str = "l2t-teacher";
/// The format version this build reads and writes.
pub const CHECKPOINT_VERSION: u32 = 3;
/// The first bytes of the hand-made checkpoints of earlier builds (versions 1 and 2).
const LEGACY_MAGIC: &[u8; 8] = b"L2TTEACH";
/// The safetensors metadata key holding the [`Header`].
const METADATA_KEY: &str = "l2t";
/// Teacher kind stored in checkpoints of [`Reinforce`] (its `TeacherConfig` kind).
pub const REINFORCE_KIND: &str = "reinforce";
/// Teacher kind stored in checkpoints of [`ActorCritic`] (its `TeacherConfig` kind).
pub const ACTOR_CRITIC_KIND: &str = "actor_critic";
/// Teacher kind stored in checkpoints of [`EvolutionStrategies`] (its `TeacherConfig` kind).
pub const ES_KIND: &str = "es";
/// Teacher kind stored in checkpoints of [`Ppo`] (its `TeacherConfig` kind).
pub const PPO_KIND: &str = "ppo";

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

/// `payload` as safetensors bytes.
fn encode(payload: &Payload) -> std::result::Result<Vec<u8>, String> {
    let state = State {
        kind: payload.kind.clone(),
        config_json: payload.config_json.clone(),
        feature_dim: payload.feature_dim,
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
        version: CHECKPOINT_VERSION,
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
    if header.version != CHECKPOINT_VERSION {
        return Err(AgentError::UnsupportedCheckpointVersion {
            path: path.to_path_buf(),
            found: header.version,
            supported: CHECKPOINT_VERSION,
        });
    }
    let state: State = serde_json::from_str(&header.state)
        .map_err(|e| corrupt(path, format!("unreadable state: {e}")))?;
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
        weights,
        optimizers,
        baseline: state.baseline,
        episodes: state.episodes,
        sampling_rng: state.sampling_rng,
    })
}

/// Reads and checks the checkpoint at `path`.
fn read_payload(path: &Path) -> Result<Payload> {
    let bytes = fs::read(path).map_err(|e| io_error(path, e))?;
    decode(path, &bytes)
}

/// Refuses a payload of another teacher kind, or one whose network reads another
/// number of features than `expected_feature_dim`; returns its feature dimension.
fn check_kind_and_width(
    path: &Path,
    payload: &Payload,
    kind: &str,
    expected_feature_dim: Option<usize>,
) -> Result<usize> {
    if payload.kind != kind {
        return Err(AgentError::CheckpointKind {
            path: path.to_path_buf(),
            found: payload.kind.clone(),
            expected: kind.to_string(),
        });
    }
    let feature_dim = usize::try_from(payload.feature_dim)
        .map_err(|_| corrupt(path, "feature dimension out of range"))?;
    if let Some(env) = expected_feature_dim {
        if env != feature_dim {
            return Err(AgentError::FeatureWidthMismatch {
                trained: feature_dim,
                env,
            });
        }
    }
    Ok(feature_dim)
}

/// The teacher config stored in `payload`.
fn read_config<T: serde::de::DeserializeOwned>(path: &Path, payload: &Payload) -> Result<T> {
    serde_json::from_str(&payload.config_json)
        .map_err(|e| corrupt(path, format!("unreadable config: {e}")))
}

/// The stored values bound the networks' size: a damaged or crafted header cannot make
/// a rebuild allocate more than the file holds.
fn check_value_count(
    path: &Path,
    payload: &Payload,
    expected: Option<usize>,
    what: &str,
) -> Result<()> {
    let stored: usize = payload.weights.iter().map(|w| w.values.len()).sum();
    if expected != Some(stored) {
        return Err(corrupt(path, format!("{stored} stored weights for {what}")));
    }
    Ok(())
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

/// The number of episodes the teacher in the checkpoint at `path` has learned from
/// (where resumed training continues).
pub fn checkpoint_episodes(path: impl AsRef<Path>) -> Result<usize> {
    let path = path.as_ref();
    let payload = read_payload(path)?;
    episodes_of(path, payload.episodes)
}

/// Loads any checkpointed teacher, choosing the type by the kind stored in the file.
/// With `expected_feature_dim`, a checkpoint whose networks read another number of
/// features is refused with [`AgentError::FeatureWidthMismatch`].
pub fn load_teacher(
    path: impl AsRef<Path>,
    expected_feature_dim: Option<usize>,
) -> Result<Box<dyn Teacher>> {
    let path = path.as_ref();
    let payload = read_payload(path)?;
    Ok(match payload.kind.as_str() {
        REINFORCE_KIND => Box::new(Reinforce::from_payload(
            path,
            payload,
            expected_feature_dim,
        )?),
        ACTOR_CRITIC_KIND => Box::new(ActorCritic::from_payload(
            path,
            payload,
            expected_feature_dim,
        )?),
        ES_KIND => Box::new(EvolutionStrategies::from_payload(
            path,
            payload,
            expected_feature_dim,
        )?),
        PPO_KIND => Box::new(Ppo::from_payload(path, payload, expected_feature_dim)?),
        other => {
            return Err(corrupt(
                path,
                format!(
                    "unknown teacher kind `{other}` (known: {REINFORCE_KIND}, {ACTOR_CRITIC_KIND}, {ES_KIND}, {PPO_KIND})"
                ),
            ))
        }
    })
}

/// Encodes `payload` and writes it to `path` atomically.
fn save_payload(path: &Path, payload: &Payload) -> Result<()> {
    let bytes = encode(payload).map_err(|e| io_error(path, std::io::Error::other(e)))?;
    l2t_envs::io::write_atomic(path, &bytes).map_err(|e| io_error(path, e))
}

/// The config of `payload` as JSON text.
fn config_json(path: &Path, config: &impl Serialize) -> Result<String> {
    serde_json::to_string(config).map_err(|e| io_error(path, std::io::Error::other(e.to_string())))
}

impl Reinforce {
    /// Saves the teacher to `path` (see the [module docs](crate::checkpoint) for the
    /// format), atomically: through `<path>.part`, flushed, then renamed.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let payload = Payload {
            kind: REINFORCE_KIND.to_string(),
            config_json: config_json(path, &self.config)?,
            feature_dim: self.policy.input_dim() as u64,
            weights: export_weights(reinforce_variables(self))?,
            optimizers: vec![self.optimizer.export_state()?],
            baseline: self.baseline,
            episodes: self.episodes as u64,
            sampling_rng: RngState::of(&self.sampling_rng),
        };
        save_payload(path, &payload)
    }

    /// Loads a teacher saved by [`Reinforce::save`]. With `expected_feature_dim`, a
    /// checkpoint whose policy reads another number of features is refused with
    /// [`AgentError::FeatureWidthMismatch`].
    pub fn load(path: impl AsRef<Path>, expected_feature_dim: Option<usize>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_payload(path, read_payload(path)?, expected_feature_dim)
    }

    fn from_payload(
        path: &Path,
        payload: Payload,
        expected_feature_dim: Option<usize>,
    ) -> Result<Self> {
        let feature_dim =
            check_kind_and_width(path, &payload, REINFORCE_KIND, expected_feature_dim)?;
        let config: ReinforceConfig = read_config(path, &payload)?;
        check_value_count(
            path,
            &payload,
            policy_size(feature_dim, config.hidden),
            &format!("a {feature_dim}-{}-1 policy", config.hidden),
        )?;
        let mut teacher = Reinforce::new(config, feature_dim)
            .map_err(|e| corrupt(path, format!("cannot rebuild the teacher: {e}")))?;
        import_weights(path, reinforce_variables(&teacher), &payload.weights)?;
        import_optimizers(path, vec![&mut teacher.optimizer], payload.optimizers)?;
        teacher.baseline = payload.baseline;
        teacher.episodes = episodes_of(path, payload.episodes)?;
        teacher.sampling_rng = payload.sampling_rng.restore();
        Ok(teacher)
    }
}

impl ActorCritic {
    /// Saves the teacher (actor, critic, both Adam states, episode count, sampling
    /// stream) to `path`, atomically, in the format of the [module docs](crate::checkpoint).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let networks = TwoNetworks {
            actor: &self.policy,
            critic: &self.critic,
            optimizers: [&self.actor_optimizer, &self.critic_optimizer],
        };
        let payload = networks.payload(
            ACTOR_CRITIC_KIND,
            config_json(path, &self.config)?,
            self.episodes,
            &self.sampling_rng,
        )?;
        save_payload(path, &payload)
    }

    /// Loads a teacher saved by [`ActorCritic::save`]; `expected_feature_dim` as in
    /// [`Reinforce::load`].
    pub fn load(path: impl AsRef<Path>, expected_feature_dim: Option<usize>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_payload(path, read_payload(path)?, expected_feature_dim)
    }

    fn from_payload(
        path: &Path,
        payload: Payload,
        expected_feature_dim: Option<usize>,
    ) -> Result<Self> {
        let feature_dim =
            check_kind_and_width(path, &payload, ACTOR_CRITIC_KIND, expected_feature_dim)?;
        let config: ActorCriticConfig = read_config(path, &payload)?;
        // Critic: 3 state values -> critic_hidden tanh -> 1.
        check_two_network_size(
            path,
            &payload,
            (feature_dim, config.hidden),
            (3, config.critic_hidden),
        )?;
        let mut teacher = ActorCritic::new(config, feature_dim)
            .map_err(|e| corrupt(path, format!("cannot rebuild the teacher: {e}")))?;
        let ActorCritic {
            policy,
            critic,
            actor_optimizer,
            critic_optimizer,
            ..
        } = &mut teacher;
        let (episodes, sampling_rng) = restore_two_networks(
            path,
            payload,
            (policy, critic),
            [actor_optimizer, critic_optimizer],
        )?;
        teacher.episodes = episodes;
        teacher.sampling_rng = sampling_rng;
        Ok(teacher)
    }
}

impl EvolutionStrategies {
    /// Saves the teacher (theta, its Adam state, the feature statistics beside the
    /// config in the JSON text, the episode count and the teaching stream; a
    /// generation's directions are regenerated from the seed) to `path`,
    /// atomically, in the format of the [module docs](crate::checkpoint).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let payload = Payload {
            kind: ES_KIND.to_string(),
            config_json: config_json(path, &(&self.config, &self.features))?,
            feature_dim: self.theta.input_dim() as u64,
            weights: export_weights(named_trainable_in_name_order(self.theta.var_store()))?,
            optimizers: vec![self.optimizer.export_state()?],
            baseline: None,
            episodes: self.episodes as u64,
            sampling_rng: RngState::of(&self.sampling_rng),
        };
        save_payload(path, &payload)
    }

    /// Loads a teacher saved by [`EvolutionStrategies::save`]; `expected_feature_dim`
    /// as in [`Reinforce::load`].
    pub fn load(path: impl AsRef<Path>, expected_feature_dim: Option<usize>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_payload(path, read_payload(path)?, expected_feature_dim)
    }

    fn from_payload(
        path: &Path,
        payload: Payload,
        expected_feature_dim: Option<usize>,
    ) -> Result<Self> {
        let feature_dim = check_kind_and_width(path, &payload, ES_KIND, expected_feature_dim)?;
        let (config, features): (EsConfig, FeatureStats) = read_config(path, &payload)?;
        if features.sum.len() != feature_dim || features.sum_sq.len() != feature_dim {
            return Err(corrupt(
                path,
                format!(
                    "feature statistics of {} columns for {feature_dim} features",
                    features.sum.len()
                ),
            ));
        }
        check_value_count(
            path,
            &payload,
            policy_size(feature_dim, config.hidden),
            &format!("a {feature_dim}-{}-1 policy", config.hidden),
        )?;
        let mut teacher = EvolutionStrategies::new(config, feature_dim)
            .map_err(|e| corrupt(path, format!("cannot rebuild the teacher: {e}")))?;
        import_weights(
            path,
            named_trainable_in_name_order(teacher.theta.var_store()),
            &payload.weights,
        )?;
        import_optimizers(path, vec![&mut teacher.optimizer], payload.optimizers)?;
        teacher.episodes = episodes_of(path, payload.episodes)?;
        teacher.sampling_rng = payload.sampling_rng.restore();
        teacher.features = features;
        teacher
            .refold()
            .map_err(|e| corrupt(path, format!("cannot rebuild the teacher: {e}")))?;
        Ok(teacher)
    }
}

impl Ppo {
    /// Saves the teacher (actor, critic, both Adam states, episode count, teaching
    /// stream; an update's minibatch order is regenerated from the seed) to `path`,
    /// atomically, in the format of the [module docs](crate::checkpoint).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let networks = TwoNetworks {
            actor: &self.policy,
            critic: &self.critic,
            optimizers: [&self.actor_optimizer, &self.critic_optimizer],
        };
        let payload = networks.payload(
            PPO_KIND,
            config_json(path, &self.config)?,
            self.episodes,
            &self.sampling_rng,
        )?;
        save_payload(path, &payload)
    }

    /// Loads a teacher saved by [`Ppo::save`]; `expected_feature_dim` as in
    /// [`Reinforce::load`].
    pub fn load(path: impl AsRef<Path>, expected_feature_dim: Option<usize>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_payload(path, read_payload(path)?, expected_feature_dim)
    }

    fn from_payload(
        path: &Path,
        payload: Payload,
        expected_feature_dim: Option<usize>,
    ) -> Result<Self> {
        let feature_dim = check_kind_and_width(path, &payload, PPO_KIND, expected_feature_dim)?;
        let config: PpoConfig = read_config(path, &payload)?;
        // Critic: the F features of a step's mean row -> critic_hidden tanh -> 1.
        check_two_network_size(
            path,
            &payload,
            (feature_dim, config.hidden),
            (feature_dim, config.critic_hidden),
        )?;
        let mut teacher = Ppo::new(config, feature_dim)
            .map_err(|e| corrupt(path, format!("cannot rebuild the teacher: {e}")))?;
        let Ppo {
            policy,
            critic,
            actor_optimizer,
            critic_optimizer,
            ..
        } = &mut teacher;
        let (episodes, sampling_rng) = restore_two_networks(
            path,
            payload,
            (policy, critic),
            [actor_optimizer, critic_optimizer],
        )?;
        teacher.episodes = episodes;
        teacher.sampling_rng = sampling_rng;
        Ok(teacher)
    }
}

/// The learned parts of a teacher made of an actor and a critic with an Adam each
/// ([`ActorCritic`], [`Ppo`]), saved and restored alike.
struct TwoNetworks<'a> {
    actor: &'a BernoulliPolicy,
    critic: &'a Critic,
    /// The actor's Adam, then the critic's.
    optimizers: [&'a Adam; 2],
}

impl TwoNetworks<'_> {
    /// The payload of a `kind` teacher with these networks and `config_json`.
    fn payload(
        &self,
        kind: &str,
        config_json: String,
        episodes: usize,
        sampling_rng: &ChaCha8Rng,
    ) -> Result<Payload> {
        Ok(Payload {
            kind: kind.to_string(),
            config_json,
            feature_dim: self.actor.input_dim() as u64,
            weights: export_weights(actor_and_critic_variables(
                self.actor.var_store(),
                &self.critic.vs,
            ))?,
            optimizers: self
                .optimizers
                .iter()
                .map(|adam| adam.export_state())
                .collect::<std::result::Result<_, _>>()?,
            baseline: None,
            episodes: episodes as u64,
            sampling_rng: RngState::of(sampling_rng),
        })
    }
}

/// Refuses a payload whose stored values are not those of an `actor` = (F, H) network
/// F-H-1 and a `critic` = (inputs, hidden) network inputs-hidden-1.
fn check_two_network_size(
    path: &Path,
    payload: &Payload,
    actor: (usize, usize),
    critic: (usize, usize),
) -> Result<()> {
    let total = policy_size(actor.0, actor.1)
        .zip(policy_size(critic.0, critic.1))
        .and_then(|(a, c)| a.checked_add(c));
    check_value_count(
        path,
        payload,
        total,
        &format!(
            "a {}-{}-1 actor and a {}-{}-1 critic",
            actor.0, actor.1, critic.0, critic.1
        ),
    )
}

/// Copies the stored weights and Adam states of `payload` into an actor and a critic
/// and their Adams (the actor's first); returns the episode count and the sampling
/// stream.
fn restore_two_networks(
    path: &Path,
    payload: Payload,
    (actor, critic): (&BernoulliPolicy, &Critic),
    optimizers: [&mut Adam; 2],
) -> Result<(usize, ChaCha8Rng)> {
    import_weights(
        path,
        actor_and_critic_variables(actor.var_store(), &critic.vs),
        &payload.weights,
    )?;
    import_optimizers(path, optimizers.into(), payload.optimizers)?;
    Ok((
        episodes_of(path, payload.episodes)?,
        payload.sampling_rng.restore(),
    ))
}

/// Scalars of a `feature_dim`-`hidden`-1 policy: (F + 1) H + H + 1.
fn policy_size(feature_dim: usize, hidden: usize) -> Option<usize> {
    if hidden == 0 {
        // Linear: F weights and the bias.
        return feature_dim.checked_add(1);
    }
    feature_dim
        .checked_add(2)
        .and_then(|f| f.checked_mul(hidden))
        .and_then(|n| n.checked_add(1))
}

/// REINFORCE's policy variables, sorted by name.
fn reinforce_variables(teacher: &Reinforce) -> Vec<(String, Tensor)> {
    named_trainable_in_name_order(teacher.policy.var_store())
}

/// The variables of an actor and a critic: the actor's then the critic's, each sorted
/// by name and prefixed `actor/` or `critic/`.
fn actor_and_critic_variables(
    actor: &tch::nn::VarStore,
    critic: &tch::nn::VarStore,
) -> Vec<(String, Tensor)> {
    let prefixed = |prefix: &str, vs: &tch::nn::VarStore| {
        named_trainable_in_name_order(vs)
            .into_iter()
            .map(|(name, t)| (format!("{prefix}/{name}"), t))
            .collect::<Vec<_>>()
    };
    let mut variables = prefixed("actor", actor);
    variables.extend(prefixed("critic", critic));
    variables
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::episode::run_episode;
    use crate::parallel::Learner;
    use crate::teacher::Teacher;
    use l2t_envs::{
        MlpConfig, MlpStudent, OptimizerConfig, SyntheticConfig, TeachingConfig, TeachingEnv,
    };
    use std::path::PathBuf;

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

    /// The tiny environment of the integration tests: 4 classes, 8 inputs, M = 8.
    fn tiny_env() -> TeachingEnv {
        let data = SyntheticConfig {
            num_classes: 4,
            input_dim: 8,
            train_size: 400,
            dev_size: 100,
            test_size: 100,
            separation: 0.8,
            label_noise: 0.1,
            data_seed: 3,
        }
        .generate()
        .unwrap();
        let student = MlpStudent::new(
            MlpConfig {
                input_dim: 8,
                hidden: vec![16],
                num_classes: 4,
                optimizer: OptimizerConfig::Adam {
                    learning_rate: 1e-2,
                    weight_decay: 0.0,
                },
            },
            tch::Device::Cpu,
        )
        .unwrap();
        let config = TeachingConfig {
            batch_size: 8,
            max_iterations: 300,
            eval_every: 2,
            ..TeachingConfig::default()
        }
        .with_tau(0.7);
        TeachingEnv::new(config, Box::new(student), data.train, data.dev).unwrap()
    }

    fn bits(weights: &[f32]) -> Vec<u32> {
        weights.iter().map(|v| v.to_bits()).collect()
    }

    /// A small untrained teacher and its checkpoint bytes.
    fn small_checkpoint(scratch: &Scratch) -> (PathBuf, Vec<u8>) {
        let config = ReinforceConfig {
            hidden: 3,
            seed: 9,
            ..ReinforceConfig::default()
        };
        let path = scratch.path("small.ckpt");
        Reinforce::new(config, 4).unwrap().save(&path).unwrap();
        let bytes = fs::read(&path).unwrap();
        (path, bytes)
    }

    #[test]
    fn round_trip_acts_and_keeps_training_identically() {
        let scratch = Scratch::new("round-trip");
        let mut env = tiny_env();
        let feature_dim = env.feature_names().len();
        let mut original = Reinforce::new(
            ReinforceConfig {
                seed: 4,
                lr_decay_every: 2,
                ..ReinforceConfig::default()
            },
            feature_dim,
        )
        .unwrap();
        learn_updates(&mut env, &mut original, 3, 1);
        let path = scratch.path("teacher.ckpt");
        original.save(&path).unwrap();
        assert!(!scratch.path("teacher.ckpt.part").exists());
        let mut loaded = Reinforce::load(&path, Some(feature_dim)).unwrap();
        assert_eq!(
            bits(&loaded.flat_weights().unwrap()),
            bits(&original.flat_weights().unwrap())
        );
        assert_eq!(loaded.baseline(), original.baseline());
        assert_eq!(loaded.episodes(), 3);
        assert_eq!(loaded.config, original.config);
        assert_eq!(
            loaded.optimizer.export_state().unwrap(),
            original.optimizer.export_state().unwrap()
        );

        // One more episode each, on the same observations: same masks, same weights.
        learn_updates(&mut env, &mut original, 2, 1);
        learn_updates(&mut env, &mut loaded, 2, 1);
        assert_eq!(loaded.episodes(), 5);
        assert_eq!(
            bits(&loaded.flat_weights().unwrap()),
            bits(&original.flat_weights().unwrap())
        );
        assert_eq!(loaded.baseline(), original.baseline());

        // Saving the loaded teacher reproduces the original's file byte for byte.
        original.save(scratch.path("a.ckpt")).unwrap();
        loaded.save(scratch.path("b.ckpt")).unwrap();
        assert_eq!(
            fs::read(scratch.path("a.ckpt")).unwrap(),
            fs::read(scratch.path("b.ckpt")).unwrap()
        );
    }

    #[test]
    fn wrong_feature_width_is_refused() {
        let scratch = Scratch::new("width");
        let (path, _) = small_checkpoint(&scratch);
        let error = Reinforce::load(&path, Some(25)).unwrap_err();
        assert!(
            matches!(
                error,
                AgentError::FeatureWidthMismatch {
                    trained: 4,
                    env: 25
                }
            ),
            "{error}"
        );
        assert_eq!(
            error.to_string(),
            "checkpoint was trained on 4 features, the environment has 25"
        );
        assert!(Reinforce::load(&path, Some(4)).is_ok());
        assert!(Reinforce::load(&path, None).is_ok());
    }

    #[test]
    fn every_truncation_is_a_typed_error() {
        let scratch = Scratch::new("truncated");
        let (path, bytes) = small_checkpoint(&scratch);
        let cut = scratch.path("cut.ckpt");
        let check = |len: usize, result: Result<Payload>| match result {
            Err(AgentError::CorruptCheckpoint { path, reason }) => {
                assert_eq!(path, cut);
                assert!(reason.contains("truncated"), "{len}: {reason}");
            }
            other => panic!("truncated to {len} bytes: {other:?}"),
        };
        // Every length in memory, a sample of them through the file system.
        for len in 0..bytes.len() {
            check(len, decode(&cut, &bytes[..len]));
            if len % 61 == 0 || len < 12 || len + 2 > bytes.len() {
                fs::write(&cut, &bytes[..len]).unwrap();
                check(len, Reinforce::load(&cut, None).map(|_| unreachable!()));
            }
        }
        let message = Reinforce::load(&cut, None).unwrap_err().to_string();
        assert!(message.contains("cut.ckpt"), "{message}");
        // Appended bytes are refused too.
        let mut longer = bytes.clone();
        longer.push(0);
        fs::write(&cut, &longer).unwrap();
        assert!(matches!(
            Reinforce::load(&cut, None),
            Err(AgentError::CorruptCheckpoint { .. })
        ));
        assert!(Reinforce::load(&path, None).is_ok());
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
                let error = Reinforce::load(&bad, None).unwrap_err();
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
        let error = Reinforce::load(&other, None).unwrap_err();
        assert!(matches!(error, AgentError::NotACheckpoint { .. }));
        assert!(error
            .to_string()
            .ends_with("is not an l2t teacher checkpoint"));

        // A later format version (same length, so the header stays consistent).
        let version = br#"\"version\":3,"#;
        let at = (bytes.windows(version.len()))
            .position(|w| w == version)
            .unwrap();
        let mut future = bytes.clone();
        future[at + version.len() - 2] = b'4';
        fs::write(&other, &future).unwrap();
        assert!(matches!(
            Reinforce::load(&other, None),
            Err(AgentError::UnsupportedCheckpointVersion {
                found: 4,
                supported: 3,
                ..
            })
        ));
        // The hand-made format of earlier builds is refused by version, not misread.
        let mut legacy = LEGACY_MAGIC.to_vec();
        legacy.extend_from_slice(&2u32.to_le_bytes());
        legacy.extend_from_slice(&[0; 40]);
        fs::write(&other, &legacy).unwrap();
        assert!(matches!(
            Reinforce::load(&other, None),
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
            Reinforce::load(&other, None),
            Err(AgentError::NotACheckpoint { .. })
        ));

        // A well-formed checkpoint of another teacher kind.
        let mut payload = decode(&other, &bytes).unwrap();
        payload.kind = "actor_critic".to_string();
        fs::write(&other, encode(&payload).unwrap()).unwrap();
        let error = Reinforce::load(&other, None).unwrap_err();
        assert!(
            matches!(&error, AgentError::CheckpointKind { found, .. } if found == "actor_critic"),
            "{error}"
        );

        // Consistent hash but inconsistent contents: a weight with the wrong shape.
        let mut payload = decode(&other, &bytes).unwrap();
        let numel = payload.weights[0].values.len() as i64;
        payload.weights[0].shape = vec![1, numel];
        fs::write(&other, encode(&payload).unwrap()).unwrap();
        assert!(matches!(
            Reinforce::load(&other, None),
            Err(AgentError::CorruptCheckpoint { .. })
        ));

        // A consistent hash but an absurd feature width: refused before any allocation.
        let mut payload = decode(&other, &bytes).unwrap();
        payload.feature_dim = 1 << 40;
        fs::write(&other, encode(&payload).unwrap()).unwrap();
        assert!(matches!(
            Reinforce::load(&other, None),
            Err(AgentError::CorruptCheckpoint { .. })
        ));

        let missing = scratch.path("missing.ckpt");
        let error = Reinforce::load(&missing, None).unwrap_err();
        match &error {
            AgentError::CheckpointIo { path, source } => {
                assert_eq!(path, &missing);
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
        assert!(error.to_string().contains("missing.ckpt"));
        // Saving into a directory that does not exist is an I/O error too.
        let teacher = Reinforce::new(ReinforceConfig::default(), 4).unwrap();
        assert!(matches!(
            teacher.save(scratch.path("no/such/dir/t.ckpt")),
            Err(AgentError::CheckpointIo { .. })
        ));
    }

    /// The actor-critic's weights, flattened in checkpoint order.
    fn actor_critic_weights(teacher: &ActorCritic) -> Vec<u32> {
        export_weights(actor_and_critic_variables(
            teacher.policy.var_store(),
            &teacher.critic.vs,
        ))
        .unwrap()
        .iter()
        .flat_map(|w| bits(&w.values))
        .collect()
    }

    /// `updates` updates of `learner`, its episodes run one after another on `env`
    /// (the pool's loop on one thread), the first seeded `first_seed`.
    fn learn_updates(
        env: &mut TeachingEnv,
        learner: &mut dyn Learner,
        updates: usize,
        first_seed: u64,
    ) {
        for _ in 0..updates {
            let first = first_seed + learner.episodes_learned() as u64;
            let trajectories = learner
                .plan_update(first)
                .unwrap()
                .into_iter()
                .map(|mut job| {
                    run_episode(env, &mut job.rollout, Some(job.seed)).unwrap();
                    job.rollout.into_trajectory()
                })
                .collect();
            learner.learn(trajectories).unwrap();
        }
    }

    #[test]
    fn actor_critic_round_trip_keeps_training_identically() {
        let scratch = Scratch::new("actor-critic");
        let mut env = tiny_env();
        let feature_dim = env.feature_names().len();
        let config = ActorCriticConfig {
            seed: 5,
            lr_decay_every: 2,
            ..ActorCriticConfig::default()
        };
        let mut original = ActorCritic::new(config, feature_dim).unwrap();
        learn_updates(&mut env, &mut original, 3, 1);
        let path = scratch.path("ac.ckpt");
        original.save_checkpoint(&path).unwrap();
        let mut loaded = ActorCritic::load(&path, Some(feature_dim)).unwrap();
        assert_eq!(
            actor_critic_weights(&loaded),
            actor_critic_weights(&original)
        );
        assert_eq!(loaded.episodes(), 3);
        assert_eq!(
            loaded.critic_optimizer.export_state().unwrap(),
            original.critic_optimizer.export_state().unwrap()
        );

        learn_updates(&mut env, &mut original, 2, 1);
        learn_updates(&mut env, &mut loaded, 2, 1);
        assert_eq!(loaded.episodes(), 5);
        assert_eq!(
            actor_critic_weights(&loaded),
            actor_critic_weights(&original)
        );
        original.save(scratch.path("a.ckpt")).unwrap();
        loaded.save(scratch.path("b.ckpt")).unwrap();
        assert_eq!(
            fs::read(scratch.path("a.ckpt")).unwrap(),
            fs::read(scratch.path("b.ckpt")).unwrap()
        );

        // `load_teacher` picks the type from the file; a REINFORCE loader refuses it.
        let any = load_teacher(&path, Some(feature_dim)).unwrap();
        assert_eq!(any.name(), "actor_critic");
        assert!(matches!(
            Reinforce::load(&path, None),
            Err(AgentError::CheckpointKind { .. })
        ));
        assert!(matches!(
            load_teacher(&path, Some(feature_dim + 1)),
            Err(AgentError::FeatureWidthMismatch { .. })
        ));
        // A damaged actor-critic file is a typed error too.
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            load_teacher(&path, None),
            Err(AgentError::CorruptCheckpoint { .. })
        ));
    }

    #[test]
    fn teachers_without_learned_state_refuse_to_save() {
        let scratch = Scratch::new("no-state");
        let error = crate::NoTeach
            .save_checkpoint(&scratch.path("x.ckpt"))
            .unwrap_err();
        assert!(
            matches!(error, AgentError::NotCheckpointable { .. }),
            "{error}"
        );
        assert!(!scratch.path("x.ckpt").exists());
    }
}
