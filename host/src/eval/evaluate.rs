//! An evaluation from start to end: the dataset read, every deployment
//! checked (server, model, one item through), class names found, then each
//! deployment run in turn and scored. Everything that can stop it stops it
//! before the first run.

use std::path::PathBuf;
use std::time::Duration;

use super::Error;
use super::client::{Client, ModelInfo, Protocol};
use super::dataset::Dataset;
use super::labels::{ClassNames, NamesSource};
use super::model_files::ModelFiles;
use super::report::{Comparison, DeploymentInfo, DeploymentReport, Evaluation};
use super::run::{self, Progress};

#[derive(Debug, Clone)]
pub struct Options {
    /// Every (url, model) pair is a deployment, urls first.
    pub urls: Vec<String>,
    pub models: Vec<String>,
    pub protocol: Protocol,
    pub dataset: PathBuf,
    pub concurrency: usize,
    /// The first `limit` items only.
    pub limit: Option<usize>,
    /// A labels file, before any other source of class names.
    pub labels: Option<PathBuf>,
    /// A model repository to read model.toml, labels and sizes from.
    pub models_dir: Option<PathBuf>,
    /// For each request.
    pub timeout: Duration,
    /// The command line, for the reports.
    pub command: String,
}

/// A deployment checked and ready to run.
struct Ready {
    client: Client,
    info: ModelInfo,
    files: ModelFiles,
}

/// What an evaluation tells as it goes, besides its progress.
pub trait Notes {
    fn note(&self, line: &str);
}

pub fn evaluate(
    options: &Options,
    progress: &dyn Progress,
    notes: &dyn Notes,
) -> Result<Evaluation, Error> {
    let mut dataset = Dataset::open(&options.dataset)?;
    if let Some(limit) = options.limit {
        dataset.truncate(limit);
    }
    let Some(first) = dataset.items.first() else {
        return Err(Error::dataset(&options.dataset, "--limit leaves no items"));
    };
    let probe = dataset
        .image(first)
        .ok_or_else(|| Error::dataset(&options.dataset, "its first item has no image"))?;
    notes.note(&format!(
        "dataset {} ({}): {} items",
        dataset.path.display(),
        dataset.format,
        dataset.items.len()
    ));

    let mut ready = Vec::new();
    for url in &options.urls {
        for model in &options.models {
            let files = ModelFiles::find(options.models_dir.as_deref(), model)?;
            let client = Client::new(
                url,
                model,
                options.protocol,
                options.concurrency,
                options.timeout,
            );
            let info = client.check(probe, files.toml())?;
            notes.note(&format!(
                "{model} at {}: backend {}, {} classes",
                client.url,
                info.backend.as_deref().unwrap_or("unknown"),
                info.classes
            ));
            ready.push(Ready {
                client,
                info,
                files,
            });
        }
    }
    let Some(lead) = ready.first() else {
        return Err(Error::Server {
            url: options.urls.join(", "),
            model: options.models.join(", "),
            problem: "no deployment to evaluate: give --url and --model".into(),
        });
    };
    let classes = lead.info.classes;
    if let Some(other) = ready.iter().find(|r| r.info.classes != classes) {
        return Err(Error::Server {
            url: other.client.url.clone(),
            model: other.client.model.clone(),
            problem: format!(
                "it scores {} classes, but {} at {} scores {classes}: deployments compared must \
                 classify into the same classes",
                other.info.classes, lead.client.model, lead.client.url
            ),
        });
    }

    let (names, source) = class_names(options, lead)?;
    if let Some(names) = &names
        && names.len() != classes
    {
        notes.note(&format!(
            "warning: {source} names {} classes, but the model scores {classes}",
            names.len()
        ));
    }
    let truth = dataset.classes(names.as_ref())?;
    if let Some((item, &class)) = dataset
        .items
        .iter()
        .zip(&truth)
        .find(|(_, c)| **c >= classes)
    {
        return Err(Error::dataset(
            &dataset.path,
            format!(
                "item {} is of class {class}, but the model scores {classes} classes (0 to {})",
                item.id,
                classes.saturating_sub(1)
            ),
        ));
    }
    let display_names: Vec<String> = (0..classes)
        .map(|i| match &names {
            Some(names) => names.name(i),
            None => i.to_string(),
        })
        .collect();

    let mut reports = Vec::new();
    for deployment in &ready {
        let info = DeploymentInfo {
            url: deployment.client.url.clone(),
            model: deployment.client.model.clone(),
            backend: deployment.info.backend.clone(),
            protocol: options.protocol.to_string(),
            model_bytes: deployment.files.model_bytes,
            preprocess: deployment
                .info
                .tensor
                .as_ref()
                .map(|t| t.preprocess_from.clone()),
        };
        let outcome = run::run(
            &deployment.client,
            &deployment.info,
            &dataset,
            options.concurrency,
            &info.label(),
            progress,
        );
        reports.push(DeploymentReport::new(
            info,
            &dataset,
            &truth,
            &display_names,
            source.to_string(),
            &outcome,
        ));
    }
    Ok(Evaluation {
        comparison: Comparison::new(reports),
        command: options.command.clone(),
    })
}

/// The class names: `--labels`, else the first model's labels in the model
/// repository, else the server's answers, else none (indices).
fn class_names(
    options: &Options,
    lead: &Ready,
) -> Result<(Option<ClassNames>, NamesSource), Error> {
    if let Some(path) = &options.labels {
        return Ok((
            Some(ClassNames::read(path)?),
            NamesSource::File(path.clone()),
        ));
    }
    if let Some(path) = &lead.files.labels {
        return Ok((
            Some(ClassNames::read(path)?),
            NamesSource::File(path.clone()),
        ));
    }
    if let Some(names) = &lead.info.names {
        return Ok((Some(ClassNames::new(names.clone())), NamesSource::Server));
    }
    Ok((None, NamesSource::Indices))
}
