//! The statistics extension (Triton's `GET /v2/models[/<name>[/versions/<v>]]/stats`):
//! each version's counts and times, as the host counts them where wasi-nn's
//! `compute` meets the model (see docs/open-inference.md for what each
//! phase covers). Written as Triton writes its `ModelStatistics`, with the
//! parts this server does not have (the response cache, batch and memory
//! breakdowns) empty, so that clients that read them find them.

use serde::Serialize;
use wasi_infer_guest::models::{DurationStat, VersionStats};

#[derive(Debug, Serialize)]
pub struct StatisticsResponse {
    pub model_stats: Vec<ModelStats>,
}

#[derive(Debug, Serialize)]
pub struct ModelStats {
    pub name: String,
    pub version: String,
    pub last_inference: u64,
    pub inference_count: u64,
    pub execution_count: u64,
    pub inference_stats: InferStats,
    pub response_stats: serde_json::Map<String, serde_json::Value>,
    pub batch_stats: [(); 0],
    pub memory_usage: [(); 0],
}

#[derive(Debug, Serialize)]
pub struct InferStats {
    pub success: Stat,
    pub fail: Stat,
    pub queue: Stat,
    pub compute_input: Stat,
    pub compute_infer: Stat,
    pub compute_output: Stat,
    pub cache_hit: Stat,
    pub cache_miss: Stat,
}

#[derive(Debug, Default, Serialize)]
pub struct Stat {
    pub count: u64,
    pub ns: u64,
}

impl From<DurationStat> for Stat {
    fn from(s: DurationStat) -> Self {
        Self {
            count: s.count,
            ns: s.ns,
        }
    }
}

/// The statistics of model `name`'s `versions`.
pub fn of(name: &str, versions: Vec<VersionStats>) -> impl Iterator<Item = ModelStats> + '_ {
    versions.into_iter().map(move |v| ModelStats {
        name: name.to_string(),
        version: v.version,
        last_inference: v.last_inference,
        inference_count: v.inference_count,
        execution_count: v.execution_count,
        inference_stats: InferStats {
            success: v.success.into(),
            fail: v.fail.into(),
            queue: v.queue.into(),
            compute_input: v.compute_input.into(),
            compute_infer: v.compute_infer.into(),
            compute_output: v.compute_output.into(),
            cache_hit: Stat::default(),
            cache_miss: Stat::default(),
        },
        response_stats: serde_json::Map::new(),
        batch_stats: [],
        memory_usage: [],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_as_triton_writes_them() {
        let stat = |count, ns| DurationStat { count, ns };
        let v = VersionStats {
            version: "2".into(),
            last_inference: 1_700_000_000_000,
            inference_count: 8,
            execution_count: 2,
            success: stat(2, 900),
            fail: stat(1, 50),
            queue: stat(2, 100),
            compute_input: stat(3, 30),
            compute_infer: stat(2, 700),
            compute_output: stat(2, 20),
        };
        let response = StatisticsResponse {
            model_stats: of("m", vec![v]).collect(),
        };
        let json = serde_json::to_value(&response).unwrap();
        let s = &json["model_stats"][0];
        assert_eq!(
            (s["name"].as_str(), s["version"].as_str()),
            (Some("m"), Some("2"))
        );
        assert_eq!(s["inference_count"], 8);
        assert_eq!(s["execution_count"], 2);
        assert_eq!(s["last_inference"], 1_700_000_000_000u64);
        assert_eq!(
            s["inference_stats"]["success"],
            serde_json::json!({"count": 2, "ns": 900})
        );
        assert_eq!(s["inference_stats"]["fail"]["count"], 1);
        assert_eq!(s["inference_stats"]["compute_infer"]["ns"], 700);
        assert_eq!(
            s["inference_stats"]["cache_hit"],
            serde_json::json!({"count": 0, "ns": 0})
        );
        assert_eq!(s["batch_stats"], serde_json::json!([]));
    }
}
