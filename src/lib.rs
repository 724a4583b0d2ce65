//! l2t: "Learning to Teach" (Fan et al., ICLR 2018) as a Gym-style environment, with
//! interchangeable teachers and the experiment layer that trains and compares them.
//!
//! This crate re-exports the environment crate ([`envs`]) and the teacher crate
//! ([`agents`]) and adds ready-made tasks ([`tasks`]), presets ([`presets`]), run
//! configs ([`config`]), the experiment layer ([`experiment`]: train, evaluate, compare,
//! transfer), the run folder it writes ([`run_dir`]), the figures of results ([`plots`]) and the
//! statistics both use across seeds ([`stats`]). It re-exports [`tch`] and [`ndarray`] at
//! the versions its API uses.

pub use l2t_agents as agents;
pub use l2t_envs as envs;
/// The ndarray version of the API's observations and keep-masks, so a user's teacher
/// needs no matching dependency of its own.
pub use ndarray;
/// The tch (libtorch) version the students and learned teachers are built on; set
/// libtorch's intra-op threads with `l2t::tch::set_num_threads` (the `l2t` command uses
/// 1: the small students are fastest with one thread per worker).
pub use tch;

pub mod cli;
pub mod config;
#[cfg(feature = "mpi")]
pub mod distributed;
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
