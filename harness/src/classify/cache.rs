//! Per-worker state: the match buffers a [`Scratch`] holds so that
//! classifying allocates nothing, and the optional path cache that remembers
//! the rule each path matched.

use std::collections::HashMap;

use super::Classifier;

/// Per-worker match buffers, so that classifying allocates nothing, and
/// optionally a cache of the paths this worker has classified.
#[derive(Debug, Default)]
pub struct Scratch {
    pub(super) globs: Vec<usize>,
    /// Gated glob groups already run for the current path.
    pub(super) literals: Vec<usize>,
    pub(super) regexes: Vec<bool>,
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
/// passes (docs/tuning.md, "Pipeline knobs"). The rule still comes from the
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
