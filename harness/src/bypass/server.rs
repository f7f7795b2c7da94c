//! The bypass server: on each shard, one interface serves every workload
//! at once on the same ports as the kernel server — TCP request/response
//! (raw or HTTP) on the base port and the verifying stream sink on the next,
//! UDP echo on the base port and the UDP sink on the next — run to
//! completion: receive a batch, answer it, transmit, repeat. When nothing
//! comes for a while the thread sleeps in poll(2) on its sockets, and the
//! time its loop spent on work is reported beside its CPU time.

use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use stack::{Readiness, SocketHandle};

use super::shard::{Shard, ShardSetup};
use super::{AttachInfo, BypassConfig, Shards, IDLE_ROUNDS};
use crate::app::{AppConn, IdleSweep, ServerApp, UdpAnswer};
use crate::error::usage;
use crate::metrics::{Recorder, Window, WindowCpu};
use crate::outcome::{ServerCounters, ServerReport, ServerThreadResult};
use crate::workload::{self, Messages, Workload, UDP_HEADER};

/// What a bypass server needs.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    pub bypass: BypassConfig,
    pub messages: Messages,
    /// One shard per CPU (at most one per queue); none: one unpinned.
    pub cpus: Vec<usize>,
    pub window: Window,
    /// Close connections whose peer sent nothing for this long.
    pub idle_timeout: Option<Duration>,
}

/// A running bypass server: its shards, until stopped.
pub struct BypassServer {
    inner: Shards<ServerThreadResult>,
    pub attach: AttachInfo,
}

/// What one idle connection costs a server shard, its table slots
/// included: 1,358 bytes per connection end measured with a million
/// connections (`cargo bench -p stack --bench capacity`), rounded up. A
/// connection with data in flight holds its rings beside it (up to
/// `rx_buffer` + `tx_buffer`, given back once they are empty).
const IDLE_CONNECTION_BYTES: u64 = 1536;

/// Refuses a `--max-connections` whose idle connections would need more
/// than half the memory available.
fn check_memory(max_connections: usize, shards: usize) -> Result<()> {
    let need = max_connections as u64 * shards as u64 * IDLE_CONNECTION_BYTES;
    match crate::sys::mem_available() {
        Some(avail) if need > avail / 2 => Err(usage(format!(
            "--max-connections {max_connections}: {shards} shard(s) of {max_connections} connections at ~{IDLE_CONNECTION_BYTES} bytes each need {} MiB, more than half of the {} MiB available: give a smaller --max-connections",
            need >> 20,
            avail >> 20
        ))),
        _ => Ok(()),
    }
}

impl BypassServer {
    pub fn start(spec: ServerSpec) -> Result<BypassServer> {
        if spec.messages.port == 0 || spec.messages.port == u16::MAX {
            return Err(usage(
                "--port must be between 1 and 65534 (the sinks use PORT+1)",
            ));
        }
        check_memory(spec.bypass.max_connections, spec.cpus.len().max(1))?;
        let setup = ShardSetup::read(&spec.bypass)?;
        let open_spec = spec.clone();
        let inner = Shards::spawn(
            "byp-srv",
            &spec.bypass,
            &spec.cpus,
            Arc::new(AtomicBool::new(false)),
            move |parts| {
                let spec = &open_spec;
                let shard = Shard::open(&spec.bypass, &setup, parts, |c| {
                    c.max_sockets = spec.bypass.max_connections;
                    c.syn_backlog = 1024;
                    // a flood's burst must not overflow a UDP socket
                    // before the loop reads it
                    c.udp_rx_queue = 4096;
                })?;
                ServerShard::listen(shard, spec)
            },
            |mut s: ServerShard, stop: &AtomicBool| s.serve(stop),
        )?;
        Ok(BypassServer {
            attach: inner.attach.clone(),
            inner,
        })
    }

    pub fn stop(self) -> Result<ServerReport> {
        self.inner.server_report()
    }
}

/// One shard's server: its listeners, UDP sockets and connections.
struct ServerShard {
    shard: Shard,
    busy_poll: bool,
    rr: SocketHandle,
    sink: SocketHandle,
    echo: SocketHandle,
    udp_sink: SocketHandle,
    conns: HashMap<SocketHandle, AppConn>,
    app: ServerApp,
    cpu_id: Option<usize>,
    counters: ServerCounters,
    recorder: Recorder,
    buf: Vec<u8>,
    /// The echo's answer: `--size`'s response bytes.
    resp: Vec<u8>,
    window: Window,
    /// `--idle-timeout`, and when connections are next looked at for it.
    idle: Option<IdleSweep>,
}

impl super::ShardInfo for ServerShard {
    fn base(&self) -> &super::ShardBase {
        &self.shard.base
    }
}

impl ServerShard {
    /// Listens on the TCP ports and binds the UDP ones.
    fn listen(mut shard: Shard, spec: &ServerSpec) -> Result<ServerShard> {
        let addr = spec.bypass.addr;
        let iface = &mut shard.iface;
        let mut tcp = |port: u16| -> Result<SocketHandle> {
            let h = iface.socket().map_err(|e| anyhow!("socket: {e}"))?;
            iface
                .bind(h, SocketAddrV4::new(addr, port))
                .map_err(|e| usage(format!("binding TCP port {port} on the stack: {e}")))?;
            iface
                .listen(h, 1024)
                .map_err(|e| anyhow!("listen on TCP port {port}: {e}"))?;
            Ok(h)
        };
        let rr = tcp(Workload::Rr.port(spec.messages.port))?;
        let sink = tcp(Workload::Stream.port(spec.messages.port))?;
        let mut udp = |port: u16| {
            iface
                .udp_bind(port)
                .map_err(|e| usage(format!("binding UDP port {port} on the stack: {e}")))
        };
        let echo = udp(Workload::UdpRr.port(spec.messages.port))?;
        let udp_sink = udp(Workload::UdpStream.port(spec.messages.port))?;
        let resp_len = spec
            .messages
            .sizes
            .resp
            .clamp(UDP_HEADER, workload::MAX_UDP_PAYLOAD);
        Ok(ServerShard {
            busy_poll: spec.bypass.busy_poll,
            cpu_id: spec.cpus.get(shard.base.index).copied(),
            shard,
            rr,
            sink,
            echo,
            udp_sink,
            conns: HashMap::new(),
            app: ServerApp::new(
                spec.messages.proto,
                spec.messages.sizes,
                spec.window,
                256 * 1024,
            ),
            counters: ServerCounters::default(),
            recorder: Recorder::new(spec.window),
            buf: vec![0; 256 * 1024],
            resp: vec![0; resp_len],
            window: spec.window,
            idle: spec.idle_timeout.map(IdleSweep::new),
        })
    }

    fn serve(&mut self, stop: &AtomicBool) -> Result<ServerThreadResult> {
        let mut cpu = WindowCpu::default();
        let mut work = Duration::ZERO;
        let mut work_at_t0: Option<Duration> = None;
        let mut work_in_window: Option<Duration> = None;
        let mut idle_rounds = 0u32;
        while !stop.load(Ordering::Relaxed) {
            let start = Instant::now();
            cpu.tick(&self.window, start);
            if work_at_t0.is_none() && start >= self.window.t0 {
                work_at_t0 = Some(work);
            }
            if work_in_window.is_none() && start >= self.window.t_end {
                work_in_window = Some(work - work_at_t0.unwrap_or(work));
            }
            let mut did = self.shard.poll(start);
            while let Some(ev) = self.shard.iface.next_event() {
                did = true;
                self.event(ev.handle, ev.readiness);
            }
            did |= self.close_idle(start);
            if did {
                // send at once what the answers wrote (a sink's round
                // owes nothing)
                if self.shard.iface.owes() {
                    // the round's time (one clock read a round: the
                    // stack's timers are coarser than a round)
                    self.shard.iface.poll_egress(super::stack_now(start));
                }
                work += start.elapsed();
                idle_rounds = 0;
            } else {
                idle_rounds += 1;
                if idle_rounds > IDLE_ROUNDS && !self.busy_poll {
                    self.shard.sleep();
                    idle_rounds = 0;
                }
            }
        }
        cpu.finish();
        let work_in_window = work_in_window.unwrap_or(work - work_at_t0.unwrap_or(work));
        let mut extra = self.shard.counters();
        extra.insert("work_us".to_string(), work_in_window.as_micros() as u64);
        Ok(ServerThreadResult {
            cpu_id: self.cpu_id,
            counters: self.counters.clone(),
            recorder: self.recorder.clone(),
            cpu: cpu.used,
            extra,
        })
    }

    /// The datagrams queued on a UDP socket, until EAGAIN: echoed (udp-rr:
    /// the request's header and `--size`'s response bytes) or counted (the
    /// sink).
    fn udp(&mut self, h: SocketHandle, echo: bool) {
        let iface = &mut self.shard.iface;
        while let Ok((n, src)) = iface.recv_from(h, &mut self.buf) {
            let c = &mut self.counters;
            c.udp_in += 1;
            c.bytes_in += n as u64;
            let answer = if echo {
                self.app.udp_answer()
            } else {
                UdpAnswer::Discard
            };
            // RFC 862 (the datagram itself back), sockperf's reply in
            // place, or udp-rr's header and `--size` response bytes
            let reply: Option<&[u8]> = match answer {
                UdpAnswer::Echo => Some(&self.buf[..n]),
                UdpAnswer::Sockperf => {
                    crate::app::sockperf_datagram(&mut self.buf[..n], c).map(|len| &self.buf[..len])
                }
                UdpAnswer::Discard if echo => continue, // RFC 863: counted and dropped
                UdpAnswer::Workload | UdpAnswer::Discard => None,
            };
            if matches!(answer, UdpAnswer::Echo | UdpAnswer::Sockperf) {
                if let Some(reply) = reply {
                    c.reply(iface.send_to(h, src, reply), reply.len());
                }
                continue;
            }
            let Some((_, measured)) = workload::udp_header(&self.buf[..n]) else {
                c.udp_runts += 1;
                continue;
            };
            if answer == UdpAnswer::Workload {
                self.resp[..UDP_HEADER].copy_from_slice(&self.buf[..UDP_HEADER]);
                c.reply(iface.send_to(h, src, &self.resp), self.resp.len());
            } else if measured {
                c.udp_measured_in += 1;
                self.recorder.op(Instant::now(), None, n as u64);
            }
        }
    }

    fn event(&mut self, h: SocketHandle, r: Readiness) {
        if h == self.echo || h == self.udp_sink {
            self.udp(h, h == self.echo);
            return;
        }
        if h == self.rr || h == self.sink {
            let sink = h == self.sink;
            while let Ok((c, _peer)) = self.shard.iface.accept(h) {
                self.counters.accepted += 1;
                let kind = self.app.kind(sink);
                self.conns.insert(c, AppConn::new(kind));
                // data may have come with the handshake
                self.serve_conn(c);
            }
            return;
        }
        if !self.conns.contains_key(&h) {
            return;
        }
        if r.contains(Readiness::ERROR) {
            let reset = self.shard.iface.error(h) == Ok(Some(stack::Error::ConnectionReset));
            self.counters.lost(reset);
            self.finish(h);
            return;
        }
        self.serve_conn(h);
    }

    /// Closes the connections idle past `--idle-timeout` (at most every
    /// [`IdleSweep::EVERY`]); whether it closed any.
    fn close_idle(&mut self, now: Instant) -> bool {
        let Some(idle) = &mut self.idle else {
            return false;
        };
        let idle_handles = idle.due(now, self.conns.iter().map(|(h, c)| (*h, c)));
        for &h in &idle_handles {
            self.counters.idle_timeouts += 1;
            self.finish(h);
        }
        !idle_handles.is_empty()
    }

    fn finish(&mut self, h: SocketHandle) {
        if self.conns.remove(&h).is_some() {
            let _ = self.shard.iface.close(h);
            self.counters.closed += 1;
        }
    }

    fn serve_conn(&mut self, h: SocketHandle) {
        let Some(c) = self.conns.get_mut(&h) else {
            return;
        };
        let iface = &mut self.shard.iface;
        let mut eof = false;
        // read while the connection owes less than its limit, writing as
        // it goes, as far as the send buffer takes it (back-pressure: what
        // is not read waits in the receive ring, and the window closes)
        let flushed = loop {
            let mut got = false;
            if c.wants_input() && !eof {
                // the application reads the receive ring in place
                let (app, counters, recorder) = (&self.app, &mut self.counters, &mut self.recorder);
                let read = iface.recv_stream_with(h, |data| {
                    c.input(app, data, Instant::now(), counters, recorder);
                    data.len()
                });
                match read {
                    Ok(0) => eof = true,
                    Ok(_) => got = true,
                    Err(stack::Error::WouldBlock) => {}
                    Err(e) => {
                        self.counters.lost(stack_reset(e));
                        self.finish(h);
                        return;
                    }
                }
            }
            let mut flushed = true;
            while let Some(data) = c.pending(&self.app, &mut self.counters) {
                match iface.send(h, data) {
                    Ok(0) | Err(stack::Error::WouldBlock) => {
                        flushed = false;
                        break;
                    }
                    Ok(n) => c.wrote(n, &mut self.counters),
                    Err(e) => {
                        self.counters.lost(stack_reset(e));
                        self.finish(h);
                        return;
                    }
                }
            }
            if !got {
                break flushed;
            }
        };
        if eof || (c.close_after() && flushed) {
            self.finish(h);
        }
    }
}

/// Whether a socket call failed because the peer reset the connection.
fn stack_reset(e: stack::Error) -> bool {
    matches!(e, stack::Error::ConnectionReset | stack::Error::BrokenPipe)
}
