//! A received frame's first stop: the parser names every malformation
//! (a counted drop), then the link layer keeps what is addressed to this
//! interface (its MAC or the broadcast, untagged) and hands it to ARP or
//! IPv4.

use super::Inner;
use crate::frame::{parse_frame, Network, Transport};
use crate::wire::Checksums;

impl Inner {
    /// One received frame: every outcome is counted once.
    pub(super) fn receive(&mut self, raw: &[u8]) {
        self.counters.rx_frames += 1;
        let Some(frame) = self
            .counters
            .parse
            .record(parse_frame(raw, self.cfg.checksums))
        else {
            return;
        };
        if self.cfg.checksums == Checksums::Trust
            && matches!(
                frame.network,
                Network::Ipv4(_, Transport::Tcp(_) | Transport::Udp(_))
            )
        {
            self.counters.checksums_trusted += 1;
        }
        let eth = frame.ethernet;
        if eth.dst_addr != self.cfg.mac && !eth.dst_addr.is_broadcast() {
            self.counters.not_for_us += 1;
            return;
        }
        if eth.vlan.is_some() {
            self.counters.unhandled += 1;
            return;
        }
        match frame.network {
            Network::Arp(arp) => self.arp_input(arp),
            Network::Ipv4(ip, transport) => self.ipv4_input(raw, eth, ip, transport),
            Network::Ipv6(..) => self.counters.unhandled += 1,
        }
    }
}
