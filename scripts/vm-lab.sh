#!/usr/bin/env bash
# The virtual-machine lab: one guest (QEMU; KVM where it works, else TCG)
# with two multi-queue virtio-net NICs joined back to back through a bridge
# inside a host namespace, running the harness inside it: `bypass doctor`
# on virtio_net, then a `bypass agent` in each of two guest namespaces and
# `bypass run --server --client` over the two NICs with native XDP. A
# correctness lab (TCG is ~70x slower than the veth lab), not a benchmark.
#
#   scripts/vm-lab.sh [--out DIR] [bypass run arguments]
#       (default: rr crr udp-rr on the kernel paths and the three bypass ones,
#       1 s each after 5 s, with --xsk-bind zero-copy on a 6.13+ guest)
#
# The guest kernel is Debian's newest (sid, trixie-backports), fetched with
# an apt configuration of its own (its own sources list, lists and cache
# under $BYPASS_VM_CACHE) that never touches the host's packages; Linux
# 6.13+ gives virtio_net zero-copy AF_XDP. Everything made on the host (the
# namespace, its bridge and taps, QEMU) is named byp..., tracked and removed
# on exit, also when interrupted; a killed run's leftovers go with the next.
# Exit 77 (skip) only where the host cannot run QEMU or has no /dev/net/tun.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
out=$repo/results
if [ "${1:-}" = "--out" ]; then out=$2; shift 2; fi
defaults=0
if [ $# -eq 0 ]; then
    defaults=1
    # a 5 s warmup: under TCG a bypass side's XDP attach and zero-copy bind
    # on virtio_net (each queue reset) has taken over 3 s, and a side whose
    # window starts before it is ready runs no round (no_ops, its
    # counters all zero; seen 1 run in ~15)
    set -- rr crr udp-rr --path kernel,kernel-busy,kernel-uring,bypass --duration 1 --warmup 5
fi
# not under /var/cache: the guest sees a tmpfs there, and the guest's
# /lib/modules/VERSION links into this cache
cache=${BYPASS_VM_CACHE:-/var/lib/bypass/vm}
state=/run/bypass-vm

skip() { echo "vm-lab: skipped: $*" >&2; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root (namespaces, taps)"
[ -c /dev/net/tun ] || skip "this host has no /dev/net/tun"

# what the host needs, from the host's own suites
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v busybox >/dev/null || need+=(busybox-static)
command -v depmod >/dev/null || need+=(kmod)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
command -v ethtool >/dev/null || need+=(ethtool)
if [ ${#need[@]} -gt 0 ]; then
    echo "vm-lab: installing ${need[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null ||
        { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null; }
fi
command -v qemu-system-x86_64 >/dev/null || skip "QEMU cannot be installed here"
if [ ! -x "$cache/venv/bin/vng" ]; then
    python3 -m venv "$cache/venv"
    "$cache/venv/bin/pip" install -q virtme-ng==1.42
fi
export PATH=$cache/venv/bin:$PATH

# the guest kernel: the newest linux-image-amd64 Debian serves
apt_dir=$cache/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$cache/kernel"
cat > "$apt_dir/sources.list" <<'EOF'
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie-backports main
EOF
A=(-o Dir::Etc::SourceList="$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
   -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir" -o Dir::Cache::archives="$apt_dir/archives"
   -o Dir::State::Status=/dev/null -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
kdir=
if timeout 300 apt-get "${A[@]}" -q update >/dev/null 2>&1; then
    ver=$(apt-cache "${A[@]}" madison linux-image-amd64 | awk '{print $3}' | sort -V | tail -1)
    abi=$(apt-cache "${A[@]}" depends "linux-image-amd64=$ver" | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    abi=${abi#linux-image-}
    if [ -n "$abi" ] && [ ! -e "$cache/kernel/$abi/usr/lib/modules/$abi/vmlinuz" ]; then
        echo "vm-lab: fetching the guest kernel $abi ($ver)" >&2
        dl=$(mktemp -d "$cache/dl.XXXXXX")
        pkgs=("linux-modules-$abi")
        if apt-cache "${A[@]}" show "linux-binary-$abi" >/dev/null 2>&1; then
            pkgs+=("linux-binary-$abi")
        else
            pkgs=("linux-image-$abi-unsigned")
        fi
        (cd "$dl" && timeout 600 apt-get "${A[@]}" -q download "${pkgs[@]}" >/dev/null)
        rm -rf "$cache/kernel/$abi.new" && mkdir -p "$cache/kernel/$abi.new"
        for d in "$dl"/*.deb; do dpkg-deb -x "$d" "$cache/kernel/$abi.new"; done
        depmod -a -b "$cache/kernel/$abi.new/usr" "$abi"
        rm -rf "$dl" "$cache/kernel/$abi" && mv "$cache/kernel/$abi.new" "$cache/kernel/$abi"
    fi
    [ -n "$abi" ] && kdir=$cache/kernel/$abi
fi
if [ -z "$kdir" ] || [ ! -d "$kdir" ]; then
    # no registry: the newest kernel already in the cache
    kdir=$(ls -d "$cache"/kernel/*/ 2>/dev/null | grep -v '\.new/$' | sort -V | tail -1 || true)
    kdir=${kdir%/}
fi
[ -n "$kdir" ] || { echo "vm-lab: no guest kernel: Debian's registry is unreachable and the cache ($cache/kernel) is empty" >&2; exit 1; }
abi=$(basename "$kdir")
kimg=$kdir/usr/lib/modules/$abi/vmlinuz

# $BYPASS_BIN: a binary already built (the tests'); else a release build
if [ -n "${BYPASS_BIN:-}" ]; then
    B=$BYPASS_BIN
else
    cargo build --release --quiet
    B=$repo/target/release/bypass
fi

# the processes this lab started all run inside its host namespace (vng,
# QEMU): they end by their pids, TERM then KILL
stop_ns_pids() {
    local pids
    pids=$(ip netns pids "$1" 2>/dev/null || true)
    [ -n "$pids" ] || return 0
    kill $pids 2>/dev/null || true
    for _ in $(seq 50); do
        pids=$(ip netns pids "$1" 2>/dev/null || true)
        [ -n "$pids" ] || return 0
        sleep 0.1
    done
    kill -9 $pids 2>/dev/null || true
}

# reap what a killed run left: each state file names a namespace and the
# script that made it; if that script is gone, so go its processes and
# its namespace
mkdir -p "$state"
for f in "$state"/*; do
    [ -e "$f" ] || continue
    read -r old_ns owner old_work < "$f" || true
    if [ -n "${owner:-}" ] && kill -0 "$owner" 2>/dev/null &&
        grep -q vm-lab.sh "/proc/$owner/cmdline" 2>/dev/null; then
        continue # a live run's
    fi
    case "$old_ns" in byp-vm-*) ;; *) rm -f "$f"; continue ;; esac
    stop_ns_pids "$old_ns"
    ip netns del "$old_ns" 2>/dev/null || true
    case "${old_work:-}" in /tmp/byp-vm-*) rm -rf "$old_work" ;; esac
    rm -f "$f"
done

sfx=$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')
ns=byp-vm-$sfx
work=$(mktemp -d "/tmp/byp-vm-$sfx.XXXXXX")
echo "$ns $$ $work" > "$state/$sfx"
vng_pid=
cleanup() {
    stop_ns_pids "$ns"
    [ -n "$vng_pid" ] && wait "$vng_pid" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -f "$state/$sfx"
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add "bypb$sfx" type bridge
ip -n "$ns" link set "bypb$sfx" up
for i in 0 1; do
    ip netns exec "$ns" ip tuntap add dev "bypt$i$sfx" mode tap multi_queue
    ip -n "$ns" link set "bypt$i$sfx" master "bypb$sfx" up
done

accel=--disable-kvm
if [ -w /dev/kvm ] && [ "${BYPASS_VM_KVM:-auto}" != off ]; then
    # the hypervisor's KVM may be one that stock kernels fail under: try it
    if timeout 30 vng --run "$kimg" --cpus 1 --memory 512M --rwdir "$work" \
        --exec "touch $work/kvm-ok" </dev/null >/dev/null 2>&1 || [ -e "$work/kvm-ok" ]; then
        [ -e "$work/kvm-ok" ] && accel=
    fi
fi
echo "vm-lab: booting $abi ($([ -z "$accel" ] && echo KVM || echo TCG)) with 2 virtio-net NICs" >&2

head -c 32 /dev/urandom | base64 > "$work/secret"
# zero-copy AF_XDP on virtio_net: Linux 6.13+ (its transmit side and the
# xsk-zerocopy flag), and a device on the DMA API (VIRTIO_F_ACCESS_PLATFORM,
# QEMU's iommu_platform=on; without it the bind says EINVAL). On such a
# guest the default run asks for zero-copy and fails rather than fall back.
# BYPASS_VM_ZC=0 turns it off (copy mode), =1 forces the device flag.
kmaj=${abi%%.*}; kmin=${abi#*.}; kmin=${kmin%%[.+-]*}
zc_kernel=0
[ "$kmaj" -gt 6 ] || { [ "$kmaj" = 6 ] && [ "$kmin" -ge 13 ]; } && zc_kernel=1
zc=
zc_mode=${BYPASS_VM_ZC:-auto}
if [ "$zc_mode" = 1 ] || { [ "$zc_mode" = auto ] && [ "$zc_kernel" = 1 ]; }; then
    zc=disable-legacy=on,iommu_platform=on,
    [ "$defaults" = 1 ] && set -- "$@" --xsk-bind zero-copy
fi
zc_note="zero-copy asked (--xsk-bind zero-copy): see each host's zero_copy in result.json"
[ -n "$zc" ] || zc_note="copy mode: guest kernel $abi$([ "$zc_kernel" = 1 ] && echo ", BYPASS_VM_ZC=0" || echo " is older than 6.13, whose virtio_net has no zero-copy AF_XDP")"
q=(-netdev "tap,id=n0,ifname=bypt0$sfx,script=no,downscript=no,queues=2,vhost=off"
   -device "virtio-net-pci,netdev=n0,mq=on,vectors=6,rss=on,${zc}mac=52:54:00:18:00:01"
   -netdev "tap,id=n1,ifname=bypt1$sfx,script=no,downscript=no,queues=2,vhost=off"
   -device "virtio-net-pci,netdev=n1,mq=on,vectors=6,rss=on,${zc}mac=52:54:00:18:00:02")
ip netns exec "$ns" vng --run "$kimg" $accel --disable-microvm --cpus 2 --memory 3G \
    --rwdir "$work" --qemu-opts="${q[*]}" \
    --exec "BYPASS=$B bash $repo/scripts/vm-guest.sh $work $*" \
    </dev/null > "$work/console.log" 2>&1 &
vng_pid=$!
# the guest has no udev: vng's exit code says nothing; its marker does
wait "$vng_pid" || true
vng_pid=
if [ ! -e "$work/rc" ]; then
    echo "vm-lab: the guest did not finish; its console:" >&2
    tail -40 "$work/console.log" >&2
    [ -e "$work/guest.log" ] && tail -40 "$work/guest.log" >&2
    exit 1
fi
rc=$(cat "$work/rc")
dest=$out/$(date -u +%Y%m%dT%H%M%SZ)-vm
mkdir -p "$dest"
cp -r "$work"/results/* "$dest/" 2>/dev/null || true
cp "$work"/doctor-* "$work"/ethtool-x.txt "$work/guest.log" "$dest/" 2>/dev/null || true
{
    echo "# VM lab: a correctness run, not a benchmark"
    echo
    echo "Command: \`scripts/vm-lab.sh $*\`"
    echo
    echo "Guest kernel $abi (Debian), QEMU $(qemu-system-x86_64 --version | head -1 | awk '{print $4}')" \
        "$([ -z "$accel" ] && echo KVM || echo TCG), 2 vCPUs, two virtio-net NICs (2 queue pairs each; XDP transmits in the driver's shared, locked mode) joined by a bridge."
    echo
    echo "AF_XDP: $zc_note."
} > "$dest/README.md"
echo "$dest"
if [ "$rc" != 0 ]; then
    echo "vm-lab: the guest's run failed (rc $rc); what it said:" >&2
    grep -v '^+' "$work/guest.log" | grep -E '^\||ended early|error|failed|bypass:' | tail -60 >&2
fi
exit "$rc"
