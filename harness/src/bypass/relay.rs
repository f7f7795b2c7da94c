//! Neighbours passed between the shards of one side. Each shard's stack
//! resolves its peers by ARP, but an ARP frame lands on one receive queue
//! only (the NIC hashes it there, or veth puts it on the queue its sender
//! used), so the shard that learned a neighbour tells its siblings, over a
//! lock-free channel each: control traffic, a few messages per run, never
//! on the data path: a shard with siblings looks at its inbox once a
//! millisecond (an ARP retry is 100 ms away), a shard alone never.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use stack::wire::EthernetAddress;
use stack::Interface;

/// One shard's end of the mesh.
pub struct NeighbourRelay {
    inbox: Receiver<(Ipv4Addr, EthernetAddress)>,
    siblings: Vec<Sender<(Ipv4Addr, EthernetAddress)>>,
    /// When the next exchange is due.
    next: Option<Instant>,
}

/// How often a shard with siblings exchanges neighbours.
const EVERY: Duration = Duration::from_millis(1);

impl NeighbourRelay {
    /// One end per shard, each joined to every other.
    pub fn mesh(shards: usize) -> Vec<NeighbourRelay> {
        let (txs, rxs): (Vec<_>, Vec<_>) =
            (0..shards).map(|_| crossbeam_channel::bounded(256)).unzip();
        rxs.into_iter()
            .enumerate()
            .map(|(i, inbox)| NeighbourRelay {
                inbox,
                siblings: txs
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, t)| t.clone())
                    .collect(),
                next: None,
            })
            .collect()
    }

    /// Tells the siblings what `iface` learned by ARP since last time, and
    /// gives it what they learned, when an exchange is due at `now`. Call it
    /// after each poll.
    #[inline]
    pub fn exchange<D: stack::phy::Device>(&mut self, iface: &mut Interface<D>, now: Instant) {
        if self.siblings.is_empty() || self.next.is_some_and(|t| now < t) {
            return;
        }
        self.next = Some(now + EVERY);
        while let Some(n) = iface.take_learned() {
            for s in &self.siblings {
                // a full inbox means the sibling has not polled for a long
                // while: it will ask by ARP itself
                let _ = s.try_send(n);
            }
        }
        while let Ok((ip, mac)) = self.inbox.try_recv() {
            iface.learn_neighbour(ip, mac);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shard_hears_from_every_other_and_not_from_itself() {
        let mesh = NeighbourRelay::mesh(3);
        assert!(mesh.iter().all(|r| r.siblings.len() == 2));
        let n = (
            Ipv4Addr::new(198, 18, 0, 2),
            EthernetAddress([2, 0, 0, 0, 0, 2]),
        );
        for s in &mesh[0].siblings {
            s.try_send(n).unwrap();
        }
        assert!(mesh[0].inbox.try_recv().is_err());
        assert_eq!(mesh[1].inbox.try_recv().ok(), Some(n));
        assert_eq!(mesh[2].inbox.try_recv().ok(), Some(n));
    }
}
