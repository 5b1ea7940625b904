//! The functions' Cargo workspace (`functions/Cargo.toml`): a new crate
//! joins its members, the file otherwise kept as it is written (comments,
//! order, layout), with `toml_edit`.

use std::path::Path;

use toml_edit::{Array, DocumentMut, Value};

use super::ScaffoldError;

/// The workspace's text with `member` added to `[workspace] members`, which
/// stay sorted if they were.
pub fn add_member(path: &Path, text: &str, member: &str) -> Result<String, ScaffoldError> {
    let problem = |problem: String| ScaffoldError::Workspace {
        path: path.to_path_buf(),
        problem,
    };
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e| problem(format!("not a Cargo manifest: {e}")))?;
    let members = doc
        .get_mut("workspace")
        .and_then(|w| w.get_mut("members"))
        .and_then(|m| m.as_array_mut())
        .ok_or_else(|| problem("no [workspace] members list to add the function to".into()))?;
    let names: Vec<&str> = members.iter().filter_map(Value::as_str).collect();
    if names.contains(&member) {
        return Err(problem(format!("{member:?} is already a member")));
    }
    let sorted = names.is_sorted();
    members.push(member);
    if sorted {
        sort(members);
    }
    Ok(doc.to_string())
}

fn sort(members: &mut Array) {
    members.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    // A member moved to the front keeps its leading space; the first has none.
    for (i, member) in members.iter_mut().enumerate() {
        let prefix = if i == 0 { "" } else { " " };
        member.decor_mut().set_prefix(prefix);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_joins_the_list_and_the_rest_is_kept() {
        let text = "# Guest functions.\n[workspace]\nresolver = \"3\"\nmembers = [\"b\", \"d\"]\n\n[profile.release]\nlto = true # small\n";
        let added = add_member(Path::new("Cargo.toml"), text, "a").unwrap();
        assert_eq!(
            added,
            "# Guest functions.\n[workspace]\nresolver = \"3\"\nmembers = [\"a\", \"b\", \"d\"]\n\n[profile.release]\nlto = true # small\n"
        );
        let again = add_member(Path::new("Cargo.toml"), &added, "c").unwrap();
        assert!(
            again.contains("members = [\"a\", \"b\", \"c\", \"d\"]"),
            "{again}"
        );
    }

    #[test]
    fn an_unsorted_list_gets_the_member_last() {
        let text = "[workspace]\nmembers = [\"z\", \"a\"]\n";
        let added = add_member(Path::new("Cargo.toml"), text, "m").unwrap();
        assert!(added.contains("members = [\"z\", \"a\", \"m\"]"), "{added}");
    }

    #[test]
    fn no_workspace_or_a_member_twice_is_refused() {
        let path = Path::new("Cargo.toml");
        for text in [
            "[package]\nname = \"x\"\n",
            "not toml [",
            "[workspace]\nmembers = [\"a\"]\n",
        ] {
            assert!(add_member(path, text, "a").is_err(), "{text}");
        }
    }
}
