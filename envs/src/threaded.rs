//! N environments stepped in parallel on worker threads, after Gymnasium's
//! `AsyncVectorEnv` (which uses processes; a Rust env can share the data tensors with
//! its siblings and needs no pickling, so threads do).
//!
//! The N envs are split into W contiguous chunks, one per worker thread. Each worker
//! builds its envs itself, from the factories it is given (so the envs need not be
//! `Send`: a `TeachingEnv` holds a boxed student), and steps its chunk one env after
//! the other ([`crate::vector`]'s autoreset rules, under the env's [`Autoreset`] mode:
//! same-step unless built with [`ThreadedVectorEnv::with_autoreset`]). A vector `step`
//! sends every worker its
//! slice of the actions, then collects the replies in order, so the workers step
//! concurrently and the result is laid out exactly as if the N envs were stepped one
//! after the other in the calling thread.
//!
//! **Determinism.** Env `i` is seeded with `seed + i` whatever worker runs it, and
//! envs share no random stream, so the results are the same for any number of workers
//! W, and bit-identical to the same envs stepped one by one by hand (checked in
//! `tests/vector_env.rs`).
//!
//! **Threads.** Run libtorch with one intra-op thread (`tch::set_num_threads(1)`) and
//! at most one worker per free core: the workers are the parallelism. Worker threads
//! take the process's libtorch thread setting.
//!
//! **Errors.** A failing env returns its error from `step` or `reset`; other workers
//! have stepped by then: reset before stepping again. A
//! worker that stops (its env panicked) is [`EnvError::Worker`].

use std::marker::PhantomData;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;

use crate::env::Env;
use crate::error::{invalid_config, EnvError, Result};
use crate::vector::{
    check_action_count, check_reset_args, check_steppable, env_seed, reset_some_envs, step_envs,
    Autoreset, VecReset, VecResetSome, VecStep, VectorEnv,
};

/// What the main thread asks a worker to do.
enum Command<A> {
    /// Reset the envs of the mask with their seeds.
    Reset(Vec<Option<u64>>, Vec<bool>),
    /// Step the envs; the flags say whose episode ended on the last step.
    Step(Vec<A>, Vec<bool>),
}

/// A worker's answer to a [`Command`] (or to its start).
enum Reply<O, I> {
    Ready(Result<()>),
    Reset(Result<VecResetSome<O, I>>),
    Step(Result<VecStep<O, I>>),
}

/// One worker thread and the envs `first_env..first_env + num_envs` it runs.
struct Worker<A, O, I> {
    commands: Option<Sender<Command<A>>>,
    replies: Receiver<Reply<O, I>>,
    handle: Option<JoinHandle<()>>,
    first_env: usize,
    num_envs: usize,
}

impl<A, O, I> Worker<A, O, I> {
    /// The indices of the worker's envs in the vector env.
    fn envs(&self) -> std::ops::Range<usize> {
        self.first_env..self.first_env + self.num_envs
    }
}

/// A factory of one environment, run on the worker thread that will own the env.
pub type EnvFactory<E> = Box<dyn FnOnce() -> Result<E> + Send>;

/// N environments of one type, stepped in parallel on W worker threads.
pub struct ThreadedVectorEnv<E: Env> {
    workers: Vec<Worker<E::Action, E::Observation, E::Info>>,
    num_envs: usize,
    autoreset: Autoreset,
    /// Whether env `i`'s episode ended on its last step and it was not reset since.
    ended: Vec<bool>,
    _envs: PhantomData<fn() -> E>,
}

impl<E: Env> std::fmt::Debug for ThreadedVectorEnv<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadedVectorEnv")
            .field("num_envs", &self.num_envs)
            .field("num_workers", &self.workers.len())
            .field("autoreset", &self.autoreset)
            .finish()
    }
}

impl<E> ThreadedVectorEnv<E>
where
    E: Env + 'static,
    E::Action: Clone + Send + 'static,
    E::Observation: Send + 'static,
    E::Info: Send + 'static,
{
    /// Builds env `i` from `env_fns[i]` on one of `num_workers` threads (envs split in
    /// contiguous chunks, the first chunks one env longer when N is not a multiple of
    /// W), with same-step autoreset. Fails with the first factory's error, or if there
    /// are no envs or workers.
    pub fn new(env_fns: Vec<EnvFactory<E>>, num_workers: usize) -> Result<Self> {
        Self::with_autoreset(env_fns, num_workers, Autoreset::SameStep)
    }

    /// As [`ThreadedVectorEnv::new`], with the autoreset mode `autoreset`.
    pub fn with_autoreset(
        env_fns: Vec<EnvFactory<E>>,
        num_workers: usize,
        autoreset: Autoreset,
    ) -> Result<Self> {
        let num_envs = env_fns.len();
        if num_envs == 0 {
            return Err(invalid_config(
                "num_envs",
                "a vector env needs at least one env",
            ));
        }
        if num_workers == 0 {
            return Err(invalid_config("num_workers", "needs at least one worker"));
        }
        let num_workers = num_workers.min(num_envs);
        let mut factories = env_fns.into_iter();
        let mut workers = Vec::with_capacity(num_workers);
        let mut first_env = 0;
        for w in 0..num_workers {
            let chunk = num_envs / num_workers + usize::from(w < num_envs % num_workers);
            let fns: Vec<EnvFactory<E>> = factories.by_ref().take(chunk).collect();
            let (command_tx, command_rx) = channel::<Command<E::Action>>();
            let (reply_tx, reply_rx) = channel::<Reply<E::Observation, E::Info>>();
            let handle = std::thread::Builder::new()
                .name(format!("l2t-env-worker-{w}"))
                .spawn(move || run_worker(fns, autoreset, command_rx, reply_tx))
                .map_err(|e| EnvError::Worker {
                    worker: w,
                    reason: format!("cannot start the thread: {e}"),
                })?;
            workers.push(Worker {
                commands: Some(command_tx),
                replies: reply_rx,
                handle: Some(handle),
                first_env,
                num_envs: chunk,
            });
            first_env += chunk;
        }
        let env = Self {
            workers,
            num_envs,
            autoreset,
            ended: vec![false; num_envs],
            _envs: PhantomData,
        };
        for (w, worker) in env.workers.iter().enumerate() {
            match worker.replies.recv() {
                Ok(Reply::Ready(result)) => result?,
                Ok(_) => return Err(unexpected_reply(w)),
                Err(_) => return Err(stopped(w)),
            }
        }
        Ok(env)
    }

    /// Number of worker threads W.
    pub fn num_workers(&self) -> usize {
        self.workers.len()
    }

    /// Resets env `i` with `seeds[i]` (`None` continues its streams) where `mask[i]`,
    /// and leaves the others as they are (Gymnasium's `reset(options={"reset_mask":
    /// mask})`, in every autoreset mode): entry `i` of the result is the reset's
    /// observation and info, `None` where env `i` was left. One seed and one mask entry
    /// per env and at least one env to reset, or [`EnvError::InvalidConfig`].
    pub fn reset_some(
        &mut self,
        seeds: &[Option<u64>],
        mask: &[bool],
    ) -> Result<VecResetSome<E::Observation, E::Info>> {
        check_reset_args(seeds.len(), mask, self.num_envs)?;
        for w in 0..self.workers.len() {
            let envs = self.workers[w].envs();
            self.send(
                w,
                Command::Reset(seeds[envs.clone()].to_vec(), mask[envs].to_vec()),
            )?;
        }
        let mut out = Vec::with_capacity(self.num_envs);
        let mut first_error = None;
        // Collect every reply, so that no worker's answer is left for the next command.
        for (w, worker) in self.workers.iter().enumerate() {
            match worker.replies.recv() {
                Ok(Reply::Reset(Ok(some))) => out.extend(some),
                Ok(Reply::Reset(Err(e))) => {
                    first_error.get_or_insert(e);
                }
                Ok(_) => {
                    first_error.get_or_insert(unexpected_reply(w));
                }
                Err(_) => {
                    first_error.get_or_insert(stopped(w));
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        for (ended, &reset) in self.ended.iter_mut().zip(mask) {
            *ended &= !reset;
        }
        Ok(out)
    }

    fn send(&self, w: usize, command: Command<E::Action>) -> Result<()> {
        self.workers[w]
            .commands
            .as_ref()
            .ok_or_else(|| stopped(w))?
            .send(command)
            .map_err(|_| stopped(w))
    }
}

/// The worker thread: builds its envs, reports, then serves commands until the main
/// thread drops its sender.
fn run_worker<E: Env>(
    env_fns: Vec<EnvFactory<E>>,
    autoreset: Autoreset,
    commands: Receiver<Command<E::Action>>,
    replies: Sender<Reply<E::Observation, E::Info>>,
) {
    let built = env_fns
        .into_iter()
        .map(|build| build())
        .collect::<Result<Vec<E>>>();
    let mut envs = match built {
        Ok(envs) => {
            if replies.send(Reply::Ready(Ok(()))).is_err() {
                return;
            }
            envs
        }
        Err(e) => {
            let _ = replies.send(Reply::Ready(Err(e)));
            return;
        }
    };
    while let Ok(command) = commands.recv() {
        let reply = match command {
            Command::Reset(seeds, mask) => Reply::Reset(reset_some_envs(&mut envs, &seeds, &mask)),
            Command::Step(actions, ended) => {
                Reply::Step(step_envs(&mut envs, &actions, autoreset, &ended))
            }
        };
        if replies.send(reply).is_err() {
            return;
        }
    }
}

fn stopped(worker: usize) -> EnvError {
    EnvError::Worker {
        worker,
        reason: "the worker thread has stopped (an env panicked)".into(),
    }
}

fn unexpected_reply(worker: usize) -> EnvError {
    EnvError::Worker {
        worker,
        reason: "answered a different command".into(),
    }
}

impl<E> VectorEnv for ThreadedVectorEnv<E>
where
    E: Env + 'static,
    E::Action: Clone + Send + 'static,
    E::Observation: Send + 'static,
    E::Info: Send + 'static,
{
    type Observation = E::Observation;
    type Action = E::Action;
    type Info = E::Info;

    fn num_envs(&self) -> usize {
        self.num_envs
    }

    /// `Some(seed)` seeds env `i` with `seed + i`, whichever worker runs it.
    fn reset(&mut self, seed: Option<u64>) -> Result<VecReset<E::Observation, E::Info>> {
        let seeds: Vec<Option<u64>> = (0..self.num_envs).map(|i| env_seed(seed, i)).collect();
        let all = self.reset_some(&seeds, &vec![true; self.num_envs])?;
        Ok(all.into_iter().flatten().unzip())
    }

    /// Steps under the env's autoreset mode; a [`Autoreset::Disabled`] step while an
    /// env's episode has ended is [`EnvError::VectorEpisodeEnded`], before any env steps.
    fn step(&mut self, actions: &[E::Action]) -> Result<VecStep<E::Observation, E::Info>> {
        check_action_count(actions.len(), self.num_envs)?;
        check_steppable(self.autoreset, &self.ended)?;
        for w in 0..self.workers.len() {
            let envs = self.workers[w].envs();
            let chunk = actions[envs.clone()].to_vec();
            self.send(w, Command::Step(chunk, self.ended[envs].to_vec()))?;
        }
        let mut out = VecStep::with_capacity(self.num_envs);
        let mut first_error = None;
        for (w, worker) in self.workers.iter().enumerate() {
            match worker.replies.recv() {
                Ok(Reply::Step(Ok(step))) => {
                    out.observations.extend(step.observations);
                    out.rewards.extend(step.rewards);
                    out.terminated.extend(step.terminated);
                    out.truncated.extend(step.truncated);
                    out.infos.extend(step.infos);
                    out.final_observations.extend(step.final_observations);
                    out.final_infos.extend(step.final_infos);
                }
                Ok(Reply::Step(Err(e))) => {
                    first_error.get_or_insert(e);
                }
                Ok(_) => {
                    first_error.get_or_insert(unexpected_reply(w));
                }
                Err(_) => {
                    first_error.get_or_insert(stopped(w));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => {
                for (i, ended) in self.ended.iter_mut().enumerate() {
                    *ended = out.done(i);
                }
                Ok(out)
            }
        }
    }

    fn autoreset(&self) -> Autoreset {
        self.autoreset
    }
}

impl<E: Env> Drop for ThreadedVectorEnv<E> {
    /// Closes the command channels (each worker then returns) and joins the threads.
    fn drop(&mut self) {
        for worker in &mut self.workers {
            worker.commands.take();
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
    use crate::env::Step;
    use crate::spaces::{BoxSpace, MultiBinary};
    use crate::vector::reset_envs;
    use ndarray::{Array1, ArrayD};

    /// Episodes of `length` steps; the observation is `[seed, step]`, the reward the
    /// number of kept entries; a mask with all 3 entries set to false panics.
    struct Countdown {
        length: usize,
        seed: u64,
        steps: usize,
        observation_space: BoxSpace,
        action_space: MultiBinary,
    }

    impl Countdown {
        fn new(length: usize) -> Self {
            Self {
                length,
                seed: 0,
                steps: 0,
                observation_space: BoxSpace::from_columns(&[2], &[(0.0, 1e9); 2]),
                action_space: MultiBinary(3),
            }
        }
    }

    impl Env for Countdown {
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
            self.steps = 0;
            Ok((Array1::from(vec![self.seed as f32, 0.0]).into_dyn(), 0))
        }
        fn step(&mut self, action: &Array1<bool>) -> Result<Step<ArrayD<f32>, usize>> {
            if action.len() != 3 {
                return Err(EnvError::InvalidAction("3 entries".into()));
            }
            assert!(
                action.iter().any(|&k| k),
                "a test env panics on an all-false mask"
            );
            self.steps += 1;
            Ok(Step {
                observation: Array1::from(vec![self.seed as f32, self.steps as f32]).into_dyn(),
                reward: action.iter().filter(|&&k| k).count() as f64,
                terminated: self.steps == self.length,
                truncated: false,
                info: self.steps,
            })
        }
    }

    fn factories(lengths: &[usize]) -> Vec<EnvFactory<Countdown>> {
        lengths
            .iter()
            .map(|&length| Box::new(move || Ok(Countdown::new(length))) as EnvFactory<Countdown>)
            .collect()
    }

    fn keep(i: usize) -> Array1<bool> {
        Array1::from_shape_fn(3, |j| j <= i % 3)
    }

    #[test]
    fn any_worker_count_gives_the_results_of_stepping_in_one_thread_in_every_mode() {
        use crate::vector::{reset_some_envs, Autoreset};
        let lengths = [2, 3, 4, 5, 2];
        let n = lengths.len();
        let actions = |t: usize| (0..n).map(|i| keep(i + t)).collect::<Vec<_>>();
        // Disabled: the ended envs are reset (with seed 100 + i) before the next step.
        let seeds: Vec<Option<u64>> = (0..n).map(|i| Some(100 + i as u64)).collect();
        for mode in Autoreset::ALL {
            let mut envs: Vec<Countdown> = lengths.iter().map(|&l| Countdown::new(l)).collect();
            let mut expected = vec![format!("{:?}", reset_envs(&mut envs, Some(10)).unwrap())];
            let mut ended = vec![false; n];
            for t in 0..7 {
                if mode == Autoreset::Disabled && ended.contains(&true) {
                    let reset = reset_some_envs(&mut envs, &seeds, &ended).unwrap();
                    expected.push(format!("{reset:?}"));
                    ended = vec![false; n];
                }
                let step = step_envs(&mut envs, &actions(t), mode, &ended).unwrap();
                ended = (0..n).map(|i| step.done(i)).collect();
                expected.push(format!("{step:?}"));
            }
            for workers in [1, 2, 3, 5, 8] {
                let mut threaded =
                    ThreadedVectorEnv::with_autoreset(factories(&lengths), workers, mode).unwrap();
                assert_eq!(threaded.num_workers(), workers.min(n));
                assert_eq!(threaded.autoreset(), mode);
                let mut trace = vec![format!("{:?}", threaded.reset(Some(10)).unwrap())];
                let mut ended = vec![false; n];
                for t in 0..7 {
                    if mode == Autoreset::Disabled && ended.contains(&true) {
                        // Stepping first is refused before any env steps.
                        let err = threaded.step(&actions(t)).unwrap_err();
                        assert!(matches!(err, EnvError::VectorEpisodeEnded { .. }), "{err}");
                        trace.push(format!(
                            "{:?}",
                            threaded.reset_some(&seeds, &ended).unwrap()
                        ));
                    }
                    let step = threaded.step(&actions(t)).unwrap();
                    ended = (0..n).map(|i| step.done(i)).collect();
                    trace.push(format!("{step:?}"));
                }
                assert_eq!(trace, expected, "{mode:?}, {workers} workers");
            }
        }
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        assert!(matches!(
            ThreadedVectorEnv::<Countdown>::new(Vec::new(), 2),
            Err(EnvError::InvalidConfig {
                field: "num_envs",
                ..
            })
        ));
        assert!(matches!(
            ThreadedVectorEnv::new(factories(&[2]), 0),
            Err(EnvError::InvalidConfig {
                field: "num_workers",
                ..
            })
        ));
        let mut failing = factories(&[2, 2]);
        failing.push(Box::new(|| Err(invalid_config("student", "no such model"))));
        let err = ThreadedVectorEnv::new(failing, 2).unwrap_err();
        assert!(err.to_string().contains("no such model"), "{err}");

        let mut env = ThreadedVectorEnv::new(factories(&[2, 2, 2]), 2).unwrap();
        env.reset(Some(0)).unwrap();
        let err = env.step(&[keep(0), keep(1)]).unwrap_err();
        assert!(
            err.to_string().contains("2 actions for 3 environments"),
            "{err}"
        );
        // A wrong mask in one env is that env's error; the vector env keeps working.
        let err = env
            .step(&[keep(0), Array1::from(vec![true]), keep(2)])
            .unwrap_err();
        assert!(matches!(err, EnvError::InvalidAction(_)), "{err}");
        env.reset(Some(0)).unwrap();
        env.step(&[keep(0), keep(1), keep(2)]).unwrap();
    }

    #[test]
    fn a_panicking_env_stops_its_worker_with_an_error() {
        let mut env = ThreadedVectorEnv::new(factories(&[3, 3]), 2).unwrap();
        env.reset(Some(0)).unwrap();
        let all_false = Array1::from_elem(3, false);
        let err = env.step(&[keep(0), all_false]).unwrap_err();
        assert!(matches!(err, EnvError::Worker { worker: 1, .. }), "{err}");
        let err = env.reset(None).unwrap_err();
        assert!(matches!(err, EnvError::Worker { worker: 1, .. }), "{err}");
        // Dropping joins the healthy worker and the stopped one.
        drop(env);
    }
}
