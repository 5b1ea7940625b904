//! The application manifest: Spin's `spin.toml`, manifest version 2.
//!
//! Parsing is strict: an unknown key, a dangling reference or a missing file
//! stops start-up with an error that names the file, the key and the problem.
//! Paths in the manifest are relative to the directory that holds it.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub mod routing;
pub mod variables;

use routing::RoutePattern;
use variables::{Template, VariableDecl};

/// An error in the manifest, always naming the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read manifest {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid manifest {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid manifest {path}: `{key}`: {problem}")]
    Invalid {
        path: PathBuf,
        key: String,
        problem: String,
    },
}

/// A parsed and checked application manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The manifest file itself.
    pub path: PathBuf,
    /// The directory that relative paths in the manifest start from.
    pub base_dir: PathBuf,
    pub application: Application,
    /// Application variables, by name.
    pub variables: BTreeMap<String, VariableDecl>,
    pub routes: Vec<HttpRoute>,
    /// Components by id, in the manifest's order of ids.
    pub components: BTreeMap<String, ComponentSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub authors: Vec<String>,
}

/// A `[[trigger.http]]` entry.
#[derive(Debug, Clone)]
pub struct HttpRoute {
    pub pattern: RoutePattern,
    pub component: String,
}

/// A `[component.<id>]` table, with paths resolved.
#[derive(Debug, Clone)]
pub struct ComponentSpec {
    pub id: String,
    pub description: Option<String>,
    /// The compiled component (`.wasm`).
    pub source: PathBuf,
    /// Read-only directory mounts: host directory and guest path.
    pub files: Vec<DirMount>,
    pub environment: BTreeMap<String, String>,
    /// Component variables: templates over application variables.
    pub variables: BTreeMap<String, Template>,
    /// The wasi-nn models this component may load by name.
    pub ai_models: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirMount {
    pub host: PathBuf,
    pub guest: String,
}

// ---- The TOML shape -------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    spin_manifest_version: toml::Value,
    application: Application,
    #[serde(default)]
    variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<RawHttpTrigger>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpTrigger {
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "accepted for Spin compatibility; routes are what we serve"
    )]
    id: Option<String>,
    route: String,
    component: String,
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "accepted for Spin compatibility; every component is a wasi:http handler"
    )]
    executor: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    #[serde(default)]
    description: Option<String>,
    source: toml::Value,
    #[serde(default)]
    files: Vec<RawFileMount>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    ai_models: Vec<String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    /// How to build the component (used by `spin build`; ours is `host/build.rs`).
    #[serde(default)]
    #[allow(dead_code, reason = "accepted for Spin compatibility")]
    build: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawFileMount {
    Path(String),
    Mapping { source: String, destination: String },
}

impl Manifest {
    /// Reads and checks a manifest file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ManifestError> {
        let path = path.as_ref().to_path_buf();
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(&text, &path)
    }

    /// Parses manifest text; `path` names it in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let raw: RawManifest = toml::from_str(text).map_err(|source| ManifestError::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
        let base_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let invalid = |key: String, problem: String| ManifestError::Invalid {
            path: path.to_path_buf(),
            key,
            problem,
        };

        if raw.spin_manifest_version.as_integer() != Some(2) {
            return Err(invalid(
                "spin_manifest_version".into(),
                format!(
                    "expected 2, found {}: only Spin manifest version 2 is supported",
                    raw.spin_manifest_version
                ),
            ));
        }

        for (name, decl) in &raw.variables {
            decl.check(name)
                .map_err(|problem| invalid(format!("variables.{name}"), problem))?;
        }

        let mut components = BTreeMap::new();
        for (id, rc) in raw.component {
            let key = |k: &str| format!("component.{id}.{k}");
            if !is_valid_id(&id) {
                return Err(invalid(
                    format!("component.{id}"),
                    "a component id may use only lowercase letters, digits, '-' and '_'".into(),
                ));
            }
            let source = match &rc.source {
                toml::Value::String(s) => base_dir.join(s),
                _ => {
                    return Err(invalid(
                        key("source"),
                        "must be the path of a .wasm file (remote sources are not supported)"
                            .into(),
                    ));
                }
            };
            if !source.is_file() {
                return Err(invalid(
                    key("source"),
                    format!(
                        "{} does not exist (build the functions with `cargo build --release`)",
                        source.display()
                    ),
                ));
            }
            let mut files = Vec::new();
            for mount in rc.files {
                let (src, guest) = match mount {
                    RawFileMount::Mapping {
                        source,
                        destination,
                    } => (source, destination),
                    RawFileMount::Path(p) => {
                        let guest = format!("/{}", p.trim_start_matches("./"));
                        (p, guest)
                    }
                };
                if src.contains(['*', '?', '[']) {
                    return Err(invalid(
                        key("files"),
                        format!("{src:?}: glob patterns are not supported; mount a directory"),
                    ));
                }
                let host = base_dir.join(&src);
                if !host.is_dir() {
                    return Err(invalid(
                        key("files"),
                        format!(
                            "{} is not a directory (only directories can be mounted)",
                            host.display()
                        ),
                    ));
                }
                if !guest.starts_with('/') {
                    return Err(invalid(
                        key("files"),
                        format!("destination {guest:?} must be an absolute path"),
                    ));
                }
                files.push(DirMount { host, guest });
            }
            let mut variables = BTreeMap::new();
            for (name, value) in rc.variables {
                let template = Template::parse(&value).map_err(|problem| {
                    invalid(format!("component.{id}.variables.{name}"), problem)
                })?;
                if let Some(missing) = template
                    .references()
                    .find(|r| !raw.variables.contains_key(*r))
                {
                    return Err(invalid(
                        format!("component.{id}.variables.{name}"),
                        format!("refers to {missing:?}, which is not in [variables]"),
                    ));
                }
                variables.insert(name, template);
            }
            if !rc.allowed_outbound_hosts.is_empty() {
                return Err(invalid(
                    key("allowed_outbound_hosts"),
                    "outbound network access is not supported yet; remove the key".into(),
                ));
            }
            components.insert(
                id.clone(),
                ComponentSpec {
                    id,
                    description: rc.description,
                    source,
                    files,
                    environment: rc.environment,
                    variables,
                    ai_models: rc.ai_models,
                },
            );
        }

        let mut routes: Vec<HttpRoute> = Vec::new();
        for (i, trigger) in raw.trigger.http.into_iter().enumerate() {
            let key = |k: &str| format!("trigger.http[{i}].{k}");
            let pattern = RoutePattern::parse(&trigger.route)
                .map_err(|problem| invalid(key("route"), problem))?;
            if !components.contains_key(&trigger.component) {
                return Err(invalid(
                    key("component"),
                    format!("no [component.{}] in the manifest", trigger.component),
                ));
            }
            if let Some(other) = routes.iter().find(|r| r.pattern == pattern) {
                return Err(invalid(
                    key("route"),
                    format!(
                        "route {:?} is already served by component {:?}",
                        trigger.route, other.component
                    ),
                ));
            }
            routes.push(HttpRoute {
                pattern,
                component: trigger.component,
            });
        }
        if routes.is_empty() {
            return Err(invalid(
                "trigger.http".into(),
                "the application has no [[trigger.http]] routes".into(),
            ));
        }

        Ok(Self {
            path: path.to_path_buf(),
            base_dir,
            application: raw.application,
            variables: raw.variables,
            routes,
            components,
        })
    }

    /// An error about this manifest at `key`.
    pub fn error(&self, key: impl Into<String>, problem: impl Into<String>) -> ManifestError {
        ManifestError::Invalid {
            path: self.path.clone(),
            key: key.into(),
            problem: problem.into(),
        }
    }
}

fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.wasm"), b"").unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let manifest = dir.path().join("spin.toml");
        (dir, manifest)
    }

    const GOOD: &str = r#"
spin_manifest_version = 2
[application]
name = "demo"
[variables]
greeting = { default = "hi" }
secret = { required = true }
[[trigger.http]]
route = "/api/..."
component = "app"
[[trigger.http]]
route = "/exact"
component = "app"
[component.app]
source = "app.wasm"
files = [{ source = "data", destination = "/data" }]
ai_models = ["m"]
variables = { message = "{{ greeting }}, world" }
"#;

    #[test]
    fn parses_a_complete_manifest() {
        let (dir, path) = fixture();
        let m = Manifest::parse(GOOD, &path).unwrap();
        assert_eq!(m.application.name, "demo");
        assert_eq!(m.routes.len(), 2);
        let app = &m.components["app"];
        assert_eq!(app.source, dir.path().join("app.wasm"));
        assert_eq!(app.files[0].guest, "/data");
        assert_eq!(app.ai_models, vec!["m".to_string()]);
        assert!(m.variables["secret"].required);
    }

    fn error_of(text: &str) -> String {
        let (_dir, path) = fixture();
        Manifest::parse(text, &path).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_file_key_and_problem() {
        let e = error_of(&GOOD.replace("component = \"app\"\n[[", "component = \"nope\"\n[["));
        assert!(
            e.contains("spin.toml")
                && e.contains("trigger.http[0].component")
                && e.contains("nope"),
            "{e}"
        );

        let e = error_of(&GOOD.replace("app.wasm", "missing.wasm"));
        assert!(
            e.contains("component.app.source") && e.contains("missing.wasm"),
            "{e}"
        );

        let e = error_of(&GOOD.replace("{{ greeting }}", "{{ nobody }}"));
        assert!(
            e.contains("component.app.variables.message") && e.contains("nobody"),
            "{e}"
        );

        let e = error_of(&GOOD.replace("source = \"app.wasm\"", "sorce = \"app.wasm\""));
        assert!(e.contains("spin.toml") && e.contains("sorce"), "{e}");

        let e = error_of(&GOOD.replace("spin_manifest_version = 2", "spin_manifest_version = 1"));
        assert!(e.contains("spin_manifest_version"), "{e}");

        let e = error_of(&GOOD.replace("/exact", "/api/..."));
        assert!(
            e.contains("trigger.http[1].route") && e.contains("already served"),
            "{e}"
        );

        let e = error_of(&GOOD.replace("destination = \"/data\"", "destination = \"data\""));
        assert!(e.contains("component.app.files"), "{e}");
    }
}
