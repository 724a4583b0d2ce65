//! The transfer across architectures `fashion-mnist-mlp-to-cnn`: teachers trained with
//! the MLP students of the main job teach the small CNN on the same data. Its training
//! identity is the main job's, so the main job's checkpoints are reused (as
//! `l2t benchmark` copies them); both tasks provide the `irreducible_loss` column,
//! each from its own holdout students, so a checkpoint trained with it is accepted.

mod common;

use std::fs;

use l2t::config::{labels, RunConfig, TRANSFERS};
use l2t::envs::{Reward, StudentConfig};
use l2t::experiment::{run, training_files, Progress};
use l2t::presets::{Preset, PRESETS};
use l2t::run_dir::RunDir;

use common::{fashion_mnist_data_dir, Scratch};

#[test]
fn the_mlp_to_cnn_transfer_trains_on_the_mlp_task_and_teaches_the_cnn() {
    assert!(PRESETS.contains(&"fashion-mnist-cnn"));
    assert!(TRANSFERS.contains(&"fashion-mnist-mlp-to-cnn"));
    let config = RunConfig::named("fashion-mnist-mlp-to-cnn").unwrap();
    config.validate().unwrap();
    let train_on = config.train_on.as_ref().unwrap();
    assert_eq!(train_on.name, "fashion-mnist-mlp");
    assert!(matches!(train_on.student, StudentConfig::Mlp(_)));
    assert!(matches!(config.preset.student, StudentConfig::Cnn(_)));
    // Same data, split, M and tau as the MLP task; both read the irreducible loss.
    let cnn = Preset::named("fashion-mnist-cnn").unwrap();
    let mlp = Preset::fashion_mnist_mlp();
    assert_eq!(cnn.data, mlp.data);
    assert_eq!(cnn.split_seed, mlp.split_seed);
    assert_eq!(cnn.teaching, mlp.teaching);
    assert!(config.preset.irreducible_loss_feature);
    assert!(train_on.irreducible_loss_feature);
}

#[test]
fn a_cnn_student_config_refuses_unknown_fields_and_names_bad_ones() {
    let text = RunConfig::named("fashion-mnist-mlp-to-cnn")
        .unwrap()
        .to_toml()
        .unwrap();
    assert!(text.contains("kind = \"cnn\""), "{text}");
    let unknown = text.replace("kernel_size = 5", "kernel_size = 5\ndropout = 0.5");
    let message = RunConfig::from_toml(&unknown).unwrap_err().to_string();
    assert!(message.contains("dropout"), "{message}");
    let even = text.replace("kernel_size = 5", "kernel_size = 4");
    let config = RunConfig::from_toml(&even).unwrap();
    let message = match config.preset.student.build(tch::Device::Cpu) {
        Err(error) => error.to_string(),
        Ok(_) => panic!("an even kernel was accepted"),
    };
    assert!(message.contains("student.kernel_size"), "{message}");
}

/// Every built-in transfer trains its teachers under the identity of its training
/// task's own reproduction, so that run's checkpoints are reused: the evaluation task
/// (its student, its dev split's size) is no part of it.
#[test]
fn a_transfer_trains_under_its_training_tasks_identity() {
    let scratch = Scratch::new("transfer-cnn", "identity");
    let out = RunDir::create(&scratch.join("run")).unwrap();
    for name in TRANSFERS {
        let transfer = RunConfig::named(name).unwrap();
        let train_on = transfer.train_on.as_ref().unwrap();
        let own = RunConfig::named(&train_on.name).unwrap();
        let trained: Vec<_> = transfer.teachers.iter().filter(|e| e.train).collect();
        assert!(!trained.is_empty(), "{name}");
        for entry in trained {
            let twin = own
                .teachers
                .iter()
                .find(|e| e.label == entry.label)
                .unwrap();
            assert_eq!(
                training_files(&out, &transfer, entry).unwrap().checkpoint,
                training_files(&out, &own, twin).unwrap().checkpoint,
                "{name}: {}",
                entry.label
            );
        }
    }
}

/// Shrinks a Fashion-MNIST preset so that a run takes seconds: 60 updates, tau 0.6.
fn shrink(preset: &mut Preset) {
    preset.teaching = preset.teaching.clone().with_tau(0.6);
    preset.teaching.max_iterations = 60;
    preset.eval_seeds = 1;
}

/// `config` with NoTeach and ES (4 episodes of 40 updates) only.
fn shrink_run(config: &mut RunConfig) {
    shrink(&mut config.preset);
    if let Some(train_on) = &mut config.train_on {
        shrink(train_on);
    }
    config.training.reward = Some(Reward::DevAccuracyArea { iterations: 40 });
    config.training.eval_every = Some(20);
    config.report.plots = false;
    config
        .teachers
        .retain(|e| e.label == labels::NO_TEACH || e.label == labels::ES);
    for entry in &mut config.teachers {
        if entry.label == labels::ES {
            entry.episodes = Some(4);
        }
    }
}

/// On the real Fashion-MNIST files (`scripts/setup.sh` installs them): the main job's
/// ES checkpoint, trained with the irreducible-loss column on MLP students, copied into
/// the transfer's folder, is read back without training and teaches CNN students.
#[test]
fn the_main_jobs_checkpoint_teaches_cnn_students_without_retraining() {
    tch::set_num_threads(1);
    let data_dir = fashion_mnist_data_dir();
    let scratch = Scratch::new("transfer-cnn", "reuse");
    let mut main_job = RunConfig::named("fashion-mnist-mlp").unwrap();
    shrink_run(&mut main_job);
    let mut transfer = RunConfig::named("fashion-mnist-mlp-to-cnn").unwrap();
    shrink_run(&mut transfer);

    let main_dir = scratch.join("main");
    let mut out = RunDir::create(&main_dir).unwrap();
    run(&main_job, &data_dir, &mut out, |_| {}).unwrap();
    let es = |config: &RunConfig| {
        let entry = config
            .teachers
            .iter()
            .find(|e| e.label == labels::ES)
            .unwrap()
            .clone();
        training_files(&out, config, &entry).unwrap()
    };
    let checkpoint = es(&main_job).checkpoint;
    assert!(checkpoint.exists(), "{}", checkpoint.display());

    // As `l2t benchmark`: the checkpoints and histories copied to the new folder.
    let transfer_dir = scratch.join("transfer");
    let mut out = RunDir::create(&transfer_dir).unwrap();
    for file in [&checkpoint, &es(&main_job).history] {
        let name = file.file_name().unwrap();
        fs::copy(file, transfer_dir.join(name)).unwrap();
    }
    let bytes = fs::read(&checkpoint).unwrap();
    let mut phases = Vec::new();
    let mut trained = 0;
    let report = run(&transfer, &data_dir, &mut out, |p| match p {
        Progress::Phase {
            teacher,
            training: true,
            total,
            done,
        } => phases.push((teacher.to_string(), total, done)),
        Progress::Trained(_) => trained += 1,
        _ => {}
    })
    .unwrap();
    assert_eq!(phases, vec![(labels::ES.to_string(), 4, 4)]);
    assert_eq!(trained, 0, "the copied checkpoint was trained further");
    let copied = transfer_dir.join(checkpoint.file_name().unwrap());
    assert_eq!(fs::read(&copied).unwrap(), bytes);

    // Both tasks' irreducible losses, each from its own holdout students.
    let features = fs::read_dir(&transfer_dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("irreducible-feature-")
        })
        .count();
    assert_eq!(features, 2);
    // ES taught the CNN students.
    let es_episodes: Vec<_> = report
        .evaluations
        .iter()
        .filter(|r| r.teacher == labels::ES)
        .collect();
    assert_eq!(es_episodes.len(), 1);
    assert!(es_episodes[0].episode.instances_kept > 0);
    assert_eq!(report.config.preset.name, "fashion-mnist-mlp-to-cnn");
}
