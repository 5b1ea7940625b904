//! Attempts to reach beyond the sandbox: files, the host's environment, the
//! network. Every attempt is reported; if any was allowed the answer is 200
//! `{"escaped": true, "attempts"}`, else 403 `{"error": "denied", "attempts"}`.

use std::fs;
use std::io;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};

use serde_json::{Map, Value, json};
use spin_sdk::http::{Request, Response};

use crate::reply;

/// The one variable the manifest gives this component.
const GIVEN: &str = "GIVEN";
/// How much of a file read outside the mounts the answer shows.
const PREVIEW_CHARS: usize = 60;

/// One attempt: what was tried, and what it got (`Ok`) or why not (`Err`).
struct Attempt {
    what: String,
    outcome: Result<String, String>,
}

impl Attempt {
    fn new(what: impl Into<String>, outcome: Result<String, impl ToString>) -> Self {
        Self {
            what: what.into(),
            outcome: outcome.map_err(|e| e.to_string()),
        }
    }

    fn to_json(&self) -> Value {
        let outcome = match &self.outcome {
            Ok(got) => format!("allowed: {got}"),
            Err(why) => format!("denied: {why}"),
        };
        json!({"what": self.what, "outcome": outcome})
    }
}

pub fn files() -> Response {
    let attempts = [
        read("/etc/passwd"),
        read("/models/../../../../etc/passwd"),
        read("../etc/passwd"),
        read("/proc/self/environ"),
        list("/"),
        write("/models/hostile-was-here"),
        write("/tmp/hostile"),
    ];
    report(&attempts, Map::new())
}

fn read(path: &str) -> Attempt {
    let outcome = fs::read(path).map(|bytes| {
        String::from_utf8_lossy(&bytes)
            .chars()
            .take(PREVIEW_CHARS)
            .collect()
    });
    Attempt::new(format!("read {path}"), outcome)
}

fn list(path: &str) -> Attempt {
    let outcome = fs::read_dir(path).and_then(|entries| {
        let names = entries
            .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(names.join(", "))
    });
    Attempt::new(format!("list {path}"), outcome)
}

/// Creates a file; if that works, removes it again, not to litter the host.
fn write(path: &str) -> Attempt {
    let outcome = fs::write(path, "hostile was here").map(|()| {
        let removed = fs::remove_file(path).is_ok();
        format!("wrote {path} (removed again: {removed})")
    });
    Attempt::new(format!("write {path}"), outcome)
}

pub fn env() -> Response {
    let attempts = [
        other_variables(),
        variable("HOME"),
        variable("PATH"),
        arguments(),
    ];
    let given = std::env::var(GIVEN).map_or(Value::Null, Value::from);
    report(&attempts, Map::from_iter([("given".to_string(), given)]))
}

/// The names (only) of the variables besides [`GIVEN`].
fn other_variables() -> Attempt {
    let names: Vec<String> = std::env::vars_os()
        .map(|(name, _)| name.to_string_lossy().into_owned())
        .filter(|name| name != GIVEN)
        .collect();
    let outcome = if names.is_empty() {
        Err(format!("no variable but {GIVEN}"))
    } else {
        Ok(format!("variables {}", names.join(", ")))
    };
    Attempt::new("list the environment", outcome)
}

fn variable(name: &str) -> Attempt {
    let outcome = std::env::var(name).map(|value| format!("{name}={value}"));
    Attempt::new(format!("read ${name}"), outcome)
}

/// Arguments beyond a program name.
fn arguments() -> Attempt {
    let args: Vec<String> = std::env::args_os()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    let outcome = if args.len() > 1 {
        Ok(format!("arguments {args:?}"))
    } else {
        Err(format!("no arguments beyond a program name: {args:?}"))
    };
    Attempt::new("read the arguments", outcome)
}

pub async fn network(port: u16) -> Response {
    let (bind, send) = udp(port);
    let attempts = [tcp(port), bind, send, dns(port), http(port).await];
    report(&attempts, Map::new())
}

fn tcp(port: u16) -> Attempt {
    let outcome = TcpStream::connect(("127.0.0.1", port)).map(|stream| match stream.peer_addr() {
        Ok(peer) => format!("connected to {peer}"),
        Err(_) => "connected".to_string(),
    });
    Attempt::new(format!("tcp connect 127.0.0.1:{port}"), outcome)
}

/// Binding a UDP socket, and sending with it.
fn udp(port: u16) -> (Attempt, Attempt) {
    let socket = UdpSocket::bind("0.0.0.0:0");
    let sent = match &socket {
        Ok(socket) => socket
            .send_to(b"hostile", ("127.0.0.1", port))
            .map(|n| format!("sent {n} bytes"))
            .map_err(|e| e.to_string()),
        Err(_) => Err("no socket to send with".to_string()),
    };
    let bound = socket.map(|socket| match socket.local_addr() {
        Ok(local) => format!("bound {local}"),
        Err(_) => "bound".to_string(),
    });
    (
        Attempt::new("udp bind 0.0.0.0:0", bound),
        Attempt::new(format!("udp send to 127.0.0.1:{port}"), sent),
    )
}

fn dns(port: u16) -> Attempt {
    let outcome = ("localhost", port).to_socket_addrs().map(|addrs| {
        let addrs: Vec<String> = addrs.map(|addr| addr.to_string()).collect();
        format!("resolved to {}", addrs.join(", "))
    });
    Attempt::new("resolve localhost", outcome)
}

async fn http(port: u16) -> Attempt {
    let url = format!("http://127.0.0.1:{port}/");
    let outcome = spin_sdk::http::send::<_, Response>(Request::get(&url))
        .await
        .map(|response| format!("answered {}", response.status()));
    Attempt::new(format!("http GET {url}"), outcome)
}

/// The answer: 200 if any attempt was allowed, else 403; with `extra` fields.
fn report(attempts: &[Attempt], mut extra: Map<String, Value>) -> Response {
    let escaped = attempts.iter().any(|a| a.outcome.is_ok());
    let attempts: Vec<Value> = attempts.iter().map(Attempt::to_json).collect();
    extra.insert("attempts".to_string(), attempts.into());
    if escaped {
        extra.insert("escaped".to_string(), true.into());
        reply(200, extra.into())
    } else {
        extra.insert("error".to_string(), "denied".into());
        reply(403, extra.into())
    }
}
