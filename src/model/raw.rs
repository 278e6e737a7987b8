//! The bundle's graph as stored in `pibench.graph`: serde structs mirroring docs/FORMAT.md,
//! before any name is resolved or shape checked. Parsing goes op by op so that an unknown op
//! kind or a bad field is reported with the op's position and name.

use serde::{Deserialize, Serialize};

use super::error::ModelError;

/// The op kinds format version 1 defines, as spelled in the graph.
pub const KNOWN_OPS: &str =
    "conv2d, batchnorm, dual_batchnorm, relu, add, avgpool, maxpool, flatten, linear";

/// The whole graph: input, ops in order, output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawGraph {
    /// The network input.
    pub input: RawInput,
    /// The value holding the logits; the last op's output when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Ops in an order where every value is produced before it is read.
    pub ops: Vec<RawOp>,
}

/// The network input: its value name and `[C, H, W]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawInput {
    /// The name ops use to read the input (usually `input`).
    pub name: String,
    /// `[C, H, W]` of one image.
    pub shape: Vec<usize>,
}

/// A kernel size: `3` or `[3, 3]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Kernel {
    /// A square kernel.
    Square(usize),
    /// `[kh, kw]`.
    Rect([usize; 2]),
}

impl Kernel {
    /// `(kh, kw)`.
    pub fn dims(self) -> (usize, usize) {
        match self {
            Kernel::Square(k) => (k, k),
            Kernel::Rect([h, w]) => (h, w),
        }
    }
}

/// One op of the graph, tagged by its `op` field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op")]
pub enum RawOp {
    /// `conv2d`.
    #[serde(rename = "conv2d")]
    Conv2d(RawConv2d),
    /// `batchnorm`.
    #[serde(rename = "batchnorm")]
    BatchNorm(RawBatchNorm),
    /// `dual_batchnorm`.
    #[serde(rename = "dual_batchnorm")]
    DualBatchNorm(RawDualBatchNorm),
    /// `relu`.
    #[serde(rename = "relu")]
    Relu(RawRelu),
    /// `add`.
    #[serde(rename = "add")]
    Add(RawAdd),
    /// `avgpool`.
    #[serde(rename = "avgpool")]
    AvgPool(RawAvgPool),
    /// `maxpool`.
    #[serde(rename = "maxpool")]
    MaxPool(RawMaxPool),
    /// `flatten`.
    #[serde(rename = "flatten")]
    Flatten(RawFlatten),
    /// `linear`.
    #[serde(rename = "linear")]
    Linear(RawLinear),
}

impl RawOp {
    /// The op's unique name (its output value).
    pub fn name(&self) -> &str {
        match self {
            RawOp::Conv2d(o) => &o.name,
            RawOp::BatchNorm(o) => &o.name,
            RawOp::DualBatchNorm(o) => &o.name,
            RawOp::Relu(o) => &o.name,
            RawOp::Add(o) => &o.name,
            RawOp::AvgPool(o) => &o.name,
            RawOp::MaxPool(o) => &o.name,
            RawOp::Flatten(o) => &o.name,
            RawOp::Linear(o) => &o.name,
        }
    }

    /// The kind as spelled in the graph.
    pub fn kind(&self) -> &'static str {
        match self {
            RawOp::Conv2d(_) => "conv2d",
            RawOp::BatchNorm(_) => "batchnorm",
            RawOp::DualBatchNorm(_) => "dual_batchnorm",
            RawOp::Relu(_) => "relu",
            RawOp::Add(_) => "add",
            RawOp::AvgPool(_) => "avgpool",
            RawOp::MaxPool(_) => "maxpool",
            RawOp::Flatten(_) => "flatten",
            RawOp::Linear(_) => "linear",
        }
    }

    /// The value names the op reads, in order.
    pub fn inputs(&self) -> Vec<&str> {
        match self {
            RawOp::Conv2d(o) => vec![&o.input],
            RawOp::BatchNorm(o) => vec![&o.input],
            RawOp::DualBatchNorm(o) => vec![&o.input],
            RawOp::Relu(o) => vec![&o.input],
            RawOp::Add(o) => o.inputs.iter().map(String::as_str).collect(),
            RawOp::AvgPool(o) => vec![&o.input],
            RawOp::MaxPool(o) => vec![&o.input],
            RawOp::Flatten(o) => vec![&o.input],
            RawOp::Linear(o) => vec![&o.input],
        }
    }
}

/// `conv2d`: weight `[O, I, kh, kw]`, optional bias `[O]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawConv2d {
    /// Unique name.
    pub name: String,
    /// The value read.
    pub input: String,
    /// Weight tensor name.
    pub weight: String,
    /// Bias tensor name, or `null`.
    #[serde(default)]
    pub bias: Option<String>,
    /// Stride on both axes (default 1).
    #[serde(default = "one")]
    pub stride: usize,
    /// Zero padding on all four sides (default 0).
    #[serde(default)]
    pub padding: usize,
    /// `O`; required when the weight is synthetic (not stored), checked against it otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_channels: Option<usize>,
    /// `kh, kw`; required when the weight is synthetic, checked against it otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<Kernel>,
}

/// The four tensors of one batch norm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawBnParams {
    /// γ.
    pub weight: String,
    /// β.
    pub bias: String,
    /// μ.
    pub running_mean: String,
    /// σ² (before adding eps).
    pub running_var: String,
}

/// `batchnorm`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawBatchNorm {
    /// Unique name.
    pub name: String,
    /// The value read.
    pub input: String,
    /// The parameters.
    #[serde(flatten)]
    pub params: RawBnParams,
    /// ε (default 1e-5, PyTorch's).
    #[serde(default = "default_eps")]
    pub eps: f64,
}

/// `dual_batchnorm`: two parameter sets, one chosen at load.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawDualBatchNorm {
    /// Unique name.
    pub name: String,
    /// The value read.
    pub input: String,
    /// ε (default 1e-5), shared by both paths.
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// `BN_c`, the clean path.
    pub clean: RawBnParams,
    /// `BN_a`, the adversarial path.
    pub adv: RawBnParams,
}

/// `relu`: one ReLU site.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawRelu {
    /// Unique name.
    pub name: String,
    /// The value read.
    pub input: String,
    /// Mask tensor name, or `null` for all-ReLU.
    #[serde(default)]
    pub mask: Option<String>,
}

/// `add`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawAdd {
    /// Unique name.
    pub name: String,
    /// The two values summed.
    pub inputs: Vec<String>,
}

/// `avgpool`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawAvgPool {
    /// Unique name.
    pub name: String,
    /// The value read.
    pub input: String,
    /// Pool the whole map to `[C, 1, 1]`.
    #[serde(default)]
    pub global: bool,
    /// Window (when not global).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<usize>,
    /// Stride (default: the window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride: Option<usize>,
}

/// `maxpool`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawMaxPool {
    /// Unique name.
    pub name: String,
    /// The value read.
    pub input: String,
    /// Window.
    pub kernel: usize,
    /// Stride (default: the window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride: Option<usize>,
    /// Padding (default 0).
    #[serde(default)]
    pub padding: usize,
}

/// `flatten`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawFlatten {
    /// Unique name.
    pub name: String,
    /// The value read.
    pub input: String,
}

/// `linear`: weight `[O, I]`, optional bias `[O]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawLinear {
    /// Unique name.
    pub name: String,
    /// The (flat) value read.
    pub input: String,
    /// Weight tensor name.
    pub weight: String,
    /// Bias tensor name, or `null`.
    #[serde(default)]
    pub bias: Option<String>,
    /// `O`; required when the weight is synthetic, checked against it otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_features: Option<usize>,
}

fn one() -> usize {
    1
}

fn default_eps() -> f64 {
    1e-5
}

const KNOWN: [&str; 9] = [
    "conv2d",
    "batchnorm",
    "dual_batchnorm",
    "relu",
    "add",
    "avgpool",
    "maxpool",
    "flatten",
    "linear",
];

impl RawGraph {
    /// Parses `pibench.graph`, reporting unknown op kinds and bad fields with the op's position
    /// and name.
    pub fn from_json(text: &str) -> Result<RawGraph, ModelError> {
        let invalid = |reason: String| ModelError::InvalidMetadata {
            key: "pibench.graph",
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| invalid("not a JSON object".into()))?;
        let input: RawInput = serde_json::from_value(
            obj.get("input")
                .cloned()
                .ok_or_else(|| invalid("no `input`".into()))?,
        )
        .map_err(|e| invalid(format!("bad `input`: {e}")))?;
        let output = match obj.get("output") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(invalid("`output` is not a string".into())),
        };
        let ops_json = obj
            .get("ops")
            .and_then(|v| v.as_array())
            .ok_or_else(|| invalid("no `ops` array".into()))?;
        let mut ops = Vec::with_capacity(ops_json.len());
        for (index, op) in ops_json.iter().enumerate() {
            let name = op
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or("?")
                .to_string();
            let kind = match op.get("op").and_then(|k| k.as_str()) {
                Some(k) => k,
                None => {
                    return Err(ModelError::InvalidOp {
                        index,
                        name,
                        reason: "no `op` field naming the op kind".into(),
                    })
                }
            };
            if !KNOWN.contains(&kind) {
                return Err(ModelError::UnknownOp {
                    index,
                    name,
                    op: kind.to_string(),
                    known: KNOWN_OPS,
                });
            }
            let parsed: RawOp =
                serde_json::from_value(op.clone()).map_err(|e| ModelError::InvalidOp {
                    index,
                    name: name.clone(),
                    reason: format!("bad `{kind}` op: {e}"),
                })?;
            ops.push(parsed);
        }
        Ok(RawGraph { input, output, ops })
    }

    /// The graph as the JSON string stored in `pibench.graph`.
    pub fn to_json(&self) -> String {
        // Serializing plain structs of strings and numbers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The name of the value holding the logits.
    pub fn output_name(&self) -> Option<&str> {
        self.output
            .as_deref()
            .or_else(|| self.ops.last().map(RawOp::name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_defaults() {
        let text = r#"{"input": {"name": "input", "shape": [3, 8, 8]},
          "ops": [
            {"op": "conv2d", "name": "c", "input": "input", "weight": "c.w", "padding": 1},
            {"op": "dual_batchnorm", "name": "b", "input": "c",
             "clean": {"weight": "a", "bias": "b", "running_mean": "c", "running_var": "d"},
             "adv": {"weight": "e", "bias": "f", "running_mean": "g", "running_var": "h"}},
            {"op": "relu", "name": "r", "input": "b", "mask": null},
            {"op": "avgpool", "name": "p", "input": "r", "global": true},
            {"op": "flatten", "name": "f", "input": "p"},
            {"op": "linear", "name": "fc", "input": "f", "weight": "fc.w", "bias": "fc.b"}
          ]}"#;
        let g = RawGraph::from_json(text).unwrap();
        assert_eq!(g.ops.len(), 6);
        match &g.ops[0] {
            RawOp::Conv2d(c) => {
                assert_eq!((c.stride, c.padding, c.bias.as_deref()), (1, 1, None));
            }
            other => panic!("parsed as {other:?}"),
        }
        match &g.ops[1] {
            RawOp::DualBatchNorm(b) => assert_eq!(b.eps, 1e-5),
            other => panic!("parsed as {other:?}"),
        }
        assert_eq!(g.output_name(), Some("fc"));
        assert_eq!(RawGraph::from_json(&g.to_json()).unwrap(), g);
    }

    #[test]
    fn unknown_op_names_position_and_kind() {
        let text = r#"{"input": {"name": "input", "shape": [3, 8, 8]},
          "ops": [{"op": "gelu", "name": "act", "input": "input"}]}"#;
        match RawGraph::from_json(text) {
            Err(ModelError::UnknownOp {
                index, name, op, ..
            }) => {
                assert_eq!((index, name.as_str(), op.as_str()), (0, "act", "gelu"));
            }
            other => panic!("expected UnknownOp, got {other:?}"),
        }
    }

    #[test]
    fn bad_field_names_the_op() {
        let text = r#"{"input": {"name": "input", "shape": [3, 8, 8]},
          "ops": [{"op": "conv2d", "name": "c", "input": "input", "weight": "w", "stride": -1}]}"#;
        let err = RawGraph::from_json(text).unwrap_err();
        assert!(matches!(err, ModelError::InvalidOp { index: 0, ref name, .. } if name == "c"));
    }
}
