//! The one way out: every frame the interface sends — TCP segments, UDP
//! datagrams, ICMP messages, ARP — leaves through [`Egress`].
//!
//! An IP packet goes to its next hop (the destination itself on the
//! subnet, else the gateway), whose MAC comes from the neighbour cache
//! ([`crate::arp::Cache`]). When the cache does not know the hop yet, a
//! request goes out (broadcast) and the frame waits, whole, in a bounded
//! queue until the reply comes; if ARP gives up, what waited is dropped and
//! counted (Linux's `unres_qlen`, in frames). A frame for a hop that has
//! frames waiting queues behind them, so frames to one hop never overtake
//! each other.
//!
//! Frames the interface makes while it receives (ARP replies, ICMP) are
//! staged in a small ring and transmitted after the batch: the device lends
//! a received frame only for its callback. Everything here is allocated
//! once, when the interface is made.

use core::net::Ipv4Addr;
use std::collections::VecDeque;

use super::counters::InterfaceCounters;
use super::InterfaceConfig;
use crate::arp::{Action, Cache, Learned, Lookup};
use crate::error::Error;
use crate::frame::{Frame, Network, Transport};
use crate::phy::{Device, DeviceCaps};
use crate::storage::SlotRing;
use crate::time::Instant;
use crate::wire::{
    ArpOperation, ArpRepr, EtherType, EthernetAddress, EthernetRepr, Ipv4Repr, TxChecksums,
};

/// A packet's source (ours: the interface's address or an alias) and
/// destination.
pub(super) type Route = (Ipv4Addr, Ipv4Addr);

/// Neighbours learned by ARP and not yet passed on to sibling shards, at
/// most.
const MAX_LEARNED: usize = 64;

/// What became of a packet handed to [`Egress::send_ip`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sent {
    /// Written into a transmit buffer of the device.
    Out,
    /// Waiting for its next hop's MAC.
    Queued,
    /// The device has no free transmit buffer: nothing was kept; try again
    /// after the next poll.
    DeviceFull,
    /// Not sent, and not kept: no route, ARP failed or is full.
    Failed(Error),
}

/// The link layer of sending, and the neighbour cache behind it.
#[derive(Debug)]
pub(super) struct Egress {
    mac: EthernetAddress,
    addr: Ipv4Addr,
    prefix_len: u8,
    gateway: Option<Ipv4Addr>,
    ttl: u8,
    pub(super) arp: Cache,
    /// Frames waiting for the MAC of their next hop (the key), with a
    /// placeholder destination MAC.
    pending: SlotRing<Ipv4Addr>,
    /// A neighbour was resolved: what waits for it may go.
    release: bool,
    /// Frames the interface made itself, staged during a receive batch.
    control: SlotRing<()>,
    ident: u16,
    /// Something was written into the device since the last poll.
    wrote: bool,
    /// Neighbours learned by ARP, for sibling shards.
    learned: VecDeque<(Ipv4Addr, EthernetAddress)>,
    /// ARP's timers are looked at no sooner than this: a poll loop that
    /// spins must not scan the cache each round, and ARP's retries are
    /// 100 ms apart.
    timers_at: Instant,
    /// TCP and UDP checksums in full, or left for the device (it said it
    /// completes them: [`DeviceCaps::checksum_offload`]).
    checksums: TxChecksums,
}

/// How often ARP's timers are looked at, at most.
const TIMER_GRANULARITY: core::time::Duration = core::time::Duration::from_millis(1);

impl Egress {
    pub(super) fn new(cfg: &InterfaceConfig, caps: DeviceCaps) -> Egress {
        let max_frame = caps.max_frame_len();
        Egress {
            mac: cfg.mac,
            addr: cfg.addr,
            prefix_len: cfg.prefix_len,
            gateway: cfg.gateway,
            ttl: cfg.ttl,
            arp: Cache::new(cfg.arp),
            pending: SlotRing::new(cfg.arp_pending, max_frame),
            release: false,
            control: SlotRing::new(cfg.control_queue, max_frame),
            ident: 0,
            wrote: false,
            learned: VecDeque::with_capacity(MAX_LEARNED),
            timers_at: Instant::ZERO,
            checksums: if caps.checksum_offload {
                TxChecksums::Partial
            } else {
                TxChecksums::Full
            },
        }
    }

    fn on_link(&self, ip: Ipv4Addr) -> bool {
        let prefix = u32::from(self.prefix_len.min(32));
        let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
        u32::from(ip) & mask == u32::from(self.addr) & mask
    }

    /// Where a packet to `ip` goes first: `ip` itself on the subnet, the
    /// gateway otherwise (`None`: no route).
    pub(super) fn next_hop(&self, ip: Ipv4Addr) -> Option<Ipv4Addr> {
        if self.on_link(ip) {
            Some(ip)
        } else {
            self.gateway
        }
    }

    fn ip_frame<'a>(
        &mut self,
        dst_mac: EthernetAddress,
        (src, dst): Route,
        transport: Transport<'a>,
        dont_frag: bool,
    ) -> Frame<'a> {
        self.ident = self.ident.wrapping_add(1);
        Frame {
            ethernet: EthernetRepr {
                src_addr: self.mac,
                dst_addr: dst_mac,
                vlan: None,
                ethertype: EtherType::IPV4,
            },
            network: Network::Ipv4(
                Ipv4Repr {
                    src_addr: src,
                    dst_addr: dst,
                    protocol: transport.protocol(),
                    payload_len: transport.buffer_len(),
                    ttl: self.ttl,
                    tos: 0,
                    ident: self.ident,
                    dont_frag,
                },
                transport,
            ),
        }
    }

    /// Send an IP packet from `route`'s source (this interface's address or
    /// an alias) to its destination: to its
    /// next hop's MAC at once if the cache has it (asking for a refresh
    /// when it is stale), else queued while ARP resolves the hop.
    pub(super) fn send_ip<D: Device>(
        &mut self,
        device: &mut D,
        counters: &mut InterfaceCounters,
        now: Instant,
        route: Route,
        transport: Transport<'_>,
        dont_frag: bool,
    ) -> Sent {
        let dst = route.1;
        let Some(hop) = self.next_hop(dst) else {
            return Sent::Failed(Error::NetworkUnreachable);
        };
        let lookup = self.arp.lookup(hop, now);
        self.drop_evicted(counters);
        match lookup {
            Lookup::Resolved { mac, refresh } => {
                if refresh {
                    self.stage_arp_request(hop, counters);
                }
                let frame = self.ip_frame(mac, route, transport, dont_frag);
                if self.pending.len() > 0 && self.pending.any(|h| *h == hop) {
                    return self.queue(hop, &frame, counters);
                }
                if transmit_frame(device, &frame, self.checksums) {
                    self.wrote = true;
                    Sent::Out
                } else {
                    counters.tx_no_buffer += 1;
                    Sent::DeviceFull
                }
            }
            Lookup::Started => {
                self.stage_arp_request(hop, counters);
                let frame = self.ip_frame(EthernetAddress::default(), route, transport, dont_frag);
                self.queue(hop, &frame, counters)
            }
            Lookup::Resolving => {
                let frame = self.ip_frame(EthernetAddress::default(), route, transport, dont_frag);
                self.queue(hop, &frame, counters)
            }
            Lookup::Failed => Sent::Failed(Error::HostUnreachable),
            Lookup::Full => Sent::Failed(Error::NoBuffers),
        }
    }

    fn queue(
        &mut self,
        hop: Ipv4Addr,
        frame: &Frame<'_>,
        counters: &mut InterfaceCounters,
    ) -> Sent {
        let len = frame.buffer_len();
        // one hop may take half the queue (Linux keeps a queue per
        // neighbour): resets to a stranger's unresolved address never
        // crowd out the frames of a peer whose resolution is under way
        let share = (self.pending.capacity() / 2).max(1);
        if self.pending.count(|h| *h == hop) >= share {
            counters.arp_pending_full += 1;
            return Sent::Failed(Error::NoBuffers);
        }
        let kept = self.pending.push_with(hop, |buf| {
            if buf.len() < len {
                return 0;
            }
            frame.emit_with(buf, self.checksums);
            len
        });
        if kept {
            Sent::Queued
        } else {
            counters.arp_pending_full += 1;
            Sent::Failed(Error::NoBuffers)
        }
    }

    /// Stage an IP packet that answers a received frame, to the MAC it
    /// came from (an ICMP reply), for after the receive batch.
    pub(super) fn stage_reply(
        &mut self,
        dst_mac: EthernetAddress,
        route: Route,
        transport: Transport<'_>,
        counters: &mut InterfaceCounters,
    ) {
        let frame = self.ip_frame(dst_mac, route, transport, false);
        self.stage(&frame, counters);
    }

    /// Stage the reply to an ARP request for our address (RFC 826).
    pub(super) fn stage_arp_reply(&mut self, request: &ArpRepr, counters: &mut InterfaceCounters) {
        let reply = ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: self.mac,
            // the address asked for: ours or one of our aliases
            source_protocol_addr: request.target_protocol_addr,
            target_hardware_addr: request.source_hardware_addr,
            target_protocol_addr: request.source_protocol_addr,
        };
        counters.arp_replies_sent += 1;
        self.stage(
            &self.arp_frame(request.source_hardware_addr, reply),
            counters,
        );
    }

    fn stage_arp_request(&mut self, addr: Ipv4Addr, counters: &mut InterfaceCounters) {
        let request = ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: self.mac,
            source_protocol_addr: self.addr,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: addr,
        };
        counters.arp_requests_sent += 1;
        self.stage(
            &self.arp_frame(EthernetAddress::BROADCAST, request),
            counters,
        );
    }

    fn arp_frame(&self, dst_mac: EthernetAddress, arp: ArpRepr) -> Frame<'static> {
        Frame {
            ethernet: EthernetRepr {
                src_addr: self.mac,
                dst_addr: dst_mac,
                vlan: None,
                ethertype: EtherType::ARP,
            },
            network: Network::Arp(arp),
        }
    }

    fn stage(&mut self, frame: &Frame<'_>, counters: &mut InterfaceCounters) {
        let len = frame.buffer_len();
        if !self.control.push_with((), |buf| {
            if buf.len() < len {
                return 0;
            }
            frame.emit_with(buf, self.checksums);
            len
        }) {
            counters.control_dropped += 1;
        }
    }

    /// What a received ARP packet teaches (RFC 826 "Packet Reception",
    /// through [`Cache::learn`]); a resolution lets what waited go, and is
    /// kept for sibling shards.
    pub(super) fn learn(
        &mut self,
        sender: Ipv4Addr,
        mac: EthernetAddress,
        for_us: bool,
        now: Instant,
        counters: &mut InterfaceCounters,
    ) {
        let learned = self.arp.learn(sender, mac, for_us, now);
        self.drop_evicted(counters);
        match learned {
            Learned::Resolved => {
                self.release = true;
                if self.learned.len() < MAX_LEARNED {
                    self.learned.push_back((sender, mac));
                }
            }
            Learned::Conflict => counters.arp_conflicts += 1,
            Learned::Nothing => {}
        }
    }

    /// A neighbour that a sibling shard learned by ARP.
    pub(super) fn learn_relayed(
        &mut self,
        ip: Ipv4Addr,
        mac: EthernetAddress,
        now: Instant,
        counters: &mut InterfaceCounters,
    ) {
        let learned = self.arp.learn(ip, mac, true, now);
        self.drop_evicted(counters);
        if learned == Learned::Resolved {
            self.release = true;
        }
    }

    /// A resolution the cache evicted for a newer one: what waited for it
    /// is dropped (counted as `arp_failed`).
    fn drop_evicted(&mut self, counters: &mut InterfaceCounters) {
        if let Some(addr) = self.arp.take_evicted() {
            self.drop_pending(addr, counters);
        }
    }

    /// The next neighbour learned by ARP that sibling shards have not been
    /// told of.
    pub(super) fn take_learned(&mut self) -> Option<(Ipv4Addr, EthernetAddress)> {
        self.learned.pop_front()
    }

    /// ARP's timers at `now`: retries go out, given-up resolutions drop
    /// what waited for them.
    pub(super) fn run_timers(&mut self, now: Instant, counters: &mut InterfaceCounters) {
        if now < self.timers_at {
            return;
        }
        self.timers_at = now + TIMER_GRANULARITY;
        while let Some(action) = self.arp.poll(now) {
            match action {
                Action::Retry(addr) => self.stage_arp_request(addr, counters),
                Action::GaveUp(addr) => self.drop_pending(addr, counters),
            }
        }
    }

    /// When ARP next has timed work.
    pub(super) fn next_timer(&self) -> Option<Instant> {
        self.arp.next_timer()
    }

    /// Whether frames are owed now (staged, or released by a resolution).
    pub(super) fn owed(&self) -> bool {
        self.control.len() > 0 || self.release
    }

    /// Whether anything was written into the device since the last poll.
    pub(super) fn wrote(&self) -> bool {
        self.wrote
    }

    /// Whether anything was written into the device since the last call.
    pub(super) fn take_wrote(&mut self) -> bool {
        core::mem::take(&mut self.wrote)
    }

    /// Transmit the staged frames and the released ones that the device
    /// has room for; `false` when the device filled up first.
    pub(super) fn flush_owed<D: Device>(
        &mut self,
        device: &mut D,
        counters: &mut InterfaceCounters,
    ) -> bool {
        while let Some(((), frame)) = self.control.front() {
            if !device.transmit(|buf| copy_frame(buf, frame, None)) {
                counters.tx_no_buffer += 1;
                return false;
            }
            self.control.pop();
            self.wrote = true;
        }
        if self.release {
            return self.release_pending(device, counters);
        }
        true
    }

    /// One pass over the frames waiting for ARP: those whose next hop is
    /// resolved go, in order, with its MAC; the rest keep their order.
    fn release_pending<D: Device>(
        &mut self,
        device: &mut D,
        counters: &mut InterfaceCounters,
    ) -> bool {
        let mut blocked = false;
        for _ in 0..self.pending.len() {
            let Some((hop, frame)) = self.pending.front() else {
                break;
            };
            let mac = if blocked { None } else { self.arp.get(hop) };
            let Some(mac) = mac else {
                self.pending.requeue_front();
                continue;
            };
            if device.transmit(|buf| copy_frame(buf, frame, Some(mac))) {
                self.pending.pop();
                self.wrote = true;
                counters.arp_pending_sent += 1;
            } else {
                counters.tx_no_buffer += 1;
                blocked = true;
                self.pending.requeue_front();
            }
        }
        self.release = blocked;
        !blocked
    }

    /// ARP gave up on `addr`: drop what waits for it.
    fn drop_pending(&mut self, addr: Ipv4Addr, counters: &mut InterfaceCounters) {
        for _ in 0..self.pending.len() {
            match self.pending.front() {
                Some((hop, _)) if hop == addr => {
                    self.pending.pop();
                    counters.arp_failed += 1;
                }
                Some(_) => self.pending.requeue_front(),
                None => break,
            }
        }
    }
}

/// Copy a frame built earlier into a device buffer, with its destination
/// MAC (the first six bytes) set to `dst` if given.
fn copy_frame(buf: &mut [u8], frame: &[u8], dst: Option<EthernetAddress>) -> usize {
    if buf.len() < frame.len() {
        return 0;
    }
    buf[..frame.len()].copy_from_slice(frame);
    if let Some(mac) = dst {
        buf[..6].copy_from_slice(&mac.0);
    }
    frame.len()
}

/// Emit a whole frame into a device buffer; `false` when the device is full.
fn transmit_frame<D: Device>(device: &mut D, frame: &Frame<'_>, checksums: TxChecksums) -> bool {
    let len = frame.buffer_len();
    let mut wrote = false;
    device.transmit(|buf| {
        if buf.len() < len {
            return 0;
        }
        frame.emit_with(buf, checksums);
        wrote = true;
        len
    }) && wrote
}
