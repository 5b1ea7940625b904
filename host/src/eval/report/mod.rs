//! What a run adds up to ([`DeploymentReport`]), several deployments side by
//! side ([`ComparisonRow`]), and the forms they are written in:
//! [`table`] (the terminal), [`json`], [`html`], [`png`] (the confusion
//! matrix as a heatmap) and [`card`] (a model card's section).

pub mod card;
pub mod html;
pub mod json;
pub mod png;
pub mod table;

use serde::Serialize;

use super::dataset::Dataset;
use super::metrics::{self, ClassScores, ClassificationReport, ConfusionMatrix};
use super::run::RunOutcome;

/// What is known of a deployment besides its answers.
#[derive(Debug, Clone, Serialize)]
pub struct DeploymentInfo {
    pub url: String,
    pub model: String,
    /// The backend the server reports (`platform`), where it does.
    pub backend: Option<String>,
    pub protocol: String,
    /// The model file's size, where the model's folder is known.
    pub model_bytes: Option<u64>,
    /// How the tensor was prepared (the Open Inference Protocol only).
    pub preprocess: Option<String>,
}

impl DeploymentInfo {
    /// "model (backend)", as tables name it.
    pub fn label(&self) -> String {
        format!(
            "{} ({})",
            self.model,
            self.backend.as_deref().unwrap_or("-")
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DatasetSummary {
    pub path: String,
    pub format: String,
    /// Items evaluated (after `--limit`).
    pub items: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassLine {
    pub index: usize,
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub mean: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub id: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PredictionLine {
    pub id: String,
    #[serde(rename = "true")]
    pub truth: usize,
    pub pred: usize,
    /// The best classes, best first (up to 5).
    pub top5: Vec<usize>,
}

/// One deployment's evaluation. Failed items are left out of every metric
/// (they are listed in `failures`); latency and throughput are those of
/// the answered requests.
#[derive(Debug, Clone, Serialize)]
pub struct DeploymentReport {
    #[serde(flatten)]
    pub deployment: DeploymentInfo,
    pub dataset: DatasetSummary,
    /// Where the class names come from.
    pub labels_from: String,
    /// The class names, in class-index order.
    pub classes: Vec<String>,
    pub items: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub accuracy: f64,
    pub top5_accuracy: f64,
    /// Rows: true class; columns: predicted class.
    pub confusion_matrix: Vec<Vec<u64>>,
    /// Each row divided by its sum.
    pub confusion_matrix_normalized: Vec<Vec<f64>>,
    pub per_class: Vec<ClassLine>,
    pub macro_avg: ClassScores,
    pub weighted_avg: ClassScores,
    /// The classes the averages are over (those among the true or the
    /// predicted labels: scikit-learn's default).
    pub averaged_classes: Vec<usize>,
    pub latency_ms: Latency,
    /// Answered requests a second, over the run's wall time.
    pub throughput_rps: f64,
    pub wall_s: f64,
    pub concurrency: usize,
    pub failures: Vec<Failure>,
    pub predictions: Vec<PredictionLine>,
    /// Each item's first class, `None` where it failed (for agreement).
    #[serde(skip)]
    pub top1: Vec<Option<usize>>,
}

impl DeploymentReport {
    /// Scores `outcome` against `truth` (each item's class), with `names`
    /// one per class (the class count).
    pub fn new(
        deployment: DeploymentInfo,
        dataset: &Dataset,
        truth: &[usize],
        names: &[String],
        labels_from: String,
        outcome: &RunOutcome,
    ) -> Self {
        let mut predictions = Vec::new();
        let mut failures = Vec::new();
        let mut latencies = Vec::new();
        let mut top1 = Vec::with_capacity(outcome.results.len());
        for ((item, &truth), result) in dataset.items.iter().zip(truth).zip(&outcome.results) {
            match result.as_ref().map(|a| (a.ranked.first(), a)) {
                Ok((Some(&pred), answered)) => {
                    predictions.push(PredictionLine {
                        id: item.id.clone(),
                        truth,
                        pred,
                        top5: answered.ranked.iter().take(5).copied().collect(),
                    });
                    latencies.push(answered.latency.as_secs_f64() * 1000.0);
                    top1.push(Some(pred));
                }
                Ok((None, _)) => {
                    failures.push(Failure {
                        id: item.id.clone(),
                        error: "the answer named no class".into(),
                    });
                    top1.push(None);
                }
                Err(error) => {
                    failures.push(Failure {
                        id: item.id.clone(),
                        error: error.clone(),
                    });
                    top1.push(None);
                }
            }
        }
        let matrix =
            ConfusionMatrix::new(names.len(), predictions.iter().map(|p| (p.truth, p.pred)));
        let report = ClassificationReport::new(&matrix);
        let per_class = report
            .per_class
            .iter()
            .enumerate()
            .map(|(index, s)| ClassLine {
                index,
                label: names
                    .get(index)
                    .cloned()
                    .unwrap_or_else(|| index.to_string()),
                precision: s.precision,
                recall: s.recall,
                f1: s.f1,
                support: s.support,
            })
            .collect();
        latencies.sort_by(f64::total_cmp);
        let latency = Latency {
            p50: metrics::percentile(&latencies, 50.0),
            p90: metrics::percentile(&latencies, 90.0),
            p99: metrics::percentile(&latencies, 99.0),
            mean: if latencies.is_empty() {
                0.0
            } else {
                latencies.iter().sum::<f64>() / latencies.len() as f64
            },
            max: latencies.last().copied().unwrap_or(0.0),
        };
        let wall_s = outcome.wall.as_secs_f64();
        Self {
            deployment,
            dataset: DatasetSummary {
                path: dataset.path.display().to_string(),
                format: dataset.format.to_string(),
                items: dataset.items.len(),
            },
            labels_from,
            classes: names.to_vec(),
            items: dataset.items.len(),
            succeeded: predictions.len(),
            failed: failures.len(),
            accuracy: matrix.accuracy(),
            top5_accuracy: metrics::top_k_accuracy(
                predictions.iter().map(|p| (p.truth, p.top5.as_slice())),
                5,
            ),
            confusion_matrix: matrix.counts().to_vec(),
            confusion_matrix_normalized: matrix.row_normalised(),
            per_class,
            macro_avg: report.macro_avg,
            weighted_avg: report.weighted_avg,
            averaged_classes: report.averaged_classes,
            latency_ms: latency,
            throughput_rps: if wall_s > 0.0 {
                predictions.len() as f64 / wall_s
            } else {
                0.0
            },
            wall_s,
            concurrency: outcome.concurrency,
            failures,
            predictions,
            top1,
        }
    }
}

/// One deployment's line in a comparison, against the first deployment.
#[derive(Debug, Clone, Serialize)]
pub struct ComparisonRow {
    /// "model (backend)".
    pub deployment: String,
    pub url: String,
    pub model: String,
    pub backend: Option<String>,
    pub accuracy: f64,
    /// Its accuracy less the first deployment's.
    pub accuracy_diff: f64,
    pub macro_f1: f64,
    /// The share of items (answered by both) whose first class is the
    /// first deployment's.
    pub agreement: f64,
    /// How many items both answered.
    pub agreement_items: usize,
    pub p50_ms: f64,
    /// Its p50 over the first's (`None` when the first's is 0).
    pub p50_ratio: Option<f64>,
    pub throughput_rps: f64,
    pub throughput_ratio: Option<f64>,
    pub model_bytes: Option<u64>,
}

/// Several deployments evaluated on the same items, one after another.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub deployments: Vec<DeploymentReport>,
    pub comparison: Vec<ComparisonRow>,
}

impl Comparison {
    pub fn new(deployments: Vec<DeploymentReport>) -> Self {
        let comparison = match deployments.first() {
            None => Vec::new(),
            Some(first) => deployments
                .iter()
                .map(|d| {
                    let both: Vec<(usize, usize)> = first
                        .top1
                        .iter()
                        .zip(&d.top1)
                        .filter_map(|(a, b)| Some(((*a)?, (*b)?)))
                        .collect();
                    let agreeing = both.iter().filter(|(a, b)| a == b).count();
                    let ratio = |mine: f64, theirs: f64| (theirs > 0.0).then(|| mine / theirs);
                    ComparisonRow {
                        deployment: d.deployment.label(),
                        url: d.deployment.url.clone(),
                        model: d.deployment.model.clone(),
                        backend: d.deployment.backend.clone(),
                        accuracy: d.accuracy,
                        accuracy_diff: d.accuracy - first.accuracy,
                        macro_f1: d.macro_avg.f1,
                        agreement: if both.is_empty() {
                            0.0
                        } else {
                            agreeing as f64 / both.len() as f64
                        },
                        agreement_items: both.len(),
                        p50_ms: d.latency_ms.p50,
                        p50_ratio: ratio(d.latency_ms.p50, first.latency_ms.p50),
                        throughput_rps: d.throughput_rps,
                        throughput_ratio: ratio(d.throughput_rps, first.throughput_rps),
                        model_bytes: d.deployment.model_bytes,
                    }
                })
                .collect(),
        };
        Self {
            deployments,
            comparison,
        }
    }
}

/// The whole evaluation: the deployments' reports (one, or several to
/// compare), and how it was asked for.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub comparison: Comparison,
    /// The command line, as a card quotes it.
    pub command: String,
}

impl Evaluation {
    pub fn reports(&self) -> &[DeploymentReport] {
        &self.comparison.deployments
    }

    /// Whether this compares deployments (more than one).
    pub fn compares(&self) -> bool {
        self.reports().len() > 1
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::eval::run::Answered;

    pub const FASHION: [&str; 10] = [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ];

    /// `deployments` evaluations of six items (classes 0, 1, 2, 2, 3, 9):
    /// five answered (one wrong, class 2 as 6), one failed.
    pub fn sample_evaluation(deployments: usize) -> Evaluation {
        let dataset = Dataset::fake(6);
        let truth = [0, 1, 2, 2, 3, 9];
        let names: Vec<String> = FASHION.iter().map(|s| s.to_string()).collect();
        let answers: [Result<Vec<usize>, &str>; 6] = [
            Ok(vec![0, 6, 2]),
            Ok(vec![1, 3]),
            Ok(vec![6, 2]),
            Ok(vec![2]),
            Err("503: busy"),
            Ok(vec![9, 7, 5]),
        ];
        let reports = (0..deployments)
            .map(|k| {
                let outcome = RunOutcome {
                    results: answers
                        .iter()
                        .enumerate()
                        .map(|(i, a)| match a {
                            Ok(ranked) => Ok(Answered {
                                ranked: ranked.clone(),
                                latency: Duration::from_millis(2 + i as u64 + k as u64),
                            }),
                            Err(e) => Err(e.to_string()),
                        })
                        .collect(),
                    wall: Duration::from_millis(20),
                    concurrency: 2,
                };
                let info = DeploymentInfo {
                    url: "http://127.0.0.1:3000".into(),
                    model: format!("fashion-mnist-cnn{}", if k > 0 { "-int8" } else { "" }),
                    backend: Some("onnxruntime".into()),
                    protocol: "classify".into(),
                    model_bytes: Some(1_700_000),
                    preprocess: None,
                };
                DeploymentReport::new(
                    info,
                    &dataset,
                    &truth,
                    &names,
                    "labels.txt".into(),
                    &outcome,
                )
            })
            .collect();
        Evaluation {
            comparison: Comparison::new(reports),
            command: "wasi-infer eval --url http://127.0.0.1:3000 --model fashion-mnist-cnn --dataset fake.csv".into(),
        }
    }

    #[test]
    fn a_report_adds_up_its_answers_and_lists_its_failures() {
        let evaluation = sample_evaluation(2);
        let r = &evaluation.reports()[0];
        assert_eq!((r.items, r.succeeded, r.failed), (6, 5, 1));
        assert_eq!(r.failures[0].id, "img/4.png");
        assert_eq!(r.failures[0].error, "503: busy");
        assert!((r.accuracy - 4.0 / 5.0).abs() < 1e-12);
        assert!((r.top5_accuracy - 1.0).abs() < 1e-12);
        assert_eq!(r.confusion_matrix[2], [0, 0, 1, 0, 0, 0, 1, 0, 0, 0]);
        // Class 3 failed its only item: support 0, and it is in no average.
        assert_eq!(r.per_class[3].support, 0);
        assert_eq!(r.averaged_classes, [0, 1, 2, 6, 9]);
        // Latencies 2, 3, 4, 5, 7 ms.
        assert!((r.latency_ms.p50 - 4.0).abs() < 1e-9, "{:?}", r.latency_ms);
        assert!((r.throughput_rps - 250.0).abs() < 1e-9);
        let json = serde_json::to_value(r).unwrap();
        assert_eq!(
            json["predictions"][0],
            serde_json::json!({"id": "img/0.png", "true": 0, "pred": 0, "top5": [0, 6, 2]})
        );
        assert_eq!(json["model"], "fashion-mnist-cnn");
        assert!(json.get("top1").is_none());

        let rows = &evaluation.comparison.comparison;
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[1].agreement, rows[1].agreement_items), (1.0, 5));
        assert_eq!(rows[0].accuracy_diff, 0.0);
        // Each latency 1 ms more: p50 5 ms against 4.
        assert!((rows[1].p50_ratio.unwrap() - 1.25).abs() < 1e-9);
        let text = table::render(&evaluation);
        assert!(text.contains("comparison"), "{text}");
        assert!(text.contains("1 x 503: busy"), "{text}");
    }

    #[test]
    fn json_is_the_single_report_or_the_comparison() {
        let one = json::to_value(&sample_evaluation(1)).unwrap();
        for key in [
            "accuracy",
            "top5_accuracy",
            "confusion_matrix",
            "per_class",
            "macro_avg",
            "weighted_avg",
            "latency_ms",
            "throughput_rps",
            "failures",
            "predictions",
            "command",
        ] {
            assert!(one.get(key).is_some(), "{key} missing");
        }
        assert_eq!(one["per_class"][0]["label"], "T-shirt/top");
        let two = json::to_value(&sample_evaluation(2)).unwrap();
        assert_eq!(two["deployments"].as_array().unwrap().len(), 2);
        assert_eq!(two["deployments"][1]["model_bytes"], 1_700_000);
        assert_eq!(two["comparison"][1]["agreement"], 1.0);
    }

    #[test]
    fn the_heatmap_is_a_png() {
        let evaluation = sample_evaluation(1);
        let png = png::render(&evaluation.reports()[0]).unwrap();
        let image = image::load_from_memory(&png).unwrap();
        assert!(
            image.width() > 640 && image.height() > 640,
            "{}x{}",
            image.width(),
            image.height()
        );
    }
}
