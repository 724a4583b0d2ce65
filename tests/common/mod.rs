//! Small environments shared by the integration tests.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};
use rand::Rng;
use serde_json::Value;

use l2t::agents::{BernoulliPolicy, PolicyRollout, PooledEpisode, Teacher, UpdateStats};
use l2t::envs::seeding::{stream_rng, Stream};
use l2t::envs::{
    Env, EnvFactory, EnvPool, FeatureLayout, MlpConfig, MlpStudent, OptimizerConfig,
    SyntheticConfig, TaskData, TeachingConfig, TeachingEnv, TeachingInfo, TeachingObservation,
};
use l2t::presets::{DataSource, Preset};

/// A tiny synthetic task: 400 training instances of 8 features, 4 classes.
pub fn tiny_data() -> TaskData {
    single_thread();
    SyntheticConfig {
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
    .expect("valid synthetic config")
}

/// One libtorch intra-op thread, as the `l2t` command uses: tiny students run several
/// times slower with more threads on a shared 2-core machine.
pub fn single_thread() {
    tch::set_num_threads(1);
}

/// The MLP `input_dim`-16-4 with Adam 1e-2 (input_dim 8 fits [`tiny_data`]).
pub fn tiny_student_config(input_dim: usize) -> MlpConfig {
    MlpConfig {
        input_dim,
        hidden: vec![16],
        num_classes: 4,
        optimizer: OptimizerConfig::Adam {
            learning_rate: 1e-2,
            weight_decay: 0.0,
        },
    }
}

/// An MLP student of [`tiny_student_config`].
pub fn tiny_student(input_dim: usize) -> Box<MlpStudent> {
    single_thread();
    let config = tiny_student_config(input_dim);
    Box::new(MlpStudent::new(config, tch::Device::Cpu).expect("valid student"))
}

/// An environment over [`tiny_data`] with the given MDP settings.
pub fn tiny_env(config: TeachingConfig) -> TeachingEnv {
    let data = tiny_data();
    TeachingEnv::new(config, tiny_student(8), data.train, data.dev).expect("valid env")
}

/// MDP settings for [`tiny_env`]: M = 8, a threshold reached in a few dozen steps.
pub fn tiny_config() -> TeachingConfig {
    TeachingConfig {
        batch_size: 8,
        max_iterations: 300,
        eval_every: 2,
        ..TeachingConfig::default()
    }
    .with_tau(0.7)
}

/// A pool of `workers` [`tiny_env`]s with the MDP settings `config`.
pub fn tiny_pool(workers: usize, config: TeachingConfig) -> EnvPool<TeachingEnv> {
    let factories = (0..workers)
        .map(|_| {
            let config = config.clone();
            Box::new(move || Ok(tiny_env(config))) as EnvFactory<TeachingEnv>
        })
        .collect();
    EnvPool::new(factories).expect("valid pool")
}

/// The 13 feature columns of [`tiny_env`].
pub fn tiny_layout() -> FeatureLayout {
    tiny_env(tiny_config()).layout().clone()
}

/// The bit patterns of `values`, for exact comparisons.
pub fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// A reward a learned teacher can see, for ascent tests: 4 batches of 16 random
/// feature rows (13 columns); each kept row pays +1 when its column 3 is above 0.5 and
/// -1 below. A policy that has learned it keeps the high rows more than the low ones.
pub struct KeepHighTask {
    /// The incoming batches, taught in order.
    pub batches: Vec<Array2<f32>>,
    high: Array2<f32>,
    low: Array2<f32>,
    info: TeachingInfo,
    /// The tiny env's 13 columns, which the rows stand in for.
    pub layout: FeatureLayout,
}

impl KeepHighTask {
    /// The batches (from the data stream of seed 4) and their high and low rows.
    pub fn new() -> Self {
        let mut rng = stream_rng(4, Stream::Data);
        let batches: Vec<Array2<f32>> = (0..4)
            .map(|_| Array2::from_shape_fn((16, 13), |_| rng.gen::<f32>()))
            .collect();
        let split = |high: bool| {
            let rows: Vec<f32> = batches
                .iter()
                .flat_map(|b| b.rows().into_iter().map(|r| r.to_vec()).collect::<Vec<_>>())
                .filter(|r| (r[3] > 0.5) == high)
                .flatten()
                .collect();
            Array2::from_shape_vec((rows.len() / 13, 13), rows).expect("13 columns")
        };
        let (high, low) = (split(true), split(false));
        let mut env = tiny_env(tiny_config());
        let layout = env.layout().clone();
        let info = env.reset(Some(0)).expect("reset").1;
        Self {
            batches,
            high,
            low,
            info,
            layout,
        }
    }

    /// Teaches the batches with `rollout`: the reward of each step, in order (the
    /// caller observes them).
    pub fn teach(&self, rollout: &mut PolicyRollout) -> Vec<f64> {
        self.batches
            .iter()
            .map(|batch| {
                let observation = TeachingObservation {
                    features: batch.clone(),
                    student_state: Array1::zeros(3),
                    layout: self.layout.clone(),
                };
                let mask = rollout.act(&observation, &self.info).expect("act");
                batch
                    .rows()
                    .into_iter()
                    .zip(mask.iter())
                    .filter(|(_, keep)| **keep)
                    .map(|(row, _)| if row[3] > 0.5 { 1.0 } else { -1.0 })
                    .sum()
            })
            .collect()
    }

    /// Mean keep probability of `policy` on the high rows minus on the low rows.
    pub fn gap(&self, policy: &BernoulliPolicy) -> f64 {
        let mean_keep = |rows: &Array2<f32>| {
            policy
                .keep_probabilities(&BernoulliPolicy::features_tensor(rows))
                .mean(tch::Kind::Float)
                .double_value(&[])
        };
        mean_keep(&self.high) - mean_keep(&self.low)
    }
}

/// What decides each episode of a pooled run, in order: its seed, return, instances
/// kept and update (everything but the wall-clock times).
pub fn outcomes(episodes: &[PooledEpisode]) -> Vec<(u64, f64, usize, Option<UpdateStats>)> {
    episodes
        .iter()
        .map(|e| {
            let s = &e.summary;
            (e.seed, s.episode_return, s.instances_kept, s.update.clone())
        })
        .collect()
}

/// A fresh scratch folder under the temp dir (`l2t-<prefix>-<name>-<pid>`), removed
/// when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(prefix: &str, name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("l2t-{prefix}-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The synthetic preset shrunk so that a whole run takes seconds: 3,000 training and
/// 400 dev and test instances, T' = 400, tau = 0.7, `episodes` training episodes, two
/// evaluation seeds.
pub fn small_synthetic_preset(episodes: usize) -> Preset {
    let mut preset = Preset::synthetic();
    if let DataSource::Synthetic(data) = &mut preset.data {
        data.train_size = 3_000;
        data.dev_size = 400;
        data.test_size = 400;
    }
    preset.teaching.max_iterations = 400;
    preset.teaching = preset.teaching.clone().with_tau(0.7);
    preset.episodes = episodes;
    preset.eval_seeds = 2;
    preset
}

/// NoTeach and ES (`pairs` antithetic pairs) trained for `episodes` episodes on the small
/// synthetic task, one worker, no plots.
pub fn small_es_config(episodes: usize, pairs: usize) -> l2t::config::RunConfig {
    use l2t::agents::{EsConfig, TeacherConfig};
    use l2t::config::{labels, RunConfig, TeacherEntry};
    let mut config = RunConfig::reproduction(small_synthetic_preset(episodes));
    config.training.workers = 1;
    config.report.plots = false;
    config.teachers = vec![
        TeacherEntry::new(labels::NO_TEACH, TeacherConfig::NoTeach),
        TeacherEntry::new(
            labels::ES,
            TeacherConfig::Es(EsConfig {
                pairs,
                ..Default::default()
            }),
        )
        .trained(),
    ];
    config
}

/// `value` without its timing fields (every key containing `seconds`), the command
/// line, the git commit, and the keys in `also`.
pub fn without_timing(mut value: Value, also: &[&str]) -> Value {
    fn strip(value: &mut Value, also: &[&str]) {
        match value {
            Value::Object(map) => {
                map.retain(|key, _| {
                    !(key.contains("seconds")
                        || key == "command"
                        || key == "git_commit"
                        || also.contains(&key.as_str()))
                });
                map.values_mut().for_each(|v| strip(v, also));
            }
            Value::Array(items) => items.iter_mut().for_each(|v| strip(v, also)),
            _ => {}
        }
    }
    strip(&mut value, also);
    value
}

/// The names of the files of `dir` (no subfolders), sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The rows of the CSV file at `path` without its `seconds` column.
pub fn csv_without_seconds(path: &Path) -> Vec<Vec<String>> {
    let text = fs::read_to_string(path).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let keep: Vec<bool> = header.iter().map(|h| *h != "seconds").collect();
    text.lines()
        .map(|line| {
            line.split(',')
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(v, _)| v.to_string())
                .collect()
        })
        .collect()
}

/// The data folder holding the real Fashion-MNIST files that `scripts/setup.sh`
/// installs (CI runs the set-up), failing the test with the fix when they are missing.
pub fn fashion_mnist_data_dir() -> PathBuf {
    let data_dir = l2t::presets::default_data_dir();
    assert!(
        data_dir.join("fashion-mnist").exists(),
        "Fashion-MNIST is missing under {}: run `bash scripts/setup.sh`",
        data_dir.display()
    );
    data_dir
}
