//! Ring memory: owned mappings (the kernel's, or emulated ones laid out the
//! same way) and [`Area`], the view of a data area that readers and emulated
//! writers share without locks.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// Why ring memory could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MemError {
    #[error("memfd_create for an emulated ring: {source}")]
    Memfd { source: io::Error },
    #[error("mmap of {bytes} bytes for {what}: {source}")]
    Mmap {
        what: &'static str,
        bytes: usize,
        source: io::Error,
    },
}

/// An owned memory mapping, unmapped on drop.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; who writes which bytes is
// decided by the ring protocol of the owner (see `Area`).
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

fn mmap(
    addr: *mut u8,
    len: usize,
    prot: i32,
    flags: i32,
    fd: i32,
    offset: usize,
    what: &'static str,
) -> Result<NonNull<u8>, MemError> {
    // SAFETY: callers pass either a null hint, or (with MAP_FIXED) an address
    // inside a reservation they own.
    let p = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len,
            prot,
            flags,
            fd,
            offset as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(MemError::Mmap {
            what,
            bytes: len,
            source: io::Error::last_os_error(),
        });
    }
    NonNull::new(p as *mut u8).ok_or(MemError::Mmap {
        what,
        bytes: len,
        source: io::Error::other("mmap returned null"),
    })
}

impl Mapping {
    /// Maps `len` bytes of `fd` at `offset` (a kernel ring: perf event or ring buffer map).
    pub fn of_fd(
        fd: BorrowedFd<'_>,
        len: usize,
        offset: usize,
        writable: bool,
        what: &'static str,
    ) -> Result<Self, MemError> {
        let prot = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
        let ptr = mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            offset,
            what,
        )?;
        Ok(Mapping { ptr, len })
    }

    /// `len` zeroed bytes (an emulated perf ring: metadata page + data area).
    pub fn anonymous(len: usize, what: &'static str) -> Result<Self, MemError> {
        let ptr = mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
            what,
        )?;
        Ok(Mapping { ptr, len })
    }

    /// `head` bytes followed by a `data`-byte area mapped twice in a row, the
    /// way the kernel maps a BPF ring buffer (an emulated ring buffer: its
    /// consumer and producer pages, then the data twice). Both are whole pages.
    pub fn mirrored(head: usize, data: usize, what: &'static str) -> Result<Self, MemError> {
        // SAFETY: a fresh anonymous file; the fd is ours on success.
        let fd = unsafe { libc::memfd_create(c"dropbench-ring".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(MemError::Memfd {
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: fd was just created and is owned here.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let file_len = head + data;
        // SAFETY: sizing our own memfd.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), file_len as libc::off_t) } != 0 {
            return Err(MemError::Memfd {
                source: io::Error::last_os_error(),
            });
        }
        // Reserve the whole range first, then place both images inside it.
        let len = head + 2 * data;
        let ptr = mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
            what,
        )?;
        let reservation = Mapping { ptr, len };
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let fixed = libc::MAP_SHARED | libc::MAP_FIXED;
        let fdn = fd.as_raw_fd();
        mmap(ptr.as_ptr(), file_len, rw, fixed, fdn, 0, what)?;
        // SAFETY: head + data is inside the reservation.
        let second = unsafe { ptr.as_ptr().add(file_len) };
        mmap(second, data, rw, fixed, fdn, head, what)?;
        Ok(reservation)
    }

    #[inline]
    pub fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The u64 at byte `offset` (8-aligned, in bounds), as an atomic.
    #[inline]
    pub fn atomic_u64(&self, offset: usize) -> &AtomicU64 {
        assert!(offset.is_multiple_of(8) && offset + 8 <= self.len);
        // SAFETY: in bounds and 8-aligned in a page-aligned mapping that lives
        // as long as the returned reference.
        unsafe { &*(self.ptr().add(offset) as *const AtomicU64) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what this value mapped.
        unsafe { libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.len) };
    }
}

/// A ring's data area: `size` bytes (a power of two) at `base`, addressed by
/// free-running positions masked by `size - 1`, of which `span` bytes are
/// mapped contiguously (`size`, or `2 * size` when the area is mapped twice in
/// a row as the ring buffer's is).
///
/// The bytes are shared between one writer and one reader, as in the kernel's
/// mmap: who may touch which range is decided by the ring's head/tail protocol
/// (the writer writes only free space, the reader reads only published
/// records, each publishing its position with a release store the other loads
/// with acquire). The unsafe methods' contract is that protocol.
#[derive(Debug, Clone, Copy)]
pub struct Area {
    base: *mut u8,
    size: usize,
    span: usize,
}

// SAFETY: see the type's documentation; the owner keeps the memory alive.
unsafe impl Send for Area {}
unsafe impl Sync for Area {}

impl Area {
    /// # Safety
    /// `base..base + span` must stay mapped while the area is used; `size` is
    /// a power of two and `span` is `size` or `2 * size` (a mirror).
    #[inline]
    pub unsafe fn new(base: *mut u8, size: usize, span: usize) -> Self {
        debug_assert!(size.is_power_of_two() && (span == size || span == 2 * size));
        Area { base, size, span }
    }

    #[inline]
    pub fn size(&self) -> usize {
        self.size
    }

    /// Byte offset of position `pos` in the area.
    #[inline]
    pub fn offset(&self, pos: u64) -> usize {
        pos as usize & (self.size - 1)
    }

    /// Copies `src` to position `pos`, wrapping at the end of what is mapped.
    ///
    /// # Safety
    /// The caller owns `[pos, pos + src.len())` under the ring protocol.
    #[inline]
    pub unsafe fn write(&self, pos: u64, src: &[u8]) {
        let off = self.offset(pos);
        if off + src.len() <= self.span {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.base.add(off), src.len());
        } else {
            let first = self.size - off;
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.base.add(off), first);
            std::ptr::copy_nonoverlapping(src.as_ptr().add(first), self.base, src.len() - first);
        }
    }

    /// Writes `n` zero bytes at `pos`, wrapping.
    ///
    /// # Safety
    /// As [`Area::write`].
    #[inline]
    pub unsafe fn zero(&self, pos: u64, n: usize) {
        let off = self.offset(pos);
        if off + n <= self.span {
            std::ptr::write_bytes(self.base.add(off), 0, n);
        } else {
            let first = self.size - off;
            std::ptr::write_bytes(self.base.add(off), 0, first);
            std::ptr::write_bytes(self.base, 0, n - first);
        }
    }

    /// Copies `dst.len()` bytes from `pos`, wrapping.
    ///
    /// # Safety
    /// The caller may read `[pos, pos + dst.len())` under the ring protocol.
    #[inline]
    pub unsafe fn read(&self, pos: u64, dst: &mut [u8]) {
        let off = self.offset(pos);
        if off + dst.len() <= self.span {
            std::ptr::copy_nonoverlapping(self.base.add(off), dst.as_mut_ptr(), dst.len());
        } else {
            let first = self.size - off;
            std::ptr::copy_nonoverlapping(self.base.add(off), dst.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(
                self.base,
                dst.as_mut_ptr().add(first),
                dst.len() - first,
            );
        }
    }

    /// Borrows `len` bytes at `pos` in place, or `None` if they wrap around
    /// the end of what is mapped (never, in a mirrored area, for `len <= size`).
    ///
    /// # Safety
    /// As [`Area::read`], for as long as the slice lives.
    #[inline]
    pub unsafe fn slice(&self, pos: u64, len: usize) -> Option<&[u8]> {
        let off = self.offset(pos);
        (off + len <= self.span).then(|| std::slice::from_raw_parts(self.base.add(off), len))
    }

    /// The u32 at a 4-aligned position, as an atomic (ring buffer record headers).
    #[inline]
    pub fn atomic_u32(&self, pos: u64) -> &AtomicU32 {
        let off = self.offset(pos);
        assert!(off.is_multiple_of(4));
        // SAFETY: in bounds and 4-aligned in page-aligned memory, which the
        // owner keeps mapped while the area is used (`Area::new`).
        unsafe { &*(self.base.add(off) as *const AtomicU32) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mirrored_area_shows_one_write_in_both_images() {
        let page = page_size();
        let m = Mapping::mirrored(2 * page, page, "test ring").unwrap();
        // SAFETY: the mapping holds 2 pages + the data twice.
        let area = unsafe { Area::new(m.ptr().add(2 * page), page, 2 * page) };
        let pos = (page - 4) as u64;
        let bytes = [1u8, 2, 3, 4, 5, 6, 7, 8];
        // SAFETY: single-threaded test.
        unsafe {
            area.write(pos, &bytes);
            // The record runs on into the second image, in place...
            assert_eq!(area.slice(pos, 8).unwrap(), &bytes);
            // ...and its tail is the start of the first.
            assert_eq!(area.slice(0, 4).unwrap(), &bytes[4..]);
        }
        // The positions page is ordinary shared memory.
        m.atomic_u64(0)
            .store(7, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            m.atomic_u64(0).load(std::sync::atomic::Ordering::Relaxed),
            7
        );
    }

    #[test]
    fn a_single_area_wraps_copies_and_refuses_to_lend_across_the_end() {
        let m = Mapping::anonymous(4096, "test ring").unwrap();
        // SAFETY: 4096 bytes mapped.
        let area = unsafe { Area::new(m.ptr(), 4096, 4096) };
        let bytes: Vec<u8> = (1..=16).collect();
        // SAFETY: single-threaded test.
        unsafe {
            area.write(4096 + 4088, &bytes);
            assert!(area.slice(4088, 16).is_none());
            let mut back = [0u8; 16];
            area.read(4088, &mut back);
            assert_eq!(&back[..], &bytes[..]);
            area.zero(4088, 16);
            area.read(4088, &mut back);
            assert_eq!(back, [0u8; 16]);
        }
    }
}
