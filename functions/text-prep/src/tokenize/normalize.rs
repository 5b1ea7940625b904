//! BERT's text normalisation and word splitting, as HuggingFace tokenizers'
//! `BertNormalizer` and `BertPreTokenizer` do them (same order, same Unicode
//! category tables), so that the ids match those the model was trained with.

use unicode_categories::UnicodeCategories;
use unicode_normalization::UnicodeNormalization;

#[derive(Debug, Clone, Copy)]
pub struct BertNormalizer {
    /// Drop control characters, turn every kind of whitespace into ' '.
    pub clean_text: bool,
    /// Put spaces around CJK ideographs, so each becomes a word.
    pub handle_chinese_chars: bool,
    /// NFD, then drop the combining marks (é -> e).
    pub strip_accents: bool,
    pub lowercase: bool,
}

impl BertNormalizer {
    pub fn normalize(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            if self.clean_text {
                if c == '\0' || c == '\u{fffd}' || is_control(c) {
                    continue;
                }
                if is_whitespace(c) {
                    out.push(' ');
                    continue;
                }
            }
            if self.handle_chinese_chars && is_chinese_char(c) {
                out.extend([' ', c, ' ']);
            } else {
                out.push(c);
            }
        }
        if self.strip_accents {
            out = out.nfd().filter(|c| !c.is_mark_nonspacing()).collect();
        }
        if self.lowercase {
            // Character by character, as the tokenizers crate does (so a final
            // 'Σ' becomes 'σ', not the 'ς' of str::to_lowercase).
            out = out.chars().flat_map(char::to_lowercase).collect();
        }
        out
    }
}

/// The words of a normalised text: split on whitespace (dropped), and each
/// punctuation character a word of its own.
pub fn split_words(text: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        let punctuation = is_bert_punctuation(c);
        if c.is_whitespace() || punctuation {
            if let Some(s) = start.take() {
                words.push(&text[s..i]);
            }
            if punctuation {
                words.push(&text[i..i + c.len_utf8()]);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        words.push(&text[s..]);
    }
    words
}

fn is_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || c.is_whitespace()
}

/// Cc, Cf and Co, except the whitespace controls.
fn is_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r') && c.is_other()
}

/// ASCII punctuation (which includes symbols such as `$` and `^`) and the
/// Unicode punctuation categories.
fn is_bert_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || c.is_punctuation()
}

/// The CJK Unified Ideographs blocks (not Hiragana, Katakana or Hangul, whose
/// words are separated by spaces).
fn is_chinese_char(c: char) -> bool {
    matches!(
        u32::from(c),
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B920..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNCASED: BertNormalizer = BertNormalizer {
        clean_text: true,
        handle_chinese_chars: true,
        strip_accents: true,
        lowercase: true,
    };

    #[test]
    fn cleans_lowercases_and_strips_accents() {
        assert_eq!(
            UNCASED.normalize("Héllo\tWÖRLD\u{0}\u{200b}!\r\n"),
            "hello world!  "
        );
        assert_eq!(UNCASED.normalize("北京ok"), " 北  京 ok");
        assert_eq!(UNCASED.normalize("ΟΔΟΣ"), "οδοσ");
    }

    #[test]
    fn cased_keeps_case_and_accents() {
        let cased = BertNormalizer {
            lowercase: false,
            strip_accents: false,
            ..UNCASED
        };
        assert_eq!(cased.normalize("Héllo"), "Héllo");
    }

    #[test]
    fn splits_on_whitespace_and_punctuation() {
        assert_eq!(
            split_words("  hey friend!   how are you?!? $5 "),
            [
                "hey", "friend", "!", "how", "are", "you", "?", "!", "?", "$", "5"
            ]
        );
        assert_eq!(split_words("don't"), ["don", "'", "t"]);
        assert!(split_words("   ").is_empty());
    }
}
