//! The results of a run and the markdown report: throughput and latency per
//! cell, ratios against the baseline contender, the targets, where a
//! request's time goes, memory and cold starts.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use wasi_infer_bench::load::Outcome;

use crate::workload::Workload;

/// The stages `Server-Timing` reports, in request order: the host's
/// `instantiate`, then the function's own.
const STAGES: [&str; 7] = [
    "instantiate",
    "metadata",
    "decode",
    "preprocess",
    "inference",
    "labels",
    "postprocess",
];

/// One contender, model, photo and concurrency: medians over the repeats.
pub struct Cell {
    pub contender: String,
    pub model: String,
    pub image: String,
    pub concurrency: usize,
    pub throughput: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub mean: Duration,
    pub failed: u64,
    pub first_failure: Option<String>,
    /// Mean of each `Server-Timing` entry over all runs (milliseconds).
    pub timings: BTreeMap<String, f64>,
}

impl Cell {
    pub fn from_runs(
        contender: &str,
        model: &str,
        image: &Path,
        concurrency: usize,
        runs: Vec<Outcome>,
    ) -> Cell {
        let median_f64 = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(0.0)
        };
        let median_of = |p: f64| {
            let v = runs
                .iter()
                .filter_map(|r| r.percentile(p))
                .map(|d| d.as_secs_f64())
                .collect();
            Duration::from_secs_f64(median_f64(v))
        };
        let mean = {
            let v = runs
                .iter()
                .filter(|r| !r.latencies.is_empty())
                .map(|r| {
                    r.latencies.iter().sum::<Duration>().as_secs_f64() / r.latencies.len() as f64
                })
                .collect();
            Duration::from_secs_f64(median_f64(v))
        };
        let mut sums: BTreeMap<String, (f64, u64)> = BTreeMap::new();
        for run in &runs {
            for (name, (sum, n)) in &run.server_timing {
                let entry = sums.entry(name.clone()).or_default();
                entry.0 += sum;
                entry.1 += n;
            }
        }
        Cell {
            contender: contender.to_string(),
            model: model.to_string(),
            image: image_name(image),
            concurrency,
            throughput: median_f64(runs.iter().map(Outcome::throughput).collect()),
            p50: median_of(50.0),
            p99: median_of(99.0),
            mean,
            failed: runs.iter().map(|r| r.failed).sum(),
            first_failure: runs.iter().find_map(|r| r.first_failure.clone()),
            timings: sums
                .into_iter()
                .map(|(k, (sum, n))| (k, sum / n as f64))
                .collect(),
        }
    }

    pub fn summary(&self) -> String {
        let mut line = format!(
            "{} {} c={}: {:.1} req/s, p50 {} ms, p99 {} ms",
            self.model,
            self.image,
            self.concurrency,
            self.throughput,
            ms(self.p50),
            ms(self.p99)
        );
        if self.failed > 0 {
            let _ = write!(
                line,
                ", {} FAILED (first: {})",
                self.failed,
                self.first_failure.as_deref().unwrap_or("?")
            );
        }
        line
    }
}

pub struct Memory {
    pub contender: String,
    pub idle: u64,
    pub peak: u64,
}

pub struct ColdStart {
    pub contender: String,
    pub variant: &'static str,
    pub times: Vec<Duration>,
}

impl ColdStart {
    pub fn new(contender: &str, variant: &'static str, mut times: Vec<Duration>) -> Self {
        times.sort();
        Self {
            contender: contender.to_string(),
            variant,
            times,
        }
    }

    fn median(&self) -> Duration {
        self.times
            .get(self.times.len() / 2)
            .copied()
            .unwrap_or_default()
    }

    pub fn summary(&self) -> String {
        format!(
            "{} {}: median {} ms over {} starts",
            self.contender,
            self.variant,
            ms(self.median()),
            self.times.len()
        )
    }
}

pub struct Results {
    workload: Workload,
    baseline: String,
    cpus: usize,
    duration: f64,
    repeat: usize,
    pub cells: Vec<Cell>,
    pub memory: Vec<Memory>,
    pub cold_starts: Vec<ColdStart>,
}

impl Results {
    pub fn new(
        workload: Workload,
        baseline: &str,
        cpus: usize,
        duration: f64,
        repeat: usize,
    ) -> Self {
        Self {
            workload,
            baseline: baseline.to_string(),
            cpus,
            duration,
            repeat,
            cells: Vec::new(),
            memory: Vec::new(),
            cold_starts: Vec::new(),
        }
    }

    fn cell(&self, contender: &str, model: &str, image: &str, c: usize) -> Option<&Cell> {
        self.cells.iter().find(|x| {
            x.contender == contender && x.model == model && x.image == image && x.concurrency == c
        })
    }

    fn ordered<T: Clone + PartialEq>(&self, key: impl Fn(&Cell) -> T) -> Vec<T> {
        let mut seen = Vec::new();
        for cell in &self.cells {
            let k = key(cell);
            if !seen.contains(&k) {
                seen.push(k);
            }
        }
        seen
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let contenders = self.ordered(|c| c.contender.clone());
        let pairs = self.ordered(|c| (c.model.clone(), c.image.clone()));
        let levels = self.ordered(|c| c.concurrency);
        let asked = match self.workload {
            Workload::Classify => "each request a photo to classify",
            Workload::Embed => "each request a text to embed",
            Workload::Oip => {
                "each request the photo's input tensor by the Open Inference Protocol (binary data, logits answered as JSON)"
            }
        };
        let _ = writeln!(
            out,
            "{} CPUs; {asked}; {} s measured per cell after a warm-up, the contenders taking turns{}; requests/s, then p50 / p99 latency in ms.\n",
            self.cpus,
            self.duration,
            if self.repeat > 1 {
                format!(", medians of {} runs", self.repeat)
            } else {
                String::new()
            }
        );

        for (model, image) in &pairs {
            let _ = writeln!(out, "### {model}, {image}\n");
            let header: Vec<String> = levels.iter().map(|c| format!("c={c}")).collect();
            let _ = writeln!(
                out,
                "| contender | {} | req/s vs {} at {} |",
                header.join(" | "),
                self.baseline,
                header.join(", ")
            );
            let _ = writeln!(out, "|---|{}---|", "---|".repeat(levels.len()));
            for contender in &contenders {
                let mut row = Vec::new();
                let mut ratios = Vec::new();
                for &c in &levels {
                    let Some(cell) = self.cell(contender, model, image, c) else {
                        row.push("–".to_string());
                        ratios.push("–".to_string());
                        continue;
                    };
                    let failed = if cell.failed > 0 {
                        format!(" ({} failed)", cell.failed)
                    } else {
                        String::new()
                    };
                    row.push(format!(
                        "{:.1} · {} / {}{failed}",
                        cell.throughput,
                        ms(cell.p50),
                        ms(cell.p99)
                    ));
                    ratios.push(match self.cell(&self.baseline, model, image, c) {
                        Some(base) if cell.throughput > 0.0 => {
                            format!("{:.2}x", cell.throughput / base.throughput)
                        }
                        _ => "–".to_string(),
                    });
                }
                let _ = writeln!(
                    out,
                    "| {contender} | {} | {} |",
                    row.join(" | "),
                    ratios.join(", ")
                );
            }
            out.push('\n');
        }

        self.targets(&mut out, &pairs);
        self.time_split(&mut out, &contenders, &pairs);
        self.memory_and_starts(&mut out);
        out
    }

    /// The targets, for our baseline contender, per model and photo.
    fn targets(&self, out: &mut String, pairs: &[(String, String)]) {
        if self.workload == Workload::Oip {
            return self.kserve_targets(out, pairs);
        }
        let ours = &self.baseline;
        let _ = writeln!(out, "### Targets ({ours})\n");
        let _ = writeln!(
            out,
            "| model, photo | p50 c=1 vs native (≤ 1.15x) | req/s c=16 vs native (≥ 0.9x) | req/s c=16 vs wasmtime serve (≥ 10x) | req/s c=16 vs best Python (≥ 1.2x) | p50 c=1 vs best Python (< 1x) |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for (model, image) in pairs {
            let get = |who: &str, c| self.cell(who, model, image, c);
            let best_python = |c: usize, better: &dyn Fn(&Cell, &Cell) -> bool| {
                self.cells
                    .iter()
                    .filter(|x| {
                        x.contender.starts_with("python:")
                            && &x.model == model
                            && &x.image == image
                            && x.concurrency == c
                    })
                    .fold(None::<&Cell>, |best, x| match best {
                        Some(b) if !better(x, b) => Some(b),
                        _ => Some(x),
                    })
            };
            let p50_ratio = |other: Option<&Cell>, limit: f64, below: bool| {
                ratio(
                    get(ours, 1).map(|c| c.p50.as_secs_f64()),
                    other.map(|c| c.p50.as_secs_f64()),
                    limit,
                    below,
                )
            };
            let thr_ratio = |other: Option<&Cell>, limit: f64| {
                ratio(
                    get(ours, 16).map(|c| c.throughput),
                    other.map(|c| c.throughput),
                    limit,
                    false,
                )
            };
            let fastest = best_python(16, &|a, b| a.throughput > b.throughput);
            let quickest = best_python(1, &|a, b| a.p50 < b.p50);
            let _ = writeln!(
                out,
                "| {model}, {image} | {} | {} | {} | {} | {} |",
                p50_ratio(get("native", 1), 1.15, true),
                thr_ratio(get("native", 16), 0.9),
                thr_ratio(get("wasmtime-serve", 16), 10.0),
                with_who(thr_ratio(fastest, 1.2), fastest),
                with_who(p50_ratio(quickest, 1.0, true), quickest),
            );
        }
        out.push('\n');
    }

    /// The Open Inference Protocol's targets against KServe's own server:
    /// at least 1.2x its requests/s at c=16, a lower p50 at c=1.
    fn kserve_targets(&self, out: &mut String, pairs: &[(String, String)]) {
        let ours = &self.baseline;
        let _ = writeln!(out, "### Targets ({ours} against kserve)\n");
        let _ = writeln!(
            out,
            "| model, tensor from | req/s c=16 vs kserve (≥ 1.2x) | p50 c=1 vs kserve (< 1x) |"
        );
        let _ = writeln!(out, "|---|---|---|");
        for (model, image) in pairs {
            let get = |who: &str, c| self.cell(who, model, image, c);
            let throughput = ratio(
                get(ours, 16).map(|c| c.throughput),
                get("kserve", 16).map(|c| c.throughput),
                1.2,
                false,
            );
            let p50 = ratio(
                get(ours, 1).map(|c| c.p50.as_secs_f64()),
                get("kserve", 1).map(|c| c.p50.as_secs_f64()),
                1.0,
                true,
            );
            let _ = writeln!(out, "| {model}, {image} | {throughput} | {p50} |");
        }
        out.push('\n');
    }

    /// Where a request's time goes at c=1, from `Server-Timing`: the host's
    /// instantiation, the function's stages, and the rest (HTTP, the wasm glue
    /// around the handler, the load generator).
    fn time_split(&self, out: &mut String, contenders: &[String], pairs: &[(String, String)]) {
        let with_timings: Vec<&String> = contenders
            .iter()
            .filter(|c| {
                self.cells
                    .iter()
                    .any(|x| &x.contender == *c && x.timings.contains_key("decode"))
            })
            .collect();
        if with_timings.is_empty() {
            return;
        }
        let _ = writeln!(out, "### Time split at c=1 (mean ms per request)\n");
        let _ = writeln!(
            out,
            "| contender, model, photo | latency | {} | rest: HTTP, wasm glue |",
            STAGES.join(" | ")
        );
        let _ = writeln!(out, "|---|---|{}---|", "---|".repeat(STAGES.len()));
        for contender in with_timings {
            for (model, image) in pairs {
                let Some(cell) = self.cell(contender, model, image, 1) else {
                    continue;
                };
                let latency = cell.mean.as_secs_f64() * 1e3;
                let stages: Vec<f64> = STAGES
                    .iter()
                    .map(|s| cell.timings.get(*s).copied().unwrap_or(0.0))
                    .collect();
                let rest = latency - stages.iter().sum::<f64>();
                let cols: Vec<String> = stages.iter().map(|v| format!("{v:.2}")).collect();
                let _ = writeln!(
                    out,
                    "| {contender}, {model}, {image} | {latency:.2} | {} | {rest:.2} |",
                    cols.join(" | ")
                );
            }
        }
        out.push('\n');
    }

    fn memory_and_starts(&self, out: &mut String) {
        if !self.memory.is_empty() {
            let _ = writeln!(out, "### Memory (resident, all processes of the server)\n");
            let _ = writeln!(
                out,
                "| contender | idle | peak at the highest concurrency |"
            );
            let _ = writeln!(out, "|---|---|---|");
            for m in &self.memory {
                let _ = writeln!(
                    out,
                    "| {} | {} MiB | {} MiB |",
                    m.contender,
                    mib(m.idle),
                    mib(m.peak)
                );
            }
            out.push('\n');
        }
        if !self.cold_starts.is_empty() {
            let answer = match self.workload {
                Workload::Classify => "classification",
                Workload::Embed => "embedding",
                Workload::Oip => "inference",
            };
            let _ = writeln!(
                out,
                "### Cold start: process start to the first {answer} answered\n"
            );
            let _ = writeln!(out, "| contender | median | fastest | slowest | starts |");
            let _ = writeln!(out, "|---|---|---|---|---|");
            for s in &self.cold_starts {
                let name = if s.variant.is_empty() {
                    s.contender.clone()
                } else {
                    format!("{}, {}", s.contender, s.variant)
                };
                let (first, last) = (
                    s.times.first().copied().unwrap_or_default(),
                    s.times.last().copied().unwrap_or_default(),
                );
                let _ = writeln!(
                    out,
                    "| {name} | {} ms | {} ms | {} ms | {} |",
                    ms(s.median()),
                    ms(first),
                    ms(last),
                    s.times.len()
                );
            }
            out.push('\n');
        }
    }
}

/// `ours / other`, marked met or not: `below` means the ratio must stay under `limit`.
fn ratio(ours: Option<f64>, other: Option<f64>, limit: f64, below: bool) -> String {
    match (ours, other) {
        (Some(a), Some(b)) if b > 0.0 => {
            let r = a / b;
            let met = if below { r <= limit } else { r >= limit };
            format!("{r:.2}x {}", if met { "met" } else { "**not met**" })
        }
        _ => "–".to_string(),
    }
}

fn with_who(text: String, cell: Option<&Cell>) -> String {
    match cell {
        Some(c) if text != "–" => format!("{text} ({})", c.contender),
        _ => text,
    }
}

fn image_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || PathBuf::from(path).display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.1}")
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.0}", bytes as f64 / (1024.0 * 1024.0))
}
