//! Speech segments from per-frame speech probabilities: Silero VAD's own
//! `get_speech_timestamps_from_probs` (silero-vad 6.2.3, `utils_vad.py`),
//! step for step, so that the same probabilities give the same segments as
//! the reference package. Positions are in samples at 16 kHz.
//!
//! In short: speech starts at the first frame at or above `threshold`; it
//! ends where the probability falls below `neg_threshold` (default
//! threshold - 0.15) and stays there for `min_silence_duration_ms`; segments
//! shorter than `min_speech_duration_ms` are dropped; a segment longer than
//! `max_speech_duration_s` is cut at its longest silence; each is padded by
//! `speech_pad_ms` (half the gap, where two are closer than two pads).

/// Samples per frame (32 ms at 16 kHz): what the model takes at a time.
pub const FRAME: usize = 512;
const RATE: f64 = 16_000.0;

/// Silero's parameters, with its defaults.
#[derive(Debug, Clone)]
pub struct Params {
    pub threshold: f64,
    pub neg_threshold: Option<f64>,
    pub min_speech_duration_ms: u32,
    pub max_speech_duration_s: f64,
    pub min_silence_duration_ms: u32,
    pub speech_pad_ms: u32,
    pub min_silence_at_max_speech: u32,
    pub use_max_poss_sil_at_max_speech: bool,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            neg_threshold: None,
            min_speech_duration_ms: 250,
            max_speech_duration_s: f64::INFINITY,
            min_silence_duration_ms: 100,
            speech_pad_ms: 30,
            min_silence_at_max_speech: 98,
            use_max_poss_sil_at_max_speech: true,
        }
    }
}

impl Params {
    /// Values the algorithm cannot use, named.
    pub fn check(&self) -> Result<(), String> {
        let unit = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} must be between 0 and 1, got {v}"))
            }
        };
        unit("threshold", self.threshold)?;
        if let Some(neg) = self.neg_threshold {
            unit("neg_threshold", neg)?;
        }
        if self.max_speech_duration_s.is_nan() || self.max_speech_duration_s <= 0.0 {
            return Err(format!(
                "max_speech_duration_s must be more than 0, got {}",
                self.max_speech_duration_s
            ));
        }
        Ok(())
    }
}

/// A segment of speech, in samples: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub start: usize,
    pub end: usize,
}

/// The silences seen inside the segment being read. As in the reference, 0
/// stands for "none" in the positions (a silence can only begin after the
/// first frame).
#[derive(Default)]
struct Silences {
    /// Where the current silence began: a tentative end.
    temp_end: usize,
    /// Where to cut when the segment grows too long (the legacy rule).
    prev_end: usize,
    next_start: usize,
    /// Silences long enough to cut at: (start, length).
    possible_ends: Vec<(usize, usize)>,
}

/// The speech segments of a recording of `audio_len` samples whose frames
/// of [`FRAME`] samples had the speech probabilities `probs`.
pub fn speech_segments(probs: &[f32], audio_len: usize, p: &Params) -> Vec<Segment> {
    let window = FRAME as f64;
    let min_speech_samples = RATE * f64::from(p.min_speech_duration_ms) / 1000.0;
    let speech_pad_samples = RATE * f64::from(p.speech_pad_ms) / 1000.0;
    let max_speech_samples = RATE * p.max_speech_duration_s - window - 2.0 * speech_pad_samples;
    let min_silence_samples = RATE * f64::from(p.min_silence_duration_ms) / 1000.0;
    let min_silence_samples_at_max_speech = RATE * f64::from(p.min_silence_at_max_speech) / 1000.0;
    let threshold = p.threshold;
    let neg_threshold = p.neg_threshold.unwrap_or((threshold - 0.15).max(0.01));

    let mut triggered = false;
    let mut speeches: Vec<Segment> = Vec::new();
    // The segment being read: its start, once speech began.
    let mut current: Option<usize> = None;
    let mut sil = Silences::default();

    for (i, &prob) in probs.iter().enumerate() {
        let prob = f64::from(prob);
        let cur_sample = FRAME * i;

        // Speech returns after a tentative end: remember the silence if it
        // was long enough to cut at.
        if prob >= threshold && sil.temp_end != 0 {
            let sil_dur = cur_sample - sil.temp_end;
            if sil_dur as f64 > min_silence_samples_at_max_speech {
                sil.possible_ends.push((sil.temp_end, sil_dur));
            }
            sil.temp_end = 0;
            if sil.next_start < sil.prev_end {
                sil.next_start = cur_sample;
            }
        }

        if prob >= threshold && !triggered {
            triggered = true;
            current = Some(cur_sample);
            continue;
        }

        // Too long: cut.
        if let (true, Some(start)) = (triggered, current)
            && (cur_sample - start) as f64 > max_speech_samples
        {
            if p.use_max_poss_sil_at_max_speech && !sil.possible_ends.is_empty() {
                // The longest silence (the first of equals, as Python's max).
                let (end, dur) = sil
                    .possible_ends
                    .iter()
                    .copied()
                    .fold(None, |best: Option<(usize, usize)>, e| match best {
                        Some(b) if b.1 >= e.1 => Some(b),
                        _ => Some(e),
                    })
                    .unwrap_or_default();
                sil.prev_end = end;
                speeches.push(Segment { start, end });
                current = None;
                sil.next_start = sil.prev_end + dur;
                if sil.next_start < sil.prev_end + cur_sample {
                    current = Some(sil.next_start);
                } else {
                    triggered = false;
                }
                sil = Silences::default();
            } else if sil.prev_end != 0 {
                speeches.push(Segment {
                    start,
                    end: sil.prev_end,
                });
                current = None;
                if sil.next_start < sil.prev_end {
                    triggered = false;
                } else {
                    current = Some(sil.next_start);
                }
                sil = Silences::default();
            } else {
                speeches.push(Segment {
                    start,
                    end: cur_sample,
                });
                current = None;
                sil = Silences::default();
                triggered = false;
                continue;
            }
        }

        // Silence while in speech.
        if prob < neg_threshold && triggered {
            if sil.temp_end == 0 {
                sil.temp_end = cur_sample;
            }
            let sil_dur_now = cur_sample - sil.temp_end;
            if !p.use_max_poss_sil_at_max_speech
                && sil_dur_now as f64 > min_silence_samples_at_max_speech
            {
                sil.prev_end = sil.temp_end;
            }
            if (sil_dur_now as f64) < min_silence_samples {
                continue;
            }
            if let Some(start) = current
                && (sil.temp_end as f64 - start as f64) > min_speech_samples
            {
                speeches.push(Segment {
                    start,
                    end: sil.temp_end,
                });
            }
            current = None;
            sil = Silences::default();
            triggered = false;
            continue;
        }
    }

    if let Some(start) = current
        && (audio_len as f64 - start as f64) > min_speech_samples
    {
        speeches.push(Segment {
            start,
            end: audio_len,
        });
    }

    // Padding: `speech_pad_samples` each side, or half the gap between two
    // segments closer than two pads. Truncated to whole samples as Python's
    // int() does.
    let pad = speech_pad_samples;
    let count = speeches.len();
    for i in 0..count {
        if i == 0 {
            speeches[0].start = (speeches[0].start as f64 - pad).max(0.0) as usize;
        }
        if i + 1 < count {
            let gap = speeches[i + 1].start as i64 - speeches[i].end as i64;
            if (gap as f64) < 2.0 * pad {
                let half = gap.div_euclid(2);
                speeches[i].end = (speeches[i].end as i64 + half) as usize;
                speeches[i + 1].start = (speeches[i + 1].start as i64 - half).max(0) as usize;
            } else {
                speeches[i].end = (speeches[i].end as f64 + pad).min(audio_len as f64) as usize;
                speeches[i + 1].start = (speeches[i + 1].start as f64 - pad).max(0.0) as usize;
            }
        } else {
            speeches[i].end = (speeches[i].end as f64 + pad).min(audio_len as f64) as usize;
        }
    }
    speeches
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// What silero-vad 6.2.3 itself answers (tests/vad/make_reference.py).
    const REFERENCE: &str = include_str!("../../../tests/data/vad/reference.json");

    fn params(json: &Value) -> Params {
        let mut p = Params::default();
        let number = |key: &str| json.get(key).and_then(Value::as_f64);
        let millis = |key: &str| json.get(key).and_then(Value::as_u64).map(|v| v as u32);
        if let Some(v) = number("threshold") {
            p.threshold = v;
        }
        p.neg_threshold = number("neg_threshold");
        if let Some(v) = number("max_speech_duration_s") {
            p.max_speech_duration_s = v;
        }
        if let Some(v) = millis("min_speech_duration_ms") {
            p.min_speech_duration_ms = v;
        }
        if let Some(v) = millis("min_silence_duration_ms") {
            p.min_silence_duration_ms = v;
        }
        if let Some(v) = millis("speech_pad_ms") {
            p.speech_pad_ms = v;
        }
        if let Some(v) = json
            .get("use_max_poss_sil_at_max_speech")
            .and_then(Value::as_bool)
        {
            p.use_max_poss_sil_at_max_speech = v;
        }
        p
    }

    fn segments(json: &Value) -> Vec<Segment> {
        json.as_array()
            .unwrap()
            .iter()
            .map(|s| Segment {
                start: s[0].as_u64().unwrap() as usize,
                end: s[1].as_u64().unwrap() as usize,
            })
            .collect()
    }

    fn probabilities(json: &Value) -> Vec<f32> {
        json.as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_f64().unwrap() as f32)
            .collect()
    }

    #[test]
    fn every_branch_answers_as_silero_does() {
        let reference: Value = serde_json::from_str(REFERENCE).unwrap();
        let cases = reference["branch_cases"].as_array().unwrap();
        assert!(cases.len() >= 12);
        for (i, case) in cases.iter().enumerate() {
            let got = speech_segments(
                &probabilities(&case["probabilities"]),
                case["audio_length"].as_u64().unwrap() as usize,
                &params(&case["params"]),
            );
            assert_eq!(
                got,
                segments(&case["segments"]),
                "case {i}: {}",
                case["params"]
            );
        }
    }

    #[test]
    fn the_recordings_probabilities_give_silero_segments() {
        let reference: Value = serde_json::from_str(REFERENCE).unwrap();
        let probs = probabilities(&reference["probabilities"]);
        let samples = reference["recording"]["samples"].as_u64().unwrap() as usize;
        for run in ["default", "second"] {
            let got = speech_segments(&probs, samples, &params(&reference[run]["params"]));
            assert_eq!(got, segments(&reference[run]["segments"]), "{run}");
        }
    }

    #[test]
    fn parameters_out_of_range_are_named() {
        let bad = Params {
            threshold: 1.5,
            ..Params::default()
        };
        assert!(bad.check().unwrap_err().contains("threshold"));
        let bad = Params {
            max_speech_duration_s: 0.0,
            ..Params::default()
        };
        assert!(bad.check().unwrap_err().contains("max_speech_duration_s"));
        assert!(Params::default().check().is_ok());
    }
}
