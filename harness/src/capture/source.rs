//! [`Capture`]: a capture ready to replay, either preloaded into memory or
//! streamed from its file on every pass.
//!
//! Opening one always reads the file once, streaming, for what a replay must
//! know before it starts (its [`Summary`]: sample count, time span, bytes,
//! samples per ring) and what the file says besides its records (metadata,
//! kernel counters, notes). A preloaded capture keeps the trimmed sample bytes
//! in one arena; a streamed one keeps only its path, so its memory does not
//! grow with the file. [`Loading::Auto`] preloads only what fits (see
//! [`crate::host::memory_budget`] and docs/tuning.md, "Big captures").

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use probes::record::RecordRef;

use super::reader::{ReaderParts, Stored};
use super::{file_name, CaptureError, CaptureMeta, CaptureReader, Entry, RingStats};

/// How a capture is held for replay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Loading {
    /// Preload when it fits ([`fits`]), stream otherwise.
    #[default]
    Auto,
    /// Preload, or refuse with [`CaptureError::TooBig`] when it does not fit.
    Preload,
    /// Read the file again on every pass; memory stays flat.
    Stream,
}

impl Loading {
    pub fn name(self) -> &'static str {
        match self {
            Loading::Auto => "auto",
            Loading::Preload => "preload",
            Loading::Stream => "stream",
        }
    }
}

impl fmt::Display for Loading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Loading {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Loading::Auto),
            "preload" => Ok(Loading::Preload),
            "stream" => Ok(Loading::Stream),
            other => Err(format!(
                "unknown capture loading {other:?} (expected auto, preload or stream)"
            )),
        }
    }
}

/// One record of a preloaded [`Capture`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredRecord {
    pub ring: u32,
    pub origin_ns: u64,
    /// Non-zero for a lost marker.
    pub lost: u64,
    /// Offset of the trimmed bytes in the arena.
    pub start: usize,
    /// Trimmed length (trailing zeros removed).
    pub cap: u32,
    /// Original length: the sample is `cap` bytes followed by `orig - cap` zeros.
    pub orig: u32,
}

/// What a whole capture holds, counted in one streaming pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Samples (lost markers excluded).
    pub samples: u64,
    /// Samples per ring, indexed by ring.
    pub per_ring: Vec<u64>,
    /// Samples the recording lost (the lost markers' counts).
    pub lost: u64,
    /// Earliest and latest sample timestamps (0 without samples).
    pub first_ns: u64,
    pub last_ns: u64,
    /// Sum of the samples' stored lengths (trailing zeros included).
    pub sample_bytes: u64,
    /// Size of the file (of the bytes, for an in-memory capture).
    pub file_bytes: u64,
}

impl Summary {
    fn add(&mut self, r: &Stored<'_>, rings: u32) {
        if r.orig == 0 {
            self.lost += r.lost;
            return;
        }
        if self.samples == 0 {
            self.first_ns = r.origin_ns;
            self.last_ns = r.origin_ns;
        }
        self.first_ns = self.first_ns.min(r.origin_ns);
        self.last_ns = self.last_ns.max(r.origin_ns);
        self.samples += 1;
        self.sample_bytes += r.orig as u64;
        let ring = (r.ring % rings.max(1)) as usize;
        if self.per_ring.len() <= ring {
            self.per_ring.resize(ring + 1, 0);
        }
        self.per_ring[ring] += 1;
    }

    /// Mean stored bytes of a sample (4096 for a capture without samples).
    pub fn mean_sample_len(&self) -> u64 {
        self.sample_bytes
            .checked_div(self.samples)
            .unwrap_or(4096)
            .max(8)
    }
}

/// Where the records are.
pub(crate) enum Body {
    Loaded {
        records: Vec<StoredRecord>,
        arena: Vec<u8>,
    },
    Streamed {
        path: PathBuf,
    },
}

/// A capture ready to replay (see the module docs).
pub struct Capture {
    pub meta: CaptureMeta,
    pub summary: Summary,
    pub ring_stats: Vec<RingStats>,
    /// See [`CaptureReader::truncated_tail`].
    pub truncated: Option<(u64, String)>,
    /// See [`CaptureReader::notes`].
    pub notes: Vec<String>,
    /// The recorded command's tasks' CPU use ([`super::cpu_profile`]), if
    /// the capture has one (`harness record --run`).
    pub cpu_profile: Option<super::cpu_profile::CpuProfile>,
    pub file: String,
    pub(crate) body: Body,
}

impl Capture {
    /// Preloads `path` ([`Loading::Preload`]).
    pub fn load(path: &Path) -> Result<Capture, CaptureError> {
        Self::open(path, Loading::Preload)
    }

    /// Opens `path` for replay, preloaded or streamed as `loading` says.
    pub fn open(path: &Path, loading: Loading) -> Result<Capture, CaptureError> {
        let file_bytes = std::fs::metadata(path)
            .map_err(|source| CaptureError::Io {
                file: file_name(path),
                op: "open",
                source,
            })?
            .len();
        let preload = match loading {
            Loading::Stream => false,
            Loading::Auto => fits(file_bytes, crate::host::memory_budget()),
            Loading::Preload => {
                let budget = crate::host::memory_budget();
                if !fits(file_bytes, budget) {
                    return Err(CaptureError::TooBig {
                        file: file_name(path),
                        bytes: file_bytes,
                        budget: budget.unwrap_or(0),
                    });
                }
                true
            }
        };
        let mut c = scan(CaptureReader::open(path)?, preload)?;
        c.summary.file_bytes = file_bytes;
        if !preload {
            c.body = Body::Streamed {
                path: path.to_path_buf(),
            };
        }
        Ok(c)
    }

    /// Preloads a capture held in memory; `name` stands for the file in errors.
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Capture, CaptureError> {
        let mut c = scan(CaptureReader::from_bytes(name, bytes)?, true)?;
        c.summary.file_bytes = bytes.len() as u64;
        Ok(c)
    }

    /// True when the records are read from the file on every pass.
    pub fn is_streamed(&self) -> bool {
        matches!(self.body, Body::Streamed { .. })
    }

    /// How it is held, in words: "preloaded" or "streamed".
    pub fn holding(&self) -> &'static str {
        if self.is_streamed() {
            "streamed"
        } else {
            "preloaded"
        }
    }

    /// The preloaded records in file order (none for a streamed capture).
    pub fn records(&self) -> &[StoredRecord] {
        match &self.body {
            Body::Loaded { records, .. } => records,
            Body::Streamed { .. } => &[],
        }
    }

    /// The stored (trimmed) bytes of a preloaded `rec`; the sample continues
    /// with `rec.orig - rec.cap` zero bytes.
    #[inline]
    pub fn trimmed(&self, rec: &StoredRecord) -> &[u8] {
        match &self.body {
            Body::Loaded { arena, .. } => &arena[rec.start..rec.start + rec.cap as usize],
            Body::Streamed { .. } => &[],
        }
    }

    /// Calls `f` for every record in file order, the samples' zeros restored.
    /// A streamed capture is read again, so this can fail.
    pub fn for_each(&self, mut f: impl FnMut(Entry<'_>)) -> Result<(), CaptureError> {
        match &self.body {
            Body::Streamed { path } => CaptureReader::open(path)?.for_each(f),
            Body::Loaded { records, .. } => {
                let mut buf = Vec::with_capacity(8192);
                for r in records {
                    if r.orig == 0 {
                        f(Entry {
                            ring: r.ring,
                            origin_ns: r.origin_ns,
                            rec: RecordRef::Lost {
                                ring: r.ring,
                                count: r.lost,
                            },
                        });
                    } else {
                        buf.clear();
                        buf.extend_from_slice(self.trimmed(r));
                        buf.resize(r.orig as usize, 0);
                        f(Entry {
                            ring: r.ring,
                            origin_ns: r.origin_ns,
                            rec: RecordRef::Sample {
                                ring: r.ring,
                                origin_ns: r.origin_ns,
                                data: &buf,
                            },
                        });
                    }
                }
                Ok(())
            }
        }
    }

    /// Number of samples (lost markers excluded).
    pub fn samples(&self) -> usize {
        self.summary.samples as usize
    }
}

/// Reads every record of `r`, counting them, and keeps them when `keep`.
fn scan<R: std::io::Read>(mut r: CaptureReader<R>, keep: bool) -> Result<Capture, CaptureError> {
    let rings = r.meta().rings;
    let mut summary = Summary::default();
    let mut records = Vec::new();
    let mut arena = Vec::new();
    while let Some(s) = r.next_stored()? {
        summary.add(&s, rings);
        if keep {
            records.push(StoredRecord {
                ring: s.ring,
                origin_ns: s.origin_ns,
                lost: s.lost,
                start: arena.len(),
                cap: s.bytes.len() as u32,
                orig: s.orig,
            });
            arena.extend_from_slice(s.bytes);
        }
    }
    records.shrink_to_fit();
    arena.shrink_to_fit();
    let ReaderParts {
        meta,
        ring_stats,
        truncated,
        notes,
        cpu_profile,
        file,
    } = r.into_parts();
    Ok(Capture {
        meta,
        summary,
        ring_stats,
        truncated,
        notes,
        cpu_profile,
        file,
        body: Body::Loaded { records, arena },
    })
}

/// Whether a capture file of `file_bytes` may be preloaded with `budget`
/// bytes of memory left: the preloaded form takes at most about the file's
/// size (trimmed bytes plus a 40-byte record per block, where the file spends
/// 32+ bytes of block framing), and it may use only half of what is left, so
/// the rings, the pipeline and the sink keep the other half. Without a known
/// budget, preloading is allowed.
pub fn fits(file_bytes: u64, budget: Option<u64>) -> bool {
    budget.is_none_or(|b| file_bytes <= b / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loading_parses_its_three_names_and_rejects_others() {
        for l in [Loading::Auto, Loading::Preload, Loading::Stream] {
            assert_eq!(l.name().parse::<Loading>(), Ok(l));
        }
        let e = "mmap".parse::<Loading>().unwrap_err();
        assert!(e.contains("auto, preload or stream"), "{e}");
    }

    #[test]
    fn a_file_fits_in_half_of_the_budget() {
        assert!(fits(100, None));
        assert!(fits(100, Some(200)));
        assert!(!fits(101, Some(200)));
        assert!(!fits(1, Some(0)));
    }
}
