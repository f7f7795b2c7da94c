//! Readiness, as an event loop sees it.

use core::fmt;
use core::ops::BitOr;

use super::SocketHandle;

/// What a socket is ready for: a set of flags (like epoll's).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Readiness(pub u8);

impl Readiness {
    /// Nothing.
    pub const NONE: Readiness = Readiness(0);
    /// `recv` will not block: data, the end of the stream, or an error.
    pub const READABLE: Readiness = Readiness(1);
    /// `send` will take bytes.
    pub const WRITABLE: Readiness = Readiness(2);
    /// A listener has a connection to `accept`.
    pub const ACCEPTABLE: Readiness = Readiness(4);
    /// The handshake is done (ESTABLISHED or a later state short of
    /// TIME-WAIT).
    pub const CONNECTED: Readiness = Readiness(8);
    /// The connection is over (CLOSED or TIME-WAIT).
    pub const CLOSED: Readiness = Readiness(16);
    /// The connection failed: see [`Interface::error`](super::Interface::error).
    pub const ERROR: Readiness = Readiness(32);

    /// Every flag of `other` is set.
    pub const fn contains(self, other: Readiness) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Readiness {
    type Output = Readiness;
    fn bitor(self, rhs: Readiness) -> Readiness {
        Readiness(self.0 | rhs.0)
    }
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Readiness::READABLE, "READABLE"),
            (Readiness::WRITABLE, "WRITABLE"),
            (Readiness::ACCEPTABLE, "ACCEPTABLE"),
            (Readiness::CONNECTED, "CONNECTED"),
            (Readiness::CLOSED, "CLOSED"),
            (Readiness::ERROR, "ERROR"),
        ];
        let mut first = true;
        for (flag, name) in names {
            if self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("NONE")?;
        }
        Ok(())
    }
}

/// A socket whose readiness changed, and its readiness when the event was
/// taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// The socket.
    pub handle: SocketHandle,
    /// What it is ready for now.
    pub readiness: Readiness,
}
