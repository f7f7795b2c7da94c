//! The transmission control block and the state machine of RFC 9293 §3.10.

use core::net::SocketAddrV4;
use core::time::Duration;

use super::{Congestion, CookieOptions, Keepalive, RttEstimator, SeqNumber, State, TcpConfig};
use crate::error::Error;
use crate::storage::{Assembler, RingBuffer, StoragePool};
use crate::time::Instant;
use crate::wire::tcp::SackBlocks;
use crate::wire::{TcpFlags, TcpOptions, TcpRepr, Timestamps};

/// RFC 9293 §3.7.1: "the default MSS ... for IPv4 is 536 bytes", when the
/// peer sends no MSS option (MUST-15).
const DEFAULT_MSS: u16 = 536;
/// RFC 7323 §2.3: the shift count is at most 14.
const MAX_WINDOW_SHIFT: u8 = 14;
/// Bytes of the timestamps option in every segment once negotiated
/// (RFC 7323 §3.2: 10, padded to 12 with two NOPs).
const TS_OPTION_LEN: usize = 12;
/// Hole retransmissions owed at once, at most.
const MAX_REXMIT_BUDGET: u8 = 4;
/// Timestamp ticks a segment may lag TS.Recent and still pass PAWS
/// (Linux's `TCP_PAWS_WINDOW`).
const PAWS_WINDOW: i32 = 1;
/// RFC 5681 §3.2: fast retransmit on the third duplicate ACK.
const DUPACK_THRESHOLD: u32 = 3;
/// Duplicate ACKs sent at once for out-of-order data, at most (RFC 5681
/// §4.2: "A TCP receiver SHOULD send an immediate duplicate ACK when an
/// out-of-order segment arrives"); more in one batch add nothing.
const MAX_ACKS_OWED: u8 = 3;

/// Counters of what the TCP layer did, per interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpStats {
    /// Segments sent again (timeouts and fast retransmits).
    pub retransmits: u64,
    /// Retransmission timer expiries (RFC 6298 §5.4).
    pub rto_expiries: u64,
    /// Fast retransmits (RFC 5681 §3.2).
    pub fast_retransmits: u64,
    /// Challenge ACKs sent (RFC 5961 §3.2, §4.2).
    pub challenge_acks: u64,
    /// Challenge ACKs not sent: over the per-connection limit (RFC 5961 §7).
    pub challenge_acks_suppressed: u64,
    /// Segments received out of order and kept.
    pub out_of_order: u64,
    /// Out-of-order segments dropped: the assembler had no room for
    /// another hole.
    pub out_of_order_dropped: u64,
    /// Final ACKs of a handshake dropped because the listener's accept
    /// queue was full (Linux `ListenOverflows`).
    pub accept_queue_overflows: u64,
    /// SYNs that found the listener's SYN queue full (answered with a
    /// cookie when cookies are on, else dropped).
    pub syn_queue_overflows: u64,
    /// SYN-ACKs sent with a SYN cookie.
    pub syn_cookies_sent: u64,
    /// Connections made from a valid cookie ACK.
    pub syn_cookies_accepted: u64,
    /// ACKs to a listener that were not valid cookies (answered with RST).
    pub syn_cookies_failed: u64,
    /// Resets sent.
    pub resets_sent: u64,
    /// Segments dropped by PAWS: a timestamp older than TS.Recent
    /// (RFC 7323 §5).
    pub paws_drops: u64,
    /// Zero-window probes sent.
    pub window_probes: u64,
    /// Connections that gave up retransmitting (ETIMEDOUT).
    pub timeouts: u64,
    /// Connections that skipped TIME-WAIT because the socket table was
    /// three quarters full (Linux: "time wait bucket table overflow").
    pub time_wait_overflows: u64,
    /// TIME-WAITs whose 4-tuple our own `connect` took over (Linux:
    /// `TWRecycled`).
    pub time_wait_reused: u64,
    /// Keepalive probes sent.
    pub keepalive_probes: u64,
    /// Connections reset because keepalive probes went unanswered
    /// (ETIMEDOUT).
    pub keepalive_timeouts: u64,
}

/// What the interface must do after a segment was processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaction {
    /// Nothing beyond what the connection will send by itself.
    None,
    /// The handshake completed on this segment (SYN-SENT or SYN-RECEIVED
    /// to ESTABLISHED): a passive connection goes to its accept queue.
    Established,
    /// Send a reset `<SEQ=seq><CTL=RST>` for this segment, which has no
    /// acceptable place in the connection (RFC 9293 §3.10.7.3, §3.10.7.4).
    Reset(SeqNumber),
    /// The final ACK of a handshake was dropped: the accept queue is full.
    AcceptQueueFull,
}

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
    rto_deadline: Option<Instant>,
    /// The end of a segment being timed, and when it was sent (one RTT
    /// measurement at a time; none across a retransmission, Karn's rule).
    rtt_probe: Option<(SeqNumber, Instant)>,
    retries: u32,
    dupacks: u32,
    /// The congestion window (RFC 5681, RFC 9438).
    cc: Congestion,
    /// RFC 6582 `recover`: in fast recovery until this is acknowledged.
    recover: Option<SeqNumber>,
    /// Retransmissions of holes this recovery may still send (one per
    /// ACK that arrives during fast recovery).
    rexmit_budget: u8,
    /// Everything before this was retransmitted in this recovery (RFC
    /// 6675's HighRxt, plus one).
    rexmit_next: SeqNumber,
    /// RFC 6675 §4 rule 4: the rescue retransmission of this recovery was
    /// sent.
    rescued: bool,
    /// What the peer's SACK blocks say it holds, as ranges from SND.UNA
    /// (RFC 2018; a fixed array, at most 32 ranges kept).
    sacked: Assembler,
    probe_zero_window: bool,
    /// The largest window the peer offered (RFC 9293 §3.8.6.2.1,
    /// Max(SND.WND)).
    max_snd_wnd: u32,
    /// Sender-side silly-window avoidance holds data back: the window is
    /// open, but too little of it for a worthwhile segment.
    sws_held: bool,
    /// The override timeout fired: send what the window takes, once.
    sws_override: bool,
    /// TIME-WAIT's 2*MSL, or an orphan's FIN-WAIT-2 timeout.
    linger_deadline: Option<Instant>,
    /// When TIME-WAIT began.
    time_wait_since: Instant,
    /// Our user closed the socket: nobody will read or write it again.
    orphan: bool,

    ack_pending: bool,
    acks_owed: u8,
    /// A delayed ACK is owed by then.
    delack_deadline: Option<Instant>,
    delayed_ack: Option<Duration>,
    nagle: bool,
    /// RCV.NXT when an ACK last went out.
    last_ack_sent: SeqNumber,
    /// Challenge ACKs sent in the second that began at `challenge_window`.
    challenges: u32,
    challenge_window: Instant,
    challenge_ack_limit: u32,
    rst_pending: bool,
    error: Option<Error>,
    syn_retries: u32,
    max_retries: u32,
    time_wait: Duration,
    fin_wait2_timeout: Duration,
    keepalive: Option<Keepalive>,
    /// When the next keepalive probe is due (or the connection given up).
    keepalive_deadline: Option<Instant>,
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
            rto_deadline: None,
            rtt_probe: None,
            retries: 0,
            dupacks: 0,
            cc: Congestion::new(cfg.congestion, u32::from(DEFAULT_MSS)),
            recover: None,
            rexmit_budget: 0,
            rexmit_next: ep.iss,
            rescued: false,
            sacked: Assembler::default(),
            probe_zero_window: false,
            max_snd_wnd: 0,
            sws_held: false,
            sws_override: false,
            linger_deadline: None,
            time_wait_since: Instant::ZERO,
            orphan: false,
            ack_pending: false,
            acks_owed: 0,
            delack_deadline: None,
            delayed_ack: cfg.delayed_ack,
            nagle: cfg.nagle,
            last_ack_sent: SeqNumber(0),
            challenges: 0,
            challenge_window: Instant::ZERO,
            challenge_ack_limit: cfg.challenge_ack_limit,
            rst_pending: false,
            error: None,
            syn_retries: cfg.syn_retries,
            max_retries: cfg.retries,
            time_wait: cfg.time_wait,
            fin_wait2_timeout: cfg.fin_wait2_timeout,
            keepalive: cfg.keepalive,
            keepalive_deadline: None,
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

    /// The peer was heard from: keepalive starts counting the idle time
    /// again.
    fn heard(&mut self, now: Instant) {
        self.keepalive_sent = 0;
        // SYN-RECEIVED too: the ACK that ends the handshake is heard
        // before the state changes.
        let open = self.state.is_synchronized() || self.state == State::SynReceived;
        self.keepalive_deadline = match self.keepalive {
            Some(k) if open => Some(now + k.idle),
            _ => None,
        };
    }

    /// The earliest time [`on_timer`](Self::on_timer) has something to do.
    pub fn poll_at(&self) -> Option<Instant> {
        [
            self.rto_deadline,
            self.linger_deadline,
            self.delack_deadline,
            self.keepalive_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
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

    /// RFC 9293 §3.10.2, SEND call: queue `data`; returns how much fitted.
    pub fn send(&mut self, data: &[u8]) -> Result<usize, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        match self.state {
            // Nonblocking, and not connected yet: like Linux, wait.
            State::SynSent | State::SynReceived => Err(Error::WouldBlock),
            State::Established | State::CloseWait if !self.fin_queued => {
                let n = self.tx.push(data);
                if n == 0 && !data.is_empty() {
                    Err(Error::WouldBlock)
                } else {
                    Ok(n)
                }
            }
            State::Closed | State::Listen => Err(Error::NotConnected),
            // "error: connection closing"
            _ => Err(Error::BrokenPipe),
        }
    }

    /// RFC 9293 §3.10.3, RECEIVE call: copy what arrived into `out`.
    /// `Ok(0)` is the end of the stream.
    pub fn recv(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        if self.rd_shut {
            return Ok(0);
        }
        if !self.rx.is_empty() {
            let n = self.rx.pop_into(out);
            self.maybe_window_update();
            return Ok(n);
        }
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.rx_eof || self.state == State::Closed {
            return Ok(0);
        }
        Err(Error::WouldBlock)
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
            self.linger_deadline = Some(now + self.fin_wait2_timeout);
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

    fn enter_closed(&mut self, error: Option<Error>) {
        self.state = State::Closed;
        if error.is_some() {
            self.error = error;
        }
        self.rto_deadline = None;
        self.linger_deadline = None;
        self.ack_pending = false;
        self.acks_owed = 0;
        self.delack_deadline = None;
        self.rexmit_budget = 0;
        self.keepalive_deadline = None;
        self.keepalive_pending = false;
    }

    fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        self.time_wait_since = now;
        self.shrink_if_done();
        self.rto_deadline = None;
        self.linger_deadline = Some(now + self.time_wait);
    }

    // ---- segment arrives (RFC 9293 §3.10.7) ----

    /// Process a segment for this connection. `accept_ok` says whether the
    /// listener's accept queue has room (for the final ACK of a passive
    /// handshake).
    pub fn process(
        &mut self,
        now: Instant,
        seg: &TcpRepr<'_>,
        accept_ok: bool,
        stats: &mut TcpStats,
    ) -> Reaction {
        match self.state {
            // §3.10.7.1 / §3.10.7.2: no TCB in these states; the interface
            // answers for them.
            State::Closed | State::Listen => return Reaction::None,
            State::SynSent => return self.process_syn_sent(now, seg),
            _ => {}
        }
        let f = seg.flags;
        let seq = SeqNumber(seg.seq_number);
        let ack = SeqNumber(seg.ack_number);
        // Anything from the peer shows it is there (Linux restarts the
        // keepalive clock on every segment, acceptable or not).
        self.heard(now);

        // RFC 7323 §5.3 R1 (PAWS), before the sequence number check: "If
        // there is a Timestamps option in the arriving segment, SEG.TSval <
        // TS.Recent, TS.Recent is valid, and the RST bit is not set, then
        // treat the arriving segment as not acceptable: Send an
        // acknowledgment in reply ... and drop the segment." (TS.Recent is
        // not aged out after 24 days idle yet.)
        // As Linux (TCP_PAWS_WINDOW), a timestamp one tick older than
        // TS.Recent still passes: a segment overtaken in the network by
        // one sent a tick later is reordered, not old.
        if let (true, Some(ts)) = (self.ts_enabled, seg.options.timestamps) {
            let behind = (self.ts_recent.wrapping_sub(ts.tsval) as i32) > PAWS_WINDOW;
            if !f.contains(TcpFlags::RST) && behind {
                stats.paws_drops += 1;
                self.ack_pending = true;
                return Reaction::None;
            }
        }
        // §3.10.7.4 first: "check sequence number". The four cases of the
        // acceptance test, with the "special allowance" for valid ACKs and
        // RSTs when RCV.WND is zero (their data is then trimmed to nothing).
        let seg_len = seg.segment_len() as u32;
        let wnd = self.rx.free() as u32;
        let acceptable = match (seg_len, wnd) {
            (0, 0) => seq == self.rcv_nxt,
            (0, _) => seq.in_window(self.rcv_nxt, wnd),
            (_, 0) => seq == self.rcv_nxt,
            (_, _) => {
                seq.in_window(self.rcv_nxt, wnd)
                    || (seq + (seg_len - 1)).in_window(self.rcv_nxt, wnd)
            }
        };
        if !acceptable {
            if self.state == State::SynReceived
                && f.contains(TcpFlags::SYN)
                && !f.contains(TcpFlags::ACK)
                && seq == self.irs
            {
                // The peer's SYN again: our SYN-ACK was lost. The ACK that
                // §3.10.7.4 asks for carries no SYN and would be dropped in
                // SYN-SENT; send the SYN-ACK again instead (as Linux does).
                self.snd_nxt = self.iss;
                return Reaction::None;
            }
            // "If an incoming segment is not acceptable, an acknowledgment
            // should be sent in reply (unless the RST bit is set, if so
            // drop the segment and return)": an out-of-window RST is
            // ignored (RFC 5961 §3.2).
            if !f.contains(TcpFlags::RST) {
                self.ack_pending = true;
            }
            // §3.10.7.4 eighth, TIME-WAIT: a retransmitted FIN restarts
            // the 2 MSL timeout.
            if self.state == State::TimeWait && f.contains(TcpFlags::FIN) {
                self.linger_deadline = Some(now + self.time_wait);
            }
            return Reaction::None;
        }
        // RFC 7323 §4.3 (2): remember the peer's newest timestamp from a
        // segment that covers the left edge of the window.
        if let (true, Some(ts)) = (self.ts_enabled, seg.options.timestamps) {
            if seq.le(self.rcv_nxt) && SeqNumber(ts.tsval).ge(SeqNumber(self.ts_recent)) {
                self.ts_recent = ts.tsval;
            }
        }

        // §3.10.7.4 second: "check the RST bit". RFC 5961 §3.2: reset only
        // if SEG.SEQ exactly matches RCV.NXT; anywhere else in the window,
        // send a challenge ACK.
        if f.contains(TcpFlags::RST) {
            if seq != self.rcv_nxt {
                self.challenge_ack(now, stats);
                return Reaction::None;
            }
            self.reset_by_peer();
            return Reaction::None;
        }

        // §3.10.7.4 fourth: "check the SYN bit". RFC 5961 §4.2: in a
        // synchronized state (and SYN-RECEIVED), whatever its sequence
        // number, a SYN gets a challenge ACK and is dropped.
        if f.contains(TcpFlags::SYN) {
            self.challenge_ack(now, stats);
            return Reaction::None;
        }

        // §3.10.7.4 fifth: "if the ACK bit is off, drop the segment".
        if !f.contains(TcpFlags::ACK) {
            return Reaction::None;
        }
        let mut reaction = Reaction::None;
        if self.state == State::SynReceived {
            // SYN-RECEIVED: "If SND.UNA < SEG.ACK =< SND.NXT, then enter
            // ESTABLISHED state ... If the segment acknowledgment is not
            // acceptable, form a reset segment <SEQ=SEG.ACK><CTL=RST>".
            if !(self.snd_una.lt(ack) && ack.le(self.snd_max)) {
                return Reaction::Reset(ack);
            }
            // Linux: with the accept queue full, the final ACK is dropped
            // and counted; the SYN-ACK is sent again on its timer.
            if !accept_ok {
                stats.accept_queue_overflows += 1;
                return Reaction::AcceptQueueFull;
            }
            // A close before the handshake ended queued a FIN.
            self.state = if self.fin_queued {
                State::FinWait1
            } else {
                State::Established
            };
            self.snd_wnd = u32::from(seg.window_len) << self.snd_wscale;
            self.snd_wl1 = seq;
            self.snd_wl2 = ack;
            reaction = Reaction::Established;
        }
        // ESTABLISHED and on: "If the ACK acks something not yet sent
        // (SEG.ACK > SND.NXT), then send an ACK, drop the segment, and
        // return" (also RFC 5961 §5.2).
        if ack.gt(self.snd_max) {
            self.ack_pending = true;
            return reaction;
        }
        self.process_ack(now, seg, seq, ack, stats);
        match self.state {
            // FIN-WAIT-1: "if the FIN segment is now acknowledged, then
            // enter FIN-WAIT-2".
            State::FinWait1 if self.fin_acked => {
                self.state = State::FinWait2;
                if self.orphan {
                    self.linger_deadline = Some(now + self.fin_wait2_timeout);
                }
            }
            // CLOSING: "if the ACK acknowledges our FIN, then enter the
            // TIME-WAIT state".
            State::Closing if self.fin_acked => self.enter_time_wait(now),
            // LAST-ACK: "If our FIN is now acknowledged, delete the TCB,
            // enter the CLOSED state, and return."
            State::LastAck if self.fin_acked => {
                self.enter_closed(None);
                return reaction;
            }
            _ => {}
        }

        // §3.10.7.4 seventh: "process the segment text" in ESTABLISHED,
        // FIN-WAIT-1 and FIN-WAIT-2; in the other states "this should not
        // occur ... ignore the segment text".
        let fin_fits = if matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        ) {
            self.receive_data(now, seq, seg, stats)
        } else {
            false
        };

        // §3.10.7.4 eighth: "check the FIN bit". A FIN ahead of missing
        // data is remembered and takes effect when the hole fills.
        if f.contains(TcpFlags::FIN) {
            if fin_fits {
                self.rx_fin = Some(seq + seg.payload.len());
            }
            self.ack_pending = true;
            if self.state == State::TimeWait {
                self.linger_deadline = Some(now + self.time_wait);
            }
        }
        self.take_fin(now);
        reaction
    }

    /// §3.10.7.3, SYN-SENT.
    fn process_syn_sent(&mut self, now: Instant, seg: &TcpRepr<'_>) -> Reaction {
        let f = seg.flags;
        let seq = SeqNumber(seg.seq_number);
        let ack = SeqNumber(seg.ack_number);
        // First: "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset
        // (unless the RST bit is set, if so drop the segment and return)
        // <SEQ=SEG.ACK><CTL=RST>".
        let ack_ok = f.contains(TcpFlags::ACK) && self.iss.lt(ack) && ack.le(self.snd_max);
        if f.contains(TcpFlags::ACK) && !ack_ok {
            return if f.contains(TcpFlags::RST) {
                Reaction::None
            } else {
                Reaction::Reset(ack)
            };
        }
        // Second: "If the ACK was acceptable, then signal to the user
        // 'error: connection reset', drop the segment, enter CLOSED state
        // ... Otherwise (no ACK), drop the segment and return."
        if f.contains(TcpFlags::RST) {
            if ack_ok {
                self.enter_closed(Some(Error::ConnectionRefused));
            }
            return Reaction::None;
        }
        // Fourth: "check the SYN bit".
        if !f.contains(TcpFlags::SYN) {
            return Reaction::None;
        }
        self.irs = seq;
        self.rcv_nxt = seq + 1u32;
        self.negotiate(&seg.options);
        // RFC 7323 §2.2: the window of a SYN is not scaled.
        self.snd_wnd = u32::from(seg.window_len);
        self.snd_wl1 = seq;
        self.snd_wl2 = ack;
        self.ack_pending = true;
        if ack_ok {
            // "If SND.UNA > ISS (our SYN has been ACKed), change the
            // connection state to ESTABLISHED, form an ACK segment
            // <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> and send it."
            self.acknowledge_to(now, ack);
            self.state = State::Established;
            self.heard(now);
            Reaction::Established
        } else {
            // "Otherwise, enter SYN-RECEIVED, form a SYN,ACK segment
            // <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> and send it."
            // (simultaneous open, RFC 9293 §3.5 Figure 7)
            self.state = State::SynReceived;
            self.snd_nxt = self.iss;
            Reaction::None
        }
    }

    /// RFC 9293 §3.10.7.4 second, the RST arms.
    fn reset_by_peer(&mut self) {
        let error = match self.state {
            // SYN-RECEIVED: "If this connection was initiated with a
            // passive OPEN, then return this connection to the LISTEN
            // state" (here: the embryo is dropped, the listener stays);
            // "If ... active OPEN, then ... connection refused".
            State::SynReceived if self.passive => None,
            State::SynReceived => Some(Error::ConnectionRefused),
            // ESTABLISHED, FIN-WAIT-1, FIN-WAIT-2, CLOSE-WAIT: "any
            // outstanding RECEIVEs and SEND should receive 'reset'
            // responses ... enter the CLOSED state".
            State::Established | State::FinWait1 | State::FinWait2 | State::CloseWait => {
                Some(Error::ConnectionReset)
            }
            // CLOSING, LAST-ACK, TIME-WAIT: "enter the CLOSED state,
            // delete the TCB, and return".
            _ => None,
        };
        self.enter_closed(error);
    }

    /// RFC 5961 §3.2 and §4.2: `<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>`.
    ///
    /// RFC 5961 §7: challenge ACKs are rate limited, here per connection:
    /// at most `challenge_ack_limit` per second; the rest are counted and
    /// not sent.
    fn challenge_ack(&mut self, now: Instant, stats: &mut TcpStats) {
        if now.saturating_since(self.challenge_window) >= Duration::from_secs(1) {
            self.challenge_window = now;
            self.challenges = 0;
        }
        if self.challenges >= self.challenge_ack_limit {
            stats.challenge_acks_suppressed += 1;
            return;
        }
        self.challenges += 1;
        stats.challenge_acks += 1;
        self.ack_pending = true;
    }

    /// SND.UNA moves to `ack` (SND.UNA < ack =< SND.MAX): free what it
    /// covers, take an RTT sample, restart or stop the timer.
    fn acknowledge_to(&mut self, now: Instant, ack: SeqNumber) {
        if ack.gt(self.snd_una) {
            self.sacked.advance(ack.since(self.snd_una));
        }
        if ack.gt(self.tx_base) {
            let covered = ack.since(self.tx_base) as usize;
            let n = covered.min(self.tx.len());
            self.tx.discard(n);
            self.tx_base += n;
            if self.fin_queued && self.tx.is_empty() && covered > n {
                self.fin_acked = true;
            }
        }
        // RFC 6298 §3 (Karn): only a segment never retransmitted is timed.
        if let Some((end, sent)) = self.rtt_probe {
            if ack.ge(end) {
                self.rtt.sample(now - sent);
                self.rtt_probe = None;
            }
        }
        self.rtt.reset_backoff();
        self.retries = 0;
        self.snd_una = ack;
        self.snd_nxt = self.snd_nxt.max(ack);
        // RFC 6298 §5.2: "When all outstanding data has been acknowledged,
        // turn off the retransmission timer." §5.3: "When an ACK is
        // received that acknowledges new data, restart the retransmission
        // timer".
        self.rto_deadline = if self.snd_una == self.snd_max {
            None
        } else {
            Some(now + self.rtt.rto())
        };
    }

    /// §3.10.7.4 fifth, ESTABLISHED: SND.UNA, duplicate ACKs, the window.
    fn process_ack(
        &mut self,
        now: Instant,
        seg: &TcpRepr<'_>,
        seq: SeqNumber,
        ack: SeqNumber,
        stats: &mut TcpStats,
    ) {
        let wnd = u32::from(seg.window_len) << self.snd_wscale;
        let mss = self.mss as u32;
        // RFC 2018: remember what the peer holds beyond SND.UNA (offsets
        // from SND.UNA as it is before this ACK moves it).
        let mut newly_sacked = false;
        if self.sack_permitted && !seg.options.sack_blocks.is_empty() {
            let before = self.sacked.bytes();
            for &(l, r) in seg.options.sack_blocks.as_slice() {
                let (l, r) = (SeqNumber(l), SeqNumber(r));
                if l.ge(self.snd_una) && l.lt(r) && r.le(self.snd_max) {
                    let _ = self
                        .sacked
                        .add(l.since(self.snd_una), r.since(self.snd_una));
                }
            }
            newly_sacked = self.sacked.bytes() > before;
        }
        if ack.gt(self.snd_una) {
            // "If SND.UNA < SEG.ACK =< SND.NXT, then set SND.UNA <- SEG.ACK."
            let acked = ack.since(self.snd_una);
            self.acknowledge_to(now, ack);
            self.dupacks = 0;
            match self.recover {
                Some(recover) if ack.ge(recover) => {
                    // RFC 6582 §3.2 step 3, full acknowledgment.
                    self.recover = None;
                    if self.cc.in_fast_recovery() {
                        self.cc.on_full_ack();
                    } else {
                        self.cc.on_ack(acked, mss, now, self.srtt());
                    }
                }
                // RFC 6675: a partial ACK only updates the scoreboard and
                // the pipe; the send path picks what goes next.
                Some(_) if self.cc.in_fast_recovery() && self.sack_permitted => {}
                Some(_) if self.cc.in_fast_recovery() => {
                    // RFC 6582 §3.2 step 5, partial acknowledgment:
                    // "retransmit the first unacknowledged segment" (the
                    // next hole, with SACK).
                    self.rexmit_budget = (self.rexmit_budget + 1).min(MAX_REXMIT_BUDGET);
                    self.cc.on_partial_ack(acked, mss);
                }
                // Outside fast recovery (after a timeout, too: go-back-N
                // resends in order, the window opens again).
                _ => self.cc.on_ack(acked, mss, now, self.srtt()),
            }
        } else if ack == self.snd_una
            && self.snd_max != self.snd_una
            && (newly_sacked
                || (seg.payload.is_empty()
                    && !seg.flags.intersects(TcpFlags::SYN | TcpFlags::FIN)
                    && wnd == self.snd_wnd))
        {
            // RFC 5681 §2, "DUPLICATE ACKNOWLEDGMENT" (all five
            // conditions), or RFC 6675 §2's "DupAck": the ACK SACKs bytes
            // not SACKed before, whatever else it carries. (Data moving
            // both ways would otherwise never count a duplicate: every ACK
            // rides on data, and each loss would cost a timeout.)
            self.dupacks += 1;
            if self.dupacks == DUPACK_THRESHOLD && self.recover.is_none() {
                stats.fast_retransmits += 1;
                self.enter_recovery(mss);
            } else if self.dupacks > DUPACK_THRESHOLD && !self.sack_permitted {
                self.cc.on_dupack(mss);
            }
        }
        // RFC 6675 §5 step 4: "(b) ... IsLost (HighACK + 1) returns true"
        // starts loss recovery too, before the third duplicate.
        if self.recover.is_none()
            && self.sack_permitted
            && self.snd_max != self.snd_una
            && self.is_lost(0)
        {
            stats.fast_retransmits += 1;
            self.enter_recovery(mss);
        }
        // "If SND.UNA =< SEG.ACK =< SND.NXT, the send window should be
        // updated. If (SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and SND.WL2
        // =< SEG.ACK)), set SND.WND <- SEG.WND, set SND.WL1 <- SEG.SEQ, and
        // set SND.WL2 <- SEG.ACK."
        if ack.ge(self.snd_una)
            && (self.snd_wl1.lt(seq) || (self.snd_wl1 == seq && self.snd_wl2.le(ack)))
        {
            self.snd_wnd = wnd;
            self.snd_wl1 = seq;
            self.snd_wl2 = ack;
        }
        // The peer answers the zero-window probes: never give up on it
        // (RFC 9293 §3.8.6.1, MUST-8).
        if self.snd_wnd == 0 {
            self.retries = 0;
        }
    }

    /// Fast retransmit: RFC 6582 §3.2 step 2, recover <- the highest
    /// sequence number sent; with SACK, RFC 6675 §5 step 4 (RecoveryPoint,
    /// cwnd = ssthresh, and the send path retransmits by the scoreboard);
    /// without, RFC 5681 §3.2 (the first unacknowledged segment again,
    /// window inflation).
    fn enter_recovery(&mut self, mss: u32) {
        let flight = self.snd_max.since(self.snd_una);
        self.recover = Some(self.snd_max);
        self.rexmit_next = self.snd_una;
        if self.sack_permitted {
            self.cc.on_sack_recovery(flight, mss);
            self.rescued = false;
        } else {
            self.cc.on_fast_retransmit(flight, mss);
            self.rexmit_budget = 1;
        }
    }

    /// §3.10.7.4 seventh: place the text in the receive ring, in order or
    /// ahead of a hole. Returns whether all of the text fitted (so that a
    /// FIN after it may count).
    fn receive_data(
        &mut self,
        now: Instant,
        seq: SeqNumber,
        seg: &TcpRepr<'_>,
        stats: &mut TcpStats,
    ) -> bool {
        let payload = seg.payload;
        if payload.is_empty() {
            return true;
        }
        // In-order data that fills no hole may wait for a delayed ACK;
        // everything else is acknowledged at once (RFC 5681 §4.2).
        let filling = !self.assembler.is_empty();
        let mut delay = seq == self.rcv_nxt && !filling;
        if !delay {
            self.ack_pending = true;
        }
        // Trim what was already received (§3.10.7.4: "segments with higher
        // beginning sequence numbers may be held for later processing").
        let ahead = seq - self.rcv_nxt;
        let (skip, offset) = if ahead < 0 {
            (ahead.unsigned_abs() as usize, 0usize)
        } else {
            (0, ahead as usize)
        };
        let Some(data) = payload.get(skip..) else {
            return true;
        };
        if self.rd_shut {
            // Read side shut: acknowledge and throw away.
            self.rcv_nxt += data.len();
            return true;
        }
        let written = self.rx.write_at(offset, data);
        if written < data.len() {
            // Beyond the window: say so now.
            delay = false;
            self.ack_pending = true;
        }
        if written == 0 {
            return data.is_empty();
        }
        if offset == 0 {
            self.rx.commit(written);
            self.rcv_nxt += written;
            self.assembler.advance(written as u32);
        } else {
            let start = offset as u32;
            if self.assembler.add(start, start + written as u32).is_err() {
                stats.out_of_order_dropped += 1;
                return false;
            }
            stats.out_of_order += 1;
            self.last_out_of_order = self.rcv_nxt + offset;
            self.acks_owed = (self.acks_owed + 1).min(MAX_ACKS_OWED);
        }
        let more = self.assembler.take_front() as usize;
        if more > 0 {
            self.rx.commit(more);
            self.rcv_nxt += more;
        }
        if delay {
            self.delay_ack(now);
        }
        written == data.len()
    }

    /// RFC 5681 §4.2 / RFC 1122 §4.2.3.2: an ACK may wait (at most the
    /// configured delay, 40 ms by default, below the 500 ms the RFCs allow)
    /// for data to ride on, but "an ACK SHOULD be generated for at least
    /// every second full-sized segment".
    fn delay_ack(&mut self, now: Instant) {
        match self.delayed_ack {
            Some(d) if (self.rcv_nxt.since(self.last_ack_sent) as usize) < 2 * self.mss => {
                if self.delack_deadline.is_none() {
                    self.delack_deadline = Some(now + d);
                }
            }
            _ => self.ack_pending = true,
        }
    }

    /// A remembered FIN whose turn has come: §3.10.7.4 eighth.
    fn take_fin(&mut self, now: Instant) {
        if self.rx_fin != Some(self.rcv_nxt) {
            return;
        }
        self.rx_fin = None;
        // "advance RCV.NXT over the FIN, and send an acknowledgment for
        // the FIN"; "signal the user 'connection closing'".
        self.rcv_nxt += 1u32;
        self.rx_eof = true;
        self.ack_pending = true;
        match self.state {
            // SYN-RECEIVED, ESTABLISHED: "Enter the CLOSE-WAIT state."
            State::SynReceived | State::Established => self.state = State::CloseWait,
            // FIN-WAIT-1: "If our FIN has been ACKed ..., then enter
            // TIME-WAIT, start the time-wait timer ...; otherwise, enter the
            // CLOSING state."
            State::FinWait1 if self.fin_acked => self.enter_time_wait(now),
            State::FinWait1 => self.state = State::Closing,
            // FIN-WAIT-2: "Enter the TIME-WAIT state. Start the time-wait
            // timer".
            State::FinWait2 => self.enter_time_wait(now),
            _ => {}
        }
    }

    // ---- timeouts (RFC 9293 §3.10.8) ----

    /// Run the timers that are due at `now`.
    pub fn on_timer(&mut self, now: Instant, stats: &mut TcpStats) {
        if self.delack_deadline.is_some_and(|t| t <= now) {
            // The delayed ACK is due.
            self.delack_deadline = None;
            self.ack_pending = true;
        }
        if self.linger_deadline.is_some_and(|t| t <= now) {
            // "TIME-WAIT TIMEOUT: If the time-wait timeout expires on a
            // connection, delete the TCB, enter the CLOSED state"; an
            // orphan's FIN-WAIT-2 timeout (Linux tcp_fin_timeout) too.
            self.enter_closed(None);
            return;
        }
        if self.keepalive_deadline.is_some_and(|t| t <= now) {
            self.on_keepalive_timer(now, stats);
            if self.state == State::Closed {
                return;
            }
        }
        let Some(deadline) = self.rto_deadline else {
            return;
        };
        if deadline > now {
            return;
        }
        let outstanding = self.snd_una != self.snd_max;
        let unsent = self.text_at(self.snd_max, 1).is_some();
        if self.snd_wnd == 0 && self.state.is_synchronized() && (unsent || outstanding) {
            // RFC 9293 §3.8.6.1: the window is zero: the timer is the
            // persist timer, and its expiry sends a probe (the first byte
            // not acknowledged). MUST-8: never give up while the peer
            // answers, so no retry is counted.
            stats.window_probes += 1;
            self.probe_zero_window = true;
            self.snd_nxt = self.snd_una;
            self.rtt_probe = None;
            self.rtt.back_off();
            self.rto_deadline = Some(now + self.rtt.rto());
            return;
        }
        if !outstanding {
            // §3.8.6.2.1 (4): "the override timeout occurs": send what the
            // small window takes.
            if self.sws_held && unsent {
                self.sws_override = true;
            }
            self.rto_deadline = None;
            return;
        }
        // "RETRANSMISSION TIMEOUT": give up after the configured retries
        // (RFC 9293 §3.8.3, R2; Linux's tcp_syn_retries / tcp_retries2).
        self.retries += 1;
        let limit = if self.state.is_synchronized() {
            self.max_retries
        } else {
            self.syn_retries
        };
        if self.retries > limit {
            stats.timeouts += 1;
            let error = (!self.passive || self.state.is_synchronized()).then_some(Error::TimedOut);
            self.enter_closed(error);
            return;
        }
        stats.rto_expiries += 1;
        // RFC 6298 §5.4: "Retransmit the earliest segment that has not been
        // acknowledged" (here everything from it: go-back-N); §5.5: back
        // off; §5.6: restart the timer.
        let flight = self.snd_max.since(self.snd_una);
        self.cc
            .on_timeout(flight, self.mss as u32, self.retries == 1);
        self.snd_nxt = self.snd_una;
        self.rtt.back_off();
        self.rtt_probe = None;
        self.dupacks = 0;
        // RFC 6582 §4: after a timeout, no fast retransmit until what was
        // sent before it is acknowledged.
        self.recover = Some(self.snd_max);
        self.rto_deadline = Some(now + self.rtt.rto());
    }

    /// RFC 1122 §4.2.3.6: an idle connection gets a probe, "a segment
    /// with SEG.SEQ = SND.NXT-1" and no data (Linux: SND.UNA - 1), which
    /// the peer answers with an ACK; after `probes` unanswered ones, Linux
    /// sends a reset and the connection fails with ETIMEDOUT. While data
    /// is in flight or queued, retransmission covers the peer instead.
    fn on_keepalive_timer(&mut self, now: Instant, stats: &mut TcpStats) {
        let Some(k) = self.keepalive else {
            self.keepalive_deadline = None;
            return;
        };
        if !matches!(self.state, State::Established | State::CloseWait) {
            self.keepalive_deadline = None;
            return;
        }
        let busy = self.snd_una != self.snd_max || self.text_at(self.snd_max, 1).is_some();
        if busy {
            self.keepalive_sent = 0;
            self.keepalive_deadline = Some(now + k.idle);
            return;
        }
        if self.keepalive_sent >= k.probes {
            stats.keepalive_timeouts += 1;
            self.rst_pending = true;
            self.enter_closed(Some(Error::TimedOut));
            return;
        }
        self.keepalive_sent += 1;
        self.keepalive_pending = true;
        stats.keepalive_probes += 1;
        self.keepalive_deadline = Some(now + k.interval);
    }

    // ---- what to send ----

    fn tsval(&self, now: Instant) -> u32 {
        (now.millis() as u32).wrapping_add(self.ts_offset)
    }

    /// The window to advertise, in bytes (before scaling).
    fn advertised_window_bytes(&self) -> u32 {
        let free = self.rx.free().min(usize::from(u16::MAX) << self.rcv_wscale);
        // Scaling drops low bits: never advertise past the free room.
        ((free >> self.rcv_wscale) << self.rcv_wscale) as u32
    }

    fn segment<'a>(
        &self,
        now: Instant,
        flags: TcpFlags,
        seq: SeqNumber,
        payload: &'a [u8],
    ) -> TcpRepr<'a> {
        let syn = flags.contains(TcpFlags::SYN);
        let mut options = TcpOptions::default();
        let window_len = if syn {
            // RFC 7323 §2.2: "The window field in a segment where the SYN
            // bit is set ... MUST NOT be scaled."
            options.mss = Some(self.local_mss);
            if self.offer_ws {
                options.window_scale = Some(self.rcv_wscale);
            }
            options.sack_permitted = self.sack_permitted;
            self.rx.free().min(usize::from(u16::MAX)) as u16
        } else {
            (self.advertised_window_bytes() >> self.rcv_wscale) as u16
        };
        if !syn && self.sack_permitted {
            options.sack_blocks = self.sack_blocks();
        }
        if self.ts_enabled {
            // RFC 7323 §3.2: TSecr echoes TS.Recent when ACK is set; 0 on
            // the initial SYN.
            let tsecr = if self.state == State::SynSent {
                0
            } else {
                self.ts_recent
            };
            options.timestamps = Some(Timestamps {
                tsval: self.tsval(now),
                tsecr,
            });
        }
        let ack_number = if flags.contains(TcpFlags::ACK) {
            self.rcv_nxt.0
        } else {
            0
        };
        TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            flags,
            seq_number: seq.0,
            ack_number,
            window_len,
            urgent_at: 0,
            options,
            payload,
        }
    }

    /// RFC 2018 §4: the data held beyond a hole, as SACK blocks, "the
    /// first SACK block ... MUST specify the contiguous block of data
    /// containing the segment which triggered this ACK" (here: the latest
    /// out-of-order segment), then the others, lowest first. The option
    /// carries 3 of them beside timestamps, 4 without.
    fn sack_blocks(&self) -> SackBlocks {
        let mut blocks = SackBlocks::default();
        let ranges = self.assembler.ranges();
        let to_seq = |(s, e): (u32, u32)| ((self.rcv_nxt + s).0, (self.rcv_nxt + e).0);
        let latest = self.last_out_of_order.since(self.rcv_nxt);
        let first = ranges.iter().position(|r| r.0 <= latest && latest < r.1);
        if let Some(i) = first {
            blocks.push(to_seq(ranges[i]));
        }
        for (i, r) in ranges.iter().enumerate() {
            if Some(i) != first && !blocks.push(to_seq(*r)) {
                break;
            }
        }
        blocks
    }

    /// Bookkeeping after a segment occupying `seq..seq+len` went out.
    fn on_sent(&mut self, now: Instant, seq: SeqNumber, len: usize, stats: &mut TcpStats) {
        if len > 0 {
            let end = seq + len;
            if seq.lt(self.snd_max) {
                stats.retransmits += 1;
                // Karn: a retransmission is never timed, nor what it overlaps.
                self.rtt_probe = None;
            } else if self.rtt_probe.is_none() {
                self.rtt_probe = Some((end, now));
            }
            self.snd_nxt = self.snd_nxt.max(end);
            self.snd_max = self.snd_max.max(end);
            // RFC 6298 §5.1: start the timer if it is not running.
            if self.rto_deadline.is_none() {
                self.rto_deadline = Some(now + self.rtt.rto());
            }
        }
        self.acked_now();
    }

    fn acked_now(&mut self) {
        self.ack_pending = false;
        self.delack_deadline = None;
        self.last_ack_sent = self.rcv_nxt;
        self.acks_owed = self.acks_owed.saturating_sub(1);
        self.rcv_adv = self.rcv_nxt + self.advertised_window_bytes();
    }

    /// Bytes queued from `seq` to the end of the send buffer.
    fn unsent_from(&self, seq: SeqNumber) -> usize {
        if seq.lt(self.tx_base) {
            return self.tx.len();
        }
        self.tx
            .len()
            .saturating_sub(seq.since(self.tx_base) as usize)
    }

    /// The data (and FIN) at `seq`, at most `max` bytes.
    fn text_at(&self, seq: SeqNumber, max: usize) -> Option<(&[u8], bool)> {
        if seq.lt(self.tx_base) {
            return None;
        }
        let offset = seq.since(self.tx_base) as usize;
        if offset > self.tx.len() || (offset == self.tx.len() && !self.fin_queued) {
            return None;
        }
        let chunk = self.tx.peek_at(offset);
        let n = chunk.len().min(max);
        let fin = self.fin_queued && offset + n == self.tx.len();
        if n == 0 && !fin {
            return None;
        }
        Some((&chunk[..n], fin))
    }

    /// Send what the connection has to send: a RST, a SYN or SYN-ACK, a
    /// retransmission, new data and FIN within the peer's window, ACKs.
    /// `emit` transmits one segment and returns `false` when the device is
    /// full; then `dispatch` returns `false` and is called again later.
    pub fn dispatch<F: FnMut(&TcpRepr<'_>) -> bool>(
        &mut self,
        now: Instant,
        stats: &mut TcpStats,
        mut emit: F,
    ) -> bool {
        if self.rst_pending {
            // RFC 9293 §3.10.5: <SEQ=SND.NXT><CTL=RST> (with ACK, as Linux).
            let rst = self.segment(now, TcpFlags::RST | TcpFlags::ACK, self.snd_nxt, &[]);
            let rst = TcpRepr {
                window_len: 0,
                options: TcpOptions::default(),
                ..rst
            };
            if !emit(&rst) {
                return false;
            }
            stats.resets_sent += 1;
            self.rst_pending = false;
            return true;
        }
        match self.state {
            State::SynSent | State::SynReceived if self.snd_nxt == self.iss => {
                let flags = if self.state == State::SynSent {
                    TcpFlags::SYN
                } else {
                    TcpFlags::SYN | TcpFlags::ACK
                };
                let syn = self.segment(now, flags, self.iss, &[]);
                if !emit(&syn) {
                    return false;
                }
                self.on_sent(now, self.iss, 1, stats);
            }
            State::Established
            | State::CloseWait
            | State::FinWait1
            | State::Closing
            | State::LastAck => {
                let sent_all = self.send_text(now, stats, &mut emit);
                if !sent_all {
                    return false;
                }
            }
            _ => {}
        }
        if self.keepalive_pending {
            // SND.UNA - 1, modulo 2^32.
            let probe = self.segment(now, TcpFlags::ACK, self.snd_una + u32::MAX, &[]);
            if !emit(&probe) {
                return false;
            }
            self.keepalive_pending = false;
        }
        while self.ack_pending || self.acks_owed > 0 {
            let seg = self.segment(now, TcpFlags::ACK, self.snd_nxt, &[]);
            if !emit(&seg) {
                return false;
            }
            self.acked_now();
        }
        true
    }

    fn send_text<F: FnMut(&TcpRepr<'_>) -> bool>(
        &mut self,
        now: Instant,
        stats: &mut TcpStats,
        emit: &mut F,
    ) -> bool {
        if self.sack_permitted && self.cc.in_fast_recovery() {
            return self.send_in_sack_recovery(now, stats, emit);
        }
        while self.rexmit_budget > 0 {
            // Fast retransmit, partial ACKs: the next hole, whatever
            // the window (it was in it when first sent).
            let Some((seq, hole)) = self.next_hole() else {
                self.rexmit_budget = 0;
                break;
            };
            if let Some((data, fin)) = self.text_at(seq, hole.min(self.payload_room())) {
                let seg = self.text_segment(now, seq, data, fin);
                if !emit(&seg) {
                    return false;
                }
                let len = data.len() + usize::from(fin);
                self.on_sent(now, seq, len, stats);
                self.rexmit_next = seq + len.max(1);
            } else {
                self.rexmit_next = seq + hole.max(1);
            }
            self.rexmit_budget -= 1;
        }
        self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
        self.sws_held = false;
        loop {
            // What the peer holds (SACKed) is not sent again after a
            // timeout.
            self.snd_nxt = self.skip_sacked(self.snd_nxt);
            // RFC 5681 §3.1: send no more than min(cwnd, rwnd) past SND.UNA;
            // RFC 3042 (limited transmit): one more segment for each of the
            // first two duplicate ACKs.
            let limited = if self.recover.is_none() && self.dupacks < DUPACK_THRESHOLD {
                self.dupacks * self.mss as u32
            } else {
                0
            };
            let cwnd = self.cc.window().saturating_add(limited);
            let window_end = self.snd_una + self.snd_wnd.min(cwnd);
            let mut room = if window_end.gt(self.snd_nxt) {
                window_end.since(self.snd_nxt) as usize
            } else {
                0
            };
            if room == 0 && self.probe_zero_window {
                room = 1;
            }
            let full = self.payload_room();
            // RFC 9293 §3.8.6.2.1 (sender SWS avoidance), with all data
            // pushed: send when a full segment fits the offered window,
            // when all the queued data does, or when half the largest
            // window ever offered does; else wait for the window to open,
            // or for the override timeout (the persist timer).
            let rwnd_end = self.snd_una + self.snd_wnd;
            let usable = if rwnd_end.gt(self.snd_nxt) {
                rwnd_end.since(self.snd_nxt) as usize
            } else {
                0
            };
            let queued = self.unsent_from(self.snd_nxt);
            if usable > 0
                && queued > usable
                && usable < full
                && usable < (self.max_snd_wnd / 2) as usize
                && !self.sws_override
            {
                self.sws_held = true;
                break;
            }
            let Some((data, fin)) = self.text_at(self.snd_nxt, room.min(full)) else {
                break;
            };
            // A FIN with no room left waits (it takes sequence space).
            if data.is_empty() && room == 0 && self.snd_wnd > 0 {
                break;
            }
            // RFC 9293 §3.7.4 (Nagle), when on: "If there is unacknowledged
            // data, then the sending TCP buffers all user data ... until
            // the TCP can send a full-sized segment."
            if self.nagle
                && data.len() < full
                && !fin
                && self.snd_una != self.snd_max
                && !self.probe_zero_window
            {
                break;
            }
            let seq = self.snd_nxt;
            let seg = self.text_segment(now, seq, data, fin);
            if !emit(&seg) {
                return false;
            }
            let len = data.len() + usize::from(fin);
            self.probe_zero_window = false;
            self.sws_override = false;
            self.on_sent(now, seq, len, stats);
            if fin {
                break;
            }
        }
        // RFC 9293 §3.8.6.1: data waits behind a zero window (or a window
        // too small to use, §3.8.6.2.1) and nothing is in flight: the timer
        // becomes the persist timer.
        if (self.snd_wnd == 0 || self.sws_held)
            && self.snd_una == self.snd_max
            && self.text_at(self.snd_nxt, 1).is_some()
            && self.rto_deadline.is_none()
        {
            self.rto_deadline = Some(now + self.rtt.rto());
        }
        true
    }

    /// Payload bytes that fit in one segment now: the MSS less what the
    /// SACK blocks add to the options (the MSS already leaves room for
    /// timestamps). As Linux's `tcp_current_mss`: a full segment with
    /// SACK blocks beside it would exceed the path's MTU, and a device
    /// drops such a frame without a trace.
    fn payload_room(&self) -> usize {
        if !self.sack_permitted || self.assembler.is_empty() {
            return self.mss;
        }
        let with = TcpOptions {
            timestamps: self.ts_enabled.then_some(Timestamps { tsval: 0, tsecr: 0 }),
            sack_blocks: self.sack_blocks(),
            ..TcpOptions::default()
        };
        let without = if self.ts_enabled { TS_OPTION_LEN } else { 0 };
        self.mss.saturating_sub(with.buffer_len() - without).max(1)
    }

    /// RFC 6675 §5 step 4.3 and (C): while "(cwnd - pipe) >= 1 SMSS",
    /// send the segment NextSeg () picks: (1) the first lost hole not yet
    /// retransmitted, (2) new data the receive window takes, (3) the first
    /// hole not yet retransmitted below SACKed data, (4) once per recovery,
    /// a rescue retransmission of the highest unSACKed segment.
    fn send_in_sack_recovery<F: FnMut(&TcpRepr<'_>) -> bool>(
        &mut self,
        now: Instant,
        stats: &mut TcpStats,
        emit: &mut F,
    ) -> bool {
        let mss = self.mss as u32;
        loop {
            if self.pipe().saturating_add(mss) > self.cc.window() {
                return true;
            }
            let room = self.payload_room();
            let rx = self.rexmit_next.max(self.snd_una).since(self.snd_una);
            let rwnd_end = self.snd_una + self.snd_wnd;
            let new_room = if rwnd_end.gt(self.snd_max) {
                (rwnd_end.since(self.snd_max) as usize).min(room)
            } else {
                0
            };
            let has_new = new_room > 0 && self.text_at(self.snd_max, new_room).is_some();
            let (seq, max, rexmit) = if let Some((at, len)) = self.hole_from(rx, true) {
                (self.snd_una + at, len as usize, true)
            } else if has_new {
                (self.snd_max, new_room, false)
            } else if let Some((at, len)) = self.hole_from(rx, false) {
                (self.snd_una + at, len as usize, true)
            } else if let Some((at, len)) = self.rescue() {
                self.rescued = true;
                (self.snd_una + at, len as usize, false)
            } else {
                return true;
            };
            let Some((data, fin)) = self.text_at(seq, max.min(room)) else {
                return true;
            };
            let seg = self.text_segment(now, seq, data, fin);
            if !emit(&seg) {
                return false;
            }
            let len = data.len() + usize::from(fin);
            self.on_sent(now, seq, len, stats);
            if rexmit {
                self.rexmit_next = self.rexmit_next.max(seq + len.max(1));
            }
        }
    }

    /// RFC 6675 §4 IsLost: the unSACKed byte at offset `at` (from
    /// SND.UNA) is presumed lost when "DupThresh discontiguous SACKed
    /// sequences" lie above it, or more than "(DupThresh - 1) * SMSS bytes
    /// ... have been SACKed" above it.
    fn is_lost(&self, at: u32) -> bool {
        let (mut blocks, mut bytes) = (0u32, 0u32);
        for &(start, end) in self.sacked.ranges() {
            if start > at {
                blocks += 1;
                bytes += end - start;
            }
        }
        blocks >= DUPACK_THRESHOLD || bytes > (DUPACK_THRESHOLD - 1) * self.mss as u32
    }

    /// RFC 6675 §4 SetPipe: the bytes presumed in the network. Each
    /// unSACKed byte counts once unless presumed lost, and once more if it
    /// was retransmitted in this recovery.
    fn pipe(&self) -> u32 {
        let outstanding = self.snd_max.since(self.snd_una);
        let rx = self
            .rexmit_next
            .max(self.snd_una)
            .since(self.snd_una)
            .min(outstanding);
        let ranges = self.sacked.ranges();
        let (mut pipe, mut at) = (0u32, 0u32);
        for i in 0..=ranges.len() {
            let end = ranges.get(i).map_or(outstanding, |r| r.0.min(outstanding));
            if at < end {
                if !self.is_lost(at) {
                    pipe += end - at;
                }
                if rx > at {
                    pipe += rx.min(end) - at;
                }
            }
            if let Some(r) = ranges.get(i) {
                at = at.max(r.1);
            }
        }
        pipe
    }

    /// The first unSACKed bytes at or after offset `from` that lie below
    /// SACKed data (and, with `lost_only`, are presumed lost), as (offset,
    /// length) from SND.UNA.
    fn hole_from(&self, from: u32, lost_only: bool) -> Option<(u32, u32)> {
        let mut at = 0u32;
        for &(start, end) in self.sacked.ranges() {
            let first = at.max(from);
            if first < start {
                // Holes further up have less SACKed above them: if this one
                // is not lost, none after it is.
                return (!lost_only || self.is_lost(first)).then_some((first, start - first));
            }
            at = at.max(end);
        }
        None
    }

    /// RFC 6675 §4 NextSeg rule 4: once per recovery, up to a segment that
    /// ends at the highest unSACKed byte outstanding, when nothing else
    /// may go.
    fn rescue(&self) -> Option<(u32, u32)> {
        let recovering = self.recover.is_some_and(|r| self.snd_una.lt(r));
        if self.rescued || !recovering {
            return None;
        }
        let outstanding = self.snd_max.since(self.snd_una);
        let top = self.sacked.ranges().last().map_or(0, |r| r.1);
        (top < outstanding).then(|| {
            let start = top.max(outstanding.saturating_sub(self.mss as u32));
            (start, outstanding - start)
        })
    }

    /// The first hole at or after `rexmit_next`: bytes not acknowledged
    /// nor SACKed, below data the peer SACKed (so presumed lost); without
    /// SACK information, the first unacknowledged segment only (NewReno).
    fn next_hole(&self) -> Option<(SeqNumber, usize)> {
        let outstanding = self.snd_max.since(self.snd_una);
        let mut at = self.rexmit_next.max(self.snd_una).since(self.snd_una);
        for &(start, end) in self.sacked.ranges() {
            if at < start {
                return Some((self.snd_una + at, (start - at) as usize));
            }
            at = at.max(end);
        }
        (at == 0 && outstanding > 0).then_some((self.snd_una, outstanding as usize))
    }

    /// `seq`, or the end of the SACKed range it falls in.
    fn skip_sacked(&self, seq: SeqNumber) -> SeqNumber {
        if seq.lt(self.snd_una) {
            return seq;
        }
        let at = seq.since(self.snd_una);
        match self.sacked.ranges().iter().find(|r| r.0 <= at && at < r.1) {
            Some(&(_, end)) => self.snd_una + end,
            None => seq,
        }
    }

    fn text_segment<'a>(
        &self,
        now: Instant,
        seq: SeqNumber,
        data: &'a [u8],
        fin: bool,
    ) -> TcpRepr<'a> {
        let mut flags = TcpFlags::ACK;
        if !data.is_empty() {
            flags = flags | TcpFlags::PSH;
        }
        if fin {
            flags = flags | TcpFlags::FIN;
        }
        self.segment(now, flags, seq, data)
    }
}
