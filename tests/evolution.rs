//! Evolution strategies: the same teacher for any number of workers, antithetic pairs
//! with common random numbers, and a gradient
//! estimate that climbs a reward it can see.

mod common;

use l2t::agents::{
    train_parallel, AgentError, Checkpointed, CommonRandomNumbers, EsConfig, EvolutionStrategies,
    Learner, PooledEpisode, Teacher,
};
use l2t::envs::{Env, EnvPool, TeachingConfig, TeachingEnv};

fn config() -> TeachingConfig {
    TeachingConfig {
        max_iterations: 80,
        ..common::tiny_config()
    }
}

fn pool(workers: usize) -> EnvPool<TeachingEnv> {
    common::tiny_pool(workers, config())
}

fn es(hidden: usize) -> EvolutionStrategies {
    let config = EsConfig {
        pairs: 2,
        hidden,
        seed: 9,
        ..EsConfig::default()
    };
    EvolutionStrategies::new(config, &common::tiny_layout()).unwrap()
}

fn train(es: &mut EvolutionStrategies, workers: usize, episodes: usize) -> Vec<PooledEpisode> {
    train_parallel(
        &mut pool(workers),
        es,
        episodes,
        100,
        |_, _| -> Result<(), AgentError> { Ok(()) },
    )
    .unwrap()
}

/// A fresh teacher from `make`, trained on 2 workers for as many episodes as
/// `reference` was on 1, ends with `reference`'s theta and the same episodes.
fn trains_alike_on_two_workers(
    make: impl Fn() -> EvolutionStrategies,
    reference: &EvolutionStrategies,
    episodes: &[PooledEpisode],
) {
    let mut other = make();
    let other_episodes = train(&mut other, 2, episodes.len());
    assert_eq!(
        common::bits(&other.flat_weights().unwrap()),
        common::bits(&reference.flat_weights().unwrap())
    );
    assert_eq!(
        common::outcomes(episodes),
        common::outcomes(&other_episodes)
    );
}

#[test]
fn es_trains_the_same_teacher_for_any_worker_count() {
    for hidden in [0, 4] {
        let mut reference = es(hidden);
        let episodes = train(&mut reference, 1, 8);
        assert_eq!(episodes.len(), 8);
        assert_eq!(reference.generations(), 2);
        // Pairs share the student (seed) but not the policy.
        let seeds: Vec<u64> = episodes.iter().map(|e| e.seed).collect();
        assert_eq!(seeds, vec![100, 100, 102, 102, 104, 104, 106, 106]);
        assert_ne!(
            common::bits(&reference.flat_weights().unwrap()),
            common::bits(&es(hidden).flat_weights().unwrap()),
            "theta did not move"
        );
        for workers in [2, 3] {
            let mut other = es(hidden);
            let other_episodes = train(&mut other, workers, 8);
            assert_eq!(
                common::bits(&other.flat_weights().unwrap()),
                common::bits(&reference.flat_weights().unwrap()),
                "hidden {hidden}, {workers} workers"
            );
            assert_eq!(
                common::outcomes(&episodes),
                common::outcomes(&other_episodes)
            );
        }
    }
}

#[test]
fn a_policy_that_keeps_one_per_batch_keeps_exactly_one_and_trains_alike_on_any_worker_count() {
    let make = || {
        let config = EsConfig {
            pairs: 2,
            keep_per_batch: 1,
            seed: 9,
            ..EsConfig::default()
        };
        EvolutionStrategies::new(config, &common::tiny_layout()).unwrap()
    };
    let mut reference = make();
    let episodes = train(&mut reference, 1, 8);
    let batch = config().batch_size;
    for episode in &episodes {
        let s = &episode.summary;
        assert!(s.instances_seen > 0);
        assert_eq!(s.instances_kept * batch, s.instances_seen, "{s:?}");
    }
    assert_ne!(
        common::bits(&reference.flat_weights().unwrap()),
        common::bits(&make().flat_weights().unwrap()),
        "theta did not move"
    );
    trains_alike_on_two_workers(make, &reference, &episodes);
    // The option survives a checkpoint, and the restored teacher keeps one per batch.
    let dir = common::Scratch::new("es", "keep-one");
    let path = dir.join("es.ckpt");
    reference.save_checkpoint(&path).unwrap();
    let restored = l2t::agents::load_learner(&path, Some(&common::tiny_layout())).unwrap();
    let mut restored: Box<dyn Teacher> = restored;
    let mut env = common::tiny_env(config());
    let (observation, info) = env.reset(Some(3)).unwrap();
    let mask = restored.act(&observation, &info).unwrap();
    assert_eq!(mask.iter().filter(|&&k| k).count(), 1);
}

#[test]
fn a_learned_share_over_a_pool_trains_alike_on_any_worker_count_and_survives_a_checkpoint() {
    let make = || {
        let config = EsConfig {
            pairs: 2,
            pool: 2,
            learned_share: Some(0.3),
            seed: 9,
            ..EsConfig::default()
        };
        EvolutionStrategies::new(config, &common::tiny_layout()).unwrap()
    };
    let mut reference = make();
    // theta holds the score (F + 1) and the share head (F + 1).
    let features = common::tiny_layout().len();
    assert_eq!(reference.flat_weights().unwrap().len(), 2 * (features + 1));
    let episodes = train(&mut reference, 1, 8);
    for episode in &episodes {
        let s = &episode.summary;
        assert!(
            s.instances_kept > 0 && s.instances_kept < s.instances_seen,
            "{s:?}"
        );
    }
    let moved = reference.flat_weights().unwrap();
    let start = make().flat_weights().unwrap();
    assert_ne!(
        common::bits(&moved[features + 1..]),
        common::bits(&start[features + 1..]),
        "the share head did not move"
    );
    trains_alike_on_two_workers(make, &reference, &episodes);
    // A checkpoint restores theta, its share head and the feature statistics: the
    // restored teacher teaches an episode as the original does, mask for mask.
    let dir = common::Scratch::new("es", "learned-share");
    let path = dir.join("es.ckpt");
    reference.save_checkpoint(&path).unwrap();
    let mut restored: Box<dyn Teacher> =
        l2t::agents::load_learner(&path, Some(&common::tiny_layout())).unwrap();
    let mut original: Box<dyn Teacher> = Box::new(reference);
    let mut env = common::tiny_env(config());
    let (mut observation, mut info) = env.reset(Some(3)).unwrap();
    for _ in 0..6 {
        let mask = original.act(&observation, &info).unwrap();
        assert_eq!(restored.act(&observation, &info).unwrap(), mask);
        let step = env.step(&mask).unwrap();
        if step.terminated || step.truncated {
            break;
        }
        (observation, info) = (step.observation, step.info);
    }
}

#[test]
fn a_share_head_trained_alone_over_a_score_from_a_checkpoint_leaves_the_score_as_it_was() {
    let layout = common::tiny_layout();
    let features = layout.len();
    let dir = common::Scratch::new("es", "score-from");
    // Stage 1: a score learned with k per batch over the pool.
    let mut first = EvolutionStrategies::new(
        EsConfig {
            pairs: 2,
            pool: 2,
            keep_per_batch: 1,
            seed: 9,
            ..EsConfig::default()
        },
        &layout,
    )
    .unwrap();
    train(&mut first, 1, 4);
    let score_path = dir.join("score.ckpt");
    first.save_checkpoint(&score_path).unwrap();
    // Stage 2: the share head alone, its own sigma, over that score.
    let config = EsConfig {
        pairs: 2,
        pool: 2,
        learned_share: Some(0.3),
        share_sigma: Some(0.1),
        frozen_score: true,
        score_from: Some(score_path.clone()),
        seed: 11,
        ..EsConfig::default()
    };
    let score = |es: &EvolutionStrategies| es.flat_weights().unwrap()[..features + 1].to_vec();
    let share = |es: &EvolutionStrategies| es.flat_weights().unwrap()[features + 1..].to_vec();
    let make = || EvolutionStrategies::new(config.clone(), &layout).unwrap();
    let mut second = make();
    assert_eq!(common::bits(&score(&second)), common::bits(&score(&first)));
    // The same score on raw rows: the feature statistics came along.
    let rows = l2t::tch::Tensor::from_slice(
        &(0..3 * features)
            .map(|i| i as f32 * 0.37 - 2.0)
            .collect::<Vec<f32>>(),
    )
    .view([3, features as i64]);
    assert_eq!(
        Vec::<f32>::try_from(second.policy().logits(&rows).flatten(0, -1)).unwrap(),
        Vec::<f32>::try_from(first.policy().logits(&rows).flatten(0, -1)).unwrap()
    );
    let share_at_start = share(&second);
    // c = logit(q_0) and u = 0 (name order: share.bias, then share.weight).
    assert!((f64::from(share_at_start[0]) - (0.3f64 / 0.7).ln()).abs() < 1e-6);
    assert!(share_at_start[1..].iter().all(|&u| u == 0.0));
    let episodes = train(&mut second, 1, 8);
    assert_eq!(
        common::bits(&score(&second)),
        common::bits(&score(&first)),
        "the frozen score moved"
    );
    assert_ne!(
        common::bits(&share(&second)),
        common::bits(&share_at_start),
        "the share head did not move"
    );
    trains_alike_on_two_workers(make, &second, &episodes);
    // Its own checkpoint loads without the stage-1 file.
    let path = dir.join("share.ckpt");
    second.save_checkpoint(&path).unwrap();
    std::fs::remove_file(&score_path).unwrap();
    let restored = EvolutionStrategies::load(&path, Some(&layout)).unwrap();
    assert_eq!(
        common::bits(&restored.flat_weights().unwrap()),
        common::bits(&second.flat_weights().unwrap())
    );
    // Refused by name: the missing file, and a score of another shape.
    let error = EvolutionStrategies::new(config.clone(), &layout)
        .unwrap_err()
        .to_string();
    assert!(error.contains("score.ckpt"), "{error}");
    let mut wide = EvolutionStrategies::new(
        EsConfig {
            hidden: 3,
            ..EsConfig::default()
        },
        &layout,
    )
    .unwrap();
    train(&mut wide, 1, 4);
    wide.save_checkpoint(&score_path).unwrap();
    let error = EvolutionStrategies::new(config, &layout)
        .unwrap_err()
        .to_string();
    assert!(error.contains("score_from"), "{error}");
}

#[test]
fn pool_and_learned_share_settings_are_checked_by_name() {
    let layout = common::tiny_layout();
    let refused = |config: EsConfig| {
        EvolutionStrategies::new(config, &layout)
            .unwrap_err()
            .to_string()
    };
    let error = refused(EsConfig {
        pool: 4,
        ..EsConfig::default()
    });
    assert!(error.contains("pool"), "{error}");
    let error = refused(EsConfig {
        learned_share: Some(0.3),
        keep_per_batch: 2,
        ..EsConfig::default()
    });
    assert!(error.contains("learned_share"), "{error}");
    for share in [0.0, 1.0, f64::NAN] {
        let error = refused(EsConfig {
            learned_share: Some(share),
            ..EsConfig::default()
        });
        assert!(error.contains("learned_share"), "{error}");
    }
    for config in [
        EsConfig {
            share_sigma: Some(0.1),
            ..EsConfig::default()
        },
        EsConfig {
            frozen_score: true,
            ..EsConfig::default()
        },
    ] {
        let error = refused(config);
        assert!(error.contains("learned_share"), "{error}");
    }
    let error = refused(EsConfig {
        learned_share: Some(0.3),
        share_sigma: Some(0.0),
        ..EsConfig::default()
    });
    assert!(error.contains("share_sigma"), "{error}");
    // Both read from a config.
    let parsed: EsConfig = serde_json::from_str(r#"{"pool": 4, "learned_share": 0.3}"#).unwrap();
    assert_eq!((parsed.pool, parsed.learned_share), (4, Some(0.3)));
}

#[test]
fn without_common_random_numbers_every_episode_has_its_own_seed() {
    let mut teacher = EvolutionStrategies::new(
        EsConfig {
            pairs: 2,
            common_random_numbers: CommonRandomNumbers::Off,
            ..EsConfig::default()
        },
        &common::tiny_layout(),
    )
    .unwrap();
    let seeds: Vec<u64> = train(&mut teacher, 2, 4).iter().map(|e| e.seed).collect();
    assert_eq!(seeds, vec![100, 101, 102, 103]);
}

#[test]
fn common_random_numbers_over_a_generation_give_every_episode_one_student_for_any_worker_count() {
    let generation_es = || {
        EvolutionStrategies::new(
            EsConfig {
                pairs: 2,
                common_random_numbers: CommonRandomNumbers::Generation,
                ..EsConfig::default()
            },
            &common::tiny_layout(),
        )
        .unwrap()
    };
    let mut teacher = generation_es();
    let episodes = train(&mut teacher, 2, 8);
    // The same teacher for any number of workers.
    let mut alone = generation_es();
    assert_eq!(
        common::outcomes(&train(&mut alone, 1, 8)),
        common::outcomes(&episodes)
    );
    assert_eq!(
        common::bits(&alone.flat_weights().unwrap()),
        common::bits(&teacher.flat_weights().unwrap())
    );
    let seeds: Vec<u64> = episodes.iter().map(|e| e.seed).collect();
    // Two generations of four, each on its own student.
    assert_eq!(seeds, vec![100, 100, 100, 100, 104, 104, 104, 104]);
    // The policies differ, so the episodes do too.
    let kept: Vec<usize> = episodes[..4]
        .iter()
        .map(|e| e.summary.instances_kept)
        .collect();
    assert!(kept.windows(2).any(|w| w[0] != w[1]), "{kept:?}");
}

#[test]
fn common_random_numbers_read_from_names_and_from_the_earlier_booleans() {
    for (text, expected) in [
        ("\"generation\"", CommonRandomNumbers::Generation),
        ("\"pairs\"", CommonRandomNumbers::Pairs),
        ("\"off\"", CommonRandomNumbers::Off),
        ("true", CommonRandomNumbers::Pairs),
        ("false", CommonRandomNumbers::Off),
    ] {
        let config: EsConfig =
            serde_json::from_str(&format!("{{\"common_random_numbers\": {text}}}")).unwrap();
        assert_eq!(config.common_random_numbers, expected, "{text}");
        let written = serde_json::to_string(&config).unwrap();
        assert_eq!(serde_json::from_str::<EsConfig>(&written).unwrap(), config);
    }
    let error = serde_json::from_str::<EsConfig>("{\"common_random_numbers\": \"all\"}")
        .unwrap_err()
        .to_string();
    assert!(error.contains("\"all\""), "{error}");
    assert!(error.contains("\"generation\""), "{error}");
}

#[test]
fn es_climbs_a_reward_for_keeping_the_rows_with_a_high_feature() {
    // Reward: kept rows whose column 3 is above 0.5, minus kept rows below, over a
    // few batches of random features. The initial policy keeps both alike.
    let task = common::KeepHighTask::new();
    let mut teacher = EvolutionStrategies::new(
        EsConfig {
            pairs: 8,
            sigma: 0.5,
            learning_rate: 0.1,
            ..EsConfig::default()
        },
        &common::tiny_layout(),
    )
    .unwrap();
    let gap_before = task.gap(teacher.policy());
    for _ in 0..25 {
        let jobs = teacher.plan_update(0).unwrap();
        let mut trajectories = Vec::new();
        for job in jobs {
            let mut rollout = job.rollout;
            let reward: f64 = task.teach(&mut rollout).iter().sum();
            rollout.observe(reward / 64.0, true).unwrap();
            trajectories.push(rollout.into_trajectory());
        }
        teacher.learn(trajectories).unwrap();
    }
    let gap_after = task.gap(teacher.policy());
    assert!(gap_before.abs() < 0.1, "{gap_before}");
    assert!(gap_after > 0.5, "gap {gap_before} -> {gap_after}");
}
