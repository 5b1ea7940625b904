#!/usr/bin/env python3
"""Checks a `wasi-infer eval --json` report against an independent computation.

Every figure the report derives from its answers is recomputed here from its
`predictions` (each answered item's true class, predicted class and top 5)
with scikit-learn, and must equal the report's to 1e-9:

- accuracy (`accuracy_score`) and top-5 accuracy;
- per-class precision, recall, F1 and support, and the macro and weighted
  averages (`classification_report(output_dict=True, zero_division=0)`,
  whose averages are over the classes present among the true or predicted
  labels; a class in neither must be all zeros in the report);
- the confusion matrix (`confusion_matrix`, rows true, columns predicted),
  exactly, and its row-normalised form;
- the counts (items = answered + failed, one failure entry each);
- comparing (`deployments`, `comparison`): each deployment as above, and
  each comparison row's accuracy difference, macro F1, top-1 agreement with
  the first deployment (recomputed by item id) and latency/throughput ratios.

PNG files named with --png must be valid PNGs of a plausible size holding a
drawing (many colours), not a blank canvas.

Usage: check_report.py REPORT.json [--png FILE]...
Prints one line per check; exits 1 at the first that fails.
"""

import argparse
import json
import sys

import numpy as np
from PIL import Image
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix

TOLERANCE = 1e-9


class Failed(Exception):
    pass


def close(name, got, want):
    if abs(got - want) > TOLERANCE:
        raise Failed(f"{name}: the report says {got!r}, scikit-learn {want!r}")


def check_report(report, where):
    predictions = report["predictions"]
    y_true = [p["true"] for p in predictions]
    y_pred = [p["pred"] for p in predictions]
    classes = len(report["per_class"])
    if report["succeeded"] != len(predictions):
        raise Failed(f"{where}: succeeded {report['succeeded']} but {len(predictions)} predictions")
    if report["failed"] != len(report["failures"]):
        raise Failed(f"{where}: failed {report['failed']} but {len(report['failures'])} failures listed")
    if report["items"] != report["succeeded"] + report["failed"]:
        raise Failed(f"{where}: items is not answered + failed")
    if not predictions:
        raise Failed(f"{where}: no predictions to check")

    close(f"{where} accuracy", report["accuracy"], accuracy_score(y_true, y_pred))
    top5 = np.mean([p["true"] in p["top5"][:5] for p in predictions])
    close(f"{where} top5_accuracy", report["top5_accuracy"], float(top5))

    sk = classification_report(y_true, y_pred, output_dict=True, zero_division=0)
    for line in report["per_class"]:
        index = line["index"]
        key = str(index)
        if key in sk:
            want = sk[key]
            for ours, theirs in [("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")]:
                close(f"{where} class {index} {ours}", line[ours], want[theirs])
            if line["support"] != want["support"]:
                raise Failed(f"{where} class {index} support: {line['support']} != {want['support']}")
        elif any(line[k] != 0 for k in ["precision", "recall", "f1", "support"]):
            raise Failed(f"{where} class {index} occurs nowhere but is not all zeros: {line}")
    for ours, theirs in [("macro_avg", "macro avg"), ("weighted_avg", "weighted avg")]:
        for metric, sk_metric in [("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")]:
            close(f"{where} {ours} {metric}", report[ours][metric], sk[theirs][sk_metric])
        if report[ours]["support"] != sk[theirs]["support"]:
            raise Failed(f"{where} {ours} support differs")

    matrix = confusion_matrix(y_true, y_pred, labels=list(range(classes)))
    if report["confusion_matrix"] != matrix.tolist():
        raise Failed(f"{where} confusion matrix differs:\n{report['confusion_matrix']}\n{matrix.tolist()}")
    sums = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, sums, out=np.zeros(matrix.shape), where=sums != 0)
    got = np.array(report["confusion_matrix_normalized"])
    if got.shape != normalised.shape or np.max(np.abs(got - normalised)) > TOLERANCE:
        raise Failed(f"{where} row-normalised confusion matrix differs")

    latency = report["latency_ms"]
    if not 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]:
        raise Failed(f"{where} latency percentiles out of order: {latency}")
    if report["throughput_rps"] <= 0:
        raise Failed(f"{where} throughput is not positive")
    print(
        f"ok {where}: {len(predictions)} predictions; accuracy {report['accuracy']:.4f}, "
        f"macro F1 {report['macro_avg']['f1']:.4f}, {classes} classes, confusion matrix and "
        f"per-class scores equal scikit-learn's"
    )


def check_comparison(data):
    deployments = data["deployments"]
    rows = data["comparison"]
    if len(rows) != len(deployments):
        raise Failed("comparison: one row per deployment expected")
    for i, report in enumerate(deployments):
        check_report(report, f"deployment {i} ({report['model']})")
        for key in ["url", "model", "backend", "model_bytes"]:
            if key not in report:
                raise Failed(f"deployment {i}: no {key}")
    first = deployments[0]
    first_pred = {p["id"]: p["pred"] for p in first["predictions"]}
    for i, (report, row) in enumerate(zip(deployments, rows)):
        close(f"row {i} accuracy", row["accuracy"], report["accuracy"])
        close(f"row {i} accuracy_diff", row["accuracy_diff"], report["accuracy"] - first["accuracy"])
        close(f"row {i} macro_f1", row["macro_f1"], report["macro_avg"]["f1"])
        both = [(first_pred[p["id"]], p["pred"]) for p in report["predictions"] if p["id"] in first_pred]
        if row["agreement_items"] != len(both):
            raise Failed(f"row {i}: agreement over {row['agreement_items']} items, recomputed {len(both)}")
        agreement = sum(a == b for a, b in both) / len(both)
        close(f"row {i} agreement", row["agreement"], agreement)
        close(f"row {i} p50_ratio", row["p50_ratio"], report["latency_ms"]["p50"] / first["latency_ms"]["p50"])
        close(
            f"row {i} throughput_ratio",
            row["throughput_ratio"],
            report["throughput_rps"] / first["throughput_rps"],
        )
        print(f"ok comparison row {i} ({row['deployment']}): agreement {agreement:.4f} over {len(both)} items")


def check_png(path):
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise Failed(f"{path}: not a PNG")
    if not 5_000 < len(data) < 5_000_000:
        raise Failed(f"{path}: {len(data)} bytes, not a plausible size")
    image = Image.open(path)
    image.load()
    width, height = image.size
    if not (300 <= width <= 4000 and 300 <= height <= 4000):
        raise Failed(f"{path}: {width}x{height} pixels, not a plausible size")
    colours = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
    if len(colours) < 20:
        raise Failed(f"{path}: only {len(colours)} colours: not a drawing")
    print(f"ok {path}: a {width}x{height} PNG of {len(data)} bytes, {len(colours)} colours")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report")
    parser.add_argument("--png", action="append", default=[])
    args = parser.parse_args()
    with open(args.report) as f:
        data = json.load(f)
    try:
        if "deployments" in data:
            check_comparison(data)
        else:
            check_report(data, "report")
        for png in args.png:
            check_png(png)
    except Failed as e:
        print(f"FAILED: {e}")
        sys.exit(1)


if __name__ == "__main__":
    main()
