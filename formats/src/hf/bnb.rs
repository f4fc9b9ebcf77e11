//! bitsandbytes checkpoints (`*-bnb-4bit`, `load_in_8bit`): the weights of an HF dir with
//! every bitsandbytes-quantized Linear seen as one ordinary float tensor under its HF name,
//! dequantized when its bytes are asked for (the math is `llmtool_kernels::dequant::bnb`).
//!
//! On-disk layout, as transformers' `save_pretrained` writes it (bitsandbytes 0.50
//! `nn/modules.py` `Linear4bit._save_to_state_dict` / `QuantState.as_dict(packed=True)`,
//! `Linear8bitLt._save_to_state_dict`), for a Linear `X`:
//! - 4-bit: `X.weight` (the codes, two per byte, `ceil(n / 2)` bytes, stored as uint8
//!   `[ceil(n/2), 1]` or another `bnb_4bit_quant_storage` dtype), `X.weight.absmax` (f32 per
//!   block; uint8 when nested), `X.weight.quant_map` (16 f32), with double quantization
//!   `X.weight.nested_absmax` (f32) and `X.weight.nested_quant_map` (256 f32), and
//!   `X.weight.quant_state.bitsandbytes__nf4` (or `__fp4`): a uint8 tensor holding the JSON
//!   of `quant_type`, `blocksize`, `dtype`, `shape` (+ `nested_blocksize`, `nested_dtype`,
//!   `nested_offset`); read back by `QuantState.from_dict`.
//! - 8-bit: `X.weight` (int8 `[rows, cols]`), `X.SCB` (f32 per row) and `X.weight_format`
//!   (uint8 scalar, 0 = "row", the only layout bitsandbytes still reads).
//!
//! Every companion tensor is checked against the bytes present when the weights are opened
//! (lengths from the quant state's shape and blocksize), so dequantizing later cannot fail
//! on sizes; the companions are not part of the view.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use llmtool_kernels::dequant::bnb::{
    bnb_blocks, dequantize_bnb_4bit, dequantize_bnb_blockwise, dequantize_bnb_int8, Bnb4Type,
};
use serde_json::Value;

use super::HfError;
use crate::safetensors::{ggml_type, Dtype, SafetensorsSet, StTensor};
use crate::FormatError;

const QUANT_STATE: &str = ".quant_state.bitsandbytes__";
/// Suffixes of the tensors that only describe a quantized weight.
const COMPANIONS_4BIT: [&str; 4] = [".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map"];
const SCB: &str = ".SCB";
const WEIGHT_FORMAT: &str = ".weight_format";
/// Keys a packed quant state may hold (bitsandbytes `QuantState.valid_qs_keys`, less the
/// tensor ones).
const QS_KEYS: [&str; 7] =
    ["quant_type", "blocksize", "dtype", "shape", "nested_blocksize", "nested_dtype", "nested_offset"];
/// Blocksizes `dequantize_4bit` accepts.
const BLOCKSIZES_4BIT: [usize; 8] = [32, 64, 128, 256, 512, 1024, 2048, 4096];

/// How one weight is stored by bitsandbytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BnbQuant {
    Nf4,
    Fp4,
    /// LLM.int8: int8 rows with one f32 scale (`SCB`) per row.
    Int8,
}

impl BnbQuant {
    pub fn name(self) -> &'static str {
        match self {
            BnbQuant::Nf4 => "nf4",
            BnbQuant::Fp4 => "fp4",
            BnbQuant::Int8 => "int8",
        }
    }
}

/// One bitsandbytes-quantized weight, as the view presents it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BnbTensor {
    /// HF name of the weight (`model.layers.0.self_attn.q_proj.weight`).
    pub name: String,
    pub quant: BnbQuant,
    /// 4-bit with a double-quantized (nested) absmax.
    pub double_quant: bool,
    /// Elements per absmax block (4-bit); `None` for int8.
    pub blocksize: Option<usize>,
    /// What it dequantizes to (the quant state's dtype; F32 for int8).
    pub dtype: Dtype,
    /// Row-major shape of the dequantized weight.
    pub shape: Vec<u64>,
    /// Bytes on disk: the weight and its companion tensors.
    pub stored_bytes: u64,
}

impl BnbTensor {
    /// Short type name: `nf4`, `nf4+dq`, `fp4`, `fp4+dq`, `int8`.
    pub fn type_name(&self) -> String {
        format!("{}{}", self.quant.name(), if self.double_quant { "+dq" } else { "" })
    }
}

#[derive(Debug)]
struct Nested {
    absmax: String,
    code: String,
    blocksize: usize,
    offset: f32,
}

#[derive(Debug)]
enum Plan {
    FourBit { ty: Bnb4Type, absmax: String, nested: Option<Nested>, blocksize: usize },
    Int8 { scb: String },
}

/// The weights of an HF dir with bitsandbytes-quantized Linears dequantized on read.
/// Without bitsandbytes tensors it is the safetensors set as it is.
#[derive(Debug)]
pub struct HfWeights {
    set: SafetensorsSet,
    tensors: Vec<StTensor>,
    bnb: Vec<BnbTensor>,
    /// Per quantized weight name: its index in `bnb`, its plan and every stored tensor it reads.
    plans: HashMap<String, (usize, Plan, Vec<String>)>,
}

fn bad(tensor: &str, message: impl Into<String>) -> HfError {
    HfError::Bnb { tensor: tensor.to_string(), message: message.into() }
}

fn tensor<'a>(set: &'a SafetensorsSet, owner: &str, name: &str) -> Result<&'a StTensor, HfError> {
    set.tensor(name).ok_or_else(|| bad(owner, format!("its companion tensor '{name}' is missing")))
}

/// A companion tensor of `dtype` holding exactly `count` elements (any shape).
fn expect_elems(set: &SafetensorsSet, owner: &str, name: &str, dtype: Dtype, count: u64) -> Result<(), HfError> {
    let t = tensor(set, owner, name)?;
    let n = t.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
    if t.dtype != dtype || n != Some(count) {
        return Err(bad(
            name,
            format!("expected {count} {dtype:?} values, found {:?} of shape {:?}", t.dtype, t.shape),
        ));
    }
    Ok(())
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

fn json_usize(qs: &serde_json::Map<String, Value>, key: &str, blob: &str) -> Result<usize, HfError> {
    qs.get(key)
        .and_then(Value::as_u64)
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| bad(blob, format!("'{key}' must be a non-negative integer, found {}", show(qs.get(key)))))
}

fn json_str<'a>(qs: &'a serde_json::Map<String, Value>, key: &str, blob: &str) -> Result<&'a str, HfError> {
    qs.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| bad(blob, format!("'{key}' must be a string, found {}", show(qs.get(key)))))
}

fn show(v: Option<&Value>) -> String {
    v.map_or_else(|| "nothing".to_string(), Value::to_string)
}

/// A quant state's dtype name (`str(torch.float16).strip("torch.")`) as a safetensors dtype.
fn float_dtype(name: &str) -> Option<Dtype> {
    match name {
        "float32" => Some(Dtype::F32),
        "float16" => Some(Dtype::F16),
        "bfloat16" => Some(Dtype::BF16),
        _ => None,
    }
}

impl HfWeights {
    /// Recognises the bitsandbytes tensors of `set` and checks each against the bytes present.
    pub fn new(set: SafetensorsSet) -> Result<Self, HfError> {
        let mut plans = HashMap::new();
        let mut bnb = Vec::new();
        let mut claimed: HashMap<String, String> = HashMap::new();
        for st in set.tensors() {
            let found = if let Some(at) = st.name.find(QUANT_STATE) {
                Some(four_bit(&set, &st.name, &st.name[..at], &st.name[at + QUANT_STATE.len()..])?)
            } else if let Some(prefix) = st.name.strip_suffix(SCB) {
                Some(int8(&set, &st.name, prefix)?)
            } else {
                None
            };
            let Some((info, plan, parts)) = found else { continue };
            for p in &parts {
                if let Some(other) = claimed.insert(p.clone(), info.name.clone()) {
                    return Err(bad(p, format!("claimed by both '{other}' and '{}'", info.name)));
                }
            }
            plans.insert(info.name.clone(), (bnb.len(), plan, parts));
            bnb.push(info);
        }
        let mut tensors = Vec::new();
        for st in set.tensors() {
            if let Some(&(i, _, _)) = plans.get(&st.name) {
                let b: &BnbTensor = &bnb[i];
                tensors.push(StTensor::new(b.name.clone(), b.dtype, b.shape.clone()));
            } else if claimed.contains_key(&st.name) {
                continue;
            } else if st.name.contains(QUANT_STATE)
                || COMPANIONS_4BIT.iter().chain(&[SCB, WEIGHT_FORMAT]).any(|s| st.name.ends_with(s))
            {
                return Err(bad(
                    &st.name,
                    "a bitsandbytes companion tensor whose quantized weight is not here (a 4-bit weight \
                     needs X.weight and X.weight.quant_state.bitsandbytes__nf4|fp4, an 8-bit one X.weight and X.SCB)",
                ));
            } else {
                tensors.push(st.clone());
            }
        }
        Ok(HfWeights { set, tensors, bnb, plans })
    }

    /// The tensors as the model sees them: bitsandbytes weights as float tensors, their
    /// companion tensors left out; the stored order otherwise.
    pub fn tensors(&self) -> &[StTensor] {
        &self.tensors
    }

    /// The bitsandbytes-quantized weights (empty for an ordinary checkpoint).
    pub fn bnb_tensors(&self) -> &[BnbTensor] {
        &self.bnb
    }

    /// The stored safetensors set.
    pub fn stored(&self) -> &SafetensorsSet {
        &self.set
    }

    /// The bytes of one tensor of [`tensors`](Self::tensors): borrowed from the map, or
    /// dequantized (owned) for a bitsandbytes weight.
    pub fn tensor_data(&self, name: &str) -> Result<Cow<'_, [u8]>, FormatError> {
        let Some((i, plan, _)) = self.plans.get(name) else {
            return self.set.tensor_data(name).map(Cow::Borrowed).ok_or_else(|| FormatError::NoSuchTensor(name.into()));
        };
        let info = &self.bnb[*i];
        let data = |n: &str| self.set.tensor_data(n).ok_or_else(|| FormatError::NoSuchTensor(n.into()));
        let kernel = |e: llmtool_kernels::KernelError| bad(name, e.to_string());
        let n = usize::try_from(info.shape.iter().product::<u64>()).map_err(|_| bad(name, "too large"))?;
        let mut out = vec![0f32; n];
        match plan {
            Plan::FourBit { ty, absmax, nested, blocksize } => {
                let absmax = match nested {
                    None => f32s(data(absmax)?),
                    Some(nst) => {
                        let q = data(absmax)?;
                        let mut a = vec![0f32; q.len()];
                        let code = f32s(data(&nst.code)?);
                        let a2 = f32s(data(&nst.absmax)?);
                        dequantize_bnb_blockwise(q, &code, &a2, nst.blocksize, nst.offset, &mut a).map_err(kernel)?;
                        a
                    }
                };
                dequantize_bnb_4bit(*ty, data(name)?, &absmax, *blocksize, &mut out).map_err(kernel)?;
            }
            Plan::Int8 { scb } => {
                dequantize_bnb_int8(data(name)?, &f32s(data(scb)?), &mut out).map_err(kernel)?;
            }
        }
        let ty = ggml_type(info.dtype).expect("a float dtype");
        let mut bytes = Vec::with_capacity(n * ty.type_size());
        llmtool_kernels::convert::from_f32(ty, &out, &mut bytes).map_err(kernel)?;
        Ok(Cow::Owned(bytes))
    }

    /// Drops the mapped pages of a tensor (and of its companions).
    pub fn release(&self, name: &str) {
        match self.plans.get(name) {
            Some((_, _, parts)) => parts.iter().for_each(|p| self.set.release(p)),
            None => self.set.release(name),
        }
    }

    pub fn metadata(&self) -> &indexmap::IndexMap<String, String> {
        self.set.metadata()
    }

    pub fn files(&self) -> Vec<&Path> {
        self.set.files()
    }
}

type Found = (BnbTensor, Plan, Vec<String>);

/// A 4-bit weight from its packed quant state `blob` (`<weight>.quant_state.bitsandbytes__<suffix>`).
fn four_bit(set: &SafetensorsSet, blob: &str, weight: &str, suffix: &str) -> Result<Found, HfError> {
    let ty = Bnb4Type::from_name(suffix)
        .ok_or_else(|| bad(blob, format!("unknown bitsandbytes quant type '{suffix}' (expected nf4 or fp4)")))?;
    let st = tensor(set, blob, blob)?;
    if st.dtype != Dtype::U8 {
        return Err(bad(blob, format!("a packed quant state must be uint8 bytes of JSON, found {:?}", st.dtype)));
    }
    let bytes = set.tensor_data(blob).unwrap_or_default();
    let qs: Value = serde_json::from_slice(bytes)
        .map_err(|e| bad(blob, format!("the packed quant state is not valid JSON: {e}")))?;
    let Value::Object(qs) = qs else {
        return Err(bad(blob, "the packed quant state is not a JSON object"));
    };
    if let Some(k) = qs.keys().find(|k| !QS_KEYS.contains(&k.as_str())) {
        return Err(bad(blob, format!("unknown quant state key '{k}'")));
    }
    let quant_type = json_str(&qs, "quant_type", blob)?;
    if quant_type != suffix {
        return Err(bad(blob, format!("quant_type '{quant_type}' differs from the tensor name's '{suffix}'")));
    }
    let blocksize = json_usize(&qs, "blocksize", blob)?;
    if !BLOCKSIZES_4BIT.contains(&blocksize) {
        return Err(bad(blob, format!("blocksize {blocksize} is not one of {BLOCKSIZES_4BIT:?}")));
    }
    let dtype_name = json_str(&qs, "dtype", blob)?;
    let dtype = float_dtype(dtype_name)
        .ok_or_else(|| bad(blob, format!("dtype '{dtype_name}' is not float32, float16 or bfloat16")))?;
    let shape: Vec<u64> = qs
        .get("shape")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(Value::as_u64).collect::<Option<Vec<u64>>>())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad(blob, format!("'shape' must be a list of dimensions, found {}", show(qs.get("shape")))))?;
    let n = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).ok_or_else(|| bad(blob, "shape overflows"))?;

    // The packed codes: ceil(n / 2) bytes in whatever storage dtype.
    let w = tensor(set, blob, weight)?;
    let packed = n.div_ceil(2);
    if w.n_bytes() != Some(packed) {
        return Err(bad(
            weight,
            format!(
                "the packed 4-bit weight of shape {shape:?} needs {packed} bytes, found {:?} of shape {:?} ({} bytes)",
                w.dtype,
                w.shape,
                w.n_bytes().map_or("?".to_string(), |b| b.to_string())
            ),
        ));
    }
    let blocks = n.div_ceil(blocksize as u64);
    let absmax = format!("{weight}.absmax");
    let quant_map = format!("{weight}.quant_map");
    // The stored quant_map must be there (QuantState.from_dict reads it), though the 4-bit
    // kernels use the fixed table of the quant type.
    expect_elems(set, blob, &quant_map, Dtype::F32, 16)?;
    let mut parts = vec![weight.to_string(), blob.to_string(), absmax.clone(), quant_map];
    let nested_absmax = format!("{weight}.nested_absmax");
    let nested = if set.tensor(&nested_absmax).is_some() {
        expect_elems(set, blob, &absmax, Dtype::U8, blocks)?;
        let nested_blocksize = json_usize(&qs, "nested_blocksize", blob)?;
        if nested_blocksize == 0 {
            return Err(bad(blob, "nested_blocksize must be positive"));
        }
        let nested_dtype = json_str(&qs, "nested_dtype", blob)?;
        if nested_dtype != "float32" {
            return Err(bad(blob, format!("nested_dtype '{nested_dtype}' is not float32")));
        }
        let offset = qs.get("nested_offset").and_then(Value::as_f64).filter(|x| x.is_finite()).ok_or_else(|| {
            bad(blob, format!("'nested_offset' must be a number, found {}", show(qs.get("nested_offset"))))
        })?;
        expect_elems(set, blob, &nested_absmax, Dtype::F32, blocks.div_ceil(nested_blocksize as u64))?;
        let code = format!("{weight}.nested_quant_map");
        expect_elems(set, blob, &code, Dtype::F32, 256)?;
        parts.push(nested_absmax.clone());
        parts.push(code.clone());
        // from_dict: torch.tensor(float(nested_offset)), i.e. the f32 nearest the JSON number.
        Some(Nested { absmax: nested_absmax, code, blocksize: nested_blocksize, offset: offset as f32 })
    } else {
        if qs.contains_key("nested_offset") {
            return Err(bad(blob, format!("the quant state is nested but '{nested_absmax}' is missing")));
        }
        expect_elems(set, blob, &absmax, Dtype::F32, blocks)?;
        None
    };
    debug_assert_eq!(bnb_blocks(n as usize, blocksize) as u64, blocks);
    let info = BnbTensor {
        name: weight.to_string(),
        quant: match ty {
            Bnb4Type::Nf4 => BnbQuant::Nf4,
            Bnb4Type::Fp4 => BnbQuant::Fp4,
        },
        double_quant: nested.is_some(),
        blocksize: Some(blocksize),
        dtype,
        shape,
        stored_bytes: stored_bytes(set, &parts),
    };
    Ok((info, Plan::FourBit { ty, absmax, nested, blocksize }, parts))
}

/// An 8-bit weight from its row scales `scb` (`<prefix>.SCB`).
fn int8(set: &SafetensorsSet, scb: &str, prefix: &str) -> Result<Found, HfError> {
    let weight = format!("{prefix}.weight");
    let w = tensor(set, scb, &weight)?;
    let [rows, _cols] = w.shape[..] else {
        return Err(bad(&weight, format!("an LLM.int8 weight must be 2-D, found shape {:?}", w.shape)));
    };
    if w.dtype != Dtype::I8 {
        return Err(bad(&weight, format!("an LLM.int8 weight (it has an SCB) must be int8, found {:?}", w.dtype)));
    }
    expect_elems(set, &weight, scb, Dtype::F32, rows)?;
    let mut parts = vec![weight.clone(), scb.to_string()];
    let format_name = format!("{prefix}.weight_format");
    if let Some(f) = set.tensor(&format_name) {
        let bytes = set.tensor_data(&format_name).unwrap_or_default();
        // bitsandbytes `maybe_rearrange_weight`: only 0 ("row") is still read.
        if f.dtype != Dtype::U8 || bytes != [0] {
            return Err(bad(
                &format_name,
                format!("only the row-major weight format (uint8 0) is supported, found {:?} {bytes:?}", f.dtype),
            ));
        }
        parts.push(format_name);
    }
    let info = BnbTensor {
        name: weight.clone(),
        quant: BnbQuant::Int8,
        double_quant: false,
        blocksize: None,
        dtype: Dtype::F32,
        shape: w.shape.clone(),
        stored_bytes: stored_bytes(set, &parts),
    };
    Ok((info, Plan::Int8 { scb: scb.to_string() }, parts))
}

fn stored_bytes(set: &SafetensorsSet, parts: &[String]) -> u64 {
    parts.iter().filter_map(|p| set.tensor(p)).filter_map(StTensor::n_bytes).sum()
}
