//! Which bytes past the next expected one have arrived.

/// The segment would need more separate ranges than the assembler keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyHoles;

/// Up to `N` received ranges, as offsets from the next byte expected in
/// order, sorted and never touching each other. A fixed array: no
/// allocation, and a peer cannot make it grow.
#[derive(Debug, Clone, Default)]
pub struct Assembler {
    ranges: [(u32, u32); Assembler::MAX],
    count: usize,
}

impl Assembler {
    /// Ranges kept.
    pub const MAX: usize = 32;

    /// Nothing out of order.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The ranges held, as (start, end) offsets.
    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.ranges[..self.count]
    }

    /// Record bytes `start..end`; merges with neighbours.
    pub fn add(&mut self, start: u32, end: u32) -> Result<(), TooManyHoles> {
        if start >= end {
            return Ok(());
        }
        let (mut s, mut e) = (start, end);
        // Ranges that touch or overlap [s, e] merge into it.
        let first = self.ranges[..self.count]
            .iter()
            .position(|r| r.1 >= s)
            .unwrap_or(self.count);
        let mut last = first;
        while last < self.count && self.ranges[last].0 <= e {
            s = s.min(self.ranges[last].0);
            e = e.max(self.ranges[last].1);
            last += 1;
        }
        let merged = last - first;
        if merged == 0 && self.count == Self::MAX {
            return Err(TooManyHoles);
        }
        // Replace ranges[first..last] with the one (s, e).
        if merged == 0 {
            self.ranges.copy_within(first..self.count, first + 1);
            self.count += 1;
        } else {
            self.ranges.copy_within(last..self.count, first + 1);
            self.count -= merged - 1;
        }
        self.ranges[first] = (s, e);
        Ok(())
    }

    /// If bytes from offset 0 have arrived, remove that range and return its
    /// length, shifting every other offset down by it; else 0.
    pub fn take_front(&mut self) -> u32 {
        if self.count == 0 || self.ranges[0].0 != 0 {
            return 0;
        }
        let n = self.ranges[0].1;
        self.ranges.copy_within(1..self.count, 0);
        self.count -= 1;
        for r in &mut self.ranges[..self.count] {
            r.0 -= n;
            r.1 -= n;
        }
        n
    }

    /// Shift every offset down by `n` bytes that arrived in order (ranges
    /// below `n` are dropped).
    pub fn advance(&mut self, n: u32) {
        let mut kept = 0;
        for i in 0..self.count {
            let (s, e) = self.ranges[i];
            if e > n {
                self.ranges[kept] = (s.saturating_sub(n), e - n);
                kept += 1;
            }
        }
        self.count = kept;
    }

    /// Bytes held in all ranges.
    pub fn bytes(&self) -> u32 {
        self.ranges().iter().map(|r| r.1 - r.0).sum()
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_takes_the_front() {
        let mut a = Assembler::default();
        a.add(10, 20).unwrap();
        a.add(30, 40).unwrap();
        a.add(20, 25).unwrap();
        assert_eq!(a.ranges(), &[(10, 25), (30, 40)]);
        a.add(5, 35).unwrap();
        assert_eq!(a.ranges(), &[(5, 40)]);
        assert_eq!(a.take_front(), 0);
        a.add(0, 5).unwrap();
        assert_eq!(a.take_front(), 40);
        assert!(a.is_empty());
        for i in 0..Assembler::MAX as u32 {
            a.add(10 * i + 1, 10 * i + 2).unwrap();
        }
        let beyond = 10 * Assembler::MAX as u32 + 100;
        assert_eq!(a.add(beyond, beyond + 1), Err(TooManyHoles));
        a.add(2, 11).unwrap();
        assert_eq!(a.ranges().len(), Assembler::MAX - 1);
        a.advance(5);
        assert_eq!(a.ranges()[0], (0, 7));
    }
}
