//! Every pipeline variant, run on the same events, produces the same classified
//! output: the same multiset of (path, syscall, category), and a balanced ledger.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use harness::classify::Classifier;
use harness::ledger::{KernelCounts, Ledger};
use harness::pipeline::memory::{MemoryRecord, MemorySink, MemorySource};
use harness::pipeline::{Context, Input, Knobs, VARIANTS};
use harness::sink::message::decode_events;
use harness::sink::Sink;
use probes::abi::{EventHeader, Kind, Layout, Syscall};
use probes::record::ShardedSource;
use support::events::{encode, header};

const PATHS: &[&str] = &[
    "/etc/shadow",
    "/etc/passwd",
    "/home/alice/.ssh/id_ed25519",
    "/home/bob/.bash_history",
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/usr/bin/ls",
    "/proc/self/status",
    "/proc/4242/environ",
    "/tmp/cc8xYz.o",
    "/var/log/syslog",
    "/srv/app/.env",
    "/work/project/src/main.rs",
    "relative/file.txt",
    "/opt/\u{e9}t\u{e9}/caf\u{e9}.txt",
];

/// `n` events over `rings` rings in `layout`, with two undecodable records and
/// lost markers sprinkled in. Deterministic.
fn events(layout: Layout, rings: usize, n: usize) -> Vec<Vec<MemoryRecord>> {
    let mut out = vec![Vec::new(); rings];
    let mut buf = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut path = PATHS[(x % PATHS.len() as u64) as usize].as_bytes().to_vec();
        if i % 5 == 0 {
            // Unique paths too, and a non-UTF-8 byte now and then.
            path.extend_from_slice(format!("/n{i}").as_bytes());
            if i % 35 == 0 {
                path.push(0xff);
            }
        }
        let syscall = Syscall::ALL[(x >> 8) as usize % Syscall::ALL.len()];
        let kind = if i % 50 == 49 {
            Kind::Exit
        } else {
            Kind::Enter
        };
        let (pid, tid) = (1000 + (i % 7) as u32, 2000 + (i % 11) as u32);
        let h = EventHeader {
            flags: [0, 0o1, 0o2, 0o101, 0o2000000][(x >> 16) as usize % 5],
            dfd: -100,
            ..header(i as u64, pid, tid, syscall, kind)
        };
        encode(&mut buf, layout, None, &h, &path);
        let ring = i % rings;
        out[ring].push(MemoryRecord::Sample(buf.clone()));
        if i % 997 == 0 {
            out[ring].push(MemoryRecord::Lost(3));
        }
    }
    out[0].push(MemoryRecord::Sample(vec![1, 2, 3]));
    out[rings - 1].push(MemoryRecord::Sample(vec![0; 60]));
    out
}

type Output = BTreeMap<(Vec<u8>, u8, u8), u64>;

fn run(variant: &harness::pipeline::Variant, knobs: Knobs) -> (Output, Ledger) {
    let src = MemorySource::new(events(variant.layout, 2, 3000));
    let (samples, lost) = src.totals();
    let input = if variant.sharded {
        Input::Shards(Box::new(src).into_shards())
    } else {
        Input::Single(Box::new(src))
    };
    let sink = Arc::new(MemorySink::new());
    let ctx = Context::new(Arc::new(Classifier::default_rules()), sink.clone());
    let report = (variant.build)(knobs).run(input, &ctx).unwrap();
    let ledger = Ledger {
        kernel: Some(KernelCounts {
            emitted: samples + lost,
            accepted: samples,
            lost,
            lost_unreported: 0,
        }),
        stages: report.stages,
        sink: sink.finish(Duration::from_secs(1)).unwrap(),
    };
    let mut out = Output::new();
    for (_, v) in sink.take() {
        for d in decode_events(&v).unwrap() {
            *out.entry((d.path.to_vec(), d.syscall, d.category as u8))
                .or_default() += 1;
        }
    }
    (out, ledger)
}

#[test]
fn all_variants_produce_the_same_classified_multiset() {
    let mut reference: Option<(String, Output)> = None;
    // Every variant as it is, then packing 5 events a message (seed-baseline
    // does not batch messages: the same output either way).
    for (v, message_events) in VARIANTS
        .iter()
        .map(|v| (v, 1))
        .chain(VARIANTS.iter().map(|v| (v, 5)))
    {
        let name = format!("{} message_events={message_events}", v.name);
        let name = name.as_str();
        // Small batches and channels so hand-offs and pool recycling happen often.
        let knobs = Knobs {
            workers: 3,
            channel_depth: 2,
            batch_size: 7,
            message_events,
            ..(v.knobs)()
        };
        let (out, ledger) = run(v, knobs);
        assert!(ledger.is_balanced(), "{name}: {:?}", ledger.check());
        assert_eq!(ledger.stages.decode_errors, 2, "{name}");
        // Markers at events 0, 997, 1994 and 2991, 3 each.
        assert_eq!(ledger.stages.lost_reported, 12, "{name}");
        assert_eq!(out.values().sum::<u64>(), 3000, "{name}");
        if message_events > 1 && v.name != "seed-baseline" {
            assert!(
                ledger.sink.messages < 3000,
                "{name}: {} messages",
                ledger.sink.messages
            );
        }
        // Several categories, not everything unmatched.
        assert!(
            out.keys()
                .map(|k| k.2)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                >= 8,
            "{name}"
        );
        match &reference {
            None => reference = Some((name.to_string(), out)),
            Some((first, r)) => assert!(*r == out, "{first} and {name} differ"),
        }
    }
}

#[test]
fn bad_knobs_are_a_clear_error() {
    for v in VARIANTS {
        let knobs = Knobs {
            batch_size: 0,
            ..(v.knobs)()
        };
        let sink = Arc::new(MemorySink::new());
        let ctx = Context::new(Arc::new(Classifier::default_rules()), sink);
        let src = MemorySource::new(vec![vec![]]);
        let e = (v.build)(knobs)
            .run(Input::Single(Box::new(src)), &ctx)
            .expect_err("batch_size 0 is refused");
        assert!(e.to_string().contains("batch_size = 0"), "{e}");
    }
}
