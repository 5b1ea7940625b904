//! The two models that read a line once it is cut out, as PaddleOCR runs
//! them: the direction classifier (is the line upside down?) and the
//! recogniser, whose output is decoded greedily as CTC (the most likely
//! character at each step; repeats merged, blanks dropped).

use image::RgbImage;
use wasi_infer_guest::{ApiError, nn};

use crate::pixels;

/// Lines go through the models this many at a time (PaddleOCR's
/// `cls_batch_num` and `rec_batch_num`).
const BATCH: usize = 6;

/// Both models take lines 48 pixels high.
const LINE_HEIGHT: u32 = 48;
/// The classifier's lines are 192 wide (shorter ones padded, longer ones
/// squeezed).
const CLASSIFIER_WIDTH: u32 = 192;
/// A line is turned when the classifier says "180" with more than this.
const TURN_THRESHOLD: f32 = 0.9;

/// The recogniser's lines are padded to at least this width:height...
const MIN_RATIO: f64 = 320.0 / 48.0;
/// ...and squeezed to at most this one (a line of 3072 x 48: 384 steps),
/// which PaddleOCR does not bound.
const MAX_RATIO: f64 = 64.0;
/// A batch ends before its padded width times its lines passes this (six
/// lines of 20:1), so that one batch's output stays under 20 MiB (6625
/// scores a step, a step every 8 pixels); PaddleOCR batches six whatever
/// their width.
const MAX_BATCH_WIDTH: u64 = 6 * 20 * 48;

/// A model of the pipeline, opened once for the request, with the name of
/// its one input.
pub struct Stage {
    pub session: nn::Session,
    pub input: String,
}

impl Stage {
    pub fn run(&self, dims: [u32; 4], values: &[f32]) -> Result<nn::Output, ApiError> {
        let mut outputs = self
            .session
            .compute(vec![nn::Input::f32(&self.input, &dims, values)])?;
        if outputs.is_empty() {
            return Err(ApiError::internal("the model returned no output"));
        }
        Ok(outputs.swap_remove(0))
    }
}

/// The order PaddleOCR batches lines in: narrowest (width / height) first,
/// so that a batch pads its lines little.
fn by_ratio(lines: &[RgbImage]) -> Vec<usize> {
    let ratio = |i: usize| f64::from(lines[i].width()) / f64::from(lines[i].height());
    let mut order: Vec<usize> = (0..lines.len()).collect();
    order.sort_by(|&a, &b| ratio(a).total_cmp(&ratio(b)));
    order
}

/// The width a line `width` x `height` is resized to at `LINE_HEIGHT`, at
/// most `max_width`.
fn resized_width(width: u32, height: u32, max_width: u32) -> u32 {
    let wanted = (f64::from(LINE_HEIGHT) * f64::from(width) / f64::from(height)).ceil();
    (wanted as u32).clamp(1, max_width)
}

/// The lines `batch` (indices into `lines`) as one input `[N, 3, 48,
/// width]`: each resized to 48 pixels high and at most `width` wide, the
/// rest of its row zeros.
fn line_batch(lines: &[RgbImage], batch: &[usize], width: u32) -> ([u32; 4], Vec<f32>) {
    let image = 3 * (LINE_HEIGHT * width) as usize;
    let mut tensor = vec![0.0f32; batch.len() * image];
    for (&i, slot) in batch.iter().zip(tensor.chunks_exact_mut(image)) {
        let line = &lines[i];
        let resized = resized_width(line.width(), line.height(), width);
        pixels::write_tensor(line, resized, LINE_HEIGHT, width, slot);
    }
    ([batch.len() as u32, 3, LINE_HEIGHT, width], tensor)
}

/// Turns the lines the classifier finds upside down; answers, for each
/// line, whether it was turned.
pub fn orient(classifier: &Stage, lines: &mut [RgbImage]) -> Result<Vec<bool>, ApiError> {
    let mut turned = vec![false; lines.len()];
    let order = by_ratio(lines);
    for batch in order.chunks(BATCH) {
        let (dims, tensor) = line_batch(lines, batch, CLASSIFIER_WIDTH);
        let scores = f32_output(classifier.run(dims, &tensor)?, "[N, 2]")?;
        if scores.len() != batch.len() * 2 {
            return Err(ApiError::internal(format!(
                "the direction classifier returned {} values for {} lines; expected [N, 2] (0 and 180 degrees)",
                scores.len(),
                batch.len()
            )));
        }
        for (pair, &i) in scores.chunks_exact(2).zip(batch) {
            if pair[1] > pair[0] && pair[1] > TURN_THRESHOLD {
                image::imageops::rotate180_in_place(&mut lines[i]);
                turned[i] = true;
            }
        }
    }
    Ok(turned)
}

/// A line's text and its confidence: the mean probability of the
/// characters read (0 when none).
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    pub text: String,
    pub confidence: f32,
}

/// Reads each line with the recogniser; `characters` maps its classes
/// (0 is CTC's blank).
pub fn read(
    recogniser: &Stage,
    lines: &[RgbImage],
    characters: &[String],
) -> Result<Vec<Reading>, ApiError> {
    let mut readings = vec![None; lines.len()];
    let order = by_ratio(lines);
    let ratio = |i: usize| f64::from(lines[i].width()) / f64::from(lines[i].height());
    let widths: Vec<u32> = order.iter().map(|&i| padded_width(ratio(i))).collect();
    for range in batches(&widths) {
        let batch = &order[range.clone()];
        // The batch's padded width is its widest line's (the last).
        let (dims, tensor) = line_batch(lines, batch, widths[range.end - 1]);
        let output = recogniser.run(dims, &tensor)?;
        let steps = decode_batch(output, batch.len(), characters.len())?;
        for (scores, &i) in steps.chunks_exact(steps.len() / batch.len()).zip(batch) {
            readings[i] = Some(ctc_greedy(scores, characters));
        }
    }
    // Every line is in one batch: `order` holds each index once.
    readings
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| ApiError::internal("a line was left unread"))
}

/// The recogniser's batches over lines whose padded widths, narrowest
/// first, are `widths`: six at a time, as PaddleOCR runs them, but a batch
/// ends early when its lines times its widest would pass
/// [`MAX_BATCH_WIDTH`] (a line alone is always a batch).
fn batches(widths: &[u32]) -> Vec<std::ops::Range<usize>> {
    let mut batches = Vec::new();
    let mut start = 0;
    while start < widths.len() {
        let mut end = start + 1;
        while end < widths.len()
            && end - start < BATCH
            && (end - start + 1) as u64 * u64::from(widths[end]) <= MAX_BATCH_WIDTH
        {
            end += 1;
        }
        batches.push(start..end);
        start = end;
    }
    batches
}

/// The width lines of at most this width:height are padded to in a batch.
fn padded_width(ratio: f64) -> u32 {
    (f64::from(LINE_HEIGHT) * ratio.clamp(MIN_RATIO, MAX_RATIO)) as u32
}

/// The recogniser's scores `[N, T, classes]`, checked.
fn decode_batch(output: nn::Output, lines: usize, classes: usize) -> Result<Vec<f32>, ApiError> {
    let dims: Vec<usize> = output.dims.iter().map(|&d| d as usize).collect();
    match dims.as_slice() {
        [n, t, c] if *n == lines && *c == classes && *t > 0 => {
            f32_output(output, "[N, T, classes]")
        }
        _ => Err(ApiError::internal(format!(
            "the recogniser returned a tensor of shape {:?} for {lines} lines; expected [{lines}, T, {classes}] ({classes} characters with the blank and the space)",
            output.dims
        ))),
    }
}

fn f32_output(output: nn::Output, shape: &str) -> Result<Vec<f32>, ApiError> {
    output.f32_values().ok_or_else(|| {
        ApiError::internal(format!(
            "the model returned {:?} values; expected f32 {shape}",
            output.ty
        ))
    })
}

/// CTC's greedy decoding: the most likely class at each step, a repeated
/// class taken once, the blank (class 0) dropped; the confidence is the
/// mean of the kept steps' probabilities (PaddleOCR's `CTCLabelDecode`).
pub fn ctc_greedy(scores: &[f32], characters: &[String]) -> Reading {
    let classes = characters.len();
    let mut text = String::new();
    let (mut sum, mut kept) = (0.0f64, 0u32);
    let mut previous = None;
    for step in scores.chunks_exact(classes) {
        let (best, p) =
            step.iter().enumerate().fold(
                (0, f32::MIN),
                |(bi, bp), (i, &p)| if p > bp { (i, p) } else { (bi, bp) },
            );
        if best != 0 && previous != Some(best) {
            text.push_str(&characters[best]);
            sum += f64::from(p);
            kept += 1;
        }
        previous = Some(best);
    }
    let confidence = if kept == 0 {
        0.0
    } else {
        (sum / f64::from(kept)) as f32
    };
    Reading { text, confidence }
}

/// The recogniser's classes from its character list (`keys.txt`, one per
/// line): the blank, the characters, and the space last.
pub fn characters(keys: &str) -> Vec<String> {
    let mut characters = vec![String::new()];
    characters.extend(keys.lines().map(|l| l.trim_end_matches('\r').to_string()));
    characters.push(" ".into());
    characters
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_hot(classes: usize, steps: &[usize]) -> Vec<f32> {
        let mut v = vec![0.0; classes * steps.len()];
        for (t, &c) in steps.iter().enumerate() {
            v[t * classes + c] = 0.9;
        }
        v
    }

    #[test]
    fn ctc_merges_repeats_and_drops_blanks() {
        let chars = characters("a\nb\nc");
        assert_eq!(chars.len(), 5);
        // a a _ a b b _ _ c (space)
        let scores = one_hot(5, &[1, 1, 0, 1, 2, 2, 0, 0, 3, 4]);
        let r = ctc_greedy(&scores, &chars);
        assert_eq!(r.text, "aabc ");
        assert!((r.confidence - 0.9).abs() < 1e-6);
        let blank = ctc_greedy(&one_hot(5, &[0, 0]), &chars);
        assert_eq!((blank.text.as_str(), blank.confidence), ("", 0.0));
    }

    #[test]
    fn a_full_width_space_is_a_character() {
        // keys.txt holds U+3000 on a line of its own.
        let chars = characters("x\n\u{3000}\ny\r\n");
        assert_eq!(chars, ["", "x", "\u{3000}", "y", " "]);
    }

    #[test]
    fn lines_are_batched_six_at_a_time_unless_they_are_wide() {
        // Thirteen ordinary lines: 6, 6, 1.
        assert_eq!(batches(&[320; 13]), [0..6, 6..12, 12..13]);
        // Wider lines end a batch early: 4 x 1440 = 5760 fits, 5 do not.
        let widths = [320, 320, 1440, 1440, 1440, 1440, 3072, 3072];
        assert_eq!(batches(&widths), [0..4, 4..6, 6..7, 7..8]);
        assert!(batches(&[]).is_empty());
    }

    #[test]
    fn widths_follow_paddleocr() {
        assert_eq!(resized_width(100, 48, 192), 100);
        assert_eq!(resized_width(1000, 48, 192), 192);
        assert_eq!(resized_width(10, 20, 192), 24);
        assert_eq!(padded_width(1.0), 320);
        assert_eq!(padded_width(10.0), 480);
        assert_eq!(padded_width(1000.0), 3072);
    }
}
