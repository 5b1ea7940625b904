//! What classifying with a model takes, read from its `model.toml`: the tensor
//! names, how to prepare an image, and where the labels are. The host reads the
//! same file for the rest (format, backend, shapes).

use serde::Deserialize;

use crate::Error;

/// The parts of a `model.toml` an image classifier uses.
#[derive(Debug, Clone)]
pub struct ClassifierSpec {
    pub input_name: String,
    pub output_name: String,
    pub preprocess: Preprocess,
    /// The labels file, relative to the model's directory.
    pub labels_file: Option<String>,
}

#[derive(Deserialize)]
struct ModelToml {
    labels: Option<String>,
    /// What the model does (`image-classification`, `text-embedding`), when
    /// its `model.toml` says.
    task: Option<String>,
    inputs: Vec<TensorName>,
    outputs: Vec<TensorName>,
    /// Kept as a table so that a model with another kind of `[preprocess]`
    /// (a text embedder's tokenizer) gets a clear 400 rather than a parse error.
    preprocess: Option<toml::Table>,
}

/// The task [`ClassifierSpec`] serves.
const TASK: &str = "image-classification";

#[derive(Deserialize)]
struct TensorName {
    name: String,
}

/// How an image becomes the model's input tensor.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    /// Resize so that the shorter side has this many pixels (bilinear)...
    pub resize_shorter_side: u32,
    /// ...then take the centre `[width, height]`.
    pub crop: [u32; 2],
    /// The model's colour channels: `rgb` (default) or `gray` (one channel, luma).
    #[serde(default)]
    pub color: Color,
    /// Per-channel (R, G, B, or the one gray channel) `(pixel - mean) / std`,
    /// on pixel values 0..=255.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub layout: Layout,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    #[default]
    Rgb,
    Gray,
}

impl Color {
    pub fn channels(self) -> usize {
        match self {
            Color::Rgb => 3,
            Color::Gray => 1,
        }
    }
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    Nchw,
    Nhwc,
}

impl ClassifierSpec {
    /// Parses a `model.toml`; `model` and `path` only name it in errors.
    pub fn parse(model: &str, path: &str, text: &str) -> Result<Self, Error> {
        let parsed: ModelToml =
            toml::from_str(text).map_err(|e| Error::Config(format!("invalid {path}: {e}")))?;
        if let Some(task) = parsed.task.as_deref().filter(|t| *t != TASK) {
            return Err(Error::NotAClassifier(format!(
                "model {model:?} is not an image classifier (its task is {task:?})"
            )));
        }
        // An image preprocessing always crops; a table without `crop` is
        // another kind of model's.
        let table = parsed
            .preprocess
            .filter(|table| table.contains_key("crop"))
            .ok_or_else(|| {
                Error::NotAClassifier(format!(
                    "model {model:?} is not an image classifier (its model.toml has no image [preprocess])"
                ))
            })?;
        let preprocess: Preprocess = table
            .try_into()
            .map_err(|e| Error::Config(format!("invalid {path}: [preprocess]: {e}")))?;
        let first = |list: Vec<TensorName>, what: &str| {
            list.into_iter()
                .next()
                .map(|t| t.name)
                .ok_or_else(|| Error::Config(format!("{path} lists no {what}")))
        };
        Ok(Self {
            input_name: first(parsed.inputs, "inputs")?,
            output_name: first(parsed.outputs, "outputs")?,
            preprocess,
            labels_file: parsed.labels,
        })
    }
}

/// One label per class, in class-index order. A line may list synonyms
/// ("tabby, tabby cat"): the first one is the label.
pub fn parse_labels(text: &str) -> Vec<String> {
    text.lines().map(first_synonym).collect()
}

/// The label of class `index` in a labels file's text, without parsing the
/// others (a function answers with a handful of a thousand); empty if the file
/// has no such line.
pub fn label_of(text: &str, index: usize) -> String {
    // memchr finds the line with SIMD (simd128 in wasm): `str::lines` walked
    // the 21 KB of ImageNet labels at about 3 ns a byte in wasm, 0.2 ms for
    // a top-5; this takes a few microseconds.
    let start = match index {
        0 => 0,
        _ => match memchr::memchr_iter(b'\n', text.as_bytes()).nth(index - 1) {
            Some(newline) => newline + 1,
            None => return String::new(),
        },
    };
    first_synonym(text[start..].split('\n').next().unwrap_or_default())
}

fn first_synonym(line: &str) -> String {
    line.split(',').next().unwrap_or("").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = r#"
        labels = "labels.txt"
        [[inputs]]
        name = "input"
        [[outputs]]
        name = "logits"
        [preprocess]
        resize_shorter_side = 256
        crop = [224, 224]
        mean = [127.0, 127.0, 127.0]
        std = [128.0, 128.0, 128.0]
        layout = "nchw"
    "#;

    #[test]
    fn another_kind_of_model_is_not_a_classifier() {
        let embedder = r#"
            task = "text-embedding"
            [[inputs]]
            name = "input_ids"
            [[outputs]]
            name = "sentence_embedding"
            [preprocess]
            tokenizer = "tokenizer.json"
            max_length = 256
        "#;
        let untagged = embedder.replace("task = \"text-embedding\"", "");
        for text in [embedder, untagged.as_str()] {
            let e = ClassifierSpec::parse("m", "model.toml", text).unwrap_err();
            assert!(matches!(e, Error::NotAClassifier(_)), "{e:?}");
        }
        let bad = TOML.replace("layout = \"nchw\"", "layout = \"sideways\"");
        let e = ClassifierSpec::parse("m", "model.toml", &bad).unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e:?}");
    }

    #[test]
    fn reads_what_a_classifier_needs() {
        let spec = ClassifierSpec::parse("m", "m/model.toml", TOML).unwrap();
        assert_eq!(
            (spec.input_name.as_str(), spec.output_name.as_str()),
            ("input", "logits")
        );
        assert_eq!(spec.labels_file.as_deref(), Some("labels.txt"));
        assert_eq!(spec.preprocess.color, Color::Rgb);
        assert_eq!(spec.preprocess.layout, Layout::Nchw);
    }

    #[test]
    fn a_model_without_preprocess_is_not_a_classifier() {
        let text = "[[inputs]]\nname = \"a\"\n[[outputs]]\nname = \"b\"\n";
        assert!(matches!(
            ClassifierSpec::parse("m", "p", text),
            Err(Error::NotAClassifier(_))
        ));
        assert!(matches!(
            ClassifierSpec::parse("m", "p", "x ="),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn labels_are_first_synonyms() {
        let text = "tabby, tabby cat\ntiger cat\n";
        assert_eq!(parse_labels(text), ["tabby", "tiger cat"]);
        assert_eq!(
            (label_of(text, 1).as_str(), label_of(text, 2).as_str()),
            ("tiger cat", "")
        );
    }

    /// `label_of` finds a line as `parse_labels` (`str::lines`) splits them:
    /// with or without a final newline, CRLF, empty lines, past the end.
    #[test]
    fn label_of_agrees_with_parse_labels() {
        for text in [
            "",
            "\n",
            "a",
            "a\n",
            "a\nb",
            "a, x\r\nb, y\r\n",
            "a\n\nc\n",
            "\n\nc",
        ] {
            let all = parse_labels(text);
            for index in 0..all.len() + 3 {
                let want = all.get(index).cloned().unwrap_or_default();
                assert_eq!(label_of(text, index), want, "{text:?} line {index}");
            }
        }
    }
}
