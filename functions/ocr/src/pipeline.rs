//! The whole reading of an image, stage by stage, as `rapidocr-onnxruntime`
//! (PaddleOCR's pipeline for these models) runs it:
//!
//! 1. bound the image: a side over 2000 pixels is scaled down, one under
//!    30 up; a very wide or very low image gets black bands above and below;
//! 2. detect the lines ([`detect`]) on the image scaled for the detector;
//! 3. cut each line out, straightened ([`pixels::warp_crop`]), a tall one
//!    turned a quarter;
//! 4. turn the lines the direction classifier finds upside down;
//! 5. read them ([`recognize::read`]) and keep those read with enough
//!    confidence, their boxes in the original image's pixels.
//!
//! The models are named in the detector's `model.toml`:
//!
//! ```toml
//! [preprocess]
//! recogniser = "pp-ocrv4-rec"            # its `labels` file lists the characters
//! direction_classifier = "pp-ocrv4-cls"  # optional
//! text_score = 0.5
//! [preprocess.detection]                 # optional: PaddleOCR's DB settings
//! ```

use image::RgbImage;
use serde::Deserialize;
use wasi_infer_guest::{ApiError, Timings, models, nn, quoted, read_model_toml};

use crate::detect::{self, DetectSettings, round32};
use crate::geometry::Point;
use crate::pixels;
use crate::recognize::{self, Reading, Stage};

/// The most lines one request may read: past it the request is refused
/// (413) before a line is cut out, so a page of noise costs one detection.
pub const MAX_LINES: usize = 400;

/// The longest side the pipeline works at, and the shortest (PaddleOCR's
/// `max_side_len` and `min_side_len`).
const MAX_WORKING_SIDE: u32 = 2000;
const MIN_WORKING_SIDE: u32 = 30;
/// An image lower than this, or wider than `WIDE` times its height, gets
/// bands above and below (a single line would fill the detector's view).
const MIN_HEIGHT: u32 = 30;
const WIDE: f64 = 8.0;

#[derive(Deserialize)]
struct ModelToml {
    preprocess: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    recogniser: String,
    direction_classifier: Option<String>,
    #[serde(default = "default_text_score")]
    text_score: f32,
    #[serde(default)]
    detection: DetectSettings,
}

fn default_text_score() -> f32 {
    0.5
}

/// The recogniser's model.toml: its `labels` file holds its characters.
#[derive(Deserialize)]
struct RecogniserToml {
    labels: Option<String>,
}

/// The models of one OCR pipeline, opened for a request.
pub struct Pipeline {
    detector: Stage,
    classifier: Option<Stage>,
    recogniser: Stage,
    characters: Vec<String>,
    settings: Settings,
}

/// A line read.
pub struct Line {
    /// Corners in the original image's pixels: top left, top right, bottom
    /// right, bottom left (as the text runs, before any turn).
    pub corners: [Point; 4],
    pub reading: Reading,
    /// Whether the direction classifier found it upside down.
    pub turned: bool,
}

impl Pipeline {
    /// The pipeline whose detector is `model`.
    pub fn open(model: &str) -> Result<Self, ApiError> {
        let toml_file = read_model_toml(model)?;
        let invalid = |e: &dyn std::fmt::Display| {
            ApiError::internal(format!("{}: {e}", toml_file.path.display()))
        };
        let parsed: ModelToml = toml::from_str(&toml_file.text).map_err(|e| invalid(&e))?;
        let table = parsed.preprocess.ok_or_else(|| {
            ApiError::bad_request(format!(
                "model {} is not an OCR detector: its model.toml has no [preprocess] naming a recogniser",
                quoted(model)
            ))
        })?;
        if !table.contains_key("recogniser") {
            return Err(ApiError::bad_request(format!(
                "model {} is not an OCR detector: its [preprocess] names no recogniser",
                quoted(model)
            )));
        }
        let settings: Settings = table.try_into().map_err(|e| invalid(&e))?;
        settings.detection.check().map_err(|e| invalid(&e))?;
        if !(0.0..=1.0).contains(&settings.text_score) {
            return Err(invalid(&"[preprocess] text_score must be in [0, 1]"));
        }
        let characters = characters_of(&settings.recogniser)?;
        Ok(Self {
            detector: stage(model)?,
            classifier: settings
                .direction_classifier
                .as_deref()
                .map(stage)
                .transpose()?,
            recogniser: stage(&settings.recogniser)?,
            characters,
            settings,
        })
    }

    /// Reads `image`: its lines in reading order.
    pub fn read(&self, image: &RgbImage, timings: &mut Timings) -> Result<Vec<Line>, ApiError> {
        let (raw_width, raw_height) = image.dimensions();
        let (working, scale_x, scale_y) = working_image(image);
        let (working, top) = with_bands(working);

        let boxes = self.detect(&working, timings)?;
        if boxes.len() > MAX_LINES {
            return Err(ApiError::payload_too_large(format!(
                "the image holds {} text lines; at most {MAX_LINES} are read in one request: send a part of it",
                boxes.len()
            )));
        }
        let mut crops = boxes
            .iter()
            .map(|b| crop(&working, &b.corners))
            .collect::<Result<Vec<_>, _>>()?;
        timings.lap("crop");
        let turned = match &self.classifier {
            Some(classifier) if !crops.is_empty() => recognize::orient(classifier, &mut crops)?,
            _ => vec![false; crops.len()],
        };
        timings.lap("classify");
        let readings = if crops.is_empty() {
            Vec::new()
        } else {
            recognize::read(&self.recogniser, &crops, &self.characters)?
        };
        timings.lap("recognise");

        // Back into the original image: bands off, scale undone, kept inside.
        let original = |p: Point| {
            Point::new(
                (p.x * scale_x).clamp(0.0, f64::from(raw_width)),
                ((p.y - f64::from(top)) * scale_y).clamp(0.0, f64::from(raw_height)),
            )
        };
        Ok(boxes
            .into_iter()
            .zip(readings)
            .zip(turned)
            .filter(|((_, reading), _)| reading.confidence >= self.settings.text_score)
            .map(|((b, reading), turned)| Line {
                corners: b.corners.map(original),
                reading,
                turned,
            })
            .collect())
    }

    /// The text boxes in `image`, in its pixels; laps `scale` (the image
    /// into the detector's input), `detect` (the model) and `boxes` (its
    /// map into boxes).
    fn detect(
        &self,
        image: &RgbImage,
        timings: &mut Timings,
    ) -> Result<Vec<detect::TextBox>, ApiError> {
        let s = &self.settings.detection;
        let (width, height) = detect::input_size(image.width(), image.height(), s);
        let mut tensor = vec![0.0f32; (3 * width * height) as usize];
        pixels::write_tensor(image, width, height, width, &mut tensor);
        timings.lap("scale");
        let output = self.detector.run([1, 3, height, width], &tensor)?;
        drop(tensor);
        timings.lap("detect");
        let (map_width, map_height) = match output.dims.as_slice() {
            [1, 1, h, w] if u64::from(*h) * u64::from(*w) > 0 => (*w as usize, *h as usize),
            dims => {
                return Err(ApiError::internal(format!(
                    "the detector returned a map of shape {dims:?} for an input of [1, 3, {height}, {width}]; expected [1, 1, H, W]"
                )));
            }
        };
        let probabilities = output
            .f32_values()
            .filter(|values| values.len() == map_width * map_height)
            .ok_or_else(|| {
                ApiError::internal(format!(
                    "the detector returned {:?} data that is not an f32 map of {map_width} x {map_height}",
                    output.ty
                ))
            })?;
        let boxes = detect::text_boxes(
            &probabilities,
            map_width,
            map_height,
            image.width(),
            image.height(),
            s,
        );
        timings.lap("boxes");
        Ok(boxes)
    }
}

/// A model of the pipeline: described by the host (which says whether
/// this function may load it), then opened.
fn stage(model: &str) -> Result<Stage, ApiError> {
    let meta = models::get_model(model, None).ok_or_else(|| {
        ApiError::not_found(format!(
            "no model named {} is available to this function",
            quoted(model)
        ))
    })?;
    let input = match meta.inputs.as_slice() {
        [one] => one.name.clone(),
        inputs => {
            return Err(ApiError::internal(format!(
                "model {} has {} inputs; an OCR stage takes one image batch [N, 3, H, W]",
                quoted(model),
                inputs.len()
            )));
        }
    };
    Ok(Stage {
        session: nn::Session::open(model)?,
        input,
    })
}

/// The recogniser's classes: its `labels` file (read here rather than
/// through the host, which trims each line: one of the characters is the
/// ideographic space).
fn characters_of(recogniser: &str) -> Result<Vec<String>, ApiError> {
    let toml_file = read_model_toml(recogniser)?;
    let parsed: RecogniserToml = toml::from_str(&toml_file.text)
        .map_err(|e| ApiError::internal(format!("{}: {e}", toml_file.path.display())))?;
    let file = parsed.labels.ok_or_else(|| {
        ApiError::internal(format!(
            "{}: a recogniser needs `labels`, its character list",
            toml_file.path.display()
        ))
    })?;
    let path = toml_file.dir.join(file);
    let keys = std::fs::read_to_string(&path)
        .map_err(|e| ApiError::internal(format!("cannot read {}: {e}", path.display())))?;
    Ok(recognize::characters(&keys))
}

/// The image at the size the pipeline works at, and the factors that take
/// its coordinates back to the original's.
fn working_image(image: &RgbImage) -> (RgbImage, f64, f64) {
    let (w, h) = image.dimensions();
    let ratio = if w.max(h) > MAX_WORKING_SIDE {
        f64::from(MAX_WORKING_SIDE) / f64::from(w.max(h))
    } else if w.min(h) < MIN_WORKING_SIDE {
        f64::from(MIN_WORKING_SIDE) / f64::from(w.min(h))
    } else {
        return (image.clone(), 1.0, 1.0);
    };
    let (rw, rh) = (
        round32(f64::from(w) * ratio).min(2 * MAX_WORKING_SIDE),
        round32(f64::from(h) * ratio).min(2 * MAX_WORKING_SIDE),
    );
    (
        pixels::resize(image, rw, rh),
        f64::from(w) / f64::from(rw),
        f64::from(h) / f64::from(rh),
    )
}

/// The image with black bands above and below when it is low or very wide
/// (PaddleOCR's letterbox), and the height of the upper band.
fn with_bands(image: RgbImage) -> (RgbImage, u32) {
    let (w, h) = image.dimensions();
    if h > MIN_HEIGHT && f64::from(w) / f64::from(h) <= WIDE {
        return (image, 0);
    }
    let target = ((f64::from(w) / WIDE) as u32).max(MIN_HEIGHT) * 2;
    let band = target.abs_diff(h) / 2;
    let mut banded = RgbImage::new(w, h + 2 * band);
    image::imageops::replace(&mut banded, &image, 0, i64::from(band));
    (banded, band)
}

/// A line cut out of `image` and straightened: PaddleOCR's
/// `get_rotate_crop_image` (a line at least 1.5 times taller than wide is
/// turned a quarter, counter-clockwise).
fn crop(image: &RgbImage, corners: &[Point; 4]) -> Result<RgbImage, ApiError> {
    let width = corners[0]
        .distance(corners[1])
        .max(corners[2].distance(corners[3])) as u32;
    let height = corners[0]
        .distance(corners[3])
        .max(corners[1].distance(corners[2])) as u32;
    let line = pixels::warp_crop(image, corners, width.max(1), height.max(1))
        .ok_or_else(|| ApiError::internal(format!("cannot straighten the text box {corners:?}")))?;
    Ok(
        if f64::from(line.height()) / f64::from(line.width()) >= 1.5 {
            image::imageops::rotate270(&line)
        } else {
            line
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_and_small_images_are_scaled_as_paddleocr_does() {
        let (img, sx, sy) = working_image(&RgbImage::new(4000, 1000));
        // 2000 / 32 = 62.5, rounded to even as Python does: 1984.
        assert_eq!(img.dimensions(), (1984, 512));
        assert!((sx - 4000.0 / 1984.0).abs() < 1e-12 && (sy - 1000.0 / 512.0).abs() < 1e-12);
        let (img, _, _) = working_image(&RgbImage::new(300, 200));
        assert_eq!(img.dimensions(), (300, 200), "within bounds: untouched");
        let (img, _, _) = working_image(&RgbImage::new(200, 10));
        assert_eq!(img.dimensions(), (608, 32));
    }

    #[test]
    fn a_wide_line_gets_bands() {
        let (img, top) = with_bands(RgbImage::new(900, 40));
        // 900 / 8 = 112 -> 224 high: bands of 92.
        assert_eq!((img.dimensions(), top), ((900, 224), 92));
        let (img, top) = with_bands(RgbImage::new(300, 200));
        assert_eq!((img.dimensions(), top), ((300, 200), 0));
    }

    #[test]
    fn a_tall_crop_is_turned() {
        let image = RgbImage::new(100, 100);
        let quad = [
            Point::new(10.0, 10.0),
            Point::new(20.0, 10.0),
            Point::new(20.0, 60.0),
            Point::new(10.0, 60.0),
        ];
        assert_eq!(crop(&image, &quad).unwrap().dimensions(), (50, 10));
    }
}
