//! Reading CIFAR's Python batches with `serde-pickle`, including the NumPy array inside.
//!
//! A pickled `numpy.ndarray` is a call to a NumPy global (`numpy.core.multiarray._reconstruct`,
//! or `numpy.core.numeric._frombuffer` under pickle protocol 5) followed by a `BUILD` with the
//! array's state. `serde-pickle` cannot call NumPy, and its typed (serde) API refuses unknown
//! globals. Its [`serde_pickle::Value`] API with [`DeOptions::keep_restore_state`] and
//! [`DeOptions::replace_unresolved_globals`] keeps what we need: the array becomes the state
//! tuple (NumPy globals become `None`), which we decode here from the value tree, not from the
//! opcodes:
//!
//! - `_reconstruct` path (protocols 2–4, and Python 2's cPickle that wrote CIFAR's files):
//!   `(version, shape, dtype, is_fortran, raw_bytes)`;
//! - `_frombuffer` path (protocol 5): `(raw_bytes, dtype, shape, order)`.
//!
//! One thing is lost: `serde-pickle` replaces an object by its `BUILD` state, and the dtype's
//! state `(3, '|', None, …)` no longer says `u1`. We therefore require 1-byte elements (the
//! raw byte count must equal the product of the shape) and read them as `u8`, which is what
//! CIFAR stores. Multi-byte or Fortran-ordered arrays are refused with a clear error.

use std::collections::BTreeMap;
use std::path::Path;

use serde_pickle::{DeOptions, HashableValue, Value};

use super::DataError;

/// A decoded 1-byte-element NumPy array: shape and C-order bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct U8Array {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Elements in C order.
    pub data: Vec<u8>,
}

/// Reads a pickle file into a `serde-pickle` value tree (NumPy arrays as their state tuples).
pub fn load(path: &Path) -> Result<Value, DataError> {
    let bytes = std::fs::read(path).map_err(DataError::io(path))?;
    let opts = DeOptions::new()
        .keep_restore_state()
        .replace_unresolved_globals();
    serde_pickle::value_from_slice(&bytes, opts)
        .map_err(|e| DataError::malformed(path, format!("not a readable pickle: {e}")))
}

/// The entries of a pickled dict, keyed by their text (Python 2 `str` and Python 3 `bytes` keys
/// arrive as bytes, Python 3 `str` keys as strings).
pub fn dict_entries(path: &Path, value: Value) -> Result<BTreeMap<String, Value>, DataError> {
    let Value::Dict(map) = value else {
        return Err(DataError::malformed(
            path,
            format!("expected a pickled dict, found {}", kind(&value)),
        ));
    };
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| {
            let key = match k {
                HashableValue::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
                HashableValue::String(s) => s,
                _ => return None,
            };
            Some((key, v))
        })
        .collect())
}

/// Decodes a pickled NumPy array of 1-byte elements from its state tuple (see the module doc).
pub fn u8_array(path: &Path, what: &str, value: &Value) -> Result<U8Array, DataError> {
    let bad = |reason: String| DataError::malformed(path, format!("`{what}`: {reason}"));
    let Value::Tuple(items) = value else {
        return Err(bad(format!(
            "expected a pickled NumPy array, found {}",
            kind(value)
        )));
    };
    let (shape, data, fortran) = match items.as_slice() {
        // _reconstruct + BUILD: (version, shape, dtype, is_fortran, raw)
        [Value::I64(_), Value::Tuple(shape), _, fortran, raw] => (shape, raw, truthy(fortran)),
        // _frombuffer: (buffer, dtype, shape, order)
        [raw, _, Value::Tuple(shape), order] => {
            (shape, raw, matches!(order, Value::String(s) if s == "F"))
        }
        _ => {
            return Err(bad("a tuple that is not a NumPy array's pickled state \
                 (expected _reconstruct's or _frombuffer's)"
                .into()))
        }
    };
    let shape: Vec<usize> = shape
        .iter()
        .map(|d| match d {
            Value::I64(n) if *n >= 0 => Ok(*n as usize),
            other => Err(bad(format!("array dimension {other:?} is not a size"))),
        })
        .collect::<Result<_, _>>()?;
    let data = match data {
        Value::Bytes(b) => b.clone(),
        // Protocol 2 written by Python 3 encodes bytes as latin-1 text (`_codecs.encode`), which
        // serde-pickle already turns back into bytes; a plain string here is the same encoding.
        Value::String(s) => s.chars().map(|c| c as u32 as u8).collect(),
        other => {
            return Err(bad(format!(
                "array data is {}, expected bytes",
                kind(other)
            )))
        }
    };
    if fortran {
        return Err(bad("Fortran-ordered arrays are not supported".into()));
    }
    let elements = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad("array shape overflows".into()))?;
    if data.len() != elements {
        return Err(bad(format!(
            "array of shape {shape:?} holds {} bytes: only 1-byte (uint8) elements are supported, \
             and a uint8 array of that shape has {elements}",
            data.len()
        )));
    }
    Ok(U8Array { shape, data })
}

/// A pickled list (or tuple) of integers.
pub fn int_list(path: &Path, what: &str, value: &Value) -> Result<Vec<i64>, DataError> {
    let items = match value {
        Value::List(v) | Value::Tuple(v) => v,
        other => {
            return Err(DataError::malformed(
                path,
                format!("`{what}` is {}, expected a list of integers", kind(other)),
            ))
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::I64(n) => Ok(*n),
            other => Err(DataError::malformed(
                path,
                format!("`{what}`[{i}] is {}, expected an integer", kind(other)),
            )),
        })
        .collect()
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::I64(n) => *n != 0,
        _ => false,
    }
}

/// A short name of a value's Python type, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool(_) => "a bool",
        Value::I64(_) | Value::Int(_) => "an int",
        Value::F64(_) => "a float",
        Value::Bytes(_) => "bytes",
        Value::String(_) => "a str",
        Value::List(_) => "a list",
        Value::Tuple(_) => "a tuple",
        Value::Set(_) | Value::FrozenSet(_) => "a set",
        Value::Dict(_) => "a dict",
    }
}
