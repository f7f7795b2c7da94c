//! `run --hold N`: idle connections a bypass client shard opens beside the
//! measured ones and holds open through the window, so that the server is
//! measured holding them. They come from the shard's aliases in turn (each
//! address has the whole port range to the server: 32 of them hold about
//! 2 M), a bounded number of handshakes at a time (a flood of SYNs would
//! only measure the server's SYN queue), carry no data, and end with a
//! reset.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::ops::RangeInclusive;
use std::time::Instant;

use stack::phy::Device;
use stack::{Event, Interface, Readiness, SocketHandle};

use crate::metrics::Window;
use crate::outcome::ClientCounters;

/// Handshakes in flight at most: under the server's SYN backlog (128), so
/// that opening the hold never turns into a SYN flood of its own, and
/// under the frames a stack holds for one hop while it resolves the server.
const IN_FLIGHT: usize = 48;

/// The held connections of one shard.
pub struct Hold {
    want: usize,
    addrs: Vec<Ipv4Addr>,
    /// The address the next connection comes from (index into `addrs`).
    next: usize,
    /// Each held connection, and whether its handshake is done.
    conns: HashMap<SocketHandle, bool>,
    connecting: usize,
    established: u64,
    /// Held connections that failed or that the server closed.
    lost: u64,
    /// Every address's ports are taken: nothing more can be opened.
    exhausted: bool,
    at_t0: Option<u64>,
    /// The first SYN, and how long until all were held.
    began: Option<Instant>,
    filled: Option<std::time::Duration>,
}

impl Hold {
    /// `want` connections from the addresses of `aliases` (none: no hold).
    pub fn new(want: usize, aliases: Option<&RangeInclusive<Ipv4Addr>>) -> Hold {
        let addrs: Vec<Ipv4Addr> = aliases
            .map(|r| (r.start().to_bits()..=r.end().to_bits()).map(Ipv4Addr::from_bits))
            .into_iter()
            .flatten()
            .collect();
        Hold {
            want: if addrs.is_empty() { 0 } else { want },
            addrs,
            next: 0,
            conns: HashMap::with_capacity(want),
            connecting: 0,
            established: 0,
            lost: 0,
            exhausted: false,
            at_t0: None,
            began: None,
            filled: None,
        }
    }

    /// Opens what is missing, while handshakes in flight allow.
    pub fn open_more<D: Device>(&mut self, iface: &mut Interface<D>, server: SocketAddrV4) {
        let mut full_in_a_row = 0;
        while !self.exhausted && self.conns.len() < self.want && self.connecting < IN_FLIGHT {
            let addr = self.addrs[self.next % self.addrs.len()];
            self.next = self.next.wrapping_add(1);
            let Ok(h) = iface.socket() else { return };
            match iface.connect_from(h, addr, server) {
                Ok(()) => {
                    full_in_a_row = 0;
                    self.began.get_or_insert_with(Instant::now);
                    self.conns.insert(h, false);
                    self.connecting += 1;
                }
                Err(e) => {
                    let _ = iface.close(h);
                    if e != stack::Error::AddrNotAvailable {
                        return; // the table is full: try again next round
                    }
                    full_in_a_row += 1;
                    self.exhausted = full_in_a_row >= self.addrs.len();
                }
            }
        }
    }

    /// Takes `ev` if it is a held connection's: its handshake done, or its
    /// end (a failure, or the server closing it), which is counted as lost.
    pub fn on_event<D: Device>(&mut self, iface: &mut Interface<D>, ev: &Event) -> bool {
        let Some(up) = self.conns.get_mut(&ev.handle) else {
            return false;
        };
        let ended = ev.readiness.contains(Readiness::ERROR)
            || ev.readiness.contains(Readiness::CLOSED)
            || (ev.readiness.contains(Readiness::READABLE)
                && matches!(iface.recv(ev.handle, &mut [0u8; 64]), Ok(0) | Err(_)));
        if ended {
            if *up {
                self.established -= 1;
            } else {
                self.connecting -= 1;
            }
            self.lost += 1;
            self.conns.remove(&ev.handle);
            let _ = iface.close(ev.handle);
        } else if ev.readiness.contains(Readiness::CONNECTED) && !*up {
            *up = true;
            self.connecting -= 1;
            self.established += 1;
            if self.established as usize == self.want && self.filled.is_none() {
                self.filled = self.began.map(|t| t.elapsed());
            }
        }
        true
    }

    /// Notes how many were held when the window opened.
    pub fn tick(&mut self, w: &Window, now: Instant) {
        if self.at_t0.is_none() && now >= w.t0 {
            self.at_t0 = Some(self.established);
        }
    }

    /// Adds what the hold counted to the shard's counters.
    pub fn report(&self, c: &mut ClientCounters) {
        c.held += self.established;
        c.held_at_t0 += self.at_t0.unwrap_or(self.established);
        c.hold_lost += self.lost;
        c.hold_fill_ms = c
            .hold_fill_ms
            .max(self.filled.map_or(0, |d| d.as_millis() as u64));
    }

    /// Ends every held connection with a reset (at the end of the run):
    /// the server frees each at once, with no FIN of its own to
    /// retransmit to addresses whose stack is gone.
    pub fn close_all<D: Device>(&mut self, iface: &mut Interface<D>) {
        for (h, _) in self.conns.drain() {
            let _ = iface.abort(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_come_from_the_aliases_and_no_aliases_hold_nothing() {
        let r = Ipv4Addr::new(198, 18, 0, 200)..=Ipv4Addr::new(198, 18, 0, 231);
        let h = Hold::new(1000, Some(&r));
        assert_eq!(h.addrs.len(), 32);
        assert_eq!(h.addrs[31], Ipv4Addr::new(198, 18, 0, 231));
        assert_eq!(Hold::new(1000, None).want, 0);
    }
}
