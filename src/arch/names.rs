//! HF <-> GGUF tensor names. Global tensors have fixed names; block tensors are
//! `model.layers.N.<hf>` <-> `blk.N.<gguf>` with a per-family suffix table. The GGUF names
//! are gguf-py's `TENSOR_NAMES` (constants.py) and the HF ones what `TensorNameMap`
//! (tensor_mapping.py) maps to them; `tests/judges/gguf_names.py` checks both.

use super::ArchError;

/// (HF name, GGUF name) of the tensors outside the blocks.
pub(crate) const GLOBAL: &[(&str, &str)] = &[
    ("model.embed_tokens.weight", "token_embd.weight"),
    ("model.norm.weight", "output_norm.weight"),
    ("lm_head.weight", "output.weight"),
];

/// Block tensors every family here shares (attention projections, the gated FFN, the norms
/// around them). Families add to or replace parts of this list.
pub(crate) const LLAMA_BLOCK: &[(&str, &str)] = &[
    ("input_layernorm.weight", "attn_norm.weight"),
    ("self_attn.q_proj.weight", "attn_q.weight"),
    ("self_attn.k_proj.weight", "attn_k.weight"),
    ("self_attn.v_proj.weight", "attn_v.weight"),
    ("self_attn.o_proj.weight", "attn_output.weight"),
    ("post_attention_layernorm.weight", "ffn_norm.weight"),
    ("mlp.gate_proj.weight", "ffn_gate.weight"),
    ("mlp.up_proj.weight", "ffn_up.weight"),
    ("mlp.down_proj.weight", "ffn_down.weight"),
    // Llama with attention_bias = true (llama.cpp loads optional bq/bk/bv/bo).
    ("self_attn.q_proj.bias", "attn_q.bias"),
    ("self_attn.k_proj.bias", "attn_k.bias"),
    ("self_attn.v_proj.bias", "attn_v.bias"),
    ("self_attn.o_proj.bias", "attn_output.bias"),
];

/// Mixtral's router (gguf-py `FFN_GATE_INP`), added to the llama table; its experts are
/// stacked (`experts.rs`). transformers 5 names it `mlp.gate` (`MixtralSparseMoeBlock.gate`);
/// GGUF → HF writes the first, classic name, which transformers 5 still loads.
pub(crate) const MIXTRAL_ROUTER: &[(&str, &str)] =
    &[("block_sparse_moe.gate.weight", "ffn_gate_inp.weight"), ("mlp.gate.weight", "ffn_gate_inp.weight")];

/// Qwen2-MoE / Qwen3-MoE's router and Qwen2-MoE's shared expert with its gate (gguf-py
/// `FFN_GATE_INP`, `FFN_{GATE,UP,DOWN}_SHEXP`, `FFN_GATE_INP_SHEXP`); the routed experts are
/// stacked (`experts.rs`).
pub(crate) const QWEN_MOE_FFN: &[(&str, &str)] = &[
    ("mlp.gate.weight", "ffn_gate_inp.weight"),
    ("mlp.shared_expert.gate_proj.weight", "ffn_gate_shexp.weight"),
    ("mlp.shared_expert.up_proj.weight", "ffn_up_shexp.weight"),
    ("mlp.shared_expert.down_proj.weight", "ffn_down_shexp.weight"),
    ("mlp.shared_expert_gate.weight", "ffn_gate_inp_shexp.weight"),
];

/// The per-head query/key RMSNorms of qwen3 and gemma3 (gguf-py `ATTN_Q_NORM`, `ATTN_K_NORM`),
/// added to a family's block table with [`with_qk_norms`].
pub(crate) const QK_NORM_BLOCK: &[(&str, &str)] =
    &[("self_attn.q_norm.weight", "attn_q_norm.weight"), ("self_attn.k_norm.weight", "attn_k_norm.weight")];

/// `block` followed by [`QK_NORM_BLOCK`].
pub(crate) fn with_qk_norms(block: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    block.iter().chain(QK_NORM_BLOCK).copied().collect()
}

/// Splits `model.layers.N.rest` (HF) or `blk.N.rest` (GGUF) into (N, rest). N must be a
/// canonical decimal (no sign, no leading zero) so that the mapping is a bijection.
pub(crate) fn split_block<'a>(name: &'a str, prefix: &str) -> Option<(u32, &'a str)> {
    let rest = name.strip_prefix(prefix)?;
    let (num, tail) = rest.split_once('.')?;
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) || (num.len() > 1 && num.starts_with('0')) {
        return None;
    }
    Some((num.parse().ok()?, tail))
}

fn check_block(name: &str, bid: u32, n_layer: u32) -> Result<(), ArchError> {
    if bid >= n_layer {
        return Err(ArchError::InvalidValue {
            key: name.into(),
            reason: format!("block {bid} is out of range (block count {n_layer})"),
        });
    }
    Ok(())
}

/// HF -> GGUF by table. `Ok(None)` for tensors dropped on purpose (`rotary_emb.inv_freq`,
/// a buffer older transformers saved).
pub(crate) fn hf_to_gguf(
    arch: &'static str,
    block: &[(&str, &str)],
    hf: &str,
    n_layer: u32,
) -> Result<Option<String>, ArchError> {
    if let Some((_, g)) = GLOBAL.iter().find(|(h, _)| *h == hf) {
        return Ok(Some((*g).to_string()));
    }
    if let Some((bid, rest)) = split_block(hf, "model.layers.") {
        if rest == "self_attn.rotary_emb.inv_freq" {
            return Ok(None);
        }
        if let Some((_, g)) = block.iter().find(|(h, _)| *h == rest) {
            check_block(hf, bid, n_layer)?;
            return Ok(Some(format!("blk.{bid}.{g}")));
        }
    }
    Err(ArchError::UnknownTensor { arch, name: hf.into() })
}

/// GGUF -> HF by table.
pub(crate) fn gguf_to_hf(
    arch: &'static str,
    block: &[(&str, &str)],
    gguf: &str,
    n_layer: u32,
) -> Result<String, ArchError> {
    if let Some((h, _)) = GLOBAL.iter().find(|(_, g)| *g == gguf) {
        return Ok((*h).to_string());
    }
    if gguf == "rope_freqs.weight" || gguf.starts_with("rope_factors_") {
        return Err(ArchError::Unsupported {
            what: "tensor",
            detail: format!("`{gguf}` holds llama3/longrope rope factors, which have no HF tensor (config.json's rope_scaling holds their parameters)"),
        });
    }
    if let Some((bid, rest)) = split_block(gguf, "blk.") {
        if let Some((h, _)) = block.iter().find(|(_, g)| *g == rest) {
            check_block(gguf, bid, n_layer)?;
            return Ok(format!("model.layers.{bid}.{h}"));
        }
    }
    Err(ArchError::UnknownTensor { arch, name: gguf.into() })
}

/// The part of a GGUF block name after `blk.N.`, or the whole name for globals.
pub(crate) fn gguf_suffix(gguf: &str) -> &str {
    split_block(gguf, "blk.").map(|(_, r)| r).unwrap_or(gguf)
}
