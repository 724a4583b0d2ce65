//! A teaching episode runs end to end on the image and text tasks with their paper
//! students (ResNet on CIFAR-10-format files, LSTM on review-CSV files), at small sizes,
//! on data the tests write in the real file formats.

use std::io::Write;
use std::path::PathBuf;

use l2t::agents::{run_episode, NoTeach};
use l2t::envs::data::cifar::load_cifar10;
use l2t::envs::data::text::load_rotten_tomatoes;
use l2t::envs::{
    check_env, CheckOptions, Dataset, LstmConfig, OptimizerConfig, ResNetConfig, StudentConfig,
    TeachingConfig, TeachingEnv,
};

/// A fresh folder under the system temp dir, unique to this test process.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("l2t-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes the six CIFAR-10 binary files with `per_file` records each: label byte, then
/// 1024 red, 1024 green and 1024 blue bytes. Class c images are brighter with c.
fn write_cifar(dir: &std::path::Path, per_file: usize) {
    let names = [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ];
    let mut counter = 0usize;
    for name in names {
        let mut file = std::fs::File::create(dir.join(name)).unwrap();
        for _ in 0..per_file {
            let label = (counter % 10) as u8;
            let mut record = vec![label];
            record.extend(
                (0..3072).map(|p| ((label as usize * 20 + (p * 31 + counter) % 40) % 256) as u8),
            );
            file.write_all(&record).unwrap();
            counter += 1;
        }
    }
}

fn short_episode_config(batch_size: usize) -> TeachingConfig {
    TeachingConfig {
        batch_size,
        max_iterations: 3,
        eval_every: 1,
        eval_chunk: 16,
        ..TeachingConfig::default()
    }
    .with_tau(1.0)
}

#[test]
fn resnet_teaching_episode_on_cifar_format_files() {
    tch::set_num_threads(1);
    let dir = scratch_dir("cifar");
    write_cifar(&dir, 8);
    let (train, test) = load_cifar10(&dir).unwrap();
    assert_eq!((train.len(), test.len()), (40, 8));
    let dev = train
        .subset("cifar/dev", &(0..8).collect::<Vec<i64>>())
        .unwrap();
    let student = StudentConfig::ResNet(ResNetConfig {
        depth: 8,
        ..ResNetConfig::cifar(8)
    })
    .build(tch::Device::Cpu)
    .unwrap();
    let mut env = TeachingEnv::new(short_episode_config(8), student, train, dev).unwrap();
    let summary = run_episode(&mut env, &mut NoTeach, Some(0)).unwrap();
    assert!(summary.truncated && summary.iterations == 3);
    assert!(env.evaluate(&test).unwrap() >= 0.0);
    check_env(&mut env, &CheckOptions::default()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lstm_teaching_episode_on_review_csv() {
    tch::set_num_threads(1);
    let dir = scratch_dir("reviews");
    let path = dir.join("reviews.csv");
    let mut csv = String::from("category,text,movie_name,has_plot_and_reviews\n");
    for i in 0..60 {
        let (category, text) = match i % 3 {
            0 => (
                "fresh",
                format!("a moving, \"brilliant\" film number {i}, great cast"),
            ),
            1 => ("rotten", format!("dull and tedious {i}")),
            _ => ("plot", format!("a man travels to town {i}")),
        };
        csv.push_str(&format!(
            "{category},\"{}\",movie{i},True\n",
            text.replace('"', "\"\"")
        ));
    }
    std::fs::write(&path, csv).unwrap();
    let task = load_rotten_tomatoes(&path, 50, 12, 0.25, 0).unwrap();
    assert_eq!(task.train.len() + task.test.len(), 40, "plot rows dropped");
    let dev: Dataset = task
        .train
        .subset("reviews/dev", &[0, 1, 2, 3, 4, 5])
        .unwrap();
    let student = StudentConfig::Lstm(LstmConfig {
        embed_dim: 8,
        hidden_size: 8,
        optimizer: OptimizerConfig::Adam {
            learning_rate: 1e-2,
            weight_decay: 0.0,
        },
        ..LstmConfig::imdb(task.vocabulary.len())
    })
    .build(tch::Device::Cpu)
    .unwrap();
    let mut env = TeachingEnv::new(short_episode_config(4), student, task.train, dev).unwrap();
    assert!(
        env.layout().contains("sentence_length"),
        "text adds the length feature"
    );
    assert_eq!(env.feature_names().len(), 2 + 1 + 3 + 2 + 2);
    let (observation, _) = l2t::envs::Env::reset(&mut env, Some(1)).unwrap();
    let lengths = observation.column("sentence_length").unwrap();
    assert!(lengths.iter().all(|l| *l > 0.0 && *l <= 1.0), "{lengths:?}");
    let summary = run_episode(&mut env, &mut NoTeach, Some(0)).unwrap();
    assert!(summary.truncated && summary.iterations == 3);
    check_env(&mut env, &CheckOptions::default()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
