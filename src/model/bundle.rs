//! Loading a bundle: the safetensors container, its `pibench.*` metadata, and the construction
//! of the [`Network`] IR with every check of docs/FORMAT.md (names, shapes, dtypes, masks, card),
//! batch-norm folding and synthetic-weight materialization.
//!
//! Nothing here trusts the file: every size read from it is bounded and every product checked,
//! so a corrupt or hostile bundle gives a [`ModelError`], never a panic or a huge allocation.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use safetensors::{Dtype, SafeTensorError, SafeTensors};

use super::card::ModelCard;
use super::error::ModelError;
use super::graph::{
    BnPath, ChannelAffine, Conv2d, Layer, Linear, Mask, Network, Op, Shape, ValueId,
};
use super::raw::{
    RawAdd, RawAvgPool, RawBnParams, RawConv2d, RawFlatten, RawGraph, RawLinear, RawMaxPool, RawOp,
    RawRelu,
};
use super::synth::{he_normal, Synthetic};

/// The newest bundle format version this build reads.
pub const FORMAT_VERSION: u64 = 1;

/// Metadata key of the format version.
pub const KEY_FORMAT: &str = "pibench.format";
/// Metadata key of the graph.
pub const KEY_GRAPH: &str = "pibench.graph";
/// Metadata key of the model card.
pub const KEY_CARD: &str = "pibench.card";
/// Metadata key of the synthetic-weight seed.
pub const KEY_SYNTHETIC: &str = "pibench.synthetic";
/// Metadata key marking a public bundle (weights withheld; see [`super::public`]).
pub const KEY_PUBLIC: &str = "pibench.public";

/// Largest activation accepted, in elements (64 Mi: a 512×512×256 map), so corrupt shapes
/// cannot ask for absurd buffers downstream.
pub const MAX_ACTIVATION_ELEMENTS: usize = 1 << 26;
/// Largest single weight tensor accepted, in elements (128 Mi, 512 MiB of f32; VGG16's largest
/// layer has 103 Mi).
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 27;
/// Most synthetic weight elements one network may materialize in total (1 GiB of f32).
pub const MAX_SYNTHETIC_ELEMENTS: usize = 1 << 28;

/// Where one tensor lives in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorMeta {
    /// Element type.
    pub dtype: Dtype,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Byte range in the whole file.
    range: (usize, usize),
}

/// A parsed bundle: the file's bytes, its tensor directory, and its metadata. Building the
/// [`Network`] (which decodes, checks and folds the tensors) is [`Bundle::network`].
pub struct Bundle {
    bytes: Vec<u8>,
    tensors: HashMap<String, TensorMeta>,
    format: u64,
    graph: RawGraph,
    card: ModelCard,
    synthetic: Option<Synthetic>,
    public: bool,
}

impl std::fmt::Debug for Bundle {
    // Weights are the server's secret: show the directory, never the data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field("bytes", &self.bytes.len())
            .field("tensors", &self.tensors.len())
            .field("format", &self.format)
            .field("ops", &self.graph.ops.len())
            .field("card", &self.card)
            .field("synthetic", &self.synthetic)
            .field("public", &self.public)
            .finish()
    }
}

/// Whether this process opens the bundle file at `path` for the first time (by its canonical
/// path when it has one).
fn first_load_of(path: &Path) -> bool {
    static OPENED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    OPENED.lock().unwrap_or_else(|p| p.into_inner()).insert(key)
}

impl Bundle {
    /// Reads and parses a bundle file.
    pub fn open(path: impl AsRef<Path>) -> Result<Bundle, ModelError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let bundle = Bundle::parse(bytes)?;
        // A sweep or an evaluation opens each bundle many times: its warning is said once.
        if first_load_of(path) {
            bundle.warn_missing_preprocessing();
        }
        Ok(bundle)
    }

    /// Parses a bundle held in memory (copies the bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Bundle, ModelError> {
        Bundle::from_vec(bytes.to_vec())
    }

    /// Parses a bundle, taking ownership of its bytes.
    pub fn from_vec(bytes: Vec<u8>) -> Result<Bundle, ModelError> {
        let bundle = Bundle::parse(bytes)?;
        bundle.warn_missing_preprocessing();
        Ok(bundle)
    }

    /// Warns when a trained bundle's card has no preprocessing record (synthetic bundles have
    /// no trained input statistics to get wrong).
    fn warn_missing_preprocessing(&self) {
        if self.card.synthetic {
            return;
        }
        if let Some(w) = self.card.missing_preprocessing_warning() {
            eprintln!("warning: {w}");
        }
    }

    fn parse(bytes: Vec<u8>) -> Result<Bundle, ModelError> {
        precheck_offsets(&bytes)?;
        let (header_len, metadata) = SafeTensors::read_metadata(&bytes).map_err(corrupt)?;
        let data_start = 8 + header_len;
        let mut tensors = HashMap::new();
        for (name, info) in metadata.tensors() {
            let (s, e) = info.data_offsets;
            let range = (
                data_start.checked_add(s).ok_or_else(overflow)?,
                data_start.checked_add(e).ok_or_else(overflow)?,
            );
            if range.1 > bytes.len() || range.0 > range.1 {
                return Err(ModelError::Corrupt {
                    reason: format!("tensor `{name}` lies outside the file"),
                });
            }
            tensors.insert(
                name,
                TensorMeta {
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    range,
                },
            );
        }
        let meta = metadata.metadata().clone().unwrap_or_default();
        let get = |key: &'static str| {
            meta.get(key)
                .map(String::as_str)
                .ok_or(ModelError::MissingMetadata { key })
        };

        let format_text = get(KEY_FORMAT)?;
        let format: u64 = format_text
            .trim()
            .parse()
            .map_err(|_| ModelError::InvalidMetadata {
                key: KEY_FORMAT,
                reason: format!("`{format_text}` is not a version number"),
            })?;
        if format == 0 {
            return Err(ModelError::InvalidMetadata {
                key: KEY_FORMAT,
                reason: "version 0 does not exist".into(),
            });
        }
        if format > FORMAT_VERSION {
            return Err(ModelError::NewerFormat {
                found: format,
                supported: FORMAT_VERSION,
            });
        }
        let graph = RawGraph::from_json(get(KEY_GRAPH)?)?;
        let card: ModelCard =
            serde_json::from_str(get(KEY_CARD)?).map_err(|e| ModelError::InvalidMetadata {
                key: KEY_CARD,
                reason: e.to_string(),
            })?;
        if let Some(pre) = &card.preprocessing {
            let channels = graph.input.shape.first().copied().unwrap_or(0);
            pre.validate(channels)
                .map_err(|e| ModelError::InvalidMetadata {
                    key: KEY_CARD,
                    reason: e.to_string(),
                })?;
        }
        let synthetic = match meta.get(KEY_SYNTHETIC) {
            None => None,
            Some(text) => Some(serde_json::from_str::<Synthetic>(text).map_err(|e| {
                ModelError::InvalidMetadata {
                    key: KEY_SYNTHETIC,
                    reason: format!("expected {{\"seed\": N}}: {e}"),
                }
            })?),
        };
        // A public bundle's weights are placeholders: it must say so, and be synthetic so that
        // the placeholders are materialized rather than missing.
        let public = meta.contains_key(KEY_PUBLIC);
        if public && synthetic.is_none() {
            return Err(ModelError::InvalidMetadata {
                key: KEY_PUBLIC,
                reason: format!("a public bundle must also have `{KEY_SYNTHETIC}`"),
            });
        }
        Ok(Bundle {
            bytes,
            tensors,
            format,
            graph,
            card,
            synthetic,
            public,
        })
    }

    /// The format version the file declares.
    pub fn format_version(&self) -> u64 {
        self.format
    }

    /// The graph as stored.
    pub fn graph(&self) -> &RawGraph {
        &self.graph
    }

    /// The model card as stored.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// The synthetic-weight seed, if the bundle has one.
    pub fn synthetic(&self) -> Option<Synthetic> {
        self.synthetic
    }

    /// Whether this is a public bundle (graph, shapes, masks and card; weights withheld and
    /// replaced by placeholders): enough for a client, useless for computing.
    pub fn is_public(&self) -> bool {
        self.public
    }

    /// Whether the graph has a `dual_batchnorm` op (so the batch-norm path matters).
    pub fn has_dual_bn(&self) -> bool {
        self.graph
            .ops
            .iter()
            .any(|op| matches!(op, RawOp::DualBatchNorm(_)))
    }

    /// Names of the tensors stored in the file, sorted.
    pub fn tensor_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Dtype and shape of a stored tensor.
    pub fn tensor_meta(&self, name: &str) -> Option<&TensorMeta> {
        self.tensors.get(name)
    }

    /// Raw little-endian bytes of a stored tensor.
    pub fn tensor_bytes(&self, name: &str) -> Option<&[u8]> {
        self.tensors
            .get(name)
            .map(|m| &self.bytes[m.range.0..m.range.1])
    }

    /// Builds the network for one batch-norm path: resolves names, checks every shape, dtype and
    /// mask, folds batch norm into the preceding convolution where it may, materializes
    /// synthetic weights, and checks the card against the result.
    pub fn network(&self, bn_path: BnPath) -> Result<Network, ModelError> {
        self.check_bn_path(bn_path)?;
        Builder::new(self, bn_path, true)?.build()
    }

    /// Refuses the `adv` path of a model without dual batch norm: it would silently run the
    /// clean weights under another name.
    fn check_bn_path(&self, bn_path: BnPath) -> Result<(), ModelError> {
        if bn_path == BnPath::Adv && !self.has_dual_bn() {
            return Err(ModelError::NoSuchBnPath {
                requested: bn_path.to_string(),
            });
        }
        Ok(())
    }

    /// As [`Bundle::network`] but with every batch norm kept as its own
    /// [`Op::ChannelAffine`] layer named after the batch-norm op: for checking folding and for
    /// calibrating batch-norm statistics.
    pub fn network_unfolded(&self, bn_path: BnPath) -> Result<Network, ModelError> {
        self.check_bn_path(bn_path)?;
        Builder::new(self, bn_path, false)?.build()
    }
}

fn overflow() -> ModelError {
    ModelError::Corrupt {
        reason: "tensor offsets overflow".into(),
    }
}

/// The safetensors crate adds offsets without overflow checks after validating them; reject
/// offsets beyond the file first so no corrupt header reaches that arithmetic.
fn precheck_offsets(bytes: &[u8]) -> Result<(), ModelError> {
    let Some(len_bytes) = bytes.get(..8) else {
        return Err(ModelError::Corrupt {
            reason: format!(
                "the file has {} bytes, fewer than the 8-byte header length",
                bytes.len()
            ),
        });
    };
    let mut arr = [0u8; 8];
    arr.copy_from_slice(len_bytes);
    let n = u64::from_le_bytes(arr);
    let available = (bytes.len() - 8) as u64;
    if n > available {
        return Err(ModelError::Corrupt {
            reason: format!(
                "the header claims {n} bytes but only {available} follow (truncated file?)"
            ),
        });
    }
    let header = &bytes[8..8 + n as usize];
    let parsed: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header)
        .map_err(|e| ModelError::Corrupt {
            reason: format!("the header is not a JSON object: {e}"),
        })?;
    for (name, info) in &parsed {
        if name == "__metadata__" {
            continue;
        }
        let end = info
            .get("data_offsets")
            .and_then(|o| o.as_array())
            .and_then(|a| a.get(1))
            .and_then(|e| e.as_u64());
        if let Some(end) = end {
            if end > available - n {
                return Err(ModelError::Corrupt {
                    reason: format!(
                        "tensor `{name}` ends at data byte {end}, beyond the end of the file (truncated file?)"
                    ),
                });
            }
        }
    }
    Ok(())
}

fn corrupt(e: SafeTensorError) -> ModelError {
    let reason = match e {
        SafeTensorError::HeaderTooSmall => "the file is shorter than 8 bytes".to_string(),
        SafeTensorError::HeaderTooLarge => "the header is larger than 100 MB".to_string(),
        SafeTensorError::InvalidHeaderLength => {
            "the header length exceeds the file (truncated file?)".to_string()
        }
        SafeTensorError::InvalidHeader => "the header is not UTF-8".to_string(),
        SafeTensorError::InvalidHeaderStart => "the header does not start with `{`".to_string(),
        SafeTensorError::InvalidHeaderDeserialization => {
            "the header is not a valid safetensors directory (bad JSON, dtype or offsets)"
                .to_string()
        }
        SafeTensorError::InvalidOffset(name) => {
            format!("tensor `{name}` has data offsets that do not follow the previous tensor")
        }
        SafeTensorError::TensorInvalidInfo => {
            "a tensor's byte length disagrees with its shape and dtype".to_string()
        }
        SafeTensorError::MetadataIncompleteBuffer => {
            "the tensor data does not end where the file does (truncated file or trailing bytes)"
                .to_string()
        }
        SafeTensorError::ValidationOverflow => {
            "a tensor shape overflows when multiplied out".to_string()
        }
        other => format!("{other}"),
    };
    ModelError::Corrupt { reason }
}

fn dtype_name(d: Dtype) -> String {
    format!("{d:?}")
}

fn shape_str(v: &[usize]) -> String {
    format!("{v:?}")
}

/// Product of dimensions, `None` on overflow.
fn product(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Output size of a window of `k` sliding by `s` over `n` padded by `p` on both sides.
fn window_out(n: usize, k: usize, s: usize, p: usize) -> Option<usize> {
    let padded = n.checked_add(p.checked_mul(2)?)?;
    let span = padded.checked_sub(k)?;
    Some(span / s + 1)
}

/// Walks the raw graph once, building layers.
/// An op whose own fields are invalid (the reason names what).
fn invalid(index: usize, name: &str, reason: String) -> ModelError {
    ModelError::InvalidOp {
        index,
        name: name.to_string(),
        reason,
    }
}

/// A pooling window must be at least 1 wide and move by at least 1.
fn check_window(index: usize, name: &str, kernel: usize, stride: usize) -> Result<(), ModelError> {
    if kernel == 0 || stride == 0 {
        return Err(invalid(
            index,
            name,
            "kernel and stride must be at least 1".into(),
        ));
    }
    Ok(())
}

/// The output size of a pooling window on an `h×w` map, or why it does not fit.
fn pooled(
    name: &str,
    (h, w): (usize, usize),
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Result<(usize, usize), ModelError> {
    match (
        window_out(h, kernel, stride, padding),
        window_out(w, kernel, stride, padding),
    ) {
        (Some(oh), Some(ow)) => Ok((oh, ow)),
        _ => Err(ModelError::ShapeMismatch {
            op: name.to_string(),
            reason: format!("window {kernel} does not fit the {h}×{w} input"),
        }),
    }
}

struct Builder<'a> {
    b: &'a Bundle,
    bn_path: BnPath,
    fold: bool,
    input_shape: Shape,
    layers: Vec<Layer>,
    /// Value name → where it lives (a folded batch norm maps to its convolution's layer).
    values: HashMap<&'a str, ValueId>,
    /// Op name → its position in the raw graph (to tell "produced later" from "never").
    position: HashMap<&'a str, usize>,
    /// Value name → how many ops (and the graph output) read it.
    readers: HashMap<&'a str, usize>,
    /// Conv op name → its layer, for folding.
    conv_layers: HashMap<&'a str, usize>,
    sites: usize,
    synthetic_elements: usize,
}

impl<'a> Builder<'a> {
    fn new(b: &'a Bundle, bn_path: BnPath, fold: bool) -> Result<Self, ModelError> {
        let g = &b.graph;
        let input_op = "graph input";
        let dims = &g.input.shape;
        let input_shape = match dims[..] {
            [c, h, w] if c > 0 && h > 0 && w > 0 => Shape::Chw(c, h, w),
            _ => {
                return Err(ModelError::ShapeMismatch {
                    op: input_op.into(),
                    reason: format!(
                        "input shape {} is not [C, H, W] with positive sizes",
                        shape_str(dims)
                    ),
                })
            }
        };
        check_activation(input_op, dims)?;

        let mut position = HashMap::new();
        let mut names = HashSet::new();
        names.insert(g.input.name.as_str());
        for (i, op) in g.ops.iter().enumerate() {
            if !names.insert(op.name()) {
                return Err(ModelError::DuplicateName {
                    name: op.name().to_string(),
                });
            }
            position.insert(op.name(), i);
        }
        let mut readers: HashMap<&str, usize> = HashMap::new();
        for op in &g.ops {
            for v in op.inputs() {
                *readers.entry(v).or_default() += 1;
            }
        }
        if let Some(out) = g.output_name() {
            *readers.entry(out).or_default() += 1;
        }
        let mut values = HashMap::new();
        values.insert(g.input.name.as_str(), ValueId::Input);
        Ok(Builder {
            b,
            bn_path,
            fold,
            input_shape,
            layers: Vec::with_capacity(g.ops.len()),
            values,
            position,
            readers,
            conv_layers: HashMap::new(),
            sites: 0,
            synthetic_elements: 0,
        })
    }

    fn build(mut self) -> Result<Network, ModelError> {
        let g = &self.b.graph;
        if g.ops.is_empty() {
            return Err(ModelError::InvalidMetadata {
                key: KEY_GRAPH,
                reason: "the graph has no ops".into(),
            });
        }
        for (index, op) in g.ops.iter().enumerate() {
            self.op(index, op)?;
        }
        let out_name = g.output_name().unwrap_or_default();
        let output = self.resolve("graph output", out_name)?;
        let mut dual_bn = false;
        for op in &g.ops {
            dual_bn |= matches!(op, RawOp::DualBatchNorm(_));
        }
        let net = Network {
            card: self.b.card.clone(),
            bn_path: self.bn_path,
            dual_bn,
            input_shape: self.input_shape,
            layers: self.layers,
            output,
        };
        check_card(&net, &g.input.shape)?;
        check_finite_parameters(&net)?;
        Ok(net)
    }

    /// Where a value lives, or why it cannot be read here.
    fn resolve(&self, op: &str, value: &str) -> Result<ValueId, ModelError> {
        if let Some(&v) = self.values.get(value) {
            return Ok(v);
        }
        let reason = match self.position.get(value) {
            Some(&p) => format!("which is produced only later (by op #{p})"),
            None => "which no op produces".to_string(),
        };
        Err(ModelError::UnknownValue {
            op: op.to_string(),
            value: value.to_string(),
            reason,
        })
    }

    fn shape(&self, v: ValueId) -> Shape {
        match v {
            ValueId::Input => self.input_shape,
            ValueId::Layer(i) => self.layers[i].out_shape,
        }
    }

    fn chw(&self, op: &str, v: ValueId, kind: &str) -> Result<(usize, usize, usize), ModelError> {
        match self.shape(v) {
            Shape::Chw(c, h, w) => Ok((c, h, w)),
            Shape::Flat(n) => Err(ModelError::ShapeMismatch {
                op: op.to_string(),
                reason: format!("{kind} needs a [C, H, W] input but reads a flat value of {n}"),
            }),
        }
    }

    fn push(&mut self, name: &'a str, op: Op, inputs: Vec<ValueId>, out_shape: Shape) {
        let id = ValueId::Layer(self.layers.len());
        self.layers.push(Layer {
            name: name.to_string(),
            op,
            inputs,
            out_shape,
        });
        self.values.insert(name, id);
    }

    fn meta(&self, op: &str, tensor: &str) -> Result<&'a TensorMeta, ModelError> {
        self.b
            .tensors
            .get(tensor)
            .ok_or_else(|| ModelError::MissingTensor {
                op: op.to_string(),
                tensor: tensor.to_string(),
            })
    }

    /// Decodes a stored F32 tensor of exactly `shape`, rejecting non-finite values.
    fn f32_tensor(&self, op: &str, tensor: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError> {
        let meta = self.meta(op, tensor)?;
        if meta.dtype != Dtype::F32 {
            return Err(ModelError::WrongDtype {
                op: op.to_string(),
                tensor: tensor.to_string(),
                expected: "F32",
                found: dtype_name(meta.dtype),
            });
        }
        if meta.shape != shape {
            return Err(ModelError::WrongShape {
                op: op.to_string(),
                tensor: tensor.to_string(),
                expected: shape_str(shape),
                found: meta.shape.clone(),
            });
        }
        decode_f32(op, tensor, &self.b.bytes[meta.range.0..meta.range.1])
    }

    /// A stored weight, or the synthetic one when the file lacks it and has a seed.
    fn weight(
        &mut self,
        op: &str,
        tensor: &str,
        shape: &[usize],
        fan_in: usize,
    ) -> Result<Vec<f32>, ModelError> {
        if self.b.tensors.contains_key(tensor) {
            return self.f32_tensor(op, tensor, shape);
        }
        let Some(syn) = self.b.synthetic else {
            return Err(ModelError::MissingTensor {
                op: op.to_string(),
                tensor: tensor.to_string(),
            });
        };
        let n = product(shape).unwrap_or(usize::MAX);
        let total = self.synthetic_elements.saturating_add(n);
        if total > MAX_SYNTHETIC_ELEMENTS {
            return Err(ModelError::TooLarge {
                op: op.to_string(),
                what: "the synthetic weights of the network".into(),
                size: total,
                limit: MAX_SYNTHETIC_ELEMENTS,
            });
        }
        self.synthetic_elements = total;
        Ok(he_normal(syn.seed, tensor, n, fan_in))
    }

    /// A bias: zeros when the op names none, or names one a synthetic bundle omits.
    fn bias(&self, op: &str, tensor: Option<&str>, n: usize) -> Result<Vec<f32>, ModelError> {
        match tensor {
            None => Ok(vec![0.0; n]),
            Some(t) if !self.b.tensors.contains_key(t) && self.b.synthetic.is_some() => {
                Ok(vec![0.0; n])
            }
            Some(t) => self.f32_tensor(op, t, &[n]),
        }
    }

    fn op(&mut self, index: usize, raw: &'a RawOp) -> Result<(), ModelError> {
        let name = raw.name();
        match raw {
            RawOp::Conv2d(c) => self.conv2d(index, name, c),
            RawOp::BatchNorm(bn) => self.batchnorm(index, name, &bn.input, &bn.params, bn.eps),
            RawOp::DualBatchNorm(bn) => {
                let params = match self.bn_path {
                    BnPath::Clean => &bn.clean,
                    BnPath::Adv => &bn.adv,
                };
                self.batchnorm(index, name, &bn.input, params, bn.eps)
            }
            RawOp::Relu(r) => self.relu(name, r),
            RawOp::Add(a) => self.add(index, name, a),
            RawOp::AvgPool(p) => self.avgpool(index, name, p),
            RawOp::MaxPool(p) => self.maxpool(index, name, p),
            RawOp::Flatten(f) => self.flatten(name, f),
            RawOp::Linear(l) => self.linear(index, name, l),
        }
    }

    /// A convolution: its weight tensor (or synthetic shape) checked against the input.
    fn conv2d(&mut self, index: usize, name: &'a str, c: &'a RawConv2d) -> Result<(), ModelError> {
        let x = self.resolve(name, &c.input)?;
        let (ci, h, w) = self.chw(name, x, "conv2d")?;
        if c.stride == 0 {
            return Err(invalid(index, name, "stride must be at least 1".into()));
        }
        let field_kernel = c.kernel.map(|k| k.dims());
        let (o, kh, kw) = match self.b.tensors.get(c.weight.as_str()) {
                Some(meta) => {
                    let s = &meta.shape;
                    let expected = format!(
                        "[O, I, kh, kw] with I = {ci} (the input's channels){}{}",
                        c.out_channels
                            .map(|o| format!(", O = {o}"))
                            .unwrap_or_default(),
                        field_kernel
                            .map(|(a, b)| format!(", kh×kw = {a}×{b}"))
                            .unwrap_or_default()
                    );
                    let wrong = || ModelError::WrongShape {
                        op: name.to_string(),
                        tensor: c.weight.clone(),
                        expected: expected.clone(),
                        found: s.clone(),
                    };
                    if s.len() != 4 {
                        return Err(wrong());
                    }
                    if s[1] != ci {
                        return Err(ModelError::ShapeMismatch {
                            op: name.to_string(),
                            reason: format!(
                                "weight `{}` expects {} input channels but the input `{}` has {ci}",
                                c.weight, s[1], c.input
                            ),
                        });
                    }
                    if c.out_channels.is_some_and(|o| o != s[0])
                        || field_kernel.is_some_and(|k| k != (s[2], s[3]))
                    {
                        return Err(wrong());
                    }
                    (s[0], s[2], s[3])
                }
                None if self.b.synthetic.is_some() => {
                    match (c.out_channels, field_kernel) {
                        (Some(o), Some((kh, kw))) => (o, kh, kw),
                        _ => {
                            return Err(invalid(index, name, format!(
                                "weight `{}` is synthetic (not stored), so the op must give `out_channels` and `kernel`",
                                c.weight
                            )))
                        }
                    }
                }
                None => {
                    return Err(ModelError::MissingTensor {
                        op: name.to_string(),
                        tensor: c.weight.clone(),
                    })
                }
            };
        if o == 0 || kh == 0 || kw == 0 {
            return Err(invalid(
                index,
                name,
                format!("empty convolution: {o} output channels, kernel {kh}×{kw}"),
            ));
        }
        let wshape = [o, ci, kh, kw];
        check_tensor(name, &c.weight, &wshape)?;
        let (oh, ow) = match (
            window_out(h, kh, c.stride, c.padding),
            window_out(w, kw, c.stride, c.padding),
        ) {
            (Some(oh), Some(ow)) => (oh, ow),
            _ => {
                return Err(ModelError::ShapeMismatch {
                    op: name.to_string(),
                    reason: format!(
                        "kernel {kh}×{kw} does not fit the {h}×{w} input padded by {}",
                        c.padding
                    ),
                })
            }
        };
        check_activation(name, &[o, oh, ow])?;
        let weight = self.weight(name, &c.weight, &wshape, ci * kh * kw)?;
        let bias = self.bias(name, c.bias.as_deref(), o)?;
        self.conv_layers.insert(name, self.layers.len());
        self.push(
            name,
            Op::Conv2d(Conv2d {
                out_channels: o,
                in_channels: ci,
                kernel: (kh, kw),
                stride: c.stride,
                padding: c.padding,
                weight,
                bias,
            }),
            vec![x],
            Shape::Chw(o, oh, ow),
        );
        Ok(())
    }

    /// A ReLU site, with its mask when it has one.
    fn relu(&mut self, name: &'a str, r: &'a RawRelu) -> Result<(), ModelError> {
        let x = self.resolve(name, &r.input)?;
        let shape = self.shape(x);
        let mask = match &r.mask {
            None => None,
            Some(t) => Some(self.mask(name, t, shape)?),
        };
        let site = self.sites;
        self.sites += 1;
        self.push(name, Op::Relu { site, mask }, vec![x], shape);
        Ok(())
    }

    /// A residual add of two values of one shape.
    fn add(&mut self, index: usize, name: &'a str, a: &'a RawAdd) -> Result<(), ModelError> {
        let [l, r] = &a.inputs[..] else {
            return Err(invalid(
                index,
                name,
                format!("`add` takes exactly two inputs, got {}", a.inputs.len()),
            ));
        };
        let lv = self.resolve(name, l)?;
        let rv = self.resolve(name, r)?;
        let (ls, rs) = (self.shape(lv), self.shape(rv));
        if ls != rs {
            return Err(ModelError::ShapeMismatch {
                op: name.to_string(),
                reason: format!(
                    "operands differ in shape: `{l}` is {} and `{r}` is {}",
                    shape_str(&ls.dims()),
                    shape_str(&rs.dims())
                ),
            });
        }
        self.push(name, Op::Add, vec![lv, rv], ls);
        Ok(())
    }

    /// An average pool, windowed or global.
    fn avgpool(
        &mut self,
        index: usize,
        name: &'a str,
        p: &'a RawAvgPool,
    ) -> Result<(), ModelError> {
        let x = self.resolve(name, &p.input)?;
        let (c, h, w) = self.chw(name, x, "avgpool")?;
        let (kernel, stride) = if p.global {
            if h != w {
                return Err(ModelError::ShapeMismatch {
                    op: name.to_string(),
                    reason: format!(
                        "global average pooling of a non-square {h}×{w} map is not supported"
                    ),
                });
            }
            (h, h)
        } else {
            let Some(k) = p.kernel else {
                return Err(invalid(
                    index,
                    name,
                    "avgpool needs `\"global\": true` or a `kernel`".into(),
                ));
            };
            (k, p.stride.unwrap_or(k))
        };
        check_window(index, name, kernel, stride)?;
        let (oh, ow) = pooled(name, (h, w), kernel, stride, 0)?;
        self.push(
            name,
            Op::AvgPool { kernel, stride },
            vec![x],
            Shape::Chw(c, oh, ow),
        );
        Ok(())
    }

    /// A max pool.
    fn maxpool(
        &mut self,
        index: usize,
        name: &'a str,
        p: &'a RawMaxPool,
    ) -> Result<(), ModelError> {
        let x = self.resolve(name, &p.input)?;
        let (c, h, w) = self.chw(name, x, "maxpool")?;
        let kernel = p.kernel;
        let stride = p.stride.unwrap_or(kernel);
        check_window(index, name, kernel, stride)?;
        if p.padding > kernel / 2 {
            return Err(invalid(
                index,
                name,
                format!("padding {} exceeds half the window {kernel}", p.padding),
            ));
        }
        let (oh, ow) = pooled(name, (h, w), kernel, stride, p.padding)?;
        self.push(
            name,
            Op::MaxPool {
                kernel,
                stride,
                padding: p.padding,
            },
            vec![x],
            Shape::Chw(c, oh, ow),
        );
        Ok(())
    }

    /// A flatten to `[C·H·W]`.
    fn flatten(&mut self, name: &'a str, f: &'a RawFlatten) -> Result<(), ModelError> {
        let x = self.resolve(name, &f.input)?;
        let n = self.shape(x).elements();
        self.push(name, Op::Flatten, vec![x], Shape::Flat(n));
        Ok(())
    }

    /// A fully connected layer on a flat value.
    fn linear(&mut self, index: usize, name: &'a str, l: &'a RawLinear) -> Result<(), ModelError> {
        let x = self.resolve(name, &l.input)?;
        let i = match self.shape(x) {
            Shape::Flat(n) => n,
            Shape::Chw(c, h, w) => {
                return Err(ModelError::ShapeMismatch {
                    op: name.to_string(),
                    reason: format!(
                        "linear reads `{}` of shape [{c}, {h}, {w}]; flatten it first",
                        l.input
                    ),
                })
            }
        };
        let o = match self.b.tensors.get(l.weight.as_str()) {
            Some(meta) => {
                let s = &meta.shape;
                if s.len() != 2 || l.out_features.is_some_and(|o| o != s[0]) {
                    return Err(ModelError::WrongShape {
                        op: name.to_string(),
                        tensor: l.weight.clone(),
                        expected: format!(
                            "[O, I] with I = {i}{}",
                            l.out_features
                                .map(|o| format!(", O = {o}"))
                                .unwrap_or_default()
                        ),
                        found: s.clone(),
                    });
                }
                if s[1] != i {
                    return Err(ModelError::ShapeMismatch {
                        op: name.to_string(),
                        reason: format!(
                            "weight `{}` expects {} inputs but `{}` has {i} elements",
                            l.weight, s[1], l.input
                        ),
                    });
                }
                s[0]
            }
            None if self.b.synthetic.is_some() => match l.out_features {
                Some(o) => o,
                None => {
                    return Err(invalid(
                        index,
                        name,
                        format!(
                        "weight `{}` is synthetic (not stored), so the op must give `out_features`",
                        l.weight
                    ),
                    ))
                }
            },
            None => {
                return Err(ModelError::MissingTensor {
                    op: name.to_string(),
                    tensor: l.weight.clone(),
                })
            }
        };
        if o == 0 {
            return Err(invalid(index, name, "linear with 0 outputs".into()));
        }
        check_tensor(name, &l.weight, &[o, i])?;
        check_activation(name, &[o])?;
        let weight = self.weight(name, &l.weight, &[o, i], i)?;
        let bias = self.bias(name, l.bias.as_deref(), o)?;
        self.push(
            name,
            Op::Linear(Linear {
                out_features: o,
                in_features: i,
                weight,
                bias,
            }),
            vec![x],
            Shape::Flat(o),
        );
        Ok(())
    }

    fn batchnorm(
        &mut self,
        index: usize,
        name: &'a str,
        input: &'a str,
        p: &RawBnParams,
        eps: f64,
    ) -> Result<(), ModelError> {
        let x = self.resolve(name, input)?;
        let shape = self.shape(x);
        let c = shape.dims()[0];
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(invalid(
                index,
                name,
                format!("eps {eps} is not a finite non-negative number"),
            ));
        }
        let gamma = self.f32_tensor(name, &p.weight, &[c])?;
        let beta = self.f32_tensor(name, &p.bias, &[c])?;
        let mean = self.f32_tensor(name, &p.running_mean, &[c])?;
        let var = self.f32_tensor(name, &p.running_var, &[c])?;
        let mut scale = Vec::with_capacity(c);
        let mut shift = Vec::with_capacity(c);
        for ch in 0..c {
            let v = f64::from(var[ch]) + eps;
            if v <= 0.0 {
                return Err(ModelError::BadValue {
                    op: name.to_string(),
                    tensor: p.running_var.clone(),
                    reason: format!(
                        "channel {ch}: variance {} plus eps {eps} is not positive",
                        var[ch]
                    ),
                });
            }
            let s = f64::from(gamma[ch]) / v.sqrt();
            scale.push(s as f32);
            shift.push((f64::from(beta[ch]) - f64::from(mean[ch]) * s) as f32);
        }
        // Fold when the input is a convolution only this batch norm reads.
        let foldable = self
            .conv_layers
            .get(input)
            .copied()
            .filter(|_| self.fold && self.readers.get(input).copied() == Some(1));
        if let Some(li) = foldable {
            if let Op::Conv2d(conv) = &mut self.layers[li].op {
                let per_out = conv.in_channels * conv.kernel.0 * conv.kernel.1;
                for (o, (wrow, b)) in conv
                    .weight
                    .chunks_exact_mut(per_out)
                    .zip(conv.bias.iter_mut())
                    .enumerate()
                {
                    for w in wrow.iter_mut() {
                        *w *= scale[o];
                    }
                    *b = *b * scale[o] + shift[o];
                }
            }
            self.values.insert(name, ValueId::Layer(li));
        } else {
            self.push(
                name,
                Op::ChannelAffine(ChannelAffine { scale, shift }),
                vec![x],
                shape,
            );
        }
        Ok(())
    }

    fn mask(&self, op: &str, tensor: &str, shape: Shape) -> Result<Mask, ModelError> {
        let meta = self.meta(op, tensor)?;
        // torch.bool masks serialize as BOOL, one 0/1 byte each: accept them as U8.
        if meta.dtype != Dtype::U8 && meta.dtype != Dtype::BOOL {
            return Err(ModelError::WrongDtype {
                op: op.to_string(),
                tensor: tensor.to_string(),
                expected: "U8",
                found: dtype_name(meta.dtype),
            });
        }
        let dims = shape.dims();
        if meta.shape != dims {
            return Err(ModelError::MaskShape {
                op: op.to_string(),
                tensor: tensor.to_string(),
                activation: dims,
                mask: meta.shape.clone(),
            });
        }
        let data = &self.b.bytes[meta.range.0..meta.range.1];
        if let Some((element, &value)) = data.iter().enumerate().find(|(_, &v)| v > 1) {
            return Err(ModelError::MaskValue {
                op: op.to_string(),
                tensor: tensor.to_string(),
                element,
                value,
            });
        }
        Ok(Mask {
            keep: data.iter().map(|&v| v == 1).collect(),
        })
    }
}

fn check_activation(op: &str, dims: &[usize]) -> Result<(), ModelError> {
    let n = product(dims).unwrap_or(usize::MAX);
    if n > MAX_ACTIVATION_ELEMENTS {
        return Err(ModelError::TooLarge {
            op: op.to_string(),
            what: format!("activation {}", shape_str(dims)),
            size: n,
            limit: MAX_ACTIVATION_ELEMENTS,
        });
    }
    Ok(())
}

fn check_tensor(op: &str, tensor: &str, dims: &[usize]) -> Result<(), ModelError> {
    let n = product(dims).unwrap_or(usize::MAX);
    if n > MAX_TENSOR_ELEMENTS {
        return Err(ModelError::TooLarge {
            op: op.to_string(),
            what: format!("tensor `{tensor}` {}", shape_str(dims)),
            size: n,
            limit: MAX_TENSOR_ELEMENTS,
        });
    }
    Ok(())
}

fn decode_f32(op: &str, tensor: &str, data: &[u8]) -> Result<Vec<f32>, ModelError> {
    let out: Vec<f32> = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Some(i) = out.iter().position(|v| !v.is_finite()) {
        return Err(ModelError::BadValue {
            op: op.to_string(),
            tensor: tensor.to_string(),
            reason: format!("element {i} is {} (weights must be finite)", out[i]),
        });
    }
    Ok(out)
}

/// Every stored value is finite (checked when decoded), but batch norm can overflow: folding
/// multiplies weights by `gamma / sqrt(var + eps)`, which itself may be huge. Checked on the
/// built network so the error names the op that holds the overflowed value.
fn check_finite_parameters(net: &Network) -> Result<(), ModelError> {
    for layer in &net.layers {
        let params: [(&'static str, &[f32]); 2] = match &layer.op {
            Op::Conv2d(c) => [("weight", &c.weight), ("bias", &c.bias)],
            Op::Linear(l) => [("weight", &l.weight), ("bias", &l.bias)],
            Op::ChannelAffine(a) => [("scale", &a.scale), ("shift", &a.shift)],
            _ => continue,
        };
        for (what, values) in params {
            if let Some(index) = values.iter().position(|v| !v.is_finite()) {
                return Err(ModelError::NonFiniteParameter {
                    op: layer.name.clone(),
                    what,
                    index,
                    value: values[index],
                });
            }
        }
    }
    Ok(())
}

/// The card must describe the network it comes with.
fn check_card(net: &Network, input_dims: &[usize]) -> Result<(), ModelError> {
    let card = &net.card;
    if card.input_shape != input_dims {
        return Err(ModelError::CardMismatch {
            field: "input_shape",
            card: shape_str(&card.input_shape),
            actual: format!("graph input {}", shape_str(input_dims)),
        });
    }
    let out = net.shape_of(net.output).elements();
    if card.classes != out {
        return Err(ModelError::CardMismatch {
            field: "classes",
            card: card.classes.to_string(),
            actual: format!("{out} outputs"),
        });
    }
    if let Some(total) = card.total_relus {
        let actual = net.total_relus() as u64;
        if total != actual {
            return Err(ModelError::CardMismatch {
                field: "total_relus",
                card: total.to_string(),
                actual: format!("{actual} ReLU elements over all sites"),
            });
        }
    }
    if let Some(budget) = card.budget {
        let actual = net.kept_relus() as u64;
        if budget != actual {
            return Err(ModelError::CardMismatch {
                field: "budget",
                card: budget.to_string(),
                actual: format!("{actual} ReLUs kept by the masks"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bundle_file_is_first_loaded_once() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            dir.path().join("a.safetensors"),
            dir.path().join("b.safetensors"),
        );
        std::fs::write(&a, "").unwrap();
        std::fs::write(&b, "").unwrap();
        assert!(first_load_of(&a));
        assert!(!first_load_of(&a));
        // The same file by another name.
        assert!(!first_load_of(&dir.path().join(".").join("a.safetensors")));
        assert!(first_load_of(&b));
    }
}
