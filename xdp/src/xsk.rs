//! AF_XDP sockets: a UMEM, its fill and completion rings, and the socket's rx
//! and tx rings, all shared with the kernel through `mmap`.
//!
//! One socket per UMEM (no shared UMEM). Frame ownership is the whole game:
//! a UMEM frame is either ours (on the free list, or lent to a `receive`
//! callback, or being written by a `transmit` callback) or the kernel's (in
//! the fill ring, the rx ring, the tx ring or the completion ring). We touch
//! a frame's bytes only while it is ours.
//!
//! Memory ordering (as the kernel's `xsk_queue.h` pairs with it): on a ring we
//! produce (fill, tx) we write the entries, then store the producer index with
//! Release; we read the kernel's consumer index with Acquire before reusing
//! slots. On a ring we consume (rx, completion) we load the producer index with
//! Acquire before reading entries, and store our consumer index with Release
//! after we are done with them.
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, Result};
use crate::steering::Iface;
use crate::sys;

/// Bytes the kernel leaves before a received frame's data in copy mode
/// (`XDP_PACKET_HEADROOM` of the kernel's uapi).
pub(crate) const XDP_PACKET_HEADROOM: usize = 256;
/// Kicks of the tx ring per flush at most in copy mode (32 frames each).
const COPY_KICKS: u32 = 8;

/// The UMEM: the packet buffer area shared with the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UmemConfig {
    /// Bytes per frame: a power of two from 2048 to the page size (4096).
    pub frame_size: u32,
    /// Number of frames.
    pub frame_count: u32,
    /// Fill ring entries (power of two): this many frames receive (they go
    /// to the kernel at the start and back after each batch), the rest
    /// transmit.
    pub fill_size: u32,
    /// Completion ring entries (power of two).
    pub comp_size: u32,
}

impl Default for UmemConfig {
    fn default() -> Self {
        UmemConfig {
            frame_size: 2048,
            frame_count: 4096,
            fill_size: 2048,
            comp_size: 2048,
        }
    }
}

/// How to bind: zero-copy needs driver support (veth has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BindMode {
    /// Let the kernel try zero-copy and fall back to copy mode;
    /// [`Xsk::zero_copy`] says which took.
    Auto,
    /// Zero-copy or fail (`XDP_ZEROCOPY`).
    ZeroCopy,
    /// Copy mode (`XDP_COPY`).
    Copy,
}

/// An AF_XDP socket's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XskConfig {
    /// The UMEM.
    pub umem: UmemConfig,
    /// Rx ring entries (power of two).
    pub rx_size: u32,
    /// Tx ring entries (power of two).
    pub tx_size: u32,
    /// Zero-copy or copy.
    pub bind: BindMode,
    /// `XDP_USE_NEED_WAKEUP`: the kernel says when it needs a syscall to make
    /// progress, instead of us making one every time.
    pub need_wakeup: bool,
    /// Busy polling: the application's `receive`/`flush` calls run the
    /// driver's NAPI loop instead of interrupts (where the device is set up
    /// for it: `napi_defer_hard_irqs`, `gro_flush_timeout`).
    pub busy_poll: Option<BusyPoll>,
    /// Multi-buffer AF_XDP (`XDP_USE_SG`, kernel 6.6+): a frame larger than
    /// a UMEM frame arrives, and leaves, in several buffers, so the MTU is
    /// not bounded by the frame size (jumbo frames). See [`XskConfig::for_mtu`].
    pub multi_buffer: bool,
    /// Who computes TCP and UDP transmit checksums.
    pub tx_checksum: TxChecksum,
}

/// Who computes the TCP and UDP checksums of transmitted frames. Leaving
/// them goes through TX metadata (`XDP_TXMD_FLAGS_CHECKSUM`, kernel 6.8+);
/// on an older kernel, or with [`XskConfig::multi_buffer`] (the kernel
/// wants the metadata's room before every buffer of a frame, which a
/// frame's later buffers lack), the stack computes them whatever is asked.
/// [`Xsk::tx_checksum_offload`] says what took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxChecksum {
    /// The stack.
    Software,
    /// The device, where it says it completes them (netdev
    /// `xsk-features` `tx-checksum`: a zero-copy driver's offload), else
    /// the stack.
    Offered,
    /// Whoever the kernel hands them to: also in copy mode, where the
    /// kernel passes the frame on as a partial checksum
    /// (`CHECKSUM_PARTIAL`) for the interface's own offload or software to
    /// complete. Measured on veth: no gain in stream and ~10% more rr
    /// latency than the stack's own checksums (README).
    Kernel,
}

/// Room for the TX metadata before each transmitted frame
/// (`tx_metadata_len`: `struct xsk_tx_metadata`, rounded up as the
/// kernel requires, with room for fields newer kernels add).
const TX_META: usize = 32;

/// The largest frame the socket handles, over all its buffers (64 KiB:
/// more than any MTU a frame of 17 buffers carries).
const MAX_JOINED: usize = 65536;
/// Ethernet header with one VLAN tag, besides the MTU.
pub(crate) const L2_MAX: usize = 18;

impl XskConfig {
    /// This configuration made fit for frames of `mtu` bytes of IP: 2 KiB
    /// frames where they hold one with the copy-mode headroom, 4 KiB where
    /// those do, and beyond that 4 KiB frames with multi-buffer on.
    pub fn for_mtu(mut self, mtu: u32) -> XskConfig {
        let need = mtu as usize + L2_MAX + XDP_PACKET_HEADROOM;
        self.umem.frame_size = if need <= 2048 { 2048 } else { 4096 };
        self.multi_buffer = need > 4096;
        self
    }
}

/// Busy-poll settings of a socket (`SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL`,
/// `SO_BUSY_POLL_BUDGET`; kernel 5.11 or later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyPoll {
    /// How long one busy poll may spin, in microseconds.
    pub usecs: u32,
    /// Frames one busy poll may process.
    pub budget: u16,
}

impl Default for BusyPoll {
    fn default() -> Self {
        BusyPoll {
            usecs: 20,
            budget: 64,
        }
    }
}

use crate::busy::{SO_BUSY_POLL, SO_BUSY_POLL_BUDGET, SO_PREFER_BUSY_POLL};

impl Default for XskConfig {
    fn default() -> Self {
        XskConfig {
            umem: UmemConfig::default(),
            rx_size: 2048,
            tx_size: 2048,
            bind: BindMode::Auto,
            need_wakeup: true,
            busy_poll: None,
            multi_buffer: false,
            tx_checksum: TxChecksum::Software,
        }
    }
}

/// `XDP_STATISTICS`: the kernel's counters for one socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XskStats {
    /// Frames dropped for reasons other than the two below.
    pub rx_dropped: u64,
    /// Invalid descriptors in the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors in the tx ring.
    pub tx_invalid_descs: u64,
    /// Frames dropped because the rx ring was full.
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty.
    pub fill_ring_empty: u64,
    /// Times the kernel found the tx ring empty.
    pub tx_ring_empty: u64,
}

/// An anonymous or shared mapping, unmapped on drop.
#[derive(Debug)]
struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mmap {
    fn new(len: usize, fd: Option<BorrowedFd<'_>>, offset: u64) -> io::Result<Mmap> {
        let (flags, raw_fd) = match fd {
            Some(fd) => (libc::MAP_SHARED | libc::MAP_POPULATE, fd.as_raw_fd()),
            None => (
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
            ),
        };
        let offset = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: a fresh mapping chosen by the kernel (addr NULL): it aliases
        // no Rust object. The result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                raw_fd,
                offset,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        Ok(Mmap { ptr, len })
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned, unmapped once;
        // every pointer into the mapping lives in the struct that owns it.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// One of the four rings: `size` entries of `T` after the producer and
/// consumer indexes and the flags word, at offsets the kernel gives.
#[derive(Debug)]
struct Ring<T> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    entries: NonNull<T>,
    mask: u32,
    size: u32,
    /// Our copy of the index we own, and the last seen value of the other.
    cached_prod: u32,
    cached_cons: u32,
    _map: Mmap,
}

impl<T: Copy> Ring<T> {
    /// Maps a ring of the socket `fd` at page offset `pgoff`.
    fn map(
        fd: BorrowedFd<'_>,
        off: &libc::xdp_ring_offset,
        size: u32,
        pgoff: u64,
    ) -> io::Result<Ring<T>> {
        let len = off.desc as usize + size as usize * size_of::<T>();
        let map = Mmap::new(len, Some(fd), pgoff)?;
        let base = map.ptr.as_ptr();
        // A field of `bytes` bytes and alignment `align` at offset `o`, checked
        // to lie inside the mapping (whose base is page-aligned).
        let at = |o: u64, bytes: usize, align: usize| -> io::Result<*mut u8> {
            let o = usize::try_from(o).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
            if o.checked_add(bytes).is_some_and(|end| end <= len) && o % align == 0 {
                // SAFETY: `o` is within the mapping of `len` bytes.
                Ok(unsafe { base.add(o) })
            } else {
                Err(io::Error::from_raw_os_error(libc::EINVAL))
            }
        };
        let idx = (size_of::<AtomicU32>(), std::mem::align_of::<AtomicU32>());
        let entries = size as usize * size_of::<T>();
        let (p, c, f, d) = (
            at(off.producer, idx.0, idx.1)?,
            at(off.consumer, idx.0, idx.1)?,
            at(off.flags, idx.0, idx.1)?,
            at(off.desc, entries, std::mem::align_of::<T>())?,
        );
        let nn = |p: *mut u8| NonNull::new(p).expect("inside a non-null mapping");
        let mut ring = Ring {
            producer: nn(p).cast(),
            consumer: nn(c).cast(),
            flags: nn(f).cast(),
            entries: nn(d).cast(),
            mask: size - 1,
            size,
            cached_prod: 0,
            cached_cons: 0,
            _map: map,
        };
        ring.cached_prod = ring.producer().load(Ordering::Relaxed);
        ring.cached_cons = ring.consumer().load(Ordering::Relaxed);
        Ok(ring)
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into our live mapping, inside and aligned (checked
        // in `map`), and the kernel accesses it only atomically.
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.consumer.as_ref() }
    }

    fn needs_wakeup(&self) -> bool {
        // SAFETY: as for `producer`.
        let flags = unsafe { self.flags.as_ref() };
        flags.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    // --- as producer (fill, tx) ---

    /// Free slots, at most `want`; refreshes the kernel's consumer index
    /// (Acquire: its reads of those slots are done) only when needed.
    fn free(&mut self, want: u32) -> u32 {
        let mut free = self.size - self.cached_prod.wrapping_sub(self.cached_cons);
        if free < want {
            self.cached_cons = self.consumer().load(Ordering::Acquire);
            free = self.size - self.cached_prod.wrapping_sub(self.cached_cons);
        }
        free.min(want)
    }

    /// Entries published and not yet consumed by the kernel (refreshes its
    /// consumer index).
    fn outstanding(&mut self) -> u32 {
        self.cached_cons = self.consumer().load(Ordering::Acquire);
        self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// Writes the entry `i` slots past the producer index; the caller checked
    /// `i < free(..)`.
    fn write(&mut self, i: u32, v: T) {
        let idx = self.cached_prod.wrapping_add(i) & self.mask;
        // SAFETY: idx <= mask < size: inside the entries array; the slot is
        // free (the kernel consumed it), so the kernel does not read it now.
        unsafe { self.entries.as_ptr().add(idx as usize).write(v) }
    }

    /// Publishes `n` written entries (Release: the entries before the index).
    fn submit(&mut self, n: u32) {
        self.cached_prod = self.cached_prod.wrapping_add(n);
        self.producer().store(self.cached_prod, Ordering::Release);
    }

    // --- as consumer (rx, completion) ---

    /// Entries ready, at most `max`; refreshes the kernel's producer index
    /// (Acquire: the entries it wrote before it) only when none are cached.
    fn available(&mut self, max: u32) -> u32 {
        let mut n = self.cached_prod.wrapping_sub(self.cached_cons);
        if n == 0 {
            self.cached_prod = self.producer().load(Ordering::Acquire);
            n = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        n.min(max)
    }

    /// As [`available`](Self::available), reading the kernel's producer
    /// index whatever is cached (a frame's last buffer may have come since).
    fn available_now(&mut self, max: u32) -> u32 {
        self.cached_prod = self.producer().load(Ordering::Acquire);
        self.cached_prod.wrapping_sub(self.cached_cons).min(max)
    }

    /// Reads the entry `i` slots past the consumer index; `i < available(..)`.
    fn read(&self, i: u32) -> T {
        let idx = self.cached_cons.wrapping_add(i) & self.mask;
        // SAFETY: idx <= mask < size: inside the entries array; the kernel
        // published it (Acquire in `available`) and does not touch it until
        // we release it.
        unsafe { self.entries.as_ptr().add(idx as usize).read() }
    }

    /// Gives `n` read entries back to the kernel.
    fn release(&mut self, n: u32) {
        self.cached_cons = self.cached_cons.wrapping_add(n);
        self.consumer().store(self.cached_cons, Ordering::Release);
    }
}

/// Frames that came in several buffers (multi-buffer AF_XDP), counted by
/// the socket itself: the kernel's statistics do not tell them apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JoinStats {
    /// Frames received in more than one buffer, joined and handed on.
    pub joined: u64,
    /// Frames dropped for being longer than [`MAX_JOINED`] bytes (or a
    /// buffer outside the UMEM): never from a sane kernel.
    pub dropped: u64,
}

/// An AF_XDP socket bound to one queue of one interface, with its own UMEM.
///
/// The UMEM is split in two: the first `fill_size` frames receive (they
/// cycle through the fill and rx rings), the rest transmit, in slots of
/// `tx_slot` consecutive frames (1 without multi-buffer; with it, as many
/// as a frame of the MTU needs, so that the stack writes one contiguous
/// frame, which leaves as one descriptor per UMEM frame).
#[derive(Debug)]
pub struct Xsk {
    // Field order is drop order: rings, then the socket, then the UMEM.
    rx: Ring<libc::xdp_desc>,
    tx: Ring<libc::xdp_desc>,
    fill: Ring<u64>,
    comp: Ring<u64>,
    fd: OwnedFd,
    umem: Mmap,
    frame_size: u32,
    /// Receive frames that are ours and idle.
    free: Vec<u64>,
    /// Transmit slots that are ours and idle (their first frame's address).
    tx_free: Vec<u64>,
    /// Where the transmit slots start, and frames per slot.
    tx_base: u64,
    tx_slot: u32,
    /// Bytes before a frame in its slot: the TX metadata's room (0 when
    /// the UMEM has none).
    tx_head: u64,
    /// TCP and UDP checksums are left to the kernel or the device.
    tx_checksum_offload: bool,
    multi_buffer: bool,
    /// A frame that came in several buffers, joined for the caller.
    joined: Vec<u8>,
    join_stats: JoinStats,
    /// Tx descriptors submitted since the last kick.
    tx_unkicked: u32,
    need_wakeup: bool,
    busy_poll: Option<BusyPoll>,
    zero_copy: bool,
    /// The interface's MTU when the socket was bound.
    if_mtu: u32,
    iface: String,
    queue: u32,
}

// SAFETY: an `Xsk` owns its mappings and socket exclusively; nothing in it is
// tied to the thread that made it, so it may move to the thread that polls it.
// (It is not Sync: every operation takes `&mut self`.)
unsafe impl Send for Xsk {}

fn pow2(what: &str, n: u32) -> Result<()> {
    if n.is_power_of_two() {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{what} must be a power of two, not {n}"
        )))
    }
}

fn setsockopt<T>(fd: BorrowedFd<'_>, opt: libc::c_int, v: &T) -> io::Result<()> {
    setsockopt_level(fd, libc::SOL_XDP, opt, v)
}

fn setsockopt_level<T>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    opt: libc::c_int,
    v: &T,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(size_of::<T>()).expect("small option");
    // SAFETY: `v` points to a live T of `len` bytes for the call.
    let r = unsafe { libc::setsockopt(fd.as_raw_fd(), level, opt, (v as *const T).cast(), len) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// getsockopt(SOL_XDP) into a zeroed `T`; returns it and the length written.
fn getsockopt<T: Copy>(fd: BorrowedFd<'_>, opt: libc::c_int) -> io::Result<(T, usize)> {
    let mut v = std::mem::MaybeUninit::<T>::zeroed();
    let mut len = libc::socklen_t::try_from(size_of::<T>()).expect("small option");
    // SAFETY: `v` has room for `len` bytes; the kernel writes at most that.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            opt,
            v.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised plain-old-data (integers only), partly or
    // wholly overwritten by the kernel: every bit pattern is valid.
    Ok((unsafe { v.assume_init() }, len as usize))
}

/// Maps one ring, or says which one failed.
fn ring<T: Copy>(
    fd: BorrowedFd<'_>,
    off: &libc::xdp_ring_offset,
    size: u32,
    pgoff: u64,
    call: &'static str,
    who: &str,
) -> Result<Ring<T>> {
    Ring::map(fd, off, size, pgoff).map_err(|source| Error::Syscall {
        iface: who.to_owned(),
        call,
        source,
        hint: "mapping a ring failed: check memory limits",
    })
}

impl Xsk {
    /// Creates a socket with its UMEM and binds it to `queue` of `iface` (in
    /// the calling thread's network namespace). Frames reach it once a
    /// [`Steering`](crate::Steering) program holds it in its map
    /// ([`Steering::insert_socket`](crate::Steering::insert_socket)).
    pub fn bind<'a>(iface: impl Into<Iface<'a>>, queue: u32, config: &XskConfig) -> Result<Xsk> {
        let (ifindex, name) = iface.into().resolve()?;
        let u = &config.umem;
        if !(2048..=4096).contains(&u.frame_size) {
            return Err(Error::Config(format!(
                "frame size {} not in 2048..=4096",
                u.frame_size
            )));
        }
        pow2("frame size", u.frame_size)?;
        pow2("fill ring size", u.fill_size)?;
        pow2("completion ring size", u.comp_size)?;
        pow2("rx ring size", config.rx_size)?;
        pow2("tx ring size", config.tx_size)?;
        let who = format!("{name} queue {queue}");
        let if_mtu = sys::if_mtu(&name).map_err(|source| Error::Syscall {
            iface: who.clone(),
            call: "ioctl(SIOCGIFMTU)",
            source,
            hint: "the interface must exist in this network namespace",
        })?;
        // a transmit slot holds the largest frame the interface sends
        let tx_slot = if config.multi_buffer {
            (if_mtu as usize + L2_MAX)
                .min(MAX_JOINED)
                .div_ceil(u.frame_size as usize) as u32
        } else {
            1
        };
        if u64::from(u.fill_size) + u64::from(tx_slot) > u64::from(u.frame_count) {
            return Err(Error::Config(format!(
                "{} frames: the fill ring's {} and at least one transmit slot of {tx_slot} need more",
                u.frame_count, u.fill_size
            )));
        }
        let fail = |call: &'static str, hint: &'static str| {
            let who = who.clone();
            move |source: io::Error| Error::Syscall {
                iface: who,
                call,
                source,
                hint,
            }
        };
        const ROOT: &str = "run as root on a kernel with AF_XDP (CONFIG_XDP_SOCKETS)";

        // SAFETY: plain syscall; the result is checked.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(fail("socket(AF_XDP)", ROOT)(io::Error::last_os_error()));
        }
        // SAFETY: a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        let len = u.frame_size as usize * u.frame_count as usize;
        let umem = Mmap::new(len, None, 0).map_err(fail("mmap(UMEM)", "lower the frame count"))?;
        let mut reg = libc::xdp_umem_reg {
            addr: umem.ptr.as_ptr() as u64,
            len: len as u64,
            chunk_size: u.frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        // The kernel wants the metadata's room before every descriptor of
        // a frame, which the buffers after a multi-buffer frame's first (at
        // their UMEM frame's start) cannot give: no offload with them.
        if config.tx_checksum != TxChecksum::Software && !config.multi_buffer {
            reg.flags = libc::XDP_UMEM_TX_METADATA_LEN;
            reg.tx_metadata_len = TX_META as u32;
        }
        let mem_hint = "the UMEM could not be registered: check RLIMIT_MEMLOCK and the frame size";
        let mut registered = setsockopt(fd.as_fd(), libc::XDP_UMEM_REG, &reg);
        if registered
            .as_ref()
            .is_err_and(|e| e.raw_os_error() == Some(libc::EINVAL))
            && reg.tx_metadata_len > 0
        {
            // a kernel before 6.8 knows no TX metadata: without it
            reg.flags = 0;
            reg.tx_metadata_len = 0;
            registered = setsockopt(fd.as_fd(), libc::XDP_UMEM_REG, &reg);
        }
        registered.map_err(fail("setsockopt(XDP_UMEM_REG)", mem_hint))?;
        let tx_head = u64::from(reg.tx_metadata_len);
        let ring_hint = "ring sizes must be powers of two the kernel accepts";
        for (opt, size, call) in [
            (
                libc::XDP_UMEM_FILL_RING,
                u.fill_size,
                "setsockopt(XDP_UMEM_FILL_RING)",
            ),
            (
                libc::XDP_UMEM_COMPLETION_RING,
                u.comp_size,
                "setsockopt(XDP_UMEM_COMPLETION_RING)",
            ),
            (libc::XDP_RX_RING, config.rx_size, "setsockopt(XDP_RX_RING)"),
            (libc::XDP_TX_RING, config.tx_size, "setsockopt(XDP_TX_RING)"),
        ] {
            setsockopt(fd.as_fd(), opt, &size).map_err(fail(call, ring_hint))?;
        }
        let (off, off_len) =
            getsockopt::<libc::xdp_mmap_offsets>(fd.as_fd(), libc::XDP_MMAP_OFFSETS)
                .map_err(fail("getsockopt(XDP_MMAP_OFFSETS)", ROOT))?;
        if off_len != size_of::<libc::xdp_mmap_offsets>() {
            return Err(fail(
                "getsockopt(XDP_MMAP_OFFSETS)",
                "the kernel is too old (before 5.4): its rings have no flags word",
            )(io::Error::from_raw_os_error(
                libc::EOPNOTSUPP,
            )));
        }
        let (fr, cr) = (&off.fr, &off.cr);
        let pg_rx = libc::XDP_PGOFF_RX_RING as u64;
        let pg_tx = libc::XDP_PGOFF_TX_RING as u64;
        let rx = ring(
            fd.as_fd(),
            &off.rx,
            config.rx_size,
            pg_rx,
            "mmap(rx ring)",
            &who,
        )?;
        let tx = ring(
            fd.as_fd(),
            &off.tx,
            config.tx_size,
            pg_tx,
            "mmap(tx ring)",
            &who,
        )?;
        let pg_fr = libc::XDP_UMEM_PGOFF_FILL_RING;
        let pg_cr = libc::XDP_UMEM_PGOFF_COMPLETION_RING;
        let fill = ring(fd.as_fd(), fr, u.fill_size, pg_fr, "mmap(fill ring)", &who)?;
        let comp = ring(
            fd.as_fd(),
            cr,
            u.comp_size,
            pg_cr,
            "mmap(completion ring)",
            &who,
        )?;

        let mut flags = match config.bind {
            BindMode::Auto => 0,
            BindMode::ZeroCopy => libc::XDP_ZEROCOPY,
            BindMode::Copy => libc::XDP_COPY,
        };
        if config.need_wakeup {
            flags |= libc::XDP_USE_NEED_WAKEUP;
        }
        if config.multi_buffer {
            flags |= libc::XDP_USE_SG;
        }
        let sa = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: flags,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: `sa` is a valid sockaddr_xdp of the length given.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_xdp).cast(),
                size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if r != 0 {
            let e = io::Error::last_os_error();
            let hint = match (e.raw_os_error(), config.bind) {
                (Some(libc::EOPNOTSUPP), BindMode::ZeroCopy) => {
                    "the driver has no zero-copy AF_XDP (veth has none), or none with multi-buffer for this MTU: bind in copy or auto mode"
                }
                (Some(libc::EINVAL), _) if config.multi_buffer => {
                    "the kernel has no multi-buffer AF_XDP (XDP_USE_SG, 6.6+) for this MTU, or the queue does not exist: lower the MTU to fit a 4 KiB frame, or see `ethtool -l`"
                }
                (Some(libc::EINVAL), _) => {
                    "the queue does not exist on this interface (see `ethtool -l`)"
                }
                (Some(libc::EBUSY), _) => "another AF_XDP socket is bound to this queue",
                _ => ROOT,
            };
            return Err(fail("bind(AF_XDP)", hint)(e));
        }
        let (opts, _) = getsockopt::<libc::xdp_options>(fd.as_fd(), libc::XDP_OPTIONS)
            .map_err(fail("getsockopt(XDP_OPTIONS)", ROOT))?;
        if let Some(bp) = config.busy_poll {
            const OLD: &str =
                "the kernel has no preferred busy polling (5.11+): leave busy poll off";
            let level = libc::SOL_SOCKET;
            let usecs = libc::c_int::try_from(bp.usecs).unwrap_or(libc::c_int::MAX);
            let on: libc::c_int = 1;
            let budget = libc::c_int::from(bp.budget);
            setsockopt_level(fd.as_fd(), level, SO_PREFER_BUSY_POLL, &on)
                .map_err(fail("setsockopt(SO_PREFER_BUSY_POLL)", OLD))?;
            setsockopt_level(fd.as_fd(), level, SO_BUSY_POLL, &usecs)
                .map_err(fail("setsockopt(SO_BUSY_POLL)", ROOT))?;
            setsockopt_level(fd.as_fd(), level, SO_BUSY_POLL_BUDGET, &budget)
                .map_err(fail("setsockopt(SO_BUSY_POLL_BUDGET)", OLD))?;
        }

        let zero_copy = opts.flags & libc::XDP_OPTIONS_ZEROCOPY != 0;
        let offered = || {
            crate::netdev::dev_features(ifindex)
                .is_ok_and(|f| f.xsk.unwrap_or(0) & crate::netdev::xsk_tx::TX_CHECKSUM != 0)
        };
        // in copy mode the kernel takes the request into the skb it builds;
        // in zero-copy mode only a driver that says so
        let tx_checksum_offload = tx_head > 0
            && match config.tx_checksum {
                TxChecksum::Software => false,
                TxChecksum::Offered => offered(),
                TxChecksum::Kernel => !zero_copy || offered(),
            };
        let fs = u64::from(u.frame_size);
        let tx_base = u64::from(u.fill_size) * fs;
        let slot = u64::from(tx_slot) * fs;
        let slots = (u64::from(u.frame_count) - u64::from(u.fill_size)) / u64::from(tx_slot);
        let mut xsk = Xsk {
            rx,
            tx,
            fill,
            comp,
            fd,
            umem,
            frame_size: u.frame_size,
            // highest addresses first, so pops hand out frame 0 first
            free: (0..u64::from(u.fill_size)).rev().map(|i| i * fs).collect(),
            tx_free: (0..slots).rev().map(|i| tx_base + i * slot).collect(),
            tx_base,
            tx_slot,
            tx_head,
            tx_checksum_offload,
            multi_buffer: config.multi_buffer,
            joined: Vec::new(),
            join_stats: JoinStats::default(),
            tx_unkicked: 0,
            need_wakeup: config.need_wakeup,
            busy_poll: config.busy_poll,
            zero_copy,
            if_mtu,
            iface: name,
            queue,
        };
        xsk.refill(u.fill_size);
        Ok(xsk)
    }

    /// The busy-poll settings in force, if busy polling is on.
    pub fn busy_poll(&self) -> Option<BusyPoll> {
        self.busy_poll
    }

    /// Whether the bind took zero-copy mode (else copy mode).
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// Bytes per UMEM frame.
    pub fn frame_size(&self) -> u32 {
        self.frame_size
    }

    /// The interface's MTU, read when the socket was bound.
    pub fn if_mtu(&self) -> u32 {
        self.if_mtu
    }

    /// The interface and queue, for messages.
    pub fn queue(&self) -> (&str, u32) {
        (&self.iface, self.queue)
    }

    /// Frames of the UMEM that are ours and idle (not in any ring).
    pub fn free_frames(&self) -> usize {
        self.free.len() + self.tx_free.len() * self.tx_slot as usize
    }

    /// Whether the socket was bound with multi-buffer (`XDP_USE_SG`).
    pub fn multi_buffer(&self) -> bool {
        self.multi_buffer
    }

    /// The largest frame (Ethernet header included) a transmit slot holds.
    pub fn tx_frame_len(&self) -> usize {
        self.tx_slot as usize * self.frame_size as usize - self.tx_head as usize
    }

    /// Whether TCP and UDP transmit checksums are left to the kernel or
    /// the device (see [`XskConfig::tx_checksum`]).
    pub fn tx_checksum_offload(&self) -> bool {
        self.tx_checksum_offload
    }

    /// Frames joined from several buffers, and dropped while joining.
    pub fn join_stats(&self) -> JoinStats {
        self.join_stats
    }

    /// Moves up to `n` idle frames into the fill ring.
    fn refill(&mut self, n: u32) {
        let n = self.fill.free(n.min(self.free.len() as u32));
        for i in 0..n {
            let addr = self.free.pop().expect("n <= free.len()");
            self.fill.write(i, addr);
        }
        if n > 0 {
            self.fill.submit(n);
        }
    }

    /// A frame's bytes, if `addr..addr+len` lies inside the UMEM.
    fn frame(&self, addr: u64, len: u32) -> Option<&[u8]> {
        let start = usize::try_from(addr).ok()?;
        let end = start.checked_add(len as usize)?;
        if end > self.umem.len {
            return None;
        }
        // SAFETY: start..end is inside the UMEM mapping; the frame is ours
        // (taken off the rx ring, not yet on the fill ring), so the kernel
        // does not write it while the borrow lives.
        Some(unsafe { std::slice::from_raw_parts(self.umem.ptr.as_ptr().add(start), end - start) })
    }

    /// Receives at most `budget` frames, lending each to `f`; at the end of
    /// the batch the frames go back to the fill ring. Returns how many `f` got.
    ///
    /// With multi-buffer a frame may span several descriptors (each but
    /// the last marked `XDP_PKT_CONTD`): they are joined into one buffer
    /// (one copy; the stack parses contiguous frames), and a frame whose
    /// last descriptor is not published yet waits for the next call.
    pub fn receive<F: FnMut(&[u8])>(&mut self, budget: usize, mut f: F) -> usize {
        let budget = u32::try_from(budget).unwrap_or(u32::MAX);
        let mut n = self.rx.available(if self.multi_buffer {
            self.rx.size
        } else {
            budget
        });
        if self.multi_buffer && n > 0 && self.rx.read(n - 1).options & libc::XDP_PKT_CONTD != 0 {
            // the cached producer index may end inside a frame: look again
            n = self.rx.available_now(self.rx.size);
        }
        let (mut given, mut used, mut i) = (0, 0, 0);
        while i < n && given < budget as usize {
            let d = self.rx.read(i);
            if d.options & libc::XDP_PKT_CONTD == 0 {
                if let Some(bytes) = self.frame(d.addr, d.len) {
                    f(bytes);
                    given += 1;
                }
                self.recycle(d.addr);
                i += 1;
                used = i;
                continue;
            }
            // a frame in several buffers: find its last one
            let Some(last) = (i..n).find(|&j| self.rx.read(j).options & libc::XDP_PKT_CONTD == 0)
            else {
                break; // its end is not published yet
            };
            let mut joined = std::mem::take(&mut self.joined);
            joined.clear();
            let mut ok = true;
            for j in i..=last {
                let d = self.rx.read(j);
                match self.frame(d.addr, d.len) {
                    Some(b) if ok && joined.len() + b.len() <= MAX_JOINED => {
                        joined.extend_from_slice(b)
                    }
                    _ => ok = false,
                }
                self.recycle(d.addr);
            }
            if ok {
                f(&joined);
                given += 1;
                self.join_stats.joined += 1;
            } else {
                self.join_stats.dropped += 1;
            }
            self.joined = joined;
            i = last + 1;
            used = i;
        }
        if used > 0 {
            self.rx.release(used);
            self.refill(used);
        }
        // Busy polling runs the driver from this syscall: make it every batch.
        if self.busy_poll.is_some() || (self.need_wakeup && self.fill.needs_wakeup()) {
            self.wake_rx();
        }
        given
    }

    /// A received buffer back on the free list, by its frame's start (copy
    /// mode puts data after headroom); an address outside the receive
    /// frames (never from a sane kernel) is dropped.
    fn recycle(&mut self, addr: u64) {
        let base = addr - addr % u64::from(self.frame_size);
        if base < self.tx_base {
            self.free.push(base);
        }
    }

    /// Sends one frame: `f` writes it into a transmit slot and returns its
    /// length (0: nothing to send). Returns `false`, without calling `f`, when
    /// no slot or tx ring entry is free. The frame leaves at the next
    /// [`flush`](Self::flush), as one descriptor per UMEM frame it covers
    /// (all but the last marked `XDP_PKT_CONTD`).
    pub fn transmit<F: FnOnce(&mut [u8]) -> usize>(&mut self, f: F) -> bool {
        if self.tx_free.is_empty() {
            self.reclaim();
        }
        if self.tx.free(self.tx_slot) < self.tx_slot {
            return false;
        }
        let Some(addr) = self.tx_free.pop() else {
            return false;
        };
        let start = usize::try_from(addr).expect("UMEM addresses fit in usize");
        let fs = self.frame_size as usize;
        let head = self.tx_head as usize;
        // SAFETY: addr..addr+tx_slot*frame_size is one whole slot inside the
        // UMEM (slot starts are laid out in `bind` below frame_count), and it
        // is ours: on the free list, in no ring, so the kernel neither reads
        // nor writes it.
        let slot = unsafe {
            std::slice::from_raw_parts_mut(
                self.umem.ptr.as_ptr().add(start),
                self.tx_slot as usize * fs,
            )
        };
        let (meta, buf) = slot.split_at_mut(head);
        let len = f(buf).min(buf.len());
        if len == 0 {
            self.tx_free.push(addr);
            return true;
        }
        let mut first = 0;
        if self.tx_checksum_offload {
            if let Some((csum_start, csum_offset)) = l4_checksum_at(&buf[..len]) {
                // struct xsk_tx_metadata: flags, then the request
                meta.fill(0);
                let flags = u64::from(libc::XDP_TXMD_FLAGS_CHECKSUM);
                meta[..8].copy_from_slice(&flags.to_ne_bytes());
                meta[8..10].copy_from_slice(&csum_start.to_ne_bytes());
                meta[10..12].copy_from_slice(&csum_offset.to_ne_bytes());
                first = libc::XDP_TX_METADATA;
            }
        }
        // the frame lies at head..head+len of the slot: one descriptor per
        // UMEM frame it touches
        let end = head + len;
        let descs = end.div_ceil(fs) as u32;
        for i in 0..descs {
            let from = (i as usize * fs).max(head);
            let to = ((i as usize + 1) * fs).min(end);
            let mut options = if i + 1 < descs {
                libc::XDP_PKT_CONTD
            } else {
                0
            };
            if i == 0 {
                options |= first;
            }
            self.tx.write(
                i,
                libc::xdp_desc {
                    addr: addr + from as u64,
                    len: (to - from) as u32,
                    options,
                },
            );
        }
        self.tx.submit(descs);
        self.tx_unkicked += descs;
        true
    }

    /// Kicks the tx ring if frames were submitted (and the kernel asks for
    /// it, with need_wakeup), and reclaims the frames already sent.
    ///
    /// In copy mode one kick sends at most 32 frames (the kernel's
    /// `TX_BATCH_SIZE`, then EAGAIN) and leaves the rest in the ring, where
    /// nothing sends them until the next kick: so a flush kicks again while
    /// frames wait (at most [`COPY_KICKS`] times), and kicks for frames a
    /// previous flush left even when nothing new was written. Without that
    /// a burst over 32 frames (a client opening a hundred connections at
    /// once) sat in the ring until the next frame was written, which on a
    /// quiet shard is a timer's retransmission a second later.
    pub fn flush(&mut self) {
        let asked = !self.need_wakeup || self.tx.needs_wakeup();
        if (asked || self.busy_poll.is_some())
            && (self.tx_unkicked > 0 || self.tx.outstanding() > 0)
        {
            self.kick_tx();
            if !self.zero_copy {
                for _ in 1..COPY_KICKS {
                    if self.tx.outstanding() == 0 {
                        break;
                    }
                    self.kick_tx();
                }
            }
        }
        self.tx_unkicked = 0;
        self.reclaim();
    }

    /// Completion ring -> free list.
    fn reclaim(&mut self) {
        let n = self.comp.available(self.comp.size);
        let slot = u64::from(self.tx_slot) * u64::from(self.frame_size);
        for i in 0..n {
            let addr = self.comp.read(i);
            // a slot is free again when its first buffer completes (a frame's
            // buffers complete together); the others, and any address that
            // is no slot start (never from a sane kernel), are passed over
            let start = addr.wrapping_sub(self.tx_head);
            let off = start.wrapping_sub(self.tx_base);
            if start >= self.tx_base && start < self.umem.len as u64 && off % slot == 0 {
                self.tx_free.push(start);
            }
        }
        if n > 0 {
            self.comp.release(n);
        }
    }

    fn kick_tx(&self) {
        // SAFETY: a zero-length send with no buffer and no address: the
        // kernel reads nothing from us. EAGAIN/EBUSY/ENOBUFS mean "busy, the
        // frames stay queued", so the result is not an error here.
        unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            );
        }
    }

    fn wake_rx(&self) {
        // SAFETY: a zero-length receive into no buffer: the kernel writes
        // nothing to us; it only runs the rx path.
        unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
        }
    }

    /// Waits at most `timeout_ms` for frames to receive (`poll(2)`, which
    /// also wakes the kernel's rx path). Returns whether some are ready.
    pub fn poll(&mut self, timeout_ms: i32) -> Result<bool> {
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the call.
        let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        match r {
            r if r >= 0 => Ok(r > 0 && p.revents & libc::POLLIN != 0),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    Ok(false)
                } else {
                    Err(Error::Syscall {
                        iface: format!("{} queue {}", self.iface, self.queue),
                        call: "poll",
                        source: e,
                        hint: "the socket is unusable: recreate it",
                    })
                }
            }
        }
    }

    /// The kernel's counters for this socket (`XDP_STATISTICS`).
    pub fn statistics(&self) -> Result<XskStats> {
        let (s, _) = getsockopt::<libc::xdp_statistics>(self.fd.as_fd(), libc::XDP_STATISTICS)
            .map_err(|source| Error::Syscall {
                iface: format!("{} queue {}", self.iface, self.queue),
                call: "getsockopt(XDP_STATISTICS)",
                source,
                hint: "the kernel has no AF_XDP statistics",
            })?;
        Ok(XskStats {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            fill_ring_empty: s.rx_fill_ring_empty_descs,
            tx_ring_empty: s.tx_ring_empty_descs,
        })
    }
}

impl AsFd for Xsk {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Where a frame's TCP or UDP checksum is computed from and stored, for
/// the TX metadata: (offset of the transport header, offset of the
/// checksum field in it), for IPv4 (unfragmented) and IPv6 (no extension
/// header, as the stack sends) behind Ethernet with at most one VLAN tag.
/// `None` for anything else (ARP, ICMP): its checksums are complete.
fn l4_checksum_at(frame: &[u8]) -> Option<(u16, u16)> {
    let mut l3 = 14;
    let mut ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    if ethertype == 0x8100 {
        ethertype = u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]);
        l3 = 18;
    }
    let (l4, proto) = match ethertype {
        0x0800 => {
            let vihl = *frame.get(l3)?;
            let flags_frag = u16::from_be_bytes([*frame.get(l3 + 6)?, *frame.get(l3 + 7)?]);
            if vihl >> 4 != 4 || vihl & 0xf < 5 || flags_frag & 0x3fff != 0 {
                return None;
            }
            (l3 + usize::from(vihl & 0xf) * 4, *frame.get(l3 + 9)?)
        }
        0x86dd => (l3 + 40, *frame.get(l3 + 6)?),
        _ => return None,
    };
    let field: u16 = match proto {
        6 => 16,
        17 => 6,
        _ => return None,
    };
    if l4 + usize::from(field) + 2 > frame.len() {
        return None;
    }
    Some((u16::try_from(l4).ok()?, field))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4(proto: u8, frag: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[20..22].copy_from_slice(&frag.to_be_bytes());
        f[23] = proto;
        f
    }

    #[test]
    fn the_checksum_of_tcp_and_udp_is_found_and_nothing_else_is() {
        assert_eq!(l4_checksum_at(&ipv4(6, 0x4000)), Some((34, 16)));
        assert_eq!(l4_checksum_at(&ipv4(17, 0)), Some((34, 6)));
        assert_eq!(l4_checksum_at(&ipv4(1, 0)), None, "ICMP");
        assert_eq!(l4_checksum_at(&ipv4(6, 0x2000)), None, "a first fragment");
        assert_eq!(l4_checksum_at(&ipv4(6, 0x0010)), None, "a later fragment");
        assert_eq!(l4_checksum_at(&ipv4(6, 0)[..49]), None, "truncated");
        let mut tagged = ipv4(17, 0);
        tagged.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
        assert_eq!(l4_checksum_at(&tagged), Some((38, 6)));
        let mut v6 = vec![0u8; 14 + 40 + 8];
        v6[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        v6[20] = 17;
        assert_eq!(l4_checksum_at(&v6), Some((54, 6)));
        let mut arp = ipv4(6, 0);
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(l4_checksum_at(&arp), None);
        assert_eq!(l4_checksum_at(&[]), None);
    }
}
