//! How a traced command ended (`harness live --run`, `harness fidelity`):
//! kept in a live trial's results, since a failed or short run is reported
//! and not judged.

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommandOutcome {
    pub command: String,
    /// The exit code, or `None` when a signal ended it.
    pub exit_code: Option<i32>,
    /// Wall time from spawn to exit, ns.
    pub ran_ns: u64,
    /// The command was stopped at the time limit.
    pub timed_out: bool,
    /// The last line the command wrote to stderr, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_tail: Option<String>,
}

impl CommandOutcome {
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }

    /// Why a trial of this run cannot be judged: a failed command, or one
    /// that ran shorter than `needed_ns` (the warm-up plus the window).
    pub fn unjudged_reason(&self, needed_ns: u64) -> Option<String> {
        let tail = self
            .stderr_tail
            .as_deref()
            .map(|t| format!(" ({t})"))
            .unwrap_or_default();
        if self.timed_out {
            return Some(format!(
                "`{}` was stopped at the time limit after {:.2} s",
                self.command,
                self.ran_ns as f64 / 1e9
            ));
        }
        match self.exit_code {
            Some(0) => {}
            Some(c) => return Some(format!("`{}` exited with status {c}{tail}", self.command)),
            None => return Some(format!("`{}` was killed by a signal{tail}", self.command)),
        }
        (self.ran_ns < needed_ns).then(|| {
            format!(
                "`{}` ran {:.0} ms, shorter than the warm-up and window ({:.0} ms)",
                self.command,
                self.ran_ns as f64 / 1e6,
                needed_ns as f64 / 1e6
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(code: Option<i32>, ran_ms: u64) -> CommandOutcome {
        CommandOutcome {
            command: "du -s /usr".into(),
            exit_code: code,
            ran_ns: ran_ms * 1_000_000,
            timed_out: false,
            stderr_tail: None,
        }
    }

    #[test]
    fn failed_or_short_commands_are_not_judged_and_say_why() {
        assert_eq!(outcome(Some(0), 2000).unjudged_reason(1_250_000_000), None);
        let short = outcome(Some(0), 300)
            .unjudged_reason(1_250_000_000)
            .unwrap();
        assert!(
            short.contains("ran 300 ms") && short.contains("1250 ms"),
            "{short}"
        );
        let mut failed = outcome(Some(3), 2000);
        failed.stderr_tail = Some("du: cannot access 'x'".into());
        let why = failed.unjudged_reason(0).unwrap();
        assert!(
            why.contains("status 3") && why.contains("cannot access"),
            "{why}"
        );
        assert!(outcome(None, 2000)
            .unjudged_reason(0)
            .unwrap()
            .contains("signal"));
        let mut late = outcome(Some(0), 9000);
        late.timed_out = true;
        assert!(late.unjudged_reason(0).unwrap().contains("time limit"));
        assert!(!late.succeeded());
    }
}
