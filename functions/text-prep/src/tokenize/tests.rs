use super::*;
use std::path::PathBuf;

/// Reference ids from HuggingFace tokenizers (Python) 0.23.3 on the same file:
/// `Tokenizer.from_file(...)`, `no_padding()`, `enable_truncation(256)`,
/// `encode(text).ids`.
const CASES: &[(&str, &[u32])] = &[
    (
        "A man is eating food.",
        &[101, 1037, 2158, 2003, 5983, 2833, 1012, 102],
    ),
    (
        "A man is eating a piece of bread.",
        &[
            101, 1037, 2158, 2003, 5983, 1037, 3538, 1997, 7852, 1012, 102,
        ],
    ),
    // Lowercase, accents stripped, punctuation split off.
    (
        "Héllo, wörld! Don't",
        &[101, 7592, 1010, 2088, 999, 2123, 1005, 1056, 102],
    ),
    (
        "Ünïcödé façade — naïve café…",
        &[101, 27260, 8508, 1517, 15743, 7668, 1529, 102],
    ),
    // WordPiece continuation pieces.
    (
        "antidisestablishmentarianism",
        &[101, 3424, 10521, 4355, 7875, 13602, 3672, 12199, 2964, 102],
    ),
    // CJK ideographs are words of their own; 爱 is not in the vocabulary.
    ("我爱北京 ok", &[101, 1855, 100, 1781, 1755, 7929, 102]),
    // Control and zero-width characters are removed, tabs are spaces.
    (
        "\tTab\u{0}null\u{200b}zero  end",
        &[101, 21628, 11231, 3363, 6290, 2080, 2203, 102],
    ),
    // Special tokens written in the text are recognised (case-sensitively).
    ("[CLS] hello [MASK]", &[101, 101, 7592, 103, 102]),
    (
        "x[SEP]y [mask]",
        &[101, 1060, 102, 1061, 1031, 7308, 1033, 102],
    ),
    ("   ", &[101, 102]),
];

fn tokenizer_json() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/all-minilm-l6-v2/tokenizer.json");
    read(&path).unwrap()
}

#[test]
fn ids_match_huggingface() {
    let json = tokenizer_json();
    let t = Tokenizer::from_json(&json, 256).unwrap();
    for (text, ids) in CASES {
        assert_eq!(t.encode(text), *ids, "{text:?}");
    }
}

#[test]
fn a_word_over_100_chars_is_unknown() {
    let json = tokenizer_json();
    let t = Tokenizer::from_json(&json, 256).unwrap();
    assert_eq!(t.encode(&"a".repeat(101)), [101, 100, 102]);
    // At 100 characters it is still split into pieces: xx ##xx ... (50 of them).
    let ids = t.encode(&"x".repeat(100));
    assert_eq!(ids.len(), 52);
    assert_eq!(ids[..3], [101, 22038, 20348]);
    assert!(ids[2..51].iter().all(|&id| id == 20348));
    assert_eq!(ids[51], 102);
}

#[test]
fn long_texts_are_truncated_with_sep_last() {
    let json = tokenizer_json();
    let text = vec!["word"; 300].join(" ");
    let ids = Tokenizer::from_json(&json, 256).unwrap().encode(&text);
    assert_eq!(ids.len(), 256);
    assert_eq!(ids[..2], [101, 2773]);
    assert_eq!(ids[254..], [2773, 102]);
    let short = Tokenizer::from_json(&json, 5).unwrap();
    assert_eq!(short.encode(&text), [101, 2773, 2773, 2773, 102]);
    // A word's pieces are cut too.
    assert_eq!(
        short.encode("antidisestablishmentarianism"),
        [101, 3424, 10521, 4355, 102]
    );
}

#[test]
fn pad_id_comes_from_tokenizer_json() {
    let json = tokenizer_json();
    assert_eq!(Tokenizer::from_json(&json, 256).unwrap().pad_id(), 0);
}

#[test]
fn refuses_what_it_cannot_reproduce() {
    let json = String::from_utf8(tokenizer_json()).unwrap();
    for (from, to) in [
        (r#""model":{"type":"WordPiece""#, r#""model":{"type":"BPE""#),
        (
            r#""normalizer":{"type":"BertNormalizer""#,
            r#""normalizer":{"type":"NFC""#,
        ),
        (r#"{"type":"BertPreTokenizer"}"#, r#"{"type":"Whitespace"}"#),
        (r#""lstrip":false"#, r#""lstrip":true"#),
    ] {
        assert!(json.contains(from), "{from}");
        let changed = json.replacen(from, to, 1);
        let err = Tokenizer::from_json(changed.as_bytes(), 256).err().unwrap();
        assert_eq!(err.status, 500, "{to}");
    }
    assert_eq!(Tokenizer::from_json(b"{}", 256).err().unwrap().status, 500);
    // [CLS] and [SEP] leave no room in 2.
    assert_eq!(
        Tokenizer::from_json(json.as_bytes(), 2)
            .err()
            .unwrap()
            .status,
        500
    );
}
