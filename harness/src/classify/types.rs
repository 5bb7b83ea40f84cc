//! The classifier's vocabulary: what a path is ([`Category`]), how much a
//! reader should care ([`Sensitivity`]), which kind of rule matched
//! ([`ClassifierRuleKind`]), the result for one event ([`Classification`]),
//! and why a rule file could not be used ([`ClassifyError`]).

use std::path::PathBuf;

use serde::Deserialize;

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
    pub(super) fn raise(self) -> Self {
        Self::from_u8((self as u8 + 1).min(3)).unwrap_or(self)
    }
    pub(super) fn lower(self) -> Self {
        Self::from_u8((self as u8).saturating_sub(1)).unwrap_or(self)
    }
}

/// Which kind of classifier rule matched (the gate's rules have a
/// `gate::RuleKind` of their own). Part of the message format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ClassifierRuleKind {
    None = 0,
    Prefix = 1,
    Glob = 2,
    Regex = 3,
}

/// The classifier's result for one event: what its path is, how much it
/// matters, and the rule that said so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Classification {
    pub category: Category,
    pub sensitivity: Sensitivity,
    /// The winning rule's number in file order, or [`Classification::NO_RULE`].
    pub rule: u16,
    pub rule_kind: ClassifierRuleKind,
}

impl Classification {
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
