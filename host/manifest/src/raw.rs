//! The TOML shape of a manifest: every key Spin's manifest version 2 defines
//! (and version 1's, in [`v1`](crate::v1)), so that a feature this host does
//! not serve is refused by name (see [`unsupported`](crate::unsupported))
//! rather than as an unknown key. A key Spin does not define is still an
//! error: most often a typo.

use serde::Deserialize;
use std::collections::BTreeMap;

use crate::variables::VariableDecl;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawManifest {
    #[allow(
        dead_code,
        reason = "read before this shape, to tell the versions apart"
    )]
    pub spin_manifest_version: toml::Value,
    pub application: RawApplication,
    #[serde(default)]
    pub variables: BTreeMap<String, VariableDecl>,
    /// Triggers by type; each type's entries are read by its own shape.
    #[serde(default)]
    pub trigger: BTreeMap<String, Vec<toml::Value>>,
    #[serde(default)]
    pub component: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApplication {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub authors: Vec<String>,
    /// Spin environments the application must be compatible with (for `spin
    /// build`'s checks); nothing to serve.
    #[serde(default)]
    #[allow(dead_code, reason = "accepted for Spin compatibility")]
    pub targets: Vec<toml::Value>,
    /// Settings per trigger type: `[application.trigger.http] base = "/api"`.
    #[serde(default)]
    pub trigger: BTreeMap<String, toml::Table>,
    /// Settings for tools and plugins; Spin ignores them, and so do we.
    #[serde(default)]
    #[allow(dead_code, reason = "ignored, as Spin ignores it")]
    pub tool: BTreeMap<String, toml::Value>,
}

/// `[application.trigger.http]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttpSettings {
    #[serde(default)]
    pub base: Option<String>,
}

/// A `[[trigger.http]]` entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttpTrigger {
    #[serde(default)]
    pub id: Option<String>,
    pub route: toml::Value,
    /// A component id, or an inline component table.
    #[serde(default)]
    pub component: Option<toml::Value>,
    /// Reserved by Spin for future use.
    #[serde(default)]
    pub components: Option<toml::Table>,
    /// `{ type = "spin" }` (the default) or `{ type = "wagi", ... }`.
    #[serde(default)]
    pub executor: Option<toml::Table>,
    #[serde(default)]
    pub static_response: Option<RawStaticResponse>,
    /// HTTP middleware: components that handle the request before `component`.
    #[serde(default)]
    pub dependencies: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStaticResponse {
    #[serde(default)]
    pub status_code: Option<u16>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawComponent {
    pub source: toml::Value,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub files: Vec<RawFileMount>,
    #[serde(default)]
    pub exclude_files: Vec<String>,
    /// Spin 1's spelling, converted (see [`crate::outbound::from_allowed_http_hosts`]).
    #[serde(default)]
    pub allowed_http_hosts: Vec<String>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    #[serde(default)]
    pub ai_models: Vec<String>,
    /// How to build the component (used by `spin build`; ours is `host/build.rs`).
    #[serde(default)]
    #[allow(dead_code, reason = "accepted for Spin compatibility")]
    pub build: Option<toml::Value>,
    #[serde(default)]
    #[allow(dead_code, reason = "ignored, as Spin ignores it")]
    pub tool: BTreeMap<String, toml::Value>,
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "meaningful only with dependencies, which are refused"
    )]
    pub dependencies_inherit_configuration: bool,
    #[serde(default)]
    pub dependencies: BTreeMap<String, toml::Value>,
    /// Sources for `spin up --profile`; this host runs the default one.
    #[serde(default)]
    #[allow(dead_code, reason = "only the default profile is served")]
    pub profile: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub(crate) enum RawFileMount {
    Pattern(String),
    Placement { source: String, destination: String },
}
