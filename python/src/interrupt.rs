//! Long Rust work called from Python that Ctrl-C can stop: the work runs on a thread of
//! its own while the calling thread waits with the GIL released and takes it every
//! 100 ms to run Python's signal handlers (`check_signals` runs them on the main thread
//! only). A `KeyboardInterrupt` they raise cancels the work's [`Cancel`], which stops it
//! at its next safe point. `l2t.compare`, `l2t.train` and the `l2t` console script share
//! this one implementation.

use pyo3::prelude::*;

use l2t::experiment::Cancel;

/// What a second `KeyboardInterrupt` does while the cancelled work is still stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecondInterrupt {
    /// Nothing: the work stops at its next safe point, then the first one is raised.
    Wait,
    /// The process exits at once with status 130, as the `l2t` binary on a second SIGINT.
    Exit,
}

/// Runs `work` on its own thread and waits for it as the module doc says; returns its
/// result (`Err` if it panicked) and the first exception Python's signal handlers raised
/// (after which `cancel` was cancelled), for the caller to raise once the work stopped.
pub(crate) fn run_interruptible<T: Send>(
    py: Python<'_>,
    cancel: &Cancel,
    second: SecondInterrupt,
    work: impl FnOnce() -> T + Send,
) -> (std::thread::Result<T>, Option<PyErr>) {
    let mut interrupted: Option<PyErr> = None;
    let result = std::thread::scope(|scope| {
        let worker = scope.spawn(work);
        loop {
            let finished = py.detach(|| {
                for _ in 0..10 {
                    if worker.is_finished() {
                        return true;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                worker.is_finished()
            });
            if finished {
                break;
            }
            if interrupted.is_none() || second == SecondInterrupt::Exit {
                if let Err(signal) = py.check_signals() {
                    if interrupted.is_some() {
                        eprintln!("l2t: interrupted twice: exiting at once");
                        std::process::exit(l2t::cli::EXIT_INTERRUPTED);
                    }
                    cancel.cancel();
                    interrupted = Some(signal);
                }
            }
        }
        worker.join()
    });
    (result, interrupted)
}
