//! Fuzz-style property test: 100 000 random mutations (bit flips, byte and
//! word overwrites, truncations, splices, insertions) of a real capture
//! through both readers. They must never panic, and every error must name
//! the file and a byte offset inside it.

mod support;

use harness::capture::{Capture, CaptureError, CaptureReader, Transport};
use probes::abi::Layout;
use probes::record::RecordRef;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const NAME: &str = "fuzz.pcapng";

/// The last pcapng block boundary at or before `limit`.
fn block_boundary(b: &[u8], limit: usize) -> usize {
    let mut off = 0;
    while off + 8 <= b.len() {
        let len = u32::from_le_bytes(b[off + 4..off + 8].try_into().unwrap()) as usize;
        if len == 0 || off + len > limit.min(b.len()) {
            break;
        }
        off += len;
    }
    off
}

/// The seed input: the committed real capture if there is one (its blocks
/// up to 12 KiB, so the seed itself ends cleanly), else a synthetic capture
/// with lost markers.
fn seed() -> Vec<u8> {
    if let Ok(rd) = std::fs::read_dir(support::fixtures_dir()) {
        let mut files: Vec<_> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "pcapng"))
            .collect();
        files.sort();
        if let Some(f) = files.first() {
            let mut b = std::fs::read(f).unwrap();
            b.truncate(block_boundary(&b, 12 * 1024));
            eprintln!("fuzz seed: first {} bytes of {}", b.len(), f.display());
            return b;
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("seed.pcapng");
    support::events::write_synthetic(&p, Layout::Compact, Transport::Perf, 2, 60);
    let b = std::fs::read(&p).unwrap();
    eprintln!("fuzz seed: synthetic capture, {} bytes", b.len());
    b
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        bit: u8,
    },
    Byte {
        at: usize,
        v: u8,
    },
    /// Overwrite 4 bytes with a value that tends to hit length checks.
    Word {
        at: usize,
        v: u32,
    },
    Truncate {
        len: usize,
    },
    /// Copy `len` bytes from `from` over `to` (block-sized shuffles).
    Splice {
        from: usize,
        to: usize,
        len: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Delete {
        at: usize,
        len: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let pos = any::<prop::sample::Index>();
    prop_oneof![
        4 => (pos.clone(), 0u8..8).prop_map(|(i, bit)| Mutation::Flip { at: i.index(usize::MAX), bit }),
        2 => (pos.clone(), any::<u8>()).prop_map(|(i, v)| Mutation::Byte { at: i.index(usize::MAX), v }),
        2 => (pos.clone(), prop_oneof![Just(0u32), Just(u32::MAX), Just(12), Just(28), Just(0x8000_0000), Just(1 << 20), 0u32..5000])
            .prop_map(|(i, v)| Mutation::Word { at: i.index(usize::MAX), v }),
        1 => pos.clone().prop_map(|i| Mutation::Truncate { len: i.index(usize::MAX) }),
        1 => (pos.clone(), pos.clone(), 1usize..200).prop_map(|(a, b, len)| Mutation::Splice { from: a.index(usize::MAX), to: b.index(usize::MAX), len }),
        1 => (pos.clone(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, bytes)| Mutation::Insert { at: i.index(usize::MAX), bytes }),
        1 => (pos, 1usize..64).prop_map(|(i, len)| Mutation::Delete { at: i.index(usize::MAX), len }),
    ]
}

fn apply(b: &mut Vec<u8>, m: &Mutation) {
    if b.is_empty() {
        return;
    }
    let n = b.len();
    match m {
        Mutation::Flip { at, bit } => b[at % n] ^= 1 << bit,
        Mutation::Byte { at, v } => b[at % n] = *v,
        Mutation::Word { at, v } => {
            let at = at % n;
            for (i, x) in v.to_le_bytes().iter().enumerate() {
                if at + i < n {
                    b[at + i] = *x;
                }
            }
        }
        Mutation::Truncate { len } => b.truncate(len % n),
        Mutation::Splice { from, to, len } => {
            let (from, to) = (from % n, to % n);
            let len = (*len).min(n - from).min(n - to);
            let chunk = b[from..from + len].to_vec();
            b[to..to + len].copy_from_slice(&chunk);
        }
        Mutation::Insert { at, bytes } => {
            let at = at % n;
            b.splice(at..at, bytes.iter().copied());
        }
        Mutation::Delete { at, len } => {
            let at = at % n;
            let end = (at + len).min(n);
            b.drain(at..end);
        }
    }
}

fn check_error(e: &CaptureError, len: usize) -> Result<(), TestCaseError> {
    let msg = e.to_string();
    prop_assert!(
        msg.starts_with(NAME),
        "error does not name the file: {}",
        msg
    );
    let offset = match e {
        CaptureError::Corrupt { offset, .. }
        | CaptureError::Truncated { offset, .. }
        | CaptureError::Foreign { offset, .. }
        | CaptureError::UnknownVersion { offset, .. }
        | CaptureError::AbiVersion { offset, .. } => *offset,
        other => {
            return Err(TestCaseError::fail(format!(
                "unexpected error kind: {other}"
            )))
        }
    };
    prop_assert!(
        msg.contains(&format!("byte {offset}")),
        "no offset in: {}",
        msg
    );
    prop_assert!(
        offset <= len as u64,
        "offset {} past the {}-byte input: {}",
        offset,
        len,
        msg
    );
    Ok(())
}

#[test]
fn mutated_captures_never_panic_and_errors_name_file_and_offset() {
    let seed = seed();
    // The seed itself reads cleanly.
    Capture::from_bytes(NAME, &seed).unwrap();
    let cases = 100_000;
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let t0 = std::time::Instant::now();
    let mut outcomes = [0u64; 3]; // ok, ok-with-truncated-tail, error
    let outcomes_cell = std::cell::RefCell::new(&mut outcomes);
    runner
        .run(&prop::collection::vec(mutation(), 1..4), |muts| {
            let mut b = seed.clone();
            for m in &muts {
                apply(&mut b, m);
            }
            // Preloading reader.
            match Capture::from_bytes(NAME, &b) {
                Ok(c) => {
                    for r in c.records() {
                        prop_assert!(r.cap <= r.orig);
                    }
                    outcomes_cell.borrow_mut()[if c.truncated.is_some() { 1 } else { 0 }] += 1;
                }
                Err(e) => {
                    check_error(&e, b.len())?;
                    outcomes_cell.borrow_mut()[2] += 1;
                }
            }
            // Streaming reader, with the samples decoded as inspect does.
            match CaptureReader::from_bytes(NAME, &b) {
                Ok(mut r) => loop {
                    match r.next_entry() {
                        Ok(Some(e)) => {
                            if let RecordRef::Sample { data, .. } = e.rec {
                                let _ = probes::abi::Event::decode(data);
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            check_error(&e, b.len())?;
                            break;
                        }
                    }
                },
                Err(e) => check_error(&e, b.len())?,
            }
            Ok(())
        })
        .unwrap();
    eprintln!(
        "{cases} mutations in {:.1?}: {} read cleanly, {} with a truncated tail, {} rejected",
        t0.elapsed(),
        outcomes[0],
        outcomes[1],
        outcomes[2]
    );
    // The mutations must exercise both outcomes, or the test proves little.
    assert!(
        outcomes[2] > cases as u64 / 10 && outcomes[0] > 0,
        "{outcomes:?}"
    );
}
