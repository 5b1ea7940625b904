//! Text to token ids with the model's HuggingFace `tokenizer.json`, for BERT
//! WordPiece tokenizers: split off the added tokens written in the text
//! ([CLS], [MASK], ...), normalise, split into words, WordPiece, truncate, and
//! add the template's special tokens.
//!
//! Written here rather than with the `tokenizers` crate, which builds for
//! wasm32-wasip2 and gives the same ids, because every request gets a fresh
//! instance that loads the tokenizer again: in the component, the crate took
//! 30-40 ms to load this tokenizer.json (a generic `serde_json::Value` alone
//! 15-25 ms), this module 4-6 ms; tokenising a sentence takes ~50 µs. It
//! follows the crate's code (same steps, order and Unicode tables), and the
//! tests check ids against the crate's Python binding.

mod config;
mod normalize;
mod wordpiece;

use config::{PostProcessor, PreTokenizer, TemplatePiece, TokenizerJson};
use normalize::BertNormalizer;
use std::path::Path;
use wasi_infer_guest::ApiError;
use wordpiece::WordPiece;

/// The contents of a tokenizer.json, which a [`Tokenizer`] borrows from.
pub fn read(path: &Path) -> Result<Vec<u8>, ApiError> {
    std::fs::read(path)
        .map_err(|e| ApiError::internal(format!("cannot read {}: {e}", path.display())))
}

pub struct Tokenizer<'a> {
    /// Tokens matched in the raw text, as (content, id).
    added: Vec<(String, u32)>,
    normalizer: BertNormalizer,
    wordpiece: WordPiece<'a>,
    /// The special ids around every text, e.g. [CLS] and [SEP].
    prefix: Vec<u32>,
    suffix: Vec<u32>,
    /// Most ids of a text, special ones included.
    max_length: usize,
    pad_id: u32,
}

enum Segment<'t> {
    Text(&'t str),
    Added(u32),
}

impl<'a> Tokenizer<'a> {
    /// Reads a tokenizer.json's contents; texts will be truncated to
    /// `max_length` ids, special ids included.
    pub fn from_json(json: &'a [u8], max_length: usize) -> Result<Self, ApiError> {
        let unsupported = |what: String| {
            ApiError::internal(format!(
                "unsupported tokenizer.json ({what}): this function reads BERT WordPiece tokenizers"
            ))
        };
        let parsed: TokenizerJson<'a> =
            serde_json::from_slice(json).map_err(|e| unsupported(e.to_string()))?;

        if parsed.model.kind != "WordPiece" {
            return Err(unsupported(format!("model {}", parsed.model.kind)));
        }
        let Some(config::Normalizer::BertNormalizer {
            clean_text,
            handle_chinese_chars,
            strip_accents,
            lowercase,
        }) = parsed.normalizer
        else {
            return Err(unsupported("no normalizer".into()));
        };
        if !matches!(parsed.pre_tokenizer, Some(PreTokenizer::BertPreTokenizer)) {
            return Err(unsupported("no pre_tokenizer".into()));
        }
        let mut added = Vec::new();
        for token in parsed.added_tokens {
            if token.normalized || token.lstrip || token.rstrip || token.single_word {
                return Err(unsupported(format!(
                    "added token {:?} is normalized, lstrip, rstrip or single_word",
                    token.content
                )));
            }
            if !token.content.is_empty() {
                added.push((token.content, token.id));
            }
        }
        let (prefix, suffix) = match parsed.post_processor {
            None => (Vec::new(), Vec::new()),
            Some(processor) => special_ids(processor).map_err(unsupported)?,
        };
        if max_length <= prefix.len() + suffix.len() {
            return Err(ApiError::internal(format!(
                "max_length {max_length} leaves no room for a token between the special ones"
            )));
        }

        let model = parsed.model;
        let unk_id = *model.vocab.get(model.unk_token.as_str()).ok_or_else(|| {
            unsupported(format!("{:?} is not in the vocabulary", model.unk_token))
        })?;
        let wordpiece = WordPiece {
            vocab: model.vocab,
            unk_id,
            prefix: model.continuing_subword_prefix,
            max_chars: model.max_input_chars_per_word,
        };
        let pad_id = parsed
            .padding
            .map(|p| p.pad_id)
            .or_else(|| wordpiece.id("[PAD]"))
            .unwrap_or(0);
        Ok(Self {
            added,
            normalizer: BertNormalizer {
                clean_text,
                handle_chinese_chars,
                strip_accents: strip_accents.unwrap_or(lowercase),
                lowercase,
            },
            wordpiece,
            prefix,
            suffix,
            max_length,
            pad_id,
        })
    }

    /// The ids of `text`, with the special ids, truncated to `max_length`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let room = self.max_length - self.prefix.len() - self.suffix.len();
        let mut ids = self.prefix.clone();
        let limit = ids.len() + room;
        'segments: for segment in self.split_added(text) {
            match segment {
                Segment::Added(id) => ids.push(id),
                Segment::Text(text) => {
                    let normalized = self.normalizer.normalize(text);
                    for word in normalize::split_words(&normalized) {
                        // Stop early: the rest of a long text is truncated away.
                        if ids.len() >= limit {
                            break 'segments;
                        }
                        self.wordpiece.push_ids(word, &mut ids);
                    }
                }
            }
        }
        ids.truncate(limit);
        ids.extend_from_slice(&self.suffix);
        ids
    }

    /// The id that fills the batch after a shorter text (masked out, so any id
    /// would do, but it is the one the model saw in training).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Splits `text` at the added tokens written in it, leftmost and then
    /// longest match first, as the tokenizers crate does.
    fn split_added<'t>(&self, text: &'t str) -> Vec<Segment<'t>> {
        let mut segments = Vec::new();
        let (mut start, mut i) = (0, 0);
        while i < text.len() {
            let rest = &text[i..];
            let matched = self
                .added
                .iter()
                .filter(|(content, _)| rest.starts_with(content.as_str()))
                .max_by_key(|(content, _)| content.len());
            match matched {
                Some((content, id)) => {
                    if start < i {
                        segments.push(Segment::Text(&text[start..i]));
                    }
                    segments.push(Segment::Added(*id));
                    i += content.len();
                    start = i;
                }
                None => i += rest.chars().next().map_or(1, char::len_utf8),
            }
        }
        if start < text.len() {
            segments.push(Segment::Text(&text[start..]));
        }
        segments
    }
}

/// The ids the post-processor puts before and after a single text.
fn special_ids(processor: PostProcessor) -> Result<(Vec<u32>, Vec<u32>), String> {
    match processor {
        PostProcessor::BertProcessing { cls, sep } => Ok((vec![cls.1], vec![sep.1])),
        PostProcessor::TemplateProcessing {
            single,
            special_tokens,
        } => {
            let (mut prefix, mut suffix) = (Vec::new(), Vec::new());
            let mut sequences = 0;
            for piece in single {
                match piece {
                    TemplatePiece::Sequence(_) => sequences += 1,
                    TemplatePiece::SpecialToken { id } => {
                        let token = special_tokens
                            .get(&id)
                            .ok_or_else(|| format!("template token {id:?} is not defined"))?;
                        let side = if sequences == 0 {
                            &mut prefix
                        } else {
                            &mut suffix
                        };
                        side.extend_from_slice(&token.ids);
                    }
                }
            }
            if sequences != 1 {
                return Err(format!("single template has {sequences} sequences"));
            }
            Ok((prefix, suffix))
        }
    }
}

#[cfg(test)]
mod tests;
