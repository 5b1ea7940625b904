//! Hostile and unusual images (tests/data/images/hostile/, see its README),
//! odd `top_k`s, methods and content types: each gets a 4xx JSON error that
//! names the problem, or the right answer. Never a 5xx, and the server keeps
//! serving.

use std::time::{Duration, Instant};

use crate::classify::check_predictions;
use crate::server::{Reply, Server, photo, root};

const PATH: &str = "/classify/efficientnet-lite0";
const MODEL: &str = "efficientnet-lite0";
/// 281 tabby, 282 tiger cat, 285 Egyptian cat: chelsea is one of them.
const CATS: [u64; 3] = [281, 282, 285];
const TRIPOD: u64 = 872;

fn hostile(name: &str) -> Vec<u8> {
    std::fs::read(root().join("tests/data/images/hostile").join(name)).unwrap()
}

fn png(image: image::DynamicImage) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    bytes.into_inner()
}

/// A request with the given method and `Content-Type` (none if `None`):
/// `Server::post` always says `application/octet-stream`.
fn send(
    server: &Server,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Reply {
    let headers: Vec<(&str, &str)> = content_type
        .map(|t| ("content-type", t))
        .into_iter()
        .collect();
    server.send(method, path, &headers, body)
}

/// Every answer seen, to check at the end that none was a 5xx.
struct Log(Vec<(String, u16)>);

impl Log {
    fn note(&mut self, what: &str, reply: Reply) -> Reply {
        assert!(
            reply.status < 500,
            "{what}: {} {}",
            reply.status,
            reply.text
        );
        self.0.push((what.to_string(), reply.status));
        reply
    }
}

/// The top classes of a 200 answer with `k` predictions.
fn classes(what: &str, reply: &Reply, k: usize) -> Vec<u64> {
    assert_eq!(reply.status, 200, "{what}: {}", reply.text);
    check_predictions(&reply.json(), MODEL, k)
}

#[test]
fn hostile_images_get_4xx_json_errors_or_right_answers_never_5xx() {
    let server = Server::start(&[]);
    let mut log = Log(Vec::new());

    // Nothing, noise, and images cut short.
    let message = log.note("empty", server.post(PATH, b"")).assert_error(400);
    assert!(message.contains("empty"), "{message}");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..50_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let message = log
        .note("noise", server.post(PATH, &noise))
        .assert_error(400);
    assert!(message.contains("format"), "{message}");
    let mut fake_jpeg = b"\xff\xd8\xff\xe0".to_vec();
    fake_jpeg.extend(&noise);
    let message = log
        .note(
            "noise behind a JPEG's magic number",
            server.post(PATH, &fake_jpeg),
        )
        .assert_error(400);
    assert!(message.contains("decode"), "{message}");
    let message = log
        .note(
            "truncated PNG",
            server.post(PATH, &hostile("chelsea-truncated.png")),
        )
        .assert_error(400);
    assert!(message.contains("decode"), "{message}");
    // A JPEG cut in its scan decodes with the missing rows filled in (as
    // libjpeg and browsers do): an answer, for the part that arrived.
    let reply = log.note(
        "truncated JPEG",
        server.post(PATH, &hostile("grace_hopper-truncated.jpg")),
    );
    classes("truncated JPEG", &reply, 5);

    // Decompression bombs: refused from the header, quickly, with 413.
    for (name, size) in [
        ("bomb-30000x30000.png", "30000x30000"),
        ("bomb-30000x30000.jpg", "30000x30000"),
        ("bomb-30000x30000.gif", "30000x30000"),
        ("bomb-30000x30000.bmp", "30000x30000"),
        ("bomb-16383x16383.webp", "16383x16383"),
    ] {
        let start = Instant::now();
        let message = log
            .note(name, server.post(PATH, &hostile(name)))
            .assert_error(413);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{name}: {:?}",
            start.elapsed()
        );
        assert!(message.contains(size), "{name}: {message}");
        assert!(message.contains("52428800"), "{name}: the limit: {message}");
    }

    // Unusual but valid images: the right answer.
    let small = log.note(
        "small PNG",
        server.post(PATH, &hostile("chelsea-small.png")),
    );
    let reference = classes("small PNG", &small, 5);
    assert!(CATS.contains(&reference[0]), "{reference:?}");
    let rgb16 = log.note(
        "RGB16 PNG",
        server.post(PATH, &hostile("chelsea-rgb16.png")),
    );
    // 16-bit samples are the 8-bit ones times 257: the very same pixels.
    assert_eq!(classes("RGB16 PNG", &rgb16, 5), reference);

    let gray16 = hostile("camera-gray16.png");
    let gray8 = png(image::DynamicImage::ImageLuma8(
        image::load_from_memory(&gray16).unwrap().to_luma8(),
    ));
    let got16 = classes(
        "grey16 PNG",
        &log.note("grey16 PNG", server.post(PATH, &gray16)),
        5,
    );
    let got8 = classes(
        "grey8 PNG",
        &log.note("grey8 PNG", server.post(PATH, &gray8)),
        5,
    );
    assert_eq!(got16[0], TRIPOD, "{got16:?}");
    assert_eq!(got16[0], got8[0], "{got16:?} vs {got8:?}");

    let gray_alpha = png(image::DynamicImage::ImageLumaA8(
        image::load_from_memory(&gray16).unwrap().to_luma_alpha8(),
    ));
    let got = classes(
        "grey+alpha PNG",
        &log.note("grey+alpha PNG", server.post(PATH, &gray_alpha)),
        5,
    );
    assert_eq!(got[0], TRIPOD, "{got:?}");

    let rgba = png(image::DynamicImage::ImageRgba8(
        image::load_from_memory(&hostile("chelsea-small.png"))
            .unwrap()
            .to_rgba8(),
    ));
    for (what, bytes) in [
        ("RGBA PNG", rgba),
        ("palette PNG", hostile("chelsea-palette.png")),
        ("CMYK JPEG", hostile("chelsea-cmyk.jpg")),
        (
            "animated GIF (first frame: the cat)",
            hostile("chelsea-animated.gif"),
        ),
    ] {
        let got = classes(what, &log.note(what, server.post(PATH, &bytes)), 5);
        assert!(CATS.contains(&got[0]), "{what}: {got:?}");
        assert!(
            got[..3].contains(&reference[0]),
            "{what}: {got:?} vs {reference:?}"
        );
    }

    // top_k: past the classes, all of them (1000); past u64, a 400.
    let cat = photo("chelsea.png");
    let reply = log.note(
        "top_k=1000000",
        server.post(&format!("{PATH}?top_k=1000000"), &cat),
    );
    classes("top_k=1000000", &reply, 1000);
    let reply = log.note(
        "top_k=u64::MAX",
        server.post(&format!("{PATH}?top_k=18446744073709551615"), &cat),
    );
    classes("top_k=u64::MAX", &reply, 1000);
    let message = log
        .note(
            "top_k=2^64",
            server.post(&format!("{PATH}?top_k=18446744073709551616"), &cat),
        )
        .assert_error(400);
    assert!(message.contains("top_k"), "{message}");

    // Methods: POST only.
    let reply = log.note("GET", server.get(PATH));
    reply.assert_error(405);
    assert_eq!(reply.allow.as_deref(), Some("POST"));
    let reply = log.note("PUT", send(&server, "PUT", PATH, Some("image/png"), &cat));
    reply.assert_error(405);
    assert_eq!(reply.allow.as_deref(), Some("POST"));

    // An image is classified whatever its Content-Type says: curl's
    // --data-binary sends application/x-www-form-urlencoded, and clients
    // label raw uploads loosely.
    for content_type in [
        Some("image/png"),
        Some("image/jpeg"),
        Some("IMAGE/PNG; name=chelsea.png"),
        Some("application/octet-stream"),
        None,
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
        Some("application/json"),
    ] {
        let what = format!("Content-Type {content_type:?}");
        let reply = log.note(&what, send(&server, "POST", PATH, content_type, &cat));
        let got = classes(&what, &reply, 5);
        assert!(CATS.contains(&got[0]), "{what}: {got:?}");
    }
    // A form upload, as `curl -F file=@chelsea.png` sends it (a text field
    // first, then the file): its file is classified.
    let boundary = "------------------------4c1f2bd5d0a4e6c7";
    let mut form = Vec::new();
    form.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\na cat\r\n")
            .as_bytes(),
    );
    form.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"chelsea.png\"\r\nContent-Type: image/png\r\n\r\n").as_bytes(),
    );
    form.extend_from_slice(&cat);
    form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let multipart = format!("multipart/form-data; boundary={boundary}");
    let reply = log.note(
        "a form upload",
        send(&server, "POST", PATH, Some(&multipart), &form),
    );
    let got = classes("a form upload", &reply, 5);
    assert!(CATS.contains(&got[0]), "form upload: {got:?}");
    // A form that is not one, or holds no file: 400, saying so.
    for (what, body) in [
        ("raw bytes labelled as a form", cat.clone()),
        (
            "a form without a file",
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb\r\n--{boundary}--\r\n").into_bytes(),
        ),
    ] {
        let message = log
            .note(what, send(&server, "POST", PATH, Some(&multipart), &body))
            .assert_error(400);
        assert!(message.contains("multipart/form-data"), "{what}: {message}");
    }
    // A body that is not an image and does not claim to be one: 415.
    for (content_type, body) in [
        ("application/json", &br#"{"image": "chelsea.png"}"#[..]),
        ("text/plain", b"a cat"),
        ("application/x-www-form-urlencoded", b"image=chelsea.png"),
    ] {
        let what = format!("Content-Type {content_type}");
        let message = log
            .note(&what, send(&server, "POST", PATH, Some(content_type), body))
            .assert_error(415);
        assert!(
            message.contains("image/*") && message.contains("multipart/form-data"),
            "{what}: {message}"
        );
        assert!(message.contains(content_type), "{what}: {message}");
    }

    // Still serving, and nothing was a 5xx.
    let reply = log.note("a good request at the end", server.post(PATH, &cat));
    let got = classes("a good request at the end", &reply, 5);
    assert!(CATS.contains(&got[0]), "{got:?}");
    assert!(log.0.iter().all(|(_, status)| *status < 500), "{:?}", log.0);
    assert!(!server.log().contains("panicked"), "{}", server.log());
}
