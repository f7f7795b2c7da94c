//! A safe io_uring for the kernel path at its best (`kernel-uring`): the
//! `io-uring` crate's rings behind an interface that owns every buffer the
//! kernel may touch until its completion arrives, so no caller can free or
//! reuse memory an operation still uses.
//!
//! - sockets accepted by a multishot accept land in a sparse table of
//!   registered files (direct descriptors: no fd table, no fget per call);
//! - a multishot receive picks its buffers from a provided-buffer ring the
//!   `Ring` owns; a completion names the buffer, which the caller reads with
//!   [`Ring::buffer`] and hands back with [`Ring::recycle`];
//! - a send copies its bytes into a buffer the `Ring` keeps until the send
//!   completes;
//! - submissions are batched: operations queue in the submission ring and
//!   go to the kernel in one `io_uring_enter` with [`Ring::submit_and_wait`].

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

/// What an operation was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Accept,
    Recv,
    Send,
    Close,
    Connect,
    /// The cancel of a receive a close starts with (its completion says
    /// nothing the close's does not).
    Shutdown,
}

/// One completion: the operation, the caller's tag, the kernel's result
/// (a count, a direct descriptor, or a negative errno), whether a
/// multishot operation goes on, and the buffer a receive filled.
#[derive(Debug, Clone, Copy)]
pub struct Completion {
    pub op: OpKind,
    pub tag: u64,
    pub result: i32,
    pub more: bool,
    pub buffer: Option<u16>,
}

/// How a ring is made.
#[derive(Debug, Clone, Copy)]
pub struct RingConfig {
    /// Submission ring entries (a power of two).
    pub entries: u32,
    /// Provided buffers for receives (a power of two, at most 32768), and
    /// the size of each.
    pub buffers: u16,
    pub buffer_size: u32,
    /// Slots of the registered-file table (direct descriptors).
    pub files: u32,
    /// A kernel thread polls the submission ring (SQPOLL), idle after
    /// this many ms.
    pub sqpoll_idle_ms: Option<u32>,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            entries: 1024,
            buffers: 1024,
            buffer_size: 4096,
            files: 4096,
            sqpoll_idle_ms: None,
        }
    }
}

/// The provided-buffer group every receive picks from.
const BGID: u16 = 0;

/// The ring of provided buffers: `n` entries of 16 bytes (page aligned, as
/// the kernel wants), and the buffers they point to.
struct BufRing {
    entries: *mut types::BufRingEntry,
    layout: Layout,
    n: u16,
    size: u32,
    mem: Vec<u8>,
    /// Our copy of the tail: entries published so far.
    tail: u16,
}

impl BufRing {
    fn new(n: u16, size: u32) -> io::Result<BufRing> {
        if !n.is_power_of_two() || n > 32768 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "provided buffers: a power of two up to 32768",
            ));
        }
        let layout = Layout::from_size_align(usize::from(n) * 16, 4096)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        // SAFETY: the layout has a non-zero size (n >= 1) and a valid
        // alignment; the memory is freed in Drop with the same layout.
        let entries = unsafe { alloc_zeroed(layout) }.cast::<types::BufRingEntry>();
        if entries.is_null() {
            return Err(io::Error::new(io::ErrorKind::OutOfMemory, "buffer ring"));
        }
        let mut r = BufRing {
            entries,
            layout,
            n,
            size,
            mem: vec![0; usize::from(n) * size as usize],
            tail: 0,
        };
        for bid in 0..n {
            r.push(bid);
        }
        r.publish();
        Ok(r)
    }

    /// Puts buffer `bid` at the ring's tail (published by [`publish`]).
    fn push(&mut self, bid: u16) {
        let mask = self.n - 1;
        let slot = usize::from(self.tail & mask);
        let addr = self.mem[usize::from(bid) * self.size as usize..].as_mut_ptr() as u64;
        // SAFETY: `slot` < n, so the entry lies inside the allocation; the
        // kernel reads only entries between its head and the published
        // tail, and this one is past the tail until `publish`.
        let e = unsafe { &mut *self.entries.add(slot) };
        e.set_addr(addr);
        e.set_len(self.size);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes the pushed buffers visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail field overlays entry 0's `resv` (the kernel's
        // `struct io_uring_buf_ring`); it is a u16 inside our allocation,
        // aligned, and written only by us (release: the entries first).
        unsafe {
            let tail = types::BufRingEntry::tail(self.entries) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    fn buffer(&self, bid: u16, len: usize) -> &[u8] {
        let start = usize::from(bid) * self.size as usize;
        &self.mem[start..start + len.min(self.size as usize)]
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the ring that used
        // it is unregistered (or gone) before the BufRing drops (field
        // order in `Ring`).
        unsafe { dealloc(self.entries.cast(), self.layout) };
    }
}

/// An io_uring with its registered files, its provided buffers and the
/// buffers of the sends in flight.
pub struct Ring {
    // dropped first: the kernel stops using the buffers before they go
    ring: IoUring,
    bufs: BufRing,
    /// In-flight sends' bytes, by slot; free slots listed in `free_sends`.
    sends: Vec<Vec<u8>>,
    free_sends: Vec<u32>,
    /// In-flight connects' addresses, by slot. Boxed: the kernel holds a
    /// pointer to an address until its connect completes, and a Vec that
    /// grows moves what it holds inline.
    #[allow(clippy::vec_box)]
    addrs: Vec<Box<(libc::sockaddr_storage, libc::socklen_t)>>,
    free_addrs: Vec<u32>,
    /// Slots of the file table that [`Ring::register`] may fill (a ring
    /// whose accepts let the kernel pick slots does not use these).
    free_files: Vec<u32>,
    /// The file table's slots are ours to fill (`register`), not the
    /// kernel's (accepts into allocated slots).
    manual_files: bool,
    /// Operations submitted (or queued) without their final completion.
    in_flight: usize,
    /// `io_uring_enter` calls made by [`Ring::wait`], completions taken.
    enters: u64,
    completions: u64,
}

// SAFETY: the Ring owns its memory and the kernel objects behind it; none
// is tied to the thread that made it (without SQPOLL's single issuer); it is
// not Sync: every operation takes `&mut self`.
unsafe impl Send for Ring {}

/// A completion's user data: the op in the top byte, the tag (or a send's
/// slot in its upper half) below.
fn user_data(op: OpKind, tag: u64, slot: u32) -> u64 {
    let code = match op {
        OpKind::Accept => 1u64,
        OpKind::Recv => 2,
        OpKind::Send => 3,
        OpKind::Close => 4,
        OpKind::Connect => 5,
        OpKind::Shutdown => 6,
    };
    (code << 56) | (u64::from(slot) << 32) | (tag & 0xffff_ffff)
}

fn decode(ud: u64) -> Option<(OpKind, u64, u32)> {
    let op = match ud >> 56 {
        1 => OpKind::Accept,
        2 => OpKind::Recv,
        3 => OpKind::Send,
        4 => OpKind::Close,
        5 => OpKind::Connect,
        6 => OpKind::Shutdown,
        _ => return None,
    };
    Some((op, ud & 0xffff_ffff, ((ud >> 32) & 0x00ff_ffff) as u32))
}

impl Ring {
    pub fn new(cfg: RingConfig) -> io::Result<Ring> {
        // one thread submits and reaps (the harness's shards are threads
        // of their own): the kernel may then run completion work when the
        // thread enters the ring, not by interrupting it (6.1), else at
        // least without an IPI (5.19)
        let build = |defer: bool| {
            let mut b = IoUring::builder();
            if let Some(idle) = cfg.sqpoll_idle_ms {
                b.setup_sqpoll(idle);
            } else if defer {
                b.setup_single_issuer().setup_defer_taskrun();
            } else {
                b.setup_coop_taskrun();
            }
            b.build(cfg.entries)
        };
        let ring = build(true).or_else(|_| build(false))?;
        ring.submitter().register_files_sparse(cfg.files)?;
        let bufs = BufRing::new(cfg.buffers, cfg.buffer_size)?;
        // SAFETY: the ring memory is page aligned, holds `n` entries, and
        // lives until after the ring is dropped (field order).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(bufs.entries as u64, bufs.n, BGID, 0)?;
        }
        Ok(Ring {
            ring,
            bufs,
            sends: Vec::new(),
            free_sends: Vec::new(),
            addrs: Vec::new(),
            free_addrs: Vec::new(),
            free_files: (0..cfg.files).rev().collect(),
            manual_files: false,
            in_flight: 0,
            enters: 0,
            completions: 0,
        })
    }

    /// Queues an entry, submitting what is queued when the ring is full.
    fn push(&mut self, e: squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every buffer an entry points to is owned by `self`
            // (provided buffers, send slots) and kept until the entry's
            // last completion; file descriptors are the caller's borrowed
            // listener (which must outlive the accept: see `accept_multi`)
            // or direct descriptors.
            let pushed = unsafe { self.ring.submission().push(&e) };
            if pushed.is_ok() {
                self.in_flight += 1;
                return Ok(());
            }
            self.ring.submit()?;
        }
    }

    /// Accepts every connection on `listener` into the registered-file
    /// table (multishot): each completion's result is a direct descriptor.
    /// The listener must stay open while the ring lives.
    pub fn accept_multi(&mut self, listener: BorrowedFd<'_>, tag: u64) -> io::Result<()> {
        let e = opcode::AcceptMulti::new(types::Fd(listener.as_raw_fd()))
            .allocate_file_index(true)
            .build()
            .user_data(user_data(OpKind::Accept, tag, 0));
        self.push(e)
    }

    /// Receives on direct descriptor `file` into provided buffers until
    /// the peer closes, an error, or the buffers run out (a completion
    /// without `more`: arm it again).
    pub fn recv_multi(&mut self, file: u32, tag: u64) -> io::Result<()> {
        let e = opcode::RecvMulti::new(types::Fixed(file), BGID)
            .build()
            .user_data(user_data(OpKind::Recv, tag, 0));
        self.push(e)
    }

    /// Sends `data` (copied) on direct descriptor `file`. The completion's
    /// result is the bytes sent, which may be fewer than given.
    pub fn send(&mut self, file: u32, data: &[u8], tag: u64) -> io::Result<()> {
        let slot = match self.free_sends.pop() {
            Some(s) => s,
            None => {
                self.sends.push(Vec::new());
                (self.sends.len() - 1) as u32
            }
        };
        if slot > 0x00ff_ffff {
            return Err(io::Error::other("too many sends in flight"));
        }
        let buf = &mut self.sends[slot as usize];
        buf.clear();
        buf.extend_from_slice(data);
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let e = opcode::Send::new(types::Fixed(file), buf.as_ptr(), len)
            .build()
            .user_data(user_data(OpKind::Send, tag, slot));
        self.push(e)
    }

    /// Puts a socket into a free slot of the file table (the ring keeps it
    /// open from there: `fd` is closed); returns the slot. Slots come back
    /// with the completion of their [`Ring::close`].
    /// Slots [`Ring::register`] may still fill.
    pub fn free_slots(&self) -> usize {
        self.free_files.len()
    }

    pub fn register(&mut self, fd: std::os::fd::OwnedFd) -> io::Result<u32> {
        self.manual_files = true;
        let slot = self
            .free_files
            .pop()
            .ok_or_else(|| io::Error::other("the ring's file table is full"))?;
        let raw = [fd.as_raw_fd()];
        match self.ring.submitter().register_files_update(slot, &raw) {
            Ok(_) => Ok(slot),
            Err(e) => {
                self.free_files.push(slot);
                Err(e)
            }
        }
    }

    /// Connects direct descriptor `file` to `addr`.
    pub fn connect(&mut self, file: u32, addr: std::net::SocketAddr, tag: u64) -> io::Result<()> {
        // SAFETY: sockaddr_storage is plain old data; all zeroes is valid.
        let mut st: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = match addr {
            std::net::SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: a sockaddr_in fits in (and is aligned for) a
                // sockaddr_storage, which exists to hold any address.
                unsafe { std::ptr::write((&mut st as *mut libc::sockaddr_storage).cast(), sin) };
                size_of::<libc::sockaddr_in>()
            }
            std::net::SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: as above, for a sockaddr_in6.
                unsafe { std::ptr::write((&mut st as *mut libc::sockaddr_storage).cast(), sin6) };
                size_of::<libc::sockaddr_in6>()
            }
        };
        let len = len as libc::socklen_t;
        let slot = match self.free_addrs.pop() {
            Some(s) => {
                *self.addrs[s as usize] = (st, len);
                s
            }
            None => {
                self.addrs.push(Box::new((st, len)));
                (self.addrs.len() - 1) as u32
            }
        };
        let a = &self.addrs[slot as usize];
        let e = opcode::Connect::new(
            types::Fixed(file),
            (&a.0 as *const libc::sockaddr_storage).cast(),
            a.1,
        )
        .build()
        .user_data(user_data(OpKind::Connect, tag, slot));
        self.push(e)
    }

    /// Closes direct descriptor `file`, whose multishot receive (if any)
    /// carries `tag`: the receive is cancelled first (linked), since it
    /// holds the socket, and a close alone would leave the socket open,
    /// without a FIN, until the receive ended. (A shutdown would do too,
    /// but the kernel runs it in a worker thread, which lags behind at
    /// thousands of closes a second.)
    pub fn close(&mut self, file: u32, tag: u64) -> io::Result<()> {
        {
            // both entries in one submission: a link must not straddle two
            let sq = self.ring.submission();
            if sq.capacity() - sq.len() < 2 {
                drop(sq);
                self.ring.submit()?;
            }
        }
        let cancel = opcode::AsyncCancel::new(user_data(OpKind::Recv, tag, 0))
            .build()
            .flags(squeue::Flags::IO_HARDLINK)
            .user_data(user_data(OpKind::Shutdown, tag, 0));
        self.push(cancel)?;
        let e = opcode::Close::new(types::Fixed(file))
            .build()
            .user_data(user_data(OpKind::Close, tag, file));
        self.push(e)
    }

    /// Submits what is queued, in one system call, waiting for at least
    /// `want` completions (0: do not wait).
    pub fn submit_and_wait(&mut self, want: usize) -> io::Result<usize> {
        match self.ring.submit_and_wait(want) {
            Ok(n) => Ok(n),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => Ok(0),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Submits what is queued and waits for a completion, at most `limit`.
    pub fn submit_and_wait_for(&mut self, limit: std::time::Duration) -> io::Result<usize> {
        let ts = types::Timespec::new()
            .sec(limit.as_secs())
            .nsec(limit.subsec_nanos());
        let args = types::SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(n) => Ok(n),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) =>
            {
                Ok(0)
            }
            Err(e) => Err(e),
        }
    }

    /// One turn of a loop: submits what is queued, waits up to `limit`
    /// for a completion (at least 1 µs: a zero limit would not wait), and
    /// replaces `out` with the completions that are there.
    pub fn wait(
        &mut self,
        limit: std::time::Duration,
        out: &mut Vec<Completion>,
    ) -> io::Result<()> {
        self.submit_and_wait_for(limit.max(std::time::Duration::from_micros(1)))?;
        self.enters += 1;
        out.clear();
        self.complete(out);
        Ok(())
    }

    /// `io_uring_enter` calls made by [`Ring::wait`].
    pub fn enters(&self) -> u64 {
        self.enters
    }

    /// Completions taken by [`Ring::complete`] (a multishot's each).
    pub fn completions(&self) -> u64 {
        self.completions
    }

    /// Takes the completions that are there.
    pub fn complete(&mut self, out: &mut Vec<Completion>) {
        let mut freed = Vec::new();
        for c in self.ring.completion() {
            let Some((op, tag, slot)) = decode(c.user_data()) else {
                continue;
            };
            let more = cqueue::more(c.flags());
            if !more {
                self.in_flight = self.in_flight.saturating_sub(1);
            }
            match op {
                OpKind::Send => freed.push(slot),
                OpKind::Connect => self.free_addrs.push(slot),
                OpKind::Close if c.result() >= 0 && self.manual_files => self.free_files.push(slot),
                _ => {}
            }
            self.completions += 1;
            out.push(Completion {
                op,
                tag,
                result: c.result(),
                more,
                buffer: cqueue::buffer_select(c.flags()),
            });
        }
        self.free_sends.extend(freed);
    }

    /// The bytes a receive put in buffer `bid`.
    pub fn buffer(&self, bid: u16, len: usize) -> &[u8] {
        self.bufs.buffer(bid, len)
    }

    /// Hands buffer `bid` back to the kernel.
    pub fn recycle(&mut self, bid: u16) {
        if bid < self.bufs.n {
            self.bufs.push(bid);
            self.bufs.publish();
        }
    }

    /// Operations without their final completion.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    #[test]
    fn user_data_round_trips() {
        for op in [
            OpKind::Accept,
            OpKind::Recv,
            OpKind::Send,
            OpKind::Close,
            OpKind::Connect,
            OpKind::Shutdown,
        ] {
            let ud = user_data(op, 0xdead_beef, 0x12_3456);
            assert_eq!(decode(ud), Some((op, 0xdead_beef, 0x12_3456)));
        }
        assert_eq!(decode(0), None);
    }

    /// A ring accepts, receives into its buffers, echoes and closes, over
    /// real loopback TCP.
    #[test]
    fn a_ring_accepts_receives_and_sends() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let mut ring = match Ring::new(RingConfig {
            buffers: 64,
            files: 64,
            ..Default::default()
        }) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("skipped: this kernel refuses io_uring with provided buffer rings: {e}");
                return;
            }
        };
        ring.accept_multi(l.as_fd(), 7).unwrap();
        let peer = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"ping").unwrap();
            let mut b = [0u8; 4];
            s.read_exact(&mut b).unwrap();
            b
        });
        let mut got = Vec::new();
        let mut file = None;
        let mut echoed = false;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !echoed && std::time::Instant::now() < deadline {
            ring.submit_and_wait(1).unwrap();
            got.clear();
            ring.complete(&mut got);
            for c in got.clone() {
                match c.op {
                    OpKind::Accept => {
                        assert!(c.result >= 0, "accept: {}", c.result);
                        assert_eq!(c.tag, 7);
                        assert!(c.more, "multishot accept goes on");
                        file = Some(c.result as u32);
                        ring.recv_multi(c.result as u32, 1).unwrap();
                    }
                    OpKind::Recv if c.result > 0 => {
                        let bid = c.buffer.expect("a provided buffer");
                        let data = ring.buffer(bid, c.result as usize).to_vec();
                        ring.recycle(bid);
                        assert_eq!(data, b"ping");
                        ring.send(file.unwrap(), b"pong", 2).unwrap();
                    }
                    OpKind::Send => {
                        assert_eq!(c.result, 4);
                        echoed = true;
                    }
                    _ => {}
                }
            }
        }
        assert_eq!(&peer.join().unwrap(), b"pong");
        ring.close(file.unwrap(), 3).unwrap();
        ring.submit_and_wait(1).unwrap();
    }

    /// A registered socket connects through the ring, and its slot comes
    /// back when its close completes, again and again.
    #[test]
    fn registered_sockets_connect_close_and_give_their_slot_back() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let Ok(mut ring) = Ring::new(RingConfig {
            buffers: 16,
            files: 2,
            ..Default::default()
        }) else {
            eprintln!("skipped: this kernel refuses io_uring with provided buffer rings");
            return;
        };
        let mut got = Vec::new();
        for round in 0..5u64 {
            let s = std::net::TcpStream::connect(addr).unwrap();
            drop(s);
            let sock = socket_for(addr);
            let file = ring.register(sock).unwrap();
            ring.connect(file, addr, round).unwrap();
            ring.recv_multi(file, round).unwrap();
            let (_peer, _) = l.accept().unwrap();
            ring.close(file, round).unwrap();
            let mut closed = None;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while closed.is_none() && std::time::Instant::now() < deadline {
                ring.submit_and_wait(1).unwrap();
                got.clear();
                ring.complete(&mut got);
                for c in &got {
                    if c.op == OpKind::Connect {
                        assert_eq!(c.result, 0, "round {round}: connect");
                    }
                    if c.op == OpKind::Close {
                        closed = Some(c.result);
                    }
                }
            }
            assert_eq!(closed, Some(0), "round {round}: close");
        }
    }

    fn socket_for(addr: std::net::SocketAddr) -> std::os::fd::OwnedFd {
        let s = std::net::TcpStream::connect(addr).unwrap();
        // a fresh, unconnected socket is what a client registers; a
        // connected one's fd stands in for the table here
        drop(s);
        // SAFETY: socket(2) returns a new descriptor or -1 (checked).
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0);
        // SAFETY: a new descriptor, owned from here on.
        unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }
    }
}
