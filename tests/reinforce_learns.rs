//! REINFORCE learns: started from a policy that drops most data, under an incoming-batch
//! budget that such a policy cannot meet, the teacher must raise its keep probability
//! to be rewarded. Its mean episode reward over the last 20 of 120 episodes is higher
//! than over the first 20. Seeded, so the outcome is stable; a wrong gradient sign, a broken
//! baseline or a frozen optimizer makes it fail.

mod common;

use l2t::agents::{train_parallel, AgentError, PooledEpisode, Reinforce, ReinforceConfig};
use l2t::envs::TeachingConfig;

#[test]
fn reinforce_raises_its_reward_over_training() {
    let config = TeachingConfig {
        max_incoming_batches: Some(60),
        ..common::tiny_config()
    };
    let mut pool = common::tiny_pool(1, config);
    let mut teacher = Reinforce::new(
        ReinforceConfig {
            // sigma(-1) = 0.27: at first about a quarter of each batch is kept.
            output_bias: -1.0,
            seed: 3,
            ..ReinforceConfig::default()
        },
        &common::tiny_layout(),
    )
    .unwrap();
    let episodes = train_parallel(
        &mut pool,
        &mut teacher,
        120,
        100,
        |_, _: &[PooledEpisode]| Ok::<(), AgentError>(()),
    )
    .unwrap();
    assert_eq!(episodes.len(), 120);
    let rewards: Vec<f64> = episodes.iter().map(|e| e.summary.episode_return).collect();
    let kept: Vec<f64> = episodes
        .iter()
        .map(|e| e.summary.instances_kept as f64 / e.summary.instances_seen as f64)
        .collect();
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
