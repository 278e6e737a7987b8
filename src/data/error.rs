//! The one error type of the data component: every problem names the file (or directory) at
//! fault and what is wrong with it.

use std::path::PathBuf;

/// Why a dataset could not be opened or read, or an image not corrupted.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or directory could not be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The path is none of the dataset layouts pibench knows (see [`crate::data`]).
    #[error("`{path}`: {reason}")]
    UnknownFormat {
        /// What was given.
        path: PathBuf,
        /// What was looked for and not found.
        reason: String,
    },
    /// The file is of a known kind but its contents are wrong (truncated, a size that is not a
    /// multiple of the record, a shape or dtype that cannot hold images, a damaged header).
    #[error("`{path}`: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A label outside `0..classes`.
    #[error("`{path}`: image {index} has label {label}, but the dataset has {classes} classes")]
    BadLabel {
        /// The file holding the label.
        path: PathBuf,
        /// Index of the image (in file order).
        index: usize,
        /// The label found.
        label: i64,
        /// The number of classes.
        classes: usize,
    },
    /// Images and labels do not pair up.
    #[error("`{images}` holds {n_images} images but `{labels}` holds {n_labels} labels")]
    CountMismatch {
        /// The images file.
        images: PathBuf,
        /// How many images it holds.
        n_images: usize,
        /// The labels file.
        labels: PathBuf,
        /// How many labels it holds.
        n_labels: usize,
    },
    /// A float image with a value outside `[0, 1]` (or not finite).
    #[error("`{path}`: image {index} has pixel value {value}, outside [0, 1] (float images must be scaled to [0, 1])")]
    PixelRange {
        /// The file.
        path: PathBuf,
        /// Index of the image.
        index: usize,
        /// The value found.
        value: f32,
    },
    /// A class count given by the caller that the dataset cannot have.
    #[error("`{path}` is {dataset} with {found} classes, but {expected} were asked for (the model's card)")]
    ClassMismatch {
        /// The dataset.
        path: PathBuf,
        /// Its kind.
        dataset: String,
        /// Its class count.
        found: usize,
        /// The class count asked for.
        expected: usize,
    },
    /// A read past the end of a set (a caller's bug, reported rather than panicking).
    #[error("images {start}..{end} requested from a set of {len}")]
    Range {
        /// First image asked for.
        start: usize,
        /// One past the last.
        end: usize,
        /// Images in the set.
        len: usize,
    },
    /// A corruption name pibench does not know, or a severity outside 1..=5.
    #[error("{0}")]
    Corruption(String),
    /// A CIFAR-C directory lacks the named corruption.
    #[error("`{dir}` has no `{name}.npy`")]
    MissingCorruption {
        /// The directory.
        dir: PathBuf,
        /// The corruption's name.
        name: String,
    },
}

impl DataError {
    /// A [`DataError::Malformed`] for `path`.
    pub(crate) fn malformed(path: impl Into<PathBuf>, reason: impl Into<String>) -> DataError {
        DataError::Malformed {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// A [`DataError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DataError {
        let path = path.into();
        move |source| DataError::Io { path, source }
    }
}
