//! The emulated rings (the kernel's writer side) read by the live readers:
//! hand-made boundary cases, the wakeup rule, exact record sizes across
//! transports, property tests against an independent byte-count model, and a
//! two-thread stress test.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc;
use std::time::Duration;

mod support;

use harness::capture::{Capture, Transport};
use harness::replay::ring_writer::{RingCounters, SampleBytes};
use harness::replay::{event_len, kernel_order, perf, ringbuf, Wakeup};
use probes::abi::{Kind, Layout, Syscall};
use probes::record::{Batch, RecordRef, RecordSource};
use probes::ring::format::{perf as perf_fmt, ringbuf as rb_fmt};
use probes::ring::perf::{PerfRing, PerfRings};
use probes::ring::ringbuf::RingBufReader;
use proptest::prelude::*;
use support::events::{header, SynthCapture};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    Sample(Vec<u8>),
    Lost(u64),
}

fn pattern(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq.wrapping_mul(131) as usize + i * 7 + 1) as u8)
        .collect()
}

fn collect(out: &mut Vec<Got>) -> impl FnMut(RecordRef<'_>) + '_ {
    move |rec| match rec {
        RecordRef::Sample { data, .. } => out.push(Got::Sample(data.to_vec())),
        RecordRef::Lost { count, .. } => out.push(Got::Lost(count)),
    }
}

fn drain_perf(r: &mut PerfRing, max: usize) -> Vec<Got> {
    let mut out = Vec::new();
    r.drain(max, &mut collect(&mut out)).unwrap();
    out
}

/// One read of a reader (the ring buffer's lost count is reported by reads).
fn read(src: &mut dyn RecordSource, max: usize, timeout: Duration) -> (Batch, Vec<Got>) {
    let mut out = Vec::new();
    let b = src
        .read_batch(max, timeout, &mut collect(&mut out))
        .unwrap();
    (b, out)
}

fn get(c: &AtomicU64) -> u64 {
    RingCounters::get(c)
}

/// One emulated perf ring: its writer and its ring, drained directly.
fn perf_ring(size: u64) -> (perf::PerfWriter, PerfRing) {
    let (mut ws, rs) = perf::perf_rings(1, size, Wakeup::Events(1)).unwrap();
    (ws.remove(0), rs.into_rings().remove(0))
}

fn ring_buffer(size: u64, wakeup: Wakeup) -> (ringbuf::RbWriter, RingBufReader) {
    ringbuf::ring_buffer(size, wakeup).unwrap()
}

const NOW: Duration = Duration::ZERO;
/// Long enough that a reader that is not woken is still waiting.
const LONG: Duration = Duration::from_secs(30);
/// How long a test gives a reader that must not be woken to (wrongly) return.
const A_WHILE: Duration = Duration::from_millis(200);

#[test]
fn perf_ring_keeps_one_slot_free_and_reports_lost_with_the_next_sample() {
    let (mut w, mut r) = perf_ring(4096);
    // 64-byte records: 64 would fill 4096 exactly, but CIRC_SPACE keeps a byte
    // free, so only 63 fit.
    for i in 0..63 {
        assert!(w.output(&SampleBytes::whole(&pattern(i, 52))), "record {i}");
    }
    assert!(!w.output(&SampleBytes::whole(&pattern(63, 52))));
    assert!(!w.output(&SampleBytes::whole(&pattern(64, 52))));
    assert_eq!(w.used(), 63 * 64);
    assert_eq!(w.pending_lost(), 2);
    let got = drain_perf(&mut r, 1000);
    assert_eq!(got.len(), 63);
    assert_eq!(got[62], Got::Sample(pattern(62, 52)));
    // Now at 4032: a LOST record (24) + the sample (64) are reserved together
    // and the sample wraps around the end of the area.
    assert!(w.output(&SampleBytes::whole(&pattern(65, 52))));
    assert_eq!(w.pending_lost(), 0);
    assert_eq!(w.lost_records(), 1);
    assert_eq!(w.used(), 88);
    let got = drain_perf(&mut r, 1000);
    assert_eq!(got, vec![Got::Lost(2), Got::Sample(pattern(65, 52))]);
}

#[test]
fn perf_ring_accepts_an_exact_fit_and_nothing_after() {
    let (mut w, _r) = perf_ring(4096);
    for i in 0..63 {
        assert!(w.output(&SampleBytes::whole(&pattern(i, 52))));
    }
    // 63 bytes free: a 56-byte record (44-byte sample) fits, leaving 7.
    assert!(w.output(&SampleBytes::whole(&pattern(99, 44))));
    assert_eq!(w.used(), 4088);
    assert!(!w.output(&SampleBytes::whole(&[1])));
}

#[test]
fn perf_lost_record_needs_room_for_both() {
    let (mut w, mut r) = perf_ring(4096);
    for i in 0..63 {
        assert!(w.output(&SampleBytes::whole(&pattern(i, 52))));
    }
    assert!(!w.output(&SampleBytes::whole(&pattern(63, 52))));
    // Read exactly one record: 64 + 63 = 127 bytes free.
    assert_eq!(drain_perf(&mut r, 1).len(), 1);
    // LOST (24) + 64-byte sample = 88 fits.
    assert!(w.output(&SampleBytes::whole(&pattern(64, 52))));
    // 39 bytes free: a 40-byte record (8 + 4 + 28) does not fit...
    assert!(!w.output(&SampleBytes::whole(&pattern(65, 28))));
    // ...and with that drop pending, the next needs 24 + 32 = 56 > 39 too.
    assert!(!w.output(&SampleBytes::whole(&pattern(66, 20))));
    let got = drain_perf(&mut r, 1000);
    assert_eq!(got.len(), 62 + 2);
    assert_eq!(got[62], Got::Lost(1));
    assert_eq!(got[63], Got::Sample(pattern(64, 52)));
}

#[test]
fn perf_pad_bytes_are_handed_out_but_not_written() {
    let (mut w, mut r) = perf_ring(4096);
    // 48-byte sample: raw size 52, 4 pad bytes skipped.
    assert!(w.output(&SampleBytes::whole(&pattern(1, 48))));
    let got = drain_perf(&mut r, 10);
    let Got::Sample(d) = &got[0] else {
        panic!("{got:?}")
    };
    assert_eq!(d.len(), 52);
    assert_eq!(&d[..48], &pattern(1, 48)[..]);
}

#[test]
fn sample_bytes_zero_fill_and_timestamp_patch() {
    let (mut w, mut r) = perf_ring(8192);
    let s = SampleBytes {
        prefix: &[9u8; 20],
        len: 4144,
        ts: Some(0x1122334455667788),
    };
    assert!(w.output(&s));
    let got = drain_perf(&mut r, 10);
    let Got::Sample(d) = &got[0] else {
        panic!("{got:?}")
    };
    assert_eq!(d.len(), 4148);
    assert_eq!(&d[..8], &0x1122334455667788u64.to_le_bytes());
    assert_eq!(&d[8..20], &[9u8; 12]);
    assert!(d[20..4144].iter().all(|b| *b == 0));
}

#[test]
fn ringbuf_drops_when_full_and_counts_it() {
    let (mut w, mut r) = ring_buffer(4096, Wakeup::Adaptive);
    // 64-byte records (8 header + 56): new_prod - cons must stay <= mask = 4095.
    for i in 0..63 {
        assert!(w.output(&SampleBytes::whole(&pattern(i, 56))), "record {i}");
    }
    assert!(!w.output(&SampleBytes::whole(&pattern(63, 56))));
    assert_eq!(w.dropped(), 1);
    // 63 free bytes: a 56-byte record (48-byte sample) fits exactly under the mask.
    assert!(w.output(&SampleBytes::whole(&pattern(64, 48))));
    assert!(!w.output(&SampleBytes::whole(&[7])));
    let (b, got) = read(&mut r, 1000, NOW);
    assert_eq!(b, Batch::Records(65));
    assert_eq!(got[64], Got::Lost(2));
    assert_eq!(got[63], Got::Sample(pattern(64, 48)));
    // Position 4088: header at the end, the payload runs on into the second
    // image of the data area and is handed out in place.
    assert!(w.output(&SampleBytes::whole(&pattern(70, 56))));
    assert_eq!(
        read(&mut r, 10, NOW),
        (Batch::Records(1), vec![Got::Sample(pattern(70, 56))])
    );
}

#[test]
fn ringbuf_reader_stops_at_busy_and_skips_discarded() {
    let (mut w, mut r) = ring_buffer(4096, Wakeup::Adaptive);
    let a = w.reserve(16).unwrap();
    let b = w.reserve(16).unwrap();
    // a is BUSY: the reader must not pass it even though b is committed.
    w.commit(b, false);
    assert_eq!(r.drain(10, &mut |_| {}).unwrap(), 0);
    w.commit(a, true); // discarded
    assert_eq!(r.drain(10, &mut |_| {}).unwrap(), 1); // only b
    assert_eq!(w.used(), 0);
}

#[test]
fn wakeups_are_counted_as_the_kernel_signals_them() {
    // events:4 on a big ring: one wakeup per 4 samples.
    let (mut ws, _r) = perf::perf_rings(1, 1 << 20, Wakeup::Events(4)).unwrap();
    for i in 0..40 {
        ws[0].output(&SampleBytes::whole(&pattern(i, 52)));
    }
    assert_eq!(get(&ws[0].counters().wakeups), 10);
    // watermark 1024 bytes with 64-byte records: a wakeup each time head
    // passes wakeup + 1024, i.e. once per 16 records after the first 17.
    let (mut ws, _r) = perf::perf_rings(1, 1 << 20, Wakeup::Watermark(1024)).unwrap();
    for i in 0..(17 + 16 * 3) {
        ws[0].output(&SampleBytes::whole(&pattern(i, 52)));
    }
    assert_eq!(get(&ws[0].counters().wakeups), 4);
    // Ring buffer, adaptive: wakes only when the consumer has caught up.
    let (mut w, mut r) = ring_buffer(1 << 16, Wakeup::Adaptive);
    w.output(&SampleBytes::whole(&[1; 8]));
    w.output(&SampleBytes::whole(&[1; 8]));
    assert_eq!(get(&w.counters().wakeups), 1);
    r.drain(10, &mut |_| {}).unwrap();
    w.output(&SampleBytes::whole(&[1; 8]));
    assert_eq!(get(&w.counters().wakeups), 2);
    // Forced: every record.
    let (mut w, _r) = ring_buffer(1 << 16, Wakeup::Forced);
    for _ in 0..5 {
        w.output(&SampleBytes::whole(&[1; 8]));
    }
    assert_eq!(get(&w.counters().wakeups), 5);
    // No wakeup: never.
    let (mut w, _r) = ring_buffer(1 << 16, Wakeup::NoWakeupPoll(Duration::from_millis(1)));
    w.output(&SampleBytes::whole(&[1; 8]));
    assert_eq!(get(&w.counters().wakeups), 0);
}

/// The wakeup rule, seen from the reader: after `quiet` 64-byte records that
/// do not fire `wakeup`, a read sees nothing when its timeout passes and
/// drains nothing; the next record fires it, and a read gets them all.
fn reader_sees_nothing_until_the_rule_fires(wakeup: Wakeup, quiet: u64) {
    let (mut ws, mut src) = perf::perf_rings(1, 1 << 16, wakeup).unwrap();
    let w = &mut ws[0];
    for i in 0..quiet {
        assert!(w.output(&SampleBytes::whole(&pattern(i, 52))));
    }
    let idle = read(&mut src, 100, Duration::from_millis(50));
    assert_eq!(idle, (Batch::Idle, vec![]), "{wakeup}");
    assert_eq!(w.used(), quiet * 64, "{wakeup}: the ring still holds them");
    assert!(w.output(&SampleBytes::whole(&pattern(quiet, 52))));
    let (b, got) = read(&mut src, 100, LONG);
    assert_eq!(b, Batch::Records(quiet as usize + 1), "{wakeup}");
    let want: Vec<Got> = (0..=quiet).map(|i| Got::Sample(pattern(i, 52))).collect();
    assert_eq!(got, want, "{wakeup}");
    assert_eq!(w.used(), 0);
    // The wakeup was reported once: the next read waits again.
    assert!(w.output(&SampleBytes::whole(&pattern(99, 52))));
    let again = read(&mut src, 100, Duration::from_millis(20)).0;
    assert_eq!(again, Batch::Idle, "{wakeup}");
}

/// `events:4`: nothing until the 4th sample, then all 4.
#[test]
fn perf_reader_sees_nothing_before_wakeup_events_samples() {
    reader_sees_nothing_until_the_rule_fires(Wakeup::Events(4), 3);
}

/// A watermark: nothing until more than `watermark` bytes are pending
/// (16 records of 64 bytes are exactly 1024, not more).
#[test]
fn perf_reader_sees_nothing_below_the_watermark() {
    reader_sees_nothing_until_the_rule_fires(Wakeup::Watermark(1024), 16);
}

/// A reader blocked in a read is woken by the sample that fires the rule, not before.
#[test]
fn perf_blocked_reader_wakes_at_the_wakeup_events_count() {
    let (mut ws, src) = perf::perf_rings(1, 1 << 16, Wakeup::Events(4)).unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut src = src;
        tx.send(read(&mut src, 100, LONG)).unwrap();
        src
    });
    for i in 0..3 {
        assert!(ws[0].output(&SampleBytes::whole(&pattern(i, 52))));
    }
    std::thread::sleep(A_WHILE);
    assert!(rx.try_recv().is_err(), "woken before the 4th sample");
    assert!(ws[0].output(&SampleBytes::whole(&pattern(3, 52))));
    let (b, got) = rx.recv().unwrap();
    assert_eq!((b, got.len()), (Batch::Records(4), 4));
    drop(ws);
    let mut src = reader.join().unwrap();
    assert_eq!(read(&mut src, 100, LONG).0, Batch::Closed);
}

/// Only the rings the wait reported are drained; closing drains the rest.
#[test]
fn perf_reads_only_the_rings_that_were_woken() {
    let (mut ws, mut src) = perf::perf_rings(2, 1 << 16, Wakeup::Events(2)).unwrap();
    for i in 0..2 {
        assert!(ws[0].output(&SampleBytes::whole(&pattern(i, 52))));
    }
    assert!(ws[1].output(&SampleBytes::whole(&pattern(9, 52))));
    let (b, got) = read(&mut src, 100, LONG);
    assert_eq!(b, Batch::Records(2));
    assert_eq!(got[1], Got::Sample(pattern(1, 52)));
    assert_eq!(
        ws[1].used(),
        64,
        "ring 1 was not woken and keeps its record"
    );
    assert_eq!(
        read(&mut src, 100, Duration::from_millis(20)).0,
        Batch::Idle
    );
    // Closing every writer drains everything left, then closes.
    ws.iter_mut().for_each(|w| w.close());
    assert_eq!(
        read(&mut src, 100, LONG),
        (Batch::Records(1), vec![Got::Sample(pattern(9, 52))])
    );
    assert_eq!(read(&mut src, 100, LONG).0, Batch::Closed);
}

/// A drain cut short by `max` continues without a new wakeup.
#[test]
fn perf_drain_cut_short_by_max_continues_without_a_wakeup() {
    let (mut ws, mut src) = perf::perf_rings(1, 1 << 16, Wakeup::Events(10)).unwrap();
    for i in 0..10 {
        assert!(ws[0].output(&SampleBytes::whole(&pattern(i, 52))));
    }
    assert_eq!(get(&ws[0].counters().wakeups), 1);
    assert_eq!(read(&mut src, 4, LONG).0, Batch::Records(4));
    assert_eq!(read(&mut src, 4, LONG).0, Batch::Records(4));
    assert_eq!(read(&mut src, 4, LONG).0, Batch::Records(2));
    assert_eq!(read(&mut src, 4, Duration::from_millis(20)).0, Batch::Idle);
}

/// Sharded readers each wait on their own ring.
#[test]
fn perf_shards_are_woken_by_their_own_ring() {
    use probes::record::ShardedSource;
    let (mut ws, src) = perf::perf_rings(2, 1 << 16, Wakeup::Events(1)).unwrap();
    let mut shards = Box::new(src).into_shards();
    assert!(ws[1].output(&SampleBytes::whole(&pattern(1, 52))));
    assert_eq!(
        read(&mut *shards[0], 10, Duration::from_millis(20)).0,
        Batch::Idle
    );
    assert_eq!(read(&mut *shards[1], 10, LONG).0, Batch::Records(1));
    ws.iter_mut().for_each(|w| w.close());
    for s in &mut shards {
        assert_eq!(read(&mut **s, 10, LONG).0, Batch::Closed);
    }
}

/// Adaptive: the reader waiting at the record being committed is woken by it.
#[test]
fn ringbuf_adaptive_wakes_a_blocked_reader() {
    let (mut w, r) = ring_buffer(1 << 16, Wakeup::Adaptive);
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut r = r;
        tx.send(read(&mut r, 100, LONG)).unwrap();
    });
    std::thread::sleep(A_WHILE);
    assert!(w.output(&SampleBytes::whole(&pattern(1, 40))));
    assert_eq!(
        rx.recv().unwrap(),
        (Batch::Records(1), vec![Got::Sample(pattern(1, 40))])
    );
    reader.join().unwrap();
}

/// No wakeup: the writer never wakes the reader; it sees data when it polls.
#[test]
fn ringbuf_no_wakeup_reader_sees_data_only_when_it_polls() {
    let (mut w, r) = ring_buffer(1 << 16, Wakeup::NoWakeupPoll(LONG));
    let (started, reading) = mpsc::channel();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut r = r;
        started.send(()).unwrap();
        // Finds the ring empty and sleeps its poll interval.
        tx.send(read(&mut r, 100, LONG)).unwrap();
        r
    });
    reading.recv().unwrap();
    std::thread::sleep(A_WHILE);
    for i in 0..3 {
        assert!(w.output(&SampleBytes::whole(&pattern(i, 40))));
    }
    std::thread::sleep(A_WHILE);
    assert!(rx.try_recv().is_err(), "a no-wakeup ring woke its reader");
    assert_eq!(get(&w.counters().wakeups), 0);
    // The poll that ends the sleep (here cut short by the writer closing) finds all 3.
    w.close();
    let (b, got) = rx.recv().unwrap();
    assert_eq!((b, got.len()), (Batch::Records(3), 3));
    let mut r = reader.join().unwrap();
    assert_eq!(read(&mut r, 100, LONG).0, Batch::Closed);
    // And a read (a poll) finds data without any wakeup.
    let (mut w, mut r) = ring_buffer(1 << 16, Wakeup::NoWakeupPoll(LONG));
    assert!(w.output(&SampleBytes::whole(&pattern(5, 40))));
    assert_eq!(read(&mut r, 100, LONG).0, Batch::Records(1));
}

/// An event capture: `n` records of `layout` (an enter, then an exit, ...),
/// stored as `transport` stores them (perf adds the raw_size padding).
fn capture(dir: &std::path::Path, layout: Layout, transport: Transport, n: u64) -> Capture {
    let p = dir.join(format!("{layout}-{transport}.pcapng"));
    let mut c = SynthCapture::create(&p, layout, transport, 1);
    for i in 0..n {
        let kind = if i % 2 == 0 { Kind::Enter } else { Kind::Exit };
        let h = header(c.start_ns() + i, 7, 7, Syscall::Openat, kind);
        c.event(0, &h, b"/etc/hosts");
    }
    c.finish(&[]);
    Capture::load(&p).unwrap()
}

/// Bytes each stored record of `cap` takes when written into `transport`'s
/// ring, with its length from [`event_len`] as the replay producer takes it.
fn ring_bytes_per_record(cap: &Capture, transport: Transport) -> Vec<u64> {
    let (mut perf_w, mut perf_r) = perf_ring(1 << 20);
    let (mut rb_w, mut rb_r) = ring_buffer(1 << 20, Wakeup::Adaptive);
    kernel_order(cap)
        .into_iter()
        .map(|rec| {
            let s = SampleBytes {
                prefix: cap.trimmed(rec),
                len: event_len(cap.trimmed(rec), rec.orig as usize),
                ts: None,
            };
            // Write one record, note the bytes in use, then read it back out.
            match transport {
                Transport::Perf => {
                    assert!(perf_w.output(&s));
                    let used = perf_w.used();
                    perf_r.drain(10, &mut |_| {}).unwrap();
                    used
                }
                Transport::Ringbuf => {
                    assert!(rb_w.output(&s));
                    let used = rb_w.used();
                    rb_r.drain(10, &mut |_| {}).unwrap();
                    used
                }
            }
        })
        .collect()
}

/// A sample takes the kernel's size in either ring, whichever transport recorded it.
#[test]
fn records_take_the_kernels_size_across_transports() {
    let dir = tempfile::tempdir().unwrap();
    let cap = |layout, transport| capture(dir.path(), layout, transport, 4);
    let (fixed_perf, compact_perf) = (
        cap(Layout::Fixed4k, Transport::Perf),
        cap(Layout::Compact, Transport::Perf),
    );
    // Stored: perf keeps raw_size padding (4148 for a 4144-byte event, 52 for a 48-byte exit).
    assert_eq!(fixed_perf.records()[0].orig, 4148);
    assert_eq!(compact_perf.records()[1].orig, 52);
    // Per (enter, exit) pair: the event, then its bytes in the ring buffer,
    // round_up(len + 8, 8), and in perf, 12 + round_up(len + 4, 8) - 4.
    // fixed4k: 4144 and 48 bytes. compact: "/etc/hosts" (10 bytes) enters
    // take 48 + 10 + 1 -> 64, exits 48.
    let fixed = ([4144, 48], [4152, 56], [4160, 64]);
    let compact = ([64, 48], [72, 56], [80, 64]);
    let cases = [
        (fixed_perf, fixed),
        (cap(Layout::Fixed4k, Transport::Ringbuf), fixed),
        (compact_perf, compact),
        (cap(Layout::Compact, Transport::Ringbuf), compact),
    ];
    for (cap, (event, ringbuf_bytes, perf_bytes)) in &cases {
        let name = &cap.file;
        let lens: Vec<usize> = kernel_order(cap)
            .iter()
            .map(|r| event_len(cap.trimmed(r), r.orig as usize))
            .collect();
        assert_eq!(lens, event.repeat(2), "{name}");
        let rb = ring_bytes_per_record(cap, Transport::Ringbuf);
        assert_eq!(rb, ringbuf_bytes.repeat(2), "{name} into the ring buffer");
        let pf = ring_bytes_per_record(cap, Transport::Perf);
        assert_eq!(pf, perf_bytes.repeat(2), "{name} into perf");
        // The same arithmetic as the format module's.
        let by_format: Vec<u64> = event
            .iter()
            .map(|&l| rb_fmt::record_len(l) as u64)
            .chain(event.iter().map(|&l| perf_fmt::sample_record_len(l) as u64))
            .collect();
        assert_eq!(by_format, [&ringbuf_bytes[..], &perf_bytes[..]].concat());
    }
}

/// A stored sample that does not decode as an event keeps its stored length.
#[test]
fn undecodable_samples_keep_their_stored_length() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("junk.pcapng");
    let mut c = SynthCapture::create(&p, Layout::Compact, Transport::Perf, 1);
    // Too short for a header; a header with another ABI version; a path_len past the end.
    let short = vec![1u8; 20];
    let mut bad_abi = vec![0u8; 60];
    bad_abi[16] = 99;
    let mut overrun = vec![0u8; 60];
    overrun[16] = 1; // ABI version 1
    overrun[19] = Kind::Enter as u8;
    overrun[40] = 200; // path_len 200: event_size 256 > 60 stored
    overrun[42] = Layout::Compact as u8;
    for (i, d) in [&short, &bad_abi, &overrun].into_iter().enumerate() {
        let ts = c.start_ns() + i as u64;
        c.raw(0, ts, d);
    }
    c.finish(&[]);
    let cap = Capture::load(&p).unwrap();
    let lens: Vec<usize> = kernel_order(&cap)
        .iter()
        .map(|r| event_len(cap.trimmed(r), r.orig as usize))
        .collect();
    assert_eq!(lens, vec![20, 60, 60]);
}

#[derive(Debug, Clone)]
enum Op {
    Write(usize),
    Read(usize),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            3 => (0usize..600).prop_map(Op::Write),
            1 => (4000usize..4200).prop_map(Op::Write),
            2 => (1usize..40).prop_map(Op::Read),
        ],
        1..400,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Perf: reads equal the model exactly (so nothing dropped is ever read
    /// and every byte matches), the accept decision equals an independent
    /// byte-count model (in use + needed <= size - 8), and the counters add up.
    #[test]
    fn perf_ring_matches_model(size_pow in 12u32..15, ops in ops()) {
        let size = 1u64 << size_pow;
        let (mut w, mut r) = perf_ring(size);
        let mut expect: VecDeque<(Got, u64)> = VecDeque::new();
        let mut used = 0u64;
        let mut pending = 0u64;
        let (mut seq, mut read_samples, mut lost_seen) = (0u64, 0u64, 0u64);
        // The model's own arithmetic: header 8 + raw size 4 + data, padded to 8.
        let record = |len: u64| (8 + 4 + len).div_ceil(8) * 8;
        for op in ops {
            match op {
                Op::Write(len) => {
                    seq += 1;
                    let data = pattern(seq, len);
                    let rec = record(len as u64);
                    let need = rec + if pending > 0 { 24 } else { 0 };
                    let fits = used + need <= size - 8;
                    let ok = w.output(&SampleBytes::whole(&data));
                    prop_assert_eq!(ok, fits, "len {} used {} pending {}", len, used, pending);
                    if ok {
                        if pending > 0 {
                            expect.push_back((Got::Lost(pending), 24));
                            pending = 0;
                        }
                        expect.push_back((Got::Sample(data), rec));
                        used += need;
                    } else {
                        pending += 1;
                    }
                }
                Op::Read(max) => {
                    for g in drain_perf(&mut r, max) {
                        let (want, bytes) = expect.pop_front().expect("read more than written");
                        match (&g, &want) {
                            (Got::Sample(d), Got::Sample(w)) => {
                                prop_assert_eq!(d.len() as u64, bytes - 12);
                                prop_assert_eq!(&d[..w.len()], &w[..]);
                                read_samples += 1;
                            }
                            (Got::Lost(a), Got::Lost(b)) => { prop_assert_eq!(a, b); lost_seen += a; }
                            _ => prop_assert!(false, "got {:?}, want {:?}", g, want),
                        }
                        used -= bytes;
                    }
                }
            }
            let c = w.counters();
            let in_ring = expect.iter().filter(|(g, _)| matches!(g, Got::Sample(_))).count() as u64;
            prop_assert_eq!(get(&c.offered), get(&c.accepted) + get(&c.lost));
            prop_assert_eq!(get(&c.accepted), read_samples + in_ring);
            prop_assert_eq!(get(&c.lost), lost_seen + pending
                + expect.iter().map(|(g, _)| if let Got::Lost(n) = g { *n } else { 0 }).sum::<u64>());
            prop_assert_eq!(w.used(), used);
        }
    }

    /// Ring buffer: the same properties, read through the reader's reads (which
    /// report drops in-band); the model accepts iff
    /// in use + round_up(len + 8, 8) <= size - 1.
    #[test]
    fn ringbuf_matches_model(size_pow in 12u32..15, ops in ops()) {
        let size = 1u64 << size_pow;
        let (mut w, mut r) = ring_buffer(size, Wakeup::Adaptive);
        let mut expect: VecDeque<(Vec<u8>, u64)> = VecDeque::new();
        let mut used = 0u64;
        let (mut seq, mut read_samples, mut dropped, mut lost_seen) = (0u64, 0u64, 0u64, 0u64);
        let record = |len: u64| (len + 8).div_ceil(8) * 8;
        for op in ops {
            match op {
                Op::Write(len) => {
                    seq += 1;
                    let data = pattern(seq, len);
                    let rec = record(len as u64);
                    let fits = used + rec < size;
                    let ok = w.output(&SampleBytes::whole(&data));
                    prop_assert_eq!(ok, fits, "len {} used {}", len, used);
                    if ok { expect.push_back((data, rec)); used += rec; } else { dropped += 1; }
                }
                Op::Read(max) => {
                    let (_, got) = read(&mut r, max, NOW);
                    for g in got {
                        match g {
                            Got::Lost(n) => lost_seen += n,
                            Got::Sample(d) => {
                                let (want, bytes) = expect.pop_front().expect("read more than written");
                                prop_assert_eq!(&d, &want);
                                used -= bytes;
                                read_samples += 1;
                            }
                        }
                    }
                    // Every drop so far was reported by this read.
                    prop_assert_eq!(lost_seen, dropped);
                }
            }
            let c = w.counters();
            prop_assert_eq!(get(&c.offered), get(&c.accepted) + get(&c.lost));
            prop_assert_eq!(get(&c.accepted), read_samples + expect.len() as u64);
            prop_assert_eq!(get(&c.lost), dropped);
            prop_assert_eq!(w.used(), used);
        }
    }
}

/// Outputs one sample; false when it was dropped.
type Writer = Box<dyn FnMut(&[u8]) -> bool + Send>;

/// Producer and consumer on two threads: every sample arrives intact and in
/// order, and accepted + lost = offered, with the lost counts in-band.
#[test]
fn concurrent_producer_and_consumer_agree() {
    for transport in ["perf", "ringbuf"] {
        let n = 100_000u64;
        let (mut src, mut out): (Box<dyn RecordSource>, Writer) = if transport == "perf" {
            let (mut ws, r): (_, PerfRings) =
                perf::perf_rings(1, 1 << 14, Wakeup::Events(8)).unwrap();
            let mut w = ws.remove(0);
            (
                Box::new(r),
                Box::new(move |d: &[u8]| w.output(&SampleBytes::whole(d))),
            )
        } else {
            let (mut w, r) = ring_buffer(1 << 14, Wakeup::Adaptive);
            (
                Box::new(r),
                Box::new(move |d: &[u8]| w.output(&SampleBytes::whole(d))),
            )
        };
        let producer = std::thread::spawn(move || {
            let mut accepted = Vec::new();
            for seq in 0..n {
                let len = 8 + (seq as usize * 37) % 300;
                let mut d = pattern(seq, len);
                d[..8].copy_from_slice(&seq.to_le_bytes());
                if out(&d) {
                    accepted.push(seq);
                }
            }
            drop(out); // closes the ring
            accepted
        });
        let mut seen = Vec::new();
        let mut lost = 0u64;
        loop {
            let mut bad = None;
            let b = src
                .read_batch(64, Duration::from_secs(5), &mut |r| match r {
                    RecordRef::Sample {
                        data, origin_ns, ..
                    } => {
                        let seq = origin_ns;
                        let len = 8 + (seq as usize * 37) % 300;
                        let mut want = pattern(seq, len);
                        want[..8].copy_from_slice(&seq.to_le_bytes());
                        if data[..len] != want[..] {
                            bad = Some(seq);
                        }
                        seen.push(seq);
                    }
                    RecordRef::Lost { count, .. } => lost += count,
                })
                .unwrap();
            assert_eq!(bad, None, "{transport}: sample corrupted");
            if b == Batch::Closed {
                break;
            }
        }
        let accepted = producer.join().unwrap();
        assert_eq!(seen, accepted, "{transport}");
        // perf may hold back a final lost count until a later sample fits.
        let unreported = n - accepted.len() as u64 - lost;
        assert!(
            transport == "perf" || unreported == 0,
            "{transport}: {unreported}"
        );
        assert!(lost <= n - accepted.len() as u64);
    }
}
