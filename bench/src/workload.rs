//! What the benchmark asks of a contender: a photo to classify, or the same
//! photo already preprocessed into the model's input tensor and sent by the
//! Open Inference Protocol with binary tensor data (the protocol path, where
//! every server is given the very same tensor bytes), or a text to embed.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, bail};
use image_prep::ClassifierSpec;

use wasi_infer_bench::load::Target;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// `POST /classify/<model>` with the encoded photo.
    Classify,
    /// `POST /v2/models/<model>/infer` with the photo's input tensor as binary
    /// data (`Inference-Header-Content-Length`) and the logits asked as JSON.
    Oip,
    /// `POST /embed/<model>` with `{"input": TEXT}`, TEXT the content of an
    /// input file (e.g. bench/texts/sentence.txt).
    Embed,
}

/// One request, sent to whichever contender is measured.
#[derive(Clone)]
pub struct Request {
    path: String,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Request {
    pub fn new(
        workload: Workload,
        models: &Path,
        model: &str,
        image: &Path,
        bytes: &[u8],
    ) -> anyhow::Result<Self> {
        match workload {
            Workload::Classify => Ok(Self {
                path: format!("/classify/{model}"),
                content_type: content_type(image)?,
                headers: Vec::new(),
                body: bytes.to_vec(),
            }),
            Workload::Embed => {
                let text = std::str::from_utf8(bytes)
                    .with_context(|| format!("{} is not UTF-8 text", image.display()))?;
                Ok(Self {
                    path: format!("/embed/{model}"),
                    content_type: "application/json",
                    headers: Vec::new(),
                    body: serde_json::to_vec(&serde_json::json!({ "input": text.trim() }))?,
                })
            }
            Workload::Oip => oip(models, model, bytes).with_context(|| {
                format!(
                    "cannot make {model}'s input tensor from {}",
                    image.display()
                )
            }),
        }
    }

    pub fn target(&self, addr: SocketAddr) -> Target {
        Target::with_headers(
            addr,
            "POST",
            &self.path,
            self.content_type,
            &self.headers,
            &self.body,
        )
    }
}

/// The photo preprocessed as the model's `model.toml` says (the code the
/// image-classify function runs), then framed as a binary-data inference
/// request: the JSON header, then the tensor's little-endian f32 bytes.
fn oip(models: &Path, model: &str, bytes: &[u8]) -> anyhow::Result<Request> {
    let path = models.join(model).join("model.toml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let spec = ClassifierSpec::parse(model, &path.display().to_string(), &text)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let image =
        image_prep::decode_for(bytes, &spec.preprocess).map_err(|e| anyhow::anyhow!("{e}"))?;
    let tensor =
        image_prep::to_tensor(&image, &spec.preprocess).map_err(|e| anyhow::anyhow!("{e}"))?;
    let data: Vec<u8> = tensor.values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let header = serde_json::json!({
        "inputs": [{
            "name": spec.input_name,
            "shape": tensor.dims,
            "datatype": "FP32",
            "parameters": {"binary_data_size": data.len()},
        }],
        "outputs": [{"name": spec.output_name, "parameters": {"binary_data": false}}],
    });
    let mut body = serde_json::to_vec(&header)?;
    let header_length = body.len();
    body.extend_from_slice(&data);
    Ok(Request {
        path: format!("/v2/models/{model}/infer"),
        content_type: "application/octet-stream",
        headers: vec![("inference-header-content-length", header_length.to_string())],
        body,
    })
}

fn content_type(path: &Path) -> anyhow::Result<&'static str> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("jpg" | "jpeg") => Ok("image/jpeg"),
        Some("png") => Ok("image/png"),
        Some("webp") => Ok("image/webp"),
        Some("gif") => Ok("image/gif"),
        Some("bmp") => Ok("image/bmp"),
        _ => bail!(
            "{}: not a JPEG, PNG, WebP, GIF or BMP file name",
            path.display()
        ),
    }
}
