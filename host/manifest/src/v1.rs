//! Spin's manifest version 1 (`spin_manifest_version = "1"`, `[[component]]`
//! with an `id` and a `[component.trigger]`), converted to version 2 as
//! Spin converts it: each component becomes a `[component.<id>]` and a
//! trigger of the application's type, `config` becomes component
//! variables, and `allowed_http_hosts` becomes `allowed_outbound_hosts`.

use serde::Deserialize;
use std::collections::BTreeMap;

use crate::raw::{RawApplication, RawComponent, RawFileMount, RawManifest};
use crate::variables::VariableDecl;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawV1 {
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "read before this shape, to tell the versions apart"
    )]
    spin_manifest_version: Option<toml::Value>,
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "read before this shape, to tell the versions apart"
    )]
    spin_version: Option<toml::Value>,
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    authors: Vec<String>,
    /// `{ type = "http", base = "/" }`, or another trigger type.
    trigger: toml::Table,
    #[serde(default)]
    variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    component: Vec<RawV1Component>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawV1Component {
    id: String,
    source: toml::Value,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    files: Vec<RawFileMount>,
    #[serde(default)]
    exclude_files: Vec<String>,
    #[serde(default)]
    allowed_http_hosts: Vec<String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    ai_models: Vec<String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    /// Version 1's component variables.
    #[serde(default)]
    config: BTreeMap<String, String>,
    #[serde(default)]
    build: Option<toml::Value>,
    /// `{ route = "/...", executor = ... }` for HTTP.
    #[serde(default)]
    trigger: Option<toml::Table>,
}

/// The version 2 manifest that `v1` stands for.
pub(crate) fn convert(v1: RawV1) -> Result<RawManifest, (String, String)> {
    let mut app_trigger = v1.trigger;
    let kind = match app_trigger.remove("type") {
        Some(toml::Value::String(kind)) => kind,
        _ => {
            return Err((
                "trigger.type".into(),
                "a version 1 manifest names its trigger type, as in trigger = { type = \"http\" }"
                    .into(),
            ));
        }
    };
    let mut triggers = Vec::new();
    let mut components = BTreeMap::new();
    for component in v1.component {
        let mut trigger = component.trigger.unwrap_or_default();
        trigger.insert(
            "component".into(),
            toml::Value::String(component.id.clone()),
        );
        triggers.push(toml::Value::Table(trigger));
        let mut allowed = component.allowed_outbound_hosts;
        allowed.extend(
            crate::outbound::from_allowed_http_hosts(&component.allowed_http_hosts).map_err(
                |problem| {
                    (
                        format!("component[{}].allowed_http_hosts", component.id),
                        problem,
                    )
                },
            )?,
        );
        components.insert(
            component.id,
            RawComponent {
                source: component.source,
                description: component.description,
                variables: component.config,
                environment: component.environment,
                files: component.files,
                exclude_files: component.exclude_files,
                allowed_http_hosts: Vec::new(),
                allowed_outbound_hosts: allowed,
                key_value_stores: component.key_value_stores,
                sqlite_databases: component.sqlite_databases,
                ai_models: component.ai_models,
                build: component.build,
                tool: BTreeMap::new(),
                dependencies_inherit_configuration: false,
                dependencies: BTreeMap::new(),
                profile: BTreeMap::new(),
            },
        );
    }
    Ok(RawManifest {
        spin_manifest_version: toml::Value::Integer(2),
        application: RawApplication {
            name: v1.name,
            version: v1.version,
            description: v1.description,
            authors: v1.authors,
            trigger: BTreeMap::from([(kind.clone(), app_trigger)]),
            ..RawApplication::default()
        },
        variables: v1.variables,
        trigger: BTreeMap::from([(kind, triggers)]),
        component: components,
    })
}
