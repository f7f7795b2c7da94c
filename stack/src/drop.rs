//! Named reasons for dropping received input, and their counters.
//!
//! Garbage from the wire is never an error that unwinds and never a panic:
//! each parser returns the [`DropReason`] that describes what was wrong, the
//! receive path adds one to that reason's counter in [`Counters`] and drops
//! the frame. Reports print the counters by [`DropReason::name`], so a run
//! that saw malformed traffic says which kind and how much.

use core::fmt;

/// Why a received frame was dropped.
///
/// One variant per reason, so that each has its own counter. The list is
/// closed on purpose: a new reason is a new variant, a new name and a new
/// counter, never a catch-all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DropReason {
    /// The buffer is shorter than a header, or than a length field says.
    Truncated,
    /// A header length field is below the minimum, or points past the
    /// length of the datagram (IPv4 IHL < 5, TCP data offset < 5, ...).
    BadHeaderLen,
    /// A total or payload length field is impossible (UDP length < 8, ...).
    BadLength,
    /// The IP version field does not match the EtherType.
    BadVersion,
    /// An Internet checksum did not verify.
    BadChecksum,
    /// A TCP option with an illegal length (RFC 9293 §3.2, MUST-7).
    BadTcpOption,
    /// A TCP or UDP port that must not be zero is zero.
    ZeroPort,
    /// An illegal TCP flag combination (SYN+FIN, SYN+RST, or none of
    /// SYN/ACK/RST, which no state of RFC 9293 §3.10.7 accepts).
    IllegalTcpFlags,
    /// A broadcast or multicast source address (Ethernet, IPv4 or IPv6).
    /// RFC 1122 §3.2.1.3: such a datagram MUST be silently discarded.
    NonUnicastSource,
    /// A TCP segment to a broadcast or multicast address.
    /// RFC 9293 §3.10.7.2 (MUST-57): TCP is unicast only.
    NonUnicastDestination,
    /// An IPv4 fragment. Fragments are recognised and counted, never
    /// reassembled: the benchmark's traffic is never fragmented, and
    /// reassembly is memory an attacker could fill.
    Fragment,
    /// An EtherType the stack does not handle (after at most one 802.1Q tag).
    UnknownEtherType,
    /// An IP protocol (or IPv6 next header) the stack does not handle.
    UnknownIpProtocol,
    /// An ICMP type the stack does not handle.
    UnknownIcmpType,
    /// An ARP packet that is not Ethernet/IPv4 request or reply.
    UnknownArpFormat,
}

impl DropReason {
    /// Number of reasons: the length of the counter array.
    pub const COUNT: usize = 15;

    /// Every reason, in counter order.
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::Truncated,
        DropReason::BadHeaderLen,
        DropReason::BadLength,
        DropReason::BadVersion,
        DropReason::BadChecksum,
        DropReason::BadTcpOption,
        DropReason::ZeroPort,
        DropReason::IllegalTcpFlags,
        DropReason::NonUnicastSource,
        DropReason::NonUnicastDestination,
        DropReason::Fragment,
        DropReason::UnknownEtherType,
        DropReason::UnknownIpProtocol,
        DropReason::UnknownIcmpType,
        DropReason::UnknownArpFormat,
    ];

    /// The stable snake_case name used in result files and reports.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::BadHeaderLen => "bad_header_len",
            DropReason::BadLength => "bad_length",
            DropReason::BadVersion => "bad_version",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::BadTcpOption => "bad_tcp_option",
            DropReason::ZeroPort => "zero_port",
            DropReason::IllegalTcpFlags => "illegal_tcp_flags",
            DropReason::NonUnicastSource => "non_unicast_source",
            DropReason::NonUnicastDestination => "non_unicast_destination",
            DropReason::Fragment => "fragment",
            DropReason::UnknownEtherType => "unknown_ethertype",
            DropReason::UnknownIpProtocol => "unknown_ip_protocol",
            DropReason::UnknownIcmpType => "unknown_icmp_type",
            DropReason::UnknownArpFormat => "unknown_arp_format",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A counter per [`DropReason`], plus the frames that were accepted.
///
/// Plain `u64`s: each shard owns its counters (nothing is shared on the data
/// path) and the harness sums them when it reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    drops: [u64; DropReason::COUNT],
    accepted: u64,
}

impl Counters {
    /// All counters at zero.
    pub const fn new() -> Counters {
        Counters {
            drops: [0; DropReason::COUNT],
            accepted: 0,
        }
    }

    /// Count one dropped frame.
    pub fn drop(&mut self, reason: DropReason) {
        let slot = &mut self.drops[reason.index()];
        *slot = slot.wrapping_add(1);
    }

    /// Count one accepted frame.
    pub fn accept(&mut self) {
        self.accepted = self.accepted.wrapping_add(1);
    }

    /// Count the outcome of a parse and pass its success through: the one
    /// line a receive path needs to turn garbage into a counter and a drop.
    pub fn record<T>(&mut self, outcome: Result<T, DropReason>) -> Option<T> {
        match outcome {
            Ok(value) => {
                self.accept();
                Some(value)
            }
            Err(reason) => {
                self.drop(reason);
                None
            }
        }
    }

    /// Frames dropped for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    /// Frames accepted.
    pub fn accepted(&self) -> u64 {
        self.accepted
    }

    /// Frames dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.drops.iter().fold(0u64, |a, b| a.wrapping_add(*b))
    }

    /// Every reason with its count, in a stable order, for reports.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|r| (*r, self.get(*r)))
    }

    /// Add another shard's counters to these.
    pub fn merge(&mut self, other: &Counters) {
        for (mine, theirs) in self.drops.iter_mut().zip(other.drops.iter()) {
            *mine = mine.wrapping_add(*theirs);
        }
        self.accepted = self.accepted.wrapping_add(other.accepted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order_and_names_are_unique() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }

    #[test]
    fn record_counts_each_reason() {
        let mut c = Counters::new();
        assert_eq!(c.record::<()>(Err(DropReason::BadChecksum)), None);
        assert_eq!(c.record(Ok(7)), Some(7));
        c.drop(DropReason::BadChecksum);
        assert_eq!(c.get(DropReason::BadChecksum), 2);
        assert_eq!(c.accepted(), 1);
        assert_eq!(c.dropped(), 2);
        let mut total = Counters::new();
        total.merge(&c);
        total.merge(&c);
        assert_eq!(total.get(DropReason::BadChecksum), 4);
    }
}
