//! Shipping an application off this machine, to a node that only runs it:
//!
//! - [`preinit`]: a component pre-initialised (Wizer), so every fresh
//!   instance starts with its models' metadata, tokenizer or the optimised
//!   model already in memory;
//! - [`bundle`]: an application (manifest, components, files, models, and
//!   optionally its components compiled for this engine and CPU) as one OCI
//!   image layout, each layer named by its digest, and served from it.

pub mod bundle;
pub mod preinit;
