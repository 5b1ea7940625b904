//! Augmentation: each training image is shown a little differently every
//! epoch, so the network learns clothes rather than pixels. A random
//! horizontal flip (clothes are left-right symmetric, text-free photos), a
//! random crop of the image padded by [`PAD`] pixels (a shift of up to two
//! pixels each way), and a small rotation, sampled bilinearly in one pass.

use rand::Rng;

use crate::data::SIDE;

/// Padding of the random crop, in pixels.
pub const PAD: i32 = 2;
/// The largest rotation, in degrees.
pub const MAX_DEGREES: f32 = 10.0;

/// `image` (bytes) augmented at random into `out` (0 to 1).
pub fn augment(image: &[u8], out: &mut [f32], rng: &mut impl Rng) {
    let flip = rng.random_bool(0.5);
    let dx = rng.random_range(-PAD..=PAD) as f32;
    let dy = rng.random_range(-PAD..=PAD) as f32;
    let angle = rng.random_range(-MAX_DEGREES..=MAX_DEGREES).to_radians();
    warp(image, out, flip, dx, dy, angle);
}

/// Each output pixel sampled from where the inverse transform puts it:
/// rotation by `angle` about the centre, then a shift by (`dx`, `dy`), after
/// an optional mirror. Outside the image reads as black, as the padding does.
fn warp(image: &[u8], out: &mut [f32], flip: bool, dx: f32, dy: f32, angle: f32) {
    let centre = (SIDE as f32 - 1.0) / 2.0;
    let (sin, cos) = angle.sin_cos();
    let at = |x: i32, y: i32| -> f32 {
        if (0..SIDE as i32).contains(&x) && (0..SIDE as i32).contains(&y) {
            let x = if flip { SIDE as i32 - 1 - x } else { x };
            image[y as usize * SIDE + x as usize] as f32
        } else {
            0.0
        }
    };
    for y in 0..SIDE {
        for x in 0..SIDE {
            let (u, v) = (x as f32 - centre - dx, y as f32 - centre - dy);
            let sx = cos * u + sin * v + centre;
            let sy = -sin * u + cos * v + centre;
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            let (x0, y0) = (x0 as i32, y0 as i32);
            let value = at(x0, y0) * (1.0 - fx) * (1.0 - fy)
                + at(x0 + 1, y0) * fx * (1.0 - fy)
                + at(x0, y0 + 1) * (1.0 - fx) * fy
                + at(x0 + 1, y0 + 1) * fx * fy;
            out[y * SIDE + x] = value / 255.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::PIXELS;

    fn ramp() -> Vec<u8> {
        (0..PIXELS).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn identity_is_the_image() {
        let image = ramp();
        let mut out = vec![0.0; PIXELS];
        warp(&image, &mut out, false, 0.0, 0.0, 0.0);
        for (a, b) in image.iter().zip(&out) {
            assert!((*a as f32 / 255.0 - b).abs() < 1e-6);
        }
    }

    #[test]
    fn flip_mirrors_and_shift_pads_with_black() {
        let image = ramp();
        let mut out = vec![0.0; PIXELS];
        warp(&image, &mut out, true, 0.0, 0.0, 0.0);
        assert_eq!(out[0], image[SIDE - 1] as f32 / 255.0);
        warp(&image, &mut out, false, 2.0, 0.0, 0.0);
        // Shifted right by two: the first two columns come from the padding.
        assert_eq!((out[0], out[1]), (0.0, 0.0));
        assert_eq!(out[2], image[0] as f32 / 255.0);
    }
}
