//! ARP resolution (RFC 826): a bounded neighbour cache with retries.
//!
//! The cache maps an on-link IPv4 address to its MAC. It has a fixed
//! capacity chosen by the caller and never grows; lookups scan it, which at
//! the sizes a benchmark shard needs (its peers and its gateway: a handful)
//! is a few cache lines. An entry is one of:
//!
//! - **resolved**: the MAC and when it was last confirmed. Past its
//!   lifetime it is still used (a benchmark must not stall on a refresh),
//!   but [`Cache::lookup`] asks for a refresh request, at most one per retry
//!   interval; if none of those is answered the entry is forgotten.
//!   An ARP packet that names the neighbour with *another* MAC does not
//!   change the entry (a forged reply, a gratuitous ARP: one frame must not
//!   redirect a peer's traffic); it marks the entry suspect, which makes it
//!   due for re-validation at once: if the neighbour at the known MAC
//!   answers, the entry stands; if none of the refreshes is answered, the
//!   entry is forgotten and the next send resolves the address afresh
//!   (where a changed MAC, a failover, is then learnt).
//! - **resolving**: a request is out; [`Cache::poll`] retries it
//!   `retries` times, `interval` apart, then gives up.
//! - **failed**: recently given up on; sends to it fail at once until the
//!   hold-down ends. RFC 1122 §2.3.2.1 (MUST) requires a mechanism against
//!   ARP flooding, recommending at most one request per second per
//!   destination: a resolution makes at most `retries` requests and is then
//!   held down for [`ArpConfig::hold_down`] (1 s by default).
//!
//! The module makes no frames of its own: it tells the caller which
//! requests to send (see [`Cache::poll`] and [`Lookup`]).

use core::net::Ipv4Addr;
use core::time::Duration;

use crate::time::Instant;
use crate::wire::EthernetAddress;

/// How the cache resolves and forgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpConfig {
    /// Entries at most.
    pub capacity: usize,
    /// Requests per resolution, at most (the first included).
    pub retries: u32,
    /// Time between two requests for the same address.
    pub interval: Duration,
    /// How long a resolved entry is trusted before it is refreshed
    /// (RFC 1122 §2.3.2.1: entries MUST time out).
    pub lifetime: Duration,
    /// How long a failed resolution is remembered: sends to it fail at
    /// once meanwhile, and no request goes out.
    pub hold_down: Duration,
}

impl Default for ArpConfig {
    fn default() -> Self {
        ArpConfig {
            capacity: 64,
            retries: 3,
            interval: Duration::from_millis(100),
            lifetime: Duration::from_secs(60),
            hold_down: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Resolved {
        mac: EthernetAddress,
        confirmed: Instant,
        /// Refresh requests sent since `confirmed`, and when the last went.
        probes: u32,
        last_probe: Instant,
        /// Another MAC was claimed for the address since `confirmed`: due
        /// for re-validation whatever its age.
        suspect: bool,
    },
    Resolving {
        sent: u32,
        next: Instant,
    },
    Failed {
        until: Instant,
    },
    /// Set by the user (`ip neigh ... nud permanent`): never refreshed,
    /// never replaced, never aged out.
    Permanent {
        mac: EthernetAddress,
    },
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    addr: Ipv4Addr,
    state: State,
}

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Send to this MAC. `refresh`: the entry is past its lifetime, send a
    /// request for it too (the caller counts and sends it).
    Resolved {
        /// The neighbour's MAC.
        mac: EthernetAddress,
        /// Whether to send a refresh request now.
        refresh: bool,
    },
    /// Unknown: an entry was made; send the first request now.
    Started,
    /// A request is already out; wait for it.
    Resolving,
    /// Resolution failed recently (hold-down).
    Failed,
    /// Unknown, and every entry is resolving or held down: nothing can be
    /// started now.
    Full,
}

/// What a received ARP packet did to the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// The sender is resolved now: a resolution finished, an entry was
    /// confirmed or made (what waited for it may go).
    Resolved,
    /// The sender is known at another MAC: the entry was kept and marked
    /// for re-validation.
    Conflict,
    /// Nothing: not in the table and not for us, an ARP probe, or a
    /// permanent entry's address.
    Nothing,
}

/// What [`Cache::poll`] asks of the caller, per address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send a request for the address again.
    Retry(Ipv4Addr),
    /// Resolution failed: drop what waits for the address.
    GaveUp(Ipv4Addr),
}

/// The neighbour cache of one shard.
#[derive(Debug, Clone)]
pub struct Cache {
    config: ArpConfig,
    entries: Vec<Entry>,
    /// A resolution in progress that the last insert evicted: what waits
    /// for it is to be dropped ([`Cache::take_evicted`]).
    evicted: Option<Ipv4Addr>,
}

impl Cache {
    /// An empty cache; allocates its capacity once.
    pub fn new(config: ArpConfig) -> Cache {
        Cache {
            config,
            entries: Vec::with_capacity(config.capacity.max(1)),
            evicted: None,
        }
    }

    /// The resolution in progress that the last lookup or learn evicted,
    /// if any: the caller drops the frames waiting for it.
    pub fn take_evicted(&mut self) -> Option<Ipv4Addr> {
        self.evicted.take()
    }

    /// The configuration.
    pub fn config(&self) -> &ArpConfig {
        &self.config
    }

    fn find(&self, addr: Ipv4Addr) -> Option<usize> {
        self.entries.iter().position(|e| e.addr == addr)
    }

    /// The MAC of a resolved address, without side effects.
    pub fn get(&self, addr: Ipv4Addr) -> Option<EthernetAddress> {
        match self.find(addr).map(|i| self.entries[i].state) {
            Some(State::Resolved { mac, .. } | State::Permanent { mac }) => Some(mac),
            _ => None,
        }
    }

    /// A permanent entry (`ip neigh replace ... nud permanent`): `addr` is
    /// at `mac` until the cache is dropped. `false` if the cache is full of
    /// permanent entries.
    pub fn insert_permanent(&mut self, addr: Ipv4Addr, mac: EthernetAddress) -> bool {
        let state = State::Permanent { mac };
        if let Some(i) = self.find(addr) {
            self.entries[i].state = state;
            return true;
        }
        if self.entries.len() < self.config.capacity.max(1) {
            self.entries.push(Entry { addr, state });
            return true;
        }
        match self
            .entries
            .iter()
            .position(|e| !matches!(e.state, State::Permanent { .. }))
        {
            Some(i) => {
                self.entries[i] = Entry { addr, state };
                true
            }
            None => false,
        }
    }

    /// Whether a resolution for `addr` is in progress.
    pub fn is_resolving(&self, addr: Ipv4Addr) -> bool {
        matches!(
            self.find(addr).map(|i| self.entries[i].state),
            Some(State::Resolving { .. })
        )
    }

    /// Look `addr` up to send to it at `now`, starting a resolution if it
    /// is unknown.
    pub fn lookup(&mut self, addr: Ipv4Addr, now: Instant) -> Lookup {
        let cfg = self.config;
        if let Some(i) = self.find(addr) {
            let e = &mut self.entries[i];
            return match e.state {
                State::Resolved {
                    mac,
                    confirmed,
                    ref mut probes,
                    ref mut last_probe,
                    suspect,
                } => {
                    let stale = suspect || now.saturating_since(confirmed) >= cfg.lifetime;
                    let due = *probes == 0 || now.saturating_since(*last_probe) >= cfg.interval;
                    let refresh = stale && *probes < cfg.retries && due;
                    if refresh {
                        *probes += 1;
                        *last_probe = now;
                    }
                    Lookup::Resolved { mac, refresh }
                }
                State::Permanent { mac } => Lookup::Resolved {
                    mac,
                    refresh: false,
                },
                State::Resolving { .. } => Lookup::Resolving,
                State::Failed { until } if now < until => Lookup::Failed,
                State::Failed { .. } => {
                    e.state = State::Resolving {
                        sent: 1,
                        next: now + cfg.interval,
                    };
                    Lookup::Started
                }
            };
        }
        let state = State::Resolving {
            sent: 1,
            next: now + cfg.interval,
        };
        if self.insert(addr, state, now, false) {
            Lookup::Started
        } else {
            Lookup::Full
        }
    }

    /// Put an entry in, evicting (in this order) an expired hold-down, the
    /// least recently confirmed resolved entry gone stale (past its
    /// lifetime, or suspect), the oldest resolution in progress (its
    /// address is kept for [`take_evicted`](Self::take_evicted)); `false`
    /// if none. A resolution for a packet we send (`strong` false: a
    /// SYN-ACK to a new source, say) never evicts a fresh resolved entry
    /// or a hold-down: a flood of SYNs from spoofed sources then churns
    /// through resolutions of its own, and never pushes a live peer out.
    /// A host that asked for us (`strong`) may also take a hold-down's
    /// place before it expires, and the oldest resolved entry's at last.
    fn insert(&mut self, addr: Ipv4Addr, state: State, now: Instant, strong: bool) -> bool {
        if self.entries.len() < self.config.capacity.max(1) {
            self.entries.push(Entry { addr, state });
            return true;
        }
        let cfg = self.config;
        let failed = |expired_only: bool| {
            self.entries.iter().position(
                |e| matches!(e.state, State::Failed { until } if !expired_only || now >= until),
            )
        };
        let oldest = |stale_only: bool| {
            self.entries
                .iter()
                .enumerate()
                .filter_map(|(i, e)| match e.state {
                    State::Resolved {
                        confirmed, suspect, ..
                    } if !stale_only
                        || suspect
                        || now.saturating_since(confirmed) >= cfg.lifetime =>
                    {
                        Some((confirmed, i))
                    }
                    _ => None,
                })
                .min()
                .map(|(_, i)| i)
        };
        // a resolution started earliest: fewest retries left, soonest due
        let resolving = || {
            self.entries
                .iter()
                .enumerate()
                .filter_map(|(i, e)| match e.state {
                    State::Resolving { sent, next } => Some((core::cmp::Reverse(sent), next, i)),
                    _ => None,
                })
                .min()
                .map(|(_, _, i)| i)
        };
        let victim = failed(true)
            .or_else(|| oldest(true))
            .or_else(|| if strong { failed(false) } else { None })
            .or_else(resolving)
            .or_else(|| if strong { oldest(false) } else { None });
        match victim {
            Some(i) => {
                if let State::Resolving { .. } = self.entries[i].state {
                    self.evicted = Some(self.entries[i].addr);
                }
                self.entries[i] = Entry { addr, state };
                true
            }
            None => false,
        }
    }

    /// What a received ARP packet teaches, per the reception algorithm of
    /// RFC 826 ("Packet Reception") with one care more: if the sender is in
    /// the table, a resolution in progress (or held down) takes its MAC and
    /// a resolved entry at the same MAC is confirmed, but a resolved entry
    /// is never moved to another MAC by a packet: it is kept and marked for
    /// re-validation instead ([`Learned::Conflict`]). If the sender is not
    /// in the table and the packet is addressed to us (`for_us`), it is
    /// added; a packet for someone else (a gratuitous ARP, another host's
    /// request) adds nothing, as Linux's `arp_accept=0`.
    pub fn learn(
        &mut self,
        sender: Ipv4Addr,
        mac: EthernetAddress,
        for_us: bool,
        now: Instant,
    ) -> Learned {
        if sender.is_unspecified() || !mac.is_unicast() {
            // An ARP probe (RFC 5227 §2.1.1: sender 0.0.0.0) teaches nothing.
            return Learned::Nothing;
        }
        let resolved = State::Resolved {
            mac,
            confirmed: now,
            probes: 0,
            last_probe: now,
            suspect: false,
        };
        match self.find(sender) {
            // What the user set stays (Linux: a permanent entry is not
            // changed by what arrives); what waits for it may go.
            Some(i) => match &mut self.entries[i].state {
                State::Permanent { .. } => Learned::Resolved,
                State::Resolved {
                    mac: known,
                    suspect,
                    ..
                } if *known != mac => {
                    *suspect = true;
                    Learned::Conflict
                }
                st => {
                    *st = resolved;
                    Learned::Resolved
                }
            },
            None if for_us && self.insert(sender, resolved, now, true) => Learned::Resolved,
            None => Learned::Nothing,
        }
    }

    /// Run the timers at `now`, one due entry at a time: the next
    /// resolution to retry or give up on, or `None` when nothing is due.
    /// Call it until `None`. Stale resolved entries whose refreshes all went
    /// unanswered are forgotten on the way.
    pub fn poll(&mut self, now: Instant) -> Option<Action> {
        let cfg = self.config;
        let mut i = 0;
        while i < self.entries.len() {
            let e = &mut self.entries[i];
            match e.state {
                State::Resolving { sent, next } if now >= next => {
                    if sent < cfg.retries {
                        e.state = State::Resolving {
                            sent: sent + 1,
                            next: now + cfg.interval,
                        };
                        return Some(Action::Retry(e.addr));
                    }
                    e.state = State::Failed {
                        until: now + cfg.hold_down,
                    };
                    return Some(Action::GaveUp(e.addr));
                }
                State::Resolved {
                    probes, last_probe, ..
                } if probes >= cfg.retries && now.saturating_since(last_probe) >= cfg.interval => {
                    self.entries.swap_remove(i);
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
        None
    }

    /// The earliest time [`poll`](Self::poll) has something to do, if any.
    pub fn next_timer(&self) -> Option<Instant> {
        self.entries
            .iter()
            .filter_map(|e| match e.state {
                State::Resolving { next, .. } => Some(next),
                _ => None,
            })
            .min()
    }

    /// Entries in the cache (of every state).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    #[test]
    fn resolves_retries_gives_up_and_holds_down() {
        let mut c = Cache::new(ArpConfig::default());
        assert_eq!(c.lookup(PEER, ms(0)), Lookup::Started);
        assert_eq!(c.lookup(PEER, ms(1)), Lookup::Resolving);
        let mut actions = Vec::new();
        for t in [50, 100, 150, 200, 300] {
            while let Some(a) = c.poll(ms(t)) {
                actions.push((t, a));
            }
        }
        assert_eq!(
            actions,
            vec![
                (100, Action::Retry(PEER)),
                (200, Action::Retry(PEER)),
                (300, Action::GaveUp(PEER))
            ]
        );
        assert_eq!(c.lookup(PEER, ms(400)), Lookup::Failed);
        // Hold-down over: a new resolution starts.
        assert_eq!(c.lookup(PEER, ms(1300)), Lookup::Started);
        assert_eq!(c.learn(PEER, MAC, true, ms(1310)), Learned::Resolved);
        assert_eq!(
            c.lookup(PEER, ms(1320)),
            Lookup::Resolved {
                mac: MAC,
                refresh: false
            }
        );
    }

    #[test]
    fn learns_only_what_rfc_826_allows() {
        let mut c = Cache::new(ArpConfig::default());
        // Not for us and unknown (a gratuitous ARP, another host's
        // request): not added, as Linux's arp_accept=0.
        assert_eq!(c.learn(PEER, MAC, false, ms(0)), Learned::Nothing);
        assert_eq!(c.get(PEER), None);
        // For us: added; the same MAC again confirms it.
        assert_eq!(c.learn(PEER, MAC, true, ms(0)), Learned::Resolved);
        assert_eq!(c.learn(PEER, MAC, false, ms(1)), Learned::Resolved);
        // Probes and group MACs teach nothing.
        assert_eq!(
            c.learn(Ipv4Addr::UNSPECIFIED, MAC, true, ms(2)),
            Learned::Nothing
        );
        assert_eq!(
            c.learn(PEER, EthernetAddress::BROADCAST, true, ms(2)),
            Learned::Nothing
        );
        assert_eq!(c.get(PEER), Some(MAC));
    }

    #[test]
    fn another_mac_for_a_known_peer_changes_nothing_until_the_peer_stops_answering() {
        let cfg = ArpConfig::default();
        let mut c = Cache::new(cfg);
        let forged = EthernetAddress([2, 0, 0, 0, 0, 0x66]);
        c.learn(PEER, MAC, true, ms(0));
        // a forged reply, for us or not, and a gratuitous ARP: kept, suspect
        for for_us in [true, false] {
            assert_eq!(c.learn(PEER, forged, for_us, ms(10)), Learned::Conflict);
            assert_eq!(c.get(PEER), Some(MAC));
        }
        // suspect: the next send asks again at once, long before its age
        let r = |refresh| Lookup::Resolved { mac: MAC, refresh };
        assert_eq!(c.lookup(PEER, ms(20)), r(true));
        // the peer at the known MAC answers: the entry stands, not suspect
        assert_eq!(c.learn(PEER, MAC, true, ms(25)), Learned::Resolved);
        assert_eq!(c.lookup(PEER, ms(200)), r(false));
        // suspect again, and this time nobody answers at the known MAC: the
        // refreshes run out, the entry is forgotten, and the next send
        // resolves afresh (where a peer that really moved is learnt)
        assert_eq!(c.learn(PEER, forged, false, ms(300)), Learned::Conflict);
        for t in [300, 400, 500] {
            assert_eq!(c.lookup(PEER, ms(t)), r(true), "refresh at {t}");
            assert_eq!(c.learn(PEER, forged, true, ms(t + 1)), Learned::Conflict);
        }
        assert_eq!(c.lookup(PEER, ms(550)), r(false));
        assert_eq!(c.poll(ms(600)), None);
        assert_eq!(c.get(PEER), None);
        assert_eq!(c.lookup(PEER, ms(601)), Lookup::Started);
        assert_eq!(c.learn(PEER, forged, true, ms(602)), Learned::Resolved);
        assert_eq!(c.get(PEER), Some(forged));
    }

    #[test]
    fn stale_entries_are_refreshed_then_forgotten() {
        let cfg = ArpConfig::default();
        let mut c = Cache::new(cfg);
        c.learn(PEER, MAC, true, ms(0));
        let t = 60_000;
        let r = |refresh| Lookup::Resolved { mac: MAC, refresh };
        assert_eq!(c.lookup(PEER, ms(t - 1)), r(false));
        assert_eq!(c.lookup(PEER, ms(t)), r(true));
        assert_eq!(c.lookup(PEER, ms(t + 10)), r(false));
        assert_eq!(c.lookup(PEER, ms(t + 100)), r(true));
        assert_eq!(c.lookup(PEER, ms(t + 200)), r(true));
        assert_eq!(c.lookup(PEER, ms(t + 300)), r(false));
        assert_eq!(c.poll(ms(t + 250)), None);
        assert_eq!(c.len(), 1);
        assert_eq!(c.poll(ms(t + 300)), None);
        assert!(c.is_empty());
        // An answer in time keeps it.
        c.learn(PEER, MAC, true, ms(0));
        assert_eq!(c.lookup(PEER, ms(t)), r(true));
        c.learn(PEER, MAC, false, ms(t + 5));
        assert_eq!(c.lookup(PEER, ms(t + 200)), r(false));
    }

    #[test]
    fn a_permanent_entry_is_never_refreshed_changed_or_evicted() {
        let mut c = Cache::new(ArpConfig {
            capacity: 2,
            ..ArpConfig::default()
        });
        assert!(c.insert_permanent(PEER, MAC));
        let fixed = Lookup::Resolved {
            mac: MAC,
            refresh: false,
        };
        // Long past a resolved entry's lifetime: no refresh, no ageing.
        assert_eq!(c.lookup(PEER, ms(10_000_000)), fixed);
        assert_eq!(c.poll(ms(10_000_000)), None);
        // What arrives does not change it.
        assert_eq!(
            c.learn(PEER, EthernetAddress([2, 0, 0, 0, 0, 9]), true, ms(1)),
            Learned::Resolved
        );
        assert_eq!(c.get(PEER), Some(MAC));
        // A full cache evicts the other entries, never it.
        let a = |n| Ipv4Addr::new(198, 18, 0, n);
        c.learn(a(7), MAC, true, ms(2));
        assert_eq!(c.learn(a(8), MAC, true, ms(3)), Learned::Resolved);
        assert_eq!(c.get(a(7)), None);
        assert_eq!(c.get(PEER), Some(MAC));
        let stale = ms(3) + ArpConfig::default().lifetime;
        assert_eq!(c.lookup(a(9), stale), Lookup::Started);
        assert_eq!(c.get(a(8)), None);
        assert_eq!(c.get(PEER), Some(MAC));
        assert_eq!(c.next_timer(), Some(stale + Duration::from_millis(100)));
    }

    #[test]
    fn a_full_cache_evicts_stale_entries_for_sends_and_fresh_ones_only_for_hosts_asking() {
        let mut c = Cache::new(ArpConfig {
            capacity: 2,
            ..ArpConfig::default()
        });
        let a = |n| Ipv4Addr::new(198, 18, 0, n);
        c.learn(a(1), MAC, true, ms(5));
        c.learn(a(2), MAC, true, ms(1));
        // both fresh: a send to a new address does not push one out
        assert_eq!(c.lookup(a(3), ms(10)), Lookup::Full);
        assert_eq!((c.get(a(1)), c.get(a(2))), (Some(MAC), Some(MAC)));
        // a host that asks for us takes the older one's place
        assert_eq!(c.learn(a(3), MAC, true, ms(20)), Learned::Resolved);
        assert_eq!(c.get(a(2)), None, "the older entry went");
        assert_eq!(c.get(a(1)), Some(MAC));
        // past its lifetime, an entry gives way to a send too
        let later = ms(5) + ArpConfig::default().lifetime;
        assert_eq!(c.lookup(a(4), later), Lookup::Started);
        assert_eq!(c.get(a(1)), None);
        assert_eq!(c.get(a(3)), Some(MAC));
        // a resolution gives way to a newer one, which says so
        assert_eq!(c.lookup(a(5), later), Lookup::Started);
        assert_eq!(c.take_evicted(), Some(a(4)));
        assert_eq!(c.get(a(3)), Some(MAC));
    }

    #[test]
    fn spoofed_sources_never_push_a_live_peer_out() {
        let cfg = ArpConfig {
            capacity: 4,
            ..ArpConfig::default()
        };
        let mut c = Cache::new(cfg);
        let peer = Ipv4Addr::new(198, 18, 0, 2);
        c.learn(peer, MAC, true, ms(0));
        // SYN-ACKs to a flood's sources: resolutions fill the rest, then
        // each new one evicts the oldest, never the peer
        for n in 0..200u8 {
            assert_eq!(
                c.lookup(Ipv4Addr::new(198, 18, 1, n), ms(1)),
                Lookup::Started
            );
            let evicted = c.take_evicted();
            assert_eq!(evicted.is_some(), n >= 3, "{n}: {evicted:?}");
        }
        assert_eq!(c.get(peer), Some(MAC));
        // they fail and are held down; sends cannot evict a hold-down, and
        // the peer stays
        let mut t = ms(1);
        while t < ms(500) {
            while c.poll(t).is_some() {}
            t += Duration::from_millis(10);
        }
        assert_eq!(c.lookup(Ipv4Addr::new(198, 18, 2, 1), t), Lookup::Full);
        assert_eq!(c.get(peer), Some(MAC));
        // a new host asking for us gets in at once (a hold-down gives way)
        let newcomer = Ipv4Addr::new(198, 18, 0, 5);
        assert_eq!(c.learn(newcomer, MAC, true, t), Learned::Resolved);
        assert_eq!((c.get(peer), c.get(newcomer)), (Some(MAC), Some(MAC)));
        // once the hold-downs expire, sends may take their places
        let t = t + cfg.hold_down;
        assert_eq!(c.lookup(Ipv4Addr::new(198, 18, 2, 2), t), Lookup::Started);
        assert_eq!(c.get(peer), Some(MAC));
    }
}
