//! The function templates `wasi-infer new` writes, carried in the binary
//! (their sources are the repository's `templates/` folder), and how a
//! template becomes a crate: its placeholders replaced.

use crate::nn::model_config::Task;

/// A template: what it makes, the models it suits, and its files.
pub struct Template {
    pub name: &'static str,
    pub summary: &'static str,
    /// The `task` (model.toml) of the models it serves; its function gets
    /// them all when `--model` names none.
    pub task: Option<Task>,
    /// How to try it, for the message after it is written: the request body
    /// (curl's arguments before the URL).
    pub try_with: &'static str,
    /// Paths inside the crate, and their text with placeholders.
    pub files: &'static [(&'static str, &'static str)],
}

macro_rules! template_files {
    ($dir:literal: $($file:literal),+) => {
        &[$(($file, include_str!(concat!("../../../templates/", $dir, "/", $file)))),+]
    };
}

pub const TEMPLATES: &[Template] = &[
    Template {
        name: "classifier",
        summary: "an image in, the most probable classes out (image-prep reads the model's [preprocess])",
        task: Some(Task::ImageClassification),
        try_with: "--data-binary @tests/data/images/chelsea.png",
        files: template_files!("classifier": "Cargo.toml", "src/lib.rs"),
    },
    Template {
        name: "text",
        summary: "JSON texts in, the model's output for each out (text-prep tokenises with the model's tokenizer.json)",
        task: Some(Task::TextEmbedding),
        try_with: "-d '{\"input\": \"A man is eating food.\"}'",
        files: template_files!("text": "Cargo.toml", "src/lib.rs"),
    },
    Template {
        name: "blank",
        summary: "JSON numbers in, every output out: the least a function needs to run a model",
        task: None,
        try_with: "-d '{\"data\": [...], \"shape\": [...]}'",
        files: template_files!("blank": "Cargo.toml", "src/lib.rs"),
    },
];

/// The template called `name`.
pub fn find(name: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.name == name)
}

/// What a template's placeholders stand for.
pub struct Placeholders<'a> {
    /// `{{name}}`: the package and component name (kebab-case).
    pub name: &'a str,
    /// `{{route}}`: the route's prefix, without the trailing `/...`.
    pub route: &'a str,
}

impl Placeholders<'_> {
    /// `text` with every placeholder replaced. Templates hold no other
    /// `{{`, so a plain replacement is all the rendering they need.
    pub fn render(&self, text: &str) -> String {
        text.replace("{{name}}", self.name)
            .replace("{{route}}", self.route)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_is_a_crate_whose_placeholders_are_all_known() {
        for template in TEMPLATES {
            let paths: Vec<_> = template.files.iter().map(|(p, _)| *p).collect();
            assert!(paths.contains(&"Cargo.toml"), "{}", template.name);
            assert!(paths.contains(&"src/lib.rs"), "{}", template.name);
            let placeholders = Placeholders {
                name: "my-function",
                route: "/my-function",
            };
            for (path, text) in template.files {
                let rendered = placeholders.render(text);
                assert!(
                    !rendered.contains("{{"),
                    "{}/{path}: a placeholder is left",
                    template.name
                );
            }
            let cargo = template.files.iter().find(|(p, _)| *p == "Cargo.toml");
            let cargo = placeholders.render(cargo.map(|(_, t)| *t).unwrap_or_default());
            let parsed: toml::Table = toml::from_str(&cargo).expect("Cargo.toml parses");
            assert_eq!(parsed["package"]["name"].as_str(), Some("my-function"));
        }
    }
}
