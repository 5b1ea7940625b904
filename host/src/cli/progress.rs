//! How loading an application is shown: a progress bar on a terminal, plain
//! log lines otherwise (a container's log, a CI job, a pipe).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing_subscriber::fmt::MakeWriter;
use wasi_infer::app::{LoadObserver, LoadStep, LogLoadSteps};

/// Whether loading shows a bar: on a terminal, when logs are for people.
pub fn shows_bar(human_logs: bool) -> bool {
    human_logs && std::io::stderr().is_terminal()
}

/// A progress bar where [`shows_bar`]; otherwise the log lines of [`LogLoadSteps`].
pub fn observer(human_logs: bool) -> Box<dyn LoadObserver + Send> {
    if shows_bar(human_logs) {
        Box::new(Bar::new())
    } else {
        Box::new(LogLoadSteps)
    }
}

/// The bar on screen, if any: log lines are written above it, not across it.
static SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Where log lines go when a bar may be shown: stderr, above the bar while
/// it is on screen. (Elsewhere they go straight to stderr: no buffer, no lock.)
pub struct LogWriter;

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine(Vec::new())
    }
}

/// One log line, written whole when dropped.
pub struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let shown = SHOWN.lock().ok().and_then(|bar| bar.clone());
        let write = || {
            let _ = std::io::stderr().write_all(&self.0);
        };
        match shown {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }
}

/// One bar for the models and components to load, with a line for each done.
struct Bar(ProgressBar);

impl Bar {
    fn new() -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed}] {bar:24} {pos}/{len} {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut shown) = SHOWN.lock() {
            *shown = Some(bar.clone());
        }
        Self(bar)
    }
}

impl LoadObserver for Bar {
    fn step(&self, step: LoadStep<'_>) {
        let bar = &self.0;
        match step {
            LoadStep::Plan { models, components } => {
                bar.set_length((models + components) as u64);
            }
            LoadStep::ModelLoading { name } => bar.set_message(format!("loading model {name}")),
            LoadStep::ModelLoaded { model } => {
                bar.inc(1);
                bar.println(format!(
                    "  model {:<24} {:<12} {:>7.2} s",
                    model.name,
                    model.backend.to_string(),
                    model.load_time.as_secs_f64()
                ));
            }
            LoadStep::ComponentCompiling { id } => {
                bar.set_message(format!("compiling component {id}"));
            }
            LoadStep::ComponentReady {
                id,
                world,
                compiled,
                took,
            } => {
                bar.inc(1);
                bar.println(format!(
                    "  component {id:<20} {world:<14} compiled {compiled}, {:.2} s",
                    took.as_secs_f64()
                ));
            }
        }
        if bar.length() == Some(bar.position()) {
            self.hide();
        }
    }
}

impl Bar {
    fn hide(&self) {
        self.0.finish_and_clear();
        if let Ok(mut shown) = SHOWN.lock() {
            *shown = None;
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        // On an error half-way, the bar must not stay over the message.
        self.hide();
    }
}
