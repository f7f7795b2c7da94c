//! An impaired path between the lab's two sides, for kernels without
//! `sch_netem`: a third namespace `m` sits between `veth_a` and `veth_b`
//! (two veth pairs), and a forwarder thread in it moves every frame from
//! one pair to the other through AF_PACKET sockets, losing and delaying
//! some on the way, as `tc qdisc ... netem loss L% reorder R% delay D`
//! would on both veth ends: each frame is lost with probability `loss`;
//! of the rest, a share `immediate` goes at once and the others wait
//! `delay` (so the immediate ones overtake them).
#![allow(unsafe_code)] // raw AF_PACKET sockets, each call with its SAFETY note

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// What the path does to the frames, each direction.
#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    /// Probability that a frame is lost.
    pub loss: f64,
    /// Share of the frames not lost that go at once; the rest wait `delay`.
    pub immediate: f64,
    /// How long the delayed frames wait.
    pub delay: Duration,
}

/// netem's `loss 2% reorder 25% 50% delay 1ms` (its correlation aside).
pub const NETEM_LIKE: Impairment = Impairment {
    loss: 0.02,
    immediate: 0.25,
    delay: Duration::from_millis(1),
};

/// What the forwarder did, both directions together.
#[derive(Debug, Clone, Copy, Default)]
pub struct PathStats {
    pub forwarded: u64,
    pub lost: u64,
    pub delayed: u64,
    /// Frames the kernel refused to send on the far side (counted, not
    /// retried: a lost frame).
    pub send_errors: u64,
}

/// The running forwarder; stopped (and joined) on drop.
#[derive(Debug)]
pub struct Forwarder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<PathStats>>,
}

impl Forwarder {
    /// Starts forwarding between `left` and `right` in namespace `ns`.
    pub fn start(ns: &str, left: &str, right: &str, imp: Impairment, seed: u64) -> Forwarder {
        let stop = Arc::new(AtomicBool::new(false));
        let (ns, left, right) = (ns.to_owned(), left.to_owned(), right.to_owned());
        let flag = Arc::clone(&stop);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = thread::spawn(move || {
            super::enter(&ns);
            let socks = [packet_socket(&left), packet_socket(&right)];
            let socks = match socks {
                [Ok(l), Ok(r)] => [l, r],
                [l, r] => {
                    let e = l.err().or(r.err()).expect("an error");
                    ready_tx.send(Err(e.to_string())).unwrap();
                    return PathStats::default();
                }
            };
            ready_tx.send(Ok(())).unwrap();
            forward(&socks, imp, seed, &flag)
        });
        ready_rx
            .recv()
            .expect("the forwarder thread")
            .unwrap_or_else(|e| panic!("forwarder sockets: {e}"));
        Forwarder {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the forwarder and says what it did.
    pub fn stop(&mut self) -> PathStats {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().expect("the forwarder thread"))
            .unwrap_or_default()
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An AF_PACKET socket on `dev` for every protocol, nonblocking, that
/// does not see its own transmissions.
fn packet_socket(dev: &str) -> io::Result<OwnedFd> {
    let name = std::ffi::CString::new(dev).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: `name` is a valid NUL-terminated string for the call.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(io::Error::last_os_error());
    }
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: a plain syscall; the result is checked.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            i32::from(proto),
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_ll is plain old data; all zeroes is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: `sll` is a valid sockaddr_ll and its size is passed.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let one: libc::c_int = 1;
    // SAFETY: the option value is a c_int that outlives the call.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_IGNORE_OUTGOING,
            (&raw const one).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// A small xorshift generator: the path's own, seeded.
struct Rng(u64);

impl Rng {
    fn chance(&mut self, p: f64) -> bool {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// The forwarding loop: until `stop`, moves frames between the two
/// sockets, sleeping in poll(2) at most 1 ms (or until a delayed frame is
/// due).
fn forward(socks: &[OwnedFd; 2], imp: Impairment, seed: u64, stop: &AtomicBool) -> PathStats {
    let mut stats = PathStats::default();
    let mut rng = Rng(seed | 1);
    let mut held: VecDeque<(Instant, usize, Vec<u8>)> = VecDeque::new();
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        while held.front().is_some_and(|h| h.0 <= now) {
            let (_, to, frame) = held.pop_front().expect("a held frame");
            send(&socks[to], &frame, &mut stats);
        }
        let mut moved = false;
        for from in 0..2 {
            let to = 1 - from;
            // At most a batch per socket per round, so neither starves.
            for _ in 0..64 {
                // SAFETY: `buf` is valid for writes of its length.
                let n = unsafe {
                    libc::recv(
                        socks[from].as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        0,
                    )
                };
                if n <= 0 {
                    break;
                }
                moved = true;
                let frame = &buf[..n as usize];
                if rng.chance(imp.loss) {
                    stats.lost += 1;
                } else if rng.chance(imp.immediate) {
                    send(&socks[to], frame, &mut stats);
                } else {
                    stats.delayed += 1;
                    held.push_back((Instant::now() + imp.delay, to, frame.to_vec()));
                }
            }
        }
        if !moved {
            let wait = held.front().map_or(Duration::from_millis(1), |h| {
                h.0.saturating_duration_since(Instant::now())
            });
            let mut fds = [
                libc::pollfd {
                    fd: socks[0].as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: socks[1].as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let ms = wait.as_millis().clamp(0, 1) as i32;
            // SAFETY: `fds` is a valid array of two pollfd.
            unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        }
    }
    stats
}

fn send(sock: &OwnedFd, frame: &[u8], stats: &mut PathStats) {
    // SAFETY: `frame` is valid for reads of its length.
    let n = unsafe { libc::send(sock.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
    if n == frame.len() as isize {
        stats.forwarded += 1;
    } else {
        stats.send_errors += 1;
    }
}
