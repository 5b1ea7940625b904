//! `soak`: a bounded soak test of the server, on loopback. It starts
//! `wasi-infer serve` with the attack-test application
//! (`tests/fixtures/hostile.toml`), then keeps `--concurrency` connections
//! busy for `--duration` with a mix of good classification requests and bad
//! ones (empty, random, truncated and decompression-bomb images, wrong
//! methods, content types and models, oversized bodies). It reports the
//! requests served, the answers by kind and status, and the server's memory at
//! start and end; it fails when an answer is not the one expected for its kind
//! or memory grew past `--max-growth`.
//!
//! ```text
//! cargo build --release && cargo run --release -p wasi-infer-bench --bin soak -- --duration 3m
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use wasi_infer_bench::load::{Connection, Target};
use wasi_infer_bench::proc;

#[derive(Parser)]
#[command(about = "A bounded soak test of wasi-infer: good and bad requests at high concurrency")]
struct Args {
    /// How long to keep the load on (after the warm-up), in seconds.
    #[arg(long, default_value_t = 180)]
    duration: u64,
    /// Load before the starting memory is taken, in seconds.
    #[arg(long, default_value_t = 15)]
    warmup: u64,
    /// Connections kept busy at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// The server binary.
    #[arg(long, default_value = "target/release/wasi-infer")]
    server: PathBuf,
    /// Fail when the server's resident memory grew by more than this many
    /// MiB between the end of the warm-up and the end.
    #[arg(long, default_value_t = 64)]
    max_growth: u64,
}

/// One kind of request, and the only status it may get.
struct Kind {
    name: &'static str,
    target: Target,
    expect: u16,
    /// A body the server refuses unread: the connection may not be reusable.
    fresh_connection: bool,
}

/// The request mix: one of each, in turn; good requests make half of it.
fn kinds(root: &Path, addr: SocketAddr) -> anyhow::Result<Vec<Kind>> {
    let read = |name: &str| {
        let path = root.join("tests/data/images").join(name);
        std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
    };
    let coffee = read("coffee.png")?;
    let hopper = read("grace_hopper.jpg")?;
    let classify = "/classify/efficientnet-lite0-int8";
    let post =
        |path: &str, content_type: &str, body: &[u8]| Target::post(addr, path, content_type, body);
    let kind = |name, target, expect| Kind {
        name,
        target,
        expect,
        fresh_connection: false,
    };
    let random: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut mix = Vec::new();
    for _ in 0..5 {
        mix.push(kind("good png", post(classify, "image/png", &coffee), 200));
        mix.push(kind(
            "good jpeg",
            post(classify, "image/jpeg", &hopper),
            200,
        ));
    }
    mix.extend([
        kind("empty body", post(classify, "image/png", b""), 400),
        kind("random bytes", post(classify, "image/png", &random), 400),
        kind(
            "truncated png",
            post(
                classify,
                "image/png",
                &read("hostile/chelsea-truncated.png")?,
            ),
            400,
        ),
        kind(
            "png bomb",
            post(
                classify,
                "image/png",
                &read("hostile/bomb-30000x30000.png")?,
            ),
            413,
        ),
        kind(
            "wrong content type",
            post(classify, "application/json", b"{\"image\": 1}"),
            415,
        ),
        kind(
            "unknown model",
            post("/classify/no-such-model", "image/png", &coffee),
            404,
        ),
        kind(
            "wrong method",
            Target::new(addr, "PUT", classify, "image/png", &coffee),
            405,
        ),
        kind("no route", post("/nowhere", "image/png", &coffee), 404),
        Kind {
            name: "oversized body",
            target: post(classify, "image/png", &vec![0; 2 << 20]),
            expect: 413,
            fresh_connection: true,
        },
    ]);
    Ok(mix)
}

/// Answers by kind and status, and failures to get one.
#[derive(Default)]
struct Tally {
    answers: BTreeMap<(&'static str, u16), u64>,
    transport_errors: BTreeMap<String, u64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = std::env::current_dir()?;
    let manifest = root.join("tests/fixtures/hostile.toml");
    let mut child = Command::new(&args.server)
        .args(["serve", "--listen", "127.0.0.1:0", "--manifest"])
        .arg(&manifest)
        .arg("--models")
        .arg(root.join("models"))
        .args(["--max-body-size", "1M", "--request-timeout", "10s"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", args.server.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let addr: SocketAddr = loop {
        let Some(line) = lines.next() else {
            bail!("the server exited before listening");
        };
        if let Some(url) = line?.strip_prefix("listening on http://") {
            break url.trim().parse()?;
        }
    };
    let pid = child.id();
    let idle_rss = proc::tree_rss_bytes(pid);

    let mix = Arc::new(kinds(&root, addr)?);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..args.concurrency)
        .map(|worker| {
            let (mix, tally, counting, stop) =
                (mix.clone(), tally.clone(), counting.clone(), stop.clone());
            std::thread::spawn(move || drive(worker, &mix, &tally, &counting, &stop))
        })
        .collect();

    std::thread::sleep(Duration::from_secs(args.warmup));
    let start_rss = proc::tree_rss_bytes(pid);
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let mut peak_rss = start_rss;
    let mut timeline = vec![start_rss];
    while started.elapsed() < Duration::from_secs(args.duration) {
        std::thread::sleep(Duration::from_millis(500));
        let rss = proc::tree_rss_bytes(pid);
        peak_rss = peak_rss.max(rss);
        if started.elapsed() >= Duration::from_secs(30 * timeline.len() as u64) {
            timeline.push(rss);
        }
    }
    let end_rss = proc::tree_rss_bytes(pid);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.join();
    }
    let still_running = matches!(child.try_wait(), Ok(None));
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let exit = child.wait()?;

    let tally = tally
        .lock()
        .map_err(|_| anyhow::anyhow!("a worker panicked"))?;
    report(
        &args,
        &mix,
        &tally,
        elapsed,
        [idle_rss, start_rss, peak_rss, end_rss],
    );
    let timeline: Vec<String> = timeline
        .iter()
        .map(|b| format!("{:.0}", *b as f64 / (1 << 20) as f64))
        .collect();
    println!("server RSS every 30 s, MiB: {}", timeline.join(", "));
    println!("server exit after SIGTERM: {exit}");

    let unexpected: u64 = tally
        .answers
        .iter()
        .filter(|((name, status), _)| mix.iter().any(|k| k.name == *name && k.expect != *status))
        .map(|(_, n)| n)
        .sum();
    let growth = end_rss.saturating_sub(start_rss) >> 20;
    if !still_running {
        bail!("the server died during the soak");
    }
    if unexpected > 0 {
        bail!("{unexpected} answers were not the expected ones");
    }
    if !tally.transport_errors.is_empty() {
        bail!("some requests got no answer");
    }
    if growth > args.max_growth {
        bail!(
            "the server's memory grew by {growth} MiB, more than {} MiB",
            args.max_growth
        );
    }
    if !exit.success() {
        bail!("the server did not exit cleanly on SIGTERM");
    }
    Ok(())
}

/// One connection's loop: the mix, in turn, from an offset of its own.
fn drive(
    worker: usize,
    mix: &[Kind],
    tally: &Mutex<Tally>,
    counting: &AtomicBool,
    stop: &AtomicBool,
) {
    let mut connection: Option<Connection> = None;
    let mut i = worker;
    while !stop.load(Ordering::Relaxed) {
        let kind = &mix[i % mix.len()];
        i += 1;
        if kind.fresh_connection {
            connection = None;
        }
        let conn = match connection.as_mut() {
            Some(conn) => conn,
            None => match Connection::open(kind.target.addr) {
                Ok(conn) => connection.insert(conn),
                Err(e) => {
                    record_error(tally, counting, format!("connect: {e}"));
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            },
        };
        match conn.send(&kind.target) {
            Ok(reply) => {
                if counting.load(Ordering::Relaxed)
                    && let Ok(mut tally) = tally.lock()
                {
                    *tally.answers.entry((kind.name, reply.status)).or_default() += 1;
                }
                if kind.fresh_connection {
                    connection = None;
                }
            }
            Err(e) => {
                connection = None;
                // A refused oversized body may reset the connection before
                // its answer is read; the server is fine.
                if !kind.fresh_connection {
                    record_error(tally, counting, format!("{}: {e}", kind.name));
                }
            }
        }
    }
}

fn record_error(tally: &Mutex<Tally>, counting: &AtomicBool, error: String) {
    if counting.load(Ordering::Relaxed)
        && let Ok(mut tally) = tally.lock()
    {
        *tally.transport_errors.entry(error).or_default() += 1;
    }
}

fn report(args: &Args, mix: &[Kind], tally: &Tally, elapsed: Duration, rss: [u64; 4]) {
    let total: u64 = tally.answers.values().sum();
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "soak: {} connections for {:.0} s: {total} answers, {:.1} per second",
        args.concurrency,
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    println!("\n| kind | expected | answers | statuses |\n|---|---|---|---|");
    let mut names: Vec<&str> = Vec::new();
    for kind in mix {
        if !names.contains(&kind.name) {
            names.push(kind.name);
        }
    }
    for name in names {
        let expect = mix.iter().find(|k| k.name == name).map_or(0, |k| k.expect);
        let statuses: Vec<String> = tally
            .answers
            .iter()
            .filter(|((n, _), _)| *n == name)
            .map(|((_, status), count)| format!("{status}: {count}"))
            .collect();
        let count: u64 = tally
            .answers
            .iter()
            .filter(|((n, _), _)| *n == name)
            .map(|(_, c)| c)
            .sum();
        println!("| {name} | {expect} | {count} | {} |", statuses.join(", "));
    }
    if !tally.transport_errors.is_empty() {
        println!("\nno answer:");
        for (error, count) in &tally.transport_errors {
            println!("  {count} x {error}");
        }
    }
    let [idle, start, peak, end] = rss;
    println!(
        "\nserver RSS: idle {:.0} MiB, after the warm-up {:.0} MiB, peak {:.0} MiB, end {:.0} MiB (growth {:+.1} MiB)",
        mib(idle),
        mib(start),
        mib(peak),
        mib(end),
        mib(end) - mib(start)
    );
}
