//! A short teaching episode on the real Fashion-MNIST files that `scripts/setup.sh`
//! installs (CI runs the set-up, so this runs in CI).

mod common;

use l2t::agents::{run_episode, NoTeach};
use l2t::envs::{check_env, CheckOptions};
use l2t::presets::Preset;

use common::fashion_mnist_data_dir;

#[test]
fn a_short_episode_on_real_fashion_mnist() {
    tch::set_num_threads(1);
    let data_dir = fashion_mnist_data_dir();
    let mut preset = Preset::fashion_mnist_mlp();
    preset.teaching = preset.teaching.with_tau(0.7);
    preset.teaching.max_iterations = 400;
    let mut envs = preset.build(&data_dir).expect("Fashion-MNIST loads");
    assert_eq!(envs.teacher_env.train_data().len(), 28_500);
    assert_eq!(envs.student_env.train_data().len(), 30_000);
    assert_eq!(envs.test.len(), 10_000);
    assert_eq!(envs.teacher_env.feature_names().len(), 25);

    let summary = run_episode(&mut envs.student_env, &mut NoTeach, Some(0)).expect("episode runs");
    assert!(
        summary.terminated,
        "a NoTeach MLP passes 0.7 dev accuracy within 400 updates"
    );
    let test_accuracy = envs.student_env.evaluate(&envs.test).unwrap();
    assert!(test_accuracy > 0.65, "test accuracy {test_accuracy}");

    check_env(&mut envs.teacher_env, &CheckOptions::default()).expect("conforms on real data");
}
