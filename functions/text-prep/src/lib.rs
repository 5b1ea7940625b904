//! What a text function does before and after the model, shared by
//! `text-embed` and the functions `wasi-infer new text` writes:
//!
//! - [`request`]: the texts of a `{"input": "a text"}` or `{"input": [...]}` body;
//! - [`metadata`]: the model's `[preprocess]` table in its `model.toml`
//!   (tokenizer, maximum length, output) and its inputs;
//! - [`tokenize`]: text to token ids with the model's `tokenizer.json`
//!   (BERT WordPiece);
//! - [`batch`]: token ids to the model's `[batch, seq]` i64 inputs.

pub mod batch;
pub mod metadata;
pub mod request;
pub mod tokenize;

pub use batch::Batch;
pub use metadata::ModelMetadata;
pub use tokenize::Tokenizer;
