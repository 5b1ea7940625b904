//! Spin variables: application `[variables]` with defaults, and component
//! variables that are templates over them (`"{{ name }}"`), resolved once at
//! start-up.

use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// An application variable, declared in `[variables]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    pub description: Option<String>,
}

impl VariableDecl {
    pub fn check(&self, name: &str) -> Result<(), String> {
        if !is_valid_name(name) {
            return Err(
                "a variable name may use only lowercase letters, digits and '_', starting with a letter"
                    .into(),
            );
        }
        match (&self.default, self.required) {
            (Some(_), true) => Err("a variable cannot be both required and have a default".into()),
            (None, false) => Err("give the variable a default or mark it required = true".into()),
            _ => Ok(()),
        }
    }
}

/// Whether `name` is a valid variable name: lowercase letters, digits and
/// `_`, starting with a letter.
pub fn is_valid_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A component variable's value: literal text and `{{ variable }}` references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Part>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Variable(String),
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed '{{{{' in {text:?}"))?;
            let name = after[..end].trim();
            if !is_valid_name(name) {
                return Err(format!("{name:?} in {text:?} is not a variable name"));
            }
            parts.push(Part::Variable(name.to_string()));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Self(parts))
    }

    /// Whether the template is plain text, without references.
    pub fn is_literal(&self) -> bool {
        self.references().next().is_none()
    }

    /// The application variables this template refers to.
    pub fn references(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            Part::Variable(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// The text with each reference replaced by its value; `None` when a
    /// value is missing.
    pub fn render(&self, values: &HashMap<String, String>) -> Option<String> {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Variable(name) => out.push_str(values.get(name)?),
            }
        }
        Some(out)
    }
}

/// Resolves application variables: `SPIN_VARIABLE_<NAME>` from the environment
/// (as Spin's environment provider does), else the default.
pub fn resolve_application_variables(
    decls: &BTreeMap<String, VariableDecl>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<HashMap<String, String>, String> {
    let mut values = HashMap::new();
    for (name, decl) in decls {
        let env_name = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
        match env(&env_name).or_else(|| decl.default.clone()) {
            Some(value) => {
                values.insert(name.clone(), value);
            }
            None => {
                return Err(format!(
                    "variable {name:?} is required: set {env_name} in the environment"
                ));
            }
        }
    }
    Ok(values)
}

/// Renders a component's variable templates with the application's values.
pub fn render_component_variables(
    templates: &BTreeMap<String, Template>,
    values: &HashMap<String, String>,
) -> ComponentVariables {
    ComponentVariables(Arc::new(
        templates
            .iter()
            .filter_map(|(name, t)| Some((name.clone(), t.render(values)?)))
            .collect(),
    ))
}

/// The resolved variables of one component, shared by all of its instances.
#[derive(Debug, Clone, Default)]
pub struct ComponentVariables(Arc<HashMap<String, String>>);

impl ComponentVariables {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_literals_and_references() {
        let t = Template::parse("k={{ top_k }}; {{x}}!").unwrap();
        assert_eq!(t.references().collect::<Vec<_>>(), vec!["top_k", "x"]);
        let values = HashMap::from([("top_k".into(), "3".into()), ("x".into(), "y".into())]);
        assert_eq!(t.render(&values).unwrap(), "k=3; y!");
        assert!(Template::parse("{{ open").is_err());
        assert!(Template::parse("{{ Bad-Name }}").is_err());
    }

    #[test]
    fn environment_overrides_default_and_required_must_be_set() {
        let decls = BTreeMap::from([
            (
                "a".to_string(),
                VariableDecl {
                    default: Some("1".into()),
                    ..Default::default()
                },
            ),
            (
                "b".to_string(),
                VariableDecl {
                    required: true,
                    ..Default::default()
                },
            ),
        ]);
        let env = |n: &str| (n == "SPIN_VARIABLE_B").then(|| "2".to_string());
        let values = resolve_application_variables(&decls, env).unwrap();
        assert_eq!((values["a"].as_str(), values["b"].as_str()), ("1", "2"));
        let err = resolve_application_variables(&decls, |_| None).unwrap_err();
        assert!(err.contains("SPIN_VARIABLE_B"), "{err}");
    }
}
