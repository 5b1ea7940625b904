//! Bad requests get a clear JSON error with a fitting status, and the server
//! keeps serving.

use crate::server::{Server, photo};

#[test]
fn bad_requests_get_json_errors_and_the_server_keeps_serving() {
    let server = Server::start(&[]);
    let path = "/classify/efficientnet-lite0";

    let message = server.post(path, b"").assert_error(400);
    assert!(message.contains("empty"), "{message}");

    let message = server
        .post(path, b"this is not an image at all")
        .assert_error(400);
    assert!(message.contains("format"), "{message}");

    let png = photo("chelsea.png");
    let message = server.post(path, &png[..png.len() / 3]).assert_error(400);
    assert!(message.contains("decode"), "{message}");

    let message = server
        .post("/classify/no-such-model", &png)
        .assert_error(404);
    assert!(message.contains("no-such-model"), "{message}");
    server.post("/classify/", &png).assert_error(404);
    server
        .post("/classify/..%2F..%2Fetc", &png)
        .assert_error(404);

    let reply = server.get(path);
    reply.assert_error(405);
    assert_eq!(reply.allow.as_deref(), Some("POST"));

    for bad in ["0", "-1", "abc", "1.5", ""] {
        let message = server
            .post(&format!("{path}?top_k={bad}"), &png)
            .assert_error(400);
        assert!(message.contains("top_k"), "{message}");
    }

    // A model that is not served is a 404 in every function, whatever its
    // name's length or characters: longer than a file name may be (ENAMETOOLONG
    // once answered 500), a file where a model folder would be, characters a
    // model name never has.
    let long = "a".repeat(5000);
    let names = [
        long.as_str(),
        &long[..256],
        &long[..255],
        "README.md",
        "%C3%A9t%C3%A9",
        "a%00b",
        "con",
    ];
    for name in names {
        for (method, route, body) in [
            ("POST", "classify", &png[..]),
            ("POST", "embed", &br#"{"input": "hello"}"#[..]),
            ("GET", "v2/models", &b""[..]),
        ] {
            let path = format!("/{route}/{name}");
            let reply = server.send(method, &path, &[], body);
            let what = format!(
                "{method} /{route}/<{} bytes: {}...>",
                name.len(),
                &name[..name.len().min(12)]
            );
            assert_eq!(reply.status, 404, "{what}: {}", reply.text);
            let message = reply.assert_error(404);
            assert!(
                message.len() < 300,
                "{what}: a long name is not echoed whole: {message}"
            );
        }
    }

    let message = server.post("/nothing/here", &png).assert_error(404);
    assert!(message.contains("/nothing/here"), "{message}");
    server.get("/").assert_error(404);

    // Still serving.
    assert_eq!(server.post(path, &png).status, 200);
}
