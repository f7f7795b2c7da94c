//! Busy polling of ordinary kernel sockets and of epoll: the knobs of the
//! kernel path at its best (`kernel-busy`). A socket with `SO_BUSY_POLL`
//! spins on its NAPI context in `recv`/`poll` instead of sleeping for the
//! interrupt; `SO_PREFER_BUSY_POLL` keeps the softirq from racing the
//! spinner when the device defers its interrupts (`napi_defer_hard_irqs`);
//! an epoll instance with `EPIOCSPARAMS` (Linux 6.9) busy-polls the NAPI
//! contexts of the sockets it watches. Here because the options have no safe
//! binding in the crates the harness uses, and the project's unsafe code
//! lives in this crate.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

// asm-generic/socket.h (x86, arm64, riscv; not mips, sparc, parisc, alpha)
pub(crate) const SO_BUSY_POLL: libc::c_int = 46;
pub(crate) const SO_PREFER_BUSY_POLL: libc::c_int = 69;
pub(crate) const SO_BUSY_POLL_BUDGET: libc::c_int = 70;

/// linux/eventpoll.h: `struct epoll_params` and its ioctls (`_IOW(0x8A,
/// 0x01, ...)`, `_IOR(0x8A, 0x02, ...)`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct EpollParams {
    busy_poll_usecs: u32,
    busy_poll_budget: u16,
    prefer_busy_poll: u8,
    pad: u8,
}
const EPIOCSPARAMS: libc::c_ulong = 0x4008_8a01;
const EPIOCGPARAMS: libc::c_ulong = 0x8008_8a02;

/// A socket's or an epoll instance's busy-poll settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How long one busy poll may spin, µs (0: off).
    pub usecs: u32,
    /// Packets one busy poll may process.
    pub budget: u16,
    pub prefer: bool,
}

pub(crate) fn setsockopt_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    opt: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(size_of::<libc::c_int>()).expect("small option");
    // SAFETY: `v` is a live c_int of `len` bytes for the call; the kernel
    // only reads it.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            len,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn getsockopt_int(fd: BorrowedFd<'_>, opt: libc::c_int) -> io::Result<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = libc::socklen_t::try_from(size_of::<libc::c_int>()).expect("small option");
    // SAFETY: `v` and `len` are live for the call and `len` says how many
    // bytes `v` holds; the kernel writes at most that many.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r == 0 {
        Ok(v)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets a socket's busy polling (`SO_BUSY_POLL`, and where `s.prefer`,
/// `SO_PREFER_BUSY_POLL` and `SO_BUSY_POLL_BUDGET`: Linux 5.11). Raising
/// `SO_BUSY_POLL` above `net.core.busy_read`, and any budget, needs
/// CAP_NET_ADMIN.
pub fn set_socket(fd: BorrowedFd<'_>, s: Settings) -> io::Result<()> {
    let usecs = libc::c_int::try_from(s.usecs).unwrap_or(libc::c_int::MAX);
    setsockopt_int(fd, libc::SOL_SOCKET, SO_BUSY_POLL, usecs)?;
    if s.prefer {
        setsockopt_int(fd, libc::SOL_SOCKET, SO_PREFER_BUSY_POLL, 1)?;
    }
    setsockopt_int(
        fd,
        libc::SOL_SOCKET,
        SO_BUSY_POLL_BUDGET,
        libc::c_int::from(s.budget),
    )
}

/// A socket's busy polling as the kernel holds it: `SO_BUSY_POLL` (µs)
/// and `SO_PREFER_BUSY_POLL` (the budget cannot be read back: the kernel
/// has no getsockopt for it).
pub fn socket(fd: BorrowedFd<'_>) -> io::Result<(u32, bool)> {
    Ok((
        u32::try_from(getsockopt_int(fd, SO_BUSY_POLL)?).unwrap_or(0),
        getsockopt_int(fd, SO_PREFER_BUSY_POLL)? != 0,
    ))
}

fn epoll_ioctl(epfd: BorrowedFd<'_>, req: libc::c_ulong, p: &mut EpollParams) -> io::Result<()> {
    // SAFETY: `p` is a live `struct epoll_params` (8 bytes, the layout of
    // linux/eventpoll.h) for the call; the kernel reads (EPIOCSPARAMS) or
    // writes (EPIOCGPARAMS) exactly that struct.
    let r = unsafe { libc::ioctl(epfd.as_raw_fd(), req as _, p as *mut EpollParams) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets an epoll instance's busy polling (`EPIOCSPARAMS`). Ok(false) where
/// the kernel has no such ioctl (before 6.9): the sockets' own busy polling
/// then works in their `recv` alone.
pub fn set_epoll(epfd: BorrowedFd<'_>, s: Settings) -> io::Result<bool> {
    let mut p = EpollParams {
        busy_poll_usecs: s.usecs,
        busy_poll_budget: s.budget,
        prefer_busy_poll: u8::from(s.prefer),
        pad: 0,
    };
    match epoll_ioctl(epfd, EPIOCSPARAMS, &mut p) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOTTY) => Ok(false),
        Err(e) => Err(e),
    }
}

/// An epoll instance's busy-poll settings; None before 6.9.
pub fn epoll(epfd: BorrowedFd<'_>) -> io::Result<Option<Settings>> {
    let mut p = EpollParams::default();
    match epoll_ioctl(epfd, EPIOCGPARAMS, &mut p) {
        Ok(()) => Ok(Some(Settings {
            usecs: p.busy_poll_usecs,
            budget: p.busy_poll_budget,
            prefer: p.prefer_busy_poll != 0,
        })),
        Err(e) if e.raw_os_error() == Some(libc::ENOTTY) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};

    #[test]
    fn the_params_struct_has_the_kernels_layout() {
        assert_eq!(size_of::<EpollParams>(), 8);
        // _IOW('\x8a', 1, 8) and _IOR('\x8a', 2, 8)
        let ioc =
            |dir: libc::c_ulong, nr: libc::c_ulong| (dir << 30) | (8 << 16) | (0x8a << 8) | nr;
        assert_eq!(EPIOCSPARAMS, ioc(1, 1));
        assert_eq!(EPIOCGPARAMS, ioc(2, 2));
    }

    #[test]
    fn settings_read_back_as_set() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!(
                "skipped: raising SO_BUSY_POLL and the budget needs CAP_NET_ADMIN (run as root)"
            );
            return;
        }
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let s = Settings {
            usecs: 50,
            budget: 16,
            prefer: true,
        };
        set_socket(udp.as_fd(), s).unwrap();
        assert_eq!(socket(udp.as_fd()).unwrap(), (50, true));
        // SAFETY: a new epoll instance's fd, owned from here on.
        let ep = unsafe { OwnedFd::from_raw_fd(libc::epoll_create1(libc::EPOLL_CLOEXEC)) };
        if set_epoll(ep.as_fd(), s).unwrap() {
            assert_eq!(epoll(ep.as_fd()).unwrap(), Some(s));
        } else {
            eprintln!("this kernel has no EPIOCSPARAMS (6.9+): epoll busy poll not checked");
        }
    }
}
