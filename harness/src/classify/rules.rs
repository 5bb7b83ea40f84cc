//! The rule file and its compiled form: the TOML schema ([`DEFAULT_RULES`]
//! is the compiled-in file), and how [`Classifier::from_toml`] builds the
//! matchers from it: prefixes bucketed by their first path component, globs
//! gated by a literal every matching path holds (one Aho-Corasick pass), and
//! one regex set.

use std::collections::HashMap;
use std::path::Path;

use aho_corasick::AhoCorasick;
use globset::{Candidate, GlobBuilder, GlobSet, GlobSetBuilder};
use regex::bytes::RegexSetBuilder;
use serde::Deserialize;

use super::types::{Category, ClassifierRuleKind, ClassifyError, Sensitivity};
use super::Classifier;

/// The default rule set, compiled into the binary.
pub const DEFAULT_RULES: &str = include_str!("../../rules/default.toml");

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

/// What a rule says of the paths it matches.
#[derive(Debug, Clone, Copy)]
pub(super) struct RuleTarget {
    pub(super) category: Category,
    pub(super) sensitivity: Sensitivity,
    pub(super) kind: ClassifierRuleKind,
}

/// (prefix bytes, rule number) pairs in rule order.
pub(super) type PrefixList = Vec<(Box<[u8]>, u16)>;

/// A compiled glob set and the rule number of each of its globs.
#[derive(Debug)]
pub(super) struct GlobGroup {
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

    pub(super) fn best(&self, c: &Candidate<'_>, scratch: &mut Vec<usize>) -> Option<u16> {
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
                let n = push(ClassifierRuleKind::Prefix);
                let b: Box<[u8]> = p.as_bytes().into();
                match first_component(&b).filter(|c| b.len() > c.len() + 1) {
                    // `/comp/...`: the component is complete (a `/` follows it).
                    Some(c) => prefix_buckets.entry(c.into()).or_default().push((b, n)),
                    None => prefix_rest.push((b, n)),
                }
            }
            for p in &g.glob {
                let n = push(ClassifierRuleKind::Glob);
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
                let n = push(ClassifierRuleKind::Regex);
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
}

/// `comp` of a path `/comp/...` or `/comp`; `None` for a relative path.
pub(super) fn first_component(path: &[u8]) -> Option<&[u8]> {
    let rest = path.strip_prefix(b"/")?;
    Some(match rest.iter().position(|&b| b == b'/') {
        Some(i) => &rest[..i],
        None => rest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use probes::abi::Event;
    use std::os::unix::ffi::OsStrExt;

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
        let c = Classifier::default_rules();
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
