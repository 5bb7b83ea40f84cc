//! What the probe tests share: the one privilege guard, the one rule for
//! skipping, and the readers' drain loops. Each test file takes the parts it
//! uses (`mod support;`), so the rest is dead code there.
//!
//! # Privileged tests
//! A test that needs root and eBPF is annotated
//! `#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]`
//! and calls [`require_bpf`] first. Plain `cargo test` lists it as ignored;
//! `cargo test -p probes --features privileged-tests` (as root) runs it, and
//! then a process that cannot load BPF fails it: the tests were asked for.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use probes::loader::check_privileges;
use probes::record::{Batch, RecordRef, RecordSource};

/// Panics unless this process may load BPF (root, or CAP_BPF + CAP_PERFMON).
/// Privileged tests run only when asked for (the `privileged-tests` feature,
/// or `--ignored`), so not being able to run them is a failure, never a skip.
pub fn require_bpf() {
    if let Err(e) = check_privileges() {
        panic!(
            "privileged test asked for (feature `privileged-tests` or --ignored), \
             but this process cannot load BPF: {e}"
        );
    }
}

/// Something a test needs is missing from the machine: a kernel feature (the
/// one reason a privileged test may skip), or for the unprivileged
/// object check, clang. Under `CI=true` that is a failure (this panics);
/// elsewhere it is said on stderr, and the caller returns.
pub fn skip_missing(what: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true, so this test may not skip: {what}");
    }
    eprintln!("skipping: {what}");
}

/// Records a source handed out: samples (in the order read) and lost
/// counts, per ring.
#[derive(Debug, Default)]
pub struct Drained {
    pub samples: BTreeMap<u32, Vec<Vec<u8>>>,
    pub lost: BTreeMap<u32, u64>,
}

impl Drained {
    pub fn add(&mut self, r: RecordRef<'_>) {
        match r {
            RecordRef::Sample { ring, data, .. } => {
                self.samples.entry(ring).or_default().push(data.to_vec())
            }
            RecordRef::Lost { ring, count } => *self.lost.entry(ring).or_default() += count,
        }
    }

    /// Every sample, ring by ring.
    pub fn into_samples(self) -> Vec<Vec<u8>> {
        self.samples.into_values().flatten().collect()
    }

    pub fn lost_total(&self) -> u64 {
        self.lost.values().sum()
    }
}

/// Reads what `src` holds now: reads until one hands out no records, and
/// returns that one's result ([`Batch::Idle`], or [`Batch::Closed`] once the
/// source is stopped and empty).
pub fn read_available(src: &mut dyn RecordSource, f: &mut dyn FnMut(RecordRef<'_>)) -> Batch {
    loop {
        let b = src.read_batch(4096, Duration::from_millis(20), f).unwrap();
        if !matches!(b, Batch::Records(_)) {
            return b;
        }
    }
}

/// Reads `src` until it closes (set its stop flag first).
pub fn drain(src: &mut dyn RecordSource) -> Drained {
    let mut d = Drained::default();
    while read_available(src, &mut |r| d.add(r)) != Batch::Closed {}
    d
}
