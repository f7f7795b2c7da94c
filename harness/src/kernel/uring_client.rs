//! The kernel path's io_uring load generator (`kernel-uring`): per thread
//! one ring (`xdp::uring`); each connection's socket sits in the ring's
//! table of registered files, and its connect, sends, multishot receive
//! (into the ring's provided buffers) and close go through the ring, a
//! loop's operations submitted in one `io_uring_enter`. rr, crr and stream,
//! closed or open loop, measured as the epoll generator measures them:
//! latency from the intended send time (coordinated omission corrected).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use socket2::{Domain, Protocol, Socket, Type};
use xdp::uring::{Completion, OpKind, Ring, RingConfig};

use super::client::ClientConfig;
use crate::metrics::{Recorder, WindowCpu};
use crate::outcome::{ClientCounters, ClientThreadResult};
use crate::workload::{self, Proto, Workload};

/// A connection's tag: its index and its generation, so that a late
/// completion of a closed socket never reaches the connection's next one.
fn tag(i: usize, gen: u32) -> u64 {
    ((u64::from(gen) & 0xffff) << 16) | (i as u64 & 0xffff)
}

fn untag(t: u64) -> (usize, u32) {
    ((t & 0xffff) as usize, ((t >> 16) & 0xffff) as u32)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Closed,
    Connecting,
    Idle,
    Busy,
}

struct Conn {
    file: Option<u32>,
    gen: u32,
    st: St,
    intended: Instant,
    next_at: Instant,
    retry_at: Instant,
    /// Request bytes sent, answer bytes received.
    wpos: usize,
    got: usize,
    inbuf: Vec<u8>,
    /// stream: the pattern's offset.
    offset: u64,
    sending: bool,
}

pub(super) struct UringClient {
    cfg: ClientConfig,
    cpu_id: Option<usize>,
    ring: Ring,
    conns: Vec<Conn>,
    interval: Option<Duration>,
    counters: ClientCounters,
    recorder: Recorder,
    cpu: WindowCpu,
    request: Vec<u8>,
    pattern: Vec<u8>,
    addr: SocketAddr,
    table_full: u64,
}

impl UringClient {
    pub(super) fn new(
        cfg: ClientConfig,
        cpu_id: Option<usize>,
        conns: usize,
        rate: Option<f64>,
    ) -> Result<UringClient> {
        let w = cfg.window;
        if cfg.load.workload.is_udp() {
            return Err(crate::error::usage(
                "the kernel-uring generator runs TCP only for now (crr, rr, stream)",
            ));
        }
        anyhow::ensure!(conns <= 0xffff, "at most 65535 connections per thread");
        let interval = super::client::op_interval(conns, rate);
        let request = super::client::request_bytes(&cfg);
        let addr = SocketAddr::new(cfg.server, cfg.load.workload.port(cfg.load.messages.port));
        let ring = Ring::new(RingConfig {
            // room for the sockets whose closes are in flight
            files: conns as u32 * 2 + 256,
            ..RingConfig::default()
        })
        .context("making an io_uring with registered files and a provided-buffer ring (Linux 5.19 or later)")?;
        let conns = (0..conns)
            .map(|i| {
                let stagger = super::client::stagger(interval, i, conns);
                Conn {
                    file: None,
                    gen: 0,
                    st: St::Closed,
                    intended: w.start,
                    next_at: w.start + stagger,
                    retry_at: w.start,
                    wpos: 0,
                    got: 0,
                    inbuf: Vec::new(),
                    offset: 0,
                    sending: false,
                }
            })
            .collect();
        let pattern_len = if cfg.load.workload == Workload::Stream {
            cfg.load.messages.sizes.req
        } else {
            1
        };
        Ok(UringClient {
            pattern: workload::pattern_buffer(pattern_len),
            cfg,
            cpu_id,
            ring,
            conns,
            interval,
            counters: ClientCounters::default(),
            recorder: Recorder::new(w),
            cpu: WindowCpu::default(),
            request,
            addr,
            table_full: 0,
        })
    }

    pub(super) fn run(&mut self, stop: &AtomicBool) -> Result<ClientThreadResult> {
        let w = self.cfg.window;
        while Instant::now() < w.start && !stop.load(Ordering::Relaxed) {
            std::thread::sleep((w.start - Instant::now()).min(Duration::from_millis(10)));
        }
        let mut done = Vec::with_capacity(256);
        let now = Instant::now();
        for i in 0..self.conns.len() {
            self.kick(i, now)?;
        }
        loop {
            let now = Instant::now();
            self.cpu.tick(&w, now);
            if now >= w.t_end || stop.load(Ordering::Relaxed) {
                break;
            }
            let wait = self.timers(now)?;
            self.ring.wait(wait, &mut done).context("io_uring_enter")?;
            for c in &done {
                self.completion(*c)?;
            }
        }
        self.cpu.finish();
        let extra = [
            ("uring_enters", self.ring.enters()),
            ("uring_completions", self.ring.completions()),
            ("uring_table_full", self.table_full),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Ok(ClientThreadResult {
            cpu_id: self.cpu_id,
            counters: self.counters.clone(),
            recorder: self.recorder.clone(),
            cpu: self.cpu.used,
            extra,
        })
    }

    /// Starts what is due; returns how long the ring may wait.
    fn timers(&mut self, now: Instant) -> Result<Duration> {
        let mut wake = self.cfg.window.t_end;
        for i in 0..self.conns.len() {
            let c = &self.conns[i];
            if matches!(c.st, St::Idle | St::Closed) {
                let due = if c.st == St::Closed { c.retry_at } else { now };
                let due = match self.interval {
                    Some(_) => due.max(c.next_at),
                    None => due,
                };
                if due <= now {
                    self.kick(i, now)?;
                } else {
                    wake = wake.min(due);
                }
            }
        }
        Ok(wake
            .saturating_duration_since(now)
            .min(Duration::from_millis(10)))
    }

    /// Starts connection `i`'s next operation if it may start now.
    fn kick(&mut self, i: usize, now: Instant) -> Result<()> {
        let closed_loop = self.interval.is_none();
        let c = &mut self.conns[i];
        if !closed_loop && c.next_at > now {
            return Ok(());
        }
        match c.st {
            St::Closed if c.retry_at <= now => {
                if self.cfg.load.workload == Workload::Crr {
                    // the connect is part of the operation
                    c.intended = if closed_loop { now } else { c.next_at };
                    if let Some(iv) = self.interval {
                        c.next_at += iv;
                    }
                }
                self.open(i, now)
            }
            St::Idle => {
                c.intended = if closed_loop { now } else { c.next_at };
                if let Some(iv) = self.interval {
                    c.next_at += iv;
                }
                c.st = St::Busy;
                if self.cfg.load.workload == Workload::Stream {
                    return self.stream_send(i);
                }
                c.wpos = 0;
                c.got = 0;
                c.inbuf.clear();
                self.send_request(i)
            }
            _ => Ok(()),
        }
    }

    fn open(&mut self, i: usize, now: Instant) -> Result<()> {
        let s = Socket::new(
            Domain::for_address(self.addr),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        s.set_nodelay(true)?;
        if let Some(b) = self.cfg.bind {
            // as the epoll generator: the port chosen at connect
            let _ = nix::sys::socket::setsockopt(
                &s,
                nix::sys::socket::sockopt::IpBindAddressNoPort,
                &true,
            );
            s.bind(&SocketAddr::new(b, 0).into())?;
        }
        if self.ring.free_slots() == 0 {
            // every slot is taken by sockets whose closes are still in
            // flight: try again shortly
            self.table_full += 1;
            self.conns[i].retry_at = now + Duration::from_micros(100);
            return Ok(());
        }
        let file = self
            .ring
            .register(s.into())
            .context("registering a socket with the ring")?;
        let c = &mut self.conns[i];
        c.gen = c.gen.wrapping_add(1) & 0xffff;
        c.file = Some(file);
        c.st = St::Connecting;
        self.ring.connect(file, self.addr, tag(i, c.gen))?;
        Ok(())
    }

    fn send_request(&mut self, i: usize) -> Result<()> {
        let c = &mut self.conns[i];
        let Some(file) = c.file else { return Ok(()) };
        c.sending = true;
        self.ring
            .send(file, &self.request[c.wpos..], tag(i, c.gen))?;
        Ok(())
    }

    fn stream_send(&mut self, i: usize) -> Result<()> {
        let size = self.cfg.load.messages.sizes.req;
        let c = &mut self.conns[i];
        let Some(file) = c.file else { return Ok(()) };
        c.sending = true;
        let data = workload::pattern_at(&self.pattern, c.offset, size);
        self.ring.send(file, data, tag(i, c.gen))?;
        Ok(())
    }

    /// Connection `i` failed (or its connect did): count it, close its
    /// socket, and try again in 10 ms.
    fn failed(&mut self, i: usize, now: Instant, connecting: bool) {
        if connecting {
            self.counters.connect_errors += 1;
        } else {
            self.counters.io_errors += 1;
        }
        self.recorder.error(now);
        self.close(i);
        let c = &mut self.conns[i];
        c.retry_at = now + Duration::from_millis(10);
    }

    /// Closes connection `i`'s socket (its late completions are ignored).
    fn close(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if let Some(file) = c.file.take() {
            let _ = self.ring.close(file, tag(i, c.gen));
        }
        c.gen = c.gen.wrapping_add(1) & 0xffff;
        c.st = St::Closed;
        c.sending = false;
    }

    fn completion(&mut self, k: Completion) -> Result<()> {
        let (i, gen) = untag(k.tag);
        let now = Instant::now();
        let live = self
            .conns
            .get(i)
            .is_some_and(|c| c.gen == gen && c.file.is_some());
        if !live {
            if let Some(bid) = k.buffer {
                self.ring.recycle(bid);
            }
            return Ok(());
        }
        match k.op {
            OpKind::Connect => {
                if k.result < 0 {
                    self.failed(i, now, true);
                    return Ok(());
                }
                self.counters.connects += 1;
                let file = self.conns[i].file.expect("live");
                self.ring.recv_multi(file, k.tag)?;
                let c = &mut self.conns[i];
                if self.cfg.load.workload == Workload::Crr {
                    // the operation started at connect: the request now
                    c.st = St::Busy;
                    c.wpos = 0;
                    c.got = 0;
                    c.inbuf.clear();
                    self.send_request(i)?;
                } else {
                    c.st = St::Idle;
                    self.kick(i, now)?;
                }
            }
            OpKind::Send => {
                self.conns[i].sending = false;
                if k.result < 0 {
                    self.failed(i, now, false);
                    return Ok(());
                }
                let n = k.result as usize;
                self.counters.bytes_out += n as u64;
                if self.cfg.load.workload == Workload::Stream {
                    self.conns[i].offset += n as u64;
                    self.recorder.bytes(now, n as u64);
                    return self.stream_send(i);
                }
                let c = &mut self.conns[i];
                c.wpos += n;
                if c.wpos < self.request.len() {
                    return self.send_request(i);
                }
                self.counters.sent += 1;
                if self.cfg.window.measuring(now) {
                    self.counters.sent_measured += 1;
                }
            }
            OpKind::Recv => self.received(i, k, now)?,
            OpKind::Accept | OpKind::Close | OpKind::Shutdown => {}
        }
        Ok(())
    }

    fn received(&mut self, i: usize, k: Completion, now: Instant) -> Result<()> {
        if k.result == -nix::libc::ENOBUFS {
            let file = self.conns[i].file.expect("live");
            return Ok(self.ring.recv_multi(file, k.tag)?);
        }
        if k.result <= 0 {
            if let Some(bid) = k.buffer {
                self.ring.recycle(bid);
            }
            if k.result == 0 {
                // the server closed before answering in full
                self.counters.protocol_errors += 1;
            }
            self.failed(i, now, false);
            return Ok(());
        }
        let n = k.result as usize;
        self.counters.bytes_in += n as u64;
        let done = {
            let c = &mut self.conns[i];
            let data = k.buffer.map(|b| self.ring.buffer(b, n)).unwrap_or(&[]);
            match self.cfg.load.messages.proto {
                Proto::Raw | Proto::Echo | Proto::Discard | Proto::Sockperf => {
                    c.got += n;
                    Ok(c.got >= self.cfg.load.messages.sizes.resp)
                }
                Proto::Http => {
                    c.inbuf.extend_from_slice(data);
                    match workload::parse_http_response(&c.inbuf) {
                        Ok(Some((head, body))) => Ok(c.inbuf.len() >= head + body),
                        Ok(None) => Ok(false),
                        Err(_) => Err(()),
                    }
                }
            }
        };
        if let Some(bid) = k.buffer {
            self.ring.recycle(bid);
        }
        if !k.more {
            let file = self.conns[i].file.expect("live");
            self.ring.recv_multi(file, k.tag)?;
        }
        match done {
            Err(()) => {
                self.counters.protocol_errors += 1;
                self.failed(i, now, false);
            }
            Ok(true) if self.conns[i].st == St::Busy => self.answered(i, Instant::now())?,
            Ok(_) => {}
        }
        Ok(())
    }

    /// An answer is complete: record it and start the next operation.
    fn answered(&mut self, i: usize, now: Instant) -> Result<()> {
        let c = &self.conns[i];
        super::client::record_answer(
            &self.cfg,
            self.request.len(),
            (c.got, c.intended, now),
            &mut self.counters,
            &mut self.recorder,
        );
        if self.cfg.load.workload == Workload::Crr {
            self.close(i);
            self.conns[i].retry_at = now;
        } else {
            self.conns[i].st = St::Idle;
        }
        self.kick(i, now)
    }
}
