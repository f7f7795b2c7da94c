//! Devices: where frames come from and go to.
//!
//! The stack sees a network card only through [`Device`]: receive a batch of
//! frames, transmit frames one buffer at a time, flush. The trait is shaped
//! so that an AF_XDP socket can implement it without copying: a received
//! frame is lent to the stack as `&[u8]` for the duration of one callback
//! and given back (to the fill ring) when the callback returns; a frame to
//! send is a writable buffer that the device owns (a UMEM frame), which the
//! stack fills and commits with a length. [`Device::flush`] hands the
//! committed frames to the hardware and reclaims the completed ones.
//!
//! Middleware and test devices live here too:
//! - [`Loopback`]: two in-memory devices joined back to back;
//! - [`FaultInjector`]: a wrapper that loses, duplicates, reorders and
//!   corrupts received frames, driven by a seeded [`Rng`], deterministic;
//! - [`PcapWriter`]: a wrapper that records the frames both ways in pcap
//!   format into a sink the caller supplies.

mod fault;
mod loopback;
mod pcap;

pub use fault::{FaultInjector, FaultStats, Faults, Rng};
pub use loopback::Loopback;
pub use pcap::{PcapMode, PcapSink, PcapWriter, PCAP_MAGIC};

/// What a device can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceCaps {
    /// The largest IP packet (the MTU): a frame is at most this plus the
    /// Ethernet header (14 bytes, 18 with a VLAN tag).
    pub mtu: usize,
    /// The device completes TCP and UDP checksums on transmit (checksum
    /// offload): the stack writes only the pseudo-header's sum
    /// ([`TxChecksums::Partial`](crate::wire::TxChecksums::Partial)).
    pub checksum_offload: bool,
}

impl DeviceCaps {
    /// A device of `mtu` that leaves every checksum to the stack.
    pub const fn mtu(mtu: usize) -> DeviceCaps {
        DeviceCaps {
            mtu,
            checksum_offload: false,
        }
    }

    /// The largest frame, Ethernet header included (one VLAN tag allowed).
    pub const fn max_frame_len(&self) -> usize {
        self.mtu + 18
    }
}

/// A network device, as the stack drives it.
///
/// Methods are generic over their callbacks (no dynamic dispatch per
/// frame); an implementation over AF_XDP lends UMEM frames, one over memory
/// lends its own buffers.
pub trait Device {
    /// What the device carries.
    fn caps(&self) -> DeviceCaps;

    /// Receive at most `budget` frames, calling `f` once per frame with the
    /// frame's bytes. The frame is lent for the call only: when `f` returns
    /// the device may reuse its buffer (an AF_XDP device gives it back to
    /// the fill ring at the end of the batch). Returns the number of frames
    /// handed to `f`.
    fn receive<F: FnMut(&[u8])>(&mut self, budget: usize, f: F) -> usize;

    /// Send one frame: `f` gets a writable buffer of at least
    /// [`DeviceCaps::max_frame_len`] bytes and returns how many it wrote; 0
    /// sends nothing and gives the buffer back. Returns `false`, without
    /// calling `f`, when no buffer is free (the transmit ring is full): the
    /// stack keeps its data and tries again at its next poll.
    fn transmit<F: FnOnce(&mut [u8]) -> usize>(&mut self, f: F) -> bool;

    /// Hand the frames committed since the last flush to the hardware (an
    /// AF_XDP device kicks its transmit ring) and reclaim the buffers of
    /// frames already sent. Called once at the end of each poll.
    fn flush(&mut self);
}
