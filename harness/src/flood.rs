//! A SYN flood for the lab (`bypass run --syn-flood RATE`): crafted SYNs
//! at a fixed rate from a thread in the client namespace, through a raw IP
//! socket (the kernel adds the IPv4 checksum and routes the packet), from
//! sources nobody answers for: random hosts 198.18.0.16-199 of the lab's
//! subnet (the lab uses .1-.4, and .200-.231 as the client stack's
//! aliases), random ports and ISNs, an MSS option as
//! Linux sends, aimed at the server's port on the address of the path
//! measured (`--syn-flood-at server`). The control (`control`): the same
//! frames to the same address with IP protocol 253 (RFC 3692's
//! experimental number) instead of TCP: they cost the sender and the link
//! the same, and every server drops them at its first look, so that what
//! the flood costs by its load alone is told apart from what the attack
//! costs.
//!
//! Bounded in time: the thread stops when told, or at its deadline.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use socket2::{Domain, Protocol, Socket, Type};
use stack::wire::{TcpFlags, TcpOptions, TcpPacket, TcpRepr};

/// Where the flood goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FloodTarget {
    /// The server measured: its address and listening port.
    Server,
    /// The same frames to the same address, as IP protocol 253: the
    /// control for the flood's load.
    Control,
}

impl FloodTarget {
    /// The IP protocol of the frames.
    fn protocol(self) -> u8 {
        match self {
            FloodTarget::Server => 6,
            FloodTarget::Control => 253,
        }
    }
}

/// `--syn-flood RATE --syn-flood-at AT`.
#[derive(Clone, Copy, Debug)]
pub struct SynFlood {
    pub rate: u64,
    pub at: FloodTarget,
}

/// SYNs sent per pacing step.
const BATCH: u64 = 32;

/// What a flood did.
#[derive(Clone, Copy, Debug, Default)]
pub struct FloodReport {
    pub sent: u64,
    pub send_errors: u64,
    pub secs: f64,
}

/// A flood under way.
pub struct Flood {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<FloodReport>>,
}

impl Flood {
    /// Starts `rate` SYNs per second at `dst:port` (as `at` says) from a
    /// thread pinned to `cpu` in `netns`, for at most `limit`.
    pub fn start(
        rate: u64,
        at: FloodTarget,
        dst: Ipv4Addr,
        port: u16,
        netns: Option<String>,
        cpu: Option<usize>,
        limit: Duration,
    ) -> Result<Flood> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new().name("byp-flood".into()).spawn(
            move || -> Result<FloodReport> {
                let sock = crate::lab::place_thread(cpu, netns.as_deref()).and_then(|()| {
                    Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255)))
                        .context("a raw IP socket for the SYN flood (needs root)")
                });
                let sock = match sock {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow!("{e:#}")));
                        return Err(e);
                    }
                };
                Ok(send(&sock, rate, at.protocol(), dst, port, &flag, limit))
            },
        )?;
        ready_rx
            .recv()
            .map_err(|_| anyhow!("the flood thread ended before it started"))??;
        Ok(Flood { stop, thread })
    }

    /// Stops the flood; what it sent.
    pub fn stop(self) -> Result<FloodReport> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow!("the flood thread panicked"))?
    }
}

/// The pacing loop: `BATCH` SYNs every `BATCH / rate` seconds, each batch
/// in one `sendmmsg`, behind schedule never by more than one batch (a
/// stalled thread does not burst: what it could not send is reported, as
/// the rate achieved). On a veth lab the receiving side's softirq work
/// runs on the sender's CPU too, so the rate a flood reaches depends on
/// what else that CPU does (about 60 k/s beside a saturated crr client on
/// this 2-vCPU machine, with one syscall per frame or one per batch).
fn send(
    sock: &Socket,
    rate: u64,
    protocol: u8,
    dst: Ipv4Addr,
    port: u16,
    stop: &AtomicBool,
    limit: Duration,
) -> FloodReport {
    use nix::sys::socket::{sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrIn};
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;
    let to = SockaddrIn::from(SocketAddrV4::new(dst, port));
    let addrs = [Some(to); BATCH as usize];
    let mut headers = MultiHeaders::<SockaddrIn>::preallocate(BATCH as usize, None);
    let step = Duration::from_secs_f64(BATCH as f64 / rate.max(1) as f64);
    let start = Instant::now();
    let mut next = start;
    let mut rng = Rng(std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15);
    let mut frames = [[0u8; 44]; BATCH as usize];
    let mut r = FloodReport::default();
    let no_cmsgs: [ControlMessage; 0] = [];
    while !stop.load(Ordering::Relaxed) && start.elapsed() < limit {
        for f in frames.iter_mut() {
            syn(f, &mut rng, dst, port);
            f[9] = protocol;
        }
        let slices: Vec<[IoSlice; 1]> = frames.iter().map(|f| [IoSlice::new(f)]).collect();
        match sendmmsg(
            sock.as_raw_fd(),
            &mut headers,
            &slices,
            addrs,
            no_cmsgs,
            MsgFlags::empty(),
        ) {
            Ok(done) => {
                let n = done.count() as u64;
                r.sent += n;
                r.send_errors += BATCH - n;
            }
            Err(_) => r.send_errors += BATCH,
        }
        next += step;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else if now - next > step {
            next = now;
        }
    }
    r.secs = start.elapsed().as_secs_f64();
    r
}

/// One SYN from a random unused host and port of the lab's subnet:
/// IPv4 header (checksum and ID left to the kernel) and TCP with MSS.
fn syn(frame: &mut [u8; 44], rng: &mut Rng, dst: Ipv4Addr, port: u16) {
    let v = rng.next();
    let src = Ipv4Addr::new(198, 18, 0, 16 + (v % 184) as u8);
    let src_port = 1024 + ((v >> 8) % 64512) as u16;
    let ip = &mut frame[..20];
    ip.copy_from_slice(&[
        0x45, 0, 0, 44, 0, 0, 0x40, 0, 64, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let seg = TcpRepr {
        src_port,
        dst_port: port,
        flags: TcpFlags::SYN,
        seq_number: (v >> 32) as u32,
        ack_number: 0,
        window_len: 64240,
        urgent_at: 0,
        options: TcpOptions {
            mss: Some(1460),
            ..TcpOptions::default()
        },
        payload: &[],
    };
    let mut packet = TcpPacket::new_unchecked(&mut frame[20..]);
    seg.emit(&mut packet, src.into(), dst.into());
}

/// xorshift64*: the flood's sources need spread, not secrecy.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_syns_parse_with_a_good_checksum_from_unused_hosts() {
        let mut rng = Rng(7);
        let dst = Ipv4Addr::new(198, 18, 0, 3);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let mut f = [0u8; 44];
            syn(&mut f, &mut rng, dst, 7100);
            let src = Ipv4Addr::new(f[12], f[13], f[14], f[15]);
            assert!(
                (16..=199).contains(&f[15]) && f[..3] == [0x45, 0, 0],
                "{src}"
            );
            let packet = TcpPacket::new_unchecked(&f[20..]);
            let seg = TcpRepr::parse(
                &packet,
                src.into(),
                dst.into(),
                stack::wire::Checksums::Verify,
            )
            .expect("a valid SYN");
            assert_eq!(seg.flags, TcpFlags::SYN);
            assert_eq!((seg.dst_port, seg.options.mss), (7100, Some(1460)));
            seen.insert((src, seg.src_port));
        }
        assert!(seen.len() > 990, "sources repeat: {}", seen.len());
    }
}
