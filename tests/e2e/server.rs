//! Starts the real `wasi-infer` binary on a free port and talks HTTP to it.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Every model of the repository, in name order.
pub const MODELS: [&str; 10] = [
    "all-minilm-l6-v2",
    "efficientnet-lite0",
    "efficientnet-lite0-int8",
    "fashion-mnist-cnn",
    "fashion-mnist-cnn-int8",
    "fashion-mnist-cnn-pruned",
    "pp-ocrv4",
    "pp-ocrv4-cls",
    "pp-ocrv4-rec",
    "silero-vad",
];

pub fn photo(name: &str) -> Vec<u8> {
    std::fs::read(root().join("tests/data/images").join(name)).unwrap()
}

/// Copies a folder and everything in it.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// `curl -F file=@NAME`'s body: one file part of `content_type`, with the
/// boundary `XyZ`.
pub fn form_upload(name: &str, content_type: &str, data: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(b"\r\n--XyZ--\r\n");
    body
}

/// Builds the test-only components (tests/components) once per test run.
pub fn build_test_components() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .current_dir(root().join("tests/components"))
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--target-dir",
            ])
            .arg(root().join("target/functions"))
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("run cargo");
        assert!(status.success(), "building tests/components failed");
    });
}

/// A running server, killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
    stderr: Arc<Mutex<String>>,
    agent: ureq::Agent,
}

/// What the server answered.
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    pub allow: Option<String>,
    pub server_timing: Option<String>,
    pub retry_after: Option<String>,
    /// The body as text (lossy, for bodies that are not UTF-8).
    pub text: String,
    /// The body as it came.
    pub bytes: Vec<u8>,
    pub headers: http::HeaderMap,
}

impl Reply {
    /// A response header, if present and readable as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    /// An error answer: the status, and a JSON body with an `error` message.
    pub fn assert_error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "body: {}", self.text);
        assert_eq!(self.content_type.as_deref(), Some("application/json"));
        let message = self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message in {}", self.text))
            .to_string();
        assert!(!message.is_empty());
        message
    }
}

impl Server {
    /// `wasi-infer serve --listen 127.0.0.1:0` with the root spin.toml and `args`.
    pub fn start(args: &[&str]) -> Server {
        Self::start_with(args, &[])
    }

    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wasi-infer"));
        command
            .current_dir(root())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start wasi-infer");

        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });

        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(address) = line.strip_prefix("listening on ") {
                    let _ = tx.send(address.to_string());
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(180)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "the server did not start; its log:\n{}",
                    stderr.lock().unwrap()
                );
            }
        };
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        // Stderr is read by a thread of its own and may lag stdout: wait
        // for the line the server logs just before "listening on", so a test
        // that reads the log after start sees every line of the start-up.
        let caught_up = Instant::now() + Duration::from_secs(10);
        while !stderr.lock().unwrap().contains("application loaded") && Instant::now() < caught_up {
            std::thread::sleep(Duration::from_millis(5));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Server {
            child,
            base,
            stderr,
            agent,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// `127.0.0.1:PORT`, for raw sockets.
    pub fn address(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits (at most `within`) for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let started = std::time::Instant::now();
        while started.elapsed() < within {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// A request with any method, headers and body.
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(body.to_vec()).unwrap();
        let response = self
            .agent
            .run(request)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        reply(response)
    }

    pub fn post(&self, path: &str, body: &[u8]) -> Reply {
        let response = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/octet-stream")
            .send(body)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        reply(response)
    }

    pub fn get(&self, path: &str) -> Reply {
        let response = self
            .agent
            .get(format!("{}{path}", self.base))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        reply(response)
    }
}

fn reply(mut response: http::Response<ureq::Body>) -> Reply {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (content_type, allow) = (header("content-type"), header("allow"));
    let server_timing = header("server-timing");
    let retry_after = header("retry-after");
    let headers = response.headers().clone();
    let bytes = response.body_mut().read_to_vec().unwrap();
    Reply {
        status: response.status().as_u16(),
        content_type,
        allow,
        server_timing,
        retry_after,
        text: String::from_utf8_lossy(&bytes).into_owned(),
        bytes,
        headers,
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `wasi-infer serve` expecting it to fail at start-up; returns its stderr.
pub fn start_up_error(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wasi-infer"));
    command
        .current_dir(root())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().expect("run wasi-infer");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "expected a start-up error; stdout: {stdout}"
    );
    assert!(!stdout.contains("listening on"), "{stdout}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}
