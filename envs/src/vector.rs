//! The vector-env contract: several environments stepped together, after Gymnasium's
//! `VectorEnv`.
//!
//! A vector env holds N environments of one kind. `reset(Some(seed))` seeds env `i`
//! with `seed + i`; `step` takes one action per env and returns the batched results.
//! Episodes end independently, and what happens to an env whose episode ended is the
//! vector env's [`Autoreset`] mode, Gymnasium 1.x's three `AutoresetMode`s:
//!
//! - [`Autoreset::SameStep`] (the [`VectorEnv`] trait's contract): when env `i`
//!   terminates or is truncated, its last observation and info go to
//!   [`VecStep::final_observations`] and [`VecStep::final_infos`], and it is reset at
//!   once with `reset(None)` (its streams continue), so `observations[i]` is the first
//!   observation of its next episode. Stepping never needs a reset after the first.
//! - [`Autoreset::NextStep`]: the step that ends env `i`'s episode returns its last
//!   observation; the next step ignores env `i`'s action and resets it (`reset(None)`),
//!   returning the first observation of its next episode with reward 0, not terminated,
//!   not truncated, and the reset's info.
//! - [`Autoreset::Disabled`]: nothing is reset; the caller resets the ended envs (a
//!   reset with a mask, [`crate::ThreadedVectorEnv::reset_some`]) before the next step,
//!   which refuses to step an env whose episode ended ([`EnvError::VectorEpisodeEnded`]).
//!
//! [`crate::ThreadedVectorEnv`] implements them, its worker threads stepping their envs
//! one after the other with this module's `reset_some_envs` and `step_envs` (the
//! autoreset rules, in one place).

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

/// What a masked reset returns: env `i`'s observation and info, `None` where it was left.
pub type VecResetSome<O, I> = Vec<Option<(O, I)>>;

/// What a vector env does with an env whose episode ended: Gymnasium 1.x's
/// `AutoresetMode` (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Autoreset {
    /// Reset on the next step, which ignores the env's action (Gymnasium's
    /// `NEXT_STEP`, the default of its `SyncVectorEnv`).
    NextStep,
    /// Reset in the step that ended the episode; the last observation and info are
    /// the step's final ones (Gymnasium's `SAME_STEP`).
    #[default]
    SameStep,
    /// Never reset: the caller resets the ended envs (Gymnasium's `DISABLED`).
    Disabled,
}

impl Autoreset {
    /// Every mode, in Gymnasium's order.
    pub const ALL: [Autoreset; 3] = [
        Autoreset::NextStep,
        Autoreset::SameStep,
        Autoreset::Disabled,
    ];

    /// Gymnasium's name of the mode (`AutoresetMode(name)`): `"NextStep"`,
    /// `"SameStep"` or `"Disabled"`.
    pub fn name(self) -> &'static str {
        match self {
            Autoreset::NextStep => "NextStep",
            Autoreset::SameStep => "SameStep",
            Autoreset::Disabled => "Disabled",
        }
    }

    /// The mode of Gymnasium's name ([`Autoreset::name`]), or
    /// [`EnvError::InvalidConfig`] naming the three.
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|mode| mode.name() == name)
            .ok_or_else(|| {
                crate::error::invalid_config(
                    "autoreset_mode",
                    format!("{name:?} is not one of \"NextStep\", \"SameStep\", \"Disabled\""),
                )
            })
    }
}

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
    /// Applies `actions[i]` to env `i`, resetting the envs whose episode ends as the
    /// env's [`VectorEnv::autoreset`] mode says. Exactly N actions, or
    /// [`EnvError::InvalidAction`].
    fn step(&mut self, actions: &[Self::Action]) -> Result<VecStep<Self::Observation, Self::Info>>;
    /// What the env does with an env whose episode ended: [`Autoreset::SameStep`]
    /// unless the implementation offers the other modes.
    fn autoreset(&self) -> Autoreset {
        Autoreset::SameStep
    }
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
#[cfg(test)]
pub(crate) fn reset_envs<E: Env>(
    envs: &mut [E],
    seed: Option<u64>,
) -> Result<VecReset<E::Observation, E::Info>> {
    let seeds: Vec<Option<u64>> = (0..envs.len()).map(|i| env_seed(seed, i)).collect();
    let mask = vec![true; envs.len()];
    Ok(reset_some_envs(envs, &seeds, &mask)?
        .into_iter()
        .flatten()
        .unzip())
}

/// Checks that a reset got one seed and one mask entry per env, and resets something.
pub(crate) fn check_reset_args(seeds: usize, mask: &[bool], envs: usize) -> Result<()> {
    if seeds != envs {
        return Err(crate::error::invalid_config(
            "seed",
            format!("{seeds} seeds for {envs} environments"),
        ));
    }
    if mask.len() != envs {
        return Err(crate::error::invalid_config(
            "reset_mask",
            format!("{} entries for {envs} environments", mask.len()),
        ));
    }
    if !mask.contains(&true) {
        return Err(crate::error::invalid_config(
            "reset_mask",
            "no env to reset (every entry is false)",
        ));
    }
    Ok(())
}

/// Resets env `i` of `envs` with `seeds[i]` (`None` continues its streams) where
/// `mask[i]`, and leaves the others as they are: entry `i` of the result is the reset's
/// observation and info, `None` where env `i` was left. One seed and one mask entry per
/// env, or [`EnvError::InvalidConfig`].
pub(crate) fn reset_some_envs<E: Env>(
    envs: &mut [E],
    seeds: &[Option<u64>],
    mask: &[bool],
) -> Result<VecResetSome<E::Observation, E::Info>> {
    if seeds.len() != envs.len() || mask.len() != envs.len() {
        return Err(crate::error::invalid_config(
            "reset_mask",
            format!(
                "{} seeds and {} mask entries for {} environments",
                seeds.len(),
                mask.len(),
                envs.len()
            ),
        ));
    }
    envs.iter_mut()
        .zip(seeds)
        .zip(mask)
        .map(|((env, &seed), &reset)| reset.then(|| env.reset(seed)).transpose())
        .collect()
}

/// Refuses a [`Autoreset::Disabled`] step while an env's episode has ended (`ended[i]`:
/// env `i` terminated or was truncated on its last step and has not been reset since),
/// before any env steps.
pub(crate) fn check_steppable(mode: Autoreset, ended: &[bool]) -> Result<()> {
    match (mode, ended.iter().position(|&e| e)) {
        (Autoreset::Disabled, Some(env)) => Err(EnvError::VectorEpisodeEnded { env }),
        _ => Ok(()),
    }
}

/// Applies `actions[i]` to env `i` of `envs`, one env after the other, under the
/// autoreset `mode` (the module's rules): `ended[i]` says that env `i`'s episode ended
/// on its last step (its next step resets it under [`Autoreset::NextStep`]; the caller
/// has refused a [`Autoreset::Disabled`] step with [`check_steppable`]). Exactly one
/// action and one `ended` entry per env, or [`EnvError::InvalidAction`]. If env `i`
/// fails, envs before it have already stepped: reset before stepping again.
pub(crate) fn step_envs<E: Env>(
    envs: &mut [E],
    actions: &[E::Action],
    mode: Autoreset,
    ended: &[bool],
) -> Result<VecStep<E::Observation, E::Info>> {
    check_action_count(actions.len(), envs.len())?;
    if ended.len() != envs.len() {
        return Err(EnvError::InvalidAction(format!(
            "{} episode states for {} environments",
            ended.len(),
            envs.len()
        )));
    }
    let mut out = VecStep::with_capacity(envs.len());
    for ((env, action), &ended) in envs.iter_mut().zip(actions).zip(ended) {
        if mode == Autoreset::NextStep && ended {
            let (observation, info) = env.reset(None)?;
            out.rewards.push(0.0);
            out.terminated.push(false);
            out.truncated.push(false);
            out.final_observations.push(None);
            out.final_infos.push(None);
            out.observations.push(observation);
            out.infos.push(info);
            continue;
        }
        let step = env.step(action)?;
        out.rewards.push(step.reward);
        out.terminated.push(step.terminated);
        out.truncated.push(step.truncated);
        if mode == Autoreset::SameStep && step.done() {
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
        let first = step_envs(&mut envs, &actions, Autoreset::SameStep, &[false; 2]).unwrap();
        assert_eq!(first.rewards, vec![2.0, 0.0]);
        assert_eq!(first.final_infos, vec![None, None]);
        let second = step_envs(&mut envs, &actions, Autoreset::SameStep, &[false; 2]).unwrap();
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
        let third = step_envs(&mut envs, &actions, Autoreset::SameStep, &[false; 2]).unwrap();
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
        let err = step_envs(
            &mut envs,
            &[Array1::from_elem(2, true)],
            Autoreset::SameStep,
            &[false; 2],
        )
        .unwrap_err();
        assert!(matches!(err, EnvError::InvalidAction(_)), "{err}");
        assert!(err.to_string().contains("1 actions for 2 environments"));
    }

    /// Steps `envs` as a vector env in `mode` would (the `ended` flags carried from
    /// step to step); returns the step.
    fn step_in(
        envs: &mut [Counter],
        mode: Autoreset,
        ended: &mut Vec<bool>,
    ) -> VecStep<ArrayD<f32>, usize> {
        let actions = vec![Array1::from_elem(2, true); envs.len()];
        check_steppable(mode, ended).unwrap();
        let step = step_envs(envs, &actions, mode, ended).unwrap();
        *ended = (0..envs.len()).map(|i| step.done(i)).collect();
        step
    }

    fn values(o: &ArrayD<f32>) -> Vec<f32> {
        o.iter().copied().collect()
    }

    #[test]
    fn next_step_resets_an_ended_env_on_its_next_step_ignoring_its_action() {
        let mut envs = vec![Counter::new(2), Counter::new(3)];
        reset_envs(&mut envs, Some(10)).unwrap();
        let mut ended = vec![false; 2];
        step_in(&mut envs, Autoreset::NextStep, &mut ended);
        let second = step_in(&mut envs, Autoreset::NextStep, &mut ended);
        // Env 0 ended: its last observation is the step's, no final observation.
        assert_eq!(second.terminated, vec![true, false]);
        assert_eq!(values(&second.observations[0]), vec![10.0, 1.0, 2.0]);
        assert_eq!(second.final_observations, vec![None, None]);
        assert_eq!(second.final_infos, vec![None, None]);
        let third = step_in(&mut envs, Autoreset::NextStep, &mut ended);
        // Env 0 is reset (reward 0, not done, the reset's info); env 1 ends.
        assert_eq!(third.rewards, vec![0.0, 2.0]);
        assert_eq!(third.terminated, vec![false, true]);
        assert_eq!(values(&third.observations[0]), vec![10.0, 2.0, 0.0]);
        assert_eq!(third.infos, vec![0, 3]);
        let fourth = step_in(&mut envs, Autoreset::NextStep, &mut ended);
        assert_eq!(fourth.rewards, vec![2.0, 0.0]);
        assert_eq!(values(&fourth.observations[1]), vec![11.0, 2.0, 0.0]);
    }

    #[test]
    fn disabled_never_resets_and_a_masked_reset_resets_only_its_envs() {
        let mut envs = vec![Counter::new(2), Counter::new(3)];
        reset_envs(&mut envs, Some(10)).unwrap();
        let mut ended = vec![false; 2];
        step_in(&mut envs, Autoreset::Disabled, &mut ended);
        let second = step_in(&mut envs, Autoreset::Disabled, &mut ended);
        assert_eq!(ended, vec![true, false]);
        assert_eq!(values(&second.observations[0]), vec![10.0, 1.0, 2.0]);
        assert_eq!(second.final_infos, vec![None, None]);
        let err = check_steppable(Autoreset::Disabled, &ended).unwrap_err();
        assert!(
            matches!(err, EnvError::VectorEpisodeEnded { env: 0 }),
            "{err}"
        );
        assert!(check_steppable(Autoreset::SameStep, &ended).is_ok());
        // Env 0 alone, with a seed of its own: env 1 keeps its episode.
        let reset = reset_some_envs(&mut envs, &[Some(20), Some(99)], &[true, false]).unwrap();
        assert_eq!(values(&reset[0].as_ref().unwrap().0), vec![20.0, 2.0, 0.0]);
        assert!(reset[1].is_none());
        ended[0] = false;
        let third = step_in(&mut envs, Autoreset::Disabled, &mut ended);
        assert_eq!(values(&third.observations[0]), vec![20.0, 2.0, 1.0]);
        assert_eq!(values(&third.observations[1]), vec![11.0, 1.0, 3.0]);
        assert!(matches!(
            check_reset_args(2, &[false, false], 2),
            Err(EnvError::InvalidConfig {
                field: "reset_mask",
                ..
            })
        ));
        assert!(matches!(
            check_reset_args(1, &[true, false], 2),
            Err(EnvError::InvalidConfig { field: "seed", .. })
        ));
    }

    #[test]
    fn autoreset_names_are_gymnasiums() {
        for mode in Autoreset::ALL {
            assert_eq!(Autoreset::parse(mode.name()).unwrap(), mode);
        }
        let err = Autoreset::parse("next_step").unwrap_err();
        assert!(err.to_string().contains("\"NextStep\""), "{err}");
    }
}
