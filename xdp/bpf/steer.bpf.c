// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * steer: the XDP program of bypass.
 *
 * A frame for the userspace stack goes to the AF_XDP socket bound to the queue
 * it arrived on; every other frame goes to the kernel untouched:
 *
 *   own address    (mode 0): ARP whose target is the stack's address, and IPv4
 *                            whose destination is the stack's address (its
 *                            aliases [alias_lo, alias_hi] are its addresses
 *                            too, in both modes);
 *   shared address (mode 1): unfragmented IPv4 TCP/UDP to the stack's address
 *                            whose destination port is one of `ports` or lies
 *                            in the ephemeral range [eph_lo, eph_hi].
 *
 * A queue without a socket falls through to the kernel (the XDP_PASS default
 * of bpf_redirect_map), so attaching the program alone steals nothing.
 * The program only reads the frame, and every read is bounds-checked.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define STEER_MAX_QUEUES 64
#define STEER_MAX_PORTS 16

enum steer_mode {
	STEER_OWN_ADDRESS = 0,
	STEER_SHARED_ADDRESS = 1,
};

/* Keep in step with `SteerConfig` in src/program.rs (the layout is checked
 * there against this object's BTF at load time). */
struct steer_config {
	__u32 addr;     /* the stack's IPv4 address, network byte order */
	__u32 mode;     /* enum steer_mode */
	__u16 eph_lo;   /* ephemeral range, host byte order, inclusive; */
	__u16 eph_hi;   /* eph_lo > eph_hi: no range */
	__u16 nports;   /* used entries of ports */
	__u16 ports[STEER_MAX_PORTS]; /* destination ports, host byte order */
	__u32 alias_lo; /* more addresses of the stack, host byte order, */
	__u32 alias_hi; /* inclusive; alias_lo > alias_hi: none */
};

enum steer_counter {
	STEER_STEERED = 0,   /* redirected to the queue's socket */
	STEER_PASSED = 1,    /* not for the stack: to the kernel */
	STEER_NO_SOCKET = 2, /* for the stack, but its queue had no socket: passed */
	STEER_NCOUNTERS = 3,
};

/* Set by the loader before load; read-only for the program. */
const volatile struct steer_config cfg = {};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, STEER_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STEER_NCOUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct arp_ipv4 {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 oper;
	__u8 sha[ETH_ALEN];
	__be32 spa;
	__u8 tha[ETH_ALEN];
	__be32 tpa;
} __attribute__((packed));

static __always_inline void count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &which);

	if (c)
		*c += 1; /* per-CPU slot: no other writer */
}

static __always_inline int port_wanted(__u16 port)
{
	if (port >= cfg.eph_lo && port <= cfg.eph_hi)
		return 1;
#pragma unroll
	for (int i = 0; i < STEER_MAX_PORTS; i++) {
		if (i >= cfg.nports)
			break;
		if (cfg.ports[i] == port)
			return 1;
	}
	return 0;
}

static __always_inline int is_ours(__be32 addr)
{
	__u32 a = bpf_ntohl(addr);

	return addr == cfg.addr || (a >= cfg.alias_lo && a <= cfg.alias_hi);
}

static __always_inline int for_stack_ipv4(void *l3, void *end)
{
	struct iphdr *ip = l3;

	if ((void *)(ip + 1) > end)
		return 0;
	if (ip->version != 4 || !is_ours(ip->daddr))
		return 0;
	if (cfg.mode == STEER_OWN_ADDRESS)
		return 1;

	/* shared address: only whole TCP/UDP datagrams to our ports */
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return 0;
	if (ip->frag_off & bpf_htons(0x3fff)) /* MF set or offset != 0 */
		return 0;
	if (ip->ihl < 5)
		return 0;
	/* TCP and UDP both start with source port, destination port */
	__be16 *ports = (void *)ip + ip->ihl * 4;

	if ((void *)(ports + 2) > end)
		return 0;
	return port_wanted(bpf_ntohs(ports[1]));
}

static __always_inline int for_stack_arp(void *l3, void *end)
{
	struct arp_ipv4 *arp = l3;

	if ((void *)(arp + 1) > end)
		return 0;
	return arp->ptype == bpf_htons(ETH_P_IP) && arp->plen == 4 &&
	       is_ours(arp->tpa);
}

SEC("xdp")
int steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	int mine = 0;

	if ((void *)(eth + 1) <= end) {
		if (eth->h_proto == bpf_htons(ETH_P_IP))
			mine = for_stack_ipv4(eth + 1, end);
		else if (eth->h_proto == bpf_htons(ETH_P_ARP) &&
			 cfg.mode == STEER_OWN_ADDRESS)
			mine = for_stack_arp(eth + 1, end);
	}
	if (!mine) {
		count(STEER_PASSED);
		return XDP_PASS;
	}

	int action = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);

	count(action == XDP_REDIRECT ? STEER_STEERED : STEER_NO_SOCKET);
	return action;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
