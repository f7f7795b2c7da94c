//! What happened to the frames of one interface: every received frame ends
//! in exactly one counter, malformed ones by [`DropReason`](crate::DropReason).

use crate::Counters;

/// What happened to the frames, datagrams and neighbours of one
/// interface. Plain `u64`s: each shard owns its counters;
/// [`InterfaceCounters::merge`] sums shards.
///
/// Every frame taken from the device is in `rx_frames`; the parser accepts
/// it or drops it by reason (`parse`); each accepted one ends in exactly one
/// of `tcp_segments`, `rx_datagrams`, `socket_queue_full`, `too_big`,
/// `closed_port`, `not_for_us`, `unhandled`, `icmp_echo_replied`,
/// `icmp_unreachable_received`, `arp_requests_received`,
/// `arp_replies_received`, and the martians ([`InterfaceCounters::martians`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceCounters {
    /// Received frames: accepted by the parser, or dropped by reason.
    pub parse: Counters,
    /// Frames taken from the device.
    pub rx_frames: u64,
    /// TCP segments to this interface's address, handed to TCP (what TCP
    /// did with them is in [`TcpStats`](crate::tcp::TcpStats)).
    pub tcp_segments: u64,
    /// Datagrams queued to a UDP socket.
    pub rx_datagrams: u64,
    /// Payload bytes of those.
    pub rx_bytes: u64,
    /// Datagrams handed to the device (or to the queue waiting for ARP).
    pub tx_datagrams: u64,
    /// Payload bytes of those.
    pub tx_bytes: u64,
    /// Well-formed frames for another host (MAC or IP address).
    pub not_for_us: u64,
    /// Well-formed frames the interface has no use for: IPv6, VLAN-tagged,
    /// ICMP other than echo request and destination unreachable.
    pub unhandled: u64,
    /// Datagrams dropped because their socket's queue was full.
    pub socket_queue_full: u64,
    /// Datagrams dropped because they were longer than a queue slot (the
    /// MTU less 28).
    pub too_big: u64,
    /// Datagrams to a port with no UDP socket.
    pub closed_port: u64,
    /// ICMP port unreachable messages sent for them.
    pub port_unreachable_sent: u64,
    /// ... and not sent, because of the rate limit.
    pub port_unreachable_suppressed: u64,
    /// ICMP echo requests answered.
    pub icmp_echo_replied: u64,
    /// ICMP destination unreachable messages received (counted, not
    /// delivered to sockets).
    pub icmp_unreachable_received: u64,
    /// ARP requests for this interface's address received.
    pub arp_requests_received: u64,
    /// ARP replies to this interface received.
    pub arp_replies_received: u64,
    /// ARP requests sent (first tries, retries and refreshes).
    pub arp_requests_sent: u64,
    /// ARP replies sent.
    pub arp_replies_sent: u64,
    /// Frames dropped because their next hop's MAC could not be resolved.
    pub arp_failed: u64,
    /// Frames refused because the queue of frames waiting for ARP was full,
    /// or held its share for their next hop (half).
    pub arp_pending_full: u64,
    /// Frames that waited for ARP and went out once their next hop was
    /// resolved.
    pub arp_pending_sent: u64,
    /// TCP segments and UDP datagrams accepted without their checksum
    /// verified, because the interface trusts them (`Checksums::Trust`: a
    /// veth peer's partial checksums, a device that verified them).
    pub checksums_trusted: u64,
    /// ARP packets that named a known neighbour at another MAC: the entry
    /// was kept and re-validated (a forged reply, a gratuitous ARP, a moved
    /// peer), never overwritten by the packet.
    pub arp_conflicts: u64,
    /// Neighbours another shard of the same NIC learned by ARP and passed
    /// on ([`Interface::learn_neighbour`](super::Interface::learn_neighbour)).
    pub neighbours_relayed: u64,
    /// Times the device had no free transmit buffer (a send refused with
    /// EAGAIN, or a staged frame kept for the next poll).
    pub tx_no_buffer: u64,
    /// Frames the interface made itself (ARP, ICMP) and dropped because
    /// their staging ring was full.
    pub control_dropped: u64,
    /// IPv4 packets to us from a source that names no single remote host
    /// (RFC 1122 §3.2.1.3, as Linux drops them), by reason (multicast and
    /// limited-broadcast sources are the parser's: `non_unicast_source`):
    /// "this" network (0/8),
    pub martian_zero_net: u64,
    /// loopback (127/8),
    pub martian_loopback: u64,
    /// reserved (240/4),
    pub martian_reserved: u64,
    /// our subnet's broadcast,
    pub martian_broadcast: u64,
    /// our own address (a LAND packet).
    pub martian_own_address: u64,
    /// IPv4 packets with a source-route option (LSRR, SSRR), dropped as
    /// Linux does by default (`accept_source_route = 0`).
    pub source_routed: u64,
}

/// The plain `u64` counters, in report order: the one list that
/// [`InterfaceCounters::named`] and [`InterfaceCounters::merge`] expand.
macro_rules! plain_counters {
    ($m:ident) => {
        $m!(
            rx_frames,
            tcp_segments,
            rx_datagrams,
            rx_bytes,
            tx_datagrams,
            tx_bytes,
            not_for_us,
            unhandled,
            socket_queue_full,
            too_big,
            closed_port,
            port_unreachable_sent,
            port_unreachable_suppressed,
            icmp_echo_replied,
            icmp_unreachable_received,
            arp_requests_received,
            arp_replies_received,
            arp_requests_sent,
            arp_replies_sent,
            arp_failed,
            arp_pending_full,
            arp_pending_sent,
            checksums_trusted,
            arp_conflicts,
            neighbours_relayed,
            tx_no_buffer,
            control_dropped,
            martian_zero_net,
            martian_loopback,
            martian_reserved,
            martian_broadcast,
            martian_own_address,
            source_routed
        )
    };
}

impl InterfaceCounters {
    /// Each counter by name (the parse drops summed as `parse_dropped`),
    /// for reports.
    pub fn named(&self) -> Vec<(&'static str, u64)> {
        macro_rules! list {
            ($($f:ident),*) => {
                vec![("parse_dropped", self.parse.dropped()), $((stringify!($f), self.$f)),*]
            };
        }
        plain_counters!(list)
    }

    /// IPv4 packets dropped for their source address or a source route.
    pub fn martians(&self) -> u64 {
        self.martian_zero_net
            + self.martian_loopback
            + self.martian_reserved
            + self.martian_broadcast
            + self.martian_own_address
            + self.source_routed
    }

    /// Add another shard's counters to these.
    pub fn merge(&mut self, o: &InterfaceCounters) {
        self.parse.merge(&o.parse);
        macro_rules! add {
            ($($f:ident),*) => {
                $(self.$f = self.$f.wrapping_add(o.$f);)*
            };
        }
        plain_counters!(add);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_every_counter_and_named_lists_each_once() {
        let mut a = InterfaceCounters {
            rx_frames: 3,
            tcp_segments: 2,
            arp_failed: 1,
            ..InterfaceCounters::default()
        };
        let b = InterfaceCounters {
            rx_frames: 4,
            control_dropped: 5,
            ..InterfaceCounters::default()
        };
        a.merge(&b);
        assert_eq!((a.rx_frames, a.tcp_segments, a.arp_failed), (7, 2, 1));
        assert_eq!(a.control_dropped, 5);
        let names: std::collections::BTreeSet<_> = a.named().iter().map(|(n, _)| *n).collect();
        assert_eq!(names.len(), a.named().len(), "no name twice");
        let sum: u64 = a.named().iter().map(|(_, v)| v).sum();
        assert_eq!(sum, 7 + 2 + 1 + 5);
    }
}
