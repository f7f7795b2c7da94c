//! The kernel path's io_uring server (`kernel-uring`): per thread one ring
//! (`xdp::uring`), a multishot accept per listener into registered files,
//! a multishot receive per connection into the ring's provided buffers,
//! sends and closes through the ring, everything queued in a batch and
//! submitted in one `io_uring_enter` per loop. It serves what the epoll
//! server serves over TCP (request/response, raw or HTTP, and the stream
//! sink) with the same application, so only the way to the kernel differs.
//! UDP is not served over io_uring yet.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use mio::net::TcpListener;
use xdp::uring::{Completion, OpKind, Ring, RingConfig};

use super::server::{tcp_listener, ServerConfig};
use crate::app::{AppConn, ServerApp};
use crate::metrics::{Recorder, Window, WindowCpu};
use crate::outcome::{ServerCounters, ServerThreadResult};

/// The tags of the two listeners' accepts; a connection's operations carry
/// its direct descriptor.
const RR: u64 = u32::MAX as u64;
const SINK: u64 = RR - 1;
/// Registered-file slots: the connections one thread may hold.
const FILE_BITS: u32 = 14;
const FILES: u32 = 1 << FILE_BITS;

/// A connection's tag: its direct descriptor and the generation of that
/// slot, so that a late completion of a closed connection is never taken
/// for one of the next connection in the same slot.
fn tag(file: u32, gen: u32) -> u64 {
    u64::from((gen << FILE_BITS) | file)
}

fn untag(tag: u64) -> (u32, u32) {
    let t = tag as u32;
    (t & (FILES - 1), t >> FILE_BITS)
}

struct Conn {
    gen: u32,
    app: AppConn,
    /// A send is in flight (one at a time, in order).
    sending: bool,
    /// The peer closed, or the application is done: close when the send
    /// in flight completes.
    closing: bool,
}

pub(super) struct UringThread {
    cpu_id: Option<usize>,
    ring: Ring,
    // kept open while the ring's multishot accepts use them
    _listeners: Vec<TcpListener>,
    conns: Vec<Option<Conn>>,
    /// Each slot's generation (bumped at every accept into it).
    gens: Vec<u32>,
    app: ServerApp,
    window: Window,
    counters: ServerCounters,
    recorder: Recorder,
    cpu: WindowCpu,
    rearmed: u64,
}

impl UringThread {
    pub(super) fn new(cfg: &ServerConfig, cpu_id: Option<usize>) -> Result<UringThread> {
        if cfg.services.udp_echo || cfg.services.udp_sink {
            return Err(crate::error::usage(
                "the kernel-uring server serves TCP only for now (crr, rr, stream): run the udp workloads over kernel or kernel-busy",
            ));
        }
        let mut ring = Ring::new(RingConfig {
            files: FILES,
            ..RingConfig::default()
        })
        .context("making an io_uring with registered files and a provided-buffer ring (Linux 5.19 or later)")?;
        let mut listeners = Vec::new();
        for (on, port, tag) in [
            (cfg.services.tcp_rr, cfg.messages.port, RR),
            (cfg.services.tcp_sink, cfg.messages.port + 1, SINK),
        ] {
            if on {
                let l = tcp_listener(std::net::SocketAddr::new(cfg.bind, port))?;
                ring.accept_multi(std::os::fd::AsFd::as_fd(&l), tag)?;
                listeners.push(l);
            }
        }
        Ok(UringThread {
            cpu_id,
            ring,
            _listeners: listeners,
            conns: Vec::new(),
            gens: Vec::new(),
            app: ServerApp::new(
                cfg.messages.proto,
                cfg.messages.sizes,
                cfg.window,
                64 * 1024,
            ),
            window: cfg.window,
            counters: ServerCounters::default(),
            recorder: Recorder::new(cfg.window),
            cpu: WindowCpu::default(),
            rearmed: 0,
        })
    }

    pub(super) fn run(&mut self, stop: &AtomicBool) -> Result<ServerThreadResult> {
        let mut done = Vec::with_capacity(256);
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            self.cpu.tick(&self.window, now);
            let limit = self.window.wait_at_most(now, Duration::from_millis(20));
            self.ring.wait(limit, &mut done).context("io_uring_enter")?;
            for c in &done {
                self.completion(*c)?;
            }
        }
        self.cpu.finish();
        // stop listening now: the ring's teardown, which releases the
        // listeners it holds, finishes later in a kernel worker
        for l in &self._listeners {
            let _ = nix::sys::socket::shutdown(
                std::os::fd::AsRawFd::as_raw_fd(l),
                nix::sys::socket::Shutdown::Both,
            );
        }
        let extra = [
            ("uring_enters", self.ring.enters()),
            ("uring_completions", self.ring.completions()),
            ("uring_recv_rearmed", self.rearmed),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Ok(ServerThreadResult {
            cpu_id: self.cpu_id,
            counters: self.counters.clone(),
            recorder: self.recorder.clone(),
            cpu: self.cpu.used,
            extra,
        })
    }

    fn completion(&mut self, c: Completion) -> Result<()> {
        match c.op {
            OpKind::Accept => {
                if c.result >= 0 {
                    let file = c.result as u32;
                    let kind = self.app.kind(c.tag == SINK);
                    let i = file as usize;
                    if self.conns.len() <= i {
                        self.conns.resize_with(i + 1, || None);
                        self.gens.resize(i + 1, 0);
                    }
                    let gen = (self.gens[i] + 1) & ((1 << (32 - FILE_BITS)) - 1);
                    self.gens[i] = gen;
                    self.conns[i] = Some(Conn {
                        gen,
                        app: AppConn::new(kind),
                        sending: false,
                        closing: false,
                    });
                    self.counters.accepted += 1;
                    self.ring.recv_multi(file, tag(file, gen))?;
                } else {
                    // ENFILE (the table is full), ECONNABORTED, ...
                    self.counters.io_errors += 1;
                }
                if !c.more {
                    // the multishot accept ended: arm it again
                    let l = if c.tag == SINK { 1 } else { 0 };
                    let l = self._listeners.get(l).or(self._listeners.first());
                    if let Some(l) = l {
                        self.ring.accept_multi(std::os::fd::AsFd::as_fd(l), c.tag)?;
                    }
                }
            }
            OpKind::Recv => {
                let (file, gen) = untag(c.tag);
                let live = |conns: &[Option<Conn>]| {
                    conns
                        .get(file as usize)
                        .and_then(Option::as_ref)
                        .is_some_and(|c| c.gen == gen && !c.closing)
                };
                if c.result > 0 {
                    if let Some(bid) = c.buffer {
                        if let Some(conn) = self
                            .conns
                            .get_mut(file as usize)
                            .and_then(Option::as_mut)
                            .filter(|c| c.gen == gen)
                        {
                            let data = self.ring.buffer(bid, c.result as usize);
                            conn.app.input(
                                &self.app,
                                data,
                                Instant::now(),
                                &mut self.counters,
                                &mut self.recorder,
                            );
                        }
                        self.ring.recycle(bid);
                    }
                    if !c.more && live(&self.conns) {
                        self.rearmed += 1;
                        self.ring.recv_multi(file, c.tag)?;
                    }
                    self.flush(file, gen)?;
                } else if c.result == -nix::libc::ENOBUFS {
                    // every provided buffer was in use: receive again
                    if live(&self.conns) {
                        self.rearmed += 1;
                        self.ring.recv_multi(file, c.tag)?;
                    }
                } else if live(&self.conns) {
                    // the peer closed (0) or the connection failed
                    if c.result < 0 {
                        let reset = matches!(-c.result, nix::libc::ECONNRESET | nix::libc::EPIPE);
                        self.counters.lost(reset);
                    }
                    if let Some(conn) = self.conn(file, gen) {
                        conn.closing = true;
                    }
                    self.flush(file, gen)?;
                }
            }
            OpKind::Send => {
                let (file, gen) = untag(c.tag);
                if let Some(conn) = self
                    .conns
                    .get_mut(file as usize)
                    .and_then(Option::as_mut)
                    .filter(|c| c.gen == gen)
                {
                    conn.sending = false;
                    if c.result >= 0 {
                        conn.app.wrote(c.result as usize, &mut self.counters);
                    } else {
                        let reset = matches!(-c.result, nix::libc::ECONNRESET | nix::libc::EPIPE);
                        self.counters.lost(reset);
                        conn.closing = true;
                    }
                }
                self.flush(file, gen)?;
            }
            // the server connects nothing
            OpKind::Connect | OpKind::Shutdown => {}
            OpKind::Close => {
                let (file, gen) = untag(c.tag);
                if self.conn(file, gen).is_some() {
                    self.conns[file as usize] = None;
                    self.counters.closed += 1;
                }
            }
        }
        Ok(())
    }

    /// The connection in slot `file`, if it is of generation `gen`.
    fn conn(&mut self, file: u32, gen: u32) -> Option<&mut Conn> {
        self.conns
            .get_mut(file as usize)
            .and_then(Option::as_mut)
            .filter(|c| c.gen == gen)
    }

    /// Sends what connection `file` owes (one send at a time), or closes it
    /// when it is done and nothing is in flight.
    fn flush(&mut self, file: u32, gen: u32) -> Result<()> {
        let Some(conn) = self
            .conns
            .get_mut(file as usize)
            .and_then(Option::as_mut)
            .filter(|c| c.gen == gen)
        else {
            return Ok(());
        };
        if conn.sending {
            return Ok(());
        }
        if !conn.closing {
            if let Some(data) = conn.app.pending(&self.app, &mut self.counters) {
                self.ring
                    .send(file, data, tag(file, gen))
                    .map_err(|e| anyhow!("io_uring send: {e}"))?;
                conn.sending = true;
                return Ok(());
            }
        }
        if conn.closing || conn.app.close_after() {
            // closed once: the slot goes with the close's completion
            conn.sending = true;
            conn.closing = true;
            self.ring.close(file, tag(file, gen))?;
        }
        Ok(())
    }
}
