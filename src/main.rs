//! The `l2t` command: train teachers, evaluate and compare them, reproduce the paper's
//! experiments from presets. Its body is the library's [`l2t::cli`], which the Python
//! wheel's `l2t` console script runs too; this binary installs the SIGINT handler
//! (Ctrl-C stops the run at its next safe point and exits with 130) and runs it.

fn main() -> std::process::ExitCode {
    // `l2t list | head`: a closed pipe ends the command quietly, as it ends other Unix
    // tools, instead of a panic in `println!` (Rust's runtime ignores SIGPIPE).
    #[cfg(unix)]
    // SAFETY: restores the default disposition before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cancel = l2t::cli::install_sigint_handler();
    let status = l2t::cli::main_with_args(std::env::args_os(), &cancel);
    std::process::ExitCode::from(u8::try_from(status).unwrap_or(1))
}
