//! IPv4 input: a packet to this interface's address goes to TCP, UDP or
//! ICMP; one to another address is not ours (the stack does not route).

use super::Inner;
use crate::frame::Transport;
use crate::wire::{EthernetRepr, Ipv4Repr};

impl Inner {
    pub(super) fn ipv4_input(
        &mut self,
        raw: &[u8],
        eth: EthernetRepr,
        ip: Ipv4Repr,
        transport: Transport<'_>,
    ) {
        if ip.dst_addr != self.cfg.addr {
            self.counters.not_for_us += 1;
            return;
        }
        match transport {
            // A segment sent as a link-layer broadcast is not for this host
            // (Linux drops TCP whose frame was not addressed to it).
            Transport::Tcp(_) if !eth.dst_addr.is_unicast() => self.counters.not_for_us += 1,
            Transport::Tcp(seg) => {
                self.counters.tcp_segments += 1;
                self.tcp_input(ip.src_addr, ip.dst_addr, &seg);
            }
            Transport::Udp(udp) => self.udp_input(raw, eth, ip, udp),
            Transport::Icmpv4(icmp) => self.icmp_input(eth, ip, icmp),
        }
    }
}
