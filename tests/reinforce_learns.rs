//! REINFORCE learns: started from a policy that drops most data, under an incoming-batch
//! budget that such a policy cannot meet, the teacher must raise its keep probability
//! to be rewarded. Its mean episode reward over the last 20 of 120 episodes is higher
//! than over the first 20. Seeded, so the outcome is stable; a wrong gradient sign, a broken
//! baseline or a frozen optimizer makes it fail.

mod common;

use l2t::agents::{run_episode, Reinforce, ReinforceConfig};
use l2t::envs::TeachingConfig;

#[test]
fn reinforce_raises_its_reward_over_training() {
    let config = TeachingConfig {
        max_incoming_batches: Some(60),
        ..common::tiny_config()
    };
    let mut env = common::tiny_env(config);
    let mut teacher = Reinforce::new(
        ReinforceConfig {
            // sigma(-1) = 0.27: at first about a quarter of each batch is kept.
            output_bias: -1.0,
            seed: 3,
            ..ReinforceConfig::default()
        },
        env.feature_names().len(),
    )
    .unwrap();
    let episodes = 120;
    let mut rewards = Vec::new();
    let mut kept = Vec::new();
    for k in 0..episodes {
        let summary = run_episode(&mut env, &mut teacher, Some(100 + k)).unwrap();
        rewards.push(summary.episode_return);
        kept.push(summary.instances_kept as f64 / summary.instances_seen as f64);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (first, last) = (mean(&rewards[..20]), mean(&rewards[100..]));
    let (kept_first, kept_last) = (mean(&kept[..20]), mean(&kept[100..]));
    eprintln!("mean reward {first:.3} -> {last:.3}, kept ratio {kept_first:.3} -> {kept_last:.3}");
    assert!(last > first + 0.5, "mean reward {first:.3} -> {last:.3}");
    assert!(
        kept_last > kept_first,
        "kept ratio {kept_first:.3} -> {kept_last:.3}"
    );
}
