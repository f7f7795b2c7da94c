#!/usr/bin/env bash
# Installs what bypass needs on Debian 12, as root: the lab's tools (iproute2,
# ethtool, jq), the BPF toolchain (clang-14, libelf, zlib, pkg-config, make) and
# the independent tools the validation uses (wrk, iperf3, sockperf, curl, tcpdump).
# Rust stable (cargo) must already be there.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "setup: run as root (it installs packages, and the lab needs network namespaces)" >&2
    exit 2
fi
pkgs=(iproute2 ethtool procps iputils-ping curl wrk iperf3 sockperf tcpdump jq
      clang-14 llvm-14 libelf-dev zlib1g-dev pkg-config make)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
    for d in "$HOME/.cargo/bin" /root/.cargo/bin; do
        [ -x "$d/cargo" ] && export PATH="$d:$PATH" && break
    done
fi
if ! command -v cargo >/dev/null; then
    echo "setup: Rust is missing: install the stable toolchain (https://rustup.rs), then run this again" >&2
    exit 2
fi
