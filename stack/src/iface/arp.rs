//! ARP input (RFC 826, "Packet Reception"): merge the sender into the
//! neighbour cache if it is there; if we are the target, add it if it was
//! not, and answer a request with a reply from the address asked for (ours or an
//! alias).

use super::Inner;
use crate::wire::{ArpOperation, ArpRepr};

impl Inner {
    pub(super) fn arp_input(&mut self, arp: ArpRepr) {
        let for_us = self.cfg.owns(arp.target_protocol_addr);
        self.egress.learn(
            arp.source_protocol_addr,
            arp.source_hardware_addr,
            for_us,
            self.now,
            &mut self.counters,
        );
        if !for_us {
            self.counters.not_for_us += 1;
            return;
        }
        match arp.operation {
            ArpOperation::Request => {
                self.counters.arp_requests_received += 1;
                self.egress.stage_arp_reply(&arp, &mut self.counters);
            }
            ArpOperation::Reply => self.counters.arp_replies_received += 1,
        }
    }
}
