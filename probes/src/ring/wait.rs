//! Waiting until rings are readable: one [`Waiter`] per ring set, which
//! reports *which* rings are ready, as `epoll_wait` does for libbpf.
//!
//! - Live rings are kernel fds, waited on with epoll (or `poll(2)` if an
//!   epoll set cannot be made). The kernel decides readiness: a perf event fd
//!   is readable only after a wakeup (`perf_poll` returns and clears
//!   `rb->poll`, which `perf_output_wakeup` set at the `wakeup_events` count or
//!   the watermark); a ring buffer map fd is readable while data is available
//!   (`ringbuf_map_poll_kern`), and its sleepers are woken per the producer's
//!   wakeup flags.
//! - Emulated rings share an [`EmulatedPoll`], the kernel half of the same
//!   mechanism: emulated writers call [`EmulatedPoll::wake`] exactly where the
//!   kernel would wake the reader, and the waiter applies the same per-ring
//!   poll rule ([`PollRule`]) with epoll's level-triggered ready list.
//!
//! On timeout no ring is reported, and a reader drains nothing (libbpf's
//! `perf_buffer__poll` and `ring_buffer__poll` consume only what
//! `epoll_wait` returned, and it returned 0).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::record::SourceError;

/// How a reader learns that one ring is readable.
#[derive(Clone)]
pub enum Pollable {
    /// A kernel fd (perf event or ring buffer map).
    Fd(RawFd),
    /// Slot `slot` of an emulated ring set.
    Emulated { set: Arc<EmulatedPoll>, slot: usize },
}

/// What a level-triggered poll needs to know of a ring's memory: whether it
/// holds data the reader has not consumed. The ring buffer reader's memory
/// (`ringbuf::RingBufMem`) implements it; the waiter knows no more of it
/// than this, and imports neither reader.
pub trait RingPending: Send + Sync {
    /// `ringbuf_avail_data_sz() > 0`: what the ring buffer's poll reports.
    fn has_data(&self) -> bool;
}

/// When an emulated ring's poll reports it readable.
pub enum PollRule {
    /// `perf_poll`: once per wakeup (it returns and clears `rb->poll`).
    Perf,
    /// `ringbuf_map_poll_kern`: whenever data is available.
    RingBuf(Arc<dyn RingPending>),
}

/// A wait queue: the reader sleeps here and the writer's wakeup wakes it. A
/// writer pays for the condvar only when a reader sleeps, as in the kernel,
/// where a wakeup is cheap with no sleepers.
#[derive(Default)]
struct WaitQueue {
    generation: Mutex<u64>,
    cv: Condvar,
    sleepers: AtomicU32,
}

impl WaitQueue {
    /// Call after publishing what the sleeper checks.
    #[inline]
    fn notify(&self) {
        // Pairs with the fence in `sleep`: either the sleeper's re-check sees
        // the new state, or this sees its sleeper count and takes the lock.
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::Relaxed) > 0 {
            let mut g = self.generation.lock().unwrap_or_else(|e| e.into_inner());
            *g += 1;
            self.cv.notify_all();
        }
    }

    /// Sleeps until notified or `deadline`, unless `ready()` already holds.
    fn sleep(&self, deadline: Instant, ready: impl Fn() -> bool) {
        let mut g = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let start = *g;
        while !ready() && *g == start {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            g = self
                .cv
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Slot {
    rule: PollRule,
    /// perf's `rb->poll`: set by a wakeup, cleared by the poll that reports it.
    poll: AtomicBool,
    /// On the ready list: a wakeup put it there (`ep_poll_callback`), or the
    /// last wait reported it and, being level-triggered, kept it there.
    listed: AtomicBool,
}

/// The kernel side of waiting for a set of emulated rings (the perf rings of
/// all emulated CPUs, or the one ring buffer): per ring, the poll state its
/// writer sets on a wakeup, and the wait queue of whichever waiter covers it.
pub struct EmulatedPoll {
    slots: Box<[Slot]>,
    /// One queue per slot; `route[s]` is the queue that slot `s`'s waiter sleeps on.
    queues: Box<[WaitQueue]>,
    route: Box<[AtomicUsize]>,
    /// Writers not yet closed (one per slot).
    open: AtomicUsize,
    closed: Arc<AtomicBool>,
}

impl EmulatedPoll {
    /// One slot per ring, each with one writer.
    pub fn new(rules: Vec<PollRule>) -> Arc<Self> {
        let n = rules.len();
        Arc::new(EmulatedPoll {
            slots: rules
                .into_iter()
                .map(|rule| Slot {
                    rule,
                    poll: AtomicBool::new(false),
                    listed: AtomicBool::new(false),
                })
                .collect(),
            queues: (0..n).map(|_| WaitQueue::default()).collect(),
            route: (0..n).map(AtomicUsize::new).collect(),
            open: AtomicUsize::new(n),
            closed: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn pollable(self: &Arc<Self>, slot: usize) -> Pollable {
        Pollable::Emulated {
            set: self.clone(),
            slot,
        }
    }

    /// The kernel wakes the reader of `slot`: perf's `perf_output_wakeup`
    /// (`rb->poll = EPOLLIN`, then the irq_work's `wake_up_all`), or the ring
    /// buffer's irq_work. Call after publishing the data.
    #[inline]
    pub fn wake(&self, slot: usize) {
        let s = &self.slots[slot];
        if let PollRule::Perf = s.rule {
            s.poll.store(true, Ordering::Release);
        }
        s.listed.store(true, Ordering::Release);
        self.queues[self.route[slot].load(Ordering::Acquire)].notify();
    }

    /// One writer has finished; once all have, the set is closed and every
    /// waiter returns.
    pub fn close_writer(&self) {
        if self.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.closed.store(true, Ordering::Release);
            self.queues.iter().for_each(WaitQueue::notify);
        }
    }

    /// Set once every writer has closed: the readers' stop flag.
    pub fn closed(&self) -> Arc<AtomicBool> {
        self.closed.clone()
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// When a reader stops waiting and drains to the end: set by a live reader's
/// owner once the probes are detached, or by an emulated set when its last
/// writer closes ([`EmulatedPoll::closed`]).
#[derive(Clone, Default)]
pub(crate) struct Stop(Option<Arc<AtomicBool>>);

impl Stop {
    pub(crate) fn on(flag: Arc<AtomicBool>) -> Self {
        Stop(Some(flag))
    }

    pub(crate) fn is_set(&self) -> bool {
        self.0.as_ref().is_some_and(|s| s.load(Ordering::Acquire))
    }
}

/// Waits on the rings of one set and reports which are ready.
pub struct Waiter(Kind);

enum Kind {
    Epoll {
        fd: OwnedFd,
        events: Vec<libc::epoll_event>,
    },
    Poll(Vec<libc::pollfd>),
    Emulated {
        set: Arc<EmulatedPoll>,
        /// The set's slot of each ring, in ring order (`None`: not of this set).
        slots: Vec<Option<usize>>,
        queue: usize,
    },
}

impl Waiter {
    /// A waiter over `rings`, in order. A ring set is either all kernel fds
    /// or all slots of one emulated set; rings of another kind than the
    /// first are never reported.
    pub fn new<'a>(rings: impl IntoIterator<Item = &'a Pollable>) -> Waiter {
        let rings: Vec<&Pollable> = rings.into_iter().collect();
        match rings.first() {
            Some(Pollable::Emulated { set, .. }) => {
                let slots = rings
                    .iter()
                    .map(|p| match p {
                        Pollable::Emulated { set: s, slot } if Arc::ptr_eq(s, set) => Some(*slot),
                        _ => None,
                    })
                    .collect();
                Self::emulated(set.clone(), slots)
            }
            _ => {
                let fds: Vec<RawFd> = rings
                    .iter()
                    .map(|p| match p {
                        Pollable::Fd(fd) => *fd,
                        Pollable::Emulated { .. } => -1,
                    })
                    .collect();
                Self::kernel(&fds)
            }
        }
    }

    /// epoll over `fds` (index i reports ring i), registered once as libbpf
    /// does; `poll(2)` if the epoll set cannot be made.
    fn kernel(fds: &[RawFd]) -> Waiter {
        let epoll = Self::epoll(fds).ok();
        Waiter(match epoll {
            Some(fd) => Kind::Epoll {
                fd,
                events: vec![libc::epoll_event { events: 0, u64: 0 }; fds.len().max(1)],
            },
            None => Kind::Poll(
                fds.iter()
                    .map(|&fd| libc::pollfd {
                        fd,
                        events: libc::POLLIN,
                        revents: 0,
                    })
                    .collect(),
            ),
        })
    }

    fn epoll(fds: &[RawFd]) -> io::Result<OwnedFd> {
        // SAFETY: no preconditions; the fd is ours on success.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: just created.
        let ep = unsafe { OwnedFd::from_raw_fd(ep) };
        for (i, &fd) in fds.iter().enumerate().filter(|(_, &fd)| fd >= 0) {
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: i as u64,
            };
            // SAFETY: registering a valid fd with our epoll set.
            if unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(ep)
    }

    fn emulated(set: Arc<EmulatedPoll>, slots: Vec<Option<usize>>) -> Waiter {
        let queue = slots.iter().flatten().next().copied().unwrap_or(0);
        for &s in slots.iter().flatten() {
            set.route[s].store(queue, Ordering::Release);
            // EPOLL_CTL_ADD polls the file once: the first wait polls every ring.
            set.slots[s].listed.store(true, Ordering::Release);
        }
        Waiter(Kind::Emulated { set, slots, queue })
    }

    /// Waits up to `timeout` and appends the index of every ready ring to
    /// `ready` (nothing on timeout, or when an emulated set has closed).
    pub fn wait(&mut self, timeout: Duration, ready: &mut Vec<usize>) -> Result<(), SourceError> {
        // Round up: a sub-millisecond timeout must not become a busy loop.
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        match &mut self.0 {
            Kind::Epoll { fd, events } => {
                // SAFETY: events is a valid buffer of events.len() entries.
                let r = unsafe {
                    libc::epoll_wait(fd.as_raw_fd(), events.as_mut_ptr(), events.len() as i32, ms)
                };
                if r < 0 {
                    return interrupted_or(io::Error::last_os_error());
                }
                ready.extend(events[..r as usize].iter().map(|e| e.u64 as usize));
            }
            Kind::Poll(pfds) => {
                // SAFETY: pfds is a valid slice of pollfd.
                let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
                if r < 0 {
                    return interrupted_or(io::Error::last_os_error());
                }
                ready.extend(
                    pfds.iter()
                        .enumerate()
                        .filter(|(_, p)| p.revents != 0)
                        .map(|(i, _)| i),
                );
            }
            Kind::Emulated { set, slots, queue } => {
                let deadline = Instant::now().checked_add(timeout);
                loop {
                    scan(set, slots, ready);
                    if !ready.is_empty() || set.is_closed() {
                        return Ok(());
                    }
                    let Some(deadline) = deadline.filter(|d| Instant::now() < *d) else {
                        return Ok(());
                    };
                    let listed = || {
                        set.is_closed()
                            || slots
                                .iter()
                                .flatten()
                                .any(|&s| set.slots[s].listed.load(Ordering::Acquire))
                    };
                    set.queues[*queue].sleep(deadline, listed);
                }
            }
        }
        Ok(())
    }
}

impl Waiter {
    /// Sleeps for `d` without waiting on any ring (a reader that polls on a
    /// timer); an emulated set's closing ends the sleep early.
    pub fn pause(&self, d: Duration) {
        match &self.0 {
            Kind::Emulated { set, queue, .. } => match Instant::now().checked_add(d) {
                Some(deadline) => set.queues[*queue].sleep(deadline, || set.is_closed()),
                None => std::thread::sleep(d),
            },
            Kind::Epoll { .. } | Kind::Poll(_) => std::thread::sleep(d),
        }
    }
}

/// `ep_send_events` over the emulated ready list: poll each listed ring, report
/// it if its poll says so, and keep it listed then (level-triggered epoll).
fn scan(set: &EmulatedPoll, slots: &[Option<usize>], ready: &mut Vec<usize>) {
    for (i, &s) in slots.iter().enumerate() {
        let Some(s) = s else { continue };
        let slot = &set.slots[s];
        if !slot.listed.swap(false, Ordering::AcqRel) {
            continue;
        }
        let readable = match &slot.rule {
            PollRule::Perf => slot.poll.swap(false, Ordering::AcqRel),
            PollRule::RingBuf(mem) => mem.has_data(),
        };
        if readable {
            ready.push(i);
            slot.listed.store(true, Ordering::Release);
        }
    }
}

/// An interrupted wait reports nothing; any other error is the caller's.
fn interrupted_or(e: io::Error) -> Result<(), SourceError> {
    if e.kind() == io::ErrorKind::Interrupted {
        Ok(())
    } else {
        Err(SourceError::Wait { ring: 0, source: e })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emulated_perf_wakeup_is_reported_once() {
        let set = EmulatedPoll::new(vec![PollRule::Perf, PollRule::Perf]);
        let (a, b) = (set.pollable(0), set.pollable(1));
        let mut w = Waiter::new([&a, &b]);
        let mut ready = Vec::new();
        w.wait(Duration::ZERO, &mut ready).unwrap();
        assert!(ready.is_empty());
        set.wake(1);
        w.wait(Duration::ZERO, &mut ready).unwrap();
        assert_eq!(ready, vec![1]);
        ready.clear();
        // perf_poll cleared rb->poll: the same wakeup is not reported twice.
        w.wait(Duration::from_millis(5), &mut ready).unwrap();
        assert!(ready.is_empty());
    }

    #[test]
    fn a_closed_set_ends_waits() {
        let set = EmulatedPoll::new(vec![PollRule::Perf]);
        let p = set.pollable(0);
        let mut w = Waiter::new([&p]);
        let closer = {
            let set = set.clone();
            std::thread::spawn(move || set.close_writer())
        };
        let mut ready = Vec::new();
        // Returns when the writer closes, well before an hour.
        w.wait(Duration::from_secs(3600), &mut ready).unwrap();
        closer.join().unwrap();
        assert!(ready.is_empty());
        assert!(set.closed().load(Ordering::Acquire));
    }

    #[test]
    fn a_kernel_fd_is_waited_on_with_epoll() {
        // An eventfd stands in for a perf event: readable once written.
        // SAFETY: plain eventfd creation; the fd is ours.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        assert!(efd >= 0);
        // SAFETY: just created.
        let efd = unsafe { OwnedFd::from_raw_fd(efd) };
        let (idle, ready_fd) = (Pollable::Fd(-1), Pollable::Fd(efd.as_raw_fd()));
        let mut w = Waiter::new([&idle, &ready_fd]);
        assert!(matches!(w.0, Kind::Epoll { .. }));
        let mut ready = Vec::new();
        w.wait(Duration::ZERO, &mut ready).unwrap();
        assert!(ready.is_empty());
        let one = 1u64.to_ne_bytes();
        // SAFETY: writing 8 bytes to our eventfd.
        assert_eq!(
            unsafe { libc::write(efd.as_raw_fd(), one.as_ptr().cast(), 8) },
            8
        );
        w.wait(Duration::from_secs(5), &mut ready).unwrap();
        assert_eq!(ready, vec![1]);
    }
}
