//! `harness`: thin entry point. All the work is in [`harness::cli::run`].

fn main() {
    // Writing into a closed pipe (`harness inspect x | head`) ends the process
    // quietly, as it does for other command-line tools, instead of a panic
    // from the standard library's print macros.
    // SAFETY: resetting a signal disposition to its default at start-up, before any thread.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    if let Err(err) = harness::cli::run() {
        // One clear line (plus its causes), a non-zero exit, never a panic.
        let top = err.to_string();
        eprintln!("error: {top}");
        // Causes already quoted in the message (thiserror's `{source}`) are not repeated.
        for cause in err.chain().skip(1) {
            let c = cause.to_string();
            if !top.contains(&c) {
                eprintln!("  caused by: {c}");
            }
        }
        std::process::exit(harness::cli::exit_code(&err));
    }
}
