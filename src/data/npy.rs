//! Images + labels as `.npy` files (read with `npyz`) or as one safetensors file: the generic
//! pair, and the building blocks of the CIFAR-C reader.
//!
//! Images are uint8 (scaled by 1/255) or float32 already in `[0, 1]` (checked per batch), of
//! shape `[N, H, W, C]`, `[N, C, H, W]` (told apart by which axis has 1 or 3 entries; pass
//! [`DataOptions::layout`] when both could) or `[N, H, W]` (one channel). Labels are any integer
//! dtype, shape `[N]`.

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use npyz::{NpyFile, NpyHeader, Order, TypeChar};
use safetensors::Dtype;

use super::store::{
    check_labels, file_len, infer_classes, Elem, Layout, Records, Storage, StoredSet,
};
use super::{DataError, DataOptions, ImageShape};

/// The header of a `.npy` file and where its data starts.
#[derive(Clone, Debug)]
pub struct NpyInfo {
    /// The file.
    pub path: PathBuf,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// The NumPy type string, e.g. `|u1`, `<f4`.
    pub descr: String,
    /// Byte offset of element 0.
    pub data_start: u64,
    ty: npyz::TypeStr,
}

impl NpyInfo {
    /// Reads the header of `path` and checks that the data fits in the file.
    pub fn read(path: &Path) -> Result<NpyInfo, DataError> {
        let mut f = File::open(path).map_err(DataError::io(path))?;
        let header = NpyHeader::from_reader(&mut f)
            .map_err(|e| DataError::malformed(path, format!("not a valid .npy file: {e}")))?;
        let data_start = f.stream_position().map_err(DataError::io(path))?;
        if header.order() == Order::Fortran {
            return Err(DataError::malformed(
                path,
                "Fortran-ordered arrays are not supported (save with np.ascontiguousarray)",
            ));
        }
        let dtype = header.dtype();
        let npyz::DType::Plain(ty) = &dtype else {
            return Err(DataError::malformed(
                path,
                "a structured or array dtype; expected a plain numeric array",
            ));
        };
        let shape: Vec<usize> = header.shape().iter().map(|&d| d as usize).collect();
        let item = ty.num_bytes().unwrap_or(0) as u64;
        let need = shape
            .iter()
            .try_fold(item, |a, &d| a.checked_mul(d as u64))
            .ok_or_else(|| DataError::malformed(path, "array size overflows"))?;
        let size = file_len(path)?;
        if data_start + need > size {
            return Err(DataError::malformed(
                path,
                format!(
                    "truncated: shape {shape:?} of {} needs {need} data bytes, the file has {}",
                    ty,
                    size.saturating_sub(data_start)
                ),
            ));
        }
        Ok(NpyInfo {
            path: path.to_path_buf(),
            shape,
            descr: ty.to_string(),
            data_start,
            ty: ty.clone(),
        })
    }

    /// The pixel element type, if the dtype is one images may have.
    fn image_elem(&self) -> Result<Elem, DataError> {
        let t = &self.ty;
        match (t.type_char(), t.num_bytes(), t.endianness()) {
            (TypeChar::Uint, Some(1), _) => Ok(Elem::U8),
            (TypeChar::Float, Some(4), npyz::Endianness::Big) => Ok(Elem::F32Be),
            (TypeChar::Float, Some(4), _) => Ok(Elem::F32Le),
            _ => Err(DataError::malformed(
                &self.path,
                format!(
                    "images of dtype {}: expected uint8 (0..255) or float32 in [0, 1]",
                    self.descr
                ),
            )),
        }
    }
}

/// Reads a 1-D integer `.npy` (any integer dtype and byte order) as `i64`.
pub fn read_labels(path: &Path) -> Result<Vec<i64>, DataError> {
    let info = NpyInfo::read(path)?;
    if info.shape.len() != 1 {
        return Err(DataError::malformed(
            path,
            format!("labels of shape {:?}, expected [N]", info.shape),
        ));
    }
    let t = &info.ty;
    let f = BufReader::new(File::open(path).map_err(DataError::io(path))?);
    let npy = NpyFile::new(f).map_err(|e| DataError::malformed(path, e.to_string()))?;
    let bad =
        |e: &dyn std::fmt::Display| DataError::malformed(path, format!("reading labels: {e}"));
    macro_rules! ints {
        ($t:ty) => {
            npy.data::<$t>()
                .map_err(|e| bad(&e))?
                .map(|r| r.map(|v| v as i64).map_err(|e| bad(&e)))
                .collect::<Result<Vec<i64>, DataError>>()
        };
    }
    match (t.type_char(), t.num_bytes()) {
        (TypeChar::Uint, Some(1)) => ints!(u8),
        (TypeChar::Int, Some(1)) => ints!(i8),
        (TypeChar::Uint, Some(2)) => ints!(u16),
        (TypeChar::Int, Some(2)) => ints!(i16),
        (TypeChar::Uint, Some(4)) => ints!(u32),
        (TypeChar::Int, Some(4)) => ints!(i32),
        (TypeChar::Uint, Some(8)) => ints!(u64),
        (TypeChar::Int, Some(8)) => ints!(i64),
        _ => Err(DataError::malformed(
            path,
            format!("labels of dtype {}: expected an integer dtype", info.descr),
        )),
    }
}

/// Interprets an images array shape: returns the image count, one image's shape and layout.
pub fn image_shape(
    path: &Path,
    dims: &[usize],
    forced: Option<Layout>,
) -> Result<(usize, ImageShape, Layout), DataError> {
    let plausible = |c: usize| c == 1 || c == 3;
    match *dims {
        [n, h, w] => Ok((n, ImageShape::new(1, h, w), Layout::Chw)),
        [n, a, b, c] => {
            let layout = match forced {
                Some(l) => l,
                None => match (plausible(a), plausible(c)) {
                    (true, false) => Layout::Chw,
                    (false, true) => Layout::Hwc,
                    (true, true) => {
                        return Err(DataError::malformed(
                            path,
                            format!(
                                "images of shape {dims:?} could be NCHW or NHWC; give the layout"
                            ),
                        ))
                    }
                    (false, false) => {
                        return Err(DataError::malformed(
                            path,
                            format!(
                                "images of shape {dims:?}: neither axis 1 (NCHW) nor axis 3 \
                                 (NHWC) has 1 or 3 channels"
                            ),
                        ))
                    }
                },
            };
            let shape = match layout {
                Layout::Chw => ImageShape::new(a, b, c),
                Layout::Hwc => ImageShape::new(c, a, b),
            };
            if shape.is_empty() {
                return Err(DataError::malformed(path, format!("empty images {dims:?}")));
            }
            Ok((n, shape, layout))
        }
        _ => Err(DataError::malformed(
            path,
            format!("images of shape {dims:?}: expected [N,H,W,C], [N,C,H,W] or [N,H,W]"),
        )),
    }
}

/// Opens the images `.npy` at `path` as records (no labels yet): count, records.
pub(crate) fn image_records(
    path: &Path,
    forced: Option<Layout>,
) -> Result<(usize, Records), DataError> {
    let info = NpyInfo::read(path)?;
    let elem = info.image_elem()?;
    let (n, shape, layout) = image_shape(path, &info.shape, forced)?;
    let records = Records {
        path: path.to_path_buf(),
        storage: Storage::File {
            data_start: info.data_start,
        },
        elem,
        layout,
        record_bytes: 0,
        pixel_offset: 0,
        shape,
    };
    let record_bytes = records.image_bytes();
    Ok((
        n,
        Records {
            record_bytes,
            ..records
        },
    ))
}

/// The two files of a `.npy` pair: `DIR/images.npy` + `DIR/labels.npy` for a directory;
/// for a file `D/S.npy`, `D/S_labels.npy` if it exists, else `D/labels.npy`.
pub fn pair_paths(path: &Path) -> Result<(PathBuf, PathBuf), DataError> {
    let (images, labels) = if path.is_dir() {
        (path.join("images.npy"), path.join("labels.npy"))
    } else {
        let dir = path.parent().unwrap_or(Path::new("."));
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let own = dir.join(format!("{stem}_labels.npy"));
        let labels = if own.is_file() {
            own
        } else {
            dir.join("labels.npy")
        };
        (path.to_path_buf(), labels)
    };
    if !labels.is_file() {
        return Err(DataError::UnknownFormat {
            path: path.to_path_buf(),
            reason: format!(
                "images .npy without labels: `{}` does not exist",
                labels.display()
            ),
        });
    }
    Ok((images, labels))
}

/// Opens an images + labels `.npy` pair (see [`pair_paths`]).
pub fn open_pair(path: &Path, opts: &DataOptions) -> Result<StoredSet, DataError> {
    let (images, labels_path) = pair_paths(path)?;
    let (n, records) = image_records(&images, opts.layout)?;
    let labels = read_labels(&labels_path)?;
    if labels.len() != n {
        return Err(DataError::CountMismatch {
            images,
            n_images: n,
            labels: labels_path,
            n_labels: labels.len(),
        });
    }
    finish(
        records,
        labels,
        &labels_path,
        "images + labels (.npy)",
        opts,
    )
}

fn finish(
    records: Records,
    labels: Vec<i64>,
    labels_path: &Path,
    kind: &str,
    opts: &DataOptions,
) -> Result<StoredSet, DataError> {
    let classes = infer_classes(&labels, opts.classes);
    let len = opts.keep(labels.len());
    let labels = check_labels(labels_path, &labels[..len], classes, 0)?;
    Ok(StoredSet {
        kind: kind.into(),
        records,
        offset: 0,
        len,
        labels: Arc::new(labels),
        classes,
    })
}

/// Opens a safetensors file holding `images` and `labels`.
pub fn open_safetensors(path: &Path, opts: &DataOptions) -> Result<StoredSet, DataError> {
    let mut f = File::open(path).map_err(DataError::io(path))?;
    let mut len8 = [0u8; 8];
    f.read_exact(&mut len8)
        .map_err(|_| DataError::malformed(path, "not a safetensors file (shorter than 8 bytes)"))?;
    let header_len = u64::from_le_bytes(len8);
    let size = file_len(path)?;
    if header_len > size.saturating_sub(8) || header_len > 100 << 20 {
        return Err(DataError::malformed(
            path,
            format!("not a safetensors file (header length {header_len} in a {size}-byte file)"),
        ));
    }
    let mut head = vec![0u8; header_len as usize];
    f.read_exact(&mut head).map_err(DataError::io(path))?;
    // The header alone (SafeTensors::read_metadata wants the whole file in memory); offsets
    // and sizes are checked below for the two tensors we read.
    let meta: safetensors::tensor::Metadata = serde_json::from_slice(&head)
        .map_err(|e| DataError::malformed(path, format!("not a valid safetensors header: {e}")))?;
    let data_start = 8 + header_len;
    let tensors = meta.tensors();
    let get = |name: &str| {
        tensors.get(name).ok_or_else(|| {
            DataError::malformed(
                path,
                format!(
                    "no tensor `{name}` (an images + labels safetensors holds `images` and `labels`; found: {})",
                    tensors.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })
    };
    let img = get("images")?;
    let lab = get("labels")?;
    for (name, info) in [("images", img), ("labels", lab)] {
        let (s, e) = info.data_offsets;
        let bytes = info
            .shape
            .iter()
            .try_fold(info.dtype.size(), |a, &d| a.checked_mul(d));
        if e < s || bytes != Some(e - s) {
            return Err(DataError::malformed(
                path,
                format!("tensor `{name}`: its offsets do not fit its shape and dtype"),
            ));
        }
        if data_start + e as u64 > size {
            return Err(DataError::malformed(
                path,
                format!("truncated: tensor `{name}` runs past the end of the file"),
            ));
        }
    }
    let elem = match img.dtype {
        Dtype::U8 => Elem::U8,
        Dtype::F32 => Elem::F32Le,
        other => {
            return Err(DataError::malformed(
                path,
                format!("`images` of dtype {other:?}: expected U8 (0..255) or F32 in [0, 1]"),
            ))
        }
    };
    let (n, shape, layout) = image_shape(path, &img.shape, opts.layout)?;
    let records = Records {
        path: path.to_path_buf(),
        storage: Storage::File {
            data_start: data_start + img.data_offsets.0 as u64,
        },
        elem,
        layout,
        record_bytes: shape.len() * if elem == Elem::U8 { 1 } else { 4 },
        pixel_offset: 0,
        shape,
    };
    if lab.shape.len() != 1 {
        return Err(DataError::malformed(
            path,
            format!("`labels` of shape {:?}, expected [N]", lab.shape),
        ));
    }
    let (s, e) = lab.data_offsets;
    let mut raw = vec![0u8; e - s];
    f.seek(std::io::SeekFrom::Start(data_start + s as u64))
        .map_err(DataError::io(path))?;
    f.read_exact(&mut raw).map_err(DataError::io(path))?;
    let labels = decode_int_tensor(path, lab.dtype, &raw)?;
    if labels.len() != n {
        return Err(DataError::malformed(
            path,
            format!(
                "`images` holds {n} images but `labels` holds {} labels",
                labels.len()
            ),
        ));
    }
    finish(records, labels, path, "images + labels (safetensors)", opts)
}

/// Little-endian integers of a safetensors dtype as `i64`.
fn decode_int_tensor(path: &Path, dtype: Dtype, raw: &[u8]) -> Result<Vec<i64>, DataError> {
    macro_rules! le {
        ($t:ty) => {
            raw.chunks_exact(std::mem::size_of::<$t>())
                .map(|c| <$t>::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect()
        };
    }
    Ok(match dtype {
        Dtype::U8 => le!(u8),
        Dtype::I8 => le!(i8),
        Dtype::U16 => le!(u16),
        Dtype::I16 => le!(i16),
        Dtype::U32 => le!(u32),
        Dtype::I32 => le!(i32),
        Dtype::U64 => le!(u64),
        Dtype::I64 => le!(i64),
        other => {
            return Err(DataError::malformed(
                path,
                format!("`labels` of dtype {other:?}: expected an integer dtype"),
            ))
        }
    })
}
