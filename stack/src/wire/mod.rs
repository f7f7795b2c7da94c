//! Wire formats: zero-copy views over packet buffers, and their parsed
//! representations.
//!
//! # The parse/emit contract
//!
//! Every format comes in two parts, as in smoltcp:
//!
//! - A **view**, e.g. [`TcpPacket<T>`], wraps any `T: AsRef<[u8]>` (and, to
//!   write, `T: AsMut<[u8]>`) without copying it. `new_unchecked` wraps
//!   without looking; `new_checked` (that is, `new_unchecked` followed by
//!   `check_len`) verifies that the buffer is long enough for every fixed
//!   field *and* for every length that a length field inside it claims.
//!   **After a view is checked, no accessor panics**: fixed-offset fields are
//!   inside the checked length, and every variable-length accessor
//!   (`payload`, `options`, ...) clamps to the buffer, so it stays panic-free
//!   even after a setter changed a length field.
//! - A **representation**, e.g. [`TcpRepr`], is the meaning of a packet: a
//!   plain value with borrowed payload. **`Repr::parse` never panics, on any
//!   bytes**: it checks the view, validates the fields (checksums, lengths,
//!   illegal combinations, non-unicast sources) and returns either the value
//!   or the [`DropReason`] that names what was wrong.
//!   `Repr::buffer_len` is the exact size of the emitted header (plus
//!   payload where the representation owns one); `Repr::emit` writes exactly
//!   that many bytes into a view whose buffer is at least that long (a shorter
//!   buffer is a caller bug and panics), and computes checksums.
//!   `parse(emit(repr)) == repr` for every valid representation: the property
//!   tests check this for every format.
//!
//! Field offsets are named ranges in a private `field` module per format.
//! Malformed input is never an error that unwinds: callers count the
//! returned reason (see [`Counters`](crate::Counters)) and drop the frame.
//!
//! The tests at the bottom of each module and the property tests in
//! `tests/` check this contract; the fuzz targets in `fuzz/` hunt for
//! panics in it.

/// Declares a view: the struct over a buffer `T`, `new_unchecked`,
/// `new_checked` (which calls the type's own `check_len`) and `into_inner`,
/// the same for every format.
macro_rules! view {
    ($(#[$attr:meta])* $name:ident) => {
        $(#[$attr])*
        #[derive(Debug, Clone)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// Wrap without checking: accessors may panic until `check_len` passes.
            pub const fn new_unchecked(buffer: T) -> $name<T> {
                $name { buffer }
            }

            /// Wrap and check every length (`new_unchecked`, then `check_len`):
            /// after this no accessor panics.
            pub fn new_checked(buffer: T) -> $crate::wire::Result<$name<T>> {
                let view = Self::new_unchecked(buffer);
                view.check_len()?;
                Ok(view)
            }

            /// Give the buffer back.
            pub fn into_inner(self) -> T {
                self.buffer
            }
        }
    };
}
pub(crate) use view;

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr, VlanTag};
pub use icmp::{Icmpv4Packet, Icmpv4Repr};
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6Packet, Ipv6Repr};
pub use tcp::{TcpFlags, TcpOption, TcpOptions, TcpPacket, TcpRepr, Timestamps};
pub use udp::{UdpPacket, UdpRepr};

use crate::DropReason;

/// The result of every parse: a value, or the named reason to drop.
pub type Result<T> = core::result::Result<T, DropReason>;

/// A byte range inside a header.
pub(crate) type Field = core::ops::Range<usize>;

/// Whether received transport checksums are verified.
///
/// `Verify` is the default. `Trust` exists for frames whose TCP or UDP
/// checksum the sender left for hardware to fill in (a veth peer with TX
/// checksum offload on hands XDP such partial checksums) or that a device
/// verified; the caller that chooses it must know why. The IPv4 header
/// checksum is verified either way: no sender leaves it unfinished, and it
/// costs 20 bytes of adds (as Linux's `ip_rcv`, which checks it whatever
/// the device says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Checksums {
    /// Verify every checksum; a mismatch is [`DropReason::BadChecksum`].
    #[default]
    Verify,
    /// Do not look at received TCP and UDP checksums.
    Trust,
}

/// How TCP and UDP checksums are written on transmit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TxChecksums {
    /// Computed in full.
    #[default]
    Full,
    /// Left for the device (checksum offload, Linux's `CHECKSUM_PARTIAL`):
    /// the field holds the folded pseudo-header sum, and the device sums
    /// from the transport header to the end and stores the complement.
    Partial,
}

/// An IP protocol number (IPv4 "protocol", IPv6 "next header").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    /// ICMP for IPv4 (RFC 792).
    pub const ICMP: IpProtocol = IpProtocol(1);
    /// TCP (RFC 9293).
    pub const TCP: IpProtocol = IpProtocol(6);
    /// UDP (RFC 768).
    pub const UDP: IpProtocol = IpProtocol(17);
    /// ICMP for IPv6 (RFC 4443).
    pub const ICMPV6: IpProtocol = IpProtocol(58);
}

/// Read a big-endian `u16` at `at`. Callers index only inside checked lengths.
#[inline]
pub(crate) fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Read a big-endian `u32` at `at`. Callers index only inside checked lengths.
#[inline]
pub(crate) fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
pub(crate) fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// `b[start..end]`, clamped to the buffer: never panics, whatever a length
/// field said. The variable-length accessors of every view go through this.
#[inline]
pub(crate) fn clamp(b: &[u8], start: usize, end: usize) -> &[u8] {
    let end = end.min(b.len());
    b.get(start.min(end)..end).unwrap_or(&[])
}

/// Mutable twin of [`clamp`].
#[inline]
pub(crate) fn clamp_mut(b: &mut [u8], start: usize, end: usize) -> &mut [u8] {
    let end = end.min(b.len());
    let start = start.min(end);
    &mut b[start..end]
}
