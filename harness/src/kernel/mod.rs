//! The kernel socket path: the baseline every bypass figure is compared with.

pub mod client;
pub mod server;

use anyhow::{anyhow, Result};

/// Pins the calling thread to `cpu` (when given) and moves it into `netns`
/// (when given).
pub fn place_thread(cpu: Option<usize>, netns: Option<&str>) -> Result<()> {
    if let Some(cpu) = cpu {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
            return Err(anyhow!(
                "cannot pin a thread to CPU {cpu}: is it online and in this process's affinity mask?"
            ));
        }
    }
    if let Some(ns) = netns {
        crate::lab::enter_netns(ns)?;
    }
    Ok(())
}

/// Runs `f` inside `netns` when given, else on the calling thread.
pub fn in_ns_opt<T: Send>(netns: Option<&str>, f: impl FnOnce() -> T + Send) -> Result<T> {
    match netns {
        Some(ns) => crate::lab::in_netns(ns, f),
        None => Ok(f()),
    }
}
