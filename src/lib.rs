//! l2t: "Learning to Teach" (Fan et al., ICLR 2018) as a Gym-style environment, with
//! interchangeable teachers and the experiment layer that trains and compares them.
//!
//! This crate re-exports the environment crate ([`envs`]) and the teacher crate
//! ([`agents`]) and adds ready-made tasks ([`tasks`]), presets ([`presets`]), run
//! configs ([`config`]), the experiment layer ([`experiment`]: train, evaluate, compare,
//! transfer), the run folder it writes ([`run_dir`]), the figures of results ([`plots`]) and the
//! statistics both use across seeds ([`stats`]).

pub use l2t_agents as agents;
pub use l2t_envs as envs;

pub mod config;
pub mod experiment;
pub mod plots;
pub mod presets;
pub mod run_dir;
pub mod stats;
pub mod tasks;

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
