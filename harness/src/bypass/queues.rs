//! One shard over every receive queue of an interface: an AF_XDP socket per
//! queue (the XDP program redirects each queue's frames to its own socket),
//! received round-robin, transmitting on queue 0. With `--queues N` in the
//! lab the kernel peer spreads its flows over N queues; a shard that bound
//! only queue 0 would lose the rest.

use std::os::fd::AsFd;

use anyhow::{anyhow, Result};
use stack::phy::{Device, DeviceCaps};

/// The sockets of one interface's queues, as one device.
pub struct Queues {
    socks: Vec<xdp::Xsk>,
    /// Where the next receive starts, so no queue starves another.
    next: usize,
}

impl Queues {
    pub fn new(socks: Vec<xdp::Xsk>) -> Result<Queues> {
        if socks.is_empty() {
            return Err(anyhow!("no AF_XDP socket to drive"));
        }
        Ok(Queues { socks, next: 0 })
    }

    pub fn sockets(&self) -> &[xdp::Xsk] {
        &self.socks
    }

    /// Whether every socket runs zero-copy.
    pub fn zero_copy(&self) -> bool {
        self.socks.iter().all(|s| s.zero_copy())
    }

    /// Sleeps until a socket has frames or `timeout_ms` passes.
    pub fn poll(&mut self, timeout_ms: i32) -> Result<bool> {
        if let [one] = self.socks.as_mut_slice() {
            return Ok(one.poll(timeout_ms)?);
        }
        use nix::poll::{PollFd, PollFlags, PollTimeout};
        let mut fds: Vec<PollFd> = self
            .socks
            .iter()
            .map(|s| PollFd::new(s.as_fd(), PollFlags::POLLIN))
            .collect();
        let t = PollTimeout::try_from(timeout_ms.max(0)).unwrap_or(PollTimeout::ZERO);
        match nix::poll::poll(&mut fds, t) {
            Ok(n) => Ok(n > 0),
            Err(nix::errno::Errno::EINTR) => Ok(false),
            Err(e) => Err(anyhow!("poll on the AF_XDP sockets: {e}")),
        }
    }
}

impl Device for Queues {
    fn caps(&self) -> DeviceCaps {
        self.socks[0].caps()
    }

    fn receive<F: FnMut(&[u8])>(&mut self, budget: usize, mut f: F) -> usize {
        let n = self.socks.len();
        let mut got = 0;
        for k in 0..n {
            if got >= budget {
                break;
            }
            let i = (self.next + k) % n;
            got += self.socks[i].receive(budget - got, &mut f);
        }
        self.next = (self.next + 1) % n;
        got
    }

    fn transmit<F: FnOnce(&mut [u8]) -> usize>(&mut self, f: F) -> bool {
        Device::transmit(&mut self.socks[0], f)
    }

    fn flush(&mut self) {
        for s in &mut self.socks {
            Device::flush(s);
        }
    }
}
