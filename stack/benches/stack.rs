//! `cargo bench -p stack`: parse cost of a TCP segment with timestamps, and
//! flow lookup cost (hit and miss) at 1 K, 64 K and 1 M flows for our table
//! beside `std::collections::HashMap` (SipHash-1-3) and hashbrown with
//! foldhash, on the same keys in the same run.
//!
//! Each lookup iteration takes the next key of a shuffled array, so that at
//! 1 M flows successive lookups touch unrelated cache lines, as a server's
//! receive path does.

use core::net::{IpAddr, Ipv4Addr};
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use stack::flow::{FlowHasher, FlowKey, FlowTable};
use stack::frame::{parse_frame, Frame, Network, Transport};
use stack::wire::tcp::SackBlocks;
use stack::wire::{
    Checksums, EtherType, EthernetAddress, EthernetRepr, IpProtocol, Ipv4Repr, TcpFlags,
    TcpOptions, TcpPacket, TcpRepr, Timestamps,
};

/// A deterministic xorshift: the same keys in every run and every table.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `n` distinct keys of connections to 198.18.0.1:80 from clients across
/// 198.18.0.0/15, the shape of a server's flow table.
fn keys(n: usize, rng: &mut Rng) -> Vec<FlowKey> {
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let r = rng.next();
        let remote = Ipv4Addr::from(0xc612_0000 | (r as u32 & 0x1_ffff));
        let key = FlowKey {
            protocol: IpProtocol::TCP,
            local_addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
            local_port: 80,
            remote_addr: IpAddr::V4(remote),
            remote_port: 1024 + ((r >> 32) as u16 % 64512),
        };
        if seen.insert(key) {
            out.push(key);
        }
    }
    out
}

fn shuffled(keys: &[FlowKey], rng: &mut Rng) -> Vec<FlowKey> {
    let mut v = keys.to_vec();
    for i in (1..v.len()).rev() {
        v.swap(i, rng.next() as usize % (i + 1));
    }
    v
}

fn segment_frame() -> Vec<u8> {
    let tcp = TcpRepr {
        src_port: 50000,
        dst_port: 80,
        flags: TcpFlags::ACK | TcpFlags::PSH,
        seq_number: 0x1234_5678,
        ack_number: 0x9abc_def0,
        window_len: 502,
        urgent_at: 0,
        options: TcpOptions {
            timestamps: Some(Timestamps {
                tsval: 0x0102_0304,
                tsecr: 0x0506_0708,
            }),
            sack_blocks: SackBlocks::default(),
            ..TcpOptions::default()
        },
        payload: &[0x61; 64],
    };
    let ip = Ipv4Repr {
        src_addr: Ipv4Addr::new(198, 18, 9, 1),
        dst_addr: Ipv4Addr::new(198, 18, 9, 2),
        protocol: IpProtocol::TCP,
        payload_len: tcp.buffer_len(),
        ttl: 64,
        tos: 0,
        ident: 7,
        dont_frag: true,
    };
    let ethernet = EthernetRepr {
        src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
        dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
        vlan: None,
        ethertype: EtherType::IPV4,
    };
    let frame = Frame {
        ethernet,
        network: Network::Ipv4(ip, Transport::Tcp(tcp)),
    };
    let mut b = vec![0u8; frame.buffer_len()];
    frame.emit(&mut b);
    b
}

fn parse(c: &mut Criterion) {
    let frame = segment_frame();
    let mut g = c.benchmark_group("parse");
    g.bench_function("tcp_ts_segment", |b| {
        let seg = &frame[34..];
        let (src, dst) = (
            IpAddr::V4(Ipv4Addr::new(198, 18, 9, 1)),
            IpAddr::V4(Ipv4Addr::new(198, 18, 9, 2)),
        );
        b.iter(|| {
            let p = TcpPacket::new_checked(black_box(seg)).unwrap();
            black_box(
                TcpRepr::parse(&p, src, dst, Checksums::Verify)
                    .unwrap()
                    .options
                    .timestamps,
            )
        })
    });
    g.bench_function("tcp_ts_frame", |b| {
        b.iter(|| {
            black_box(
                parse_frame(black_box(&frame), Checksums::Verify)
                    .unwrap()
                    .flow_key(),
            )
        })
    });
    g.bench_function("tcp_ts_frame_no_checksum", |b| {
        b.iter(|| {
            black_box(
                parse_frame(black_box(&frame), Checksums::Trust)
                    .unwrap()
                    .flow_key(),
            )
        })
    });
    g.finish();
}

/// The Internet checksum of a full-sized segment's payload and of a
/// small one (GB/s is the figure to read: `Throughput::Bytes`).
fn checksum(c: &mut Criterion) {
    let mut g = c.benchmark_group("checksum");
    for len in [64usize, 1460, 8960] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        g.throughput(criterion::Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::from_parameter(len), &data, |b, d| {
            b.iter(|| black_box(stack::wire::checksum::data(black_box(d))))
        });
    }
    g.finish();
}

/// One lookup per iteration, cycling through `probe`.
fn bench_lookups(
    b: &mut criterion::Bencher<'_>,
    probe: &[FlowKey],
    mut get: impl FnMut(&FlowKey) -> Option<u32>,
) {
    let mut i = 0;
    b.iter(|| {
        let r = get(black_box(&probe[i]));
        i += 1;
        if i == probe.len() {
            i = 0;
        }
        black_box(r)
    })
}

fn lookup(c: &mut Criterion) {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for (label, n) in [("1K", 1usize << 10), ("64K", 1 << 16), ("1M", 1 << 20)] {
        let all = keys(2 * n, &mut rng);
        let (present, absent) = all.split_at(n);
        let hits = shuffled(present, &mut rng);
        let misses = shuffled(absent, &mut rng);

        let mut ours = FlowTable::with_capacity(
            n,
            FlowHasher::new([rng.next(), rng.next(), rng.next(), rng.next()]),
        );
        let mut std_map = std::collections::HashMap::with_capacity(n);
        let mut hb =
            hashbrown::HashMap::with_capacity_and_hasher(n, foldhash::fast::RandomState::default());
        for (i, k) in present.iter().enumerate() {
            ours.insert(*k, i as u32).unwrap();
            std_map.insert(*k, i as u32);
            hb.insert(*k, i as u32);
        }

        for (what, probe) in [("hit", &hits), ("miss", &misses)] {
            let mut g = c.benchmark_group(format!("lookup_{what}"));
            g.bench_with_input(BenchmarkId::new("ours", label), probe, |b, p| {
                bench_lookups(b, p, |k| ours.get(k).copied())
            });
            g.bench_with_input(BenchmarkId::new("std_siphash", label), probe, |b, p| {
                bench_lookups(b, p, |k| std_map.get(k).copied())
            });
            g.bench_with_input(
                BenchmarkId::new("hashbrown_foldhash", label),
                probe,
                |b, p| bench_lookups(b, p, |k| hb.get(k).copied()),
            );
            g.finish();
        }
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = parse, checksum, lookup
}
criterion_main!(benches);
