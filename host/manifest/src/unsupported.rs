//! The Spin features this host does not serve, each refused at start-up by
//! name, with the key that asks for it and what to do instead.

use std::fmt;

/// One feature a manifest asks for that this host does not serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// Where the manifest asks for it, e.g. `component.cart.key_value_stores`.
    pub key: String,
    /// The feature, e.g. "key-value stores".
    pub feature: &'static str,
    /// What is asked for, e.g. `["default"]`.
    pub detail: String,
    /// What this host does instead, or what the user can do.
    pub instead: &'static str,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}`: {} ({}) are not supported: {}",
            self.key, self.feature, self.detail, self.instead
        )
    }
}

/// The features, as named in messages and in the README's table.
pub(crate) mod feature {
    pub const TRIGGER: (&str, &str) = (
        "non-HTTP triggers",
        "this host serves HTTP triggers only ([[trigger.http]]); run the rest of the application on Spin",
    );
    pub const WAGI: (&str, &str) = (
        "WAGI executors",
        "build the component for wasi:http (spin-sdk's #[http_component] or #[http_service]) and drop `executor`",
    );
    pub const MIDDLEWARE: (&str, &str) = (
        "HTTP middleware (a trigger's `dependencies`)",
        "compose the middleware with the component ahead (e.g. `wac plug`), or have the component call the next one on a private route (http://<id>.spin.internal)",
    );
    pub const TRIGGER_COMPONENTS: (&str, &str) = (
        "trigger `components` tables",
        "Spin reserves this key; name the component with `component`",
    );
    pub const REMOTE_SOURCE: (&str, &str) = (
        "remote component sources",
        "this host loads components from files and reaches no network; download the file, check its digest, and set `source` to its path",
    );
    pub const REGISTRY_SOURCE: (&str, &str) = (
        "registry component sources",
        "this host reaches no registry; fetch the package (e.g. `wkg get`), and set `source` to the file",
    );
    pub const KEY_VALUE: (&str, &str) = (
        "key-value stores",
        "this host has no key-value store; keep the state in a service the component calls over HTTP (allowed_outbound_hosts)",
    );
    pub const SQLITE: (&str, &str) = (
        "SQLite databases",
        "this host has no database; keep the data in a service the component calls over HTTP (allowed_outbound_hosts)",
    );
    pub const DEPENDENCIES: (&str, &str) = (
        "component dependencies",
        "compose the component ahead (e.g. `wac plug`) and set `source` to the composed file",
    );
}

/// Collects the unsupported features of a manifest, to refuse them all at once.
#[derive(Debug, Default)]
pub(crate) struct Refusals(pub Vec<Unsupported>);

impl Refusals {
    pub fn add(
        &mut self,
        key: String,
        (feature, instead): (&'static str, &'static str),
        detail: String,
    ) {
        self.0.push(Unsupported {
            key,
            feature,
            detail,
            instead,
        });
    }

    /// Refuses a non-empty list of labels.
    pub fn list(&mut self, key: String, what: (&'static str, &'static str), labels: &[String]) {
        if !labels.is_empty() {
            self.add(key, what, format!("{labels:?}"));
        }
    }
}
