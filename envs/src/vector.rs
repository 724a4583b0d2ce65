//! The vector-env contract: several environments stepped together, after Gymnasium's
//! `VectorEnv`.
//!
//! A vector env holds N environments of one kind. `reset(Some(seed))` seeds env `i`
//! with `seed + i`; `step` takes one action per env and returns the batched results.
//! Episodes end independently: when env `i` terminates or is truncated, its last
//! observation and info go to [`VecStep::final_observations`] and
//! [`VecStep::final_infos`], and it is reset at once with `reset(None)` (its streams
//! continue), so `observations[i]` is the first observation of its next episode
//! (Gymnasium's "same-step" autoreset). Stepping never needs a reset after the first.
//!
//! [`crate::ThreadedVectorEnv`] implements it, its worker threads stepping their envs
//! one after the other with this module's `reset_envs` and `step_envs` (the autoreset rule, in
//! one place).

use crate::env::Env;
use crate::error::{EnvError, Result};

/// The batched outcome of one vector step: entry `i` belongs to env `i`.
#[derive(Debug, Clone, PartialEq)]
pub struct VecStep<O, I> {
    /// Observation after the action; the first of a new episode where env `i` ended.
    pub observations: Vec<O>,
    /// Reward of each transition.
    pub rewards: Vec<f64>,
    /// Which envs reached a terminal state on this step.
    pub terminated: Vec<bool>,
    /// Which envs were cut off by a budget on this step.
    pub truncated: Vec<bool>,
    /// Info of each env; the reset's info where env `i` ended.
    pub infos: Vec<I>,
    /// The last observation of the episode that ended on this step, if env `i` ended.
    pub final_observations: Vec<Option<O>>,
    /// The last info of the episode that ended on this step, if env `i` ended.
    pub final_infos: Vec<Option<I>>,
}

impl<O, I> VecStep<O, I> {
    /// An empty step with room for `n` envs, for a vector env to fill env by env.
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            observations: Vec::with_capacity(n),
            rewards: Vec::with_capacity(n),
            terminated: Vec::with_capacity(n),
            truncated: Vec::with_capacity(n),
            infos: Vec::with_capacity(n),
            final_observations: Vec::with_capacity(n),
            final_infos: Vec::with_capacity(n),
        }
    }

    /// Whether env `i`'s episode ended on this step (terminated or truncated).
    pub fn done(&self, i: usize) -> bool {
        self.terminated.get(i).copied().unwrap_or(false)
            || self.truncated.get(i).copied().unwrap_or(false)
    }

    /// Number of environments.
    pub fn len(&self) -> usize {
        self.rewards.len()
    }

    /// Whether the step covers no environment (never true for a built vector env).
    pub fn is_empty(&self) -> bool {
        self.rewards.is_empty()
    }
}

/// What a vector reset returns: one observation and one info per env.
pub type VecReset<O, I> = (Vec<O>, Vec<I>);

/// N environments stepped together with autoreset.
pub trait VectorEnv {
    /// What one env's agent sees.
    type Observation;
    /// What one env's agent does.
    type Action;
    /// Extra per-step information of one env.
    type Info;

    /// Number of environments N.
    fn num_envs(&self) -> usize;
    /// Starts an episode in every env; `Some(seed)` seeds env `i` with `seed + i`,
    /// `None` continues every env's streams.
    fn reset(&mut self, seed: Option<u64>) -> Result<VecReset<Self::Observation, Self::Info>>;
    /// Applies `actions[i]` to env `i`, resetting the envs whose episode ends.
    /// Exactly N actions, or [`EnvError::InvalidAction`].
    fn step(&mut self, actions: &[Self::Action]) -> Result<VecStep<Self::Observation, Self::Info>>;
}

/// Checks that a vector step got one action per env.
pub(crate) fn check_action_count(actions: usize, envs: usize) -> Result<()> {
    if actions != envs {
        return Err(EnvError::InvalidAction(format!(
            "{actions} actions for {envs} environments"
        )));
    }
    Ok(())
}

/// The seed of env `i` under the vector seed `seed`.
pub(crate) fn env_seed(seed: Option<u64>, i: usize) -> Option<u64> {
    seed.map(|s| s.wrapping_add(i as u64))
}

/// Resets every env of `envs`; `Some(seed)` seeds env `i` with `seed + i`, `None`
/// continues every env's streams.
pub(crate) fn reset_envs<E: Env>(
    envs: &mut [E],
    seed: Option<u64>,
) -> Result<VecReset<E::Observation, E::Info>> {
    let mut observations = Vec::with_capacity(envs.len());
    let mut infos = Vec::with_capacity(envs.len());
    for (i, env) in envs.iter_mut().enumerate() {
        let (observation, info) = env.reset(env_seed(seed, i))?;
        observations.push(observation);
        infos.push(info);
    }
    Ok((observations, infos))
}

/// Applies `actions[i]` to env `i` of `envs`, one env after the other, resetting at once
/// (`reset(None)`) each env whose episode ends (the module's autoreset rule). Exactly one
/// action per env, or [`EnvError::InvalidAction`]. If env `i` fails, envs before it have
/// already stepped: reset before stepping again.
pub(crate) fn step_envs<E: Env>(
    envs: &mut [E],
    actions: &[E::Action],
) -> Result<VecStep<E::Observation, E::Info>> {
    check_action_count(actions.len(), envs.len())?;
    let mut out = VecStep::with_capacity(envs.len());
    for (env, action) in envs.iter_mut().zip(actions) {
        let step = env.step(action)?;
        out.rewards.push(step.reward);
        out.terminated.push(step.terminated);
        out.truncated.push(step.truncated);
        if step.done() {
            let (observation, info) = env.reset(None)?;
            out.final_observations.push(Some(step.observation));
            out.final_infos.push(Some(step.info));
            out.observations.push(observation);
            out.infos.push(info);
        } else {
            out.final_observations.push(None);
            out.final_infos.push(None);
            out.observations.push(step.observation);
            out.infos.push(step.info);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Step;
    use crate::spaces::{BoxSpace, MultiBinary};
    use ndarray::{Array1, ArrayD};

    /// Counts steps; ends after `length` steps; the observation is
    /// `[seed, episode, step]`, the reward the number of kept entries.
    #[derive(Debug)]
    struct Counter {
        length: usize,
        seed: u64,
        episode: u64,
        steps: usize,
        observation_space: BoxSpace,
        action_space: MultiBinary,
    }

    impl Counter {
        fn new(length: usize) -> Self {
            Self {
                length,
                seed: 0,
                episode: 0,
                steps: 0,
                observation_space: BoxSpace::from_columns(&[3], &[(0.0, 1e9); 3]),
                action_space: MultiBinary(2),
            }
        }

        fn observation(&self) -> ArrayD<f32> {
            Array1::from_vec(vec![
                self.seed as f32,
                self.episode as f32,
                self.steps as f32,
            ])
            .into_dyn()
        }
    }

    impl Env for Counter {
        type Observation = ArrayD<f32>;
        type Action = Array1<bool>;
        type Info = usize;
        type ObservationSpace = BoxSpace;
        type ActionSpace = MultiBinary;

        fn observation_space(&self) -> &BoxSpace {
            &self.observation_space
        }

        fn action_space(&self) -> &MultiBinary {
            &self.action_space
        }

        fn reset(&mut self, seed: Option<u64>) -> Result<(ArrayD<f32>, usize)> {
            if let Some(seed) = seed {
                self.seed = seed;
            }
            self.episode += 1;
            self.steps = 0;
            Ok((self.observation(), 0))
        }

        fn step(&mut self, action: &Array1<bool>) -> Result<Step<ArrayD<f32>, usize>> {
            if action.len() != 2 {
                return Err(EnvError::InvalidAction("length".into()));
            }
            self.steps += 1;
            Ok(Step {
                observation: self.observation(),
                reward: action.iter().filter(|&&k| k).count() as f64,
                terminated: self.steps == self.length,
                truncated: false,
                info: self.steps,
            })
        }
    }

    #[test]
    fn seeds_each_env_and_autoresets_the_ended_ones() {
        let mut envs = vec![Counter::new(2), Counter::new(3)];
        let (observations, _) = reset_envs(&mut envs, Some(10)).unwrap();
        assert_eq!(observations[0][[0]], 10.0);
        assert_eq!(observations[1][[0]], 11.0);
        let actions = vec![Array1::from_elem(2, true), Array1::from_elem(2, false)];
        let first = step_envs(&mut envs, &actions).unwrap();
        assert_eq!(first.rewards, vec![2.0, 0.0]);
        assert_eq!(first.final_infos, vec![None, None]);
        let second = step_envs(&mut envs, &actions).unwrap();
        // Env 0 ended after 2 steps: its final observation is step 2 of episode 1, the
        // returned one step 0 of episode 2 (same seed: the streams continue).
        assert!(second.done(0) && !second.done(1));
        assert_eq!(second.terminated, vec![true, false]);
        let last = second.final_observations[0].as_ref().unwrap();
        assert_eq!(
            last.iter().copied().collect::<Vec<f32>>(),
            vec![10.0f32, 1.0, 2.0]
        );
        assert_eq!(second.final_infos[0], Some(2));
        assert_eq!(
            second.observations[0].iter().copied().collect::<Vec<f32>>(),
            vec![10.0, 2.0, 0.0]
        );
        assert_eq!(second.infos[0], 0);
        assert_eq!(
            second.observations[1].iter().copied().collect::<Vec<f32>>(),
            vec![11.0, 1.0, 2.0]
        );
        let third = step_envs(&mut envs, &actions).unwrap();
        assert!(!third.done(0) && third.done(1));
        assert_eq!(
            third.observations[1].iter().copied().collect::<Vec<f32>>(),
            vec![11.0, 2.0, 0.0]
        );
    }

    #[test]
    fn wrong_number_of_actions_is_a_typed_error() {
        let mut envs = vec![Counter::new(2), Counter::new(2)];
        reset_envs(&mut envs, Some(0)).unwrap();
        let err = step_envs(&mut envs, &[Array1::from_elem(2, true)]).unwrap_err();
        assert!(matches!(err, EnvError::InvalidAction(_)), "{err}");
        assert!(err.to_string().contains("1 actions for 2 environments"));
    }
}
