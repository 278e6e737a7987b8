//! Datasets as users keep them on disk, and corruptions of them: what `pibench eval` feeds a
//! model.
//!
//! - [`open`] reads a test set in any layout pibench knows and returns an [`ImageSet`], which
//!   yields [`Batch`]es of NCHW `f32` images in `[0, 1]` plus labels. Memory is bounded by a
//!   batch: files are read by seeking, except pickles (whole file as u8) and Tiny-ImageNet
//!   (one JPEG per image, decoded per batch).
//! - [`corrupted::CifarC`] reads a CIFAR-10-C / CIFAR-100-C directory and
//!   [`corrupted::Generated`] makes the same 15 corruptions itself ([`corrupt`]); both are a
//!   [`corrupted::CorruptionSuite`] of `(corruption, severity) → ImageSet`.
//! - The model's input preprocessing (`(x − mean) / std` on these `[0, 1]` images) belongs to the
//!   model card: [`crate::model::card::Preprocessing`].
//!
//! The layouts recognised ([`detect`]), the Tiny-ImageNet class order, the errors and the
//! generated corruptions' fidelity are described in docs/DATA.md.
//!
//! **`--limit N`** ([`DataOptions::limit`]) keeps the **first `N` images in file order** (for
//! CIFAR-C: the first `N` of every severity block, i.e. the corruptions of the same `N` clean test
//! images; for Tiny-ImageNet: `val_0 … val_{N−1}`, whatever the layout). The CIFAR test sets and
//! Tiny-ImageNet's validation set are stored in shuffled class order, so a prefix is close to
//! class-balanced, and it is the same subset in every reader and on every machine.

pub mod cifar;
pub mod corrupt;
pub mod corrupted;
pub mod error;
pub mod npy;
pub mod pickle;
mod store;
pub mod tiny;

use std::path::{Path, PathBuf};

pub use corrupt::Corruption;
pub use corrupted::{CifarC, CorruptionSuite, Generated};
pub use error::DataError;
pub use store::{Layout, StoredSet};

/// The shape of one image, `[C, H, W]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageShape {
    /// Channels.
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl ImageShape {
    /// `[C, H, W]`.
    pub fn new(channels: usize, height: usize, width: usize) -> ImageShape {
        ImageShape {
            channels,
            height,
            width,
        }
    }

    /// Elements of one image, `C·H·W`.
    pub fn len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Whether an image has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `[C, H, W]` as a vector (the model card's `input_shape` form).
    pub fn dims(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }
}

impl std::fmt::Display for ImageShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.channels, self.height, self.width)
    }
}

/// Consecutive images of a set: NCHW `f32` in `[0, 1]` and their labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Index (in the set) of the first image; image `i` of the batch is image `start + i`.
    pub start: usize,
    /// One image's shape.
    pub shape: ImageShape,
    /// `len() · C·H·W` values, image-major, each image CHW.
    pub images: Vec<f32>,
    /// One label per image.
    pub labels: Vec<u32>,
}

impl Batch {
    /// Images in the batch.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image `i` (CHW).
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.shape.len();
        &self.images[i * n..(i + 1) * n]
    }

    /// Image `i` as u8 HWC (`round(255·x)`), the form [`corrupt::apply`] works on. Exact for
    /// images that came from u8 files.
    pub fn image_u8_hwc(&self, i: usize) -> Vec<u8> {
        chw_to_u8_hwc(self.image(i), self.shape)
    }

    /// Replaces image `i` by u8 HWC pixels (scaled to `[0, 1]`).
    ///
    /// # Panics
    /// If `pixels` is not one image long (a caller's bug).
    pub fn set_image_u8_hwc(&mut self, i: usize, pixels: &[u8]) {
        let n = self.shape.len();
        u8_hwc_to_chw(pixels, self.shape, &mut self.images[i * n..(i + 1) * n]);
    }
}

/// A CHW `[0, 1]` image as u8 HWC, `round(255·x)`.
pub fn chw_to_u8_hwc(image: &[f32], shape: ImageShape) -> Vec<u8> {
    let plane = shape.height * shape.width;
    let mut out = vec![0u8; shape.len()];
    for (p, px) in out.chunks_exact_mut(shape.channels).enumerate() {
        for (c, v) in px.iter_mut().enumerate() {
            *v = (image[c * plane + p] * 255.0).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// u8 HWC pixels into a CHW `[0, 1]` image.
///
/// # Panics
/// If `pixels` or `out` is not one image of `shape` long (a caller's bug).
pub fn u8_hwc_to_chw(pixels: &[u8], shape: ImageShape, out: &mut [f32]) {
    assert_eq!(pixels.len(), shape.len(), "one HWC image expected");
    assert_eq!(out.len(), shape.len(), "one CHW image expected");
    let plane = shape.height * shape.width;
    for (p, px) in pixels.chunks_exact(shape.channels).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            out[c * plane + p] = f32::from(v) / 255.0;
        }
    }
}

/// A labelled image set read in batches. Implementations read lazily: only the batch asked for
/// is in memory as `f32`.
pub trait ImageSet: Send + Sync {
    /// Images in the set (after [`DataOptions::limit`]).
    fn len(&self) -> usize;

    /// Whether the set is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One image's shape.
    fn shape(&self) -> ImageShape;

    /// Number of classes; every label is below it.
    fn classes(&self) -> usize;

    /// What the set is and where it comes from, for messages and results.
    fn describe(&self) -> String;

    /// Images `start..start + count`.
    fn read(&self, start: usize, count: usize) -> Result<Batch, DataError>;
}

impl<'s> dyn ImageSet + 's {
    /// All images in order, `batch_size` at a time (the last batch may be smaller).
    pub fn batches(&self, batch_size: usize) -> Batches<'_> {
        Batches::new(self, 0..self.len(), batch_size)
    }

    /// Images `range` (e.g. one shard) in order, `batch_size` at a time. A range past the end
    /// yields one [`DataError::Range`].
    pub fn batches_in(&self, range: std::ops::Range<usize>, batch_size: usize) -> Batches<'_> {
        Batches::new(self, range, batch_size)
    }
}

/// Iterator over the batches of a range of an [`ImageSet`].
pub struct Batches<'a> {
    set: &'a dyn ImageSet,
    next: usize,
    end: usize,
    batch_size: usize,
}

impl<'a> Batches<'a> {
    fn new(set: &'a dyn ImageSet, range: std::ops::Range<usize>, batch_size: usize) -> Self {
        Batches {
            set,
            next: range.start,
            end: range.end,
            batch_size: batch_size.max(1),
        }
    }
}

impl Iterator for Batches<'_> {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        let count = self.batch_size.min(self.end - self.next);
        let batch = self.set.read(self.next, count);
        // One error ends the iteration: the caller reports it rather than skipping data.
        self.next = if batch.is_ok() {
            self.next + count
        } else {
            self.end
        };
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.end.saturating_sub(self.next)).div_ceil(self.batch_size);
        (n, Some(n))
    }
}

/// An explicit dataset format, for paths whose kind cannot be told from their names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// CIFAR-10 binary records.
    Cifar10Bin,
    /// CIFAR-100 binary records.
    Cifar100Bin,
    /// A CIFAR-10 or CIFAR-100 Python pickle.
    CifarPickle,
    /// Tiny-ImageNet's validation set.
    TinyImageNet,
    /// Images + labels `.npy`.
    Npy,
    /// Images + labels safetensors.
    Safetensors,
}

/// How to open a dataset.
#[derive(Clone, Debug, Default)]
pub struct DataOptions {
    /// Keep only the first `N` images in file order (see the module documentation).
    pub limit: Option<usize>,
    /// The class count the model expects (its card's `classes`): labels are checked against it,
    /// and a format with a fixed class count (CIFAR-10 has 10) must agree.
    pub classes: Option<usize>,
    /// Force a format instead of recognising it from the path.
    pub format: Option<Format>,
    /// Force the element order of `.npy` / safetensors images whose shape is ambiguous.
    pub layout: Option<Layout>,
}

impl DataOptions {
    /// The number of images to keep out of `total`.
    pub fn keep(&self, total: usize) -> usize {
        self.limit.map_or(total, |l| l.min(total))
    }

    /// Checks a fixed class count against the one asked for.
    pub(crate) fn check_classes(
        &self,
        path: &Path,
        dataset: &str,
        found: usize,
    ) -> Result<(), DataError> {
        match self.classes {
            Some(expected) if expected != found => Err(DataError::ClassMismatch {
                path: path.to_path_buf(),
                dataset: dataset.into(),
                found,
                expected,
            }),
            _ => Ok(()),
        }
    }
}

/// Opens the test set at `path`, recognising its layout (see the module documentation).
pub fn open(path: impl AsRef<Path>, opts: &DataOptions) -> Result<Box<dyn ImageSet>, DataError> {
    let path = path.as_ref();
    let format = match opts.format {
        Some(f) => f,
        None => detect(path)?,
    };
    match format {
        Format::Cifar10Bin => Ok(Box::new(cifar::open_binary(
            &resolve(path, &["test_batch.bin"])?,
            cifar::Cifar::C10,
            opts,
        )?)),
        Format::Cifar100Bin => Ok(Box::new(cifar::open_binary(
            &resolve(path, &["test.bin"])?,
            cifar::Cifar::C100,
            opts,
        )?)),
        Format::CifarPickle => Ok(Box::new(cifar::open_pickle(
            &resolve(path, &["test_batch", "test"])?,
            opts,
        )?)),
        Format::TinyImageNet => Ok(Box::new(tiny::TinyImageNet::open(path, opts)?)),
        Format::Npy => Ok(Box::new(npy::open_pair(path, opts)?)),
        Format::Safetensors => Ok(Box::new(npy::open_safetensors(path, opts)?)),
    }
}

/// A file given directly, or the first of `names` inside a directory.
fn resolve(path: &Path, names: &[&str]) -> Result<PathBuf, DataError> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    names
        .iter()
        .map(|n| path.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| DataError::UnknownFormat {
            path: path.to_path_buf(),
            reason: format!("the directory holds none of {}", names.join(", ")),
        })
}

/// Recognises a dataset layout from its path (names, then the first bytes of a file).
pub fn detect(path: &Path) -> Result<Format, DataError> {
    if !path.exists() {
        return Err(DataError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
        });
    }
    if path.is_dir() {
        let has = |name: &str| path.join(name).exists();
        return if has("test_batch.bin") {
            Ok(Format::Cifar10Bin)
        } else if has("test.bin") {
            Ok(Format::Cifar100Bin)
        } else if has("test_batch") || has("test") {
            Ok(Format::CifarPickle)
        } else if has("images.npy") {
            Ok(Format::Npy)
        } else if has("val") || has("val_annotations.txt") || tiny::is_image_folder(path) {
            Ok(Format::TinyImageNet)
        } else if has("labels.npy") {
            Err(DataError::UnknownFormat {
                path: path.to_path_buf(),
                reason: "this looks like a CIFAR-C directory (labels.npy without images.npy): \
                         pass it as the corrupted set (--corrupted), not as the test set"
                    .into(),
            })
        } else {
            Err(DataError::UnknownFormat {
                path: path.to_path_buf(),
                reason: "not a dataset directory pibench knows: expected test_batch.bin \
                         (CIFAR-10 binary), test.bin (CIFAR-100 binary), test_batch / test \
                         (CIFAR Python), images.npy + labels.npy, or Tiny-ImageNet's val/"
                    .into(),
            })
        };
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if name.ends_with(".npy") {
        return Ok(Format::Npy);
    }
    if name.ends_with(".safetensors") {
        return Ok(Format::Safetensors);
    }
    if name.ends_with(".bin") {
        return if name.starts_with("test_batch") || name.starts_with("data_batch") {
            Ok(Format::Cifar10Bin)
        } else if name == "test.bin" || name == "train.bin" {
            Ok(Format::Cifar100Bin)
        } else {
            Err(DataError::UnknownFormat {
                path: path.to_path_buf(),
                reason: "a .bin file named neither like CIFAR-10's (test_batch.bin, \
                         data_batch_N.bin) nor CIFAR-100's (test.bin, train.bin); give the format \
                         explicitly"
                    .into(),
            })
        };
    }
    let mut head = [0u8; 2];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .map_err(DataError::io(path))?;
    // Every binary pickle (protocol ≥ 2, as CIFAR's) starts with the PROTO opcode 0x80.
    if n == 2 && head[0] == 0x80 {
        return Ok(Format::CifarPickle);
    }
    Err(DataError::UnknownFormat {
        path: path.to_path_buf(),
        reason: "not a file kind pibench reads as a dataset (CIFAR .bin, CIFAR Python pickle, \
                 .npy, .safetensors)"
            .into(),
    })
}

/// `start..start + count` must lie in `0..len`.
pub(crate) fn check_range(start: usize, count: usize, len: usize) -> Result<(), DataError> {
    match start.checked_add(count) {
        Some(end) if end <= len => Ok(()),
        _ => Err(DataError::Range {
            start,
            end: start.saturating_add(count),
            len,
        }),
    }
}
