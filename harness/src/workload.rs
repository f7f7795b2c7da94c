//! What each workload puts on the wire, defined once.
//!
//! The kernel path (and, later, the bypass path) implement these exact
//! exchanges, so a client of one path can drive a server of the other and the
//! figures compare. Nothing here does I/O: it is the protocol, as data.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A benchmark workload (DESIGN.md, "Figures that matter").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Workload {
    /// Connect, request, response, close: one connection per transaction (the accept rate).
    #[serde(rename = "crr")]
    Crr,
    /// Request/response on persistent connections.
    #[serde(rename = "rr")]
    Rr,
    /// Bulk one-way transfer, client to server, payload verified at the server.
    #[serde(rename = "stream")]
    Stream,
    /// Datagram ping-pong.
    #[serde(rename = "udp-rr")]
    UdpRr,
    /// Datagrams at a rate, client to server, loss counted.
    #[serde(rename = "udp-stream")]
    UdpStream,
}

impl Workload {
    pub const ALL: [Workload; 5] = [
        Workload::Crr,
        Workload::Rr,
        Workload::Stream,
        Workload::UdpRr,
        Workload::UdpStream,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Crr => "crr",
            Workload::Rr => "rr",
            Workload::Stream => "stream",
            Workload::UdpRr => "udp-rr",
            Workload::UdpStream => "udp-stream",
        }
    }

    pub fn is_udp(self) -> bool {
        matches!(self, Workload::UdpRr | Workload::UdpStream)
    }

    /// Request/response workloads have a latency per operation; streams do not.
    pub fn has_latency(self) -> bool {
        matches!(self, Workload::Crr | Workload::Rr | Workload::UdpRr)
    }

    /// Streams are measured at the receiver (the server); the others at the client.
    pub fn measured_at_server(self) -> bool {
        matches!(self, Workload::Stream | Workload::UdpStream)
    }

    /// Port offset from the base port: request/response services share one
    /// port, sinks another, so one server can serve every workload at once.
    pub fn port(self, base: u16) -> u16 {
        match self {
            Workload::Crr | Workload::Rr | Workload::UdpRr => base,
            Workload::Stream | Workload::UdpStream => base + 1,
        }
    }

    /// Default message sizes (request, response) when `--size` is not given.
    pub fn default_sizes(self) -> Sizes {
        match self {
            Workload::Crr | Workload::Rr | Workload::UdpRr => Sizes { req: 64, resp: 64 },
            Workload::Stream => Sizes {
                req: 65536,
                resp: 0,
            },
            Workload::UdpStream => Sizes { req: 64, resp: 0 },
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Workload::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| {
                format!("unknown workload `{s}`: choose from crr, rr, stream, udp-rr, udp-stream")
            })
    }
}

/// How rr and crr look on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// Fixed-size messages: the client writes `req` bytes, the server answers `resp` bytes.
    Raw,
    /// Minimal HTTP/1.1: `GET /` answered by `200 OK` with a body of `resp` bytes.
    /// `Connection: close` is crr, keep-alive is rr, so wrk and curl can drive the server.
    Http,
    /// `serve` only: the echo service (RFC 862) for other tools' clients
    /// (sockperf, nc): every byte of a TCP stream and every UDP datagram
    /// back, whole.
    Echo,
    /// `serve` only: the discard service (RFC 863): everything read and
    /// dropped, nothing answered.
    Discard,
    /// `serve` only: what `sockperf server` answers (TCP and UDP), so that
    /// sockperf's ping-pong, under-load and throughput clients run against
    /// either path: a message that asks for a reply goes back whole with
    /// the client flag cleared; others are counted.
    Sockperf,
}

impl Proto {
    /// Only a server speaks it (other tools drive it): `run` refuses it.
    pub fn serve_only(self) -> bool {
        matches!(self, Proto::Echo | Proto::Discard | Proto::Sockperf)
    }
}

/// sockperf's message header, in network order: sequence number (u64),
/// flags (u16), length of the whole message (u32).
pub const SOCKPERF_HEADER: usize = 14;
/// Its flags: sent by a client, a reply asked for, a warm-up message (not
/// answered).
pub const SOCKPERF_CLIENT: u16 = 1;
pub const SOCKPERF_PONG: u16 = 2;
pub const SOCKPERF_WARMUP: u16 = 4;
/// The longest message `sockperf` sends (its `--msg-size` limit).
pub const SOCKPERF_MAX: usize = 65_507;

/// The flags and message length of a sockperf header at the start of
/// `buf`; `None` when `buf` is shorter than a header.
pub fn sockperf_header(buf: &[u8]) -> Option<(u16, usize)> {
    let h = buf.get(..SOCKPERF_HEADER)?;
    let flags = u16::from_be_bytes([h[8], h[9]]);
    let len = u32::from_be_bytes([h[10], h[11], h[12], h[13]]) as usize;
    Some((flags, len))
}

/// Turns a sockperf message into the server's reply: the client flag
/// cleared in place.
pub fn sockperf_reply(msg: &mut [u8]) {
    msg[9] &= !(SOCKPERF_CLIENT as u8);
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Raw => "raw",
            Proto::Http => "http",
            Proto::Echo => "echo",
            Proto::Discard => "discard",
            Proto::Sockperf => "sockperf",
        })
    }
}

/// Message sizes in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sizes {
    pub req: usize,
    pub resp: usize,
}

/// Largest message accepted by `--size`: 16 MiB for TCP, a UDP payload for UDP.
pub const MAX_TCP_MESSAGE: usize = 16 << 20;
pub const MAX_UDP_PAYLOAD: usize = 65507;
/// UDP datagrams carry an 8-byte header (sequence number and a flag bit).
pub const UDP_HEADER: usize = 8;

/// Parses `REQ[:RESP]`; RESP defaults to REQ.
pub fn parse_sizes(s: &str) -> Result<Sizes, String> {
    let parse = |p: &str| -> Result<usize, String> {
        let p = p.trim();
        let (num, mult) = match p.to_ascii_lowercase() {
            x if x.ends_with('k') => (x[..x.len() - 1].to_string(), 1024),
            x if x.ends_with('m') => (x[..x.len() - 1].to_string(), 1024 * 1024),
            x => (x, 1),
        };
        num.parse::<usize>()
            .map(|n| n * mult)
            .map_err(|_| format!("`{p}` is not a size in bytes (examples: 64, 1k, 64:1024)"))
    };
    let (req, resp) = match s.split_once(':') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let n = parse(s)?;
            (n, n)
        }
    };
    if req == 0 {
        return Err("the request size must be at least 1 byte (example: --size 64:1024)".into());
    }
    if req > MAX_TCP_MESSAGE || resp > MAX_TCP_MESSAGE {
        return Err(format!(
            "sizes above {} bytes are not supported (got {s})",
            MAX_TCP_MESSAGE
        ));
    }
    Ok(Sizes { req, resp })
}

impl Sizes {
    /// Checks the sizes against what a workload can carry.
    pub fn validate_for(&self, w: Workload) -> Result<(), String> {
        if w.is_udp() {
            if self.req < UDP_HEADER || self.req > MAX_UDP_PAYLOAD {
                return Err(format!(
                    "{w}: datagram size {} is out of range: use {UDP_HEADER}..={MAX_UDP_PAYLOAD} bytes \
                     (each datagram carries an {UDP_HEADER}-byte sequence header)",
                    self.req
                ));
            }
            if w == Workload::UdpRr && (self.resp < UDP_HEADER || self.resp > MAX_UDP_PAYLOAD) {
                return Err(format!(
                    "{w}: response size {} is out of range: use {UDP_HEADER}..={MAX_UDP_PAYLOAD} bytes",
                    self.resp
                ));
            }
        }
        if matches!(w, Workload::Rr | Workload::Crr) && self.resp == 0 {
            return Err(format!(
                "{w}: the response size must be at least 1 byte (REQ:RESP, example 64:64)"
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- stream payload

/// The stream payload is a repeating pattern of this period, so the receiver
/// verifies every byte knowing only its offset in the stream.
pub const PATTERN_PERIOD: usize = 251;

/// A pattern buffer long enough to cover any `len`-byte write at any offset.
pub fn pattern_buffer(len: usize) -> Vec<u8> {
    (0..len + PATTERN_PERIOD)
        .map(|i| (i % PATTERN_PERIOD) as u8)
        .collect()
}

/// The slice of `pattern` that the stream carries at `offset`, `len` bytes long.
pub fn pattern_at(pattern: &[u8], offset: u64, len: usize) -> &[u8] {
    let start = (offset % PATTERN_PERIOD as u64) as usize;
    &pattern[start..start + len]
}

/// Verifies `data` received at stream `offset`: returns how many bytes differ
/// from the pattern (0 when intact). `pattern` must be at least
/// `data.len() + PATTERN_PERIOD` bytes.
pub fn verify_stream(pattern: &[u8], offset: u64, data: &[u8]) -> u64 {
    let expect = pattern_at(pattern, offset, data.len());
    if expect == data {
        0
    } else {
        expect.iter().zip(data).filter(|(a, b)| a != b).count() as u64
    }
}

// ---------------------------------------------------------------- UDP datagrams

/// Flag bit in the datagram header: the datagram was sent inside the
/// measurement window (receivers count only these for loss).
pub const UDP_MEASURED: u64 = 1 << 63;

/// Writes the 8-byte header: sequence number, with the top bit set when measured.
pub fn udp_put_header(buf: &mut [u8], seq: u64, measured: bool) {
    let v = (seq & !UDP_MEASURED) | if measured { UDP_MEASURED } else { 0 };
    buf[..UDP_HEADER].copy_from_slice(&v.to_be_bytes());
}

/// Reads the header: (sequence number, measured). `None` for a runt datagram.
pub fn udp_header(buf: &[u8]) -> Option<(u64, bool)> {
    let b: [u8; UDP_HEADER] = buf.get(..UDP_HEADER)?.try_into().ok()?;
    let v = u64::from_be_bytes(b);
    Some((v & !UDP_MEASURED, v & UDP_MEASURED != 0))
}

// ---------------------------------------------------------------- HTTP

/// The request the harness's HTTP client sends. `close` asks the server to
/// close after the response (crr).
pub fn http_request(host: &str, close: bool) -> Vec<u8> {
    let mut r = format!("GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: bypass\r\n");
    if close {
        r.push_str("Connection: close\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// The full response (head and body) for a body of `body` bytes.
pub fn http_response(body: usize, close: bool) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nServer: bypass\r\nContent-Type: application/octet-stream\r\nContent-Length: {body}\r\n"
    )
    .into_bytes();
    if close {
        r.extend_from_slice(b"Connection: close\r\n");
    }
    r.extend_from_slice(b"\r\n");
    r.resize(r.len() + body, b'x');
    r
}

/// A request head found in a buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct HttpRequestHead {
    /// Bytes of the head including the blank line.
    pub len: usize,
    /// The client asked for the connection to close (or spoke HTTP/1.0 without keep-alive).
    pub close: bool,
    /// Declared request body length (skipped by the server).
    pub body: u64,
}

/// Finds the end of an HTTP head (`\r\n\r\n`) in `buf`.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Why a request head is refused.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum HttpError {
    /// Not HTTP/1.x (400).
    Malformed(&'static str),
    /// No end of the head within [`HTTP_HEAD_LIMIT`] bytes (431).
    HeadTooLarge,
    /// HTTP, but a feature the server lacks (501): a transfer coding.
    NotImplemented(&'static str),
}

/// The longest request head a server reads.
pub const HTTP_HEAD_LIMIT: usize = 16 * 1024;

/// Parses one request head at the start of `buf`. `Ok(None)`: incomplete.
pub fn parse_http_request(buf: &[u8]) -> Result<Option<HttpRequestHead>, HttpError> {
    let Some(len) = find_head_end(buf) else {
        if buf.len() >= HTTP_HEAD_LIMIT {
            return Err(HttpError::HeadTooLarge);
        }
        return Ok(None);
    };
    if len > HTTP_HEAD_LIMIT {
        return Err(HttpError::HeadTooLarge);
    }
    let bad = HttpError::Malformed;
    let head = std::str::from_utf8(&buf[..len]).map_err(|_| bad("request head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, _target, version) = (parts.next(), parts.next(), parts.next());
    if method.is_none_or(|m| m.is_empty()) || version.is_none_or(|v| !v.starts_with("HTTP/1.")) {
        return Err(bad("malformed request line"));
    }
    let mut close = version == Some("HTTP/1.0");
    let mut body: Option<u64> = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("connection") {
                if value.eq_ignore_ascii_case("close") {
                    close = true;
                } else if value.eq_ignore_ascii_case("keep-alive") {
                    close = false;
                }
            } else if name.eq_ignore_ascii_case("content-length") {
                let n: u64 = value.parse().map_err(|_| bad("bad Content-Length"))?;
                // two different lengths: request smuggling (RFC 9112 §6.3)
                if body.is_some_and(|b| b != n) {
                    return Err(bad("conflicting Content-Length headers"));
                }
                body = Some(n);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(HttpError::NotImplemented("Transfer-Encoding"));
            }
        }
    }
    Ok(Some(HttpRequestHead {
        len,
        close,
        body: body.unwrap_or(0),
    }))
}

/// Parses a response head at the start of `buf`: `Ok(Some((head_len, body_len)))`.
pub fn parse_http_response(buf: &[u8]) -> Result<Option<(usize, usize)>, &'static str> {
    let Some(len) = find_head_end(buf) else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..len]).map_err(|_| "response head is not UTF-8")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err("response status is not 200");
    }
    let body = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .ok_or("response has no Content-Length")?;
    Ok(Some((len, body)))
}

/// What goes on the wire, which both sides agree on.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Messages {
    pub proto: Proto,
    /// Raw rr: request and response sizes. HTTP: `resp` is the body size.
    /// UDP echo: `resp` is the reply size.
    pub sizes: Sizes,
    /// The base port: request/response and echo; the sinks on the next.
    pub port: u16,
}

/// What a load generator runs: the workload and its parameters.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WorkloadSpec {
    pub workload: Workload,
    pub messages: Messages,
    pub connections: usize,
    /// Open loop at this many operations per second; `None`: closed loop.
    pub rate: Option<f64>,
    /// udp-rr: a request without an answer after this long is counted lost.
    pub udp_timeout: Duration,
    /// Connections the client opens besides the measured ones and holds
    /// idle through the window (`--hold`): the server is measured holding
    /// them.
    #[serde(default)]
    pub hold: usize,
}

impl WorkloadSpec {
    /// Part `i` of `n` (threads, shards or client hosts): its share of the
    /// connections (at least one), the same share of the rate, and its
    /// share of the held connections.
    pub fn share(&self, i: usize, n: usize) -> WorkloadSpec {
        let n = n.max(1);
        let part = |total: usize| total / n + usize::from(i < total % n);
        let total = self.connections;
        let connections = part(total).max(1);
        WorkloadSpec {
            connections,
            hold: part(self.hold),
            rate: self
                .rate
                .map(|r| r * connections as f64 / total.max(1) as f64),
            ..*self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_whole() {
        let load = WorkloadSpec {
            workload: Workload::Crr,
            messages: Messages {
                proto: Proto::Raw,
                sizes: Workload::Crr.default_sizes(),
                port: 7100,
            },
            connections: 8,
            rate: Some(1000.0),
            udp_timeout: Duration::from_millis(200),
            hold: 100,
        };
        let parts: Vec<WorkloadSpec> = (0..3).map(|i| load.share(i, 3)).collect();
        assert_eq!(
            parts.iter().map(|p| p.hold).collect::<Vec<_>>(),
            [34, 33, 33]
        );
        assert_eq!(
            parts.iter().map(|p| p.connections).collect::<Vec<_>>(),
            [3, 3, 2]
        );
        let rate: f64 = parts.iter().filter_map(|p| p.rate).sum();
        assert!((rate - 1000.0).abs() < 1e-9);
        // more parts than connections: each gets one
        assert_eq!(load.share(9, 10).connections, 1);
    }

    #[test]
    fn sizes_parse_and_reject_nonsense() {
        assert_eq!(parse_sizes("64").unwrap(), Sizes { req: 64, resp: 64 });
        assert_eq!(
            parse_sizes("1k:64").unwrap(),
            Sizes {
                req: 1024,
                resp: 64
            }
        );
        assert!(parse_sizes("0").is_err());
        assert!(parse_sizes("abc").is_err());
        assert!(parse_sizes("-5").is_err());
        assert!(parse_sizes("64:x").is_err());
        assert!(parse_sizes("100m").is_err());
        assert!(Sizes { req: 4, resp: 4 }
            .validate_for(Workload::UdpRr)
            .is_err());
        assert!(Sizes { req: 64, resp: 0 }
            .validate_for(Workload::Rr)
            .is_err());
        assert!(Sizes { req: 64, resp: 0 }
            .validate_for(Workload::UdpStream)
            .is_ok());
    }

    #[test]
    fn workload_names_round_trip() {
        for w in Workload::ALL {
            assert_eq!(w.name().parse::<Workload>().unwrap(), w);
            assert_eq!(
                serde_json::to_string(&w).unwrap(),
                format!("\"{}\"", w.name())
            );
        }
        assert!("tcp".parse::<Workload>().is_err());
    }

    #[test]
    fn stream_pattern_detects_corruption_at_any_offset() {
        let p = pattern_buffer(4096);
        for off in [0u64, 1, 250, 251, 10_000_019] {
            let mut data = pattern_at(&p, off, 4096).to_vec();
            assert_eq!(verify_stream(&p, off, &data), 0);
            data[100] ^= 1;
            assert_eq!(verify_stream(&p, off, &data), 1);
            // the right bytes at the wrong offset are wrong too
            assert!(verify_stream(&p, off + 1, pattern_at(&p, off, 4096)) > 0);
        }
    }

    #[test]
    fn udp_header_round_trip() {
        let mut b = [0u8; 16];
        udp_put_header(&mut b, 42, true);
        assert_eq!(udp_header(&b), Some((42, true)));
        udp_put_header(&mut b, 7, false);
        assert_eq!(udp_header(&b), Some((7, false)));
        assert_eq!(udp_header(&b[..3]), None);
    }

    #[test]
    fn http_request_parsing() {
        let r = http_request("198.18.0.1", true);
        let h = parse_http_request(&r).unwrap().unwrap();
        assert_eq!(h.len, r.len());
        assert!(h.close);
        let r = http_request("h", false);
        assert!(!parse_http_request(&r).unwrap().unwrap().close);
        assert!(parse_http_request(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .unwrap()
            .is_none());
        assert!(
            parse_http_request(b"GET / HTTP/1.0\r\n\r\n")
                .unwrap()
                .unwrap()
                .close
        );
        assert!(parse_http_request(b"\x16\x03\x01garbage\r\n\r\n").is_err());
        // wrk's request
        let wrk = b"GET / HTTP/1.1\r\nHost: 198.18.0.1:7100\r\n\r\n";
        assert!(!parse_http_request(wrk).unwrap().unwrap().close);
    }

    #[test]
    fn http_response_round_trip() {
        for (body, close) in [(0, false), (64, true), (10000, false)] {
            let r = http_response(body, close);
            let (head, b) = parse_http_response(&r).unwrap().unwrap();
            assert_eq!(b, body);
            assert_eq!(head + body, r.len());
        }
        assert!(parse_http_response(b"HTTP/1.1 404 Not Found\r\n\r\n").is_err());
    }
}
