//! One serde type for choosing and configuring any teacher, e.g. in an experiment file:
//!
//! ```json
//! {"kind": "online_batch", "pressure_start": 100, "pressure_end": 1, "anneal_epochs": 5}
//! {"kind": "spl", "epochs_to_all": 2}
//! {"kind": "importance_sampling", "keep_fraction": 0.5, "uniform_mix": 0.1}
//! {"kind": "rho_loss", "keep_fraction": 0.05, "pool": 4}
//! {"kind": "selective_backprop", "beta": 2, "history": 1024}
//! {"kind": "reinforce", "seed": 3}
//! {"kind": "es", "keep_per_batch": 1}
//! {"kind": "ppo", "episodes_per_update": 4, "epochs": 4}
//! {"kind": "no_teach"}
//! {"kind": "checkpoint", "path": "runs/fashion-mnist-mlp/reinforce.ckpt"}
//! ```
//!
//! The `kind` tag picks the teacher; the other fields are that teacher's config, each
//! with its defaults. [`TeacherConfig::build`] makes the teacher for an environment's
//! feature layout, [`TeacherConfig::build_learner`] a learned one for training.
//!
//! This is also the registry of checkpointed teachers: [`load_learner`] reads a
//! checkpoint file and restores the type of the kind stored in it. A learned teacher
//! is added here and in its own file (its [`Checkpointed`] impl), nowhere else.

use serde::{Deserialize, Serialize};

use crate::actor_critic::{ActorCritic, ActorCriticConfig};
use crate::checkpoint::{CheckpointFile, Checkpointed};
use crate::error::{invalid_config, AgentError, Result};
use crate::es::{EsConfig, EvolutionStrategies};
use crate::importance::{ImportanceSampling, ImportanceSamplingConfig};
use crate::no_teach::NoTeach;
use crate::online_batch::{OnlineBatch, OnlineBatchConfig};
use crate::ppo::{Ppo, PpoConfig};
use crate::rand_teach::{RandTeach, RandTeachConfig};
use crate::reinforce::{Reinforce, ReinforceConfig};
use crate::rho_loss::RhoLossConfig;
use crate::rollout::Learner;
use crate::selective_backprop::{SelectiveBackprop, SelectiveBackpropConfig};
use crate::spl::{SelfPacedLearning, SplConfig};
use crate::teacher::Teacher;
use l2t_envs::FeatureLayout;

/// Any teacher's configuration, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TeacherConfig {
    /// `no_teach`: [`NoTeach`], keeps everything.
    NoTeach,
    /// `rand_teach`: [`RandTeach`], drops at random.
    RandTeach(RandTeachConfig),
    /// `spl`: [`SelfPacedLearning`], drops the hardest, fewer over time.
    Spl(SplConfig),
    /// `online_batch`: [`OnlineBatch`], keeps by loss rank (Loshchilov & Hutter).
    OnlineBatch(OnlineBatchConfig),
    /// `importance_sampling`: [`ImportanceSampling`], keeps with probability
    /// proportional to the loss (Katharopoulos & Fleuret).
    ImportanceSampling(ImportanceSamplingConfig),
    /// `rho_loss`: [`RhoLoss`](crate::RhoLoss), keeps the largest reducible holdout
    /// loss (Mindermann et al.); built by the experiment layer, which computes the
    /// irreducible losses of the split it teaches.
    RhoLoss(RhoLossConfig),
    /// `selective_backprop`: [`SelectiveBackprop`], keeps with a probability rising
    /// with the loss percentile (Jiang et al.), the compute baseline.
    SelectiveBackprop(SelectiveBackpropConfig),
    /// `reinforce`: [`Reinforce`], the paper's learned teacher.
    Reinforce(ReinforceConfig),
    /// `actor_critic`: [`ActorCritic`], the same policy with a learned value baseline.
    ActorCritic(ActorCriticConfig),
    /// `es`: [`EvolutionStrategies`], the same policy trained by weight perturbations.
    Es(EsConfig),
    /// `ppo`: [`Ppo`], the same policy trained by PPO-clip with a critic and GAE.
    Ppo(PpoConfig),
    /// `checkpoint`: a trained teacher read from a checkpoint file (any kind that
    /// saves; see [`load_teacher`]).
    Checkpoint {
        /// The checkpoint file.
        path: std::path::PathBuf,
    },
}

impl TeacherConfig {
    /// The `kind` tags, in declaration order.
    pub fn names() -> &'static [&'static str] {
        &[
            "no_teach",
            "rand_teach",
            "spl",
            "online_batch",
            "importance_sampling",
            "rho_loss",
            "selective_backprop",
            "reinforce",
            "actor_critic",
            "es",
            "ppo",
            "checkpoint",
        ]
    }

    /// This config's `kind` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoTeach => "no_teach",
            Self::RandTeach(_) => "rand_teach",
            Self::Spl(_) => "spl",
            Self::OnlineBatch(_) => "online_batch",
            Self::ImportanceSampling(_) => "importance_sampling",
            Self::RhoLoss(_) => "rho_loss",
            Self::SelectiveBackprop(_) => "selective_backprop",
            Self::Reinforce(_) => "reinforce",
            Self::ActorCritic(_) => "actor_critic",
            Self::Es(_) => "es",
            Self::Ppo(_) => "ppo",
            Self::Checkpoint { .. } => "checkpoint",
        }
    }

    /// Parses a config from JSON; an unknown `kind` or field is an
    /// [`InvalidConfig`](crate::AgentError::InvalidConfig) error listing the kinds.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| {
            invalid_config(
                "teacher",
                format!("{e} (teacher kinds: {})", Self::names().join(", ")),
            )
        })
    }

    /// The teacher, for an environment whose feature columns are `layout`: the columns
    /// it reads are resolved by name against it (an error names a missing one), and a
    /// checkpoint's trained columns are mapped by name onto it ([`load_teacher`]).
    pub fn build(&self, layout: &FeatureLayout) -> Result<Box<dyn Teacher>> {
        Ok(match self {
            Self::NoTeach => Box::new(NoTeach),
            Self::RandTeach(config) => Box::new(RandTeach::new(config.clone())?),
            Self::Spl(config) => Box::new(SelfPacedLearning::new(config.clone(), layout)?),
            Self::OnlineBatch(config) => Box::new(OnlineBatch::new(config.clone(), layout)?),
            Self::ImportanceSampling(config) => {
                Box::new(ImportanceSampling::new(config.clone(), layout)?)
            }
            Self::SelectiveBackprop(config) => {
                Box::new(SelectiveBackprop::new(config.clone(), layout)?)
            }
            Self::RhoLoss(config) => {
                config.validate()?;
                return Err(invalid_config(
                    "teacher",
                    "rho_loss needs the irreducible losses of the training split it teaches: \
                     run it through the experiment layer (`l2t compare`, `reproduce`, `run` or \
                     `l2t::experiment::run_with`), which trains the holdout model and caches \
                     them, or build `RhoLoss::new` with them",
                ));
            }
            Self::Checkpoint { path } => load_teacher(path, Some(layout))?,
            Self::Reinforce(_) | Self::ActorCritic(_) | Self::Es(_) | Self::Ppo(_) => {
                self.build_learner(layout)?
            }
        })
    }

    /// The learned teacher, to train, for an environment whose feature columns are
    /// `layout` (a checkpoint must have been trained on exactly them);
    /// [`AgentError::NotALearner`] for a teacher that learns nothing.
    pub fn build_learner(&self, layout: &FeatureLayout) -> Result<Box<dyn Learner>> {
        Ok(match self {
            Self::Reinforce(config) => Box::new(Reinforce::new(config.clone(), layout)?),
            Self::ActorCritic(config) => Box::new(ActorCritic::new(config.clone(), layout)?),
            Self::Es(config) => Box::new(EvolutionStrategies::new(config.clone(), layout)?),
            Self::Ppo(config) => Box::new(Ppo::new(config.clone(), layout)?),
            Self::Checkpoint { path } => load_learner(path, Some(layout))?,
            other => {
                return Err(AgentError::NotALearner {
                    teacher: other.kind().to_string(),
                })
            }
        })
    }
}

/// The kinds of checkpointed teachers: the [`Checkpointed::KIND`]s [`load_learner`]
/// knows.
pub const CHECKPOINT_KINDS: [&str; 4] = [
    Reinforce::KIND,
    ActorCritic::KIND,
    EvolutionStrategies::KIND,
    Ppo::KIND,
];

/// Loads any checkpointed teacher, choosing the type by the kind stored in the file,
/// ready to train on (or, to teach, [`load_teacher`]). With `env`, the layout of the
/// env it will train on, a checkpoint trained on other columns is refused with
/// [`AgentError::CheckpointLayout`], which names them and the setting that causes them.
pub fn load_learner(
    path: impl AsRef<std::path::Path>,
    env: Option<&FeatureLayout>,
) -> Result<Box<dyn Learner>> {
    restore_learner(CheckpointFile::read(path)?, env)
}

/// [`load_learner`] for a checkpoint already read (and checked), e.g. after its episode
/// count was looked at: the type of the stored kind.
pub fn restore_learner(
    file: CheckpointFile,
    env: Option<&FeatureLayout>,
) -> Result<Box<dyn Learner>> {
    Ok(match file.kind() {
        Reinforce::KIND => Box::new(file.restore::<Reinforce>(env)?),
        ActorCritic::KIND => Box::new(file.restore::<ActorCritic>(env)?),
        EvolutionStrategies::KIND => Box::new(file.restore::<EvolutionStrategies>(env)?),
        Ppo::KIND => Box::new(file.restore::<Ppo>(env)?),
        _ => return Err(file.unknown_kind(&CHECKPOINT_KINDS)),
    })
}

/// Loads any checkpointed teacher to teach with, on an env whose columns are `env`
/// where it is known.
///
/// A learned teacher reads its trained columns by name from every observation
/// ([`l2t_envs::TeachingObservation::features_for`]): as they are where the env has
/// exactly them, taken by name where it has each of them in another place (another
/// order, or more columns that are not classes), an exact mapping. With `env`, a trained column the env
/// lacks is refused here, before any episode, with an error naming the columns that
/// differ and the setting that causes them; without it, at the first observation.
pub fn load_teacher(
    path: impl AsRef<std::path::Path>,
    env: Option<&FeatureLayout>,
) -> Result<Box<dyn Teacher>> {
    restore_teacher(CheckpointFile::read(path)?, env)
}

/// [`load_teacher`] for a checkpoint already read (and checked), e.g. after its
/// [`CheckpointFile::layout_note`] was shown.
pub fn restore_teacher(
    file: CheckpointFile,
    env: Option<&FeatureLayout>,
) -> Result<Box<dyn Teacher>> {
    let trained = file.layout();
    match env {
        Some(env) if trained.is_named() => {
            if trained.positions_in(env).is_err() {
                return Err(file.layout_error(env));
            }
            Ok(restore_learner(file, None)?)
        }
        _ => Ok(restore_learner(file, env)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AgentError;

    fn layout_of(names: &[&str]) -> FeatureLayout {
        FeatureLayout::new(names.iter().map(|s| s.to_string()).collect())
    }

    fn feature_names() -> FeatureLayout {
        layout_of(&["label_0", "label_1", "iteration", "loss", "margin"])
    }

    #[test]
    fn every_kind_deserializes_and_builds() {
        let cases = [
            (r#"{"kind": "no_teach"}"#, "no_teach"),
            (
                r#"{"kind": "rand_teach", "drop_ratio": 0.2, "seed": 1}"#,
                "rand_teach",
            ),
            (r#"{"kind": "spl", "epochs_to_all": 3}"#, "spl"),
            (
                r#"{"kind": "online_batch", "pressure_start": 100, "pressure_end": 1,
                    "anneal_epochs": 5, "schedule": "linear"}"#,
                "online_batch",
            ),
            (
                r#"{"kind": "importance_sampling", "keep_fraction": 0.4, "seed": 1}"#,
                "importance_sampling",
            ),
            (
                r#"{"kind": "rho_loss", "keep_fraction": 0.2, "pool": 3}"#,
                "rho_loss",
            ),
            (
                r#"{"kind": "selective_backprop", "beta": 1, "seed": 3}"#,
                "selective_backprop",
            ),
            (
                r#"{"kind": "reinforce", "hidden": 4, "seed": 2}"#,
                "reinforce",
            ),
            (
                r#"{"kind": "actor_critic", "shaping": 0.5, "seed": 2}"#,
                "actor_critic",
            ),
            (
                r#"{"kind": "es", "pairs": 3, "sigma": 0.2, "keep_per_batch": 2}"#,
                "es",
            ),
            (
                r#"{"kind": "ppo", "epochs": 2, "clip_epsilon": 0.1}"#,
                "ppo",
            ),
        ];
        let dir = std::env::temp_dir().join(format!("l2t-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let checkpoint = dir.join("teacher.ckpt");
        crate::Reinforce::new(ReinforceConfig::default(), &feature_names())
            .unwrap()
            .save(&checkpoint)
            .unwrap();
        let checkpoint_json = format!(
            r#"{{"kind": "checkpoint", "path": {}}}"#,
            serde_json::to_string(&checkpoint).unwrap()
        );
        let cases = cases
            .into_iter()
            .map(|(json, name)| (json.to_string(), name))
            .chain([(checkpoint_json, "reinforce")]);
        let mut kinds = Vec::new();
        for (json, name) in cases {
            let json = json.as_str();
            let config = TeacherConfig::from_json(json).unwrap();
            kinds.push(config.kind());
            if name == "rho_loss" {
                // Needs the irreducible losses of a split: the experiment layer's.
                let message = config.build(&feature_names()).err().unwrap().to_string();
                assert!(message.contains("irreducible losses"), "{message}");
                continue;
            }
            let teacher = config.build(&feature_names()).unwrap();
            assert_eq!(teacher.name(), name);
            // Serialising and reading back gives the same config.
            let text = serde_json::to_string(&config).unwrap();
            assert_eq!(TeacherConfig::from_json(&text).unwrap(), config);
        }
        assert_eq!(kinds, TeacherConfig::names());
        // A checkpoint trained on other columns is refused, naming them.
        let other: FeatureLayout = layout_of(&["f0", "f1", "f2", "f3", "f4", "f5", "f6"]);
        let from_file = TeacherConfig::Checkpoint {
            path: checkpoint.clone(),
        };
        assert!(matches!(
            from_file.build(&other),
            Err(AgentError::CheckpointLayout { .. })
        ));
        // ... and read by name from an env that holds every trained column elsewhere:
        // `irreducible_loss` inserted after the labels, and the last two swapped.
        let wider = layout_of(&[
            "label_0",
            "label_1",
            "irreducible_loss",
            "iteration",
            "margin",
            "loss",
        ]);
        let mut mapped = from_file.build(&wider).unwrap();
        assert_eq!(mapped.columns(), feature_names().names().to_vec());
        let mut direct = load_teacher(&checkpoint, Some(&feature_names())).unwrap();
        let rows = ndarray::Array2::from_shape_fn((20, 5), |(i, j)| {
            ((i * 7 + j * 3) % 11) as f32 / 11.0 - 0.3
        });
        let state = ndarray::Array1::zeros(3);
        let trained_obs = l2t_envs::TeachingObservation {
            features: rows.clone(),
            student_state: state.clone(),
            layout: feature_names(),
        };
        let wide_rows = ndarray::Array2::from_shape_fn((20, 6), |(i, j)| match j {
            0 | 1 => rows[[i, j]],
            2 => 0.9,
            3 => rows[[i, 2]],
            4 => rows[[i, 4]],
            _ => rows[[i, 3]],
        });
        let wide_obs = l2t_envs::TeachingObservation {
            features: wide_rows,
            student_state: state,
            layout: wider.clone(),
        };
        let info = crate::teacher::blank_info();
        assert_eq!(
            mapped.act(&wide_obs, &info).unwrap(),
            direct.act(&trained_obs, &info).unwrap()
        );
        // An observation that lacks a trained column is refused, naming it.
        let narrow_obs = l2t_envs::TeachingObservation {
            features: rows.slice(ndarray::s![.., ..4]).to_owned(),
            student_state: ndarray::Array1::zeros(3),
            layout: layout_of(&["label_0", "label_1", "iteration", "loss"]),
        };
        let error = direct.act(&narrow_obs, &info).unwrap_err().to_string();
        assert!(error.contains("missing margin"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
        // Fields default when absent.
        assert_eq!(
            TeacherConfig::from_json(r#"{"kind": "spl"}"#).unwrap(),
            TeacherConfig::Spl(SplConfig::default())
        );
        assert_eq!(
            TeacherConfig::from_json(r#"{"kind": "reinforce"}"#).unwrap(),
            TeacherConfig::Reinforce(ReinforceConfig::default())
        );
    }

    #[test]
    fn unknown_kinds_fields_and_values_are_clear_errors() {
        let message = TeacherConfig::from_json(r#"{"kind": "mentor_net"}"#)
            .unwrap_err()
            .to_string();
        assert!(message.contains("mentor_net"), "{message}");
        assert!(message.contains("online_batch"), "{message}");
        assert!(TeacherConfig::from_json(r#"{"drop_ratio": 0.2}"#).is_err());
        assert!(TeacherConfig::from_json(r#"{"kind": "spl", "epochs": 2}"#).is_err());
        // Valid syntax, invalid value: refused when building.
        let config =
            TeacherConfig::from_json(r#"{"kind": "online_batch", "pressure_start": 0.5}"#).unwrap();
        assert!(matches!(
            config.build(&feature_names()),
            Err(AgentError::InvalidConfig { .. })
        ));
        // A layout without the loss column cannot feed the loss-based teachers.
        let no_loss = layout_of(&["margin"]);
        let spl = TeacherConfig::from_json(r#"{"kind": "spl"}"#).unwrap();
        let error = spl.build(&no_loss).err().unwrap();
        assert!(
            matches!(&error, AgentError::Env(l2t_envs::EnvError::UnknownFeature { name, .. }) if name == "loss"),
            "{error}"
        );
    }
}
