//! The injector against the real kernel: events staged in the mmapped slots
//! reach the real rings byte for byte, and its counters account for every one.
//! Privileged, every test: ignored unless the `privileged-tests` feature is on,
//! and then a process that cannot load BPF fails them (tests/support/mod.rs).

mod support;

use probes::abi::{encode_event, EventHeader, Kind, Layout, Syscall};
use probes::inject::{Injector, InjectorSpec};
use probes::loader::{Transport, Wakeup};
use probes::record::Batch;
use probes::ring::format::perf as perf_fmt;
use support::{drain, read_available, require_bpf, Drained};

fn event(layout: Layout, i: usize) -> Vec<u8> {
    let h = EventHeader {
        ts_ns: 1_000 + i as u64,
        pid: 7,
        tid: i as u32,
        syscall: Syscall::Openat as u8,
        kind: Kind::Enter as u8,
        ..Default::default()
    };
    let mut buf = Vec::new();
    encode_event(layout, &h, format!("/injected/{i}").as_bytes(), &mut buf);
    buf
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn injected_events_reach_the_rings_byte_for_byte_on_their_cpu() {
    require_bpf();
    for &t in Transport::ALL {
        for &layout in Layout::ALL {
            let mut inj =
                Injector::load(&InjectorSpec::new(t, 1 << 20, Wakeup::default_for(t))).unwrap();
            let mut src = inj.open_reader().unwrap();
            let stop = src.stop_handle();
            let ncpu = inj.cpus().len();
            let per = 40;
            let mut sent: Vec<Vec<Vec<u8>>> = vec![Vec::new(); ncpu];
            for (idx, s) in sent.iter_mut().enumerate() {
                for i in 0..per {
                    let e = event(layout, idx * 1000 + i);
                    inj.stage(idx, i, &e, &[], e.len()).unwrap();
                    s.push(e);
                }
                assert_eq!(inj.inject(idx, per).unwrap(), per as u32);
                assert!((0..per).all(|i| inj.result(idx, i) == 0));
            }
            stop.store(true, std::sync::atomic::Ordering::Release);
            let Drained { samples: got, lost } = drain(&mut src);
            assert!(lost.values().all(|&l| l == 0), "{t} {layout}: {lost:?}");
            let k = inj.counters().unwrap();
            for (idx, &cpu) in inj.cpus().iter().enumerate() {
                let c = k.kernel.cpu(cpu).unwrap();
                assert_eq!(
                    (c.seen, c.emitted, c.output_ok, c.failed()),
                    (40, 40, 40, 0)
                );
                let ring = if t == Transport::Perf { cpu } else { 0 };
                let rx = &got[&ring];
                for e in &sent[idx] {
                    // perf pads the raw sample to its raw_size (the bytes past
                    // the event are zero); the ring buffer adds nothing.
                    let len = match t {
                        Transport::Perf => perf_fmt::raw_size(e.len()),
                        Transport::Ringbuf => e.len(),
                    };
                    let mut want = e.clone();
                    want.resize(len, 0);
                    assert!(
                        rx.contains(&want),
                        "{t} {layout}: an event injected on cpu {cpu} is missing from ring {ring}"
                    );
                }
            }
            let total: usize = got.values().map(|v| v.len()).sum();
            assert_eq!(total, per * ncpu, "{t} {layout}: nothing extra arrives");
        }
    }
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn a_tiny_ring_fails_outputs_and_every_failure_is_accounted_for() {
    require_bpf();
    for &t in Transport::ALL {
        // Four pages: three fixed4k events (4160 bytes with perf's headers,
        // 4152 with the ring buffer's) fit; the rest of a 200-event run fails.
        // Three rounds with a read in between, so perf reports the first
        // rounds' drops (PERF_RECORD_LOST) ahead of the next round's samples.
        let mut inj =
            Injector::load(&InjectorSpec::new(t, 4 * 4096, Wakeup::default_for(t))).unwrap();
        let mut src = inj.open_reader().unwrap();
        let stop = src.stop_handle();
        let e = event(Layout::Fixed4k, 1);
        let per = 200;
        let mut seen = Drained::default();
        for round in 0..3 {
            let mut round_ok = 0;
            for idx in 0..inj.cpus().len() {
                for i in 0..per {
                    inj.stage(idx, i, &e, &[], e.len()).unwrap();
                }
                let ok = inj.inject(idx, per).unwrap();
                let results: Vec<i32> = (0..per).map(|i| inj.result(idx, i)).collect();
                assert_eq!(
                    results.iter().filter(|&&r| r == 0).count(),
                    ok as usize,
                    "per-slot results agree with the run's count"
                );
                if t == Transport::Perf {
                    assert!(
                        ok > 0 && ok < per as u32,
                        "{t} round {round}: {ok} of {per} fit"
                    );
                }
                round_ok += ok;
            }
            // The ring buffer is one ring for every CPU: the first CPU's run fills it.
            assert!(
                round_ok > 0 && round_ok < per as u32,
                "{t} round {round}: {round_ok} fit"
            );
            if round < 2 {
                assert_eq!(read_available(&mut src, &mut |r| seen.add(r)), Batch::Idle);
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Release);
        assert_eq!(
            read_available(&mut src, &mut |r| seen.add(r)),
            Batch::Closed
        );
        let k = inj.counters().unwrap();
        let total = k.kernel.total();
        assert_eq!(total.emitted, total.output_ok + total.failed());
        assert_eq!(total.emitted, 3 * per as u64 * inj.cpus().len() as u64);
        match t {
            Transport::Perf => {
                assert_eq!(total.fail_nospc, total.failed(), "perf fails with ENOSPC");
                for (idx, c) in k.kernel.cpus.iter().enumerate() {
                    let read = seen.samples.get(&c.cpu).map_or(0, Vec::len);
                    assert_eq!(read as u64, c.output_ok);
                    let reported = seen.lost.get(&c.cpu).copied().unwrap_or(0);
                    assert!(
                        reported > 0,
                        "cpu {}: earlier rounds' drops were reported",
                        c.cpu
                    );
                    assert_eq!(
                        reported + k.lost_pending[idx],
                        c.fail_nospc,
                        "cpu {}: PERF_RECORD_LOST + pending = ENOSPC failures",
                        c.cpu
                    );
                }
            }
            Transport::Ringbuf => {
                assert_eq!(
                    total.fail_again,
                    total.failed(),
                    "the ring buffer fails with EAGAIN"
                );
                let read: usize = seen.samples.values().map(Vec::len).sum();
                assert_eq!(read as u64, total.output_ok);
                assert_eq!(seen.lost_total(), total.failed());
            }
        }
    }
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn perf_slots_without_a_reader_fail_with_enoent_and_are_probed_as_empty() {
    require_bpf();
    let mut inj = Injector::load(&InjectorSpec::new(
        Transport::Perf,
        1 << 16,
        Wakeup::Events(1),
    ))
    .unwrap();
    assert!(inj.perf_slots_filled().unwrap().iter().all(|&f| !f));
    let e = event(Layout::Compact, 3);
    inj.stage(0, 0, &e, &[], e.len()).unwrap();
    assert_eq!(inj.inject(0, 1).unwrap(), 0);
    assert_eq!(inj.result(0, 0), -libc::ENOENT);
    let k = inj.counters().unwrap();
    assert_eq!(k.kernel.total().fail_noent, 1);
    let src = inj.open_reader().unwrap();
    assert!(inj.perf_slots_filled().unwrap().iter().all(|&f| f));
    drop(src);
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn staging_clears_what_a_longer_earlier_event_left() {
    require_bpf();
    let t = Transport::Ringbuf;
    let mut inj = Injector::load(&InjectorSpec::new(t, 1 << 16, Wakeup::Adaptive)).unwrap();
    let mut src = inj.open_reader().unwrap();
    let stop = src.stop_handle();
    let long = vec![0xabu8; 200];
    inj.stage(0, 0, &long, &[], long.len()).unwrap();
    inj.inject(0, 1).unwrap();
    // A short prefix, zero-extended to 100 bytes: bytes 4..100 must be zero, not 0xab.
    inj.stage(0, 0, &[1, 2], &[3, 4], 100).unwrap();
    inj.inject(0, 1).unwrap();
    stop.store(true, std::sync::atomic::Ordering::Release);
    let got = drain(&mut src).samples;
    let mut want = vec![1u8, 2, 3, 4];
    want.resize(100, 0);
    assert_eq!(got[&0], vec![long, want]);
    assert!(
        inj.stage(0, 0, &[], &[], 5000).is_err(),
        "larger than a slot"
    );
}
