//! Corrupted test sets for NPA: the CIFAR-10-C / CIFAR-100-C files when the user has them
//! ([`CifarC`]), or corruptions pibench generates from the clean set ([`Generated`]). Both are a
//! [`CorruptionSuite`]: a list of corruptions, each with severities 1–5, each an [`ImageSet`].
//!
//! A CIFAR-C directory holds `labels.npy` and one `<corruption>.npy` of uint8 `[N, H, W, C]` per
//! corruption: severities 1..5 in five equal blocks of `N/5` consecutive images (10,000 each in
//! the official files), block `s` image `i` being clean test image `i` corrupted at severity
//! `s`. `labels.npy` holds `N` labels (the official file) or `N/5` (one block's worth, reused
//! for every severity). [`DataOptions::limit`] keeps the first images of every block.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use super::corrupt::{self, Corruption, SEVERITIES};
use super::npy::{image_records, read_labels};
use super::store::{check_labels, infer_classes, Layout, Records, StoredSet};
use super::{
    check_range, chw_to_u8_hwc, u8_hwc_to_chw, Batch, DataError, DataOptions, ImageSet, ImageShape,
};

/// Corrupted versions of a test set: `(corruption, severity) → ImageSet`.
pub trait CorruptionSuite: Send + Sync {
    /// The corruptions available, by name: the standard 15 present first, in
    /// [`Corruption::ALL`] order, then any others (CIFAR-C's extra four) sorted.
    fn corruptions(&self) -> Vec<String>;

    /// The images of one corruption at one severity (1..=5).
    fn set(&self, corruption: &str, severity: u8) -> Result<Box<dyn ImageSet + '_>, DataError>;

    /// What the suite is and where it comes from.
    fn describe(&self) -> String;
}

/// A CIFAR-10-C / CIFAR-100-C directory.
#[derive(Clone, Debug)]
pub struct CifarC {
    dir: PathBuf,
    labels_path: PathBuf,
    labels: Arc<Vec<i64>>,
    classes: usize,
    /// Images per severity block.
    block: usize,
    files: BTreeMap<String, Records>,
    limit: Option<usize>,
}

/// Sort key: standard corruptions in reference order, then the rest by name.
fn rank(name: &str) -> (usize, String) {
    let pos = Corruption::ALL
        .iter()
        .position(|c| c.name() == name)
        .unwrap_or(Corruption::ALL.len());
    (pos, name.to_string())
}

impl CifarC {
    /// Opens a CIFAR-C directory, checking every file's header against `labels.npy`.
    pub fn open(dir: impl AsRef<Path>, opts: &DataOptions) -> Result<CifarC, DataError> {
        let dir = dir.as_ref();
        let labels_path = dir.join("labels.npy");
        if !labels_path.is_file() {
            return Err(DataError::UnknownFormat {
                path: dir.to_path_buf(),
                reason: "not a CIFAR-C directory: no labels.npy".into(),
            });
        }
        let labels = read_labels(&labels_path)?;
        let mut files = BTreeMap::new();
        let mut block = None;
        for entry in std::fs::read_dir(dir).map_err(DataError::io(dir))? {
            let path = entry.map_err(DataError::io(dir))?.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".npy"))
            else {
                continue;
            };
            if name == "labels" {
                continue;
            }
            let (n, records) = image_records(&path, Some(Layout::Hwc))?;
            if n == 0 || n % SEVERITIES.len() != 0 {
                return Err(DataError::malformed(
                    &path,
                    format!("{n} images is not a positive multiple of the 5 severities"),
                ));
            }
            let b = n / SEVERITIES.len();
            if labels.len() != n && labels.len() != b {
                return Err(DataError::CountMismatch {
                    images: path,
                    n_images: n,
                    labels: labels_path,
                    n_labels: labels.len(),
                });
            }
            if let Some((first, fb)) = &block {
                if *fb != b {
                    return Err(DataError::malformed(
                        &path,
                        format!("{n} images, but `{first}` has {}", fb * SEVERITIES.len()),
                    ));
                }
            } else {
                block = Some((name.to_string(), b));
            }
            files.insert(name.to_string(), records);
        }
        let Some((_, block)) = block else {
            return Err(DataError::UnknownFormat {
                path: dir.to_path_buf(),
                reason: "a CIFAR-C directory without any <corruption>.npy".into(),
            });
        };
        let classes = infer_classes(&labels, opts.classes);
        check_labels(&labels_path, &labels, classes, 0)?;
        Ok(CifarC {
            dir: dir.to_path_buf(),
            labels_path,
            labels: Arc::new(labels),
            classes,
            block,
            files,
            limit: opts.limit,
        })
    }

    /// Images per severity block (10,000 in the official files).
    pub fn block(&self) -> usize {
        self.block
    }
}

impl CorruptionSuite for CifarC {
    fn corruptions(&self) -> Vec<String> {
        let mut names: Vec<String> = self.files.keys().cloned().collect();
        names.sort_by_key(|n| rank(n));
        names
    }

    fn set(&self, corruption: &str, severity: u8) -> Result<Box<dyn ImageSet + '_>, DataError> {
        if !SEVERITIES.contains(&severity) {
            return Err(DataError::Corruption(format!(
                "severity {severity}: CIFAR-C has severities 1 to 5"
            )));
        }
        let records = self
            .files
            .get(corruption)
            .ok_or_else(|| DataError::MissingCorruption {
                dir: self.dir.clone(),
                name: corruption.into(),
            })?;
        let offset = usize::from(severity - 1) * self.block;
        let len = self.limit.map_or(self.block, |l| l.min(self.block));
        let first = if self.labels.len() == self.block {
            0
        } else {
            offset
        };
        let labels = check_labels(
            &self.labels_path,
            &self.labels[first..first + len],
            self.classes,
            first,
        )?;
        Ok(Box::new(StoredSet {
            kind: format!("CIFAR-C `{corruption}` severity {severity}"),
            records: records.clone(),
            offset,
            len,
            labels: Arc::new(labels),
            classes: self.classes,
        }))
    }

    fn describe(&self) -> String {
        format!("CIFAR-C files `{}`", self.dir.display())
    }
}

/// The 15 corruptions generated by pibench from a clean set (see [`corrupt`]), seeded.
pub struct Generated<'a> {
    base: &'a dyn ImageSet,
    seed: u64,
}

impl<'a> Generated<'a> {
    /// Corruptions of `base` under `seed`.
    pub fn new(base: &'a dyn ImageSet, seed: u64) -> Generated<'a> {
        Generated { base, seed }
    }
}

impl CorruptionSuite for Generated<'_> {
    fn corruptions(&self) -> Vec<String> {
        Corruption::ALL
            .iter()
            .map(|c| c.name().to_string())
            .collect()
    }

    fn set(&self, corruption: &str, severity: u8) -> Result<Box<dyn ImageSet + '_>, DataError> {
        let corruption = Corruption::from_name(corruption)?;
        if !SEVERITIES.contains(&severity) {
            return Err(DataError::Corruption(format!(
                "severity {severity}: severities are 1 to 5"
            )));
        }
        Ok(Box::new(GeneratedSet {
            base: self.base,
            corruption,
            severity,
            seed: self.seed,
        }))
    }

    fn describe(&self) -> String {
        format!(
            "corruptions generated by pibench (seed {}) of {}",
            self.seed,
            self.base.describe()
        )
    }
}

/// One corruption at one severity of a clean set, made per batch.
pub struct GeneratedSet<'a> {
    base: &'a dyn ImageSet,
    corruption: Corruption,
    severity: u8,
    seed: u64,
}

impl ImageSet for GeneratedSet<'_> {
    fn len(&self) -> usize {
        self.base.len()
    }

    fn shape(&self) -> ImageShape {
        self.base.shape()
    }

    fn classes(&self) -> usize {
        self.base.classes()
    }

    fn describe(&self) -> String {
        format!(
            "{} severity {} (generated, seed {}) of {}",
            self.corruption,
            self.severity,
            self.seed,
            self.base.describe()
        )
    }

    fn read(&self, start: usize, count: usize) -> Result<Batch, DataError> {
        check_range(start, count, self.len())?;
        let mut batch = self.base.read(start, count)?;
        corrupt_batch(&mut batch, self.corruption, self.severity, self.seed)?;
        Ok(batch)
    }
}

/// Corrupts every image of a batch in place (in parallel); image `i` uses the stream of set
/// index `batch.start + i`, so the result does not depend on batching or sharding.
pub fn corrupt_batch(
    batch: &mut Batch,
    corruption: Corruption,
    severity: u8,
    seed: u64,
) -> Result<(), DataError> {
    let shape = batch.shape;
    let start = batch.start;
    batch
        .images
        .par_chunks_mut(shape.len())
        .enumerate()
        .try_for_each(|(i, img)| {
            let mut hwc = chw_to_u8_hwc(img, shape);
            corrupt::apply(
                corruption,
                severity,
                &mut hwc,
                shape,
                seed,
                (start + i) as u64,
            )?;
            u8_hwc_to_chw(&hwc, shape, img);
            Ok(())
        })
}
