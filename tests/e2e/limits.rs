//! The limits on requests: body and head sizes, slow clients, the bounded
//! queue, the budget of buffered bodies, connections that never read or sit
//! idle, and graceful shutdown.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::attacks::{hostile_server, hostile_server_with_env};

/// Sends raw bytes (`parts`, with `pause` between them) and returns what the
/// server answered before closing or within `wait`.
fn raw_exchange(address: &str, parts: &[&[u8]], pause: Duration, wait: Duration) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(pause);
        }
        // The server may already have answered and closed.
        if stream.write_all(part).is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status line's code and the body's JSON error of a raw answer.
fn raw_error(answer: &str) -> (u16, String) {
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let body = body.lines().find(|l| l.starts_with('{')).unwrap_or(body);
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer:?}"));
    (status, json["error"].as_str().unwrap().to_string())
}

/// Reads from `stream` until what came contains `needle`, the peer closes,
/// or `within` has passed; returns what came.
fn read_until(stream: &mut TcpStream, needle: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    let mut answer = Vec::new();
    let mut buf = [0u8; 16 << 10];
    while !String::from_utf8_lossy(&answer).contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Writes `parts`, with `pause` between them.
fn send_slowly(stream: &mut TcpStream, parts: &[&[u8]], pause: Duration) {
    for part in parts {
        stream.write_all(part).unwrap();
        std::thread::sleep(pause);
    }
}

/// The lines of the server's log that tell of a panic.
fn panics(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("panicked")).collect()
}

#[test]
fn oversized_and_slow_requests_get_json_errors_and_the_server_keeps_serving() {
    let mut server = hostile_server(&[
        "--max-body-size",
        "1M",
        "--max-header-size",
        "8K",
        "--client-timeout",
        "1s",
    ]);
    let big = vec![0u8; 2 << 20];

    // A declared length past the limit is refused before the body is read.
    let message = server.post("/attack/ok", &big).assert_error(413);
    assert!(message.contains("1048576"), "{message}");

    // A chunked body is cut off at the limit as it streams in.
    let head = format!(
        "POST /attack/ok HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n",
        big.len()
    );
    let answer = raw_exchange(
        server.address(),
        &[head.as_bytes(), &big, b"\r\n0\r\n\r\n"],
        Duration::ZERO,
        Duration::from_secs(10),
    );
    let (status, message) = raw_error(&answer);
    assert_eq!(status, 413, "{answer}");
    assert!(message.contains("larger than 1048576"), "{message}");
    // What is left of a refused body may be unread: the client is told not to
    // send another request on the connection.
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{answer}"
    );

    // A head past the limit: 431 with a JSON error...
    let header = "a".repeat(12 << 10);
    let message = server
        .send("GET", "/attack/ok", &[("x-big", &header)], b"")
        .assert_error(431);
    assert!(message.contains("8192"), "{message}");
    // ...and far past it, the parser refuses it before buffering it whole.
    let huge = format!(
        "GET /attack/ok HTTP/1.1\r\nhost: x\r\nx-huge: {}\r\n\r\n",
        "a".repeat(200 << 10)
    );
    let answer = raw_exchange(
        server.address(),
        &[huge.as_bytes()],
        Duration::ZERO,
        Duration::from_secs(10),
    );
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");

    // A body that stops arriving: 408 after the client timeout.
    let started = Instant::now();
    let answer = raw_exchange(
        server.address(),
        &[b"POST /attack/ok HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n0123456789"],
        Duration::ZERO,
        Duration::from_secs(10),
    );
    let (status, message) = raw_error(&answer);
    assert_eq!(status, 408, "{answer}");
    assert!(message.contains("did not arrive within 1s"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // A head that stops arriving: the connection is closed after the timeout.
    let started = Instant::now();
    let answer = raw_exchange(
        server.address(),
        &[b"POST /attack/ok HTTP/1.1\r\nhost: x\r\n"],
        Duration::ZERO,
        Duration::from_secs(10),
    );
    assert!(started.elapsed() < Duration::from_secs(5), "{answer:?}");

    assert_eq!(server.post("/attack/ok", b"").status, 200);
    assert!(server.is_running());
}

#[test]
fn a_busy_server_queues_briefly_then_answers_503_with_retry_after() {
    let server = hostile_server(&[
        "--request-timeout",
        "10s",
        "--max-running",
        "1",
        "--max-waiting",
        "1",
        "--max-wait",
        "500ms",
    ]);
    let server = std::sync::Arc::new(server);
    // One slow request holds the only running slot...
    let slow = std::thread::spawn({
        let server = server.clone();
        move || server.post("/attack/slow?ms=3000", b"").status
    });
    std::thread::sleep(Duration::from_millis(500));
    // ...one request may wait, for a while; another is turned away at once.
    let waiting = std::thread::spawn({
        let server = server.clone();
        move || server.post("/attack/ok", b"")
    });
    std::thread::sleep(Duration::from_millis(150));
    let turned_away = server.post("/attack/ok", b"");
    let waited = waiting.join().unwrap();

    let mut messages = Vec::new();
    for reply in [&waited, &turned_away] {
        messages.push(reply.assert_error(503));
        assert_eq!(reply.retry_after.as_deref(), Some("1"));
    }
    messages.sort();
    assert!(
        messages[0].contains("1 requests are already waiting")
            && messages[1].contains("no instance came free within 500ms"),
        "{messages:?}"
    );
    assert_eq!(slow.join().unwrap(), 200);
    assert_eq!(server.post("/attack/ok", b"").status, 200);
}

#[test]
fn sigterm_finishes_in_flight_requests_then_exits_0() {
    let server = std::sync::Arc::new(std::sync::Mutex::new(hostile_server(&[])));
    let address = server.lock().unwrap().address().to_string();
    let base = server.lock().unwrap().base.clone();
    let in_flight = std::thread::spawn(move || {
        ureq::get(format!("{base}/attack/slow?ms=1500"))
            .call()
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string())
    });
    std::thread::sleep(Duration::from_millis(400));
    server.lock().unwrap().terminate();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        TcpStream::connect(&address).is_err(),
        "still accepting after SIGTERM"
    );
    assert_eq!(in_flight.join().unwrap(), Ok(200));
    let status = server.lock().unwrap().wait_exit(Duration::from_secs(10));
    let status = status.expect("the server did not exit");
    assert!(status.success(), "{status:?}");
}

#[test]
fn sigterm_exits_0_after_the_grace_when_a_request_is_stuck() {
    let mut server = hostile_server(&["--request-timeout", "60s", "--shutdown-grace", "1s"]);
    let base = server.base.clone();
    std::thread::spawn(move || {
        // Cut off by the shutdown: any outcome will do.
        let _ = ureq::get(format!("{base}/attack/sleep")).call();
    });
    std::thread::sleep(Duration::from_millis(400));
    let started = Instant::now();
    server.terminate();
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("the server did not exit");
    assert!(status.success(), "{status:?}");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(
        server.log().contains("did not finish within 1s"),
        "{}",
        server.log()
    );
}

#[test]
fn clients_that_never_read_their_answers_lose_their_connections_at_the_write_timeout() {
    // Only the write timeout may free the slots: the head and idle timers
    // are far away. Each request's log line is left out (there are many).
    let server = hostile_server_with_env(
        &[
            "--write-timeout",
            "1s",
            "--max-connections",
            "2",
            "--client-timeout",
            "60s",
            "--idle-timeout",
            "60s",
        ],
        &[("RUST_LOG", "info,wasi_infer::request=warn")],
    );
    // Enough pipelined answers to fill both sockets' buffers many times over
    // (loopback buffers are a few MiB).
    let answer_size = server.get("/metrics").bytes.len().max(1);
    let count = ((64 << 20) / answer_size).clamp(2000, 40_000);
    let pipeline = "GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n".repeat(count);

    let started = Instant::now();
    let mut hogs: Vec<(TcpStream, usize)> = (0..2)
        .map(|_| {
            let stream = TcpStream::connect(server.address()).unwrap();
            stream.set_nonblocking(true).unwrap();
            (stream, 0)
        })
        .collect();
    // Write what the server takes, for a while: it stops reading once its
    // answers cannot be written. The clients never read.
    while started.elapsed() < Duration::from_secs(2) {
        let mut all_sent = true;
        for (stream, sent) in &mut hogs {
            if *sent < pipeline.len() {
                match stream.write(&pipeline.as_bytes()[*sent..]) {
                    Ok(n) => *sent += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("the server closed early: {e}"),
                }
                all_sent &= *sent == pipeline.len();
            }
        }
        if all_sent {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    // A third client waits in the backlog until a slot is freed.
    let mut third = TcpStream::connect(server.address()).unwrap();
    third
        .write_all(b"GET /health/live HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let answer = read_until(&mut third, "{\"live\":true}", Duration::from_secs(20));
    let took = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(
        took >= Duration::from_secs(1),
        "answered before any write timed out: {took:?}"
    );
    assert!(
        took < Duration::from_secs(8),
        "the slots were freed late: {took:?}"
    );
    let request_size = pipeline.len() / count;
    let sent: Vec<usize> = hogs.iter().map(|(_, sent)| sent / request_size).collect();
    eprintln!(
        "{answer_size}-byte answers; about {sent:?} requests sent on the two connections; \
         the third answered after {:.2} s",
        took.as_secs_f64()
    );
    drop(hogs);
    assert!(panics(&server.log()).is_empty(), "{}", server.log());
}

#[test]
fn idle_connections_are_closed_but_not_while_a_request_runs() {
    let server = hostile_server(&["--idle-timeout", "1s", "--request-timeout", "10s"]);
    let server = std::sync::Arc::new(server);
    // A request that runs past the idle timeout on its own connection.
    let slow = std::thread::spawn({
        let server = server.clone();
        move || server.post("/attack/slow?ms=2500", b"").status
    });

    // One whole request, then nothing.
    let mut idle = TcpStream::connect(server.address()).unwrap();
    idle.write_all(b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let answer = read_until(&mut idle, "{\"live\":true}", Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    let answered = Instant::now();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    let read = idle.read(&mut buf);
    let took = answered.elapsed();
    assert!(matches!(read, Ok(0)), "not closed: {read:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "closed after {took:?}"
    );

    assert_eq!(slow.join().unwrap(), 200, "the running request was cut off");
    assert_eq!(server.post("/attack/ok", b"").status, 200);
}

#[test]
fn bodies_past_the_shared_budget_wait_then_get_503_and_the_others_complete() {
    let server = hostile_server(&[
        "--max-body-size",
        "1M",
        "--max-buffered-bodies",
        "2M",
        "--max-wait",
        "500ms",
    ]);
    let head = b"POST /attack/ok HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000\r\n\r\n";
    let tenth = vec![b'x'; 100_000];
    let half: Vec<&[u8]> = vec![&tenth; 5];
    let pause = Duration::from_millis(20);

    // Two bodies of 1000000 bytes hold 1.9 MiB of the 2 MiB, half sent.
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(server.address()).unwrap();
        stream.write_all(head).unwrap();
        std::thread::sleep(Duration::from_millis(150));
        send_slowly(&mut stream, &half, pause);
        holders.push(stream);
    }

    // A third finds no room: after --max-wait, 503 with Retry-After.
    let started = Instant::now();
    let mut third = TcpStream::connect(server.address()).unwrap();
    third.write_all(head).unwrap();
    send_slowly(&mut third, &half, pause);
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = third.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (status, message) = raw_error(&answer);
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nretry-after: 1\r\n"),
        "{answer}"
    );
    assert!(
        message.contains("too many request bodies (--max-buffered-bodies 2 MiB)"),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );

    // The first two complete normally once the rest of their bodies arrive.
    for stream in &mut holders {
        send_slowly(stream, &half, Duration::ZERO);
    }
    for stream in &mut holders {
        let answer = read_until(stream, "{\"ok\":true}", Duration::from_secs(10));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    }
    // Their bytes went back to the budget: a body of 1 MiB fits again.
    drop(holders);
    assert_eq!(server.post("/attack/ok", &vec![0u8; 1 << 20]).status, 200);
    assert!(panics(&server.log()).is_empty(), "{}", server.log());
}
