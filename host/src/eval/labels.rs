//! Class names: one per class, in class-index order, as a labels file gives
//! them (one line a class; a line may list synonyms, "tabby, tabby cat",
//! of which the first is the name, as the classifier answers it).

use std::path::{Path, PathBuf};

use super::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassNames {
    /// The first synonym of each line.
    names: Vec<String>,
    /// Every synonym of each line, for looking label text up.
    synonyms: Vec<Vec<String>>,
}

impl ClassNames {
    pub fn new(names: Vec<String>) -> Self {
        let synonyms = names.iter().map(|n| vec![n.clone()]).collect();
        Self { names, synonyms }
    }

    /// Reads a labels file.
    pub fn read(path: &Path) -> Result<Self, Error> {
        let bad = |problem: String| Error::Labels {
            path: path.to_path_buf(),
            problem,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let names = image_prep::parse_labels(&text);
        if names.is_empty() {
            return Err(bad(
                "is empty: one class name a line, in class-index order".into()
            ));
        }
        let synonyms = text
            .lines()
            .map(|line| {
                line.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .collect();
        Ok(Self { names, synonyms })
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The class a label text names: a synonym exactly, else one class's
    /// synonym ignoring case.
    pub fn index_of(&self, text: &str) -> Option<usize> {
        let text = text.trim();
        let exact = self
            .synonyms
            .iter()
            .position(|line| line.iter().any(|s| s == text));
        exact.or_else(|| {
            let mut matches = self
                .synonyms
                .iter()
                .enumerate()
                .filter(|(_, line)| line.iter().any(|s| s.eq_ignore_ascii_case(text)))
                .map(|(index, _)| index);
            match (matches.next(), matches.next()) {
                (Some(index), None) => Some(index),
                _ => None,
            }
        })
    }

    /// The names, shortened for an error message.
    pub fn describe(&self) -> String {
        const SHOWN: usize = 12;
        let mut text = self
            .names
            .iter()
            .take(SHOWN)
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        if self.names.len() > SHOWN {
            text.push_str(&format!(", ... ({} in all)", self.names.len()));
        }
        text
    }

    /// The name of class `index`, or the index itself where there is none.
    pub fn name(&self, index: usize) -> String {
        match self.names.get(index) {
            Some(name) if !name.is_empty() => name.clone(),
            _ => index.to_string(),
        }
    }
}

/// Where class names were found, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamesSource {
    File(PathBuf),
    Server,
    /// None known: classes are named by their index.
    Indices,
}

impl std::fmt::Display for NamesSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NamesSource::File(path) => write!(f, "{}", path.display()),
            NamesSource::Server => f.write_str("the server's answers"),
            NamesSource::Indices => f.write_str("class indices (no labels known)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_label_text_up_by_synonym_then_ignoring_case() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.txt");
        std::fs::write(&path, "tabby, tabby cat\nT-shirt/top\nShirt\nshirt\n").unwrap();
        let names = ClassNames::read(&path).unwrap();
        assert_eq!(names.names(), ["tabby", "T-shirt/top", "Shirt", "shirt"]);
        assert_eq!(names.index_of("tabby cat"), Some(0));
        assert_eq!(names.index_of(" T-shirt/top "), Some(1));
        assert_eq!(names.index_of("t-shirt/TOP"), Some(1));
        assert_eq!(names.index_of("Shirt"), Some(2));
        // Two classes differ only by case: no guess.
        assert_eq!(names.index_of("SHIRT"), None);
        assert_eq!(names.index_of("dog"), None);
        assert_eq!(names.name(7), "7");

        std::fs::write(&path, "").unwrap();
        let e = ClassNames::read(&path).unwrap_err().to_string();
        assert!(e.contains("labels.txt") && e.contains("empty"), "{e}");
        let e = ClassNames::read(&dir.path().join("nope.txt"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope.txt"), "{e}");
    }
}
