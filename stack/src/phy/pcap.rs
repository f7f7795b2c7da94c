//! A pcap writer: middleware that records every frame a device receives
//! and transmits, in the classic pcap format (microsecond timestamps,
//! Ethernet link type) that tcpdump and Wireshark read.
//!
//! The stack does no I/O: the bytes go to a [`PcapSink`] the caller
//! supplies (a `Vec<u8>` here, a file or a ring buffer in the harness), and
//! the time stamped on each record is the one last given to
//! [`PcapWriter::set_now`].

use super::{Device, DeviceCaps};
use crate::time::Instant;

/// Where pcap bytes go.
pub trait PcapSink {
    /// Append `bytes`.
    fn write(&mut self, bytes: &[u8]);
}

impl PcapSink for Vec<u8> {
    fn write(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// The pcap magic number (microsecond timestamps), written little-endian.
pub const PCAP_MAGIC: u32 = 0xa1b2_c3d4;
/// Link type 1: Ethernet.
const LINKTYPE_ETHERNET: u32 = 1;
/// Bytes of a frame recorded, at most.
const SNAPLEN: u32 = 65535;

/// Which frames to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcapMode {
    /// Received and transmitted frames.
    Both,
    /// Received frames only.
    Rx,
    /// Transmitted frames only.
    Tx,
}

/// Wraps a device and records its frames into a [`PcapSink`].
#[derive(Debug)]
pub struct PcapWriter<D, S> {
    inner: D,
    sink: S,
    mode: PcapMode,
    now: Instant,
}

fn record<S: PcapSink>(sink: &mut S, now: Instant, frame: &[u8]) {
    let micros = now.micros();
    let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
    let kept = len.min(SNAPLEN);
    let mut header = [0u8; 16];
    header[0..4].copy_from_slice(&((micros / 1_000_000) as u32).to_le_bytes());
    header[4..8].copy_from_slice(&((micros % 1_000_000) as u32).to_le_bytes());
    header[8..12].copy_from_slice(&kept.to_le_bytes());
    header[12..16].copy_from_slice(&len.to_le_bytes());
    sink.write(&header);
    sink.write(&frame[..kept as usize]);
}

impl<D: Device, S: PcapSink> PcapWriter<D, S> {
    /// Wrap `inner`, writing the pcap file header to `sink` now.
    pub fn new(inner: D, mut sink: S, mode: PcapMode) -> PcapWriter<D, S> {
        let mut header = [0u8; 24];
        header[0..4].copy_from_slice(&PCAP_MAGIC.to_le_bytes());
        header[4..6].copy_from_slice(&2u16.to_le_bytes());
        header[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay 0.
        header[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        header[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        sink.write(&header);
        PcapWriter {
            inner,
            sink,
            mode,
            now: Instant::ZERO,
        }
    }

    /// The time stamped on the frames recorded from now on (call it with
    /// the time passed to the interface's poll).
    pub fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    /// The sink.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// The wrapped device.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The wrapped device, mutably.
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// The device and the sink back.
    pub fn into_parts(self) -> (D, S) {
        (self.inner, self.sink)
    }
}

impl<D: Device, S: PcapSink> Device for PcapWriter<D, S> {
    fn caps(&self) -> DeviceCaps {
        self.inner.caps()
    }

    fn receive<F: FnMut(&[u8])>(&mut self, budget: usize, mut f: F) -> usize {
        let (keep, now) = (self.mode != PcapMode::Tx, self.now);
        let sink = &mut self.sink;
        self.inner.receive(budget, |frame| {
            if keep {
                record(sink, now, frame);
            }
            f(frame);
        })
    }

    fn transmit<F: FnOnce(&mut [u8]) -> usize>(&mut self, f: F) -> bool {
        let (keep, now) = (self.mode != PcapMode::Rx, self.now);
        let sink = &mut self.sink;
        self.inner.transmit(|buf| {
            let n = f(buf).min(buf.len());
            if keep && n > 0 {
                record(sink, now, &buf[..n]);
            }
            n
        })
    }

    fn flush(&mut self) {
        self.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phy::Loopback;

    #[test]
    fn records_both_ways_in_pcap_format() {
        let (a, mut b) = Loopback::pair(1500, 16);
        let mut w = PcapWriter::new(a, Vec::new(), PcapMode::Both);
        w.set_now(Instant::from_micros(3_000_042));
        assert!(w.transmit(|buf| {
            buf[..3].copy_from_slice(b"out");
            3
        }));
        w.flush();
        b.transmit(|buf| {
            buf[..2].copy_from_slice(b"in");
            2
        });
        b.flush();
        assert_eq!(w.receive(8, |f| assert_eq!(f, b"in")), 1);
        let bytes = w.sink();
        assert_eq!(&bytes[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(&bytes[20..24], &[1, 0, 0, 0]);
        // Record 1: 3 s + 42 µs, 3 bytes, "out".
        let r = &bytes[24..];
        assert_eq!(&r[0..4], &3u32.to_le_bytes());
        assert_eq!(&r[4..8], &42u32.to_le_bytes());
        assert_eq!(&r[8..12], &3u32.to_le_bytes());
        assert_eq!(&r[16..19], b"out");
        // Record 2: "in".
        let r = &r[19..];
        assert_eq!(&r[8..12], &2u32.to_le_bytes());
        assert_eq!(&r[16..18], b"in");
        assert_eq!(r.len(), 18);
    }
}
