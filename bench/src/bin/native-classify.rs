//! The benchmark's native baseline: the image classifier with no sandbox.
//!
//! The same pre- and post-processing code as the `image-classify` function
//! (`image_prep`), compiled natively, and the same inference code as the host
//! (`wasi_infer::nn`, ONNX Runtime by default), behind a minimal hyper server.
//! What wasi-infer adds on top of this (a fresh WebAssembly instance per request,
//! the guest's code in wasm, the tensor crossing into the host) is what the
//! benchmark measures it against.
//!
//! `native-classify --listen 127.0.0.1:0 --model efficientnet-lite0` serves
//! `POST /classify/<model>?top_k=K` with the function's answers, and the same
//! `Server-Timing` stages (decode, preprocess, inference, postprocess).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use image_prep::ClassifierSpec;
use wasi_infer::BackendKind;
use wasi_infer::nn::LoadedModel;
use wasmtime_wasi_nn::Tensor;
use wasmtime_wasi_nn::backend::NamedTensor;
use wasmtime_wasi_nn::wit::TensorType;

#[derive(Parser)]
#[command(about = "The image classifier natively, no sandbox: the benchmark's baseline")]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:3001")]
    listen: SocketAddr,
    /// The model repository.
    #[arg(long, default_value = "models")]
    models: PathBuf,
    /// A model to serve (repeatable).
    #[arg(long = "model", required = true)]
    names: Vec<String>,
    /// The backend, as `wasi-infer serve --backend` [default: each model.toml's].
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
}

struct Classifier {
    model: LoadedModel,
    spec: ClassifierSpec,
    labels: Vec<String>,
}

type Classifiers = HashMap<String, Classifier>;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut classifiers = Classifiers::new();
    for name in &args.names {
        let dir = args.models.join(name);
        let toml_path = dir.join("model.toml");
        let text = std::fs::read_to_string(&toml_path)
            .with_context(|| format!("cannot read {}", toml_path.display()))?;
        let spec = ClassifierSpec::parse(name, &toml_path.display().to_string(), &text)?;
        let labels = match &spec.labels_file {
            Some(file) => image_prep::parse_labels(&std::fs::read_to_string(dir.join(file))?),
            None => Vec::new(),
        };
        let model = LoadedModel::load(name, &dir, args.backend)?;
        eprintln!(
            "{name}: {} ({} ms)",
            model.backend,
            model.load_time.as_millis()
        );
        classifiers.insert(
            name.clone(),
            Classifier {
                model,
                spec,
                labels,
            },
        );
    }
    let classifiers = Arc::new(classifiers);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        println!("listening on http://{}", listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let classifiers = classifiers.clone();
            let service = service_fn(move |request| handle(classifiers.clone(), request));
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

async fn handle(
    classifiers: Arc<Classifiers>,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let answer = async {
        if parts.method != Method::POST {
            return Err((
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed: use POST".into(),
            ));
        }
        let name = parts.uri.path().strip_prefix("/classify/").unwrap_or("");
        let classifier = classifiers
            .get(name)
            .ok_or_else(|| (StatusCode::NOT_FOUND, format!("no model named {name:?}")))?;
        let top_k = top_k(parts.uri.query().unwrap_or(""))?;
        let body = body
            .collect()
            .await
            .map_err(|e| {
                (
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {e}"),
                )
            })?
            .to_bytes();
        // CPU-bound, as in the host: the worker thread does it in place.
        tokio::task::block_in_place(|| classify(name, classifier, &body, top_k))
    }
    .await;
    let (status, json, timing) = match answer {
        Ok((json, timing)) => (StatusCode::OK, json, timing),
        Err((status, message)) => (
            status,
            serde_json::json!({ "error": message }).to_string(),
            String::new(),
        ),
    };
    let mut response = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if !timing.is_empty() {
        response = response.header("server-timing", timing);
    }
    Ok(response
        .body(Full::new(Bytes::from(json)))
        .expect("a valid status and headers"))
}

/// The JSON answer and its `Server-Timing` header.
fn classify(
    name: &str,
    classifier: &Classifier,
    body: &[u8],
    top_k: usize,
) -> Result<(String, String), (StatusCode, String)> {
    let mut laps = Vec::with_capacity(4);
    let mut last = Instant::now();
    let mut lap = |stage: &'static str| {
        let now = Instant::now();
        laps.push(format!(
            "{stage};dur={:.3}",
            (now - last).as_secs_f64() * 1e3
        ));
        last = now;
    };
    let prep_error = |e: image_prep::Error| match e {
        image_prep::Error::Config(m) => (StatusCode::INTERNAL_SERVER_ERROR, m),
        other => (StatusCode::BAD_REQUEST, other.to_string()),
    };
    let image = image_prep::decode_for(body, &classifier.spec.preprocess).map_err(prep_error)?;
    lap("decode");
    let input = image_prep::to_tensor(&image, &classifier.spec.preprocess).map_err(prep_error)?;
    lap("preprocess");
    let tensor = Tensor {
        dimensions: input.dims,
        ty: TensorType::Fp32,
        data: input.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    };
    let inputs = vec![NamedTensor {
        name: classifier.spec.input_name.clone(),
        tensor,
    }];
    let internal = |m: String| (StatusCode::INTERNAL_SERVER_ERROR, m);
    let outputs = classifier
        .model
        .run(inputs)
        .map_err(|e| internal(format!("inference failed: {e}")))?;
    let output = outputs
        .into_iter()
        .find(|o| o.name == classifier.spec.output_name)
        .ok_or_else(|| internal("no output named as in model.toml".into()))?;
    let logits: Vec<f32> = output
        .tensor
        .data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    lap("inference");
    let labels = &classifier.labels;
    let predictions = image_prep::top_k(&logits, top_k, |i| {
        labels.get(i).cloned().unwrap_or_default()
    });
    let json = serde_json::json!({ "model": name, "predictions": predictions }).to_string();
    lap("postprocess");
    Ok((json, laps.join(", ")))
}

fn top_k(query: &str) -> Result<usize, (StatusCode, String)> {
    match query
        .split('&')
        .find_map(|pair| pair.strip_prefix("top_k="))
    {
        None => Ok(5),
        Some(v) => v.parse().ok().filter(|k| *k >= 1).ok_or_else(|| {
            (
                StatusCode::BAD_REQUEST,
                format!("top_k must be a whole number of at least 1, got {v:?}"),
            )
        }),
    }
}
