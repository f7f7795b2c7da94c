//! The steering configuration and its byte image in the program's `.rodata`.
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use crate::error::{Error, Result};

/// At most this many destination ports in shared-address mode (the C side's
/// `STEER_MAX_PORTS`).
pub const MAX_PORTS: usize = 16;

/// At most this many queues (the size of the `xsks` map).
pub const MAX_QUEUES: u32 = 64;

/// Which frames the program steers to the userspace stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Steer {
    /// The stack has its own IPv4 address: ARP for it and all IPv4 to it.
    OwnAddress,
    /// The stack shares the host's address: only unfragmented TCP and UDP to
    /// it whose destination port is in `ports` or in `ephemeral` (which the
    /// harness reserves from the kernel with `ip_local_reserved_ports`).
    SharedAddress {
        /// Destination ports (TCP and UDP alike), at most [`MAX_PORTS`].
        ports: Vec<u16>,
        /// The stack's ephemeral port range, if it makes connections.
        ephemeral: Option<RangeInclusive<u16>>,
    },
}

/// What the steering program needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SteerConfig {
    /// The stack's IPv4 address.
    pub addr: Ipv4Addr,
    /// More addresses of the stack (its aliases), steered as `addr` is.
    pub aliases: Option<RangeInclusive<Ipv4Addr>>,
    /// Which of its frames to steer.
    pub steer: Steer,
    /// Frames may come in several buffers (the program is loaded with
    /// `BPF_F_XDP_HAS_FRAGS`, `xdp.frags`): needed for an MTU over what one
    /// page holds (veth refuses a larger MTU under a program without it),
    /// with multi-buffer AF_XDP sockets. The program reads only the
    /// headers, which are in the first buffer.
    pub multi_buffer: bool,
}

// Offsets of `struct steer_config` in bpf/steer.bpf.c (checked against the
// object's BTF by a unit test in lib.rs).
pub(crate) mod field {
    use std::ops::Range;
    pub const ADDR: Range<usize> = 0..4;
    pub const MODE: Range<usize> = 4..8;
    pub const EPH_LO: Range<usize> = 8..10;
    pub const EPH_HI: Range<usize> = 10..12;
    pub const NPORTS: Range<usize> = 12..14;
    pub const PORTS: usize = 14;
    pub const ALIAS_LO: Range<usize> = 48..52;
    pub const ALIAS_HI: Range<usize> = 52..56;
    pub const SIZE: usize = 56;
}

const MODE_OWN: u32 = 0;
const MODE_SHARED: u32 = 1;

impl SteerConfig {
    /// The byte image of `struct steer_config` (host byte order for the
    /// numbers, network byte order for the address, as the program reads them).
    pub(crate) fn to_bytes(&self) -> Result<[u8; field::SIZE]> {
        let mut b = [0u8; field::SIZE];
        b[field::ADDR].copy_from_slice(&self.addr.octets());
        let (mode, ports, eph) = match &self.steer {
            Steer::OwnAddress => (MODE_OWN, &[][..], None),
            Steer::SharedAddress { ports, ephemeral } => {
                (MODE_SHARED, &ports[..], ephemeral.clone())
            }
        };
        if ports.len() > MAX_PORTS {
            return Err(Error::Config(format!(
                "{} ports given, the program takes at most {MAX_PORTS}",
                ports.len()
            )));
        }
        if let Some(r) = eph.as_ref().filter(|r| r.is_empty()) {
            return Err(Error::Config(format!(
                "empty ephemeral range {}..={}",
                r.start(),
                r.end()
            )));
        }
        // No range: lo > hi, which matches no port.
        let (lo, hi) = eph.map_or((1, 0), |r| (*r.start(), *r.end()));
        b[field::MODE].copy_from_slice(&mode.to_ne_bytes());
        b[field::EPH_LO].copy_from_slice(&lo.to_ne_bytes());
        b[field::EPH_HI].copy_from_slice(&hi.to_ne_bytes());
        let n = u16::try_from(ports.len()).expect("at most MAX_PORTS");
        b[field::NPORTS].copy_from_slice(&n.to_ne_bytes());
        for (i, p) in ports.iter().enumerate() {
            let at = field::PORTS + 2 * i;
            b[at..at + 2].copy_from_slice(&p.to_ne_bytes());
        }
        // No aliases: lo > hi, which matches no address.
        let (lo, hi) = self
            .aliases
            .as_ref()
            .map_or((1, 0), |r| (r.start().to_bits(), r.end().to_bits()));
        b[field::ALIAS_LO].copy_from_slice(&lo.to_ne_bytes());
        b[field::ALIAS_HI].copy_from_slice(&hi.to_ne_bytes());
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_address_image() {
        let c = SteerConfig {
            addr: Ipv4Addr::new(198, 18, 0, 2),
            aliases: None,
            multi_buffer: false,
            steer: Steer::OwnAddress,
        };
        let b = c.to_bytes().unwrap();
        assert_eq!(&b[field::ADDR], &[198, 18, 0, 2]);
        // no aliases: lo > hi
        let word = |r: std::ops::Range<usize>| u32::from_ne_bytes(b[r].try_into().unwrap());
        assert!(word(field::ALIAS_LO) > word(field::ALIAS_HI));
        assert_eq!(u32::from_ne_bytes(b[field::MODE].try_into().unwrap()), 0);
        // no ephemeral range: lo > hi
        assert_eq!(u16::from_ne_bytes(b[field::EPH_LO].try_into().unwrap()), 1);
        assert_eq!(u16::from_ne_bytes(b[field::EPH_HI].try_into().unwrap()), 0);
    }

    #[test]
    fn shared_address_image() {
        let c = SteerConfig {
            addr: Ipv4Addr::new(198, 18, 0, 2),
            aliases: Some(Ipv4Addr::new(198, 18, 0, 200)..=Ipv4Addr::new(198, 18, 0, 231)),
            multi_buffer: false,
            steer: Steer::SharedAddress {
                ports: vec![80, 9000],
                ephemeral: Some(40000..=40999),
            },
        };
        let b = c.to_bytes().unwrap();
        assert_eq!(u32::from_ne_bytes(b[field::MODE].try_into().unwrap()), 1);
        assert_eq!(
            u16::from_ne_bytes(b[field::EPH_LO].try_into().unwrap()),
            40000
        );
        assert_eq!(
            u16::from_ne_bytes(b[field::EPH_HI].try_into().unwrap()),
            40999
        );
        assert_eq!(u16::from_ne_bytes(b[field::NPORTS].try_into().unwrap()), 2);
        assert_eq!(u16::from_ne_bytes([b[16], b[17]]), 9000);
        let word = |r: std::ops::Range<usize>| u32::from_ne_bytes(b[r].try_into().unwrap());
        assert_eq!(word(field::ALIAS_LO), 0xc612_00c8);
        assert_eq!(word(field::ALIAS_HI), 0xc612_00e7);
    }

    #[test]
    fn too_many_ports_is_refused() {
        let c = SteerConfig {
            addr: Ipv4Addr::new(198, 18, 0, 2),
            aliases: None,
            multi_buffer: false,
            steer: Steer::SharedAddress {
                ports: (1..=17).collect(),
                ephemeral: None,
            },
        };
        assert!(matches!(c.to_bytes(), Err(Error::Config(_))));
    }
}
