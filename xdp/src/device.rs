//! The stack's [`Device`] over an AF_XDP socket: received frames are lent
//! straight from the UMEM, transmitted frames are written straight into it.
use stack::phy::{Device, DeviceCaps};

use crate::xsk::{Xsk, L2_MAX, XDP_PACKET_HEADROOM};

impl Device for Xsk {
    /// The interface's MTU, or less when a UMEM frame holds less: in copy
    /// mode the kernel writes a received frame after `XDP_PACKET_HEADROOM`
    /// bytes of its UMEM frame, and what is left, less the Ethernet header,
    /// is the largest IP packet that fits. With multi-buffer a frame spans
    /// UMEM frames, and the bound is the transmit slot. (A frame over the
    /// interface's MTU is dropped by the driver without a trace, so the
    /// stack must never build one.)
    fn caps(&self) -> DeviceCaps {
        let room = if self.multi_buffer() {
            self.tx_frame_len() - L2_MAX
        } else {
            self.frame_size() as usize - XDP_PACKET_HEADROOM - L2_MAX
        };
        DeviceCaps {
            mtu: room.min(self.if_mtu() as usize),
            checksum_offload: self.tx_checksum_offload(),
        }
    }

    fn receive<F: FnMut(&[u8])>(&mut self, budget: usize, f: F) -> usize {
        Xsk::receive(self, budget, f)
    }

    fn transmit<F: FnOnce(&mut [u8]) -> usize>(&mut self, f: F) -> bool {
        Xsk::transmit(self, f)
    }

    fn flush(&mut self) {
        Xsk::flush(self);
    }
}
