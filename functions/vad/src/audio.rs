//! The request's recording: a WAV file to mono 32-bit samples at the
//! model's 16 kHz.
//!
//! PCM (8, 16, 24 or 32-bit) and 32-bit float are read; channels are
//! averaged into one. A rate that is a multiple of 16 kHz (32, 48 kHz) is
//! decimated as Silero's own `get_speech_timestamps` does (every n-th
//! sample); any other rate is refused with a message saying how to convert,
//! rather than resampled with a filter the reference does not use.

use std::io::Cursor;

use wasi_infer_guest::ApiError;

/// The rate the model listens at.
pub const SAMPLE_RATE: u32 = 16_000;

/// The longest recording one request may hold: bounds the model's work
/// (one inference per 32 ms of audio, 18,750 for ten minutes) whatever the
/// server's body limit allows.
pub const MAX_SECONDS: u32 = 600;

/// A recording at [`SAMPLE_RATE`].
#[derive(Debug)]
pub struct Audio {
    pub samples: Vec<f32>,
    /// The file's own rate, for the answer.
    pub source_rate: u32,
    pub channels: u16,
}

/// Reads a WAV file.
pub fn read_wav(bytes: &[u8]) -> Result<Audio, ApiError> {
    let bad = |e: &dyn std::fmt::Display| {
        ApiError::bad_request(format!(
            "the body is not a WAV file this function reads ({e}): send 16 kHz mono PCM or float WAV"
        ))
    };
    let reader = hound::WavReader::new(Cursor::new(bytes)).map_err(|e| bad(&e))?;
    let spec = reader.spec();
    let step = match spec.sample_rate {
        0 => return Err(bad(&"its sample rate is 0")),
        rate if rate % SAMPLE_RATE == 0 => rate / SAMPLE_RATE,
        rate => {
            return Err(ApiError::bad_request(format!(
                "the recording is at {rate} Hz: the model listens at 16 kHz (or a multiple, which is decimated); convert it first, e.g. ffmpeg -i in.wav -ar 16000 -ac 1 out.wav"
            )));
        }
    };
    let channels = usize::from(spec.channels.max(1));
    // What the header promises is checked before anything is decoded.
    let frames = u64::from(reader.duration());
    if frames > u64::from(MAX_SECONDS) * u64::from(spec.sample_rate) {
        return Err(ApiError::payload_too_large(format!(
            "the recording lasts {:.0} s; at most {MAX_SECONDS} s a request",
            frames as f64 / f64::from(spec.sample_rate)
        )));
    }
    let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => reader
            .into_samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(|e| bad(&e))?,
        (hound::SampleFormat::Int, bits @ 1..=32) => {
            // Full scale is 2^(bits-1), as soundfile and torchaudio read PCM.
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|s| s as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(|e| bad(&e))?
        }
        (format, bits) => return Err(bad(&format!("{bits}-bit {format:?} samples"))),
    };
    if interleaved.len() < channels {
        return Err(ApiError::bad_request(
            "the WAV file holds no audio".to_string(),
        ));
    }
    let mono = interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32);
    let samples = mono.step_by(step as usize).collect();
    Ok(Audio {
        samples,
        source_rate: spec.sample_rate,
        channels: spec.channels,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A WAV file of `samples` (interleaved) as `spec` says.
    pub fn wav<S: hound::Sample + Copy>(spec: hound::WavSpec, samples: &[S]) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        let mut writer = hound::WavWriter::new(&mut out, spec).unwrap();
        for &s in samples {
            writer.write_sample(s).unwrap();
        }
        writer.finalize().unwrap();
        out.into_inner()
    }

    fn spec(rate: u32, channels: u16, bits: u16, format: hound::SampleFormat) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: format,
        }
    }

    #[test]
    fn pcm_and_float_read_alike() {
        let int = wav(
            spec(16_000, 1, 16, hound::SampleFormat::Int),
            &[0i16, 16384, -32768],
        );
        let audio = read_wav(&int).unwrap();
        assert_eq!(audio.samples, [0.0, 0.5, -1.0]);
        let float = wav(
            spec(16_000, 1, 32, hound::SampleFormat::Float),
            &[0.0f32, 0.5, -1.0],
        );
        assert_eq!(read_wav(&float).unwrap().samples, [0.0, 0.5, -1.0]);
    }

    #[test]
    fn stereo_is_averaged_and_48k_decimated() {
        let stereo = wav(
            spec(16_000, 2, 16, hound::SampleFormat::Int),
            &[16384i16, 0, 0, -16384],
        );
        assert_eq!(read_wav(&stereo).unwrap().samples, [0.25, -0.25]);
        let samples: Vec<i16> = (0..6).map(|i| i * 1000).collect();
        let high = wav(spec(48_000, 1, 16, hound::SampleFormat::Int), &samples);
        let audio = read_wav(&high).unwrap();
        assert_eq!(audio.samples.len(), 2);
        assert_eq!(audio.samples[1], 3000.0 / 32768.0);
        assert_eq!(audio.source_rate, 48_000);
    }

    #[test]
    fn other_rates_and_non_wav_bodies_are_refused() {
        let cd = wav(spec(44_100, 1, 16, hound::SampleFormat::Int), &[0i16; 10]);
        let error = read_wav(&cd).unwrap_err();
        assert_eq!(error.status, 400);
        assert!(error.message.contains("44100 Hz"), "{}", error.message);
        assert_eq!(read_wav(b"{\"not\": \"audio\"}").unwrap_err().status, 400);
        assert_eq!(read_wav(b"").unwrap_err().status, 400);
        let empty = wav::<i16>(spec(16_000, 1, 16, hound::SampleFormat::Int), &[]);
        assert_eq!(read_wav(&empty).unwrap_err().status, 400);
    }

    #[test]
    fn a_header_promising_too_long_a_recording_is_refused_before_decoding() {
        let mut long = wav(spec(16_000, 1, 16, hound::SampleFormat::Int), &[0i16; 4]);
        // The data chunk's size (the last 4 bytes before the samples) says
        // 2 GB; the file holds 8 bytes.
        let at = long.len() - 8 - 4;
        long[at..at + 4].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
        let error = read_wav(&long).unwrap_err();
        assert!(
            error.status == 413 || error.status == 400,
            "{}",
            error.status
        );
    }
}
