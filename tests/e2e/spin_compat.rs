//! Spin applications as Spin's documentation writes them: one manifest per
//! feature in `tests/spin-compat/`, each served with a request that proves
//! it, or refused at start-up with a message that names the feature. Outbound
//! HTTP is tried against loopback servers only.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::server::{Server, build_test_components, root, start_up_error};

fn manifest(feature: &str) -> PathBuf {
    root()
        .join("tests/spin-compat")
        .join(feature)
        .join("spin.toml")
}

fn serve(feature: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
    build_test_components();
    let manifest = manifest(feature);
    let mut args = vec!["--manifest", manifest.to_str().unwrap()];
    args.extend_from_slice(extra);
    Server::start_with(&args, env)
}

/// `url` as a query value (what the probes percent-decode).
fn encode(url: &str) -> String {
    url.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn routes_follow_spin_rules_under_the_base() {
    let server = serve("routes", &[], &[]);
    let route = |path: &str| {
        let reply = server.get(path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        reply.json()
    };
    let exact = route("/api/exact");
    assert_eq!(exact["spin_headers"]["spin-matched-route"], "/api/exact");
    assert_eq!(exact["spin_headers"]["spin-base-path"], "/api");

    let named = route("/api/users/ada/posts/1");
    assert_eq!(named["spin_headers"]["spin-path-match-id"], "ada");
    assert_eq!(named["path_info"], "/posts/1");
    assert_eq!(
        named["spin_headers"]["spin-matched-route"],
        "/api/users/:id/..."
    );

    let wildcard = route("/api/files/a/b.txt");
    assert_eq!(wildcard["path_info"], "/a/b.txt");
    assert_eq!(
        route("/api/other")["spin_headers"]["spin-matched-route"],
        "/api/..."
    );
    // Outside the base, nothing answers.
    server.get("/exact").assert_error(404);
}

#[test]
fn static_responses_answer_without_a_component() {
    let server = serve("static-response", &[], &[]);
    let reply = server.get("/ok");
    assert_eq!((reply.status, reply.text.as_str()), (200, "default status"));
    let reply = server.get("/no/such/page");
    assert_eq!((reply.status, reply.text.as_str()), (404, "not found here"));
    // The client follows the 302 to the component's route.
    let reply = server.get("/old");
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["path"], "/app/new");
}

#[test]
fn files_globs_placements_and_exclusions() {
    let server = serve("files", &[], &[]);
    let file = |path: &str| server.get(&format!("/?file={}", encode(path)));
    for (path, text) in [
        ("/assets/img/a.png", "png-a\n"),
        ("/assets/img/b.png", "png-b\n"),
        ("/site/index.html", "<h1>index</h1>\n"),
        ("/site/img/a.png", "png-a\n"),
        ("/notes.txt", "notes\n"),
    ] {
        let reply = file(path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(reply.json()["text"], text, "{path}");
    }
    for hidden in [
        // Excluded, though its folder is placed at /site.
        "/site/secret/key.txt",
        // Not matched by the glob.
        "/assets/index.html",
        "/assets/secret/key.txt",
        // Outside the application's files altogether.
        "/spin.toml",
    ] {
        let reply = file(hidden);
        assert_eq!(reply.status, 404, "{hidden} is visible: {}", reply.text);
    }
}

#[test]
fn spin_sdk_7_reads_variables_through_spin_variables_3() {
    let env = [
        ("SPIN_VARIABLE_NAME", "Ada"),
        ("SPIN_VARIABLE_API_TOKEN", "s3cret"),
    ];
    let server = serve("variables", &[], &env);
    let variable = |name: &str| server.get(&format!("/?variable={name}"));
    assert_eq!(variable("message").json()["value"], "hello, Ada!");
    assert_eq!(variable("token").json()["value"], "s3cret");
    let missing = variable("nope");
    assert_eq!(missing.status, 404, "{}", missing.text);
    assert!(missing.text.contains("Undefined"), "{}", missing.text);
    // The secret's value is never logged.
    assert!(!server.log().contains("s3cret"), "{}", server.log());

    let manifest = manifest("variables");
    let error = start_up_error(
        &["--manifest", manifest.to_str().unwrap()],
        &[("SPIN_VARIABLE_NAME", "Ada")],
    );
    assert!(error.contains("SPIN_VARIABLE_API_TOKEN"), "{error}");
}

/// A loopback HTTP server: `/big` answers `big` bytes, `/slow` never
/// answers, anything else a short text; it counts the connections it took.
struct Upstream {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl Upstream {
    fn start(name: &'static str, big: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                seen.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut request = [0u8; 4096];
                    let n = stream.read(&mut request).unwrap_or(0);
                    let head = String::from_utf8_lossy(&request[..n]).into_owned();
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let body = match path.as_str() {
                        "/slow" => {
                            std::thread::sleep(Duration::from_secs(30));
                            return;
                        }
                        "/big" => vec![b'x'; big],
                        _ => format!("{name} saw {path}").into_bytes(),
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(&body);
                });
            }
        });
        Self { port, connections }
    }
}

#[test]
fn outbound_http_reaches_only_the_allowed_hosts() {
    let allowed = Upstream::start("allowed", 3 << 20);
    let forbidden = Upstream::start("forbidden", 0);
    let port = allowed.port.to_string();
    let server = serve(
        "outbound-http",
        &["--max-body-size", "1048576", "--request-timeout", "3s"],
        &[("SPIN_VARIABLE_ALLOWED_PORT", &port)],
    );
    let call = |route: &str, url: &str| server.get(&format!("{route}?url={}", encode(url)));
    for route in ["/p2/", "/p3/"] {
        let reply = call(route, &format!("http://127.0.0.1:{}/hello", allowed.port));
        assert_eq!(reply.status, 200, "{route}: {}", reply.text);
        assert_eq!(reply.json()["body"], "allowed saw /hello", "{route}");

        for refused in [
            format!("http://127.0.0.1:{}/", forbidden.port),
            // The allowed host and port, but another scheme.
            format!("https://127.0.0.1:{}/", allowed.port),
            format!("http://localhost:{}/", allowed.port),
        ] {
            let reply = call(route, &refused);
            assert_eq!(reply.status, 502, "{route} {refused}: {}", reply.text);
            assert!(
                reply.text.contains("HttpRequestDenied"),
                "{route} {refused}: {}",
                reply.text
            );
        }
    }
    let reply = call("/denied/", &format!("http://127.0.0.1:{}/", allowed.port));
    assert!(reply.text.contains("HttpRequestDenied"), "{}", reply.text);
    assert_eq!(forbidden.connections.load(Ordering::SeqCst), 0);

    // A response body past the bound (--max-body-size) fails the read.
    for route in ["/p2/", "/p3/"] {
        let reply = call(route, &format!("http://127.0.0.1:{}/big", allowed.port));
        assert_eq!(reply.status, 502, "{route}: {}", reply.text);
    }
    // spin-sdk 7 says why (spin-sdk 5 reports only a failed body stream).
    let reply = call("/p3/", &format!("http://127.0.0.1:{}/big", allowed.port));
    assert!(
        reply.text.contains("HttpResponseBodySize(Some(1048576))"),
        "{}",
        reply.text
    );

    // An upstream that never answers is cut off at the function's deadline.
    let started = Instant::now();
    let reply = call("/p3/", &format!("http://127.0.0.1:{}/slow", allowed.port));
    assert!(
        matches!(reply.status, 502 | 504),
        "{} {}",
        reply.status,
        reply.text
    );
    // The 3 s deadline, and as much again for the instance's teardown and
    // the answer on a loaded 2-core machine (the upstream holds on for 30 s).
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    // And the server goes on.
    let reply = call("/p2/", &format!("http://127.0.0.1:{}/again", allowed.port));
    assert_eq!(reply.json()["body"], "allowed saw /again", "{}", reply.text);
}

#[test]
fn a_private_route_is_reached_only_from_the_application() {
    let server = serve("private-routes", &[], &[]);
    let call = |route: &str, url: &str| server.get(&format!("{route}?url={}", encode(url)));

    let reply = call("/front/", "http://back.spin.internal/some/path");
    assert_eq!(reply.status, 200, "{}", reply.text);
    let inner: serde_json::Value =
        serde_json::from_str(reply.json()["body"].as_str().unwrap()).unwrap();
    assert_eq!(inner["path"], "/some/path");
    assert_eq!(inner["spin_headers"]["spin-matched-route"], "private");

    let reply = call("/front/", "http://self.alt/public/x");
    assert_eq!(reply.status, 200, "{}", reply.text);
    let inner: serde_json::Value =
        serde_json::from_str(reply.json()["body"].as_str().unwrap()).unwrap();
    assert_eq!(inner["path_info"], "/x");

    // No public route leads to it, and strangers may not call it.
    server.get("/back").assert_error(404);
    let reply = call("/stranger/", "http://back.spin.internal/");
    assert!(reply.text.contains("HttpRequestDenied"), "{}", reply.text);
    let reply = call("/front/", "http://nobody.spin.internal/");
    assert!(reply.text.contains("DestinationNotFound"), "{}", reply.text);

    // A function calling itself stops after a few hops, with LoopDetected.
    let mut url = "http://self.alt/public/end".to_string();
    for _ in 0..12 {
        url = format!("http://self.alt/front/?url={}", encode(&url));
    }
    let reply = call("/front/", &url);
    assert!(reply.text.contains("LoopDetected"), "{}", reply.text);
    assert_eq!(server.get("/public/still").status, 200);
}

#[test]
fn spin_new_http_rust_is_served_as_it_is() {
    build_test_components();
    let app = tempfile::tempdir().unwrap();
    std::fs::copy(manifest("spin-new-http-rust"), app.path().join("spin.toml")).unwrap();
    let built = app.path().join("target/wasm32-wasip2/release");
    std::fs::create_dir_all(&built).unwrap();
    std::fs::copy(
        root().join("target/functions/wasm32-wasip2/release/hello_app.wasm"),
        built.join("hello_app.wasm"),
    )
    .unwrap();
    let manifest = app.path().join("spin.toml");
    let server = Server::start(&["--manifest", manifest.to_str().unwrap()]);
    for path in ["/", "/anything/at/all"] {
        let reply = server.get(path);
        assert_eq!(
            (reply.status, reply.text.as_str()),
            (200, "Hello World!"),
            "{path}"
        );
    }
}

#[test]
fn a_version_1_manifest_is_converted() {
    let server = serve("version-1", &[], &[]);
    let reply = server.get("/v1/echo/x");
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["path_info"], "/x");
    assert_eq!(
        server.get("/v1/reader/?variable=message").json()["value"],
        "from version 1"
    );
    // allowed_http_hosts = ["self"] became allowed_outbound_hosts.
    let reply = server.get(&format!(
        "/v1/reader/?url={}",
        encode("http://self.alt/v1/echo/y")
    ));
    assert_eq!(reply.json()["status"], 200, "{}", reply.text);
}

#[test]
fn an_inline_component_is_served() {
    let server = serve("inline-component", &[], &[]);
    let reply = server.get("/hello/z");
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(server.log().contains("hello-component"), "{}", server.log());
}

#[test]
fn unserved_features_are_refused_by_name() {
    build_test_components();
    for (feature, key, named) in [
        (
            "key-value",
            "component.cart.key_value_stores",
            "key-value stores",
        ),
        (
            "sqlite",
            "component.orders.sqlite_databases",
            "SQLite databases",
        ),
        ("redis-trigger", "trigger.redis", "non-HTTP triggers"),
        (
            "wagi-executor",
            "trigger.http[0].executor",
            "WAGI executors",
        ),
        (
            "remote-source",
            "component.fileserver.source",
            "remote component sources",
        ),
        (
            "component-dependencies",
            "component.app.dependencies",
            "component dependencies",
        ),
        (
            "http-middleware",
            "trigger.http[0].dependencies",
            "HTTP middleware",
        ),
    ] {
        let manifest = manifest(feature);
        let error = start_up_error(&["--manifest", manifest.to_str().unwrap()], &[]);
        assert!(
            error.contains(key) && error.contains(named) && error.contains("not supported"),
            "{feature}: {error}"
        );
        assert!(!error.contains("unknown field"), "{feature}: {error}");
    }
}
