//! The flow table against a model (`std`'s `HashMap`) under random
//! operations, at a capacity small enough that the table fills up.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::collections::HashMap;

use proptest::prelude::*;
use stack::flow::{FlowHasher, FlowKey, FlowTable, InsertError, MAX_PROBE};
use stack::wire::IpProtocol;

#[derive(Debug, Clone)]
enum Op {
    Insert(FlowKey, u32),
    Remove(FlowKey),
    Get(FlowKey),
}

/// Keys from a small universe, so that operations hit the same keys often.
fn key() -> impl Strategy<Value = FlowKey> {
    (any::<bool>(), any::<bool>(), 0u8..4, 0u16..48).prop_map(|(tcp, v6, host, port)| {
        let remote_addr = if v6 {
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(host)))
        } else {
            IpAddr::V4(Ipv4Addr::new(198, 18, 1, host))
        };
        let local_addr = if v6 {
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, 1))
        } else {
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1))
        };
        FlowKey {
            protocol: if tcp {
                IpProtocol::TCP
            } else {
                IpProtocol::UDP
            },
            local_addr,
            local_port: 80,
            remote_addr,
            remote_port: 49152 + port,
        }
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (key(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        key().prop_map(Op::Remove),
        key().prop_map(Op::Get),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn table_agrees_with_a_hashmap(secret in any::<[u64; 4]>(), ops in proptest::collection::vec(op(), 1..400)) {
        const CAP: usize = 100;
        let mut table = FlowTable::with_capacity(CAP, FlowHasher::new(secret));
        let mut model = HashMap::new();
        for op in ops {
            match op {
                Op::Insert(k, v) => match table.insert(k, v) {
                    Ok(old) => prop_assert_eq!(old, model.insert(k, v)),
                    Err(InsertError::Full) => prop_assert!(model.len() == CAP && !model.contains_key(&k)),
                    Err(InsertError::ProbeLimit) => prop_assert!(false, "probe limit at load <= 1/2"),
                },
                Op::Remove(k) => prop_assert_eq!(table.remove(&k), model.remove(&k)),
                Op::Get(k) => prop_assert_eq!(table.get(&k), model.get(&k)),
            }
            prop_assert_eq!(table.len(), model.len());
        }
        for (k, v) in &model {
            prop_assert_eq!(table.get(k), Some(v));
        }
        prop_assert!(table.max_displacement() <= MAX_PROBE);
    }
}
