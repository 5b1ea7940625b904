//! The OCR function (`functions/ocr`) against what PaddleOCR's own pipeline
//! (PyPI `rapidocr-onnxruntime` 1.4.4, the package the models come from)
//! reads in the same images (`tests/data/ocr/reference.json`, made by
//! `tests/ocr/make_reference.py`), on every backend; and how it reads what
//! clients send.

use std::sync::OnceLock;

use serde_json::Value;

use crate::server::{Server, form_upload, root};

/// The most characters in 100 of the package's text that may differ.
///
/// The function reproduces the package's pipeline step by step, but not
/// bit for bit: OpenCV resizes 8-bit images in fixed point (we in floating
/// point: a grey level apart here and there), pyclipper grows a box on an
/// integer grid (we grow the exact rectangle: up to a pixel of the
/// detector's map apart), and the backends' kernels round differently by
/// CPU. None of that moves a box by more than a pixel or two, but it does
/// change the recogniser's input slightly, and a character the model reads
/// with a small margin over the next candidate (a thin space between two
/// words, `O` against `0`) can then flip. Two characters in 100 allow such a
/// flip on every image's shortest line; a preprocessing bug costs far more
/// (RGB instead of BGR, a missing normalisation, the wrong padding, or no
/// direction classifier each garble whole lines).
const MAX_CHARACTER_ERROR_RATE: f64 = 0.02;

/// How far a box's corner may be from the package's, in the image's pixels:
/// the detector's map is the image scaled up (1.9 to 4.3 times for these
/// images), a corner is rounded to a map pixel and then to an image pixel,
/// and growing the box on pyclipper's grid can move it a map pixel more:
/// two image pixels, one more for a map pixel of probability that a
/// backend puts on the other side of the threshold.
const MAX_CORNER_DISTANCE: f64 = 3.0;

/// The reference, parsed once.
fn reference() -> &'static Value {
    static REFERENCE: OnceLock<Value> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let text = std::fs::read_to_string(root().join("tests/data/ocr/reference.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    })
}

fn image(entry: &Value) -> Vec<u8> {
    std::fs::read(root().join(entry["path"].as_str().unwrap())).unwrap()
}

/// Edit distance between two strings, by characters.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

fn corners(line: &Value) -> Vec<(f64, f64)> {
    line["box"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
        .collect()
}

/// The milliseconds of one stage in a `Server-Timing` header.
fn stage_ms(timing: &str, stage: &str) -> f64 {
    timing
        .split(", ")
        .find_map(|s| s.strip_prefix(&format!("{stage};dur=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {stage} in {timing:?}"))
}

/// Reads every reference image on `server` (whose log names `backend`) and
/// checks the lines against the package's: the same number, in the same
/// order, boxes in the same place, and the text within the error rate.
pub fn check_against_rapidocr(server: &Server, backend: &str) {
    let (mut errors, mut characters) = (0, 0);
    for (name, entry) in reference()["images"].as_object().unwrap() {
        let Some(expected) = entry["lines"].as_array() else {
            continue;
        };
        let reply = server.post("/ocr/pp-ocrv4", &image(entry));
        assert_eq!(reply.status, 200, "{backend} {name}: {}", reply.text);
        let answer = reply.json();
        let got = answer["lines"].as_array().unwrap();
        assert_eq!(answer["width"], entry["size"][0], "{backend} {name}");
        assert_eq!(answer["height"], entry["size"][1], "{backend} {name}");
        let text = |lines: &[Value]| {
            lines
                .iter()
                .map(|l| l["text"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
                .join("\n")
        };
        let (ours, theirs) = (text(got), text(expected));
        assert_eq!(answer["text"], ours.as_str());
        let distance = levenshtein(&ours, &theirs);
        let rate = distance as f64 / theirs.chars().count() as f64;
        assert_eq!(
            got.len(),
            expected.len(),
            "{backend} {name}: read {ours:?}, rapidocr {theirs:?}"
        );
        assert!(
            rate <= MAX_CHARACTER_ERROR_RATE,
            "{backend} {name}: read {ours:?}, rapidocr {theirs:?}"
        );
        let mut farthest = 0.0f64;
        for (line, reference_line) in got.iter().zip(expected) {
            let far = corners(line)
                .iter()
                .zip(corners(reference_line))
                .map(|(a, b)| (a.0 - b.0).hypot(a.1 - b.1))
                .fold(0.0, f64::max);
            assert!(
                far <= MAX_CORNER_DISTANCE,
                "{backend} {name}: {line} is {far:.1} px from rapidocr's {reference_line}"
            );
            farthest = farthest.max(far);
            let confidence = line["confidence"].as_f64().unwrap();
            assert!((0.5..=1.0).contains(&confidence), "{line}");
        }
        let timing = reply
            .header("server-timing")
            .unwrap_or_default()
            .to_string();
        eprintln!(
            "ocr {name} on {backend}: {} lines, character error rate {rate:.4} ({distance} of {}) against rapidocr, corners within {farthest:.1} px; detect {:.1} ms, classify {:.1} ms, recognise {:.1} ms",
            got.len(),
            theirs.chars().count(),
            stage_ms(&timing, "detect"),
            stage_ms(&timing, "classify"),
            stage_ms(&timing, "recognise"),
        );
        // Upside-down lines are turned before they are read.
        let turned = got.iter().filter(|l| l["angle"] == 180).count();
        let expected_turned = if name == "upside-down.png" {
            got.len()
        } else {
            0
        };
        assert_eq!(turned, expected_turned, "{backend} {name}: {answer}");
        errors += distance;
        characters += theirs.chars().count();
    }
    eprintln!(
        "ocr on {backend}: character error rate {:.4} over all images ({errors} of {characters})",
        errors as f64 / characters as f64
    );
}

#[test]
fn images_are_read_as_clients_send_them_and_bad_ones_refused() {
    let server = Server::start(&[]);
    let page = &reference()["images"]["page.png"];
    let png = image(page);
    let plain = server.post("/ocr/pp-ocrv4", &png);
    assert_eq!(plain.status, 200, "{}", plain.text);
    let plain = plain.json();
    assert_eq!(plain["lines"].as_array().unwrap().len(), 5, "{plain}");

    // A form upload reads the same.
    let upload = form_upload("page.png", "image/png", &png);
    let reply = server.send(
        "POST",
        "/ocr/pp-ocrv4",
        &[("content-type", "multipart/form-data; boundary=XyZ")],
        &upload,
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json(), plain);
    assert!(
        reply.header("server-timing").is_some_and(|t| [
            "decode",
            "detect",
            "crop",
            "classify",
            "recognise"
        ]
        .iter()
        .all(|s| t.contains(&format!("{s};dur=")))),
        "{:?}",
        reply.header("server-timing")
    );

    // An image with no text has no lines; a JPEG is read as a PNG is.
    let mut grey = Vec::new();
    image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(300, 200, image::Luma([200])))
        .write_to(
            &mut std::io::Cursor::new(&mut grey),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    let reply = server.post("/ocr/pp-ocrv4", &grey);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["lines"], serde_json::json!([]));
    assert_eq!(reply.json()["text"], "");

    // Bad input: a clear JSON error, and the server keeps serving.
    let crowded = &reference()["images"]["crowded.png"];
    assert!(crowded["lines_found"].as_u64().unwrap() > 400);
    let huge =
        std::fs::read(root().join("tests/data/images/hostile/bomb-30000x30000.png")).unwrap();
    for (method, path, body, status, says) in [
        (
            "POST",
            "/ocr/pp-ocrv4",
            &image(crowded)[..],
            413,
            "at most 400",
        ),
        (
            "POST",
            "/ocr/pp-ocrv4",
            &huge[..],
            413,
            "larger than this service decodes",
        ),
        ("POST", "/ocr/pp-ocrv4", b"{\"image\": 1}", 400, "image"),
        ("POST", "/ocr/pp-ocrv4", b"", 400, "no image"),
        ("POST", "/ocr/pp-ocrv4?lang=fr", &png[..], 400, "lang"),
        ("POST", "/ocr/nope", &png[..], 404, "nope"),
        // The recogniser alone is no pipeline.
        (
            "POST",
            "/ocr/pp-ocrv4-rec",
            &png[..],
            400,
            "not an OCR detector",
        ),
        ("GET", "/ocr/pp-ocrv4", b"", 405, "POST"),
    ] {
        let reply = server.send(method, path, &[], body);
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.text);
        let error = reply.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(error.contains(says), "{method} {path}: {error}");
    }
    let again = server.post("/ocr/pp-ocrv4", &png);
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json(), plain);
}
