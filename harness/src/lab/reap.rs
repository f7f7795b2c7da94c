//! Which labs are in use, and the removal of the others: `bypass lab down`
//! and the reaping of a killed run's leftovers when a new lab is made.
//!
//! A lab is in use while a process has a thread in one of its namespaces
//! (a `serve --lab`, an agent, a shell), or, for a run's own lab, while the
//! run's process (whose pid its names carry) is alive. `lab down` without a
//! name removes only labs that are in use by nobody; with a lab's name or
//! `--all` it removes those too, by exact name.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use super::{
    delete_netns, lab_namespaces, load_hosts_states, load_states, parse_ns_name, records_from,
    require_root, HostsLabInfo, LabInfo, LabRecord, Up, STATE_DIR,
};
use crate::error::usage;

/// A process with a thread inside a namespace.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct User {
    pub pid: u32,
    /// Its command name (`/proc/PID/comm`).
    pub command: String,
}

/// The processes other than this one with a thread in network namespace
/// `ns` (as under /run/netns), found by the namespace's inode.
pub fn netns_users(ns: &str) -> Vec<User> {
    let Ok(target) = fs::metadata(Path::new("/run/netns").join(ns)) else {
        return Vec::new();
    };
    let same = |p: &Path| {
        fs::metadata(p).is_ok_and(|m| m.ino() == target.ino() && m.dev() == target.dev())
    };
    let me = std::process::id();
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let tasks = e.path().join("task");
        let inside = fs::read_dir(&tasks)
            .into_iter()
            .flatten()
            .flatten()
            .any(|t| same(&t.path().join("ns/net")));
        if inside {
            let command = fs::read_to_string(e.path().join("comm"))
                .map(|c| c.trim().to_string())
                .unwrap_or_default();
            out.push(User { pid, command });
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// A namespace of the lab's scheme whose owner process is gone and which no
/// `lab up` recorded: a leftover of a killed run.
pub fn leftovers() -> Result<Vec<String>> {
    // labs recorded in the default place count as in use even when this
    // process keeps its own records elsewhere (BYPASS_LAB_STATE)
    let mut states = load_states()?;
    states.extend(records_from::<LabInfo>(Path::new(STATE_DIR)).unwrap_or_default());
    let mut recorded: Vec<String> = states
        .into_iter()
        .flat_map(|l| [l.server.netns, l.client.netns])
        .collect();
    for h in load_hosts_states()?
        .into_iter()
        .chain(records_from::<HostsLabInfo>(Path::new(STATE_DIR)).unwrap_or_default())
    {
        recorded.extend(h.namespaces());
    }
    Ok(lab_namespaces()?
        .into_iter()
        .filter(|n| !recorded.contains(n))
        .filter(|n| parse_ns_name(n).is_some_and(|(_, pid)| !alive(pid)))
        .filter(|n| netns_users(n).is_empty())
        .collect())
}

/// Removes the leftovers of killed runs (dead owner, nobody inside), each by
/// exact name; what it removed. Every new lab calls it first, so a killed
/// run's namespaces last only until the next run.
pub fn reap_leftovers() -> Vec<String> {
    let mut gone = Vec::new();
    for ns in leftovers().unwrap_or_default() {
        match delete_netns(&ns) {
            Ok(()) => gone.push(ns),
            Err(e) => tracing::warn!("removing {ns}, a killed run's leftover: {e:#}"),
        }
    }
    if !gone.is_empty() {
        tracing::warn!("removed the leftovers of a killed run: {}", gone.join(", "));
    }
    gone
}

/// Which labs `lab down` removes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Which {
    /// Those nobody uses, and the leftovers of dead runs.
    Unused,
    /// The lab with this id or with a namespace of this name, in use or not.
    Named(String),
    /// Every lab of the scheme, in use or not.
    All,
}

/// A lab left up because it is in use.
#[derive(Clone, Debug, Serialize)]
pub struct Kept {
    pub id: String,
    pub namespaces: Vec<String>,
    /// The processes inside its namespaces (and a run's own, alive, process).
    pub users: Vec<User>,
}

/// What `lab down` did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Down {
    pub removed: Vec<String>,
    pub kept: Vec<Kept>,
}

/// One lab as `down` sees it: recorded by `lab up` (of either kind) or a
/// run's own (its namespaces, grouped by id).
struct Unit {
    id: String,
    namespaces: Vec<String>,
    /// The run's process, for a run's own lab.
    owner: Option<u32>,
    record: Record,
}

enum Record {
    Lab(LabInfo),
    Hosts(HostsLabInfo),
    Run,
}

fn units() -> Result<Vec<Unit>> {
    let mut out: Vec<Unit> = Vec::new();
    for info in load_states()? {
        out.push(Unit {
            id: info.id.clone(),
            namespaces: info.namespaces(),
            owner: None,
            record: Record::Lab(info),
        });
    }
    for info in load_hosts_states()? {
        out.push(Unit {
            id: info.id.clone(),
            namespaces: info.namespaces(),
            owner: None,
            record: Record::Hosts(info),
        });
    }
    let recorded: Vec<String> = out.iter().flat_map(|u| u.namespaces.clone()).collect();
    for ns in lab_namespaces()? {
        if recorded.contains(&ns) {
            continue;
        }
        let Some((id, pid)) = parse_ns_name(&ns) else {
            continue;
        };
        match out.iter_mut().find(|u| u.id == id) {
            Some(u) => u.namespaces.push(ns),
            None => out.push(Unit {
                id,
                namespaces: vec![ns],
                owner: Some(pid),
                record: Record::Run,
            }),
        }
    }
    Ok(out)
}

/// `bypass lab down`: removes the labs `which` selects, each by exact name,
/// and reports those it kept because they are in use. Labs recorded in
/// another state directory are not this invocation's to see.
pub fn down(which: &Which) -> Result<Down> {
    require_root("`bypass lab down`")?;
    let all = units()?;
    if let Which::Named(n) = which {
        if !all.iter().any(|u| &u.id == n || u.namespaces.contains(n)) {
            return Err(usage(format!(
                "no lab named `{n}`: `bypass lab status` lists the labs (give a lab's id or one of its namespaces)"
            )));
        }
    }
    let mut report = Down::default();
    for u in all {
        let mut users: Vec<User> = u.namespaces.iter().flat_map(|n| netns_users(n)).collect();
        if let Some(pid) = u.owner.filter(|p| alive(*p) && *p != std::process::id()) {
            if !users.iter().any(|x| x.pid == pid) {
                let command = fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|c| c.trim().to_string())
                    .unwrap_or_default();
                users.push(User { pid, command });
            }
        }
        users.sort_by_key(|x| x.pid);
        users.dedup();
        let selected = match which {
            Which::All => true,
            Which::Named(n) => &u.id == n || u.namespaces.contains(n),
            Which::Unused => users.is_empty(),
        };
        if !selected {
            if !users.is_empty() {
                report.kept.push(Kept {
                    id: u.id,
                    namespaces: u.namespaces,
                    users,
                });
            }
            continue;
        }
        match u.record {
            Record::Lab(info) => Up { info, owned: false }.destroy()?,
            Record::Hosts(info) => Up { info, owned: false }.destroy()?,
            Record::Run => {
                for ns in &u.namespaces {
                    delete_netns(ns)?;
                }
            }
        }
        report.removed.extend(u.namespaces);
    }
    Ok(report)
}
