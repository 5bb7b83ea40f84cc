//! The classifier: maps an event's path, syscall and open flags to a
//! [`Category`] and a [`Sensitivity`].
//!
//! Rules come from a TOML file (the default, `harness/rules/default.toml`, is
//! compiled in: 534 rules in 26 groups). Each pattern is one rule, numbered in
//! file order; the lowest-numbered matching rule wins whatever its kind. All
//! three matchers run on every event, so the cost is realistic for a security
//! agent: a linear scan of the prefix rules, one [`GlobSet`] pass and one
//! [`RegexSet`] pass.
//!
//! Classification allocates nothing per event: the match buffers live in a
//! [`Scratch`] that each worker owns.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use aho_corasick::AhoCorasick;
use globset::{Candidate, GlobBuilder, GlobSet, GlobSetBuilder};
use probes::abi::{Event, Kind, Syscall};
use regex::bytes::{RegexSet, RegexSetBuilder};
use serde::Deserialize;

/// The default rule set, compiled into the binary.
pub const DEFAULT_RULES: &str = include_str!("../rules/default.toml");

/// What a path is, for a security reader. The `u8` codes are part of the Kafka
/// message format (docs/kafka-message-format.md): append, never renumber.
macro_rules! categories {
    ($($v:ident = $n:expr => $s:expr),+ $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[repr(u8)]
        pub enum Category { $($v = $n),+ }
        impl Category {
            pub const ALL: &'static [Category] = &[$(Category::$v),+];
            pub fn name(self) -> &'static str { match self { $(Category::$v => $s),+ } }
            pub fn from_u8(v: u8) -> Option<Self> { match v { $($n => Some(Category::$v),)+ _ => None } }
            pub fn from_name(s: &str) -> Option<Self> { match s { $($s => Some(Category::$v),)+ _ => None } }
        }
    };
}

categories! {
    Unmatched = 0 => "unmatched",
    Credentials = 1 => "credentials",
    Ssh = 2 => "ssh",
    Secrets = 3 => "secrets",
    AuthConfig = 4 => "auth_config",
    CloudConfig = 5 => "cloud_config",
    ContainerRuntime = 6 => "container_runtime",
    Boot = 7 => "boot",
    KernelInterface = 8 => "kernel_interface",
    ShellHistory = 9 => "shell_history",
    BrowserData = 10 => "browser_data",
    Persistence = 11 => "persistence",
    NetworkConfig = 12 => "network_config",
    SystemConfig = 13 => "system_config",
    PackageDb = 14 => "package_db",
    Binaries = 15 => "binaries",
    Libraries = 16 => "libraries",
    Logs = 17 => "logs",
    Database = 18 => "database",
    WebContent = 19 => "web_content",
    SourceCode = 20 => "source_code",
    UserConfig = 21 => "user_config",
    Device = 22 => "device",
    ProcessInfo = 23 => "process_info",
    Runtime = 24 => "runtime",
    Temp = 25 => "temp",
    Cache = 26 => "cache",
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How much a reader should care. Ordered: `Low < Medium < High < Critical`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Sensitivity {
    Low = 0,
    Medium = 1,
    High = 2,
    Critical = 3,
}

impl Sensitivity {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Sensitivity::Low),
            1 => Some(Sensitivity::Medium),
            2 => Some(Sensitivity::High),
            3 => Some(Sensitivity::Critical),
            _ => None,
        }
    }
    fn raise(self) -> Self {
        Self::from_u8((self as u8 + 1).min(3)).unwrap_or(self)
    }
    fn lower(self) -> Self {
        Self::from_u8((self as u8).saturating_sub(1)).unwrap_or(self)
    }
}

/// Which kind of rule matched. Part of the message format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RuleKind {
    None = 0,
    Prefix = 1,
    Glob = 2,
    Regex = 3,
}

/// The classifier's verdict on one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Verdict {
    pub category: Category,
    pub sensitivity: Sensitivity,
    /// The winning rule's number in file order, or [`Verdict::NO_RULE`].
    pub rule: u16,
    pub rule_kind: RuleKind,
}

impl Verdict {
    pub const NO_RULE: u16 = u16::MAX;
}

/// Open flags that make an open write-capable (x86-64/aarch64 values from
/// `<asm-generic/fcntl.h>`): O_WRONLY 01, O_RDWR 02, O_CREAT 0100, O_TRUNC 01000, O_APPEND 02000.
pub const WRITE_FLAGS: u32 = 0o1 | 0o2 | 0o100 | 0o1000 | 0o2000;

/// Why a rule file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    #[error("reading rules file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("rules {origin}: {source}")]
    Parse {
        origin: String,
        source: toml::de::Error,
    },
    #[error("rules {origin}: group {group}: unknown category {name:?}")]
    Category {
        origin: String,
        group: usize,
        name: String,
    },
    #[error("rules {origin}: glob rule {rule} {pattern:?}: {source}")]
    Glob {
        origin: String,
        rule: usize,
        pattern: String,
        source: globset::Error,
    },
    #[error("rules {origin}: glob literal prefilter: {what}")]
    Literals { origin: String, what: String },
    #[error("rules {origin}: regex set: {source}")]
    Regex {
        origin: String,
        source: regex::Error,
    },
    #[error("rules {origin}: {count} rules, more than the {max} a u16 rule number can name")]
    TooMany {
        origin: String,
        count: usize,
        max: usize,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    group: Vec<RuleGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleGroup {
    category: String,
    sensitivity: Sensitivity,
    #[serde(default)]
    prefix: Vec<String>,
    #[serde(default)]
    glob: Vec<String>,
    #[serde(default)]
    regex: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
struct RuleTarget {
    category: Category,
    sensitivity: Sensitivity,
    kind: RuleKind,
}

/// (prefix bytes, rule number) pairs in rule order.
type PrefixList = Vec<(Box<[u8]>, u16)>;

/// A compiled glob set and the rule number of each of its globs.
#[derive(Debug)]
struct GlobGroup {
    set: GlobSet,
    rule: Vec<u16>,
}

impl GlobGroup {
    fn build(b: GlobSetBuilder, rule: Vec<u16>, origin: &str) -> Result<Self, ClassifyError> {
        let set = b.build().map_err(|source| ClassifyError::Glob {
            origin: origin.to_owned(),
            rule: rule.first().copied().unwrap_or(0) as usize,
            pattern: "(glob set)".into(),
            source,
        })?;
        Ok(GlobGroup { set, rule })
    }

    fn best(&self, c: &Candidate<'_>, scratch: &mut Vec<usize>) -> Option<u16> {
        scratch.clear();
        self.set.matches_candidate_into(c, scratch);
        scratch.iter().map(|&g| self.rule[g]).min()
    }
}

/// Glob syntax characters: a literal run stops at any of them.
const GLOB_META: &[u8] = b"*?[]{}!\\";

/// Whether globset handles `pattern` with a hashed lookup (`**/*.ext`,
/// `**/name`, a plain literal): cheap, not worth gating.
fn glob_is_cheap(pattern: &str) -> bool {
    let rest = pattern.strip_prefix("**/").unwrap_or(pattern);
    let literal = |s: &str| !s.bytes().any(|b| GLOB_META.contains(&b));
    (pattern.starts_with("**/") && !rest.contains('/') && literal(rest))
        || (rest.starts_with("*.") && !rest.contains('/') && literal(&rest[2..]))
        || literal(pattern)
}

/// The longest literal run every path matching `pattern` must contain, if
/// the pattern is simple enough to tell (no braces or escapes). Even one
/// byte helps: `**/*~` and `**/#*#` would otherwise send every path through
/// globset's regex set (250 ns of a 160-byte path), and `~` and `#` are rare.
fn glob_required_literal(pattern: &str) -> Option<&str> {
    if pattern.contains(['{', '}', '\\']) {
        return None;
    }
    // Split on wildcards and classes; what lies between them is literal.
    // `**/` may match nothing (`**/.ssh/x` matches `.ssh/x`, `a/**/b` matches
    // `a/b`), so a run loses a `/` that touches a `**`.
    let b = pattern.as_bytes();
    let mut best = "";
    let mut in_class = false;
    let mut start = 0;
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, ch) in pattern.char_indices() {
        match ch {
            '[' if !in_class => {
                runs.push((start, i));
                in_class = true;
            }
            ']' if in_class => {
                in_class = false;
                start = i + 1;
            }
            '*' | '?' if !in_class => {
                runs.push((start, i));
                start = i + 1;
            }
            _ => {}
        }
    }
    if !in_class {
        runs.push((start, pattern.len()));
    }
    for (k, (mut from, mut to)) in runs.into_iter().enumerate() {
        if from >= to {
            continue;
        }
        if from >= 2 && &b[from - 2..from] == b"**" && b[from] == b'/' {
            from += 1;
        }
        if to + 2 <= b.len() && &b[to..to + 2] == b"**" && to > from && b[to - 1] == b'/' {
            to -= 1;
        }
        if to > from && to - from > best.len() {
            best = &pattern[from..to];
        }
        // An absolute pattern's leading directory (`/etc`, `/proc/`) is rarer
        // in paths than a longer suffix like `.conf`: gate on it.
        if k == 0 && from == 0 && b[0] == b'/' && to >= 2 {
            return Some(&pattern[..to]);
        }
    }
    (!best.is_empty()).then_some(best)
}

/// A compiled rule set. Shared read-only between workers (`Arc<Classifier>`).
#[derive(Debug)]
pub struct Classifier {
    /// Every rule's verdict, indexed by rule number.
    rules: Vec<RuleTarget>,
    /// Prefix rules bucketed by their first path component: a prefix
    /// `/etc/...` can only match a path whose first component is `etc`, so a
    /// path is compared with its own bucket (a dozen prefixes) instead of all
    /// 269. Each bucket is in rule order.
    prefix_buckets: HashMap<Box<[u8]>, PrefixList>,
    /// Prefixes without a complete first component (`/et`, `relative`), in
    /// rule order: compared with every path.
    prefix_rest: PrefixList,
    /// Globs run on every path: globset's cheap forms (`**/*.ext`,
    /// `**/name`, hashed lookups) and globs with no literal to gate on.
    glob_always: GlobGroup,
    /// Every other glob needs a literal run in any path it matches
    /// (`.ssh/id_` for `**/.ssh/id_*`). One Aho-Corasick pass finds which of
    /// those literals a path contains, and only their globs run. globset
    /// would otherwise run these ~100 globs as one regex set over the whole
    /// path: 525 of 565 ns per 160-byte path, measured.
    glob_literals: AhoCorasick,
    /// The globs gated by each literal, indexed like `glob_literals`' patterns.
    glob_gated: Vec<GlobGroup>,
    regexes: RegexSet,
    regex_rule: Vec<u16>,
}

/// Per-worker match buffers, so that classifying allocates nothing, and
/// optionally a cache of the paths this worker has classified.
#[derive(Debug, Default)]
pub struct Scratch {
    globs: Vec<usize>,
    /// Gated glob groups already run for the current path.
    literals: Vec<usize>,
    regexes: Vec<bool>,
    cache: Option<PathCache>,
}

impl Scratch {
    /// The path cache's hits and misses so far (0, 0 without a cache).
    pub fn cache_counts(&self) -> (u64, u64) {
        self.cache.as_ref().map_or((0, 0), |c| (c.hits, c.misses))
    }
}

/// The rule each path seen before matched. Real traffic repeats paths
/// heavily (a build opens the same headers thousands of times; the
/// real-programs capture's 47 k events hold far fewer distinct paths), and a
/// lookup costs a hash of the path instead of the prefix, glob and regex
/// passes (docs/tuning.md, "Pipeline knobs"). The verdict still comes from the
/// full path: the cache keys on all of it. Bounded by the bytes of its keys:
/// past `limit` it is cleared and starts again.
#[derive(Debug)]
struct PathCache {
    map: HashMap<Box<[u8]>, Option<u16>>,
    bytes: usize,
    limit: usize,
    hits: u64,
    misses: u64,
}

impl Classifier {
    /// The compiled-in default rules.
    pub fn default_rules() -> Self {
        Self::from_toml(DEFAULT_RULES, "harness/rules/default.toml")
            .expect("the compiled-in default rules are valid (unit-tested)")
    }

    pub fn from_file(path: &Path) -> Result<Self, ClassifyError> {
        let text = std::fs::read_to_string(path).map_err(|source| ClassifyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Compiles rules from TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ClassifyError> {
        let file: RulesFile = toml::from_str(text).map_err(|source| ClassifyError::Parse {
            origin: origin.to_owned(),
            source,
        })?;
        let mut rules = Vec::new();
        let mut prefix_buckets: HashMap<Box<[u8]>, PrefixList> = HashMap::new();
        let mut prefix_rest = Vec::new();
        let mut glob_always = (GlobSetBuilder::new(), Vec::new());
        let mut literal_ids: HashMap<String, usize> = HashMap::new();
        let mut gated: Vec<(GlobSetBuilder, Vec<u16>)> = Vec::new();
        let mut regex_src = Vec::new();
        let mut regex_rule = Vec::new();
        for (gi, g) in file.group.iter().enumerate() {
            let category =
                Category::from_name(&g.category).ok_or_else(|| ClassifyError::Category {
                    origin: origin.to_owned(),
                    group: gi,
                    name: g.category.clone(),
                })?;
            let mut push = |kind| {
                rules.push(RuleTarget {
                    category,
                    sensitivity: g.sensitivity,
                    kind,
                });
                (rules.len() - 1) as u16
            };
            for p in &g.prefix {
                let n = push(RuleKind::Prefix);
                let b: Box<[u8]> = p.as_bytes().into();
                match first_component(&b).filter(|c| b.len() > c.len() + 1) {
                    // `/comp/...`: the component is complete (a `/` follows it).
                    Some(c) => prefix_buckets.entry(c.into()).or_default().push((b, n)),
                    None => prefix_rest.push((b, n)),
                }
            }
            for p in &g.glob {
                let n = push(RuleKind::Glob);
                let glob = GlobBuilder::new(p)
                    .literal_separator(true)
                    .build()
                    .map_err(|source| ClassifyError::Glob {
                        origin: origin.to_owned(),
                        rule: n as usize,
                        pattern: p.clone(),
                        source,
                    })?;
                let (b, rules) = match glob_required_literal(p).filter(|_| !glob_is_cheap(p)) {
                    Some(lit) => {
                        let next = literal_ids.len();
                        let id = *literal_ids.entry(lit.to_owned()).or_insert(next);
                        if id == gated.len() {
                            gated.push((GlobSetBuilder::new(), Vec::new()));
                        }
                        let g = &mut gated[id];
                        (&mut g.0, &mut g.1)
                    }
                    None => (&mut glob_always.0, &mut glob_always.1),
                };
                b.add(glob);
                rules.push(n);
            }
            for p in &g.regex {
                let n = push(RuleKind::Regex);
                regex_src.push(p.clone());
                regex_rule.push(n);
            }
        }
        // Rule numbers are u16 and u16::MAX means "no rule".
        if rules.len() >= u16::MAX as usize {
            return Err(ClassifyError::TooMany {
                origin: origin.to_owned(),
                count: rules.len(),
                max: u16::MAX as usize - 1,
            });
        }
        let glob_always = GlobGroup::build(glob_always.0, glob_always.1, origin)?;
        let mut literals: Vec<(&String, &usize)> = literal_ids.iter().collect();
        literals.sort_by_key(|(_, id)| **id);
        let glob_literals =
            AhoCorasick::new(literals.iter().map(|(l, _)| l.as_bytes())).map_err(|e| {
                ClassifyError::Literals {
                    origin: origin.to_owned(),
                    what: e.to_string(),
                }
            })?;
        let glob_gated = gated
            .into_iter()
            .map(|(b, r)| GlobGroup::build(b, r, origin))
            .collect::<Result<Vec<_>, _>>()?;
        // Bytes semantics (no Unicode classes): paths are bytes, and `[^/]`
        // then means one byte, not one UTF-8 character (smaller, faster DFA).
        let regexes = RegexSetBuilder::new(&regex_src)
            .unicode(false)
            .build()
            .map_err(|source| ClassifyError::Regex {
                origin: origin.to_owned(),
                source,
            })?;
        Ok(Classifier {
            rules,
            prefix_buckets,
            prefix_rest,
            glob_always,
            glob_literals,
            glob_gated,
            regexes,
            regex_rule,
        })
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    pub fn scratch(&self) -> Scratch {
        Scratch {
            globs: Vec::with_capacity(64),
            literals: Vec::with_capacity(self.glob_gated.len()),
            regexes: vec![false; self.regex_rule.len()],
            cache: None,
        }
    }

    /// [`Classifier::scratch`] with a path cache whose keys may take up to
    /// `limit` bytes (0: no cache).
    pub fn scratch_with_cache(&self, limit: usize) -> Scratch {
        Scratch {
            cache: (limit > 0).then(|| PathCache {
                map: HashMap::new(),
                bytes: 0,
                limit,
                hits: 0,
                misses: 0,
            }),
            ..self.scratch()
        }
    }

    /// The lowest-numbered rule matching `path`, if any (from the scratch's
    /// cache when it has one and has seen the path).
    pub fn match_path(&self, path: &[u8], scratch: &mut Scratch) -> Option<u16> {
        let Some(mut cache) = scratch.cache.take() else {
            return self.match_path_uncached(path, scratch);
        };
        let rule = match cache.map.get(path) {
            Some(&rule) => {
                cache.hits += 1;
                rule
            }
            None => {
                cache.misses += 1;
                let rule = self.match_path_uncached(path, scratch);
                if cache.bytes + path.len() > cache.limit {
                    cache.map.clear();
                    cache.bytes = 0;
                }
                if path.len() <= cache.limit {
                    cache.bytes += path.len();
                    cache.map.insert(path.into(), rule);
                }
                rule
            }
        };
        scratch.cache = Some(cache);
        rule
    }

    fn match_path_uncached(&self, path: &[u8], scratch: &mut Scratch) -> Option<u16> {
        [
            self.match_prefix(path),
            self.match_glob(path, scratch),
            self.match_regex(path, scratch),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The lowest-numbered prefix rule matching `path`.
    pub fn match_prefix(&self, path: &[u8]) -> Option<u16> {
        // Each list is in rule order: its first hit is its best rule.
        let first = |list: &[(Box<[u8]>, u16)]| {
            list.iter()
                .find(|(p, _)| path.starts_with(p))
                .map(|(_, n)| *n)
        };
        let bucket = first_component(path)
            .filter(|c| path.len() > c.len() + 1)
            .and_then(|c| self.prefix_buckets.get(c))
            .and_then(|l| first(l));
        match (bucket, first(&self.prefix_rest)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The lowest-numbered glob rule matching `path`.
    pub fn match_glob(&self, path: &[u8], scratch: &mut Scratch) -> Option<u16> {
        let candidate = Candidate::new(std::ffi::OsStr::from_bytes(path));
        let mut best = self.glob_always.best(&candidate, &mut scratch.globs);
        scratch.literals.clear();
        // Most paths hold none of the literals: a prefiltered (SIMD) yes/no
        // scan settles them; only the rest pay for the overlapping search.
        if !self.glob_literals.is_match(path) {
            return best;
        }
        for m in self.glob_literals.find_overlapping_iter(path) {
            let id = m.pattern().as_usize();
            if scratch.literals.contains(&id) {
                continue;
            }
            scratch.literals.push(id);
            if let Some(r) = self.glob_gated[id].best(&candidate, &mut scratch.globs) {
                best = Some(best.map_or(r, |b| b.min(r)));
            }
        }
        best
    }

    /// The lowest-numbered regex rule matching `path`.
    pub fn match_regex(&self, path: &[u8], scratch: &mut Scratch) -> Option<u16> {
        if scratch.regexes.len() != self.regex_rule.len() {
            scratch.regexes = vec![false; self.regex_rule.len()];
        }
        scratch.regexes.iter_mut().for_each(|m| *m = false);
        if !self.regexes.matches_read_at(&mut scratch.regexes, path, 0) {
            return None;
        }
        // Regex rules are in rule order too: the first set bit is the best.
        let i = scratch.regexes.iter().position(|&m| m)?;
        Some(self.regex_rule[i])
    }

    /// Classifies by path, then adjusts the sensitivity for the syscall and flags.
    pub fn classify_parts(
        &self,
        path: &[u8],
        syscall: Option<Syscall>,
        flags: u32,
        scratch: &mut Scratch,
    ) -> Verdict {
        let (mut v, base) = match self.match_path(path, scratch) {
            Some(n) => {
                let r = self.rules[n as usize];
                (
                    Verdict {
                        category: r.category,
                        sensitivity: r.sensitivity,
                        rule: n,
                        rule_kind: r.kind,
                    },
                    r.sensitivity,
                )
            }
            None => (
                Verdict {
                    category: Category::Unmatched,
                    sensitivity: Sensitivity::Low,
                    rule: Verdict::NO_RULE,
                    rule_kind: RuleKind::None,
                },
                Sensitivity::Low,
            ),
        };
        v.sensitivity = match syscall {
            Some(Syscall::Openat | Syscall::Openat2) if flags & WRITE_FLAGS != 0 => base.raise(),
            Some(Syscall::Openat | Syscall::Openat2) => base,
            // The stat family reads metadata only.
            Some(Syscall::Newfstatat | Syscall::Statx | Syscall::Newstat | Syscall::Newlstat) => {
                base.lower()
            }
            None => base,
        };
        v
    }

    /// Classifies a decoded event. Exit events carry no path and classify as
    /// [`Category::Unmatched`].
    pub fn classify(&self, ev: &Event<'_>, scratch: &mut Scratch) -> Verdict {
        if ev.kind() == Some(Kind::Exit) {
            return Verdict {
                category: Category::Unmatched,
                sensitivity: Sensitivity::Low,
                rule: Verdict::NO_RULE,
                rule_kind: RuleKind::None,
            };
        }
        self.classify_parts(ev.path, ev.syscall(), ev.header.flags, scratch)
    }
}

/// `comp` of a path `/comp/...` or `/comp`; `None` for a relative path.
fn first_component(path: &[u8]) -> Option<&[u8]> {
    let rest = path.strip_prefix(b"/")?;
    Some(match rest.iter().position(|&b| b == b'/') {
        Some(i) => &rest[..i],
        None => rest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use probes::abi::{encode_event, EventHeader, Layout};

    const O_RDONLY: u32 = 0;
    const O_WRONLY: u32 = 0o1;
    const O_RDWR: u32 = 0o2;
    const O_CREAT: u32 = 0o100;
    const O_CLOEXEC: u32 = 0o2000000;

    fn c() -> Classifier {
        Classifier::default_rules()
    }

    fn cat(c: &Classifier, p: &str, sys: Syscall, flags: u32) -> (Category, Sensitivity) {
        let v = c.classify_parts(p.as_bytes(), Some(sys), flags, &mut c.scratch());
        (v.category, v.sensitivity)
    }

    #[test]
    fn the_path_cache_gives_the_uncached_rule_and_stays_within_its_bytes() {
        let c = Classifier::default_rules();
        let mut plain = c.scratch();
        // Room for about three of these paths: the cache is cleared and refilled.
        let mut cached = c.scratch_with_cache(60);
        let paths: [&[u8]; 5] = [
            b"/etc/shadow",
            b"/home/alice/.ssh/id_ed25519",
            b"/usr/lib/x86_64-linux-gnu/libc.so.6",
            b"/tmp/unmatched-by-anything",
            b"/proc/self/status",
        ];
        for round in 0..3 {
            for p in paths {
                let want = c.match_path(p, &mut plain);
                assert_eq!(c.match_path(p, &mut cached), want, "{round}: {p:?}");
                let cache = cached.cache.as_ref().unwrap();
                assert!(cache.bytes <= 60, "{} bytes held", cache.bytes);
            }
        }
        let (hits, misses) = cached.cache_counts();
        assert_eq!(hits + misses, 15);
        assert!(misses >= 5, "every path missed once at least");
        // A roomy cache misses each path once only.
        let mut roomy = c.scratch_with_cache(1 << 20);
        for _ in 0..4 {
            for p in paths {
                c.match_path(p, &mut roomy);
            }
        }
        assert_eq!(roomy.cache_counts(), (15, 5));
        assert_eq!(plain.cache_counts(), (0, 0));
    }

    #[test]
    fn default_rules_compile_and_number_a_few_hundred() {
        assert_eq!(c().rule_count(), 534);
    }

    #[test]
    fn hand_written_expectations() {
        let c = c();
        use Category::*;
        use Sensitivity::*;
        use Syscall::*;
        let cases: &[(&str, Syscall, u32, Category, Sensitivity)] = &[
            ("/etc/shadow", Openat, O_RDONLY, Credentials, Critical),
            ("/etc/shadow", Newfstatat, 0, Credentials, High),
            (
                "/etc/passwd",
                Openat,
                O_RDONLY | O_CLOEXEC,
                AuthConfig,
                High,
            ),
            ("/etc/passwd", Openat, O_WRONLY, AuthConfig, Critical),
            (
                "/home/alice/.ssh/id_ed25519",
                Openat,
                O_RDONLY,
                Ssh,
                Critical,
            ),
            (
                "/home/bob/.bash_history",
                Openat,
                O_RDWR | O_CREAT,
                ShellHistory,
                Critical,
            ),
            ("/home/bob/.bash_history", Statx, 0, ShellHistory, Medium),
            ("/srv/app/.env", Openat, O_RDONLY, Credentials, Critical),
            ("/srv/app/tls/server.pem", Openat, O_RDONLY, Secrets, High),
            (
                "/usr/lib/x86_64-linux-gnu/libc.so.6",
                Openat,
                O_RDONLY | O_CLOEXEC,
                Libraries,
                Low,
            ),
            (
                "/usr/lib/x86_64-linux-gnu/libc.so.6",
                Newfstatat,
                0,
                Libraries,
                Low,
            ),
            ("/usr/bin/ls", Newfstatat, 0, Binaries, Low),
            ("/etc/ld.so.cache", Openat, O_RDONLY, SystemConfig, Medium),
            (
                "/etc/ld.so.preload",
                Openat,
                O_WRONLY | O_CREAT,
                Persistence,
                Critical,
            ),
            ("/proc/1234/environ", Openat, O_RDONLY, Secrets, High),
            ("/proc/1234/status", Openat, O_RDONLY, ProcessInfo, Low),
            ("/proc/self/maps", Openat, O_RDONLY, KernelInterface, Medium),
            ("/proc/self/cgroup", Openat, O_RDONLY, ProcessInfo, Low),
            ("/tmp/cc8xYz.o", Openat, O_WRONLY | O_CREAT, Temp, Medium),
            // An earlier glob (logs: **/*.log) beats the later /tmp/ prefix.
            ("/tmp/build.log", Openat, O_WRONLY | O_CREAT, Logs, High),
            ("/var/log/auth.log", Openat, O_RDONLY, Logs, Medium),
            (
                "/var/lib/postgresql/16/main/base/1/1259",
                Openat,
                O_RDWR,
                Database,
                Critical,
            ),
            (
                "/etc/systemd/system/evil.service",
                Openat,
                O_WRONLY | O_CREAT,
                Persistence,
                Critical,
            ),
            ("/root/.kube/config", Openat, O_RDONLY, CloudConfig, High),
            (
                "/work/project/src/main.rs",
                Openat,
                O_RDONLY,
                SourceCode,
                Low,
            ),
            ("relative/name.txt", Openat, O_RDONLY, Unmatched, Low),
            ("relative/name.txt", Openat, O_CREAT, Unmatched, Medium),
            ("", Openat, O_RDONLY, Unmatched, Low),
        ];
        for &(p, sys, flags, want_cat, want_sens) in cases {
            assert_eq!(
                cat(&c, p, sys, flags),
                (want_cat, want_sens),
                "{p} {sys} flags {flags:#o}"
            );
        }
    }

    #[test]
    fn lowest_numbered_rule_wins_across_kinds() {
        let rules = r#"
            [[group]]
            category = "temp"
            sensitivity = "low"
            regex = ['^/a/']
            [[group]]
            category = "secrets"
            sensitivity = "high"
            prefix = ["/a/b"]
            glob = ["**/*.key"]
        "#;
        let c = Classifier::from_toml(rules, "test").unwrap();
        let mut s = c.scratch();
        // Rule 0 is the regex: it beats the later prefix and glob.
        assert_eq!(c.match_path(b"/a/b.key", &mut s), Some(0));
        // Only the prefix (rule 1) and glob (rule 2) match: the prefix wins.
        assert_eq!(c.match_path(b"/a2/x", &mut s), None);
        assert_eq!(c.match_path(b"/x/a/b", &mut s), None);
        assert_eq!(c.match_path(b"/x/y.key", &mut s), Some(2));
        let v = c.classify_parts(b"/x/y.key", Some(Syscall::Openat), 0, &mut s);
        assert_eq!(v.rule_kind, RuleKind::Glob);
        assert_eq!(v.category, Category::Secrets);
    }

    #[test]
    fn bucketed_prefixes_match_like_a_linear_scan() {
        let rules = r#"
            [[group]]
            category = "temp"
            sensitivity = "low"
            prefix = ["/etc/a", "/et", "/etc/", "rel/", "/", "/usr/lib/x"]
        "#;
        let c = Classifier::from_toml(rules, "test").unwrap();
        let linear = ["/etc/a", "/et", "/etc/", "rel/", "/", "/usr/lib/x"];
        let naive = |p: &[u8]| {
            linear
                .iter()
                .position(|x| p.starts_with(x.as_bytes()))
                .map(|i| i as u16)
        };
        for p in [
            "/etc/a",
            "/etc/ab",
            "/etc",
            "/et",
            "/etcx/a",
            "/etc/",
            "/usr/lib/x1",
            "/usr/lib",
            "rel/x",
            "rel",
            "",
            "/",
            "//x",
        ] {
            assert_eq!(c.match_prefix(p.as_bytes()), naive(p.as_bytes()), "{p:?}");
        }
    }

    #[test]
    fn required_literals_and_cheap_globs() {
        // A `/` next to `**` is not required: `**/` can match nothing.
        assert_eq!(glob_required_literal("**/.ssh/id_*"), Some(".ssh/id_"));
        assert_eq!(
            glob_required_literal("**/.mozilla/firefox/*/logins.json"),
            Some(".mozilla/firefox/")
        );
        assert_eq!(glob_required_literal("/etc/**/*.conf"), Some("/etc"));
        assert_eq!(glob_required_literal("**/.cache/**"), Some(".cache"));
        assert_eq!(glob_required_literal("**/*.log.[0-9]"), Some(".log."));
        assert_eq!(glob_required_literal("/proc/*/maps"), Some("/proc/"));
        assert_eq!(glob_required_literal("**/*~"), Some("~"));
        assert_eq!(glob_required_literal("**/*"), None);
        assert_eq!(glob_required_literal("**/{a,b}.txt"), None);
        assert!(glob_is_cheap("**/*.pem"));
        assert!(glob_is_cheap("**/.bashrc"));
        assert!(!glob_is_cheap("**/.ssh/id_*"));
        assert!(!glob_is_cheap("/proc/*/maps"));
    }

    #[test]
    fn gated_globs_match_like_one_glob_set() {
        // The default rules' globs numbered as `from_toml` numbers them, in
        // one flat GlobSet: the reference the gating must agree with.
        let file: RulesFile = toml::from_str(DEFAULT_RULES).unwrap();
        let mut b = GlobSetBuilder::new();
        let mut rule = Vec::new();
        let mut n = 0u16;
        for g in &file.group {
            n += g.prefix.len() as u16;
            for p in &g.glob {
                b.add(GlobBuilder::new(p).literal_separator(true).build().unwrap());
                rule.push(n);
                n += 1;
            }
            n += g.regex.len() as u16;
        }
        let flat = GlobGroup::build(b, rule, "test").unwrap();
        let c = c();
        let mut s = c.scratch();
        let mut v = Vec::new();
        let mut check = |p: &[u8]| {
            let cand = Candidate::new(std::ffi::OsStr::from_bytes(p));
            assert_eq!(
                c.match_glob(p, &mut s),
                flat.best(&cand, &mut v),
                "{:?}",
                String::from_utf8_lossy(p)
            );
        };
        for p in [
            "/proc/12/maps",
            "/proc/self/status",
            "/proc",
            "/etc/nginx/nginx.conf",
            "/etc/x.conf",
            "/sys/class/net/eth0/mtu",
            "/home/a/.ssh/id_rsa",
            "/home/a/.ssh/id_rsa.pub",
            "/home/a/.config/x",
            "/usr/lib/libz.so.1",
            "x/bin/y",
            "/bin/ls",
            "/tmp/a.log.1",
            "/tmp/a.log.x",
            "/h/.mozilla/firefox/p1/logins.json",
            "/h/#x#",
            "/h/.#lock",
            "/h/f~",
            "/w/target/release/x",
            "/w/node_modules/a/b",
            "relative.pem",
            ".ssh/config",
            "",
            "/",
        ] {
            check(p.as_bytes());
        }
        // And every path of a real capture (10 k loadgen corpus paths).
        let cap = crate::capture::Capture::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/captures/fixed4k-perf.pcapng"
        )))
        .unwrap();
        let mut checked = 0;
        cap.for_each(|e| {
            if let probes::record::RecordRef::Sample { data, .. } = e.rec {
                check(Event::decode(data).unwrap().path);
                checked += 1;
            }
        })
        .unwrap();
        assert!(checked > 1000, "{checked}");
    }

    #[test]
    fn exit_events_are_unmatched() {
        let c = c();
        let h = EventHeader {
            kind: Kind::Exit as u8,
            syscall: Syscall::Openat as u8,
            ..Default::default()
        };
        let mut b = Vec::new();
        encode_event(Layout::Compact, &h, b"/etc/shadow", &mut b);
        let e = Event::decode(&b).unwrap();
        assert_eq!(
            c.classify(&e, &mut c.scratch()).category,
            Category::Unmatched
        );
    }

    #[test]
    fn bad_rules_name_the_problem() {
        let e = Classifier::from_toml(
            "[[group]]\ncategory = \"nope\"\nsensitivity = \"low\"",
            "x.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown category \"nope\""), "{e}");
        let e = Classifier::from_toml(
            "[[group]]\ncategory = \"temp\"\nsensitivity = \"low\"\nregex = ['(']",
            "x.toml",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("rules x.toml: regex set"), "{e}");
        let e = Classifier::from_file(Path::new("/nonexistent/rules.toml")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/rules.toml"), "{e}");
    }
}
