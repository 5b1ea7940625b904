//! Pixel work on 8-bit RGB images, done as OpenCV does it in PaddleOCR's
//! pipeline (`cv2.resize` bilinear, `cv2.warpPerspective` bicubic with the
//! border replicated), so the models see what they saw in training; and the
//! models' input tensors: BGR, `(x / 255 - 0.5) / 0.5`, planar.

use image::{Rgb, RgbImage};

use crate::geometry::{Homography, Point};

/// One source axis of a bilinear resize: for each destination index, the
/// two source indices and the weight of the second (OpenCV's pixel-centre
/// mapping, clamped at the edges).
fn bilinear_taps(src: u32, dst: u32) -> Vec<(u32, u32, f32)> {
    let scale = f64::from(src) / f64::from(dst);
    (0..dst)
        .map(|d| {
            let s = ((f64::from(d) + 0.5) * scale - 0.5).max(0.0);
            let i = (s.floor() as u32).min(src - 1);
            let j = (i + 1).min(src - 1);
            (i, j, (s - f64::from(i)).clamp(0.0, 1.0) as f32)
        })
        .collect()
}

/// Calls `put(x, y, [r, g, b])` for every pixel of `src` resized to
/// `width` x `height`, bilinear, values rounded to 8 bits as OpenCV's
/// 8-bit resize gives them. As OpenCV, each source row is interpolated
/// across once and kept while destination rows use it (an image scaled up
/// four times uses each four times).
fn resize_each(src: &RgbImage, width: u32, height: u32, mut put: impl FnMut(u32, u32, [f32; 3])) {
    let xs = bilinear_taps(src.width(), width);
    let ys = bilinear_taps(src.height(), height);
    let stride = src.width() as usize * 3;
    let raw = src.as_raw();
    let across = |row: u32, out: &mut Vec<f32>| {
        let pixels = &raw[row as usize * stride..][..stride];
        out.clear();
        for &(x0, x1, fx) in &xs {
            let (a, b) = (x0 as usize * 3, x1 as usize * 3);
            for k in 0..3 {
                let (left, right) = (f32::from(pixels[a + k]), f32::from(pixels[b + k]));
                out.push(left + (right - left) * fx);
            }
        }
    };
    // The two source rows interpolated across, and which rows they are.
    let (mut upper, mut lower) = (
        Vec::with_capacity(xs.len() * 3),
        Vec::with_capacity(xs.len() * 3),
    );
    let mut held: Option<(u32, u32)> = None;
    for (y, &(y0, y1, fy)) in ys.iter().enumerate() {
        match held {
            Some(rows) if rows == (y0, y1) => {}
            // Moving down one row: the lower row becomes the upper.
            Some((_, previous)) if previous == y0 => {
                std::mem::swap(&mut upper, &mut lower);
                across(y1, &mut lower);
            }
            _ => {
                across(y0, &mut upper);
                across(y1, &mut lower);
            }
        }
        held = Some((y0, y1));
        for (x, (top, bottom)) in upper.chunks_exact(3).zip(lower.chunks_exact(3)).enumerate() {
            let rgb = [0, 1, 2].map(|k| round_positive(top[k] + (bottom[k] - top[k]) * fy));
            put(x as u32, y as u32, rgb);
        }
    }
}

/// `v` (at least 0) rounded to the nearest whole number, halves up: what
/// `f32::round` gives for it, in one WebAssembly instruction (`round` is a
/// call into libm there: a third of this resize's time).
fn round_positive(v: f32) -> f32 {
    (v + 0.5).floor()
}

/// `src` resized to `width` x `height` (bilinear).
pub fn resize(src: &RgbImage, width: u32, height: u32) -> RgbImage {
    let mut out = RgbImage::new(width, height);
    resize_each(src, width, height, |x, y, rgb| {
        out.put_pixel(x, y, Rgb(rgb.map(|v| v as u8)));
    });
    out
}

/// The value a model sees for an 8-bit channel value.
fn normalise(v: f32) -> f32 {
    (v / 255.0 - 0.5) / 0.5
}

/// Writes `src`, resized to `width` x `height`, into `tensor`: one image
/// of a `[N, 3, height, tensor_width]` batch, BGR planes, normalised; the
/// columns right of `width` stay as they are (zeros: PaddleOCR pads with 0
/// after normalising).
pub fn write_tensor(
    src: &RgbImage,
    width: u32,
    height: u32,
    tensor_width: u32,
    tensor: &mut [f32],
) {
    let plane = (height * tensor_width) as usize;
    debug_assert!(width <= tensor_width && tensor.len() == 3 * plane);
    resize_each(src, width, height, |x, y, [r, g, b]| {
        let at = (y * tensor_width + x) as usize;
        tensor[at] = normalise(b);
        tensor[plane + at] = normalise(g);
        tensor[2 * plane + at] = normalise(r);
    });
}

/// OpenCV's bicubic weights (a = -0.75) for a fractional offset `t`.
fn cubic_weights(t: f64) -> [f64; 4] {
    const A: f64 = -0.75;
    let w0 = ((A * (t + 1.0) - 5.0 * A) * (t + 1.0) + 8.0 * A) * (t + 1.0) - 4.0 * A;
    let w1 = ((A + 2.0) * t - (A + 3.0)) * t * t + 1.0;
    let w2 = ((A + 2.0) * (1.0 - t) - (A + 3.0)) * (1.0 - t) * (1.0 - t) + 1.0;
    [w0, w1, w2, 1.0 - w0 - w1 - w2]
}

/// The quadrilateral `quad` of `src` (corners clockwise from the top left)
/// straightened into a `width` x `height` image: PaddleOCR's
/// `get_rotate_crop_image` (perspective warp, bicubic, border replicated).
/// `None` when the corners do not make a quadrilateral.
pub fn warp_crop(src: &RgbImage, quad: &[Point; 4], width: u32, height: u32) -> Option<RgbImage> {
    let (w, h) = (f64::from(width), f64::from(height));
    let target = [
        Point::new(0.0, 0.0),
        Point::new(w, 0.0),
        Point::new(w, h),
        Point::new(0.0, h),
    ];
    // From the crop back into the source: each crop pixel samples there.
    let back = Homography::between(&target, quad)?;
    let (max_x, max_y) = (i64::from(src.width()) - 1, i64::from(src.height()) - 1);
    let mut out = RgbImage::new(width, height);
    for y in 0..height {
        for x in 0..width {
            let s = back.apply(Point::new(f64::from(x), f64::from(y)));
            let (fx, fy) = (s.x.floor(), s.y.floor());
            let (wx, wy) = (cubic_weights(s.x - fx), cubic_weights(s.y - fy));
            let (ix, iy) = (fx as i64, fy as i64);
            let mut rgb = [0.0f64; 3];
            for (j, wyj) in wy.iter().enumerate() {
                let sy = (iy - 1 + j as i64).clamp(0, max_y) as u32;
                for (i, wxi) in wx.iter().enumerate() {
                    let sx = (ix - 1 + i as i64).clamp(0, max_x) as u32;
                    let p = src.get_pixel(sx, sy).0;
                    for k in 0..3 {
                        rgb[k] += wyj * wxi * f64::from(p[k]);
                    }
                }
            }
            out.put_pixel(
                x,
                y,
                Rgb(rgb.map(|v| (v.clamp(0.0, 255.0) + 0.5).floor() as u8)),
            );
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| Rgb([(x * 10) as u8, (y * 10) as u8, 128]))
    }

    #[test]
    fn resizing_to_the_same_size_changes_nothing() {
        let img = gradient(7, 5);
        assert_eq!(resize(&img, 7, 5), img);
    }

    #[test]
    fn scaling_up_interpolates_between_rows_and_columns() {
        let img = gradient(4, 3);
        let up = resize(&img, 16, 12);
        for (x, y, p) in up.enumerate_pixels() {
            // Source coordinates of the destination pixel's centre.
            let sx = ((f64::from(x) + 0.5) / 4.0 - 0.5).clamp(0.0, 3.0);
            let sy = ((f64::from(y) + 0.5) / 4.0 - 0.5).clamp(0.0, 2.0);
            assert_eq!(p.0[0], (sx * 10.0).round() as u8, "({x}, {y})");
            assert_eq!(p.0[1], (sy * 10.0).round() as u8, "({x}, {y})");
        }
    }

    #[test]
    fn halving_averages_pairs() {
        let img = gradient(8, 2);
        let half = resize(&img, 4, 1);
        // Destination pixel 0 samples source x = 0.5: between 0 and 10.
        assert_eq!(half.get_pixel(0, 0).0, [5, 5, 128]);
    }

    #[test]
    fn the_tensor_is_bgr_planes_normalised_and_padded() {
        let img = RgbImage::from_pixel(2, 1, Rgb([255, 0, 51]));
        let mut tensor = vec![0.0; 3 * 3];
        write_tensor(&img, 2, 1, 3, &mut tensor);
        assert_eq!(tensor[0], normalise(51.0));
        assert_eq!(tensor[3], -1.0);
        assert_eq!(tensor[6], 1.0);
        assert_eq!(tensor[2], 0.0, "padding");
    }

    #[test]
    fn an_upright_crop_copies_pixels() {
        let img = gradient(20, 10);
        let quad = [
            Point::new(2.0, 3.0),
            Point::new(12.0, 3.0),
            Point::new(12.0, 8.0),
            Point::new(2.0, 8.0),
        ];
        let crop = warp_crop(&img, &quad, 10, 5).unwrap();
        assert_eq!(crop.get_pixel(0, 0), img.get_pixel(2, 3));
        assert_eq!(crop.get_pixel(9, 4), img.get_pixel(11, 7));
    }

    #[test]
    fn cubic_weights_sum_to_one() {
        for t in [0.0, 0.25, 0.5, 0.9] {
            let w = cubic_weights(t);
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        assert_eq!(cubic_weights(0.0), [0.0, 1.0, 0.0, 0.0]);
    }
}
