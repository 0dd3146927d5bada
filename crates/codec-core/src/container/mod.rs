//! The only code that knows the `.tfci` bytes: a serialized `tf.train.Example` exactly as
//! tensorflow-compression's `PackedTensors` writes it.
//!
//! Feature `"MD"` holds the model name; features `"\x01"`, `"\x02"`, ... hold the sender's tensors in
//! TFC's order (rank 1: strings as `bytes_list`, integers as `int64_list`, floats as `float_list`).
//! Our own additions are extra keys that `PackedTensors` ignores: `"FV"` (format version),
//! `"WI"` (weights id), `"RD"` (rate parameter) and `"CK"` (a CRC-32C of everything else, so a
//! corrupted file is refused instead of decoding to a wrong image). See `docs/tfci-format.md`.

mod crc;
mod proto;

use std::collections::BTreeMap;

use prost::Message;
pub use proto::{BytesList, Example, Feature, Features, FloatList, Int64List, Kind};

/// Key of the model name (TFC).
pub const KEY_MODEL: &str = "MD";
/// Key of our container format version.
pub const KEY_FORMAT_VERSION: &str = "FV";
/// Key of the weights id (first 16 hex digits of the model file's sha256).
pub const KEY_WEIGHTS_ID: &str = "WI";
/// Key of the continuous rate parameter, when one was used.
pub const KEY_RD_PARAMETER: &str = "RD";
/// Key of the integrity check: CRC-32C of the file's bytes as they are without this key.
pub const KEY_CHECKSUM: &str = "CK";
/// The container format version this crate writes and reads.
pub const FORMAT_VERSION: i64 = 1;
/// At most this many positional tensors are read (TFC models have 3 or 5).
pub const MAX_TENSORS: usize = 16;

/// Errors reading a `.tfci` container.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContainerError {
    #[error("not a .tfci file: the bytes are not a tf.train.Example ({0})")]
    NotExample(#[from] prost::DecodeError),
    #[error("not a .tfci file: no model name (feature \"MD\")")]
    NoModel,
    #[error("model name is not ASCII")]
    ModelNotAscii,
    #[error("feature {key:?} is missing")]
    Missing { key: String },
    #[error("feature {key:?} has the wrong type: expected {expected}")]
    WrongType { key: String, expected: &'static str },
    #[error("feature {key:?} holds {got} values, expected {expected}")]
    WrongLength {
        key: String,
        got: usize,
        expected: usize,
    },
    #[error("unsupported .tfci format version {0} (this build reads version {FORMAT_VERSION})")]
    Version(i64),
    #[error(
        "the file is corrupted: its checksum is {stored:08x}, its contents give {computed:08x}"
    )]
    Checksum { stored: u32, computed: u32 },
}

/// One rank-1 tensor of the container.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Bytes(Vec<Vec<u8>>),
    Float(Vec<f32>),
    Int64(Vec<i64>),
}

impl Value {
    fn into_feature(self) -> Feature {
        let kind = match self {
            Value::Bytes(value) => Kind::BytesList(BytesList { value }),
            Value::Float(value) => Kind::FloatList(FloatList { value }),
            Value::Int64(value) => Kind::Int64List(Int64List { value }),
        };
        Feature { kind: Some(kind) }
    }

    fn from_feature(f: Feature) -> Option<Value> {
        Some(match f.kind? {
            Kind::BytesList(l) => Value::Bytes(l.value),
            Kind::FloatList(l) => Value::Float(l.value),
            Kind::Int64List(l) => Value::Int64(l.value),
        })
    }
}

/// The decoded contents of a `.tfci` file, as TFC's `PackedTensors` sees it plus our extra keys.
#[derive(Clone, Debug, PartialEq)]
pub struct Packed {
    /// Model name (`"MD"`), e.g. `mbt2018-mean-msssim-5`.
    pub model: String,
    /// The positional tensors `"\x01"`, `"\x02"`, ... in order.
    pub tensors: Vec<Value>,
    /// Weights id (`"WI"`), when present.
    pub weights_id: Option<String>,
    /// Continuous rate parameter (`"RD"`), when present.
    pub rd_parameter: Option<f32>,
}

impl Packed {
    /// Serializes to the `.tfci` bytes (deterministic: map keys in byte order), with the `"CK"`
    /// checksum of the rest.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut feature = self.features();
        let crc = i64::from(crc::crc32c(&encode(feature.clone())));
        feature.insert(
            KEY_CHECKSUM.to_string(),
            Value::Int64(vec![crc]).into_feature(),
        );
        encode(feature)
    }

    /// Every feature but the checksum: what `"CK"` covers, in its canonical byte order.
    fn features(&self) -> BTreeMap<String, Feature> {
        let mut feature = BTreeMap::new();
        feature.insert(
            KEY_MODEL.to_string(),
            Value::Bytes(vec![self.model.as_bytes().to_vec()]).into_feature(),
        );
        feature.insert(
            KEY_FORMAT_VERSION.to_string(),
            Value::Int64(vec![FORMAT_VERSION]).into_feature(),
        );
        if let Some(id) = &self.weights_id {
            feature.insert(
                KEY_WEIGHTS_ID.to_string(),
                Value::Bytes(vec![id.as_bytes().to_vec()]).into_feature(),
            );
        }
        if let Some(rd) = self.rd_parameter {
            feature.insert(
                KEY_RD_PARAMETER.to_string(),
                Value::Float(vec![rd]).into_feature(),
            );
        }
        for (i, t) in self.tensors.iter().enumerate() {
            feature.insert(tensor_key(i), t.clone().into_feature());
        }
        feature
    }

    /// Parses `.tfci` bytes. Checks the structure only; the codec checks shapes against its limits.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ContainerError> {
        let example = Example::decode(bytes)?;
        let mut map = example.features.map(|f| f.feature).unwrap_or_default();
        let model = match map.remove(KEY_MODEL).and_then(Value::from_feature) {
            Some(Value::Bytes(v)) if v.len() == 1 => {
                let name = v.into_iter().next().unwrap_or_default();
                if !name.is_ascii() {
                    return Err(ContainerError::ModelNotAscii);
                }
                String::from_utf8(name).map_err(|_| ContainerError::ModelNotAscii)?
            }
            _ => return Err(ContainerError::NoModel),
        };
        if let Some(f) = map.remove(KEY_FORMAT_VERSION) {
            let v = single_int(KEY_FORMAT_VERSION, f)?;
            if v != FORMAT_VERSION {
                return Err(ContainerError::Version(v));
            }
        }
        let weights_id = match map.remove(KEY_WEIGHTS_ID) {
            Some(f) => {
                Some(String::from_utf8_lossy(&single_bytes(KEY_WEIGHTS_ID, f)?).into_owned())
            }
            None => None,
        };
        let rd_parameter = match map.remove(KEY_RD_PARAMETER).and_then(Value::from_feature) {
            Some(Value::Float(v)) if v.len() == 1 => Some(v[0]),
            Some(_) => {
                return Err(ContainerError::WrongType {
                    key: KEY_RD_PARAMETER.into(),
                    expected: "one float",
                })
            }
            None => None,
        };
        let checksum = match map.remove(KEY_CHECKSUM) {
            Some(f) => Some(single_int(KEY_CHECKSUM, f)?),
            None => None,
        };
        let mut tensors = Vec::new();
        for i in 0..MAX_TENSORS {
            let Some(f) = map.remove(&tensor_key(i)) else {
                break;
            };
            let value = Value::from_feature(f).ok_or_else(|| ContainerError::WrongType {
                key: tensor_key(i),
                expected: "a list",
            })?;
            tensors.push(value);
        }
        let packed = Packed {
            model,
            tensors,
            weights_id,
            rd_parameter,
        };
        // Files without "CK" (TFC's, older tfci-rs) are read as they are. The checksum covers the
        // canonical bytes of what was read, so it holds for any writer that follows
        // docs/tfci-format.md and catches any change to what the decoder uses.
        if let Some(stored) = checksum {
            let computed = crc::crc32c(&encode(packed.features()));
            if stored != i64::from(computed) {
                return Err(ContainerError::Checksum {
                    stored: u32::try_from(stored).unwrap_or(u32::MAX),
                    computed,
                });
            }
        }
        Ok(packed)
    }

    /// The `i`-th tensor (0-based) as a single byte string.
    pub fn bytes_at(&self, i: usize) -> Result<&[u8], ContainerError> {
        match self.tensors.get(i) {
            Some(Value::Bytes(v)) if v.len() == 1 => Ok(&v[0]),
            Some(Value::Bytes(v)) => Err(ContainerError::WrongLength {
                key: tensor_key(i),
                got: v.len(),
                expected: 1,
            }),
            Some(_) => Err(ContainerError::WrongType {
                key: tensor_key(i),
                expected: "bytes",
            }),
            None => Err(ContainerError::Missing { key: tensor_key(i) }),
        }
    }

    /// The `i`-th tensor (0-based) as a shape of `n` integers.
    pub fn shape_at(&self, i: usize, n: usize) -> Result<&[i64], ContainerError> {
        match self.tensors.get(i) {
            Some(Value::Int64(v)) if v.len() == n => Ok(v),
            Some(Value::Int64(v)) => Err(ContainerError::WrongLength {
                key: tensor_key(i),
                got: v.len(),
                expected: n,
            }),
            Some(_) => Err(ContainerError::WrongType {
                key: tensor_key(i),
                expected: "int64",
            }),
            None => Err(ContainerError::Missing { key: tensor_key(i) }),
        }
    }
}

fn encode(feature: BTreeMap<String, Feature>) -> Vec<u8> {
    Example {
        features: Some(Features { feature }),
    }
    .encode_to_vec()
}

/// Feature key of the `i`-th (0-based) positional tensor: `chr(i + 1)`.
pub fn tensor_key(i: usize) -> String {
    char::from(u8::try_from(i + 1).unwrap_or(u8::MAX)).to_string()
}

fn single_int(key: &str, f: Feature) -> Result<i64, ContainerError> {
    match Value::from_feature(f) {
        Some(Value::Int64(v)) if v.len() == 1 => Ok(v[0]),
        _ => Err(ContainerError::WrongType {
            key: key.into(),
            expected: "one int64",
        }),
    }
}

fn single_bytes(key: &str, f: Feature) -> Result<Vec<u8>, ContainerError> {
    match Value::from_feature(f) {
        Some(Value::Bytes(v)) if v.len() == 1 => Ok(v.into_iter().next().unwrap_or_default()),
        _ => Err(ContainerError::WrongType {
            key: key.into(),
            expected: "one byte string",
        }),
    }
}

#[cfg(test)]
mod tests;
