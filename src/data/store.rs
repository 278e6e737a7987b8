//! One reader for every format whose images are fixed-size records of u8 or f32 in a file or in
//! memory (CIFAR binary and pickle, CIFAR-C blocks, `.npy` and safetensors pairs): only where
//! the records are and how a record is laid out differ, so the batch decoding is written once.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Batch, DataError, ImageSet, ImageShape};

/// How the elements of one image are ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Channel-major `[C, H, W]` (PyTorch; CIFAR's files).
    Chw,
    /// Channel-last `[H, W, C]` (NumPy/PIL; CIFAR-C's files).
    Hwc,
}

/// Element type of the stored pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Elem {
    /// 0..=255, divided by 255.
    U8,
    /// Already in [0, 1]; little-endian.
    F32Le,
    /// Already in [0, 1]; big-endian.
    F32Be,
}

impl Elem {
    fn size(self) -> usize {
        match self {
            Elem::U8 => 1,
            Elem::F32Le | Elem::F32Be => 4,
        }
    }
}

/// Where the records live.
#[derive(Clone, Debug)]
pub(crate) enum Storage {
    /// The whole array in memory (pickled CIFAR: the file must be parsed whole anyway).
    Memory(Arc<Vec<u8>>),
    /// In a file, read by seeking: `data_start` is the byte offset of record 0.
    File { data_start: u64 },
}

/// Fixed-size image records: where they are, how each is laid out, and their labels.
#[derive(Clone, Debug)]
pub(crate) struct Records {
    /// The file the pixels come from (named in errors even for [`Storage::Memory`]).
    pub path: PathBuf,
    /// Where the bytes are.
    pub storage: Storage,
    /// Element type.
    pub elem: Elem,
    /// Element order within one image.
    pub layout: Layout,
    /// Bytes from the start of one record to the next (≥ the image's bytes).
    pub record_bytes: usize,
    /// Bytes before the pixels within a record (CIFAR binary's label bytes).
    pub pixel_offset: usize,
    /// One image's shape.
    pub shape: ImageShape,
}

impl Records {
    /// Bytes of one image's pixels.
    pub fn image_bytes(&self) -> usize {
        self.shape.len() * self.elem.size()
    }

    /// Decodes records `first..first + count` into NCHW f32 in [0, 1].
    pub fn read(&self, first: usize, count: usize) -> Result<Vec<f32>, DataError> {
        let n = self.image_bytes();
        let mut raw = vec![0u8; count * self.record_bytes];
        match &self.storage {
            Storage::Memory(bytes) => {
                let start = first * self.record_bytes;
                let slice = bytes.get(start..start + raw.len()).ok_or_else(|| {
                    DataError::malformed(&self.path, "fewer records than its header says")
                })?;
                raw.copy_from_slice(slice);
            }
            Storage::File { data_start } => {
                let mut f = File::open(&self.path).map_err(DataError::io(&self.path))?;
                f.seek(SeekFrom::Start(
                    data_start + (first as u64) * self.record_bytes as u64,
                ))
                .map_err(DataError::io(&self.path))?;
                f.read_exact(&mut raw).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::UnexpectedEof {
                        DataError::malformed(
                            &self.path,
                            format!(
                                "truncated: records {first}..{} run past the end of the file",
                                first + count
                            ),
                        )
                    } else {
                        DataError::Io {
                            path: self.path.clone(),
                            source: e,
                        }
                    }
                })?;
            }
        }
        let plane = self.shape.height * self.shape.width;
        let c = self.shape.channels;
        let mut out = vec![0f32; count * self.shape.len()];
        for (i, img) in out.chunks_exact_mut(self.shape.len()).enumerate() {
            let rec = &raw[i * self.record_bytes + self.pixel_offset..][..n];
            for (k, slot) in img.iter_mut().enumerate() {
                // k indexes the NCHW output; s the stored element.
                let s = match self.layout {
                    Layout::Chw => k,
                    Layout::Hwc => (k % plane) * c + k / plane,
                };
                *slot = match self.elem {
                    Elem::U8 => f32::from(rec[s]) / 255.0,
                    Elem::F32Le => f32::from_le_bytes(rec[4 * s..4 * s + 4].try_into().unwrap()),
                    Elem::F32Be => f32::from_be_bytes(rec[4 * s..4 * s + 4].try_into().unwrap()),
                };
            }
            if self.elem != Elem::U8 {
                if let Some(&value) = img.iter().find(|v| !(0.0..=1.0).contains(*v)) {
                    return Err(DataError::PixelRange {
                        path: self.path.clone(),
                        index: first + i,
                        value,
                    });
                }
            }
        }
        Ok(out)
    }
}

/// An image set of fixed-size records with labels in memory: what every reader except
/// Tiny-ImageNet's returns (CIFAR binary and pickle, CIFAR-C blocks, `.npy` and safetensors
/// pairs). Use it through [`ImageSet`].
#[derive(Clone, Debug)]
pub struct StoredSet {
    /// What the set is, for messages (`CIFAR-10 (binary)`).
    pub(crate) kind: String,
    /// The pixels.
    pub(crate) records: Records,
    /// Record index of image 0 of this set (a CIFAR-C severity block starts past 0).
    pub(crate) offset: usize,
    /// Images in the set (after `--limit`).
    pub(crate) len: usize,
    /// Labels of images `0..len`, checked against `classes`.
    pub(crate) labels: Arc<Vec<u32>>,
    /// Number of classes.
    pub(crate) classes: usize,
}

impl ImageSet for StoredSet {
    fn len(&self) -> usize {
        self.len
    }

    fn shape(&self) -> ImageShape {
        self.records.shape
    }

    fn classes(&self) -> usize {
        self.classes
    }

    fn describe(&self) -> String {
        format!("{} `{}`", self.kind, self.records.path.display())
    }

    fn read(&self, start: usize, count: usize) -> Result<Batch, DataError> {
        super::check_range(start, count, self.len)?;
        let images = self.records.read(self.offset + start, count)?;
        Ok(Batch {
            start,
            shape: self.records.shape,
            images,
            labels: self.labels[start..start + count].to_vec(),
        })
    }
}

/// Checks every label against `classes`, naming the first one out of range.
pub(crate) fn check_labels(
    path: &Path,
    labels: &[i64],
    classes: usize,
    first_index: usize,
) -> Result<Vec<u32>, DataError> {
    labels
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            if l < 0 || l as u64 >= classes as u64 {
                Err(DataError::BadLabel {
                    path: path.to_path_buf(),
                    index: first_index + i,
                    label: l,
                    classes,
                })
            } else {
                Ok(l as u32)
            }
        })
        .collect()
}

/// The class count of a set whose format does not fix it: the caller's (the model card's),
/// else one more than the largest label.
pub(crate) fn infer_classes(labels: &[i64], asked: Option<usize>) -> usize {
    asked.unwrap_or_else(|| {
        labels
            .iter()
            .copied()
            .max()
            .map_or(0, |m| (m.max(0) + 1) as usize)
    })
}

/// The size of a file.
pub(crate) fn file_len(path: &Path) -> Result<u64, DataError> {
    Ok(std::fs::metadata(path).map_err(DataError::io(path))?.len())
}
