//! The control protocol between a controller (`bypass run --server AGENT
//! --client AGENT`) and its agents (`bypass agent`): framing, and the
//! handshake that comes before anything else on a control connection.
//!
//! Frames are a 4-byte big-endian length and that many bytes of JSON (at
//! most [`MAX_FRAME`]). The handshake checks that both ends speak the same
//! protocol version, then authenticates both ends with a shared secret by
//! HMAC-SHA256 challenge-response: neither the secret nor anything that
//! replays is sent.
//!
//! ```text
//! controller -> agent   Hello     { protocol, version, nonce_c }
//! agent -> controller   Challenge { version, nonce_a }      (or Refused)
//! controller -> agent   Proof     { mac: HMAC(secret, "controller" | nonce_a | nonce_c) }
//! agent -> controller   Welcome   { mac: HMAC(secret, "agent" | nonce_c | nonce_a) }  (or Refused)
//! ```
//!
//! The secret comes from a file or the environment, never the command line
//! (where `ps` shows it to every user).
//!
//! After the handshake the controller sends [`Request`]s and the agent
//! answers each with a [`Reply`]: the agent greets with what its host is
//! ([`HostInfo`]); `Start` starts a side of one (workload, path), answered
//! by `Started` once it serves or generates; a client side reports by
//! itself when its window ends, a server side when told to `Stop`; `Abort`
//! ends whatever runs, and `Bye` the session. A side's report carries its
//! threads' measurements, histograms included (HdrHistogram's V2 encoding,
//! which adds exactly on the controller).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::bypass::AttachInfo;
use crate::metrics::SideSample;
use crate::metrics::{IntervalRec, Outcome, Recorder, ThreadResult, ThreadTimes, Window};
use crate::workload::WorkloadSpec;

/// The protocol's name, so that something else listening on the port is
/// told apart from an agent.
pub const PROTOCOL: &str = "bypass-agent";
/// The version both ends must speak.
pub const PROTOCOL_VERSION: u32 = 3;
/// The largest frame either end accepts before the handshake is done.
pub const MAX_FRAME: usize = 1 << 20;
/// The largest frame an authenticated peer may send (a long run's report
/// holds a histogram per interval and thread).
pub const MAX_SESSION_FRAME: usize = 256 << 20;
/// The environment variable the secret may come from.
pub const SECRET_ENV: &str = "BYPASS_SECRET";
/// The shortest secret accepted.
pub const MIN_SECRET: usize = 16;

/// The shared secret of a controller and its agents.
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// The secret as given (trailing newlines of a file dropped); at least
    /// [`MIN_SECRET`] bytes.
    pub fn new(bytes: &[u8], whence: &str) -> Result<Secret> {
        let mut b = bytes.to_vec();
        while b.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
            b.pop();
        }
        if b.len() < MIN_SECRET {
            bail!(
                "the shared secret from {whence} has {} bytes: use at least {MIN_SECRET} (e.g. `head -c 32 /dev/urandom | base64 > FILE`)",
                b.len()
            );
        }
        Ok(Secret(b))
    }

    /// From a file (`--secret-file`).
    pub fn from_file(path: &Path) -> Result<Secret> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading the shared secret from {}", path.display()))?;
        Secret::new(&bytes, &path.display().to_string())
    }

    /// From the first line of standard input (how `--ssh` passes it).
    pub fn from_stdin() -> Result<Secret> {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the shared secret from standard input")?;
        Secret::new(line.as_bytes(), "standard input")
    }

    /// The secret's bytes (to hand to an agent that `--ssh` starts).
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// From [`SECRET_ENV`], if set.
    pub fn from_env() -> Result<Option<Secret>> {
        match std::env::var_os(SECRET_ENV) {
            None => Ok(None),
            Some(v) => Secret::new(v.as_encoded_bytes(), SECRET_ENV).map(Some),
        }
    }

    fn mac(&self, role: &str, first: &[u8], second: &[u8]) -> Hmac<Sha256> {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        m.update(role.as_bytes());
        m.update(first);
        m.update(second);
        m
    }
}

/// The handshake's messages.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Handshake {
    Hello {
        protocol: String,
        version: u32,
        nonce: String,
    },
    Challenge {
        version: u32,
        nonce: String,
    },
    Proof {
        mac: String,
    },
    Welcome {
        mac: String,
    },
    /// The other end refuses, and says why.
    Refused {
        reason: String,
    },
}

/// Writes one frame: the length, then `msg` as JSON.
pub fn write_frame<W: Write, T: Serialize>(w: &mut W, msg: &T) -> Result<()> {
    let body = serde_json::to_vec(msg)?;
    if body.len() > MAX_SESSION_FRAME {
        bail!(
            "a control message of {} bytes is over {MAX_SESSION_FRAME}",
            body.len()
        );
    }
    w.write_all(&(body.len() as u32).to_be_bytes())?;
    w.write_all(&body)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame and parses it as `T`.
pub fn read_frame<R: Read, T: for<'de> Deserialize<'de>>(r: &mut R) -> Result<T> {
    read_frame_max(r, MAX_FRAME)
}

/// Reads one frame of at most `max` bytes and parses it as `T`.
pub fn read_frame_max<R: Read, T: for<'de> Deserialize<'de>>(r: &mut R, max: usize) -> Result<T> {
    let mut len = [0u8; 4];
    if let Err(e) = r.read_exact(&mut len) {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            bail!("the other end closed the control connection");
        }
        return Err(e).context("reading the control connection");
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        bail!("a control message announced {len} bytes (over {max}): the other end does not speak the agent protocol");
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)
        .context("the control connection closed in a message")?;
    serde_json::from_slice(&body)
        .map_err(|e| anyhow!("a control message is not what the protocol allows: {e}"))
}

fn nonce() -> Result<[u8; 32]> {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("reading /dev/urandom")?;
    Ok(b)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Result<Vec<u8>> {
    if s.len() % 2 != 0 || s.len() > 128 {
        bail!("a malformed value in the handshake");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&s[i..i + 2], 16)
                .map_err(|_| anyhow!("a malformed value in the handshake"))
        })
        .collect()
}

/// The version a controller announces: [`PROTOCOL_VERSION`], unless
/// `BYPASS_PROTOCOL_VERSION` says otherwise (to see how agents refuse a
/// controller of another release).
fn controller_version() -> u32 {
    std::env::var("BYPASS_PROTOCOL_VERSION")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PROTOCOL_VERSION)
}

/// The controller's side of the handshake, on a fresh control connection
/// to `agent` (for messages). Fails with a message that says what to do.
pub fn controller_handshake<S: Read + Write>(
    s: &mut S,
    secret: &Secret,
    agent: &str,
) -> Result<()> {
    let nonce_c = nonce()?;
    let ours = controller_version();
    write_frame(
        s,
        &Handshake::Hello {
            protocol: PROTOCOL.into(),
            version: ours,
            nonce: hex(&nonce_c),
        },
    )?;
    let nonce_a = match read_frame(s)? {
        Handshake::Challenge { version, nonce } if version == ours => unhex(&nonce)?,
        Handshake::Refused { reason } => bail!("agent {agent} refused the connection: {reason}"),
        other => bail!("agent {agent} answered the greeting with {other:?}"),
    };
    let proof = secret
        .mac("controller", &nonce_a, &nonce_c)
        .finalize()
        .into_bytes();
    write_frame(s, &Handshake::Proof { mac: hex(&proof) })?;
    match read_frame(s)? {
        Handshake::Welcome { mac } => {
            let mac = unhex(&mac)?;
            secret
                .mac("agent", &nonce_c, &nonce_a)
                .verify_slice(&mac)
                .map_err(|_| anyhow!("agent {agent} does not know the shared secret (its proof is wrong): check that both ends read the same secret"))
        }
        Handshake::Refused { reason } => bail!("agent {agent} refused the connection: {reason}"),
        other => bail!("agent {agent} answered the proof with {other:?}"),
    }
}

/// The agent's side of the handshake, on a control connection from `peer`
/// (for messages). A refusal is sent to the controller, and returned as the
/// error (for the agent's log).
pub fn agent_handshake<S: Read + Write>(s: &mut S, secret: &Secret, peer: &str) -> Result<()> {
    let refuse = |s: &mut S, reason: String| -> Result<()> {
        let _ = write_frame(
            s,
            &Handshake::Refused {
                reason: reason.clone(),
            },
        );
        bail!("refused the controller at {peer}: {reason}")
    };
    let nonce_c = match read_frame(s) {
        Ok(Handshake::Hello {
            protocol,
            version,
            nonce,
        }) => {
            if protocol != PROTOCOL {
                return refuse(
                    s,
                    format!("this is a {PROTOCOL} agent, not a {protocol} one"),
                );
            }
            if version != PROTOCOL_VERSION {
                return refuse(
                    s,
                    format!(
                        "the agent speaks protocol version {PROTOCOL_VERSION}, the controller {version}: run the same bypass release on both ends"
                    ),
                );
            }
            unhex(&nonce)?
        }
        Ok(other) => return refuse(s, format!("expected a greeting, got {other:?}")),
        Err(e) => bail!("the controller at {peer} did not greet: {e:#}"),
    };
    let nonce_a = nonce()?;
    write_frame(
        s,
        &Handshake::Challenge {
            version: PROTOCOL_VERSION,
            nonce: hex(&nonce_a),
        },
    )?;
    match read_frame(s)? {
        Handshake::Proof { mac } => {
            let mac = unhex(&mac)?;
            if secret
                .mac("controller", &nonce_a, &nonce_c)
                .verify_slice(&mac)
                .is_err()
            {
                return refuse(
                    s,
                    "wrong shared secret: check that controller and agent read the same secret"
                        .into(),
                );
            }
        }
        other => return refuse(s, format!("expected a proof, got {other:?}")),
    }
    let mac = secret
        .mac("agent", &nonce_c, &nonce_a)
        .finalize()
        .into_bytes();
    write_frame(s, &Handshake::Welcome { mac: hex(&mac) })
}

// ------------------------------------------------------------ the session

/// Which side of a run an agent plays.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Server,
    Client,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
        }
    }
}

/// One side of one (workload, path), as the controller asks an agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SideSpec {
    pub role: Role,
    /// This side on the bypass path (else the kernel's sockets).
    pub bypass: bool,
    /// How a kernel side configures the kernel (busy polling or not).
    #[serde(default)]
    pub kernel: crate::datapath::KernelMode,
    /// The workload; a client's connections and rate are its share of the
    /// run's.
    pub load: WorkloadSpec,
    /// A bypass client runs one shard per CPU (against the stack's server).
    pub multi_shard: bool,
    pub cpus: Vec<usize>,
    pub settle_ms: u64,
    pub warmup_ms: u64,
    pub duration_ms: u64,
    /// The interface the side uses: one of the agent's `--allow-iface`.
    pub iface: String,
    /// Where a client sends (the server host's kernel or stack address).
    pub server: Ipv4Addr,
    pub xdp_mode: crate::datapath::XdpModeArg,
    /// How the AF_XDP sockets bind (absent from older controllers: auto).
    #[serde(default)]
    pub xsk_bind: crate::datapath::XskBindArg,
    pub force: bool,
    pub busy_poll: bool,
    /// A bypass server shard's socket table (absent from older
    /// controllers: the default).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

fn default_max_connections() -> usize {
    16384
}

/// What an agent's host is, as it greets the controller.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HostInfo {
    pub hostname: String,
    pub kernel: String,
    pub cpu_model: String,
    /// CPUs the agent may use.
    pub cpus: Vec<usize>,
    pub git_revision: String,
    pub version: String,
    /// The interfaces the agent may use (`--allow-iface`), in order.
    pub ifaces: Vec<IfaceInfo>,
    /// The address the stack takes on the bypass path (`--stack-addr`).
    pub stack_addr: Option<Ipv4Addr>,
    /// Sysctls that shape a run, as this host holds them.
    pub sysctls: BTreeMap<String, String>,
    /// `bypass doctor`'s checks of the agent's first interface and CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preflight: Option<crate::doctor::Preflight>,
}

/// One interface an agent may use.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct IfaceInfo {
    pub name: String,
    pub driver: String,
    /// Its IPv4 address (the kernel path's) and prefix length.
    pub addr: Option<Ipv4Addr>,
    pub prefix_len: u8,
    pub queues: u32,
}

/// The controller's requests, after the handshake.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    Start {
        spec: Box<SideSpec>,
    },
    /// The server side: stop and report.
    Stop,
    /// End whatever runs now, restore what it changed.
    Abort {
        reason: String,
    },
    Bye,
}

/// The agent's answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    Hello { host: Box<HostInfo> },
    Started { attach: Option<AttachInfo> },
    Report { report: Box<SideReport> },
    Aborted,
    Error { message: String },
}

/// One side's measurements, as they cross the control connection.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SideReport {
    pub threads: Vec<WireThread>,
    /// `ClientCounters` or `ServerCounters`, summed over threads.
    pub counters: serde_json::Value,
    pub sample: SideSample,
    /// From the window's start to its end (or to an interruption).
    pub measured_us: u64,
    pub completed: bool,
}

/// One thread's measurements.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WireThread {
    pub cpu_id: Option<usize>,
    pub user_us: u64,
    pub sys_us: u64,
    pub counters: serde_json::Value,
    pub recorder: WireRecorder,
    pub extra: BTreeMap<String, u64>,
}

/// A [`Recorder`], histograms encoded (V2, deflated, base64).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WireRecorder {
    pub hist: String,
    pub intervals: Vec<WireInterval>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WireInterval {
    pub ops: u64,
    pub bytes: u64,
    pub errors: u64,
    pub hist: String,
}

fn hist_to_wire(h: &Histogram<u64>) -> Result<String> {
    let mut buf = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut buf)
        .map_err(|e| anyhow!("encoding a histogram: {e:?}"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(buf))
}

fn hist_from_wire(s: &str) -> Result<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .context("a histogram in a report is not base64")?;
    Deserializer::new()
        .deserialize(&mut std::io::Cursor::new(bytes))
        .map_err(|e| anyhow!("a histogram in a report does not decode: {e:?}"))
}

impl WireRecorder {
    pub fn of(r: &Recorder) -> Result<WireRecorder> {
        Ok(WireRecorder {
            hist: hist_to_wire(&r.hist)?,
            intervals: r
                .intervals
                .iter()
                .map(|i| {
                    Ok(WireInterval {
                        ops: i.ops,
                        bytes: i.bytes,
                        errors: i.errors,
                        hist: hist_to_wire(&i.hist)?,
                    })
                })
                .collect::<Result<_>>()?,
        })
    }

    /// The recorder again, its intervals counted from `window.t0`.
    pub fn recorder(&self, window: Window) -> Result<Recorder> {
        let intervals = self
            .intervals
            .iter()
            .map(|i| {
                Ok(IntervalRec {
                    ops: i.ops,
                    bytes: i.bytes,
                    errors: i.errors,
                    hist: hist_from_wire(&i.hist)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Recorder::from_parts(
            window,
            hist_from_wire(&self.hist)?,
            intervals,
        ))
    }
}

fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

fn times(user_us: u64, sys_us: u64) -> ThreadTimes {
    ThreadTimes {
        user: Duration::from_micros(user_us),
        sys: Duration::from_micros(sys_us),
    }
}

impl SideReport {
    /// A side's outcome (server or client), for the wire.
    pub fn of<C: Serialize>(r: &Outcome<C>) -> Result<SideReport> {
        let mut threads = Vec::new();
        for t in &r.threads {
            threads.push(WireThread {
                cpu_id: t.cpu_id,
                user_us: us(t.cpu.user),
                sys_us: us(t.cpu.sys),
                counters: serde_json::to_value(&t.counters)?,
                recorder: WireRecorder::of(&t.recorder)?,
                extra: t.extra.clone(),
            });
        }
        Ok(SideReport {
            threads,
            counters: serde_json::to_value(&r.counters)?,
            ..Default::default()
        })
    }

    /// The side's outcome again, its intervals counted from `window.t0`.
    pub fn outcome<C: for<'de> Deserialize<'de>>(&self, window: Window) -> Result<Outcome<C>> {
        let mut threads = Vec::new();
        for t in &self.threads {
            threads.push(ThreadResult {
                cpu_id: t.cpu_id,
                counters: serde_json::from_value(t.counters.clone())?,
                recorder: t.recorder.recorder(window)?,
                cpu: times(t.user_us, t.sys_us),
                extra: t.extra.clone(),
            });
        }
        Ok(Outcome {
            threads,
            counters: serde_json::from_value(self.counters.clone())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    fn secret(s: &str) -> Secret {
        Secret::new(s.as_bytes(), "a test").unwrap()
    }

    /// Runs the agent's side on a thread and the controller's here.
    fn handshake(controller: Secret, agent: Secret) -> (Result<()>, Result<()>) {
        let (mut c, mut a) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || agent_handshake(&mut a, &agent, "test"));
        let rc = controller_handshake(&mut c, &controller, "test");
        (rc, t.join().unwrap())
    }

    #[test]
    fn the_same_secret_lets_both_ends_in() {
        let (c, a) = handshake(
            secret("0123456789abcdef-one"),
            secret("0123456789abcdef-one"),
        );
        c.unwrap();
        a.unwrap();
    }

    #[test]
    fn a_wrong_secret_is_refused_on_both_ends_with_a_clear_message() {
        let (c, a) = handshake(
            secret("0123456789abcdef-one"),
            secret("0123456789abcdef-two"),
        );
        let c = format!("{:#}", c.unwrap_err());
        let a = format!("{:#}", a.unwrap_err());
        assert!(
            c.contains("refused") && c.contains("wrong shared secret"),
            "{c}"
        );
        assert!(a.contains("wrong shared secret"), "{a}");
    }

    #[test]
    fn a_wrong_version_is_refused_before_any_secret_is_used() {
        let (mut c, mut a) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || {
            agent_handshake(&mut a, &secret("0123456789abcdef-one"), "test")
        });
        write_frame(
            &mut c,
            &Handshake::Hello {
                protocol: PROTOCOL.into(),
                version: PROTOCOL_VERSION + 1,
                nonce: hex(&[1; 32]),
            },
        )
        .unwrap();
        let answer: Handshake = read_frame(&mut c).unwrap();
        let Handshake::Refused { reason } = answer else {
            panic!("{answer:?}");
        };
        assert!(reason.contains("protocol version"), "{reason}");
        let a = format!("{:#}", t.join().unwrap().unwrap_err());
        assert!(a.contains("protocol version"), "{a}");
    }

    #[test]
    fn something_else_on_the_port_is_told_apart() {
        let (mut c, mut a) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || {
            agent_handshake(&mut a, &secret("0123456789abcdef-one"), "test")
        });
        // An HTTP client, say: its first 4 bytes as a length are huge.
        c.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let a = format!("{:#}", t.join().unwrap().unwrap_err());
        assert!(a.contains("does not speak the agent protocol"), "{a}");
    }

    #[test]
    fn short_secrets_are_refused_and_never_printed() {
        let e = format!("{:#}", Secret::new(b"short\n", "FILE").unwrap_err());
        assert!(e.contains("at least 16") && !e.contains("short"), "{e}");
        let s = secret("0123456789abcdef\n");
        assert_eq!(format!("{s:?}"), "Secret(..)");
    }
}
