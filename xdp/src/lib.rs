//! `xdp`: everything of bypass that touches the kernel's XDP.
//!
//! - [`Steering`]: the steering program (bpf/steer.bpf.c), loaded with
//!   libbpf-rs and attached through a bpf_link in a typed [`XdpMode`]. Frames
//!   for the userspace stack go to the AF_XDP socket of their queue (see
//!   [`Steering::insert_socket`]); every other frame, and every frame of a
//!   queue without a socket, goes to the kernel untouched.
//! - [`Xsk`]: an AF_XDP socket with its own UMEM and four rings, bound to one
//!   queue (zero-copy where the driver can, else copy mode), receiving and
//!   transmitting batches of frames; it is the stack's
//!   [`Device`](stack::phy::Device).
//!
//! - [`netdev`]: what a device offers XDP and AF_XDP (zero-copy, receive
//!   metadata, TX metadata), from the kernel's netdev netlink family.
//! - [`busy`]: busy polling of ordinary kernel sockets and epoll, and
//!   [`uring`]: a safe io_uring (the kernel path at its best).
//!
//! All unsafe code of the project lives in this crate, in the modules marked
//! `#[allow(unsafe_code)]`, each block with its `// SAFETY:` reason.

#[allow(unsafe_code)]
pub mod busy;
mod config;
mod device;
mod error;
mod log;
#[allow(unsafe_code)]
pub mod netdev;
mod steering;
#[allow(unsafe_code)]
mod sys;
#[allow(unsafe_code)]
pub mod uring;
#[allow(unsafe_code)]
mod xsk;

pub use config::{Steer, SteerConfig, MAX_PORTS, MAX_QUEUES};
pub use error::{Error, Result};
pub use steering::{
    existing_program, link_holders, AttachedMode, Counters, Existing, Iface, Replaced, Steering,
    XdpMode,
};
pub use xsk::{BindMode, BusyPoll, JoinStats, TxChecksum, UmemConfig, Xsk, XskConfig, XskStats};

/// The skeleton libbpf-cargo generated from the object: only its `types`
/// (the C structs, from BTF) are used, to check our view of the layout.
#[cfg(test)]
#[allow(
    unsafe_code,
    dead_code,
    clippy::all,
    clippy::pedantic,
    clippy::undocumented_unsafe_blocks
)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/steer.skel.rs"));
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use crate::config::field;
    use crate::skel::types::steer_config;

    /// `config::field` agrees with `struct steer_config` as compiled.
    #[test]
    fn config_layout_matches_the_program() {
        assert_eq!(offset_of!(steer_config, addr), field::ADDR.start);
        assert_eq!(offset_of!(steer_config, mode), field::MODE.start);
        assert_eq!(offset_of!(steer_config, eph_lo), field::EPH_LO.start);
        assert_eq!(offset_of!(steer_config, eph_hi), field::EPH_HI.start);
        assert_eq!(offset_of!(steer_config, nports), field::NPORTS.start);
        assert_eq!(offset_of!(steer_config, ports), field::PORTS);
        assert_eq!(offset_of!(steer_config, alias_lo), field::ALIAS_LO.start);
        assert_eq!(offset_of!(steer_config, alias_hi), field::ALIAS_HI.start);
        assert_eq!(size_of::<steer_config>(), field::SIZE);
    }
}
