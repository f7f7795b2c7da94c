//! Thin safe wrappers over the few libbpf and libc calls that libbpf-rs does
//! not expose in the shape we need: creating an XDP bpf_link with a mode,
//! detaching a link, querying and detaching an interface's XDP program, and
//! interface name/index lookups. Each returns the errno as an `io::Error`.
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use libbpf_rs::libbpf_sys as sys;

/// libbpf 1.x returns `-errno` (or a non-negative value) from these calls.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::from_raw_os_error(-ret))
    } else {
        Ok(ret)
    }
}

fn owned_fd(ret: libc::c_int) -> io::Result<OwnedFd> {
    let fd = check(ret)?;
    // SAFETY: libbpf returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `if_nametoindex(3)` in the calling thread's network namespace.
pub(crate) fn if_nametoindex(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx)
    }
}

/// `if_indextoname(3)` in the calling thread's network namespace.
pub(crate) fn if_indextoname(index: u32) -> io::Result<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes the call may write.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success the call wrote a NUL-terminated name into `buf`.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) };
    Ok(name.to_string_lossy().into_owned())
}

/// The interface's MTU (`SIOCGIFMTU`) in the calling thread's network
/// namespace.
pub(crate) fn if_mtu(name: &str) -> io::Result<u32> {
    let bytes = name.as_bytes();
    if bytes.len() >= libc::IF_NAMESIZE {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: a plain syscall; the result is checked.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: `ifreq` is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { core::mem::zeroed() };
    for (d, &b) in req.ifr_name.iter_mut().zip(bytes) {
        *d = b as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq with a NUL-terminated name (the array
    // was zeroed and the name is shorter than it); the kernel writes the
    // MTU into its union.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFMTU, &mut req) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFMTU succeeded, so the union holds `ifru_mtu`.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    u32::try_from(mtu).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

/// The XDP programs attached to an interface, by attach mode (0: none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Attached {
    pub drv: u32,
    pub skb: u32,
    pub hw: u32,
}

/// `bpf_xdp_query`: which programs the interface carries.
pub(crate) fn xdp_query(ifindex: u32) -> io::Result<Attached> {
    let mut opts = sys::bpf_xdp_query_opts {
        sz: std::mem::size_of::<sys::bpf_xdp_query_opts>() as sys::size_t,
        ..Default::default()
    };
    let ifindex = i32::try_from(ifindex).map_err(|_| io::Error::from_raw_os_error(libc::ENODEV))?;
    // SAFETY: `opts` is a valid, sized options struct that outlives the call.
    check(unsafe { sys::bpf_xdp_query(ifindex, 0, &mut opts) })?;
    let mut a = Attached {
        drv: opts.drv_prog_id,
        skb: opts.skb_prog_id,
        hw: opts.hw_prog_id,
    };
    // Older kernels report a single program only in `prog_id`.
    if a == Attached::default() && opts.prog_id != 0 {
        match u32::from(opts.attach_mode) {
            sys::XDP_ATTACHED_SKB => a.skb = opts.prog_id,
            sys::XDP_ATTACHED_HW => a.hw = opts.prog_id,
            _ => a.drv = opts.prog_id,
        }
    }
    Ok(a)
}

/// `bpf_link_create(prog, ifindex, BPF_XDP, flags)`: attach through a link,
/// which the kernel detaches when its last file descriptor closes.
pub(crate) fn xdp_link_create(
    prog: BorrowedFd<'_>,
    ifindex: u32,
    flags: u32,
) -> io::Result<OwnedFd> {
    let opts = sys::bpf_link_create_opts {
        sz: std::mem::size_of::<sys::bpf_link_create_opts>() as sys::size_t,
        flags,
        ..Default::default()
    };
    let target = i32::try_from(ifindex).map_err(|_| io::Error::from_raw_os_error(libc::ENODEV))?;
    // SAFETY: `prog` is a live program fd, `opts` a valid sized struct that
    // outlives the call; the returned fd is new and ours.
    owned_fd(unsafe { sys::bpf_link_create(prog.as_raw_fd(), target, sys::BPF_XDP, &opts) })
}

/// `BPF_LINK_DETACH`: detach a link now, whoever else holds it.
pub(crate) fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: `link` is a live link fd; the call does not keep it.
    check(unsafe { sys::bpf_link_detach(link.as_raw_fd()) }).map(drop)
}

/// A new file descriptor for the link with this id.
pub(crate) fn link_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall wrapper; the returned fd is new and ours.
    owned_fd(unsafe { sys::bpf_link_get_fd_by_id(id) })
}

/// A new file descriptor for the program with this id.
pub(crate) fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall wrapper; the returned fd is new and ours.
    owned_fd(unsafe { sys::bpf_prog_get_fd_by_id(id) })
}

/// Netlink detach of the program `expected` in the mode given by `flags`;
/// the kernel refuses (EEXIST) if another program is there by then.
pub(crate) fn xdp_detach_expected(
    ifindex: u32,
    flags: u32,
    expected: BorrowedFd<'_>,
) -> io::Result<()> {
    let opts = sys::bpf_xdp_attach_opts {
        sz: std::mem::size_of::<sys::bpf_xdp_attach_opts>() as sys::size_t,
        old_prog_fd: expected.as_raw_fd(),
        ..Default::default()
    };
    let ifindex = i32::try_from(ifindex).map_err(|_| io::Error::from_raw_os_error(libc::ENODEV))?;
    // SAFETY: `opts` is a valid sized struct holding a live program fd, and
    // outlives the call.
    check(unsafe { sys::bpf_xdp_detach(ifindex, flags | sys::XDP_FLAGS_REPLACE, &opts) }).map(drop)
}
