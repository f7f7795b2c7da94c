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

    /// Whether a kernel path (the baseline of every ratio).
    pub fn is_kernel(self) -> bool {
        self == DataPath::Kernel
    }
}

impl fmt::Display for DataPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `--path`: which paths a run takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PathChoice {
    Kernel,
    Bypass,
    Both,
}

impl PathChoice {
    /// The paths of the choice, in run order: `kernel` the baseline alone,
    /// `bypass` the three bypass arrangements, `both` all four.
    pub fn paths(self) -> &'static [DataPath] {
        match self {
            PathChoice::Kernel => &DataPath::ALL[..1],
            PathChoice::Bypass => &DataPath::ALL[1..],
            PathChoice::Both => &DataPath::ALL,
        }
    }
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
        assert_eq!(PathChoice::Bypass.paths().len(), 3);
        assert!(PathChoice::Kernel.paths()[0].is_kernel());
        assert_eq!(
            serde_json::to_string(&XdpModeArg::Generic).unwrap(),
            "\"generic\""
        );
    }
}
