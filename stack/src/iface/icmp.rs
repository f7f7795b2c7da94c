//! ICMP on the interface (RFC 792, RFC 1122 §3.2.2): echo requests are
//! answered, destination unreachable messages counted, and a datagram to a
//! closed port gets a port unreachable (within the rules of
//! [`crate::icmp`] and its rate limit). Replies go back to the MAC their
//! request came from.

use super::Inner;
use crate::frame::Transport;
use crate::icmp;
use crate::wire::icmp::unreachable;
use crate::wire::{EthernetRepr, Icmpv4Repr, Ipv4Packet, Ipv4Repr};

impl Inner {
    pub(super) fn icmp_input(&mut self, eth: EthernetRepr, ip: Ipv4Repr, msg: Icmpv4Repr<'_>) {
        match msg {
            Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => {
                // RFC 1122 §3.2.2.6: an echo request to a broadcast MAY be
                // silently discarded.
                if !eth.dst_addr.is_unicast() {
                    self.counters.not_for_us += 1;
                    return;
                }
                // RFC 1122 §3.2.2.6: every host MUST implement an echo
                // server; the reply carries the request's identifier,
                // sequence number and data unchanged (RFC 792).
                let reply = Icmpv4Repr::EchoReply {
                    ident,
                    seq_no,
                    data,
                };
                self.counters.icmp_echo_replied += 1;
                self.egress.stage_reply(
                    eth.src_addr,
                    (ip.dst_addr, ip.src_addr),
                    Transport::Icmpv4(reply),
                    &mut self.counters,
                );
            }
            Icmpv4Repr::DstUnreachable { .. } => self.counters.icmp_unreachable_received += 1,
            _ => self.counters.unhandled += 1,
        }
    }

    /// RFC 1122 §4.1.3.1: a datagram to a port with no socket SHOULD get
    /// an ICMP port unreachable; §3.2.2 says when an error MUST NOT be
    /// sent, and lets us limit their rate.
    pub(super) fn port_unreachable(&mut self, raw: &[u8], eth: EthernetRepr, ip: Ipv4Repr) {
        if !icmp::may_answer_with_error(eth.dst_addr, ip.src_addr, ip.dst_addr, self.cfg.prefix_len)
        {
            return;
        }
        if !self.icmp_errors.allow(self.now) {
            self.counters.port_unreachable_suppressed += 1;
            return;
        }
        // RFC 792: quote the IP header and at least 64 bits of data; RFC
        // 1122 §3.2.2: as much as fits in 576 bytes.
        let ip_bytes = raw.get(eth.buffer_len()..).unwrap_or(&[]);
        let total = Ipv4Packet::new_checked(ip_bytes).map_or(0, |p| usize::from(p.total_len()));
        let quote = total
            .min(ip_bytes.len())
            .min(icmp::MAX_ERROR_DATAGRAM - 20 - 8);
        let error = Icmpv4Repr::DstUnreachable {
            code: unreachable::PORT,
            next_hop_mtu: 0,
            invoking: &ip_bytes[..quote],
        };
        self.counters.port_unreachable_sent += 1;
        self.egress.stage_reply(
            eth.src_addr,
            (ip.dst_addr, ip.src_addr),
            Transport::Icmpv4(error),
            &mut self.counters,
        );
    }
}
