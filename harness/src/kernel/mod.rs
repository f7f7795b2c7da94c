//! The kernel socket path: the baseline every bypass figure is compared
//! with, at the kernel's defaults (a sleeping epoll loop) or busy polling
//! (`kernel-busy`: socket options, epoll busy poll, the interface's NAPI
//! settings, a spinning loop).

pub mod client;
pub mod napi;
pub mod server;
mod uring;
mod uring_client;

use std::os::fd::BorrowedFd;

use xdp::busy::Settings;

/// The busy polling of a `kernel-busy` socket and epoll instance: spin up
/// to 50 µs a poll (the kernel documentation's example value), 64 packets
/// a poll (NAPI's own budget), preferring busy polling over the softirq.
pub const BUSY: Settings = Settings {
    usecs: 50,
    budget: 64,
    prefer: true,
};

/// Sets [`BUSY`] on a socket; true when the kernel holds it afterwards.
pub fn busy_socket(fd: BorrowedFd<'_>) -> bool {
    xdp::busy::set_socket(fd, BUSY).is_ok()
        && xdp::busy::socket(fd).is_ok_and(|(usecs, prefer)| usecs == BUSY.usecs && prefer)
}
