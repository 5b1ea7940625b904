//! WordPiece: a word becomes its greedy longest-match-first pieces from the
//! vocabulary, every piece after the first carrying the continuation prefix
//! (`##`). A word that cannot be covered, or is too long, is one unknown token.

use super::config::Vocab;

pub struct WordPiece<'a> {
    pub vocab: Vocab<'a>,
    pub unk_id: u32,
    pub prefix: String,
    pub max_chars: usize,
}

impl WordPiece<'_> {
    pub fn id(&self, token: &str) -> Option<u32> {
        self.vocab.get(token).copied()
    }

    /// Appends the ids of `word`'s pieces to `out`.
    pub fn push_ids(&self, word: &str, out: &mut Vec<u32>) {
        if word.chars().nth(self.max_chars).is_some() {
            out.push(self.unk_id);
            return;
        }
        let first = out.len();
        let mut prefixed = String::with_capacity(self.prefix.len() + word.len());
        let mut start = 0;
        while start < word.len() {
            let mut end = word.len();
            let found = loop {
                let piece = &word[start..end];
                let id = if start == 0 {
                    self.id(piece)
                } else {
                    prefixed.clear();
                    prefixed.push_str(&self.prefix);
                    prefixed.push_str(piece);
                    self.id(&prefixed)
                };
                if id.is_some() {
                    break id;
                }
                // Drop the last character and try the shorter piece.
                end -= piece.chars().next_back().map_or(1, char::len_utf8);
                if end == start {
                    break None;
                }
            };
            match found {
                Some(id) => {
                    out.push(id);
                    start = end;
                }
                None => {
                    out.truncate(first);
                    out.push(self.unk_id);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::config::Token;
    use std::borrow::Cow;

    fn wordpiece() -> WordPiece<'static> {
        let vocab = ["[UNK]", "un", "##aff", "##able", "a", "##b", "é"]
            .iter()
            .enumerate()
            .map(|(id, t)| (Token(Cow::Borrowed(*t)), id as u32))
            .collect();
        WordPiece {
            vocab,
            unk_id: 0,
            prefix: "##".to_string(),
            max_chars: 5,
        }
    }

    fn ids(word: &str) -> Vec<u32> {
        let mut out = vec![99];
        wordpiece().push_ids(word, &mut out);
        out
    }

    #[test]
    fn longest_match_first_with_continuations() {
        assert_eq!(ids("unaff"), [99, 1, 2]);
        assert_eq!(ids("abbb"), [99, 4, 5, 5, 5]);
        assert_eq!(ids("é"), [99, 6]);
    }

    #[test]
    fn an_uncovered_or_long_word_is_one_unknown() {
        assert_eq!(ids("unx"), [99, 0]);
        assert_eq!(ids("xa"), [99, 0]);
        assert_eq!(ids("abbbb"), [99, 4, 5, 5, 5, 5]);
        assert_eq!(ids("abbbbb"), [99, 0]);
    }
}
