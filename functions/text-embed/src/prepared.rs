//! Models prepared by the pre-initialiser: metadata parsed and tokenizer
//! built once, before deployment, instead of in every request's fresh
//! instance (4-6 ms for all-MiniLM-L6-v2's tokenizer.json). See
//! [`wasi_infer_guest::preinit`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use wasi_infer_guest::{ApiError, nn};

use text_prep::ModelMetadata;
use text_prep::tokenize::{self, Tokenizer};

pub struct Prepared {
    pub meta: ModelMetadata,
    /// Borrows its tokenizer.json, kept for the life of the instance.
    pub tokenizer: Tokenizer<'static>,
}

static PREPARED: Mutex<BTreeMap<String, Arc<Prepared>>> = Mutex::new(BTreeMap::new());

/// The model as the pre-initialiser prepared it, if it did.
pub fn get(model: &str) -> Option<Arc<Prepared>> {
    PREPARED.lock().ok().and_then(|p| p.get(model).cloned())
}

/// Prepares a text-embedding model; answers whether it is one (others are
/// not this function's).
pub fn prepare(model: &str) -> Result<bool, ApiError> {
    let meta = match ModelMetadata::load(model, text_prep::metadata::TEXT_EMBEDDING) {
        Ok(meta) => meta,
        Err(e) if e.status == 400 => return Ok(false),
        Err(e) => return Err(e),
    };
    // Leaked on purpose: the snapshot keeps it for every instance.
    let json: &'static [u8] = Box::leak(tokenize::read(&meta.tokenizer_path)?.into_boxed_slice());
    let tokenizer = Tokenizer::from_json(json, meta.max_length)?;
    nn::prepare(model)?;
    if let Ok(mut prepared) = PREPARED.lock() {
        prepared.insert(model.to_string(), Arc::new(Prepared { meta, tokenizer }));
    }
    Ok(true)
}
