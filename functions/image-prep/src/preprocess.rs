//! From encoded bytes to the model's input tensor: decode, resize the shorter
//! side, centre-crop, normalise, lay out as NCHW or NHWC.

use std::io::Cursor;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{ImageDecoder, ImageReader, Limits, RgbImage};

use crate::Error;
use crate::spec::{Color, Layout, Preprocess};

/// The most pixels an image may have: 50 Mi (52.4 megapixels), so that a
/// 50-megapixel camera's 8688x5792 passes. Anything larger is refused from the
/// size its header claims, before a pixel is allocated: a 30000x30000 PNG of a
/// few bytes would otherwise ask for 2.7 GB. The function's whole memory is
/// the host's instance limit (512 MiB by default), so no more than this.
pub const MAX_PIXELS: u64 = 50 * 1024 * 1024;
/// The longest side an image may have: keeps the aspect ratio within 16384:1,
/// so the sizes the resize computes stay in range.
pub const MAX_SIDE: u32 = 16_384;
/// What a decode may take at its peak: the decoded image, the decoder's
/// working copy where it keeps one, and the 8-bit RGB it is converted to
/// ([`peak_bytes_per_pixel`]). With the request body (16 MiB at most by
/// default) and its copies, it fits the host's default 512 MiB instance:
/// 50 Mi pixels of 8-bit RGB take 150 MiB, of 8-bit RGBA 350 MiB, while
/// 16-bit RGBA is refused past 34 Mi pixels. Also the decoders' own
/// allocation limit (the `image` crate's `Limits::max_alloc`, jpeg-decoder's
/// buffer limit), the second line of defence.
const MAX_DECODE_BYTES: u64 = 384 * 1024 * 1024;

/// The input tensor: dimensions and f32 values in the model's layout.
pub struct InputTensor {
    pub dims: Vec<u32>,
    pub values: Vec<f32>,
}

/// Refuses an image by the size its header claims: too large
/// ([`Error::TooLarge`], naming the size and the limits) or empty.
pub fn check_dimensions(width: u32, height: u32) -> Result<(), Error> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > MAX_PIXELS || width > MAX_SIDE || height > MAX_SIDE {
        return Err(Error::TooLarge(format!(
            "the image is {width}x{height} pixels, larger than this service decodes: \
             at most {MAX_PIXELS} pixels ({} Mi) and {MAX_SIDE} pixels a side; send a smaller image",
            MAX_PIXELS >> 20
        )));
    }
    if pixels == 0 {
        return Err(Error::BadImage(format!(
            "the image is {width}x{height} pixels: it has none"
        )));
    }
    Ok(())
}

/// Decodes an image for `p`: as [`decode`], except that a JPEG at least twice
/// the size `p` resizes to is decoded at 1/2, 1/4 or 1/8 of its size by the
/// inverse DCT itself (as libjpeg's "draft" mode, which Pillow uses), the
/// largest that still covers the resize. A 3000x4000 photo is then decoded at
/// 375x500, not decoded whole and thrown away, which is most of its cost.
pub fn decode_for(bytes: &[u8], p: &Preprocess) -> Result<RgbImage, Error> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF])
        && let Some(image) = decode_jpeg_scaled(bytes, p.resize_shorter_side)?
    {
        return Ok(image);
    }
    decode(bytes)
}

/// The scaled decode; `Ok(None)` when it does not apply (too small to scale,
/// 16-bit, or anything unusual, errors included): [`decode`] then handles the
/// image. Too large a JPEG is refused here, from its header.
fn decode_jpeg_scaled(bytes: &[u8], shorter_side: u32) -> Result<Option<RgbImage>, Error> {
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    if decoder.read_info().is_err() {
        return Ok(None);
    }
    let Some(info) = decoder.info() else {
        return Ok(None);
    };
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    check_dimensions(w, h)?;
    let short = w.min(h);
    if short < 2 * shorter_side.max(1) {
        return Ok(None);
    }
    use jpeg_decoder::PixelFormat::{CMYK32, L8, RGB24};
    if !matches!(info.pixel_format, RGB24 | L8 | CMYK32) {
        return Ok(None);
    }
    // The smallest scale whose shorter side still reaches `shorter_side`.
    let at_least =
        |side: u32| u16::try_from(side.saturating_mul(shorter_side).div_ceil(short)).ok();
    let (Some(want_w), Some(want_h)) = (at_least(w), at_least(h)) else {
        return Ok(None);
    };
    decoder.set_max_decoding_buffer_size(MAX_DECODE_BYTES as usize);
    let Ok((sw, sh)) = decoder.scale(want_w, want_h) else {
        return Ok(None);
    };
    let Ok(pixels) = decoder.decode() else {
        return Ok(None);
    };
    let (sw, sh) = (u32::from(sw), u32::from(sh));
    Ok(match info.pixel_format {
        RGB24 => RgbImage::from_raw(sw, sh, pixels),
        L8 => image::GrayImage::from_raw(sw, sh, pixels)
            .map(|gray| image::DynamicImage::ImageLuma8(gray).into_rgb8()),
        _ => cmyk_to_rgb(sw, sh, &pixels),
    })
}

/// jpeg-decoder's CMYK (ink amounts, 255 = full ink; it has already undone
/// Adobe's inverted storage) to RGB, as the `image` crate did when it decoded
/// with jpeg-decoder: each colour is what its ink and the black leave.
fn cmyk_to_rgb(w: u32, h: u32, cmyk: &[u8]) -> Option<RgbImage> {
    let pixels = (w as usize).checked_mul(h as usize)?;
    if cmyk.len() != pixels.checked_mul(4)? {
        return None;
    }
    let mut rgb = Vec::with_capacity(pixels * 3);
    for px in cmyk.chunks_exact(4) {
        let k = 255 - u16::from(px[3]);
        for &ink in &px[..3] {
            rgb.push(((255 - u16::from(ink)) * k / 255) as u8);
        }
    }
    RgbImage::from_raw(w, h, rgb)
}

/// Whether the bytes start as an image in a format [`decode`] reads: the
/// signature alone, whatever a request's `Content-Type` claims.
pub fn looks_like_image(bytes: &[u8]) -> bool {
    use image::ImageFormat::{Bmp, Gif, Jpeg, Png, WebP};
    matches!(
        image::guess_format(bytes),
        Ok(Jpeg | Png | WebP | Gif | Bmp)
    )
}

/// Decodes JPEG, PNG, WebP, GIF (first frame) or BMP into 8-bit RGB; grayscale,
/// palette, 16-bit, CMYK and alpha images are converted (alpha is dropped).
///
/// The size in the image's header is checked ([`check_dimensions`]) before
/// any pixel is allocated; the decoders' own limits are a second line.
pub fn decode(bytes: &[u8]) -> Result<RgbImage, Error> {
    let bad = |e: image::ImageError| match e {
        image::ImageError::Limits(e) => Error::TooLarge(format!(
            "the image needs more memory to decode than this service allows ({} MiB): {e}",
            MAX_DECODE_BYTES >> 20
        )),
        e => Error::BadImage(format!("cannot decode the image: {e}")),
    };
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::BadImage(format!("cannot read the image: {e}")))?;
    if reader.format().is_none() {
        return Err(Error::BadImage(
            "the body is not an image in a supported format (JPEG, PNG, WebP, GIF or BMP)".into(),
        ));
    }
    if let Some((w, h)) = png_header_size(bytes) {
        check_dimensions(w, h)?;
    }
    // The allocation limit only while the header is read: the size check is
    // ours, so that the answer names the size and the limits.
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits.clone());
    let format = reader.format();
    let mut decoder = reader.into_decoder().map_err(bad)?;
    let (w, h) = decoder.dimensions();
    check_dimensions(w, h)?;
    let color = decoder.color_type();
    let peak = u64::from(w) * u64::from(h) * peak_bytes_per_pixel(format, color);
    if peak > MAX_DECODE_BYTES {
        return Err(Error::TooLarge(format!(
            "the image is {w}x{h} pixels of {color:?}, which would take {} MiB to decode; \
             at most {} MiB (and {MAX_PIXELS} pixels): send a smaller image",
            peak.div_ceil(1 << 20),
            MAX_DECODE_BYTES >> 20
        )));
    }
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.reserve(decoder.total_bytes()).map_err(bad)?;
    decoder.set_limits(limits).map_err(bad)?;
    let image = image::DynamicImage::from_decoder(decoder).map_err(bad)?;
    Ok(image.into_rgb8())
}

/// A PNG's size, from its IHDR chunk (always the first), before any decoder
/// opens it: on 32-bit targets such as wasm32 the png crate refuses to open an
/// image whose buffer would pass 2 GiB, with an error that names no size.
fn png_header_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let rest = bytes.strip_prefix(b"\x89PNG\r\n\x1a\n")?;
    if rest.get(4..8)? != b"IHDR" {
        return None;
    }
    let be =
        |range: std::ops::Range<usize>| Some(u32::from_be_bytes(rest.get(range)?.try_into().ok()?));
    Some((be(8..12)?, be(12..16)?))
}

/// The bytes a pixel takes at the decode's peak, by format and decoded colour
/// type: the decoded pixel; again for GIF and WebP, which composite frames on
/// a canvas of their own, and JPEG, whose decoder keeps its component planes;
/// and 3 for the 8-bit RGB it is converted to (none if it already is).
fn peak_bytes_per_pixel(format: Option<image::ImageFormat>, color: image::ColorType) -> u64 {
    use image::ImageFormat::{Gif, Jpeg, WebP};
    let decoded = u64::from(color.bytes_per_pixel());
    let working = match format {
        Some(Gif | WebP | Jpeg) => decoded,
        _ => 0,
    };
    let converted = if color == image::ColorType::Rgb8 {
        0
    } else {
        3
    };
    decoded + working + converted
}

/// Resizes (bilinear, with antialiasing as Pillow does) so that the shorter side
/// is `resize_shorter_side`, takes the centre crop, and normalises. The crop is
/// resampled straight from the source, so the full resized image is never made.
pub fn to_tensor(image: &RgbImage, p: &Preprocess) -> Result<InputTensor, Error> {
    let [crop_w, crop_h] = p.crop;
    if crop_w == 0 || crop_h == 0 || crop_w.max(crop_h) > p.resize_shorter_side {
        return Err(Error::Config(format!(
            "invalid [preprocess] in model.toml: crop {:?} must fit in resize_shorter_side {}",
            p.crop, p.resize_shorter_side
        )));
    }
    let channels = p.color.channels();
    if p.mean.len() != channels || p.std.len() != channels || p.std.contains(&0.0) {
        return Err(Error::Config(format!(
            "invalid [preprocess] in model.toml: mean and std need {channels} value(s) for {:?}, std non-zero",
            p.color
        )));
    }
    let (w, h) = image.dimensions();
    let (resized_w, resized_h) = shorter_side_to(w, h, p.resize_shorter_side);
    let (scale_x, scale_y) = (
        f64::from(resized_w) / f64::from(w),
        f64::from(resized_h) / f64::from(h),
    );
    let left = (f64::from(resized_w - crop_w) / 2.0).round();
    let top = (f64::from(resized_h - crop_h) / 2.0).round();

    let src = ImageRef::new(w, h, image.as_raw(), PixelType::U8x3)
        .map_err(|e| Error::BadImage(format!("decoded image buffer: {e}")))?;
    let mut dst = Image::new(crop_w, crop_h, PixelType::U8x3);
    // The crop box in source pixels. Rounding may push its far edge a hair past
    // the image (28 * 191 / 28 = 191.00000000000003): it is clamped.
    let (x, y) = (left / scale_x, top / scale_y);
    let width = (f64::from(crop_w) / scale_x).min(f64::from(w) - x);
    let height = (f64::from(crop_h) / scale_y).min(f64::from(h) - y);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
        .crop(x, y, width, height);
    Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| Error::BadImage(format!("cannot resize the image: {e}")))?;

    Ok(normalise(dst.buffer(), crop_w, crop_h, p))
}

/// The size that gives the shorter side `target` pixels and keeps the aspect ratio.
fn shorter_side_to(w: u32, h: u32, target: u32) -> (u32, u32) {
    let scaled = |long: u32, short: u32| {
        ((f64::from(long) * f64::from(target) / f64::from(short)).round() as u32).max(1)
    };
    if w <= h {
        (target, scaled(h, w))
    } else {
        (scaled(w, h), target)
    }
}

fn normalise(rgb: &[u8], w: u32, h: u32, p: &Preprocess) -> InputTensor {
    let plane = (w * h) as usize;
    let channels = p.color.channels();
    let pixels = rgb.chunks_exact(3);
    let mut values = vec![0.0f32; plane * channels];
    match p.color {
        Color::Rgb => {
            // A pixel value is one of 256: a table per channel replaces the
            // arithmetic, with the same results.
            let [r, g, b] = [0, 1, 2].map(|c| table(p.mean[c], p.std[c]));
            match p.layout {
                Layout::Nchw => {
                    let (rs, rest) = values.split_at_mut(plane);
                    let (gs, bs) = rest.split_at_mut(plane);
                    for (i, px) in pixels.enumerate() {
                        rs[i] = r[usize::from(px[0])];
                        gs[i] = g[usize::from(px[1])];
                        bs[i] = b[usize::from(px[2])];
                    }
                }
                Layout::Nhwc => {
                    for (out, px) in values.chunks_exact_mut(3).zip(pixels) {
                        out[0] = r[usize::from(px[0])];
                        out[1] = g[usize::from(px[1])];
                        out[2] = b[usize::from(px[2])];
                    }
                }
            }
        }
        // One channel: NCHW and NHWC are the same layout.
        Color::Gray => {
            let (mean, scale) = (p.mean[0], 1.0 / p.std[0]);
            for (out, px) in values.iter_mut().zip(pixels) {
                let [r, g, b] = [px[0], px[1], px[2]].map(f32::from);
                // Rec. 709 luma, as the image crate's grayscale conversion:
                // a gray image's pixels come back unchanged.
                *out = (0.2126 * r + 0.7152 * g + 0.0722 * b - mean) * scale;
            }
        }
    }
    let c = channels as u32;
    let dims = match p.layout {
        Layout::Nchw => vec![1, c, h, w],
        Layout::Nhwc => vec![1, h, w, c],
    };
    InputTensor { dims, values }
}

/// `(x - mean) / std` for every 8-bit value `x`.
fn table(mean: f32, std: f32) -> [f32; 256] {
    let scale = 1.0 / std;
    std::array::from_fn(|x| (x as f32 - mean) * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preprocess(layout: Layout) -> Preprocess {
        Preprocess {
            resize_shorter_side: 4,
            crop: [2, 2],
            color: Color::Rgb,
            mean: vec![127.0, 127.0, 127.0],
            std: vec![128.0, 128.0, 128.0],
            layout,
        }
    }

    #[test]
    fn shorter_side_keeps_aspect_ratio() {
        assert_eq!(shorter_side_to(451, 300, 256), (385, 256));
        assert_eq!(shorter_side_to(300, 451, 256), (256, 385));
        assert_eq!(shorter_side_to(10, 10, 256), (256, 256));
    }

    #[test]
    fn a_crop_box_that_rounds_past_the_edge_is_clamped() {
        // 384x191 to a shorter side of 28: the box's height is 28 / (28 / 191),
        // which is 191.00000000000003 in floating point.
        let p = Preprocess {
            resize_shorter_side: 28,
            crop: [28, 28],
            color: Color::Gray,
            mean: vec![0.0],
            std: vec![255.0],
            layout: Layout::Nchw,
        };
        let image = RgbImage::from_pixel(384, 191, image::Rgb([10, 10, 10]));
        let t = to_tensor(&image, &p).unwrap();
        assert_eq!(t.dims, vec![1, 1, 28, 28]);
    }

    #[test]
    fn uniform_image_normalises_to_constant_planes() {
        let image = RgbImage::from_pixel(8, 6, image::Rgb([255, 127, 0]));
        let t = to_tensor(&image, &preprocess(Layout::Nchw)).unwrap();
        assert_eq!(t.dims, vec![1, 3, 2, 2]);
        let expect = [128.0 / 128.0, 0.0, -127.0 / 128.0];
        for (c, e) in expect.iter().enumerate() {
            for v in &t.values[c * 4..(c + 1) * 4] {
                assert!((v - e).abs() < 1e-6, "channel {c}: {v} != {e}");
            }
        }
        let t = to_tensor(&image, &preprocess(Layout::Nhwc)).unwrap();
        assert_eq!(t.dims, vec![1, 2, 2, 3]);
        assert!((t.values[0] - expect[0]).abs() < 1e-6 && (t.values[2] - expect[2]).abs() < 1e-6);
    }

    #[test]
    fn gray_models_get_one_luma_channel() {
        let p = Preprocess {
            resize_shorter_side: 3,
            crop: [3, 3],
            color: Color::Gray,
            mean: vec![0.0],
            std: vec![255.0],
            layout: Layout::Nchw,
        };
        let image = RgbImage::from_fn(3, 3, |x, y| {
            let v = (x * 3 + y) as u8 * 20;
            image::Rgb([v, v, v])
        });
        let t = to_tensor(&image, &p).unwrap();
        assert_eq!(t.dims, vec![1, 1, 3, 3]);
        for (i, v) in t.values.iter().enumerate() {
            let (y, x) = (i / 3, i % 3);
            let want = f32::from((x * 3 + y) as u8 * 20) / 255.0;
            assert!((v - want).abs() < 1e-4, "pixel {i}: {v} != {want}");
        }
        let wrong = Preprocess {
            mean: vec![0.0; 3],
            ..p
        };
        assert!(matches!(to_tensor(&image, &wrong), Err(Error::Config(_))));
    }

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let image = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95)
            .encode_image(&image)
            .unwrap();
        bytes
    }

    #[test]
    fn large_jpegs_are_decoded_at_the_scale_the_resize_needs() {
        let p = Preprocess {
            resize_shorter_side: 64,
            crop: [56, 56],
            ..preprocess(Layout::Nchw)
        };
        // 512x384: the shorter side is 6x the target, so 1/4 scale (128x96) is
        // the smallest that still covers 64.
        let scaled = decode_for(&jpeg(512, 384), &p).unwrap();
        assert_eq!(scaled.dimensions(), (128, 96));
        // Less than twice the target: decoded whole.
        assert_eq!(
            decode_for(&jpeg(100, 120), &p).unwrap().dimensions(),
            (100, 120)
        );
        // The scaled decode gives the same picture: the tensors agree closely.
        let whole = to_tensor(&decode(&jpeg(512, 384)).unwrap(), &p).unwrap();
        let fast = to_tensor(&scaled, &p).unwrap();
        let worst = whole
            .values
            .iter()
            .zip(&fast.values)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst < 0.1, "largest difference {worst}");
    }

    #[test]
    fn a_broken_jpeg_is_still_a_bad_request() {
        let mut bytes = jpeg(512, 512);
        bytes.truncate(600);
        let p = Preprocess {
            resize_shorter_side: 64,
            ..preprocess(Layout::Nchw)
        };
        assert!(matches!(decode_for(&bytes, &p), Err(Error::BadImage(_))));
    }

    #[test]
    fn images_are_known_by_their_signature() {
        assert!(looks_like_image(&jpeg(4, 4)));
        for not_image in [&b"{\"input\": 1}"[..], b"a=b&c=d", b"", b"\x89PN"] {
            assert!(!looks_like_image(not_image), "{not_image:?}");
        }
    }

    #[test]
    fn garbage_is_a_bad_request() {
        assert!(matches!(decode(b"not an image"), Err(Error::BadImage(_))));
        assert!(matches!(
            decode(&[0x89, b'P', b'N', b'G', 0, 0]),
            Err(Error::BadImage(_))
        ));
    }
}
