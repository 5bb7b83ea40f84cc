//! The ledger: every sample of a run accounted for, stage by stage.
//!
//! These must hold for a run to be valid:
//! 1. kernel emitted = ring accepted + lost;
//! 2. ring accepted = read (the pipeline drained everything the ring took);
//! 3. lost = lost reported to the pipeline by lost markers (+ drops the ring
//!    had not reported yet when the run ended);
//! 4. read = decoded + decode errors;
//! 5. decoded = classified;
//! 6. classified = produced + dropped (by reason);
//! 7. produced = accepted by the sink;
//! 8. sink accepted = delivered + failed (delivery reports), none unresolved;
//! 9. read back from the sink's storage (Kafka topic, file) = delivered, in
//!    count and in checksum.
//!
//! A run whose ledger does not balance is invalid; [`Ledger::check`] lists
//! every broken equation with its numbers, and [`Ledger::banner`] is the loud
//! message callers print.

use std::collections::BTreeMap;

use crate::sink::{DropReason, SinkReport};

/// What the kernel (or the emulated ring) says it did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct KernelCounts {
    /// Samples the probe tried to output.
    pub emitted: u64,
    /// Samples the ring took.
    pub accepted: u64,
    /// Samples the ring refused (full).
    pub lost: u64,
    /// Of `lost`, drops the ring had not yet reported with a lost marker when
    /// the run ended (perf reports a loss only once it has room for the record).
    pub lost_unreported: u64,
}

/// The pipeline's counts at every stage. Each thread keeps its own and they
/// are summed with [`StageCounts::add`] at the end, so counting costs no
/// shared-memory traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct StageCounts {
    /// Samples handed to the pipeline by the source.
    pub read: u64,
    /// Lost-marker records seen.
    pub lost_markers: u64,
    /// Sum of the lost counts those markers carried.
    pub lost_reported: u64,
    pub decoded: u64,
    pub decode_errors: u64,
    pub classified: u64,
    pub produced: u64,
    pub dropped: BTreeMap<DropReason, u64>,
}

impl StageCounts {
    pub fn add(&mut self, o: &StageCounts) {
        self.read += o.read;
        self.lost_markers += o.lost_markers;
        self.lost_reported += o.lost_reported;
        self.decoded += o.decoded;
        self.decode_errors += o.decode_errors;
        self.classified += o.classified;
        self.produced += o.produced;
        for (r, n) in &o.dropped {
            *self.dropped.entry(*r).or_default() += n;
        }
    }

    pub fn drop_one(&mut self, reason: DropReason) {
        *self.dropped.entry(reason).or_default() += 1;
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }
}

/// One equation that does not hold.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Imbalance {
    /// Which equation, e.g. "classified = produced + dropped".
    pub check: &'static str,
    /// Both sides with their numbers.
    pub detail: String,
}

/// All the counts of one run. Results files carry it as JSON
/// (`{"kernel": ..., "stages": ..., "sink": ...}`); a missing count reads as 0.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Ledger {
    /// `None` when the source cannot say (then checks 1-3 are skipped and
    /// reported as such by [`Ledger::unchecked`]).
    pub kernel: Option<KernelCounts>,
    pub stages: StageCounts,
    pub sink: SinkReport,
}

impl Ledger {
    /// Every equation that does not hold; empty means balanced.
    pub fn check(&self) -> Vec<Imbalance> {
        let mut out = Vec::new();
        let mut eq = |check: &'static str, lhs: u64, rhs: u64, detail: String| {
            if lhs != rhs {
                out.push(Imbalance { check, detail });
            }
        };
        let s = &self.stages;
        if let Some(k) = self.kernel {
            eq(
                "kernel emitted = ring accepted + lost",
                k.emitted,
                k.accepted + k.lost,
                format!("{} != {} + {}", k.emitted, k.accepted, k.lost),
            );
            eq(
                "ring accepted = read",
                k.accepted,
                s.read,
                format!("{} accepted, {} read", k.accepted, s.read),
            );
            eq(
                "lost = lost reported by markers",
                k.lost,
                s.lost_reported + k.lost_unreported,
                format!(
                    "{} lost, {} reported + {} not yet reported at the end",
                    k.lost, s.lost_reported, k.lost_unreported
                ),
            );
        }
        eq(
            "read = decoded + decode errors",
            s.read,
            s.decoded + s.decode_errors,
            format!("{} != {} + {}", s.read, s.decoded, s.decode_errors),
        );
        eq(
            "decoded = classified",
            s.decoded,
            s.classified,
            format!("{} != {}", s.decoded, s.classified),
        );
        eq(
            "classified = produced + dropped",
            s.classified,
            s.produced + s.dropped_total(),
            format!(
                "{} != {} + {} ({:?})",
                s.classified,
                s.produced,
                s.dropped_total(),
                s.dropped
            ),
        );
        let k = &self.sink;
        eq(
            "produced = accepted by the sink",
            s.produced,
            k.accepted,
            format!("{} produced, sink accepted {}", s.produced, k.accepted),
        );
        eq(
            "sink accepted = delivered + failed",
            k.accepted,
            k.delivered + k.failed,
            format!(
                "{} != {} + {} ({} with no delivery report)",
                k.accepted, k.delivered, k.failed, k.unresolved
            ),
        );
        if let Some(e) = &k.read_back_error {
            out.push(Imbalance {
                check: "read back = delivered",
                detail: format!("could not read the sink back: {e}"),
            });
        }
        if let Some(rb) = &k.read_back {
            let mut eq = |check: &'static str, lhs: u64, rhs: u64, detail: String| {
                if lhs != rhs {
                    out.push(Imbalance { check, detail });
                }
            };
            eq(
                "read back = delivered",
                rb.events,
                k.delivered,
                format!("{} read back, {} delivered", rb.events, k.delivered),
            );
            eq(
                "read-back checksum = delivered checksum",
                rb.crc_sum,
                k.delivered_crc_sum,
                format!("{:#x} != {:#x}", rb.crc_sum, k.delivered_crc_sum),
            );
        }
        out
    }

    pub fn is_balanced(&self) -> bool {
        self.check().is_empty()
    }

    /// Equations this run could not check, and why.
    pub fn unchecked(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.kernel.is_none() {
            v.push("kernel/ring counts: the source does not report them");
        }
        if self.sink.read_back.is_none() && self.sink.read_back_error.is_none() {
            v.push("read back: the sink keeps nothing to read back");
        }
        v
    }

    /// A multi-line, loud message for an unbalanced ledger; `None` if balanced.
    pub fn banner(&self) -> Option<String> {
        let bad = self.check();
        if bad.is_empty() {
            return None;
        }
        let mut s = String::from(
            "!!! LEDGER DOES NOT BALANCE: THIS RUN IS INVALID, samples are unaccounted for !!!\n",
        );
        for b in bad {
            s.push_str(&format!("  {}: {}\n", b.check, b.detail));
        }
        Some(s)
    }

    /// A compact table of every count, for terminal output.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if let Some(k) = self.kernel {
            s.push_str(&format!(
                "kernel  emitted {}  accepted {}  lost {}\n",
                k.emitted, k.accepted, k.lost
            ));
        }
        let st = &self.stages;
        s.push_str(&format!(
            "pipeline read {}  lost-reported {}  decoded {}  decode-errors {}  classified {}  produced {}  dropped {}\n",
            st.read, st.lost_reported, st.decoded, st.decode_errors, st.classified, st.produced, st.dropped_total()
        ));
        for (r, n) in &st.dropped {
            s.push_str(&format!("  dropped {}: {n}\n", r.name()));
        }
        let k = &self.sink;
        s.push_str(&format!(
            "sink    {}: accepted {}  delivered {}  failed {}  unresolved {}\n",
            k.label, k.accepted, k.delivered, k.failed, k.unresolved
        ));
        for (e, n) in &k.failed_by_error {
            s.push_str(&format!("  failed: {e}: {n}\n"));
        }
        match (&k.read_back, &k.read_back_error) {
            (Some(rb), _) => s.push_str(&format!(
                "read back {} messages, checksum {:#x} (delivered {:#x})\n",
                rb.events, rb.crc_sum, k.delivered_crc_sum
            )),
            (None, Some(e)) => s.push_str(&format!("read back FAILED: {e}\n")),
            (None, None) => {}
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::ReadBack;

    /// 1000 emitted, 900 accepted, 100 lost; 2 decode errors; 10 dropped on a
    /// full queue; of 888 produced, 880 delivered and 8 failed.
    fn balanced() -> Ledger {
        let mut dropped = BTreeMap::new();
        dropped.insert(DropReason::QueueFull, 10);
        Ledger {
            kernel: Some(KernelCounts {
                emitted: 1000,
                accepted: 900,
                lost: 100,
                lost_unreported: 0,
            }),
            stages: StageCounts {
                read: 900,
                lost_markers: 3,
                lost_reported: 100,
                decoded: 898,
                decode_errors: 2,
                classified: 898,
                produced: 888,
                dropped,
            },
            sink: SinkReport {
                label: "test".into(),
                accepted: 888,
                delivered: 880,
                failed: 8,
                delivered_crc_sum: 0xabc,
                read_back: Some(ReadBack {
                    events: 880,
                    crc_sum: 0xabc,
                }),
                ..Default::default()
            },
        }
    }

    #[test]
    fn a_balanced_ledger_passes() {
        let l = balanced();
        assert_eq!(l.check(), vec![]);
        assert!(l.banner().is_none());
        assert!(l.unchecked().is_empty());
    }

    #[test]
    fn every_broken_equation_is_named() {
        type Breaker = Box<dyn Fn(&mut Ledger)>;
        let cases: Vec<(&str, Breaker)> = vec![
            (
                "kernel emitted = ring accepted + lost",
                Box::new(|l| l.kernel.as_mut().unwrap().emitted += 1),
            ),
            (
                "ring accepted = read",
                Box::new(|l| {
                    l.stages.read -= 1;
                    l.stages.decoded -= 1;
                    l.stages.classified -= 1;
                    l.stages.produced -= 1;
                    l.sink.accepted -= 1;
                    l.sink.delivered -= 1;
                    l.sink.read_back.as_mut().unwrap().events -= 1;
                }),
            ),
            (
                "lost = lost reported by markers",
                Box::new(|l| l.stages.lost_reported = 99),
            ),
            (
                "read = decoded + decode errors",
                Box::new(|l| l.stages.decode_errors = 1),
            ),
            (
                "decoded = classified",
                Box::new(|l| {
                    l.stages.decoded += 1;
                    l.stages.decode_errors -= 1;
                }),
            ),
            (
                "classified = produced + dropped",
                Box::new(|l| {
                    l.stages.dropped.insert(DropReason::Rejected, 1);
                }),
            ),
            (
                "produced = accepted by the sink",
                Box::new(|l| {
                    l.sink.accepted += 1;
                    l.sink.failed += 1;
                }),
            ),
            (
                "sink accepted = delivered + failed",
                Box::new(|l| {
                    l.sink.failed -= 1;
                    l.sink.unresolved = 1;
                }),
            ),
            (
                "read back = delivered",
                Box::new(|l| l.sink.read_back.as_mut().unwrap().events -= 1),
            ),
            (
                "read back = delivered",
                Box::new(|l| {
                    l.sink.read_back = None;
                    l.sink.read_back_error = Some("broker gone".into());
                }),
            ),
            (
                "read-back checksum = delivered checksum",
                Box::new(|l| l.sink.read_back.as_mut().unwrap().crc_sum ^= 1),
            ),
        ];
        for (want, break_it) in cases {
            let mut l = balanced();
            break_it(&mut l);
            let bad = l.check();
            assert_eq!(bad.len(), 1, "{want}: {bad:?}");
            assert_eq!(bad[0].check, want);
            let banner = l.banner().unwrap();
            assert!(
                banner.contains("INVALID") && banner.contains(want),
                "{banner}"
            );
        }
    }

    #[test]
    fn sums_of_per_thread_counts() {
        let mut a = balanced().stages;
        let b = balanced().stages;
        a.add(&b);
        assert_eq!(a.read, 1800);
        assert_eq!(a.dropped[&DropReason::QueueFull], 20);
        assert_eq!(a.dropped_total(), 20);
    }

    #[test]
    fn missing_sources_are_reported_unchecked() {
        let mut l = balanced();
        l.kernel = None;
        l.sink.read_back = None;
        assert!(l.is_balanced());
        assert_eq!(l.unchecked().len(), 2);
    }

    #[test]
    fn the_ledger_reads_back_from_the_json_results_have_always_held() {
        // As a results file from before the ledger was typed holds it.
        let old = r#"{"kernel":{"emitted":10,"accepted":8,"lost":2,"lost_unreported":0},
            "stages":{"read":8,"lost_markers":1,"lost_reported":2,"decoded":8,"decode_errors":0,
                      "classified":8,"produced":7,"dropped":{"queue_full":1}},
            "sink":{"label":"null","accepted":7,"delivered":7,"failed":0,"failed_by_error":{},
                    "unresolved":0,"delivered_crc_sum":5,"read_back":null,"read_back_error":null}}"#;
        let l: Ledger = serde_json::from_str(old).unwrap();
        assert_eq!(l.kernel.unwrap().lost, 2);
        assert_eq!(l.stages.dropped[&DropReason::QueueFull], 1);
        assert_eq!(l.sink.delivered, 7);
        assert!(l.is_balanced(), "{:?}", l.check());
        // Written back, it is the same JSON.
        let again: serde_json::Value = serde_json::to_value(&l).unwrap();
        let old: serde_json::Value = serde_json::from_str(old).unwrap();
        assert_eq!(again, old);
    }
}
