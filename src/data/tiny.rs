//! Tiny-ImageNet's validation set (200 classes, 10,000 JPEGs of 64×64).
//!
//! **Class index.** The training code of the methods we evaluate reads Tiny-ImageNet with
//! torchvision's `ImageFolder` (RLNet `dataset/tiny_imagenet.py` and SNL `datasets.py` on
//! `train/` and on a `val/` reorganised into class folders). `ImageFolder` numbers the classes
//! by the **sorted** folder names, i.e. by the wnids in lexicographic order, not in the order of
//! `wnids.txt` (which is not sorted). So here class `k` is the `k`-th wnid in sorted order:
//! of `wnids.txt` when it is found (beside `val/`), else of the class folders of `train/`, else
//! of those of `val/` (folder layout) or of the wnids in `val_annotations.txt`.
//!
//! **Layouts.** The official one, `val/images/val_N.JPEG` with `val/val_annotations.txt`
//! (`file<TAB>wnid<TAB>box…`), and the reorganised `ImageFolder` one, `val/<wnid>/images/*.JPEG`
//! or `val/<wnid>/*.JPEG`. The path given may be the dataset root or `val/` itself.
//!
//! **Order.** Images are ordered by the number `N` of `val_N.JPEG` (then by name), which is the
//! order of `val_annotations.txt` in both layouts, so `--limit` picks the same images whichever
//! layout is on disk.
//!
//! **Pixels.** Decoded with the `image` crate (`jpeg-decoder`) and converted to RGB (grey images
//! are replicated, as `ImageFolder`'s PIL loader does). Values may differ from PIL/libjpeg's by
//! a unit in a few pixels (another IDCT and chroma upsampling).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{check_range, Batch, DataError, DataOptions, ImageSet, ImageShape};

/// Tiny-ImageNet's image shape.
pub const SHAPE: ImageShape = ImageShape {
    channels: 3,
    height: 64,
    width: 64,
};

/// The validation set: one JPEG per image, decoded per batch.
#[derive(Clone, Debug)]
pub struct TinyImageNet {
    val: PathBuf,
    files: Vec<PathBuf>,
    labels: Vec<u32>,
    wnids: Vec<String>,
}

/// Whether `dir` looks like an `ImageFolder` of wnid folders (`n01443537/` …).
pub fn is_image_folder(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.path().is_dir() && is_wnid(&e.file_name().to_string_lossy()))
        })
        .unwrap_or(false)
}

fn is_wnid(name: &str) -> bool {
    name.len() == 9 && name.starts_with('n') && name[1..].bytes().all(|b| b.is_ascii_digit())
}

/// Sorted subdirectory names of `dir` that are wnids.
fn wnid_dirs(dir: &Path) -> Result<Vec<String>, DataError> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(DataError::io(dir))?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_wnid(n))
        .collect();
    names.sort();
    Ok(names)
}

/// Sort key of a validation image: the `N` of `val_N.JPEG`, then the name.
fn order_key(path: &Path) -> (u64, String) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = name
        .strip_prefix("val_")
        .and_then(|r| r.split('.').next())
        .and_then(|d| d.parse().ok())
        .unwrap_or(u64::MAX);
    (n, name)
}

fn is_jpeg(path: &Path) -> bool {
    path.extension()
        .map(|e| e.eq_ignore_ascii_case("jpeg") || e.eq_ignore_ascii_case("jpg"))
        .unwrap_or(false)
}

impl TinyImageNet {
    /// Opens the validation set at `path` (the dataset root or its `val/`).
    pub fn open(path: &Path, opts: &DataOptions) -> Result<TinyImageNet, DataError> {
        let val = if path.join("val").is_dir() {
            path.join("val")
        } else {
            path.to_path_buf()
        };
        let root = val.parent().map(Path::to_path_buf).unwrap_or_default();
        // (file, wnid) of every image, in either layout.
        let mut items: Vec<(PathBuf, String)> = Vec::new();
        let annotations = val.join("val_annotations.txt");
        if annotations.is_file() {
            let text =
                std::fs::read_to_string(&annotations).map_err(DataError::io(&annotations))?;
            for (line_no, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let mut fields = line.split('\t');
                let (Some(file), Some(wnid)) = (fields.next(), fields.next()) else {
                    return Err(DataError::malformed(
                        &annotations,
                        format!("line {}: expected `file<TAB>wnid<TAB>…`", line_no + 1),
                    ));
                };
                items.push((
                    val.join("images").join(file.trim()),
                    wnid.trim().to_string(),
                ));
            }
        } else {
            for wnid in wnid_dirs(&val)? {
                let dir = val.join(&wnid);
                let dir = if dir.join("images").is_dir() {
                    dir.join("images")
                } else {
                    dir
                };
                for e in std::fs::read_dir(&dir).map_err(DataError::io(&dir))? {
                    let p = e.map_err(DataError::io(&dir))?.path();
                    if p.is_file() && is_jpeg(&p) {
                        items.push((p, wnid.clone()));
                    }
                }
            }
        }
        if items.is_empty() {
            return Err(DataError::UnknownFormat {
                path: path.to_path_buf(),
                reason: "no Tiny-ImageNet validation images: expected val/val_annotations.txt \
                         with val/images/, or val/<wnid>/ folders of JPEGs"
                    .into(),
            });
        }
        // Class order: sorted wnids, as ImageFolder numbers them.
        let wnids_file = [root.join("wnids.txt"), val.join("wnids.txt")]
            .into_iter()
            .find(|p| p.is_file());
        let wnids: Vec<String> = if let Some(file) = &wnids_file {
            let text = std::fs::read_to_string(file).map_err(DataError::io(file))?;
            let set: BTreeSet<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
            set.into_iter().collect()
        } else if root.join("train").is_dir() {
            wnid_dirs(&root.join("train"))?
        } else {
            let set: BTreeSet<String> = items.iter().map(|(_, w)| w.clone()).collect();
            set.into_iter().collect()
        };
        let index: HashMap<&str, u32> = wnids
            .iter()
            .enumerate()
            .map(|(i, w)| (w.as_str(), i as u32))
            .collect();
        opts.check_classes(path, "Tiny-ImageNet", wnids.len())?;
        items.sort_by_cached_key(|(p, _)| order_key(p));
        let keep = opts.keep(items.len());
        items.truncate(keep);
        let mut files = Vec::with_capacity(keep);
        let mut labels = Vec::with_capacity(keep);
        let labels_source = wnids_file.clone().unwrap_or_else(|| annotations.clone());
        for (i, (file, wnid)) in items.into_iter().enumerate() {
            let Some(&label) = index.get(wnid.as_str()) else {
                return Err(DataError::malformed(
                    &labels_source,
                    format!(
                        "image {i} (`{}`) has class `{wnid}`, which is not among the {} wnids",
                        file.display(),
                        wnids.len()
                    ),
                ));
            };
            files.push(file);
            labels.push(label);
        }
        Ok(TinyImageNet {
            val,
            files,
            labels,
            wnids,
        })
    }

    /// The wnids in class-index order (sorted).
    pub fn wnids(&self) -> &[String] {
        &self.wnids
    }

    /// The image files in set order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

/// Decodes one JPEG to CHW f32 in [0, 1], requiring `shape`.
fn decode(path: &Path, shape: ImageShape, out: &mut [f32]) -> Result<(), DataError> {
    let bytes = std::fs::read(path).map_err(DataError::io(path))?;
    let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)
        .map_err(|e| DataError::malformed(path, format!("not a decodable JPEG: {e}")))?
        .to_rgb8();
    if (img.height() as usize, img.width() as usize) != (shape.height, shape.width) {
        return Err(DataError::malformed(
            path,
            format!(
                "image is {}x{}, Tiny-ImageNet's are {}x{}",
                img.width(),
                img.height(),
                shape.width,
                shape.height
            ),
        ));
    }
    let plane = shape.height * shape.width;
    for (p, px) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + p] = f32::from(px[c]) / 255.0;
        }
    }
    Ok(())
}

impl ImageSet for TinyImageNet {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn shape(&self) -> ImageShape {
        SHAPE
    }

    fn classes(&self) -> usize {
        self.wnids.len()
    }

    fn describe(&self) -> String {
        format!("Tiny-ImageNet validation `{}`", self.val.display())
    }

    fn read(&self, start: usize, count: usize) -> Result<Batch, DataError> {
        check_range(start, count, self.len())?;
        let n = SHAPE.len();
        let mut images = vec![0f32; count * n];
        images
            .par_chunks_mut(n)
            .zip(&self.files[start..start + count])
            .try_for_each(|(out, file)| decode(file, SHAPE, out))?;
        Ok(Batch {
            start,
            shape: SHAPE,
            images,
            labels: self.labels[start..start + count].to_vec(),
        })
    }
}
