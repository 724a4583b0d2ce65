//! Run configurations: one TOML file describes a whole run (the task, the teachers to
//! train and compare, what to report), so that `l2t --print-config` shows everything a
//! run used and `l2t --config run.toml` repeats it.
//!
//! ```toml
//! checkpoint_every = 1
//! device = "cpu"
//!
//! [preset]            # the task: data, student, MDP, budgets (a built-in preset, edited)
//! name = "fashion-mnist-mlp"
//! episodes = 20
//! eval_seeds = 5
//! # ...
//!
//! [report]
//! levels = [0.8, 0.83, 0.86]   # accuracy levels of the summary table
//! test_every = 0               # dev evaluations between test-accuracy points
//!
//! [[teachers]]
//! label = "no_teach"
//! teacher = { kind = "no_teach" }
//!
//! [[teachers]]
//! label = "reinforce"
//! train = true                 # trained on the teacher half first
//! teacher = { kind = "reinforce", seed = 0 }
//!
//! [[teachers]]
//! label = "rand_teach"
//! teacher = { kind = "rand_teach" }
//! match_drop_ratio_of = "reinforce"
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use l2t_agents::{
    ActorCriticConfig, ImportanceSamplingConfig, OnlineBatchConfig, RandTeachConfig,
    ReinforceConfig, SelectiveBackpropConfig, TeacherConfig,
};
use l2t_envs::{Reward, TeachingConfig};

use crate::experiment::{ExperimentError, Result};
use crate::presets::{Preset, ES_EPISODES, PRESETS};

/// Where students and data live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// The CPU (what CI and the set-up's libtorch have).
    #[default]
    Cpu,
    /// The first CUDA device; needs a CUDA build of libtorch.
    Cuda,
}

impl DeviceChoice {
    /// The libtorch device, or an error naming the fix when CUDA is asked for but
    /// this libtorch has none.
    pub fn device(self) -> Result<tch::Device> {
        match self {
            Self::Cpu => Ok(tch::Device::Cpu),
            Self::Cuda if tch::Cuda::is_available() => Ok(tch::Device::Cuda(0)),
            Self::Cuda => Err(ExperimentError::InvalidSetting {
                field: "device",
                reason: "cuda was asked for, but this libtorch sees no CUDA device (the set-up \
                         installs the CPU build; point LIBTORCH at a CUDA libtorch on a GPU machine)"
                    .into(),
            }),
        }
    }
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;

    /// `cpu` or `cuda`, as `--device` and Python's `device=` take them.
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        match text {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda),
            other => Err(format!("`{other}`: expected cpu or cuda")),
        }
    }
}

/// One teacher of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeacherEntry {
    /// Name in tables, plots and logs; unique within a run.
    pub label: String,
    /// The teacher (any kind, including a checkpoint file).
    pub teacher: TeacherConfig,
    /// Train the teacher on the teacher half before it teaches (learned teachers).
    #[serde(default)]
    pub train: bool,
    /// Its teacher-training episodes; the training preset's `episodes` when absent
    /// (ES needs many cheap episodes where REINFORCE is given the paper's few).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episodes: Option<usize>,
    /// For RandTeach: drop at the per-epoch ratio that the teacher with this label
    /// dropped in its evaluation episodes (the paper's matched RandTeach).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_drop_ratio_of: Option<String>,
    /// Where that teacher's evaluation episodes are read from: a previous run's
    /// folder or its `events.jsonl`; this run's own episodes when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_run: Option<PathBuf>,
    /// The reward this teacher trains on, instead of `[training]`'s (e.g. a teacher
    /// trained for compute beside teachers trained for instances); absent: `[training]`'s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_reward: Option<Reward>,
}

impl TeacherEntry {
    /// An entry with no training and no matching.
    pub fn new(label: impl Into<String>, teacher: TeacherConfig) -> Self {
        Self {
            label: label.into(),
            teacher,
            train: false,
            episodes: None,
            match_drop_ratio_of: None,
            match_run: None,
            training_reward: None,
        }
    }

    /// A teacher as the `l2t` command's `--teacher` and Python's `l2t.compare` read
    /// it: `label=spec` or `spec`, where spec is a teacher kind (with `preset`'s SPL
    /// schedule, the defaults otherwise), a JSON config or a checkpoint file; the label
    /// is the kind (or the checkpoint's file stem) when none is given.
    pub fn parse(text: &str, preset: &Preset) -> Result<Self> {
        let (label, spec) = match text.split_once('=') {
            Some((label, spec)) if !label.trim_start().starts_with('{') => {
                (Some(label.trim().to_string()), spec.trim())
            }
            _ => (None, text.trim()),
        };
        let config = if spec.starts_with('{') {
            TeacherConfig::from_json(spec)?
        } else if Path::new(spec).is_file() {
            TeacherConfig::Checkpoint {
                path: PathBuf::from(spec),
            }
        } else {
            match spec {
                "no_teach" => TeacherConfig::NoTeach,
                "rand_teach" => TeacherConfig::RandTeach(Default::default()),
                "spl" => TeacherConfig::Spl(preset.spl()),
                "online_batch" => TeacherConfig::OnlineBatch(Default::default()),
                "importance_sampling" => TeacherConfig::ImportanceSampling(Default::default()),
                "rho_loss" => TeacherConfig::RhoLoss(Default::default()),
                "selective_backprop" => TeacherConfig::SelectiveBackprop(Default::default()),
                "reinforce" => TeacherConfig::Reinforce(Default::default()),
                "actor_critic" => TeacherConfig::ActorCritic(Default::default()),
                "es" => TeacherConfig::Es(Default::default()),
                "ppo" => TeacherConfig::Ppo(Default::default()),
                other => {
                    return Err(ExperimentError::InvalidSetting {
                        field: "teacher",
                        reason: format!(
                            "`{other}` is neither a kind ({}), a JSON config nor an existing \
                             checkpoint file",
                            TeacherConfig::names().join(", ")
                        ),
                    })
                }
            }
        };
        let label = label.unwrap_or_else(|| match &config {
            TeacherConfig::Checkpoint { path } => path
                .file_stem()
                .map_or("checkpoint".into(), |s| s.to_string_lossy().into_owned()),
            other => other.kind().to_string(),
        });
        Ok(Self::new(label, config))
    }

    /// The same entry, trained on the teacher half first.
    pub fn trained(mut self) -> Self {
        self.train = true;
        self
    }
}

/// What the summary reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportConfig {
    /// Dev-accuracy levels of the summary table (effective instances and wall-clock
    /// to reach each); empty: tau - 0.06, tau - 0.03 and tau.
    pub levels: Vec<f64>,
    /// Dev evaluations between two test-accuracy points on the learning curves
    /// (0: test accuracy at the start and the end of each episode only).
    pub test_every: usize,
    /// Write the plots (SVG and PNG).
    pub plots: bool,
    /// The label of the reference row: the row every other teacher is paired with
    /// (ratio, paired differences, probability of improvement); the first row when
    /// absent. Comparing against a strong baseline (say `rho_loss`) needs no reordering.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl Default for ReportConfig {
    fn default() -> Self {
        Self {
            levels: Vec::new(),
            test_every: 0,
            plots: true,
            reference: None,
        }
    }
}

/// How learned teachers are trained: the worker threads that roll out their episodes,
/// and the training episodes' own MDP where it differs from the evaluation's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingConfig {
    /// Worker threads rolling out a learner's episodes and evaluating teachers side by
    /// side (0: one per available core). Results do not depend on it.
    pub workers: usize,
    /// A training tau: training episodes end when the dev accuracy passes it (reward
    /// -ln(i_tau / T')), instead of the training task's thresholds. Evaluation keeps
    /// the preset's. A tau on the steep part of the dev curve makes i_tau less noisy
    /// and the episodes shorter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tau: Option<f64>,
    /// Training episodes measure dev accuracy on this many instances of the teacher
    /// half's dev split (a seeded subsample, the same for every episode) instead of all
    /// of it: the dev evaluations are most of an episode's cost. Evaluation keeps the
    /// whole split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev_subsample: Option<usize>,
    /// The reward of training episodes, when it is not the training task's (for
    /// example `{ kind = "dev_accuracy_area", iterations = 500 }`: the area under the
    /// dev curve over the first 500 updates, which moves smoothly with the teacher's
    /// choices). Evaluation keeps the preset's reward and reports instances to tau.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reward: Option<Reward>,
    /// Training episodes evaluate the student every this many updates instead of the
    /// training task's `eval_every` (a dev-accuracy area's H must be a multiple of
    /// it): dev evaluations are a large part of a training episode's cost, and an
    /// area over fewer points still moves smoothly with the policy. Evaluation keeps
    /// the preset's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_every: Option<usize>,
}

impl TrainingConfig {
    /// The number of workers: `workers`, or the available cores for 0.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Teacher-training episodes between two checkpoints (1: no finished episode is
    /// lost when a run is interrupted).
    #[serde(default = "one")]
    pub checkpoint_every: usize,
    /// Where students and data live.
    #[serde(default)]
    pub device: DeviceChoice,
    /// The task the teachers teach on its student half.
    pub preset: Preset,
    /// For transfer: the task whose teacher half trains the learned teachers (another
    /// dataset or student architecture); `preset` itself when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_on: Option<Preset>,
    /// How the learned teachers are trained.
    #[serde(default)]
    pub training: TrainingConfig,
    /// What the summary reports.
    #[serde(default)]
    pub report: ReportConfig,
    /// The teachers, in table order (the first is the reference row unless
    /// `[report] reference` names another).
    pub teachers: Vec<TeacherEntry>,
}

/// The names a run config gives the evaluation seeds, for [`seed_range`]'s errors.
pub const CONFIG_SEED_NAMES: (&str, &str) = ("[preset] first_eval_seed", "[preset] eval_seeds");

/// The evaluation seeds `first .. first + seeds`, checked: at least one seed, and
/// `first + seeds` within u64 (so the range neither wraps around to 0 nor needs an
/// end past the last u64). `names` are the arguments as the user gave them (first seed,
/// seed count): the error ([`ExperimentError::SeedRange`]) names them. Every run
/// resolves its seeds here ([`RunConfig::evaluation_seeds`]).
pub fn seed_range(first: u64, seeds: usize, names: (&str, &str)) -> Result<std::ops::Range<u64>> {
    let error = |reason: String| ExperimentError::SeedRange {
        first_name: names.0.to_string(),
        first,
        seeds_name: names.1.to_string(),
        seeds,
        reason,
    };
    if seeds == 0 {
        return Err(error("at least one seed is needed".into()));
    }
    let count = u64::try_from(seeds).map_err(|_| error("more seeds than u64 holds".into()))?;
    match first.checked_add(count) {
        Some(end) => Ok(first..end),
        None => Err(error(format!(
            "the seeds would run past the last seed 2^64 - 1 ({first_name} + {seeds_name} must              be at most {max}; {first_name} can be at most {largest} for {seeds} seeds)",
            first_name = names.0,
            seeds_name = names.1,
            max = u64::MAX,
            largest = u64::MAX - count,
        ))),
    }
}

/// The position of the reference row among `labels` (the table's order): `reference`'s,
/// or 0 (the first row) when it is `None`. An unknown label is
/// [`ExperimentError::InvalidArgument`] under `name` (`--reference`, `reference`,
/// `[report] reference`), listing the labels.
pub fn reference_index(labels: &[&str], reference: Option<&str>, name: &str) -> Result<usize> {
    let Some(reference) = reference else {
        return Ok(0);
    };
    labels
        .iter()
        .position(|label| *label == reference)
        .ok_or_else(|| ExperimentError::InvalidArgument {
            name: name.to_string(),
            reason: format!(
                "`{reference}` is not a teacher of this run; its teachers are {}",
                labels
                    .iter()
                    .map(|l| format!("`{l}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}

/// Where an [`Overrides`] came from, so that its errors name the argument as the user
/// wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    /// The `l2t` command's flags: `--first-seed`.
    Cli,
    /// The Python functions' keyword arguments: `first_seed`.
    Python,
}

impl Interface {
    /// `field` (an [`Overrides`] field) as this interface spells it.
    pub fn name(self, field: &str) -> String {
        match self {
            Self::Cli => format!("--{}", field.replace('_', "-")),
            Self::Python => field.to_string(),
        }
    }
}

/// Changes to a run config that the `l2t` command's flags and the Python functions'
/// keyword arguments of the same names make (`None`: keep the config's). One
/// implementation ([`Overrides::apply`]) serves both, so a flag means the same on top of
/// a built-in run, of `--config` and in Python.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// Teacher-training episodes of every learned teacher (and of the training task).
    pub episodes: Option<usize>,
    /// Evaluation seeds per teacher.
    pub seeds: Option<usize>,
    /// The first evaluation seed.
    pub first_seed: Option<u64>,
    /// The evaluation's dev-accuracy threshold tau.
    pub tau: Option<f64>,
    /// Teacher-training episodes between two checkpoints.
    pub checkpoint_every: Option<usize>,
    /// Worker threads.
    pub workers: Option<usize>,
    /// A training tau ([`TrainingConfig::tau`]).
    pub train_tau: Option<f64>,
    /// Training dev subsample ([`TrainingConfig::dev_subsample`]).
    pub train_dev: Option<usize>,
    /// Training reward: the dev-accuracy area over this many updates (0: the preset's).
    pub train_area: Option<usize>,
    /// Training evaluation interval ([`TrainingConfig::eval_every`]).
    pub train_eval_every: Option<usize>,
    /// Dev evaluations between two test-accuracy points.
    pub test_every: Option<usize>,
    /// Train the learned teachers on this preset's teacher half (transfer).
    pub train_on: Option<String>,
    /// Write the plots, or not.
    pub plots: Option<bool>,
    /// Where students and data live.
    pub device: Option<DeviceChoice>,
    /// The reference row's label ([`ReportConfig::reference`]).
    pub reference: Option<String>,
}

impl Overrides {
    /// Applies the overrides to `config`, then checks the seeds and the reference:
    /// errors name the argument as `interface` spells it (a seed setting that comes
    /// from the config keeps its config name). `user_labels` are the labels of the
    /// teachers of your own that will run beside the config's (the reference may be
    /// one of them).
    pub fn apply(
        &self,
        config: &mut RunConfig,
        interface: Interface,
        user_labels: &[&str],
    ) -> Result<()> {
        if let Some(episodes) = self.episodes {
            config.preset.episodes = episodes;
            for entry in &mut config.teachers {
                entry.episodes = None;
            }
            if let Some(train_on) = &mut config.train_on {
                train_on.episodes = episodes;
            }
        }
        if let Some(seeds) = self.seeds {
            config.preset.eval_seeds = seeds;
        }
        if let Some(first) = self.first_seed {
            config.preset.first_eval_seed = first;
        }
        let seed_names = (
            match self.first_seed {
                Some(_) => interface.name("first_seed"),
                None => CONFIG_SEED_NAMES.0.to_string(),
            },
            match self.seeds {
                Some(_) => interface.name("seeds"),
                None => CONFIG_SEED_NAMES.1.to_string(),
            },
        );
        seed_range(
            config.preset.first_eval_seed,
            config.preset.eval_seeds,
            (&seed_names.0, &seed_names.1),
        )?;
        if let Some(tau) = self.tau {
            config.preset.teaching = config.preset.teaching.clone().with_tau(tau);
        }
        if let Some(every) = self.checkpoint_every {
            config.checkpoint_every = every;
        }
        if let Some(workers) = self.workers {
            config.training.workers = workers;
        }
        if let Some(tau) = self.train_tau {
            config.training.tau = Some(tau);
        }
        if let Some(size) = self.train_dev {
            config.training.dev_subsample = Some(size);
        }
        match self.train_area {
            Some(0) => config.training.reward = None,
            Some(iterations) => {
                config.training.reward = Some(Reward::DevAccuracyArea { iterations })
            }
            None => {}
        }
        if let Some(every) = self.train_eval_every {
            config.training.eval_every = Some(every);
        }
        if let Some(every) = self.test_every {
            config.report.test_every = every;
        }
        if let Some(train_on) = &self.train_on {
            let mut preset =
                Preset::named(train_on).map_err(|e| ExperimentError::InvalidArgument {
                    name: interface.name("train_on"),
                    reason: e.to_string(),
                })?;
            if let Some(episodes) = self.episodes {
                preset.episodes = episodes;
            }
            config.train_on = Some(preset);
        }
        if let Some(plots) = self.plots {
            config.report.plots = plots;
        }
        if let Some(device) = self.device {
            config.device = device;
        }
        if let Some(reference) = &self.reference {
            config.report.reference = Some(reference.clone());
        }
        let labels: Vec<&str> = (config.teachers.iter().map(|e| e.label.as_str()))
            .chain(user_labels.iter().copied())
            .collect();
        let name = match self.reference {
            Some(_) => interface.name("reference"),
            None => REFERENCE_NAME.to_string(),
        };
        reference_index(&labels, config.report.reference.as_deref(), &name)?;
        Ok(())
    }
}

/// The name a run config gives the reference row, for [`reference_index`]'s errors.
pub const REFERENCE_NAME: &str = "[report] reference";

/// Longer versions of a preset's reproduction (see [`RunConfig::named`]).
pub const LONG_RUNS: [&str; 1] = ["fashion-mnist-mlp-long"];

/// The tasks of `l2t benchmark` (built-in runs, see [`RunConfig::named`]): each is
/// evaluated on the same seeds and ranked in one leaderboard
/// ([`crate::experiment::leaderboard`]).
pub const BENCHMARK_TASKS: [&str; 2] = ["fashion-mnist-mlp", "fashion-mnist-mlp-to-cnn"];

/// The names of the built-in transfer runs (see [`RunConfig::named`]).
pub const TRANSFERS: [&str; 5] = [
    "mnist-to-cifar10",
    "cifar10-to-mnist",
    "cifar10-resnet110-from-resnet32",
    "synthetic-to-fashion-mnist",
    "fashion-mnist-mlp-to-cnn",
];

fn one() -> usize {
    1
}

/// The labels of the teachers of [`RunConfig::reproduction`]: each teacher's kind tag,
/// its one name in `name()`, configs, tables, plots and logs.
pub mod labels {
    /// NoTeach.
    pub const NO_TEACH: &str = "no_teach";
    /// RandTeach matched to REINFORCE.
    pub const RAND_TEACH: &str = "rand_teach";
    /// Self-paced learning.
    pub const SPL: &str = "spl";
    /// Online batch selection.
    pub const ONLINE_BATCH: &str = "online_batch";
    /// Loss-proportional importance sampling.
    pub const IMPORTANCE_SAMPLING: &str = "importance_sampling";
    /// RHO-LOSS: the largest reducible holdout loss.
    pub const RHO_LOSS: &str = "rho_loss";
    /// The paper's REINFORCE teacher.
    pub const REINFORCE: &str = "reinforce";
    /// The actor-critic teacher.
    pub const ACTOR_CRITIC: &str = "actor_critic";
    /// The evolution-strategies teacher.
    pub const ES: &str = "es";
    /// RHO-LOSS with its setting for training compute ([`crate::presets::Preset::rho_loss_for_compute`]).
    pub const RHO_LOSS_COMPUTE: &str = "rho_loss_compute";
    /// Online batch selection with its setting for training compute.
    pub const ONLINE_BATCH_COMPUTE: &str = "online_batch_compute";
    /// Selective backprop (Jiang et al. 2019), the compute baseline, with its setting for
    /// training compute.
    pub const SELECTIVE_BACKPROP: &str = "selective_backprop";
    /// ES trained for training compute ([`crate::presets::Preset::es_for_compute`]).
    pub const ES_COMPUTE: &str = "es_compute";
}

impl RunConfig {
    /// The paper's comparison on `preset`: REINFORCE, the actor-critic and ES trained
    /// on the teacher half, then NoTeach, RandTeach matched to REINFORCE, SPL, online
    /// batch selection, loss-proportional importance sampling, RHO-LOSS and the trained
    /// teachers on fresh students of the student half; every teacher also sees the
    /// `irreducible_loss` feature ([`Preset::irreducible_loss_feature`]).
    pub fn reproduction(mut preset: Preset) -> Self {
        // Every teacher sees each instance's holdout loss (cross-fitted): RHO-LOSS's
        // signal, which ES learns to use (docs/results.md).
        preset.irreducible_loss_feature = true;
        let teachers = vec![
            TeacherEntry::new(labels::NO_TEACH, TeacherConfig::NoTeach),
            TeacherEntry {
                match_drop_ratio_of: Some(labels::REINFORCE.into()),
                ..TeacherEntry::new(
                    labels::RAND_TEACH,
                    TeacherConfig::RandTeach(RandTeachConfig {
                        seed: 7,
                        ..RandTeachConfig::default()
                    }),
                )
            },
            TeacherEntry::new(labels::SPL, TeacherConfig::Spl(preset.spl())),
            // The heuristics' settings were chosen on the selection seeds 0-19 of
            // Fashion-MNIST, each among a few (studies/heuristics-tuning): selection
            // pressure 30 of {30, 100, 300}; importance sampling's kappa 0.4 of
            // {0.15, 0.25, 0.4, 0.6}; RHO-LOSS's kappa 0.05 (one of M = 20) of
            // {0.05, 0.1, 0.2, 0.3, 0.5} and its big batch of P = 4 incoming batches of
            // {1, 2, 4, 8} (studies/rho-pool).
            TeacherEntry::new(
                labels::ONLINE_BATCH,
                TeacherConfig::OnlineBatch(OnlineBatchConfig {
                    pressure_start: 30.0,
                    ..OnlineBatchConfig::default()
                }),
            ),
            TeacherEntry::new(
                labels::IMPORTANCE_SAMPLING,
                TeacherConfig::ImportanceSampling(ImportanceSamplingConfig {
                    keep_fraction: 0.4,
                    ..ImportanceSamplingConfig::default()
                }),
            ),
            TeacherEntry::new(labels::RHO_LOSS, TeacherConfig::RhoLoss(preset.rho_loss())),
            // The same heuristics with a setting chosen for training compute to tau on the
            // selection seeds 0-4 of Fashion-MNIST (studies/compute-teacher): RHO-LOSS's
            // kappa 0.3 of {0.05, 0.1, 0.2, 0.3, 0.5}; selection pressure 10 of
            // {1.5, 3, 10, 30}; selective backprop's beta 1 of {0.5, 1, 2, 3}.
            // Importance sampling's kappa 0.4 tied with 0.6 for compute of {0.2, 0.4, 0.6,
            // 0.8} and is the instance choice too, so its one row serves both.
            TeacherEntry::new(
                labels::RHO_LOSS_COMPUTE,
                TeacherConfig::RhoLoss(preset.rho_loss_for_compute()),
            ),
            TeacherEntry::new(
                labels::ONLINE_BATCH_COMPUTE,
                TeacherConfig::OnlineBatch(OnlineBatchConfig {
                    pressure_start: 10.0,
                    ..OnlineBatchConfig::default()
                }),
            ),
            TeacherEntry::new(
                labels::SELECTIVE_BACKPROP,
                TeacherConfig::SelectiveBackprop(SelectiveBackpropConfig {
                    beta: 1.0,
                    ..SelectiveBackpropConfig::default()
                }),
            ),
            TeacherEntry::new(
                labels::REINFORCE,
                TeacherConfig::Reinforce(ReinforceConfig::default()),
            )
            .trained(),
            TeacherEntry::new(
                labels::ACTOR_CRITIC,
                TeacherConfig::ActorCritic(ActorCriticConfig::default()),
            )
            .trained(),
            TeacherEntry {
                episodes: Some(ES_EPISODES),
                ..TeacherEntry::new(labels::ES, TeacherConfig::Es(preset.es())).trained()
            },
            // Trained from the compute reward alone: the area under dev accuracy against
            // training compute over H plain updates' worth.
            TeacherEntry {
                episodes: Some(ES_EPISODES),
                training_reward: Some(Reward::DevAccuracyComputeArea {
                    iterations: preset.training_horizon(),
                }),
                ..TeacherEntry::new(
                    labels::ES_COMPUTE,
                    TeacherConfig::Es(preset.es_for_compute()),
                )
                .trained()
            },
        ];
        let horizon = preset.training_horizon();
        let training_every = preset.training_eval_every();
        let dev_subsample = preset.training_dev_subsample();
        Self {
            checkpoint_every: 1,
            device: DeviceChoice::Cpu,
            preset,
            train_on: None,
            // Training episodes with a smoother reward (the dev curve's area over H
            // updates) on a 1000-instance dev subsample where the dev split is larger
            // (`Preset::training_dev_subsample`), evaluated about 25 times over H;
            // evaluation keeps the preset's reward and interval and reports effective
            // instances to tau.
            training: TrainingConfig {
                workers: 0,
                tau: None,
                dev_subsample,
                reward: Some(Reward::DevAccuracyArea {
                    iterations: horizon,
                }),
                eval_every: Some(training_every),
            },
            report: ReportConfig::default(),
            teachers,
        }
    }

    /// The built-in runs: every preset's [reproduction](Self::reproduction), and the
    /// paper's transfers: `mnist-to-cifar10` and `cifar10-to-mnist` (a teacher trained on
    /// one dataset and student teaches the other), `cifar10-resnet110-from-resnet32`
    /// (trained with ResNet-32 students, teaching ResNet-110), plus the CPU-sized
    /// `synthetic-to-fashion-mnist` and `fashion-mnist-mlp-to-cnn` (trained with the
    /// MLP students of the main job, teaching the small CNN on the same data); and
    /// `fashion-mnist-mlp-long`, the main job with ten times the REINFORCE and
    /// actor-critic training and twice ES's.
    ///
    /// Any other name is [`ExperimentError::UnknownName`], listing the presets, the
    /// longer runs and the transfers.
    pub fn named(name: &str) -> Result<Self> {
        let transfer = |train: &str, eval: &str| -> Result<Self> {
            let mut config = Self::reproduction(Preset::named(eval)?);
            let mut train_on = Preset::named(train)?;
            train_on.irreducible_loss_feature = true;
            // The training horizon is on the training task's evaluation grid.
            let horizon = train_on.training_horizon();
            config.training.reward = Some(Reward::DevAccuracyArea {
                iterations: horizon,
            });
            config.training.eval_every = Some(train_on.training_eval_every());
            // So is each trained teacher: as the training task's own reproduction has it
            // (its config, e.g. ES for compute's k of the training task's M, its own
            // training reward on that task's horizon, its episodes).
            let own = Self::reproduction(train_on.clone());
            for entry in config.teachers.iter_mut().filter(|e| e.train) {
                if let Some(twin) = own.teachers.iter().find(|t| t.label == entry.label) {
                    entry.teacher = twin.teacher.clone();
                    entry.training_reward = twin.training_reward;
                    entry.episodes = twin.episodes;
                }
            }
            // So is the dev subsample: the training identity is the training task's own
            // reproduction's, whose checkpoints a transfer then reuses.
            config.training.dev_subsample = train_on.training_dev_subsample();
            config.train_on = Some(train_on);
            config.preset.name = name.to_string();
            Ok(config)
        };
        match name {
            "mnist-to-cifar10" => transfer("mnist-mlp", "cifar10-resnet32"),
            "cifar10-to-mnist" => transfer("cifar10-resnet32", "mnist-mlp"),
            "cifar10-resnet110-from-resnet32" => transfer("cifar10-resnet32", "cifar10-resnet110"),
            "synthetic-to-fashion-mnist" => transfer("synthetic", "fashion-mnist-mlp"),
            "fashion-mnist-mlp-to-cnn" => transfer("fashion-mnist-mlp", "fashion-mnist-cnn"),
            "fashion-mnist-mlp-long" => {
                // The main job with ten times REINFORCE's and the actor-critic's
                // training and twice ES's: how far more training goes.
                let mut config = Self::reproduction(Preset::fashion_mnist_mlp());
                config.preset.name = name.to_string();
                config.preset.episodes *= 10;
                for entry in &mut config.teachers {
                    if let Some(episodes) = &mut entry.episodes {
                        *episodes *= 2;
                    }
                }
                Ok(config)
            }
            _ => Preset::named(name).map(Self::reproduction).map_err(|_| {
                ExperimentError::UnknownName {
                    what: "preset",
                    name: name.to_string(),
                    known: format!(
                        "presets: {}; longer runs: {}; transfers: {}",
                        PRESETS.join(", "),
                        LONG_RUNS.join(", "),
                        TRANSFERS.join(", ")
                    ),
                }
            }),
        }
    }

    /// Reads a run config from a TOML file; errors name the file and the field.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ExperimentError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ExperimentError::Config { reason, .. } => ExperimentError::Config {
                source_name: path.display().to_string(),
                reason,
            },
            other => other,
        })
    }

    /// Parses a run config from TOML text.
    pub fn from_toml(text: &str) -> Result<Self> {
        let config: Self = toml::from_str(text).map_err(|e| ExperimentError::Config {
            source_name: "TOML text".into(),
            reason: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The config as TOML (what `--print-config` shows).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| ExperimentError::Config {
            source_name: "the resolved config".into(),
            reason: e.to_string(),
        })
    }

    /// The accuracy levels of the summary table.
    pub fn levels(&self) -> Vec<f64> {
        if !self.report.levels.is_empty() {
            return self.report.levels.clone();
        }
        let tau = self
            .preset
            .teaching
            .thresholds
            .iter()
            .map(|t| t.accuracy)
            .fold(f64::NAN, f64::max);
        [tau - 0.06, tau - 0.03, tau]
            .into_iter()
            .filter(|l| l.is_finite() && *l > 0.0)
            .collect()
    }

    /// Checks what the types cannot: unique labels, matches that name a teacher, a seed
    /// range within u64 with at least one seed, a positive checkpoint interval. (The
    /// reference row is checked where the run's own teachers are known:
    /// [`reference_index`].)
    pub fn validate(&self) -> Result<()> {
        let invalid =
            |field: &'static str, reason: String| ExperimentError::InvalidSetting { field, reason };
        if self.teachers.is_empty() {
            return Err(invalid("teachers", "no teacher to run".into()));
        }
        self.evaluation_seeds()?;
        if self.checkpoint_every == 0 {
            return Err(invalid("checkpoint_every", "must be at least 1".into()));
        }
        if self.training.dev_subsample == Some(0) {
            return Err(invalid(
                "training.dev_subsample",
                "must be at least 1".into(),
            ));
        }
        if let Some(tau) = self.training.tau {
            if !(tau > 0.0 && tau <= 1.0) {
                return Err(invalid(
                    "training.tau",
                    format!("{tau} is not a dev accuracy in (0, 1]"),
                ));
            }
        }
        // The preset's own table first, so that an error names where the field lives.
        if let Err(e) = self.preset.teaching.validate() {
            return Err(invalid("[preset.teaching]", e.to_string()));
        }
        if let Some(Err(e)) = (self.train_on.as_ref()).map(|t| t.teaching.validate()) {
            return Err(invalid("[train_on.teaching]", e.to_string()));
        }
        if self.teachers.iter().any(|e| e.train) {
            if let Err(e) = self.training_teaching().validate() {
                return Err(invalid("[training]", e.to_string()));
            }
        }
        for entry in self.teachers.iter().filter(|e| e.training_reward.is_some()) {
            if let Err(e) = self.training_teaching_of(entry).validate() {
                return Err(invalid(
                    "teachers.training_reward",
                    format!("teacher `{}`: {e}", entry.label),
                ));
            }
        }
        for (i, entry) in self.teachers.iter().enumerate() {
            if self.teachers[..i].iter().any(|e| e.label == entry.label) {
                return Err(invalid(
                    "teachers.label",
                    format!("`{}` is used twice", entry.label),
                ));
            }
            if let Some(target) = &entry.match_drop_ratio_of {
                if !matches!(entry.teacher, TeacherConfig::RandTeach(_)) {
                    return Err(invalid(
                        "teachers.match_drop_ratio_of",
                        format!("`{}` is not a rand_teach teacher", entry.label),
                    ));
                }
                // Without a previous run to read, the target must be a teacher of this
                // run that is not itself matched (it is evaluated first).
                let target_here = self
                    .teachers
                    .iter()
                    .any(|e| &e.label == target && e.match_drop_ratio_of.is_none());
                if entry.match_run.is_none() && !target_here {
                    return Err(invalid(
                        "teachers.match_drop_ratio_of",
                        format!(
                            "`{}` matches `{target}`, which is not an unmatched teacher of this run",
                            entry.label
                        ),
                    ));
                }
            }
        }
        if let Some(train_on) = &self.train_on {
            if train_on.episodes == 0 && self.teachers.iter().any(|e| e.train) {
                return Err(invalid("train_on.episodes", "must be at least 1".into()));
            }
        }
        Ok(())
    }

    /// The evaluation seeds, `first_eval_seed .. first_eval_seed + eval_seeds`, checked
    /// ([`seed_range`]; errors name the `[preset]` fields).
    pub fn evaluation_seeds(&self) -> Result<std::ops::Range<u64>> {
        seed_range(
            self.preset.first_eval_seed,
            self.preset.eval_seeds,
            CONFIG_SEED_NAMES,
        )
    }

    /// The preset whose teacher half trains the learned teachers.
    pub fn training_preset(&self) -> &Preset {
        self.train_on.as_ref().unwrap_or(&self.preset)
    }

    /// The MDP of teacher-training episodes: the training preset's, with the training
    /// tau, reward and evaluation interval where they are set.
    pub fn training_teaching(&self) -> TeachingConfig {
        let mut teaching = self.training_preset().teaching.clone();
        if let Some(tau) = self.training.tau {
            teaching = teaching.with_tau(tau);
        }
        if let Some(reward) = self.training.reward {
            teaching.reward = reward;
        }
        if let Some(every) = self.training.eval_every {
            teaching.eval_every = every;
        }
        teaching
    }

    /// The MDP `entry`'s training episodes run: [`Self::training_teaching`] with the
    /// entry's own training reward where it has one.
    pub fn training_teaching_of(&self, entry: &TeacherEntry) -> TeachingConfig {
        let mut teaching = self.training_teaching();
        if let Some(reward) = entry.training_reward {
            teaching.reward = reward;
        }
        teaching
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_teacher_with_its_own_training_reward_trains_on_it_alone() {
        let config = RunConfig::reproduction(Preset::fashion_mnist_mlp());
        let entry = |label: &str| config.teachers.iter().find(|e| e.label == label).unwrap();
        let shared = config.training_teaching();
        assert_eq!(config.training_teaching_of(entry(labels::ES)), shared);
        let compute = config.training_teaching_of(entry(labels::ES_COMPUTE));
        assert_eq!(
            compute.reward,
            Reward::DevAccuracyComputeArea { iterations: 500 }
        );
        assert_eq!(
            TeachingConfig {
                reward: shared.reward,
                ..compute
            },
            shared,
            "only the reward differs"
        );
        // A reward the MDP refuses names the field and the teacher.
        let mut bad = config.clone();
        for e in &mut bad.teachers {
            if e.label == labels::ES_COMPUTE {
                e.training_reward = Some(Reward::DevAccuracyComputeArea { iterations: 0 });
            }
        }
        let error = bad.validate().unwrap_err().to_string();
        assert!(
            error.contains("teachers.training_reward") && error.contains("es_compute"),
            "{error}"
        );
    }

    #[test]
    fn reproduction_config_round_trips_through_toml() {
        for name in crate::presets::PRESETS
            .iter()
            .chain(&LONG_RUNS)
            .chain(&TRANSFERS)
        {
            let config = RunConfig::named(name).unwrap();
            let text = config.to_toml().unwrap();
            assert_eq!(RunConfig::from_toml(&text).unwrap(), config, "{name}");
        }
    }

    #[test]
    fn bad_configs_name_the_field() {
        let mut config = RunConfig::reproduction(Preset::synthetic());
        config.teachers.push(config.teachers[0].clone());
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("teachers.label"), "{message}");

        let mut config = RunConfig::reproduction(Preset::synthetic());
        config.teachers[1].match_drop_ratio_of = Some("nobody".into());
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("nobody"), "{message}");

        let text = RunConfig::reproduction(Preset::synthetic())
            .to_toml()
            .unwrap()
            .replace("checkpoint_every = 1", "checkpoint_every = 1\nepisodez = 3");
        let message = RunConfig::from_toml(&text).unwrap_err().to_string();
        assert!(message.contains("episodez"), "{message}");
    }

    #[test]
    fn the_reproduction_evaluates_training_episodes_about_25_times_over_the_horizon() {
        // (run, H of the training area, training evaluation interval): T' / 12 on the
        // evaluation grid unless the preset sets H (Rotten Tomatoes: 480); a transfer
        // uses its training task's.
        for (name, horizon, every) in [
            ("fashion-mnist-mlp", 500, 20),
            ("fashion-mnist-mlp-to-cnn", 500, 20),
            ("rotten-tomatoes-lstm", 480, 20),
            ("synthetic", 165, 5),
            ("cifar10-resnet32", 800, 100),
            ("synthetic-to-fashion-mnist", 165, 5),
        ] {
            let config = RunConfig::named(name).unwrap();
            assert_eq!(
                config.training.reward,
                Some(Reward::DevAccuracyArea {
                    iterations: horizon
                }),
                "{name}"
            );
            assert_eq!(config.training.eval_every, Some(every), "{name}");
            config.validate().unwrap();
        }
    }

    #[test]
    fn the_text_reproduction_trains_the_es_that_docs_text_bias_chose() {
        // The ES entry, its episodes, its training reward and the training MDP of
        // studies/text-bias/es-b0-240.toml (output bias 0 and 240 episodes, chosen on the
        // selection seeds) are the reproduction's: its checkpoint is the one the docs
        // measured.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/studies/text-bias/es-b0-240.toml"
        );
        let measured = RunConfig::from_toml(&std::fs::read_to_string(path).unwrap()).unwrap();
        let config = RunConfig::named("rotten-tomatoes-lstm").unwrap();
        let es = |c: &RunConfig| {
            let entry = c
                .teachers
                .iter()
                .find(|t| t.teacher.kind() == "es")
                .unwrap();
            (entry.teacher.clone(), entry.episodes)
        };
        assert_eq!(es(&config), es(&measured));
        assert_eq!(config.training.reward, measured.training.reward);
        assert_eq!(config.training_teaching(), measured.training_teaching());
        assert_eq!(config.preset.teaching, measured.preset.teaching);
    }

    #[test]
    fn a_training_evaluation_interval_changes_training_episodes_only() {
        let mut config = RunConfig::reproduction(Preset::fashion_mnist_mlp());
        config.training.eval_every = Some(50);
        config.validate().unwrap();
        assert_eq!(config.training_teaching().eval_every, 50);
        assert_eq!(config.preset.teaching.eval_every, 10);

        // The area's H (500) must be a multiple of it, and the error says where.
        config.training.eval_every = Some(30);
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("training"), "{message}");
        assert!(message.contains("eval_every"), "{message}");
        config.training.eval_every = Some(0);
        assert!(config.validate().is_err());
    }

    #[test]
    fn unknown_names_list_the_known_ones_and_errors_name_their_table() {
        let message = RunConfig::named("fashion-mnist-mpl")
            .unwrap_err()
            .to_string();
        for known in [
            "`fashion-mnist-mpl`",
            "fashion-mnist-mlp",
            "fashion-mnist-mlp-to-cnn",
        ] {
            assert!(message.contains(known), "{message}");
        }
        let message = Preset::named("synthtic").unwrap_err().to_string();
        assert!(
            message.contains("unknown preset `synthtic`") && message.contains("synthetic"),
            "{message}"
        );
        // batch_size lives in [preset.teaching], and the error says so.
        let mut config = RunConfig::reproduction(Preset::synthetic());
        config.preset.teaching.batch_size = 0;
        let message = config.validate().unwrap_err().to_string();
        assert!(
            message.contains("[preset.teaching]") && message.contains("batch_size"),
            "{message}"
        );
    }

    #[test]
    fn default_levels_end_at_tau() {
        let config = RunConfig::reproduction(Preset::fashion_mnist_mlp());
        let levels = config.levels();
        assert_eq!(levels.len(), 3);
        approx::assert_relative_eq!(levels[2], 0.86);
        approx::assert_relative_eq!(levels[0], 0.80, epsilon = 1e-12);
    }

    #[test]
    fn seed_ranges_that_wrap_are_refused_naming_the_arguments() {
        // The issue's case: 2^64 - 1 and 2 seeds would be "seeds 18446744073709551615 to 0".
        let message = seed_range(u64::MAX, 2, ("--first-seed", "--seeds"))
            .unwrap_err()
            .to_string();
        for part in ["--first-seed", "--seeds", "18446744073709551613"] {
            assert!(message.contains(part), "{part}: {message}");
        }
        assert!(matches!(
            seed_range(0, 0, ("first_seed", "seeds")),
            Err(ExperimentError::SeedRange { seeds: 0, .. })
        ));
        // first + seeds at exactly 2^64 - 1 fits.
        assert_eq!(
            seed_range(u64::MAX - 2, 2, CONFIG_SEED_NAMES).unwrap(),
            u64::MAX - 2..u64::MAX
        );

        // A config names its fields; overrides name their flags or arguments, and a
        // seed setting left to the config keeps its config name.
        let mut config = RunConfig::reproduction(Preset::synthetic());
        config.preset.first_eval_seed = u64::MAX;
        let message = config.validate().unwrap_err().to_string();
        assert!(
            message.contains("[preset] first_eval_seed") && message.contains("[preset] eval_seeds"),
            "{message}"
        );
        let base = RunConfig::reproduction(Preset::synthetic());
        for (interface, first, seeds) in [
            (Interface::Cli, "--first-seed", "--seeds"),
            (Interface::Python, "first_seed", "seeds"),
        ] {
            let overrides = Overrides {
                first_seed: Some(u64::MAX - 1),
                seeds: Some(2),
                ..Overrides::default()
            };
            let message = (overrides.apply(&mut base.clone(), interface, &[]))
                .unwrap_err()
                .to_string();
            assert!(
                message.contains(&format!("{first} = "))
                    && message.contains(&format!("{seeds} = 2")),
                "{message}"
            );
            let only_first = Overrides {
                first_seed: Some(u64::MAX),
                ..Overrides::default()
            };
            let message = (only_first.apply(&mut base.clone(), interface, &[]))
                .unwrap_err()
                .to_string();
            assert!(
                message.contains(first) && message.contains("[preset] eval_seeds"),
                "{message}"
            );
        }
    }

    #[test]
    fn an_unknown_reference_lists_the_labels_under_its_name() {
        let mut config = RunConfig::reproduction(Preset::synthetic());
        let overrides = Overrides {
            reference: Some("rho_los".into()),
            ..Overrides::default()
        };
        let message = (overrides.apply(&mut config, Interface::Cli, &["mine"]))
            .unwrap_err()
            .to_string();
        for part in [
            "--reference",
            "`rho_los`",
            "`rho_loss`",
            "`no_teach`",
            "`mine`",
        ] {
            assert!(message.contains(part), "{part}: {message}");
        }
        // A teacher of your own can be the reference; it goes in [report].
        let overrides = Overrides {
            reference: Some("mine".into()),
            ..Overrides::default()
        };
        overrides
            .apply(&mut config, Interface::Python, &["mine"])
            .unwrap();
        assert_eq!(config.report.reference.as_deref(), Some("mine"));
        let text = config.to_toml().unwrap();
        assert!(text.contains("reference = \"mine\""), "{text}");
        assert_eq!(RunConfig::from_toml(&text).unwrap(), config);
    }
}
