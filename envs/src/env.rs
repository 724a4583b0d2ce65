//! The environment contract, after Gymnasium's `Env`.
//!
//! `reset(Some(seed))` re-seeds every random stream of the environment and starts an
//! episode; `reset(None)` starts a new episode continuing the current streams. `step`
//! applies one action and reports the next observation, the reward, whether the MDP
//! reached a terminal state (`terminated`) or was cut off by a budget (`truncated`),
//! and a typed info value. Stepping after either flag is an error until the next reset.

use crate::error::Result;
use crate::spaces::Space;

/// The outcome of one `step`.
#[derive(Debug, Clone, PartialEq)]
pub struct Step<O, I> {
    /// Observation after the action.
    pub observation: O,
    /// Reward of the transition.
    pub reward: f64,
    /// The MDP reached a terminal state (for teaching: the accuracy threshold).
    pub terminated: bool,
    /// The episode was cut off by a budget (iterations, incoming batches).
    pub truncated: bool,
    /// Diagnostic values that are not part of the observation.
    pub info: I,
}

impl<O, I> Step<O, I> {
    /// Whether the episode is over (terminated or truncated).
    pub fn done(&self) -> bool {
        self.terminated || self.truncated
    }
}

/// A reinforcement-learning environment with Gymnasium's semantics.
pub trait Env {
    /// What the agent sees.
    type Observation;
    /// What the agent does.
    type Action;
    /// Extra per-step information.
    type Info;
    /// The space of observations.
    type ObservationSpace: Space<Self::Observation>;
    /// The space of actions.
    type ActionSpace: Space<Self::Action>;

    /// The declared observation space; every observation lies in it.
    fn observation_space(&self) -> &Self::ObservationSpace;
    /// The declared action space; any other action is an error.
    fn action_space(&self) -> &Self::ActionSpace;
    /// Starts an episode. `Some(seed)` re-seeds all streams; `None` continues them.
    fn reset(&mut self, seed: Option<u64>) -> Result<(Self::Observation, Self::Info)>;
    /// Applies `action`; an error if the action is invalid or the episode has ended.
    fn step(&mut self, action: &Self::Action) -> Result<Step<Self::Observation, Self::Info>>;
}
