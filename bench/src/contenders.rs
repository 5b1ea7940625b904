//! The servers under test, how to start each one on loopback, and how to tell
//! when it is ready. Every contender serves the same models, and answers a
//! workload's requests (see [`Workload`]) with the same JSON.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use wasi_infer_bench::load::{Connection, Target};
use wasi_infer_bench::proc;

use crate::workload::Workload;

/// Where the set-up scripts put what the contenders need (see `bench/run.sh`).
pub struct Paths {
    pub root: PathBuf,
}

impl Paths {
    fn at(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }
    pub fn wasi_infer(&self) -> PathBuf {
        self.at("target/release/wasi-infer")
    }
    pub fn native(&self) -> PathBuf {
        self.at("target/release/native-classify")
    }
    pub fn wasmtime(&self) -> PathBuf {
        self.at(".deps/wasmtime/wasmtime")
    }
    pub fn portable_component(&self) -> PathBuf {
        self.at("target/bench/image_classify_wasi.wasm")
    }
    pub fn graphs(&self) -> PathBuf {
        self.at("target/bench/graphs")
    }
    pub fn python(&self) -> PathBuf {
        self.at(".deps/bench-python/bin/python")
    }
    pub fn kserve_python(&self) -> PathBuf {
        self.at(".deps/bench-kserve/bin/python")
    }
    pub fn models(&self) -> PathBuf {
        self.at("models")
    }
    /// The edge application's bundle (self-contained, pre-initialised,
    /// precompiled: `bench/scripts/setup-edge.sh`).
    pub fn edge_bundle(&self) -> PathBuf {
        self.at("target/edge/app.tar")
    }
    /// A self-contained function: pre-initialised (target/edge/) or as built.
    pub fn self_contained(&self, preinitialised: bool, workload: Workload) -> PathBuf {
        let file = match workload {
            Workload::Embed => "text_embed.wasm",
            _ => "image_classify.wasm",
        };
        match preinitialised {
            true => self.at("target/edge").join(file),
            false => self.at("target/functions/self-contained").join(file),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contender {
    /// wasi-infer with the image-classify component, all models on one backend.
    WasiInfer { backend: String },
    /// The same code natively, no sandbox (`native-classify`).
    Native,
    /// The official `wasmtime serve -S nn` with the component built without Spin's
    /// variables, its models preloaded as OpenVINO graphs.
    WasmtimeServe,
    /// FastAPI + uvicorn + Pillow + onnxruntime (`bench/python/server.py`), in one
    /// of its modes: `single`, `workers` or `reuseport`.
    Python { mode: String },
    /// KServe's own Python model server (`kserve.ModelServer`, a `kserve.Model`
    /// wrapping onnxruntime: `bench/python/kserve_server.py`), one process per
    /// core; Open Inference Protocol only.
    KServe,
    /// The edge builds of image-classify and text-embed (docs/edge.md):
    /// `wasi-nn` and `wasi-nn-preinit` (wasi-infer, ONNX Runtime, the default
    /// builds as built or pre-initialised), `self-contained` (wasi-infer
    /// serving the edge bundle: tract compiled in, pre-initialised,
    /// precompiled), `wasmtime` and `wasmtime-raw` (stock `wasmtime serve`,
    /// no wasi-nn, the self-contained build pre-initialised or as built).
    Edge { variant: String },
}

/// The edge contenders' variants.
const EDGE_VARIANTS: [&str; 5] = [
    "wasi-nn",
    "wasi-nn-preinit",
    "self-contained",
    "wasmtime",
    "wasmtime-raw",
];

impl Contender {
    /// All contenders, ours first.
    pub fn all() -> Vec<Contender> {
        let mut all: Vec<Contender> = ["onnxruntime", "openvino", "tract"]
            .into_iter()
            .map(|b| Contender::WasiInfer { backend: b.into() })
            .collect();
        all.push(Contender::Native);
        all.push(Contender::WasmtimeServe);
        for mode in ["single", "workers", "reuseport"] {
            all.push(Contender::Python { mode: mode.into() });
        }
        all.push(Contender::KServe);
        for variant in EDGE_VARIANTS {
            all.push(Contender::Edge {
                variant: variant.into(),
            });
        }
        all
    }

    /// Whether this contender answers the workload's requests.
    pub fn serves(&self, workload: Workload) -> bool {
        match self {
            Contender::WasiInfer { .. } => workload != Workload::Embed,
            Contender::KServe => workload == Workload::Oip,
            Contender::Edge { .. } => workload != Workload::Oip,
            _ => workload == Workload::Classify,
        }
    }

    /// Parses a name as [`Contender::name`] prints it.
    pub fn parse(name: &str) -> anyhow::Result<Contender> {
        Self::all()
            .into_iter()
            .find(|c| c.name() == name)
            .with_context(|| {
                let names: Vec<String> = Self::all().iter().map(Contender::name).collect();
                format!("unknown contender {name:?}; known: {}", names.join(", "))
            })
    }

    pub fn name(&self) -> String {
        match self {
            Contender::WasiInfer { backend } => format!("wasi-infer:{backend}"),
            Contender::Native => "native".into(),
            Contender::WasmtimeServe => "wasmtime-serve".into(),
            Contender::Python { mode } => format!("python:{mode}"),
            Contender::KServe => "kserve".into(),
            Contender::Edge { variant } => format!("edge:{variant}"),
        }
    }

    /// Whether this contender is wasi-infer (which takes its cache flags).
    pub fn is_wasi_infer(&self) -> bool {
        match self {
            Contender::WasiInfer { .. } => true,
            Contender::Edge { variant } => !variant.starts_with("wasmtime"),
            _ => false,
        }
    }

    /// The command that serves `models` on `addr`.
    fn command(
        &self,
        paths: &Paths,
        addr: SocketAddr,
        models: &[&str],
        workload: Workload,
    ) -> Command {
        let mut command;
        match self {
            Contender::WasiInfer { backend } => {
                command = Command::new(paths.wasi_infer());
                command
                    .args(["serve", "--manifest"])
                    .arg(paths.at("bench/spin.toml"))
                    .arg("--models")
                    .arg(paths.models())
                    .args(["--listen", &addr.to_string(), "--backend", backend]);
                // Request lines at info level cost time the others do not spend.
                command.env("RUST_LOG", "warn");
            }
            Contender::Native => {
                command = Command::new(paths.native());
                // The same inference backend as `wasi-infer:onnxruntime`.
                command
                    .args(["--listen", &addr.to_string(), "--backend", "onnxruntime"])
                    .arg("--models")
                    .arg(paths.models());
                for model in models {
                    command.args(["--model", model]);
                }
            }
            Contender::WasmtimeServe => {
                command = Command::new(paths.wasmtime());
                command
                    .args(["serve", "--addr", &addr.to_string()])
                    .args(["-S", "cli", "-S", "nn"]);
                for model in models {
                    let dir = paths.graphs().join(model);
                    command
                        .arg("-S")
                        .arg(format!("nn-graph=openvino::{}", dir.display()));
                }
                command
                    .arg("--dir")
                    .arg(format!("{}::/models", paths.models().display()))
                    .arg(paths.portable_component());
                // wasmtime's OpenVINO backend finds the library through these.
                let openvino = paths.at(".deps/openvino");
                command
                    .env("LD_LIBRARY_PATH", &openvino)
                    .env("OPENVINO_INSTALL_DIR", &openvino);
            }
            Contender::Python { mode } => {
                command = Command::new(paths.python());
                command
                    .arg(paths.at("bench/python/server.py"))
                    .args(["--mode", mode, "--host", "127.0.0.1"])
                    .args(["--port", &addr.port().to_string()])
                    .arg("--models")
                    .arg(paths.models());
                for model in models {
                    command.args(["--model", model]);
                }
            }
            Contender::Edge { variant } => match variant.as_str() {
                "wasmtime" | "wasmtime-raw" => {
                    command = Command::new(paths.wasmtime());
                    command
                        .args(["serve", "--addr", &addr.to_string(), "-S", "cli"])
                        .arg("--dir")
                        .arg(format!("{}::/models", paths.models().display()))
                        .arg(paths.self_contained(variant == "wasmtime", workload));
                }
                _ => {
                    command = Command::new(paths.wasi_infer());
                    command.arg("serve");
                    match variant.as_str() {
                        "self-contained" => command.arg("--bundle").arg(paths.edge_bundle()),
                        "wasi-nn-preinit" => command
                            .arg("--manifest")
                            .arg(paths.at("bench/edge/spin-preinit.toml")),
                        _ => command
                            .arg("--manifest")
                            .arg(paths.at("bench/edge/spin.toml")),
                    };
                    command.args(["--listen", &addr.to_string()]);
                    if variant != "self-contained" {
                        command
                            .arg("--models")
                            .arg(paths.models())
                            .args(["--backend", "onnxruntime"]);
                    }
                    command.env("RUST_LOG", "warn");
                }
            },
            Contender::KServe => {
                command = Command::new(paths.kserve_python());
                command
                    .arg(paths.at("bench/python/kserve_server.py"))
                    .args(["--host", "127.0.0.1"])
                    .args(["--port", &addr.port().to_string()])
                    .arg("--models")
                    .arg(paths.models());
                for model in models {
                    command.args(["--model", model]);
                }
            }
        }
        command.current_dir(&paths.root);
        command
    }

    /// What must exist before this contender can start, and how to get it.
    pub fn check_installed(&self, paths: &Paths) -> anyhow::Result<()> {
        let needs: Vec<(PathBuf, &str)> = match self {
            Contender::WasiInfer { .. } => vec![(paths.wasi_infer(), "cargo build --release")],
            Contender::Native => {
                vec![(paths.native(), "cargo build --release -p wasi-infer-bench")]
            }
            Contender::WasmtimeServe => vec![
                (paths.wasmtime(), "bench/scripts/setup-wasmtime.sh"),
                (
                    paths.portable_component(),
                    "bench/scripts/setup-wasmtime.sh",
                ),
            ],
            Contender::Python { .. } => vec![(paths.python(), "bench/scripts/setup-python.sh")],
            Contender::KServe => vec![(paths.kserve_python(), "bench/scripts/setup-kserve.sh")],
            Contender::Edge { variant } => {
                let setup = "bench/scripts/setup-edge.sh";
                let mut needs = vec![(paths.wasi_infer(), "cargo build --release")];
                match variant.as_str() {
                    "wasmtime" | "wasmtime-raw" => {
                        needs.push((paths.wasmtime(), setup));
                        for workload in [Workload::Classify, Workload::Embed] {
                            let preinit = variant == "wasmtime";
                            let fix = if preinit {
                                setup
                            } else {
                                "cargo build --release"
                            };
                            needs.push((paths.self_contained(preinit, workload), fix));
                        }
                    }
                    "self-contained" => needs.push((paths.edge_bundle(), setup)),
                    "wasi-nn-preinit" => {
                        needs.push((paths.at("target/bench/preinit/text_embed.wasm"), setup));
                    }
                    _ => {}
                }
                needs
            }
        };
        for (path, fix) in needs {
            if !path.exists() {
                bail!("{} needs {} (run {fix})", self.name(), path.display());
            }
        }
        Ok(())
    }
}

/// How long a contender may take to serve: stock `wasmtime serve` compiles a
/// self-contained component (16 MB of code) without a cache in ~12 s.
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// A running contender; stopped (with its children) when dropped.
pub struct Server {
    pub name: String,
    pub addr: SocketAddr,
    child: Child,
    pub log: PathBuf,
}

impl Server {
    /// Starts `contender` and waits until `probe` (a request to it) answers 200.
    /// `extra` is appended to the contender's command line.
    pub fn start(
        contender: &Contender,
        extra: &[String],
        paths: &Paths,
        models: &[&str],
        workload: Workload,
        probe: impl Fn(SocketAddr) -> Target,
        log_dir: &Path,
    ) -> anyhow::Result<(Server, Duration)> {
        let addr = free_port()?;
        let log = log_dir.join(format!("{}.log", contender.name().replace(':', "-")));
        let log_file = std::fs::File::create(&log)?;
        let started = Instant::now();
        let child = contender
            .command(paths, addr, models, workload)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start {}", contender.name()))?;
        let mut server = Server {
            name: contender.name(),
            addr,
            child,
            log,
        };
        let ready = server.wait_ready(&probe(addr), START_TIMEOUT)?;
        Ok((server, ready - started))
    }

    /// Polls with a real request until one succeeds: that is "serving".
    /// A 503 is a server that listens while it loads (wasi-infer answers its
    /// health checks, and 503 to everything else, until its models and
    /// components are loaded): it is polled through, as a load balancer
    /// would; any other error status is a failure.
    fn wait_ready(&mut self, probe: &Target, timeout: Duration) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before serving; see {}",
                    self.name,
                    self.log.display()
                );
            }
            if let Ok(reply) = Connection::open(self.addr).and_then(|mut c| c.send(probe)) {
                match reply.status {
                    200 => return Ok(Instant::now()),
                    503 => {}
                    _ => bail!(
                        "{} answered {}: {}",
                        self.name,
                        reply.status,
                        String::from_utf8_lossy(&reply.body)
                    ),
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not serve within {timeout:?}; see {}",
                    self.name,
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Resident memory of the server and every process it started.
    pub fn rss_bytes(&self) -> u64 {
        proc::tree_rss_bytes(self.child.id())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        proc::terminate_tree(&mut self.child);
    }
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}
