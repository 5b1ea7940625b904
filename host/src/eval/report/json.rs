//! The report as JSON: one deployment's report at the top level (`accuracy`,
//! `per_class`, `predictions`, ...), or, comparing, `deployments` (each a
//! full report) and `comparison` (the table's rows); `command` either way.

use std::path::Path;

use serde_json::Value;

use super::Evaluation;
use crate::eval::Error;

pub fn to_value(evaluation: &Evaluation) -> Result<Value, serde_json::Error> {
    let mut value = match evaluation.reports() {
        [one] => serde_json::to_value(one)?,
        _ => serde_json::to_value(&evaluation.comparison)?,
    };
    if let Value::Object(map) = &mut value {
        map.insert("command".into(), Value::String(evaluation.command.clone()));
    }
    Ok(value)
}

pub fn write(path: &Path, evaluation: &Evaluation) -> Result<(), Error> {
    let value = to_value(evaluation).map_err(|e| Error::write(path, e))?;
    let mut text = serde_json::to_vec_pretty(&value).map_err(|e| Error::write(path, e))?;
    text.push(b'\n');
    std::fs::write(path, text).map_err(|e| Error::write(path, e))
}
