//! Teachers for "Learning to Teach": policies from the teaching observation to a
//! keep-mask, behind one [`Teacher`] trait.
//!
//! - [`NoTeach`], [`RandTeach`], [`SelfPacedLearning`]: the paper's baselines;
//! - [`Reinforce`]: the paper's learned teacher, with its [`BernoulliPolicy`];
//! - [`ActorCritic`]: the same policy with a learned value baseline and optional
//!   potential-based shaping, against REINFORCE's noisy terminal-reward gradient;
//! - [`OnlineBatch`]: online batch selection by loss rank (Loshchilov & Hutter 2015);
//! - [`ImportanceSampling`]: keep probabilities proportional to the loss (Katharopoulos
//!   & Fleuret 2018);
//! - [`RhoLoss`]: keeps the largest reducible holdout loss (Mindermann et al. 2022);
//! - [`SelectiveBackprop`]: keeps with a probability rising with the loss percentile
//!   (Jiang et al. 2019), the compute baseline;
//! - [`TeacherConfig`]: any teacher's config, tagged by `kind`, and its builder; also
//!   the registry of checkpointed teachers ([`load_teacher`], [`load_learner`]);
//! - [`checkpoint`]: the checkpoint file format; each learned teacher says what it
//!   stores by implementing [`Checkpointed`] in its own file;
//! - [`run_episode`]: the agent-environment loop;
//! - [`EvolutionStrategies`]: OpenAI-ES over the same policy's weights, antithetic
//!   pairs with common random numbers and rank-normalised returns;
//! - [`Ppo`]: PPO-clip over the same policy, with a critic on each step's mean feature
//!   row and GAE advantages from the env's per-step rewards;
//! - [`rollout`]: the one rollout-and-learn loop of every [`Learner`] (REINFORCE, the
//!   actor-critic, ES, PPO), [`train_on`] / [`train_parallel`], and the [`Trajectory`]
//!   they learn from: each update's episodes rolled out on worker threads.
//!
//! Each teacher is one file, readable top to bottom. The modules build on each other
//! in one direction: `error` <- `teacher`, `weights`, `checkpoint` (the file format,
//! no teacher type) <- `policy`, `episode` <- `rollout` <- the learned teachers <-
//! `config` (the registry); the unit test below keeps it so.

pub mod actor_critic;
pub mod checkpoint;
pub mod config;
pub mod episode;
pub mod error;
pub mod es;
pub mod importance;
pub mod no_teach;
pub mod online_batch;
pub mod policy;
pub mod ppo;
pub mod rand_teach;
pub mod reinforce;
pub mod rho_loss;
pub mod rollout;
pub mod selective_backprop;
pub mod spl;
pub mod teacher;
pub mod weights;

pub use actor_critic::{ActorCritic, ActorCriticConfig};
pub use checkpoint::{
    checkpoint_episodes, CheckpointFile, Checkpointed, Progress, CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
};
pub use config::{
    load_learner, load_teacher, restore_learner, restore_teacher, TeacherConfig, CHECKPOINT_KINDS,
};
pub use episode::{
    run_episode, run_episode_recorded, CurvePoint, EpisodeSummary, LossRankDrops, Recording,
    UpdateStats, DROP_WINDOW_STEPS, LOSS_RANK_BUCKETS,
};
pub use error::{AgentError, Result};
pub use es::{CommonRandomNumbers, EsConfig, EvolutionStrategies};
pub use importance::{ImportanceSampling, ImportanceSamplingConfig};
pub use l2t_envs::student::{Adam, AdamState};
pub use no_teach::NoTeach;
pub use online_batch::{OnlineBatch, OnlineBatchConfig, PressureSchedule};
pub use policy::BernoulliPolicy;
pub use ppo::{Ppo, PpoConfig};
pub use rand_teach::{RandTeach, RandTeachConfig};
pub use reinforce::{advantages, Baseline, Reinforce, ReinforceConfig};
pub use rho_loss::{RhoLoss, RhoLossConfig};
pub use rollout::{
    episode_sampling_rng, plan_episodes, train_on, train_parallel, Learner, PolicyRollout,
    PooledEpisode, Rollout, RolloutJob, Rollouts, Trajectory,
};
pub use selective_backprop::{SelectiveBackprop, SelectiveBackpropConfig};
pub use spl::{SelfPacedLearning, SplConfig};
pub use teacher::{bernoulli_mask, top_k_mask, KeepMask, Teacher};

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    /// The modules each module of this crate names in its code (`crate::<module>`
    /// outside comments and unit tests).
    fn imports() -> BTreeMap<String, BTreeSet<String>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut graph = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let module = path.file_stem().unwrap().to_string_lossy().to_string();
            if module == "lib" || path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
            let mut names = BTreeSet::new();
            for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for (at, _) in line.match_indices("crate::") {
                    let rest = &line[at + "crate::".len()..];
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if name != module && !name.is_empty() {
                        names.insert(name);
                    }
                }
            }
            graph.insert(module, names);
        }
        graph
    }

    /// The modules build on each other in one direction: `teacher` names no training
    /// loop, the rollout loop names no algorithm, the checkpoint format no teacher, and
    /// the import graph has no cycle.
    #[test]
    fn the_import_graph_has_no_cycle() {
        let graph = imports();
        assert_eq!(graph["teacher"], BTreeSet::from(["error".to_string()]));
        assert_eq!(graph["checkpoint"], BTreeSet::from(["error".to_string()]));
        for algorithm in ["reinforce", "actor_critic", "es", "ppo", "config"] {
            assert!(
                !graph["rollout"].contains(algorithm),
                "rollout -> {algorithm}"
            );
            assert!(
                !graph["episode"].contains(algorithm),
                "episode -> {algorithm}"
            );
        }
        // Peel off modules that import only peeled modules; a cycle is left over.
        let mut peeled = BTreeSet::new();
        while peeled.len() < graph.len() {
            let next: Vec<&String> = (graph.iter())
                .filter(|(m, deps)| {
                    !peeled.contains(*m)
                        && deps
                            .iter()
                            .all(|d| peeled.contains(d) || !graph.contains_key(d))
                })
                .map(|(m, _)| m)
                .collect();
            assert!(
                !next.is_empty(),
                "a cycle among {:?}",
                graph
                    .keys()
                    .filter(|m| !peeled.contains(*m))
                    .collect::<Vec<_>>()
            );
            peeled.extend(next.into_iter().cloned());
        }
    }
}
