//! What the privileged probe tests share.

use probes::loader::check_privileges;

/// Whether this process may load BPF (root, or CAP_BPF + CAP_PERFMON);
/// otherwise the test skips, said on stderr, except under `CI=true`, where a
/// skip is a failure.
pub fn privileged() -> bool {
    match check_privileges() {
        Ok(()) => true,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but the privileged test cannot run: {e}")
        }
        Err(e) => {
            eprintln!("skipping privileged test: {e}");
            false
        }
    }
}
