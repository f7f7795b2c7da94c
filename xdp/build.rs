//! Compiles the XDP steering program (bpf/steer.bpf.c) with clang-14 and
//! generates its skeleton module into OUT_DIR.
use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

const SRC: &str = "bpf/steer.bpf.c";

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // Debian ships clang-14 without an unversioned `clang`; BPF_CLANG overrides.
    let clang = env::var("BPF_CLANG").unwrap_or_else(|_| "clang-14".to_owned());
    if let Err(e) = SkeletonBuilder::new()
        .source(SRC)
        .obj(out.join("steer.bpf.o"))
        .clang(&clang)
        // asm/types.h lives under the multiarch include directory on Debian.
        .clang_args(["-I/usr/include/x86_64-linux-gnu", "-O2", "-g", "-Wall"])
        .build_and_generate(out.join("steer.skel.rs"))
    {
        panic!(
            "building {SRC} with {clang} failed: {e:#}\n\
             install the BPF toolchain with scripts/setup.sh (clang-14, libelf-dev, zlib1g-dev)"
        );
    }
    println!("cargo:rerun-if-changed={SRC}");
    println!("cargo:rerun-if-env-changed=BPF_CLANG");
}
