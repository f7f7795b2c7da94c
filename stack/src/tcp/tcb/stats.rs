//! What a connection reports: the interface's TCP counters and what it must
//! do after a segment.

use crate::tcp::SeqNumber;

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
    /// SYNs and cookie ACKs dropped because the socket table (the
    /// interface's `max_sockets`) or the flow table was full: the peer's
    /// retransmission gets in once a connection has gone.
    pub table_full: u64,
    /// SYN-ACKs sent with a SYN cookie.
    pub syn_cookies_sent: u64,
    /// Connections made from a valid cookie ACK.
    pub syn_cookies_accepted: u64,
    /// ACKs to a listener that were not valid cookies (answered with RST).
    pub syn_cookies_failed: u64,
    /// Resets sent.
    pub resets_sent: u64,
    /// Segments for no connection and no listener (the CLOSED state's
    /// reset, RFC 9293 §3.10.7.1): a port scan, a peer that lost its
    /// state, or on a multi-queue NIC a reply that RSS sent to the queue of
    /// another shard.
    pub no_connection: u64,
    /// Connections reset because data came after their user closed them
    /// (Linux `TCPAbortOnData`).
    pub aborts_on_data: u64,
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

impl TcpStats {
    /// Every counter with its name, for reports (a field left out of the
    /// list fails to compile).
    pub fn named(&self) -> Vec<(&'static str, u64)> {
        let TcpStats {
            retransmits,
            rto_expiries,
            fast_retransmits,
            challenge_acks,
            challenge_acks_suppressed,
            out_of_order,
            out_of_order_dropped,
            accept_queue_overflows,
            syn_queue_overflows,
            table_full,
            syn_cookies_sent,
            syn_cookies_accepted,
            syn_cookies_failed,
            resets_sent,
            no_connection,
            aborts_on_data,
            paws_drops,
            window_probes,
            timeouts,
            time_wait_overflows,
            time_wait_reused,
            keepalive_probes,
            keepalive_timeouts,
        } = *self;
        vec![
            ("retransmits", retransmits),
            ("rto_expiries", rto_expiries),
            ("fast_retransmits", fast_retransmits),
            ("challenge_acks", challenge_acks),
            ("challenge_acks_suppressed", challenge_acks_suppressed),
            ("out_of_order", out_of_order),
            ("out_of_order_dropped", out_of_order_dropped),
            ("accept_queue_overflows", accept_queue_overflows),
            ("syn_queue_overflows", syn_queue_overflows),
            ("table_full", table_full),
            ("syn_cookies_sent", syn_cookies_sent),
            ("syn_cookies_accepted", syn_cookies_accepted),
            ("syn_cookies_failed", syn_cookies_failed),
            ("resets_sent", resets_sent),
            ("no_connection", no_connection),
            ("aborts_on_data", aborts_on_data),
            ("paws_drops", paws_drops),
            ("window_probes", window_probes),
            ("timeouts", timeouts),
            ("time_wait_overflows", time_wait_overflows),
            ("time_wait_reused", time_wait_reused),
            ("keepalive_probes", keepalive_probes),
            ("keepalive_timeouts", keepalive_timeouts),
        ]
    }
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
