//! The application manifest: Spin's `spin.toml`, manifest version 2 (and
//! version 1, converted as Spin converts it).
//!
//! Every key Spin defines is read. A feature this host serves is checked and
//! resolved here (routes, static responses, files, variables, outbound
//! hosts); one it does not serve is refused by name, with the key that asks
//! for it and what to do instead ([`Unsupported`]); a key Spin does not
//! define, a dangling reference or a missing file stops start-up with an
//! error that names the file, the key and the problem. Paths in the manifest
//! are relative to the directory that holds it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub mod files;
pub mod outbound;
mod raw;
pub mod routing;
mod unsupported;
mod v1;
pub mod variables;

pub use files::{FileMount, MountKind};
pub use unsupported::Unsupported;

use files::FilesEntry;
use outbound::AllowedHost;
use raw::{RawComponent, RawFileMount, RawHttpSettings, RawHttpTrigger, RawManifest};
use routing::RoutePattern;
use serde::Deserialize;
use unsupported::{Refusals, feature};
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
    #[error("manifest {path} asks for what this host does not serve:{}", list(.features))]
    Unsupported {
        path: PathBuf,
        features: Vec<Unsupported>,
    },
}

fn list(features: &[Unsupported]) -> String {
    features.iter().map(|f| format!("\n  - {f}")).collect()
}

/// A parsed and checked application manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The manifest file itself.
    pub path: PathBuf,
    /// The directory that relative paths in the manifest start from.
    pub base_dir: PathBuf,
    /// The manifest's version as written: 1 manifests are converted.
    pub version: u8,
    pub application: Application,
    /// Application variables, by name.
    pub variables: BTreeMap<String, VariableDecl>,
    /// `[application.trigger.http] base`: every route is under it.
    pub base: String,
    pub routes: Vec<HttpRoute>,
    /// Components by id, in the manifest's order of ids.
    pub components: BTreeMap<String, ComponentSpec>,
}

#[derive(Debug, Clone)]
pub struct Application {
    pub name: String,
    pub version: Option<String>,
    pub description: Option<String>,
    pub authors: Vec<String>,
}

/// A `[[trigger.http]]` entry.
#[derive(Debug, Clone)]
pub struct HttpRoute {
    pub route: Route,
    pub target: RouteTarget,
}

/// Where a trigger is reachable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// From clients, at this path.
    Path(RoutePattern),
    /// `route = { private = true }`: only from the application's own
    /// components, at `http://<component>.spin.internal`.
    Private,
}

/// What answers a trigger.
#[derive(Debug, Clone)]
pub enum RouteTarget {
    Component(String),
    Static(StaticResponse),
}

/// `static_response = { status_code, headers, body }`: an answer without a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpRoute {
    /// The component that answers, if one does.
    pub fn component(&self) -> Option<&str> {
        match &self.target {
            RouteTarget::Component(id) => Some(id),
            RouteTarget::Static(_) => None,
        }
    }

    /// The route as written (`/classify/...`), or `private`.
    pub fn label(&self) -> String {
        match &self.route {
            Route::Path(pattern) => pattern.as_route(),
            Route::Private => "private".into(),
        }
    }
}

/// A `[component.<id>]` table, with paths resolved.
#[derive(Debug, Clone)]
pub struct ComponentSpec {
    pub id: String,
    pub description: Option<String>,
    /// The compiled component (`.wasm`).
    pub source: PathBuf,
    /// Read-only files and directories, at their guest paths.
    pub files: Vec<FileMount>,
    pub environment: BTreeMap<String, String>,
    /// Component variables: templates over application variables.
    pub variables: BTreeMap<String, Template>,
    /// The wasi-nn models this component may load by name.
    pub ai_models: Vec<String>,
    /// `allowed_outbound_hosts`, as templates over application variables
    /// (rendered and parsed as [`AllowedHost`]s when the values are known).
    pub allowed_outbound_hosts: Vec<Template>,
}

/// How much of the manifest to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    /// Everything: component sources exist, files resolve.
    Full,
    /// The manifest alone, without reading other files: for trying the
    /// parser on manifests whose components are not built.
    ManifestOnly,
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
        Self::parse_with(text, path, Checks::Full)
    }

    /// [`Manifest::parse`], with the checks asked for.
    pub fn parse_with(text: &str, path: &Path, checks: Checks) -> Result<Self, ManifestError> {
        let parse_error = |source| ManifestError::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        };
        let invalid = |key: String, problem: String| ManifestError::Invalid {
            path: path.to_path_buf(),
            key,
            problem,
        };
        // The version first: it decides the shape of everything else.
        let table: toml::Table = toml::from_str(text).map_err(parse_error)?;
        let version = manifest_version(&table).map_err(|(key, problem)| invalid(key, problem))?;
        let raw = match version {
            2 => toml::from_str::<RawManifest>(text).map_err(parse_error)?,
            _ => {
                let v1 = toml::from_str::<v1::RawV1>(text).map_err(parse_error)?;
                v1::convert(v1).map_err(|(key, problem)| invalid(key, problem))?
            }
        };
        let base_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Builder {
            path,
            base_dir: &base_dir,
            checks,
            refusals: Refusals::default(),
        }
        .build(raw, version)
    }

    /// An error about this manifest at `key`.
    pub fn error(&self, key: impl Into<String>, problem: impl Into<String>) -> ManifestError {
        ManifestError::Invalid {
            path: self.path.clone(),
            key: key.into(),
            problem: problem.into(),
        }
    }

    /// The routes clients can reach, with the component or answer of each.
    pub fn public_routes(&self) -> impl Iterator<Item = (&RoutePattern, &RouteTarget)> {
        self.routes.iter().filter_map(|r| match &r.route {
            Route::Path(pattern) => Some((pattern, &r.target)),
            Route::Private => None,
        })
    }
}

/// The manifest's version: 2, or 1 (`spin_manifest_version = "1"`, or
/// `spin_version = "1"` in the oldest manifests).
fn manifest_version(table: &toml::Table) -> Result<u8, (String, String)> {
    let (key, value) = match (
        table.get("spin_manifest_version"),
        table.get("spin_version"),
    ) {
        (Some(v), _) => ("spin_manifest_version", v),
        (None, Some(v)) => ("spin_version", v),
        (None, None) => {
            return Err((
                "spin_manifest_version".into(),
                "missing: a Spin manifest starts with spin_manifest_version = 2".into(),
            ));
        }
    };
    match value {
        toml::Value::Integer(2) => Ok(2),
        toml::Value::Integer(1) => Ok(1),
        toml::Value::String(s) if s == "1" => Ok(1),
        toml::Value::String(s) if s == "2" => Ok(2),
        other => Err((
            key.into(),
            format!(
                "version {other} is not one this host reads: it reads Spin manifest version 2, \
                 and converts version 1 (`spin_manifest_version = \"1\"`) as Spin does"
            ),
        )),
    }
}

/// Turns the TOML shape into a checked [`Manifest`].
struct Builder<'a> {
    path: &'a Path,
    base_dir: &'a Path,
    checks: Checks,
    refusals: Refusals,
}

impl Builder<'_> {
    fn invalid(&self, key: impl Into<String>, problem: impl Into<String>) -> ManifestError {
        ManifestError::Invalid {
            path: self.path.to_path_buf(),
            key: key.into(),
            problem: problem.into(),
        }
    }

    fn build(mut self, mut raw: RawManifest, version: u8) -> Result<Manifest, ManifestError> {
        for (name, decl) in &raw.variables {
            decl.check(name)
                .map_err(|problem| self.invalid(format!("variables.{name}"), problem))?;
        }
        let http_settings = match raw.application.trigger.remove("http") {
            Some(table) => RawHttpSettings::deserialize(table)
                .map_err(|e| self.invalid("application.trigger.http", e.message().to_string()))?,
            None => RawHttpSettings::default(),
        };
        let base = http_settings.base.unwrap_or_else(|| "/".into());

        // Triggers first: inline components join the others.
        let mut triggers = Vec::new();
        for (kind, entries) in std::mem::take(&mut raw.trigger) {
            if kind != "http" {
                self.refusals
                    .add(format!("trigger.{kind}"), feature::TRIGGER, kind.clone());
                continue;
            }
            let mut inline = 0;
            for (i, entry) in entries.into_iter().enumerate() {
                let key = format!("trigger.http[{i}]");
                let trigger = RawHttpTrigger::deserialize(entry)
                    .map_err(|e| self.invalid(&key, e.message().to_string()))?;
                let target =
                    self.trigger_target(&key, &trigger, &mut raw.component, &mut inline)?;
                triggers.push((key, trigger, target));
            }
        }

        let mut components = BTreeMap::new();
        for (id, rc) in std::mem::take(&mut raw.component) {
            let spec = self.component(&id, rc, &raw.variables)?;
            components.insert(id, spec);
        }

        let mut routes: Vec<HttpRoute> = Vec::new();
        for (key, trigger, target) in triggers {
            let route = self.route(&key, &base, &trigger.route)?;
            if let RouteTarget::Component(id) = &target
                && !components.contains_key(id)
            {
                return Err(self.invalid(
                    format!("{key}.component"),
                    format!("no [component.{id}] in the manifest"),
                ));
            }
            if let (Route::Path(pattern), Some(other)) = (
                &route,
                routes
                    .iter()
                    .find(|r| r.route == route && route != Route::Private),
            ) {
                return Err(self.invalid(
                    format!("{key}.route"),
                    format!(
                        "route {:?} is already served by {}",
                        pattern.as_route(),
                        match other.component() {
                            Some(id) => format!("component {id:?}"),
                            None => "a static response".into(),
                        }
                    ),
                ));
            }
            routes.push(HttpRoute { route, target });
        }
        if !self.refusals.0.is_empty() {
            return Err(ManifestError::Unsupported {
                path: self.path.to_path_buf(),
                features: self.refusals.0,
            });
        }
        if routes.is_empty() {
            return Err(self.invalid(
                "trigger.http",
                "the application has no [[trigger.http]] routes",
            ));
        }
        let application = Application {
            name: raw.application.name,
            version: raw.application.version,
            description: raw.application.description,
            authors: raw.application.authors,
        };
        Ok(Manifest {
            path: self.path.to_path_buf(),
            base_dir: self.base_dir.to_path_buf(),
            version,
            application,
            variables: raw.variables,
            base,
            routes,
            components,
        })
    }

    /// What answers a trigger: a component (by id, or inline, which joins
    /// the components under a name of its own) or a static response.
    fn trigger_target(
        &mut self,
        key: &str,
        trigger: &RawHttpTrigger,
        components: &mut BTreeMap<String, RawComponent>,
        inline: &mut usize,
    ) -> Result<RouteTarget, ManifestError> {
        if trigger.components.as_ref().is_some_and(|c| !c.is_empty()) {
            self.refusals.add(
                format!("{key}.components"),
                feature::TRIGGER_COMPONENTS,
                "components".into(),
            );
        }
        if let Some(dependencies) = trigger.dependencies.as_ref().filter(|d| !d.is_empty()) {
            let names: Vec<&String> = dependencies.keys().collect();
            self.refusals.add(
                format!("{key}.dependencies"),
                feature::MIDDLEWARE,
                format!("{names:?}"),
            );
        }
        if let Some(executor) = &trigger.executor {
            match executor.get("type").and_then(toml::Value::as_str) {
                // "http" is Spin 1's name for the default executor.
                Some("spin" | "http") | None => {}
                Some("wagi") => {
                    self.refusals
                        .add(format!("{key}.executor"), feature::WAGI, "wagi".into())
                }
                Some(other) => {
                    return Err(self.invalid(
                        format!("{key}.executor"),
                        format!(
                            "unknown executor type {other:?} (Spin's are \"spin\", \"http\" and \"wagi\")"
                        ),
                    ));
                }
            }
        }
        match (&trigger.component, &trigger.static_response) {
            (Some(_), Some(_)) => Err(self.invalid(
                key,
                "give either `component` or `static_response`, not both",
            )),
            (None, None) => Err(self.invalid(
                key,
                "an HTTP trigger needs a `component` (or a `static_response`)",
            )),
            (None, Some(response)) => {
                let status = response.status_code.unwrap_or(200);
                if !(100..=999).contains(&status) {
                    return Err(self.invalid(
                        format!("{key}.static_response.status_code"),
                        format!("{status} is not an HTTP status code"),
                    ));
                }
                Ok(RouteTarget::Static(StaticResponse {
                    status,
                    headers: response
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    body: response.body.clone().unwrap_or_default(),
                }))
            }
            (Some(toml::Value::String(id)), None) => Ok(RouteTarget::Component(id.clone())),
            (Some(value @ toml::Value::Table(_)), None) => {
                let component = RawComponent::deserialize(value.clone()).map_err(|e| {
                    self.invalid(format!("{key}.component"), e.message().to_string())
                })?;
                // Named as Spin names inline components: after the trigger's
                // id when it has one, else numbered.
                let id = match &trigger.id {
                    Some(id) if !components.contains_key(&format!("{id}-component")) => {
                        format!("{id}-component")
                    }
                    _ => loop {
                        *inline += 1;
                        let id = format!("inline-component{inline}");
                        if !components.contains_key(&id) {
                            break id;
                        }
                    },
                };
                components.insert(id.clone(), component);
                Ok(RouteTarget::Component(id))
            }
            (Some(_), None) => Err(self.invalid(
                format!("{key}.component"),
                "must be a component id or an inline component table",
            )),
        }
    }

    fn route(&self, key: &str, base: &str, route: &toml::Value) -> Result<Route, ManifestError> {
        match route {
            toml::Value::String(route) => RoutePattern::parse_under(base, route)
                .map(Route::Path)
                .map_err(|problem| self.invalid(format!("{key}.route"), problem)),
            toml::Value::Table(table) => match (table.get("private"), table.len()) {
                (Some(toml::Value::Boolean(true)), 1) => Ok(Route::Private),
                _ => Err(self.invalid(
                    format!("{key}.route"),
                    "a route is a path (\"/api/...\") or { private = true }",
                )),
            },
            _ => Err(self.invalid(
                format!("{key}.route"),
                "a route is a path (\"/api/...\") or { private = true }",
            )),
        }
    }

    fn component(
        &mut self,
        id: &str,
        rc: RawComponent,
        app_variables: &BTreeMap<String, VariableDecl>,
    ) -> Result<ComponentSpec, ManifestError> {
        let key = |k: &str| format!("component.{id}.{k}");
        if !is_valid_id(id) {
            return Err(self.invalid(
                format!("component.{id}"),
                "a component id may use only lowercase letters, digits, '-' and '_'",
            ));
        }
        self.refusals.list(
            key("key_value_stores"),
            feature::KEY_VALUE,
            &rc.key_value_stores,
        );
        self.refusals.list(
            key("sqlite_databases"),
            feature::SQLITE,
            &rc.sqlite_databases,
        );
        let dependencies: Vec<String> = rc.dependencies.keys().cloned().collect();
        self.refusals
            .list(key("dependencies"), feature::DEPENDENCIES, &dependencies);

        let source = match &rc.source {
            toml::Value::String(s) => Some(self.base_dir.join(s)),
            toml::Value::Table(t) if t.contains_key("url") => {
                let url = t.get("url").and_then(toml::Value::as_str).unwrap_or("?");
                self.refusals
                    .add(key("source"), feature::REMOTE_SOURCE, url.to_string());
                None
            }
            toml::Value::Table(t) if t.contains_key("package") || t.contains_key("registry") => {
                let package = t
                    .get("package")
                    .and_then(toml::Value::as_str)
                    .unwrap_or("?");
                self.refusals
                    .add(key("source"), feature::REGISTRY_SOURCE, package.to_string());
                None
            }
            _ => {
                return Err(self.invalid(
                    key("source"),
                    "must be the path of a .wasm file, or { url, digest } or { registry, package, version }",
                ));
            }
        };
        let source = source.unwrap_or_default();
        if self.checks == Checks::Full && self.refusals.0.is_empty() && !source.is_file() {
            return Err(self.invalid(
                key("source"),
                format!(
                    "{} does not exist (build the functions with `cargo build --release`)",
                    source.display()
                ),
            ));
        }

        let entries: Vec<FilesEntry> = rc
            .files
            .iter()
            .map(|f| match f {
                RawFileMount::Pattern(p) => FilesEntry::Pattern(p.clone()),
                RawFileMount::Placement {
                    source,
                    destination,
                } => FilesEntry::Placement {
                    source: source.clone(),
                    destination: destination.clone(),
                },
            })
            .collect();
        // Files are looked for only in an application that can be served.
        let files = match self.checks {
            Checks::Full if self.refusals.0.is_empty() => {
                files::resolve(self.base_dir, &entries, &rc.exclude_files)
                    .map_err(|problem| self.invalid(key("files"), problem))?
            }
            Checks::Full | Checks::ManifestOnly => Vec::new(),
        };

        let template = |name: String, value: &str| -> Result<Template, ManifestError> {
            let template = Template::parse(value).map_err(|p| self.invalid(&name, p))?;
            if let Some(missing) = template
                .references()
                .find(|r| !app_variables.contains_key(*r))
            {
                return Err(self.invalid(
                    name,
                    format!("refers to {missing:?}, which is not in [variables]"),
                ));
            }
            Ok(template)
        };
        let mut variables = BTreeMap::new();
        for (name, value) in &rc.variables {
            let t = template(format!("component.{id}.variables.{name}"), value)?;
            variables.insert(name.clone(), t);
        }

        let mut allowed = rc.allowed_outbound_hosts.clone();
        allowed.extend(
            outbound::from_allowed_http_hosts(&rc.allowed_http_hosts)
                .map_err(|problem| self.invalid(key("allowed_http_hosts"), problem))?,
        );
        let mut allowed_outbound_hosts = Vec::new();
        for entry in &allowed {
            let t = template(key("allowed_outbound_hosts"), entry)?;
            // Checked now when it can be; with variables, once they are known.
            if t.is_literal() {
                AllowedHost::parse(entry)
                    .map_err(|problem| self.invalid(key("allowed_outbound_hosts"), problem))?;
            }
            allowed_outbound_hosts.push(t);
        }

        Ok(ComponentSpec {
            id: id.to_string(),
            description: rc.description,
            source,
            files,
            environment: rc.environment,
            variables,
            ai_models: rc.ai_models,
            allowed_outbound_hosts,
        })
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

        let e = error_of(&GOOD.replace("spin_manifest_version = 2", "spin_manifest_version = 3"));
        assert!(
            e.contains("spin_manifest_version") && e.contains("version 3"),
            "{e}"
        );

        let e = error_of(&GOOD.replace("/exact", "/api/..."));
        assert!(
            e.contains("trigger.http[1].route") && e.contains("already served"),
            "{e}"
        );

        let e = error_of(&GOOD.replace("destination = \"/data\"", "destination = \"data\""));
        assert!(e.contains("component.app.files"), "{e}");
    }

    fn manifest_only(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse_with(text, Path::new("/app/spin.toml"), Checks::ManifestOnly)
    }

    #[test]
    fn spin_features_are_understood() {
        let m = manifest_only(
            r#"
spin_manifest_version = 2
[application]
name = "all"
authors = ["a"]
targets = ["spin-up:3.3"]
[application.trigger.http]
base = "/base"
[application.tool.lint]
level = "high"
[variables]
host = { default = "example.com" }
token = { required = true, secret = true }
[[trigger.http]]
route = { private = true }
component = "back"
[[trigger.http]]
id = "front"
route = "/front/:id/..."
component = { source = "front.wasm", allowed_outbound_hosts = ["https://{{ host }}", "http://*.spin.internal"] }
[[trigger.http]]
route = "/old"
static_response = { status_code = 301, headers = { location = "/new" } }
[component.back]
source = "back.wasm"
key_value_stores = []
files = ["static/**/*.html", { source = "data", destination = "/data" }]
exclude_files = ["static/drafts/**"]
[component.back.tool.clean]
command = "rm -rf target"
"#,
        )
        .unwrap();
        assert_eq!(m.base, "/base");
        assert_eq!(m.routes[0].route, Route::Private);
        assert_eq!(m.routes[1].component(), Some("front-component"));
        assert_eq!(m.routes[1].label(), "/base/front/:id/...");
        let RouteTarget::Static(response) = &m.routes[2].target else {
            panic!("not static");
        };
        assert_eq!(response.status, 301);
        assert_eq!(
            m.components["front-component"].allowed_outbound_hosts.len(),
            2
        );
        assert_eq!(m.routes[0].component(), Some("back"));
        assert!(m.variables["token"].secret);
    }

    #[test]
    fn unserved_features_are_refused_together_by_name() {
        let e = manifest_only(
            r#"
spin_manifest_version = 2
[application]
name = "refused"
[[trigger.http]]
route = "/..."
component = "app"
[[trigger.redis]]
channel = "c"
component = "app"
[component.app]
source = { url = "https://example.com/app.wasm", digest = "sha256:00" }
key_value_stores = ["default"]
sqlite_databases = ["default"]
"#,
        )
        .unwrap_err();
        let ManifestError::Unsupported { features, .. } = &e else {
            panic!("{e}");
        };
        let keys: Vec<&str> = features.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "trigger.redis",
                "component.app.key_value_stores",
                "component.app.sqlite_databases",
                "component.app.source"
            ]
        );
        let text = e.to_string();
        assert!(
            text.contains("key-value stores ([\"default\"]) are not supported"),
            "{text}"
        );
    }

    #[test]
    fn version_1_is_converted_as_spin_converts_it() {
        let m = manifest_only(
            r#"
spin_manifest_version = "1"
name = "old"
trigger = { type = "http", base = "/v1" }
[variables]
x = { default = "1" }
[[component]]
id = "app"
source = "app.wasm"
allowed_http_hosts = ["example.com", "insecure:allow-all"]
config = { value = "{{ x }}" }
[component.trigger]
route = "/app/..."
"#,
        )
        .unwrap();
        assert_eq!(m.version, 1);
        assert_eq!(m.routes[0].label(), "/v1/app/...");
        let app = &m.components["app"];
        assert_eq!(app.allowed_outbound_hosts.len(), 4);
        assert!(app.variables.contains_key("value"));

        let e =
            manifest_only("spin_manifest_version = 3\n[application]\nname = \"x\"").unwrap_err();
        assert!(e.to_string().contains("converts version 1"), "{e}");
        // A key Spin does not define is still an error, naming it.
        let e =
            manifest_only("spin_manifest_version = 2\n[application]\nname = \"x\"\nnmae = \"y\"")
                .unwrap_err();
        assert!(e.to_string().contains("nmae"), "{e}");
    }
}
