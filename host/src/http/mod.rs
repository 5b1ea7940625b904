//! The HTTP front: everything between a socket and [`crate::App::handle`].
//!
//! - [`server`] accepts connections (with [`connection`]'s write and idle
//!   timeouts), answers the host's own paths and hands requests to the app.
//! - [`body`] reads a request body within its limits, [`body_budget`] the
//!   bytes all buffered bodies share, [`admission`] who runs next.
//! - [`repository`] is the model repository API (load, unload, index),
//!   answered only to the operator's token.
//! - [`access_log`] logs and counts each request; the health it answers is
//!   [`crate::health`] (the runtime and functions read it too).

pub mod access_log;
pub(crate) mod admission;
pub(crate) mod body;
pub(crate) mod body_budget;
mod connection;
pub mod repository;
pub mod server;
