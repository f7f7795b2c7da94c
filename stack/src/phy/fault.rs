//! A fault-injecting wrapper: loses, duplicates, reorders and corrupts the
//! frames a device receives, each with its own probability, decided by a
//! seeded [`Rng`] so that a failing run can be replayed exactly.

use super::{Device, DeviceCaps};

/// A small deterministic random generator (SplitMix64): not for secrets,
/// only for decisions that a test must be able to replay from its seed.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose sequence is fixed by `seed`.
    pub const fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `true` with probability `p` (0 never, 1 always).
    pub fn chance(&mut self, p: f64) -> bool {
        // 53 random bits as a fraction in [0, 1).
        let x = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        x < p
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// Probabilities, per received frame, of each fault.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Faults {
    /// The frame is lost.
    pub loss: f64,
    /// The frame arrives twice.
    pub duplicate: f64,
    /// The frame is held back and arrives after the next one.
    pub reorder: f64,
    /// One byte of the frame is changed (checksums should catch it).
    pub corrupt: f64,
}

/// What the injector did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultStats {
    /// Frames received from the inner device.
    pub frames: u64,
    /// Frames lost.
    pub lost: u64,
    /// Frames delivered twice.
    pub duplicated: u64,
    /// Frames held back behind a later one.
    pub reordered: u64,
    /// Frames with a byte changed.
    pub corrupted: u64,
}

/// Wraps a device and injects [`Faults`] into what it receives. Transmits
/// pass through untouched (put one injector at each end to fault both
/// directions).
#[derive(Debug)]
pub struct FaultInjector<D> {
    inner: D,
    faults: Faults,
    rng: Rng,
    stats: FaultStats,
    /// A frame held back to be delivered after the next one.
    held: Option<Vec<u8>>,
    /// Scratch buffer for a corrupted copy.
    scratch: Vec<u8>,
}

impl<D: Device> FaultInjector<D> {
    /// Wrap `inner`, deciding faults with a generator seeded by `seed`.
    pub fn new(inner: D, faults: Faults, seed: u64) -> FaultInjector<D> {
        FaultInjector {
            inner,
            faults,
            rng: Rng::new(seed),
            stats: FaultStats::default(),
            held: None,
            scratch: Vec::new(),
        }
    }

    /// What was injected so far.
    pub fn stats(&self) -> FaultStats {
        self.stats
    }

    /// The wrapped device.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The wrapped device, mutably.
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// Change the probabilities (e.g. to end a lossy phase).
    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
    }
}

impl<D: Device> Device for FaultInjector<D> {
    fn caps(&self) -> DeviceCaps {
        self.inner.caps()
    }

    fn receive<F: FnMut(&[u8])>(&mut self, budget: usize, mut f: F) -> usize {
        let FaultInjector {
            inner,
            faults,
            rng,
            stats,
            held,
            scratch,
        } = self;
        let mut delivered = 0;
        let got = inner.receive(budget, |frame| {
            stats.frames += 1;
            if rng.chance(faults.loss) {
                stats.lost += 1;
                return;
            }
            let mut bytes = frame;
            if rng.chance(faults.corrupt) && !frame.is_empty() {
                stats.corrupted += 1;
                scratch.clear();
                scratch.extend_from_slice(frame);
                let at = rng.below(scratch.len());
                scratch[at] ^= 1 + (rng.next_u64() % 255) as u8;
                bytes = scratch;
            }
            if held.is_none() && rng.chance(faults.reorder) {
                stats.reordered += 1;
                *held = Some(bytes.to_vec());
                return;
            }
            let copies = if rng.chance(faults.duplicate) {
                stats.duplicated += 1;
                2
            } else {
                1
            };
            for _ in 0..copies {
                f(bytes);
                delivered += 1;
            }
            if let Some(h) = held.take() {
                f(&h);
                delivered += 1;
            }
        });
        // Nothing came after a held frame: let it go rather than hold it
        // forever.
        if got == 0 {
            if let Some(h) = held.take() {
                f(&h);
                delivered += 1;
            }
        }
        delivered
    }

    fn transmit<F: FnOnce(&mut [u8]) -> usize>(&mut self, f: F) -> bool {
        self.inner.transmit(f)
    }

    fn flush(&mut self) {
        self.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phy::Loopback;

    fn run(faults: Faults, seed: u64) -> (Vec<Vec<u8>>, FaultStats) {
        let (mut a, b) = Loopback::pair(1500, 4096);
        let mut b = FaultInjector::new(b, faults, seed);
        for i in 0..1000u16 {
            a.transmit(|buf| {
                buf[..2].copy_from_slice(&i.to_be_bytes());
                2
            });
        }
        a.flush();
        let mut got = Vec::new();
        while b.receive(64, |f| got.push(f.to_vec())) > 0 {}
        (got, b.stats())
    }

    #[test]
    fn same_seed_same_faults_and_rates_near_asked() {
        let faults = Faults {
            loss: 0.1,
            duplicate: 0.05,
            reorder: 0.05,
            corrupt: 0.05,
        };
        let (x, sx) = run(faults, 7);
        let (y, sy) = run(faults, 7);
        assert_eq!(x, y);
        assert_eq!(sx, sy);
        assert_eq!(sx.frames, 1000);
        assert!((60..140).contains(&sx.lost), "{sx:?}");
        assert!((20..80).contains(&sx.duplicated), "{sx:?}");
        assert_eq!(x.len() as u64, 1000 - sx.lost + sx.duplicated);
        let (z, _) = run(faults, 8);
        assert_ne!(x, z);
    }

    #[test]
    fn no_faults_is_transparent() {
        let (x, s) = run(Faults::default(), 1);
        let want: Vec<Vec<u8>> = (0..1000u16).map(|i| i.to_be_bytes().to_vec()).collect();
        assert_eq!(x, want);
        assert_eq!(s.lost + s.duplicated + s.reordered + s.corrupted, 0);
    }
}
