//! The paths a run compares, typed from the command line inward: which data
//! path (the kernel's sockets, or the userspace stack over AF_XDP) each side
//! of a run uses.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The data path of a run: which sides use the bypass path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataPath {
    /// Both ends on the kernel's sockets, at the kernel's defaults (a
    /// sleeping epoll loop): the baseline.
    Kernel,
    /// Both ends on the kernel's sockets, busy polling: the sockets carry
    /// `SO_BUSY_POLL`/`SO_PREFER_BUSY_POLL`/`SO_BUSY_POLL_BUDGET`, epoll
    /// busy-polls (`EPIOCSPARAMS`), each loop spins instead of sleeping,
    /// and the interfaces' NAPI is set for it (`napi_defer_hard_irqs`,
    /// `gro_flush_timeout`; GRO on a veth, which has NAPI only with it).
    KernelBusy,
    /// Both ends on io_uring (multishot accept, multishot receive into a
    /// provided-buffer ring, registered files, batched submissions); TCP
    /// workloads only.
    KernelUring,
    /// The server on the stack, a kernel client.
    Bypass,
    /// The client on the stack, a kernel server.
    BypassClient,
    /// The stack on both ends (each interface with its own program).
    BypassBoth,
}

impl DataPath {
    /// Every path, in the order a run takes them (the kernel first: each
    /// bypass figure has its kernel figure from the same run beside it).
    pub const ALL: [DataPath; 6] = [
        DataPath::Kernel,
        DataPath::KernelBusy,
        DataPath::KernelUring,
        DataPath::Bypass,
        DataPath::BypassClient,
        DataPath::BypassBoth,
    ];

    /// The name in result files and messages.
    pub fn name(self) -> &'static str {
        match self {
            DataPath::Kernel => "kernel",
            DataPath::KernelBusy => "kernel-busy",
            DataPath::KernelUring => "kernel-uring",
            DataPath::Bypass => "bypass",
            DataPath::BypassClient => "bypass-client",
            DataPath::BypassBoth => "bypass-both",
        }
    }

    /// Whether the server side runs on the bypass path.
    pub fn server_bypass(self) -> bool {
        matches!(self, DataPath::Bypass | DataPath::BypassBoth)
    }

    /// Whether the client side runs on the bypass path.
    pub fn client_bypass(self) -> bool {
        matches!(self, DataPath::BypassClient | DataPath::BypassBoth)
    }

    /// Whether a kernel path (both ends on the kernel's sockets: a base
    /// of the ratios).
    pub fn is_kernel(self) -> bool {
        self.kernel_mode().is_some()
    }

    /// How a kernel path configures the kernel (None: a bypass path; its
    /// kernel side, if any, runs at the defaults).
    pub fn kernel_mode(self) -> Option<KernelMode> {
        match self {
            DataPath::Kernel => Some(KernelMode::Default),
            DataPath::KernelBusy => Some(KernelMode::Busy),
            DataPath::KernelUring => Some(KernelMode::Uring),
            _ => None,
        }
    }

    /// Whether the path runs workload `w` (kernel-uring: TCP only).
    pub fn runs(self, w: crate::workload::Workload) -> bool {
        use crate::workload::Workload;
        self != DataPath::KernelUring
            || matches!(w, Workload::Crr | Workload::Rr | Workload::Stream)
    }

    /// Whether the client side spins by construction (its CPUs are busy
    /// whatever the load: only falling short of a rate says it saturated).
    pub fn client_spins(self) -> bool {
        self.client_bypass() || self == DataPath::KernelBusy
    }

    /// Whether the kernel at its defaults (the base other kernel paths are
    /// measured against too).
    pub fn is_default(self) -> bool {
        self == DataPath::Kernel
    }
}

impl fmt::Display for DataPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a kernel side configures the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KernelMode {
    /// epoll, sleeping when idle; the kernel's defaults.
    #[default]
    Default,
    /// Busy polling: socket options, epoll busy poll, NAPI settings, and a
    /// loop that spins.
    Busy,
    /// io_uring instead of epoll (TCP).
    Uring,
}

/// One item of `--path`: a path by name, or a group of paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PathItem {
    /// Both ends on the kernel's sockets (epoll, the kernel's defaults).
    Kernel,
    /// Both ends on the kernel's sockets, busy polling.
    KernelBusy,
    /// Both ends on io_uring (TCP workloads).
    KernelUring,
    /// The server on the stack, a kernel client (the path named `bypass`
    /// in results; `bypass` on the command line is the group below).
    BypassServer,
    /// The client on the stack, a kernel server.
    BypassClient,
    /// The stack on both ends.
    BypassBoth,
    /// The three bypass arrangements: bypass-server, bypass-client, bypass-both.
    Bypass,
    /// The kernel and the three bypass arrangements.
    Both,
    /// Every kernel path: kernel, kernel-busy, kernel-uring.
    Kernels,
    /// Every path.
    All,
}

impl PathItem {
    fn has(self, p: DataPath) -> bool {
        match self {
            PathItem::Kernel => p == DataPath::Kernel,
            PathItem::KernelBusy => p == DataPath::KernelBusy,
            PathItem::KernelUring => p == DataPath::KernelUring,
            PathItem::BypassServer => p == DataPath::Bypass,
            PathItem::BypassClient => p == DataPath::BypassClient,
            PathItem::BypassBoth => p == DataPath::BypassBoth,
            PathItem::Bypass => !p.is_kernel(),
            PathItem::Both => p == DataPath::Kernel || !p.is_kernel(),
            PathItem::Kernels => p.is_kernel(),
            PathItem::All => true,
        }
    }
}

/// `--path`: the paths a run takes, each once, in the order of
/// [`DataPath::ALL`] (the kernel paths first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathSet(Vec<DataPath>);

impl PathSet {
    /// The paths the items name, each once.
    pub fn of(items: &[PathItem]) -> PathSet {
        let mut v: Vec<DataPath> = DataPath::ALL
            .iter()
            .copied()
            .filter(|p| items.iter().any(|i| i.has(*p)))
            .collect();
        v.dedup();
        PathSet(v)
    }

    /// Some paths, each once, in [`DataPath::ALL`]'s order.
    pub fn of_paths(ps: &[DataPath]) -> PathSet {
        PathSet(
            DataPath::ALL
                .into_iter()
                .filter(|p| ps.contains(p))
                .collect(),
        )
    }

    pub fn paths(&self) -> &[DataPath] {
        &self.0
    }

    /// The set's names, comma-separated (the result's `config.path`).
    pub fn names(&self) -> String {
        self.0
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `serve --path`: which path the one server uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ServePath {
    Kernel,
    Bypass,
}

/// `--xdp-mode`: how the bypass path attaches its program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum XdpModeArg {
    /// In the driver; refused where the driver has no XDP.
    Native,
    /// In the kernel's generic hook (slower; works on any interface).
    Generic,
    /// Native where the driver has it, else generic (said in the result).
    Auto,
}

impl XdpModeArg {
    pub fn mode(self) -> xdp::XdpMode {
        match self {
            XdpModeArg::Native => xdp::XdpMode::Native,
            XdpModeArg::Generic => xdp::XdpMode::Generic,
            XdpModeArg::Auto => xdp::XdpMode::Auto,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            XdpModeArg::Native => "native",
            XdpModeArg::Generic => "generic",
            XdpModeArg::Auto => "auto",
        }
    }
}

/// `--xsk-bind`: how the bypass path's AF_XDP sockets bind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum XskBindArg {
    /// Zero-copy where the driver can, else copy mode (said in the result).
    #[default]
    Auto,
    /// Zero-copy or fail at the start: a run that asked for it never
    /// measures copy mode.
    ZeroCopy,
    /// Copy mode, also where the driver could do zero-copy.
    Copy,
}

impl XskBindArg {
    pub fn mode(self) -> xdp::BindMode {
        match self {
            XskBindArg::Auto => xdp::BindMode::Auto,
            XskBindArg::ZeroCopy => xdp::BindMode::ZeroCopy,
            XskBindArg::Copy => xdp::BindMode::Copy,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            XskBindArg::Auto => "auto",
            XskBindArg::ZeroCopy => "zero-copy",
            XskBindArg::Copy => "copy",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sides_and_serde_agree() {
        for p in DataPath::ALL {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.name()));
            assert_eq!(serde_json::from_str::<DataPath>(&json).unwrap(), p);
        }
        let sides: Vec<(bool, bool)> = DataPath::ALL
            .iter()
            .map(|p| (p.server_bypass(), p.client_bypass()))
            .collect();
        assert_eq!(
            sides,
            [
                (false, false),
                (false, false),
                (false, false),
                (true, false),
                (false, true),
                (true, true)
            ]
        );
        assert_eq!(DataPath::KernelBusy.kernel_mode(), Some(KernelMode::Busy));
        assert!(DataPath::KernelBusy.client_spins() && !DataPath::Kernel.client_spins());
        assert_eq!(PathSet::of(&[PathItem::Bypass]).paths().len(), 3);
        assert_eq!(PathSet::of(&[PathItem::Kernel]).paths(), [DataPath::Kernel]);
        // items in any order, overlapping: each path once, kernel first
        let s = PathSet::of(&[PathItem::BypassBoth, PathItem::Both, PathItem::Kernel]);
        assert_eq!(s.paths().len(), 4);
        assert!(!s.paths().contains(&DataPath::KernelBusy));
        assert_eq!(PathSet::of(&[PathItem::All]).paths(), &DataPath::ALL);
        let k = PathSet::of(&[PathItem::Kernels, PathItem::BypassBoth]);
        assert_eq!(k.names(), "kernel,kernel-busy,kernel-uring,bypass-both");
        assert!(!DataPath::KernelUring.runs(crate::workload::Workload::UdpRr));
        assert!(DataPath::KernelUring.runs(crate::workload::Workload::Crr));
        let s = PathSet::of(&[PathItem::BypassBoth, PathItem::BypassServer]);
        assert_eq!(s.names(), "bypass,bypass-both");
        assert_eq!(
            serde_json::to_string(&XdpModeArg::Generic).unwrap(),
            "\"generic\""
        );
    }
}
