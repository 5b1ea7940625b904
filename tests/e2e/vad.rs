//! The voice activity function (`functions/vad`) against what Silero's own
//! package finds in the same recording (`tests/data/vad/reference.json`,
//! made by `tests/vad/make_reference.py` with silero-vad 6.2.3), on every
//! backend; and how it reads what clients send.

use std::sync::OnceLock;

use serde_json::Value;

use crate::server::{Server, form_upload, root};

/// How far a frame's speech probability may be from the package's.
///
/// Measured here: ONNX Runtime 3e-8, tract 2.8e-6, OpenVINO 1.5e-5 (fp32
/// everywhere; the export the repository serves gives the package's model's
/// probabilities exactly on ONNX Runtime). Kernels round differently by CPU
/// (FMA, AVX2 or AVX-512 orders of summation), and the recurrent state
/// carries the rounding from frame to frame: 1e-3 leaves 60 times what was
/// measured. It stays below every frame's distance from the thresholds
/// used (checked below), so within it no decision can change and the
/// segments must be the package's exactly.
const MAX_PROBABILITY_ERROR: f64 = 1e-3;

/// The reference, parsed once.
fn reference() -> &'static Value {
    static REFERENCE: OnceLock<Value> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let text = std::fs::read_to_string(root().join("tests/data/vad/reference.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    })
}

fn speech() -> Vec<u8> {
    std::fs::read(root().join("tests/data/vad/speech.wav")).unwrap()
}

/// The reference's segments of one run, in seconds.
fn reference_segments(run: &str) -> Vec<(f64, f64)> {
    reference()[run]["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s[0].as_f64().unwrap() / 16_000.0,
                s[1].as_f64().unwrap() / 16_000.0,
            )
        })
        .collect()
}

fn segments(answer: &Value) -> Vec<(f64, f64)> {
    answer["segments"]
        .as_array()
        .unwrap_or_else(|| panic!("no segments in {answer}"))
        .iter()
        .map(|s| (s["start"].as_f64().unwrap(), s["end"].as_f64().unwrap()))
        .collect()
}

/// The query of the reference's second run.
const SECOND_RUN: &str =
    "threshold=0.6&min_silence_duration_ms=300&speech_pad_ms=100&min_speech_duration_ms=500";

/// Finds the speech on `server` (whose log names `backend`) and checks it
/// against the package: each frame's probability, and both runs' segments.
pub fn check_against_silero(server: &Server, backend: &str) {
    let reference = reference();
    let expected: Vec<f64> = reference["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_f64().unwrap())
        .collect();
    // The reasoning above holds only if no frame lies within the tolerance
    // of a threshold: 0.5 and 0.35 (defaults), 0.6 and 0.45 (second run).
    for threshold in [0.5, 0.35, 0.6, 0.45] {
        let closest = expected
            .iter()
            .map(|p| (p - threshold).abs())
            .fold(f64::INFINITY, f64::min);
        assert!(
            closest > MAX_PROBABILITY_ERROR,
            "a reference frame is {closest} from threshold {threshold}"
        );
    }

    let reply = server.post("/vad/silero-vad?probabilities=true", &speech());
    assert_eq!(reply.status, 200, "{backend}: {}", reply.text);
    let answer = reply.json();
    let got: Vec<f64> = answer["frames"]["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_f64().unwrap())
        .collect();
    assert_eq!(got.len(), expected.len(), "{backend}: frames");
    let worst = got
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    eprintln!("silero-vad on {backend}: probabilities within {worst:.1e} of silero-vad's");
    assert!(
        worst <= MAX_PROBABILITY_ERROR,
        "{backend}: a frame's probability is {worst} from silero-vad's"
    );
    assert_eq!(
        segments(&answer),
        reference_segments("default"),
        "{backend}"
    );
    let samples = reference["recording"]["samples"].as_f64().unwrap();
    assert_eq!(answer["duration"].as_f64(), Some(samples / 16_000.0));

    let second = server.post(&format!("/vad/silero-vad?{SECOND_RUN}"), &speech());
    assert_eq!(second.status, 200, "{backend}: {}", second.text);
    assert_eq!(
        segments(&second.json()),
        reference_segments("second"),
        "{backend}"
    );
}

#[test]
fn recordings_are_read_as_clients_send_them_and_bad_ones_refused() {
    let server = Server::start(&["--backend", "tract"]);
    let expected = reference_segments("default");
    let wav = speech();
    let samples = pcm16(&wav);

    // The same samples as a form upload, as 32-bit float, and at 48 kHz in
    // stereo (each sample three times, in both channels: Silero decimates
    // 48 kHz to every third sample, which gives these samples back).
    let upload = form_upload("speech.wav", "audio/wav", &wav);
    let reply = server.send(
        "POST",
        "/vad/silero-vad",
        &[("content-type", "multipart/form-data; boundary=XyZ")],
        &upload,
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(segments(&reply.json()), expected);
    let float: Vec<u8> = samples
        .iter()
        .flat_map(|&s| (f32::from(s) / 32768.0).to_le_bytes())
        .collect();
    let reply = server.post("/vad/silero-vad", &wav_file(16_000, 1, 32, 3, &float));
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(segments(&reply.json()), expected);
    let stereo_48k: Vec<u8> = samples
        .iter()
        .flat_map(|&s| std::iter::repeat_n(s, 6))
        .flat_map(i16::to_le_bytes)
        .collect();
    let reply = server.post("/vad/silero-vad", &wav_file(48_000, 2, 16, 1, &stereo_48k));
    assert_eq!(reply.status, 200, "{}", reply.text);
    let answer = reply.json();
    assert_eq!(segments(&answer), expected);
    assert_eq!(answer["sample_rate"], 48_000);
    assert_eq!(answer["channels"], 2);
    assert!(
        reply
            .header("server-timing")
            .is_some_and(|t| t.contains("inference;dur=")),
        "{:?}",
        reply.header("server-timing")
    );

    // Bad input: a clear JSON error, and the server keeps serving.
    let cd_rate = wav_file(44_100, 1, 16, 1, &[0; 882]);
    // Ten minutes and a second of 8-bit audio: 9.6 MB, under the body limit,
    // over the function's bound on one request's work.
    let too_long = wav_file(16_000, 1, 8, 1, &vec![128; 16_000 * 601]);
    for (method, path, body, status, says) in [
        ("POST", "/vad/silero-vad", &cd_rate[..], 400, "44100 Hz"),
        (
            "POST",
            "/vad/silero-vad",
            b"{\"audio\": []}",
            400,
            "not a WAV file",
        ),
        ("POST", "/vad/silero-vad", b"", 400, "no recording"),
        ("POST", "/vad/silero-vad", &too_long, 413, "at most 600 s"),
        (
            "POST",
            "/vad/silero-vad?threshold=7",
            &wav,
            400,
            "threshold",
        ),
        (
            "POST",
            "/vad/silero-vad?window=1",
            &wav,
            400,
            "unknown parameter",
        ),
        ("POST", "/vad/nope", &wav, 404, "nope"),
        (
            "POST",
            "/vad/efficientnet-lite0",
            &wav,
            404,
            "efficientnet-lite0",
        ),
        ("GET", "/vad/silero-vad", b"", 405, "POST"),
    ] {
        let message = server.send(method, path, &[], body).assert_error(status);
        assert!(message.contains(says), "{method} {path}: {message}");
    }
    let reply = server.post("/vad/silero-vad", &wav);
    assert_eq!(reply.status, 200, "{}", reply.text);
}

/// The 16-bit samples of a canonical 44-byte-header WAV file.
fn pcm16(wav: &[u8]) -> Vec<i16> {
    assert_eq!(&wav[36..40], b"data", "a canonical WAV header");
    wav[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// A WAV file of `data` (interleaved samples, little-endian); `format` is 1
/// for PCM and 3 for IEEE float.
fn wav_file(rate: u32, channels: u16, bits: u16, format: u16, data: &[u8]) -> Vec<u8> {
    let block = channels * bits / 8;
    let mut out = Vec::with_capacity(44 + data.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&format.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
    out.extend_from_slice(&block.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out
}
