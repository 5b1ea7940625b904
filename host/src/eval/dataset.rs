//! Labelled images to evaluate on, in the three forms datasets ship in:
//!
//! - **IDX**: a folder holding `*images-idx3-ubyte[.gz]` and
//!   `*labels-idx1-ubyte[.gz]` (as MNIST and Fashion-MNIST ship), or the
//!   images file itself; the images are 8-bit grayscale, kept in memory;
//! - **ImageFolder**: `CLASS/IMAGE` files (any depth below the class folder),
//!   where `CLASS` is a class index or its label text;
//! - **CSV**: `path,label` lines, paths relative to the CSV's folder; a first
//!   line naming the columns (`path,label`) is a header.
//!
//! Everything that can be checked before a run is: the IDX headers and
//! counts, that every CSV line names a file that exists. Labels are kept as
//! written ([`RawLabel`]) until the class names are known
//! ([`Dataset::classes`]).

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::Error;
use super::labels::ClassNames;

/// How a dataset was laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Idx,
    ImageFolder,
    Csv,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Idx => "IDX",
            Format::ImageFolder => "ImageFolder",
            Format::Csv => "CSV",
        })
    }
}

/// A label as the dataset writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawLabel {
    Index(usize),
    Text(String),
}

/// Where an item's image is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The `n`-th image of the IDX images file.
    Idx(usize),
    /// An encoded image file.
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Item {
    /// How reports name the item: its index in an IDX file, its path under
    /// an ImageFolder, its path as a CSV writes it.
    pub id: String,
    pub label: RawLabel,
    pub source: Source,
    /// Where its label was read, for errors: a CSV's line, a class folder.
    origin: String,
}

/// An item's image, as [`Dataset::image`] gives it.
#[derive(Clone, Copy)]
pub enum ImageRef<'a> {
    /// 8-bit grayscale pixels, row by row.
    Gray {
        width: u32,
        height: u32,
        pixels: &'a [u8],
    },
    File(&'a Path),
}

/// The images of an IDX file: `count` images of `rows` x `cols` bytes.
struct IdxImages {
    rows: usize,
    cols: usize,
    pixels: Vec<u8>,
}

pub struct Dataset {
    /// The path the dataset was opened from.
    pub path: PathBuf,
    pub format: Format,
    pub items: Vec<Item>,
    images: Option<IdxImages>,
}

/// Decompressed, an IDX file may be at most this large: the whole of
/// ImageNet's training set as 28x28 bytes would fit several times; a bound
/// that stops a corrupt or hostile `.gz` before it fills the memory.
const MAX_IDX_BYTES: u64 = 4 << 30;

/// What torchvision's ImageFolder takes as images (what `image-prep` decodes).
const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "webp", "gif", "bmp"];

/// The first line of a CSV is a header when its columns are named so.
const PATH_COLUMNS: [&str; 7] = [
    "path",
    "file",
    "filename",
    "filepath",
    "image",
    "image_path",
    "img",
];
const LABEL_COLUMNS: [&str; 6] = ["label", "class", "target", "category", "y", "class_name"];

impl Dataset {
    /// Opens the dataset at `path`, its format found from what is there.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let meta = std::fs::metadata(path).map_err(|e| Error::dataset(path, io_problem(&e)))?;
        if meta.is_dir() {
            match idx_pair_in(path)? {
                Some((images, labels)) => Self::idx(path, &images, &labels),
                None => Self::image_folder(path),
            }
        } else {
            let name = file_name(path);
            if name.contains("labels") && name.contains("idx1-ubyte") {
                return Err(Error::dataset(
                    path,
                    "is an IDX labels file: give its images file (*images-idx3-ubyte[.gz]) or their folder",
                ));
            }
            if name.contains("images") && name.contains("idx3-ubyte") {
                let labels = labels_beside(path)?;
                return Self::idx(path, path, &labels);
            }
            Self::csv(path)
        }
    }

    /// Keeps the first `n` items.
    pub fn truncate(&mut self, n: usize) {
        self.items.truncate(n);
    }

    /// Each item's class index: label text looked up in `names`. Text that
    /// names no class, or text without class names, is an error naming the
    /// item and where its label was read.
    pub fn classes(&self, names: Option<&ClassNames>) -> Result<Vec<usize>, Error> {
        self.items
            .iter()
            .map(|item| match &item.label {
                RawLabel::Index(index) => Ok(*index),
                RawLabel::Text(text) => match names {
                    Some(names) => names.index_of(text).ok_or_else(|| {
                        Error::dataset(
                            &self.path,
                            format!(
                                "{}: label {text:?} is not one of the class names ({})",
                                item.origin,
                                names.describe()
                            ),
                        )
                    }),
                    None => Err(Error::dataset(
                        &self.path,
                        format!(
                            "{}: label {text:?} is text, and no class names are known to look it \
                             up in: give --labels FILE (one class name a line, in class-index order) \
                             or --models DIR with the model's labels",
                            item.origin
                        ),
                    )),
                },
            })
            .collect()
    }

    /// The image of `item` (one of this dataset's).
    pub fn image<'a>(&'a self, item: &'a Item) -> Option<ImageRef<'a>> {
        match &item.source {
            Source::File(path) => Some(ImageRef::File(path)),
            Source::Idx(index) => {
                let images = self.images.as_ref()?;
                let size = images.rows * images.cols;
                let pixels = images.pixels.get(index * size..(index + 1) * size)?;
                Some(ImageRef::Gray {
                    width: u32::try_from(images.cols).ok()?,
                    height: u32::try_from(images.rows).ok()?,
                    pixels,
                })
            }
        }
    }

    fn idx(path: &Path, images_path: &Path, labels_path: &Path) -> Result<Self, Error> {
        let (dims, pixels) = read_idx(images_path, 3)?;
        let [count, rows, cols] = [dims[0], dims[1], dims[2]];
        if rows == 0 || cols == 0 || u32::try_from(rows.max(cols)).is_err() {
            return Err(Error::dataset(
                images_path,
                format!("its images are {rows}x{cols} pixels"),
            ));
        }
        let (label_dims, labels) = read_idx(labels_path, 1)?;
        if label_dims[0] != count {
            return Err(Error::dataset(
                labels_path,
                format!(
                    "holds {} labels, but {} holds {count} images",
                    label_dims[0],
                    images_path.display()
                ),
            ));
        }
        let items = labels
            .iter()
            .enumerate()
            .map(|(index, &label)| Item {
                id: index.to_string(),
                label: RawLabel::Index(usize::from(label)),
                source: Source::Idx(index),
                origin: format!("image {index}"),
            })
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            format: Format::Idx,
            items,
            images: Some(IdxImages { rows, cols, pixels }),
        })
    }

    fn image_folder(root: &Path) -> Result<Self, Error> {
        let mut classes: Vec<(RawLabel, String, PathBuf)> = Vec::new();
        for entry in read_dir_sorted(root)? {
            let name = file_name(&entry);
            if name.starts_with('.') || !entry.is_dir() {
                continue;
            }
            let label = match name.parse::<usize>() {
                Ok(index) => RawLabel::Index(index),
                Err(_) => RawLabel::Text(name.clone()),
            };
            classes.push((label, name, entry));
        }
        if classes.is_empty() {
            return Err(Error::dataset(
                root,
                "holds neither IDX files (*images-idx3-ubyte[.gz] with *labels-idx1-ubyte[.gz]) \
                 nor class folders (an ImageFolder tree is CLASS/IMAGE)",
            ));
        }
        // Class folders by index where they are numbers ("10" after "9"),
        // else by name.
        classes.sort_by(|a, b| match (&a.0, &b.0) {
            (RawLabel::Index(x), RawLabel::Index(y)) => x.cmp(y),
            (RawLabel::Index(_), RawLabel::Text(_)) => std::cmp::Ordering::Less,
            (RawLabel::Text(_), RawLabel::Index(_)) => std::cmp::Ordering::Greater,
            _ => a.1.cmp(&b.1),
        });
        let mut items = Vec::new();
        for (label, name, dir) in classes {
            let mut files = Vec::new();
            images_under(&dir, &mut files)?;
            for file in files {
                let relative = file.strip_prefix(root).unwrap_or(&file);
                items.push(Item {
                    id: relative.to_string_lossy().into_owned(),
                    label: label.clone(),
                    source: Source::File(file.clone()),
                    origin: format!("class folder {name:?}"),
                });
            }
        }
        if items.is_empty() {
            return Err(Error::dataset(
                root,
                format!(
                    "its class folders hold no images (files ending in .{})",
                    IMAGE_EXTENSIONS.join(", .")
                ),
            ));
        }
        Ok(Self {
            path: root.to_path_buf(),
            format: Format::ImageFolder,
            items,
            images: None,
        })
    }

    fn csv(path: &Path) -> Result<Self, Error> {
        let bytes = std::fs::read(path).map_err(|e| Error::dataset(path, io_problem(&e)))?;
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            Error::dataset(
                path,
                format!("is neither an IDX file nor a UTF-8 CSV file ({e})"),
            )
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut items = Vec::new();
        let mut first = true;
        for (number, line) in text.lines().enumerate() {
            let number = number + 1;
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let at = |problem: String| Error::dataset(path, format!("line {number}: {problem}"));
            let fields = csv_fields(line).map_err(at)?;
            let [file, label] = <[String; 2]>::try_from(fields).map_err(|fields| {
                at(format!(
                    "expected 2 columns (path,label), found {}",
                    fields.len()
                ))
            })?;
            let header = first && is_header(&file, &label);
            first = false;
            if header {
                continue;
            }
            let (file, label) = (file.trim(), label.trim());
            if file.is_empty() || label.is_empty() {
                return Err(at("a path and a label are both needed".into()));
            }
            let full = base.join(file);
            if !full.is_file() {
                return Err(at(format!("no such file: {}", full.display())));
            }
            items.push(Item {
                id: file.to_string(),
                label: match label.parse::<usize>() {
                    Ok(index) => RawLabel::Index(index),
                    Err(_) => RawLabel::Text(label.to_string()),
                },
                source: Source::File(full),
                origin: format!("line {number}"),
            });
        }
        if items.is_empty() {
            return Err(Error::dataset(path, "lists no images (path,label lines)"));
        }
        Ok(Self {
            path: path.to_path_buf(),
            format: Format::Csv,
            items,
            images: None,
        })
    }
}

#[cfg(test)]
impl Dataset {
    /// `n` items that name files, for the report's tests.
    pub(crate) fn fake(n: usize) -> Self {
        Self {
            path: PathBuf::from("fake.csv"),
            format: Format::Csv,
            items: (0..n)
                .map(|i| Item {
                    id: format!("img/{i}.png"),
                    label: RawLabel::Index(i),
                    source: Source::File(PathBuf::from(format!("img/{i}.png"))),
                    origin: format!("line {}", i + 1),
                })
                .collect(),
            images: None,
        }
    }
}

/// The IDX images and labels files in `dir`, paired by what comes before
/// "images"/"labels" in their names (`t10k-`, `train-`); `None` when there
/// are none. Several pairs, or images without labels, are errors.
fn idx_pair_in(dir: &Path) -> Result<Option<(PathBuf, PathBuf)>, Error> {
    let entries = read_dir_sorted(dir)?;
    let images: Vec<&PathBuf> = entries
        .iter()
        .filter(|p| {
            let name = file_name(p);
            p.is_file() && name.contains("images") && name.contains("idx3-ubyte")
        })
        .collect();
    match images.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(((*one).clone(), labels_beside(one)?))),
        several => {
            let names: Vec<String> = several.iter().map(|p| file_name(p)).collect();
            Err(Error::dataset(
                dir,
                format!(
                    "holds several IDX images files ({}): give the one to evaluate on as the dataset",
                    names.join(", ")
                ),
            ))
        }
    }
}

/// The labels file that goes with an IDX images file: in the same folder,
/// its name with `labels-idx1` for `images-idx3`, compressed or not.
fn labels_beside(images: &Path) -> Result<PathBuf, Error> {
    let name = file_name(images);
    let dir = images.parent().unwrap_or(Path::new("."));
    let prefix = &name[..name.find("images").unwrap_or(0)];
    let candidates: Vec<PathBuf> = read_dir_sorted(dir)?
        .into_iter()
        .filter(|p| {
            let other = file_name(p);
            p.is_file()
                && other.starts_with(prefix)
                && other[prefix.len()..].starts_with("labels")
                && other.contains("idx1-ubyte")
        })
        .collect();
    match candidates.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::dataset(
            images,
            format!(
                "has no labels file beside it (expected {prefix}labels-idx1-ubyte or {prefix}labels-idx1-ubyte.gz)"
            ),
        )),
        several => Err(Error::dataset(
            images,
            format!(
                "has several labels files beside it: {}",
                several
                    .iter()
                    .map(|p| file_name(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Reads an IDX file of unsigned bytes with `dims` dimensions, gzip-compressed
/// or not: its dimensions and data.
fn read_idx(path: &Path, dims: u8) -> Result<(Vec<usize>, Vec<u8>), Error> {
    let bad = |problem: String| Error::dataset(path, problem);
    let raw = std::fs::read(path).map_err(|e| bad(io_problem(&e)))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(raw.as_slice())
            .take(MAX_IDX_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| bad(format!("is not a valid gzip file: {e}")))?;
        if out.len() as u64 > MAX_IDX_BYTES {
            return Err(bad(format!(
                "decompresses to more than {} GiB",
                MAX_IDX_BYTES >> 30
            )));
        }
        out
    } else {
        raw
    };
    let Some(header) = bytes.get(..4) else {
        return Err(bad(format!(
            "is {} bytes long, too short for an IDX header",
            bytes.len()
        )));
    };
    if header[..2] != [0, 0] {
        return Err(bad(format!(
            "is not an IDX file: it starts with {:02x} {:02x}, not 00 00",
            header[0], header[1]
        )));
    }
    if header[2] != 0x08 {
        return Err(bad(format!(
            "holds IDX data of type 0x{:02x}; only unsigned bytes (0x08) are read",
            header[2]
        )));
    }
    if header[3] != dims {
        let what = if dims == 3 {
            "an images file has 3 (count, rows, columns)"
        } else {
            "a labels file has 1 (count)"
        };
        return Err(bad(format!(
            "its IDX header gives {} dimensions; {what}",
            header[3]
        )));
    }
    let header_len = 4 + 4 * usize::from(dims);
    let Some(dim_bytes) = bytes.get(4..header_len) else {
        return Err(bad(format!(
            "is {} bytes long, too short for its {dims}-dimension IDX header",
            bytes.len()
        )));
    };
    let sizes: Vec<usize> = dim_bytes
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let expected = sizes
        .iter()
        .try_fold(1usize, |product, &size| product.checked_mul(size));
    let data = &bytes[header_len..];
    let shape = sizes
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("x");
    match expected {
        Some(n) if n == data.len() => Ok((sizes, data.to_vec())),
        Some(n) => Err(bad(format!(
            "its IDX header says {shape} ({n} bytes of data), but {} bytes follow it",
            data.len()
        ))),
        None => Err(bad(format!(
            "its IDX header says {shape}, which is too large"
        ))),
    }
}

/// The fields of one CSV line: separated by commas, a field in double quotes
/// may hold commas and doubled quotes (RFC 4180, within one line).
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("a quoted field is not closed".into()),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(c) => return Err(format!("{c:?} after a closing quote")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

fn is_header(path: &str, label: &str) -> bool {
    let named = |value: &str, names: &[&str]| names.contains(&value.trim().to_lowercase().as_str());
    named(path, &PATH_COLUMNS) && named(label, &LABEL_COLUMNS)
}

/// The image files under `dir`, at any depth, in name order; hidden files
/// and folders are left out.
fn images_under(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    for entry in read_dir_sorted(dir)? {
        let name = file_name(&entry);
        if name.starts_with('.') {
            continue;
        }
        if entry.is_dir() {
            images_under(&entry, out)?;
        } else if entry
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_lowercase().as_str()))
        {
            out.push(entry);
        }
    }
    Ok(())
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::dataset(dir, io_problem(&e)))?;
    let mut paths = Vec::new();
    for entry in entries {
        paths.push(
            entry
                .map_err(|e| Error::dataset(dir, io_problem(&e)))?
                .path(),
        );
    }
    paths.sort();
    Ok(paths)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn io_problem(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or folder".into(),
        _ => format!("cannot be read: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
        for d in dims {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend_from_slice(data);
        bytes
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn message(result: Result<Dataset, Error>) -> String {
        match result {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    /// Two 2x3 images with labels 7 and 1, the images compressed.
    fn write_idx_pair(dir: &Path) {
        let pixels: Vec<u8> = (0..12).collect();
        std::fs::write(
            dir.join("t10k-images-idx3-ubyte.gz"),
            gzip(&idx(&[2, 2, 3], &pixels)),
        )
        .unwrap();
        std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx(&[2], &[7, 1])).unwrap();
    }

    #[test]
    fn reads_idx_folders_and_files() {
        let dir = tempfile::tempdir().unwrap();
        write_idx_pair(dir.path());
        for path in [
            dir.path().to_path_buf(),
            dir.path().join("t10k-images-idx3-ubyte.gz"),
        ] {
            let set = Dataset::open(&path).unwrap();
            assert_eq!(set.format, Format::Idx);
            assert_eq!(set.items.len(), 2);
            assert_eq!(set.items[1].id, "1");
            assert_eq!(set.classes(None).unwrap(), [7, 1]);
            let Some(ImageRef::Gray {
                width,
                height,
                pixels,
            }) = set.image(&set.items[1])
            else {
                panic!("not a gray image");
            };
            assert_eq!((width, height), (3, 2));
            assert_eq!(pixels, [6, 7, 8, 9, 10, 11]);
        }
        // The labels file alone is not a dataset.
        let e = message(Dataset::open(&dir.path().join("t10k-labels-idx1-ubyte")));
        assert!(e.contains("labels file"), "{e}");
    }

    #[test]
    fn the_real_fashion_mnist_test_split() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/fashion-mnist");
        let set = Dataset::open(&dir).unwrap();
        assert_eq!(set.items.len(), 10_000);
        let classes = set.classes(None).unwrap();
        assert!(classes.iter().all(|&c| c < 10));
        // Fashion-MNIST's first test image is an ankle boot (9).
        assert_eq!(classes[0], 9);
    }

    #[test]
    fn corrupt_idx_files_are_named_with_their_problem() {
        let cases: [(&str, Vec<u8>, Vec<u8>, &str); 6] = [
            (
                "count mismatch",
                idx(&[2, 2, 3], &[0; 12]),
                idx(&[3], &[0, 1, 2]),
                "holds 3 labels, but",
            ),
            (
                "short data",
                idx(&[2, 2, 3], &[0; 11]),
                idx(&[2], &[0, 1]),
                "2x2x3 (12 bytes of data), but 11 bytes follow",
            ),
            (
                "bad magic",
                b"\x12\x34\x08\x03rest of it".to_vec(),
                idx(&[2], &[0, 1]),
                "not an IDX file",
            ),
            (
                "wrong type",
                {
                    let mut b = idx(&[2, 2, 3], &[0; 12]);
                    b[2] = 0x0d;
                    b
                },
                idx(&[2], &[0, 1]),
                "type 0x0d",
            ),
            (
                "labels with 3 dimensions",
                idx(&[2, 2, 3], &[0; 12]),
                idx(&[2, 1, 1], &[0, 1]),
                "gives 3 dimensions; a labels file has 1",
            ),
            (
                "truncated header",
                vec![0, 0, 8, 3, 0, 0],
                idx(&[2], &[0, 1]),
                "too short for its 3-dimension IDX header",
            ),
        ];
        for (what, images, labels, want) in cases {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("x-images-idx3-ubyte"), images).unwrap();
            std::fs::write(dir.path().join("x-labels-idx1-ubyte"), labels).unwrap();
            let e = message(Dataset::open(dir.path()));
            assert!(e.contains(want), "{what}: {e}");
            assert!(e.contains("-idx"), "{what}: the file is named: {e}");
        }

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("x-images-idx3-ubyte.gz"),
            b"\x1f\x8bnot gzip",
        )
        .unwrap();
        std::fs::write(dir.path().join("x-labels-idx1-ubyte"), idx(&[0], &[])).unwrap();
        let e = message(Dataset::open(dir.path()));
        assert!(e.contains("not a valid gzip file"), "{e}");

        // Images without labels.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x-images-idx3-ubyte"), idx(&[0, 1, 1], &[])).unwrap();
        let e = message(Dataset::open(dir.path()));
        assert!(e.contains("no labels file beside it"), "{e}");

        // Two splits in one folder.
        let dir = tempfile::tempdir().unwrap();
        write_idx_pair(dir.path());
        std::fs::write(
            dir.path().join("train-images-idx3-ubyte"),
            idx(&[0, 1, 1], &[]),
        )
        .unwrap();
        let e = message(Dataset::open(dir.path()));
        assert!(e.contains("several IDX images files"), "{e}");

        let e = message(Dataset::open(Path::new("/no/such/dataset")));
        assert!(
            e.contains("/no/such/dataset: no such file or folder"),
            "{e}"
        );
    }

    #[test]
    fn reads_an_image_folder_by_index_or_label_text() {
        let dir = tempfile::tempdir().unwrap();
        for (class, file) in [
            ("10", "a.png"),
            ("9", "b.JPG"),
            ("9", "sub/c.png"),
            ("Bag", "d.webp"),
            ("9", "notes.txt"),
            (".hidden", "e.png"),
        ] {
            let path = dir.path().join(class).join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"x").unwrap();
        }
        let set = Dataset::open(dir.path()).unwrap();
        assert_eq!(set.format, Format::ImageFolder);
        let ids: Vec<&str> = set.items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["9/b.JPG", "9/sub/c.png", "10/a.png", "Bag/d.webp"]);
        let e = set.classes(None).unwrap_err().to_string();
        assert!(e.contains("\"Bag\"") && e.contains("--labels"), "{e}");
        let names = ClassNames::new(
            (0..11)
                .map(|i| format!("c{i}"))
                .chain(["Bag".into()])
                .collect(),
        );
        assert_eq!(set.classes(Some(&names)).unwrap(), [9, 9, 10, 11]);
        let names = ClassNames::new(vec!["T-shirt".into()]);
        let e = set.classes(Some(&names)).unwrap_err().to_string();
        assert!(
            e.contains("class folder \"Bag\"") && e.contains("not one of the class names"),
            "{e}"
        );

        let empty = tempfile::tempdir().unwrap();
        let e = message(Dataset::open(empty.path()));
        assert!(e.contains("nor class folders"), "{e}");
        std::fs::create_dir(empty.path().join("0")).unwrap();
        let e = message(Dataset::open(empty.path()));
        assert!(e.contains("hold no images"), "{e}");
    }

    #[test]
    fn reads_a_csv_with_or_without_header() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("img")).unwrap();
        for f in ["a.png", "b,c.png"] {
            std::fs::write(dir.path().join("img").join(f), b"x").unwrap();
        }
        let csv = dir.path().join("set.csv");
        std::fs::write(&csv, "path,label\r\nimg/a.png,3\n\n\"img/b,c.png\", Bag \n").unwrap();
        let set = Dataset::open(&csv).unwrap();
        assert_eq!(set.format, Format::Csv);
        let ids: Vec<&str> = set.items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["img/a.png", "img/b,c.png"]);
        assert_eq!(set.items[1].label, RawLabel::Text("Bag".into()));
        assert_eq!(
            set.items[0].source,
            Source::File(dir.path().join("img/a.png"))
        );

        std::fs::write(&csv, "img/a.png,3\n").unwrap();
        assert_eq!(Dataset::open(&csv).unwrap().items.len(), 1);

        for (text, want) in [
            ("img/a.png,3\nimg/missing.png,1\n", "line 2: no such file"),
            (
                "img/a.png,3,extra\n",
                "line 1: expected 2 columns (path,label), found 3",
            ),
            ("img/a.png\n", "line 1: expected 2 columns"),
            ("\"img/a.png,3\n", "line 1: a quoted field is not closed"),
            ("img/a.png,\n", "line 1: a path and a label are both needed"),
            ("path,label\n", "lists no images"),
        ] {
            std::fs::write(&csv, text).unwrap();
            let e = message(Dataset::open(&csv));
            assert!(e.contains(want) && e.contains("set.csv"), "{text:?}: {e}");
        }
        std::fs::write(&csv, [0xff, 0xfe, 0]).unwrap();
        let e = message(Dataset::open(&csv));
        assert!(e.contains("neither an IDX file nor a UTF-8 CSV"), "{e}");
    }

    #[test]
    fn csv_fields_follow_rfc_4180_quotes() {
        assert_eq!(csv_fields("a,b").unwrap(), ["a", "b"]);
        assert_eq!(csv_fields("\"a,\"\"b\"\"\",c").unwrap(), ["a,\"b\"", "c"]);
        assert_eq!(csv_fields("a,").unwrap(), ["a", ""]);
        assert_eq!(csv_fields("\"a\",\"\"").unwrap(), ["a", ""]);
        assert!(csv_fields("\"a\"b,c").is_err());
    }
}
