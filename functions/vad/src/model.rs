//! Runs Silero VAD over a recording, frame by frame, as its `OnnxWrapper`
//! does: each inference takes the previous 64 samples (the context; zeros
//! at first) and the next 512, and the recurrent state the last one
//! returned (zeros at first); the last frame is padded with zeros. One
//! session serves every frame of a request, and the state never outlives it.

use wasi_infer_guest::{ApiError, models, nn};

use crate::segments::FRAME;

/// Samples of the previous frame the model sees again (at 16 kHz).
const CONTEXT: usize = 64;
/// The recurrent state: `[2, 1, 128]`.
const STATE_DIMS: [u32; 3] = [2, 1, 128];
const STATE_LEN: usize = 2 * 128;

/// The model's tensors, as Silero names them.
const INPUT: &str = "input";
const STATE: &str = "state";
/// The sample rate, an i64 scalar, in the exports that serve both 8 and
/// 16 kHz; the 16 kHz-only export has no such input.
const SAMPLE_RATE: &str = "sr";

/// The speech probability of each frame of `samples` (16 kHz, mono).
pub fn frame_probabilities(model: &str, samples: &[f32]) -> Result<Vec<f32>, ApiError> {
    let meta = models::get_model(model, None).ok_or_else(|| {
        ApiError::not_found(format!(
            "no model named {model:?} is available to this function"
        ))
    })?;
    let names: Vec<&str> = meta.inputs.iter().map(|t| t.name.as_str()).collect();
    if !names.contains(&INPUT) || !names.contains(&STATE) {
        return Err(ApiError::bad_request(format!(
            "model {model:?} is not a Silero voice activity model (its inputs are {names:?}; expected {INPUT:?} and {STATE:?})"
        )));
    }
    let takes_rate = names.contains(&SAMPLE_RATE);

    let session = nn::Session::open(model)?;
    let mut window = vec![0.0f32; CONTEXT + FRAME];
    let mut state = vec![0.0f32; STATE_LEN];
    let mut probabilities = Vec::with_capacity(samples.len().div_ceil(FRAME));
    for chunk in samples.chunks(FRAME) {
        // The context (the last 64 samples of the previous window) first,
        // then this frame, zero-padded.
        window.copy_within(FRAME.., 0);
        window[CONTEXT..CONTEXT + chunk.len()].copy_from_slice(chunk);
        window[CONTEXT + chunk.len()..].fill(0.0);

        let mut inputs = vec![
            nn::Input::f32(INPUT, &[1, (CONTEXT + FRAME) as u32], &window),
            nn::Input::f32(STATE, &STATE_DIMS, &state),
        ];
        if takes_rate {
            inputs.push(nn::Input::i64(SAMPLE_RATE, &[], &[16_000]));
        }
        let (probability, next_state) = read_outputs(session.compute(inputs)?)?;
        probabilities.push(probability);
        state = next_state;
    }
    Ok(probabilities)
}

/// The speech probability (one value) and the next state (`[2, 1, 128]`),
/// told apart by their sizes: backends need not keep the outputs' names.
fn read_outputs(outputs: Vec<nn::Output>) -> Result<(f32, Vec<f32>), ApiError> {
    let mut probability = None;
    let mut state = None;
    for values in outputs.iter().filter_map(nn::Output::f32_values) {
        match values.len() {
            1 => probability = Some(values[0]),
            STATE_LEN => state = Some(values),
            _ => {}
        }
    }
    match (probability, state) {
        (Some(p), Some(s)) => Ok((p, s)),
        _ => Err(ApiError::internal(
            "the model did not return a speech probability ([1, 1]) and a state ([2, 1, 128])",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(name: &str, values: &[f32]) -> nn::Output {
        nn::Output {
            name: name.into(),
            ty: nn::TensorType::Fp32,
            dims: vec![values.len() as u32],
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    #[test]
    fn outputs_are_told_apart_by_size_in_any_order() {
        let state = vec![0.5; STATE_LEN];
        let (p, s) = read_outputs(vec![output("1", &state), output("0", &[0.9])]).unwrap();
        assert_eq!(p, 0.9);
        assert_eq!(s, state);
        assert_eq!(
            read_outputs(vec![output("output", &[0.9])])
                .unwrap_err()
                .status,
            500
        );
    }
}
