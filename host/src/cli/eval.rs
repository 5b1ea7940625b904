//! `wasi-infer eval`: evaluates a deployed image classifier over HTTP on a
//! labelled dataset, and reports accuracy, per-class scores, the confusion
//! matrix, latency and throughput (the work is `wasi_infer::eval`'s).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use wasi_infer::eval::report::{card, html, json, png, table};
use wasi_infer::eval::{self, Notes, Progress, Protocol};

use super::units;

const AFTER_HELP: &str = "\
Datasets (the form is found from PATH):
  IDX          a folder with *images-idx3-ubyte[.gz] and *labels-idx1-ubyte[.gz]
               (as MNIST and Fashion-MNIST ship), or the images file itself;
               each image is sent as a grayscale PNG (classify) or its tensor (oip)
  ImageFolder  a folder of CLASS/IMAGE files (JPEG, PNG, WebP, GIF, BMP), CLASS being
               a class index or its label text
  CSV          a file of path,label lines, paths relative to the CSV's folder, label
               an index or label text; a first line naming the columns is a header
               (path,label)

Protocols:
  classify     POST the encoded image to /classify/MODEL?top_k=5 (wasi-infer's
               image-classify)
  oip          POST the preprocessed tensor to /v2/models/MODEL/infer by the Open
               Inference Protocol with binary tensor data (wasi-infer, Triton, KServe);
               top-1 and top-5 come from the logits. The input's name, datatype (FP32,
               FP16 or FP64) and shape come from GET /v2/models/MODEL; the image is
               prepared by the same code as wasi-infer's image-classify, as the
               [preprocess] of the model's model.toml in --models says. Without one,
               it is assumed from the input shape: [1,C,H,W] (or [1,H,W,C]) with C = 1
               grayscale or 3 RGB, the image resized so that its shorter side is the
               input's longer side, centre-cropped to HxW, and every value pixel/255
               (no mean or std: right for MNIST-style models; give a model.toml for
               others)

Class names: --labels FILE, else the labels of --models DIR/MODEL, else the server's
(/classify answers them), else class indices.

Before any request is timed, each deployment is checked: the server answers, the
model is there (GET /v2/models/MODEL/ready, or /classify's 404), and the first item
goes through; anything wrong stops here, non-zero, saying what.

Comparing (--compare): every --url with every --model is a deployment; all are run
over the same items, one after another (not interleaved, so their latencies do not
disturb each other), and a table compares each with the first: accuracy and its
difference, macro F1, the share of items whose top-1 agrees with the first's, p50
latency and req/s and their ratios, and the model file's size (from --models).

Reports: a table on stdout; --json the whole of it (with every prediction, so that
another tool can recompute every figure); --png the confusion matrix as a heatmap
(comparing: FILE for the first deployment, FILE-2.png, FILE-3.png... for the others);
--html one self-contained page; --card the section between
<!-- wasi-infer eval: begin --> and <!-- wasi-infer eval: end --> of a model card
(Markdown), replaced or appended, the rest of the card kept as it is.
Failed requests are counted and listed (item id, the server's error) and left out
of the metrics; latency is each answered request's, sending to answer read.
Per-class precision, recall and F1 are scikit-learn's (zero_division=0); the
averages are over the classes that occur among the true or predicted classes.

Examples:
  wasi-infer eval --url http://127.0.0.1:3000 --model fashion-mnist-cnn \\
      --dataset tests/data/fashion-mnist --limit 1000 --html report.html
  wasi-infer eval --url http://127.0.0.1:3000 --compare --model fashion-mnist-cnn \\
      --model fashion-mnist-cnn-int8 --dataset tests/data/fashion-mnist --protocol oip";

/// Evaluate a deployed image classifier over HTTP on a labelled dataset:
/// accuracy, top-5, per-class precision/recall/F1, confusion matrix,
/// latency and throughput.
#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct EvalArgs {
    /// The server's base URL (http://HOST:PORT). Repeat, with --compare, to
    /// compare servers.
    #[arg(long, required = true, value_name = "URL")]
    url: Vec<String>,
    /// The model's name on the server. Repeat, with --compare, to compare models.
    #[arg(long, required = true, value_name = "NAME")]
    model: Vec<String>,
    /// The labelled dataset: an IDX folder or file, an ImageFolder tree, or a CSV file.
    #[arg(long, value_name = "PATH")]
    dataset: PathBuf,
    /// How images are sent.
    #[arg(long, value_enum, default_value_t = Protocol::Classify)]
    protocol: Protocol,
    /// Requests in flight at once.
    #[arg(short = 'c', long, default_value_t = 4, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: u16,
    /// Evaluate on the first N items only.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Evaluate several deployments (every --url with every --model) one
    /// after another over the same items, and compare them with the first.
    #[arg(long)]
    compare: bool,
    /// Write the whole report as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write one self-contained HTML page (tables, the heatmap embedded).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Write the confusion matrix as a heatmap PNG.
    #[arg(long, value_name = "FILE")]
    png: Option<PathBuf>,
    /// Write the evaluation into this model card (Markdown), between its
    /// eval markers (appended where it has none).
    #[arg(long, value_name = "FILE")]
    card: Option<PathBuf>,
    /// The class names: one a line, in class-index order.
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,
    /// A model repository (as models/) to read each model's model.toml,
    /// labels and file size from [default: models, if there is one].
    #[arg(long, value_name = "DIR")]
    models: Option<PathBuf>,
    /// How long one request may take before it counts as failed.
    #[arg(long, default_value = "60s", value_parser = units::parse_duration)]
    timeout: Duration,
}

pub fn eval(args: EvalArgs, human: bool) -> anyhow::Result<()> {
    let deployments = args.url.len() * args.model.len();
    if deployments > 1 && !args.compare {
        bail!(
            "{deployments} deployments (every --url with every --model): give --compare to \
             evaluate them one after another and compare them"
        );
    }
    // ureq is built without TLS: say so before anything else.
    if let Some(url) = args
        .url
        .iter()
        .find(|u| !u.to_ascii_lowercase().starts_with("http://"))
    {
        bail!("--url {url}: eval speaks plain HTTP; give http://HOST:PORT");
    }
    let default_models = Path::new("models");
    let models_dir = args.models.clone().or_else(|| {
        default_models
            .is_dir()
            .then(|| default_models.to_path_buf())
    });
    if let Some(dir) = &args.models
        && !dir.is_dir()
    {
        bail!("--models {}: no such folder", dir.display());
    }
    let options = eval::Options {
        urls: args.url.clone(),
        models: args.model.clone(),
        protocol: args.protocol,
        dataset: args.dataset.clone(),
        concurrency: usize::from(args.concurrency),
        limit: args.limit,
        labels: args.labels.clone(),
        models_dir,
        timeout: args.timeout,
        command: command_line(),
    };
    let shown = Shown::new(super::progress::shows_bar(human));
    let evaluation = eval::evaluate(&options, &shown, &shown)?;

    print!("{}", table::render(&evaluation));

    let reports = evaluation.reports();
    let mut pngs = Vec::new();
    if let Some(base) = &args.png {
        for (k, report) in reports.iter().enumerate() {
            let path = numbered(base, k);
            png::write(&path, report)?;
            eprintln!("wrote {}", path.display());
            pngs.push(path);
        }
    }
    if let Some(path) = &args.json {
        json::write(path, &evaluation)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.html {
        html::write(path, &evaluation)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.card {
        card::write(path, &evaluation, pngs.first().map(PathBuf::as_path))?;
        eprintln!("wrote the evaluation section of {}", path.display());
    }
    // A deployment that answered nothing was not evaluated: say so by the
    // exit status too (its failures are in the report above).
    if let Some(silent) = reports.iter().find(|r| r.succeeded == 0) {
        let first = silent
            .failures
            .first()
            .map(|f| f.error.as_str())
            .unwrap_or("no items");
        bail!(
            "every request to {} failed (the first: {first})",
            silent.deployment.label()
        );
    }
    Ok(())
}

/// The `k`-th deployment's file: `base` for the first, `STEM-2.EXT`,
/// `STEM-3.EXT`... for the others.
fn numbered(base: &Path, k: usize) -> PathBuf {
    if k == 0 {
        return base.to_path_buf();
    }
    let stem = base.file_stem().unwrap_or_default().to_string_lossy();
    let name = match base.extension() {
        Some(ext) => format!("{stem}-{}.{}", k + 1, ext.to_string_lossy()),
        None => format!("{stem}-{}", k + 1),
    };
    base.with_file_name(name)
}

/// The command line as a shell would take it back: `wasi-infer eval ...`.
fn command_line() -> String {
    std::iter::once("wasi-infer".to_string())
        .chain(
            std::env::args_os()
                .skip(1)
                .map(|a| shell_quote(&a.to_string_lossy())),
        )
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Progress on stderr: a bar with rate and ETA on a terminal, else a line
/// at a tenth of the items at most every [`PLAIN_EVERY`] (a CI log, a pipe).
const PLAIN_EVERY: Duration = Duration::from_secs(5);

struct Shown {
    bar: Option<Mutex<Option<ProgressBar>>>,
    plain: Mutex<Plain>,
    done: AtomicUsize,
}

#[derive(Default)]
struct Plain {
    label: String,
    total: usize,
    started: Option<Instant>,
    /// When the last line was written.
    last: Option<Instant>,
    next_tenth: usize,
}

impl Shown {
    fn new(bar: bool) -> Self {
        Self {
            bar: bar.then(|| Mutex::new(None)),
            plain: Mutex::new(Plain::default()),
            done: AtomicUsize::new(0),
        }
    }
}

impl Progress for Shown {
    fn start(&self, label: &str, total: usize) {
        self.done.store(0, Ordering::Relaxed);
        if let Some(slot) = &self.bar {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{elapsed_precise}] {bar:30} {pos}/{len} {rate} ETA {eta}",
                )
                .expect("a valid template")
                .with_key(
                    "rate",
                    |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.1} req/s", state.per_sec());
                    },
                )
                .progress_chars("=> "),
            );
            bar.set_message(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            if let Ok(mut slot) = slot.lock() {
                *slot = Some(bar);
            }
        } else if let Ok(mut plain) = self.plain.lock() {
            let now = Instant::now();
            *plain = Plain {
                label: label.to_string(),
                total,
                started: Some(now),
                last: Some(now),
                next_tenth: 1,
            };
            eprintln!("{label}: {total} items");
        }
    }

    fn advance(&self) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(slot) = &self.bar {
            if let Ok(slot) = slot.lock()
                && let Some(bar) = slot.as_ref()
            {
                bar.inc(1);
            }
            return;
        }
        if let Ok(mut plain) = self.plain.lock() {
            // A line when another tenth of the items is done, unless the
            // last one is recent (a short run is its first and last lines).
            let total = plain.total.max(1);
            let due = plain.last.is_none_or(|t| t.elapsed() >= PLAIN_EVERY);
            if done * 10 >= plain.next_tenth * total && done < total && due {
                let seconds = plain.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
                eprintln!(
                    "{}: {done}/{total} ({}%), {:.1} items/s",
                    plain.label,
                    done * 100 / total,
                    done as f64 / seconds.max(1e-9)
                );
                plain.next_tenth = done * 10 / total + 1;
                plain.last = Some(Instant::now());
            }
        }
    }

    fn finish(&self) {
        if let Some(slot) = &self.bar {
            if let Ok(mut slot) = slot.lock()
                && let Some(bar) = slot.take()
            {
                bar.finish_and_clear();
            }
            return;
        }
        if let Ok(plain) = self.plain.lock() {
            let seconds = plain.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
            eprintln!(
                "{}: {} items in {seconds:.2} s",
                plain.label,
                self.done.load(Ordering::Relaxed)
            );
        }
    }
}

impl Notes for Shown {
    fn note(&self, line: &str) {
        eprintln!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_quote_what_a_shell_would_split() {
        assert_eq!(shell_quote("--url"), "--url");
        assert_eq!(shell_quote("http://h:1/x"), "http://h:1/x");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn each_deployment_has_its_own_png() {
        assert_eq!(
            numbered(Path::new("out/cm.png"), 0),
            Path::new("out/cm.png")
        );
        assert_eq!(
            numbered(Path::new("out/cm.png"), 1),
            Path::new("out/cm-2.png")
        );
        assert_eq!(numbered(Path::new("cm"), 2), Path::new("cm-3"));
    }
}
