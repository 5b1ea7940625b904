//! A hostile function (tests/components/hostile) attacks the host while good
//! classification requests keep flowing on another route: every attack gets a
//! clean JSON error, nothing escapes the sandbox, and every good request
//! succeeds.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::classify::check_predictions;
use crate::server::{Reply, Server, build_test_components, photo, root};

/// The limits the attacks run into, small so the tests are quick.
pub const LIMITS: &[&str] = &[
    "--request-timeout",
    "2s",
    "--max-memory",
    "128M",
    "--max-tensor-size",
    "8M",
    "--max-tensor-bytes-per-instance",
    "32M",
    "--max-execution-contexts",
    "8",
];

/// The hostile application with [`LIMITS`], as overridden by `extra`.
pub fn hostile_server(extra: &[&str]) -> Server {
    hostile_server_with_env(extra, &[])
}

/// [`hostile_server`] with environment variables (e.g. `RUST_LOG`).
pub fn hostile_server_with_env(extra: &[&str], env: &[(&str, &str)]) -> Server {
    build_test_components();
    let manifest = root().join("tests/fixtures/hostile.toml");
    let models = root().join("models");
    let mut args = vec![
        "--manifest",
        manifest.to_str().unwrap(),
        "--models",
        models.to_str().unwrap(),
    ];
    for pair in LIMITS.chunks(2) {
        if !extra.contains(&pair[0]) {
            args.extend_from_slice(pair);
        }
    }
    args.extend_from_slice(extra);
    Server::start_with(&args, env)
}

/// Good requests on another route, for as long as the attacks last.
pub struct SteadyTraffic {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(u16, String)>>,
}

impl SteadyTraffic {
    pub fn start(base: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let url = format!("{base}/classify/efficientnet-lite0-int8");
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(60)))
                    .build()
                    .into();
                let coffee = photo("coffee.png");
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let mut response = agent
                        .post(&url)
                        .header("content-type", "image/png")
                        .send(&coffee[..])
                        .expect("a good request gets an answer");
                    let status = response.status().as_u16();
                    let text = response.body_mut().read_to_string().unwrap();
                    answers.push((status, text));
                }
                answers
            }
        });
        Self { stop, thread }
    }

    pub fn finish(self) -> Vec<(u16, String)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// What an attack must get: a status, and words its error message contains.
struct Expect {
    attack: &'static str,
    status: u16,
    says: &'static [&'static str],
}

const EXPECTED: &[Expect] = &[
    Expect {
        attack: "panic",
        status: 500,
        says: &["function hostile failed"],
    },
    Expect {
        attack: "loop",
        status: 504,
        says: &["did not answer within 2s", "stopped"],
    },
    Expect {
        attack: "sleep",
        status: 504,
        says: &["did not answer within 2s"],
    },
    Expect {
        attack: "alloc",
        status: 500,
        says: &["out of memory", "128 MiB"],
    },
    Expect {
        attack: "stack",
        status: 500,
        says: &["function hostile failed"],
    },
    Expect {
        attack: "nn-wrong-shape",
        status: 422,
        says: &["shape", "[1, 3, 10, 10]", "3, 224, 224]"],
    },
    Expect {
        attack: "nn-wrong-type",
        status: 422,
        says: &["u8", "f32"],
    },
    Expect {
        attack: "nn-too-large?factor=16",
        status: 422,
        says: &["at most 8388608"],
    },
    Expect {
        attack: "nn-not-allowed",
        status: 422,
        says: &["NotFound", "efficientnet-lite0", "ai_models"],
    },
    Expect {
        attack: "nn-load-bytes",
        status: 422,
        says: &["Security", "from bytes"],
    },
    Expect {
        attack: "nn-bad-handle",
        status: 500,
        says: &["function hostile failed"],
    },
    Expect {
        attack: "nn-flood-tensors",
        status: 500,
        says: &["more than 32 MiB of wasi-nn tensors"],
    },
    Expect {
        attack: "nn-flood-contexts",
        status: 422,
        says: &["at most 8 execution contexts"],
    },
];

#[test]
fn attacks_get_clean_errors_while_good_requests_keep_succeeding() {
    let mut server = hostile_server(&[]);
    let traffic = SteadyTraffic::start(&server.base);

    let mut seen = Vec::new();
    for expect in EXPECTED {
        let started = Instant::now();
        let reply = server.post(&format!("/attack/{}", expect.attack), b"");
        let message = reply.assert_error(expect.status);
        for words in expect.says {
            assert!(
                message.contains(words),
                "{}: {words:?} not in {message:?}",
                expect.attack
            );
        }
        seen.push(format!(
            "{} -> {} {message:?} ({:.1} s)",
            expect.attack,
            reply.status,
            started.elapsed().as_secs_f64()
        ));
    }
    // The context flood stopped exactly at the limit.
    let reply = server.post("/attack/nn-flood-contexts", b"");
    assert_eq!(reply.json()["created"], 8, "{}", reply.text);

    escapes_are_denied(&server, &mut seen);

    let answers = traffic.finish();
    assert!(answers.len() >= 5, "only {} good requests", answers.len());
    for (status, text) in &answers {
        assert_eq!(
            *status, 200,
            "a good request failed during the attacks: {text}"
        );
        let json: serde_json::Value = serde_json::from_str(text).unwrap();
        check_predictions(&json, "efficientnet-lite0-int8", 5);
    }
    assert_eq!(server.post("/attack/ok", b"").status, 200);
    assert!(server.is_running());
    // Only the guest's own panic, none of the host's.
    let log = server.log();
    let panics: Vec<_> = log.lines().filter(|l| l.contains("panicked at")).collect();
    assert_eq!(panics.len(), 1, "{log}");
    assert!(panics[0].contains("hostile/src/runaway.rs"), "{log}");
    eprintln!(
        "{} good requests, all 200, during:\n{}",
        answers.len(),
        seen.join("\n")
    );
}

/// Files, environment and network: every attempt is denied.
fn escapes_are_denied(server: &Server, seen: &mut Vec<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    for (attack, attempts) in [
        ("escape-files".to_string(), 7),
        ("escape-env".to_string(), 4),
        (format!("escape-network?port={port}"), 5),
    ] {
        let reply = server.post(&format!("/attack/{attack}"), b"");
        assert_denied(&attack, &reply, attempts);
        seen.push(format!("{attack} -> {} {}", reply.status, reply.text));
    }
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the function reached the test's listener: {other:?}"),
    }
    // The manifest's environment did arrive: the denial is not an accident.
    let reply = server.post("/attack/escape-env", b"");
    assert_eq!(reply.json()["given"], "yes", "{}", reply.text);
}

fn assert_denied(attack: &str, reply: &Reply, attempts: usize) {
    reply.assert_error(403);
    let json = reply.json();
    let list = json["attempts"].as_array().expect("a list of attempts");
    assert_eq!(list.len(), attempts, "{attack}: {}", reply.text);
    for attempt in list {
        let outcome = attempt["outcome"].as_str().unwrap();
        assert!(outcome.starts_with("denied: "), "{attack}: {attempt}");
    }
}
