//! Times each step of preparing a photo, repeated, natively or in wasm:
//! `cargo run --release --example prep-timing -- PHOTO...` or, for wasm,
//! `cargo build --release --target wasm32-wasip2 --example prep-timing` and
//! `wasmtime run --dir . target/.../prep-timing.wasm PHOTO...`.
//! The first round shows what a fresh instance pays (memory growth).

use std::time::Instant;

use image_prep::{Color, Layout, Preprocess};

fn main() {
    let p = Preprocess {
        resize_shorter_side: 256,
        crop: [224, 224],
        color: Color::Rgb,
        mean: vec![127.0; 3],
        std: vec![128.0; 3],
        layout: Layout::Nchw,
    };
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).expect("readable photo");
        for round in 0..5 {
            let t0 = Instant::now();
            let image = image_prep::decode_for(&bytes, &p).expect("decodable");
            let t1 = Instant::now();
            let tensor = image_prep::to_tensor(&image, &p).expect("preprocessed");
            let t2 = Instant::now();
            println!(
                "{path} round {round}: decode {:.2} ms, preprocess {:.2} ms ({} values)",
                (t1 - t0).as_secs_f64() * 1e3,
                (t2 - t1).as_secs_f64() * 1e3,
                tensor.values.len()
            );
        }
    }
}
