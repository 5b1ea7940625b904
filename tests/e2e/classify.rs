//! Classification of real photos: answers, top-k, formats, concurrency. The
//! photos on every model and backend are in `conformance.rs`.

use std::collections::HashMap;

use serde_json::Value;

use crate::server::{Server, photo, root};

/// `reference-top5.json`: photo -> the fp32 model's top-5 classes and probabilities.
pub fn reference() -> HashMap<&'static str, Vec<(u64, f64)>> {
    let text =
        std::fs::read_to_string(root().join("tests/data/images/reference-top5.json")).unwrap();
    let json: HashMap<String, Vec<(u64, String, f64)>> = serde_json::from_str(&text).unwrap();
    json.into_iter()
        .map(|(photo, top)| {
            let photo: &'static str = Box::leak(photo.into_boxed_str());
            (photo, top.into_iter().map(|(i, _, p)| (i, p)).collect())
        })
        .collect()
}

fn labels() -> Vec<String> {
    std::fs::read_to_string(root().join("models/efficientnet-lite0/labels.txt"))
        .unwrap()
        .lines()
        .map(|l| l.split(',').next().unwrap().trim().to_string())
        .collect()
}

/// Checks the shape of an answer and returns its class indices, best first.
pub fn check_predictions(json: &Value, model: &str, k: usize) -> Vec<u64> {
    assert_eq!(json["model"], model, "{json}");
    let predictions = json["predictions"].as_array().expect("predictions");
    assert_eq!(predictions.len(), k, "{json}");
    let labels = labels();
    let mut previous = f64::INFINITY;
    let mut total = 0.0;
    let mut indices = Vec::new();
    for p in predictions {
        let index = p["index"].as_u64().expect("index");
        let score = p["score"].as_f64().expect("score");
        assert!((0.0..=1.0).contains(&score) && score <= previous, "{json}");
        assert_eq!(p["label"], labels[index as usize], "{json}");
        previous = score;
        total += score;
        indices.push(index);
    }
    assert!(
        total <= 1.0 + 1e-4,
        "softmax probabilities sum past 1: {json}"
    );
    indices
}

/// `Server-Timing` splits a request: the host's instantiation first, then the
/// function's stages, each a duration in milliseconds.
#[test]
fn answers_say_where_the_time_went() {
    let server = Server::start(&[]);
    let reply = server.post("/classify/efficientnet-lite0", &photo("grace_hopper.jpg"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    let header = reply.server_timing.expect("a Server-Timing header");
    let stages: Vec<(&str, f64)> = header
        .split(", ")
        .map(|entry| {
            let (name, dur) = entry
                .split_once(";dur=")
                .unwrap_or_else(|| panic!("{header}"));
            (name, dur.parse().unwrap_or_else(|_| panic!("{header}")))
        })
        .collect();
    let names: Vec<&str> = stages.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        [
            "instantiate",
            "metadata",
            "decode",
            "preprocess",
            "inference",
            "labels",
            "postprocess"
        ],
        "{header}"
    );
    assert!(stages.iter().all(|(_, ms)| *ms >= 0.0), "{header}");
    let inference = stages[4].1;
    assert!(inference > 0.1, "an inference takes time: {header}");
}

#[test]
fn the_cat_is_a_cat_and_top_k_is_honoured() {
    let server = Server::start(&[]);
    let reply = server.post(
        "/classify/efficientnet-lite0?top_k=2",
        &photo("chelsea.png"),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    let got = check_predictions(&reply.json(), "efficientnet-lite0", 2);
    // 281 tabby, 282 tiger cat, 285 Egyptian cat.
    assert!([281, 282, 285].contains(&got[0]), "{got:?}");

    // More than there are classes: all of them.
    let reply = server.post(
        "/classify/efficientnet-lite0?top_k=5000",
        &photo("chelsea.png"),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    let all = check_predictions(&reply.json(), "efficientnet-lite0", 1000);
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
}

#[test]
fn other_image_formats_and_colour_models_are_converted() {
    let server = Server::start(&[]);
    let rgb = image::load_from_memory(&photo("chelsea.png")).unwrap();
    let mut variants: Vec<(&str, Vec<u8>)> = Vec::new();
    for (name, format, image) in [
        ("webp", image::ImageFormat::WebP, rgb.clone()),
        ("gif (palette)", image::ImageFormat::Gif, rgb.clone()),
        ("bmp", image::ImageFormat::Bmp, rgb.clone()),
        (
            "png with alpha",
            image::ImageFormat::Png,
            image::DynamicImage::ImageRgba8(rgb.to_rgba8()),
        ),
        ("jpeg", image::ImageFormat::Jpeg, rgb.clone()),
    ] {
        let mut bytes = std::io::Cursor::new(Vec::new());
        image.write_to(&mut bytes, format).unwrap();
        variants.push((name, bytes.into_inner()));
    }
    for (name, bytes) in variants {
        let reply = server.post("/classify/efficientnet-lite0", &bytes);
        assert_eq!(reply.status, 200, "{name}: {}", reply.text);
        let got = check_predictions(&reply.json(), "efficientnet-lite0", 5);
        assert!([281, 282, 285].contains(&got[0]), "{name}: {got:?}");
    }
    // Grayscale: camera.png is single-channel.
    let reply = server.post("/classify/efficientnet-lite0", &photo("camera.png"));
    assert_eq!(
        check_predictions(&reply.json(), "efficientnet-lite0", 5)[0],
        872
    );
}

#[test]
fn thirty_two_concurrent_requests_are_all_answered_correctly() {
    let server = Server::start(&[]);
    let photos = [
        ("chelsea.png", [281u64, 282, 285]),
        ("coffee.png", [967, 968, 967]),
    ];
    let bodies: Vec<Vec<u8>> = photos.iter().map(|(name, _)| photo(name)).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..32)
            .map(|i| {
                let (server, bodies, photos) = (&server, &bodies, &photos);
                scope.spawn(move || {
                    let which = i % 2;
                    let model = ["efficientnet-lite0", "efficientnet-lite0-int8"][i / 2 % 2];
                    let reply = server.post(&format!("/classify/{model}"), &bodies[which]);
                    assert_eq!(reply.status, 200, "request {i}: {}", reply.text);
                    let got = check_predictions(&reply.json(), model, 5);
                    assert!(photos[which].1.contains(&got[0]), "request {i}: {got:?}");
                })
            })
            .collect();
        for handle in handles {
            handle.join().expect("a request failed");
        }
    });
}
