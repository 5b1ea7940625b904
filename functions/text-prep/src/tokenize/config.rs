//! The part of a HuggingFace `tokenizer.json` this function understands: a BERT
//! pipeline (BertNormalizer, BertPreTokenizer, WordPiece, [CLS] ... [SEP]).
//! Other tokenizers fail to load with a clear error instead of giving wrong ids.
//!
//! Parsed straight into these types, borrowing the vocabulary's strings from the
//! file and skipping the rest: a fresh instance loads the file on every request
//! (see the cost in `tokenize/mod.rs`).

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

/// Token to id.
pub type Vocab<'a> = HashMap<Token<'a>, u32, rustc_hash::FxBuildHasher>;

/// A vocabulary token, borrowed from the file unless its JSON string has
/// escapes. (A bare `Cow` inside a map always deserialises as an owned copy:
/// serde borrows only through a `#[serde(borrow)]` field of type `Cow`.)
#[derive(Deserialize, PartialEq, Eq, Hash)]
pub struct Token<'a>(#[serde(borrow)] pub Cow<'a, str>);

/// Looks tokens up by `&str`; hashes as the `str` does, as `Borrow` requires.
impl std::borrow::Borrow<str> for Token<'_> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[derive(Deserialize)]
pub struct TokenizerJson<'a> {
    #[serde(default)]
    pub added_tokens: Vec<AddedToken>,
    pub normalizer: Option<Normalizer>,
    pub pre_tokenizer: Option<PreTokenizer>,
    pub post_processor: Option<PostProcessor>,
    pub padding: Option<Padding>,
    #[serde(borrow)]
    pub model: WordPieceModel<'a>,
}

/// A token matched in the raw text before normalisation ([CLS], [MASK], ...).
#[derive(Deserialize)]
pub struct AddedToken {
    pub id: u32,
    pub content: String,
    #[serde(default)]
    pub single_word: bool,
    #[serde(default)]
    pub lstrip: bool,
    #[serde(default)]
    pub rstrip: bool,
    #[serde(default)]
    pub normalized: bool,
}

#[derive(Deserialize)]
#[serde(tag = "type")]
pub enum Normalizer {
    BertNormalizer {
        clean_text: bool,
        handle_chinese_chars: bool,
        /// `None`: strip accents when lowercasing.
        strip_accents: Option<bool>,
        lowercase: bool,
    },
}

#[derive(Deserialize)]
#[serde(tag = "type")]
pub enum PreTokenizer {
    BertPreTokenizer,
}

#[derive(Deserialize)]
#[serde(tag = "type")]
pub enum PostProcessor {
    TemplateProcessing {
        single: Vec<TemplatePiece>,
        special_tokens: HashMap<String, SpecialToken>,
    },
    BertProcessing {
        sep: (String, u32),
        cls: (String, u32),
    },
}

#[derive(Deserialize)]
pub enum TemplatePiece {
    SpecialToken {
        id: String,
    },
    /// The text (`{"id": "A"}`).
    Sequence(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
pub struct SpecialToken {
    pub ids: Vec<u32>,
}

#[derive(Deserialize)]
pub struct Padding {
    pub pad_id: u32,
}

/// `"type"` is checked after parsing: a WordPiece model is one with a string
/// to id `vocab` (an internally tagged enum would buffer the whole vocabulary).
#[derive(Deserialize)]
pub struct WordPieceModel<'a> {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(borrow, deserialize_with = "presized_vocab")]
    pub vocab: Vocab<'a>,
    #[serde(default = "default_unk_token")]
    pub unk_token: String,
    #[serde(default = "default_prefix")]
    pub continuing_subword_prefix: String,
    #[serde(default = "default_max_chars")]
    pub max_input_chars_per_word: usize,
}

/// Deserialises the vocabulary into a map sized for a BERT vocabulary (about
/// 30,000 tokens) from the start: JSON gives no length, and growing the map
/// step by step cost a quarter of the load time. A larger one grows as usual.
fn presized_vocab<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Vocab<'a>, D::Error> {
    struct VocabVisitor<'a>(PhantomData<&'a ()>);

    impl<'de: 'a, 'a> Visitor<'de> for VocabVisitor<'a> {
        type Value = Vocab<'a>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map from token to id")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut vocab = Vocab::with_capacity_and_hasher(32 * 1024, Default::default());
            while let Some((token, id)) = map.next_entry()? {
                vocab.insert(token, id);
            }
            Ok(vocab)
        }
    }

    d.deserialize_map(VocabVisitor(PhantomData))
}

// The defaults of the tokenizers crate's WordPiece.
fn default_unk_token() -> String {
    "[UNK]".to_string()
}

fn default_prefix() -> String {
    "##".to_string()
}

fn default_max_chars() -> usize {
    100
}
