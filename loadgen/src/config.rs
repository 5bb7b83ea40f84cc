//! What a run does: [`LoadConfig`] and its parts, with parsing from the CLI's text forms.

use crate::error::LoadError;
use crate::ops::OpKind;
use crate::schedule::{Schedule, MAX_RATE};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Upper bound on worker threads; far above any core count this runs on.
pub const MAX_THREADS: usize = 1024;
/// Upper bound on the burst size; at 65536 ops a burst is already tens of ms of syscalls.
pub const MAX_BURST: usize = 65_536;
/// Upper bound on a generated corpus, in paths (a million paths of ~60 B is ~60 MB of C strings).
pub const MAX_CORPUS_PATHS: usize = 1_000_000;
/// Upper bound on one cycle of the op mix, in slots (weights are counted in thousandths).
pub const MAX_MIX_CYCLE: u64 = 1 << 20;

/// Target rate of a run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rate {
    /// Open-loop pacing to this many ops/s, summed over all threads.
    PerSecond(f64),
    /// No pacing: every thread issues ops back to back.
    Max,
}

impl FromStr for Rate {
    type Err = LoadError;

    /// `max`, or a number with an optional `k`/`M` suffix: `200000`, `200k`, `1.5M`, `2e5`.
    /// Zero and negative numbers parse; [`LoadConfig::validate`] rejects them with the value.
    fn from_str(text: &str) -> Result<Rate, LoadError> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("max") {
            return Ok(Rate::Max);
        }
        let (digits, scale) = match t.as_bytes().last() {
            Some(b'k' | b'K') => (&t[..t.len() - 1], 1e3),
            Some(b'm' | b'M') => (&t[..t.len() - 1], 1e6),
            _ => (t, 1.0),
        };
        let value: f64 = digits.parse().map_err(|_| LoadError::RateSyntax {
            text: text.to_string(),
        })?;
        Ok(Rate::PerSecond(value * scale))
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rate::PerSecond(r) => write!(f, "{r} ops/s"),
            Rate::Max => write!(f, "max"),
        }
    }
}

/// When a run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunEnd {
    /// After this long. Paced runs issue the slots due before it; a thread still behind 10 ms
    /// after it ([`crate::PACED_END_GRACE`]) stops there and reports the slots it did not reach as
    /// missed.
    Duration(Duration),
    /// After this many ops in total, split over the threads as evenly as the slot interleave allows.
    Ops(u64),
}

/// Op mix: op name -> relative weight (`openat=1,stat=1` is half opens, half stats).
///
/// Names are kept as written so that [`LoadConfig::validate`] can name an unknown one; weights are
/// counted in thousandths when the op cycle is built.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OpMix(pub BTreeMap<String, f64>);

impl Default for OpMix {
    /// Half `openat`+`close`, half `stat`: the seed's trace mix.
    fn default() -> Self {
        OpMix(BTreeMap::from([
            ("openat".to_string(), 1.0),
            ("stat".to_string(), 1.0),
        ]))
    }
}

impl FromStr for OpMix {
    type Err = LoadError;

    /// `openat=1,stat=2`; a bare name means weight 1. Names are checked by [`OpMix::cycle`].
    fn from_str(text: &str) -> Result<OpMix, LoadError> {
        let mut weights = BTreeMap::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, weight) = match entry.split_once('=') {
                Some((n, w)) => (n.trim(), w.trim()),
                None => (entry, "1"),
            };
            if name.is_empty() {
                return Err(LoadError::MixSyntax {
                    entry: entry.to_string(),
                });
            }
            let w: f64 = weight.parse().map_err(|_| LoadError::BadWeight {
                op: name.to_string(),
                weight: weight.to_string(),
            })?;
            *weights.entry(name.to_string()).or_insert(0.0) += w;
        }
        Ok(OpMix(weights))
    }
}

impl OpMix {
    /// The repeating op sequence this mix stands for, evenly interleaved.
    ///
    /// Each weight is rounded to thousandths and the counts are divided by their gcd, so
    /// `openat=1,stat=1` gives `[openat, stat]` and `openat=0.25,stat=0.75` gives a cycle of 4. The ops
    /// are spread with smooth weighted round-robin, so any window of the cycle holds each op close to
    /// its share, and a whole cycle holds it exactly.
    pub fn cycle(&self) -> Result<Vec<OpKind>, LoadError> {
        let mut counts: Vec<(OpKind, u64)> = Vec::new();
        for (name, &weight) in &self.0 {
            let op = OpKind::from_name(name)
                .ok_or_else(|| LoadError::UnknownOp { name: name.clone() })?;
            if weight.is_nan() || weight < 0.0 || weight.is_infinite() {
                return Err(LoadError::BadWeight {
                    op: name.clone(),
                    weight: weight.to_string(),
                });
            }
            if weight * 1000.0 > MAX_MIX_CYCLE as f64 {
                return Err(LoadError::MixTooFine {
                    op: name.clone(),
                    weight,
                    limit: MAX_MIX_CYCLE,
                });
            }
            let thousandths = (weight * 1000.0).round() as u64;
            if thousandths > 0 {
                counts.push((op, thousandths));
            }
        }
        if counts.is_empty() {
            return Err(LoadError::EmptyMix);
        }
        let g = counts.iter().fold(0, |g, &(_, c)| gcd(g, c));
        for (_, c) in counts.iter_mut() {
            *c /= g;
        }
        let len: u64 = counts.iter().map(|&(_, c)| c).sum();
        if len > MAX_MIX_CYCLE {
            let (op, c) = counts
                .iter()
                .min_by_key(|&&(_, c)| c)
                .copied()
                .unwrap_or((OpKind::Openat, 0));
            return Err(LoadError::MixTooFine {
                op: op.name().to_string(),
                weight: c as f64,
                limit: MAX_MIX_CYCLE,
            });
        }
        // Smooth weighted round-robin: every step each op gains its count, the leader is picked and
        // pays back the cycle length. Over `len` steps each op is picked exactly `count` times.
        let mut current: Vec<i128> = vec![0; counts.len()];
        let mut cycle = Vec::with_capacity(len as usize);
        for _ in 0..len {
            for (cur, &(_, c)) in current.iter_mut().zip(&counts) {
                *cur += c as i128;
            }
            let lead = (0..counts.len())
                .max_by_key(|&i| (current[i], std::cmp::Reverse(i)))
                .unwrap_or(0);
            current[lead] -= len as i128;
            cycle.push(counts[lead].0);
        }
        Ok(cycle)
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// How to build the generated corpus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CorpusSpec {
    /// Paths in the list, existing and missing together.
    pub paths: usize,
    /// Share of the paths that do not exist (ENOENT), 0..=1.
    pub missing_share: f64,
    /// Share of the paths 3840..=4095 bytes long (near PATH_MAX = 4096 with its NUL), 0..=1.
    pub long_share: f64,
    /// Seed of the generator: the same seed gives the same names, depths and order.
    pub seed: u64,
    /// Parent of the temporary corpus directory; `/dev/shm` if writable, else the system temp dir,
    /// when `None` (see [`crate::corpus::default_parent_dir`]).
    pub parent_dir: Option<PathBuf>,
}

impl Default for CorpusSpec {
    /// 4096 paths: 10% missing, 1% near PATH_MAX.
    fn default() -> Self {
        CorpusSpec {
            paths: 4096,
            missing_share: 0.10,
            long_share: 0.01,
            seed: 1,
            parent_dir: None,
        }
    }
}

/// Where the paths come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathSource {
    /// A corpus generated in a temporary directory, removed when the run's [`crate::Load`] is dropped.
    Generated(CorpusSpec),
    /// A file of paths, one per line (bytes, not necessarily UTF-8); empty lines are skipped.
    ListFile(PathBuf),
}

impl Default for PathSource {
    fn default() -> Self {
        PathSource::Generated(CorpusSpec::default())
    }
}

/// Everything a run needs. Build one with [`LoadConfig::new`] and adjust the public fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoadConfig {
    /// Target rate over all threads, or `max`.
    pub rate: Rate,
    /// When the run ends.
    pub end: RunEnd,
    /// Worker threads (1..=1024).
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Worker `i` is pinned to `cpus[i % cpus.len()]`; no pinning when `None`.
    #[serde(default)]
    pub cpus: Option<Vec<usize>>,
    /// Relative weights of the ops.
    #[serde(default)]
    pub mix: OpMix,
    /// Where the paths come from.
    #[serde(default)]
    pub paths: PathSource,
    /// Ops issued back to back per wake-up (1..=65536). A paced thread sleeps until the due time of
    /// the first slot of its next burst, then issues the whole burst, so ops after the first in a burst
    /// may run up to `burst - 1` periods early; the average rate is unchanged. In `max` mode it is
    /// how many ops run between checks of the stop flag and the clock (at least 64).
    #[serde(default = "default_burst")]
    pub burst: usize,
    /// Nice value of the worker threads (-20..=19; below 0 needs CAP_SYS_NICE). `Some(-20)` keeps
    /// the paced rate on a machine busy with other work: a nice -20 thread weighs ~87x a nice 0 one
    /// (88761 vs 1024 in the kernel's table). `None` leaves the threads at the process's nice.
    #[serde(default)]
    pub nice: Option<i32>,
}

fn default_threads() -> usize {
    1
}

/// 8 ops per wake-up: at 100 k ops/s a thread wakes every 80 µs, often enough to keep bursts small,
/// rarely enough that the wake-up cost (~5–10 µs) stays a few % of the time.
fn default_burst() -> usize {
    8
}

impl LoadConfig {
    /// A config with defaults for the rest: 1 thread, no pinning, `openat=1,stat=1`, the default
    /// generated corpus, bursts of 8.
    pub fn new(rate: Rate, end: RunEnd) -> LoadConfig {
        LoadConfig {
            rate,
            end,
            threads: default_threads(),
            cpus: None,
            mix: OpMix::default(),
            paths: PathSource::default(),
            burst: default_burst(),
            nice: None,
        }
    }

    /// Checks every field and returns the first problem, naming the bad value.
    pub fn validate(&self) -> Result<(), LoadError> {
        if let Rate::PerSecond(r) = self.rate {
            Schedule::from_rate(r)?;
        }
        match self.end {
            RunEnd::Duration(d) if d.is_zero() => {
                return Err(LoadError::NoEnd {
                    what: "duration 0s".into(),
                })
            }
            RunEnd::Ops(0) => {
                return Err(LoadError::NoEnd {
                    what: "op count 0".into(),
                })
            }
            _ => {}
        }
        if self.threads == 0 || self.threads > MAX_THREADS {
            return Err(LoadError::BadThreads {
                threads: self.threads,
                limit: MAX_THREADS,
            });
        }
        if self.burst == 0 || self.burst > MAX_BURST {
            return Err(LoadError::BadBurst {
                burst: self.burst,
                limit: MAX_BURST,
            });
        }
        if let Some(nice) = self.nice {
            if !(-20..=19).contains(&nice) {
                return Err(LoadError::BadNice { nice });
            }
        }
        self.mix.cycle()?;
        if let Some(cpus) = &self.cpus {
            let allowed = allowed_cpus()?;
            if let Some(&cpu) = cpus.iter().find(|c| !allowed.contains(c)) {
                return Err(LoadError::NoSuchCpu {
                    cpu,
                    available: cpu_list(&allowed),
                });
            }
            if cpus.is_empty() {
                return Err(LoadError::EmptyCpuList);
            }
        }
        match &self.paths {
            PathSource::Generated(spec) => {
                if spec.paths == 0 || spec.paths > MAX_CORPUS_PATHS {
                    return Err(LoadError::BadCorpusSize {
                        paths: spec.paths,
                        limit: MAX_CORPUS_PATHS,
                    });
                }
                if !(0.0..=1.0).contains(&spec.missing_share) {
                    return Err(LoadError::BadMissingShare {
                        share: spec.missing_share,
                    });
                }
                if !(0.0..=1.0).contains(&spec.long_share) {
                    return Err(LoadError::BadLongShare {
                        share: spec.long_share,
                    });
                }
                if let Some(dir) = &spec.parent_dir {
                    std::fs::metadata(dir).map_err(|source| LoadError::CorpusDir {
                        path: dir.clone(),
                        source,
                    })?;
                }
            }
            PathSource::ListFile(path) => {
                let bad = |source| LoadError::CorpusFile {
                    path: path.clone(),
                    source,
                };
                let meta = std::fs::metadata(path).map_err(bad)?;
                if meta.is_dir() {
                    return Err(bad(std::io::Error::from_raw_os_error(libc::EISDIR)));
                }
                std::fs::File::open(path).map_err(bad)?;
            }
        }
        Ok(())
    }
}

/// The CPUs this process may run on (its affinity mask), ascending.
pub fn allowed_cpus() -> Result<Vec<usize>, LoadError> {
    // SAFETY: cpu_set_t is a plain bit array; sched_getaffinity fills it for pid 0 (this thread).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(LoadError::Affinity {
                source: std::io::Error::last_os_error(),
            });
        }
        Ok((0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect())
    }
}

/// `[0, 1, 2, 5]` -> `"0-2,5"`.
fn cpu_list(cpus: &[usize]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        while i + 1 < cpus.len() && cpus[i + 1] == cpus[i] + 1 {
            i += 1;
        }
        out.push(if cpus[i] == start {
            start.to_string()
        } else {
            format!("{start}-{}", cpus[i])
        });
        i += 1;
    }
    out.join(",")
}

/// The highest rate accepted, re-exported for the CLI's help.
pub const RATE_LIMIT: f64 = MAX_RATE;

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LoadConfig {
        LoadConfig::new(Rate::PerSecond(1000.0), RunEnd::Ops(10))
    }

    #[test]
    fn rates_parse_with_suffixes() {
        assert_eq!(
            "200000".parse::<Rate>().unwrap(),
            Rate::PerSecond(200_000.0)
        );
        assert_eq!("200k".parse::<Rate>().unwrap(), Rate::PerSecond(200_000.0));
        assert_eq!(
            "1.5M".parse::<Rate>().unwrap(),
            Rate::PerSecond(1_500_000.0)
        );
        assert_eq!("MAX".parse::<Rate>().unwrap(), Rate::Max);
        let err = "fast".parse::<Rate>().unwrap_err().to_string();
        assert!(err.contains("'fast'"), "{err}");
    }

    #[test]
    fn validate_names_bad_values() {
        let mut c = cfg();
        c.rate = Rate::PerSecond(0.0);
        assert!(c.validate().unwrap_err().to_string().contains("rate 0 "));
        c.rate = Rate::PerSecond(-3.5);
        assert!(c.validate().unwrap_err().to_string().contains("rate -3.5 "));

        let mut c = cfg();
        c.mix = "openat=1,open=2".parse().unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("unknown op 'open'"));

        let mut c = cfg();
        c.paths = PathSource::ListFile("/nonexistent/loadgen/paths.txt".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("/nonexistent/loadgen/paths.txt") && err.contains("No such file"),
            "{err}"
        );

        let mut c = cfg();
        c.cpus = Some(vec![0, 4096]);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("CPU 4096 does not exist"), "{err}");

        let mut c = cfg();
        c.end = RunEnd::Ops(0);
        assert!(c.validate().is_err());
        let mut c = cfg();
        c.threads = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("thread count 0"));
        assert!(cfg().validate().is_ok());
    }

    #[test]
    fn mix_cycle_holds_exact_shares_interleaved() {
        let cycle = "openat=1,stat=1".parse::<OpMix>().unwrap().cycle().unwrap();
        assert_eq!(cycle.len(), 2);
        assert!(cycle.contains(&OpKind::Openat) && cycle.contains(&OpKind::Stat));

        let cycle = "openat=0.25,stat=0.75"
            .parse::<OpMix>()
            .unwrap()
            .cycle()
            .unwrap();
        assert_eq!(cycle.len(), 4);
        assert_eq!(cycle.iter().filter(|&&o| o == OpKind::Openat).count(), 1);

        let cycle = "openat=3,statx=2,lstat=0"
            .parse::<OpMix>()
            .unwrap()
            .cycle()
            .unwrap();
        assert_eq!(cycle.len(), 5);
        assert_eq!(cycle.iter().filter(|&&o| o == OpKind::Statx).count(), 2);
        // Interleaved: no two statx back to back in the cycle (openat, statx, openat, statx, openat).
        assert!(cycle
            .windows(2)
            .all(|w| !(w[0] == OpKind::Statx && w[1] == OpKind::Statx)));

        assert!(matches!(
            "stat=0".parse::<OpMix>().unwrap().cycle(),
            Err(LoadError::EmptyMix)
        ));
        assert!("stat=x"
            .parse::<OpMix>()
            .unwrap_err()
            .to_string()
            .contains("'x'"));
    }

    #[test]
    fn cpu_lists_compress_ranges() {
        assert_eq!(cpu_list(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
        assert_eq!(cpu_list(&[3]), "3");
    }

    #[test]
    fn config_json_needs_only_rate_and_end() {
        let c: LoadConfig =
            serde_json::from_str(r#"{"rate":{"per_second":5000.0},"end":{"ops":100}}"#).unwrap();
        assert_eq!(
            c,
            LoadConfig::new(Rate::PerSecond(5000.0), RunEnd::Ops(100))
        );
        let c: LoadConfig = serde_json::from_str(
            r#"{"rate":"max","end":{"duration":{"secs":5,"nanos":0}},"threads":2}"#,
        )
        .unwrap();
        assert_eq!((c.rate, c.threads), (Rate::Max, 2));
    }

    #[test]
    fn config_round_trips_through_json() {
        let mut c = cfg();
        c.cpus = Some(vec![0]);
        let text = serde_json::to_string(&c).unwrap();
        let back: LoadConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, c);
    }
}
