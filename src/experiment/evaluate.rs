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
/// for any number of workers. The first error (of a job, an env or `report`) stops
/// the workers before their next episode and is returned; a panicking worker is an
/// error too, never a hang.
pub(crate) fn evaluate_side_by_side(
    task: &TrainingTask,
    jobs: Vec<(String, Box<dyn Teacher>)>,
    seeds: &[u64],
    test: &Dataset,
    test_every: usize,
    mut report: impl FnMut(Finished<'_>) -> Result<()>,
) -> Result<Vec<(String, Vec<EvaluationRecord>)>> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Mutex};

    let labels: Vec<String> = jobs.iter().map(|(label, _)| label.clone()).collect();
    let workers = task.workers.clamp(1, jobs.len().max(1));
    let queue = Mutex::new(jobs.into_iter().enumerate().collect::<Vec<_>>());
    let stop = AtomicBool::new(false);
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
                let mut env = match make_env() {
                    Ok(env) => env,
                    Err(e) => {
                        let _ = sender.send((usize::MAX, 0, Err(e.into())));
                        return;
                    }
                };
                loop {
                    // Jobs are taken from the front, in order.
                    let next = match queue.lock() {
                        Ok(mut jobs) if !jobs.is_empty() => jobs.remove(0),
                        _ => return,
                    };
                    let (j, (label, mut teacher)) = next;
                    for (s, &seed) in seeds.iter().enumerate() {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let record = evaluate_once(
                            &mut env,
                            teacher.as_mut(),
                            &label,
                            seed,
                            &test,
                            test_every,
                        );
                        if sender.send((j, s, record)).is_err() {
                            return;
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
                    stop.store(true, Ordering::Relaxed);
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
                    stop.store(true, Ordering::Relaxed);
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
