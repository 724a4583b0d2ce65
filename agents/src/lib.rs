//! Teachers for "Learning to Teach": policies from the teaching observation to a
//! keep-mask, behind one [`Teacher`] trait.
//!
//! - [`NoTeach`], [`RandTeach`], [`SelfPacedLearning`]: the paper's baselines;
//! - [`Reinforce`]: the paper's learned teacher, with its [`BernoulliPolicy`];
//! - [`run_episode`]: the agent-environment loop.
//!
//! Each teacher is one file, readable top to bottom.

pub mod episode;
pub mod error;
pub mod no_teach;
pub mod policy;
pub mod rand_teach;
pub mod reinforce;
pub mod spl;
pub mod teacher;

pub use episode::{run_episode, EpisodeSummary};
pub use error::{AgentError, Result};
pub use no_teach::NoTeach;
pub use policy::BernoulliPolicy;
pub use rand_teach::{RandTeach, RandTeachConfig};
pub use reinforce::{Reinforce, ReinforceConfig};
pub use spl::{SelfPacedLearning, SplConfig};
pub use teacher::{feature_column, KeepMask, Teacher, UpdateStats};
