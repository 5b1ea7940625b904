//! The image path of `image-classify`, on the bytes of a request body: decode
//! (`decode_for`, with EfficientNet-Lite0's preprocessing, so large JPEGs take
//! the scaled path) and build the input tensor (`to_tensor`).
//!
//! A finding is any panic (a trap in the wasm function, hence a 500), any
//! allocation past libFuzzer's `-malloc_limit_mb` (the decode limit is
//! 384 MiB), a timeout, or an answer that breaks the contract: an error that
//! is not the request's fault (`BadImage` or `TooLarge`), an image past the
//! pixel limit, or a tensor of the wrong shape or with non-finite values.

#![no_main]

use std::sync::LazyLock;

use image_prep::{ClassifierSpec, Error, MAX_PIXELS, MAX_SIDE};
use libfuzzer_sys::fuzz_target;

static SPEC: LazyLock<ClassifierSpec> = LazyLock::new(|| {
    ClassifierSpec::parse(
        "efficientnet-lite0",
        "models/efficientnet-lite0/model.toml",
        include_str!("../../models/efficientnet-lite0/model.toml"),
    )
    .expect("EfficientNet-Lite0's model.toml is a classifier's")
});

fuzz_target!(|data: &[u8]| {
    let p = &SPEC.preprocess;
    match image_prep::decode_for(data, p) {
        Ok(image) => {
            let (w, h) = image.dimensions();
            assert!(w >= 1 && h >= 1, "decoded an empty {w}x{h} image");
            assert!(
                u64::from(w) * u64::from(h) <= MAX_PIXELS && w.max(h) <= MAX_SIDE,
                "decoded {w}x{h}, past the limits"
            );
            let tensor =
                image_prep::to_tensor(&image, p).expect("any decoded image makes a tensor");
            let [cw, ch] = p.crop;
            assert_eq!(tensor.dims, [1, 3, ch, cw]);
            assert_eq!(tensor.values.len(), (3 * cw * ch) as usize);
            assert!(tensor.values.iter().all(|v| v.is_finite()));
        }
        Err(Error::BadImage(m) | Error::TooLarge(m)) => assert!(!m.is_empty()),
        Err(e) => panic!("not the request's fault: {e:?}"),
    }
});
