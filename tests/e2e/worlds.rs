//! Both wasi:http worlds are served: a p2 component (image-classify) and a p3
//! one (hello-p3), side by side; a component loads only its `ai_models`; a
//! function that traps fails alone.

use crate::classify::check_predictions;
use crate::server::{Server, build_test_components, photo, root};

fn two_worlds() -> Server {
    build_test_components();
    let manifest = root().join("tests/fixtures/two-worlds.toml");
    let models = root().join("models");
    Server::start(&[
        "--manifest",
        manifest.to_str().unwrap(),
        "--models",
        models.to_str().unwrap(),
    ])
}

#[test]
fn a_p3_component_is_served_beside_a_p2_one() {
    let server = two_worlds();
    assert!(server.log().contains("wasi:http@0.3"), "{}", server.log());
    assert!(server.log().contains("wasi:http@0.2"), "{}", server.log());

    let body = vec![7u8; 100_000];
    let reply = server.post("/p3/some/path?x=1", &body);
    assert_eq!(reply.status, 200, "{}", reply.text);
    let json = reply.json();
    assert_eq!(json["world"], "wasi:http@0.3");
    assert_eq!(json["method"], "POST");
    assert_eq!(json["path"], "/p3/some/path");
    assert_eq!(json["path_info"], "/some/path");
    assert_eq!(json["body_bytes"], 100_000);

    // The p2 component in the same server; default_top_k = 3 comes from [variables].
    let reply = server.post("/classify/efficientnet-lite0-int8", &photo("coffee.png"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    let got = check_predictions(&reply.json(), "efficientnet-lite0-int8", 3);
    assert_eq!(got[0], 967, "espresso");
}

#[test]
fn a_component_cannot_load_a_model_outside_its_ai_models() {
    let server = two_worlds();
    // The model exists (its metadata is mounted) but is not in this component's ai_models.
    let message = server
        .post("/classify/efficientnet-lite0", &photo("coffee.png"))
        .assert_error(404);
    assert!(
        message.contains("is available to this function"),
        "{message}"
    );
    assert_eq!(
        server
            .post("/classify/efficientnet-lite0-int8", &photo("coffee.png"))
            .status,
        200
    );
}

#[test]
fn spin_variables_come_from_the_environment() {
    build_test_components();
    let manifest = root().join("tests/fixtures/two-worlds.toml");
    let models = root().join("models");
    let server = Server::start_with(
        &[
            "--manifest",
            manifest.to_str().unwrap(),
            "--models",
            models.to_str().unwrap(),
        ],
        &[("SPIN_VARIABLE_DEFAULT_TOP_K", "7")],
    );
    let reply = server.post("/classify/efficientnet-lite0-int8", &photo("coffee.png"));
    check_predictions(&reply.json(), "efficientnet-lite0-int8", 7);
}

#[test]
fn a_panicking_function_gets_a_500_and_the_server_keeps_serving() {
    let server = two_worlds();
    for _ in 0..3 {
        let message = server.post("/panic", b"").assert_error(500);
        assert!(
            message.contains("panic-p2") && message.contains("failed"),
            "{message}"
        );
        let reply = server.post("/classify/efficientnet-lite0-int8", &photo("coffee.png"));
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    assert!(
        server.log().contains("panic-p2 was asked for /panic"),
        "{}",
        server.log()
    );
}
