//! W environments, each owned by its own worker thread, that run whole jobs (typically
//! whole episodes) handed to them from the main thread.
//!
//! A vector env ([`crate::ThreadedVectorEnv`]) synchronises its envs at every step: the
//! agent needs all N observations before it can act. When one env's step is expensive
//! (a student update, a dev evaluation every few updates) and its sibling's is cheap,
//! the cheap one waits, and on a teaching env these expensive steps fall at different
//! times in different envs, so two workers gain little over one env. An agent whose
//! policy is fixed for the duration of an episode (REINFORCE between two updates)
//! need not synchronise per step at all: it can hand each worker a whole episode,
//! together with a copy of its policy, and gather the finished episodes. `EnvPool` is
//! that worker pool; `l2t_agents::parallel` runs REINFORCE on it.
//!
//! Each worker builds its env itself from an [`EnvFactory`] (so the env need not be
//! `Send`) and keeps it between jobs. [`EnvPool::run`] hands job `j` to worker
//! `j % W`; a worker runs its jobs in order, and the results come back in job order.
//! A job that is a function of its inputs only (it reseeds the env and brings its own
//! random streams) therefore gives the same result for any number of workers.
//!
//! Threads: as for [`crate::ThreadedVectorEnv`], run libtorch with one intra-op thread
//! and at most one worker per free core.

use std::sync::mpsc::{channel, Sender};
use std::thread::JoinHandle;

use crate::error::{invalid_config, EnvError, Result};
use crate::threaded::EnvFactory;

/// A job for one worker: runs with exclusive access to the worker's env.
pub type EnvJob<E, R> = Box<dyn FnOnce(&mut E) -> R + Send>;

/// What a worker thread is handed: a job with its reply already wired in.
type Task<E> = Box<dyn FnOnce(&mut E) + Send>;

/// One worker thread and the channel that feeds it.
struct PoolWorker<E> {
    tasks: Option<Sender<Task<E>>>,
    handle: Option<JoinHandle<()>>,
}

/// W envs, one per worker thread, running jobs handed to them.
pub struct EnvPool<E> {
    workers: Vec<PoolWorker<E>>,
}

impl<E> std::fmt::Debug for EnvPool<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvPool")
            .field("num_workers", &self.workers.len())
            .finish()
    }
}

impl<E: 'static> EnvPool<E> {
    /// Starts one worker thread per factory; worker `w` builds its env from
    /// `env_fns[w]`. Fails with the first factory's error, or if there is none.
    pub fn new(env_fns: Vec<EnvFactory<E>>) -> Result<Self> {
        if env_fns.is_empty() {
            return Err(invalid_config("num_workers", "needs at least one worker"));
        }
        let mut workers = Vec::with_capacity(env_fns.len());
        let mut started = Vec::with_capacity(env_fns.len());
        for (w, build) in env_fns.into_iter().enumerate() {
            let (task_tx, task_rx) = channel::<Task<E>>();
            let (ready_tx, ready_rx) = channel::<Result<()>>();
            let handle = std::thread::Builder::new()
                .name(format!("l2t-pool-worker-{w}"))
                .spawn(move || {
                    let mut env = match build() {
                        Ok(env) => {
                            if ready_tx.send(Ok(())).is_err() {
                                return;
                            }
                            env
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    while let Ok(task) = task_rx.recv() {
                        task(&mut env);
                    }
                })
                .map_err(|e| EnvError::Worker {
                    worker: w,
                    reason: format!("cannot start the thread: {e}"),
                })?;
            workers.push(PoolWorker {
                tasks: Some(task_tx),
                handle: Some(handle),
            });
            started.push(ready_rx);
        }
        // Dropping `pool` on an early return closes the channels and joins the threads.
        let pool = Self { workers };
        for (w, ready) in started.iter().enumerate() {
            match ready.recv() {
                Ok(result) => result?,
                Err(_) => return Err(stopped(w)),
            }
        }
        Ok(pool)
    }

    /// Number of worker threads (and envs) W.
    pub fn num_workers(&self) -> usize {
        self.workers.len()
    }

    /// Runs job `j` on worker `j % W`, each worker its jobs in order, the workers
    /// concurrently; returns the results in job order once all are done. A job that
    /// panics stops its worker: [`EnvError::Worker`] then, and from every later call
    /// that needs that worker.
    pub fn run<R: Send + 'static>(&mut self, jobs: Vec<EnvJob<E, R>>) -> Result<Vec<R>> {
        let num_jobs = jobs.len();
        let (result_tx, result_rx) = channel::<(usize, R)>();
        for (j, job) in jobs.into_iter().enumerate() {
            let w = j % self.workers.len();
            let result_tx = result_tx.clone();
            let task: Task<E> = Box::new(move |env: &mut E| {
                // The receiver only goes away if `run` itself has returned early.
                let _ = result_tx.send((j, job(env)));
            });
            self.workers[w]
                .tasks
                .as_ref()
                .ok_or_else(|| stopped(w))?
                .send(task)
                .map_err(|_| stopped(w))?;
        }
        // Only the tasks hold senders now: when a worker dies its tasks drop theirs, and
        // `recv` fails once every other task has answered.
        drop(result_tx);
        let mut results: Vec<Option<R>> = (0..num_jobs).map(|_| None).collect();
        for _ in 0..num_jobs {
            match result_rx.recv() {
                Ok((j, result)) => results[j] = Some(result),
                Err(_) => break,
            }
        }
        results
            .into_iter()
            .enumerate()
            .map(|(j, result)| result.ok_or_else(|| stopped(j % self.workers.len())))
            .collect()
    }
}

fn stopped(worker: usize) -> EnvError {
    EnvError::Worker {
        worker,
        reason: "the worker thread has stopped (a job panicked)".into(),
    }
}

impl<E> Drop for EnvPool<E> {
    /// Closes the task channels (each worker then returns) and joins the threads.
    fn drop(&mut self) {
        for worker in &mut self.workers {
            worker.tasks.take();
        }
        for worker in &mut self.workers {
            if let Some(handle) = worker.handle.take() {
                let _ = handle.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An "env" that records which jobs it ran.
    #[derive(Debug, Default)]
    struct Log {
        worker: usize,
        jobs: Vec<usize>,
    }

    fn factories(workers: usize) -> Vec<EnvFactory<Log>> {
        (0..workers)
            .map(|worker| {
                Box::new(move || {
                    Ok(Log {
                        worker,
                        jobs: Vec::new(),
                    })
                }) as EnvFactory<Log>
            })
            .collect()
    }

    fn square_jobs(n: usize) -> Vec<EnvJob<Log, (usize, usize)>> {
        (0..n)
            .map(|j| {
                Box::new(move |log: &mut Log| {
                    log.jobs.push(j);
                    (j * j, log.worker)
                }) as EnvJob<Log, (usize, usize)>
            })
            .collect()
    }

    #[test]
    fn results_come_back_in_job_order_from_round_robin_workers() {
        for workers in [1, 2, 3] {
            let mut pool = EnvPool::new(factories(workers)).unwrap();
            assert_eq!(pool.num_workers(), workers);
            let results = pool.run(square_jobs(7)).unwrap();
            let expected: Vec<_> = (0..7).map(|j| (j * j, j % workers)).collect();
            assert_eq!(results, expected, "{workers} workers");
            // Envs persist between calls: the next call's jobs see the same envs.
            let seen = pool
                .run(
                    (0..workers)
                        .map(|_| Box::new(|log: &mut Log| log.jobs.clone()) as EnvJob<Log, _>)
                        .collect(),
                )
                .unwrap();
            for (w, jobs) in seen.iter().enumerate() {
                let expected: Vec<usize> = (0..7).filter(|j| j % workers == w).collect();
                assert_eq!(jobs, &expected);
            }
        }
    }

    #[test]
    fn failures_are_typed_errors() {
        assert!(matches!(
            EnvPool::<Log>::new(Vec::new()),
            Err(EnvError::InvalidConfig {
                field: "num_workers",
                ..
            })
        ));
        let failing: Vec<EnvFactory<Log>> = vec![
            Box::new(|| Ok(Log::default())),
            Box::new(|| Err(EnvError::InvalidAction("cannot build env 1".into()))),
        ];
        assert!(matches!(
            EnvPool::new(failing),
            Err(EnvError::InvalidAction(reason)) if reason == "cannot build env 1"
        ));

        let mut pool = EnvPool::new(factories(2)).unwrap();
        let jobs: Vec<EnvJob<Log, usize>> = (0..4usize)
            .map(|j| {
                Box::new(move |log: &mut Log| {
                    assert!(log.worker != 1, "a test job panics on worker 1");
                    j
                }) as EnvJob<Log, usize>
            })
            .collect();
        match pool.run(jobs) {
            Err(EnvError::Worker { worker: 1, reason }) => assert!(reason.contains("stopped")),
            other => panic!("expected a worker error, got {other:?}"),
        }
        // Worker 0 still serves; worker 1 is reported as stopped.
        let only_first: Vec<EnvJob<Log, usize>> = vec![Box::new(|log: &mut Log| log.worker)];
        assert_eq!(pool.run(only_first).unwrap(), vec![0]);
        assert!(matches!(
            pool.run(square_jobs(2)),
            Err(EnvError::Worker { worker: 1, .. })
        ));
    }
}
