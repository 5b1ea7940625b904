//! End-to-end tests: the real `wasi-infer` server, the real image-classify
//! component, real models and real photos.

mod attacks;
mod bad_images;
mod classify;
mod cli;
mod conformance;
mod edge;
mod embedded;
mod errors;
mod eval;
mod hardening;
mod limits;
mod model_folder;
mod model_store;
mod new_function;
mod observability;
mod ocr;
mod oip_extensions;
mod open_inference;
mod server;
mod slow_model;
mod spin_compat;
mod start_up;
mod tensors;
mod vad;
mod worlds;
