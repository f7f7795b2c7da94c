//! Listeners, by (protocol, local address, local port), with the wildcard
//! fallback of a socket bound to 0.0.0.0 or `::`.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{FlowHasher, InsertError, Table};
use crate::wire::IpProtocol;

/// Where a listener waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenKey {
    /// TCP (or UDP, for a datagram socket bound to a port).
    pub protocol: IpProtocol,
    /// The bound address, or unspecified (0.0.0.0, `::`) for every address.
    pub addr: IpAddr,
    /// The bound port.
    pub port: u16,
}

impl ListenKey {
    fn wildcard(&self) -> ListenKey {
        let addr = match self.addr {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        ListenKey { addr, ..*self }
    }
}

/// Listeners. A lookup tries the exact address first and then the wildcard
/// address of the same family, which is how the kernel picks between a
/// socket bound to 198.18.0.1:80 and one bound to 0.0.0.0:80 (the more
/// specific wins). An IPv6 wildcard does not catch IPv4 here: there are no
/// dual-stack sockets in this stack.
#[derive(Debug, Clone)]
pub struct ListenTable<V> {
    table: Table<ListenKey, V>,
}

impl<V> ListenTable<V> {
    /// Room for `capacity` listeners, allocated now.
    pub fn with_capacity(capacity: usize, hasher: FlowHasher) -> ListenTable<V> {
        ListenTable {
            table: Table::with_capacity(capacity, hasher),
        }
    }

    /// Add or replace a listener; returns the replaced one.
    pub fn insert(&mut self, key: ListenKey, value: V) -> Result<Option<V>, InsertError> {
        self.table.insert(key, value)
    }

    /// Remove a listener by its exact key.
    pub fn remove(&mut self, key: &ListenKey) -> Option<V> {
        self.table.remove(key)
    }

    /// The listener bound to exactly `key`.
    pub fn get_exact(&self, key: &ListenKey) -> Option<&V> {
        self.table.get(key)
    }

    /// The listener for a segment to `key`: bound to its address, else to
    /// the wildcard.
    pub fn lookup(&self, key: &ListenKey) -> Option<&V> {
        self.table
            .get(key)
            .or_else(|| self.table.get(&key.wildcard()))
    }

    /// Mutable [`lookup`](Self::lookup).
    pub fn lookup_mut(&mut self, key: &ListenKey) -> Option<&mut V> {
        let key = if self.table.contains_key(key) {
            *key
        } else {
            key.wildcard()
        };
        self.table.get_mut(&key)
    }

    /// Listeners held.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// No listeners.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(addr: [u8; 4], port: u16) -> ListenKey {
        ListenKey {
            protocol: IpProtocol::TCP,
            addr: IpAddr::V4(Ipv4Addr::from(addr)),
            port,
        }
    }

    #[test]
    fn specific_beats_wildcard() {
        let mut t = ListenTable::with_capacity(8, FlowHasher::new([9; 4]));
        t.insert(key([0, 0, 0, 0], 80), "any").unwrap();
        t.insert(key([198, 18, 0, 1], 80), "one").unwrap();
        assert_eq!(t.lookup(&key([198, 18, 0, 1], 80)), Some(&"one"));
        assert_eq!(t.lookup(&key([198, 18, 0, 2], 80)), Some(&"any"));
        assert_eq!(t.lookup(&key([198, 18, 0, 2], 81)), None);
        let udp = ListenKey {
            protocol: IpProtocol::UDP,
            ..key([198, 18, 0, 1], 80)
        };
        assert_eq!(t.lookup(&udp), None);
        *t.lookup_mut(&key([198, 18, 0, 9], 80)).unwrap() = "any2";
        assert_eq!(t.get_exact(&key([0, 0, 0, 0], 80)), Some(&"any2"));
        assert_eq!(t.remove(&key([198, 18, 0, 1], 80)), Some("one"));
        assert_eq!(t.lookup(&key([198, 18, 0, 1], 80)), Some(&"any2"));
        let v6 = ListenKey {
            addr: "2001:db8::1".parse().unwrap(),
            ..key([0; 4], 80)
        };
        assert_eq!(t.lookup(&v6), None);
    }
}
