//! A capture's samples in the order the kernel wrote them, pass after pass,
//! from a preloaded capture or streamed from its file.
//!
//! The file holds samples in the order the recorder drained them: one ring's
//! batch, then another's. Each ring's samples keep their recorded order, and
//! the rings are merged by timestamp (ties by ring). A streamed capture is
//! merged the same way by a reader thread that holds each ring's pending
//! samples until every ring that still has samples to come has one pending
//! (the [`Summary`](crate::capture::Summary) says how many each ring has), so
//! the two orders are the same; only when more than [`REORDER_BYTES`] are
//! pending (rings drained that far apart) does it send the earliest anyway.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use crate::capture::{Body, Capture, CaptureError, CaptureReader, StoredRecord};

/// Most sample bytes a streamed merge holds back. A recorder drains one ring
/// at a time, so rings are apart by at most one drain of one ring (for a
/// 32 MiB perf ring, 32 MiB of records, which trimmed are far fewer bytes).
pub const REORDER_BYTES: usize = 32 << 20;
/// A streamed batch closes at this many bytes or [`BATCH_RECORDS`] samples;
/// [`BATCHES_AHEAD`] of them wait in the channel. With the merge's bound,
/// a streamed replay holds at most ~36 MiB of capture, however big the file.
const BATCH_BYTES: usize = 1 << 20;
const BATCH_RECORDS: usize = 8192;
const BATCHES_AHEAD: usize = 2;

/// One sample as replay writes it.
#[derive(Debug, Clone, Copy)]
pub struct SampleRef<'a> {
    pub ring: u32,
    pub origin_ns: u64,
    /// The stored bytes without their trailing zeros.
    pub prefix: &'a [u8],
    /// The stored length, zeros included.
    pub orig: u32,
}

/// What [`KernelOrder::next`] gives.
pub enum Step<'a> {
    Sample(SampleRef<'a>),
    /// The pass is over; the next call starts the next one.
    PassEnd,
}

/// The samples of a capture in kernel order, endlessly, a
/// [`Step::PassEnd`] between passes.
pub struct KernelOrder<'c> {
    inner: Inner<'c>,
}

enum Inner<'c> {
    Loaded {
        capture: &'c Capture,
        order: Vec<&'c StoredRecord>,
        next: usize,
    },
    Streamed {
        rx: Option<Receiver<Result<Batch, CaptureError>>>,
        batch: Batch,
        next: usize,
        thread: Option<JoinHandle<()>>,
        file: String,
    },
}

impl<'c> KernelOrder<'c> {
    pub fn new(capture: &'c Capture) -> Self {
        let inner = match &capture.body {
            Body::Loaded { .. } => Inner::Loaded {
                capture,
                order: kernel_order(capture),
                next: 0,
            },
            Body::Streamed { path } => {
                let (tx, rx) = sync_channel(BATCHES_AHEAD);
                let path = path.clone();
                let per_ring = capture.summary.per_ring.clone();
                let thread = std::thread::Builder::new()
                    .name("capture-stream".into())
                    .spawn(move || stream(&path, &per_ring, &tx))
                    .ok();
                Inner::Streamed {
                    rx: Some(rx),
                    batch: Batch::default(),
                    next: 0,
                    thread,
                    file: capture.file.clone(),
                }
            }
        };
        KernelOrder { inner }
    }

    /// The next sample, or the end of a pass.
    pub fn next_step(&mut self) -> Result<Step<'_>, CaptureError> {
        match &mut self.inner {
            Inner::Loaded {
                capture,
                order,
                next,
            } => {
                let Some(r) = order.get(*next) else {
                    *next = 0;
                    return Ok(Step::PassEnd);
                };
                *next += 1;
                Ok(Step::Sample(SampleRef {
                    ring: r.ring,
                    origin_ns: r.origin_ns,
                    prefix: capture.trimmed(r),
                    orig: r.orig,
                }))
            }
            Inner::Streamed {
                rx,
                batch,
                next,
                thread,
                file,
            } => {
                while *next >= batch.records.len() {
                    *next = 0;
                    if std::mem::take(&mut batch.pass_end) {
                        batch.records.clear();
                        return Ok(Step::PassEnd);
                    }
                    match rx.as_ref().and_then(|rx| rx.recv().ok()) {
                        Some(Ok(b)) => *batch = b,
                        Some(Err(e)) => return Err(e),
                        None => {
                            // The reader thread ended without saying why: it panicked.
                            let _ = thread.take().map(|t| t.join());
                            return Err(CaptureError::Invalid {
                                file: file.clone(),
                                what: "the thread streaming it stopped".into(),
                            });
                        }
                    }
                }
                let r = batch.records[*next];
                *next += 1;
                Ok(Step::Sample(SampleRef {
                    ring: r.ring,
                    origin_ns: r.origin_ns,
                    prefix: &batch.bytes[r.start..r.start + r.cap as usize],
                    orig: r.orig,
                }))
            }
        }
    }
}

impl Drop for KernelOrder<'_> {
    fn drop(&mut self) {
        if let Inner::Streamed { rx, thread, .. } = &mut self.inner {
            // Closing the channel makes the reader's next send fail: it stops.
            drop(rx.take());
            if let Some(t) = thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// The samples of a preloaded capture in kernel order (none for a streamed one).
pub fn kernel_order(capture: &Capture) -> Vec<&StoredRecord> {
    let rings = capture.meta.rings.max(1) as usize;
    let mut per_ring: Vec<Vec<&StoredRecord>> = vec![Vec::new(); rings];
    for r in capture.records().iter().filter(|r| r.orig > 0) {
        per_ring[r.ring as usize % rings].push(r);
    }
    let mut heap: BinaryHeap<Reverse<(u64, usize, usize)>> = per_ring
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.is_empty())
        .map(|(ring, v)| Reverse((v[0].origin_ns, ring, 0)))
        .collect();
    let mut out = Vec::with_capacity(capture.samples());
    while let Some(Reverse((_, ring, i))) = heap.pop() {
        out.push(per_ring[ring][i]);
        if let Some(next) = per_ring[ring].get(i + 1) {
            heap.push(Reverse((next.origin_ns, ring, i + 1)));
        }
    }
    out
}

/// A run of streamed samples: their bytes in one buffer.
#[derive(Default)]
struct Batch {
    records: Vec<BatchRecord>,
    bytes: Vec<u8>,
    /// The pass ends after these records.
    pass_end: bool,
}

#[derive(Clone, Copy)]
struct BatchRecord {
    ring: u32,
    origin_ns: u64,
    start: usize,
    cap: u32,
    orig: u32,
}

/// A sample held back by the merge.
struct Pending {
    origin_ns: u64,
    orig: u32,
    bytes: Vec<u8>,
}

/// The reader thread: passes over `path` until the receiver hangs up.
fn stream(path: &Path, per_ring: &[u64], tx: &SyncSender<Result<Batch, CaptureError>>) {
    loop {
        match stream_pass(path, per_ring, tx) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

/// The merge of one pass (see the module docs). Ok(false) when the receiver
/// is gone.
fn stream_pass(
    path: &Path,
    per_ring: &[u64],
    tx: &SyncSender<Result<Batch, CaptureError>>,
) -> Result<bool, CaptureError> {
    let mut reader = CaptureReader::open(path)?;
    let rings = per_ring.len().max(1);
    let mut pending: Vec<VecDeque<Pending>> = (0..rings).map(|_| VecDeque::new()).collect();
    let mut read = vec![0u64; rings];
    let mut held = 0usize; // bytes pending
    let mut count = 0usize; // samples pending
    let mut out = Batch::default();
    // Whether ring `r` may still bring a sample earlier than the pending ones.
    let waiting = |pending: &[VecDeque<Pending>], read: &[u64]| -> bool {
        (0..rings).any(|r| pending[r].is_empty() && read[r] < per_ring[r])
    };
    let emit = |pending: &mut Vec<VecDeque<Pending>>,
                held: &mut usize,
                count: &mut usize,
                out: &mut Batch|
     -> bool {
        let Some(ring) = (0..rings)
            .filter(|&r| !pending[r].is_empty())
            .min_by_key(|&r| (pending[r][0].origin_ns, r))
        else {
            return true;
        };
        let p = pending[ring]
            .pop_front()
            .expect("a ring with a pending sample");
        *held -= p.bytes.len();
        *count -= 1;
        out.records.push(BatchRecord {
            ring: ring as u32,
            origin_ns: p.origin_ns,
            start: out.bytes.len(),
            cap: p.bytes.len() as u32,
            orig: p.orig,
        });
        out.bytes.extend_from_slice(&p.bytes);
        if out.records.len() >= BATCH_RECORDS || out.bytes.len() >= BATCH_BYTES {
            return tx.send(Ok(std::mem::take(out))).is_ok();
        }
        true
    };
    while let Some(s) = reader.next_stored()? {
        if s.orig == 0 {
            continue;
        }
        let ring = s.ring as usize % rings;
        read[ring] += 1;
        held += s.bytes.len();
        count += 1;
        pending[ring].push_back(Pending {
            origin_ns: s.origin_ns,
            orig: s.orig,
            bytes: s.bytes.to_vec(),
        });
        while count > 0 && (!waiting(&pending, &read) || held > REORDER_BYTES) {
            if !emit(&mut pending, &mut held, &mut count, &mut out) {
                return Ok(false);
            }
        }
    }
    while count > 0 {
        if !emit(&mut pending, &mut held, &mut count, &mut out) {
            return Ok(false);
        }
    }
    out.pass_end = true;
    Ok(tx.send(Ok(out)).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{CaptureMeta, CaptureWriter, Loading, Transport};
    use probes::abi::Layout;
    use probes::record::RecordRef;

    /// Writes rings drained in turns, as a recorder does: `turns` times, each
    /// ring's next `batch` samples. Ring r's i-th sample is due at
    /// 10 * i + r, so kernel order interleaves the rings. Sample bytes name
    /// their ring and index. Ring 2 has samples only in the first turn.
    fn drained_in_turns(path: &Path, turns: u64, batch: u64) {
        let meta = CaptureMeta::now(
            Layout::Compact,
            Transport::Perf,
            1 << 20,
            3,
            probes::Wakeup::Events(1),
        );
        let mut w = CaptureWriter::create(path, &meta).unwrap();
        for t in 0..turns {
            for ring in 0..3u32 {
                if ring == 2 && t > 0 {
                    continue;
                }
                for i in t * batch..(t + 1) * batch {
                    let data = format!("ring {ring} sample {i}");
                    w.write(RecordRef::Sample {
                        ring,
                        origin_ns: 10 * i + ring as u64,
                        data: data.as_bytes(),
                    })
                    .unwrap();
                }
                if t == 1 && ring == 0 {
                    w.write(RecordRef::Lost { ring, count: 3 }).unwrap();
                }
            }
        }
        w.finish(&[]).unwrap();
    }

    /// A sample as (ring, origin, bytes, stored length).
    type Owned = (u32, u64, Vec<u8>, u32);

    /// Two passes of `order`.
    fn two_passes(order: &mut KernelOrder<'_>) -> Vec<Vec<Owned>> {
        let mut passes = vec![Vec::new(), Vec::new()];
        for pass in passes.iter_mut() {
            while let Step::Sample(s) = order.next_step().unwrap() {
                pass.push((s.ring, s.origin_ns, s.prefix.to_vec(), s.orig));
            }
        }
        passes
    }

    #[test]
    fn a_streamed_capture_replays_in_the_preloaded_kernel_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("turns.pcapng");
        // 3 turns x 4000 samples: more than one streamed batch (8192 samples).
        drained_in_turns(&path, 3, 4000);
        let loaded = Capture::open(&path, Loading::Preload).unwrap();
        let streamed = Capture::open(&path, Loading::Stream).unwrap();
        assert!(!loaded.is_streamed() && streamed.is_streamed());
        assert_eq!(loaded.summary, streamed.summary);
        assert_eq!(streamed.summary.samples, 4000 * 3 * 2 + 4000);
        assert_eq!(streamed.summary.per_ring, vec![12000, 12000, 4000]);
        assert_eq!(streamed.summary.lost, 3);
        assert!(streamed.records().is_empty());

        let want = two_passes(&mut KernelOrder::new(&loaded));
        let got = two_passes(&mut KernelOrder::new(&streamed));
        assert_eq!(want[0].len(), 28000);
        assert_eq!(want[0], want[1], "every pass is the same");
        assert_eq!(got, want);
        // Kernel order: timestamps never go back, across rings.
        assert!(got[0].windows(2).all(|w| w[0].1 <= w[1].1));
        assert_eq!(got[0][0].2, b"ring 0 sample 0");
        assert_eq!(got[0][1].2, b"ring 1 sample 0");
    }

    #[test]
    fn a_streamed_order_dropped_mid_pass_stops_its_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("turns.pcapng");
        drained_in_turns(&path, 4, 5000);
        let streamed = Capture::open(&path, Loading::Stream).unwrap();
        let mut order = KernelOrder::new(&streamed);
        for _ in 0..10 {
            assert!(matches!(order.next_step().unwrap(), Step::Sample(_)));
        }
        // Drop joins the reader thread: this returns only if it stopped.
        drop(order);
    }

    #[test]
    fn a_streamed_capture_that_goes_away_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("turns.pcapng");
        drained_in_turns(&path, 1, 10);
        let streamed = Capture::open(&path, Loading::Stream).unwrap();
        std::fs::remove_file(&path).unwrap();
        let e = match KernelOrder::new(&streamed).next_step() {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a missing file streamed"),
        };
        assert!(e.contains("turns.pcapng"), "{e}");
    }
}
