//! `vad`: finds the speech in a recording with a voice activity model
//! (Silero VAD) served by the host through wasi-nn.
//!
//! `POST /vad/<model>` with a WAV file as the body (`curl --data-binary
//! @speech.wav`) or as a form upload (`curl -F file=@speech.wav`) answers
//!
//! ```json
//! {"model": "silero-vad", "duration": 6.4, "segments": [{"start": 0.482, "end": 2.334}, ...]}
//! ```
//!
//! with each stretch of speech's start and end in seconds, as Silero's own
//! `get_speech_timestamps` finds them (the same thresholds and padding; see
//! [`segments`]). The query takes its parameters (`threshold`,
//! `neg_threshold`, `min_speech_duration_ms`, `max_speech_duration_s`,
//! `min_silence_duration_ms`, `speech_pad_ms`) and `probabilities=true`,
//! which adds each 32 ms frame's speech probability.
//!
//! The recording is read and brought to 16 kHz mono here ([`audio`]), then
//! fed to the model 512 samples at a time, the recurrent state carried from
//! one frame to the next within the request ([`model`]); only the frames
//! cross into the host.
//!
//! Errors are `{"error": "..."}`: 400 for a body that is not a WAV file this
//! function reads (or a rate it cannot bring to 16 kHz) or a bad parameter,
//! 404 for an unknown model, 405 for a method other than POST, 413 for a
//! recording longer than [`audio::MAX_SECONDS`].

mod audio;
mod model;
mod segments;

use serde::Serialize;
use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use wasi_infer_guest::{ApiError, Timings, form, model_name};

use segments::{FRAME, Params};

#[derive(Serialize)]
struct Answer<'a> {
    model: &'a str,
    /// Seconds of audio.
    duration: f64,
    /// The file's own sample rate and channels (read as 16 kHz mono).
    sample_rate: u32,
    channels: u16,
    segments: Vec<Seconds>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frames: Option<Frames>,
}

#[derive(Serialize)]
struct Seconds {
    start: f64,
    end: f64,
}

#[derive(Serialize)]
struct Frames {
    /// Seconds per frame: frame `i` starts at `i * seconds`.
    seconds: f64,
    probabilities: Vec<f32>,
}

#[http_component]
fn handle(req: Request) -> Response {
    let mut timings = Timings::start();
    match detect(&req, &mut timings) {
        Ok(body) => timings.json_response(body),
        Err(err) => err.into_response(),
    }
}

fn detect(req: &Request, timings: &mut Timings) -> Result<Vec<u8>, ApiError> {
    if *req.method() != Method::Post {
        return Err(ApiError::method_not_allowed("POST"));
    }
    let model = model_name(req, "POST /vad/<model>")?;
    let (params, with_frames) = query(req.query())?;
    let content_type = req.header("content-type").and_then(|v| v.as_str());
    let wav = wav_body(content_type, req.body())?;

    let audio = audio::read_wav(wav)?;
    timings.lap("decode");
    let probabilities = model::frame_probabilities(model, &audio.samples)?;
    timings.lap("inference");

    let rate = f64::from(audio::SAMPLE_RATE);
    let seconds = |samples: usize| samples as f64 / rate;
    let segments = segments::speech_segments(&probabilities, audio.samples.len(), &params)
        .into_iter()
        .map(|s| Seconds {
            start: seconds(s.start),
            end: seconds(s.end),
        })
        .collect();
    let answer = Answer {
        model,
        duration: seconds(audio.samples.len()),
        sample_rate: audio.source_rate,
        channels: audio.channels,
        segments,
        frames: with_frames.then(|| Frames {
            seconds: seconds(FRAME),
            probabilities,
        }),
    };
    let body = serde_json::to_vec(&answer)
        .map_err(|e| ApiError::internal(format!("cannot serialise the answer: {e}")))?;
    timings.lap("postprocess");
    Ok(body)
}

/// The WAV file: the first file of a form upload, or the body itself.
fn wav_body<'a>(content_type: Option<&str>, body: &'a [u8]) -> Result<&'a [u8], ApiError> {
    let wav = form::file_or_body(content_type, body)?;
    if wav.is_empty() {
        return Err(ApiError::bad_request(
            "no recording: send a WAV file as the body, or upload it as a form file",
        ));
    }
    Ok(wav)
}

/// Silero's parameters and `probabilities` from the query string.
fn query(query: &str) -> Result<(Params, bool), ApiError> {
    let mut params = Params::default();
    let mut frames = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number = || {
            value.parse::<f64>().map_err(|_| {
                ApiError::bad_request(format!("{key} must be a number, got {value:?}"))
            })
        };
        let millis = || {
            value.parse::<u32>().map_err(|_| {
                ApiError::bad_request(format!(
                    "{key} must be a whole number of milliseconds, got {value:?}"
                ))
            })
        };
        match key {
            "threshold" => params.threshold = number()?,
            "neg_threshold" => params.neg_threshold = Some(number()?),
            "max_speech_duration_s" => params.max_speech_duration_s = number()?,
            "min_speech_duration_ms" => params.min_speech_duration_ms = millis()?,
            "min_silence_duration_ms" => params.min_silence_duration_ms = millis()?,
            "speech_pad_ms" => params.speech_pad_ms = millis()?,
            "probabilities" => {
                frames = match value {
                    "" | "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "probabilities must be true or false, got {value:?}"
                        )));
                    }
                }
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter {:?}: use threshold, neg_threshold, min_speech_duration_ms, max_speech_duration_s, min_silence_duration_ms, speech_pad_ms or probabilities",
                    wasi_infer_guest::quoted(key)
                )));
            }
        }
    }
    params.check().map_err(ApiError::bad_request)?;
    Ok((params, frames))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_sets_silero_parameters() {
        let (params, frames) = query("threshold=0.6&speech_pad_ms=0&probabilities").unwrap();
        assert_eq!(params.threshold, 0.6);
        assert_eq!(params.speech_pad_ms, 0);
        assert!(frames);
        let (params, frames) = query("").unwrap();
        assert_eq!(params.threshold, 0.5);
        assert!(!frames);
        for bad in [
            "threshold=2",
            "threshold=x",
            "speech_pad_ms=-1",
            "colour=red",
            "max_speech_duration_s=0",
            "probabilities=maybe",
        ] {
            assert_eq!(query(bad).unwrap_err().status, 400, "{bad}");
        }
    }
}
