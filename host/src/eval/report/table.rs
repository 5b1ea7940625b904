//! The report as text tables, for the terminal.

use std::fmt::Write;

use super::{ComparisonRow, DeploymentReport, Evaluation};

/// Past this many classes the confusion matrix is not printed (it would be
/// unreadable): the JSON, HTML and PNG have it.
const MAX_PRINTED_MATRIX: usize = 20;
/// Failures are grouped by their error; each group names this many items.
const IDS_PER_FAILURE_GROUP: usize = 8;

/// The whole evaluation: each deployment's report, then the comparison.
pub fn render(evaluation: &Evaluation) -> String {
    let mut out = String::new();
    for report in evaluation.reports() {
        out.push_str(&render_report(report));
        out.push('\n');
    }
    if evaluation.compares() {
        out.push_str("comparison (against the first deployment; run one after another)\n");
        out.push_str(&render_comparison(&evaluation.comparison.comparison));
    }
    out
}

pub fn render_report(r: &DeploymentReport) -> String {
    let mut out = String::new();
    let d = &r.deployment;
    let _ = writeln!(
        out,
        "== {} at {} (protocol {})",
        d.label(),
        d.url,
        d.protocol
    );
    let _ = writeln!(
        out,
        "dataset {} ({}): {} items, {} answered, {} failed{}",
        r.dataset.path,
        r.dataset.format,
        r.items,
        r.succeeded,
        r.failed,
        if r.failed > 0 {
            " (failed items are left out of every metric)"
        } else {
            ""
        }
    );
    let _ = writeln!(out, "class names: {}", r.labels_from);
    if let Some(preprocess) = &d.preprocess {
        let _ = writeln!(out, "preprocessing: {preprocess}");
    }
    let _ = writeln!(
        out,
        "\naccuracy {:.4}   top-5 accuracy {:.4}   macro F1 {:.4}   weighted F1 {:.4}\n",
        r.accuracy, r.top5_accuracy, r.macro_avg.f1, r.weighted_avg.f1
    );

    let mut rows: Vec<Vec<String>> = r
        .per_class
        .iter()
        .map(|c| {
            vec![
                format!("{} {}", c.index, c.label),
                format!("{:.4}", c.precision),
                format!("{:.4}", c.recall),
                format!("{:.4}", c.f1),
                c.support.to_string(),
            ]
        })
        .collect();
    for (name, avg) in [
        ("macro avg", &r.macro_avg),
        ("weighted avg", &r.weighted_avg),
    ] {
        rows.push(vec![
            name.to_string(),
            format!("{:.4}", avg.precision),
            format!("{:.4}", avg.recall),
            format!("{:.4}", avg.f1),
            avg.support.to_string(),
        ]);
    }
    out.push_str(&grid(
        &["class", "precision", "recall", "f1", "support"],
        &rows,
        &[true],
    ));

    let n = r.confusion_matrix.len();
    if n <= MAX_PRINTED_MATRIX {
        let _ = writeln!(
            out,
            "\nconfusion matrix (rows: true class, columns: predicted class): counts"
        );
        out.push_str(&matrix(r, |i, j| r.confusion_matrix[i][j].to_string()));
        let _ = writeln!(out, "\nthe same, each row as a share of its class (%)");
        out.push_str(&matrix(r, |i, j| {
            format!("{:.1}", 100.0 * r.confusion_matrix_normalized[i][j])
        }));
    } else {
        let _ = writeln!(
            out,
            "\nconfusion matrix: {n} classes, too many to print (see --json, --html or --png)"
        );
    }

    let l = &r.latency_ms;
    let _ = writeln!(
        out,
        "\nlatency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  mean {:.2}  max {:.2}",
        l.p50, l.p90, l.p99, l.mean, l.max
    );
    let _ = writeln!(
        out,
        "throughput: {:.1} req/s ({} answered in {:.2} s, {} in flight)",
        r.throughput_rps, r.succeeded, r.wall_s, r.concurrency
    );
    if !r.failures.is_empty() {
        let _ = writeln!(out, "\nfailed: {} items", r.failures.len());
        for (error, ids) in failure_groups(r) {
            let shown: Vec<&str> = ids.iter().take(IDS_PER_FAILURE_GROUP).copied().collect();
            let more = if ids.len() > shown.len() {
                format!(
                    ", ... ({} more; every one in --json)",
                    ids.len() - shown.len()
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  {} x {error}\n      items: {}{more}",
                ids.len(),
                shown.join(", ")
            );
        }
    }
    out
}

/// The failures grouped by error, in order of first appearance.
pub fn failure_groups(r: &DeploymentReport) -> Vec<(&str, Vec<&str>)> {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for f in &r.failures {
        match groups.iter_mut().find(|(e, _)| *e == f.error) {
            Some((_, ids)) => ids.push(&f.id),
            None => groups.push((&f.error, vec![&f.id])),
        }
    }
    groups
}

fn matrix(r: &DeploymentReport, cell: impl Fn(usize, usize) -> String) -> String {
    let n = r.confusion_matrix.len();
    let mut headers: Vec<String> = vec!["true \\ predicted".into()];
    headers.extend((0..n).map(|j| j.to_string()));
    let rows: Vec<Vec<String>> = (0..n)
        .map(|i| {
            let name = r.classes.get(i).map(String::as_str).unwrap_or("");
            std::iter::once(format!("{i} {name}"))
                .chain((0..n).map(|j| cell(i, j)))
                .collect()
        })
        .collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    grid(&headers, &rows, &[true])
}

pub fn render_comparison(rows: &[ComparisonRow]) -> String {
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|c| {
            vec![
                c.deployment.clone(),
                format!("{:.4}", c.accuracy),
                format!("{:+.4}", c.accuracy_diff),
                format!("{:.4}", c.macro_f1),
                format!("{:.4}", c.agreement),
                format!("{:.2}", c.p50_ms),
                ratio(c.p50_ratio),
                format!("{:.1}", c.throughput_rps),
                ratio(c.throughput_ratio),
                bytes(c.model_bytes),
            ]
        })
        .collect();
    grid(
        &[
            "deployment",
            "accuracy",
            "diff",
            "macro F1",
            "agreement",
            "p50 ms",
            "x p50",
            "req/s",
            "x req/s",
            "model size",
        ],
        &table,
        &[true],
    )
}

/// `1.23x`, or "-".
pub fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.2}x"))
}

/// A size in MB (10^6 bytes, as `models list` writes them), or "-".
pub fn bytes(value: Option<u64>) -> String {
    match value {
        Some(b) if b >= 1_000_000 => format!("{:.2} MB", b as f64 / 1e6),
        Some(b) => format!("{:.1} kB", b as f64 / 1e3),
        None => "-".into(),
    }
}

/// Columns padded to their widest cell; `left[i]` aligns column i left
/// (the rest, numbers, right).
fn grid(headers: &[&str], rows: &[Vec<String>], left: &[bool]) -> String {
    let columns = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate().take(columns) {
            if i > 0 {
                text.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if left.get(i).copied().unwrap_or(false) {
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            } else {
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            }
        }
        text.truncate(text.trim_end().len());
        text.push('\n');
        text
    };
    let mut out = line(&mut headers.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_aligns_text_left_and_numbers_right() {
        let text = grid(
            &["name", "n"],
            &[
                vec!["a".into(), "10".into()],
                vec!["long".into(), "2".into()],
            ],
            &[true],
        );
        assert_eq!(text, "name   n\na     10\nlong   2\n");
        assert_eq!(bytes(Some(1_700_000)), "1.70 MB");
        assert_eq!(bytes(None), "-");
        assert_eq!(ratio(Some(0.5)), "0.50x");
    }
}
