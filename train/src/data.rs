//! Fashion-MNIST as the lifecycle needs it: read from its IDX files, cleaned
//! (corrupt and duplicate images dropped), and split into training and
//! validation sets. Pixels stay bytes here; [`crate::augment`] and
//! [`to_unit`] turn them into the model's input (pixel / 255).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Side of an image, in pixels.
pub const SIDE: usize = 28;
/// Pixels in an image.
pub const PIXELS: usize = SIDE * SIDE;
/// Fashion-MNIST's classes.
pub const CLASSES: usize = 10;

/// Images and their labels, `PIXELS` bytes an image.
#[derive(Clone, Default)]
pub struct Images {
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
}

impl Images {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * PIXELS..(i + 1) * PIXELS]
    }

    fn push(&mut self, image: &[u8], label: u8) {
        self.pixels.extend_from_slice(image);
        self.labels.push(label);
    }

    /// The images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Images {
        let mut out = Images::default();
        for &i in indices {
            out.push(self.image(i), self.labels[i]);
        }
        out
    }
}

/// The dataset's two splits, as its IDX files hold them.
pub struct FashionMnist {
    pub train: Images,
    pub test: Images,
}

/// Reads `train-*` and `t10k-*` IDX files (gzipped or not) from `dir`.
pub fn read(dir: &Path) -> anyhow::Result<FashionMnist> {
    let split = |prefix: &str| -> anyhow::Result<Images> {
        let images = read_idx(&find(dir, &format!("{prefix}-images-idx3-ubyte"))?, 3)?;
        let labels = read_idx(&find(dir, &format!("{prefix}-labels-idx1-ubyte"))?, 1)?;
        ensure!(
            images.dims[1..] == [SIDE, SIDE],
            "{prefix} images are {:?}, not {SIDE}x{SIDE}",
            &images.dims[1..]
        );
        ensure!(
            images.dims[0] == labels.dims[0],
            "{} {prefix} images but {} labels",
            images.dims[0],
            labels.dims[0]
        );
        Ok(Images {
            pixels: images.data,
            labels: labels.data,
        })
    };
    Ok(FashionMnist {
        train: split("train")?,
        test: split("t10k")?,
    })
}

fn find(dir: &Path, stem: &str) -> anyhow::Result<PathBuf> {
    [stem.to_string(), format!("{stem}.gz")]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
        .with_context(|| format!("no {stem}[.gz] in {}", dir.display()))
}

struct Idx {
    dims: Vec<usize>,
    data: Vec<u8>,
}

/// An IDX file of unsigned bytes with `rank` dimensions.
fn read_idx(path: &Path, rank: u8) -> anyhow::Result<Idx> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .with_context(|| format!("decompressing {}", path.display()))?;
        out
    } else {
        raw
    };
    let header = 4 + 4 * rank as usize;
    if bytes.len() < header || bytes[..3] != [0, 0, 0x08] || bytes[3] != rank {
        bail!(
            "{} is not an IDX file of unsigned bytes with {rank} dimensions",
            path.display()
        );
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize)
        .collect();
    let count: usize = dims.iter().product();
    ensure!(
        bytes.len() - header == count,
        "{} holds {} bytes of data, its header says {dims:?} = {count}",
        path.display(),
        bytes.len() - header
    );
    Ok(Idx {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// What cleaning dropped, and why.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Cleaning {
    pub kept: usize,
    /// A label outside the classes, or an image of one flat colour.
    pub corrupt: usize,
    /// A second copy of an image with the same label.
    pub duplicates: usize,
    /// Every copy of an image that carries different labels.
    pub conflicting: usize,
    /// Training images that are also in the test set, which would make the
    /// test score look better than it is.
    pub in_test_set: usize,
}

/// The training images without corrupt ones, duplicates, images labelled
/// two ways, and images the test set also holds.
pub fn clean(train: &Images, test: &Images) -> (Images, Cleaning) {
    let mut report = Cleaning::default();
    let in_test: std::collections::HashSet<&[u8]> =
        (0..test.len()).map(|i| test.image(i)).collect();
    let mut labels_of: HashMap<&[u8], Vec<u8>> = HashMap::new();
    for i in 0..train.len() {
        labels_of
            .entry(train.image(i))
            .or_default()
            .push(train.labels[i]);
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Images::default();
    for i in 0..train.len() {
        let (image, label) = (train.image(i), train.labels[i]);
        let flat = image.iter().all(|&p| p == image[0]);
        if label as usize >= CLASSES || flat {
            report.corrupt += 1;
        } else if labels_of[image].iter().any(|&l| l != label) {
            report.conflicting += 1;
        } else if in_test.contains(image) {
            report.in_test_set += 1;
        } else if !seen.insert(image) {
            report.duplicates += 1;
        } else {
            out.push(image, label);
        }
    }
    report.kept = out.len();
    (out, report)
}

/// Splits off `fraction` of the images, chosen at random, for validation.
pub fn split(images: &Images, fraction: f64, rng: &mut ChaCha8Rng) -> (Images, Images) {
    let mut order: Vec<usize> = (0..images.len()).collect();
    order.shuffle(rng);
    let held = ((images.len() as f64) * fraction).round() as usize;
    (images.select(&order[held..]), images.select(&order[..held]))
}

/// The first `n` images of each split, for a short run.
pub fn first(images: &Images, n: usize) -> Images {
    let indices: Vec<usize> = (0..images.len().min(n)).collect();
    images.select(&indices)
}

/// Pixels as the model reads them: 0 to 1.
pub fn to_unit(pixels: &[u8]) -> Vec<f32> {
    pixels.iter().map(|&p| p as f32 / 255.0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(value: u8) -> Vec<u8> {
        let mut image = vec![0u8; PIXELS];
        image[value as usize] = value;
        image
    }

    #[test]
    fn cleaning_drops_what_it_says() {
        let mut train = Images::default();
        train.push(&image(1), 0); // kept
        train.push(&image(1), 0); // duplicate
        train.push(&image(2), 1); // conflicting
        train.push(&image(2), 3); // conflicting
        train.push(&vec![7u8; PIXELS], 4); // flat: corrupt
        train.push(&image(3), 12); // label out of range: corrupt
        train.push(&image(4), 5); // also in the test set
        train.push(&image(5), 5); // kept
        let mut test = Images::default();
        test.push(&image(4), 5);
        let (kept, report) = clean(&train, &test);
        assert_eq!(kept.labels, vec![0, 5]);
        assert_eq!(
            (
                report.kept,
                report.duplicates,
                report.conflicting,
                report.corrupt,
                report.in_test_set
            ),
            (2, 1, 2, 2, 1)
        );
    }

    #[test]
    fn idx_files_are_checked() {
        let dir = std::env::temp_dir().join(format!("idx-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("labels");
        // A header that promises three labels, and two.
        std::fs::write(&path, [0, 0, 8, 1, 0, 0, 0, 3, 1, 2]).unwrap();
        let err = read_idx(&path, 1).err().unwrap().to_string();
        assert!(err.contains("header says [3]"), "{err}");
        std::fs::write(&path, [0, 0, 8, 3, 0, 0, 0, 1]).unwrap();
        let err = read_idx(&path, 1).err().unwrap().to_string();
        assert!(err.contains("not an IDX file"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
