//! What the answers add up to: the confusion matrix, scikit-learn's
//! `classification_report` (per-class precision, recall, F1 and support,
//! macro and weighted averages, `zero_division=0`), top-k accuracy, and
//! latency percentiles.
//!
//! The definitions are scikit-learn's, so that a report can be checked
//! against it (`tests/eval/check_report.py` does, to 1e-9):
//!
//! - precision = tp / (tp + fp), recall = tp / (tp + fn), F1 = 2 tp /
//!   (2 tp + fp + fn); each is 0 where its denominator is (`zero_division=0`:
//!   a class never predicted has precision 0, not an error);
//! - the averages are over the classes that occur among the true or the
//!   predicted labels (scikit-learn's default `labels`), so a class that is
//!   in neither does not pull the macro average down; per class, every class
//!   is listed (with support 0 where absent);
//! - macro: the plain mean of the per-class values; weighted: weighted by
//!   support.

use serde::Serialize;

/// Counts of (true class, predicted class): rows are the true class, columns
/// the predicted one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// The matrix of `pairs` (true, predicted) over `classes` classes; a pair
    /// past the classes is the caller's bug, and is counted in a grown
    /// matrix rather than lost.
    pub fn new(classes: usize, pairs: impl IntoIterator<Item = (usize, usize)>) -> Self {
        let mut counts = vec![vec![0u64; classes]; classes];
        for (truth, predicted) in pairs {
            let needed = truth.max(predicted) + 1;
            if needed > counts.len() {
                for row in &mut counts {
                    row.resize(needed, 0);
                }
                counts.resize(needed, vec![0; needed]);
            }
            counts[truth][predicted] += 1;
        }
        Self { counts }
    }

    pub fn classes(&self) -> usize {
        self.counts.len()
    }

    pub fn counts(&self) -> &[Vec<u64>] {
        &self.counts
    }

    /// Each row divided by its sum: the share of a true class predicted as
    /// each class (a row of zeros for a class with no items).
    pub fn row_normalised(&self) -> Vec<Vec<f64>> {
        self.counts
            .iter()
            .map(|row| {
                let sum: u64 = row.iter().sum();
                row.iter()
                    .map(|&c| if sum == 0 { 0.0 } else { c as f64 / sum as f64 })
                    .collect()
            })
            .collect()
    }

    fn true_positives(&self, class: usize) -> u64 {
        self.counts[class][class]
    }

    /// Items of this class (the row's sum).
    fn support(&self, class: usize) -> u64 {
        self.counts[class].iter().sum()
    }

    /// Items predicted as this class (the column's sum).
    fn predicted(&self, class: usize) -> u64 {
        self.counts.iter().map(|row| row[class]).sum()
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// The share of items on the diagonal (0 with no items).
    pub fn accuracy(&self) -> f64 {
        let total = self.total();
        let correct: u64 = (0..self.classes()).map(|c| self.true_positives(c)).sum();
        ratio(correct, total)
    }
}

/// One class's line of the report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClassScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

/// Per-class scores, in class-index order, and their two averages.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassificationReport {
    pub per_class: Vec<ClassScores>,
    pub macro_avg: ClassScores,
    pub weighted_avg: ClassScores,
    /// The classes the averages are over: those that occur among the true
    /// or the predicted labels.
    pub averaged_classes: Vec<usize>,
}

impl ClassificationReport {
    pub fn new(matrix: &ConfusionMatrix) -> Self {
        let per_class: Vec<ClassScores> = (0..matrix.classes())
            .map(|class| {
                let tp = matrix.true_positives(class);
                let support = matrix.support(class);
                let predicted = matrix.predicted(class);
                // 2tp + fp + fn = predicted + support.
                ClassScores {
                    precision: ratio(tp, predicted),
                    recall: ratio(tp, support),
                    f1: ratio(2 * tp, predicted + support),
                    support,
                }
            })
            .collect();
        let averaged_classes: Vec<usize> = (0..matrix.classes())
            .filter(|&c| matrix.support(c) > 0 || matrix.predicted(c) > 0)
            .collect();
        let averaged = || averaged_classes.iter().map(|&c| per_class[c]);
        let support: u64 = averaged().map(|s| s.support).sum();
        let count = averaged_classes.len() as f64;
        let mean = |value: fn(&ClassScores) -> f64| {
            if averaged_classes.is_empty() {
                0.0
            } else {
                averaged().map(|s| value(&s)).sum::<f64>() / count
            }
        };
        let weighted = |value: fn(&ClassScores) -> f64| {
            if support == 0 {
                0.0
            } else {
                averaged()
                    .map(|s| value(&s) * s.support as f64)
                    .sum::<f64>()
                    / support as f64
            }
        };
        let macro_avg = ClassScores {
            precision: mean(|s| s.precision),
            recall: mean(|s| s.recall),
            f1: mean(|s| s.f1),
            support,
        };
        let weighted_avg = ClassScores {
            precision: weighted(|s| s.precision),
            recall: weighted(|s| s.recall),
            f1: weighted(|s| s.f1),
            support,
        };
        Self {
            per_class,
            macro_avg,
            weighted_avg,
            averaged_classes,
        }
    }
}

/// The share of items whose true class is among their first `k` predictions
/// (each item's predictions best first).
pub fn top_k_accuracy<'a>(items: impl IntoIterator<Item = (usize, &'a [usize])>, k: usize) -> f64 {
    let (mut hits, mut total) = (0u64, 0u64);
    for (truth, ranked) in items {
        total += 1;
        if ranked.iter().take(k).any(|&p| p == truth) {
            hits += 1;
        }
    }
    ratio(hits, total)
}

/// The `q`-th percentile (0..=100) of ascending `sorted` values, interpolated
/// linearly between the two nearest ranks (NumPy's default method); 0 for
/// no values.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    match sorted {
        [] => 0.0,
        [only] => *only,
        _ => {
            let rank = q.clamp(0.0, 100.0) / 100.0 * (sorted.len() - 1) as f64;
            let below = rank.floor() as usize;
            let above = (below + 1).min(sorted.len() - 1);
            let fraction = rank - below as f64;
            sorted[below] + (sorted[above] - sorted[below]) * fraction
        }
    }
}

/// `numerator / denominator`, 0 when the denominator is (scikit-learn's
/// `zero_division=0`).
fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// Four classes; class 2 is never predicted and class 3 never occurs:
    ///
    /// ```text
    /// true: 0 0 0 1 1 2 2
    /// pred: 0 0 1 1 0 1 0
    /// ```
    ///
    /// By hand: class 0: tp 2, predicted 4, support 3: precision 1/2, recall
    /// 2/3, F1 4/7. Class 1: tp 1, predicted 3, support 2: 1/3, 1/2, 2/5.
    /// Class 2: tp 0, predicted 0, support 2: precision 0 (zero_division),
    /// recall 0, F1 0. Class 3 occurs nowhere: left out of the averages
    /// (scikit-learn's default labels are those present).
    #[test]
    fn report_matches_scikit_learn_by_hand() {
        let truth = [0, 0, 0, 1, 1, 2, 2];
        let pred = [0, 0, 1, 1, 0, 1, 0];
        let matrix = ConfusionMatrix::new(4, truth.into_iter().zip(pred));
        assert_eq!(
            matrix.counts(),
            [
                vec![2, 1, 0, 0],
                vec![1, 1, 0, 0],
                vec![1, 1, 0, 0],
                vec![0, 0, 0, 0]
            ]
        );
        assert!(close(matrix.accuracy(), 3.0 / 7.0));
        let report = ClassificationReport::new(&matrix);
        let want = [
            (1.0 / 2.0, 2.0 / 3.0, 4.0 / 7.0, 3),
            (1.0 / 3.0, 1.0 / 2.0, 2.0 / 5.0, 2),
            (0.0, 0.0, 0.0, 2),
            (0.0, 0.0, 0.0, 0),
        ];
        for (class, (p, r, f, s)) in want.into_iter().enumerate() {
            let got = report.per_class[class];
            assert!(
                close(got.precision, p) && close(got.recall, r) && close(got.f1, f),
                "class {class}: {got:?}"
            );
            assert_eq!(got.support, s, "class {class}");
        }
        assert_eq!(report.averaged_classes, [0, 1, 2]);
        let macro_avg = report.macro_avg;
        assert!(close(macro_avg.precision, (0.5 + 1.0 / 3.0) / 3.0));
        assert!(close(macro_avg.recall, (2.0 / 3.0 + 0.5) / 3.0));
        assert!(close(macro_avg.f1, (4.0 / 7.0 + 0.4) / 3.0));
        assert_eq!(macro_avg.support, 7);
        let weighted = report.weighted_avg;
        assert!(close(weighted.precision, (3.0 * 0.5 + 2.0 / 3.0) / 7.0));
        assert!(close(weighted.recall, (2.0 + 1.0) / 7.0));
        assert!(close(weighted.f1, (3.0 * 4.0 / 7.0 + 2.0 * 0.4) / 7.0));
        // The weighted recall is the accuracy, as in scikit-learn.
        assert!(close(weighted.recall, matrix.accuracy()));

        let normalised = matrix.row_normalised();
        assert!(close(normalised[0][0], 2.0 / 3.0) && close(normalised[2][1], 0.5));
        assert_eq!(normalised[3], [0.0; 4]);
    }

    /// A class predicted but never true: precision 0 (predicted, never
    /// right), recall 0 by zero_division, and it counts in the averages.
    #[test]
    fn a_class_only_predicted_is_averaged() {
        let matrix = ConfusionMatrix::new(3, [(0, 0), (0, 2), (1, 1)]);
        let report = ClassificationReport::new(&matrix);
        assert_eq!(report.averaged_classes, [0, 1, 2]);
        let scores = report.per_class[2];
        assert_eq!(
            (scores.precision, scores.recall, scores.f1),
            (0.0, 0.0, 0.0)
        );
        assert!(close(report.macro_avg.recall, (0.5 + 1.0) / 3.0));
    }

    #[test]
    fn nothing_to_report_is_zeros_not_nan() {
        let matrix = ConfusionMatrix::new(2, []);
        let report = ClassificationReport::new(&matrix);
        assert_eq!(matrix.accuracy(), 0.0);
        assert_eq!(report.macro_avg.f1, 0.0);
        assert_eq!(report.weighted_avg.precision, 0.0);
        assert!(report.averaged_classes.is_empty());
    }

    #[test]
    fn a_pair_past_the_classes_grows_the_matrix() {
        let matrix = ConfusionMatrix::new(2, [(0, 3)]);
        assert_eq!(matrix.classes(), 4);
        assert_eq!(matrix.total(), 1);
    }

    #[test]
    fn top_k() {
        let ranked: [&[usize]; 3] = [&[1, 0, 2], &[2, 1, 0], &[0]];
        let items = [0usize, 0, 0].into_iter().zip(ranked);
        assert!(close(top_k_accuracy(items.clone(), 1), 1.0 / 3.0));
        assert!(close(top_k_accuracy(items.clone(), 2), 2.0 / 3.0));
        assert!(close(top_k_accuracy(items, 5), 1.0));
        assert_eq!(top_k_accuracy([], 5), 0.0);
    }

    /// numpy.percentile([1, 2, 3, 4, 10], [50, 90, 99]) = 3, 7.6, 9.76.
    #[test]
    fn percentiles_interpolate_as_numpy() {
        let values = [1.0, 2.0, 3.0, 4.0, 10.0];
        assert!(close(percentile(&values, 50.0), 3.0));
        assert!(close(percentile(&values, 90.0), 7.6));
        assert!(close(percentile(&values, 99.0), 9.76));
        assert_eq!(percentile(&[], 50.0), 0.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&values, 100.0), 10.0);
    }
}
