//! Frames the Linux kernel sent in a lab (captured by
//! `fuzz/capture-seeds.sh`, the fuzzers' seeds) parse, checksums verified,
//! into what they are; and each emits back to the same bytes, which checks
//! our emitters against the kernel's (including its TCP option layout).

use std::path::PathBuf;

use stack::frame::{parse_frame, Network, Transport};
use stack::wire::{ArpOperation, Checksums, Icmpv4Repr, TcpFlags};

fn seed(name: &str) -> Vec<u8> {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "fuzz",
        "seeds",
        "parse_frame",
        name,
    ]
    .iter()
    .collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn tcp_flags(name: &str) -> TcpFlags {
    let b = seed(name);
    match parse_frame(&b, Checksums::Verify).unwrap().transport() {
        Some(Transport::Tcp(t)) => t.flags,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn every_seed_parses_and_emits_back_identically() {
    let dir: PathBuf = [env!("CARGO_MANIFEST_DIR"), "fuzz", "seeds", "parse_frame"]
        .iter()
        .collect();
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let b = std::fs::read(&path).unwrap();
        let f = parse_frame(&b, Checksums::Verify)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut out = vec![0u8; f.buffer_len()];
        f.emit(&mut out);
        assert_eq!(out, b, "{}", path.display());
        n += 1;
    }
    assert!(n >= 10, "only {n} seeds");
}

#[test]
fn seeds_are_what_their_names_say() {
    assert_eq!(tcp_flags("tcp-syn.bin"), TcpFlags::SYN);
    assert_eq!(tcp_flags("tcp-syn-ack.bin"), TcpFlags::SYN | TcpFlags::ACK);
    assert!(tcp_flags("tcp-fin.bin").contains(TcpFlags::FIN | TcpFlags::ACK));
    assert!(tcp_flags("tcp-rst.bin").contains(TcpFlags::RST));

    let syn = seed("tcp-syn.bin");
    let f = parse_frame(&syn, Checksums::Verify).unwrap();
    let Some(Transport::Tcp(t)) = f.transport() else {
        panic!()
    };
    assert!(t.options.mss.is_some() && t.options.window_scale.is_some());
    assert!(t.options.sack_permitted && t.options.timestamps.is_some());
    assert_eq!(f.flow_key().unwrap().local_port, 8080);

    let arp = seed("arp-request.bin");
    let Network::Arp(a) = parse_frame(&arp, Checksums::Verify).unwrap().network else {
        panic!()
    };
    assert_eq!(a.operation, ArpOperation::Request);

    let ping = seed("icmp-echo-request.bin");
    let f = parse_frame(&ping, Checksums::Verify).unwrap();
    assert!(matches!(
        f.transport(),
        Some(Transport::Icmpv4(Icmpv4Repr::EchoRequest { .. }))
    ));

    let udp = seed("udp.bin");
    let f = parse_frame(&udp, Checksums::Verify).unwrap();
    let Some(Transport::Udp(u)) = f.transport() else {
        panic!()
    };
    assert_eq!(u.payload, b"bypass-seed-udp");
}
