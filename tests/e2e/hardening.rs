//! The second round of attacks: no request and no function may take the
//! host's memory or time. Each attack runs while good requests flow, and the
//! host's resident memory is watched throughout.
//!
//! - Inputs past a model's bounds (the 3 MiB request that took 5.7 GB), from
//!   a hostile function and through the Open Inference Protocol.
//! - A flood of dimension lists, a hoard of outputs: charged, then trapped.
//! - A deadline that fires while a backend computes, and a client that goes
//!   away, on every backend: the answer comes at the deadline, and the
//!   inference stops costing CPU.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::attacks::{SteadyTraffic, hostile_server};
use crate::server::{Server, build_test_components, root};
use crate::slow_model::slow_models;

const MIB: u64 = 1 << 20;

/// The resident memory of process `pid`, in bytes (0 once it is gone).
pub fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    kb * 1024
}

/// The CPU time process `pid` has used (user and system).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command (which may hold spaces), from field 3 on.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a constant of the system.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

/// The CPU the server uses over `window`, as a share of one core.
fn cpu_share(pid: u32, window: Duration) -> f64 {
    let before = cpu_time(pid);
    std::thread::sleep(window);
    (cpu_time(pid) - before).as_secs_f64() / window.as_secs_f64()
}

/// Samples a process's resident memory until stopped; keeps the peak.
pub struct RssWatch {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl RssWatch {
    pub fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(rss(pid)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (peak, stop) = (peak.clone(), stop.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(rss(pid), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        Self { peak, stop, thread }
    }

    pub fn peak(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        self.peak.load(Ordering::Relaxed)
    }
}

/// Resident memory after a burst has settled: the least of the samples of
/// three seconds (OpenVINO compiles a model anew after a large request, in
/// about a second here, and frees the old one's memory then).
fn settled_rss(pid: u32) -> u64 {
    (0..30)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            rss(pid)
        })
        .min()
        .unwrap()
}

/// The least resident memory seen until it is at most `bound`, or for
/// [`GIVE_BACK_WITHIN`]: the backends give memory back after a large request
/// in the background (OpenVINO compiles the model anew at most once every
/// 10 s, `nn::openvino::RENEW_EVERY`, so after two large requests close
/// together the second's memory returns up to 10 s and a compilation later).
fn returned_rss(pid: u32, bound: u64) -> u64 {
    let until = Instant::now() + GIVE_BACK_WITHIN;
    let mut least = settled_rss(pid);
    while least > bound && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
        least = least.min(rss(pid));
    }
    least
}

/// `nn::openvino::RENEW_EVERY` (10 s), and 10 s for a compilation on a
/// loaded machine (about 1 s here when idle).
const GIVE_BACK_WITHIN: Duration = Duration::from_secs(20);

/// The bounds of this file's memory checks, for the hostile application with
/// `attacks::LIMITS` (--max-tensor-bytes-per-instance 32M).
///
/// During the attacks: the largest request the text model's bounds allow
/// ([64, 256] tokens) runs twice, and the hoard holds up to 32 MiB of
/// outputs; the model's attention is 64 x 12 heads x 256² x 4 bytes = 200 MB
/// per layer, and ONNX Runtime keeps a few such buffers alive at once: 1.5
/// GB above the start leaves room for that on every backend, and is a
/// quarter of what the one unbounded request of the issue took (5.7 GB).
const PEAK_ABOVE_START: u64 = 1536 * MIB;
/// After them: the backends give back what the large requests grew (see
/// `nn::bounds::LargeRequests`: ONNX Runtime's arena shrinks,
/// OpenVINO's model is compiled anew); what stays is allocator slack and the
/// kernels cached for the shapes seen, tens of MB (measured: +49 to +61 MiB on ONNX
/// Runtime, -4 to -20 MiB on OpenVINO).
const FINAL_ABOVE_START: u64 = 200 * MIB;

struct Attack {
    path: &'static str,
    status: u16,
    says: &'static [&'static str],
}

const ATTACKS: &[Attack] = &[
    // The request: 3 MiB of INT64 [512, 256] x 3.
    Attack {
        path: "nn-large-shape?batch=512&seq=256",
        status: 422,
        says: &[
            "TooLarge",
            "[512, 256]",
            "dimension 0 may be at most 64",
            "max_batch",
        ],
    },
    Attack {
        path: "nn-large-shape?batch=1&seq=4096",
        status: 422,
        says: &["TooLarge", "dimension 1 may be at most 512", "max_shape"],
    },
    Attack {
        path: "nn-large-shape?batch=64&seq=512",
        status: 422,
        says: &["TooLarge", "at most 16384 elements", "max_elements"],
    },
    Attack {
        path: "nn-flood-dims",
        status: 500,
        says: &["1000000 dimensions", "at most 16"],
    },
    Attack {
        path: "nn-hoard-outputs",
        status: 500,
        says: &["held more than 32 MiB", "--max-tensor-bytes-per-instance"],
    },
];

/// On the backends whose memory outlives a request (ONNX Runtime's arena,
/// OpenVINO's infer requests); tract's is each run's own, and its bounds and
/// charges are the same code as here.
#[test]
fn bounded_inputs_and_charged_objects_keep_the_host_small() {
    for backend in ["onnxruntime", "openvino"] {
        attacks_within_memory_bounds(backend);
    }
}

fn attacks_within_memory_bounds(backend: &str) {
    // Time for the hoard's computes and the largest requests: 22 s and 15 s
    // on OpenVINO here; a CPU with half the throughput must pass too.
    let mut server = hostile_server(&["--request-timeout", "120s", "--backend", backend]);
    let pid = server.pid();
    // Warm: the models' first runs, the instance slots.
    for _ in 0..3 {
        assert_eq!(server.post("/attack/ok", b"").status, 200);
        let reply = server.post("/attack/nn-large-shape?batch=2&seq=8", b"");
        assert_eq!(reply.status, 200, "{backend}: {}", reply.text);
    }
    let start = settled_rss(pid);
    let watch = RssWatch::start(pid);
    let traffic = SteadyTraffic::start(&server.base);

    let mut seen = Vec::new();
    for attack in ATTACKS {
        let started = Instant::now();
        let reply = server.post(&format!("/attack/{}", attack.path), b"");
        let message = reply.assert_error(attack.status);
        for words in attack.says {
            assert!(
                message.contains(words),
                "{backend}: {}: {words:?} not in {message:?}",
                attack.path
            );
        }
        seen.push(format!(
            "{} -> {} {message:?} ({:.2} s, {} MiB now)",
            attack.path,
            reply.status,
            started.elapsed().as_secs_f64(),
            rss(pid) / MIB
        ));
    }
    // The largest request the bounds allow runs, twice.
    for _ in 0..2 {
        let started = Instant::now();
        let reply = server.post("/attack/nn-large-shape?batch=64&seq=256", b"");
        assert_eq!(reply.status, 200, "{backend}: {}", reply.text);
        assert_eq!(reply.json()["computed"], json!([64, 256]), "{}", reply.text);
        seen.push(format!(
            "nn-large-shape?batch=64&seq=256 -> 200 ({:.2} s, {} MiB now)",
            started.elapsed().as_secs_f64(),
            rss(pid) / MIB
        ));
    }

    let answers = traffic.finish();
    let peak = watch.peak();
    let end = returned_rss(pid, start + FINAL_ABOVE_START);
    assert!(answers.len() >= 5, "only {} good requests", answers.len());
    for (status, text) in &answers {
        assert_eq!(
            *status, 200,
            "{backend}: a good request failed during the attacks: {text}"
        );
    }
    assert!(server.is_running());
    let log = server.log();
    assert!(!log.contains("panicked at"), "{log}");
    eprintln!(
        "{backend}: {} good requests, all 200; memory: start {} MiB, peak {} MiB, end {} MiB; \
         during:\n{}",
        answers.len(),
        start / MIB,
        peak / MIB,
        end / MIB,
        seen.join("\n")
    );
    assert!(
        peak <= start + PEAK_ABOVE_START,
        "{backend}: peak {} MiB, start {} MiB",
        peak / MIB,
        start / MIB
    );
    assert!(
        end <= start + FINAL_ABOVE_START,
        "{backend}: end {} MiB, start {} MiB",
        end / MIB,
        start / MIB
    );
}

/// The example application's text model through the Open Inference
/// Protocol, with the request: refused before it runs.
#[test]
fn the_open_inference_protocol_refuses_inputs_past_a_models_bounds() {
    let server = Server::start(&[]);
    let pid = server.pid();
    let start = settled_rss(pid);
    let (batch, seq) = (512usize, 256usize);
    let inputs: Vec<serde_json::Value> = ["input_ids", "attention_mask", "token_type_ids"]
        .iter()
        .map(|name| {
            json!({"name": name, "datatype": "INT64", "shape": [batch, seq],
                   "parameters": {"binary_data_size": batch * seq * 8}})
        })
        .collect();
    let header = json!({ "inputs": inputs }).to_string();
    let mut body = header.clone().into_bytes();
    body.resize(header.len() + 3 * batch * seq * 8, 0);
    let length = header.len().to_string();
    let started = Instant::now();
    let reply = server.send(
        "POST",
        "/v2/models/all-minilm-l6-v2/infer",
        &[
            ("content-type", "application/octet-stream"),
            ("inference-header-content-length", &length),
        ],
        &body,
    );
    let took = started.elapsed();
    let message = reply.assert_error(413);
    assert!(
        message.contains("dimension 0 may be at most 64") && message.contains("max_batch"),
        "{message}"
    );
    // Refused before it ran: no gigabytes, no seconds of CPU.
    let end = settled_rss(pid);
    eprintln!(
        "OIP [512, 256] x 3: {} in {:.3} s; memory {} -> {} MiB",
        reply.status,
        took.as_secs_f64(),
        start / MIB,
        end / MIB
    );
    assert!(
        // Refused before it ran: at most the body's buffer (3 MiB) and the
        // allocator's slack, far below the gigabytes of a run.
        end <= start + 100 * MIB,
        "{} -> {} MiB",
        start / MIB,
        end / MIB
    );
}

/// The slow application on `backend`, with a deadline of `timeout`.
fn slow_server(backend: &str, timeout: &str) -> Server {
    build_test_components();
    let manifest = root().join("tests/fixtures/slow.toml");
    let models = slow_models();
    Server::start(&[
        "--manifest",
        manifest.to_str().unwrap(),
        "--models",
        models.to_str().unwrap(),
        "--backend",
        backend,
        "--request-timeout",
        timeout,
    ])
}

/// What the slow model's run costs while no one stops it: most of a core.
/// Below this share, the inference has stopped: the server idles at a few
/// percent (the epoch ticker, the pool's zeroing), far below a running
/// matrix product.
const STOPPED_CPU_SHARE: f64 = 0.25;

#[test]
fn a_deadline_during_inference_answers_504_and_stops_it_on_every_backend() {
    for backend in ["onnxruntime", "openvino", "tract"] {
        let server = slow_server(backend, "2s");
        let pid = server.pid();
        // Round 0 may also pay for tract's plan of this shape, an
        // optimisation that cannot be stopped (and serves later requests);
        // round 1 is the inference alone.
        for round in 0..2 {
            let started = Instant::now();
            // n = 2048: 256 products of 17 GFLOP each, 4.4 TFLOP in all,
            // many seconds even for a machine of many AVX-512 cores (at
            // n = 1024, 0.5 TFLOP, one CI machine finished within the 2 s);
            // each product is still short enough (tenths of a second) for
            // the backends to stop between two of them within the slack.
            let reply = server.post("/attack/nn-slow?n=2048", b"");
            let took = started.elapsed();
            let message = reply.assert_error(504);
            assert!(message.contains("did not answer within 2s"), "{message}");
            // The answer comes at the deadline, not when the inference ends
            // (seconds later, uncancelled): 1.5 s of slack past the 2 s
            // deadline for the instance's teardown on a loaded machine.
            assert!(
                took < Duration::from_millis(3500),
                "{backend}: answered after {took:?}"
            );
            // The product running when the deadline came may finish first
            // (tenths of a second, more on a loaded machine); the rest of
            // the chain (seconds to minutes) must not run.
            std::thread::sleep(Duration::from_millis(1500));
            let share = cpu_share(pid, Duration::from_secs(1));
            eprintln!(
                "{backend}, round {round}: 504 after {:.2} s; then {:.0}% of a core",
                took.as_secs_f64(),
                share * 100.0
            );
            if round == 1 {
                assert!(
                    share < STOPPED_CPU_SHARE,
                    "{backend}: the inference kept running ({:.0}% of a core)",
                    share * 100.0
                );
            }
        }
        // The model and the server are fine.
        assert_eq!(server.post("/attack/ok", b"").status, 200);
        let reply = server.post("/attack/nn-slow?n=8", b"");
        assert_eq!(reply.status, 200, "{backend}: {}", reply.text);
        let log = server.log();
        assert!(!log.contains("panicked at"), "{log}");
    }
}

#[test]
fn a_client_that_goes_away_stops_its_inference() {
    let server = slow_server("onnxruntime", "60s");
    let pid = server.pid();
    let mut stream = TcpStream::connect(server.address()).unwrap();
    write!(
        stream,
        "POST /attack/nn-slow?n=1024 HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n"
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let running = cpu_share(pid, Duration::from_millis(500));
    drop(stream);
    std::thread::sleep(Duration::from_millis(500));
    let after = cpu_share(pid, Duration::from_secs(1));
    eprintln!(
        "slow inference: {:.0}% of a core while its client waits, {:.0}% after it left",
        running * 100.0,
        after * 100.0
    );
    // A matrix product keeps at least one core busy (ONNX Runtime runs it on
    // every core when the model is otherwise idle): what is stopped ran.
    assert!(running > 0.5, "the slow model was not running: {running}");
    assert!(after < STOPPED_CPU_SHARE, "it kept running: {after}");
    // The log has the request, answered to no one.
    let started = Instant::now();
    while !server.log().contains("status=499") {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(server.post("/attack/ok", b"").status, 200);
}
