//! The steady-state verdict on real trials: a pipeline made slower on purpose
//! (through a knob) loses nothing in a short trial, because the ring takes up
//! the slack, and must still fail it; the same pipeline well under its
//! capacity must pass.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use harness::capture::Capture;
use harness::classify::Classifier;
use harness::experiment::trial::{run_trial, RateShape, TrialSetup};
use harness::experiment::verdict::{VerdictKind, VerdictRule};
use harness::replay::Wakeup;
use harness::sink::{NullSink, SinkSpec};
use probes::abi::Layout;
use probes::Transport;

fn compact_capture(dir: &Path) -> Capture {
    let fixed = Capture::load(&support::fixture("fixed4k-perf.pcapng")).unwrap();
    harness::experiment::relayout::relayout(&fixed, Layout::Compact, dir).unwrap()
}

#[test]
fn a_pipeline_slower_than_the_offer_fails_even_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let cap = compact_capture(dir.path());
    let variant = harness::pipeline::variant("compact").unwrap();
    // 100 us of extra work per event on one ring: at most 10 k events/s.
    let knobs = harness::pipeline::Knobs {
        extra_work: Duration::from_micros(100),
        ..(variant.knobs)()
    };
    let sink_spec = SinkSpec::Null;
    let setup = TrialSetup {
        variant,
        knobs,
        capture: &cap,
        transport: Transport::Perf,
        // 32 MiB holds ~200 k compact records: a 1 s trial at 40 k/s builds a
        // 30 k backlog and loses nothing.
        ring_bytes: 32 << 20,
        rings: Some(1),
        wakeup: Wakeup::Events(64),
        sink: &sink_spec,
        classifier: Arc::new(Classifier::default_rules()),
        // The producer's lateness is not what this test is about (on a busy
        // machine the spinning reader can delay it): allow up to 100 ms.
        rule: VerdictRule {
            warmup_ns: 200_000_000,
            window_ns: 800_000_000,
            max_lateness_ns: 100_000_000,
            ..VerdictRule::default()
        },
        shape: RateShape::Uniform,
        stop_at_loss: None,
    };

    let over = run_trial(&setup, 40_000.0, Arc::new(NullSink::new())).unwrap();
    assert_eq!(over.run.lost_anywhere(), 0, "the ring took up the slack");
    assert!(
        over.run.ledger.check().is_empty(),
        "{:?}",
        over.run.ledger.check()
    );
    assert!(
        matches!(
            over.verdict.kind,
            VerdictKind::Behind | VerdictKind::BacklogGrowing
        ),
        "{:?}: {}",
        over.verdict.kind,
        over.verdict.reason
    );
    assert!(
        over.verdict.window.done_per_s < 0.5 * over.verdict.window.intake_per_s,
        "{:?}",
        over.verdict.window
    );

    let under = run_trial(&setup, 3_000.0, Arc::new(NullSink::new())).unwrap();
    assert_eq!(
        under.verdict.kind,
        VerdictKind::Clean,
        "{}",
        under.verdict.reason
    );
    assert!(
        under.verdict.window.points >= 40,
        "{:?}",
        under.verdict.window
    );
}
