//! `wasi-infer-bench`: wasi-infer against the alternatives, on one machine, in
//! one run. Each contender is started on loopback and driven by a closed-loop
//! load generator at each concurrency, for each model and photo; the tables
//! give requests/s and p50/p99 latency, with ratios taken within the run.
//!
//! Run everything, set-up included, with `bench/run.sh` (see docs/benchmarks.md).

mod contenders;
mod report;
mod workload;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;

use contenders::{Contender, Paths, Server};
use report::{Cell, ColdStart, Memory, Results};
use wasi_infer_bench::load;
use wasi_infer_bench::proc;
use workload::{Request, Workload};

#[derive(Parser)]
#[command(about = "Benchmark wasi-infer against a native baseline, wasmtime serve and Python")]
struct Args {
    /// Contenders, comma-separated [default: all that serve the workload]:
    /// wasi-infer:onnxruntime, wasi-infer:openvino, wasi-infer:tract, native,
    /// wasmtime-serve, python:single, python:workers, python:reuseport
    /// (classify); wasi-infer:*, kserve (oip); edge:wasi-nn,
    /// edge:wasi-nn-preinit, edge:self-contained, edge:wasmtime,
    /// edge:wasmtime-raw (classify, embed; see docs/edge.md).
    #[arg(long, value_delimiter = ',')]
    contenders: Vec<String>,
    /// What each request asks.
    #[arg(long, value_enum, default_value = "classify")]
    workload: Workload,
    /// Models to classify with.
    #[arg(long, value_delimiter = ',', default_values = ["efficientnet-lite0", "efficientnet-lite0-int8"])]
    models: Vec<String>,
    /// Photos to classify (their extension gives the content type), or, to
    /// embed, text files (e.g. bench/texts/sentence.txt).
    #[arg(long, value_delimiter = ',', default_values = ["tests/data/images/grace_hopper.jpg", "tests/data/images/chelsea.png"])]
    images: Vec<PathBuf>,
    /// Concurrent connections.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 4, 16, 64])]
    concurrency: Vec<usize>,
    /// Seconds measured per cell.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of load before measuring each cell.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Measure each cell this many times and report the medians.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Cold starts to time per contender (0: skip).
    #[arg(long, default_value_t = 5)]
    cold_starts: usize,
    /// The contender ratios are taken against.
    #[arg(long, default_value = "wasi-infer:onnxruntime")]
    baseline: String,
    /// Where to write the report (results.md) and the servers' logs.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = std::env::current_dir()?;
    if !root.join("bench/spin.toml").is_file() {
        bail!("run the benchmark from the repository's root (bench/run.sh does)");
    }
    let paths = Paths { root };
    let contenders: Vec<Contender> = if args.contenders.is_empty() {
        Contender::all()
            .into_iter()
            .filter(|c| c.serves(args.workload))
            .collect()
    } else {
        args.contenders
            .iter()
            .map(|name| Contender::parse(name))
            .collect::<anyhow::Result<_>>()?
    };
    for contender in &contenders {
        if !contender.serves(args.workload) {
            bail!(
                "{} does not serve the {:?} workload",
                contender.name(),
                args.workload
            );
        }
        contender.check_installed(&paths)?;
    }
    let logs = args.out.join("logs");
    std::fs::create_dir_all(&logs)?;
    let models: Vec<&str> = args.models.iter().map(String::as_str).collect();
    // Every request, made once: (model, photo, request).
    let mut requests: Vec<(&str, &PathBuf, Request)> = Vec::new();
    for model in &models {
        for path in &args.images {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let request = Request::new(args.workload, &paths.models(), model, path, &bytes)?;
            requests.push((model, path, request));
        }
    }
    let probe_request = requests
        .first()
        .context("no --models or no --images")?
        .2
        .clone();
    let probe = move |addr| probe_request.target(addr);

    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut results = Results::new(
        args.workload,
        &args.baseline,
        cpus,
        args.duration,
        args.repeat,
    );
    let warmup = Duration::from_secs_f64(args.warmup);
    let duration = Duration::from_secs_f64(args.duration);
    let cache_dir = std::path::absolute(args.out.join("component-cache"))?;

    // Every contender serves at once and the cells take turns, contender after
    // contender: on a shared machine speed drifts over minutes, and measuring
    // one contender long after another would compare the drift.
    let start = |contender: &Contender, extra: &[String]| {
        Server::start(
            contender,
            extra,
            &paths,
            &models,
            args.workload,
            &probe,
            &logs,
        )
    };
    let mut servers = Vec::new();
    for contender in &contenders {
        let extra = match contender.is_wasi_infer() {
            true => cache_args(&cache_dir),
            false => Vec::new(),
        };
        let (server, started_in) = start(contender, &extra)?;
        eprintln!(
            "{}: serving after {:.0} ms",
            server.name,
            started_in.as_secs_f64() * 1e3
        );
        // A few requests first, so "idle" is a server that has served.
        for _ in 0..3 {
            load::run(
                &probe(server.addr),
                1,
                Duration::ZERO,
                Duration::from_millis(100),
            );
        }
        let idle = server.rss_bytes();
        servers.push((
            server,
            Memory {
                contender: contender.name(),
                idle,
                peak: idle,
            },
        ));
    }
    let highest = args.concurrency.iter().copied().max().unwrap_or(0);
    for (model, image, request) in &requests {
        for &concurrency in &args.concurrency {
            let mut runs: Vec<Vec<load::Outcome>> = vec![Vec::new(); servers.len()];
            for _ in 0..args.repeat {
                for ((server, memory), runs) in servers.iter_mut().zip(&mut runs) {
                    let target = request.target(server.addr);
                    let (outcome, peak) =
                        with_peak_rss(server, || load::run(&target, concurrency, warmup, duration));
                    if concurrency == highest {
                        memory.peak = memory.peak.max(peak);
                    }
                    runs.push(outcome);
                }
            }
            for ((server, _), runs) in servers.iter().zip(runs) {
                let cell = Cell::from_runs(&server.name, model, image, concurrency, runs);
                eprintln!("{}: {}", server.name, cell.summary());
                results.cells.push(cell);
            }
        }
    }
    for (server, memory) in servers {
        results.memory.push(memory);
        drop(server);
    }

    if args.cold_starts > 0 {
        eprintln!("== cold starts: process start to the first 200");
        for contender in &contenders {
            for (variant, extra) in cold_start_variants(contender, &cache_dir) {
                let mut times = Vec::new();
                // The first start fills the cache (and the page cache) when there is one.
                for i in 0..=args.cold_starts {
                    let (server, ready) = start(contender, &extra)?;
                    drop(server);
                    if i > 0 {
                        times.push(ready);
                    }
                }
                let cold = ColdStart::new(&contender.name(), variant, times);
                eprintln!("{}", cold.summary());
                results.cold_starts.push(cold);
            }
        }
    }

    let report = results.markdown();
    println!("{report}");
    let file = args.out.join("results.md");
    std::fs::write(&file, &report)?;
    eprintln!("written to {}", file.display());
    Ok(())
}

/// Runs `f` while sampling the server's resident memory; returns the peak.
fn with_peak_rss<T>(server: &Server, f: impl FnOnce() -> T) -> (T, u64) {
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let pid = server.pid();
    let sampler = {
        let (done, peak) = (done.clone(), peak.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(proc::tree_rss_bytes(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let value = f();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    (value, peak.load(Ordering::Relaxed))
}

/// wasi-infer is timed with its compiled-component cache and without it.
fn cold_start_variants(
    contender: &Contender,
    cache_dir: &Path,
) -> Vec<(&'static str, Vec<String>)> {
    match contender {
        Contender::WasiInfer { .. } => vec![
            ("compile cache", cache_args(cache_dir)),
            ("no cache", vec!["--no-cache".to_string()]),
        ],
        // A bundle carries its compiled code.
        Contender::Edge { variant } if variant == "self-contained" => {
            vec![("bundle, precompiled", vec!["--no-cache".to_string()])]
        }
        Contender::Edge { variant } if !variant.starts_with("wasmtime") => {
            vec![("compile cache", cache_args(cache_dir))]
        }
        _ => vec![("", Vec::new())],
    }
}

fn cache_args(cache_dir: &Path) -> Vec<String> {
    vec!["--cache-dir".to_string(), cache_dir.display().to_string()]
}
