//! Unit tests of [`CaptureWriter`]: a disk that fills up or fails leaves a
//! whole, readable capture.

use super::*;
use crate::capture::{CaptureReader, Transport};
use probes::abi::Layout;

/// An output with room for `room` bytes, like a disk that fills up: a
/// write past it stores what fits, then fails with ENOSPC. Cutting frees
/// room again when `frees` (a disk), or not (an error that stays).
struct Disk {
    data: Vec<u8>,
    room: usize,
    frees: bool,
    /// Bytes ever written, which is what counts when cutting frees nothing.
    written: usize,
}

impl Disk {
    fn new(room: usize, frees: bool) -> Self {
        Disk {
            data: Vec::new(),
            room,
            frees,
            written: 0,
        }
    }
}

impl Write for Disk {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let used = if self.frees {
            self.data.len()
        } else {
            self.written
        };
        let free = self.room.saturating_sub(used);
        if free == 0 {
            return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let n = b.len().min(free);
        self.data.extend_from_slice(&b[..n]);
        self.written += n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CaptureOutput for Disk {
    fn cut(&mut self, len: u64) -> std::io::Result<()> {
        self.data.truncate(len as usize);
        Ok(())
    }
    fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const RINGS: u32 = 2;
const N: usize = 600;
const NAME: &str = "disk.pcapng";
const STATS: [RingStats; 2] = [
    RingStats {
        ring: 0,
        received: 700,
        dropped: 9,
    },
    RingStats {
        ring: 1,
        received: 600,
        dropped: 0,
    },
];

fn meta() -> CaptureMeta {
    CaptureMeta::now(
        Layout::Compact,
        Transport::Perf,
        1 << 20,
        RINGS,
        probes::Wakeup::Events(1),
    )
}

/// Record `i` of the test stream, as owned (ring, sample bytes or lost count):
/// samples of 20..120 non-zero bytes (stored exactly), a lost marker every 7th.
fn record(i: usize) -> Rec {
    let ring = (i as u32) % RINGS;
    if i % 7 == 6 {
        return (ring, Err(i as u64));
    }
    (
        ring,
        Ok((0..20 + i % 100).map(|k| (i + k) as u8 | 1).collect()),
    )
}

/// What one test run left: the first error, the summary and the output's bytes.
struct Run {
    error: Option<CaptureError>,
    summary: CaptureSummary,
    bytes: Vec<u8>,
}

/// Writes the test stream onto `disk`, flushing every 16 records as
/// `record` does per batch, until the first error; then finishes the file
/// as `record` does (normally, or after the error with a note of it).
fn write_onto(mut disk: Disk) -> Run {
    let mut w = CaptureWriter::new(&mut disk, Path::new(NAME), &meta()).unwrap();
    let mut error = None;
    for i in 0..N {
        let (ring, rec) = record(i);
        let r = match &rec {
            Ok(data) => w.write(RecordRef::Sample {
                ring,
                origin_ns: 1_000 + i as u64,
                data,
            }),
            Err(count) => w.write(RecordRef::Lost {
                ring,
                count: *count,
            }),
        };
        if let Err(e) = r.and_then(|()| if i % 16 == 15 { w.flush() } else { Ok(()) }) {
            error = Some(e);
            break;
        }
    }
    let (summary, closed) = w.close(&STATS);
    match (&error, &closed) {
        // The error that stopped the writes is the one `close` reports.
        (Some(a), Some(b)) => assert_eq!(a.to_string(), b.to_string()),
        (Some(a), None) => panic!("close forgot the error {a}"),
        (None, _) => error = closed,
    }
    Run {
        error,
        summary,
        bytes: disk.data,
    }
}

/// A record of the test stream, owned: (ring, sample bytes or lost count).
type Rec = (u32, Result<Vec<u8>, u64>);

/// Reads `bytes` back: every record, with nothing cut short, the
/// statistics and the notes.
fn read_back(bytes: &[u8]) -> (Vec<Rec>, Vec<RingStats>, Vec<String>) {
    let mut r = CaptureReader::from_bytes(NAME, bytes).unwrap();
    let mut recs = Vec::new();
    while let Some(e) = r.next_entry().unwrap() {
        recs.push(match e.rec {
            RecordRef::Sample { ring, data, .. } => (ring, Ok(data.to_vec())),
            RecordRef::Lost { ring, count } => (ring, Err(count)),
        });
    }
    assert_eq!(r.truncated_tail(), None, "the file ends on a whole block");
    (recs, r.ring_stats().to_vec(), r.notes().to_vec())
}

fn header_len() -> usize {
    header_blocks(Path::new(NAME), &meta()).unwrap().len()
}

#[test]
fn a_disk_that_fills_leaves_a_whole_capture_with_counters_and_a_note() {
    let full = write_onto(Disk::new(usize::MAX, true));
    assert!(full.error.is_none());
    let total = full.bytes.len();
    let head = header_len();
    // Every room from just past the header to just short of the whole
    // file, in steps that land inside blocks of every kind.
    for room in (head + 1..total).step_by(97) {
        let run = write_onto(Disk::new(room, true));
        let e = run.error.as_ref().expect("the disk fills before the end");
        let msg = e.to_string();
        assert!(
            msg.starts_with(NAME) && msg.contains("No space left on device"),
            "{msg}"
        );
        assert_eq!(msg.lines().count(), 1);
        assert!(run.bytes.len() <= room);
        assert_eq!(run.summary.file_bytes, run.bytes.len() as u64);
        let (recs, stats, notes) = read_back(&run.bytes);
        // What is there is the stream's beginning, exactly.
        for (i, got) in recs.iter().enumerate() {
            assert_eq!(*got, record(i), "record {i} with room {room}");
        }
        let samples = recs.iter().filter(|(_, r)| r.is_ok()).count() as u64;
        assert_eq!(run.summary.samples, samples, "room {room}");
        // The counters and the note went in, whenever a few records could
        // be cut to make room (always, past the header and a little more).
        if run.summary.stats_blocks > 0 {
            assert_eq!(stats, STATS);
            assert_eq!(notes.len(), 1);
            assert!(notes[0].contains("No space left on device"), "{notes:?}");
        } else {
            assert!(stats.is_empty() && notes.is_empty());
        }
        if room > head + TRAILER_ROOM / 4 {
            assert_eq!(run.summary.stats_blocks, STATS.len(), "room {room}");
        }
    }
}

#[test]
fn an_error_that_stays_leaves_a_whole_capture_without_counters() {
    let head = header_len();
    for room in [head + 1, head + 500, head + 5_000, head + 20_000] {
        let run = write_onto(Disk::new(room, false));
        assert!(run.error.is_some());
        let (recs, stats, notes) = read_back(&run.bytes);
        assert!(stats.is_empty() && notes.is_empty());
        assert_eq!(run.summary.stats_blocks, 0);
        for (i, got) in recs.iter().enumerate() {
            assert_eq!(*got, record(i));
        }
        assert_eq!(
            run.summary.samples,
            recs.iter().filter(|(_, r)| r.is_ok()).count() as u64
        );
    }
}

#[test]
fn a_disk_that_fills_at_the_counters_makes_room_for_them() {
    let full = write_onto(Disk::new(usize::MAX, true));
    // Room for every record but not for the statistics blocks with the note.
    let run = write_onto(Disk::new(full.bytes.len() - 10, true));
    let e = run.error.expect("the counters do not fit");
    assert!(e.to_string().contains("No space left on device"), "{e}");
    let (recs, stats, notes) = read_back(&run.bytes);
    assert_eq!(stats, STATS);
    assert_eq!(notes.len(), 1);
    // The last few records made room for them: ~250 bytes of note and two
    // 64-byte blocks, so no more than that many bytes of records.
    let cut: usize = (recs.len()..N)
        .map(|i| match record(i).1 {
            Ok(d) => EPB_FIXED + pad4(d.len()),
            Err(_) => 64,
        })
        .sum();
    assert!(
        recs.len() < N && cut < 1024,
        "{} records cut",
        N - recs.len()
    );
    for (i, got) in recs.iter().enumerate() {
        assert_eq!(*got, record(i));
    }
}

#[test]
fn writing_after_an_error_is_refused() {
    let mut disk = Disk::new(header_len() + 100, true);
    let mut w = CaptureWriter::new(&mut disk, Path::new(NAME), &meta()).unwrap();
    let data = [1u8; 200];
    let rec = RecordRef::Sample {
        ring: 0,
        origin_ns: 1,
        data: &data,
    };
    w.write(rec).unwrap();
    assert!(matches!(w.flush(), Err(CaptureError::Io { .. })));
    assert!(matches!(w.write(rec), Err(CaptureError::Stopped { .. })));
    assert!(matches!(w.flush(), Err(CaptureError::Stopped { .. })));
    let (s, e) = w.close(&STATS);
    assert!(matches!(e, Some(CaptureError::Io { .. })));
    assert_eq!(s.samples, 0);
    let (recs, _, _) = read_back(&disk.data);
    assert!(recs.is_empty());
}
