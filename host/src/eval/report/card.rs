//! The evaluation as a section of a model card (a Markdown file such as
//! `models/NAME/README.md`): between [`BEGIN`] and [`END`], replaced on each
//! run, appended where the card has none; everything outside the markers is
//! kept byte for byte.

use std::fmt::Write;
use std::path::{Component, Path, PathBuf};

use super::{DeploymentReport, Evaluation};
use crate::eval::Error;

pub const BEGIN: &str = "<!-- wasi-infer eval: begin -->";
pub const END: &str = "<!-- wasi-infer eval: end -->";

/// Writes the section into the card at `path` (created if missing). `png`
/// is the confusion matrix written alongside, linked relative to the
/// card's folder.
pub fn write(path: &Path, evaluation: &Evaluation, png: Option<&Path>) -> Result<(), Error> {
    let old = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::write(path, e)),
    };
    let link = png.map(|png| {
        let dir = path.parent().unwrap_or(Path::new(""));
        relative_link(dir, png)
    });
    let section = section(evaluation, link.as_deref());
    let new = splice(&old, &section).map_err(|e| Error::write(path, e))?;
    std::fs::write(path, new).map_err(|e| Error::write(path, e))
}

/// `card` with the text between the markers replaced by `section` (markers
/// kept), or the marked section appended. One marker alone, markers out of
/// order, or several sections are errors: the card was edited by hand,
/// and guessing could delete what someone wrote.
pub fn splice(card: &str, section: &str) -> Result<String, String> {
    let block = format!("{BEGIN}\n{}{END}", ensure_newline(section));
    let (begins, ends) = (card.matches(BEGIN).count(), card.matches(END).count());
    match (begins, ends) {
        (0, 0) => {
            let mut out = card.to_string();
            if !out.is_empty() {
                if !out.ends_with('\n') {
                    out.push('\n');
                }
                out.push('\n');
            }
            out.push_str(&block);
            out.push('\n');
            Ok(out)
        }
        (1, 1) => {
            let (Some(start), Some(end)) = (card.find(BEGIN), card.find(END)) else {
                return Err("its evaluation markers cannot be found".into());
            };
            if end < start {
                return Err(format!("{END} comes before {BEGIN}: fix the card by hand"));
            }
            Ok(format!(
                "{}{block}{}",
                &card[..start],
                &card[end + END.len()..]
            ))
        }
        _ => Err(format!(
            "it has {begins} \"{BEGIN}\" and {ends} \"{END}\" markers; it needs one of each \
             (or none, to append the section): fix the card by hand"
        )),
    }
}

fn ensure_newline(text: &str) -> String {
    if text.ends_with('\n') {
        text.to_string()
    } else {
        format!("{text}\n")
    }
}

/// The Markdown section: how it was made, the headline figures, the first
/// deployment's per-class table, the confusion matrix's PNG, and a latency
/// table with a row per deployment.
pub fn section(evaluation: &Evaluation, png_link: Option<&str>) -> String {
    let reports = evaluation.reports();
    let mut out = String::from("## Evaluation\n\n");
    let _ = writeln!(
        out,
        "Written by `wasi-infer eval`; run again to update (everything between the markers is replaced):\n\n```sh\n{}\n```\n",
        evaluation.command
    );
    let Some(first) = reports.first() else {
        return out;
    };
    let _ = writeln!(
        out,
        "Dataset: `{}` ({}), {} items{}.\n",
        first.dataset.path,
        first.dataset.format,
        first.items,
        if first.failed > 0 {
            format!(
                "; {} answered, {} failed (left out of the figures)",
                first.succeeded, first.failed
            )
        } else {
            String::new()
        }
    );
    out.push_str("| deployment | accuracy | top-5 accuracy | macro F1 | weighted F1 |\n|---|---:|---:|---:|---:|\n");
    for r in reports {
        let _ = writeln!(
            out,
            "| {} | {:.4} | {:.4} | {:.4} | {:.4} |",
            cell(&r.deployment.label()),
            r.accuracy,
            r.top5_accuracy,
            r.macro_avg.f1,
            r.weighted_avg.f1
        );
    }
    out.push('\n');
    out.push_str(&per_class(first, reports.len() > 1));
    if let Some(link) = png_link {
        let _ = writeln!(
            out,
            "![Confusion matrix, {}: rows true class, columns predicted class]({link})\n",
            cell(&first.deployment.label())
        );
    }
    out.push_str("| backend | model | p50 ms | p90 ms | p99 ms | req/s | concurrency |\n|---|---|---:|---:|---:|---:|---:|\n");
    for r in reports {
        let l = &r.latency_ms;
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.1} | {} |",
            cell(r.deployment.backend.as_deref().unwrap_or("-")),
            cell(&r.deployment.model),
            l.p50,
            l.p90,
            l.p99,
            r.throughput_rps,
            r.concurrency
        );
    }
    out.push_str(
        "\nLatency: each request from sending to the whole answer read, as seen by the client.\n",
    );
    out
}

fn per_class(r: &DeploymentReport, several: bool) -> String {
    let mut out = String::new();
    if several {
        let _ = writeln!(out, "Per class, {}:\n", cell(&r.deployment.label()));
    }
    out.push_str("| class | precision | recall | f1 | support |\n|---|---:|---:|---:|---:|\n");
    for c in &r.per_class {
        let _ = writeln!(
            out,
            "| {} {} | {:.4} | {:.4} | {:.4} | {} |",
            c.index,
            cell(&c.label),
            c.precision,
            c.recall,
            c.f1,
            c.support
        );
    }
    for (name, a) in [
        ("macro avg", &r.macro_avg),
        ("weighted avg", &r.weighted_avg),
    ] {
        let _ = writeln!(
            out,
            "| **{name}** | {:.4} | {:.4} | {:.4} | {} |",
            a.precision, a.recall, a.f1, a.support
        );
    }
    out.push('\n');
    out
}

/// Text for a Markdown table cell: a `|` would end the cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// `target` relative to the folder `from`, with `/` separators (a
/// Markdown link); both are made absolute against the current folder.
pub fn relative_link(from: &Path, target: &Path) -> String {
    let absolute = |p: &Path| -> PathBuf {
        let joined = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        };
        normalise(&joined)
    };
    let (from, target) = (absolute(from), absolute(target));
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = target.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".into(); from.len() - common];
    parts.extend(
        to[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

/// `a/./b/../c` as `a/c`, without touching the file system.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_is_replaced_and_the_rest_kept() {
        let card = format!(
            "# Model\r\n\r\nIntro.\n\n{BEGIN}\nold figures\n{END}\n\n## Licence\nMIT, no newline at the end"
        );
        let new = splice(&card, "new figures").unwrap();
        assert_eq!(
            new,
            format!(
                "# Model\r\n\r\nIntro.\n\n{BEGIN}\nnew figures\n{END}\n\n## Licence\nMIT, no newline at the end"
            )
        );
        // Again: the same card, nothing piles up.
        assert_eq!(splice(&new, "new figures\n").unwrap(), new);
    }

    #[test]
    fn the_section_is_appended_where_there_is_none() {
        assert_eq!(
            splice("# Model\nText.", "figures\n").unwrap(),
            format!("# Model\nText.\n\n{BEGIN}\nfigures\n{END}\n")
        );
        assert_eq!(
            splice("# Model\n", "figures").unwrap(),
            format!("# Model\n\n{BEGIN}\nfigures\n{END}\n")
        );
        assert_eq!(splice("", "f").unwrap(), format!("{BEGIN}\nf\n{END}\n"));
    }

    #[test]
    fn hand_edited_markers_are_refused() {
        for card in [
            format!("{BEGIN}\nno end"),
            format!("no begin\n{END}"),
            format!("{END}\n{BEGIN}"),
            format!("{BEGIN}\n{END}\n{BEGIN}\n{END}"),
        ] {
            let e = splice(&card, "x").unwrap_err();
            assert!(e.contains("by hand"), "{card:?}: {e}");
        }
    }

    #[test]
    fn links_are_relative_to_the_card() {
        assert_eq!(
            relative_link(Path::new("/r/models/m"), Path::new("/r/models/m/cm.png")),
            "cm.png"
        );
        assert_eq!(
            relative_link(Path::new("/r/models/m"), Path::new("/r/out/./cm.png")),
            "../../out/cm.png"
        );
        assert_eq!(
            relative_link(Path::new("models/m"), Path::new("models/m/x/../cm.png")),
            "cm.png"
        );
    }

    #[test]
    fn the_section_has_the_figures_and_a_row_per_deployment() {
        let evaluation = super::super::tests::sample_evaluation(2);
        let text = section(&evaluation, Some("cm.png"));
        assert!(text.contains("```sh\nwasi-infer eval --url"), "{text}");
        assert!(text.contains("| 0 T-shirt/top |"), "{text}");
        assert!(text.contains("![Confusion matrix"), "{text}");
        assert!(text.contains("(cm.png)"), "{text}");
        assert_eq!(text.matches("| onnxruntime |").count(), 2, "{text}");
        assert!(text.contains("macro avg"), "{text}");
    }
}
