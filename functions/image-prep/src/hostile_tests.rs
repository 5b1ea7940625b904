//! Hostile and unusual images: each is refused with a request error
//! (`BadImage`, `TooLarge`) or decoded correctly, never a panic, and a
//! decompression bomb is refused before its pixels are allocated. The files
//! are in `tests/data/images/hostile/` (see its README).

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use image::{DynamicImage, RgbImage};

use crate::spec::{Color, Layout, Preprocess};
use crate::{Error, MAX_PIXELS, decode, decode_for, to_tensor, top_k};

/// Records the largest single allocation each thread makes, so a test can
/// show that refusing a bomb allocated nothing of the size it claims.
struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(layout.size())));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: AllocLayout) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(layout.size())));
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: AllocLayout, new_size: usize) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(new_size)));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Runs `f`, returning its result and the largest allocation it made.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    let out = f();
    (out, LARGEST.with(Cell::get))
}

fn fixture(name: &str) -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/data/images/hostile/"
    );
    std::fs::read(format!("{path}{name}")).unwrap_or_else(|e| panic!("{path}{name}: {e}"))
}

/// EfficientNet-Lite0's preprocessing.
fn efficientnet() -> Preprocess {
    Preprocess {
        resize_shorter_side: 256,
        crop: [224, 224],
        color: Color::Rgb,
        mean: vec![127.0; 3],
        std: vec![128.0; 3],
        layout: Layout::Nchw,
    }
}

/// A preprocessing small enough that the 160x106 fixtures take the scaled
/// JPEG path (shorter side at least twice 32).
fn tiny() -> Preprocess {
    Preprocess {
        resize_shorter_side: 32,
        crop: [28, 28],
        ..efficientnet()
    }
}

/// Mean absolute difference per sample of two images of the same size.
fn mean_difference(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let total: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    total as f64 / a.as_raw().len() as f64
}

fn cat() -> RgbImage {
    decode(&fixture("chelsea-small.png")).unwrap()
}

fn assert_bad(result: Result<RgbImage, Error>, what: &str) -> String {
    match result {
        Err(Error::BadImage(m)) => m,
        Err(other) => panic!("{what}: expected BadImage, got {other:?}"),
        Ok(image) => panic!("{what}: decoded as {:?}", image.dimensions()),
    }
}

fn assert_too_large(result: Result<RgbImage, Error>, what: &str, size: &str) {
    match result {
        Err(Error::TooLarge(m)) => {
            assert!(m.contains(size), "{what}: {m}");
            assert!(m.contains(&MAX_PIXELS.to_string()), "{what}: {m}");
        }
        Err(other) => panic!("{what}: expected TooLarge, got {other:?}"),
        Ok(image) => panic!("{what}: decoded as {:?}", image.dimensions()),
    }
}

#[test]
fn empty_and_random_bytes_are_bad_images() {
    assert_bad(decode(b""), "empty");
    assert_bad(decode_for(b"", &efficientnet()), "empty");
    // Deterministic noise, bare and behind each format's magic number.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    };
    let magics: [&[u8]; 7] = [
        b"",
        b"\xff\xd8\xff",
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
        b"\x89PNG\r\n\x1a\n",
        b"GIF89a",
        b"BM",
        b"RIFF\x00\x01\x00\x00WEBPVP8 ",
    ];
    for magic in magics {
        for len in [1, 7, 64, 1000, 100_000] {
            let mut bytes = magic.to_vec();
            bytes.extend(noise(len));
            for result in [decode(&bytes), decode_for(&bytes, &efficientnet())] {
                // Noise behind a magic number may, rarely, decode: then it
                // must be a real image. Most often it is refused.
                if let Err(e) = result {
                    assert!(
                        matches!(e, Error::BadImage(_) | Error::TooLarge(_)),
                        "{magic:?} + {len}: {e:?}"
                    );
                }
            }
        }
    }
    assert!(assert_bad(decode(&noise(4096)), "noise").contains("format"));

    // What tests/e2e/bad_images.rs sends behind a JPEG's magic number.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut fake_jpeg = b"\xff\xd8\xff\xe0".to_vec();
    fake_jpeg.extend((0..50_000).map(|_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    }));
    let m = assert_bad(decode_for(&fake_jpeg, &efficientnet()), "fake JPEG");
    assert!(m.contains("decode"), "{m}");
}

#[test]
fn truncated_images_are_bad_images_or_decode_whole() {
    // A JPEG cut in its scan: the decoders fill in what is missing (as
    // libjpeg does), or refuse it; either way no panic and the right size.
    let jpeg = fixture("grace_hopper-truncated.jpg");
    for result in [decode(&jpeg), decode_for(&jpeg, &efficientnet())] {
        match result {
            Ok(image) => assert!([(512, 600), (256, 300)].contains(&image.dimensions())),
            Err(e) => assert!(matches!(e, Error::BadImage(_)), "{e:?}"),
        }
    }
    // Cut in its headers: refused.
    assert_bad(decode(&jpeg[..300]), "JPEG cut in its headers");
    assert_bad(
        decode_for(&jpeg[..300], &efficientnet()),
        "JPEG cut in its headers",
    );
    // A PNG cut short: its zlib stream ends early.
    let png = fixture("chelsea-truncated.png");
    assert!(assert_bad(decode(&png), "truncated PNG").contains("decode"));
    assert_bad(decode_for(&png, &efficientnet()), "truncated PNG");
    assert_bad(decode(&png[..20]), "PNG cut in its header");
}

/// A real 8x8 PNG whose IHDR is rewritten to `width`x`height`, its CRC
/// recomputed: a valid header, and a tiny IDAT.
fn png_bomb(width: u32, height: u32) -> Vec<u8> {
    png_header_bomb(width, height, 8, 2)
}

/// As [`png_bomb`], with the IHDR's bit depth and colour type too (a
/// mismatch with the IDAT's data only shows once decoding starts).
fn png_header_bomb(width: u32, height: u32, depth: u8, color_type: u8) -> Vec<u8> {
    let mut png = Vec::new();
    DynamicImage::ImageRgb8(RgbImage::new(8, 8))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    // Signature (8), IHDR length (4), "IHDR" (4), then width and height.
    assert_eq!(&png[12..16], b"IHDR");
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    png[24] = depth;
    png[25] = color_type;
    let crc = crc32fast::hash(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

#[test]
fn decompression_bombs_are_refused_before_any_pixel_is_allocated() {
    let start = Instant::now();
    let bomb = png_bomb(30_000, 30_000);
    assert!(bomb.len() < 200, "{} bytes", bomb.len());
    // The fixture is the same kind of file, made by make_hostile.py.
    let cases = [
        ("built PNG", bomb, "30000x30000"),
        ("PNG", fixture("bomb-30000x30000.png"), "30000x30000"),
        ("JPEG", fixture("bomb-30000x30000.jpg"), "30000x30000"),
        ("GIF", fixture("bomb-30000x30000.gif"), "30000x30000"),
        ("BMP", fixture("bomb-30000x30000.bmp"), "30000x30000"),
        ("WebP", fixture("bomb-16383x16383.webp"), "16383x16383"),
        // Within the side limit, beyond the pixel limit: 8000x8000 is 64 M.
        ("PNG 8000x8000", png_bomb(8_000, 8_000), "8000x8000"),
        // Beyond the side limit, within the pixel limit.
        ("PNG 20000x1", png_bomb(20_000, 1), "20000x1"),
        // Within both, but 16-bit RGBA: 8 bytes a pixel, and 3 more for the
        // conversion to 8-bit RGB, past the memory a decode may take.
        (
            "PNG 7000x7000 RGBA16",
            png_header_bomb(7_000, 7_000, 16, 6),
            "7000x7000",
        ),
    ];
    for (what, bytes, size) in cases {
        let (result, largest) = largest_allocation(|| decode(&bytes));
        assert_too_large(result, what, size);
        // 30000x30000 RGB is 2.7 GB; refusing it allocated less than 1 MiB.
        assert!(largest < 1 << 20, "{what}: allocated {largest} bytes");
        let (result, largest) = largest_allocation(|| decode_for(&bytes, &efficientnet()));
        assert_too_large(result, what, size);
        assert!(largest < 1 << 20, "{what}: allocated {largest} bytes");
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn images_at_the_limits_are_not_refused_for_their_size() {
    // The header check lets through what the limits allow; an 8x8 image
    // claiming 7000x7000 (49 M pixels) then fails only for want of data.
    let m = assert_bad(decode(&png_bomb(7_000, 7_000)), "7000x7000");
    assert!(!m.contains("larger"), "{m}");
    assert!(crate::check_dimensions(16_384, 3_200).is_ok());
    assert!(crate::check_dimensions(16_385, 1).is_err());
    assert!(matches!(
        crate::check_dimensions(0, 10),
        Err(Error::BadImage(_))
    ));
}

#[test]
fn an_animated_gif_gives_its_first_frame() {
    let gif = fixture("chelsea-animated.gif");
    let first = decode(&gif).unwrap();
    assert_eq!(first.dimensions(), (160, 106));
    // The first frame is the cat (palette-quantised), not the coffee or the
    // flat grey of the frames after it.
    let difference = mean_difference(&first, &cat());
    assert!(difference < 6.0, "{difference}");
    let grey = RgbImage::from_pixel(160, 106, image::Rgb([128, 128, 128]));
    assert!(mean_difference(&first, &grey) > 20.0);
    assert_eq!(decode_for(&gif, &efficientnet()).unwrap(), first);
}

#[test]
fn sixteen_bit_pngs_are_scaled_to_eight_bits() {
    // Each 16-bit sample is the 8-bit one times 257: the conversion is exact.
    let rgb16 = fixture("chelsea-rgb16.png");
    assert_eq!(
        image::load_from_memory(&rgb16).unwrap().color(),
        image::ColorType::Rgb16
    );
    assert_eq!(decode(&rgb16).unwrap(), cat());
    assert_eq!(decode_for(&rgb16, &efficientnet()).unwrap(), cat());

    let gray16 = fixture("camera-gray16.png");
    let luma16 = image::load_from_memory(&gray16).unwrap();
    assert_eq!(luma16.color(), image::ColorType::L16);
    let luma16 = luma16.to_luma16();
    let rgb = decode(&gray16).unwrap();
    assert_eq!(rgb.dimensions(), luma16.dimensions());
    for (px, l) in rgb.pixels().zip(luma16.pixels()) {
        let v = (l[0] / 257) as u8;
        assert_eq!(px.0, [v, v, v]);
    }
}

#[test]
fn cmyk_jpegs_decode_to_the_rgb_they_were_made_from() {
    let cmyk = fixture("chelsea-cmyk.jpg");
    assert_eq!(&cmyk[..3], b"\xff\xd8\xff");
    // The `image` crate's path (zune-jpeg): the whole image.
    let whole = decode(&cmyk).unwrap();
    let difference = mean_difference(&whole, &cat());
    assert!(difference < 4.0, "image path: {difference}");
    assert_eq!(decode_for(&cmyk, &efficientnet()).unwrap(), whole);
    // The scaled path (jpeg-decoder's IDCT scaling, 1/2 here): the same
    // picture at half the size.
    let scaled = decode_for(&cmyk, &tiny()).unwrap();
    assert_eq!(scaled.dimensions(), (80, 53));
    let half = image::imageops::resize(&cat(), 80, 53, image::imageops::FilterType::Triangle);
    let difference = mean_difference(&scaled, &half);
    assert!(difference < 6.0, "scaled path: {difference}");
    // And both give nearly the same tensor.
    let a = to_tensor(&whole, &tiny()).unwrap();
    let b = to_tensor(&scaled, &tiny()).unwrap();
    let worst = a
        .values
        .iter()
        .zip(&b.values)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(worst < 0.5, "{worst}");
}

#[test]
fn grey_alpha_and_palette_pngs_become_rgb() {
    let cat = cat();
    let png = |image: DynamicImage| {
        let mut bytes = Vec::new();
        image
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .unwrap();
        bytes
    };
    let rgba = DynamicImage::ImageRgb8(cat.clone()).to_rgba8();
    assert_eq!(
        decode(&png(DynamicImage::ImageRgba8(rgba))).unwrap(),
        cat,
        "RGBA: alpha is dropped"
    );
    let gray = DynamicImage::ImageRgb8(cat.clone()).to_luma8();
    let la = DynamicImage::ImageRgb8(cat.clone()).to_luma_alpha8();
    for (what, bytes) in [
        ("grey", png(DynamicImage::ImageLuma8(gray.clone()))),
        ("grey + alpha", png(DynamicImage::ImageLumaA8(la))),
    ] {
        let rgb = decode(&bytes).unwrap();
        assert_eq!(rgb.dimensions(), cat.dimensions(), "{what}");
        for (px, l) in rgb.pixels().zip(gray.pixels()) {
            assert_eq!(px.0, [l[0]; 3], "{what}");
        }
    }
    let palette = fixture("chelsea-palette.png");
    let decoded = decode(&palette).unwrap();
    let difference = mean_difference(&decoded, &cat);
    assert!(difference < 6.0, "palette: {difference}");
}

#[test]
fn a_huge_k_answers_every_class_without_allocating_k() {
    let logits: Vec<f32> = (0..1000).map(|i| (i % 7) as f32).collect();
    let (top, largest) = largest_allocation(|| top_k(&logits, usize::MAX, |_| String::new()));
    assert_eq!(top.len(), 1000);
    assert!(largest < 1 << 20, "allocated {largest} bytes");
    assert!(top.windows(2).all(|w| w[0].score >= w[1].score));
}
