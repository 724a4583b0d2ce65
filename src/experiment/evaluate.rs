//! Evaluation: a teacher teaching fresh students on given seeds, and several teachers
//! side by side on worker threads with results independent of the worker count.

use serde::{Deserialize, Serialize};

use l2t_agents::{run_episode_recorded, EpisodeSummary, Recording, Teacher};

use l2t_envs::{Dataset, TeachingEnv};

use super::*;

/// One evaluation episode: a fresh student taught from `reset(seed)` to the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationRecord {
    /// Teacher label.
    pub teacher: String,
    /// Environment seed (data order and student initialisation).
    pub seed: u64,
    /// Test accuracy of the student when the episode ended.
    pub test_accuracy: f64,
    /// The episode, with its learning curve.
    pub episode: EpisodeSummary,
}

/// Teaches one fresh student on `env` from `reset(seed)` with `teacher` (in evaluation
/// mode), measuring test accuracy at the end and every `test_every` dev evaluations.
pub fn evaluate_once(
    env: &mut TeachingEnv,
    teacher: &mut dyn Teacher,
    label: &str,
    seed: u64,
    test: &Dataset,
    test_every: usize,
) -> Result<EvaluationRecord> {
    let episode = run_episode_recorded(
        env,
        teacher,
        Some(seed),
        Recording {
            test: Some(test),
            test_every,
        },
    )?;
    let test_accuracy = match episode.curve.last().and_then(|p| p.test_accuracy) {
        Some(accuracy) => accuracy,
        None => env.evaluate(test)?,
    };
    Ok(EvaluationRecord {
        teacher: label.to_string(),
        seed,
        test_accuracy,
        episode,
    })
}

/// [`evaluate_once`] for every seed of `seeds`, labelled with the teacher's name.
pub fn evaluate_teacher(
    env: &mut TeachingEnv,
    teacher: &mut dyn Teacher,
    seeds: &[u64],
    test: &Dataset,
) -> Result<Vec<EvaluationRecord>> {
    let label = teacher.name().to_string();
    seeds
        .iter()
        .map(|&seed| evaluate_once(env, teacher, &label, seed, test, 0))
        .collect()
}

/// What [`evaluate_side_by_side`] reports, in a fixed order.
pub(crate) enum Finished<'a> {
    /// A teacher's first seed is in.
    Started(&'a str),
    /// One evaluation episode.
    Record(&'a EvaluationRecord),
}

/// Evaluates every `(label, teacher)` of `jobs` on all `seeds` ([`evaluate_once`]),
/// teachers side by side on up to `task.workers` threads, each with an env of `task`
/// of its own. A teacher's seeds run in order on one thread, exactly as one thread
/// running every teacher in turn would run them, so the records do not depend on the
/// number of workers. `report` sees the records in job order, then seed order, each as
/// soon as it and all before it are in: the run's events and progress read the same
/// for any number of workers.
///
/// The first error (of a job, an env or `report`) is returned, and it stops every
/// worker through one shared flag ([`StopFlag`]): the worker that failed raises it
/// itself, before it reports the error, so no worker (the failed one included) starts
/// another episode once any has failed, and an episode in flight on another worker ends
/// at its teacher's next step ([`Stoppable`]) instead of running to its end. A
/// panicking worker is an error too, never a hang.
pub(crate) fn evaluate_side_by_side(
    task: &TrainingTask,
    jobs: Vec<(String, Box<dyn Teacher>)>,
    seeds: &[u64],
    test: &Dataset,
    test_every: usize,
    mut report: impl FnMut(Finished<'_>) -> Result<()>,
) -> Result<Vec<(String, Vec<EvaluationRecord>)>> {
    use std::sync::{mpsc, Mutex};

    let labels: Vec<String> = jobs.iter().map(|(label, _)| label.clone()).collect();
    let workers = task.workers.clamp(1, jobs.len().max(1));
    let queue = Mutex::new(jobs.into_iter().enumerate().collect::<Vec<_>>());
    let stop = StopFlag {
        cancel: task.cancel.clone(),
        ..StopFlag::default()
    };
    let mut slots: Vec<Vec<Option<EvaluationRecord>>> = vec![vec![None; seeds.len()]; labels.len()];
    let mut first_error: Option<ExperimentError> = None;
    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::channel::<(usize, usize, Result<EvaluationRecord>)>();
        let mut handles = Vec::with_capacity(workers);
        for make_env in task.env_factories(workers) {
            // Tensors are Send, not Sync: every worker gets its own handles on the data.
            let test = test.shallow_clone();
            let (sender, queue, stop) = (sender.clone(), &queue, &stop);
            handles.push(scope.spawn(move || {
                // An error is sent before the flag goes up, so the receiver sees the
                // error that stopped the run before any episode the flag cut short.
                let fail = |j: usize, s: usize, error: ExperimentError| {
                    let _ = sender.send((j, s, Err(error)));
                    stop.raise();
                };
                let mut env = match make_env() {
                    Ok(env) => env,
                    Err(e) => return fail(usize::MAX, 0, e.into()),
                };
                loop {
                    if stop.is_raised() {
                        return;
                    }
                    // Jobs are taken from the front, in order.
                    let next = match queue.lock() {
                        Ok(mut jobs) if !jobs.is_empty() => jobs.remove(0),
                        _ => return,
                    };
                    let (j, (label, mut teacher)) = next;
                    for (s, &seed) in seeds.iter().enumerate() {
                        // Checked before every episode: none starts after a failure.
                        if stop.is_raised() {
                            return;
                        }
                        let mut stoppable = Stoppable {
                            teacher: teacher.as_mut(),
                            stop,
                        };
                        match evaluate_once(
                            &mut env,
                            &mut stoppable,
                            &label,
                            seed,
                            &test,
                            test_every,
                        ) {
                            Ok(record) => {
                                if sender.send((j, s, Ok(record))).is_err() {
                                    return;
                                }
                            }
                            // Cut short by another worker's failure: that error is the
                            // run's, already sent.
                            Err(_) if stop.is_raised() => return,
                            Err(e) => return fail(j, s, e),
                        }
                    }
                }
            }));
        }
        drop(sender);
        let (mut job, mut seed) = (0, 0);
        for (j, s, record) in receiver {
            match record {
                Ok(record) if j < slots.len() => slots[j][s] = Some(record),
                Ok(_) => {}
                Err(e) => {
                    stop.raise();
                    first_error.get_or_insert(e);
                    continue;
                }
            }
            // Report everything that is now complete in job, then seed order.
            while first_error.is_none() && job < slots.len() {
                let Some(record) = &slots[job][seed] else {
                    break;
                };
                let reported = (if seed == 0 {
                    report(Finished::Started(&labels[job]))
                } else {
                    Ok(())
                })
                .and_then(|()| report(Finished::Record(record)));
                if let Err(e) = reported {
                    stop.raise();
                    first_error = Some(e);
                    break;
                }
                seed += 1;
                if seed == seeds.len() {
                    (job, seed) = (job + 1, 0);
                }
            }
        }
        for handle in handles {
            if handle.join().is_err() && first_error.is_none() {
                first_error = Some(ExperimentError::Worker(
                    "an evaluation worker panicked".into(),
                ));
            }
        }
        // Cancelled: every episode that finished is reported (in job, then seed order,
        // past the ones still missing), so the run's log keeps all of them.
        if first_error.is_none() && task.cancel.is_cancelled() {
            let reported = (job..slots.len())
                .flat_map(|j| (if j == job { seed } else { 0 }..seeds.len()).map(move |s| (j, s)))
                .filter_map(|(j, s)| slots[j][s].as_ref())
                .try_for_each(|record| report(Finished::Record(record)));
            first_error = Some(reported.err().unwrap_or(ExperimentError::Interrupted));
        }
    });
    if let Some(e) = first_error {
        return Err(e);
    }
    labels
        .into_iter()
        .zip(slots)
        .map(|(label, records)| {
            let records: Option<Vec<EvaluationRecord>> = records.into_iter().collect();
            records.map(|r| (label.clone(), r)).ok_or_else(|| {
                ExperimentError::Worker(format!(
                    "the evaluation of `{label}` stopped before its last seed"
                ))
            })
        })
        .collect()
}

/// The stop shared by the workers of [`evaluate_side_by_side`]: raised once by the first
/// failure (a worker's own, or the receiver's), or by the run's [`Cancel`] from outside;
/// read before every episode and every step.
#[derive(Debug, Default)]
pub(crate) struct StopFlag {
    raised: std::sync::atomic::AtomicBool,
    cancel: Cancel,
}

impl StopFlag {
    /// Stops every worker: none starts another episode, episodes in flight end at
    /// their teacher's next step.
    pub(crate) fn raise(&self) {
        self.raised
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether the run is stopping (a failure, or the run cancelled).
    pub(crate) fn is_raised(&self) -> bool {
        self.raised.load(std::sync::atomic::Ordering::Acquire) || self.cancel.is_cancelled()
    }
}

/// A teacher that refuses to act once `stop` is raised ([`AgentError::Stopped`]), so an
/// episode in flight when another worker fails ends at its next step: no teacher (a
/// Python one included) is asked for a mask after the run's first error.
struct Stoppable<'a> {
    teacher: &'a mut dyn Teacher,
    stop: &'a StopFlag,
}

impl Stoppable<'_> {
    fn check(&self) -> l2t_agents::Result<()> {
        if self.stop.is_raised() {
            return Err(l2t_agents::AgentError::Stopped(format!(
                "`{}` not asked: another teacher of the run failed",
                self.teacher.name()
            )));
        }
        Ok(())
    }
}

impl Teacher for Stoppable<'_> {
    fn name(&self) -> &str {
        self.teacher.name()
    }

    fn columns(&self) -> Vec<String> {
        self.teacher.columns()
    }

    fn act(
        &mut self,
        observation: &l2t_envs::TeachingObservation,
        info: &l2t_envs::TeachingInfo,
    ) -> l2t_agents::Result<l2t_agents::KeepMask> {
        self.check()?;
        self.teacher.act(observation, info)
    }

    fn observe(&mut self, reward: f64, done: bool) -> l2t_agents::Result<()> {
        self.check()?;
        self.teacher.observe(reward, done)
    }
}
