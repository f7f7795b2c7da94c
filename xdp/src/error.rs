//! Control-plane errors: each names the interface, the call that failed and
//! what to do about it.
use std::io;

/// What went wrong while loading, attaching or driving the steering program.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The interface does not exist in the calling thread's network namespace.
    #[error("interface {iface}: not found in this network namespace ({source}); check `ip link show`, or enter the interface's namespace first")]
    NoSuchInterface {
        /// The name or index asked for.
        iface: String,
        /// What the lookup said.
        source: io::Error,
    },
    /// The interface already carries an XDP program and `force` was not given.
    #[error("interface {iface}: already has XDP program id {prog_id} ({mode}{}); refusing to replace it: {}", held_by(*.link_id, .holders), busy_advice(.iface, *.link_id, .holders))]
    Busy {
        /// The interface.
        iface: String,
        /// The program that is there.
        prog_id: u32,
        /// How it is attached ("native", "generic", "offload").
        mode: &'static str,
        /// The bpf_link that holds it, if one does.
        link_id: Option<u32>,
        /// The processes that hold that link open (its owners).
        holders: Vec<u32>,
    },
    /// The requested configuration cannot be expressed to the program.
    #[error("steering configuration: {0}")]
    Config(String),
    /// libbpf could not parse or load the object; `verifier_log` has what
    /// the kernel (or libbpf) said.
    #[error(
        "loading the steering program failed in {call}: {source}; {hint}{}",
        log_hint(verifier_log)
    )]
    Load {
        /// The libbpf call that failed.
        call: &'static str,
        /// What to do.
        hint: &'static str,
        /// libbpf's error.
        source: libbpf_rs::Error,
        /// libbpf's and the verifier's messages captured during the load.
        verifier_log: String,
    },
    /// A system call failed (attach, detach, query, map update).
    #[error("interface {iface}: {call} failed: {source}; {hint}")]
    Syscall {
        /// The interface the call was about.
        iface: String,
        /// The call (libbpf function or syscall) that failed.
        call: &'static str,
        /// The errno.
        source: io::Error,
        /// What to do.
        hint: &'static str,
    },
    /// A map operation through libbpf-rs failed.
    #[error("interface {iface}: {call} on map `{map}` failed: {source}")]
    Map {
        /// The interface the program is attached to.
        iface: String,
        /// The operation.
        call: &'static str,
        /// The map's name.
        map: &'static str,
        /// libbpf's error.
        source: libbpf_rs::Error,
    },
}

fn log_hint(log: &str) -> String {
    if log.trim().is_empty() {
        String::new()
    } else {
        format!("\n--- libbpf / verifier log ---\n{}", log.trim_end())
    }
}

/// Result of this crate's calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// ", held by bpf_link L of pid P" for a program that a link holds.
fn held_by(link_id: Option<u32>, holders: &[u32]) -> String {
    match (link_id, holders) {
        (None, _) => String::new(),
        (Some(l), []) => format!(", held by bpf_link {l}"),
        (Some(l), h) => format!(", held by bpf_link {l} of {}", pids(h)),
    }
}

/// What removes a program found on an interface: `ip` removes one attached
/// through netlink; a link goes with the process that holds it (or with
/// `force`, which detaches it).
fn busy_advice(iface: &str, link_id: Option<u32>, holders: &[u32]) -> String {
    match (link_id, holders) {
        (None, _) => format!(
            "pass --force to detach it, or remove it with `ip link set dev {iface} xdp off` in the interface's namespace"
        ),
        (Some(_), []) => "pass --force to detach its link".to_string(),
        (Some(_), h) => format!(
            "end the process that holds its link ({}), or pass --force to detach the link",
            pids(h)
        ),
    }
}

fn pids(h: &[u32]) -> String {
    let list: Vec<String> = h.iter().map(|p| p.to_string()).collect();
    format!("pid {}", list.join(", "))
}
