//! The report as one self-contained HTML page: its style inline, each
//! confusion-matrix PNG embedded as a `data:` URI, nothing fetched from
//! anywhere (it can be mailed, archived, opened offline).

use std::fmt::Write;
use std::path::Path;

use base64::Engine;

use super::table::{bytes, failure_groups, ratio};
use super::{DeploymentReport, Evaluation, png};
use crate::eval::Error;

const STYLE: &str = "
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { padding: 0.25em 0.6em; border: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f4f4f4; }
.headline td { font-size: 1.1em; }
.note { color: #555; }
code { background: #f4f4f4; padding: 0 0.2em; }
img { max-width: 100%; }
";

pub fn write(path: &Path, evaluation: &Evaluation) -> Result<(), Error> {
    let page = render(evaluation).map_err(|e| Error::write(path, e))?;
    std::fs::write(path, page).map_err(|e| Error::write(path, e))
}

pub fn render(evaluation: &Evaluation) -> Result<String, String> {
    let reports = evaluation.reports();
    let mut out = String::new();
    let title = match reports {
        [one] => format!("Evaluation of {}", one.deployment.model),
        _ => format!("Evaluation of {} deployments", reports.len()),
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n\
         <p class=\"note\">Made by <code>{}</code></p>\n",
        escape(&title),
        escape(&title),
        escape(&evaluation.command)
    );
    if evaluation.compares() {
        out.push_str(
            "<h2>Comparison</h2>\n<p class=\"note\">Against the first deployment; \
            the deployments ran one after another over the same items. Agreement: the share \
            of items, answered by both, whose first class is the first deployment's.</p>\n",
        );
        out.push_str(&comparison(evaluation));
    }
    for report in reports {
        out.push_str(&section(report)?);
    }
    out.push_str("</body>\n</html>\n");
    Ok(out)
}

fn comparison(evaluation: &Evaluation) -> String {
    let mut rows = String::new();
    for c in &evaluation.comparison.comparison {
        let _ = writeln!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{:.4}</td><td>{:+.4}</td><td>{:.4}</td><td>{:.4}</td>\
             <td>{:.2}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td></tr>",
            escape(&c.deployment),
            escape(&c.url),
            c.accuracy,
            c.accuracy_diff,
            c.macro_f1,
            c.agreement,
            c.p50_ms,
            ratio(c.p50_ratio),
            c.throughput_rps,
            ratio(c.throughput_ratio),
            bytes(c.model_bytes)
        );
    }
    format!(
        "<table>\n<thead><tr><th>deployment</th><th>url</th><th>accuracy</th><th>diff</th>\
         <th>macro F1</th><th>agreement</th><th>p50 ms</th><th>x p50</th><th>req/s</th>\
         <th>x req/s</th><th>model size</th></tr></thead>\n<tbody>\n{rows}</tbody>\n</table>\n"
    )
}

fn section(r: &DeploymentReport) -> Result<String, String> {
    let d = &r.deployment;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<h2>{} at {}</h2>\n<p>Protocol <code>{}</code>; dataset <code>{}</code> ({}): {} items, \
         {} answered, {} failed{}. Class names: {}.{}</p>",
        escape(&d.label()),
        escape(&d.url),
        escape(&d.protocol),
        escape(&r.dataset.path),
        escape(&r.dataset.format),
        r.items,
        r.succeeded,
        r.failed,
        if r.failed > 0 {
            " (failed items are left out of every metric)"
        } else {
            ""
        },
        escape(&r.labels_from),
        d.preprocess
            .as_deref()
            .map(|p| format!(" Preprocessing: {}.", escape(p)))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "<table class=\"headline\"><tr><td>accuracy</td><td>{:.4}</td><td>top-5 accuracy</td>\
         <td>{:.4}</td><td>macro F1</td><td>{:.4}</td><td>weighted F1</td><td>{:.4}</td></tr></table>",
        r.accuracy, r.top5_accuracy, r.macro_avg.f1, r.weighted_avg.f1
    );

    out.push_str("<table>\n<thead><tr><th>class</th><th>precision</th><th>recall</th><th>f1</th><th>support</th></tr></thead>\n<tbody>\n");
    for c in &r.per_class {
        let _ = writeln!(
            out,
            "<tr><td>{} {}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{}</td></tr>",
            c.index,
            escape(&c.label),
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
            "<tr><th>{name}</th><th>{:.4}</th><th>{:.4}</th><th>{:.4}</th><th>{}</th></tr>",
            a.precision, a.recall, a.f1, a.support
        );
    }
    out.push_str("</tbody>\n</table>\n");

    let png = png::render(r)?;
    let _ = writeln!(
        out,
        "<p>Confusion matrix (rows: true class, columns: predicted class; colour: the share of \
         the true class):</p>\n<img alt=\"confusion matrix of {}\" src=\"data:image/png;base64,{}\">",
        escape(&d.label()),
        base64::engine::general_purpose::STANDARD.encode(png)
    );
    if r.confusion_matrix.len() <= 50 {
        out.push_str(&matrix_table(r));
    }

    let l = &r.latency_ms;
    let _ = writeln!(
        out,
        "<table>\n<thead><tr><th>latency</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th>\
         <th>mean ms</th><th>max ms</th><th>req/s</th><th>in flight</th><th>wall s</th></tr></thead>\n\
         <tbody><tr><td>answered requests</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td>\
         <td>{:.2}</td><td>{:.1}</td><td>{}</td><td>{:.2}</td></tr></tbody>\n</table>",
        l.p50, l.p90, l.p99, l.mean, l.max, r.throughput_rps, r.concurrency, r.wall_s
    );

    if r.failures.is_empty() {
        out.push_str("<p>No request failed.</p>\n");
    } else {
        let _ = writeln!(
            out,
            "<p>{} requests failed:</p>\n<table>\n<thead><tr><th>error</th><th>count</th><th>items</th></tr></thead>\n<tbody>",
            r.failures.len()
        );
        for (error, ids) in failure_groups(r) {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td></tr>",
                escape(error),
                ids.len(),
                escape(&ids.join(", "))
            );
        }
        out.push_str("</tbody>\n</table>\n");
    }
    Ok(out)
}

/// The counts, with each cell's background its row share.
fn matrix_table(r: &DeploymentReport) -> String {
    let mut out = String::from("<table>\n<thead><tr><th>true \\ predicted</th>");
    for j in 0..r.confusion_matrix.len() {
        let _ = write!(out, "<th>{j}</th>");
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for (i, row) in r.confusion_matrix.iter().enumerate() {
        let name = r.classes.get(i).map(String::as_str).unwrap_or("");
        let _ = write!(out, "<tr><td>{i} {}</td>", escape(name));
        for (j, count) in row.iter().enumerate() {
            let share = r.confusion_matrix_normalized[i]
                .get(j)
                .copied()
                .unwrap_or(0.0);
            let ink = if share > 0.5 { "#fff" } else { "#222" };
            // The heatmap's blue, as transparency over white.
            let _ = write!(
                out,
                "<td style=\"background: rgba(8, 48, 107, {share:.3}); color: {ink}\" \
                 title=\"{:.1}% of class {i}\">{count}</td>",
                share * 100.0
            );
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// Text as HTML text or attribute value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_page_holds_everything_it_shows() {
        let evaluation = super::super::tests::sample_evaluation(1);
        let page = render(&evaluation).unwrap();
        assert!(
            page.contains("data:image/png;base64,iVBORw0KGgo"),
            "the PNG is embedded"
        );
        assert!(
            !page.contains("src=\"http") && !page.contains("href=\"http"),
            "nothing external"
        );
        assert!(page.contains("T-shirt/top") && page.contains("macro avg"));
        assert!(page.contains("503: busy"), "failures are listed");
        assert!(!page.contains("<h2>Comparison"));
        let two = render(&super::super::tests::sample_evaluation(2)).unwrap();
        assert!(two.contains("<h2>Comparison"));
    }
}
