//! Gym-style environments for "Learning to Teach" (Fan et al., ICLR 2018).
//!
//! - [`env`](mod@env): the `Env` contract (reset with a seed, step with terminated/truncated);
//! - [`spaces`]: bounded boxes and `MultiBinary` masks;
//! - [`check`]: `check_env`, the conformance checks every env passes;
//! - [`teaching`]: the data-teaching MDP, in one file;
//! - [`vector`]: the vector-env contract: N environments stepped together with autoreset;
//! - [`threaded`]: its implementation, the envs spread over worker threads (`ThreadedVectorEnv`);
//! - [`pool`]: envs owned by worker threads that run whole episodes (`EnvPool`);
//! - [`student`]: the models being taught;
//! - [`data`]: datasets staged as tensors, and the synthetic task;
//! - [`layout`]: the feature columns of an observation, looked up by name;
//! - [`io`]: the atomic file write every crate of the workspace uses;
//! - [`memory`]: sizes checked against the machine's memory before they are allocated;
//! - [`numerics`]: libtorch's fastest code paths for this CPU, or the AVX2 paths that give
//!   the same bits on every x86-64 machine;
//! - [`seeding`]: one master seed, one ChaCha stream per source of randomness.

pub mod check;
pub mod data;
pub mod env;
pub mod error;
pub mod io;
pub mod layout;
pub mod memory;
pub mod numerics;
pub mod pool;
pub mod seeding;
pub mod spaces;
pub mod student;
pub mod teaching;
pub mod threaded;
pub mod vector;

pub use check::{check_env, CheckFailure, CheckOptions};
pub use data::{synthetic::SyntheticConfig, Batch, Dataset, TaskData};
pub use env::{Env, Step};
pub use error::{DataError, EnvError, Result};
pub use layout::{Column, FeatureLayout};
pub use numerics::Numerics;
pub use pool::{EnvJob, EnvPool};
pub use spaces::{BoxSpace, MultiBinary, Space};
pub use student::{
    CnnConfig, CnnStudent, LstmConfig, LstmStudent, MlpConfig, MlpStudent, OptimizerConfig,
    PooledFlops, ResNetConfig, ResNetStudent, Student, StudentConfig, StudentFlops,
};
pub use teaching::{
    Compute, LossScaling, Reward, Scoring, TeachingConfig, TeachingEnv, TeachingInfo,
    TeachingObservation, Threshold,
};
pub use threaded::{EnvFactory, ThreadedVectorEnv};
pub use vector::{Autoreset, VecReset, VecResetSome, VecStep, VectorEnv};
