//! A short calibration of the CPUs under test, taken in every run before
//! its first measurement: how fast one CPU wakes a thread on the other (the
//! floor of every request/response latency), how fast one core copies
//! memory (the floor of every byte moved), and how much time the hypervisor
//! gave to other guests meanwhile. Two results whose calibrations differ
//! were taken on machines in different states, whatever their figures say.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::lab::place_thread;
use crate::metrics;
use crate::result::Calibration;

/// Round trips of the wake-up ping-pong, at most (and at most [`PING_FOR`]).
const PINGS: usize = 4000;
const PING_FOR: Duration = Duration::from_millis(200);
/// The memcpy: a buffer larger than any last-level cache of this class of
/// machine, copied until [`COPY_FOR`] has passed.
const COPY_BYTES: usize = 64 << 20;
const COPY_FOR: Duration = Duration::from_millis(100);

/// Calibrates: the wake-up latency between `server_cpu` and `client_cpu`
/// (one way, half a blocking round trip over a socket pair, each end
/// pinned), one core's memcpy bandwidth on `server_cpu`, and the steal of
/// both CPUs over the calibration. About 300 ms.
pub fn calibrate(server_cpu: usize, client_cpu: usize) -> Result<Calibration> {
    let started = Instant::now();
    let cpus = if server_cpu == client_cpu {
        vec![server_cpu]
    } else {
        vec![server_cpu, client_cpu]
    };
    let stat0 = metrics::proc_stat()?;
    let (p50, p99, pings) = wakeup(server_cpu, client_cpu)?;
    let gbps = memcpy(server_cpu)?;
    let stat1 = metrics::proc_stat()?;
    let steal = metrics::cpus_delta(&stat0, &stat1, &cpus).steal_pct();
    Ok(Calibration {
        server_cpu,
        client_cpu,
        wakeup_us_p50: p50,
        wakeup_us_p99: p99,
        wakeup_round_trips: pings as u64,
        memcpy_gb_per_s: gbps,
        steal_pct: steal.unwrap_or(0.0),
        took_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

/// One-way wake-up latency (µs, p50 and p99) between two pinned threads,
/// and the round trips it took.
fn wakeup(a: usize, b: usize) -> Result<(f64, f64, usize)> {
    let (mut here, mut there) = UnixStream::pair().context("socketpair")?;
    let echo = std::thread::Builder::new()
        .name("byp-cal-echo".into())
        .spawn(move || -> Result<()> {
            place_thread(Some(b), None)?;
            let mut byte = [0u8; 1];
            // ends when the other end closes (read returns 0)
            while there.read(&mut byte)? == 1 {
                there.write_all(&byte)?;
            }
            Ok(())
        })?;
    let mine = std::thread::scope(|s| {
        s.spawn(|| -> Result<Vec<f64>> {
            place_thread(Some(a), None)?;
            let mut rtts = Vec::with_capacity(PINGS);
            let mut byte = [1u8; 1];
            let until = Instant::now() + PING_FOR;
            while rtts.len() < PINGS && Instant::now() < until {
                let t = Instant::now();
                here.write_all(&byte)?;
                here.read_exact(&mut byte)?;
                rtts.push(t.elapsed().as_secs_f64() * 1e6 / 2.0);
            }
            drop(here);
            Ok(rtts)
        })
        .join()
    });
    let echoed = echo.join();
    let mut rtts =
        mine.map_err(|_| anyhow::anyhow!("the calibration's ping thread panicked"))??;
    echoed.map_err(|_| anyhow::anyhow!("the calibration's echo thread panicked"))??;
    anyhow::ensure!(
        !rtts.is_empty(),
        "the calibration's ping-pong made no round trip"
    );
    rtts.sort_by(f64::total_cmp);
    let q = |p: f64| rtts[((rtts.len() as f64 * p) as usize).min(rtts.len() - 1)];
    Ok((q(0.50), q(0.99), rtts.len()))
}

/// One core's memcpy bandwidth (GB/s of bytes copied) on `cpu`.
fn memcpy(cpu: usize) -> Result<f64> {
    std::thread::scope(|s| {
        s.spawn(|| -> Result<f64> {
            place_thread(Some(cpu), None)?;
            let src = vec![0x5au8; COPY_BYTES];
            let mut dst = vec![0u8; COPY_BYTES];
            // touch both once, so page faults are not timed
            dst.copy_from_slice(&src);
            let t = Instant::now();
            let mut copied = 0usize;
            while t.elapsed() < COPY_FOR {
                dst.copy_from_slice(std::hint::black_box(&src));
                copied += COPY_BYTES;
            }
            std::hint::black_box(&dst);
            Ok(copied as f64 / t.elapsed().as_secs_f64() / 1e9)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the calibration's copy thread panicked"))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_calibration_measures_wakeups_copies_and_steal() {
        let cpus = crate::sys::cpus();
        let (a, b) = (cpus[0], *cpus.last().unwrap());
        let c = calibrate(a, b).unwrap();
        assert!(c.wakeup_round_trips > 0);
        assert!(c.wakeup_us_p50 > 0.0 && c.wakeup_us_p50 <= c.wakeup_us_p99);
        // any machine copies between 100 MB/s and 1 TB/s
        assert!(c.memcpy_gb_per_s > 0.1 && c.memcpy_gb_per_s < 1000.0);
        assert!((0.0..=100.0).contains(&c.steal_pct));
        assert!(c.took_ms < 2000.0, "bounded: {c:?}");
    }
}
