//! Saving and loading trained teachers: [`Reinforce`], [`ActorCritic`],
//! [`EvolutionStrategies`] and [`Ppo`].
//!
//! A checkpoint restores everything that decides the teacher's future: the network
//! weights, the Adam state of every optimizer, the reward baseline, the episode count
//! (which sets the learning-rate decay) and the position of the action-sampling
//! stream. A teacher loaded from a checkpoint therefore samples the same masks and
//! learns the same weights as the teacher that was saved. Save between episodes: the
//! trajectory of an episode in progress is not stored. A loaded teacher is in training
//! mode. [`load_teacher`] reads either kind.
//!
//! # File format (version 2)
//!
//! All integers little-endian.
//!
//! | bytes      | content                                                    |
//! |------------|------------------------------------------------------------|
//! | 0..8       | magic `L2TTEACH`                                           |
//! | 8..12      | format version, u32 (2; version 1 files are still read)    |
//! | 12..20     | payload length in bytes, u64                               |
//! | 20..28     | FNV-1a (64-bit) hash of the payload, u64                   |
//! | 28..       | payload: bincode 1 (fixed-width integers) of the fields below |
//!
//! Payload: teacher kind (`"reinforce"`, `"actor_critic"`, `"es"` or `"ppo"`), the config as JSON
//! text (for ES, the config and the feature statistics)
//! (so that a config field added later with a default still reads old files), the
//! feature dimension, every network variable (name, shape, f32 values; sorted by name;
//! the actor-critic's and PPO's prefixed `actor/` and `critic/`), the Adam states (one per
//! optimizer: per variable, same order, step count, first and second moments), the
//! baseline, the episode count, and the sampling stream (ChaCha8 seed, stream, word
//! position). Version 1 held a single Adam state and only REINFORCE.
//!
//! The length and the hash detect truncation and corruption; every failure is a typed
//! [`AgentError`] naming the file, never a panic. Files are written to `<path>.part`,
//! flushed to disk, then renamed over `<path>`, so a crash never leaves half a file
//! under the final name.

use std::fs;
use std::path::Path;

use bincode::Options as _;
use rand::SeedableRng as _;
use rand_chacha::ChaCha8Rng;
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

/// The first bytes of every teacher checkpoint.
pub const CHECKPOINT_MAGIC: &[u8; 8] = b"L2TTEACH";
/// The format version this build writes (it also reads version 1).
pub const CHECKPOINT_VERSION: u32 = 2;
/// Teacher kind stored in checkpoints of [`Reinforce`] (its `TeacherConfig` kind).
pub const REINFORCE_KIND: &str = "reinforce";
/// Teacher kind stored in checkpoints of [`ActorCritic`] (its `TeacherConfig` kind).
pub const ACTOR_CRITIC_KIND: &str = "actor_critic";
/// Teacher kind stored in checkpoints of [`EvolutionStrategies`] (its `TeacherConfig` kind).
pub const ES_KIND: &str = "es";
/// Teacher kind stored in checkpoints of [`Ppo`] (its `TeacherConfig` kind).
pub const PPO_KIND: &str = "ppo";

const HEADER_LEN: usize = 8 + 4 + 8 + 8;

/// One variable of the policy network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// Everything after the header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// The payload of format version 1 (REINFORCE only, one Adam state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PayloadV1 {
    kind: String,
    config_json: String,
    feature_dim: u64,
    weights: Vec<NamedTensor>,
    adam: AdamState,
    baseline: Option<f64>,
    episodes: u64,
    sampling_rng: RngState,
}

impl From<PayloadV1> for Payload {
    fn from(v1: PayloadV1) -> Self {
        Self {
            kind: v1.kind,
            config_json: v1.config_json,
            feature_dim: v1.feature_dim,
            weights: v1.weights,
            optimizers: vec![v1.adam],
            baseline: v1.baseline,
            episodes: v1.episodes,
            sampling_rng: v1.sampling_rng,
        }
    }
}

/// The bincode settings of the payload: fixed-width little-endian integers, and a
/// payload must be read to its last byte.
fn codec() -> impl bincode::Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
}

/// FNV-1a, 64 bits: a cheap hash that detects flipped and shifted bytes.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

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

/// Header and payload as one byte vector.
fn encode(payload: &Payload) -> bincode::Result<Vec<u8>> {
    let body = codec().serialize(payload)?;
    let mut bytes = Vec::with_capacity(HEADER_LEN + body.len());
    bytes.extend_from_slice(CHECKPOINT_MAGIC);
    bytes.extend_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&fnv1a(&body).to_le_bytes());
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(word)
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}

/// Checks the header and the hash of `bytes` read from `path`, and decodes the payload.
fn decode(path: &Path, bytes: &[u8]) -> Result<Payload> {
    let magic_len = CHECKPOINT_MAGIC.len();
    if bytes.len() < magic_len {
        return Err(if CHECKPOINT_MAGIC.starts_with(bytes) {
            corrupt(path, format!("truncated to {} bytes", bytes.len()))
        } else {
            AgentError::NotACheckpoint {
                path: path.to_path_buf(),
            }
        });
    }
    if &bytes[..magic_len] != CHECKPOINT_MAGIC {
        return Err(AgentError::NotACheckpoint {
            path: path.to_path_buf(),
        });
    }
    if bytes.len() < HEADER_LEN {
        return Err(corrupt(
            path,
            format!(
                "truncated to {} bytes, shorter than the {HEADER_LEN}-byte header",
                bytes.len()
            ),
        ));
    }
    let version = le_u32(&bytes[8..12]);
    if !(1..=CHECKPOINT_VERSION).contains(&version) {
        return Err(AgentError::UnsupportedCheckpointVersion {
            path: path.to_path_buf(),
            found: version,
            supported: CHECKPOINT_VERSION,
        });
    }
    let declared = le_u64(&bytes[12..20]);
    let hash = le_u64(&bytes[20..28]);
    let body = &bytes[HEADER_LEN..];
    let found = body.len() as u64;
    if found < declared {
        return Err(corrupt(
            path,
            format!("truncated: the payload has {found} of its {declared} bytes"),
        ));
    }
    if found > declared {
        return Err(corrupt(
            path,
            format!(
                "{} bytes after the {declared}-byte payload",
                found - declared
            ),
        ));
    }
    if fnv1a(body) != hash {
        return Err(corrupt(path, "the payload does not match its checksum"));
    }
    let cannot_decode =
        |e: bincode::Error| corrupt(path, format!("cannot decode the payload: {e}"));
    if version == 1 {
        return codec()
            .deserialize::<PayloadV1>(body)
            .map(Payload::from)
            .map_err(cannot_decode);
    }
    codec().deserialize(body).map_err(cannot_decode)
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
    let bytes =
        encode(payload).map_err(|e| io_error(path, std::io::Error::other(e.to_string())))?;
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
            if len % 61 == 0 || len < HEADER_LEN + 2 || len + 2 > bytes.len() {
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
        let expected = |i: usize, error: &AgentError| match i {
            0..=7 => matches!(error, AgentError::NotACheckpoint { .. }),
            8..=11 => matches!(error, AgentError::UnsupportedCheckpointVersion { .. }),
            _ => matches!(error, AgentError::CorruptCheckpoint { .. }),
        };
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x10;
            let error = decode(&bad, &damaged).unwrap_err();
            assert!(expected(i, &error), "byte {i}: {error}");
            if i % 61 == 0 {
                fs::write(&bad, &damaged).unwrap();
                let error = Reinforce::load(&bad, None).unwrap_err();
                assert!(expected(i, &error), "byte {i}: {error}");
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

        let mut future = bytes.clone();
        future[8..12].copy_from_slice(&3u32.to_le_bytes());
        fs::write(&other, &future).unwrap();
        assert!(matches!(
            Reinforce::load(&other, None),
            Err(AgentError::UnsupportedCheckpointVersion {
                found: 3,
                supported: 2,
                ..
            })
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
        payload.weights[0].values.pop();
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
    fn version_1_files_still_load() {
        let scratch = Scratch::new("v1");
        let (path, bytes) = small_checkpoint(&scratch);
        let payload = decode(&path, &bytes).unwrap();
        let v1 = PayloadV1 {
            kind: payload.kind.clone(),
            config_json: payload.config_json.clone(),
            feature_dim: payload.feature_dim,
            weights: payload.weights.clone(),
            adam: payload.optimizers[0].clone(),
            baseline: payload.baseline,
            episodes: payload.episodes,
            sampling_rng: payload.sampling_rng.clone(),
        };
        let body = codec().serialize(&v1).unwrap();
        let mut old = Vec::new();
        old.extend_from_slice(CHECKPOINT_MAGIC);
        old.extend_from_slice(&1u32.to_le_bytes());
        old.extend_from_slice(&(body.len() as u64).to_le_bytes());
        old.extend_from_slice(&fnv1a(&body).to_le_bytes());
        old.extend_from_slice(&body);
        let old_path = scratch.path("v1.ckpt");
        fs::write(&old_path, &old).unwrap();
        assert_eq!(decode(&old_path, &old).unwrap(), payload);
        let teacher = load_teacher(&old_path, Some(4)).unwrap();
        assert_eq!(teacher.name(), "reinforce");
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
