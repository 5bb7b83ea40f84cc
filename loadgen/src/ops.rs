//! The ops the load issues, each exactly one libc call on a pre-built C string.
//!
//! What each op issues, checked with `strace -f -c` on glibc 2.36 / x86_64 (and asserted by the
//! `syscalls_match_strace` integration test):
//!
//! | op        | libc call                                              | syscall(s) the kernel sees | tracepoint that fires        |
//! |-----------|--------------------------------------------------------|----------------------------|------------------------------|
//! | `openat`  | `openat(AT_FDCWD, p, O_RDONLY\|O_CLOEXEC\|O_NONBLOCK\|O_NOCTTY)`, then `close(fd)` if it opened | `openat` + `close` | `sys_enter_openat`, `sys_enter_close` |
//! | `stat`    | `stat(p, &st)`                                          | `newfstatat(AT_FDCWD, p, &st, 0)` | `sys_enter_newfstatat` (glibc >= 2.33) |
//! | `lstat`   | `lstat(p, &st)`                                         | `newfstatat(AT_FDCWD, p, &st, AT_SYMLINK_NOFOLLOW)` | `sys_enter_newfstatat` |
//! | `fstatat` | `fstatat(AT_FDCWD, p, &st, 0)`                          | `newfstatat`               | `sys_enter_newfstatat`       |
//! | `statx`   | `statx(AT_FDCWD, p, AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS\|STATX_BTIME, &stx)` (what Rust's `std::fs::metadata` issues) | `statx` | `sys_enter_statx` |
//!
//! `O_NONBLOCK|O_NOCTTY` keep a user-supplied FIFO or tty in a path list from blocking the worker; on
//! the regular files of a generated corpus they change nothing.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::{c_char, c_int};

/// One entry of the op mix. `Openat` is one op made of two syscalls (openat, then close).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    Openat,
    Stat,
    Lstat,
    Fstatat,
    Statx,
}

impl OpKind {
    /// Every op, in the order used for names and reports.
    pub const ALL: [OpKind; 5] = [
        OpKind::Openat,
        OpKind::Stat,
        OpKind::Lstat,
        OpKind::Fstatat,
        OpKind::Statx,
    ];

    /// The op's name as written in a mix (`openat=1,stat=1`).
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Openat => "openat",
            OpKind::Stat => "stat",
            OpKind::Lstat => "lstat",
            OpKind::Fstatat => "fstatat",
            OpKind::Statx => "statx",
        }
    }

    /// Parses an op name; `None` for an unknown one.
    pub fn from_name(name: &str) -> Option<OpKind> {
        OpKind::ALL.into_iter().find(|op| op.name() == name)
    }
}

/// The libc calls counted in a report: the five ops' calls plus the `close` that follows an `openat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Syscall {
    Openat = 0,
    Close = 1,
    Stat = 2,
    Lstat = 3,
    Fstatat = 4,
    Statx = 5,
}

impl Syscall {
    pub const COUNT: usize = 6;
    pub const ALL: [Syscall; Syscall::COUNT] = [
        Syscall::Openat,
        Syscall::Close,
        Syscall::Stat,
        Syscall::Lstat,
        Syscall::Fstatat,
        Syscall::Statx,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Syscall::Openat => "openat",
            Syscall::Close => "close",
            Syscall::Stat => "stat",
            Syscall::Lstat => "lstat",
            Syscall::Fstatat => "fstatat",
            Syscall::Statx => "statx",
        }
    }
}

/// errno values are below 4096 on Linux, but the named ones stop at 133 (EHWPOISON); everything from
/// `ERRNO_SLOTS - 1` up shares the last slot and is reported under its first value's number.
const ERRNO_SLOTS: usize = 136;

/// Per-thread counts of calls and failures, kept in plain arrays so the hot path only increments.
#[derive(Clone)]
pub struct Tally {
    /// Calls made, per [`Syscall`].
    pub calls: [u64; Syscall::COUNT],
    /// Failures per syscall and errno (6 x 136 x 8 B = 6.5 KB per thread).
    errors: Box<[[u64; ERRNO_SLOTS]; Syscall::COUNT]>,
    /// Ops issued (an `openat`+`close` counts once).
    pub ops: u64,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            calls: [0; Syscall::COUNT],
            errors: Box::new([[0; ERRNO_SLOTS]; Syscall::COUNT]),
            ops: 0,
        }
    }
}

impl Tally {
    #[inline(always)]
    fn failed(&mut self, call: Syscall) {
        let errno = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(0)
            .max(0) as usize;
        self.errors[call as usize][errno.min(ERRNO_SLOTS - 1)] += 1;
    }

    /// Adds another thread's counts to this one.
    pub fn merge(&mut self, other: &Tally) {
        self.ops += other.ops;
        for (a, b) in self.calls.iter_mut().zip(other.calls) {
            *a += b;
        }
        for (row, other_row) in self.errors.iter_mut().zip(other.errors.iter()) {
            for (a, b) in row.iter_mut().zip(other_row) {
                *a += b;
            }
        }
    }

    /// Calls made, keyed by syscall name; syscalls never made are left out.
    pub fn calls_by_name(&self) -> BTreeMap<String, u64> {
        Syscall::ALL
            .into_iter()
            .filter(|s| self.calls[*s as usize] > 0)
            .map(|s| (s.name().to_string(), self.calls[s as usize]))
            .collect()
    }

    /// Failures keyed by errno name (`ENOENT`), summed over syscalls.
    pub fn errors_by_errno(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for row in self.errors.iter() {
            for (errno, &n) in row.iter().enumerate() {
                if n > 0 {
                    *out.entry(errno_name(errno as i32)).or_insert(0) += n;
                }
            }
        }
        out
    }

    /// Failures keyed by syscall name, then errno name.
    pub fn errors_by_syscall(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        for call in Syscall::ALL {
            let row = &self.errors[call as usize];
            let named: BTreeMap<String, u64> = row
                .iter()
                .enumerate()
                .filter(|(_, &n)| n > 0)
                .map(|(errno, &n)| (errno_name(errno as i32), n))
                .collect();
            if !named.is_empty() {
                out.insert(call.name().to_string(), named);
            }
        }
        out
    }

    /// Total failed calls.
    pub fn error_total(&self) -> u64 {
        self.errors.iter().flat_map(|row| row.iter()).sum()
    }
}

/// Output buffers the stat family writes into; one per worker so the hot path allocates nothing.
pub struct StatBuffers {
    st: libc::stat,
    stx: libc::statx,
}

impl Default for StatBuffers {
    fn default() -> Self {
        // SAFETY: both are plain C structs of integers, for which all-zero bytes are a valid value.
        unsafe {
            StatBuffers {
                st: std::mem::zeroed(),
                stx: std::mem::zeroed(),
            }
        }
    }
}

/// Flags of the `openat` op (see the module table).
pub const OPENAT_FLAGS: c_int =
    libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
/// Mask of the `statx` op: what Rust's `std::fs::metadata` asks for.
pub const STATX_MASK: u32 = libc::STATX_BASIC_STATS | libc::STATX_BTIME;

/// Issues `op` on `path` and counts it in `tally`.
///
/// # Safety
/// `path` must point to a NUL-terminated string that stays alive for the call.
#[inline(always)]
pub unsafe fn issue(op: OpKind, path: *const c_char, buf: &mut StatBuffers, tally: &mut Tally) {
    tally.ops += 1;
    match op {
        OpKind::Openat => {
            tally.calls[Syscall::Openat as usize] += 1;
            let fd = libc::openat(libc::AT_FDCWD, path, OPENAT_FLAGS);
            if fd >= 0 {
                tally.calls[Syscall::Close as usize] += 1;
                if libc::close(fd) != 0 {
                    tally.failed(Syscall::Close);
                }
            } else {
                tally.failed(Syscall::Openat);
            }
        }
        OpKind::Stat => {
            tally.calls[Syscall::Stat as usize] += 1;
            if libc::stat(path, &mut buf.st) != 0 {
                tally.failed(Syscall::Stat);
            }
        }
        OpKind::Lstat => {
            tally.calls[Syscall::Lstat as usize] += 1;
            if libc::lstat(path, &mut buf.st) != 0 {
                tally.failed(Syscall::Lstat);
            }
        }
        OpKind::Fstatat => {
            tally.calls[Syscall::Fstatat as usize] += 1;
            if libc::fstatat(libc::AT_FDCWD, path, &mut buf.st, 0) != 0 {
                tally.failed(Syscall::Fstatat);
            }
        }
        OpKind::Statx => {
            tally.calls[Syscall::Statx as usize] += 1;
            if libc::statx(
                libc::AT_FDCWD,
                path,
                libc::AT_STATX_SYNC_AS_STAT,
                STATX_MASK,
                &mut buf.stx,
            ) != 0
            {
                tally.failed(Syscall::Statx);
            }
        }
    }
}

/// The symbolic name of an errno value (`2` -> `ENOENT`), or `E<n>` for a value without one.
pub fn errno_name(errno: i32) -> String {
    let name = match errno {
        1 => "EPERM",
        2 => "ENOENT",
        3 => "ESRCH",
        4 => "EINTR",
        5 => "EIO",
        6 => "ENXIO",
        7 => "E2BIG",
        8 => "ENOEXEC",
        9 => "EBADF",
        10 => "ECHILD",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        15 => "ENOTBLK",
        16 => "EBUSY",
        17 => "EEXIST",
        18 => "EXDEV",
        19 => "ENODEV",
        20 => "ENOTDIR",
        21 => "EISDIR",
        22 => "EINVAL",
        23 => "ENFILE",
        24 => "EMFILE",
        25 => "ENOTTY",
        26 => "ETXTBSY",
        27 => "EFBIG",
        28 => "ENOSPC",
        29 => "ESPIPE",
        30 => "EROFS",
        31 => "EMLINK",
        32 => "EPIPE",
        33 => "EDOM",
        34 => "ERANGE",
        35 => "EDEADLK",
        36 => "ENAMETOOLONG",
        37 => "ENOLCK",
        38 => "ENOSYS",
        39 => "ENOTEMPTY",
        40 => "ELOOP",
        42 => "ENOMSG",
        43 => "EIDRM",
        44 => "ECHRNG",
        45 => "EL2NSYNC",
        46 => "EL3HLT",
        47 => "EL3RST",
        48 => "ELNRNG",
        49 => "EUNATCH",
        50 => "ENOCSI",
        51 => "EL2HLT",
        52 => "EBADE",
        53 => "EBADR",
        54 => "EXFULL",
        55 => "ENOANO",
        56 => "EBADRQC",
        57 => "EBADSLT",
        59 => "EBFONT",
        60 => "ENOSTR",
        61 => "ENODATA",
        62 => "ETIME",
        63 => "ENOSR",
        64 => "ENONET",
        65 => "ENOPKG",
        66 => "EREMOTE",
        67 => "ENOLINK",
        68 => "EADV",
        69 => "ESRMNT",
        70 => "ECOMM",
        71 => "EPROTO",
        72 => "EMULTIHOP",
        73 => "EDOTDOT",
        74 => "EBADMSG",
        75 => "EOVERFLOW",
        76 => "ENOTUNIQ",
        77 => "EBADFD",
        78 => "EREMCHG",
        79 => "ELIBACC",
        80 => "ELIBBAD",
        81 => "ELIBSCN",
        82 => "ELIBMAX",
        83 => "ELIBEXEC",
        84 => "EILSEQ",
        85 => "ERESTART",
        86 => "ESTRPIPE",
        87 => "EUSERS",
        88 => "ENOTSOCK",
        89 => "EDESTADDRREQ",
        90 => "EMSGSIZE",
        91 => "EPROTOTYPE",
        92 => "ENOPROTOOPT",
        93 => "EPROTONOSUPPORT",
        94 => "ESOCKTNOSUPPORT",
        95 => "EOPNOTSUPP",
        96 => "EPFNOSUPPORT",
        97 => "EAFNOSUPPORT",
        98 => "EADDRINUSE",
        99 => "EADDRNOTAVAIL",
        100 => "ENETDOWN",
        101 => "ENETUNREACH",
        102 => "ENETRESET",
        103 => "ECONNABORTED",
        104 => "ECONNRESET",
        105 => "ENOBUFS",
        106 => "EISCONN",
        107 => "ENOTCONN",
        108 => "ESHUTDOWN",
        109 => "ETOOMANYREFS",
        110 => "ETIMEDOUT",
        111 => "ECONNREFUSED",
        112 => "EHOSTDOWN",
        113 => "EHOSTUNREACH",
        114 => "EALREADY",
        115 => "EINPROGRESS",
        116 => "ESTALE",
        117 => "EUCLEAN",
        118 => "ENOTNAM",
        119 => "ENAVAIL",
        120 => "EISNAM",
        121 => "EREMOTEIO",
        122 => "EDQUOT",
        123 => "ENOMEDIUM",
        124 => "EMEDIUMTYPE",
        125 => "ECANCELED",
        126 => "ENOKEY",
        127 => "EKEYEXPIRED",
        128 => "EKEYREVOKED",
        129 => "EKEYREJECTED",
        130 => "EOWNERDEAD",
        131 => "ENOTRECOVERABLE",
        132 => "ERFKILL",
        133 => "EHWPOISON",
        _ => return format!("E{errno}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names_match_libc_constants() {
        assert_eq!(errno_name(libc::ENOENT), "ENOENT");
        assert_eq!(errno_name(libc::ENAMETOOLONG), "ENAMETOOLONG");
        assert_eq!(errno_name(libc::ENOTDIR), "ENOTDIR");
        assert_eq!(errno_name(libc::EHWPOISON), "EHWPOISON");
        assert_eq!(errno_name(4000), "E4000");
    }

    #[test]
    fn op_names_round_trip() {
        for op in OpKind::ALL {
            assert_eq!(OpKind::from_name(op.name()), Some(op));
        }
        assert_eq!(OpKind::from_name("open"), None);
    }

    #[test]
    fn issue_counts_calls_and_errnos() {
        let exists = std::ffi::CString::new("/").unwrap();
        let missing = std::ffi::CString::new("/nonexistent-loadgen-test/x").unwrap();
        let mut buf = StatBuffers::default();
        let mut tally = Tally::default();
        for op in OpKind::ALL {
            unsafe {
                issue(op, exists.as_ptr(), &mut buf, &mut tally);
                issue(op, missing.as_ptr(), &mut buf, &mut tally);
            }
        }
        assert_eq!(tally.ops, 10);
        // openat twice, one close (only the existing path opened), two of each stat.
        assert_eq!(tally.calls, [2, 1, 2, 2, 2, 2]);
        assert_eq!(tally.errors_by_errno().get("ENOENT"), Some(&5));
        assert_eq!(tally.error_total(), 5);
        let by_call = tally.errors_by_syscall();
        assert_eq!(by_call.len(), 5);
        assert!(!by_call.contains_key("close"));
    }
}
