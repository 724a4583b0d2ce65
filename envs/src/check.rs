//! `check_env`: the conformance checks every environment of this crate must pass,
//! after Gymnasium's `gymnasium.utils.env_checker.check_env`.
//!
//! Checked, where they apply to a Rust environment:
//! - both spaces validate;
//! - `reset(Some(seed))` returns an observation inside the observation space;
//! - the same seed gives the same first observation and the same trajectory under the
//!   same actions; a different seed gives a different first observation;
//! - `reset(None)` starts a new episode with an observation inside the space;
//! - every step returns an observation inside the space and a finite reward;
//! - the episode ends (terminated or truncated) within `max_episode_steps`;
//! - `step` after the end is an error, not a panic and not a silent new episode.

use std::fmt::Debug;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::env::Env;
use crate::spaces::Space;

/// Settings of [`check_env`].
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Seed used for the seeded resets.
    pub seed: u64,
    /// Steps replayed to check that a seed fixes the trajectory.
    pub determinism_steps: usize,
    /// Bound on the steps of the random-action episode that must end.
    pub max_episode_steps: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            determinism_steps: 3,
            max_episode_steps: 10_000,
        }
    }
}

/// A failed conformance check.
#[derive(Debug, thiserror::Error)]
#[error("check_env: {check} failed: {detail}")]
pub struct CheckFailure {
    /// Which check failed.
    pub check: &'static str,
    /// What was observed.
    pub detail: String,
}

fn fail(check: &'static str, detail: impl Into<String>) -> CheckFailure {
    CheckFailure {
        check,
        detail: detail.into(),
    }
}

/// Runs the conformance checks on `env`; returns the first failure.
///
/// Actions are sampled from the action space with a generator seeded from
/// `options.seed`, so a failure reproduces.
pub fn check_env<E>(env: &mut E, options: &CheckOptions) -> Result<(), CheckFailure>
where
    E: Env,
    E::Observation: PartialEq + Debug,
{
    env.observation_space()
        .validate()
        .map_err(|e| fail("observation space is valid", e.to_string()))?;
    env.action_space()
        .validate()
        .map_err(|e| fail("action space is valid", e.to_string()))?;

    let mut action_rng = ChaCha8Rng::seed_from_u64(options.seed);
    let seed = options.seed;

    // Same seed, same first observation and same trajectory.
    let (first, _) = env
        .reset(Some(seed))
        .map_err(|e| fail("reset(Some(seed))", e.to_string()))?;
    if !env.observation_space().contains(&first) {
        return Err(fail(
            "reset observation is inside the observation space",
            format!("{first:?}"),
        ));
    }
    let actions: Vec<E::Action> = (0..options.determinism_steps)
        .map(|_| env.action_space().sample(&mut action_rng))
        .collect();
    let trajectory = replay(env, &actions)?;
    let (again, _) = env
        .reset(Some(seed))
        .map_err(|e| fail("reset(Some(seed)) twice", e.to_string()))?;
    if again != first {
        return Err(fail(
            "the same seed gives the same first observation",
            format!("seed {seed}: {first:?} then {again:?}"),
        ));
    }
    let replayed = replay(env, &actions)?;
    if replayed != trajectory {
        return Err(fail(
            "the same seed and actions give the same trajectory",
            format!("seed {seed}: {trajectory:?} then {replayed:?}"),
        ));
    }

    let (other, _) = env
        .reset(Some(seed.wrapping_add(1)))
        .map_err(|e| fail("reset(Some(other seed))", e.to_string()))?;
    if other == first {
        return Err(fail(
            "a different seed gives a different first observation",
            format!("seeds {seed} and {}", seed.wrapping_add(1)),
        ));
    }

    let (unseeded, _) = env
        .reset(None)
        .map_err(|e| fail("reset(None)", e.to_string()))?;
    if !env.observation_space().contains(&unseeded) {
        return Err(fail(
            "reset(None) observation is inside the observation space",
            format!("{unseeded:?}"),
        ));
    }

    // A random-action episode must end, with valid observations and rewards throughout.
    let mut ended = false;
    for step_index in 0..options.max_episode_steps {
        let action = env.action_space().sample(&mut action_rng);
        let step = env.step(&action).map_err(|e| {
            fail(
                "step with a sampled action",
                format!("step {step_index}: {e}"),
            )
        })?;
        if !env.observation_space().contains(&step.observation) {
            return Err(fail(
                "step observation is inside the observation space",
                format!("step {step_index}: {:?}", step.observation),
            ));
        }
        if !step.reward.is_finite() {
            return Err(fail(
                "reward is finite",
                format!("step {step_index}: {}", step.reward),
            ));
        }
        if step.terminated || step.truncated {
            ended = true;
            break;
        }
    }
    if !ended {
        return Err(fail(
            "the episode ends",
            format!(
                "not terminated or truncated after {} steps",
                options.max_episode_steps
            ),
        ));
    }
    let action = env.action_space().sample(&mut action_rng);
    if env.step(&action).is_ok() {
        return Err(fail(
            "step after the episode ended is an error",
            "step returned Ok",
        ));
    }
    Ok(())
}

/// Steps `actions` from the current state; returns observations and rewards.
fn replay<E>(env: &mut E, actions: &[E::Action]) -> Result<Vec<(E::Observation, f64)>, CheckFailure>
where
    E: Env,
{
    let mut out = Vec::with_capacity(actions.len());
    for (i, action) in actions.iter().enumerate() {
        let step = env
            .step(action)
            .map_err(|e| fail("step after a seeded reset", format!("step {i}: {e}")))?;
        let done = step.done();
        out.push((step.observation, step.reward));
        if done {
            break;
        }
    }
    Ok(out)
}
