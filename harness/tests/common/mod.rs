//! What the binary's end-to-end tests share.

/// True as root; otherwise says that `what` needs root and is skipped.
pub fn root(what: &str) -> bool {
    let ok = nix::unistd::geteuid().is_root();
    if !ok {
        eprintln!("SKIP: {what} need root (network namespaces, veth, XDP): run them as root");
    }
    ok
}
