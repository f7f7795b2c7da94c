//! The paths a run compares, typed from the command line inward: which data
//! path (the kernel's sockets, or the userspace stack over AF_XDP) each side
//! of a run uses.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The data path of a run: which sides use the bypass path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataPath {
    /// Both ends on the kernel's sockets: the baseline.
    Kernel,
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
    pub const ALL: [DataPath; 4] = [
        DataPath::Kernel,
        DataPath::Bypass,
        DataPath::BypassClient,
        DataPath::BypassBoth,
    ];

    /// The name in result files and messages.
    pub fn name(self) -> &'static str {
        match self {
            DataPath::Kernel => "kernel",
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
        self == DataPath::Kernel
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

/// One item of `--path`: a path by name, or a group of paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PathItem {
    /// Both ends on the kernel's sockets (epoll, the kernel's defaults).
    Kernel,
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
}

impl PathItem {
    fn paths(self) -> &'static [DataPath] {
        match self {
            PathItem::Kernel => &DataPath::ALL[..1],
            PathItem::BypassServer => &DataPath::ALL[1..2],
            PathItem::BypassClient => &DataPath::ALL[2..3],
            PathItem::BypassBoth => &DataPath::ALL[3..4],
            PathItem::Bypass => &DataPath::ALL[1..],
            PathItem::Both => &DataPath::ALL,
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
            .filter(|p| items.iter().any(|i| i.paths().contains(p)))
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
            [(false, false), (true, false), (false, true), (true, true)]
        );
        assert_eq!(PathSet::of(&[PathItem::Bypass]).paths().len(), 3);
        assert_eq!(PathSet::of(&[PathItem::Kernel]).paths(), [DataPath::Kernel]);
        // items in any order, overlapping: each path once, kernel first
        let s = PathSet::of(&[PathItem::BypassBoth, PathItem::Both, PathItem::Kernel]);
        assert_eq!(s.paths(), &DataPath::ALL);
        let s = PathSet::of(&[PathItem::BypassBoth, PathItem::BypassServer]);
        assert_eq!(s.names(), "bypass,bypass-both");
        assert_eq!(
            serde_json::to_string(&XdpModeArg::Generic).unwrap(),
            "\"generic\""
        );
    }
}
