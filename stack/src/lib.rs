//! `stack`: the sans-IO userspace network stack of bypass.
//!
//! This crate never makes a system call, never spawns a thread and never reads
//! a clock or a random source of its own: time, randomness and secrets (hash
//! keys, ISN and cookie secrets) are handed in by the caller. That is what lets
//! every layer be tested without privileges and deterministically.
//!
//! Layers are folders, as in smoltcp:
//! - [`wire`]: zero-copy views over packet buffers and their parse/emit
//!   representations (Ethernet, ARP, IPv4, IPv6, ICMPv4, UDP, TCP, checksum);
//! - [`flow`]: the 5-tuple [`flow::FlowKey`], the flow and listen tables that
//!   demultiplex received segments, the ephemeral port allocator and the
//!   Toeplitz RSS hash it uses to keep a connection on the queue that opened it;
//! - [`frame`]: one entry, [`frame::parse_frame`], that turns a whole received
//!   Ethernet frame into a parsed packet or a [`DropReason`];
//! - [`drop`](mod@drop): the named reasons for dropping malformed input and their
//!   [`Counters`];
//! - [`phy`]: the [`phy::Device`] trait a NIC queue implements, an in-memory
//!   loopback pair and a seeded fault injector;
//! - [`time`]: the [`time::Instant`] the caller passes in;
//! - [`storage`]: the per-socket byte ring and out-of-order assembler;
//! - [`tcp`]: sequence arithmetic, the states, the RTO estimator, the ISN
//!   and the connection state machine ([`tcp::Tcb`]);
//! - [`arp`]: the neighbour cache (RFC 826) with retries and hold-down;
//! - [`icmp`]: when an ICMP error may be sent, and its rate limit;
//! - [`iface`]: one shard's [`Interface`] over one device: Ethernet, ARP,
//!   IPv4, ICMP, TCP and UDP sockets behind the nonblocking sockets verbs
//!   and readiness [`Event`]s, one input file per protocol and one egress
//!   path through the neighbour cache;
//! - [`error`]: the socket API's [`Error`], named by errno.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod arp;
pub mod drop;
pub mod error;
pub mod flow;
pub mod frame;
pub mod icmp;
pub mod iface;
pub mod phy;
pub mod storage;
pub mod tcp;
pub mod time;
pub mod wire;

pub use drop::{Counters, DropReason};
pub use error::Error;
pub use iface::{
    Event, Interface, InterfaceConfig, InterfaceCounters, Readiness, RssConfig, Shutdown,
    SocketHandle,
};
