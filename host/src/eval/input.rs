//! An item as a request sends it: the encoded image (`/classify`), or the
//! model's input tensor (the Open Inference Protocol), prepared by the very
//! code the `image-classify` function runs (`image-prep`), so that both
//! protocols give the model the same numbers.

use image::{ImageEncoder, RgbImage};
use image_prep::{Color, Layout, Preprocess};

use super::Error;
use super::dataset::ImageRef;

/// The encoded image to post: the file as it is, an IDX image as a PNG.
pub fn encoded(image: ImageRef<'_>) -> Result<Vec<u8>, String> {
    match image {
        ImageRef::File(path) => {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        }
        ImageRef::Gray {
            width,
            height,
            pixels,
        } => {
            let mut png = Vec::new();
            image::codecs::png::PngEncoder::new(&mut png)
                .write_image(pixels, width, height, image::ExtendedColorType::L8)
                .map_err(|e| format!("cannot encode the image as PNG: {e}"))?;
            Ok(png)
        }
    }
}

/// An Open Inference Protocol datatype that the tensor can be sent as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datatype {
    Fp32,
    Fp16,
    Fp64,
}

impl Datatype {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "FP32" => Some(Self::Fp32),
            "FP16" => Some(Self::Fp16),
            "FP64" => Some(Self::Fp64),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Fp32 => "FP32",
            Self::Fp16 => "FP16",
            Self::Fp64 => "FP64",
        }
    }
}

/// How an image becomes the model's input tensor, and what the tensor is.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub input_name: String,
    pub datatype: Datatype,
    /// The shape sent: one image.
    pub shape: Vec<u32>,
    pub preprocess: Preprocess,
    /// Where the preprocessing came from, for the report.
    pub preprocess_from: String,
}

impl TensorSpec {
    /// The tensor for `model`'s input `name` of `datatype` and `shape` (as
    /// the server's metadata gives them, -1 for a dynamic dimension),
    /// prepared as `model_toml`'s `[preprocess]` says (its path and text),
    /// else as the shape suggests (see [`derive_preprocess`]).
    pub fn new(
        model: &str,
        name: &str,
        datatype: &str,
        shape: &[i64],
        model_toml: Option<(&str, &str)>,
    ) -> Result<Self, Error> {
        let bad = |problem: String| Error::Model {
            model: model.to_string(),
            problem,
        };
        let datatype = Datatype::parse(datatype).ok_or_else(|| {
            bad(format!(
                "its input {name:?} is {datatype}; eval sends images as FP32, FP16 or FP64 tensors"
            ))
        })?;
        let shape_text = format!("{shape:?}");
        let [batch, a, b, c] = <[i64; 4]>::try_from(shape).map_err(|_| {
            bad(format!(
                "its input {name:?} has shape {shape_text}; eval sends one image as \
                 [1, C, H, W] or [1, H, W, C]"
            ))
        })?;
        if batch != 1 && batch != -1 {
            return Err(bad(format!(
                "its input {name:?} has shape {shape_text}: a batch of {batch}, and eval sends one image"
            )));
        }
        let (preprocess, preprocess_from) = match model_toml {
            Some((path, text)) => {
                let spec = image_prep::ClassifierSpec::parse(model, path, text)
                    .map_err(|e| bad(e.to_string()))?;
                (spec.preprocess, format!("[preprocess] of {path}"))
            }
            None => derive_preprocess([a, b, c]).map_err(|problem| {
                bad(format!(
                    "its input {name:?} has shape {shape_text}, {problem}: give --models DIR \
                     with the model's model.toml, whose [preprocess] says how to prepare an image"
                ))
            })?,
        };
        let channels = preprocess.color.channels() as i64;
        let [w, h] = preprocess.crop.map(i64::from);
        let want = match preprocess.layout {
            Layout::Nchw => [channels, h, w],
            Layout::Nhwc => [h, w, channels],
        };
        for (have, wanted) in [a, b, c].into_iter().zip(want) {
            if have != -1 && have != wanted {
                let [x, y, z] = want;
                return Err(bad(format!(
                    "its input {name:?} has shape {shape_text}, but {preprocess_from} makes \
                     [1, {x}, {y}, {z}]"
                )));
            }
        }
        let shape = std::iter::once(1)
            .chain(want.iter().map(|&d| d as u32))
            .collect();
        Ok(Self {
            input_name: name.to_string(),
            datatype,
            shape,
            preprocess,
            preprocess_from,
        })
    }

    /// The tensor's bytes, little-endian, for one image.
    pub fn tensor(&self, image: ImageRef<'_>) -> Result<Vec<u8>, String> {
        let rgb = match image {
            ImageRef::File(path) => {
                let bytes = std::fs::read(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                image_prep::decode_for(&bytes, &self.preprocess)
                    .map_err(|e| format!("{}: {e}", path.display()))?
            }
            ImageRef::Gray {
                width,
                height,
                pixels,
            } => gray_to_rgb(width, height, pixels)?,
        };
        let tensor = image_prep::to_tensor(&rgb, &self.preprocess).map_err(|e| e.to_string())?;
        if tensor.dims != self.shape {
            return Err(format!(
                "the preprocessing made a tensor of shape {:?}, not {:?}",
                tensor.dims, self.shape
            ));
        }
        Ok(match self.datatype {
            Datatype::Fp32 => tensor.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Datatype::Fp16 => tensor
                .values
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect(),
            Datatype::Fp64 => tensor
                .values
                .iter()
                .flat_map(|v| f64::from(*v).to_le_bytes())
                .collect(),
        })
    }
}

/// The preprocessing assumed for an input of shape `[_, a, b, c]` when no
/// model.toml says: channels first if the second dimension is 1 or 3
/// (NCHW), else last if the fourth is (NHWC); 1 channel is grayscale (luma),
/// 3 are RGB; the image is resized so that its shorter side is the input's
/// longer side, centre-cropped to the input's height and width, and every
/// value is pixel / 255 (no mean, no per-channel scaling), as MNIST-style
/// models are trained. Anything else is an error saying why.
pub fn derive_preprocess(dims: [i64; 3]) -> Result<(Preprocess, String), String> {
    let (layout, channels, height, width) = match dims {
        [c @ (1 | 3), h, w] => (Layout::Nchw, c, h, w),
        [h, w, c @ (1 | 3)] => (Layout::Nhwc, c, h, w),
        _ => return Err("which has no channel dimension of 1 or 3".into()),
    };
    let (Ok(height), Ok(width)) = (u32::try_from(height), u32::try_from(width)) else {
        return Err("whose height and width are not fixed".into());
    };
    if height == 0 || width == 0 {
        return Err("which holds no pixels".into());
    }
    let color = if channels == 1 {
        Color::Gray
    } else {
        Color::Rgb
    };
    let count = channels as usize;
    let preprocess = Preprocess {
        resize_shorter_side: height.max(width),
        crop: [width, height],
        color,
        mean: vec![0.0; count],
        std: vec![255.0; count],
        layout,
    };
    let from = format!(
        "derived from the input shape: {} {}, {width}x{height}, pixel / 255",
        match layout {
            Layout::Nchw => "NCHW",
            Layout::Nhwc => "NHWC",
        },
        if channels == 1 { "grayscale" } else { "RGB" }
    );
    Ok((preprocess, from))
}

/// A grayscale image as the RGB one the function decodes it to (each value
/// three times: what the `image` crate does with a grayscale PNG).
fn gray_to_rgb(width: u32, height: u32, pixels: &[u8]) -> Result<RgbImage, String> {
    let rgb: Vec<u8> = pixels.iter().flat_map(|&v| [v, v, v]).collect();
    RgbImage::from_raw(width, height, rgb).ok_or_else(|| {
        format!(
            "an image of {width}x{height} needs {} bytes",
            width * height
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As models/fashion-mnist-cnn/model.toml prepares its images (kept
    /// here, so that retraining that model cannot change this test).
    const FASHION_TOML: &str = r#"
        labels = "labels.txt"
        [[inputs]]
        name = "input"
        [[outputs]]
        name = "logits"
        [preprocess]
        resize_shorter_side = 28
        crop = [28, 28]
        color = "gray"
        mean = [0.0]
        std = [255.0]
        layout = "nchw"
    "#;

    #[test]
    fn the_derived_preprocessing_is_the_fashion_mnist_model_toml() {
        let derived = TensorSpec::new("m", "input", "FP32", &[-1, 1, 28, 28], None).unwrap();
        let toml = TensorSpec::new(
            "m",
            "input",
            "FP32",
            &[1, 1, 28, 28],
            Some(("m/model.toml", FASHION_TOML)),
        )
        .unwrap();
        assert_eq!(derived.preprocess, toml.preprocess);
        assert_eq!(derived.shape, [1, 1, 28, 28]);
        assert!(
            derived.preprocess_from.contains("grayscale"),
            "{}",
            derived.preprocess_from
        );

        let nhwc = TensorSpec::new("m", "x", "FP16", &[1, 32, 64, 3], None).unwrap();
        assert_eq!(nhwc.preprocess.layout, Layout::Nhwc);
        assert_eq!(nhwc.preprocess.crop, [64, 32]);
        assert_eq!(nhwc.preprocess.resize_shorter_side, 64);
        assert_eq!(nhwc.shape, [1, 32, 64, 3]);
    }

    #[test]
    fn inputs_eval_cannot_prepare_are_refused_with_the_reason() {
        for (datatype, shape, want) in [
            ("UINT8", &[1, 1, 28, 28][..], "is UINT8"),
            ("FP32", &[1, 784], "has shape [1, 784]"),
            ("FP32", &[8, 1, 28, 28], "a batch of 8"),
            ("FP32", &[1, 1, -1, -1], "not fixed"),
            ("FP32", &[1, 5, 28, 28], "no channel dimension"),
        ] {
            let e = TensorSpec::new("m", "in", datatype, shape, None)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(want) && e.contains("model \"m\""),
                "{shape:?}: {e}"
            );
        }
        // The model.toml and the server disagree.
        let e = TensorSpec::new(
            "m",
            "in",
            "FP32",
            &[1, 3, 28, 28],
            Some(("m/model.toml", FASHION_TOML)),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("makes [1, 1, 28, 28]"), "{e}");
    }

    #[test]
    fn a_gray_image_gives_the_same_tensor_as_its_png_decoded() {
        let pixels: Vec<u8> = (0..28 * 28).map(|i| (i * 7 % 256) as u8).collect();
        let gray = ImageRef::Gray {
            width: 28,
            height: 28,
            pixels: &pixels,
        };
        let spec = TensorSpec::new("m", "input", "FP32", &[1, 1, 28, 28], None).unwrap();
        let direct = spec.tensor(gray).unwrap();
        let png = encoded(ImageRef::Gray {
            width: 28,
            height: 28,
            pixels: &pixels,
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.png");
        std::fs::write(&path, png).unwrap();
        let via_file = spec.tensor(ImageRef::File(&path)).unwrap();
        assert_eq!(direct, via_file);
        assert_eq!(direct.len(), 28 * 28 * 4);
        let first = f32::from_le_bytes(direct[4..8].try_into().unwrap());
        assert!((first - 7.0 / 255.0).abs() < 1e-6, "{first}");
    }
}
