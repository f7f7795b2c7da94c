//! The server side of the TCP workloads as the application sees them:
//! fixed-size request/response (rr, crr), minimal HTTP/1.1, and the stream
//! sink that verifies every byte. One definition, driven by both paths: the
//! kernel server feeds it from its sockets, the bypass server from the
//! stack's (DESIGN.md, principle 4).

use std::time::Instant;

use crate::metrics::{Recorder, Window};
use crate::outcome::ServerCounters;
use crate::workload::{self, Proto, Sizes};

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Kind {
    Rr,
    Http,
    Sink,
}

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
        }
    }
}

/// One connection's application state.
pub struct AppConn {
    kind: Kind,
    /// Raw rr: bytes of the request being received.
    partial: usize,
    /// Raw rr: response bytes still to write.
    owed: usize,
    /// HTTP: unparsed input, and output not yet written.
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    close_after: bool,
    /// Sink: stream offset of the next byte.
    offset: u64,
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
            offset: 0,
        }
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
        match self.kind {
            Kind::Rr => {
                self.partial += data.len();
                let whole = self.partial / app.sizes.req;
                self.partial %= app.sizes.req;
                self.owed += whole * app.sizes.resp;
                counters.requests += whole as u64;
            }
            Kind::Http => {
                self.inbuf.extend_from_slice(data);
                let (reqs, bad) = http_consume(
                    &mut self.inbuf,
                    &mut self.out,
                    &mut self.close_after,
                    &app.http_keep,
                    &app.http_close,
                );
                counters.requests += reqs;
                counters.bad_requests += bad;
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

    /// The connection is to be closed once its output is written (HTTP
    /// `Connection: close`, or a bad request).
    pub fn close_after(&self) -> bool {
        self.close_after
    }

    /// The next bytes to write, or `None` when nothing is owed.
    pub fn pending<'a>(&'a mut self, app: &'a ServerApp) -> Option<&'a [u8]> {
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

/// Answers every complete HTTP request in `inbuf` into `out`; after a
/// `Connection: close` request (or a bad one) sets `close_after` and stops.
/// Returns (requests answered, bad requests).
fn http_consume(
    inbuf: &mut Vec<u8>,
    out: &mut Vec<u8>,
    close_after: &mut bool,
    keep: &[u8],
    close: &[u8],
) -> (u64, u64) {
    let mut pos = 0;
    let mut reqs = 0;
    let mut bad = 0;
    while !*close_after {
        match workload::parse_http_request(&inbuf[pos..]) {
            Ok(Some(head)) => {
                if inbuf.len() - pos < head.len + head.body {
                    break; // body still arriving
                }
                pos += head.len + head.body;
                reqs += 1;
                if head.close {
                    out.extend_from_slice(close);
                    *close_after = true;
                } else {
                    out.extend_from_slice(keep);
                }
            }
            Ok(None) => break,
            Err(_) => {
                bad += 1;
                out.extend_from_slice(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                *close_after = true;
            }
        }
    }
    inbuf.drain(..pos);
    (reqs, bad)
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
        while let Some(b) = c.pending(a) {
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
        assert!(c.pending(&a).is_none());
    }
}
