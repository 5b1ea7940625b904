//! The load generator: a fixed number of keep-alive connections, each sending
//! the same request again as soon as its answer is in (a closed loop, as `wrk`
//! does), for a bounded time. Latencies are taken per request after a warm-up.
//!
//! The HTTP/1.1 client is written here, over a plain `TcpStream` (Nagle off,
//! the whole request in one write), so the load generator adds as little as it
//! can and reads the `Server-Timing` header that splits a request's time.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// One request, sent again and again.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// The request's bytes: head and body, ready to write.
    raw: Arc<Vec<u8>>,
}

impl Target {
    pub fn post(addr: SocketAddr, path: &str, content_type: &str, body: &[u8]) -> Self {
        Self::new(addr, "POST", path, content_type, body)
    }

    pub fn new(
        addr: SocketAddr,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Self {
        Self::with_headers(addr, method, path, content_type, &[], body)
    }

    /// A request with `headers` besides its host, type and length.
    pub fn with_headers(
        addr: SocketAddr,
        method: &str,
        path: &str,
        content_type: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Self {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut raw = head.into_bytes();
        raw.extend_from_slice(body);
        Self {
            addr,
            raw: Arc::new(raw),
        }
    }
}

/// A response, as much of it as the benchmark needs.
pub struct Reply {
    pub status: u16,
    pub server_timing: Option<String>,
    pub body: Vec<u8>,
}

/// A keep-alive connection.
pub struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    pub fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Self {
            reader: BufReader::with_capacity(64 * 1024, stream),
        })
    }

    pub fn send(&mut self, target: &Target) -> anyhow::Result<Reply> {
        self.reader.get_mut().write_all(&target.raw)?;
        self.read_reply()
    }

    fn read_reply(&mut self) -> anyhow::Result<Reply> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            bail!("the server closed the connection");
        }
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("not an HTTP status line: {line:?}"))?;
        let (mut length, mut chunked, mut server_timing) = (None, false, None);
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                bail!("malformed header {header:?}");
            };
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = Some(value.parse::<usize>()?),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "server-timing" => server_timing = Some(value.to_string()),
                _ => {}
            }
        }
        let body = match (chunked, length) {
            (true, _) => self.read_chunked()?,
            (false, Some(n)) => {
                let mut body = vec![0; n];
                self.reader.read_exact(&mut body)?;
                body
            }
            (false, None) => bail!("a response with neither content-length nor chunks"),
        };
        Ok(Reply {
            status,
            server_timing,
            body,
        })
    }

    fn read_chunked(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut body = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .with_context(|| format!("bad chunk size {line:?}"))?;
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    line.clear();
                    self.reader.read_line(&mut line)?;
                    if line.trim_end().is_empty() {
                        return Ok(body);
                    }
                }
            }
            let start = body.len();
            body.resize(start + size, 0);
            self.reader.read_exact(&mut body[start..])?;
            line.clear();
            self.reader.read_line(&mut line)?;
        }
    }
}

/// What one load run measured.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// Successful (200) responses in the measured window.
    pub ok: u64,
    /// Other statuses and connection errors in the measured window.
    pub failed: u64,
    /// The first failure, to show.
    pub first_failure: Option<String>,
    /// Latency of each successful request in the window, sorted.
    pub latencies: Vec<Duration>,
    pub window: Duration,
    /// Sum and count of each `Server-Timing` entry (milliseconds).
    pub server_timing: BTreeMap<String, (f64, u64)>,
}

impl Outcome {
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64()
    }

    pub fn percentile(&self, p: f64) -> Option<Duration> {
        if self.latencies.is_empty() {
            return None;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        Some(self.latencies[rank.clamp(1, self.latencies.len()) - 1])
    }

    fn merge(&mut self, other: Outcome) {
        self.ok += other.ok;
        self.failed += other.failed;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
        self.latencies.extend(other.latencies);
        for (name, (sum, n)) in other.server_timing {
            let entry = self.server_timing.entry(name).or_default();
            entry.0 += sum;
            entry.1 += n;
        }
    }
}

/// Drives `target` with `concurrency` connections: `warmup`, then `duration`
/// measured.
pub fn run(target: &Target, concurrency: usize, warmup: Duration, duration: Duration) -> Outcome {
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let target = target.clone();
            std::thread::spawn(move || drive(&target, measure_from, end))
        })
        .collect();
    let mut total = Outcome {
        window: duration,
        ..Outcome::default()
    };
    for worker in workers {
        if let Ok(outcome) = worker.join() {
            total.merge(outcome);
        }
    }
    total.latencies.sort_unstable();
    total
}

fn drive(target: &Target, measure_from: Instant, end: Instant) -> Outcome {
    let mut outcome = Outcome::default();
    let mut connection: Option<Connection> = None;
    while Instant::now() < end {
        let sent = Instant::now();
        let result = match &mut connection {
            Some(c) => c.send(target),
            None => Connection::open(target.addr).and_then(|mut c| {
                let reply = c.send(target);
                connection = Some(c);
                reply
            }),
        };
        let done = Instant::now();
        // Requests that end in the window count (as wrk counts them): in a
        // steady state as many begin as end, and a server slower than the
        // window still gets its answers counted.
        let counted = done >= measure_from && done <= end;
        let failure = match result {
            Ok(reply) if reply.status == 200 => {
                if counted {
                    outcome.ok += 1;
                    outcome.latencies.push(done - sent);
                    if let Some(timing) = &reply.server_timing {
                        add_timings(&mut outcome.server_timing, timing);
                    }
                }
                None
            }
            Ok(reply) => Some(format!(
                "status {}: {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            )),
            Err(error) => {
                connection = None;
                Some(format!("{error:#}"))
            }
        };
        if let Some(failure) = failure {
            if counted {
                outcome.failed += 1;
                outcome.first_failure.get_or_insert(failure);
            }
            // Do not spin on a server that refuses connections.
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    outcome
}

/// Adds `decode;dur=2.1, inference;dur=13.0` to the sums.
fn add_timings(sums: &mut BTreeMap<String, (f64, u64)>, header: &str) {
    for entry in header.split(',') {
        let mut parts = entry.trim().split(';');
        let Some(name) = parts.next() else { continue };
        let dur = parts.find_map(|p| p.trim().strip_prefix("dur=")?.parse::<f64>().ok());
        if let Some(ms) = dur {
            let sum = sums.entry(name.to_string()).or_default();
            sum.0 += ms;
            sum.1 += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let outcome = Outcome {
            latencies: (1..=100).map(Duration::from_millis).collect(),
            ..Outcome::default()
        };
        assert_eq!(outcome.percentile(50.0), Some(Duration::from_millis(50)));
        assert_eq!(outcome.percentile(99.0), Some(Duration::from_millis(99)));
        assert_eq!(Outcome::default().percentile(50.0), None);
    }

    #[test]
    fn server_timing_entries_are_summed() {
        let mut sums = BTreeMap::new();
        add_timings(&mut sums, "decode;dur=2.0, inference;desc=\"x\";dur=10");
        add_timings(&mut sums, "decode;dur=4.0, broken");
        assert_eq!(sums["decode"], (6.0, 2));
        assert_eq!(sums["inference"], (10.0, 1));
        assert!(!sums.contains_key("broken"));
    }

    #[test]
    fn reads_a_chunked_reply_over_a_real_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).unwrap();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nServer-Timing: a;dur=1\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
                .unwrap();
        });
        let mut connection = Connection::open(addr).unwrap();
        let reply = connection
            .send(&Target::post(addr, "/x", "text/plain", b"hi"))
            .unwrap();
        server.join().unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, b"abcde");
        assert_eq!(reply.server_timing.as_deref(), Some("a;dur=1"));
    }
}
