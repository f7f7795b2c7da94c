//! Records the git revision the binary was built from, so every result file
//! names the code that produced it.
use std::process::Command;

fn main() {
    let rev = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .is_some_and(|o| !o.stdout.is_empty());
    let rev = if dirty { format!("{rev}-dirty") } else { rev };
    println!("cargo:rustc-env=BYPASS_GIT_REV={rev}");
    // a commit moves the branch's ref (HEAD itself names the branch); an
    // edit of a source makes the tree dirty: either must be seen, or a
    // binary built from edited sources would name the last clean revision
    for path in [
        "../.git/HEAD",
        "../.git/index",
        "../.git/refs/heads",
        "../.git/packed-refs",
        "src",
        "../stack/src",
        "../xdp/src",
        "../xdp/bpf",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
}
