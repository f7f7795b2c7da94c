//! Demultiplexing: which socket a received segment belongs to.
//!
//! - [`FlowKey`]: the 5-tuple, seen from this host (local and remote sides);
//! - [`FlowHasher`]: the keyed hash of a key, seeded with a per-process
//!   secret the caller draws at start-up, so that a remote peer cannot aim
//!   collisions at one bucket;
//! - [`Table`], [`FlowTable`]: an open-addressing table with preallocated
//!   capacity, no allocation on lookup, insert or remove, and a bounded probe
//!   length;
//! - [`ListenTable`]: listeners by (protocol, local address, local port),
//!   falling back to the wildcard address as the kernel does for a socket
//!   bound to 0.0.0.0;
//! - [`EphemeralPorts`]: client ports over 49152-65535 that never collide
//!   with a 5-tuple in use and can be chosen so that the reply hashes
//!   ([`Toeplitz`] RSS) to the receive queue of the core that connects.

mod ephemeral;
mod hash;
mod listen;
mod rss;
mod table;

pub use ephemeral::{EphemeralPorts, RssQueue, EPHEMERAL_FIRST, EPHEMERAL_LAST};
pub use hash::{FlowHasher, TableKey};
pub use listen::{ListenKey, ListenTable};
pub use rss::Toeplitz;
pub use table::{InsertError, Table, MAX_PROBE};

use core::net::IpAddr;

use crate::wire::IpProtocol;

/// The 5-tuple of a flow, from this host's side: `local` is where segments
/// arrive (their destination), `remote` where they come from.
///
/// It derives `Hash` so that ordinary maps can hold it too (the benchmarks
/// compare with them); the stack's own tables use [`FlowHasher`] instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// Transport protocol (TCP or UDP).
    pub protocol: IpProtocol,
    /// This host's address.
    pub local_addr: IpAddr,
    /// This host's port.
    pub local_port: u16,
    /// The peer's address.
    pub remote_addr: IpAddr,
    /// The peer's port.
    pub remote_port: u16,
}

impl FlowKey {
    /// The key of a segment received from `src` to `dst`: local is the
    /// destination.
    pub fn from_received(
        protocol: IpProtocol,
        src: IpAddr,
        src_port: u16,
        dst: IpAddr,
        dst_port: u16,
    ) -> FlowKey {
        FlowKey {
            protocol,
            local_addr: dst,
            local_port: dst_port,
            remote_addr: src,
            remote_port: src_port,
        }
    }

    /// The listener key this flow would be accepted by.
    pub fn listen_key(&self) -> ListenKey {
        ListenKey {
            protocol: self.protocol,
            addr: self.local_addr,
            port: self.local_port,
        }
    }
}

/// The table that maps established flows to their sockets.
pub type FlowTable<V> = Table<FlowKey, V>;

/// A TCP key to 198.18.0.1:80 from a remote that `i` numbers (address from
/// its high bits, port from its low 16): the tests' supply of distinct keys.
#[cfg(test)]
pub(crate) fn test_key(i: u32) -> FlowKey {
    use core::net::Ipv4Addr;
    FlowKey {
        protocol: IpProtocol::TCP,
        local_addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
        local_port: 80,
        remote_addr: IpAddr::V4(Ipv4Addr::from(0xc612_0000 | (i >> 16))),
        remote_port: i as u16,
    }
}
