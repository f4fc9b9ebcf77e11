//! The ChatVector pass (Huang et al., "Chat Vector: A Simple Approach to Equip LLMs with
//! Instruction Following and Model Alignment in New Languages", arXiv 2310.04799):
//! `T' = T + Σᵢ ratioᵢ · (Cᵢ − Bᵢ)`, tensor by tensor, where Bᵢ is a base model, Cᵢ its chat
//! fine-tune and T a target model continued-pretrained from the same base.
//!
//! The pass is a lazy [`TensorSource`] ([`ChatVector`]): every output tensor is computed when
//! the writer asks for it — the target's, bases' and chats' bytes of that one tensor are
//! decoded to f32 row chunk by row chunk (rayon across chunks), combined, and encoded to the
//! output type (re-quantized when the output type is a block type). A saved vector
//! ([`Extracted`] writes one, [`SavedVector`] reads one) is the same `C − B` stored as
//! safetensors under GGUF tensor names; it can stand in for a (base, chat) pair.
//!
//! Rules (README, `llmtool chatvector`):
//! - Skipped tensors (`--skip` globs, matched against the GGUF name and the HF name; by
//!   default the token embeddings and the output head, [`DEFAULT_SKIPS`]; norms with
//!   `--skip-norms`; always the rope factor tensors, which are computed from the config) are
//!   the target's, re-typed only if the output type says so.
//! - Vocabulary tensors ([`VOCAB_TENSORS`]) may have different row counts in B, C and T: row
//!   `r` of T gets vector row `r` when every one of that vector's models has it, so rows
//!   beyond the shared vocabulary stay T's. A token map `target_id → chat_id` makes row
//!   `target_id` of T take vector row `chat_id` instead.
//! - Any other shape difference, and a tensor of T missing from a base or chat, is an error
//!   found before anything is written. A saved vector that lacks a tensor adds nothing to it
//!   (extraction leaves skipped tensors out).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use llmtool_formats::safetensors::SafetensorsSet;
use llmtool_formats::{FormatError, GgmlType, MetaValue, Metadata, TensorInfo, TensorSource};
use llmtool_kernels::{convert, KernelError};
use rayon::prelude::*;

use super::convert::retype_bytes;

/// Tensors indexed by token id in every supported architecture (llama.cpp names): the only
/// ones whose row count may differ between the models.
pub const VOCAB_TENSORS: [&str; 2] = ["token_embd.weight", "output.weight"];

/// Skipped unless `--no-default-skips`: the token embeddings and the output head, which a
/// target with a new vocabulary re-learned (the paper adds the vector to the other weights).
pub const DEFAULT_SKIPS: [&str; 2] = ["token_embd.weight", "output.weight"];

/// Elements decoded per rayon task.
const CHUNK_ELEMENTS: usize = 1 << 16;

/// safetensors `__metadata__` keys of a saved vector.
pub const META_KIND: &str = "llmtool.kind";
pub const META_KIND_VALUE: &str = "chatvector";
pub const META_BASE: &str = "chatvector.base";
pub const META_CHAT: &str = "chatvector.chat";
pub const META_ARCH: &str = "chatvector.architecture";
pub const META_SKIPPED: &str = "chatvector.skipped";

#[derive(Debug, thiserror::Error)]
pub enum ChatVectorError {
    #[error("tensor '{tensor}': {role} has shape {found:?}, the target {expected:?}")]
    Shape { tensor: String, role: String, expected: Vec<u64>, found: Vec<u64> },
    #[error(
        "tensor '{tensor}' of the target is missing from {role}; leave it out with --skip '{tensor}' if that is intended"
    )]
    Missing { tensor: String, role: String },
    #[error("tensor '{tensor}': {role} has type {ty}, which llmtool cannot decode")]
    Undecodable { tensor: String, role: String, ty: GgmlType },
    #[error("tensor '{tensor}': no encoder for the output type {ty}; choose another with --outtype")]
    Unencodable { tensor: String, ty: GgmlType },
    #[error("--token-map {target_id}={chat_id}: tensor '{tensor}' of the target has only {rows} rows")]
    TokenMapTarget { target_id: u64, chat_id: u64, tensor: String, rows: u64 },
    #[error("--token-map {target_id}={chat_id}: tensor '{tensor}' of {role} has only {rows} rows")]
    TokenMapChat { target_id: u64, chat_id: u64, tensor: String, role: String, rows: u64 },
    #[error("--token-map {0}: expected TARGET_ID=CHAT_ID (two non-negative integers)")]
    TokenMapSyntax(String),
    #[error("--token-map: target id {0} is mapped twice")]
    TokenMapDuplicate(u64),
    #[error("{path}: {what}")]
    Vector { path: PathBuf, what: String },
    #[error("--template-from chat: {0}")]
    Template(String),
    #[error("tensor '{tensor}': {source}")]
    Kernel { tensor: String, source: KernelError },
    #[error(transparent)]
    Format(#[from] FormatError),
}

impl From<ChatVectorError> for FormatError {
    fn from(e: ChatVectorError) -> Self {
        match e {
            ChatVectorError::Format(f) => f,
            other => FormatError::Other(other.to_string()),
        }
    }
}

/// Where one vector's `C − B` comes from.
pub enum VectorKind<'a> {
    /// A base model and its chat fine-tune (both in GGUF form).
    Pair { base: &'a dyn TensorSource, chat: &'a dyn TensorSource },
    /// A saved vector (`chatvector extract`), GGUF tensor names.
    Saved(&'a dyn TensorSource),
}

/// One term `ratio · (C − B)`.
pub struct VectorTerm<'a> {
    /// Names the vector in errors, e.g. "vector 1 (chat model.gguf)".
    pub label: String,
    pub ratio: f32,
    pub kind: VectorKind<'a>,
}

/// Which tensors the pass changes, and the token map.
#[derive(Debug, Clone, Default)]
pub struct SkipRules {
    /// Globs (`*`, `?`) matched against the GGUF name and the HF name of each tensor.
    pub globs: Vec<String>,
    /// Add [`DEFAULT_SKIPS`].
    pub default_skips: bool,
    /// Skip every normalization tensor (llama.cpp names them all `*norm*`).
    pub skip_norms: bool,
}

impl SkipRules {
    /// Why `gguf_name` (HF name `hf_name`) is skipped, or `None` when the vector applies.
    pub fn reason(&self, gguf_name: &str, hf_name: Option<&str>) -> Option<String> {
        if self.default_skips && DEFAULT_SKIPS.contains(&gguf_name) {
            return Some("default skip".into());
        }
        if crate::arch::is_rope_factor_tensor(gguf_name) {
            return Some("rope factors (computed from the config, not weights)".into());
        }
        if self.skip_norms && gguf_name.contains("norm") {
            return Some("--skip-norms".into());
        }
        self.globs
            .iter()
            .find(|g| glob_match(g, gguf_name) || hf_name.is_some_and(|h| glob_match(g, h)))
            .map(|g| format!("--skip {g}"))
    }
}

/// `*` matches any run of characters (dots included), `?` one character; nothing else is special.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Parses `--token-map TARGET_ID=CHAT_ID` values.
pub fn parse_token_map(values: &[String]) -> Result<HashMap<u64, u64>, ChatVectorError> {
    let mut map = HashMap::new();
    for v in values {
        let (a, b) = v.split_once('=').ok_or_else(|| ChatVectorError::TokenMapSyntax(v.clone()))?;
        let a: u64 = a.trim().parse().map_err(|_| ChatVectorError::TokenMapSyntax(v.clone()))?;
        let b: u64 = b.trim().parse().map_err(|_| ChatVectorError::TokenMapSyntax(v.clone()))?;
        if map.insert(a, b).is_some() {
            return Err(ChatVectorError::TokenMapDuplicate(a));
        }
    }
    Ok(map)
}

/// What happens to one target tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The target's tensor, re-typed to the output type; the string says why.
    Copy(String),
    /// Target plus the vectors listed (indices into the terms; a saved vector that lacks
    /// the tensor is not listed).
    Apply(Vec<usize>),
}

/// One output tensor of the pass.
#[derive(Debug, Clone)]
pub struct TensorPlan {
    pub name: String,
    pub action: Action,
}

/// Row count (`ne` last) and row length of a tensor, treating 0-D/1-D as one row.
fn rows_of(info: &TensorInfo) -> (usize, u64) {
    let ne0 = info.ne.first().copied().unwrap_or(1) as usize;
    let rows = if info.ne.len() >= 2 { info.n_elements().unwrap_or(0) / ne0.max(1) as u64 } else { 1 };
    (ne0, rows)
}

/// Checks `other` against the target's tensor: equal shapes, or for a vocabulary tensor
/// equal shapes except the row count (last `ne`).
fn check_shape(target: &TensorInfo, other: &TensorInfo, role: &str) -> Result<(), ChatVectorError> {
    let vocab = VOCAB_TENSORS.contains(&target.name.as_str());
    let n = target.ne.len();
    let same = if vocab && n >= 2 && other.ne.len() == n {
        target.ne[..n - 1] == other.ne[..n - 1]
    } else {
        target.ne == other.ne
    };
    if !same {
        return Err(ChatVectorError::Shape {
            tensor: target.name.clone(),
            role: role.to_string(),
            expected: target.shape(),
            found: other.shape(),
        });
    }
    if !convert::can_decode(other.ty) {
        return Err(ChatVectorError::Undecodable { tensor: target.name.clone(), role: role.to_string(), ty: other.ty });
    }
    Ok(())
}

fn is_arith(ty: GgmlType) -> bool {
    ty.is_float() || ty.is_quantized()
}

/// The target with the vectors added: a lazy source whose tensors have the target's names,
/// order and shapes and the output types given.
pub struct ChatVector<'a> {
    target: &'a dyn TensorSource,
    terms: Vec<VectorTerm<'a>>,
    infos: Vec<TensorInfo>,
    plans: Vec<TensorPlan>,
    token_map: HashMap<u64, u64>,
}

impl<'a> ChatVector<'a> {
    /// Plans the pass and checks every shape, type and token-map entry up front.
    /// `hf_name` gives a tensor's HF name (for `--skip` globs); `out_types[i]` is the output
    /// type of the target's tensor i.
    pub fn new(
        target: &'a dyn TensorSource,
        terms: Vec<VectorTerm<'a>>,
        rules: &SkipRules,
        token_map: HashMap<u64, u64>,
        hf_name: &dyn Fn(&str) -> Option<String>,
        out_types: &[GgmlType],
    ) -> Result<Self, ChatVectorError> {
        let mut infos = Vec::new();
        let mut plans = Vec::new();
        for (t, &out_ty) in target.tensor_infos().iter().zip(out_types) {
            let reason = if !is_arith(t.ty) {
                Some("not a float tensor".to_string())
            } else {
                rules.reason(&t.name, hf_name(&t.name).as_deref())
            };
            let action = match reason {
                Some(r) => Action::Copy(r),
                None => {
                    let mut used = Vec::new();
                    for (j, term) in terms.iter().enumerate() {
                        match term.kind {
                            VectorKind::Pair { base, chat } => {
                                for (role, src) in [("base", base), ("chat", chat)] {
                                    let role = format!("the {role} of {}", term.label);
                                    let info = src.tensor_info(&t.name).ok_or_else(|| ChatVectorError::Missing {
                                        tensor: t.name.clone(),
                                        role: role.clone(),
                                    })?;
                                    check_shape(t, info, &role)?;
                                }
                                used.push(j);
                            }
                            VectorKind::Saved(v) => {
                                if let Some(info) = v.tensor_info(&t.name) {
                                    check_shape(t, info, &term.label)?;
                                    used.push(j);
                                }
                            }
                        }
                    }
                    if !convert::can_decode(t.ty) {
                        return Err(ChatVectorError::Undecodable {
                            tensor: t.name.clone(),
                            role: "the target".into(),
                            ty: t.ty,
                        });
                    }
                    if used.is_empty() {
                        Action::Copy("not in any vector".into())
                    } else {
                        Action::Apply(used)
                    }
                }
            };
            let changes = matches!(action, Action::Apply(_)) || out_ty != t.ty;
            if changes && !convert::can_encode(out_ty) {
                return Err(ChatVectorError::Unencodable { tensor: t.name.clone(), ty: out_ty });
            }
            if let Action::Apply(used) = &action {
                if VOCAB_TENSORS.contains(&t.name.as_str()) {
                    check_token_map(t, &token_map, used.iter().map(|&j| &terms[j]))?;
                }
            }
            infos.push(TensorInfo { name: t.name.clone(), ty: out_ty, ne: t.ne.clone() });
            plans.push(TensorPlan { name: t.name.clone(), action });
        }
        Ok(ChatVector { target, terms, infos, plans, token_map })
    }

    /// What happens to each tensor, in the target's order.
    pub fn plans(&self) -> &[TensorPlan] {
        &self.plans
    }

    fn compute(&self, i: usize) -> Result<Cow<'_, [u8]>, ChatVectorError> {
        let plan = &self.plans[i];
        let out = &self.infos[i];
        let t_info = self.target.tensor_info(&plan.name).ok_or_else(|| FormatError::NoSuchTensor(plan.name.clone()))?;
        let t_bytes = self.target.tensor_bytes(&plan.name)?;
        let Action::Apply(used) = &plan.action else {
            return Ok(retype_bytes(&plan.name, t_info.ty, out.ty, t_bytes)?);
        };
        let mut parts = Vec::with_capacity(used.len());
        for &j in used {
            let term = &self.terms[j];
            parts.push(match term.kind {
                VectorKind::Pair { base, chat } => Part::new(term.ratio, chat, Some(base), &plan.name)?,
                VectorKind::Saved(v) => Part::new(term.ratio, v, None, &plan.name)?,
            });
        }
        let vocab = VOCAB_TENSORS.contains(&plan.name.as_str());
        let map = if vocab { Some(&self.token_map) } else { None };
        let init = Init::Tensor(t_info.ty, &t_bytes);
        combine(&plan.name, t_info, init, &parts, map, out.ty).map(Cow::Owned)
    }
}

fn check_token_map<'t, 'a: 't>(
    t: &TensorInfo,
    map: &HashMap<u64, u64>,
    terms: impl Iterator<Item = &'t VectorTerm<'a>>,
) -> Result<(), ChatVectorError> {
    let (_, t_rows) = rows_of(t);
    let mut entries: Vec<(u64, u64)> = map.iter().map(|(&a, &b)| (a, b)).collect();
    entries.sort_unstable();
    for &(target_id, chat_id) in &entries {
        if target_id >= t_rows {
            return Err(ChatVectorError::TokenMapTarget { target_id, chat_id, tensor: t.name.clone(), rows: t_rows });
        }
    }
    for term in terms {
        let sources: Vec<(&dyn TensorSource, String)> = match term.kind {
            VectorKind::Pair { base, chat } => {
                vec![(base, format!("the base of {}", term.label)), (chat, format!("the chat of {}", term.label))]
            }
            VectorKind::Saved(v) => vec![(v, term.label.clone())],
        };
        for (src, role) in sources {
            let info = src.tensor_info(&t.name).expect("checked by the plan");
            let (_, rows) = rows_of(info);
            if let Some(&(target_id, chat_id)) = entries.iter().find(|&&(_, c)| c >= rows) {
                return Err(ChatVectorError::TokenMapChat { target_id, chat_id, tensor: t.name.clone(), role, rows });
            }
        }
    }
    Ok(())
}

impl TensorSource for ChatVector<'_> {
    fn tensor_infos(&self) -> &[TensorInfo] {
        &self.infos
    }

    fn tensor_bytes(&self, name: &str) -> Result<Cow<'_, [u8]>, FormatError> {
        let i = self.infos.iter().position(|t| t.name == name).ok_or_else(|| FormatError::NoSuchTensor(name.into()))?;
        self.compute(i).map_err(FormatError::from)
    }

    fn release(&self, name: &str) {
        self.target.release(name);
        for term in &self.terms {
            match term.kind {
                VectorKind::Pair { base, chat } => {
                    base.release(name);
                    chat.release(name);
                }
                VectorKind::Saved(v) => v.release(name),
            }
        }
    }
}

/// One term's bytes for one tensor: `ratio · (plus − minus)`.
struct Part<'b> {
    ratio: f32,
    plus: (GgmlType, Cow<'b, [u8]>),
    minus: Option<(GgmlType, Cow<'b, [u8]>)>,
    /// Rows every one of the term's tensors has.
    rows: u64,
    row_len: usize,
}

impl<'b> Part<'b> {
    fn new(
        ratio: f32,
        plus: &'b dyn TensorSource,
        minus: Option<&'b dyn TensorSource>,
        name: &str,
    ) -> Result<Self, ChatVectorError> {
        let info_of = |s: &'b dyn TensorSource| -> Result<&'b TensorInfo, ChatVectorError> {
            s.tensor_info(name).ok_or_else(|| FormatError::NoSuchTensor(name.to_string()).into())
        };
        let p = info_of(plus)?;
        let (row_len, mut rows) = rows_of(p);
        let plus = (p.ty, plus.tensor_bytes(name)?);
        let minus = match minus {
            Some(m) => {
                let mi = info_of(m)?;
                rows = rows.min(rows_of(mi).1);
                Some((mi.ty, m.tensor_bytes(name)?))
            }
            None => None,
        };
        Ok(Part { ratio, plus, minus, rows, row_len })
    }

    /// Adds `ratio · (plus − minus)` of rows `src_rows` to `acc` (one row per source row),
    /// using `scratch` (2 × row_len × rows floats at least).
    fn add_rows(
        &self,
        name: &str,
        src: std::ops::Range<usize>,
        acc: &mut [f32],
        scratch: &mut Vec<f32>,
    ) -> Result<(), ChatVectorError> {
        let n = src.len() * self.row_len;
        scratch.resize(2 * n, 0.0);
        let (c, b) = scratch.split_at_mut(n);
        decode_rows(name, &self.plus, self.row_len, src.clone(), c)?;
        match &self.minus {
            Some(m) => {
                decode_rows(name, m, self.row_len, src, b)?;
                for ((a, &c), &b) in acc.iter_mut().zip(c.iter()).zip(b.iter()) {
                    *a += self.ratio * (c - b);
                }
            }
            None => {
                for (a, &c) in acc.iter_mut().zip(c.iter()) {
                    *a += self.ratio * c;
                }
            }
        }
        Ok(())
    }
}

fn decode_rows(
    name: &str,
    (ty, bytes): &(GgmlType, Cow<'_, [u8]>),
    row_len: usize,
    rows: std::ops::Range<usize>,
    dst: &mut [f32],
) -> Result<(), ChatVectorError> {
    let rb = ty.row_bytes(row_len as u64).expect("a valid tensor's rows fit") as usize;
    let slice = bytes.get(rows.start * rb..rows.end * rb).ok_or_else(|| ChatVectorError::Kernel {
        tensor: name.to_string(),
        source: KernelError::ByteLength {
            ty: *ty,
            n_elements: rows.end * row_len,
            expected: rows.end * rb,
            found: bytes.len(),
        },
    })?;
    convert::to_f32(*ty, slice, dst).map_err(|source| ChatVectorError::Kernel { tensor: name.to_string(), source })
}

/// What the sum starts from.
enum Init<'b> {
    Tensor(GgmlType, &'b [u8]),
    Zero,
}

/// `init + Σ parts` for the tensor `shape` (its `ne`; rows may be fewer than the parts'),
/// encoded as `out_ty`. Row `r` takes part row `map[r]` when mapped, else row `r` when the
/// part has it, else nothing.
fn combine(
    name: &str,
    shape: &TensorInfo,
    init: Init,
    parts: &[Part],
    map: Option<&HashMap<u64, u64>>,
    out_ty: GgmlType,
) -> Result<Vec<u8>, ChatVectorError> {
    let (ne0, rows) = rows_of(shape);
    let rows = rows as usize;
    let out_row = out_ty.row_bytes(ne0 as u64).ok_or_else(|| ChatVectorError::Kernel {
        tensor: name.to_string(),
        source: KernelError::RaggedBlocks { ty: out_ty, n_elements: ne0, block_size: out_ty.block_size() },
    })? as usize;
    let chunk_rows = (CHUNK_ELEMENTS / ne0.max(1)).max(1);
    let mut out = vec![0u8; out_row * rows];
    if out.is_empty() {
        return Ok(out);
    }
    let simple = map.is_none_or(|m| m.is_empty()) && parts.iter().all(|p| p.rows as usize >= rows);
    out.par_chunks_mut(out_row * chunk_rows).enumerate().try_for_each(|(ci, dst)| {
        let r0 = ci * chunk_rows;
        let nr = dst.len() / out_row;
        let mut acc = vec![0f32; nr * ne0];
        if let Init::Tensor(ty, bytes) = &init {
            decode_rows(name, &(*ty, Cow::Borrowed(*bytes)), ne0, r0..r0 + nr, &mut acc)?;
        }
        let mut scratch = Vec::new();
        for part in parts {
            if simple {
                part.add_rows(name, r0..r0 + nr, &mut acc, &mut scratch)?;
                continue;
            }
            for r in 0..nr {
                let tr = (r0 + r) as u64;
                let src = match map.and_then(|m| m.get(&tr)) {
                    Some(&s) => Some(s),
                    None if tr < part.rows => Some(tr),
                    None => None,
                };
                if let Some(s) = src {
                    let s = s as usize;
                    part.add_rows(name, s..s + 1, &mut acc[r * ne0..(r + 1) * ne0], &mut scratch)?;
                }
            }
        }
        let mut enc = Vec::with_capacity(dst.len());
        convert::from_f32(out_ty, &acc, &mut enc)
            .map_err(|source| ChatVectorError::Kernel { tensor: name.to_string(), source })?;
        dst.copy_from_slice(&enc);
        Ok::<(), ChatVectorError>(())
    })?;
    Ok(out)
}

/// `C − B` as a lazy source (for `chatvector extract`): the base's tensors in its order that
/// are not skipped and are float or quantized; vocabulary tensors keep the rows both models
/// have; every tensor in `out_ty`.
pub struct Extracted<'a> {
    base: &'a dyn TensorSource,
    chat: &'a dyn TensorSource,
    infos: Vec<TensorInfo>,
    /// Tensors left out and why.
    pub skipped: Vec<(String, String)>,
}

impl<'a> Extracted<'a> {
    pub fn new(
        base: &'a dyn TensorSource,
        chat: &'a dyn TensorSource,
        rules: &SkipRules,
        hf_name: &dyn Fn(&str) -> Option<String>,
        out_ty: GgmlType,
    ) -> Result<Self, ChatVectorError> {
        let mut infos = Vec::new();
        let mut skipped = Vec::new();
        for b in base.tensor_infos() {
            let reason = if !is_arith(b.ty) {
                Some("not a float tensor".to_string())
            } else {
                rules.reason(&b.name, hf_name(&b.name).as_deref())
            };
            if let Some(r) = reason {
                skipped.push((b.name.clone(), r));
                continue;
            }
            let c = chat
                .tensor_info(&b.name)
                .ok_or_else(|| ChatVectorError::Missing { tensor: b.name.clone(), role: "the chat model".into() })?;
            // The base plays the target's part in the shape check.
            check_shape(b, c, "the chat model")?;
            if !convert::can_decode(b.ty) {
                return Err(ChatVectorError::Undecodable { tensor: b.name.clone(), role: "the base".into(), ty: b.ty });
            }
            let mut ne = b.ne.clone();
            if let (Some(l), Some(&cl)) = (ne.last_mut(), c.ne.last()) {
                *l = (*l).min(cl);
            }
            let info = TensorInfo { name: b.name.clone(), ty: out_ty, ne };
            if info.n_bytes().is_none() {
                return Err(ChatVectorError::Unencodable { tensor: b.name.clone(), ty: out_ty });
            }
            infos.push(info);
        }
        Ok(Extracted { base, chat, infos, skipped })
    }
}

impl TensorSource for Extracted<'_> {
    fn tensor_infos(&self) -> &[TensorInfo] {
        &self.infos
    }

    fn tensor_bytes(&self, name: &str) -> Result<Cow<'_, [u8]>, FormatError> {
        let info = self.infos.iter().find(|t| t.name == name).ok_or_else(|| FormatError::NoSuchTensor(name.into()))?;
        let part = Part::new(1.0, self.chat, Some(self.base), name)?;
        Ok(Cow::Owned(combine(name, info, Init::Zero, &[part], None, info.ty)?))
    }

    fn release(&self, name: &str) {
        self.base.release(name);
        self.chat.release(name);
    }
}

/// A saved vector: a safetensors file of GGUF-named F32/F16/BF16 tensors.
pub struct SavedVector {
    pub path: PathBuf,
    set: SafetensorsSet,
    infos: Vec<TensorInfo>,
}

impl SavedVector {
    pub fn open(path: &Path) -> Result<Self, ChatVectorError> {
        let bad = |what: String| ChatVectorError::Vector { path: path.to_path_buf(), what };
        let set = SafetensorsSet::open_file(path).map_err(|e| bad(e.to_string()))?;
        let mut infos = Vec::new();
        for st in set.tensors() {
            let ty = llmtool_formats::safetensors::ggml_type(st.dtype)
                .filter(|t| t.is_float())
                .ok_or_else(|| bad(format!("tensor '{}' has dtype {:?}; a vector holds floats", st.name, st.dtype)))?;
            infos.push(TensorInfo::from_shape(st.name.clone(), ty, &st.shape));
        }
        Ok(SavedVector { path: path.to_path_buf(), set, infos })
    }

    /// The `__metadata__` of the file.
    pub fn metadata(&self) -> &IndexMap<String, String> {
        self.set.metadata()
    }

    /// Checks the architecture recorded at extraction against the target's.
    pub fn check_arch(&self, target_arch: &str) -> Result<(), ChatVectorError> {
        match self.metadata().get(META_ARCH) {
            Some(a) if a != target_arch => Err(ChatVectorError::Vector {
                path: self.path.clone(),
                what: format!("a vector for architecture '{a}', the target is '{target_arch}'"),
            }),
            _ => Ok(()),
        }
    }
}

impl TensorSource for SavedVector {
    fn tensor_infos(&self) -> &[TensorInfo] {
        &self.infos
    }

    fn tensor_bytes(&self, name: &str) -> Result<Cow<'_, [u8]>, FormatError> {
        self.set.tensor_data(name).map(Cow::Borrowed).ok_or_else(|| FormatError::NoSuchTensor(name.into()))
    }

    fn release(&self, name: &str) {
        self.set.release(name)
    }
}

/// The special-token id keys copied with the chat template (gguf-py `Keys.Tokenizer`).
pub const TEMPLATE_ID_KEYS: [&str; 3] =
    ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"];

/// `--template-from chat`: the chat model's chat template(s) and end-of-sequence / end-of-turn
/// ids replace the target's (an id key the chat lacks is removed from the target, since the
/// template defines the turn end; `eos` is kept when the chat has none). Ids must exist in
/// the target's vocabulary. Returns the keys changed.
pub fn copy_template(target: &mut Metadata, chat: &Metadata) -> Result<Vec<String>, ChatVectorError> {
    const TEMPLATE: &str = "tokenizer.chat_template";
    let Some(tpl) = chat.get(TEMPLATE) else {
        return Err(ChatVectorError::Template("the chat model has no chat template (tokenizer.chat_template)".into()));
    };
    let n_vocab = target.get_array("tokenizer.ggml.tokens").map(|a| a.len() as u64);
    let mut changed = Vec::new();
    let old_named: Vec<String> =
        target.keys().filter(|k| k.starts_with("tokenizer.chat_template")).map(str::to_string).collect();
    for k in old_named {
        target.remove(&k);
    }
    target.insert(TEMPLATE, tpl.clone());
    changed.push(TEMPLATE.to_string());
    for (k, v) in
        chat.iter().filter(|(k, _)| k.starts_with("tokenizer.chat_template.") || *k == "tokenizer.chat_templates")
    {
        target.insert(k, v.clone());
        changed.push(k.to_string());
    }
    for key in TEMPLATE_ID_KEYS {
        match chat.get(key) {
            Some(v) => {
                let id = v.as_u64().ok_or_else(|| ChatVectorError::Template(format!("{key} is not an integer")))?;
                if let Some(n) = n_vocab.filter(|&n| id >= n) {
                    return Err(ChatVectorError::Template(format!(
                        "the chat's {key} = {id} is beyond the target's vocabulary of {n} tokens"
                    )));
                }
                target.insert(key, MetaValue::U32(id as u32));
                changed.push(key.to_string());
            }
            None if key != TEMPLATE_ID_KEYS[0] && target.remove(key).is_some() => changed.push(key.to_string()),
            None => {}
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("blk.*.attn_q.weight", "blk.12.attn_q.weight"));
        assert!(glob_match("*norm*", "blk.0.attn_norm.weight"));
        assert!(glob_match("model.layers.?.mlp.*", "model.layers.3.mlp.up_proj.weight"));
        assert!(!glob_match("model.layers.?.mlp.*", "model.layers.13.mlp.up_proj.weight"));
        assert!(!glob_match("token_embd.weight", "token_embd.weightx"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn skip_rules() {
        let r = SkipRules { globs: vec!["lm_head.*".into()], default_skips: false, skip_norms: true };
        assert!(r.reason("output.weight", Some("lm_head.weight")).is_some());
        assert!(r.reason("blk.0.ffn_norm.weight", None).is_some());
        assert!(r.reason("token_embd.weight", Some("model.embed_tokens.weight")).is_none());
        let d = SkipRules { default_skips: true, ..Default::default() };
        assert!(d.reason("token_embd.weight", None).is_some());
        // rope factor tensors are copied from the target whatever the rules
        let none = SkipRules::default();
        for name in ["rope_freqs.weight", "rope_factors_long.weight", "rope_factors_short.weight"] {
            assert!(none.reason(name, None).unwrap().contains("rope factors"), "{name}");
        }
    }

    #[test]
    fn token_map_syntax() {
        let m = parse_token_map(&["3=5".into(), " 7 = 1".into()]).unwrap();
        assert_eq!(m[&3], 5);
        assert_eq!(m[&7], 1);
        assert!(matches!(parse_token_map(&["3:5".into()]), Err(ChatVectorError::TokenMapSyntax(_))));
        assert!(matches!(parse_token_map(&["3=5".into(), "3=6".into()]), Err(ChatVectorError::TokenMapDuplicate(3))));
    }
}
