//! The transmission control block and the state machine of RFC 9293 §3.10.
//!
//! One concept per file. This one holds the [`Tcb`]: its fields, how a
//! connection is made, its accessors and the user calls (RFC 9293 §3.10.1
//! to §3.10.6). `input` is SEGMENT ARRIVES (§3.10.7, [`Tcb::process`]
//! whole and in RFC order), `ack` what an acceptable ACK does to the send
//! side and how loss recovery begins, `output` what a connection sends
//! ([`Tcb::dispatch`]), `sack` the RFC 6675 scoreboard, `timers` the
//! timeouts (§3.10.8, [`Tcb::on_timer`]) and `stats` the counters and the
//! [`Reaction`] the interface gets back.

mod ack;
mod input;
mod output;
mod sack;
mod stats;
mod timers;

pub use stats::{Reaction, TcpStats};

use input::ChallengeLimit;
use sack::SackScoreboard;
use timers::{Timer, TimerTable};

use core::net::SocketAddrV4;
use core::time::Duration;

use super::{Congestion, CookieOptions, Keepalive, RttEstimator, SeqNumber, State, TcpConfig};
use crate::error::Error;
use crate::storage::{Assembler, RingBuffer, StoragePool};
use crate::time::Instant;
use crate::wire::{TcpFlags, TcpOptions, TcpRepr, Timestamps};

/// RFC 9293 §3.7.1: "the default MSS ... for IPv4 is 536 bytes", when the
/// peer sends no MSS option (MUST-15).
const DEFAULT_MSS: u16 = 536;
/// RFC 7323 §2.3: the shift count is at most 14.
const MAX_WINDOW_SHIFT: u8 = 14;
/// Bytes of the timestamps option in every segment once negotiated
/// (RFC 7323 §3.2: 10, padded to 12 with two NOPs).
const TS_OPTION_LEN: usize = 12;
/// RFC 5681 §3.2: fast retransmit on the third duplicate ACK.
const DUPACK_THRESHOLD: u32 = 3;

/// The window scale shift that lets `buffer` bytes be advertised.
fn window_shift(buffer: usize) -> u8 {
    let mut shift = 0;
    while shift < MAX_WINDOW_SHIFT && (buffer >> shift) > usize::from(u16::MAX) {
        shift += 1;
    }
    shift
}

/// A connection: RFC 9293 §3.3.1's send and receive sequence variables,
/// the buffers, the timers and what was negotiated.
#[derive(Debug)]
pub struct Tcb {
    state: State,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    /// Opened by a listener (SYN-RECEIVED goes back to nothing on RST).
    passive: bool,

    iss: SeqNumber,
    irs: SeqNumber,
    snd_una: SeqNumber,
    snd_nxt: SeqNumber,
    /// The highest sequence number sent (BSD's `snd_max`): SND.NXT goes
    /// back to SND.UNA on a timeout, and ACKs up to this are still valid.
    snd_max: SeqNumber,
    snd_wnd: u32,
    snd_wl1: SeqNumber,
    snd_wl2: SeqNumber,
    snd_wscale: u8,
    rcv_nxt: SeqNumber,
    rcv_wscale: u8,
    /// The right edge of the window last advertised.
    rcv_adv: SeqNumber,
    /// Payload bytes per segment (MSS less the options always sent).
    mss: usize,
    /// The MSS this end announces.
    local_mss: u16,

    /// Timestamps negotiated (RFC 7323 §3.2).
    ts_enabled: bool,
    ts_recent: u32,
    ts_offset: u32,
    sack_permitted: bool,
    /// Offer window scaling in our SYN or SYN-ACK.
    offer_ws: bool,

    /// Bytes sent or to send; the first is at `tx_base`.
    tx: RingBuffer,
    tx_base: SeqNumber,
    /// Our user closed the write side: a FIN follows the last byte.
    fin_queued: bool,
    fin_acked: bool,

    rx: RingBuffer,
    assembler: Assembler,
    /// The sequence number of a FIN that arrived ahead of missing data.
    rx_fin: Option<SeqNumber>,
    /// Where the latest out-of-order segment began: its block goes first
    /// in SACK options (RFC 2018 §4).
    last_out_of_order: SeqNumber,
    /// The peer's FIN arrived in order: reads end after the buffer.
    rx_eof: bool,
    /// Our user shut the read side.
    rd_shut: bool,

    rtt: RttEstimator,
    /// The connection's deadlines, one a timer: what fires next is one
    /// lookup.
    timers: TimerTable,
    /// The end of a segment being timed, and when it was sent (one RTT
    /// measurement at a time; none across a retransmission, Karn's rule).
    rtt_probe: Option<(SeqNumber, Instant)>,
    retries: u32,
    dupacks: u32,
    /// The congestion window (RFC 5681, RFC 9438).
    cc: Congestion,
    /// Loss recovery: the SACK scoreboard and how far this recovery went.
    sack: SackScoreboard,
    probe_zero_window: bool,
    /// The largest window the peer offered (RFC 9293 §3.8.6.2.1,
    /// Max(SND.WND)).
    max_snd_wnd: u32,
    /// Sender-side silly-window avoidance holds data back: the window is
    /// open, but too little of it for a worthwhile segment.
    sws_held: bool,
    /// The override timeout fired: send what the window takes, once.
    sws_override: bool,
    /// When TIME-WAIT began.
    time_wait_since: Instant,
    /// Our user closed the socket: nobody will read or write it again.
    orphan: bool,

    ack_pending: bool,
    acks_owed: u8,
    delayed_ack: Option<Duration>,
    nagle: bool,
    /// RCV.NXT when an ACK last went out.
    last_ack_sent: SeqNumber,
    /// How many challenge ACKs may still go this second (RFC 5961 §7).
    challenges: ChallengeLimit,
    rst_pending: bool,
    error: Option<Error>,
    syn_retries: u32,
    max_retries: u32,
    time_wait: Duration,
    fin_wait2_timeout: Duration,
    keepalive: Option<Keepalive>,
    /// Probes sent since the peer was last heard from.
    keepalive_sent: u32,
    keepalive_pending: bool,
}

/// Where a connection starts: its addresses, ISN and clocks.
#[derive(Debug, Clone, Copy)]
pub struct Endpoints {
    /// This end.
    pub local: SocketAddrV4,
    /// The peer.
    pub remote: SocketAddrV4,
    /// Our initial sequence number (RFC 6528).
    pub iss: SeqNumber,
    /// Offset of the timestamp clock (RFC 7323 §5.4).
    pub ts_offset: u32,
    /// The MSS this end announces (the device MTU less 40).
    pub local_mss: u16,
}

impl Tcb {
    fn new(cfg: &TcpConfig, ep: Endpoints, state: State, passive: bool) -> Tcb {
        Tcb {
            state,
            local: ep.local,
            remote: ep.remote,
            passive,
            iss: ep.iss,
            irs: SeqNumber(0),
            snd_una: ep.iss,
            snd_nxt: ep.iss,
            snd_max: ep.iss,
            snd_wnd: 0,
            snd_wl1: SeqNumber(0),
            snd_wl2: SeqNumber(0),
            snd_wscale: 0,
            rcv_nxt: SeqNumber(0),
            rcv_wscale: if cfg.window_scaling {
                window_shift(cfg.rx_buffer)
            } else {
                0
            },
            rcv_adv: SeqNumber(0),
            mss: usize::from(DEFAULT_MSS),
            local_mss: ep.local_mss,
            ts_enabled: cfg.timestamps,
            ts_recent: 0,
            ts_offset: ep.ts_offset,
            sack_permitted: cfg.sack_permitted,
            offer_ws: cfg.window_scaling,
            tx: RingBuffer::new(cfg.tx_buffer),
            tx_base: ep.iss + 1u32,
            fin_queued: false,
            fin_acked: false,
            rx: RingBuffer::new(cfg.rx_buffer),
            assembler: Assembler::default(),
            rx_fin: None,
            last_out_of_order: SeqNumber(0),
            rx_eof: false,
            rd_shut: false,
            rtt: RttEstimator::new(cfg.rto_initial, cfg.rto_min, cfg.rto_max),
            timers: TimerTable::default(),
            rtt_probe: None,
            retries: 0,
            dupacks: 0,
            cc: Congestion::new(cfg.congestion, u32::from(DEFAULT_MSS)),
            sack: SackScoreboard::new(ep.iss),
            probe_zero_window: false,
            max_snd_wnd: 0,
            sws_held: false,
            sws_override: false,
            time_wait_since: Instant::ZERO,
            orphan: false,
            ack_pending: false,
            acks_owed: 0,
            delayed_ack: cfg.delayed_ack,
            nagle: cfg.nagle,
            last_ack_sent: SeqNumber(0),
            challenges: ChallengeLimit::new(cfg.challenge_ack_limit),
            rst_pending: false,
            error: None,
            syn_retries: cfg.syn_retries,
            max_retries: cfg.retries,
            time_wait: cfg.time_wait,
            fin_wait2_timeout: cfg.fin_wait2_timeout,
            keepalive: cfg.keepalive,
            keepalive_sent: 0,
            keepalive_pending: false,
        }
    }

    /// RFC 9293 §3.10.1, OPEN call, active: a connection in SYN-SENT whose
    /// SYN goes out at the next dispatch.
    pub fn connect(cfg: &TcpConfig, ep: Endpoints) -> Tcb {
        Tcb::new(cfg, ep, State::SynSent, false)
    }

    /// RFC 9293 §3.10.7.2, LISTEN, third check (a SYN): a connection in
    /// SYN-RECEIVED with RCV.NXT = SEG.SEQ + 1, IRS = SEG.SEQ, whose
    /// SYN-ACK goes out at the next dispatch. Options the SYN did not
    /// offer are not used (RFC 7323 §2.2, §3.2; RFC 2018 §2).
    pub fn accept_syn(cfg: &TcpConfig, ep: Endpoints, syn: &TcpRepr<'_>) -> Tcb {
        let mut t = Tcb::new(cfg, ep, State::SynReceived, true);
        let seq = SeqNumber(syn.seq_number);
        t.irs = seq;
        t.rcv_nxt = seq + 1u32;
        t.negotiate(&syn.options);
        // RFC 7323 §2.2: the window of a SYN is never scaled.
        t.snd_wnd = u32::from(syn.window_len);
        t.snd_wl1 = seq;
        t.snd_wl2 = t.iss;
        t
    }

    /// The SYN-ACK of a SYN cookie (RFC 4987 §3.6), made without a
    /// connection: `ep.iss` is the cookie; options as
    /// [`accept_syn`](Self::accept_syn) would negotiate them.
    pub fn cookie_syn_ack(
        cfg: &TcpConfig,
        ep: Endpoints,
        syn: &TcpRepr<'_>,
        now: Instant,
    ) -> TcpRepr<'static> {
        let o = &syn.options;
        let mut options = TcpOptions {
            mss: Some(ep.local_mss),
            sack_permitted: cfg.sack_permitted && o.sack_permitted,
            ..TcpOptions::default()
        };
        if cfg.window_scaling && o.window_scale.is_some() {
            options.window_scale = Some(window_shift(cfg.rx_buffer));
        }
        if let (true, Some(ts)) = (cfg.timestamps, o.timestamps) {
            options.timestamps = Some(Timestamps {
                tsval: (now.millis() as u32).wrapping_add(ep.ts_offset),
                tsecr: ts.tsval,
            });
        }
        TcpRepr {
            src_port: ep.local.port(),
            dst_port: ep.remote.port(),
            flags: TcpFlags::SYN | TcpFlags::ACK,
            seq_number: ep.iss.0,
            ack_number: syn.seq_number.wrapping_add(1),
            window_len: cfg.rx_buffer.min(usize::from(u16::MAX)) as u16,
            urgent_at: 0,
            options,
            payload: &[],
        }
    }

    /// The connection a valid cookie ACK stands for, in ESTABLISHED (RFC
    /// 4987 §3.6): `ep.iss` and `irs` are the ISNs the ACK implies, `opts`
    /// what the cookie carried; timestamps are on if the ACK has them.
    pub fn from_cookie(
        cfg: &TcpConfig,
        ep: Endpoints,
        irs: SeqNumber,
        opts: CookieOptions,
        ack: &TcpRepr<'_>,
    ) -> Tcb {
        let mut t = Tcb::new(cfg, ep, State::Established, true);
        t.irs = irs;
        t.rcv_nxt = irs + 1u32;
        t.negotiate(&TcpOptions {
            mss: Some(opts.mss),
            window_scale: opts.window_scale,
            sack_permitted: opts.sack_permitted,
            timestamps: ack.options.timestamps,
            ..TcpOptions::default()
        });
        let una = ep.iss + 1u32;
        t.snd_una = una;
        t.snd_nxt = una;
        t.snd_max = una;
        t.snd_wnd = u32::from(ack.window_len) << t.snd_wscale;
        t.snd_wl1 = SeqNumber(ack.seq_number);
        t.snd_wl2 = SeqNumber(ack.ack_number);
        t
    }

    /// Settle the options from the peer's SYN (or SYN-ACK).
    fn negotiate(&mut self, o: &TcpOptions) {
        match o.window_scale {
            Some(shift) if self.offer_ws => self.snd_wscale = shift.min(MAX_WINDOW_SHIFT),
            // RFC 7323 §2.2: both sides must send the option, else neither
            // window is scaled.
            _ => {
                self.offer_ws = false;
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
            }
        }
        self.sack_permitted &= o.sack_permitted;
        match o.timestamps {
            Some(ts) if self.ts_enabled => self.ts_recent = ts.tsval,
            _ => self.ts_enabled = false,
        }
        let peer = o.mss.unwrap_or(DEFAULT_MSS).min(self.local_mss).max(64);
        let options = if self.ts_enabled { TS_OPTION_LEN } else { 0 };
        self.mss = usize::from(peer) - options;
        self.cc = Congestion::new(self.cc.algorithm(), self.mss as u32);
    }

    // ---- accessors ----

    /// The state.
    pub fn state(&self) -> State {
        self.state
    }

    /// This end's address.
    pub fn local(&self) -> SocketAddrV4 {
        self.local
    }

    /// The peer's address.
    pub fn remote(&self) -> SocketAddrV4 {
        self.remote
    }

    /// Opened by a listener.
    pub fn is_passive(&self) -> bool {
        self.passive
    }

    /// The error the connection failed with, if it did.
    pub fn error(&self) -> Option<Error> {
        self.error
    }

    /// Payload bytes per segment.
    pub fn mss(&self) -> usize {
        self.mss
    }

    /// The current retransmission timeout.
    pub fn rto(&self) -> Duration {
        self.rtt.rto()
    }

    /// The congestion controller.
    pub fn congestion(&self) -> &Congestion {
        &self.cc
    }

    /// The smoothed RTT, or the RTO before any measurement.
    fn srtt(&self) -> Duration {
        self.rtt.srtt().unwrap_or_else(|| self.rtt.rto())
    }

    /// The RTT estimator.
    pub fn rtt(&self) -> &RttEstimator {
        &self.rtt
    }

    /// Whether timestamps, SACK-permitted and window scaling (our shift,
    /// the peer's) were negotiated.
    pub fn negotiated(&self) -> (bool, bool, Option<(u8, u8)>) {
        let ws = self.offer_ws.then_some((self.rcv_wscale, self.snd_wscale));
        (self.ts_enabled, self.sack_permitted, ws)
    }

    /// Bytes waiting to be read.
    pub fn recv_queue(&self) -> usize {
        self.rx.len()
    }

    /// Bytes sent and not acknowledged, or not sent yet.
    pub fn send_queue(&self) -> usize {
        self.tx.len()
    }

    /// Closed by its user: no one holds its handle.
    pub fn is_orphan(&self) -> bool {
        self.orphan
    }

    /// A new SYN for this 4-tuple may end this TIME-WAIT and open a new
    /// connection: RFC 1122 §4.2.2.13 allows it when the new connection's
    /// ISN exceeds every sequence number of the old one (the caller picks
    /// [`time_wait_successor_iss`](Self::time_wait_successor_iss)) and the
    /// SYN is not an old duplicate: with timestamps, its TSval is newer
    /// than TS.Recent (RFC 6191 §2); without, its sequence number is past
    /// RCV.NXT.
    pub fn accepts_new_syn(&self, syn: &TcpRepr<'_>) -> bool {
        if self.state != State::TimeWait {
            return false;
        }
        match (self.ts_enabled, syn.options.timestamps) {
            (true, Some(ts)) => SeqNumber(ts.tsval).gt(SeqNumber(self.ts_recent)),
            (true, None) => false,
            (false, _) => SeqNumber(syn.seq_number).gt(self.rcv_nxt),
        }
    }

    /// Whether our own `connect` may take over this TIME-WAIT's 4-tuple:
    /// timestamps are on (the peer can tell the new connection's segments
    /// from the old one's by PAWS) and `delay` has passed (a second by
    /// default), which is Linux's `tcp_tw_reuse` rule.
    pub fn reusable_by_connect(&self, now: Instant, delay: Duration) -> bool {
        self.state == State::TimeWait
            && self.ts_enabled
            && now.saturating_since(self.time_wait_since) >= delay
    }

    /// The ISN for a connection that takes over this TIME-WAIT's 4-tuple:
    /// past everything the old one sent, by a window (Linux:
    /// `tw_snd_nxt + 65535 + 2`).
    pub fn time_wait_successor_iss(&self) -> SeqNumber {
        self.snd_max + 65537u32
    }

    /// End TIME-WAIT (or any state) at once, sending nothing: the 4-tuple is
    /// being taken over by a new connection.
    pub fn retire(&mut self) {
        self.rst_pending = false;
        self.enter_closed(None);
    }

    /// Nothing left to send on its own account (no reset owed).
    pub fn idle(&self) -> bool {
        !self.rst_pending
    }

    /// `SO_KEEPALIVE` (with its three settings), or off with `None`. The
    /// idle time counts from `now`.
    pub fn set_keepalive(&mut self, now: Instant, keepalive: Option<Keepalive>) {
        self.keepalive = keepalive;
        self.keepalive_sent = 0;
        self.heard(now);
    }

    // ---- readiness ----

    /// Data to read, the end of the stream, or an error.
    pub fn readable(&self) -> bool {
        !self.rx.is_empty() || self.rx_eof || self.error.is_some() || self.rd_shut
    }

    /// Room to write in a state that sends.
    pub fn writable(&self) -> bool {
        matches!(self.state, State::Established | State::CloseWait)
            && !self.fin_queued
            && self.tx.free() > 0
    }

    // ---- user calls (RFC 9293 §3.10.2 - §3.10.6) ----

    /// Whether the user may queue bytes now (RFC 9293 §3.10.2's SEND call
    /// by state): `Ok` in ESTABLISHED and CLOSE-WAIT before a FIN; EAGAIN
    /// while the handshake is under way (nonblocking, like Linux).
    fn sendable(&self) -> Result<(), Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        match self.state {
            State::SynSent | State::SynReceived => Err(Error::WouldBlock),
            State::Established | State::CloseWait if !self.fin_queued => Ok(()),
            State::Closed | State::Listen => Err(Error::NotConnected),
            // "error: connection closing"
            _ => Err(Error::BrokenPipe),
        }
    }

    /// RFC 9293 §3.10.2, SEND call: queue `data`; returns how much fitted.
    pub fn send(&mut self, data: &[u8]) -> Result<usize, Error> {
        self.sendable()?;
        let n = self.tx.push(data);
        if n == 0 && !data.is_empty() {
            Err(Error::WouldBlock)
        } else {
            Ok(n)
        }
    }

    /// [`send`](Self::send) without a copy from the caller's buffer: `f`
    /// writes into the longest contiguous free run of the send ring and
    /// returns how many bytes it wrote (at most the run's length), which
    /// are queued. EAGAIN when the ring is full.
    pub fn send_with(&mut self, f: impl FnOnce(&mut [u8]) -> usize) -> Result<usize, Error> {
        self.sendable()?;
        let run = self.tx.free_run_mut();
        if run.is_empty() {
            return Err(Error::WouldBlock);
        }
        let room = run.len();
        let n = f(run).min(room);
        self.tx.commit(n);
        Ok(n)
    }

    /// What a RECEIVE call with nothing to read returns: `Ok(0)` at the
    /// end of the stream, the connection's error, or EAGAIN.
    fn nothing_to_read(&self) -> Result<usize, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.rx_eof || self.state == State::Closed {
            return Ok(0);
        }
        Err(Error::WouldBlock)
    }

    /// [`recv`](Self::recv) without a copy into the caller's buffer: `f`
    /// reads the longest contiguous run of received bytes and returns how
    /// many it consumed (at most the run's length); the rest stays.
    /// `Ok(0)` without calling `f` is the end of the stream.
    pub fn recv_with(&mut self, f: impl FnOnce(&[u8]) -> usize) -> Result<usize, Error> {
        if self.rd_shut {
            return Ok(0);
        }
        if self.rx.is_empty() {
            return self.nothing_to_read();
        }
        let run = self.rx.peek_at(0);
        let n = f(run).min(run.len());
        self.rx.discard(n);
        self.maybe_window_update();
        Ok(n)
    }

    /// RFC 9293 §3.10.3, RECEIVE call: copy what arrived into `out`.
    /// `Ok(0)` is the end of the stream.
    pub fn recv(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        if self.rd_shut {
            return Ok(0);
        }
        if self.rx.is_empty() {
            return self.nothing_to_read();
        }
        let n = self.rx.pop_into(out);
        self.maybe_window_update();
        Ok(n)
    }

    /// After a read: advertise the larger window if it grew by at least
    /// two segments or half the buffer (RFC 9293 §3.8.6.2.2, the
    /// receiver's silly window avoidance).
    fn maybe_window_update(&mut self) {
        let edge = self.rcv_nxt + self.advertised_window_bytes();
        let growth = edge.since(self.rcv_adv);
        if (edge - self.rcv_adv) > 0
            && growth as usize >= (2 * self.mss).min(self.rx.capacity() / 2)
        {
            self.ack_pending = true;
        }
    }

    /// RFC 9293 §3.10.4, CLOSE call, for the write side (`shutdown(SHUT_WR)`):
    /// the FIN follows the data queued.
    pub fn shutdown_write(&mut self) -> Result<(), Error> {
        match self.state {
            // "Delete the TCB"
            State::SynSent => {
                self.state = State::Closed;
                Ok(())
            }
            // "If no SENDs have been issued ... enter FIN-WAIT-1": the FIN
            // waits for the handshake to end (see the ESTABLISHED arm of
            // `process`).
            State::SynReceived => {
                self.fin_queued = true;
                Ok(())
            }
            // "Queue this until all preceding SENDs have been segmentized,
            // then form a FIN segment and send it. In any case, enter
            // FIN-WAIT-1 state."
            State::Established => {
                self.fin_queued = true;
                self.state = State::FinWait1;
                Ok(())
            }
            // RFC 9293 (fixing RFC 793's CLOSING): "send a FIN segment,
            // enter LAST-ACK state".
            State::CloseWait => {
                self.fin_queued = true;
                self.state = State::LastAck;
                Ok(())
            }
            State::Closed | State::Listen => Err(Error::NotConnected),
            // "error: connection closing"
            _ => Ok(()),
        }
    }

    /// `shutdown(SHUT_RD)`: reads return end of stream from now on; what
    /// arrives is still acknowledged and thrown away.
    pub fn shutdown_read(&mut self) {
        self.rd_shut = true;
        self.rx.discard(self.rx.len());
    }

    /// `close()`: the user lets go. Unread data makes it an abort (RFC 2525
    /// §2.17, as Linux does); otherwise the write side is shut down and the
    /// connection finishes on its own.
    pub fn close(&mut self, now: Instant) {
        self.orphan = true;
        if !self.rx.is_empty() && self.state.is_synchronized() {
            self.abort();
            return;
        }
        let _ = self.shutdown_write();
        if self.state == State::FinWait2 {
            self.timers.set(Timer::Linger, now + self.fin_wait2_timeout);
        }
        self.shrink_if_done();
    }

    /// RFC 9293 §3.10.5, ABORT call: send `<SEQ=SND.NXT><CTL=RST>` in a
    /// synchronized state (and SYN-RECEIVED), enter CLOSED.
    pub fn abort(&mut self) {
        if matches!(
            self.state,
            State::SynReceived
                | State::Established
                | State::FinWait1
                | State::FinWait2
                | State::CloseWait
        ) {
            self.rst_pending = true;
        }
        self.enter_closed(None);
    }

    /// A TIME-WAIT nobody will read from needs no buffers: give them back,
    /// so that thousands of TIME-WAITs cost a control block each (the
    /// interface then reclaims their storage, [`Tcb::reclaim_storage`]).
    fn shrink_if_done(&mut self) {
        if self.orphan && self.state == State::TimeWait && self.rx.is_empty() {
            self.assembler.clear();
        }
    }

    /// Gives the connection's rings storage from `pool`, before its first
    /// byte (a ring without storage takes it when written to anyway).
    pub fn provide_storage(&mut self, pool: &mut StoragePool) {
        pool.provide(&mut self.rx);
        pool.provide(&mut self.tx);
    }

    /// Puts the rings' storage back in `pool` when the connection no longer
    /// needs it: closed, or in TIME-WAIT with nobody left to read. Returns
    /// whether it did.
    pub fn reclaim_storage(&mut self, pool: &mut StoragePool) -> bool {
        let done = match self.state {
            State::Closed | State::TimeWait => self.orphan && self.rx.is_empty(),
            _ => false,
        };
        if done {
            pool.reclaim(&mut self.rx);
            pool.reclaim(&mut self.tx);
        }
        done
    }

    /// Puts back the storage of a ring with nothing in it (received bytes
    /// all read, none out of order; sent bytes all acknowledged), as Linux
    /// frees a socket's buffers as they empty: an idle connection then
    /// costs its control block alone, and its next byte takes storage from
    /// `pool` again (or a new allocation when the pool has none).
    pub fn reclaim_idle_storage(&mut self, pool: &mut StoragePool) {
        if self.rx.is_empty() && self.assembler.is_empty() {
            pool.reclaim(&mut self.rx);
        }
        if self.tx.is_empty() {
            pool.reclaim(&mut self.tx);
        }
    }

    fn enter_closed(&mut self, error: Option<Error>) {
        self.state = State::Closed;
        if error.is_some() {
            self.error = error;
        }
        self.timers.clear_all();
        self.ack_pending = false;
        self.acks_owed = 0;
        self.sack.rexmit_budget = 0;
        self.keepalive_pending = false;
    }

    fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        self.time_wait_since = now;
        self.shrink_if_done();
        self.timers.clear(Timer::Rto);
        self.timers.set(Timer::Linger, now + self.time_wait);
    }
}
