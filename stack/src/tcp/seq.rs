//! Sequence numbers: 32-bit, compared modulo 2^32 (RFC 9293 §3.4).
//!
//! There is no `PartialOrd`: "before" on a circle is not transitive, so it
//! must not pretend to be an order. Comparisons are named methods, and every
//! operation is total — `a - b` is a wrapping signed distance and never
//! panics, whatever the two numbers are (smoltcp's subtraction panicked in
//! production, its issues #489 and #1048).

use core::fmt;
use core::ops::{Add, AddAssign, Sub};

/// A TCP sequence (or acknowledgment) number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// `self` comes strictly before `other`: `0 < other - self < 2^31`
    /// (RFC 9293 §3.4, "SEG.SEQ < RCV.NXT" and the like).
    pub const fn lt(self, other: SeqNumber) -> bool {
        (self.0.wrapping_sub(other.0) as i32) < 0
    }

    /// `self` is before or equal to `other`.
    pub const fn le(self, other: SeqNumber) -> bool {
        (self.0.wrapping_sub(other.0) as i32) <= 0
    }

    /// `self` comes strictly after `other`.
    pub const fn gt(self, other: SeqNumber) -> bool {
        other.lt(self)
    }

    /// `self` is after or equal to `other`.
    pub const fn ge(self, other: SeqNumber) -> bool {
        other.le(self)
    }

    /// `self` lies in `[start, start + len)` (an empty window holds nothing).
    pub const fn in_window(self, start: SeqNumber, len: u32) -> bool {
        self.0.wrapping_sub(start.0) < len
    }

    /// Bytes from `earlier` forward to `self`, modulo 2^32 (what
    /// `self - earlier` is when `earlier` is known not to be after `self`).
    pub const fn since(self, earlier: SeqNumber) -> u32 {
        self.0.wrapping_sub(earlier.0)
    }

    /// The later of the two.
    pub const fn max(self, other: SeqNumber) -> SeqNumber {
        if self.lt(other) {
            other
        } else {
            self
        }
    }

    /// The earlier of the two.
    pub const fn min(self, other: SeqNumber) -> SeqNumber {
        if self.lt(other) {
            self
        } else {
            other
        }
    }
}

impl Add<u32> for SeqNumber {
    type Output = SeqNumber;
    fn add(self, n: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(n))
    }
}

impl Add<usize> for SeqNumber {
    type Output = SeqNumber;
    /// Adds `n` modulo 2^32 (a length beyond 2^32 cannot be in flight).
    fn add(self, n: usize) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(n as u32))
    }
}

impl AddAssign<u32> for SeqNumber {
    fn add_assign(&mut self, n: u32) {
        *self = *self + n;
    }
}

impl AddAssign<usize> for SeqNumber {
    fn add_assign(&mut self, n: usize) {
        *self = *self + n;
    }
}

impl Sub for SeqNumber {
    type Output = i32;
    /// The signed distance from `rhs` to `self`, wrapping: never panics.
    fn sub(self, rhs: SeqNumber) -> i32 {
        self.0.wrapping_sub(rhs.0) as i32
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn s(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    #[test]
    fn comparisons_wrap() {
        assert!(s(u32::MAX).lt(s(0)));
        assert!(s(0).gt(s(u32::MAX)));
        assert!(s(5).le(s(5)) && s(5).ge(s(5)));
        assert!(s(0xffff_fff0).lt(s(0x10)));
        assert_eq!(s(0x10) - s(0xffff_fff0), 0x20);
        assert_eq!(s(0xffff_fff0) - s(0x10), -0x20);
        assert_eq!(s(3) + 0xffff_ffffu32, s(2));
        assert_eq!(s(0x10).since(s(0xffff_fff0)), 0x20);
        assert!(s(2).in_window(s(u32::MAX), 4));
        assert!(!s(3).in_window(s(u32::MAX), 4));
        assert!(!s(3).in_window(s(3), 0));
        assert_eq!(s(1).max(s(u32::MAX)), s(1));
        assert_eq!(s(1).min(s(u32::MAX)), s(u32::MAX));
    }

    #[test]
    fn subtraction_is_total() {
        // Every pair, including the two antipodes, subtracts without panic.
        for (a, b) in [
            (0, 0x8000_0000),
            (0x8000_0000, 0),
            (u32::MAX, 0),
            (0, u32::MAX),
        ] {
            let d = s(a) - s(b);
            assert_eq!(s(b) + (d as u32), s(a));
        }
    }
}
