//! Ephemeral (client) ports.
//!
//! The search follows RFC 6056 §3.3.3 ("Algorithm 3: Simple Hash-Based
//! Ephemeral Port Selection"): each (local address, remote address, remote
//! port) starts at its own secret offset — so ports are not guessable from
//! outside — and a global counter moves on after each try, so consecutive
//! connections to one server get different ports. A port is taken only if
//! its 5-tuple is not in use, which is what lets a client open far more
//! than 16384 connections in total while never reusing a live tuple.
//!
//! With an [`RssQueue`], only ports whose reply the NIC would hash to the
//! wanted receive queue are taken: the way mTCP keeps a client connection on
//! the core that opened it, so its replies never cross cores.

use core::net::IpAddr;

use super::{FlowHasher, FlowKey, Toeplitz};

/// First ephemeral port by default (RFC 6335 §6: the Dynamic Ports,
/// 49152-65535).
pub const EPHEMERAL_FIRST: u16 = 49152;
/// Last ephemeral port by default.
pub const EPHEMERAL_LAST: u16 = 65535;
#[cfg(test)]
const COUNT: u32 = (EPHEMERAL_LAST - EPHEMERAL_FIRST) as u32 + 1;

/// The receive queue a reply must land on, and how the NIC picks queues.
#[derive(Debug, Clone, Copy)]
pub struct RssQueue<'a> {
    /// The NIC's Toeplitz hash (its key).
    pub toeplitz: &'a Toeplitz,
    /// The NIC's indirection table: entry `hash % len` is the queue.
    pub indirection: &'a [u16],
    /// The queue wanted.
    pub queue: u16,
}

impl RssQueue<'_> {
    fn queue_of(&self, hash: u32) -> Option<u16> {
        if self.indirection.is_empty() {
            return None;
        }
        self.indirection
            .get(hash as usize % self.indirection.len())
            .copied()
    }
}

/// The allocator. One per shard; deterministic given its secret.
#[derive(Debug, Clone)]
pub struct EphemeralPorts {
    hasher: FlowHasher,
    /// RFC 6056 `next_ephemeral`.
    next: u32,
    first: u16,
    count: u32,
}

impl EphemeralPorts {
    /// An allocator over the Dynamic Ports (49152-65535) whose offsets are
    /// keyed by `hasher`'s secret.
    pub fn new(hasher: FlowHasher) -> EphemeralPorts {
        EphemeralPorts::with_range(hasher, EPHEMERAL_FIRST..=EPHEMERAL_LAST)
    }

    /// An allocator over `range` (Linux's `ip_local_port_range`; a
    /// benchmark client wants all of 1024-65535). An empty range, or one
    /// that includes port 0, is taken as the default.
    pub fn with_range(hasher: FlowHasher, range: core::ops::RangeInclusive<u16>) -> EphemeralPorts {
        let (first, last) = if range.is_empty() || *range.start() == 0 {
            (EPHEMERAL_FIRST, EPHEMERAL_LAST)
        } else {
            (*range.start(), *range.end())
        };
        EphemeralPorts {
            hasher,
            next: 0,
            first,
            count: u32::from(last - first) + 1,
        }
    }

    /// A local port for a socket bound without one (a UDP `bind` to port
    /// 0), which has no peer to hash: the next port of the range, by the
    /// counter connections share, that `in_use` says is free. `None` when
    /// every port is taken.
    pub fn allocate_local(&mut self, mut in_use: impl FnMut(u16) -> bool) -> Option<u16> {
        for _ in 0..self.count {
            let port = self.first + (self.next % self.count) as u16;
            self.next = self.next.wrapping_add(1);
            if !in_use(port) {
                return Some(port);
            }
        }
        None
    }

    /// A local port for a connection from `local_addr` to
    /// `remote_addr:remote_port`, whose 5-tuple `in_use` says is free, and,
    /// with `rss`, whose reply lands on `rss.queue`. `None` when every port
    /// is taken (or none hashes to the queue).
    ///
    /// `in_use` is asked about each candidate (typically the flow table's
    /// `contains_key`, plus whatever the TCP layer keeps in TIME-WAIT).
    pub fn allocate(
        &mut self,
        protocol: crate::wire::IpProtocol,
        local_addr: IpAddr,
        remote_addr: IpAddr,
        remote_port: u16,
        mut in_use: impl FnMut(&FlowKey) -> bool,
        rss: Option<&RssQueue<'_>>,
    ) -> Option<u16> {
        let word = (u64::from(protocol.0) << 16) | u64::from(remote_port);
        let offset = self.hasher.hash_words(local_addr, remote_addr, word) as u32;
        // The reply comes from remote to local: its hash with our port at 0,
        // and where the port goes (the hash is linear in it).
        let v4 = matches!((local_addr, remote_addr), (IpAddr::V4(_), IpAddr::V4(_)));
        let rss_base = rss.map(|r| {
            r.toeplitz
                .hash_tuple(remote_addr, local_addr, Some((remote_port, 0)))
        });
        for _ in 0..self.count {
            let port = self.first + (offset.wrapping_add(self.next) % self.count) as u16;
            self.next = self.next.wrapping_add(1);
            if let (Some(r), Some(base)) = (rss, rss_base) {
                let part = r
                    .toeplitz
                    .hash_at(&port.to_be_bytes(), Toeplitz::dst_port_offset_bits(v4));
                if r.queue_of(base ^ part) != Some(r.queue) {
                    continue;
                }
            }
            let key = FlowKey {
                protocol,
                local_addr,
                local_port: port,
                remote_addr,
                remote_port,
            };
            if !in_use(&key) {
                return Some(port);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FlowTable;
    use crate::wire::IpProtocol;

    const LOCAL: &str = "198.18.0.2";
    const REMOTE: &str = "198.18.0.1";

    fn addrs() -> (IpAddr, IpAddr) {
        (LOCAL.parse().unwrap(), REMOTE.parse().unwrap())
    }

    #[test]
    fn a_configured_range_is_used_whole_and_only() {
        let (l, r) = addrs();
        let hasher = FlowHasher::new([6; 4]);
        let mut ports = EphemeralPorts::with_range(hasher, 1024..=1100);
        let mut taken = std::collections::BTreeSet::new();
        while let Some(p) = ports.allocate(
            IpProtocol::TCP,
            l,
            r,
            80,
            |k| taken.contains(&k.local_port),
            None,
        ) {
            assert!((1024..=1100).contains(&p), "{p}");
            assert!(taken.insert(p));
        }
        assert_eq!(taken.len(), 77);
    }

    #[test]
    fn never_reuses_a_tuple_in_use_and_runs_out_cleanly() {
        let (l, r) = addrs();
        let hasher = FlowHasher::new([5; 4]);
        let mut ports = EphemeralPorts::new(hasher);
        let mut flows = FlowTable::with_capacity(COUNT as usize + 8, hasher);
        for _ in 0..COUNT {
            let p = ports
                .allocate(IpProtocol::TCP, l, r, 80, |k| flows.contains_key(k), None)
                .unwrap();
            assert!(p >= EPHEMERAL_FIRST);
            let key = FlowKey {
                protocol: IpProtocol::TCP,
                local_addr: l,
                local_port: p,
                remote_addr: r,
                remote_port: 80,
            };
            assert_eq!(flows.insert(key, ()), Ok(None), "port {p} handed out twice");
        }
        assert_eq!(
            ports.allocate(IpProtocol::TCP, l, r, 80, |k| flows.contains_key(k), None),
            None
        );
        // Another server port has its own 5-tuples: ports are free again.
        assert!(ports
            .allocate(IpProtocol::TCP, l, r, 81, |k| flows.contains_key(k), None)
            .is_some());
    }

    #[test]
    fn offsets_differ_per_destination_and_secret() {
        let (l, r) = addrs();
        let first = |secret: u64, rport: u16| {
            EphemeralPorts::new(FlowHasher::new([secret; 4])).allocate(
                IpProtocol::TCP,
                l,
                r,
                rport,
                |_| false,
                None,
            )
        };
        assert_ne!(first(1, 80), first(1, 443));
        assert_ne!(first(1, 80), first(2, 80));
    }

    #[test]
    fn rss_steers_the_reply_to_the_queue() {
        let (l, r) = addrs();
        let toeplitz = Toeplitz::new(Toeplitz::MICROSOFT_KEY);
        // Four queues, round-robin over a 128-entry table, as drivers default to.
        let indirection: Vec<u16> = (0..128).map(|i| i % 4).collect();
        let mut ports = EphemeralPorts::new(FlowHasher::new([11; 4]));
        for queue in 0..4 {
            let rss = RssQueue {
                toeplitz: &toeplitz,
                indirection: &indirection,
                queue,
            };
            for _ in 0..50 {
                let p = ports
                    .allocate(IpProtocol::TCP, l, r, 80, |_| false, Some(&rss))
                    .unwrap();
                let h = toeplitz.hash_tuple(r, l, Some((80, p)));
                assert_eq!(indirection[h as usize % 128], queue);
            }
        }
        let none = RssQueue {
            toeplitz: &toeplitz,
            indirection: &indirection,
            queue: 9,
        };
        assert_eq!(
            ports.allocate(IpProtocol::TCP, l, r, 80, |_| false, Some(&none)),
            None
        );
    }
}
