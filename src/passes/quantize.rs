//! The quantize pass: which type each tensor gets, and re-encoding tensors lazily.
//!
//! The per-tensor rules are llama.cpp's (`src/llama-quant.cpp`: `tensor_allows_quantization`,
//! `llama_tensor_get_type_impl`, `tensor_type_fallback`, `llama_ftype_get_default_type`),
//! rewritten here for the file types llmtool offers (the legacy types, the K mixes, the plain
//! float types). In short:
//! - only tensors whose name ends in `weight`, of 2+ dims (ggml's `ggml_n_dims`), and not a
//!   norm, MoE router or positional embedding are quantized; the rest keep their type (1-D
//!   float tensors of an HF input become F32, as `llmtool convert` writes them);
//! - every quantized tensor starts from the file type's default type; the K mixes then pick
//!   more bits for `output.weight` (and a tied `token_embd.weight`), `attn_v`, `ffn_down`,
//!   `attn_output`, … (`use_more_bits` spreads the extra bits over the layers);
//! - a tensor whose row length (`ne[0]`) is not a multiple of the chosen type's block size
//!   falls back (Q2_K/Q3_K → Q4_0, Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0; F16 when even the
//!   fallback does not fit);
//! - `--keep PATTERN=TYPE` overrides (llama.cpp's `--tensor-type`): the first pattern found
//!   in the name (a regex search) sets the type, skipping the mix rules but not the fallback.
//!
//! llama.cpp visits tensors sorted by layer number, then name (`weight_name_comparer` in
//! `llama-model-loader.h`); its running counters (`i_attention_wv`, `i_ffn_down`) depend on
//! that order, and it writes the output in that order. We do both the same way.

use llmtool_formats::{GgmlType, Metadata, TensorInfo};
#[cfg(feature = "gpu")]
use {
    crate::passes::convert::retype_bytes,
    llmtool_formats::{FormatError, TensorSource},
    llmtool_kernels::convert,
    std::borrow::Cow,
};

/// Declares [`FileType`] from llama.cpp's table: name, `llama_ftype` id (`llama.h`; also
/// gguf-py's `LlamaFileType`) and default tensor type (`llama_ftype_get_default_type`).
macro_rules! file_types {
    ($($v:ident = $id:literal => $ty:ident),* $(,)?) => {
        /// A llama.cpp file type (`llama_ftype`): the default tensor type plus, for the
        /// mixes, the rules that give some tensors more bits.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[allow(non_camel_case_types)]
        pub enum FileType { $($v),* }

        impl FileType {
            pub const ALL: &'static [FileType] = &[$(FileType::$v),*];

            pub fn name(self) -> &'static str {
                match self { $(FileType::$v => stringify!($v)),* }
            }

            /// `general.file_type`: llama.cpp's `llama_ftype` number.
            pub fn id(self) -> u32 {
                match self { $(FileType::$v => $id),* }
            }

            /// llama.cpp `llama_ftype_get_default_type`.
            pub fn default_type(self) -> GgmlType {
                match self { $(FileType::$v => GgmlType::$ty),* }
            }
        }
    };
}

file_types! {
    F32 = 0 => F32,
    F16 = 1 => F16,
    BF16 = 32 => BF16,
    Q4_0 = 2 => Q4_0,
    Q4_1 = 3 => Q4_1,
    Q5_0 = 8 => Q5_0,
    Q5_1 = 9 => Q5_1,
    Q8_0 = 7 => Q8_0,
    Q2_K = 10 => Q2_K,
    Q2_K_S = 21 => Q2_K,
    Q3_K_S = 11 => Q3_K,
    Q3_K_M = 12 => Q3_K,
    Q3_K_L = 13 => Q3_K,
    Q4_K_S = 14 => Q4_K,
    Q4_K_M = 15 => Q4_K,
    Q5_K_S = 16 => Q5_K,
    Q5_K_M = 17 => Q5_K,
    Q6_K = 18 => Q6_K,
    IQ4_NL = 25 => IQ4_NL,
    IQ4_XS = 30 => IQ4_XS,
    IQ3_M = 27 => IQ3_S,
    IQ3_S = 26 => IQ3_S,
    IQ3_XS = 22 => IQ3_S,
    IQ3_XXS = 23 => IQ3_XXS,
    IQ2_M = 29 => IQ2_S,
    IQ2_S = 28 => IQ2_XS,
    IQ2_XS = 20 => IQ2_XS,
    IQ2_XXS = 19 => IQ2_XXS,
    IQ1_M = 31 => IQ1_M,
    IQ1_S = 24 => IQ1_S,
}

impl FileType {
    /// Parses a name case-insensitively. `Q3_K`, `Q4_K` and `Q5_K` are the `_M` mixes, as in
    /// llama-quantize (`tools/quantize/quantize.cpp`: "alias for Q4_K_M").
    pub fn parse(s: &str) -> Option<FileType> {
        let up = s.to_ascii_uppercase();
        let alias = match up.as_str() {
            "Q3_K" => "Q3_K_M",
            "Q4_K" => "Q4_K_M",
            "Q5_K" => "Q5_K_M",
            other => other,
        };
        Self::ALL.iter().copied().find(|f| f.name() == alias)
    }

    /// The i-quant mixes whose rules read `IQ2_XXS … IQ1_M` as a group in llama.cpp.
    fn is_very_low_bit(self) -> bool {
        use FileType::*;
        matches!(self, IQ2_XXS | IQ2_XS | IQ1_S | IQ2_S | IQ2_M | IQ1_M)
    }

    pub fn names() -> String {
        Self::ALL.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
    }
}

/// Model facts the rules read (llama.cpp `hparams`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFacts {
    /// `general.architecture` (the rules special-case `falcon`).
    pub arch: String,
    /// `{arch}.block_count`.
    pub n_layer: u32,
    /// `head_count / head_count_kv` (1 when unknown).
    pub n_gqa: u32,
    /// `{arch}.expert_count` (0 when absent).
    pub n_expert: u32,
    /// llama.cpp's `LLM_TYPE_70B`: a Llama with 80 layers and grouped-query attention.
    pub is_70b: bool,
}

impl ModelFacts {
    pub fn from_metadata(md: &Metadata) -> ModelFacts {
        let arch = md.get_str("general.architecture").unwrap_or("").to_string();
        let get = |k: &str| md.get_u64(&format!("{arch}.{k}"));
        let n_layer = get("block_count").unwrap_or(0) as u32;
        let n_head = get("attention.head_count").unwrap_or(0);
        let n_head_kv = get("attention.head_count_kv").unwrap_or(n_head);
        let n_gqa = n_head.checked_div(n_head_kv).map_or(1, |g| g as u32);
        let n_expert = get("expert_count").unwrap_or(0) as u32;
        let is_70b = arch == "llama" && n_layer == 80 && n_head != n_head_kv;
        ModelFacts { arch, n_layer, n_gqa, n_expert, is_70b }
    }
}

/// A `--keep PATTERN=TYPE` override.
#[derive(Debug, Clone)]
pub struct Override {
    pub pattern: regex::Regex,
    pub ty: GgmlType,
}

impl Override {
    /// Parses `PATTERN=TYPE` (the last `=` splits). PATTERN is a regex searched in the
    /// tensor name; a glob (`*` / `?` with no other regex syntax) is accepted as well and
    /// then matches the whole name.
    pub fn parse(s: &str) -> Result<Override, QuantizeError> {
        let bad = |why: String| QuantizeError::BadOverride { arg: s.to_string(), why };
        let (pat, ty) = s.rsplit_once('=').ok_or_else(|| bad("expected PATTERN=TYPE".into()))?;
        if pat.is_empty() {
            return Err(bad("empty pattern".into()));
        }
        let ty = GgmlType::from_name(ty).ok_or_else(|| bad(format!("unknown tensor type '{ty}'")))?;
        let re = if is_glob(pat) { glob_to_regex(pat) } else { pat.to_string() };
        let pattern = regex::Regex::new(&re).map_err(|e| bad(e.to_string()))?;
        Ok(Override { pattern, ty })
    }
}

/// A pattern is taken as a glob when it uses `*` or `?` and none of the regex-only syntax.
fn is_glob(p: &str) -> bool {
    p.contains(['*', '?']) && !p.contains(['\\', '(', ')', '[', ']', '{', '}', '^', '$', '|', '+']) && !p.contains(".*")
}

fn glob_to_regex(p: &str) -> String {
    let mut re = String::from("^");
    for c in p.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    re
}

/// What to quantize to.
#[derive(Debug, Clone)]
pub struct QuantizeParams {
    pub ftype: FileType,
    /// llama-quantize `--pure`: no mix rules, every quantized tensor gets the default type.
    pub pure: bool,
    pub overrides: Vec<Override>,
    /// Widen 1-D float tensors that are not quantized to F32 (HF inputs; GGUF keeps them).
    pub widen_vectors: bool,
    /// An importance matrix is given (llama.cpp's `has_imatrix`: some mixes then differ).
    pub has_imatrix: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error("--keep '{arg}': {why}")]
    BadOverride { arg: String, why: String },
    #[error(
        "tensor '{tensor}': its row length {ncols} is not a multiple of {ty}'s block size {block} \
         and llama.cpp defines no fallback type for {ty}"
    )]
    NoFallback { tensor: String, ncols: u64, ty: GgmlType, block: usize },
}

/// Why a tensor got its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Not a quantizable weight: kept (or widened to F32).
    Kept,
    /// The file type's rules.
    Rule,
    /// A `--keep` override.
    Override,
}

/// The decision for one tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorPlan {
    pub name: String,
    pub ne: Vec<u64>,
    pub from: GgmlType,
    pub to: GgmlType,
    pub reason: Reason,
    /// The type chosen before the row-length fallback, when a fallback happened.
    pub fallback_from: Option<GgmlType>,
}

impl TensorPlan {
    /// The output tensor's info. Its dimensions are `ggml_n_dims` long, as llama-quantize's
    /// `gguf_add_tensor` writes them: trailing 1s dropped (Qwen2-MoE's `ffn_gate_inp_shexp`,
    /// [n_embd, 1] in a converted file, becomes [n_embd]).
    pub fn info(&self) -> TensorInfo {
        TensorInfo { name: self.name.clone(), ty: self.to, ne: self.ne[..n_dims(&self.ne).min(self.ne.len())].to_vec() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    TokenEmbd,
    AttnQ,
    AttnV,
    AttnK,
    AttnQkv,
    AttnKvB,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Output,
    Other,
}

/// llama.cpp `tensor_get_category` (substring tests, in its order).
fn category(name: &str) -> Category {
    use Category::*;
    if name == "output.weight" {
        return Output;
    }
    if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
        return TokenEmbd;
    }
    let table: [(&str, Category); 9] = [
        ("attn_qkv.weight", AttnQkv),
        ("attn_kv_b.weight", AttnKvB),
        ("attn_v.weight", AttnV),
        ("attn_k.weight", AttnK),
        ("attn_q.weight", AttnQ),
        ("attn_output.weight", AttnOutput),
        ("ffn_up", FfnUp),
        ("ffn_gate", FfnGate),
        ("ffn_down", FfnDown),
    ];
    table.iter().find(|(s, _)| name.contains(s)).map_or(Other, |&(_, c)| c)
}

fn is_attn_v_like(c: Category) -> bool {
    matches!(c, Category::AttnV | Category::AttnQkv | Category::AttnKvB)
}

/// ggml `ggml_n_dims`: 1 + the index of the last dimension larger than 1.
fn n_dims(ne: &[u64]) -> usize {
    ne.iter().rposition(|&n| n > 1).map_or(1, |i| i + 1)
}

/// llama.cpp `tensor_allows_quantization` (with `quantize_output_tensor` on, as by default).
pub fn allows_quantization(name: &str, ne: &[u64]) -> bool {
    if n_dims(ne) < 2 || !name.ends_with("weight") {
        return false;
    }
    const NEVER: &[&str] = &[
        "_norm.weight",
        "ffn_gate_inp.weight",
        "ffn_gate_tid2eid.weight",
        "altup",
        "laurel",
        "per_layer_model_proj",
        "ssm_conv1d",
        "shortconv.conv.weight",
        "indexer.k_proj.weight",
        "indexer.q_proj.weight",
        "time_mix_first.weight",
        "time_mix_w0.weight",
        "time_mix_w1.weight",
        "time_mix_w2.weight",
        "time_mix_v0.weight",
        "time_mix_v1.weight",
        "time_mix_v2.weight",
        "time_mix_a0.weight",
        "time_mix_a1.weight",
        "time_mix_a2.weight",
        "time_mix_g1.weight",
        "time_mix_g2.weight",
        "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight",
        "attn_rel_b.weight",
        ".position_embd",
        "sam.pos_embd",
        "sam.neck.",
        "sam.net_",
        ".rel_pos",
        ".patch_embd",
        ".patch_merger",
        "a.rvq.codebook",
        "mm.a.code_embd",
    ];
    // LLM_TN(arch)(LLM_TENSOR_POS_EMBD / TOKEN_TYPES, "weight") for the text models.
    name != "position_embd.weight" && name != "token_types.weight" && !NEVER.iter().any(|s| name.contains(s))
}

/// llama.cpp's `use_more_bits`: the first and last eighth of the layers, and every third
/// layer in between. `n / 8` etc. are C integer divisions; `%` truncates like C's.
fn use_more_bits(i_layer: i64, n_layers: i64) -> bool {
    i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2
}

/// The layer number of `blk.N.…` names (C `sscanf("blk.%d.")`), -1 otherwise.
fn layer_of(name: &str) -> i64 {
    let Some(rest) = name.strip_prefix("blk.") else { return -1 };
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().unwrap_or(-1)
}

/// llama.cpp's visiting (and writing) order: by layer (-1 for non-layer tensors), then name.
pub fn llama_cpp_order(infos: &[TensorInfo]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..infos.len()).collect();
    idx.sort_by(|&a, &b| {
        let (na, nb) = (&infos[a].name, &infos[b].name);
        layer_of(na).cmp(&layer_of(nb)).then_with(|| na.as_bytes().cmp(nb.as_bytes()))
    });
    idx
}

/// llama.cpp `tensor_type_fallback`: block-256 types fall back to a block-32 one; a block-32
/// type (or a fallback) that still does not fit becomes F16.
fn fallback(name: &str, ncols: u64, ty: GgmlType) -> Result<(GgmlType, bool), QuantizeError> {
    let block = ty.block_size() as u64;
    if ncols.is_multiple_of(block) {
        return Ok((ty, false));
    }
    use GgmlType as G;
    let to = match ty {
        G::IQ1_S | G::IQ1_M | G::IQ2_XXS | G::IQ2_XS | G::IQ2_S | G::IQ3_XXS | G::IQ3_S | G::IQ4_XS => G::IQ4_NL,
        G::Q2_K | G::Q3_K | G::TQ1_0 | G::TQ2_0 => G::Q4_0,
        G::Q4_K => G::Q5_0,
        G::Q5_K => G::Q5_1,
        G::Q6_K => G::Q8_0,
        _ if block <= 32 => ty,
        _ => return Err(QuantizeError::NoFallback { tensor: name.to_string(), ncols, ty, block: ty.block_size() }),
    };
    if !ncols.is_multiple_of(to.block_size() as u64) {
        return Ok((G::F16, true));
    }
    Ok((to, true))
}

/// Running state of llama.cpp's `quantize_state_impl` for the rules we implement.
struct State {
    n_attention_wv: i64,
    i_attention_wv: i64,
    /// `n_ffn_down = n_ffn_gate = n_ffn_up = n_layer` (`init_quantize_state_counters`).
    n_ffn: i64,
    i_ffn_down: i64,
    i_ffn_gate: i64,
    i_ffn_up: i64,
    has_tied_embeddings: bool,
    has_imatrix: bool,
}

impl State {
    /// llama.cpp's `layer_info`: with experts the layer comes from the name, else the count.
    fn layer(&self, f: &ModelFacts, count: i64, name: &str) -> i64 {
        if f.n_expert > 1 {
            layer_of(name)
        } else {
            count
        }
    }
}

/// llama.cpp `llama_tensor_get_type_impl` (commit 0c1e570), for the file types of
/// [`FileType`] (no `--output-tensor-type` / `--token-embedding-type`: use `--keep`).
fn mix_type(st: &mut State, f: &ModelFacts, ty: GgmlType, info: &TensorInfo, ft: FileType, cat: Category) -> GgmlType {
    use FileType as F;
    use GgmlType as G;
    let falcon = f.arch == "falcon";
    let mut new = ty;
    let n_layer = st.n_ffn;
    let iq2_s_or_m = matches!(ft, F::IQ2_S | F::IQ2_M);
    if cat == Category::Output || (st.has_tied_embeddings && cat == Category::TokenEmbd) {
        let nx = info.ne.first().copied().unwrap_or(0);
        if falcon || !nx.is_multiple_of(new.block_size() as u64) {
            new = G::Q8_0;
        } else if ft.is_very_low_bit() || ft == F::IQ3_XXS {
            new = G::Q5_K;
        } else if new != G::Q8_0 {
            new = G::Q6_K;
        }
    } else if cat == Category::TokenEmbd {
        match ft {
            F::IQ2_XXS | F::IQ2_XS | F::IQ1_S | F::IQ1_M => new = G::Q2_K,
            F::IQ2_S | F::IQ2_M | F::IQ3_XXS => new = G::IQ3_S,
            _ => {}
        }
    } else if ft.is_very_low_bit() {
        if is_attn_v_like(cat) {
            new = if f.n_gqa >= 4 || f.n_expert >= 4 {
                G::Q4_K
            } else if iq2_s_or_m {
                G::IQ3_S
            } else {
                G::Q2_K
            };
            st.i_attention_wv += 1;
        } else if f.n_expert == 8 && cat == Category::AttnK {
            new = G::Q4_K;
        } else if cat == Category::FfnDown {
            if st.i_ffn_down < n_layer / 8 {
                new = if iq2_s_or_m { G::IQ3_S } else { G::Q2_K };
            }
            st.i_ffn_down += 1;
        } else if cat == Category::AttnOutput {
            if f.n_expert == 8 {
                new = G::Q5_K;
            } else if matches!(ft, F::IQ1_S | F::IQ1_M) {
                new = G::IQ2_XXS;
            } else if iq2_s_or_m {
                new = G::IQ3_S;
            }
        }
    } else if is_attn_v_like(cat) {
        match ft {
            F::Q2_K => new = if f.n_gqa >= 4 { G::Q4_K } else { G::Q3_K },
            F::Q2_K_S if f.n_gqa >= 4 => new = G::Q4_K,
            F::IQ3_XXS => {
                new = if f.n_gqa >= 4 {
                    G::Q4_K
                } else if !st.has_imatrix {
                    G::IQ3_S
                } else {
                    G::IQ3_XXS
                }
            }
            F::IQ3_XS | F::IQ3_S if f.n_gqa >= 4 => new = G::Q4_K,
            F::IQ3_M => new = G::Q4_K,
            F::Q3_K_M => new = if st.i_attention_wv < 2 { G::Q5_K } else { G::Q4_K },
            F::Q3_K_L => new = G::Q5_K,
            F::IQ4_NL | F::IQ4_XS if f.n_gqa >= 4 => new = G::Q5_K,
            F::Q4_K_M | F::Q5_K_M if use_more_bits(st.i_attention_wv, st.n_attention_wv) => new = G::Q6_K,
            F::Q4_K_S if st.i_attention_wv < 4 => new = G::Q5_K,
            _ => {}
        }
        if f.is_70b && (new == G::Q3_K || new == G::Q4_K) {
            new = G::Q5_K;
        }
        if f.n_expert == 8 {
            new = G::Q8_0;
        }
        st.i_attention_wv += 1;
    } else if cat == Category::AttnK {
        if f.n_expert == 8 {
            new = G::Q8_0;
        } else if ft == F::IQ3_XS {
            new = G::IQ3_XXS;
        } else if ft == F::IQ3_XXS {
            new = G::IQ2_S;
        }
    } else if cat == Category::AttnQ {
        if ft == F::IQ3_XS {
            new = G::IQ3_XXS;
        } else if ft == F::IQ3_XXS {
            new = G::IQ2_S;
        }
    } else if cat == Category::FfnDown {
        let i_layer = st.layer(f, st.i_ffn_down, &info.name);
        let first_eighth = i_layer < n_layer / 8;
        match ft {
            F::Q2_K => new = G::Q3_K,
            F::Q2_K_S if first_eighth => new = G::Q4_K,
            F::IQ3_XXS if !st.has_imatrix => new = if first_eighth { G::Q4_K } else { G::Q3_K },
            F::Q3_K_M => {
                new = if i_layer < n_layer / 16 {
                    G::Q5_K
                } else if !falcon || use_more_bits(i_layer, n_layer) {
                    G::Q4_K
                } else {
                    G::Q3_K
                }
            }
            F::IQ3_M if first_eighth || (f.n_expert == 8 && use_more_bits(i_layer, n_layer)) => new = G::Q4_K,
            F::Q3_K_L => new = if falcon { G::Q4_K } else { G::Q5_K },
            F::Q4_K_M => {
                if falcon {
                    new = if i_layer < n_layer / 16 {
                        G::Q6_K
                    } else if use_more_bits(i_layer, n_layer) {
                        G::Q5_K
                    } else {
                        G::Q4_K
                    };
                } else if use_more_bits(i_layer, n_layer) {
                    new = G::Q6_K;
                }
            }
            F::IQ4_NL | F::IQ4_XS if first_eighth && !st.has_imatrix => new = G::Q5_K,
            F::Q5_K_M if use_more_bits(i_layer, n_layer) => new = G::Q6_K,
            F::Q4_K_S if !falcon && first_eighth => new = G::Q5_K,
            // "Guard against craziness in the first few ffn_down layers" (only with an imatrix).
            F::Q4_0 if st.has_imatrix && first_eighth => new = G::Q4_1,
            F::Q5_0 if st.has_imatrix && first_eighth => new = G::Q5_1,
            _ => {}
        }
        st.i_ffn_down += 1;
    } else if cat == Category::AttnOutput {
        if !falcon {
            if f.n_expert == 8 {
                use FileType::*;
                if matches!(
                    ft,
                    Q2_K | IQ3_XS | IQ3_XXS | Q3_K_S | Q3_K_M | IQ4_NL | Q4_K_S | Q4_K_M | IQ3_S | IQ3_M | IQ4_XS
                ) {
                    new = G::Q5_K;
                }
            } else {
                match ft {
                    F::Q2_K => new = G::Q3_K,
                    F::IQ3_XXS => new = G::IQ3_S,
                    F::Q3_K_M | F::IQ3_M => new = G::Q4_K,
                    F::Q3_K_L => new = G::Q5_K,
                    _ => {}
                }
            }
        } else if ft == F::Q3_K_L {
            new = G::Q4_K;
        }
    } else if cat == Category::FfnGate || cat == Category::FfnUp {
        let count = if cat == Category::FfnGate { st.i_ffn_gate } else { st.i_ffn_up };
        let i_layer = st.layer(f, count, &info.name);
        if ft == F::IQ3_XS && i_layer >= n_layer / 8 && i_layer < 7 * n_layer / 8 {
            new = G::IQ3_XXS;
        }
        *(if cat == Category::FfnGate { &mut st.i_ffn_gate } else { &mut st.i_ffn_up }) += 1;
    }
    // attn_qkv is attn_v-like (handled above): llama.cpp's separate attn_qkv branch is never
    // reached for it.
    new
}

/// llama.cpp `tensor_requires_imatrix`: the very low-bit types (and Q2_K in a Q2_K_S file)
/// need an importance matrix, except for the token embeddings and the output.
pub fn requires_imatrix(name: &str, to: GgmlType, ftype: FileType) -> bool {
    use GgmlType as G;
    if name == "token_embd.weight" || name == "per_layer_token_embd.weight" || name == "output.weight" {
        return false;
    }
    match to {
        G::IQ3_XXS | G::IQ2_XXS | G::IQ2_XS | G::IQ2_S | G::IQ1_M | G::IQ1_S => true,
        G::Q2_K => ftype == FileType::Q2_K_S,
        _ => false,
    }
}

/// Chooses every tensor's output type, in llama.cpp's order (see the module docs).
pub fn plan(infos: &[TensorInfo], facts: &ModelFacts, p: &QuantizeParams) -> Result<Vec<TensorPlan>, QuantizeError> {
    let default = p.ftype.default_type();
    let order = llama_cpp_order(infos);
    let mut st = State {
        n_attention_wv: infos.iter().filter(|t| is_attn_v_like(category(&t.name))).count() as i64,
        i_attention_wv: 0,
        n_ffn: i64::from(facts.n_layer),
        i_ffn_down: 0,
        i_ffn_gate: 0,
        i_ffn_up: 0,
        has_tied_embeddings: !infos.iter().any(|t| category(&t.name) == Category::Output),
        has_imatrix: p.has_imatrix,
    };
    let mut out = Vec::with_capacity(infos.len());
    for i in order {
        let info = &infos[i];
        let mut tp = TensorPlan {
            name: info.name.clone(),
            ne: info.ne.clone(),
            from: info.ty,
            to: info.ty,
            reason: Reason::Kept,
            fallback_from: None,
        };
        if !allows_quantization(&info.name, &info.ne) {
            if p.widen_vectors && info.ty.is_float() && n_dims(&info.ne) == 1 {
                tp.to = GgmlType::F32;
            }
            out.push(tp);
            continue;
        }
        tp.reason = Reason::Rule;
        let mut ty = default;
        // llama.cpp applies overrides, mixes and fallbacks only for quantized file types.
        if default.is_quantized() {
            let manual = p.overrides.iter().find(|o| o.pattern.is_match(&info.name));
            if let Some(o) = manual {
                ty = o.ty;
                tp.reason = Reason::Override;
            } else if !p.pure {
                ty = mix_type(&mut st, facts, ty, info, p.ftype, category(&info.name));
            }
            let ncols = info.ne.first().copied().unwrap_or(0);
            let (fb, changed) = fallback(&info.name, ncols, ty)?;
            if changed {
                tp.fallback_from = Some(ty);
            }
            ty = fb;
        }
        tp.to = ty;
        out.push(tp);
    }
    Ok(out)
}

/// True when `llmtool quantize --device gpu` encodes a `from` → `to` tensor on the GPU: a
/// real change to a block type that has a GPU kernel, from a type the CPU can decode.
pub fn on_gpu(from: GgmlType, to: GgmlType) -> bool {
    #[cfg(feature = "gpu")]
    {
        from != to
            && to.is_quantized()
            && llmtool_kernels::gpu::GpuContext::supports(to)
            && llmtool_kernels::convert::can_decode(from)
    }
    #[cfg(not(feature = "gpu"))]
    {
        let _ = (from, to);
        false
    }
}

/// `inner`'s tensors re-typed like [`crate::passes::convert::Retyped`], except that targets
/// the GPU supports ([`on_gpu`]) are decoded to f32 on the CPU and quantized on the GPU
/// (output byte-identical to the CPU quantizers; see `llmtool_kernels::gpu`).
#[cfg(feature = "gpu")]
pub struct GpuRetyped<'a> {
    inner: &'a dyn TensorSource,
    infos: Vec<TensorInfo>,
    gpu: &'a llmtool_kernels::gpu::GpuContext,
}

#[cfg(feature = "gpu")]
impl<'a> GpuRetyped<'a> {
    /// `infos`: the output tensors, same names as `inner`'s.
    pub fn new(inner: &'a dyn TensorSource, infos: Vec<TensorInfo>, gpu: &'a llmtool_kernels::gpu::GpuContext) -> Self {
        GpuRetyped { inner, infos, gpu }
    }
}

#[cfg(feature = "gpu")]
impl TensorSource for GpuRetyped<'_> {
    fn tensor_infos(&self) -> &[TensorInfo] {
        &self.infos
    }

    fn tensor_bytes(&self, name: &str) -> Result<Cow<'_, [u8]>, FormatError> {
        let src = self.inner.tensor_info(name).ok_or_else(|| FormatError::NoSuchTensor(name.to_string()))?;
        let from = src.ty;
        let to = self.tensor_info(name).ok_or_else(|| FormatError::NoSuchTensor(name.to_string()))?.ty;
        let bytes = self.inner.tensor_bytes(name)?;
        if !on_gpu(from, to) {
            return retype_bytes(name, from, to, bytes);
        }
        let n =
            src.n_elements().ok_or_else(|| FormatError::Other(format!("tensor '{name}': element count overflows")))?;
        let n = usize::try_from(n).map_err(|_| FormatError::Other(format!("tensor '{name}': {n} elements")))?;
        let mut x = vec![0f32; n];
        convert::to_f32(from, &bytes, &mut x).map_err(|e| FormatError::Other(format!("tensor '{name}': {e}")))?;
        drop(bytes);
        let q =
            self.gpu.quantize(to, &x).map_err(|e| FormatError::Other(format!("tensor '{name}' on the GPU: {e}")))?;
        Ok(Cow::Owned(q))
    }

    fn release(&self, name: &str) {
        self.inner.release(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, ty: GgmlType, ne: &[u64]) -> TensorInfo {
        TensorInfo::new(name, ty, ne.to_vec())
    }

    /// SmolLM2-135M's tensors (n_embd 576, n_ff 1536, 9 heads / 3 KV heads of 64, 30
    /// layers, vocab 49152, tied embeddings), in its GGUF file's order.
    fn smollm2() -> Vec<TensorInfo> {
        smollm2_as(GgmlType::Q4_1)
    }

    /// SmolLM2's tensors with the matrices stored as `q`.
    fn smollm2_as(q: GgmlType) -> Vec<TensorInfo> {
        let mut v = vec![t("token_embd.weight", q, &[576, 49152])];
        for i in 0..30 {
            let n = |s: &str| format!("blk.{i}.{s}");
            v.push(t(&n("attn_norm.weight"), GgmlType::F32, &[576]));
            v.push(t(&n("ffn_down.weight"), q, &[1536, 576]));
            v.push(t(&n("ffn_gate.weight"), q, &[576, 1536]));
            v.push(t(&n("ffn_up.weight"), q, &[576, 1536]));
            v.push(t(&n("ffn_norm.weight"), GgmlType::F32, &[576]));
            v.push(t(&n("attn_k.weight"), q, &[576, 192]));
            v.push(t(&n("attn_output.weight"), q, &[576, 576]));
            v.push(t(&n("attn_q.weight"), q, &[576, 576]));
            v.push(t(&n("attn_v.weight"), q, &[576, 192]));
        }
        v.push(t("output_norm.weight", GgmlType::F32, &[576]));
        v
    }

    fn facts() -> ModelFacts {
        ModelFacts { arch: "llama".into(), n_layer: 30, n_gqa: 3, n_expert: 0, is_70b: false }
    }

    fn params(ftype: FileType) -> QuantizeParams {
        QuantizeParams { ftype, pure: false, overrides: vec![], widen_vectors: false, has_imatrix: false }
    }

    #[test]
    fn file_type_ids_and_aliases() {
        assert_eq!(FileType::parse("q4_k_m"), Some(FileType::Q4_K_M));
        assert_eq!(FileType::parse("Q4_K"), Some(FileType::Q4_K_M));
        assert_eq!(FileType::parse("Q7_0"), None);
        assert_eq!(FileType::Q8_0.id(), 7);
        assert_eq!(FileType::BF16.id(), 32);
    }

    #[test]
    fn use_more_bits_for_30_layers() {
        // By hand from the C expression: i < 3 || i >= 26 || (i - 3) % 3 == 2.
        let more: Vec<i64> = (0..30).filter(|&i| use_more_bits(i, 30)).collect();
        assert_eq!(more, [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29]);
    }

    #[test]
    fn smollm2_q4_k_m_mix() {
        let plan = plan(&smollm2(), &facts(), &params(FileType::Q4_K_M)).unwrap();
        let ty = |name: &str| plan.iter().find(|p| p.name == name).unwrap().to;
        // Tied embeddings take the output rule: 576 is not a multiple of 256 → Q8_0.
        assert_eq!(ty("token_embd.weight"), GgmlType::Q8_0);
        assert_eq!(ty("output_norm.weight"), GgmlType::F32);
        for i in 0..30 {
            let more = [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29].contains(&i);
            let n = |s: &str| format!("blk.{i}.{s}");
            // ffn_down rows are 1536 = 6 × 256 long: K types fit.
            assert_eq!(ty(&n("ffn_down.weight")), if more { GgmlType::Q6_K } else { GgmlType::Q4_K }, "{i}");
            // attn_v: Q6_K → Q8_0 or Q4_K → Q5_0 (rows of 576).
            assert_eq!(ty(&n("attn_v.weight")), if more { GgmlType::Q8_0 } else { GgmlType::Q5_0 }, "{i}");
            for s in ["attn_q.weight", "attn_k.weight", "attn_output.weight", "ffn_gate.weight", "ffn_up.weight"] {
                assert_eq!(ty(&n(s)), GgmlType::Q5_0, "{i} {s}");
            }
            assert_eq!(ty(&n("attn_norm.weight")), GgmlType::F32);
        }
        // llama.cpp's order: non-layer tensors by name, then layer by layer, names sorted.
        assert_eq!(plan[0].name, "output_norm.weight");
        assert_eq!(plan[1].name, "token_embd.weight");
        assert_eq!(plan[2].name, "blk.0.attn_k.weight");
        assert_eq!(plan.last().unwrap().name, "blk.29.ffn_up.weight");
    }

    /// Every file type, with and without an imatrix, against the types llama-quantize
    /// --dry-run chose for SmolLM2 F16 (`fixtures/llama_quantize/gen.sh plans`, llama.cpp
    /// 0c1e570).
    #[test]
    fn smollm2_plans_equal_llama_quantize() {
        let judged = include_str!("../../fixtures/llama_quantize/plans.txt");
        let mut seen = 0;
        for line in judged.lines() {
            let mut fields = line.split_whitespace();
            let tag = fields.next().unwrap();
            let (name, has_imatrix) = tag.strip_suffix("+imatrix").map_or((tag, false), |n| (n, true));
            let mut p = params(FileType::parse(name).unwrap_or_else(|| panic!("{name}")));
            p.has_imatrix = has_imatrix;
            let plan = plan(&smollm2_as(GgmlType::F16), &facts(), &p).unwrap();
            let expected: Vec<&str> = fields.collect();
            let ours: Vec<String> = plan.iter().map(|t| t.to.name().to_ascii_lowercase()).collect();
            assert_eq!(ours.len(), expected.len(), "{tag}");
            for (t, (o, e)) in plan.iter().zip(ours.iter().zip(&expected)) {
                assert_eq!(o, &e.to_ascii_lowercase(), "{tag}: {}", t.name);
            }
            seen += 1;
        }
        assert_eq!(seen, 2 * (FileType::ALL.len() - 3), "every quantized file type, with and without imatrix");
    }

    #[test]
    fn legacy_types_and_overrides() {
        let mut p = params(FileType::Q4_0);
        p.overrides.push(Override::parse("blk.*.attn_v.weight=q8_0").unwrap());
        p.overrides.push(Override::parse(r"ffn_down=Q6_K").unwrap());
        let plan = plan(&smollm2(), &facts(), &p).unwrap();
        let ty = |name: &str| plan.iter().find(|p| p.name == name).unwrap().to;
        assert_eq!(ty("token_embd.weight"), GgmlType::Q8_0, "output rule on tied embeddings");
        assert_eq!(ty("blk.3.attn_q.weight"), GgmlType::Q4_0);
        assert_eq!(ty("blk.3.attn_v.weight"), GgmlType::Q8_0);
        assert_eq!(ty("blk.3.ffn_down.weight"), GgmlType::Q6_K);
        assert!(Override::parse("x=Q9_9").is_err());
        assert!(Override::parse("noequals").is_err());
    }

    #[test]
    fn fallbacks_end_in_f16() {
        let infos = [t("blk.0.attn_q.weight", GgmlType::F16, &[48, 4])];
        // Current llama.cpp: a block-32 type that does not fit becomes F16 (older ones failed).
        let mut p = params(FileType::Q8_0);
        assert_eq!(plan(&infos, &facts(), &p).unwrap()[0].to, GgmlType::F16);
        p.ftype = FileType::Q4_K_S;
        // Q4_K → Q5_0 does not fit 48 either → F16.
        assert_eq!(plan(&infos, &facts(), &p).unwrap()[0].to, GgmlType::F16);
        p.ftype = FileType::IQ3_S;
        // IQ3_S → IQ4_NL does not fit either.
        assert_eq!(plan(&infos, &facts(), &p).unwrap()[0].to, GgmlType::F16);
        let ok = [t("blk.0.attn_q.weight", GgmlType::F16, &[96, 4])];
        assert_eq!(plan(&ok, &facts(), &p).unwrap()[0].to, GgmlType::IQ4_NL);
        let mut o = params(FileType::Q4_0);
        o.overrides.push(Override::parse("attn_q=Q1_0").unwrap());
        assert!(matches!(plan(&infos, &facts(), &o), Err(QuantizeError::NoFallback { .. })));
    }

    #[test]
    fn float_file_types_skip_rules() {
        let plan = plan(&smollm2(), &facts(), &params(FileType::F16)).unwrap();
        assert!(plan.iter().all(|p| if p.ne.len() == 1 { p.to == GgmlType::F32 } else { p.to == GgmlType::F16 }));
    }
}
