//! The server side of the TCP workloads as the application sees them:
//! fixed-size request/response (rr, crr), minimal HTTP/1.1, and the stream
//! sink that verifies every byte. One definition, driven by both paths: the
//! kernel server feeds it from its sockets, the bypass server from the
//! stack's (DESIGN.md, principle 4).

use std::time::{Duration, Instant};

use crate::metrics::{Recorder, Window};
use crate::outcome::ServerCounters;
use crate::workload::{self, Proto, Sizes};

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Kind {
    Rr,
    Http,
    Sink,
    /// RFC 862: everything back.
    Echo,
    /// RFC 863: everything dropped.
    Discard,
    /// `sockperf server`'s answers, message by message.
    Sockperf,
}

/// Reply bytes a connection may owe before the server stops reading from
/// it (back-pressure: a client that sends and never reads is held to this
/// much, and its peer's TCP window does the rest).
pub const OUT_LIMIT: usize = 64 * 1024;
/// The longest HTTP request head answered (longer: 431 and close).
pub const HEAD_LIMIT: usize = workload::HTTP_HEAD_LIMIT;
/// The largest HTTP request body accepted, by Content-Length (larger: 413
/// and close). Bodies are skipped as they arrive, never held.
pub const BODY_LIMIT: u64 = 1 << 20;

const STATUS_400: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const STATUS_413: &[u8] =
    b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const STATUS_431: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const STATUS_501: &[u8] =
    b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// What every connection of a server shares: sizes, the prepared answers,
/// the stream pattern.
pub struct ServerApp {
    sizes: Sizes,
    proto: Proto,
    window: Window,
    zeros: Vec<u8>,
    pattern: Vec<u8>,
    http_keep: Vec<u8>,
    http_close: Vec<u8>,
}

impl ServerApp {
    /// `read_buf`: the largest read the server makes (the sink verifies
    /// that much at once).
    pub fn new(proto: Proto, sizes: Sizes, window: Window, read_buf: usize) -> ServerApp {
        ServerApp {
            sizes,
            proto,
            window,
            zeros: vec![0; 64 * 1024],
            pattern: workload::pattern_buffer(read_buf),
            http_keep: workload::http_response(sizes.resp, false),
            http_close: workload::http_response(sizes.resp, true),
        }
    }

    /// The kind of a connection accepted on the request/response port or
    /// on the sink port.
    pub fn kind(&self, sink: bool) -> Kind {
        match (sink, self.proto) {
            (true, _) => Kind::Sink,
            (false, Proto::Raw) => Kind::Rr,
            (false, Proto::Http) => Kind::Http,
            (false, Proto::Echo) => Kind::Echo,
            (false, Proto::Discard) => Kind::Discard,
            (false, Proto::Sockperf) => Kind::Sockperf,
        }
    }

    /// What the UDP socket on the base port does with a datagram.
    pub fn udp_answer(&self) -> UdpAnswer {
        match self.proto {
            Proto::Raw | Proto::Http => UdpAnswer::Workload,
            Proto::Echo => UdpAnswer::Echo,
            Proto::Discard => UdpAnswer::Discard,
            Proto::Sockperf => UdpAnswer::Sockperf,
        }
    }
}

/// The reply to a sockperf datagram: in place, `Some(len)` to send the
/// first `len` bytes; `None` for no reply (not a client's message, a
/// warm-up message, no reply asked for, or not sockperf's at all:
/// counted in `bad` when malformed).
pub fn sockperf_datagram(msg: &mut [u8], counters: &mut ServerCounters) -> Option<usize> {
    let Some((flags, len)) = workload::sockperf_header(msg) else {
        counters.bad_requests += 1;
        return None;
    };
    if len < workload::SOCKPERF_HEADER || len > msg.len() {
        counters.bad_requests += 1;
        return None;
    }
    counters.requests += 1;
    let wanted = flags & workload::SOCKPERF_CLIENT != 0
        && flags & workload::SOCKPERF_WARMUP == 0
        && flags & workload::SOCKPERF_PONG != 0;
    if !wanted {
        return None;
    }
    workload::sockperf_reply(&mut msg[..len]);
    Some(len)
}

/// The UDP base port's service.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum UdpAnswer {
    /// udp-rr: the request's header and `resp` bytes back; runts counted.
    Workload,
    /// RFC 862: the datagram back, whole.
    Echo,
    /// RFC 863: counted and dropped.
    Discard,
    /// `sockperf server`'s answer ([`sockperf_datagram`]).
    Sockperf,
}

/// One connection's application state. Its memory is bounded: at most
/// [`OUT_LIMIT`] plus one read of output, and an HTTP head of at most
/// [`HEAD_LIMIT`] plus one read of input.
pub struct AppConn {
    kind: Kind,
    /// Raw rr: bytes of the request being received.
    partial: usize,
    /// Raw rr: response bytes still to write.
    owed: usize,
    /// HTTP: unparsed input; HTTP and echo: output not yet written.
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    close_after: bool,
    /// HTTP: bytes of the current request's body still to skip.
    body_left: u64,
    /// Sink: stream offset of the next byte.
    offset: u64,
    /// When the peer last sent something (or the connection came).
    last_input: Instant,
}

/// A server's `--idle-timeout`: which connections' peers have sent nothing
/// for that long, looked at every [`IdleSweep::EVERY`] (a walk over the
/// connections: 1 M of them cost a few ms a time).
#[derive(Debug)]
pub struct IdleSweep {
    timeout: Duration,
    next: Instant,
}

impl IdleSweep {
    /// How often connections are looked at, at most.
    pub const EVERY: Duration = Duration::from_millis(100);

    pub fn new(timeout: Duration) -> IdleSweep {
        IdleSweep {
            timeout,
            next: Instant::now() + Self::EVERY.min(timeout),
        }
    }

    /// The keys of the connections idle past the timeout, when a look is
    /// due at `now` (none otherwise).
    pub fn due<'a, K: Copy>(
        &mut self,
        now: Instant,
        conns: impl Iterator<Item = (K, &'a AppConn)>,
    ) -> Vec<K> {
        if now < self.next {
            return Vec::new();
        }
        self.next = now + Self::EVERY.min(self.timeout);
        conns
            .filter(|(_, c)| c.idle_for(now, self.timeout))
            .map(|(k, _)| k)
            .collect()
    }
}

impl AppConn {
    pub fn new(kind: Kind) -> AppConn {
        AppConn {
            kind,
            partial: 0,
            owed: 0,
            inbuf: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            close_after: false,
            body_left: 0,
            offset: 0,
            last_input: Instant::now(),
        }
    }

    /// Whether the peer has sent nothing for `timeout` by `now` (a server's
    /// `--idle-timeout`).
    pub fn idle_for(&self, now: Instant, timeout: Duration) -> bool {
        now.saturating_duration_since(self.last_input) >= timeout
    }

    /// Whether the server should read more from the connection: not while
    /// it owes [`OUT_LIMIT`] bytes or more (or pipelined HTTP requests wait
    /// unanswered), nor once it is to close.
    pub fn wants_input(&self) -> bool {
        let in_limit = match self.kind {
            Kind::Sockperf => workload::SOCKPERF_MAX,
            _ => HEAD_LIMIT,
        };
        !self.close_after
            && self.out.len() - self.out_pos < OUT_LIMIT
            && self.inbuf.len() < in_limit
    }

    /// Takes bytes read from the connection: counts requests and queues
    /// their answers, or verifies and counts stream bytes.
    pub fn input(
        &mut self,
        app: &ServerApp,
        data: &[u8],
        now: Instant,
        counters: &mut ServerCounters,
        recorder: &mut Recorder,
    ) {
        counters.bytes_in += data.len() as u64;
        self.last_input = now;
        match self.kind {
            Kind::Rr => {
                self.partial += data.len();
                let whole = self.partial / app.sizes.req;
                self.partial %= app.sizes.req;
                self.owed += whole * app.sizes.resp;
                counters.requests += whole as u64;
            }
            Kind::Http => {
                let skip = self.body_left.min(data.len() as u64) as usize;
                self.body_left -= skip as u64;
                self.inbuf.extend_from_slice(&data[skip..]);
                self.http(app, counters);
            }
            Kind::Echo => {
                self.compact();
                self.out.extend_from_slice(data);
            }
            Kind::Discard => {}
            Kind::Sockperf => {
                self.inbuf.extend_from_slice(data);
                self.sockperf(counters);
            }
            Kind::Sink => {
                counters.stream_verify_errors +=
                    workload::verify_stream(&app.pattern, self.offset, data);
                self.offset += data.len() as u64;
                if app.window.measuring(now) {
                    recorder.bytes(now, data.len() as u64);
                }
            }
        }
    }

    /// Drops the output already written.
    fn compact(&mut self) {
        if self.out_pos > 0 {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
    }

    /// Answers the complete requests in `inbuf` while the output is under
    /// its limit (the rest waits there until the output drains).
    fn http(&mut self, app: &ServerApp, counters: &mut ServerCounters) {
        self.compact();
        let mut pos = 0;
        while !self.close_after && self.body_left == 0 && self.out.len() < OUT_LIMIT {
            let refuse = |out: &mut Vec<u8>, close: &mut bool, status: &[u8]| {
                out.extend_from_slice(status);
                *close = true;
            };
            match workload::parse_http_request(&self.inbuf[pos..]) {
                Ok(Some(head)) => {
                    pos += head.len;
                    if head.body > BODY_LIMIT {
                        counters.oversized_requests += 1;
                        refuse(&mut self.out, &mut self.close_after, STATUS_413);
                        break;
                    }
                    // the body is skipped as it comes; the answer goes now
                    let here = (self.inbuf.len() - pos).min(head.body as usize);
                    pos += here;
                    self.body_left = head.body - here as u64;
                    counters.requests += 1;
                    if head.close {
                        self.out.extend_from_slice(&app.http_close);
                        self.close_after = true;
                    } else {
                        self.out.extend_from_slice(&app.http_keep);
                    }
                }
                Ok(None) => break,
                Err(workload::HttpError::HeadTooLarge) => {
                    counters.oversized_requests += 1;
                    refuse(&mut self.out, &mut self.close_after, STATUS_431);
                }
                Err(workload::HttpError::NotImplemented(_)) => {
                    counters.bad_requests += 1;
                    refuse(&mut self.out, &mut self.close_after, STATUS_501);
                }
                Err(workload::HttpError::Malformed(_)) => {
                    counters.bad_requests += 1;
                    refuse(&mut self.out, &mut self.close_after, STATUS_400);
                }
            }
        }
        if self.close_after {
            self.inbuf.clear();
        } else {
            self.inbuf.drain(..pos);
        }
    }

    /// Answers the whole sockperf messages in `inbuf` while the output is
    /// under its limit, as `sockperf server` does; a length out of range
    /// is a protocol error: the connection closes.
    fn sockperf(&mut self, counters: &mut ServerCounters) {
        self.compact();
        let mut pos = 0;
        while !self.close_after && self.out.len() < OUT_LIMIT {
            let Some((flags, len)) = workload::sockperf_header(&self.inbuf[pos..]) else {
                break;
            };
            if !(workload::SOCKPERF_HEADER..=workload::SOCKPERF_MAX).contains(&len) {
                counters.bad_requests += 1;
                self.close_after = true;
                break;
            }
            if self.inbuf.len() - pos < len {
                break;
            }
            counters.requests += 1;
            let msg = &self.inbuf[pos..pos + len];
            pos += len;
            if flags & workload::SOCKPERF_CLIENT != 0
                && flags & workload::SOCKPERF_WARMUP == 0
                && flags & workload::SOCKPERF_PONG != 0
            {
                let at = self.out.len();
                self.out.extend_from_slice(msg);
                workload::sockperf_reply(&mut self.out[at..]);
            }
        }
        self.inbuf.drain(..pos);
    }

    /// The connection is to be closed once its output is written (HTTP
    /// `Connection: close`, or a bad request).
    pub fn close_after(&self) -> bool {
        self.close_after
    }

    /// The next bytes to write, or `None` when nothing is owed.
    pub fn pending<'a>(
        &'a mut self,
        app: &'a ServerApp,
        counters: &mut ServerCounters,
    ) -> Option<&'a [u8]> {
        if self.out_pos >= self.out.len() && !self.inbuf.is_empty() {
            // pipelined requests held back by the output limit
            match self.kind {
                Kind::Http => self.http(app, counters),
                Kind::Sockperf => self.sockperf(counters),
                _ => {}
            }
        }
        if self.out_pos < self.out.len() {
            Some(&self.out[self.out_pos..])
        } else if self.owed > 0 {
            Some(&app.zeros[..self.owed.min(app.zeros.len())])
        } else {
            self.out.clear();
            self.out_pos = 0;
            None
        }
    }

    /// `n` bytes of what [`pending`](Self::pending) gave were written.
    pub fn wrote(&mut self, n: usize, counters: &mut ServerCounters) {
        counters.bytes_out += n as u64;
        if self.out_pos < self.out.len() {
            self.out_pos += n;
        } else {
            self.owed -= n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn app(proto: Proto) -> ServerApp {
        let w = Window::new(Duration::ZERO, Duration::ZERO, Duration::from_secs(1));
        ServerApp::new(proto, Sizes { req: 4, resp: 3 }, w, 1024)
    }

    fn drain(c: &mut AppConn, a: &ServerApp, k: &mut ServerCounters) -> Vec<u8> {
        let mut got = Vec::new();
        while let Some(b) = c.pending(a, k) {
            let b = b.to_vec();
            got.extend_from_slice(&b);
            c.wrote(b.len(), k);
        }
        got
    }

    #[test]
    fn raw_requests_are_answered_across_partial_reads() {
        let a = app(Proto::Raw);
        let (mut k, mut r) = (ServerCounters::default(), Recorder::new(a.window));
        let mut c = AppConn::new(a.kind(false));
        c.input(&a, b"abcdef", Instant::now(), &mut k, &mut r);
        assert_eq!(drain(&mut c, &a, &mut k).len(), 3);
        c.input(&a, b"gh", Instant::now(), &mut k, &mut r);
        assert_eq!(drain(&mut c, &a, &mut k).len(), 3);
        assert_eq!((k.requests, k.bytes_in, k.bytes_out), (2, 8, 6));
    }

    #[test]
    fn http_close_is_answered_then_closes_and_garbage_gets_400() {
        let a = app(Proto::Http);
        let (mut k, mut r) = (ServerCounters::default(), Recorder::new(a.window));
        let mut c = AppConn::new(a.kind(false));
        c.input(
            &a,
            &workload::http_request("h", true),
            Instant::now(),
            &mut k,
            &mut r,
        );
        assert!(c.close_after());
        let out = drain(&mut c, &a, &mut k);
        assert_eq!(workload::parse_http_response(&out).unwrap().unwrap().1, 3);
        let mut bad = AppConn::new(a.kind(false));
        bad.input(
            &a,
            b"\x16\x03garbage\r\n\r\n",
            Instant::now(),
            &mut k,
            &mut r,
        );
        assert!(bad.close_after());
        assert_eq!(k.bad_requests, 1);
        assert!(drain(&mut bad, &a, &mut k).starts_with(b"HTTP/1.1 400"));
    }

    #[test]
    fn the_sink_counts_bytes_that_differ_from_the_pattern() {
        let a = app(Proto::Raw);
        let (mut k, mut r) = (ServerCounters::default(), Recorder::new(a.window));
        let mut c = AppConn::new(a.kind(true));
        let data = workload::pattern_at(&a.pattern, 0, 500).to_vec();
        c.input(&a, &data[..200], Instant::now(), &mut k, &mut r);
        let mut rest = data[200..].to_vec();
        rest[7] ^= 0xff;
        c.input(&a, &rest, Instant::now(), &mut k, &mut r);
        assert_eq!(k.stream_verify_errors, 1);
        assert!(c.pending(&a, &mut k).is_none());
    }

    #[test]
    fn echo_sends_everything_back_and_stops_reading_at_its_limit() {
        let a = app(Proto::Echo);
        let (mut k, mut r) = (ServerCounters::default(), Recorder::new(a.window));
        let mut c = AppConn::new(a.kind(false));
        c.input(&a, b"hello, ", Instant::now(), &mut k, &mut r);
        c.input(&a, b"world", Instant::now(), &mut k, &mut r);
        assert_eq!(drain(&mut c, &a, &mut k), b"hello, world");
        // a client that never reads: past the limit the server stops reading
        let chunk = vec![7u8; 16 * 1024];
        let mut fed = 0;
        while c.wants_input() {
            c.input(&a, &chunk, Instant::now(), &mut k, &mut r);
            fed += chunk.len();
            assert!(fed <= OUT_LIMIT + chunk.len(), "unbounded");
        }
        assert_eq!(fed, OUT_LIMIT);
        // half written: it reads again, and what it owes is what it got
        let n = c.pending(&a, &mut k).unwrap().len();
        c.wrote(n / 2, &mut k);
        assert!(c.wants_input());
        assert_eq!(drain(&mut c, &a, &mut k).len(), fed - n / 2);
    }

    #[test]
    fn discard_answers_nothing() {
        let a = app(Proto::Discard);
        let (mut k, mut r) = (ServerCounters::default(), Recorder::new(a.window));
        let mut c = AppConn::new(a.kind(false));
        c.input(&a, &[1; 5000], Instant::now(), &mut k, &mut r);
        assert!(c.pending(&a, &mut k).is_none() && c.wants_input());
        assert_eq!(k.bytes_in, 5000);
        assert_eq!(a.udp_answer(), UdpAnswer::Discard);
        assert_eq!(app(Proto::Echo).udp_answer(), UdpAnswer::Echo);
        assert_eq!(app(Proto::Raw).udp_answer(), UdpAnswer::Workload);
    }

    fn status(out: &[u8]) -> &str {
        std::str::from_utf8(&out[..12]).unwrap()
    }

    #[test]
    fn http_heads_and_bodies_over_their_limits_are_refused_and_closed() {
        let a = app(Proto::Http);
        let (mut k, mut r) = (ServerCounters::default(), Recorder::new(a.window));
        // a head that never ends: 431 once it passes the limit, in pieces
        let mut c = AppConn::new(a.kind(false));
        c.input(&a, b"GET / HTTP/1.1\r\nX: ", Instant::now(), &mut k, &mut r);
        let filler = vec![b'a'; 4096];
        while !c.close_after() {
            assert!(c.wants_input());
            c.input(&a, &filler, Instant::now(), &mut k, &mut r);
        }
        assert_eq!(status(&drain(&mut c, &a, &mut k)), "HTTP/1.1 431");
        assert_eq!(k.oversized_requests, 1);
        // a body announced over the limit: 413 at once, nothing read
        let mut c = AppConn::new(a.kind(false));
        let req = b"POST / HTTP/1.1\r\nContent-Length: 1000000000000\r\n\r\n";
        c.input(&a, req, Instant::now(), &mut k, &mut r);
        assert!(c.close_after() && !c.wants_input());
        assert_eq!(status(&drain(&mut c, &a, &mut k)), "HTTP/1.1 413");
        assert_eq!(k.oversized_requests, 2);
        // chunked bodies are not implemented: 501; two lengths: 400
        for (req, want) in [
            (
                &b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
                "HTTP/1.1 501",
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                "HTTP/1.1 400",
            ),
        ] {
            let mut c = AppConn::new(a.kind(false));
            c.input(&a, req, Instant::now(), &mut k, &mut r);
            assert!(c.close_after());
            assert_eq!(status(&drain(&mut c, &a, &mut k)), want);
        }
    }

    #[test]
    fn http_bodies_are_skipped_as_they_come_and_the_connection_goes_on() {
        let a = app(Proto::Http);
        let (mut k, mut r) = (ServerCounters::default(), Recorder::new(a.window));
        let mut c = AppConn::new(a.kind(false));
        let mut req = b"POST / HTTP/1.1\r\nContent-Length: 100000\r\n\r\n".to_vec();
        req.extend_from_slice(&[b'b'; 1000]);
        c.input(&a, &req, Instant::now(), &mut k, &mut r);
        // the rest of the body, in pieces, never held
        for _ in 0..99 {
            c.input(&a, &[b'b'; 1000], Instant::now(), &mut k, &mut r);
            assert!(c.inbuf.is_empty());
        }
        c.input(
            &a,
            &workload::http_request("h", false),
            Instant::now(),
            &mut k,
            &mut r,
        );
        let out = drain(&mut c, &a, &mut k);
        assert_eq!(k.requests, 2, "the POST and the GET after its body");
        assert!(!c.close_after());
        assert_eq!(out.len(), 2 * a.http_keep.len());
    }

    #[test]
    fn pipelined_http_requests_wait_for_the_output_to_drain() {
        let w = Window::new(Duration::ZERO, Duration::ZERO, Duration::from_secs(1));
        // 10 KiB answers: the output limit holds about six
        let a = ServerApp::new(
            Proto::Http,
            Sizes {
                req: 4,
                resp: 10_000,
            },
            w,
            1024,
        );
        let (mut k, mut r) = (ServerCounters::default(), Recorder::new(a.window));
        let mut c = AppConn::new(a.kind(false));
        let one = workload::http_request("h", false);
        let many: Vec<u8> = one.iter().copied().cycle().take(one.len() * 100).collect();
        c.input(&a, &many, Instant::now(), &mut k, &mut r);
        assert!(k.requests < 10, "answered {} at once", k.requests);
        assert!(!c.wants_input(), "it stops reading while the answers wait");
        assert!(c.out.len() <= OUT_LIMIT + a.http_keep.len());
        // as the client reads, the held requests are answered, in order
        let out = drain(&mut c, &a, &mut k);
        assert_eq!(k.requests, 100);
        assert_eq!(out.len(), 100 * a.http_keep.len());
        assert!(c.wants_input());
    }
}
