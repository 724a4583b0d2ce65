//! Checkpoints of every learned teacher through the registry: training resumed from a
//! checkpoint is the training that never stopped, bit for bit; files written before
//! each teacher owned its checkpoint state (format version 3) still load and save
//! byte for byte, and once loaded for an env, store its column names; the registry
//! refuses other columns, damage and teachers that learn nothing with typed errors.

mod common;

use std::path::{Path, PathBuf};

use l2t::agents::{
    load_learner, load_teacher, train_parallel, ActorCriticConfig, AgentError, CheckpointFile,
    EsConfig, Learner, PooledEpisode, PpoConfig, ReinforceConfig, TeacherConfig, CHECKPOINT_KINDS,
};
use l2t::envs::{FeatureLayout, TeachingConfig};
use l2t::presets::Preset;

/// One small config of every checkpointed kind, each with two episodes per update.
fn learned_configs() -> Vec<TeacherConfig> {
    vec![
        TeacherConfig::Reinforce(ReinforceConfig {
            seed: 3,
            episodes_per_update: 2,
            lr_decay_every: 2,
            ..ReinforceConfig::default()
        }),
        TeacherConfig::ActorCritic(ActorCriticConfig {
            seed: 4,
            episodes_per_update: 2,
            lr_decay_every: 2,
            ..ActorCriticConfig::default()
        }),
        TeacherConfig::Es(EsConfig {
            seed: 5,
            pairs: 1,
            ..EsConfig::default()
        }),
        TeacherConfig::Ppo(PpoConfig {
            seed: 6,
            episodes_per_update: 2,
            ..PpoConfig::default()
        }),
    ]
}

fn names() -> FeatureLayout {
    common::tiny_layout()
}

/// Trains `learner` on a pool of `workers` tiny envs until it has learned from
/// `episodes` episodes.
fn train(learner: &mut dyn Learner, workers: usize, episodes: usize) -> Vec<PooledEpisode> {
    let config = TeachingConfig {
        max_iterations: 60,
        ..common::tiny_config()
    };
    train_parallel(
        &mut common::tiny_pool(workers, config),
        learner,
        episodes,
        100,
        |_, _| -> Result<(), AgentError> { Ok(()) },
    )
    .unwrap()
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("l2t-ckpt-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn every_learned_teacher_resumes_from_its_checkpoint_bit_for_bit() {
    let scratch = Scratch::new("resume");
    for config in learned_configs() {
        let kind = config.kind();
        let straight_path = scratch.path(&format!("{kind}-straight.ckpt"));
        let resumed_path = scratch.path(&format!("{kind}-resumed.ckpt"));

        let mut straight = config.build_learner(&names()).unwrap();
        let straight_episodes = train(&mut *straight, 2, 4);
        straight.save_checkpoint(&straight_path).unwrap();

        let mut first = config.build_learner(&names()).unwrap();
        train(&mut *first, 2, 2);
        first.save_checkpoint(&resumed_path).unwrap();
        let mut loaded = load_learner(&resumed_path, Some(&names())).unwrap();
        assert_eq!(loaded.name(), kind);
        assert_eq!(loaded.episodes_learned(), 2, "{kind}");
        let resumed_episodes = train(&mut *loaded, 1, 4);
        assert_eq!(
            common::outcomes(&resumed_episodes),
            common::outcomes(&straight_episodes[2..]),
            "{kind}"
        );
        loaded.save_checkpoint(&resumed_path).unwrap();
        assert_eq!(
            std::fs::read(&straight_path).unwrap(),
            std::fs::read(&resumed_path).unwrap(),
            "{kind}"
        );

        // The registry refuses other columns and a damaged file with typed errors.
        let fewer = FeatureLayout::new(names().names()[1..].to_vec());
        assert!(
            matches!(
                load_teacher(&straight_path, Some(&fewer)),
                Err(AgentError::CheckpointLayout { .. })
            ),
            "{kind}"
        );
        let mut bytes = std::fs::read(&straight_path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        std::fs::write(&resumed_path, &bytes).unwrap();
        assert!(
            matches!(
                load_teacher(&resumed_path, None),
                Err(AgentError::CorruptCheckpoint { .. })
            ),
            "{kind}"
        );
    }
}

/// The files in `tests/data/checkpoints-v3` were written by the build before each
/// teacher owned its checkpoint state (commit 671efac, `l2t train synthetic` with two
/// episodes of a small config of each kind).
fn written_before(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/checkpoints-v3")
        .join(format!("{kind}.ckpt"))
}

#[test]
fn files_written_before_the_redesign_load_and_save_byte_for_byte() {
    let scratch = Scratch::new("v3");
    for kind in CHECKPOINT_KINDS {
        let path = written_before(kind);
        let learner = load_learner(&path, None).unwrap();
        assert_eq!(learner.name(), kind);
        assert_eq!(learner.episodes_learned(), 2, "{kind}");
        let again = scratch.path(&format!("{kind}.ckpt"));
        learner.save_checkpoint(&again).unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            std::fs::read(&again).unwrap(),
            "{kind}"
        );
        // They say that their layout is known by width only ...
        let file = CheckpointFile::read(&path).unwrap();
        assert!(file.layout_note().unwrap().contains("by width only"));
        // ... and, loaded for the env they were trained on (`l2t train synthetic`: the
        // synthetic task with `irreducible_loss` after its 10 labels), take its names
        // and store them when saved again.
        let synthetic = Preset::synthetic().build(Path::new(".")).unwrap();
        let mut names = synthetic.student_env.feature_names().to_vec();
        names.insert(10, "irreducible_loss".into());
        let layout = &FeatureLayout::new(names);
        let learner = load_learner(&path, Some(layout)).unwrap();
        assert_eq!(learner.columns(), layout.names().to_vec());
        learner.save_checkpoint(&again).unwrap();
        let file = CheckpointFile::read(&again).unwrap();
        assert!(file.layout_note().is_none());
        assert_eq!(&file.layout(), layout);
        // A width they were not trained on is refused.
        let wider = FeatureLayout::new([layout.names(), &["extra".to_string()]].concat());
        assert!(matches!(
            load_learner(&path, Some(&wider)),
            Err(AgentError::CheckpointLayout { .. })
        ));
    }
}

#[test]
fn the_registry_knows_every_learned_kind_and_refuses_the_rest() {
    let kinds: Vec<&str> = learned_configs().iter().map(TeacherConfig::kind).collect();
    assert_eq!(kinds, CHECKPOINT_KINDS);
    for config in [
        TeacherConfig::NoTeach,
        TeacherConfig::from_json(r#"{"kind": "spl"}"#).unwrap(),
    ] {
        match config.build_learner(&names()) {
            Err(AgentError::NotALearner { teacher }) => assert_eq!(teacher, config.kind()),
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("{} built as a learner", config.kind()),
        }
    }
}
