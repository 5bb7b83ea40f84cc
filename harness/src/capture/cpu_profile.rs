//! What the traced tasks used of each CPU while a capture was recorded, in
//! short buckets: the input of replay's co-runner (`replay::co_runner`).
//!
//! A real program traced live takes CPU that an emulated replay does not: it
//! runs its own code, and every traced syscall pays the tracepoint and the
//! probes' programs on the CPU it runs on. The reader competes with all of
//! it. `harness record --run` samples the command's tasks every
//! [`DEFAULT_BUCKET_NS`] and stores the profile in the capture as one pcapng
//! Custom Block ([`CUSTOM_BLOCK`], private enterprise number [`PEN`]) holding
//! JSON; tshark shows it as a custom block and dropbench's reader parses it
//! (docs/capture-format.md).

use serde::{Deserialize, Serialize};

/// pcapng "copiable" Custom Block type: tools that rewrite a file keep it.
pub const CUSTOM_BLOCK: u32 = 0x0000_0BAD;
/// The enterprise number in the custom block: 32473, the one IANA set aside
/// for documentation and examples (RFC 5612); the JSON's `dropbench_cpu_profile`
/// key is what marks the block as this one.
pub const PEN: u32 = 32473;
/// 10 ms buckets: the scheduler's time slices on these kernels are 3-4 ms, so
/// a bucket holds a few of them, and a 60 s run is 6000 buckets per CPU
/// (about 50 KB of JSON for two CPUs).
pub const DEFAULT_BUCKET_NS: u64 = 10_000_000;
/// Largest JSON body written: the reader takes blocks up to 1 MiB. A longer
/// profile is stored with wider buckets ([`CpuProfile::fit`]).
pub const MAX_JSON_BYTES: usize = 900 << 10;

/// The traced tasks' CPU use over time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuProfile {
    /// Always 1; its presence marks the block.
    pub dropbench_cpu_profile: u32,
    /// Width of one bucket, ns.
    pub bucket_ns: u64,
    /// CLOCK_MONOTONIC at the start of bucket 0: the clock of the samples'
    /// timestamps (`bpf_ktime_get_ns`), so bucket `i` covers
    /// `start_ns + i * bucket_ns ..` of the recording.
    pub start_ns: u64,
    /// `busy_ns[cpu][bucket]`: ns the traced tasks ran on that CPU in that
    /// bucket, their syscalls and the probes' programs in them included
    /// (each task's `/proc/PID/task/TID/schedstat`, credited to the CPU
    /// `/proc/.../stat` says it last ran on).
    pub busy_ns: Vec<Vec<u64>>,
    /// The probes' programs' run time over the recording, all CPUs together,
    /// when the kernel's BPF run-time statistics were on (a part of `busy_ns`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub programs_ns: Option<u64>,
    /// Distinct tasks (threads) seen over the recording.
    pub tasks: u32,
}

impl CpuProfile {
    /// An empty profile of `cpus` CPUs starting at `start_ns`.
    pub fn new(cpus: usize, bucket_ns: u64, start_ns: u64) -> CpuProfile {
        CpuProfile {
            dropbench_cpu_profile: 1,
            bucket_ns: bucket_ns.max(1),
            start_ns,
            busy_ns: vec![Vec::new(); cpus],
            programs_ns: None,
            tasks: 0,
        }
    }

    /// Buckets recorded.
    pub fn buckets(&self) -> usize {
        self.busy_ns.iter().map(Vec::len).max().unwrap_or(0)
    }

    /// Adds `ns` of CPU `cpu` at monotonic time `at_ns` (before the start: bucket 0).
    pub fn add(&mut self, cpu: usize, at_ns: u64, ns: u64) {
        if cpu >= self.busy_ns.len() {
            self.busy_ns.resize(cpu + 1, Vec::new());
        }
        let b = (at_ns.saturating_sub(self.start_ns) / self.bucket_ns) as usize;
        let row = &mut self.busy_ns[cpu];
        if row.len() <= b {
            row.resize(b + 1, 0);
        }
        row[b] += ns;
    }

    /// Total ns per CPU.
    pub fn total_per_cpu(&self) -> Vec<u64> {
        self.busy_ns.iter().map(|r| r.iter().sum()).collect()
    }

    /// The busy share of `cpu` in `bucket` (0..=1; more is clipped: a task's
    /// time credited to its last CPU may straddle a bucket edge).
    pub fn share(&self, cpu: usize, bucket: usize) -> f64 {
        let ns = self
            .busy_ns
            .get(cpu)
            .and_then(|r| r.get(bucket))
            .copied()
            .unwrap_or(0);
        (ns as f64 / self.bucket_ns as f64).min(1.0)
    }

    /// Merges pairs of buckets (twice the width).
    fn coarsen(&mut self) {
        let pairs = |v: &[u64]| v.chunks(2).map(|c| c.iter().sum()).collect::<Vec<u64>>();
        for row in &mut self.busy_ns {
            *row = pairs(row);
        }
        self.bucket_ns *= 2;
    }

    /// The profile as the custom block's JSON, with buckets widened until it
    /// fits in [`MAX_JSON_BYTES`].
    pub fn fit(&self) -> Vec<u8> {
        let mut p = self.clone();
        loop {
            // A struct of numbers: serializing it cannot fail.
            let json = serde_json::to_vec(&p).unwrap_or_default();
            if json.len() <= MAX_JSON_BYTES || p.buckets() <= 1 {
                return json;
            }
            p.coarsen();
        }
    }

    /// Parses a custom block's data (after the enterprise number): `None` if
    /// it is not a dropbench CPU profile, an error if it claims to be one
    /// and does not parse.
    pub fn parse(data: &[u8]) -> Option<Result<CpuProfile, String>> {
        let text = std::str::from_utf8(data).ok()?;
        if !text.trim_start().starts_with("{\"dropbench_cpu_profile\"") {
            return None;
        }
        let end = text.rfind('}').map_or(text.len(), |i| i + 1);
        Some(
            serde_json::from_str::<CpuProfile>(&text[..end])
                .map_err(|e| format!("CPU profile block: {e}"))
                .and_then(|p| match p.bucket_ns {
                    0 => Err("CPU profile block: bucket_ns is 0".into()),
                    _ => Ok(p),
                }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_lands_in_its_bucket_and_cpu() {
        let mut p = CpuProfile::new(2, 10, 1000);
        p.add(0, 1000, 4);
        p.add(0, 1009, 3);
        p.add(1, 1025, 10);
        p.add(3, 500, 1); // before the start: bucket 0; an unseen CPU grows the table
        assert_eq!(p.busy_ns[0], vec![7]);
        assert_eq!(p.busy_ns[1], vec![0, 0, 10]);
        assert_eq!(p.busy_ns[3], vec![1]);
        assert_eq!(p.buckets(), 3);
        assert_eq!(p.total_per_cpu(), vec![7, 10, 0, 1]);
        assert_eq!(p.share(1, 2), 1.0);
        assert_eq!(p.share(0, 0), 0.7);
        assert_eq!(p.share(0, 9), 0.0);
    }

    #[test]
    fn a_long_profile_is_stored_with_wider_buckets_and_the_same_totals() {
        let mut p = CpuProfile::new(2, 1_000_000, 0);
        for b in 0..200_000u64 {
            p.add((b % 2) as usize, b * 1_000_000, 123_456 + b);
        }
        let json = p.fit();
        assert!(json.len() <= MAX_JSON_BYTES, "{}", json.len());
        let back = CpuProfile::parse(&json).unwrap().unwrap();
        assert!(back.bucket_ns > p.bucket_ns);
        assert_eq!(back.total_per_cpu(), p.total_per_cpu());
        // A short one is stored as it is.
        let mut q = CpuProfile::new(1, 10, 0);
        q.add(0, 5, 5);
        q.programs_ns = Some(2);
        assert_eq!(CpuProfile::parse(&q.fit()).unwrap().unwrap(), q);
    }

    #[test]
    fn other_custom_blocks_are_not_profiles_and_a_broken_profile_is_an_error() {
        assert!(CpuProfile::parse(b"\x00\x01binary").is_none());
        assert!(CpuProfile::parse(br#"{"other": 1}"#).is_none());
        let e = CpuProfile::parse(br#"{"dropbench_cpu_profile": 1, "bucket_ns": "x"}"#)
            .unwrap()
            .unwrap_err();
        assert!(e.contains("CPU profile"), "{e}");
        let zero =
            br#"{"dropbench_cpu_profile":1,"bucket_ns":0,"start_ns":0,"busy_ns":[],"tasks":0}"#;
        assert!(CpuProfile::parse(zero).unwrap().is_err());
    }
}
