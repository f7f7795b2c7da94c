//! Socket slots, and the kinds of socket a slot holds: a listener, a TCP
//! connection or a UDP socket.

use core::net::SocketAddrV4;
use std::collections::VecDeque;

use super::event::Readiness;
use crate::flow::ListenKey;
use crate::storage::SlotRing;
use crate::tcp::{State, Tcb};
use crate::time::Instant;

/// A socket's name: a slot index and the slot's generation, so that a
/// handle kept after `close` never reaches the slot's next occupant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketHandle {
    index: u32,
    gen: u32,
}

impl SocketHandle {
    pub(super) fn new(index: u32, gen: u32) -> SocketHandle {
        SocketHandle { index, gen }
    }

    pub(super) fn index(self) -> usize {
        self.index as usize
    }

    pub(super) fn gen(self) -> u32 {
        self.gen
    }
}

#[derive(Debug)]
pub(super) struct Slot {
    pub(super) gen: u32,
    pub(super) socket: Option<Socket>,
}

/// A listener's two queues (RFC 9293 §3.10.7.2 leaves them to the
/// implementation; this is the Linux shape).
#[derive(Debug)]
pub(super) struct Listener {
    /// Connections in SYN-RECEIVED.
    pub(super) syn_queue: usize,
    /// Established connections not accepted yet, at most `backlog`.
    pub(super) accept_queue: VecDeque<super::SocketHandle>,
    backlog: usize,
}

impl Listener {
    pub(super) fn new(backlog: usize) -> Listener {
        Listener {
            syn_queue: 0,
            accept_queue: VecDeque::with_capacity(backlog),
            backlog,
        }
    }

    pub(super) fn has_room(&self) -> bool {
        self.accept_queue.len() < self.backlog
    }

    /// A child finished its handshake: from the SYN queue to the accept
    /// queue.
    pub(super) fn established(&mut self, child: SocketHandle) {
        self.syn_queue = self.syn_queue.saturating_sub(1);
        self.accept_queue.push_back(child);
    }

    /// A child died before being accepted.
    pub(super) fn forget(&mut self, child: SocketHandle) {
        if let Some(at) = self.accept_queue.iter().position(|c| *c == child) {
            self.accept_queue.remove(at);
        } else {
            self.syn_queue = self.syn_queue.saturating_sub(1);
        }
    }
}

/// A bound UDP socket: its receive queue, one datagram a slot with its
/// sender, allocated at `bind`.
#[derive(Debug)]
pub(super) struct UdpSocket {
    pub(super) rx: SlotRing<SocketAddrV4>,
    /// Datagrams lost because `rx` was full.
    pub(super) drops: u64,
}

#[derive(Debug)]
pub(super) enum Kind {
    /// A TCP socket neither listening nor connected.
    Idle,
    Listener(Listener),
    Tcb(Box<Tcb>),
    /// A UDP socket (`SOCK_DGRAM`): unbound until `bind`.
    Udp(Option<UdpSocket>),
}

#[derive(Debug)]
pub(super) struct Socket {
    pub(super) kind: Kind,
    /// Its entry in the port table, if bound.
    pub(super) bound: Option<ListenKey>,
    /// The listener that made it, until accepted.
    pub(super) parent: Option<SocketHandle>,
    /// The connection holds its entry in the flow table.
    pub(super) in_flows: bool,
    /// A user holds the handle (not closed, and accepted if passive).
    pub(super) user: bool,
    /// On the interface's touched list.
    pub(super) touched: bool,
    /// On the event queue.
    pub(super) queued: bool,
    /// Readiness last reported.
    pub(super) reported: Readiness,
    /// The earliest deadline it has in the timer queue.
    pub(super) timer_at: Option<Instant>,
}

impl Socket {
    pub(super) fn new(kind: Kind, user: bool) -> Socket {
        Socket {
            kind,
            bound: None,
            parent: None,
            in_flows: false,
            user,
            touched: false,
            queued: false,
            reported: Readiness::NONE,
            timer_at: None,
        }
    }

    pub(super) fn tcb(&self) -> Option<&Tcb> {
        match &self.kind {
            Kind::Tcb(t) => Some(t),
            _ => None,
        }
    }

    pub(super) fn tcb_mut(&mut self) -> Option<&mut Tcb> {
        match &mut self.kind {
            Kind::Tcb(t) => Some(t),
            _ => None,
        }
    }

    pub(super) fn udp_mut(&mut self) -> Option<&mut UdpSocket> {
        match &mut self.kind {
            Kind::Udp(u) => u.as_mut(),
            _ => None,
        }
    }

    pub(super) fn readiness(&self) -> Readiness {
        match &self.kind {
            Kind::Idle | Kind::Udp(None) => Readiness::NONE,
            Kind::Udp(Some(u)) => {
                if u.rx.len() > 0 {
                    Readiness::READABLE | Readiness::WRITABLE
                } else {
                    Readiness::WRITABLE
                }
            }
            Kind::Listener(l) => {
                if l.accept_queue.is_empty() {
                    Readiness::NONE
                } else {
                    Readiness::ACCEPTABLE
                }
            }
            Kind::Tcb(t) => {
                let mut r = Readiness::NONE;
                if t.readable() {
                    r = r | Readiness::READABLE;
                }
                if t.writable() {
                    r = r | Readiness::WRITABLE;
                }
                if t.state().is_synchronized() && t.state() != State::TimeWait {
                    r = r | Readiness::CONNECTED;
                }
                if matches!(t.state(), State::Closed | State::TimeWait) {
                    r = r | Readiness::CLOSED;
                }
                if t.error().is_some() {
                    r = r | Readiness::ERROR;
                }
                r
            }
        }
    }
}
