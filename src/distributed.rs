//! Teacher training across processes and machines on MPI (feature `mpi`):
//! `mpirun -np N l2t train|reproduce|run ... --distributed`.
//!
//! **Algorithm.** Every rank runs the same program on the same config and data, so
//! every rank holds the same learner. For each update:
//!
//! ```text
//! jobs      = learner.plan_update(first_seed + episodes_so_far)   # same on every rank
//! mine      = [job j for j in 0..K if j % N == rank]             # round robin
//! done      = local_pool.run(mine)                                # whole episodes
//! payload   = bincode([(j, summary_j, trajectory_j) for mine])    # or this rank's error
//! sizes     = all_gather(len(payload))                            # MPI_Allgather
//! everyone  = all_gather_varcount(payload)                        # MPI_Allgatherv
//! episodes  = everyone reassembled by j (plan order)
//! learner.learn(episodes)                                         # same input, same update
//! ```
//!
//! Episode j is a function of the policy, its own sampling stream and its env seed
//! (all fixed by the plan, see `l2t_agents::parallel`), and `learn` sees the episodes in
//! plan order, bit for bit as they were computed (bincode keeps f32 and f64 bits), so
//! every rank applies the identical update and the result does not depend on N: a
//! distributed run writes the same teacher and result files as a one-process run.
//! Exchanging whole trajectories rather than gradients keeps every learner (REINFORCE,
//! actor-critic, PPO, ES) unchanged, and costs a few kilobytes to megabytes per episode
//! (features x steps), small next to an episode's seconds of student training.
//!
//! **Files.** Rank 0 alone writes the run folder (checkpoints, training history,
//! events, report, plots). Before each teacher's training, rank 0 reads its checkpoint
//! and history and broadcasts them ([`Distribution::share_files`]); the other ranks
//! keep their copy in a private scratch folder, so no shared file system is needed and
//! no rank races on the run folder. After training, rank 0 evaluates the teachers and
//! writes the results while the other ranks exit.
//!
//! **Faults.** A rank whose episodes fail sends its error instead of episodes: every
//! rank sees it at the same exchange and stops with the failing rank named. Any other
//! error on a rank is reported by the `l2t` command, which then aborts the
//! communicator (`MPI_Abort`), so no rank waits forever in a collective; a rank that
//! dies is noticed by `mpirun`, which stops the job. Checkpoints are written atomically
//! after whole updates, so rerunning the same command resumes with no finished update
//! lost.
//!
//! **Fault injection** (for tests): `L2T_MPI_FAULT=<rank>:<update>:<crash|error>` makes
//! that rank, at its update-th exchange (from 0, counted in this process), either
//! abort the process after the size exchange (`crash`: after every rank has finished
//! the previous update, so its checkpoint is on disk) or return an error before it
//! (`error`).

use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Instant;

use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Count;
use serde::{Deserialize, Serialize};

use l2t_agents::{AgentError, Rollout, RolloutJob, Rollouts};
use l2t_envs::{EnvPool, Numerics, TeachingEnv};

use crate::experiment::{Distribution, ExperimentError, TrainingFiles};

/// Result alias of this module.
pub type Result<T, E = ExperimentError> = std::result::Result<T, E>;

/// The MPI environment of a distributed run: initialised once per process, finalised
/// when dropped.
pub struct Cluster {
    // Dropped last: MPI_Finalize.
    _universe: Universe,
    world: SimpleCommunicator,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("rank", &self.rank())
            .field("size", &self.size())
            .finish()
    }
}

impl Cluster {
    /// Initialises MPI (`MPI_Init`); an error when it was initialised already.
    pub fn initialize() -> Result<Self> {
        let universe = mpi::initialize().ok_or_else(|| {
            ExperimentError::Agent(AgentError::Distributed(
                "MPI was initialised already in this process".into(),
            ))
        })?;
        let world = universe.world();
        Ok(Self {
            _universe: universe,
            world,
        })
    }

    /// This process's rank, from 0.
    pub fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    /// The number of ranks.
    pub fn size(&self) -> usize {
        self.world.size() as usize
    }

    /// The [`Distribution`] of a run on these ranks, with the fault injection of
    /// `L2T_MPI_FAULT` (see the module doc) when it is set.
    pub fn distribution(&self) -> Result<MpiDistribution> {
        let fault = match std::env::var("L2T_MPI_FAULT") {
            Ok(text) => Some(Fault::parse(&text)?),
            Err(_) => None,
        };
        Ok(MpiDistribution {
            world: self.world.duplicate(),
            fault,
            exchanges: 0,
            teacher_start: None,
            teacher_end: None,
            closed_seconds: 0.0,
            stats: CommStats {
                ranks: self.size(),
                ..CommStats::default()
            },
        })
    }

    /// Checks that every rank runs the same floating-point code paths
    /// ([`Numerics`]), which episode j's bits depend on: ranks in different modes are
    /// refused, naming them, before anything is trained. Ranks in `native` mode on
    /// different CPU models are allowed, but their results depend on which rank rolls
    /// out which episode; the returned warning says so (the `l2t` command prints it on
    /// rank 0). `portable` on every rank makes them agree on x86-64 CPUs with AVX2.
    pub fn check_numerics(&self) -> Result<Option<String>> {
        let numerics = Numerics::in_effect();
        let cpu = {
            let mut hasher = std::hash::DefaultHasher::new();
            crate::run_dir::cpu_model().hash(&mut hasher);
            hasher.finish()
        };
        let mine = [u64::from(numerics == Numerics::Portable), cpu];
        let mut all = vec![0u64; 2 * self.size()];
        self.world.all_gather_into(&mine[..], &mut all[..]);
        let mode = |bit: u64| {
            if bit == 1 {
                Numerics::Portable
            } else {
                Numerics::Native
            }
        };
        if let Some(rank) = (0..self.size()).find(|&r| all[2 * r] != all[0]) {
            return Err(ExperimentError::Agent(distributed(format!(
                "rank {rank} runs numerics `{}` and rank 0 runs `{}`: the ranks would roll out \
                 episodes with different floating point; give every rank the same \
                 `--numerics` (or L2T_NUMERICS)",
                mode(all[2 * rank]),
                mode(all[0]),
            ))));
        }
        let cpus_differ = (0..self.size()).any(|r| all[2 * r + 1] != all[1]);
        Ok((cpus_differ && numerics == Numerics::Native).then(|| {
            "distributed: the ranks run on different CPU models with native numerics, so the \
             results depend on which rank rolls out which episode; `--numerics portable` \
             makes them the same on x86-64 CPUs with AVX2"
                .to_string()
        }))
    }

    /// Stops every rank of the job (`MPI_Abort`) with exit status `code`: what a rank
    /// does after an error, so that no other rank waits in a collective forever.
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}

/// A fault to inject (tests of the fault handling).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fault {
    rank: usize,
    exchange: usize,
    crash: bool,
}

impl Fault {
    fn parse(text: &str) -> Result<Self> {
        let invalid = || ExperimentError::InvalidSetting {
            field: "L2T_MPI_FAULT",
            reason: format!("`{text}`: expected <rank>:<update>:<crash|error>"),
        };
        let parts: Vec<&str> = text.split(':').collect();
        let [rank, exchange, kind] = parts[..] else {
            return Err(invalid());
        };
        Ok(Self {
            rank: rank.parse().map_err(|_| invalid())?,
            exchange: exchange.parse().map_err(|_| invalid())?,
            crash: match kind {
                "crash" => true,
                "error" => false,
                _ => return Err(invalid()),
            },
        })
    }
}

/// Where the time of a distributed run's training went, on one rank.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommStats {
    /// Ranks of the job.
    pub ranks: usize,
    /// Updates exchanged.
    pub updates: usize,
    /// Episodes of those updates (all ranks').
    pub episodes: usize,
    /// Seconds from the start of each teacher's first update to the end of its last
    /// exchange, summed over teachers.
    pub training_seconds: f64,
    /// Seconds this rank spent rolling out its own episodes.
    pub rollout_seconds: f64,
    /// Seconds this rank waited for slower ranks (a barrier before each exchange).
    pub wait_seconds: f64,
    /// Seconds in the exchanges themselves (sizes and payloads, after the barrier).
    pub comm_seconds: f64,
    /// Bytes every rank received per exchange, summed (the gathered payloads).
    pub bytes: usize,
}

impl CommStats {
    /// Episodes per minute of training.
    pub fn episodes_per_minute(&self) -> f64 {
        if self.training_seconds > 0.0 {
            self.episodes as f64 * 60.0 / self.training_seconds
        } else {
            0.0
        }
    }
}

/// The [`Distribution`] of an MPI job: each update's episodes spread over the ranks
/// round robin and exchanged with `MPI_Allgatherv`; rank 0 evaluates and writes.
pub struct MpiDistribution {
    world: SimpleCommunicator,
    fault: Option<Fault>,
    exchanges: usize,
    teacher_start: Option<Instant>,
    teacher_end: Option<Instant>,
    closed_seconds: f64,
    stats: CommStats,
}

impl std::fmt::Debug for MpiDistribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpiDistribution")
            .field("rank", &self.world.rank())
            .field("stats", &self.stats)
            .finish()
    }
}

/// What a rank sends at an exchange: the env seeds of the update it planned (every
/// rank must have planned the same), and its episodes with their plan indices, or why
/// it has none.
#[derive(Serialize, Deserialize)]
struct Payload {
    plan: Vec<u64>,
    episodes: std::result::Result<Vec<(usize, Rollout)>, String>,
}

fn distributed(message: impl Into<String>) -> AgentError {
    AgentError::Distributed(message.into())
}

impl MpiDistribution {
    /// Where the time of the training so far went, on this rank.
    pub fn stats(&self) -> CommStats {
        let current = match (self.teacher_start, self.teacher_end) {
            (Some(start), Some(end)) => (end - start).as_secs_f64(),
            _ => 0.0,
        };
        CommStats {
            training_seconds: self.closed_seconds + current,
            ..self.stats.clone()
        }
    }

    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    /// Broadcasts rank 0's `bytes` to every rank (length first).
    fn broadcast(&self, bytes: &mut Vec<u8>) {
        let root = self.world.process_at_rank(0);
        let mut len = bytes.len() as u64;
        root.broadcast_into(&mut len);
        bytes.resize(len as usize, 0);
        root.broadcast_into(&mut bytes[..]);
    }

    /// One update's episodes: this rank's share on `pool`, then everyone's.
    fn exchange(
        &mut self,
        pool: &mut EnvPool<TeachingEnv>,
        jobs: Vec<RolloutJob>,
    ) -> l2t_agents::Result<Vec<Rollout>> {
        let size = self.world.size() as usize;
        let rank = self.rank();
        let count = jobs.len();
        let plan: Vec<u64> = jobs.iter().map(|job| job.seed).collect();
        let start = Instant::now();
        self.teacher_start.get_or_insert(start);
        let fault = self
            .fault
            .filter(|f| f.rank == rank && f.exchange == self.exchanges);
        self.exchanges += 1;
        if let Some(fault) = fault.filter(|f| !f.crash) {
            return Err(distributed(format!(
                "rank {rank}: injected error at update {} (L2T_MPI_FAULT)",
                fault.exchange
            )));
        }

        let (indices, mine): (Vec<usize>, Vec<RolloutJob>) = jobs
            .into_iter()
            .enumerate()
            .filter(|(j, _)| j % size == rank)
            .unzip();
        let episodes = Rollouts::run(pool, mine)
            .map(|done| indices.into_iter().zip(done).collect())
            .map_err(|e| format!("rank {rank}: {e}"));
        let payload = bincode::serialize(&Payload {
            plan: plan.clone(),
            episodes,
        })
        .map_err(|e| distributed(format!("rank {rank}: encoding episodes: {e}")))?;
        let send_len = Count::try_from(payload.len()).map_err(|_| {
            distributed(format!(
                "rank {rank}: {} bytes of episodes exceed MPI's count limit",
                payload.len()
            ))
        })?;
        let rolled = Instant::now();
        self.world.barrier();
        let waited = Instant::now();

        let mut counts: Vec<Count> = vec![0; size];
        self.world.all_gather_into(&send_len, &mut counts[..]);
        if fault.is_some() {
            eprintln!("l2t: rank {rank}: injected crash (L2T_MPI_FAULT)");
            std::process::abort();
        }
        let mut displs: Vec<Count> = Vec::with_capacity(size);
        let mut total: Count = 0;
        for &c in &counts {
            displs.push(total);
            total = total.checked_add(c).ok_or_else(|| {
                distributed("the episodes of one update exceed MPI's count limit (2 GiB)")
            })?;
        }
        let mut received = vec![0u8; total as usize];
        {
            let mut partition = PartitionMut::new(&mut received[..], &counts[..], &displs[..]);
            self.world
                .all_gather_varcount_into(&payload[..], &mut partition);
        }
        let done = Instant::now();

        let mut slots: Vec<Option<Rollout>> = (0..count).map(|_| None).collect();
        let mut errors = Vec::new();
        for (from, (&offset, &len)) in displs.iter().zip(&counts).enumerate() {
            let bytes = &received[offset as usize..(offset + len) as usize];
            let payload: Payload = bincode::deserialize(bytes)
                .map_err(|e| distributed(format!("decoding rank {from}'s episodes: {e}")))?;
            if payload.plan != plan {
                return Err(distributed(format!(
                    "rank {from} planned an update with env seeds {:?}, rank {rank} with {plan:?}: \
                     the ranks do not run the same config, data or checkpoint",
                    payload.plan
                )));
            }
            match payload.episodes {
                Ok(episodes) => {
                    for (j, rollout) in episodes {
                        match slots.get_mut(j) {
                            Some(slot @ None) if j % size == from => *slot = Some(rollout),
                            _ => {
                                return Err(distributed(format!(
                                    "rank {from} sent episode {j}, not one of its share of {count}"
                                )))
                            }
                        }
                    }
                }
                Err(message) => errors.push(message),
            }
        }
        if !errors.is_empty() {
            return Err(distributed(errors.join("; ")));
        }
        let episodes: Vec<Rollout> = slots.into_iter().flatten().collect();
        if episodes.len() != count {
            return Err(distributed(format!(
                "{} of {count} episodes came back from the ranks",
                episodes.len()
            )));
        }

        let stats = &mut self.stats;
        stats.updates += 1;
        stats.episodes += count;
        stats.rollout_seconds += (rolled - start).as_secs_f64();
        stats.wait_seconds += (waited - rolled).as_secs_f64();
        stats.comm_seconds += (done - waited).as_secs_f64();
        stats.bytes += received.len();
        self.teacher_end = Some(done);
        Ok(episodes)
    }

    /// Closes the current teacher's training span (a new teacher starts).
    fn close_span(&mut self) {
        if let (Some(start), Some(end)) = (self.teacher_start.take(), self.teacher_end.take()) {
            self.closed_seconds += (end - start).as_secs_f64();
        }
    }
}

/// This process's pool, its episodes exchanged with the other ranks'.
struct MpiRollouts<'a> {
    distribution: &'a mut MpiDistribution,
    pool: &'a mut EnvPool<TeachingEnv>,
}

impl Rollouts for MpiRollouts<'_> {
    fn run(&mut self, jobs: Vec<RolloutJob>) -> l2t_agents::Result<Vec<Rollout>> {
        self.distribution.exchange(self.pool, jobs)
    }

    fn workers(&self) -> usize {
        self.pool.num_workers() * self.distribution.world.size() as usize
    }
}

impl Distribution for MpiDistribution {
    fn rollouts<'a>(&'a mut self, pool: &'a mut EnvPool<TeachingEnv>) -> Box<dyn Rollouts + 'a> {
        Box::new(MpiRollouts {
            distribution: self,
            pool,
        })
    }

    /// Rank 0 reads the checkpoint and the history (when they exist) and broadcasts
    /// them; the other ranks write them to their own folder (or remove theirs).
    fn share_files(&mut self, files: &TrainingFiles) -> Result<()> {
        self.close_span();
        let rank = self.rank();
        let mut bytes = Vec::new();
        if rank == 0 {
            let shared = SharedFiles {
                checkpoint: read_if_exists(&files.checkpoint)?,
                history: read_if_exists(&files.history)?,
            };
            bytes = bincode::serialize(&shared).map_err(|e| {
                ExperimentError::Agent(distributed(format!("encoding the checkpoint: {e}")))
            })?;
        }
        self.broadcast(&mut bytes);
        if rank != 0 {
            let shared: SharedFiles = bincode::deserialize(&bytes).map_err(|e| {
                ExperimentError::Agent(distributed(format!(
                    "rank {rank}: decoding rank 0's checkpoint: {e}"
                )))
            })?;
            write_or_remove(&files.checkpoint, shared.checkpoint)?;
            write_or_remove(&files.history, shared.history)?;
        }
        Ok(())
    }

    fn evaluates(&self) -> bool {
        self.rank() == 0
    }
}

/// Rank 0's files of a teacher's training, as every rank resumes from them.
#[derive(Serialize, Deserialize)]
struct SharedFiles {
    checkpoint: Option<Vec<u8>>,
    history: Option<Vec<u8>>,
}

fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ExperimentError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn write_or_remove(path: &Path, bytes: Option<Vec<u8>>) -> Result<()> {
    let io = |source| ExperimentError::Io {
        path: path.to_path_buf(),
        source,
    };
    match bytes {
        Some(bytes) => {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(io)?;
            }
            fs::write(path, bytes).map_err(io)
        }
        None => match fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
            _ => Ok(()),
        },
    }
}

/// The private folder of rank `rank` (> 0) of this job: where it keeps its copies of
/// rank 0's checkpoints and its own (unread) run files. Under the system's temporary
/// folder, named after the rank and the process id.
pub fn scratch_folder(rank: usize) -> PathBuf {
    std::env::temp_dir().join(format!("l2t-rank{rank}-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_and_bad_ones_are_named() {
        assert_eq!(
            Fault::parse("1:2:crash").unwrap(),
            Fault {
                rank: 1,
                exchange: 2,
                crash: true
            }
        );
        assert!(!Fault::parse("0:0:error").unwrap().crash);
        for bad in ["", "1:2", "1:2:explode", "x:2:crash", "1:2:crash:3"] {
            let error = Fault::parse(bad).unwrap_err().to_string();
            assert!(error.contains("L2T_MPI_FAULT"), "{error}");
        }
    }
}
