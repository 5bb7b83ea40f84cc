//! Every variant, fed the same real capture through the replay driver's
//! emulated rings (each on its own transport), produces the same classified
//! output: the same multiset of (path, syscall, category), nothing lost.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use harness::capture::Capture;
use harness::classify::Classifier;
use harness::pipeline::memory::MemorySink;
use harness::pipeline::replayed::run_replayed;
use harness::pipeline::VARIANTS;
use harness::replay::{Bound, Pacing, ReplayOptions};
use harness::sink::message::decode_events;

type Output = BTreeMap<(Vec<u8>, u8, u8), u64>;

fn check_capture(file: &str) {
    let capture = Capture::load(&support::fixture(file)).unwrap();
    let samples = capture.samples() as u64;
    let classifier = Arc::new(Classifier::default_rules());
    let mut reference: Option<(&str, Output)> = None;
    for v in VARIANTS {
        // As fast as possible into rings big enough for the whole capture
        // (64 MiB per ring > 12 k x 4148 B = 50 MB): nothing can be lost, so
        // every variant must see every sample.
        let opts = ReplayOptions {
            pacing: Pacing::Max,
            bound: Bound::Loops(1),
            transport: Some(v.transport),
            ring_bytes: Some(64 << 20),
            rings: None,
            wakeup: None,
            stop_at_loss: None,
            co_runner: None,
        };
        let sink = Arc::new(MemorySink::new());
        let r = run_replayed(
            v,
            (v.knobs)(),
            &capture,
            &opts,
            classifier.clone(),
            sink.clone(),
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(
            r.ledger.is_balanced(),
            "{file} {}: {:?}",
            v.name,
            r.ledger.check()
        );
        assert_eq!(r.replay.lost, 0, "{file} {}", v.name);
        assert_eq!(r.run.stages.produced, samples, "{file} {}", v.name);
        let mut out = Output::new();
        for (_, value) in sink.take() {
            for d in decode_events(&value).unwrap() {
                *out.entry((d.path.to_vec(), d.syscall, d.category as u8))
                    .or_default() += 1;
            }
        }
        match &reference {
            None => reference = Some((v.name, out)),
            Some((name, r)) => assert!(*r == out, "{file}: {name} and {} differ", v.name),
        }
    }
}

#[test]
fn all_variants_agree_on_the_fixed4k_capture() {
    check_capture("fixed4k-perf.pcapng");
}

#[test]
fn all_variants_agree_on_the_compact_capture() {
    check_capture("compact-perf.pcapng");
}
