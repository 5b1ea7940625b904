//! `wasi-infer new`: a new function, from a template, in an application
//! laid out as this repository is (`spin.toml`, `functions/` as a Cargo
//! workspace, `models/`), as `spin new` and `cargo generate` make one.
//!
//! Everything is worked out and checked first ([`plan`]): the name, the
//! route, the models, the crate's files, the workspace's members and the
//! manifest with the new component, which is parsed as `serve` would parse
//! it. Only then is anything written ([`Plan::write`]), so a refused
//! request leaves the application as it was.

pub mod templates;
mod workspace;

use std::path::{Path, PathBuf};

use wasi_infer_manifest::{Checks, Manifest, ManifestError};

use crate::nn::model_config::Task;
use crate::nn::repository::{self, ModelRepository};
pub use templates::{TEMPLATES, Template};

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("no template named {0:?}: the templates are {list}", list = template_names())]
    UnknownTemplate(String),
    #[error("{0:?} cannot name a function: {1}")]
    BadName(String, &'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{path}: {problem}")]
    Workspace { path: PathBuf, problem: String },
    #[error("no model named {name:?} in {}", dir.display())]
    UnknownModel { name: String, dir: PathBuf },
    #[error("cannot read the model repository {}: {source}", dir.display())]
    Models {
        dir: PathBuf,
        source: crate::nn::ModelError,
    },
}

fn template_names() -> String {
    TEMPLATES
        .iter()
        .map(|t| t.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What to make.
pub struct NewFunction<'a> {
    pub template: &'a str,
    /// The function's name: its crate, its component and its route.
    pub name: &'a str,
    /// The application's manifest; `functions/` is beside it.
    pub manifest: &'a Path,
    /// The route's prefix [default: `/<name>`].
    pub route: Option<&'a str>,
    /// The models the component may load [default: those of the template's
    /// task in the repository].
    pub models: &'a [String],
    /// The model repository [default: `models/` beside the manifest].
    pub models_dir: Option<&'a Path>,
}

/// A file `new` changes: its text before and after.
#[derive(Debug)]
pub struct Edit {
    pub path: PathBuf,
    before: String,
    after: String,
}

/// Everything `new` will write, checked.
#[derive(Debug)]
pub struct Plan {
    /// The new crate's folder, and its files (relative paths, contents).
    pub crate_dir: PathBuf,
    pub files: Vec<(PathBuf, String)>,
    /// `functions/Cargo.toml`, with the new member.
    pub workspace: Edit,
    /// The manifest, with the new trigger and component.
    pub manifest: Edit,
    pub route: String,
    pub models: Vec<String>,
}

/// Works out and checks what `new` writes, writing nothing.
pub fn plan(new: &NewFunction) -> Result<Plan, ScaffoldError> {
    let template = templates::find(new.template)
        .ok_or_else(|| ScaffoldError::UnknownTemplate(new.template.into()))?;
    check_name(new.name)?;
    let route = match new.route {
        Some(route) => check_route(route)?,
        None => format!("/{}", new.name),
    };

    let manifest_text = read(new.manifest)?;
    let manifest = Manifest::parse_with(&manifest_text, new.manifest, Checks::ManifestOnly)?;
    if manifest.version != 2 {
        return Err(ScaffoldError::Conflict(format!(
            "{} is a version 1 manifest: new writes version 2 entries (spin_manifest_version = 2)",
            new.manifest.display()
        )));
    }
    if manifest.components.contains_key(new.name) {
        return Err(ScaffoldError::Conflict(format!(
            "{} already has a component {:?}",
            new.manifest.display(),
            new.name
        )));
    }
    let wildcard = format!("{route}/...");
    if let Some(taken) = manifest
        .routes
        .iter()
        .find(|r| r.label() == wildcard || r.label() == route)
    {
        return Err(ScaffoldError::Conflict(format!(
            "route {} is taken (by {}): choose another with --route",
            taken.label(),
            taken.component().unwrap_or("a static response")
        )));
    }

    // Paths as the user would write them: `functions/x`, not `./functions/x`.
    let base = if manifest.base_dir == Path::new(".") {
        PathBuf::new()
    } else {
        manifest.base_dir.clone()
    };
    let functions = base.join("functions");
    let crate_dir = functions.join(new.name);
    if crate_dir.exists() {
        return Err(ScaffoldError::Conflict(format!(
            "{} already exists",
            crate_dir.display()
        )));
    }
    let workspace_path = functions.join("Cargo.toml");
    let workspace_text = read(&workspace_path)?;
    let workspace = workspace::add_member(&workspace_path, &workspace_text, new.name)?;

    let models_dir = new
        .models_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| base.join("models"));
    let models = models_for(template, new.models, &models_dir)?;

    let placeholders = templates::Placeholders {
        name: new.name,
        route: &route,
    };
    let files = template
        .files
        .iter()
        .map(|(path, text)| (PathBuf::from(path), placeholders.render(text)))
        .collect();

    let new_manifest = manifest_text.trim_end().to_string()
        + "\n\n"
        + &manifest_entry(template, new.name, &route, &models);
    // Parsed as serve parses it, so what is written is a manifest it takes.
    Manifest::parse_with(&new_manifest, new.manifest, Checks::ManifestOnly)?;

    Ok(Plan {
        crate_dir,
        files,
        workspace: Edit {
            path: workspace_path,
            before: workspace_text,
            after: workspace,
        },
        manifest: Edit {
            path: new.manifest.to_path_buf(),
            before: manifest_text,
            after: new_manifest,
        },
        route,
        models,
    })
}

impl Plan {
    /// Writes the crate, then the workspace, then the manifest. If a write
    /// fails, what was written is undone (the crate's folder removed, the
    /// workspace as it was), so the application still builds.
    pub fn write(&self) -> Result<(), ScaffoldError> {
        let undo_crate = || {
            let _ = std::fs::remove_dir_all(&self.crate_dir);
        };
        if let Err(e) = self
            .write_crate()
            .and_then(|()| write(&self.workspace.path, &self.workspace.after))
        {
            undo_crate();
            return Err(e);
        }
        if let Err(e) = write(&self.manifest.path, &self.manifest.after) {
            let _ = write(&self.workspace.path, &self.workspace.before);
            undo_crate();
            return Err(e);
        }
        Ok(())
    }

    fn write_crate(&self) -> Result<(), ScaffoldError> {
        for (path, text) in &self.files {
            let path = self.crate_dir.join(path);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|source| ScaffoldError::Write {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            write(&path, text)?;
        }
        Ok(())
    }
}

/// A name that is at once a Cargo package, a Spin component id (lower
/// kebab-case) and a URL path segment.
fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let bad = |why| Err(ScaffoldError::BadName(name.into(), why));
    let words_ok = name.split('-').all(|word| {
        !word.is_empty()
            && word
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    });
    if !words_ok || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad(
            "use lower-case letters and digits in words joined by '-', starting with a letter (e.g. my-classifier)",
        );
    }
    if name.len() > 64 {
        return bad("use at most 64 characters");
    }
    // Names Cargo refuses for a package, or that would shadow a crate every
    // function uses.
    const RESERVED: &[&str] = &[
        "alloc",
        "core",
        "proc-macro",
        "std",
        "test",
        "self",
        "crate",
        "super",
        "build",
        "deps",
        "examples",
        "incremental",
        "target",
    ];
    if RESERVED.contains(&name) || is_rust_keyword(name) {
        return bad("it is reserved by Rust or Cargo");
    }
    Ok(())
}

fn is_rust_keyword(name: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "do",
        "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in",
        "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
        "return", "static", "struct", "trait", "true", "try", "type", "typeof", "unsafe",
        "unsized", "use", "virtual", "where", "while", "yield",
    ];
    KEYWORDS.contains(&name)
}

/// A route prefix: `/` and path segments of URL-safe characters, without
/// the trailing `/...` (which `new` adds).
fn check_route(route: &str) -> Result<String, ScaffoldError> {
    let route = route.trim_end_matches("/...").trim_end_matches('/');
    let segments_ok = route.strip_prefix('/').is_some_and(|rest| {
        rest.split('/').all(|s| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
    });
    if !segments_ok {
        return Err(ScaffoldError::BadName(
            route.into(),
            "a route is /segment[/segment...] of letters, digits, '-', '_' and '.'",
        ));
    }
    Ok(route.to_string())
}

/// The models the component may load: those asked for (each must be in the
/// repository), else every model of the template's task.
fn models_for(
    template: &Template,
    asked: &[String],
    dir: &Path,
) -> Result<Vec<String>, ScaffoldError> {
    let models_error = |source| ScaffoldError::Models {
        dir: dir.to_path_buf(),
        source,
    };
    let repository = ModelRepository::open(dir, None).map_err(models_error)?;
    if !asked.is_empty() {
        for name in asked {
            if repository.model_dir(name).is_none() {
                return Err(ScaffoldError::UnknownModel {
                    name: name.clone(),
                    dir: dir.to_path_buf(),
                });
            }
        }
        return Ok(asked.to_vec());
    }
    let Some(task) = template.task else {
        return Ok(Vec::new());
    };
    let names = repository.names().map_err(models_error)?;
    Ok(names
        .into_iter()
        .filter(|name| task_of(&repository, name) == Some(task))
        .collect())
}

/// The task a model's `model.toml` declares (a model whose configuration
/// cannot be read has none here; `serve` reports it).
fn task_of(repository: &ModelRepository, name: &str) -> Option<Task> {
    let dir = repository.model_dir(name)?;
    repository::load_config(&dir).ok()?.task
}

/// The manifest's new trigger and component, as the example application
/// writes its own.
fn manifest_entry(template: &Template, name: &str, route: &str, models: &[String]) -> String {
    let crate_name = name.replace('-', "_");
    let models = models
        .iter()
        .map(|m| format!("{m:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"# Written by `wasi-infer new {template} {name}`: functions/{name}/.
[[trigger.http]]
route = "{route}/..."
component = "{name}"

[component.{name}]
description = "{description}"
source = "target/functions/wasm32-wasip2/release/{crate_name}.wasm"
# Model metadata (model.toml, labels, tokenizer) for the function, read-only.
files = [{{ source = "models", destination = "/models" }}]
# The wasi-nn models this component may load by name.
ai_models = [{models}]

[component.{name}.build]
command = "cargo build --target wasm32-wasip2 --release --target-dir ../../target/functions"
workdir = "functions/{name}"
"#,
        template = template.name,
        description = template.summary.replace('"', "'"),
    )
}

fn read(path: &Path) -> Result<String, ScaffoldError> {
    std::fs::read_to_string(path).map_err(|source| ScaffoldError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn write(path: &Path, text: &str) -> Result<(), ScaffoldError> {
    std::fs::write(path, text).map_err(|source| ScaffoldError::Write {
        path: path.to_path_buf(),
        source,
    })
}
