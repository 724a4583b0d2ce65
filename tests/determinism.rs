//! The same master seed gives bit-identical observations, masks, rewards and trained
//! teacher weights; another seed gives different ones. One test per teacher.

mod common;

use l2t::agents::{
    train_parallel, ActorCritic, ActorCriticConfig, AgentError, NoTeach, PooledEpisode, RandTeach,
    RandTeachConfig, Reinforce, ReinforceConfig, SelfPacedLearning, SplConfig, Teacher,
};
use l2t::envs::{Env, TeachingEnv};

/// Everything observable from a few episodes: feature matrices (as bits), masks,
/// rewards, and the dev accuracies of the info values.
#[derive(Debug, PartialEq)]
struct Trace {
    features: Vec<u32>,
    masks: Vec<bool>,
    rewards: Vec<u64>,
    dev_accuracies: Vec<u64>,
}

fn trace(env: &mut TeachingEnv, teacher: &mut dyn Teacher, seeds: &[u64]) -> Trace {
    let mut out = Trace {
        features: Vec::new(),
        masks: Vec::new(),
        rewards: Vec::new(),
        dev_accuracies: Vec::new(),
    };
    for &seed in seeds {
        let (mut observation, mut info) = env.reset(Some(seed)).unwrap();
        loop {
            out.features
                .extend(observation.features.iter().map(|v| v.to_bits()));
            let mask = teacher.act(&observation, &info).unwrap();
            out.masks.extend(mask.iter());
            let step = env.step(&mask).unwrap();
            out.rewards.push(step.reward.to_bits());
            out.dev_accuracies.push(step.info.dev_accuracy.to_bits());
            teacher.observe(step.reward, step.done()).unwrap();
            if step.done() {
                break;
            }
            observation = step.observation;
            info = step.info;
        }
    }
    out
}

fn assert_deterministic(make: impl Fn(u64) -> Box<dyn Teacher>) {
    let run = |teacher_seed: u64, env_seeds: &[u64]| {
        let mut env = common::tiny_env(common::tiny_config());
        let mut teacher = make(teacher_seed);
        trace(&mut env, teacher.as_mut(), env_seeds)
    };
    let a = run(1, &[10, 11]);
    let b = run(1, &[10, 11]);
    assert_eq!(a, b, "same seeds must give bit-identical traces");
    let c = run(1, &[12, 11]);
    assert_ne!(
        a.features, c.features,
        "another env seed must change the observations"
    );
}

#[test]
fn no_teach_is_deterministic() {
    assert_deterministic(|_| Box::new(NoTeach));
}

#[test]
fn rand_teach_is_deterministic() {
    assert_deterministic(|seed| {
        Box::new(
            RandTeach::new(RandTeachConfig {
                drop_ratio: 0.3,
                seed,
                ..RandTeachConfig::default()
            })
            .unwrap(),
        )
    });
}

#[test]
fn spl_is_deterministic() {
    let names = common::tiny_env(common::tiny_config()).layout().clone();
    assert_deterministic(move |_| {
        Box::new(SelfPacedLearning::new(SplConfig { epochs_to_all: 1.0 }, &names).unwrap())
    });
}

#[test]
fn reinforce_traces_and_trained_weights_are_bit_identical() {
    assert_deterministic(|seed| {
        Box::new(
            Reinforce::new(
                ReinforceConfig {
                    seed,
                    ..ReinforceConfig::default()
                },
                &common::tiny_layout(),
            )
            .unwrap(),
        )
    });
    let train = |teacher_seed: u64| {
        let mut pool = common::tiny_pool(1, common::tiny_config());
        let mut teacher = Reinforce::new(
            ReinforceConfig {
                seed: teacher_seed,
                ..ReinforceConfig::default()
            },
            &common::tiny_layout(),
        )
        .unwrap();
        train_parallel(&mut pool, &mut teacher, 3, 1, |_, _: &[PooledEpisode]| {
            Ok::<(), AgentError>(())
        })
        .unwrap();
        assert_eq!(teacher.episodes(), 3);
        teacher.flat_weights().unwrap()
    };
    let first = train(5);
    let weights_bits = |w: &[f32]| w.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(weights_bits(&first), weights_bits(&train(5)));
    assert_ne!(weights_bits(&first), weights_bits(&train(6)));
}

#[test]
fn actor_critic_is_deterministic() {
    assert_deterministic(|seed| {
        Box::new(
            ActorCritic::new(
                ActorCriticConfig {
                    seed,
                    ..ActorCriticConfig::default()
                },
                &common::tiny_layout(),
            )
            .unwrap(),
        )
    });
}

#[test]
fn online_batch_is_deterministic() {
    use l2t::agents::{OnlineBatch, OnlineBatchConfig};
    let names = common::tiny_env(common::tiny_config()).layout().clone();
    let make = move |seed: u64| -> Box<dyn Teacher> {
        Box::new(
            OnlineBatch::new(
                OnlineBatchConfig {
                    pressure_start: 10.0,
                    pressure_end: Some(2.0),
                    anneal_epochs: 1.0,
                    seed,
                    ..OnlineBatchConfig::default()
                },
                &names,
            )
            .unwrap(),
        )
    };
    assert_deterministic(make.clone());
    // The teacher's own seed changes its draws.
    let masks = |teacher_seed: u64| {
        let mut env = common::tiny_env(common::tiny_config());
        trace(&mut env, make(teacher_seed).as_mut(), &[10]).masks
    };
    assert_ne!(masks(1), masks(2));
}
