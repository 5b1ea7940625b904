//! From encoded bytes to the model's input tensor: decode, resize the shorter
//! side, centre-crop, normalise, lay out as NCHW or NHWC.

use crate::metadata::{Color, Layout, Preprocess};
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{ImageReader, Limits, RgbImage};
use std::io::Cursor;
use wasi_infer_guest::ApiError;

/// Larger images are refused before their pixels are allocated.
const MAX_SIDE: u32 = 16_384;
const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;

/// The input tensor: dimensions and f32 values in the model's layout.
pub struct InputTensor {
    pub dims: Vec<u32>,
    pub values: Vec<f32>,
}

/// Decodes JPEG, PNG, WebP, GIF (first frame) or BMP into 8-bit RGB; grayscale,
/// palette and alpha images are converted (alpha is dropped).
pub fn decode(bytes: &[u8]) -> Result<RgbImage, ApiError> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ApiError::bad_request(format!("cannot read the image: {e}")))?;
    if reader.format().is_none() {
        return Err(ApiError::bad_request(
            "the body is not an image in a supported format (JPEG, PNG, WebP, GIF or BMP)",
        ));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let image = reader
        .decode()
        .map_err(|e| ApiError::bad_request(format!("cannot decode the image: {e}")))?;
    Ok(image.into_rgb8())
}

/// Resizes (bilinear, with antialiasing as Pillow does) so that the shorter side
/// is `resize_shorter_side`, takes the centre crop, and normalises. The crop is
/// resampled straight from the source, so the full resized image is never made.
pub fn to_tensor(image: &RgbImage, p: &Preprocess) -> Result<InputTensor, ApiError> {
    let [crop_w, crop_h] = p.crop;
    if crop_w == 0 || crop_h == 0 || crop_w.max(crop_h) > p.resize_shorter_side {
        return Err(ApiError::internal(format!(
            "invalid [preprocess] in model.toml: crop {:?} must fit in resize_shorter_side {}",
            p.crop, p.resize_shorter_side
        )));
    }
    let channels = p.color.channels();
    if p.mean.len() != channels || p.std.len() != channels || p.std.contains(&0.0) {
        return Err(ApiError::internal(format!(
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
        .map_err(|e| ApiError::internal(format!("decoded image buffer: {e}")))?;
    let mut dst = Image::new(crop_w, crop_h, PixelType::U8x3);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
        .crop(
            left / scale_x,
            top / scale_y,
            f64::from(crop_w) / scale_x,
            f64::from(crop_h) / scale_y,
        );
    Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| ApiError::internal(format!("cannot resize the image: {e}")))?;

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
    let scale: Vec<f32> = p.std.iter().map(|s| 1.0 / s).collect();
    let mut values = vec![0.0f32; plane * channels];
    for (i, pixel) in rgb.chunks_exact(3).enumerate() {
        let [r, g, b] = [pixel[0], pixel[1], pixel[2]].map(f32::from);
        let gray;
        let colour: &[f32] = match p.color {
            Color::Rgb => &[r, g, b],
            // Rec. 709 luma, as the image crate's grayscale conversion:
            // a gray image's pixels come back unchanged.
            Color::Gray => {
                gray = [0.2126 * r + 0.7152 * g + 0.0722 * b];
                &gray
            }
        };
        for (c, &x) in colour.iter().enumerate() {
            let v = (x - p.mean[c]) * scale[c];
            match p.layout {
                Layout::Nchw => values[c * plane + i] = v,
                Layout::Nhwc => values[i * channels + c] = v,
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
        assert!(matches!(to_tensor(&image, &wrong), Err(e) if e.status == 500));
    }

    #[test]
    fn garbage_is_a_bad_request() {
        assert_eq!(decode(b"not an image").unwrap_err().status, 400);
        assert_eq!(
            decode(&[0x89, b'P', b'N', b'G', 0, 0]).unwrap_err().status,
            400
        );
    }
}
