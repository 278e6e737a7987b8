//! Writing bundles: tensors, graph, card and optional synthetic seed into one safetensors file
//! (used by `gen` and by tests, which also use the raw-metadata overrides to build bad bundles).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::{Dtype, View};

use super::bundle::{FORMAT_VERSION, KEY_CARD, KEY_FORMAT, KEY_GRAPH, KEY_SYNTHETIC};
use super::card::ModelCard;
use super::error::ModelError;
use super::raw::RawGraph;
use super::synth::Synthetic;

/// One tensor to write.
#[derive(Clone)]
struct OwnedTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &OwnedTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Collects a bundle's parts and serializes them with `safetensors::serialize`.
#[derive(Clone)]
pub struct BundleWriter {
    graph: RawGraph,
    card: ModelCard,
    synthetic: Option<Synthetic>,
    tensors: BTreeMap<String, OwnedTensor>,
    overrides: BTreeMap<String, Option<String>>,
}

impl std::fmt::Debug for BundleWriter {
    // Weights are secret: list names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleWriter")
            .field("card", &self.card)
            .field("synthetic", &self.synthetic)
            .field("tensors", &self.tensors.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl BundleWriter {
    /// A bundle with this graph and card and no tensors yet.
    pub fn new(graph: RawGraph, card: ModelCard) -> BundleWriter {
        BundleWriter {
            graph,
            card,
            synthetic: None,
            tensors: BTreeMap::new(),
            overrides: BTreeMap::new(),
        }
    }

    /// Marks the weights the bundle omits as synthetic, drawn from `seed`.
    pub fn synthetic(&mut self, seed: u64) -> &mut Self {
        self.synthetic = Some(Synthetic { seed });
        self
    }

    /// Adds (or replaces) an F32 tensor. The data length must match the shape.
    pub fn f32(&mut self, name: &str, shape: &[usize], data: &[f32]) -> &mut Self {
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.raw(name, Dtype::F32, shape, bytes)
    }

    /// Adds (or replaces) a U8 tensor (a mask).
    pub fn u8(&mut self, name: &str, shape: &[usize], data: &[u8]) -> &mut Self {
        self.raw(name, Dtype::U8, shape, data.to_vec())
    }

    /// Adds (or replaces) a tensor of any dtype from its little-endian bytes.
    pub fn raw(&mut self, name: &str, dtype: Dtype, shape: &[usize], data: Vec<u8>) -> &mut Self {
        self.tensors.insert(
            name.to_string(),
            OwnedTensor {
                dtype,
                shape: shape.to_vec(),
                data,
            },
        );
        self
    }

    /// Drops a tensor.
    pub fn remove(&mut self, name: &str) -> &mut Self {
        self.tensors.remove(name);
        self
    }

    /// Sets a metadata entry to a raw string (`Some`) or leaves it out (`None`), overriding what
    /// the graph, card and seed would write: for tests of bad metadata.
    pub fn metadata_override(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        self.overrides
            .insert(key.to_string(), value.map(str::to_string));
        self
    }

    /// The graph.
    pub fn graph(&self) -> &RawGraph {
        &self.graph
    }

    /// The graph, to edit.
    pub fn graph_mut(&mut self) -> &mut RawGraph {
        &mut self.graph
    }

    /// The card.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// The card, to edit.
    pub fn card_mut(&mut self) -> &mut ModelCard {
        &mut self.card
    }

    /// The `__metadata__` map that will be written.
    pub fn metadata(&self) -> Result<HashMap<String, String>, ModelError> {
        let mut meta = HashMap::new();
        meta.insert(KEY_FORMAT.to_string(), FORMAT_VERSION.to_string());
        meta.insert(KEY_GRAPH.to_string(), self.graph.to_json());
        let card = serde_json::to_string(&self.card).map_err(|e| ModelError::Write {
            reason: format!("card: {e}"),
        })?;
        meta.insert(KEY_CARD.to_string(), card);
        if let Some(s) = self.synthetic {
            let text = serde_json::to_string(&s).map_err(|e| ModelError::Write {
                reason: format!("synthetic seed: {e}"),
            })?;
            meta.insert(KEY_SYNTHETIC.to_string(), text);
        }
        for (k, v) in &self.overrides {
            match v {
                Some(v) => meta.insert(k.clone(), v.clone()),
                None => meta.remove(k),
            };
        }
        Ok(meta)
    }

    /// The bundle's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ModelError> {
        for (name, t) in &self.tensors {
            let n = t
                .shape
                .iter()
                .try_fold(t.dtype.size(), |a, &d| a.checked_mul(d));
            if n != Some(t.data.len()) {
                return Err(ModelError::Write {
                    reason: format!(
                        "tensor `{name}`: {} bytes do not fill shape {:?} of {:?}",
                        t.data.len(),
                        t.shape,
                        t.dtype
                    ),
                });
            }
        }
        let meta = Some(self.metadata()?);
        safetensors::serialize(self.tensors.iter(), &meta).map_err(|e| ModelError::Write {
            reason: e.to_string(),
        })
    }

    /// Writes the bundle to a file.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), ModelError> {
        let path = path.as_ref();
        let bytes = self.to_bytes()?;
        std::fs::write(path, bytes).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}
