//! Capture write/read round trips, truncation, foreign files, and tshark.

mod support;

use harness::capture::{Capture, CaptureError, CaptureReader, Transport};
use probes::abi::Layout;
use probes::record::RecordRef;
use support::events::write_synthetic;
use support::tools::{tshark_installed, without_root_notice};

#[test]
fn streaming_and_preloaded_readers_return_exactly_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    for (layout, transport, rings) in [
        (Layout::Fixed4k, Transport::Perf, 2),
        (Layout::Compact, Transport::Ringbuf, 1),
    ] {
        let p = dir.path().join(format!("{layout}-{transport}.pcapng"));
        let written = write_synthetic(&p, layout, transport, rings, 500);

        let mut r = CaptureReader::open(&p).unwrap();
        assert_eq!(r.meta().layout, layout);
        assert_eq!(r.meta().rings, rings);
        let mut i = 0;
        while let Some(e) = r.next_entry().unwrap() {
            let (ring, ts, bytes, lost) = &written[i];
            assert_eq!(e.ring, *ring);
            match e.rec {
                RecordRef::Sample {
                    origin_ns, data, ..
                } => {
                    assert_eq!(origin_ns, *ts, "record {i}");
                    assert_eq!(data, &bytes[..], "record {i}");
                }
                RecordRef::Lost { count, .. } => assert_eq!(count, *lost),
            }
            i += 1;
        }
        assert_eq!(i, written.len());
        assert!(r.truncated_tail().is_none());
        assert_eq!(r.ring_stats().len(), rings as usize);
        assert_eq!(r.ring_stats()[0].dropped, 3);

        let c = Capture::load(&p).unwrap();
        let mut j = 0;
        c.for_each(|e| {
            let (_, ts, bytes, lost) = &written[j];
            match e.rec {
                RecordRef::Sample {
                    origin_ns, data, ..
                } => {
                    assert_eq!(origin_ns, *ts);
                    assert_eq!(data, &bytes[..]);
                }
                RecordRef::Lost { count, .. } => assert_eq!(count, *lost),
            }
            j += 1;
        })
        .unwrap();
        assert_eq!(j, written.len());
    }
}

#[test]
fn fixed4k_samples_are_stored_compactly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f.pcapng");
    write_synthetic(&p, Layout::Fixed4k, Transport::Perf, 1, 200);
    let size = std::fs::metadata(&p).unwrap().len();
    // 196 samples × 4148 bytes would be ~800 KB; trimmed they are ~100 bytes each.
    assert!(size < 60_000, "capture is {size} bytes");
}

#[test]
fn a_truncated_final_block_ends_the_stream_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.pcapng");
    let written = write_synthetic(&p, Layout::Compact, Transport::Perf, 2, 100);
    let bytes = std::fs::read(&p).unwrap();
    // Cut in the middle of the last EPB (before the 2 × 64-byte ISBs).
    let cut = bytes.len() - 128 - 20;
    let c = Capture::from_bytes("cut.pcapng", &bytes[..cut]).unwrap();
    let (off, _) = c.truncated.clone().expect("truncation reported");
    assert!(off < cut as u64);
    assert_eq!(c.records().len(), written.len() - 1);
    // Block boundaries (every pcapng block starts with type, then total length):
    // a cut exactly on one is a complete, shorter file; a cut anywhere else is a
    // truncated final block. (Where the middle falls depends on the metadata,
    // which records the command line, so it can land on either.)
    let mut boundaries = vec![0usize];
    while let Some(&off) = boundaries.last().filter(|&&o| o < bytes.len()) {
        let len = u32::from_le_bytes(bytes[off + 4..off + 8].try_into().unwrap()) as usize;
        boundaries.push(off + len);
    }
    for cut in [
        bytes.len() - 1,
        bytes.len() - 65,
        bytes.len() / 2,
        bytes.len() / 2 + 3,
    ] {
        let c = Capture::from_bytes("cut.pcapng", &bytes[..cut]).unwrap();
        if boundaries.contains(&cut) {
            assert!(
                c.truncated.is_none(),
                "cut at block boundary {cut} is a complete file"
            );
        } else {
            assert!(c.truncated.is_some(), "cut at {cut}, inside a block");
        }
    }
}

#[test]
fn corruption_in_the_middle_is_an_error_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.pcapng");
    write_synthetic(&p, Layout::Compact, Transport::Perf, 2, 100);
    let mut bytes = std::fs::read(&p).unwrap();
    // Find the 10th EPB and break its trailer length.
    let mut off = 0usize;
    let mut epbs = 0;
    loop {
        let ty = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap());
        let len = u32::from_le_bytes(bytes[off + 4..off + 8].try_into().unwrap()) as usize;
        if ty == 6 {
            epbs += 1;
            if epbs == 10 {
                bytes[off + len - 1] ^= 0x40;
                break;
            }
        }
        off += len;
    }
    let e = Capture::from_bytes("bad.pcapng", &bytes).err().unwrap();
    let msg = e.to_string();
    assert!(
        matches!(e, CaptureError::Corrupt { offset, .. } if offset == off as u64),
        "{msg}"
    );
    assert!(
        msg.contains("bad.pcapng") && msg.contains(&format!("byte {off}")),
        "{msg}"
    );
}

#[test]
fn foreign_and_wrong_version_files_are_rejected() {
    // A plain pcapng with no dropbench metadata.
    let mut w = pcap_file::pcapng::PcapNgWriter::new(Vec::new()).unwrap();
    w.write_pcapng_block(
        pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock {
            linktype: pcap_file::DataLink::ETHERNET,
            snaplen: 0,
            options: vec![],
        },
    )
    .unwrap();
    let plain = w.into_inner();
    let e = CaptureReader::from_bytes("plain.pcapng", &plain)
        .err()
        .unwrap();
    assert!(matches!(e, CaptureError::Foreign { .. }), "{e}");

    let e = CaptureReader::from_bytes("x.pcap", &[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0])
        .err()
        .unwrap();
    assert!(matches!(e, CaptureError::Foreign { offset: 0, .. }), "{e}");
    let e = CaptureReader::from_bytes("empty", &[]).err().unwrap();
    assert!(matches!(e, CaptureError::Truncated { .. }), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v.pcapng");
    write_synthetic(&p, Layout::Compact, Transport::Perf, 1, 10);
    let bytes = std::fs::read(&p).unwrap();
    for (from, to, want) in [
        (
            &b"\"abi_version\":1"[..],
            &b"\"abi_version\":7"[..],
            "ABI version 7",
        ),
        (
            &b"\"dropbench_capture\":1"[..],
            &b"\"dropbench_capture\":9"[..],
            "format version 9",
        ),
    ] {
        let mut b = bytes.clone();
        let at = b.windows(from.len()).position(|w| w == from).unwrap();
        b[at..at + from.len()].copy_from_slice(to);
        let e = CaptureReader::from_bytes("v.pcapng", &b)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains(want) && e.contains("v.pcapng") && e.contains("byte"),
            "{e}"
        );
    }
    // Wrong link type: a ringbuf IDB in a perf capture.
    let mut b = bytes.clone();
    let idb = b
        .windows(8)
        .position(|w| {
            w == [1, 0, 0, 0, 0x24, 0, 0, 0] || (w[0..4] == [1, 0, 0, 0] && w[6..8] == [0, 0])
        })
        .unwrap();
    b[idb + 8] = 148;
    let e = Capture::from_bytes("lt.pcapng", &b).err().unwrap();
    assert!(matches!(e, CaptureError::Foreign { .. }), "{e}");
}

#[test]
fn pcap_file_crate_reads_our_files() {
    // An independent reader agrees on block count and timestamps.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pf.pcapng");
    let written = write_synthetic(&p, Layout::Compact, Transport::Perf, 2, 60);
    let meta = CaptureReader::open(&p).unwrap().meta().clone();
    let bytes = std::fs::read(&p).unwrap();
    let mut r = pcap_file::pcapng::PcapNgReader::new(&bytes[..]).unwrap();
    let mut epbs = 0;
    while let Some(b) = r.next_block() {
        if let pcap_file::pcapng::Block::EnhancedPacket(epb) = b.unwrap() {
            let (_, ts, data, lost) = &written[epbs];
            if *lost == 0 {
                // pcap-file 2.0.0 returns the raw 64-bit timestamp as ns; with if_tsresol 9 that is right.
                assert_eq!(epb.timestamp.as_nanos() as u64, meta.wall_of(*ts));
                assert_eq!(epb.original_len as usize, data.len());
            }
            epbs += 1;
        }
    }
    assert_eq!(epbs, written.len());
}

/// tshark must open every capture with no error or warning (a skip where
/// tshark is missing, a failure under CI=true).
#[test]
fn tshark_and_capinfos_open_captures_cleanly() {
    if !tshark_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (layout, transport, rings) in [
        (Layout::Fixed4k, Transport::Perf, 2),
        (Layout::Compact, Transport::Ringbuf, 1),
    ] {
        let p = dir.path().join(format!("{layout}.pcapng"));
        let written = write_synthetic(&p, layout, transport, rings, 120);
        let meta = CaptureReader::open(&p).unwrap().meta().clone();
        let out = std::process::Command::new("tshark")
            .args(["-r"])
            .arg(&p)
            .args([
                "-T",
                "fields",
                "-e",
                "frame.time_epoch",
                "-e",
                "frame.len",
                "-e",
                "frame.cap_len",
            ])
            .output()
            .unwrap();
        let stderr = without_root_notice(&out.stderr);
        assert!(out.status.success(), "tshark failed: {stderr}");
        assert!(stderr.trim().is_empty(), "tshark warned: {stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), written.len());
        for (line, (_, ts, data, lost)) in lines.iter().zip(&written) {
            if *lost > 0 {
                continue;
            }
            let mut f = line.split('\t');
            let epoch = f.next().unwrap();
            let (s, ns) = epoch.split_once('.').unwrap();
            let wall = meta.wall_of(*ts);
            assert_eq!(s.parse::<u64>().unwrap(), wall / 1_000_000_000, "{line}");
            assert_eq!(ns.parse::<u64>().unwrap(), wall % 1_000_000_000, "{line}");
            assert_eq!(f.next().unwrap().parse::<usize>().unwrap(), data.len());
        }
        let ci = std::process::Command::new("capinfos")
            .arg(&p)
            .output()
            .unwrap();
        let cerr = without_root_notice(&ci.stderr);
        assert!(
            ci.status.success() && cerr.trim().is_empty(),
            "capinfos: {cerr}"
        );
        let cout = String::from_utf8_lossy(&ci.stdout);
        assert!(cout.contains("nanoseconds"), "{cout}");
    }
}

/// The committed real captures open in tshark without errors or warnings too,
/// and tshark counts as many frames as our reader has records.
#[test]
fn tshark_opens_the_committed_fixtures() {
    if !tshark_installed() {
        return;
    }
    let dir = support::fixtures_dir();
    let Ok(rd) = std::fs::read_dir(&dir) else {
        eprintln!("no fixtures at {}", dir.display());
        return;
    };
    for f in rd.filter_map(|e| e.ok().map(|e| e.path())) {
        if f.extension().is_none_or(|e| e != "pcapng") {
            continue;
        }
        let c = harness::capture::Capture::load(&f).unwrap();
        assert!(c.truncated.is_none(), "{}", f.display());
        let out = std::process::Command::new("tshark")
            .arg("-r")
            .arg(&f)
            .args(["-T", "fields", "-e", "frame.number"])
            .output()
            .unwrap();
        let stderr = without_root_notice(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "{}: {stderr}",
            f.display()
        );
        let frames = String::from_utf8_lossy(&out.stdout).lines().count();
        assert_eq!(frames, c.records().len(), "{}", f.display());
    }
}

/// A writer abandoned without `finish` (as if the process were killed) leaves
/// whatever its 8 MiB buffer flushed: a file that ends mid-block. Every
/// complete block before the cut is read back, and a cut block is reported.
#[test]
fn an_abandoned_writer_leaves_a_readable_file() {
    use harness::capture::{CaptureMeta, CaptureWriter};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("abandoned.pcapng");
    let meta = CaptureMeta::now(
        Layout::Fixed4k,
        Transport::Perf,
        1 << 20,
        1,
        probes::Wakeup::Events(1),
    );
    let mut w = CaptureWriter::create(&p, &meta).unwrap();
    // Non-zero bytes so nothing is trimmed: 3000 × ~4.2 KB = 12.5 MB, more
    // than the buffer, so it spills to the file at an arbitrary byte.
    let data: Vec<u8> = (0..4148u32).map(|i| (i % 251) as u8 | 1).collect();
    for i in 0..3000u64 {
        w.write(RecordRef::Sample {
            ring: 0,
            origin_ns: meta.start_monotonic_ns + i,
            data: &data,
        })
        .unwrap();
    }
    std::mem::forget(w); // no finish, no final flush: the kill
    let c = Capture::load(&p).unwrap();
    let size = std::fs::metadata(&p).unwrap().len();
    let n = c.records().len();
    assert!(n > 1000 && n < 3000, "{n} records in {size} bytes");
    // BufWriter spills at write-call boundaries: after a block's head, its
    // data or its trailer. Unless the spill fell exactly on a block boundary,
    // the last block is cut and reported. Either way, the n blocks read end
    // where the file (or the cut) does: header + n × 4180-byte EPBs.
    let end = match &c.truncated {
        Some((off, _)) => {
            assert!(*off < size);
            *off
        }
        None => size,
    };
    let header = end - n as u64 * (32 + 4148);
    assert!(header > 0 && header < 4180, "header {header}");
    let mut i = 0u64;
    c.for_each(|e| {
        assert_eq!(e.origin_ns, meta.start_monotonic_ns + i);
        assert!(matches!(e.rec, RecordRef::Sample { data: d, .. } if d == &data[..]));
        i += 1;
    })
    .unwrap();
}
