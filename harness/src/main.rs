//! `harness`: thin entry point. All the work is in [`harness::cli::run`].

fn main() {
    if let Err(err) = harness::cli::run() {
        // One clear line (plus its causes), a non-zero exit, never a panic.
        eprintln!("error: {err}");
        for cause in err.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
        std::process::exit(1);
    }
}
