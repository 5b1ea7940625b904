//! `wasi-infer check`: loads an application as `serve` would (the manifest,
//! its variables, its models on their backends, its components compiled and
//! linked) and reports what it would serve, without listening.

use std::fmt::Write as _;

use wasi_infer::app::{App, AppOptions, LoadObserver};
use wasi_infer::http::server::HOST_PATHS;
use wasi_infer::manifest::RouteTarget;
use wasi_infer::nn::interface::{TensorInfo, format_shape};

pub fn check(options: &AppOptions, observer: &dyn LoadObserver) -> anyhow::Result<()> {
    let app = App::load_observed(options, observer)?;
    print!("{}", report(&app));
    Ok(())
}

/// What the application serves, and the problems that do not stop it.
fn report(app: &App) -> String {
    let manifest = &app.manifest;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: application {} {} is ready to serve",
        manifest.path.display(),
        manifest.application.name,
        manifest.application.version.as_deref().unwrap_or("")
    );
    let _ = writeln!(out, "routes:");
    let width = manifest
        .routes
        .iter()
        .map(|r| r.label().len())
        .max()
        .unwrap_or(0);
    for route in &manifest.routes {
        let target = match &route.target {
            RouteTarget::Component(id) => {
                let world = app
                    .components
                    .iter()
                    .find(|c| &c.id == id)
                    .map(|c| c.world.to_string())
                    .unwrap_or_default();
                format!("{id} ({world})")
            }
            RouteTarget::Static(response) => format!("static response {}", response.status),
        };
        let _ = writeln!(out, "  {:<width$}  -> {target}", route.label());
    }
    let _ = writeln!(out, "models:");
    for model in app.models.loaded() {
        let tensors = |list: &[TensorInfo]| {
            list.iter()
                .map(|t| {
                    let shape = t.shape.as_deref().map_or("[...]".into(), format_shape);
                    format!("{} {} {shape}", t.name, t.ty)
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "  {} (version {}) on {}, loaded in {:.2} s: {} -> {}",
            model.name,
            model.version,
            model.backend,
            model.load_time.as_secs_f64(),
            tensors(&model.own_interface().inputs),
            tensors(&model.own_interface().outputs),
        );
    }
    let shadowed: Vec<String> = HOST_PATHS
        .iter()
        .filter_map(|path| {
            let route = app.route(path)?;
            Some(format!(
                "warning: {path} is answered by the host itself, never by route {route}"
            ))
        })
        .collect();
    for warning in shadowed {
        let _ = writeln!(out, "{warning}");
    }
    out
}
