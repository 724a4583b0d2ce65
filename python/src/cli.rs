//! The `l2t` command inside Python: the wheel's `l2t` console script (`l2t._cli:main`)
//! calls [`cli`], which runs the Rust CLI ([`l2t::cli::main_with_args`]), the same code
//! as the `l2t` binary, so a wheel user has the command without a Rust toolchain.

use std::ffi::OsString;
use std::io::Write;

use pyo3::prelude::*;

use l2t::experiment::Cancel;

use crate::interrupt::{run_interruptible, SecondInterrupt};

/// Runs the `l2t` command with `args` (the arguments after the program name, as
/// `sys.argv[1:]`) and returns its exit status (0, 1 for a failed command, 2 for refused
/// arguments, 130 when Ctrl-C stopped it). The command runs with the GIL released;
/// Ctrl-C (a `KeyboardInterrupt` pending in Python) stops its run at the next safe
/// point as SIGINT stops the binary, and a second Ctrl-C exits the process at once.
#[pyfunction]
pub(crate) fn cli(py: Python<'_>, args: Vec<OsString>) -> i32 {
    let cancel = Cancel::default();
    let argv: Vec<OsString> = std::iter::once(OsString::from("l2t")).chain(args).collect();
    let (status, _interrupt) = run_interruptible(py, &cancel, SecondInterrupt::Exit, || {
        l2t::cli::main_with_args(argv, &cancel)
    });
    // Rust's stdout is its own buffer, which Python's exit does not flush.
    let _ = std::io::stdout().flush();
    // The interrupt is reported as the command's status 130 (main_with_args saw the
    // cancel), not raised: the console script exits with it as the binary does.
    status.unwrap_or_else(|_| {
        eprintln!("l2t: the command panicked");
        101
    })
}
