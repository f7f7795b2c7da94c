//! TCP segments (RFC 9293 §3.1) and the options the stack uses: MSS
//! (RFC 9293 §3.2), window scale and timestamps (RFC 7323), SACK-permitted
//! and SACK blocks (RFC 2018), NOP and EOL.
//!
//! Options follow RFC 9293 §3.1-3.2 (MUST-4..7, MUST-64, MUST-68 in its
//! requirements table): an option may appear in any segment and is parsed
//! wherever it is; an unknown option with a length is skipped without error;
//! every option but EOL and NOP has a length byte; an illegal length (under
//! 2, past the header, or not the length its RFC defines for a known kind) is
//! handled without crashing — it makes the segment a
//! [`DropReason::BadTcpOption`]. A zero length in particular cannot loop
//! the parser: it is rejected before the cursor moves.

use core::fmt;
use core::net::IpAddr;

use super::{
    checksum, get_u16, get_u32, put_u16, put_u32, Checksums, IpProtocol, Result, TxChecksums,
};
use crate::DropReason;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ_NUM: usize = 4;
    pub const ACK_NUM: usize = 8;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Room for options: a data offset of 15 words minus the fixed header.
pub const MAX_OPTIONS_LEN: usize = 40;

/// Option kinds (IANA "TCP Option Kind Numbers").
mod kind {
    pub const EOL: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WINDOW_SCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMPS: u8 = 8;
}

/// The control bits of byte 13 (RFC 9293 §3.1, RFC 3168 for ECE and CWR).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// Synchronize sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// Reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// Push.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// The acknowledgment number is significant.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// The urgent pointer is significant.
    pub const URG: TcpFlags = TcpFlags(0x20);
    /// ECN-Echo (RFC 3168).
    pub const ECE: TcpFlags = TcpFlags(0x40);
    /// Congestion window reduced (RFC 3168).
    pub const CWR: TcpFlags = TcpFlags(0x80);

    /// Every bit of `other` is set.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Any bit of `other` is set.
    pub const fn intersects(self, other: TcpFlags) -> bool {
        self.0 & other.0 != 0
    }

    /// A combination no RFC 9293 state accepts: SYN with FIN or RST, or none
    /// of SYN, ACK and RST (every state but LISTEN and SYN-SENT drops a
    /// segment without ACK, §3.10.7.4 "fifth, check the ACK field", and those
    /// two want SYN or RST).
    pub const fn is_illegal(self) -> bool {
        let syn = self.0 & Self::SYN.0 != 0;
        (syn && self.0 & (Self::FIN.0 | Self::RST.0) != 0)
            || self.0 & (Self::SYN.0 | Self::ACK.0 | Self::RST.0) == 0
    }
}

impl core::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
        let mut first = true;
        for (i, name) in NAMES.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

/// The timestamps option (RFC 7323 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Timestamps {
    /// TSval: the sender's clock.
    pub tsval: u32,
    /// TSecr: the TSval echoed back (meaningful with ACK).
    pub tsecr: u32,
}

/// Up to four SACK blocks, each `(left edge, right edge)` (RFC 2018 §3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SackBlocks {
    blocks: [(u32, u32); 4],
    len: u8,
}

impl SackBlocks {
    /// The most a SACK option can carry (2 + 4 × 8 = 34 bytes of 40).
    pub const MAX: usize = 4;

    /// The first four of `blocks`.
    pub fn new(blocks: &[(u32, u32)]) -> SackBlocks {
        let mut s = SackBlocks::default();
        for b in blocks.iter().take(Self::MAX) {
            s.push(*b);
        }
        s
    }

    /// Add a block; false (and nothing added) when there are four already.
    pub fn push(&mut self, block: (u32, u32)) -> bool {
        match self.blocks.get_mut(usize::from(self.len)) {
            Some(slot) => {
                *slot = block;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    /// The blocks.
    pub fn as_slice(&self) -> &[(u32, u32)] {
        &self.blocks[..usize::from(self.len).min(Self::MAX)]
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// No blocks.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for SackBlocks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// One option, as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// End of option list: the rest is padding.
    EndOfList,
    /// Padding between options.
    NoOperation,
    /// Maximum segment size (RFC 9293 §3.7.1).
    MaxSegmentSize(u16),
    /// Window scale shift count (RFC 7323 §2). Kept as received: clamping a
    /// value over 14 (RFC 7323 §2.3) is the state machine's job.
    WindowScale(u8),
    /// SACK-permitted (RFC 2018 §2).
    SackPermitted,
    /// SACK blocks (RFC 2018 §3).
    Sack(SackBlocks),
    /// Timestamps (RFC 7323 §3).
    Timestamps(Timestamps),
    /// Any other kind, with its data (RFC 9293 MUST-5: skipped).
    Unknown {
        /// Option kind.
        kind: u8,
        /// Bytes after kind and length.
        data: &'a [u8],
    },
}

/// Walks the option bytes of a header. Yields an error once (and then
/// nothing) on an illegal length; stops after EOL.
#[derive(Debug, Clone)]
pub struct TcpOptionsIter<'a> {
    rest: &'a [u8],
}

impl<'a> TcpOptionsIter<'a> {
    /// Walk `options` (the bytes between the fixed header and the data).
    pub fn new(options: &'a [u8]) -> TcpOptionsIter<'a> {
        TcpOptionsIter { rest: options }
    }

    fn parse_one(&mut self) -> Result<TcpOption<'a>> {
        let rest = self.rest;
        let kind_byte = rest[0];
        match kind_byte {
            kind::EOL => {
                self.rest = &[];
                return Ok(TcpOption::EndOfList);
            }
            kind::NOP => {
                self.rest = &rest[1..];
                return Ok(TcpOption::NoOperation);
            }
            _ => {}
        }
        // MUST-68: every other option has a length byte, which counts kind
        // and length themselves. MUST-7: an illegal one is rejected, never
        // trusted (a zero would never advance the cursor).
        let len = match rest.get(1) {
            Some(l) => usize::from(*l),
            None => return Err(DropReason::BadTcpOption),
        };
        if len < 2 || len > rest.len() {
            return Err(DropReason::BadTcpOption);
        }
        let data = &rest[2..len];
        self.rest = &rest[len..];
        let option = match (kind_byte, len) {
            (kind::MSS, 4) => TcpOption::MaxSegmentSize(get_u16(data, 0)),
            (kind::WINDOW_SCALE, 3) => TcpOption::WindowScale(data[0]),
            (kind::SACK_PERMITTED, 2) => TcpOption::SackPermitted,
            (kind::SACK, _) if data.len() % 8 == 0 && !data.is_empty() => {
                let mut blocks = SackBlocks::default();
                for b in data.chunks_exact(8) {
                    blocks.push((get_u32(b, 0), get_u32(b, 4)));
                }
                TcpOption::Sack(blocks)
            }
            (kind::TIMESTAMPS, 10) => TcpOption::Timestamps(Timestamps {
                tsval: get_u32(data, 0),
                tsecr: get_u32(data, 4),
            }),
            (
                kind::MSS
                | kind::WINDOW_SCALE
                | kind::SACK_PERMITTED
                | kind::SACK
                | kind::TIMESTAMPS,
                _,
            ) => return Err(DropReason::BadTcpOption),
            (kind, _) => TcpOption::Unknown { kind, data },
        };
        Ok(option)
    }
}

impl<'a> Iterator for TcpOptionsIter<'a> {
    type Item = Result<TcpOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let item = self.parse_one();
        if item.is_err() {
            self.rest = &[];
        }
        Some(item)
    }
}

/// The options of a segment, as the state machine needs them.
///
/// A later occurrence of an option overrides an earlier one; this never
/// happens in traffic from a real stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpOptions {
    /// MSS (RFC 9293 §3.7.1; meaningful on SYN).
    pub mss: Option<u16>,
    /// Window scale shift count (RFC 7323 §2; meaningful on SYN).
    pub window_scale: Option<u8>,
    /// SACK-permitted (RFC 2018 §2; meaningful on SYN).
    pub sack_permitted: bool,
    /// Timestamps (RFC 7323 §3).
    pub timestamps: Option<Timestamps>,
    /// SACK blocks (RFC 2018 §3).
    pub sack_blocks: SackBlocks,
}

impl TcpOptions {
    /// Parse the option bytes of a header.
    pub fn parse(bytes: &[u8]) -> Result<TcpOptions> {
        // The layout of nearly every segment of a connection with
        // timestamps (RFC 7323 Appendix A), read at once: the walk below
        // gives the same for these bytes, at several times the cost.
        if let [kind::NOP, kind::NOP, kind::TIMESTAMPS, 10, ts @ ..] = bytes {
            if ts.len() == 8 {
                return Ok(TcpOptions {
                    timestamps: Some(Timestamps {
                        tsval: get_u32(ts, 0),
                        tsecr: get_u32(ts, 4),
                    }),
                    ..TcpOptions::default()
                });
            }
        }
        Self::walk(bytes)
    }

    /// Parse the option bytes one option at a time.
    fn walk(bytes: &[u8]) -> Result<TcpOptions> {
        let mut o = TcpOptions::default();
        for option in TcpOptionsIter::new(bytes) {
            match option? {
                TcpOption::MaxSegmentSize(v) => o.mss = Some(v),
                TcpOption::WindowScale(v) => o.window_scale = Some(v),
                TcpOption::SackPermitted => o.sack_permitted = true,
                TcpOption::Sack(blocks) => o.sack_blocks = blocks,
                TcpOption::Timestamps(t) => o.timestamps = Some(t),
                TcpOption::EndOfList | TcpOption::NoOperation | TcpOption::Unknown { .. } => {}
            }
        }
        Ok(o)
    }

    /// Bytes taken by everything but the SACK blocks, in the layout of
    /// [`emit`](Self::emit): MSS (4), SACK-permitted and timestamps (12 or 4),
    /// window scale after a NOP (4).
    fn fixed_len(&self) -> usize {
        let mss = if self.mss.is_some() { 4 } else { 0 };
        let sack_ts = match (self.sack_permitted, self.timestamps.is_some()) {
            (_, true) => 12,
            (true, false) => 4,
            (false, false) => 0,
        };
        let ws = if self.window_scale.is_some() { 4 } else { 0 };
        mss + sack_ts + ws
    }

    /// How many SACK blocks fit after the other options (RFC 2018 §3: at
    /// most 4, and 3 beside timestamps).
    fn sack_blocks_emitted(&self) -> usize {
        let room = MAX_OPTIONS_LEN.saturating_sub(self.fixed_len() + 4) / 8;
        self.sack_blocks.len().min(room)
    }

    /// Bytes [`emit`](Self::emit) writes: a multiple of 4, at most 40.
    pub fn buffer_len(&self) -> usize {
        let n = self.sack_blocks_emitted();
        self.fixed_len() + if n > 0 { 4 + 8 * n } else { 0 }
    }

    /// Write the options, 32-bit aligned with NOPs as Linux lays them out.
    /// SACK blocks that do not fit in 40 bytes are left out.
    pub fn emit(&self, b: &mut [u8]) {
        let mut at = 0;
        if let Some(mss) = self.mss {
            b[at..at + 2].copy_from_slice(&[kind::MSS, 4]);
            put_u16(b, at + 2, mss);
            at += 4;
        }
        match (self.sack_permitted, self.timestamps) {
            (sack, Some(ts)) => {
                let lead = if sack {
                    [kind::SACK_PERMITTED, 2]
                } else {
                    [kind::NOP, kind::NOP]
                };
                b[at..at + 4].copy_from_slice(&[lead[0], lead[1], kind::TIMESTAMPS, 10]);
                put_u32(b, at + 4, ts.tsval);
                put_u32(b, at + 8, ts.tsecr);
                at += 12;
            }
            (true, None) => {
                b[at..at + 4].copy_from_slice(&[kind::NOP, kind::NOP, kind::SACK_PERMITTED, 2]);
                at += 4;
            }
            (false, None) => {}
        }
        if let Some(ws) = self.window_scale {
            b[at..at + 4].copy_from_slice(&[kind::NOP, kind::WINDOW_SCALE, 3, ws]);
            at += 4;
        }
        let n = self.sack_blocks_emitted();
        if n > 0 {
            b[at..at + 4].copy_from_slice(&[kind::NOP, kind::NOP, kind::SACK, (2 + 8 * n) as u8]);
            at += 4;
            for (l, r) in self.sack_blocks.as_slice().iter().take(n) {
                put_u32(b, at, *l);
                put_u32(b, at + 4, *r);
                at += 8;
            }
        }
    }
}

super::view! {
    /// A view of a TCP segment (the whole IP payload).
    TcpPacket
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// The fixed header fits; the data offset is at least 5 words and no
    /// more than the segment.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(DropReason::Truncated);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN || hl > len {
            return Err(DropReason::BadHeaderLen);
        }
        Ok(())
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SEQ_NUM)
    }

    /// Acknowledgment number.
    pub fn ack_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::ACK_NUM)
    }

    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// Control bits.
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }

    /// Window (unscaled).
    pub fn window_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::WIN_SIZE)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer.
    pub fn urgent_at(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// The option bytes.
    pub fn options(&self) -> &[u8] {
        super::clamp(self.buffer.as_ref(), HEADER_LEN, self.header_len())
    }

    /// The checksum, with the pseudo-header of `src` and `dst`, verifies.
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        let b = self.buffer.as_ref();
        let pseudo = checksum::pseudo_header(src, dst, IpProtocol::TCP, b.len() as u32);
        checksum::combine(&[pseudo, checksum::data(b)]) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> TcpPacket<&'a T> {
    /// The data after the header.
    pub fn payload(&self) -> &'a [u8] {
        let b = self.buffer.as_ref();
        super::clamp(b, self.header_len(), b.len())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Set the source port.
    pub fn set_src_port(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::SRC_PORT, v)
    }

    /// Set the destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::DST_PORT, v)
    }

    /// Set the sequence number.
    pub fn set_seq_number(&mut self, v: u32) {
        put_u32(self.buffer.as_mut(), field::SEQ_NUM, v)
    }

    /// Set the acknowledgment number.
    pub fn set_ack_number(&mut self, v: u32) {
        put_u32(self.buffer.as_mut(), field::ACK_NUM, v)
    }

    /// Set the window.
    pub fn set_window_len(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::WIN_SIZE, v)
    }

    /// Set the checksum field as it is (see [`fill_checksum`](Self::fill_checksum)
    /// and [`checksum::update`] for computing it).
    pub fn set_checksum(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM, v)
    }

    /// Mutable data after the header.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        let b = self.buffer.as_mut();
        let end = b.len();
        super::clamp_mut(b, start, end)
    }

    /// Compute and write the checksum over the whole buffer (the segment).
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let pseudo = checksum::pseudo_header(src, dst, IpProtocol::TCP, b.len() as u32);
        let c = checksum::finish(checksum::combine(&[pseudo, checksum::data(b)]));
        self.set_checksum(c);
    }
}

/// The meaning of a TCP segment.
///
/// Sequence and acknowledgment numbers are plain `u32` on the wire; the
/// state machine compares them with wrapping arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRepr<'a> {
    /// Source port (never 0 when parsed).
    pub src_port: u16,
    /// Destination port (never 0 when parsed).
    pub dst_port: u16,
    /// Control bits (never an illegal combination when parsed).
    pub flags: TcpFlags,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgment number (significant with ACK).
    pub ack_number: u32,
    /// Window, unscaled.
    pub window_len: u16,
    /// Urgent pointer (significant with URG).
    pub urgent_at: u16,
    /// Options.
    pub options: TcpOptions,
    /// Data.
    pub payload: &'a [u8],
}

impl<'a> TcpRepr<'a> {
    /// Parse a segment received from `src` to `dst`.
    ///
    /// - checksum wrong: [`DropReason::BadChecksum`] (RFC 9293 §3.1: the
    ///   checksum is mandatory, MUST-2/3);
    /// - a port 0: [`DropReason::ZeroPort`] (no connection can have it);
    /// - SYN+FIN, SYN+RST, or none of SYN/ACK/RST:
    ///   [`DropReason::IllegalTcpFlags`] (see [`TcpFlags::is_illegal`]);
    /// - an illegal option length: [`DropReason::BadTcpOption`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &TcpPacket<&'a T>,
        src: IpAddr,
        dst: IpAddr,
        checksums: Checksums,
    ) -> Result<TcpRepr<'a>> {
        packet.check_len()?;
        if checksums == Checksums::Verify && !packet.verify_checksum(src, dst) {
            return Err(DropReason::BadChecksum);
        }
        if packet.src_port() == 0 || packet.dst_port() == 0 {
            return Err(DropReason::ZeroPort);
        }
        let flags = packet.flags();
        if flags.is_illegal() {
            return Err(DropReason::IllegalTcpFlags);
        }
        Ok(TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            flags,
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            window_len: packet.window_len(),
            urgent_at: packet.urgent_at(),
            options: TcpOptions::parse(packet.options())?,
            payload: packet.payload(),
        })
    }

    /// Header length with options.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.buffer_len()
    }

    /// Header, options and data.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// The sequence space the segment takes: data, plus one for SYN and
    /// one for FIN (RFC 9293 §3.4).
    pub fn segment_len(&self) -> usize {
        self.payload.len()
            + usize::from(self.flags.contains(TcpFlags::SYN))
            + usize::from(self.flags.contains(TcpFlags::FIN))
    }

    /// Write header, options, data and checksum into the first
    /// [`buffer_len`](Self::buffer_len) bytes of the packet's buffer.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut TcpPacket<T>,
        src: IpAddr,
        dst: IpAddr,
    ) {
        self.emit_with(packet, src, dst, TxChecksums::Full);
    }

    /// [`emit`](Self::emit), the checksum computed in full or left for the
    /// device ([`TxChecksums::Partial`]).
    pub fn emit_with<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut TcpPacket<T>,
        src: IpAddr,
        dst: IpAddr,
        checksums: TxChecksums,
    ) {
        let hl = self.header_len();
        let len = self.buffer_len();
        let mut seg = TcpPacket::new_unchecked(&mut packet.buffer.as_mut()[..len]);
        seg.set_src_port(self.src_port);
        seg.set_dst_port(self.dst_port);
        seg.set_seq_number(self.seq_number);
        seg.set_ack_number(self.ack_number);
        let b = &mut *seg.buffer;
        b[field::DATA_OFF] = ((hl / 4) as u8) << 4;
        b[field::FLAGS] = self.flags.0;
        put_u16(b, field::URGENT, self.urgent_at);
        self.options.emit(&mut b[HEADER_LEN..hl]);
        b[hl..].copy_from_slice(self.payload);
        seg.set_window_len(self.window_len);
        match checksums {
            TxChecksums::Full => seg.fill_checksum(src, dst),
            TxChecksums::Partial => seg.set_checksum(checksum::pseudo_header(
                src,
                dst,
                IpProtocol::TCP,
                len as u32,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 9, 1));
    const DST: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 9, 2));

    fn syn() -> TcpRepr<'static> {
        TcpRepr {
            src_port: 49152,
            dst_port: 80,
            flags: TcpFlags::SYN,
            seq_number: 0xfedc_ba98,
            ack_number: 0,
            window_len: 64240,
            urgent_at: 0,
            options: TcpOptions {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamps: Some(Timestamps { tsval: 1, tsecr: 0 }),
                sack_blocks: SackBlocks::default(),
            },
            payload: b"",
        }
    }

    fn emit(r: &TcpRepr) -> Vec<u8> {
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut TcpPacket::new_unchecked(&mut b[..]), SRC, DST);
        b
    }

    fn parse(b: &[u8]) -> Result<TcpRepr<'_>> {
        TcpRepr::parse(&TcpPacket::new_checked(b)?, SRC, DST, Checksums::Verify)
    }

    #[test]
    fn syn_roundtrip_is_linux_layout() {
        let b = emit(&syn());
        assert_eq!(b.len(), 40);
        // MSS, SACK-permitted + TS, NOP + WS: what Linux sends on a SYN.
        assert_eq!(&b[20..24], &[2, 4, 0x05, 0xb4]);
        assert_eq!(&b[24..28], &[4, 2, 8, 10]);
        assert_eq!(&b[36..40], &[1, 3, 3, 7]);
        assert_eq!(parse(&b), Ok(syn()));
        assert_eq!(syn().segment_len(), 1);
    }

    #[test]
    fn the_timestamps_layout_read_at_once_is_what_the_walk_reads() {
        let ts = [1, 1, 8, 10, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0];
        let fast = TcpOptions::parse(&ts).unwrap();
        assert_eq!(fast, TcpOptions::walk(&ts).unwrap());
        assert_eq!(
            fast.timestamps,
            Some(Timestamps {
                tsval: 0x1234_5678,
                tsecr: 0x9abc_def0
            })
        );
        // near misses take the walk, and agree with it
        let mut longer = ts.to_vec();
        longer.extend([1, 1, 1, 0]);
        let mut bad_len = ts;
        bad_len[3] = 9;
        for b in [&longer[..], &bad_len[..], &ts[..11], &ts[..4]] {
            assert_eq!(TcpOptions::parse(b), TcpOptions::walk(b), "{b:?}");
        }
    }

    #[test]
    fn sack_blocks_fit_beside_timestamps() {
        let mut r = syn();
        r.flags = TcpFlags::ACK;
        r.options = TcpOptions {
            timestamps: Some(Timestamps { tsval: 5, tsecr: 6 }),
            sack_blocks: SackBlocks::new(&[(1, 2), (3, 4), (5, 6), (7, 8)]),
            ..TcpOptions::default()
        };
        r.payload = b"data";
        let b = emit(&r);
        assert_eq!(r.header_len(), 60);
        let parsed = parse(&b).unwrap();
        // Only three blocks fit beside timestamps (RFC 2018 §3).
        assert_eq!(
            parsed.options.sack_blocks.as_slice(),
            &[(1, 2), (3, 4), (5, 6)]
        );
        assert_eq!(parsed.payload, b"data");
    }

    #[test]
    fn illegal_flags_and_ports() {
        for flags in [
            TcpFlags::SYN | TcpFlags::FIN,
            TcpFlags::SYN | TcpFlags::RST,
            TcpFlags::FIN,
            TcpFlags(0),
        ] {
            let mut r = syn();
            r.flags = flags;
            assert_eq!(
                parse(&emit(&r)),
                Err(DropReason::IllegalTcpFlags),
                "{flags:?}"
            );
        }
        let mut r = syn();
        r.dst_port = 0;
        assert_eq!(parse(&emit(&r)), Err(DropReason::ZeroPort));
        let mut b = emit(&syn());
        b[30] ^= 1;
        assert_eq!(parse(&b), Err(DropReason::BadChecksum));
    }

    fn with_options(opts: &[u8]) -> Vec<u8> {
        assert_eq!(opts.len() % 4, 0);
        let mut r = syn();
        r.options = TcpOptions::default();
        let mut b = emit(&r);
        b.splice(20..20, opts.iter().copied());
        b[12] = (((20 + opts.len()) / 4) as u8) << 4;
        TcpPacket::new_unchecked(&mut b[..]).fill_checksum(SRC, DST);
        b
    }

    #[test]
    fn illegal_option_lengths_are_rejected() {
        for opts in [
            &[3, 0, 0, 0][..],         // zero length (MUST-7)
            &[3, 1, 0, 0],             // length 1
            &[30, 8, 0, 0],            // past the header
            &[1, 1, 1, 30],            // no length byte (MUST-68)
            &[2, 3, 0, 0],             // MSS of length 3
            &[1, 3, 2, 0],             // window scale of length 2
            &[5, 2, 1, 1],             // SACK with no block
            &[8, 6, 0, 0, 0, 0, 1, 1], // timestamps of length 6
        ] {
            assert_eq!(
                parse(&with_options(opts)),
                Err(DropReason::BadTcpOption),
                "{opts:?}"
            );
        }
    }

    #[test]
    fn unknown_options_are_skipped_and_eol_ends() {
        // Unknown kind 30 of length 4, then MSS, then EOL and garbage padding.
        let b = with_options(&[30, 4, 9, 9, 2, 4, 0x02, 0x18, 0, 0xff, 0xff, 0xff]);
        let r = parse(&b).unwrap();
        assert_eq!(r.options.mss, Some(536));
        let opts: Vec<_> = TcpOptionsIter::new(&b[20..32]).collect();
        assert_eq!(
            opts[0],
            Ok(TcpOption::Unknown {
                kind: 30,
                data: &[9, 9]
            })
        );
        assert_eq!(opts.last(), Some(&Ok(TcpOption::EndOfList)));
    }

    #[test]
    fn bad_data_offset() {
        let mut b = emit(&syn());
        b[12] = 4 << 4;
        assert_eq!(parse(&b), Err(DropReason::BadHeaderLen));
        b[12] = 15 << 4;
        assert_eq!(parse(&b), Err(DropReason::BadHeaderLen));
        assert_eq!(parse(&b[..19]), Err(DropReason::Truncated));
    }
}
