//! Any bytes through both capture readers: the streaming `CaptureReader` and
//! the preloading `Capture`. Neither may panic; they must agree on every
//! record and on success or failure; every error names the file. What they
//! accept is written again with `CaptureWriter` (into memory) and must read
//! back the same.
#![no_main]

use std::path::Path;

use harness::capture::{Capture, CaptureError, CaptureReader, CaptureWriter, RingStats};
use libfuzzer_sys::fuzz_target;
use probes::record::RecordRef;

const NAME: &str = "fuzz.pcapng";

/// A record with its bytes owned, to compare the two readers.
#[derive(Debug, PartialEq, Eq)]
enum Owned {
    Sample {
        ring: u32,
        origin_ns: u64,
        data: Vec<u8>,
    },
    Lost {
        ring: u32,
        origin_ns: u64,
        count: u64,
    },
}

fn own(ring: u32, origin_ns: u64, rec: RecordRef<'_>) -> Owned {
    match rec {
        RecordRef::Sample { data, .. } => Owned::Sample {
            ring,
            origin_ns,
            data: data.to_vec(),
        },
        RecordRef::Lost { count, .. } => Owned::Lost {
            ring,
            origin_ns,
            count,
        },
    }
}

fuzz_target!(|data: &[u8]| {
    let streamed = CaptureReader::from_bytes(NAME, data).and_then(|mut r| {
        let rings = r.meta().rings;
        let mut out = Vec::new();
        while let Some(e) = r.next_entry()? {
            assert!(e.ring < rings, "a record on an undeclared ring");
            out.push(own(e.ring, e.origin_ns, e.rec));
        }
        Ok((
            out,
            r.ring_stats().to_vec(),
            r.truncated_tail().map(|(o, _)| o),
        ))
    });
    let loaded = Capture::from_bytes(NAME, data).map(|c| {
        let mut out = Vec::new();
        c.for_each(|e| out.push(own(e.ring, e.origin_ns, e.rec)))
            .expect("a preloaded capture does no I/O");
        assert_eq!(
            c.samples(),
            out.iter()
                .filter(|o| matches!(o, Owned::Sample { .. }))
                .count()
        );
        (
            out,
            c.ring_stats.clone(),
            c.truncated.as_ref().map(|(o, _)| *o),
        )
    });
    match (streamed, loaded) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "the two readers disagree");
            round_trip(data, &a.0, &a.1);
        }
        (Err(a), Err(b)) => {
            let (a, b) = (a.to_string(), b.to_string());
            assert_eq!(a, b, "the two readers fail differently");
            assert!(
                a.starts_with(NAME),
                "an error that does not name the file: {a}"
            );
        }
        (a, b) => panic!(
            "one reader failed and the other did not: stream {:?}, load {:?}",
            a.err().map(|e| e.to_string()),
            b.err().map(|e| e.to_string())
        ),
    }
});

/// Writes `records` (read from `data`) and `stats` again and reads them back.
fn round_trip(data: &[u8], records: &[Owned], stats: &[RingStats]) {
    let meta = match CaptureReader::from_bytes(NAME, data) {
        Ok(r) => r.meta().clone(),
        Err(e) => panic!("read once, not twice: {e}"),
    };
    let mut out = Vec::new();
    let mut w = match CaptureWriter::new(&mut out, Path::new(NAME), &meta) {
        Ok(w) => w,
        // Metadata that re-encodes longer than a pcapng option can hold.
        Err(CaptureError::Invalid { .. }) => return,
        Err(e) => panic!("writer: {e}"),
    };
    for r in records {
        let rec = match r {
            Owned::Sample {
                ring,
                origin_ns,
                data,
            } => RecordRef::Sample {
                ring: *ring,
                origin_ns: *origin_ns,
                data,
            },
            Owned::Lost { ring, count, .. } => RecordRef::Lost {
                ring: *ring,
                count: *count,
            },
        };
        w.write(rec)
            .unwrap_or_else(|e| panic!("writing back a record read: {e}"));
    }
    // Statistics the reader accepted name described rings; keep those the
    // writer describes (all of the metadata's rings).
    let stats: Vec<RingStats> = stats
        .iter()
        .copied()
        .filter(|s| s.ring < meta.rings)
        .collect();
    w.finish(&stats)
        .unwrap_or_else(|e| panic!("finishing in memory: {e}"));
    let mut r = CaptureReader::from_bytes(NAME, &out)
        .unwrap_or_else(|e| panic!("reading back what was written: {e}"));
    assert_eq!(r.meta(), &meta, "the metadata changed");
    let mut back = Vec::new();
    while let Some(e) = r
        .next_entry()
        .unwrap_or_else(|e| panic!("reading back: {e}"))
    {
        back.push(own(e.ring, e.origin_ns, e.rec));
    }
    assert_eq!(r.truncated_tail(), None);
    assert_eq!(back.len(), records.len());
    for (a, b) in records.iter().zip(&back) {
        match (a, b) {
            // A lost marker is written with the timestamp of the sample before it.
            (
                Owned::Lost {
                    ring: r1,
                    count: c1,
                    ..
                },
                Owned::Lost {
                    ring: r2,
                    count: c2,
                    ..
                },
            ) => {
                assert_eq!((r1, c1), (r2, c2))
            }
            _ => assert_eq!(a, b, "a record changed on the round trip"),
        }
    }
    assert_eq!(r.ring_stats(), stats, "the statistics changed");
}
