//! CIFAR-10 and CIFAR-100 test sets in their binary and Python (pickle) distributions.
//!
//! Binary: fixed records, CIFAR-10 `label, 3072 pixels` and CIFAR-100 `coarse, fine, 3072
//! pixels` (the fine label is used), pixels as three 32×32 planes R, G, B. The file is read by
//! seeking; labels are read and checked once at open.
//!
//! Python: a pickled dict with `data` (uint8 `[N, 3072]`, same pixel order) and `labels`
//! (CIFAR-10) or `fine_labels` (CIFAR-100), decoded by [`super::pickle`].

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use super::pickle;
use super::store::{check_labels, file_len, Elem, Layout, Records, Storage, StoredSet};
use super::{DataError, DataOptions, ImageShape};

/// Which CIFAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cifar {
    /// CIFAR-10: 10 classes.
    C10,
    /// CIFAR-100: 100 fine classes.
    C100,
}

impl Cifar {
    /// Number of classes.
    pub fn classes(self) -> usize {
        match self {
            Cifar::C10 => 10,
            Cifar::C100 => 100,
        }
    }

    /// Label bytes before the pixels of a binary record.
    fn label_bytes(self) -> usize {
        match self {
            Cifar::C10 => 1,
            Cifar::C100 => 2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Cifar::C10 => "CIFAR-10",
            Cifar::C100 => "CIFAR-100",
        }
    }
}

/// Pixels of one CIFAR image (3 × 32 × 32).
pub const IMAGE_BYTES: usize = 3 * 32 * 32;

/// The CIFAR image shape.
pub const SHAPE: ImageShape = ImageShape {
    channels: 3,
    height: 32,
    width: 32,
};

/// Opens a CIFAR binary file (`test_batch.bin` or `test.bin`).
pub fn open_binary(path: &Path, which: Cifar, opts: &DataOptions) -> Result<StoredSet, DataError> {
    opts.check_classes(path, which.name(), which.classes())?;
    let record = which.label_bytes() + IMAGE_BYTES;
    let size = file_len(path)?;
    if size == 0 || size % record as u64 != 0 {
        return Err(DataError::malformed(
            path,
            format!(
                "size {size} bytes is not a positive multiple of the {record}-byte {} record \
                 ({} label byte{} + {IMAGE_BYTES} pixels): truncated, or not {} binary",
                which.name(),
                which.label_bytes(),
                if which.label_bytes() > 1 { "s" } else { "" },
                which.name()
            ),
        ));
    }
    let total = (size / record as u64) as usize;
    let len = opts.keep(total);
    // Labels of the kept images, read in one pass (bounded buffer); the fine label is the last
    // label byte of a record.
    let mut rdr = BufReader::with_capacity(1 << 16, File::open(path).map_err(DataError::io(path))?);
    let mut rec = vec![0u8; record];
    let mut raw = Vec::with_capacity(len);
    for _ in 0..len {
        rdr.read_exact(&mut rec).map_err(DataError::io(path))?;
        raw.push(i64::from(rec[which.label_bytes() - 1]));
    }
    let labels = check_labels(path, &raw, which.classes(), 0)?;
    Ok(StoredSet {
        kind: format!("{} (binary)", which.name()),
        records: Records {
            path: path.to_path_buf(),
            storage: Storage::File { data_start: 0 },
            elem: Elem::U8,
            layout: Layout::Chw,
            record_bytes: record,
            pixel_offset: which.label_bytes(),
            shape: SHAPE,
        },
        offset: 0,
        len,
        labels: Arc::new(labels),
        classes: which.classes(),
    })
}

/// Opens a CIFAR Python batch (`test_batch` or `test`); CIFAR-10 vs CIFAR-100 is told by the
/// label key (`labels` vs `fine_labels`).
pub fn open_pickle(path: &Path, opts: &DataOptions) -> Result<StoredSet, DataError> {
    let mut dict = pickle::dict_entries(path, pickle::load(path)?)?;
    let (which, key) = if dict.contains_key("fine_labels") {
        (Cifar::C100, "fine_labels")
    } else if dict.contains_key("labels") {
        (Cifar::C10, "labels")
    } else {
        return Err(DataError::malformed(
            path,
            format!(
                "a pickled dict without `labels` (CIFAR-10) or `fine_labels` (CIFAR-100); keys: {}",
                dict.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
    };
    opts.check_classes(path, which.name(), which.classes())?;
    let data = dict.remove("data").ok_or_else(|| {
        DataError::malformed(path, format!("{} pickle without `data`", which.name()))
    })?;
    let array = pickle::u8_array(path, "data", &data)?;
    if array.shape.len() != 2 || array.shape[1] != IMAGE_BYTES {
        return Err(DataError::malformed(
            path,
            format!(
                "`data` has shape {:?}, expected [N, {IMAGE_BYTES}]",
                array.shape
            ),
        ));
    }
    let labels = pickle::int_list(path, key, &dict[key])?;
    let n = array.shape[0];
    if labels.len() != n {
        return Err(DataError::malformed(
            path,
            format!(
                "`data` holds {n} images but `{key}` holds {} labels",
                labels.len()
            ),
        ));
    }
    let len = opts.keep(n);
    let labels = check_labels(path, &labels[..len], which.classes(), 0)?;
    let mut bytes = array.data;
    bytes.truncate(len * IMAGE_BYTES);
    Ok(StoredSet {
        kind: format!("{} (Python)", which.name()),
        records: Records {
            path: path.to_path_buf(),
            storage: Storage::Memory(Arc::new(bytes)),
            elem: Elem::U8,
            layout: Layout::Chw,
            record_bytes: IMAGE_BYTES,
            pixel_offset: 0,
            shape: SHAPE,
        },
        offset: 0,
        len,
        labels: Arc::new(labels),
        classes: which.classes(),
    })
}
