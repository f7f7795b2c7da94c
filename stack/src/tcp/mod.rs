//! TCP: sequence arithmetic, the states, the retransmission timer and the
//! connection state machine (one [`Tcb`] per connection).
//!
//! The state machine follows RFC 9293 §3.10 event by event ("SEGMENT
//! ARRIVES" is [`Tcb::process`], the timeouts are [`Tcb::on_timer`], what a
//! connection sends is [`Tcb::dispatch`]); each arm cites the clause it
//! implements, with RFC 5961 for the blind-attack checks, RFC 6298 for the
//! timer, RFC 7323 for window scaling and timestamps and RFC 6528 for the
//! initial sequence number. Listening (SYN and accept queues) and
//! demultiplexing live in [`crate::iface`].

mod congestion;
mod cookie;
mod isn;
mod rtt;
mod seq;
mod state;
mod tcb;

pub use congestion::{Algorithm, Congestion};
pub use cookie::{CookieOptions, SynCookies, MSS_TABLE};
pub use isn::IsnGenerator;
pub use rtt::RttEstimator;
pub use seq::SeqNumber;
pub use state::State;
pub use tcb::{Endpoints, Reaction, Tcb, TcpStats};

use core::time::Duration;

/// Per-connection settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpConfig {
    /// Receive ring, bytes (allocated when the connection is made).
    pub rx_buffer: usize,
    /// Send ring, bytes.
    pub tx_buffer: usize,
    /// Offer window scaling (RFC 7323 §2).
    pub window_scaling: bool,
    /// Offer timestamps (RFC 7323 §3).
    pub timestamps: bool,
    /// Offer SACK-permitted (RFC 2018 §2). Only negotiated in this slice:
    /// SACK blocks are neither sent nor used yet.
    pub sack_permitted: bool,
    /// RTO before any measurement (RFC 6298 §2.1: 1 s).
    pub rto_initial: Duration,
    /// Lower bound of the RTO (RFC 6298 §2.4 says 1 s, and allows less;
    /// Linux uses 200 ms).
    pub rto_min: Duration,
    /// Upper bound of the RTO (RFC 6298 §2.5: at least 60 s).
    pub rto_max: Duration,
    /// Retransmissions of a SYN or SYN-ACK before giving up (Linux
    /// `tcp_syn_retries`, 6).
    pub syn_retries: u32,
    /// Retransmissions of data before giving up (Linux `tcp_retries2`, 15).
    pub retries: u32,
    /// How long TIME-WAIT lasts: 2*MSL (RFC 9293 §3.4.2; Linux uses 60 s).
    pub time_wait: Duration,
    /// How old a TIME-WAIT must be before our own `connect` takes over its
    /// 4-tuple, timestamps on (Linux `tcp_tw_reuse` with
    /// `tcp_tw_reuse_delay`, 1 s).
    pub tw_reuse_delay: Duration,
    /// How long a closed socket waits in FIN-WAIT-2 for the peer's FIN
    /// (Linux `tcp_fin_timeout`, 60 s).
    pub fin_wait2_timeout: Duration,
    /// Challenge ACKs per connection per second, at most (RFC 5961 §7).
    pub challenge_ack_limit: u32,
    /// Delay an ACK of in-order data by at most this, for data to ride on
    /// (RFC 1122 §4.2.3.2, RFC 5681 §4.2; every second full-sized segment
    /// is acknowledged at once); `None` acknowledges every batch at once.
    pub delayed_ack: Option<Duration>,
    /// Congestion control: NewReno (the default) or CUBIC.
    pub congestion: Algorithm,
    /// Nagle's algorithm (RFC 9293 §3.7.4): hold a small segment while
    /// data is unacknowledged. Off by default (`TCP_NODELAY`), as a
    /// benchmark wants.
    pub nagle: bool,
    /// Keepalive (RFC 9293 §3.8.4, RFC 1122 §4.2.3.6): off by default, as
    /// the RFCs require; [`Keepalive::LINUX`] gives Linux's values.
    pub keepalive: Option<Keepalive>,
}

/// When to probe an idle connection, and when to give up on it
/// (`SO_KEEPALIVE` with `TCP_KEEPIDLE`, `TCP_KEEPINTVL`, `TCP_KEEPCNT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Nothing heard from the peer for this long, and nothing in flight:
    /// the first probe goes (RFC 1122: "MUST default to no less than two
    /// hours").
    pub idle: Duration,
    /// Between unanswered probes.
    pub interval: Duration,
    /// Unanswered probes before the connection is reset and fails with
    /// ETIMEDOUT.
    pub probes: u32,
}

impl Keepalive {
    /// Linux's defaults: `tcp_keepalive_time` 7200 s, `tcp_keepalive_intvl`
    /// 75 s, `tcp_keepalive_probes` 9.
    pub const LINUX: Keepalive = Keepalive {
        idle: Duration::from_secs(7200),
        interval: Duration::from_secs(75),
        probes: 9,
    };
}

impl Default for TcpConfig {
    fn default() -> TcpConfig {
        TcpConfig {
            rx_buffer: 64 * 1024,
            tx_buffer: 64 * 1024,
            window_scaling: true,
            timestamps: true,
            sack_permitted: true,
            rto_initial: Duration::from_secs(1),
            rto_min: Duration::from_millis(200),
            rto_max: Duration::from_secs(60),
            syn_retries: 6,
            retries: 15,
            time_wait: Duration::from_secs(60),
            tw_reuse_delay: Duration::from_secs(1),
            fin_wait2_timeout: Duration::from_secs(60),
            challenge_ack_limit: 10,
            delayed_ack: Some(Duration::from_millis(40)),
            nagle: false,
            congestion: Algorithm::NewReno,
            keepalive: None,
        }
    }
}
