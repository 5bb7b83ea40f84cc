//! Classifier cost per matcher, ns/event, on the paths of the fixed4k fixture
//! (real loadgen corpus paths, ~100-200 bytes) and on short system paths.
//!
//! `cargo bench -p harness --bench pipeline_classify`

use std::time::Instant;

use harness::capture::Capture;
use harness::classify::Classifier;
use probes::abi::Event;
use probes::record::RecordRef;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let cap = Capture::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/captures/fixed4k-perf.pcapng"),
    )
    .expect("fixture");
    let mut corpus = Vec::new();
    cap.for_each(|e| {
        if let RecordRef::Sample { data, .. } = e.rec {
            corpus.push(Event::decode(data).expect("decodes").path.to_vec());
        }
    })
    .expect("the capture reads");
    let system: Vec<Vec<u8>> = [
        "/etc/ld.so.cache",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/proc/self/status",
        "/etc/passwd",
        "/home/alice/.bashrc",
        "/usr/share/locale/locale.alias",
        "/tmp/cc8xYz.o",
        "/var/log/syslog",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let c = Classifier::default_rules();
    let mut s = c.scratch();
    let rounds = if full { 50 } else { 1 };
    for (name, paths) in [("fixture corpus", &corpus), ("system paths", &system)] {
        let reps = rounds * (10_000 / paths.len()).max(1);
        let n = (paths.len() * reps) as f64;
        let time = |f: &mut dyn FnMut(&[u8]) -> Option<u16>| {
            let t = Instant::now();
            let mut hits = 0u64;
            for _ in 0..reps {
                for p in paths {
                    hits += f(p).is_some() as u64;
                }
            }
            (t.elapsed().as_nanos() as f64 / n, hits as f64 / n)
        };
        let prefix = time(&mut |p| c.match_prefix(p));
        let glob = time(&mut |p| c.match_glob(p, &mut s));
        let regex = time(&mut |p| c.match_regex(p, &mut s));
        let all = time(&mut |p| c.match_path(p, &mut s));
        // The per-worker path cache (16 MiB of keys), warm after the first round.
        let mut cached_scratch = c.scratch_with_cache(16 << 20);
        let cached = time(&mut |p| c.match_path(p, &mut cached_scratch));
        let avg_len = paths.iter().map(|p| p.len()).sum::<usize>() as f64 / paths.len() as f64;
        println!(
            "{name} ({} paths, avg {avg_len:.0} bytes): ns/event (hit rate)",
            paths.len()
        );
        for (k, (ns, hit)) in [
            ("prefix", prefix),
            ("glob", glob),
            ("regex", regex),
            ("all", all),
            ("cached", cached),
        ] {
            println!("  {k:<7} {ns:7.0}  ({:.0}%)", hit * 100.0);
        }
        let (hits, misses) = cached_scratch.cache_counts();
        println!(
            "  cache hit rate {:.1}% ({} distinct paths)",
            100.0 * hits as f64 / (hits + misses).max(1) as f64,
            misses
        );
    }
}
