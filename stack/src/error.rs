//! Errors of the socket API, named after the errno a socket user knows.

use core::fmt;

/// What a socket call (or a connection, asynchronously) failed with. Each
/// variant maps to one Linux errno ([`Error::name`], [`Error::errno`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// `EAGAIN`: nothing to read, no room to write, nothing to accept yet.
    WouldBlock,
    /// `ECONNREFUSED`: the peer answered the SYN with a RST.
    ConnectionRefused,
    /// `ECONNRESET`: the peer reset an established connection.
    ConnectionReset,
    /// `ETIMEDOUT`: retransmissions (of the SYN or of data) gave up.
    TimedOut,
    /// `EADDRINUSE`: the local address and port are taken.
    AddrInUse,
    /// `EADDRNOTAVAIL`: no ephemeral port is free for this destination.
    AddrNotAvailable,
    /// `EINVAL`: the call does not fit the socket's state (listen on a
    /// connected socket, a backlog of 0, ...).
    InvalidInput,
    /// `ENOTCONN`: the socket is not connected.
    NotConnected,
    /// `EISCONN`: the socket is already connected.
    AlreadyConnected,
    /// `EALREADY`: a connect is already in progress.
    AlreadyInProgress,
    /// `EPIPE`: writing after the write side was shut down.
    BrokenPipe,
    /// `EBADF`: the handle names no socket (closed, or never opened).
    BadHandle,
    /// `EMFILE`: every socket slot is in use.
    TooManySockets,
    /// `ENOBUFS`: a fixed-size table (flows, listeners) is full.
    NoBuffers,
    /// `EAFNOSUPPORT`: IPv6 (not in this slice) or a mix of families.
    AddressFamily,
    /// `EMSGSIZE`: a datagram longer than the MTU allows (no
    /// fragmentation).
    MessageTooLong,
    /// `ENETUNREACH`: the destination is off the subnet and there is no
    /// gateway.
    NetworkUnreachable,
    /// `EHOSTUNREACH`: ARP failed for the next hop lately (hold-down).
    HostUnreachable,
}

impl Error {
    /// The errno's name, e.g. `"ECONNREFUSED"`.
    pub const fn name(self) -> &'static str {
        match self {
            Error::WouldBlock => "EAGAIN",
            Error::ConnectionRefused => "ECONNREFUSED",
            Error::ConnectionReset => "ECONNRESET",
            Error::TimedOut => "ETIMEDOUT",
            Error::AddrInUse => "EADDRINUSE",
            Error::AddrNotAvailable => "EADDRNOTAVAIL",
            Error::InvalidInput => "EINVAL",
            Error::NotConnected => "ENOTCONN",
            Error::AlreadyConnected => "EISCONN",
            Error::AlreadyInProgress => "EALREADY",
            Error::BrokenPipe => "EPIPE",
            Error::BadHandle => "EBADF",
            Error::TooManySockets => "EMFILE",
            Error::NoBuffers => "ENOBUFS",
            Error::AddressFamily => "EAFNOSUPPORT",
            Error::MessageTooLong => "EMSGSIZE",
            Error::NetworkUnreachable => "ENETUNREACH",
            Error::HostUnreachable => "EHOSTUNREACH",
        }
    }

    /// The errno's value on Linux.
    pub const fn errno(self) -> i32 {
        match self {
            Error::WouldBlock => 11,
            Error::ConnectionRefused => 111,
            Error::ConnectionReset => 104,
            Error::TimedOut => 110,
            Error::AddrInUse => 98,
            Error::AddrNotAvailable => 99,
            Error::InvalidInput => 22,
            Error::NotConnected => 107,
            Error::AlreadyConnected => 106,
            Error::AlreadyInProgress => 114,
            Error::BrokenPipe => 32,
            Error::BadHandle => 9,
            Error::TooManySockets => 24,
            Error::NoBuffers => 105,
            Error::AddressFamily => 97,
            Error::MessageTooLong => 90,
            Error::NetworkUnreachable => 101,
            Error::HostUnreachable => 113,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for Error {}
