//! What each side of a run reports: the server's and the load generator's
//! counters, per thread and summed, whichever path (kernel or bypass)
//! produced them. The engines fill them; measurement and results read them.

use serde::{Deserialize, Serialize};

/// What the server counted, summed over its threads.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServerCounters {
    pub accepted: u64,
    pub closed: u64,
    pub requests: u64,
    pub bad_requests: u64,
    /// HTTP requests refused for their size: a head over the limit (431)
    /// or a declared body over it (413).
    #[serde(default)]
    pub oversized_requests: u64,
    /// Connections the server closed because the peer sent nothing for
    /// `--idle-timeout`.
    #[serde(default)]
    pub idle_timeouts: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub stream_verify_errors: u64,
    pub udp_in: u64,
    pub udp_out: u64,
    pub udp_measured_in: u64,
    pub udp_runts: u64,
    /// Connections the peer reset (ECONNRESET, EPIPE): how a client such as
    /// wrk leaves when it stops, not a fault of the server.
    #[serde(default)]
    pub peer_resets: u64,
    /// Other failed socket calls.
    pub io_errors: u64,
}

impl ServerCounters {
    /// One datagram answered: counted out with its bytes, or as an I/O error.
    pub(crate) fn reply<E>(&mut self, sent: Result<(), E>, len: usize) {
        match sent {
            Ok(()) => {
                self.udp_out += 1;
                self.bytes_out += len as u64;
            }
            Err(_) => self.io_errors += 1,
        }
    }

    pub(crate) fn add(&mut self, o: &ServerCounters) {
        self.accepted += o.accepted;
        self.closed += o.closed;
        self.requests += o.requests;
        self.bad_requests += o.bad_requests;
        self.oversized_requests += o.oversized_requests;
        self.idle_timeouts += o.idle_timeouts;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.stream_verify_errors += o.stream_verify_errors;
        self.udp_in += o.udp_in;
        self.udp_out += o.udp_out;
        self.udp_measured_in += o.udp_measured_in;
        self.udp_runts += o.udp_runts;
        self.peer_resets += o.peer_resets;
        self.io_errors += o.io_errors;
    }

    /// A connection ended by a failed socket call: a reset by the peer, or
    /// another error.
    pub(crate) fn lost(&mut self, reset_by_peer: bool) {
        if reset_by_peer {
            self.peer_resets += 1;
        } else {
            self.io_errors += 1;
        }
    }
}

/// One server thread's outcome (its recorder: the receive-side
/// measurements of stream and udp-stream; its `extra`: the bypass path's
/// work time, XSK and XDP statistics and the stack's counters).
pub type ServerThreadResult = crate::metrics::ThreadResult<ServerCounters>;

/// Everything the server threads report when they end.
pub type ServerReport = crate::metrics::Outcome<ServerCounters>;

/// What the load generator counted, summed over its threads.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientCounters {
    pub connects: u64,
    pub connect_errors: u64,
    pub io_errors: u64,
    pub protocol_errors: u64,
    /// udp-rr requests that got no answer in time.
    pub udp_timeouts: u64,
    /// udp-rr answers that came after their timeout.
    pub udp_late: u64,
    /// Datagrams (udp-stream) or requests sent in total, and inside the window.
    pub sent: u64,
    pub sent_measured: u64,
    /// udp-stream datagrams the socket refused (send buffer full).
    pub send_refused: u64,
    /// Connects refused for want of a free local port (every ephemeral port
    /// held by a connection or a TIME-WAIT): the generator's own limit.
    #[serde(default)]
    pub ports_exhausted: u64,
    /// `--hold`: the idle connections held open when the window closed,
    /// when it opened, and those lost on the way (failed, or closed by
    /// the server).
    #[serde(default)]
    pub held: u64,
    #[serde(default)]
    pub held_at_t0: u64,
    #[serde(default)]
    pub hold_lost: u64,
    /// Milliseconds from the first held connection's SYN to the last one's
    /// handshake (the slowest shard's; 0: never all held).
    #[serde(default)]
    pub hold_fill_ms: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
}

impl ClientCounters {
    pub(crate) fn add(&mut self, o: &ClientCounters) {
        self.connects += o.connects;
        self.connect_errors += o.connect_errors;
        self.io_errors += o.io_errors;
        self.protocol_errors += o.protocol_errors;
        self.udp_timeouts += o.udp_timeouts;
        self.udp_late += o.udp_late;
        self.sent += o.sent;
        self.sent_measured += o.sent_measured;
        self.send_refused += o.send_refused;
        self.ports_exhausted += o.ports_exhausted;
        self.held += o.held;
        self.held_at_t0 += o.held_at_t0;
        self.hold_lost += o.hold_lost;
        self.hold_fill_ms = self.hold_fill_ms.max(o.hold_fill_ms);
        self.bytes_out += o.bytes_out;
        self.bytes_in += o.bytes_in;
    }
}

/// One load-generator thread's outcome (its `extra`: the bypass client's
/// stack, socket and program counters, reported as `client.<name>`).
pub type ClientThreadResult = crate::metrics::ThreadResult<ClientCounters>;

/// Every load-generator thread's outcome.
pub type ClientReport = crate::metrics::Outcome<ClientCounters>;
