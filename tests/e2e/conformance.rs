//! The conformance matrix: every model in `models/` on every backend (tract,
//! ONNX Runtime, OpenVINO), through the real server and functions. Each backend
//! must classify the photos like the reference, reach the Fashion-MNIST CNN's
//! accuracy on all 10,000 test images, and embed sentences like the reference;
//! and the backends must agree with each other.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::classify::{check_predictions, reference};
use crate::server::{Server, photo, root};

const BACKENDS: [&str; 3] = ["tract", "onnxruntime", "openvino"];

/// The Fashion-MNIST CNN's accuracy on the test set, in percent, and how far a
/// backend may be from it.
const FASHION_ACCURACY: f64 = 89.1;
const FASHION_TOLERANCE: f64 = 0.2;

/// all-MiniLM-L6-v2 int8's reference cosine similarities (`models/all-minilm-l6-v2/README.md`),
/// and how far a backend may be from them: the int8 model quantises its
/// activations at run time, and backends round differently (measured here:
/// 0.758 to 0.763 for the first pair), as does the reference's setting.
const SENTENCES: [&str; 3] = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "A man is riding a horse.",
];
const REFERENCE_SIMILARITIES: [f64; 2] = [0.7714, 0.2632];
const SIMILARITY_TOLERANCE: f64 = 0.02;

#[test]
fn every_model_on_every_backend() {
    // One server per backend, all serving at once, so the backends are
    // compared on the same run.
    let servers: Vec<(&str, Server)> = BACKENDS
        .iter()
        .map(|&backend| (backend, Server::start(&["--backend", backend])))
        .collect();
    for (backend, server) in &servers {
        assert!(
            server.log().contains(&format!("backend={backend}")),
            "{}",
            server.log()
        );
    }

    let mut top5: HashMap<(&str, &str, &str), Vec<u64>> = HashMap::new();
    let mut embeddings: HashMap<&str, Vec<Vec<f64>>> = HashMap::new();
    for (backend, server) in &servers {
        for model in ["efficientnet-lite0", "efficientnet-lite0-int8"] {
            for (name, got) in classify_photos(server, backend, model) {
                top5.insert((backend, model, name), got);
            }
        }
        for model in ["fashion-mnist-cnn", "fashion-mnist-cnn-int8"] {
            let accuracy = fashion_mnist_accuracy(server, model);
            eprintln!("{model} on {backend}: {accuracy:.2}% of 10000 test images");
            assert!(
                (accuracy - FASHION_ACCURACY).abs() <= FASHION_TOLERANCE,
                "{model} on {backend}: accuracy {accuracy:.2}%, expected {FASHION_ACCURACY} ± {FASHION_TOLERANCE}"
            );
        }
        embeddings.insert(backend, embed_sentences(server, backend));
    }
    // The backends agree: on fp32, the same five classes for every photo; on
    // int8, the same top-1 wherever the reference is decisive.
    let reference = reference();
    for ((backend, model, photo), classes) in &top5 {
        let tract = &top5[&("tract", *model, *photo)];
        if model.ends_with("-int8") {
            let expected = &reference[photo];
            if expected[0].1 - expected[1].1 >= DECISIVE_MARGIN {
                assert_eq!(
                    classes[0], tract[0],
                    "{model} on {photo}: {backend}'s top-1 differs from tract's"
                );
            }
        } else {
            let set = |v: &[u64]| v.iter().copied().collect::<BTreeSet<u64>>();
            assert_eq!(
                set(classes),
                set(tract),
                "{model} on {photo}: {backend}'s top-5 differs from tract's"
            );
        }
    }

    // The backends agree: the same embeddings, to a cosine of 0.99.
    for pair in BACKENDS.windows(2) {
        let (a, b) = (&embeddings[pair[0]], &embeddings[pair[1]]);
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            let cos = cosine(x, y);
            assert!(
                cos >= 0.99,
                "sentence {i}: {} and {} embeddings differ: cosine {cos:.4}",
                pair[0],
                pair[1]
            );
        }
    }
}

/// A photo's fp32 top-1 is decisive when it leads the runner-up by this much.
const DECISIVE_MARGIN: f64 = 0.1;

/// Classifies the six photos, checks each answer against the fp32 reference and
/// returns the top-5 per photo.
///
/// fp32 models: the top-1 must be in the reference top-3 and the reference
/// top-1 in the top-5. int8 models are held to that only where the reference is
/// decisive: ONNX Runtime and OpenVINO run real int8 kernels that round
/// differently (tract evaluates the quantisation in f32), so on an ambiguous
/// photo (page.png: 11% vs 9%) their top-1 may differ; there the top-5 must
/// still share two classes with the reference.
pub fn classify_photos<'a>(
    server: &Server,
    backend: &str,
    model: &str,
) -> Vec<(&'a str, Vec<u64>)> {
    let reference = reference();
    assert_eq!(reference.len(), 6);
    let int8 = model.ends_with("-int8");
    let mut answers = Vec::new();
    for (name, expected) in reference {
        let reply = server.post(&format!("/classify/{model}"), &photo(name));
        assert_eq!(
            reply.status, 200,
            "{model} {name} on {backend}: {}",
            reply.text
        );
        let got = check_predictions(&reply.json(), model, 5);
        let top: Vec<u64> = expected.iter().map(|(i, _)| *i).collect();
        let decisive = expected[0].1 - expected[1].1 >= DECISIVE_MARGIN;
        if !int8 || decisive {
            assert!(
                top[..3].contains(&got[0]),
                "{model} on {backend}: {name}: top-1 {} is not in the reference top-3 {:?}",
                got[0],
                &top[..3]
            );
            assert!(
                got.contains(&top[0]),
                "{model} on {backend}: {name}: reference top-1 {} is not in the top-5 {got:?}",
                top[0]
            );
        } else {
            let shared = got.iter().filter(|i| top.contains(i)).count();
            assert!(
                shared >= 2,
                "{model} on {backend}: {name}: top-5 {got:?} shares {shared} classes with the reference {top:?}"
            );
        }
        answers.push((name, got));
    }
    answers
}

/// The Fashion-MNIST test set as PNG files, with their labels.
fn fashion_mnist() -> &'static [(Vec<u8>, u8)] {
    static SET: OnceLock<Vec<(Vec<u8>, u8)>> = OnceLock::new();
    SET.get_or_init(|| {
        let dir = root().join("tests/data/fashion-mnist");
        let images = gunzip(&dir.join("t10k-images-idx3-ubyte.gz"));
        let labels = gunzip(&dir.join("t10k-labels-idx1-ubyte.gz"));
        // IDX: a magic number, then big-endian dimensions, then the bytes.
        assert_eq!(images[..4], [0, 0, 8, 3]);
        assert_eq!(labels[..4], [0, 0, 8, 1]);
        let count = u32::from_be_bytes(images[4..8].try_into().unwrap()) as usize;
        assert_eq!(count, 10_000);
        let pixels = &images[16..];
        let labels = &labels[8..];
        (0..count)
            .map(|i| {
                let image =
                    image::GrayImage::from_raw(28, 28, pixels[i * 784..(i + 1) * 784].to_vec())
                        .unwrap();
                let mut png = std::io::Cursor::new(Vec::new());
                image.write_to(&mut png, image::ImageFormat::Png).unwrap();
                (png.into_inner(), labels[i])
            })
            .collect()
    })
}

fn gunzip(path: &std::path::Path) -> Vec<u8> {
    let file = std::fs::File::open(path).unwrap();
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

/// The percentage of the 10,000 test images whose top-1 class is right, asked
/// over four connections at once.
fn fashion_mnist_accuracy(server: &Server, model: &str) -> f64 {
    let set = fashion_mnist();
    let path = format!("/classify/{model}?top_k=1");
    let correct: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = set
            .chunks(set.len().div_ceil(4))
            .map(|chunk| {
                let path = &path;
                scope.spawn(move || {
                    chunk
                        .iter()
                        .filter(|(png, label)| {
                            let reply = server.post(path, png);
                            assert_eq!(reply.status, 200, "{model}: {}", reply.text);
                            let json = reply.json();
                            json["predictions"][0]["index"].as_u64() == Some(u64::from(*label))
                        })
                        .count()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    100.0 * correct as f64 / set.len() as f64
}

/// Embeds the reference sentences in one request and checks their similarities.
fn embed_sentences(server: &Server, backend: &str) -> Vec<Vec<f64>> {
    let body = json!({ "input": SENTENCES }).to_string();
    let reply = server.post("/embed/all-minilm-l6-v2", body.as_bytes());
    assert_eq!(reply.status, 200, "on {backend}: {}", reply.text);
    let json: Value = reply.json();
    assert_eq!(json["model"], "all-minilm-l6-v2");
    assert_eq!(json["dimensions"], 384);
    let embeddings: Vec<Vec<f64>> = json["embeddings"]
        .as_array()
        .expect("embeddings")
        .iter()
        .map(|e| {
            e.as_array()
                .expect("an embedding")
                .iter()
                .map(|v| v.as_f64().expect("a number"))
                .collect()
        })
        .collect();
    assert_eq!(embeddings.len(), SENTENCES.len());
    for e in &embeddings {
        assert_eq!(e.len(), 384);
        let norm = e.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "not L2-normalised: {norm}");
    }
    for (i, want) in REFERENCE_SIMILARITIES.iter().enumerate() {
        let got = cosine(&embeddings[0], &embeddings[i + 1]);
        eprintln!(
            "all-minilm-l6-v2 on {backend}: similarity 0-{} = {got:.4}",
            i + 1
        );
        assert!(
            (got - want).abs() <= SIMILARITY_TOLERANCE,
            "on {backend}: cos(sentence 0, sentence {}) = {got:.4}, the reference is {want}",
            i + 1
        );
    }
    // One text alone gives the same embedding as among others.
    let body = json!({ "input": SENTENCES[2] }).to_string();
    let reply = server.post("/embed/all-minilm-l6-v2", body.as_bytes());
    assert_eq!(reply.status, 200, "on {backend}: {}", reply.text);
    let alone: Vec<f64> = reply.json()["embeddings"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let cos = cosine(&alone, &embeddings[2]);
    assert!(cos > 0.99999, "on {backend}: alone vs among others: {cos}");
    embeddings
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}
