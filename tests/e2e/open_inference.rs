//! The Open Inference Protocol (KServe v2 REST) that `functions/open-inference`
//! serves at `/v2/...`, held to `docs/open-inference.md`: NVIDIA's own client
//! (`tritonclient[http]`, in `tests/oip/tritonclient_check.py`) against the
//! real server, then the protocol and its errors over plain HTTP.

use std::path::PathBuf;
use std::process::Command;

use image::imageops::{self, FilterType};
use serde_json::{Value, json};

use crate::classify::reference;
use crate::server::{Reply, Server, photo, root};

const CLASSIFIER: &str = "efficientnet-lite0";
const EMBEDDER: &str = "all-minilm-l6-v2";
const IMAGE_SHAPE: [usize; 4] = [1, 3, 224, 224];
/// 3 x 224 x 224 f32s.
const IMAGE_BYTES: usize = 602_112;
/// "hello world" in all-MiniLM-L6-v2's vocabulary: [CLS] hello world [SEP].
const TOKEN_IDS: [i64; 4] = [101, 7592, 2088, 102];

/// The Python that has `tests/oip/requirements.txt` installed: the one
/// tests/run.sh names in `WASI_INFER_TEST_PYTHON`, else its venv.
pub fn test_python() -> PathBuf {
    if let Some(python) = std::env::var_os("WASI_INFER_TEST_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = root().join("target/oip-venv/bin/python");
    assert!(
        venv.exists(),
        "tritonclient is not installed: run tests/run.sh, which installs \
         tests/oip/requirements.txt into target/oip-venv (or set WASI_INFER_TEST_PYTHON \
         to a Python that has them)"
    );
    venv
}

/// tritonclient talks to the server as it talks to Triton: health, metadata,
/// JSON and binary inferences on the photo and text models, and errors. The
/// script prints one line per check (run with `--nocapture` to see them).
#[test]
fn tritonclient_session() {
    let python = test_python();
    let server = Server::start(&[]);
    let output = Command::new(&python)
        .current_dir(root())
        .arg(root().join("tests/oip/tritonclient_check.py"))
        .arg(server.address())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; run tests/run.sh", python.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    if !stderr.is_empty() {
        println!("its stderr:\n{stderr}");
    }
    assert!(
        output.status.success(),
        "tests/oip/tritonclient_check.py failed ({}):\n{stdout}\n{stderr}\nthe server's log:\n{}",
        output.status,
        server.log()
    );
}

#[test]
fn server_and_model_metadata_health_and_readiness() {
    let server = Server::start(&[]);

    let v2 = ok_json(&server.get("/v2"));
    assert_eq!(v2["name"], "wasi-infer", "{v2}");
    assert!(
        v2["version"].as_str().is_some_and(|v| !v.is_empty()),
        "{v2}"
    );
    let extensions = v2["extensions"].as_array().expect("extensions");
    assert!(extensions.contains(&json!("binary_tensor_data")), "{v2}");

    assert_eq!(
        ok_json(&server.get("/v2/health/live")),
        json!({"live": true})
    );
    assert_eq!(
        ok_json(&server.get("/v2/health/ready")),
        json!({"ready": true})
    );

    // The image classifier: the ONNX graph's batch is dynamic, and its
    // model.toml pins it at 1, which is what the server takes.
    let meta = ok_json(&server.get("/v2/models/efficientnet-lite0"));
    assert_eq!(meta["name"], CLASSIFIER, "{meta}");
    assert_eq!(meta["versions"], json!(["1"]), "{meta}");
    assert_eq!(tensors(&meta["inputs"]), ["input FP32 [1,3,224,224]"]);
    assert_eq!(tensors(&meta["outputs"]), ["logits FP32 [1,1000]"]);
    // `platform` is the backend the server runs the model on, as its log says.
    let platform = meta["platform"].as_str().expect("platform");
    assert!(
        server
            .log()
            .contains(&format!("model={CLASSIFIER} backend={platform}")),
        "platform {platform:?} is not the backend in the log:\n{}",
        server.log()
    );
    // Its one version, by number; there is no other.
    assert_eq!(
        ok_json(&server.get("/v2/models/efficientnet-lite0/versions/1")),
        meta
    );
    server
        .get("/v2/models/efficientnet-lite0/versions/2")
        .assert_error(404);
    let ready = json!({"name": CLASSIFIER, "ready": true});
    assert_eq!(
        ok_json(&server.get("/v2/models/efficientnet-lite0/ready")),
        ready
    );
    assert_eq!(
        ok_json(&server.get("/v2/models/efficientnet-lite0/versions/1/ready")),
        ready
    );

    // The text model: INT64 token ids, batch and sequence length dynamic.
    let meta = ok_json(&server.get("/v2/models/all-minilm-l6-v2"));
    assert_eq!(meta["name"], EMBEDDER, "{meta}");
    assert_eq!(meta["versions"], json!(["1"]), "{meta}");
    assert_eq!(
        sorted(tensors(&meta["inputs"])),
        [
            "attention_mask INT64 [-1,-1]",
            "input_ids INT64 [-1,-1]",
            "token_type_ids INT64 [-1,-1]",
        ]
    );
    assert_eq!(
        sorted(tensors(&meta["outputs"])),
        [
            "last_hidden_state FP32 [-1,-1,384]",
            "sentence_embedding FP32 [-1,384]",
        ]
    );
    assert_eq!(
        ok_json(&server.get("/v2/models/all-minilm-l6-v2/ready")),
        json!({"name": EMBEDDER, "ready": true})
    );
}

#[test]
fn a_photo_is_classified_from_json_nested_json_and_binary_tensors() {
    let server = Server::start(&[]);
    let path = "/v2/models/efficientnet-lite0/infer";
    let image = preprocess("chelsea.png");

    // Flat data, no `outputs`: every output, as JSON; the id is echoed.
    let response = ok_json(&post_json(
        &server,
        path,
        &json!({"id": "flat", "inputs": [image_input(json!(image))]}),
    ));
    assert_eq!(response["model_name"], CLASSIFIER);
    assert_eq!(response["model_version"], "1");
    assert_eq!(response["id"], "flat");
    let outputs = response["outputs"].as_array().expect("outputs");
    assert_eq!(outputs.len(), 1, "{response}");
    assert_eq!(outputs[0]["name"], "logits");
    assert_eq!(outputs[0]["datatype"], "FP32");
    assert_eq!(outputs[0]["shape"], json!([1, 1000]));
    let logits = json_f32s(&outputs[0]);
    assert_eq!(logits.len(), 1000);
    assert_reference_top1(&logits, "chelsea.png");

    // Nested [1][3][224][224] data, to the version's path; without an id, none
    // is echoed.
    let nested: Vec<Vec<Vec<Vec<f32>>>> = vec![
        image
            .chunks(224 * 224)
            .map(|plane| plane.chunks(224).map(<[f32]>::to_vec).collect())
            .collect(),
    ];
    let response = ok_json(&post_json(
        &server,
        "/v2/models/efficientnet-lite0/versions/1/infer",
        &json!({"inputs": [image_input(json!(nested))]}),
    ));
    assert!(response.get("id").is_none(), "{response}");
    assert_close(&json_f32s(output(&response, "logits")), &logits);

    // Binary in, binary out.
    let bytes: Vec<u8> = image.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(bytes.len(), IMAGE_BYTES);
    let binary_input = json!({"name": "input", "datatype": "FP32", "shape": IMAGE_SHAPE,
        "parameters": {"binary_data_size": IMAGE_BYTES}});
    let reply = post_binary(
        &server,
        path,
        &json!({"id": "binary", "inputs": [binary_input],
            "outputs": [{"name": "logits", "parameters": {"binary_data": true}}]}),
        &bytes,
    );
    let (response, binary) = split_binary(&reply);
    assert_eq!(response["id"], "binary");
    let logits_out = output(&response, "logits");
    assert_eq!(logits_out["datatype"], "FP32");
    assert_eq!(logits_out["shape"], json!([1, 1000]));
    assert_eq!(
        logits_out["parameters"]["binary_data_size"], 4000,
        "{response}"
    );
    assert!(logits_out.get("data").is_none(), "{response}");
    assert_eq!(binary.len(), 1);
    assert_eq!(binary[0].0, "logits");
    let binary_logits = f32s(&binary[0].1);
    assert_close(&binary_logits, &logits);
    assert_reference_top1(&binary_logits, "chelsea.png");

    // JSON in, binary out for every output (the request's binary_data_output).
    let reply = post_json(
        &server,
        path,
        &json!({"parameters": {"binary_data_output": true},
            "inputs": [image_input(json!(image))]}),
    );
    let (_, binary) = split_binary(&reply);
    assert_eq!(binary.len(), 1);
    assert_close(&f32s(&binary[0].1), &logits);

    // Binary in, JSON out: the output named, its binary_data false.
    let reply = post_binary(
        &server,
        path,
        &json!({"id": "42", "inputs": [binary_input],
            "outputs": [{"name": "logits", "parameters": {"binary_data": false}}]}),
        &bytes,
    );
    let response = ok_json(&reply);
    assert_eq!(response["id"], "42");
    assert_close(&json_f32s(output(&response, "logits")), &logits);
}

#[test]
fn token_ids_are_embedded_as_int64_with_the_outputs_asked_for() {
    let server = Server::start(&[]);
    let path = "/v2/models/all-minilm-l6-v2/infer";

    // No `outputs`: both of the model's, as JSON.
    let response = ok_json(&post_json(
        &server,
        path,
        &json!({"id": "hello", "inputs": token_inputs(1)}),
    ));
    assert_eq!(response["model_name"], EMBEDDER);
    assert_eq!(response["id"], "hello");
    let names: Vec<&str> = output_names(&response);
    assert_eq!(
        sorted(names.iter().map(|n| n.to_string()).collect()),
        ["last_hidden_state", "sentence_embedding"]
    );
    let hidden = output(&response, "last_hidden_state");
    assert_eq!(hidden["datatype"], "FP32");
    assert_eq!(hidden["shape"], json!([1, 4, 384]));
    assert_eq!(json_f32s(hidden).len(), 4 * 384);
    let embedding_out = output(&response, "sentence_embedding");
    assert_eq!(embedding_out["datatype"], "FP32");
    assert_eq!(embedding_out["shape"], json!([1, 384]));
    let embedding = json_f32s(embedding_out);
    assert_eq!(embedding.len(), 384);
    let norm = embedding.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "L2 norm {norm}");

    // One output asked for: only that one.
    let response = ok_json(&post_json(
        &server,
        path,
        &json!({"inputs": token_inputs(1), "outputs": [{"name": "sentence_embedding"}]}),
    ));
    assert_eq!(output_names(&response), ["sentence_embedding"]);
    assert_close(
        &json_f32s(output(&response, "sentence_embedding")),
        &embedding,
    );

    // Both, in the order asked for.
    let response = ok_json(&post_json(
        &server,
        path,
        &json!({"inputs": token_inputs(1),
            "outputs": [{"name": "sentence_embedding"}, {"name": "last_hidden_state"}]}),
    ));
    assert_eq!(
        output_names(&response),
        ["sentence_embedding", "last_hidden_state"]
    );

    // A batch of two (the dynamic dimension): the same sentence twice.
    let response = ok_json(&post_json(
        &server,
        path,
        &json!({"inputs": token_inputs(2), "outputs": [{"name": "sentence_embedding"}]}),
    ));
    let batch = output(&response, "sentence_embedding");
    assert_eq!(batch["shape"], json!([2, 384]));
    let batch = json_f32s(batch);
    assert_close(&batch[..384], &embedding);
    assert_close(&batch[384..], &embedding);

    // The ids as binary INT64, the embedding back as binary FP32.
    let ids: Vec<u8> = TOKEN_IDS.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mask: Vec<u8> = [1i64; 4].iter().flat_map(|v| v.to_le_bytes()).collect();
    let types = vec![0u8; 4 * 8];
    let binary = |name: &str| {
        json!({"name": name, "datatype": "INT64", "shape": [1, 4],
            "parameters": {"binary_data_size": 32}})
    };
    let reply = post_binary(
        &server,
        path,
        &json!({"inputs": [binary("input_ids"), binary("attention_mask"), binary("token_type_ids")],
            "outputs": [{"name": "sentence_embedding", "parameters": {"binary_data": true}}]}),
        &[ids, mask, types].concat(),
    );
    let (response, tensors) = split_binary(&reply);
    assert_eq!(output_names(&response), ["sentence_embedding"]);
    assert_eq!(tensors.len(), 1);
    assert_close(&f32s(&tensors[0].1), &embedding);
}

#[test]
fn requests_that_do_not_fit_get_json_errors_with_the_documented_status() {
    let server = Server::start(&[]);
    let infer = "/v2/models/efficientnet-lite0/infer";
    let zeros = vec![0.0f32; 3 * 224 * 224];
    let good = json!({"inputs": [image_input(json!(zeros))]});

    // What does not exist: 404.
    let message = post_json(&server, "/v2/models/no-such-model/infer", &good).assert_error(404);
    assert_names(&message, &["no-such-model"]);
    let message = server.get("/v2/models/no-such-model").assert_error(404);
    assert_names(&message, &["no-such-model"]);
    server
        .get("/v2/models/no-such-model/ready")
        .assert_error(404);
    post_json(
        &server,
        "/v2/models/efficientnet-lite0/versions/2/infer",
        &good,
    )
    .assert_error(404);
    server.get("/v2/nothing").assert_error(404);
    server
        .get("/v2/models/efficientnet-lite0/nothing")
        .assert_error(404);

    // A wrong method: 405, with Allow.
    let reply = server.get(infer);
    reply.assert_error(405);
    assert!(
        reply.allow.as_deref().is_some_and(|a| a.contains("POST")),
        "Allow: {:?}",
        reply.allow
    );
    let reply = server.send("POST", "/v2/models/efficientnet-lite0", &[], b"");
    reply.assert_error(405);
    assert!(
        reply.allow.as_deref().is_some_and(|a| a.contains("GET")),
        "Allow: {:?}",
        reply.allow
    );
    server
        .send("POST", "/v2/health/ready", &[], b"")
        .assert_error(405);

    // Requests that do not fit the model: 400, naming what is wrong.
    let bad =
        |input: Value| post_json(&server, infer, &json!({"inputs": [input]})).assert_error(400);
    let message = bad(
        json!({"name": "input", "datatype": "INT32", "shape": IMAGE_SHAPE,
        "data": vec![0i32; 3 * 224 * 224]}),
    );
    assert_names(&message, &["INT32", "FP32"]);
    let message = bad(
        json!({"name": "input", "datatype": "FP32", "shape": [1, 3, 224, 225],
        "data": vec![0.0f32; 3 * 224 * 225]}),
    );
    assert_names(&message, &["225", "224"]);
    let message = bad(
        json!({"name": "input", "datatype": "FP32", "shape": IMAGE_SHAPE,
        "data": vec![0.0f32; 100]}),
    );
    assert_names(&message, &["100", "150528", "150,528"]);

    let embed = "/v2/models/all-minilm-l6-v2/infer";
    let mut inputs = token_inputs(1);
    inputs.as_array_mut().unwrap().pop(); // token_type_ids
    let message = post_json(&server, embed, &json!({"inputs": inputs})).assert_error(400);
    assert_names(&message, &["token_type_ids"]);
    let mut inputs = token_inputs(1);
    inputs.as_array_mut().unwrap().push(
        json!({"name": "position_ids", "datatype": "INT64", "shape": [1, 4], "data": [0, 1, 2, 3]}),
    );
    let message = post_json(&server, embed, &json!({"inputs": inputs})).assert_error(400);
    assert_names(&message, &["position_ids"]);
    let message = post_json(
        &server,
        embed,
        &json!({"inputs": token_inputs(1), "outputs": [{"name": "pooler_output"}]}),
    )
    .assert_error(400);
    assert_names(&message, &["pooler_output"]);

    let message = server
        .send(
            "POST",
            infer,
            &[("content-type", "application/json")],
            b"this is not JSON",
        )
        .assert_error(400);
    assert_names(&message, &["JSON", "json", "inference request", "expected"]);

    // Binary data that does not add up: 400.
    let header = json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": IMAGE_SHAPE,
        "parameters": {"binary_data_size": IMAGE_BYTES}}]});
    let zero_bytes = vec![0u8; IMAGE_BYTES + 4];
    let message =
        post_binary(&server, infer, &header, &zero_bytes[..IMAGE_BYTES - 4]).assert_error(400);
    assert_names(&message, &["binary_data_size", "602112", "602108", "bytes"]);
    let message = post_binary(&server, infer, &header, &zero_bytes).assert_error(400);
    assert_names(&message, &["binary_data_size", "602112", "602116", "bytes"]);
    // Sizes that add up, but not to the shape's 150528 elements.
    let short = json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": IMAGE_SHAPE,
        "parameters": {"binary_data_size": IMAGE_BYTES - 4}}]});
    let message =
        post_binary(&server, infer, &short, &zero_bytes[..IMAGE_BYTES - 4]).assert_error(400);
    assert_names(&message, &["602108", "150527", "150528", "150,528"]);
    // A JSON part longer than the whole body.
    let json_part = serde_json::to_vec(&header).unwrap();
    let message = server
        .send(
            "POST",
            infer,
            &[
                ("content-type", "application/octet-stream"),
                ("inference-header-content-length", "1000000"),
            ],
            &json_part,
        )
        .assert_error(400);
    assert_names(
        &message,
        &[
            "Inference-Header-Content-Length",
            "inference-header-content-length",
            "1000000",
        ],
    );

    // Still serving.
    let response = ok_json(&post_json(&server, infer, &good));
    assert_eq!(output_names(&response), ["logits"]);
}

/// `models/efficientnet-lite0/model.toml`'s [preprocess], rounded as
/// `reference-top5.json` was made: the shorter side resized to 256
/// (bilinear; the longer side to the nearest pixel), the centre 224x224 (its
/// offset rounded down), `(p - 127) / 128`, NCHW.
/// Every datatype wasi-nn carries, through a model of `Identity` nodes (the
/// one `tests/e2e/tensors.rs` makes), as JSON and as binary tensors: what
/// goes in comes out, value for value and byte for byte.
#[test]
fn every_wasi_nn_datatype_round_trips_as_json_and_binary() {
    // The datatype, the model's tensor-name suffix, and four values each
    // exactly representable in it (extremes included), with their bytes.
    let le = |values: &[f64], encode: &dyn Fn(f64) -> Vec<u8>| -> Vec<u8> {
        values.iter().flat_map(|&v| encode(v)).collect()
    };
    let cases: Vec<(&str, &str, Value, Vec<u8>)> = vec![
        {
            let v = [1.5, -2.0, 65504.0, 0.25];
            let bytes = le(&v, &|x| half::f16::from_f64(x).to_le_bytes().to_vec());
            ("FP16", "f16", json!(v), bytes)
        },
        {
            let v = [1.0, -2.5, 256.0, 0.0078125];
            let bytes = le(&v, &|x| half::bf16::from_f64(x).to_le_bytes().to_vec());
            ("BF16", "bf16", json!(v), bytes)
        },
        {
            let v = [0.5, -1.25, 1048576.0, 3.0];
            let bytes = le(&v, &|x| (x as f32).to_le_bytes().to_vec());
            ("FP32", "f32", json!(v), bytes)
        },
        {
            let v = [1e300, -2.5, 0.1, 42.0];
            let bytes = le(&v, &|x| x.to_le_bytes().to_vec());
            ("FP64", "f64", json!(v), bytes)
        },
        ("UINT8", "u8", json!([0, 1, 254, 255]), vec![0, 1, 254, 255]),
        {
            let v = [i32::MIN, i32::MAX, 0, -1];
            let bytes = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            ("INT32", "i32", json!(v), bytes)
        },
        {
            // Past 2^53, where a float would round: integers stay integers.
            let v = [-9_007_199_254_740_993_i64, 9_007_199_254_740_993, 0, 1];
            let bytes = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            ("INT64", "i64", json!(v), bytes)
        },
    ];
    let suffixes: Vec<&str> = cases.iter().map(|c| c.1).collect();
    let model = crate::tensors::identity_model(&suffixes);
    let app = tempfile::tempdir().unwrap();
    let model_dir = app.path().join("models/identities");
    std::fs::create_dir_all(&model_dir).unwrap();
    for file in ["model.onnx", "model.toml"] {
        std::fs::copy(model.path().join(file), model_dir.join(file)).unwrap();
    }
    let wasm = root().join("target/functions/wasm32-wasip2/release/open_inference.wasm");
    let manifest = app.path().join("spin.toml");
    std::fs::write(
        &manifest,
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"datatypes\"\n\
             [[trigger.http]]\nroute = \"/v2/...\"\ncomponent = \"oip\"\n\
             [component.oip]\nsource = {:?}\nai_models = [\"identities\"]\n",
            wasm.display().to_string()
        ),
    )
    .unwrap();
    let server = Server::start(&[
        "--manifest",
        manifest.to_str().unwrap(),
        "--backend",
        "onnxruntime",
    ]);
    let path = "/v2/models/identities/infer";

    let meta = ok_json(&server.get("/v2/models/identities"));
    for (datatype, suffix, ..) in &cases {
        let input = meta["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == format!("in_{suffix}"))
            .unwrap_or_else(|| panic!("no in_{suffix} in {meta}"));
        assert_eq!(input["datatype"], *datatype, "{meta}");
        assert_eq!(input["shape"], json!([-1, -1]), "{meta}");
    }

    // JSON in, JSON out.
    let inputs: Vec<Value> = cases
        .iter()
        .map(|(datatype, suffix, data, _)| {
            json!({"name": format!("in_{suffix}"), "datatype": datatype, "shape": [2, 2], "data": data})
        })
        .collect();
    let response = ok_json(&post_json(&server, path, &json!({ "inputs": inputs })));
    for (datatype, suffix, data, _) in &cases {
        let out = output(&response, &format!("out_{suffix}"));
        assert_eq!(out["datatype"], *datatype, "{out}");
        assert_eq!(out["shape"], json!([2, 2]), "{out}");
        let got = out["data"].as_array().unwrap();
        let want = data.as_array().unwrap();
        for (got, want) in got.iter().zip(want) {
            // Integers exactly as integers; floats as the same number.
            if datatype.contains("INT") {
                assert_eq!(got, want, "{datatype}");
            } else {
                assert_eq!(got.as_f64(), want.as_f64(), "{datatype}: {got} for {want}");
            }
        }
    }

    // Binary in, binary out.
    let mut tensors = Vec::new();
    let inputs: Vec<Value> = cases
        .iter()
        .map(|(datatype, suffix, _, bytes)| {
            tensors.extend_from_slice(bytes);
            json!({"name": format!("in_{suffix}"), "datatype": datatype, "shape": [2, 2],
                   "parameters": {"binary_data_size": bytes.len()}})
        })
        .collect();
    let request = json!({"inputs": inputs, "parameters": {"binary_data_output": true}});
    let (response, outputs) = split_binary(&post_binary(&server, path, &request, &tensors));
    assert_eq!(outputs.len(), cases.len(), "{response}");
    for (datatype, suffix, _, bytes) in &cases {
        let name = format!("out_{suffix}");
        let (_, got) = outputs.iter().find(|(n, _)| *n == name).unwrap();
        assert_eq!(got, bytes, "{datatype}: bytes changed");
        assert_eq!(output(&response, &name)["datatype"], *datatype);
    }
}

fn preprocess(name: &str) -> Vec<f32> {
    let rgb = image::load_from_memory(&photo(name)).unwrap().to_rgb8();
    let (width, height) = rgb.dimensions();
    let short = f64::from(width.min(height));
    let side = |length: u32| (f64::from(length) * 256.0 / short).round() as u32;
    let (width, height) = (side(width), side(height));
    let resized = imageops::resize(&rgb, width, height, FilterType::Triangle);
    let crop =
        imageops::crop_imm(&resized, (width - 224) / 2, (height - 224) / 2, 224, 224).to_image();
    let mut tensor = Vec::with_capacity(3 * 224 * 224);
    for channel in 0..3 {
        for pixel in crop.pixels() {
            tensor.push((f32::from(pixel[channel]) - 127.0) / 128.0);
        }
    }
    tensor
}

/// The classifier's input with JSON `data`, flat or nested.
fn image_input(data: Value) -> Value {
    json!({"name": "input", "datatype": "FP32", "shape": IMAGE_SHAPE, "data": data})
}

/// all-MiniLM-L6-v2's three inputs for `batch` copies of [`TOKEN_IDS`]: the
/// ids as nested rows, the mask and the token types flat.
fn token_inputs(batch: usize) -> Value {
    let n = TOKEN_IDS.len();
    json!([
        {"name": "input_ids", "datatype": "INT64", "shape": [batch, n],
         "data": vec![TOKEN_IDS.to_vec(); batch]},
        {"name": "attention_mask", "datatype": "INT64", "shape": [batch, n],
         "data": vec![1; batch * n]},
        {"name": "token_type_ids", "datatype": "INT64", "shape": [batch, n],
         "data": vec![0; batch * n]},
    ])
}

/// The photo's top-1 class is the reference's (`reference-top5.json`, the
/// fp32 model).
fn assert_reference_top1(logits: &[f32], name: &str) {
    let top = logits
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i as u64)
        .unwrap();
    let expected = reference()[name][0].0;
    assert_eq!(
        top, expected,
        "{name}: top-1 {top}, the reference's {expected}"
    );
}

fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= 1e-4, "values differ by up to {worst}");
}

/// An error message names the problem: it holds one of `needles`.
fn assert_names(message: &str, needles: &[&str]) {
    assert!(
        needles.iter().any(|n| message.contains(n)),
        "the message {message:?} names none of {needles:?}"
    );
}

fn post_json(server: &Server, path: &str, body: &Value) -> Reply {
    server.send(
        "POST",
        path,
        &[("content-type", "application/json")],
        &serde_json::to_vec(body).unwrap(),
    )
}

/// A binary tensor data request: the JSON, its length in
/// `Inference-Header-Content-Length`, then the tensors' bytes.
fn post_binary(server: &Server, path: &str, json: &Value, tensors: &[u8]) -> Reply {
    let mut body = serde_json::to_vec(json).unwrap();
    let length = body.len().to_string();
    body.extend_from_slice(tensors);
    server.send(
        "POST",
        path,
        &[
            ("content-type", "application/octet-stream"),
            ("inference-header-content-length", &length),
        ],
        &body,
    )
}

/// A 200 JSON answer.
fn ok_json(reply: &Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(
        reply
            .content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("application/json")),
        "content type {:?}",
        reply.content_type
    );
    reply.json()
}

/// A 200 answer with binary outputs: its JSON part, and the bytes of each
/// output that has a `binary_data_size`, in order.
fn split_binary(reply: &Reply) -> (Value, Vec<(String, Vec<u8>)>) {
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/octet-stream")
    );
    let length: usize = reply
        .header("inference-header-content-length")
        .expect("an Inference-Header-Content-Length header")
        .parse()
        .expect("Inference-Header-Content-Length is a number");
    assert!(
        length <= reply.bytes.len(),
        "{length} > {}",
        reply.bytes.len()
    );
    let (json, mut rest) = reply.bytes.split_at(length);
    let json: Value = serde_json::from_slice(json).unwrap_or_else(|e| {
        panic!(
            "the JSON part is not JSON ({e}): {}",
            String::from_utf8_lossy(json)
        )
    });
    let mut tensors = Vec::new();
    for output in json["outputs"].as_array().expect("outputs") {
        if let Some(size) = output["parameters"]["binary_data_size"].as_u64() {
            assert!(size as usize <= rest.len(), "{json}: past the body");
            let (bytes, tail) = rest.split_at(size as usize);
            let name = output["name"].as_str().expect("a name").to_string();
            tensors.push((name, bytes.to_vec()));
            rest = tail;
        }
    }
    assert!(
        rest.is_empty(),
        "{} bytes past the outputs: {json}",
        rest.len()
    );
    (json, tensors)
}

/// A response's output by name.
fn output<'a>(response: &'a Value, name: &str) -> &'a Value {
    response["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no output {name} in {response}"))
}

fn output_names(response: &Value) -> Vec<&str> {
    response["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .map(|o| o["name"].as_str().expect("a name"))
        .collect()
}

/// An output's JSON `data` (flat).
fn json_f32s(output: &Value) -> Vec<f32> {
    output["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no flat data in {output}"))
        .iter()
        .map(|v| v.as_f64().expect("a number") as f32)
        .collect()
}

/// Little-endian f32s.
fn f32s(bytes: &[u8]) -> Vec<f32> {
    assert_eq!(bytes.len() % 4, 0);
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// Metadata tensors as `name DATATYPE [shape]`.
fn tensors(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|t| {
            format!(
                "{} {} {}",
                t["name"].as_str().expect("a name"),
                t["datatype"].as_str().expect("a datatype"),
                t["shape"]
            )
        })
        .collect()
}

fn sorted(mut list: Vec<String>) -> Vec<String> {
    list.sort();
    list
}
