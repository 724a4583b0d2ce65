//! Invariants of the teaching MDP under random keep-masks (proptest).

mod common;

use l2t::envs::spaces::Space;
use l2t::envs::{Env, TeachingConfig};
use ndarray::Array1;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// For any sequence of masks: kept counts add up, the buffer holds fewer than M
    /// after every step, updates = floor(total kept / M), and every observation lies
    /// in the declared Box.
    #[test]
    fn kept_instances_are_accounted_for(
        batch_size in 1usize..12,
        masks in prop::collection::vec(prop::collection::vec(any::<bool>(), 12), 1..40),
        seed in 0u64..1000,
    ) {
        // tau = 1.0 is never exceeded and T' is large: no early end inside the test.
        let config = TeachingConfig {
            batch_size,
            max_iterations: 10_000,
            eval_every: 7,
            ..TeachingConfig::default()
        }
        .with_tau(1.0);
        let mut env = common::tiny_env(config);
        let (first, _) = env.reset(Some(seed)).unwrap();
        prop_assert!(env.observation_space().contains(&first));
        let mut total_kept = 0usize;
        for raw in &masks {
            let keep_mask = Array1::from_iter(raw.iter().copied().take(batch_size));
            total_kept += keep_mask.iter().filter(|&&k| k).count();
            let step = env.step(&keep_mask).unwrap();
            let info = &step.info;
            prop_assert_eq!(info.instances_kept, total_kept);
            prop_assert!(info.buffered < batch_size);
            prop_assert_eq!(info.iteration, total_kept / batch_size);
            prop_assert_eq!(info.buffered, total_kept % batch_size);
            prop_assert_eq!(info.effective_instances, info.iteration * batch_size);
            prop_assert!(env.observation_space().contains(&step.observation));
            prop_assert_eq!(step.reward, 0.0);
            prop_assert!(!step.terminated);
        }
    }
}
