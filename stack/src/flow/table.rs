//! An open-addressing hash table with preallocated capacity and a bounded
//! probe length: Robin Hood linear probing with backward-shift deletion.
//!
//! Why not `std::collections::HashMap` or hashbrown's tables: both grow (an
//! allocation, and a rehash of every flow, in the middle of the data path)
//! and neither bounds how far a lookup probes. This table allocates once, in
//! [`Table::with_capacity`], at twice the capacity in slots (load factor at
//! most 1/2), and never again; an insert that would have to probe further
//! than [`MAX_PROBE`] slots is refused instead of slowing every lookup.
//! Entries sit inline in their slot, so a hit costs one cache line in the
//! common case; the 32 hash bits kept in each slot give each slot's home,
//! which is what lets a miss stop early (a resident closer to its home than
//! the probe is to ours proves the key absent) and lets a removal shift the
//! following entries back instead of leaving tombstones.
//! `benches/stack.rs` compares it with std's and hashbrown's maps.

use super::hash::{FlowHasher, TableKey};

/// The furthest a key may sit from its home slot. At a load of 1/2 Robin
/// Hood probing keeps the longest displacement of a million random keys
/// near 10; 32 is reached only by colliding keys, which the keyed hash
/// makes an attacker unable to produce on purpose.
pub const MAX_PROBE: usize = 32;

/// Why an insert was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// The table holds its capacity.
    Full,
    /// The key's neighbourhood is too crowded: placing it would put some key
    /// more than [`MAX_PROBE`] slots from its home.
    ProbeLimit,
}

impl core::fmt::Display for InsertError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            InsertError::Full => "flow table full",
            InsertError::ProbeLimit => "flow table probe limit reached",
        })
    }
}

impl std::error::Error for InsertError {}

/// Tags read at once: one `u64`.
const GROUP: usize = 8;

/// A mask with the high bit of each zero byte of `w` set. Bytes above a
/// zero byte may be flagged too (the borrow runs upwards), so the lowest
/// flag is exact and the others are candidates to confirm, which is how
/// `find` uses them.
#[inline(always)]
fn zero_bytes(w: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    w.wrapping_sub(LO) & !w & HI
}

/// The tag byte of a hash: its top 8 bits (the home comes from the low
/// bits), never 0, which marks an empty slot.
#[inline(always)]
fn tag_of(hash: u64) -> u8 {
    ((hash >> 56) as u8).max(1)
}

#[derive(Debug, Clone)]
struct Slot<K, V> {
    /// The low 32 bits of the key's hash: its home slot, and a cheap
    /// filter before the full key comparison.
    hash: u32,
    key: K,
    value: V,
}

/// A fixed-capacity map from keys to values (socket handles).
#[derive(Clone)]
pub struct Table<K, V> {
    /// One byte per slot: 0 for empty, else 8 bits of the key's hash taken
    /// apart from the bits that choose its home. A lookup scans these eight
    /// at a time, and touches a slot only when its byte matches: a miss
    /// usually reads one word of this small array and no slot at all. The
    /// first [`GROUP`] bytes are mirrored after the end, so a group read
    /// near the end needs no wrap-around.
    tags: Box<[u8]>,
    slots: Box<[Option<Slot<K, V>>]>,
    mask: usize,
    len: usize,
    capacity: usize,
    hasher: FlowHasher,
}

impl<K, V> core::fmt::Debug for Table<K, V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Table")
            .field("len", &self.len)
            .field("capacity", &self.capacity)
            .field("slots", &self.slots.len())
            .finish()
    }
}

impl<K: TableKey, V> Table<K, V> {
    /// A table for up to `capacity` entries, allocated now and never again.
    /// Slots: the next power of two at or above twice the capacity (at
    /// least 8), so that the load stays at or under 1/2.
    ///
    /// # Panics
    /// When the slot count overflows `usize` or exceeds 2^31 (the slot's
    /// 32 hash bits address its home): a configuration error at start-up.
    pub fn with_capacity(capacity: usize, hasher: FlowHasher) -> Table<K, V> {
        let n = capacity
            .checked_mul(2)
            .and_then(usize::checked_next_power_of_two)
            .expect("flow table capacity overflows")
            .max(8);
        assert!(n <= 1 << 31, "flow table of {n} slots is over 2^31");
        let slots: Vec<Option<Slot<K, V>>> = (0..n).map(|_| None).collect();
        Table {
            tags: vec![0; n + GROUP].into_boxed_slice(),
            slots: slots.into_boxed_slice(),
            mask: n - 1,
            len: 0,
            capacity,
            hasher,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most entries the table takes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The hasher (and so the secret) of this table.
    pub fn hasher(&self) -> &FlowHasher {
        &self.hasher
    }

    #[inline(always)]
    fn home(&self, hash: u32) -> usize {
        hash as usize & self.mask
    }

    /// How far the resident of slot `i` with `hash` sits from its home.
    #[inline(always)]
    fn displacement(&self, i: usize, hash: u32) -> usize {
        i.wrapping_sub(self.home(hash)) & self.mask
    }

    #[inline]
    fn find(&self, key: &K) -> Option<usize> {
        let full = key.table_hash(&self.hasher);
        let (hash, tag) = (full as u32, tag_of(full));
        let mut i = self.home(hash);
        let wanted = u64::from_ne_bytes([tag; GROUP]);
        // No key sits further than MAX_PROBE from its home, so the scan is
        // bounded; it ends sooner at the first empty slot.
        let mut scanned = 0;
        while scanned <= MAX_PROBE {
            let mut group = [0u8; GROUP];
            group.copy_from_slice(&self.tags[i..i + GROUP]);
            // Little-endian: byte k of the group is bits 8k..8k+8.
            let word = u64::from_le_bytes(group);
            // The first slot of the group on its own, by a branch: when it
            // matches (most hits sit at their home) the slot's address does
            // not wait for the tag word, so the CPU can fetch tag and slot
            // at once instead of one after the other.
            if word as u8 == tag {
                if let Some(slot) = &self.slots[i] {
                    if slot.hash == hash && slot.key == *key {
                        return Some(i);
                    }
                }
            }
            let empty = zero_bytes(word);
            // Only bytes before the first empty one count: the exact first
            // zero is the lowest bit of `empty` (see `zero_bytes`).
            let before_empty = if empty == 0 {
                u64::MAX
            } else {
                (empty & empty.wrapping_neg()) - 1
            };
            let mut matches = zero_bytes(word ^ wanted) & before_empty & !0x80;
            while matches != 0 {
                let j = (i + (matches.trailing_zeros() / 8) as usize) & self.mask;
                if let Some(slot) = &self.slots[j] {
                    if slot.hash == hash && slot.key == *key {
                        return Some(j);
                    }
                }
                matches &= matches - 1;
            }
            if empty != 0 {
                return None;
            }
            scanned += GROUP;
            i = (i + GROUP) & self.mask;
        }
        None
    }

    /// Set the tag of slot `i`, and its mirror past the end.
    #[inline]
    fn set_tag(&mut self, i: usize, tag: u8) {
        self.tags[i] = tag;
        if i < GROUP {
            self.tags[self.mask + 1 + i] = tag;
        }
    }

    /// The value of `key`.
    #[inline]
    pub fn get(&self, key: &K) -> Option<&V> {
        let i = self.find(key)?;
        self.slots[i].as_ref().map(|s| &s.value)
    }

    /// The value of `key`, to change.
    #[inline]
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let i = self.find(key)?;
        self.slots[i].as_mut().map(|s| &mut s.value)
    }

    /// Whether `key` is present.
    #[inline]
    pub fn contains_key(&self, key: &K) -> bool {
        self.find(key).is_some()
    }

    /// Insert or replace. Returns the replaced value. Never allocates.
    pub fn insert(&mut self, key: K, value: V) -> Result<Option<V>, InsertError> {
        if let Some(i) = self.find(&key) {
            return Ok(self.slots[i]
                .as_mut()
                .map(|s| core::mem::replace(&mut s.value, value)));
        }
        if self.len >= self.capacity {
            return Err(InsertError::Full);
        }
        let full = key.table_hash(&self.hasher);
        let hash = full as u32;
        // Where the key goes: the first slot that is empty or whose resident
        // is closer to its home than we are to ours.
        let mut at = self.home(hash);
        let mut dist = 0;
        while let Some(slot) = &self.slots[at] {
            if self.displacement(at, slot.hash) < dist {
                break;
            }
            at = (at + 1) & self.mask;
            dist += 1;
            if dist > MAX_PROBE {
                return Err(InsertError::ProbeLimit);
            }
        }
        // Everything from there to the next empty slot moves up by one:
        // check first that none goes past the limit, so a refusal changes
        // nothing. The load of 1/2 guarantees an empty slot.
        let mut end = at;
        while let Some(slot) = &self.slots[end] {
            if self.displacement(end, slot.hash) + 1 > MAX_PROBE {
                return Err(InsertError::ProbeLimit);
            }
            end = (end + 1) & self.mask;
        }
        while end != at {
            let prev = end.wrapping_sub(1) & self.mask;
            self.slots[end] = self.slots[prev].take();
            self.set_tag(end, self.tags[prev]);
            end = prev;
        }
        self.slots[at] = Some(Slot { hash, key, value });
        self.set_tag(at, tag_of(full));
        self.len += 1;
        Ok(None)
    }

    /// Remove `key`; returns its value. Following entries shift back, so no
    /// tombstone is left and every displacement stays within the limit.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let mut hole = self.find(key)?;
        let removed = self.slots[hole].take();
        self.set_tag(hole, 0);
        let mut next = (hole + 1) & self.mask;
        while let Some(slot) = &self.slots[next] {
            if self.displacement(next, slot.hash) == 0 {
                break;
            }
            self.slots[hole] = self.slots[next].take();
            self.set_tag(hole, self.tags[next]);
            self.set_tag(next, 0);
            hole = next;
            next = (next + 1) & self.mask;
        }
        self.len -= 1;
        removed.map(|s| s.value)
    }

    /// Every entry, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.slots.iter().flatten().map(|s| (&s.key, &s.value))
    }

    /// Remove every entry (keeps the allocation).
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
        self.tags.iter_mut().for_each(|t| *t = 0);
        self.len = 0;
    }

    /// The largest distance of any entry from its home: a health figure for
    /// reports and tests.
    pub fn max_displacement(&self) -> usize {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| self.displacement(i, s.hash)))
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::test_key as key;
    use std::collections::HashMap;

    /// A key type whose hash the test chooses, to force collisions.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Aimed(u64, u32);
    impl TableKey for Aimed {
        fn table_hash(&self, _: &FlowHasher) -> u64 {
            self.0
        }
    }

    #[test]
    fn insert_get_remove() {
        let mut t = Table::with_capacity(100, FlowHasher::new([7; 4]));
        for i in 0..100 {
            assert_eq!(t.insert(key(i), i), Ok(None));
        }
        assert_eq!(t.insert(key(1000), 0), Err(InsertError::Full));
        assert_eq!(t.insert(key(5), 55), Ok(Some(5)));
        assert_eq!(t.len(), 100);
        for i in (0..100).step_by(2) {
            assert!(t.remove(&key(i)).is_some());
        }
        assert_eq!(t.remove(&key(0)), None);
        for i in 0..100 {
            let want = if i % 2 == 0 {
                None
            } else if i == 5 {
                Some(&55)
            } else {
                Some(&i)
            };
            assert_eq!(t.get(&key(i)), want, "key {i}");
        }
        assert_eq!(t.len(), 50);
        assert_eq!(t.iter().count(), 50);
    }

    #[test]
    fn agrees_with_a_hashmap_under_churn() {
        // A deterministic pseudo-random sequence of inserts and removes.
        let mut t = Table::with_capacity(512, FlowHasher::new([1, 2, 3, 4]));
        let mut m = HashMap::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for step in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = key((x % 900) as u32);
            if x & (1 << 40) != 0 {
                if m.len() < 512 || m.contains_key(&k) {
                    assert_eq!(t.insert(k, step).ok(), Some(m.insert(k, step)));
                }
            } else {
                assert_eq!(t.remove(&k), m.remove(&k));
            }
            assert_eq!(t.len(), m.len());
        }
        for (k, v) in &m {
            assert_eq!(t.get(k), Some(v));
        }
        assert!(t.max_displacement() <= MAX_PROBE);
    }

    #[test]
    fn aimed_collisions_hit_the_probe_limit_not_the_lookup_cost() {
        let mut t = Table::with_capacity(1024, FlowHasher::new([0; 4]));
        let mut refused = 0;
        for i in 0..200 {
            match t.insert(Aimed(42, i), i) {
                Ok(None) => {}
                Err(InsertError::ProbeLimit) => refused += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(t.len(), MAX_PROBE + 1);
        assert_eq!(refused, 200 - (MAX_PROBE + 1));
        assert_eq!(t.max_displacement(), MAX_PROBE);
        // A refused insert changed nothing; everything inserted is found.
        for i in 0..=MAX_PROBE as u32 {
            assert_eq!(t.get(&Aimed(42, i)), Some(&i));
        }
        assert_eq!(t.get(&Aimed(42, 500)), None);
        // Keys homed next door still go in (Robin Hood makes room) or are
        // refused cleanly.
        for i in 0..50 {
            let r = t.insert(Aimed(43, i), i);
            assert!(
                matches!(r, Ok(None) | Err(InsertError::ProbeLimit)),
                "{r:?}"
            );
        }
        assert!(t.max_displacement() <= MAX_PROBE);
    }

    #[test]
    fn wraps_around_the_end() {
        let mut t = Table::with_capacity(4, FlowHasher::new([0; 4]));
        let last = 7u64; // 8 slots: home of the last slot
        for i in 0..4 {
            t.insert(Aimed(last, i), i).unwrap();
        }
        assert_eq!(t.max_displacement(), 3);
        assert_eq!(t.remove(&Aimed(last, 0)), Some(0));
        for i in 1..4 {
            assert_eq!(t.get(&Aimed(last, i)), Some(&i));
        }
        assert_eq!(t.max_displacement(), 2);
    }

    #[test]
    fn full_table_of_random_keys_stays_short() {
        let n = 1 << 16;
        let mut t = Table::with_capacity(n, FlowHasher::new([3; 4]));
        for i in 0..n as u32 {
            t.insert(key(i), i).unwrap();
        }
        assert!(t.max_displacement() < 16, "{}", t.max_displacement());
    }
}
