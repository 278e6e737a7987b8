//! The one error type of the model component: everything that can be wrong with a bundle, each
//! variant naming the op, tensor or metadata entry at fault.

use std::path::PathBuf;

/// Why a bundle could not be read, validated, built into a network, generated or written.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file could not be read or written.
    #[error("cannot access bundle `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a well-formed safetensors file (truncated, corrupt header, bad offsets).
    #[error("not a valid safetensors file: {reason}")]
    Corrupt {
        /// What is wrong.
        reason: String,
    },
    /// A required `__metadata__` entry is absent.
    #[error("bundle metadata has no `{key}` entry (is this a pibench bundle? see docs/FORMAT.md)")]
    MissingMetadata {
        /// The metadata key.
        key: &'static str,
    },
    /// A `__metadata__` entry is present but cannot be understood.
    #[error("bundle metadata `{key}` is invalid: {reason}")]
    InvalidMetadata {
        /// The metadata key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The bundle was written for a newer format than this build knows.
    #[error("bundle format version {found} is newer than the newest this pibench reads ({supported}); upgrade pibench")]
    NewerFormat {
        /// The version in the file.
        found: u64,
        /// The newest version this build reads.
        supported: u64,
    },
    /// An op kind the format does not define.
    #[error("op #{index} `{name}`: unknown op kind `{op}` (known: {known})")]
    UnknownOp {
        /// Position of the op in the graph.
        index: usize,
        /// The op's name (or `?` if it has none).
        name: String,
        /// The unknown kind.
        op: String,
        /// The kinds this build knows.
        known: &'static str,
    },
    /// An op whose fields are missing, of the wrong type or out of range.
    #[error("op #{index} `{name}`: {reason}")]
    InvalidOp {
        /// Position of the op in the graph.
        index: usize,
        /// The op's name (or `?` if it has none).
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// An op names a tensor the file does not hold.
    #[error("op `{op}` needs tensor `{tensor}`, which the bundle does not contain")]
    MissingTensor {
        /// The op.
        op: String,
        /// The tensor name.
        tensor: String,
    },
    /// A tensor has a dtype other than the one its use requires.
    #[error("tensor `{tensor}` (used by op `{op}`) has dtype {found}, expected {expected}")]
    WrongDtype {
        /// The op.
        op: String,
        /// The tensor name.
        tensor: String,
        /// The required dtype.
        expected: &'static str,
        /// The dtype in the file.
        found: String,
    },
    /// A tensor's shape is not the one its use requires.
    #[error("tensor `{tensor}` (used by op `{op}`) has shape {found:?}, expected {expected}")]
    WrongShape {
        /// The op.
        op: String,
        /// The tensor name.
        tensor: String,
        /// The required shape, e.g. `[64]` or `[O, I, kh, kw] with I = 3`.
        expected: String,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A ReLU mask whose shape is not the shape of the activation it masks.
    #[error(
        "mask `{tensor}` of ReLU `{op}` has shape {mask:?}, but the activation is {activation:?}"
    )]
    MaskShape {
        /// The ReLU op.
        op: String,
        /// The mask tensor.
        tensor: String,
        /// The activation's shape.
        activation: Vec<usize>,
        /// The mask's shape.
        mask: Vec<usize>,
    },
    /// A ReLU mask holding a value other than 0 or 1.
    #[error(
        "mask `{tensor}` of ReLU `{op}` holds {value} at element {element}; masks must be 0 or 1"
    )]
    MaskValue {
        /// The ReLU op.
        op: String,
        /// The mask tensor.
        tensor: String,
        /// Row-major index of the first bad element.
        element: usize,
        /// The bad value.
        value: u8,
    },
    /// A tensor holding values its use cannot accept (NaN, infinity, a negative variance).
    #[error("tensor `{tensor}` (used by op `{op}`): {reason}")]
    BadValue {
        /// The op.
        op: String,
        /// The tensor name.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// A parameter that is finite as stored but not once batch norm is applied: a batch norm's
    /// scale times a convolution's weight (folding), or `gamma / sqrt(var + eps)` itself,
    /// overflows f32.
    #[error(
        "op `{op}`: {what} {index} is {value} once batch norm is applied (folded into the \
         convolution or as a per-channel scale): it overflows f32; every parameter must be finite"
    )]
    NonFiniteParameter {
        /// The op holding the parameter.
        op: String,
        /// Which parameter: `weight`, `bias`, `scale` or `shift`.
        what: &'static str,
        /// Its index.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// A batch-norm path the model does not have.
    #[error(
        "--bn {requested}: this model has one batch norm per layer, so it has only the `clean` \
         path (`adv` exists only in dual-BN models such as RLNet's)"
    )]
    NoSuchBnPath {
        /// The path asked for.
        requested: String,
    },
    /// Shapes do not chain through an op.
    #[error("op `{op}`: {reason}")]
    ShapeMismatch {
        /// The op.
        op: String,
        /// What does not fit.
        reason: String,
    },
    /// An op reads a value that is not produced before it.
    #[error("op `{op}` reads `{value}`, {reason}")]
    UnknownValue {
        /// The reading op (or `graph output`).
        op: String,
        /// The value name.
        value: String,
        /// Whether it is produced later or never.
        reason: String,
    },
    /// Two ops (or an op and the input) share a name.
    #[error("the name `{name}` is used by more than one op (or by an op and the input)")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// The model card disagrees with the graph or the masks.
    #[error("model card says {field} = {card}, but the bundle has {actual}")]
    CardMismatch {
        /// The card field.
        field: &'static str,
        /// What the card says.
        card: String,
        /// What the graph and masks say.
        actual: String,
    },
    /// A shape or tensor beyond the sizes pibench accepts (guards against corrupt shapes).
    #[error("op `{op}`: {what} is too large ({size} elements; the limit is {limit})")]
    TooLarge {
        /// The op.
        op: String,
        /// What is too large.
        what: String,
        /// Its size (saturated).
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A generation request that cannot be honoured.
    #[error("cannot generate bundle: {reason}")]
    Gen {
        /// What is wrong.
        reason: String,
    },
    /// Serializing a bundle failed.
    #[error("cannot serialize bundle: {reason}")]
    Write {
        /// What failed.
        reason: String,
    },
}
