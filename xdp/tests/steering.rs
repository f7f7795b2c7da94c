//! The steering program on a veth in a throwaway lab: attach modes, kernel
//! traffic untouched while no socket is in the map, refusal of a second
//! program without force, and detach on Drop and on SIGKILL.
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{in_ns, listen_a, tcp_echo, Lab, ADDR_A};
use xdp::{AttachedMode, Error, Replaced, Steer, SteerConfig, Steering, XdpMode};

fn own(addr: Ipv4Addr) -> SteerConfig {
    SteerConfig {
        addr,
        aliases: None,
        multi_buffer: false,
        steer: Steer::OwnAddress,
    }
}

/// Attaches on side a's veth, from a thread inside namespace a.
fn attach(lab: &Lab, mode: XdpMode, config: &SteerConfig, force: bool) -> xdp::Result<Steering> {
    in_ns(&lab.a, || {
        Steering::attach(lab.veth_a.as_str(), mode, config, force)
    })
}

#[test]
fn native_attach_leaves_kernel_tcp_alone() {
    let Some(lab) = Lab::new("native_attach_leaves_kernel_tcp_alone") else {
        return;
    };
    // The stack's address is one nobody uses: every frame is the kernel's.
    let s = attach(
        &lab,
        XdpMode::Native,
        &own(Ipv4Addr::new(198, 18, 0, 9)),
        false,
    )
    .expect("native attach on veth");
    assert_eq!(s.mode(), Some(AttachedMode::Native));
    assert!(
        lab.xdp_shown_on_a(),
        "ip link shows no program: {}",
        lab.link_show(&lab.a, &lab.veth_a)
    );
    tcp_echo(&lab, listen_a(&lab), 100);
    let c = s.counters().unwrap();
    assert!(c.passed >= 100, "passed frames counted: {c:?}");
    assert_eq!((c.steered, c.no_socket), (0, 0), "{c:?}");
}

#[test]
fn frames_for_the_stack_without_a_socket_reach_the_kernel() {
    let Some(lab) = Lab::new("frames_for_the_stack_without_a_socket_reach_the_kernel") else {
        return;
    };
    // The stack claims side a's own address, but no queue has a socket:
    // bpf_redirect_map falls back to XDP_PASS and the kernel still answers.
    let s = attach(&lab, XdpMode::Native, &own(ADDR_A), false).unwrap();
    tcp_echo(&lab, listen_a(&lab), 50);
    let c = s.counters().unwrap();
    assert!(
        c.no_socket >= 50,
        "frames for the stack counted as no socket: {c:?}"
    );
    assert_eq!(c.steered, 0, "{c:?}");
}

#[test]
fn an_alias_is_claimed_like_the_address() {
    let Some(lab) = Lab::new("an_alias_is_claimed_like_the_address") else {
        return;
    };
    // The stack's own address is unused; side a's address is one of its
    // aliases: the program claims it (and, without a socket, passes it on).
    let first = Ipv4Addr::from_bits(ADDR_A.to_bits() - 1);
    let config = SteerConfig {
        addr: Ipv4Addr::new(198, 18, 0, 9),
        aliases: Some(first..=ADDR_A),
        multi_buffer: false,
        steer: Steer::OwnAddress,
    };
    let s = attach(&lab, XdpMode::Native, &config, false).unwrap();
    tcp_echo(&lab, listen_a(&lab), 50);
    let c = s.counters().unwrap();
    assert!(c.no_socket >= 50, "the alias was not claimed: {c:?}");
    assert_eq!(c.steered, 0, "{c:?}");
}

#[test]
fn shared_address_claims_only_its_ports() {
    let Some(lab) = Lab::new("shared_address_claims_only_its_ports") else {
        return;
    };
    let stack_port = listen_a(&lab);
    let other = listen_a(&lab);
    let config = SteerConfig {
        addr: ADDR_A,
        aliases: None,
        multi_buffer: false,
        steer: Steer::SharedAddress {
            ports: vec![stack_port.local_addr().unwrap().port()],
            ephemeral: Some(61000..=61999),
        },
    };
    let s = attach(&lab, XdpMode::Native, &config, false).unwrap();
    tcp_echo(&lab, other, 20);
    let after_other = s.counters().unwrap();
    assert_eq!(
        after_other.no_socket, 0,
        "another port was claimed: {after_other:?}"
    );
    tcp_echo(&lab, stack_port, 20);
    let c = s.counters().unwrap();
    assert!(c.no_socket >= 20, "the stack's port was not claimed: {c:?}");
}

#[test]
fn second_attach_is_refused_without_force_and_replaces_with_it() {
    let Some(lab) = Lab::new("second_attach_is_refused_without_force_and_replaces_with_it") else {
        return;
    };
    let cfg = own(Ipv4Addr::new(198, 18, 0, 9));
    let first = attach(&lab, XdpMode::Native, &cfg, false).unwrap();
    let err = attach(&lab, XdpMode::Native, &cfg, false).expect_err("second attach refused");
    match &err {
        Error::Busy { iface, prog_id, .. } => {
            assert_eq!(iface, &lab.veth_a);
            assert_eq!(*prog_id, first.prog_id());
        }
        other => panic!("expected Busy, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&lab.veth_a) && msg.contains("--force"),
        "{msg}"
    );
    // the link is ours: the message names this process as its holder
    assert!(
        msg.contains(&format!("of pid {}", std::process::id())),
        "{msg}"
    );
    // Also refused in the other mode: one program per interface.
    assert!(matches!(
        attach(&lab, XdpMode::Generic, &cfg, false),
        Err(Error::Busy { .. })
    ));

    let second = attach(&lab, XdpMode::Native, &cfg, true).expect("forced attach");
    match second.replaced() {
        Some(Replaced::DetachedLink { prog_id, .. }) => assert_eq!(prog_id, first.prog_id()),
        other => panic!("expected the first link detached, got {other:?}"),
    }
    let now = in_ns(&lab.a, || xdp::existing_program(lab.veth_a.as_str())).unwrap();
    assert_eq!(now.map(|e| e.prog_id), Some(second.prog_id()));
    // Dropping the displaced one must not disturb the new one.
    drop(first);
    let now = in_ns(&lab.a, || xdp::existing_program(lab.veth_a.as_str())).unwrap();
    assert_eq!(now.map(|e| e.prog_id), Some(second.prog_id()));
    tcp_echo(&lab, listen_a(&lab), 10);
    assert!(second.counters().unwrap().passed >= 10);
}

#[test]
fn drop_detaches() {
    let Some(lab) = Lab::new("drop_detaches") else {
        return;
    };
    let s = attach(&lab, XdpMode::Native, &own(ADDR_A), false).unwrap();
    let found = in_ns(&lab.a, || xdp::existing_program(lab.veth_a.as_str())).unwrap();
    let found = found.expect("a program after attach");
    assert_eq!(found.prog_id, s.prog_id());
    assert_eq!(found.mode, "native");
    assert!(found.link_id.is_some(), "held by a bpf_link: {found:?}");
    drop(s);
    let found = in_ns(&lab.a, || xdp::existing_program(lab.veth_a.as_str())).unwrap();
    assert_eq!(found, None);
    assert!(
        !lab.xdp_shown_on_a(),
        "{}",
        lab.link_show(&lab.a, &lab.veth_a)
    );
    // and the interface takes a program again
    attach(&lab, XdpMode::Native, &own(ADDR_A), false).unwrap();
}

#[test]
fn generic_and_auto_modes() {
    let Some(lab) = Lab::new("generic_and_auto_modes") else {
        return;
    };
    let cfg = own(Ipv4Addr::new(198, 18, 0, 9));
    let g = attach(&lab, XdpMode::Generic, &cfg, false).unwrap();
    assert_eq!(g.mode(), Some(AttachedMode::Generic));
    let shown = lab.link_show(&lab.a, &lab.veth_a);
    assert!(shown.contains("xdpgeneric"), "{shown}");
    tcp_echo(&lab, listen_a(&lab), 10);
    assert!(g.counters().unwrap().passed >= 10);
    drop(g);
    // veth has native XDP: auto takes it
    let a = attach(&lab, XdpMode::Auto, &cfg, false).unwrap();
    assert_eq!(a.mode(), Some(AttachedMode::Native));
    assert!(a.native_error().is_none());
}

#[test]
fn missing_interface_is_named() {
    let Some(lab) = Lab::new("missing_interface_is_named") else {
        return;
    };
    let err = in_ns(&lab.a, || {
        Steering::attach("byp-nosuchif", XdpMode::Auto, &own(ADDR_A), false)
    })
    .expect_err("no such interface");
    assert!(matches!(err, Error::NoSuchInterface { .. }), "{err}");
    assert!(err.to_string().contains("byp-nosuchif"), "{err}");
}

/// The variable that turns [`child_attach_and_wait`] into the child of
/// [`sigkill_leaves_no_program`]: "NAMESPACE IFACE".
const CHILD_ENV: &str = "BYPASS_XDP_TEST_CHILD";

/// Not a test on its own: with CHILD_ENV set, this process is the child that
/// attaches, says so on stdout, and waits (bounded) to be killed.
#[test]
fn child_attach_and_wait() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (ns, iface) = spec.split_once(' ').expect("NAMESPACE IFACE");
    common::enter(ns); // this whole process is the child: its test thread may enter
    let s = Steering::attach(iface, XdpMode::Native, &own(ADDR_A), false).expect("child attach");
    println!("ATTACHED {}", s.prog_id());
    std::io::stdout().flush().unwrap();
    thread::sleep(Duration::from_secs(60)); // killed long before
    panic!("child was not killed within 60 s");
}

#[test]
fn sigkill_leaves_no_program() {
    let Some(lab) = Lab::new("sigkill_leaves_no_program") else {
        return;
    };
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_attach_and_wait",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{} {}", lab.a, lab.veth_a))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            // libtest may have printed "test NAME ... " on the same line
            if let Some((_, id)) = line.split_once("ATTACHED ") {
                let _ = tx.send(id.trim().parse::<u32>().ok());
                return;
            }
        }
        let _ = tx.send(None);
    });
    let attached = rx.recv_timeout(Duration::from_secs(60));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let Ok(Some(prog_id)) = attached else {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
        panic!("the child did not attach: {attached:?}");
    };
    let found = in_ns(&lab.a, || xdp::existing_program(lab.veth_a.as_str())).unwrap();
    assert_eq!(
        found.map(|e| e.prog_id),
        Some(prog_id),
        "the child's program is on the interface"
    );
    assert!(lab.xdp_shown_on_a());

    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill the child");
    let status = child.wait().expect("reap the child");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "{status:?}"
    );
    // The kernel frees the link when the dead process's files close; allow it
    // a moment (bounded).
    let deadline = Instant::now() + Duration::from_secs(5);
    while lab.xdp_shown_on_a() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !lab.xdp_shown_on_a(),
        "a program outlived its SIGKILLed holder: {}",
        lab.link_show(&lab.a, &lab.veth_a)
    );
    let found = in_ns(&lab.a, || xdp::existing_program(lab.veth_a.as_str())).unwrap();
    assert_eq!(found, None);
}

#[test]
fn force_replaces_a_netlink_attached_program() {
    let Some(lab) = Lab::new("force_replaces_a_netlink_attached_program") else {
        return;
    };
    // A program attached the old way (netlink, no bpf_link), as `ip` does.
    let obj = concat!(env!("OUT_DIR"), "/steer.bpf.o");
    common::ip(&[
        "-n",
        &lab.a,
        "link",
        "set",
        "dev",
        &lab.veth_a,
        "xdpgeneric",
        "obj",
        obj,
        "sec",
        "xdp",
    ])
    .expect("ip attaches a program through netlink");
    let old = in_ns(&lab.a, || xdp::existing_program(lab.veth_a.as_str()))
        .unwrap()
        .expect("ip's program");
    assert_eq!((old.mode, old.link_id), ("generic", None), "{old:?}");
    let cfg = own(Ipv4Addr::new(198, 18, 0, 9));
    match attach(&lab, XdpMode::Auto, &cfg, false) {
        Err(e @ Error::Busy { .. }) => {
            let Error::Busy {
                prog_id, link_id, ..
            } = &e
            else {
                unreachable!()
            };
            assert_eq!(*prog_id, old.prog_id);
            assert_eq!(*link_id, None, "no link holds it");
            assert!(e.to_string().contains("xdp off"), "{e}");
        }
        other => panic!("expected Busy, got {other:?}"),
    }
    let s = attach(&lab, XdpMode::Auto, &cfg, true).expect("forced attach");
    assert_eq!(
        s.replaced(),
        Some(Replaced::DetachedNetlink {
            prog_id: old.prog_id
        })
    );
    assert_eq!(s.mode(), Some(AttachedMode::Native));
    drop(s);
    assert!(
        !lab.xdp_shown_on_a(),
        "{}",
        lab.link_show(&lab.a, &lab.veth_a)
    );
}
