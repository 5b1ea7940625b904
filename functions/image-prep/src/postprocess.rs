//! From logits to the answer: softmax probabilities and the `k` best classes.

use serde::Serialize;

#[derive(Serialize, Debug, PartialEq)]
pub struct Prediction {
    pub index: usize,
    pub label: String,
    pub score: f32,
}

/// The `k` most probable classes, best first, each named by `label(index)`.
/// `k` larger than the number of classes returns them all.
pub fn top_k(logits: &[f32], k: usize, label: impl Fn(usize) -> String) -> Vec<Prediction> {
    let probabilities = softmax(logits);
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    let k = k.min(order.len());
    let by_score = |a: &usize, b: &usize| probabilities[*b].total_cmp(&probabilities[*a]);
    if k < order.len() && k > 0 {
        order.select_nth_unstable_by(k - 1, by_score);
    }
    order.truncate(k);
    order.sort_by(by_score);
    order
        .into_iter()
        .map(|index| Prediction {
            index,
            label: label(index),
            score: probabilities[index],
        })
        .collect()
}

/// Numerically stable softmax (shifted by the maximum logit).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let p = softmax(&[1.0, 3.0, 2.0, 5.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(p[3] > p[1] && p[1] > p[2] && p[2] > p[0]);
    }

    #[test]
    fn top_k_is_sorted_and_labelled() {
        let labels = ["a", "b", "c", "d"];
        let top = top_k(&[0.1, 2.0, -1.0, 1.0], 2, |i| labels[i].to_string());
        assert_eq!(top.len(), 2);
        assert_eq!((top[0].index, top[0].label.as_str()), (1, "b"));
        assert_eq!((top[1].index, top[1].label.as_str()), (3, "d"));
        assert!(top[0].score > top[1].score);
    }

    #[test]
    fn top_k_larger_than_classes_returns_all() {
        assert_eq!(top_k(&[0.0, 1.0, 2.0], 10, |_| String::new()).len(), 3);
    }
}
