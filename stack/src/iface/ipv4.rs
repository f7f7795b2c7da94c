//! IPv4 input: a packet to this interface's address (or an alias) from a source that
//! names a single remote host, without a source route, goes to TCP, UDP or
//! ICMP; one to another address is not ours (the stack does not route).

use core::net::Ipv4Addr;

use super::counters::InterfaceCounters;
use super::{Inner, InterfaceConfig};
use crate::frame::Transport;
use crate::wire::{EthernetRepr, Ipv4Repr};

/// IPv4 option types of a source route: loose (LSRR) and strict (SSRR).
const LSRR: u8 = 0x83;
const SSRR: u8 = 0x89;

/// The counter of a source address that names no single remote host
/// (RFC 1122 §3.2.1.3), `None` for one that does.
fn martian<'c>(
    counters: &'c mut InterfaceCounters,
    src: Ipv4Addr,
    cfg: &InterfaceConfig,
) -> Option<&'c mut u64> {
    let own = cfg.addr;
    let host_bits = 32u32.saturating_sub(u32::from(cfg.prefix_len.min(32)));
    let subnet_broadcast = host_bits >= 2 && {
        let mask = ((1u64 << host_bits) - 1) as u32;
        u32::from(src) & !mask == u32::from(own) & !mask && u32::from(src) & mask == mask
    };
    let first = src.octets()[0];
    Some(if src.is_broadcast() || subnet_broadcast {
        &mut counters.martian_broadcast
    } else if first >= 240 {
        &mut counters.martian_reserved
    } else if first == 0 {
        &mut counters.martian_zero_net
    } else if src.is_loopback() {
        &mut counters.martian_loopback
    } else if cfg.owns(src) {
        &mut counters.martian_own_address
    } else {
        return None;
    })
}

/// Whether the IPv4 header of `packet` (options included) carries a
/// source route. Malformed options end the walk (the parser took the
/// header; what the options say is only looked for here).
fn source_routed(packet: &[u8]) -> bool {
    let ihl = usize::from(packet.first().map_or(0, |b| b & 0x0f)) * 4;
    let mut opts = packet.get(20..ihl).unwrap_or(&[]);
    while let Some(&kind) = opts.first() {
        match kind {
            0 => return false,
            1 => opts = &opts[1..],
            LSRR | SSRR => return true,
            _ => match opts.get(1) {
                Some(&len) if len >= 2 && usize::from(len) <= opts.len() => {
                    opts = &opts[usize::from(len)..]
                }
                _ => return false,
            },
        }
    }
    false
}

impl Inner {
    pub(super) fn ipv4_input(
        &mut self,
        raw: &[u8],
        eth: EthernetRepr,
        ip: Ipv4Repr,
        transport: Transport<'_>,
    ) {
        if !self.cfg.owns(ip.dst_addr) {
            self.counters.not_for_us += 1;
            return;
        }
        if let Some(c) = martian(&mut self.counters, ip.src_addr, &self.cfg) {
            *c += 1;
            return;
        }
        if source_routed(raw.get(eth.buffer_len()..).unwrap_or(&[])) {
            self.counters.source_routed += 1;
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
