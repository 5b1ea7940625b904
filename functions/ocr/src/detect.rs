//! Text detection's pre- and post-processing, as PaddleOCR's DB detector
//! does it (`DetResizeForTest`, `DBPostProcess`, `filter_tag_det_res`,
//! `sorted_boxes`): the model marks each pixel with the probability that
//! it is text; the pixels above a threshold, grown by one pixel, make
//! regions, and each region's minimum-area rectangle, scored by the mean
//! probability inside it and grown by a margin proportional to its
//! area / perimeter ("unclip", since the model was trained to mark a
//! shrunk text line), is a text line.

use serde::Deserialize;

use crate::geometry::{self, Point, RotatedRect};

/// The detector's settings: PaddleOCR's names and, as defaults, the values
/// `rapidocr-onnxruntime`'s configuration gives PP-OCRv4.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectSettings {
    /// The image is scaled so that its shorter side is at least this.
    pub limit_side_len: u32,
    /// A pixel is text when its probability is above this.
    pub thresh: f32,
    /// A region is a line when its mean probability is at least this.
    pub box_thresh: f32,
    /// How far a region's rectangle is grown: its area / perimeter times this.
    pub unclip_ratio: f64,
    /// At most this many regions are considered.
    pub max_candidates: usize,
    /// Whether the text mask is grown by one pixel (a 2x2 dilation).
    pub use_dilation: bool,
}

impl Default for DetectSettings {
    fn default() -> Self {
        Self {
            limit_side_len: 736,
            thresh: 0.3,
            box_thresh: 0.5,
            unclip_ratio: 1.6,
            max_candidates: 1000,
            use_dilation: true,
        }
    }
}

impl DetectSettings {
    pub fn check(&self) -> Result<(), String> {
        let unit = |name: &str, v: f32| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("[preprocess] {name} must be in [0, 1), got {v}"))
            }
        };
        unit("thresh", self.thresh)?;
        unit("box_thresh", self.box_thresh)?;
        if !(self.unclip_ratio.is_finite() && self.unclip_ratio > 0.0) {
            return Err(format!(
                "[preprocess] unclip_ratio must be positive, got {}",
                self.unclip_ratio
            ));
        }
        if !(32..=MAX_SIDE).contains(&self.limit_side_len) || self.max_candidates == 0 {
            return Err(format!(
                "[preprocess] limit_side_len must be 32 to {MAX_SIDE} and max_candidates at least 1"
            ));
        }
        Ok(())
    }
}

/// The detector's input is at most this many pixels a side...
pub const MAX_SIDE: u32 = 4096;
/// ...and this many pixels in all (12 Mi values: 48 MiB of f32 in, 16 MiB
/// out), which a 2000 x 2000 image (the largest side the pipeline works
/// at) fits.
pub const MAX_PIXELS: u64 = 2048 * 2048;

/// The detector's input size for a `width` x `height` image: the shorter
/// side scaled up to `limit_side_len` (never down), each side rounded to a
/// multiple of 32 (at least 32). PaddleOCR stops there; a very long, thin
/// image would then become enormous, so the scale is also capped to keep
/// within [`MAX_SIDE`] and [`MAX_PIXELS`].
pub fn input_size(width: u32, height: u32, s: &DetectSettings) -> (u32, u32) {
    let (w, h) = (f64::from(width), f64::from(height));
    let mut ratio = if w.min(h) < f64::from(s.limit_side_len) {
        f64::from(s.limit_side_len) / w.min(h)
    } else {
        1.0
    };
    let cap = (f64::from(MAX_SIDE) / w.max(h)).min((MAX_PIXELS as f64 / (w * h)).sqrt());
    ratio = ratio.min(cap);
    let (mut w, mut h) = (
        round32(w * ratio).min(MAX_SIDE),
        round32(h * ratio).min(MAX_SIDE),
    );
    // Rounding may have added a few pixels past the bound.
    while u64::from(w) * u64::from(h) > MAX_PIXELS {
        if w >= h { w -= 32 } else { h -= 32 }
    }
    (w, h)
}

/// A side truncated to whole pixels and rounded to a multiple of 32, ties
/// to even as Python's `round` (at least 32).
pub fn round32(side: f64) -> u32 {
    (((side.trunc() / 32.0).round_ties_even() * 32.0) as u32).max(32)
}

/// A text line's box: four corners in the image the detector saw
/// (clockwise from the top left), and its score.
#[derive(Clone, Debug, PartialEq)]
pub struct TextBox {
    pub corners: [Point; 4],
    pub score: f32,
}

/// The smallest side a region's rectangle may have, in the map's pixels
/// (PaddleOCR's `min_size`); a grown one must have 2 more.
const MIN_SIZE: f64 = 3.0;

/// The text lines in a probability map of `map_width` x `map_height`, their
/// corners scaled to an image of `width` x `height`, in reading order.
pub fn text_boxes(
    probabilities: &[f32],
    map_width: usize,
    map_height: usize,
    width: u32,
    height: u32,
    s: &DetectSettings,
) -> Vec<TextBox> {
    let mut mask: Vec<bool> = probabilities.iter().map(|&p| p > s.thresh).collect();
    if s.use_dilation {
        mask = dilate(&mask, map_width, map_height);
    }
    let (sx, sy) = (
        f64::from(width) / map_width as f64,
        f64::from(height) / map_height as f64,
    );
    let mut boxes = Vec::new();
    for region in regions(&mask, map_width, map_height)
        .into_iter()
        .take(s.max_candidates)
    {
        let Some(rect) = geometry::min_area_rect(&geometry::convex_hull(region)) else {
            continue;
        };
        if rect.short_side() < MIN_SIZE {
            continue;
        }
        let corners = mini_box(&rect);
        let score = mean_inside(probabilities, map_width, map_height, &corners);
        if score < s.box_thresh {
            continue;
        }
        let (area, perimeter) = geometry::area_and_perimeter(&corners);
        let grown = rect.grown(area * s.unclip_ratio / perimeter);
        if grown.short_side() < MIN_SIZE + 2.0 {
            continue;
        }
        // Into the image's pixels, rounded and kept inside it.
        let scaled = mini_box(&grown).map(|p| {
            Point::new(
                (p.x * sx).round_ties_even().clamp(0.0, f64::from(width)),
                (p.y * sy).round_ties_even().clamp(0.0, f64::from(height)),
            )
        });
        // filter_tag_det_res: corners in order, on a pixel, not too thin.
        let corners = clockwise(scaled).map(|p| {
            Point::new(
                p.x.clamp(0.0, f64::from(width - 1)).trunc(),
                p.y.clamp(0.0, f64::from(height - 1)).trunc(),
            )
        });
        let line_width = corners[0].distance(corners[1]).trunc();
        let line_height = corners[0].distance(corners[3]).trunc();
        if line_width <= 3.0 || line_height <= 3.0 {
            continue;
        }
        boxes.push(TextBox { corners, score });
    }
    reading_order(boxes)
}

/// The mask grown by one pixel right and down (OpenCV's `dilate` with a
/// 2x2 kernel, anchored at its lower right).
fn dilate(mask: &[bool], width: usize, height: usize) -> Vec<bool> {
    let mut out = mask.to_vec();
    for y in 0..height {
        for x in 0..width {
            let at = |dx: usize, dy: usize| mask[(y - dy) * width + (x - dx)];
            out[y * width + x] = at(0, 0)
                || (x > 0 && at(1, 0))
                || (y > 0 && at(0, 1))
                || (x > 0 && y > 0 && at(1, 1));
        }
    }
    out
}

/// The 8-connected regions of the mask, in the order a raster scan meets
/// them, each as the leftmost and rightmost pixel of each of its rows
/// (all a convex hull needs).
fn regions(mask: &[bool], width: usize, height: usize) -> Vec<Vec<Point>> {
    const NONE: u32 = u32::MAX;
    let mut label = vec![NONE; mask.len()];
    let mut regions = Vec::new();
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || label[start] != NONE {
            continue;
        }
        let id = regions.len() as u32;
        // Per row of the region from its first (a raster scan meets a
        // region at its top): its leftmost and rightmost pixel.
        let top = start / width;
        let mut rows: Vec<(usize, usize)> = Vec::new();
        label[start] = id;
        stack.push(start);
        while let Some(at) = stack.pop() {
            let (x, y) = (at % width, at / width);
            if y - top >= rows.len() {
                rows.resize(y - top + 1, (usize::MAX, 0));
            }
            let row = &mut rows[y - top];
            row.0 = row.0.min(x);
            row.1 = row.1.max(x);
            for ny in y.saturating_sub(1)..=(y + 1).min(height - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(width - 1) {
                    let n = ny * width + nx;
                    if mask[n] && label[n] == NONE {
                        label[n] = id;
                        stack.push(n);
                    }
                }
            }
        }
        let mut points = Vec::with_capacity(rows.len() * 2);
        for (y, &(left, right)) in rows.iter().enumerate().filter(|(_, r)| r.0 != usize::MAX) {
            let y = top + y;
            points.push(Point::new(left as f64, y as f64));
            if right != left {
                points.push(Point::new(right as f64, y as f64));
            }
        }
        regions.push(points);
    }
    regions
}

/// A rectangle's corners as PaddleOCR's `get_mini_boxes` orders them: of
/// the two leftmost corners the upper first, then of the two rightmost the
/// upper, the lower, and last the lower left.
fn mini_box(rect: &RotatedRect) -> [Point; 4] {
    let mut p = rect.corners();
    p.sort_by(|a, b| a.x.total_cmp(&b.x));
    let (tl, bl) = if p[1].y > p[0].y {
        (p[0], p[1])
    } else {
        (p[1], p[0])
    };
    let (tr, br) = if p[3].y > p[2].y {
        (p[2], p[3])
    } else {
        (p[3], p[2])
    };
    [tl, tr, br, bl]
}

/// PaddleOCR's `order_points_clockwise`: top left (least x + y), top
/// right, bottom right (greatest x + y), bottom left.
fn clockwise(points: [Point; 4]) -> [Point; 4] {
    let sum = |p: &Point| p.x + p.y;
    let first = (0..4)
        .min_by(|&a, &b| sum(&points[a]).total_cmp(&sum(&points[b])))
        .unwrap_or(0);
    let last = (0..4)
        .rev()
        .max_by(|&a, &b| sum(&points[a]).total_cmp(&sum(&points[b])))
        .unwrap_or(2);
    let rest: Vec<Point> = (0..4)
        .filter(|&i| i != first && i != last)
        .map(|i| points[i])
        .collect();
    let (top_right, bottom_left) = match rest.as_slice() {
        [a, b] if (a.y - a.x) <= (b.y - b.x) => (*a, *b),
        [a, b] => (*b, *a),
        // Two corners in one place: the box is degenerate and will be
        // dropped as too thin.
        _ => (points[1], points[3]),
    };
    [points[first], top_right, points[last], bottom_left]
}

/// The mean probability over the map's pixels inside `corners`
/// (PaddleOCR's `box_score_fast`: the polygon filled with its corners
/// truncated to whole pixels).
fn mean_inside(probabilities: &[f32], width: usize, height: usize, corners: &[Point; 4]) -> f32 {
    let clamp = |v: f64, max: usize| v.clamp(0.0, max as f64 - 1.0) as usize;
    let xs = corners.iter().map(|p| p.x);
    let ys = corners.iter().map(|p| p.y);
    let x0 = clamp(xs.clone().fold(f64::MAX, f64::min).floor(), width);
    let x1 = clamp(xs.fold(f64::MIN, f64::max).ceil(), width);
    let y0 = clamp(ys.clone().fold(f64::MAX, f64::min).floor(), height);
    let y1 = clamp(ys.fold(f64::MIN, f64::max).ceil(), height);
    let polygon = geometry::ConvexQuad::new(&corners.map(|p| Point::new(p.x.trunc(), p.y.trunc())));
    let (mut sum, mut count) = (0.0f64, 0u32);
    for y in y0..=y1 {
        for x in x0..=x1 {
            if polygon.contains(Point::new(x as f64, y as f64)) {
                sum += f64::from(probabilities[y * width + x]);
                count += 1;
            }
        }
    }
    if count == 0 {
        0.0
    } else {
        (sum / f64::from(count)) as f32
    }
}

/// PaddleOCR's `sorted_boxes`: top to bottom by the top-left corner, then
/// boxes whose tops are within 10 pixels of each other left to right.
fn reading_order(mut boxes: Vec<TextBox>) -> Vec<TextBox> {
    boxes.sort_by(|a, b| {
        let (a, b) = (a.corners[0], b.corners[0]);
        a.y.total_cmp(&b.y).then(a.x.total_cmp(&b.x))
    });
    for i in 0..boxes.len().saturating_sub(1) {
        for j in (0..=i).rev() {
            let (upper, lower) = (boxes[j].corners[0], boxes[j + 1].corners[0]);
            if (lower.y - upper.y).abs() < 10.0 && lower.x < upper.x {
                boxes.swap(j, j + 1);
            } else {
                break;
            }
        }
    }
    boxes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_size_follows_paddleocr_and_is_bounded() {
        let s = DetectSettings::default();
        // The shorter side scaled up to 736, both rounded to 32.
        assert_eq!(input_size(384, 191, &s), (1472, 736));
        assert_eq!(input_size(1000, 800, &s), (992, 800));
        // A long thin strip is capped.
        let (w, h) = input_size(30, 2000, &s);
        assert!(w <= MAX_SIDE && h <= MAX_SIDE && u64::from(w) * u64::from(h) <= MAX_PIXELS);
        assert!(w % 32 == 0 && h % 32 == 0);
        assert_eq!(input_size(32, 32, &s), (736, 736));
        let (w, h) = input_size(2000, 1999, &s);
        assert!(u64::from(w) * u64::from(h) <= MAX_PIXELS, "{w}x{h}");
    }

    /// A probability map with two lines of "text", the lower one left.
    fn map() -> (Vec<f32>, usize, usize) {
        let (w, h) = (100, 60);
        let mut p = vec![0.0f32; w * h];
        for y in 10..18 {
            for x in 50..90 {
                p[y * w + x] = 0.9;
            }
        }
        for y in 12..20 {
            for x in 5..40 {
                p[y * w + x] = 0.8;
            }
        }
        for y in 40..48 {
            for x in 10..80 {
                p[y * w + x] = 0.95;
            }
        }
        // Speckle: too small to be a line.
        p[55 * w + 95] = 1.0;
        (p, w, h)
    }

    #[test]
    fn regions_become_grown_boxes_in_reading_order() {
        let (p, w, h) = map();
        let boxes = text_boxes(&p, w, h, 200, 120, &DetectSettings::default());
        assert_eq!(boxes.len(), 3, "{boxes:?}");
        // The two upper lines, left one first, then the lower line.
        assert!(boxes[0].corners[0].x < boxes[1].corners[0].x);
        assert!(boxes[2].corners[0].y > boxes[1].corners[3].y);
        // Scaled by 2 and grown: the lower line (x 10..79, y 40..47 with the
        // dilation 9..79, 39..47) reaches beyond its pixels on every side.
        let lower = &boxes[2];
        assert!(
            lower.corners[0].x < 18.0 && lower.corners[0].y < 78.0,
            "{lower:?}"
        );
        assert!(
            lower.corners[2].x > 158.0 && lower.corners[2].y > 94.0,
            "{lower:?}"
        );
        // The mean over the rectangle of the grown mask: 70 x 8 pixels of
        // 0.95 in 71 x 9.
        let expected = 0.95 * (70.0 * 8.0) / (71.0 * 9.0);
        assert!((lower.score - expected).abs() < 1e-3, "{}", lower.score);
    }

    #[test]
    fn faint_regions_are_dropped() {
        let (mut p, w, h) = map();
        for v in &mut p {
            if *v > 0.0 {
                *v = 0.4;
            }
        }
        assert!(text_boxes(&p, w, h, 100, 60, &DetectSettings::default()).is_empty());
    }

    #[test]
    fn corners_go_clockwise_from_the_top_left() {
        let c = clockwise([
            Point::new(10.0, 5.0),
            Point::new(0.0, 6.0),
            Point::new(1.0, 0.0),
            Point::new(9.0, 11.0),
        ]);
        assert_eq!(c[0], Point::new(1.0, 0.0));
        assert_eq!(c[1], Point::new(10.0, 5.0));
        assert_eq!(c[2], Point::new(9.0, 11.0));
        assert_eq!(c[3], Point::new(0.0, 6.0));
    }

    #[test]
    fn dilation_grows_right_and_down() {
        let mut m = vec![false; 9];
        m[4] = true;
        let d = dilate(&m, 3, 3);
        assert_eq!(
            d,
            [false, false, false, false, true, true, false, true, true]
        );
    }
}
