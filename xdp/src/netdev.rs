//! What a device offers XDP and AF_XDP, as the kernel's `netdev` generic
//! netlink family reports it (`NETDEV_CMD_DEV_GET`, Linux 6.3+; the XSK
//! features since 6.8): the XDP actions it implements (zero-copy among
//! them), the receive metadata its driver gives XDP programs, and the TX
//! metadata AF_XDP may ask of it. `ip` and `ethtool` do not show these.
//!
//! The request is two messages on a `NETLINK_GENERIC` socket: the
//! controller resolves the family's id from its name, then the family
//! answers for one interface index. Everything read from the kernel is
//! parsed with bounds checks; an attribute we do not know is skipped.
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Bits of `NETDEV_A_DEV_XDP_FEATURES` (enum netdev_xdp_act).
pub mod xdp_act {
    pub const BASIC: u64 = 1;
    pub const REDIRECT: u64 = 2;
    pub const NDO_XMIT: u64 = 4;
    pub const XSK_ZEROCOPY: u64 = 8;
    pub const HW_OFFLOAD: u64 = 16;
    pub const RX_SG: u64 = 32;
    pub const NDO_XMIT_SG: u64 = 64;
}

/// Bits of `NETDEV_A_DEV_XDP_RX_METADATA_FEATURES`.
pub mod rx_meta {
    pub const TIMESTAMP: u64 = 1;
    pub const HASH: u64 = 2;
    pub const VLAN_TAG: u64 = 4;
}

/// Bits of `NETDEV_A_DEV_XSK_FEATURES` (enum netdev_xsk_flags).
pub mod xsk_tx {
    pub const TX_TIMESTAMP: u64 = 1;
    pub const TX_CHECKSUM: u64 = 2;
    pub const TX_LAUNCH_TIME: u64 = 4;
}

/// One device's XDP and AF_XDP capabilities.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DevFeatures {
    pub ifindex: u32,
    /// `xdp_act` bits.
    pub xdp: u64,
    /// Fragments a zero-copy frame may have (0: none said).
    pub zc_max_segs: u32,
    /// `rx_meta` bits.
    pub rx_metadata: u64,
    /// `xsk_tx` bits; `None` where the kernel predates them (< 6.8).
    pub xsk: Option<u64>,
}

impl DevFeatures {
    pub fn zero_copy(&self) -> bool {
        self.xdp & xdp_act::XSK_ZEROCOPY != 0
    }

    /// The XDP feature names the kernel's own `ynl` tool prints.
    pub fn xdp_names(&self) -> Vec<&'static str> {
        names(
            self.xdp,
            &[
                (xdp_act::BASIC, "basic"),
                (xdp_act::REDIRECT, "redirect"),
                (xdp_act::NDO_XMIT, "ndo-xmit"),
                (xdp_act::XSK_ZEROCOPY, "xsk-zerocopy"),
                (xdp_act::HW_OFFLOAD, "hw-offload"),
                (xdp_act::RX_SG, "rx-sg"),
                (xdp_act::NDO_XMIT_SG, "ndo-xmit-sg"),
            ],
        )
    }

    pub fn rx_metadata_names(&self) -> Vec<&'static str> {
        names(
            self.rx_metadata,
            &[
                (rx_meta::TIMESTAMP, "timestamp"),
                (rx_meta::HASH, "hash"),
                (rx_meta::VLAN_TAG, "vlan-tag"),
            ],
        )
    }

    pub fn xsk_names(&self) -> Vec<&'static str> {
        names(
            self.xsk.unwrap_or(0),
            &[
                (xsk_tx::TX_TIMESTAMP, "tx-timestamp"),
                (xsk_tx::TX_CHECKSUM, "tx-checksum"),
                (xsk_tx::TX_LAUNCH_TIME, "tx-launch-time-fifo"),
            ],
        )
    }
}

fn names(bits: u64, table: &[(u64, &'static str)]) -> Vec<&'static str> {
    table
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// The capabilities of the interface `ifindex` in the calling thread's
/// network namespace. `ErrorKind::Unsupported` where the kernel has no
/// `netdev` family (before 6.3).
pub fn dev_features(ifindex: u32) -> io::Result<DevFeatures> {
    let sock = Genl::open()?;
    let family = sock.family_id(b"netdev")?;
    let mut req = Msg::new(family, NETDEV_CMD_DEV_GET, 1);
    req.attr(NETDEV_A_DEV_IFINDEX, &ifindex.to_ne_bytes());
    let reply = sock.call(&req.finish())?;
    parse_dev(&reply)
}

/// The capabilities of the interface named `iface` (calling thread's
/// namespace).
pub fn dev_features_by_name(iface: &str) -> io::Result<DevFeatures> {
    dev_features(crate::sys::if_nametoindex(iface)?)
}

const NLMSG_HDRLEN: usize = 16;
const GENL_HDRLEN: usize = 4;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const NETDEV_CMD_DEV_GET: u8 = 1;
const NETDEV_A_DEV_IFINDEX: u16 = 1;
const NETDEV_A_DEV_XDP_FEATURES: u16 = 3;
const NETDEV_A_DEV_XDP_ZC_MAX_SEGS: u16 = 4;
const NETDEV_A_DEV_XDP_RX_METADATA_FEATURES: u16 = 5;
const NETDEV_A_DEV_XSK_FEATURES: u16 = 6;
/// The type bits of an attribute (without NLA_F_NESTED / NET_BYTEORDER).
const NLA_TYPE_MASK: u16 = 0x3fff;

/// A generic netlink request being built.
struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    fn new(family: u16, cmd: u8, version: u8) -> Msg {
        let mut buf = vec![0u8; NLMSG_HDRLEN];
        buf[4..6].copy_from_slice(&family.to_ne_bytes());
        buf[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
        buf[8..12].copy_from_slice(&1u32.to_ne_bytes());
        buf.extend_from_slice(&[cmd, version, 0, 0]);
        Msg { buf }
    }

    fn attr(&mut self, kind: u16, value: &[u8]) {
        let len = 4 + value.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// The attributes after a generic netlink message's headers, as
/// (type, value); a truncated attribute ends the walk.
fn attrs(msg: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = msg.get(NLMSG_HDRLEN + GENL_HDRLEN..).unwrap_or(&[]);
    std::iter::from_fn(move || {
        if rest.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > rest.len() {
            return None;
        }
        let value = &rest[4..len];
        let step = (len + 3) & !3;
        rest = rest.get(step..).unwrap_or(&[]);
        Some((kind, value))
    })
}

fn uint(v: &[u8]) -> Option<u64> {
    match v.len() {
        4 => Some(u32::from_ne_bytes(v.try_into().ok()?) as u64),
        8 => Some(u64::from_ne_bytes(v.try_into().ok()?)),
        _ => None,
    }
}

/// One reply message: its type and the whole message, or the kernel's
/// error.
fn check_reply(msg: &[u8]) -> io::Result<()> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "a truncated netlink reply");
    if msg.len() < NLMSG_HDRLEN {
        return Err(bad());
    }
    let len = u32::from_ne_bytes(msg[0..4].try_into().map_err(|_| bad())?) as usize;
    if len < NLMSG_HDRLEN || len > msg.len() {
        return Err(bad());
    }
    let kind = u16::from_ne_bytes([msg[4], msg[5]]);
    if kind == NLMSG_ERROR {
        let code = msg
            .get(NLMSG_HDRLEN..NLMSG_HDRLEN + 4)
            .ok_or_else(bad)?
            .try_into()
            .map(i32::from_ne_bytes)
            .map_err(|_| bad())?;
        if code != 0 {
            return Err(io::Error::from_raw_os_error(-code));
        }
    }
    Ok(())
}

fn parse_dev(msg: &[u8]) -> io::Result<DevFeatures> {
    check_reply(msg)?;
    let mut d = DevFeatures::default();
    let mut seen = false;
    for (kind, v) in attrs(msg) {
        match kind {
            NETDEV_A_DEV_IFINDEX => d.ifindex = uint(v).unwrap_or(0) as u32,
            NETDEV_A_DEV_XDP_FEATURES => {
                d.xdp = uint(v).unwrap_or(0);
                seen = true;
            }
            NETDEV_A_DEV_XDP_ZC_MAX_SEGS => d.zc_max_segs = uint(v).unwrap_or(0) as u32,
            NETDEV_A_DEV_XDP_RX_METADATA_FEATURES => d.rx_metadata = uint(v).unwrap_or(0),
            NETDEV_A_DEV_XSK_FEATURES => d.xsk = uint(v),
            _ => {}
        }
    }
    if !seen {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the netdev family's reply has no xdp-features",
        ));
    }
    Ok(d)
}

fn parse_family(msg: &[u8]) -> io::Result<u16> {
    check_reply(msg)?;
    attrs(msg)
        .find(|(k, v)| *k == CTRL_ATTR_FAMILY_ID && v.len() >= 2)
        .map(|(_, v)| u16::from_ne_bytes([v[0], v[1]]))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no family id in the reply"))
}

/// A `NETLINK_GENERIC` socket.
struct Genl {
    fd: OwnedFd,
}

impl Genl {
    fn open() -> io::Result<Genl> {
        // SAFETY: a plain syscall; the result is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_GENERIC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let tv = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        // SAFETY: the option's value points at `tv`, of the size given.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Genl { fd })
    }

    /// Sends one request to the kernel and returns its first reply.
    fn call(&self, req: &[u8]) -> io::Result<Vec<u8>> {
        // SAFETY: an all-zero sockaddr_nl is valid; nl_pid 0 is the kernel.
        let mut to: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        to.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `req` and `to` are valid for the lengths given.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                req.as_ptr().cast(),
                req.len(),
                0,
                (&to as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 8192];
        // SAFETY: `buf` is writable for its whole length.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        buf.truncate(n as usize);
        Ok(buf)
    }

    fn family_id(&self, name: &[u8]) -> io::Result<u16> {
        let mut req = Msg::new(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1);
        let mut z = name.to_vec();
        z.push(0);
        req.attr(CTRL_ATTR_FAMILY_NAME, &z);
        match parse_family(&self.call(&req.finish())?) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this kernel has no netdev netlink family (Linux 6.3+ reports XDP features)",
            )),
            r => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(attrs_: &[(u16, &[u8])]) -> Vec<u8> {
        let mut m = Msg::new(30, NETDEV_CMD_DEV_GET, 1);
        for (k, v) in attrs_ {
            m.attr(*k, v);
        }
        m.finish()
    }

    #[test]
    fn a_reply_gives_its_features_and_unknown_attributes_are_skipped() {
        let r = reply(&[
            (NETDEV_A_DEV_IFINDEX, &7u32.to_ne_bytes()),
            (99, &[1, 2, 3]),
            (NETDEV_A_DEV_XDP_FEATURES, &0x4fu64.to_ne_bytes()),
            (NETDEV_A_DEV_XDP_ZC_MAX_SEGS, &1u32.to_ne_bytes()),
            (NETDEV_A_DEV_XDP_RX_METADATA_FEATURES, &2u64.to_ne_bytes()),
            (NETDEV_A_DEV_XSK_FEATURES, &2u64.to_ne_bytes()),
        ]);
        let d = parse_dev(&r).unwrap();
        assert_eq!(d.ifindex, 7);
        assert!(d.zero_copy());
        assert_eq!(
            d.xdp_names(),
            [
                "basic",
                "redirect",
                "ndo-xmit",
                "xsk-zerocopy",
                "ndo-xmit-sg"
            ]
        );
        assert_eq!(d.rx_metadata_names(), ["hash"]);
        assert_eq!(d.xsk_names(), ["tx-checksum"]);
    }

    #[test]
    fn a_truncated_or_failed_reply_is_an_error_never_a_panic() {
        let r = reply(&[(NETDEV_A_DEV_XDP_FEATURES, &3u64.to_ne_bytes())]);
        for cut in 0..r.len() {
            let mut m = r[..cut].to_vec();
            if m.len() >= 4 {
                m[0..4].copy_from_slice(&(cut as u32).to_ne_bytes());
            }
            let _ = parse_dev(&m);
        }
        assert!(parse_dev(&r[..10]).is_err());
        // an NLMSG_ERROR with ENODEV
        let mut e = vec![0u8; 36];
        e[0..4].copy_from_slice(&36u32.to_ne_bytes());
        e[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        e[16..20].copy_from_slice(&(-libc::ENODEV).to_ne_bytes());
        assert_eq!(
            parse_dev(&e).unwrap_err().raw_os_error(),
            Some(libc::ENODEV)
        );
        // no xdp-features at all
        assert!(parse_dev(&reply(&[(NETDEV_A_DEV_IFINDEX, &1u32.to_ne_bytes())])).is_err());
    }

    /// The loopback device of a fresh namespace answers (no root needed to
    /// ask): it implements no XDP action natively.
    #[test]
    fn the_kernel_answers_for_loopback() {
        match dev_features_by_name("lo") {
            Ok(d) => {
                assert_eq!(d.ifindex, 1);
                assert!(!d.zero_copy());
            }
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                eprintln!("skipped: {e}");
            }
            Err(e) => panic!("netdev netlink: {e}"),
        }
    }
}
