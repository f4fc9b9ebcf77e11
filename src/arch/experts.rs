//! Mixture-of-Experts tensors: an HF checkpoint holds one matrix per expert
//! (`model.layers.N.block_sparse_moe.experts.E.w1.weight` for Mixtral,
//! `model.layers.N.mlp.experts.E.gate_proj.weight` for Qwen-MoE), llama.cpp one 3-D tensor per
//! layer and projection with the experts stacked on the outermost dimension
//! (`blk.N.ffn_gate_exps.weight`, ne = [n_embd, n_ff_exp, n_expert]; convert_hf_to_gguf.py
//! `LlamaModel.modify_tensors` / `Qwen2MoeModel.modify_tensors`: `torch.stack(datas, dim=0)`).
//!
//! The converter buffers a layer's expert tensors and writes that layer's stacked tensors, in
//! the order of its projection list, once all `n_expert × 3` of them have been seen; the
//! [`ExpertSlice`] of each HF tensor carries what the HF view needs to do the same.
//!
//! Checkpoints saved by transformers 5 (and mergekit-moe's output made with it) hold the
//! experts already stacked, as the `*Experts` modules of modeling_mixtral.py /
//! modeling_qwen2_moe.py / modeling_qwen3_moe.py keep them: `model.layers.N.mlp.experts.gate_up_proj`
//! [E, 2·ff, hidden] (gate rows first: `linear(x, gate_up_proj[e]).chunk(2, dim=-1)`) and
//! `mlp.experts.down_proj` [E, hidden, ff], no `.weight` suffix. [`FusedSlice`] maps them:
//! the GGUF gate and up tensors are the two row halves of each expert, down is the tensor as is.

use super::names::split_block;
use super::ArchError;

/// One family's per-expert tensors: the HF module path below `model.layers.N.` and the
/// (HF leaf, GGUF suffix) of each projection, in the order llama.cpp's converter writes them.
pub(crate) struct ExpertTable {
    pub hf_module: &'static str,
    pub projections: &'static [(&'static str, &'static str)],
}

/// transformers 5's stacked experts (module `mlp.experts` in every family here): each HF
/// parameter and the GGUF projections it holds, as equal row parts of each expert.
const FUSED_MODULE: &str = "mlp.experts";
const FUSED: &[(&str, &[&str])] =
    &[("gate_up_proj", &["ffn_gate_exps.weight", "ffn_up_exps.weight"]), ("down_proj", &["ffn_down_exps.weight"])];

/// Mixtral: `w1` = gate, `w2` = down, `w3` = up, written in that order.
pub(crate) const MIXTRAL_EXPERTS: ExpertTable = ExpertTable {
    hf_module: "block_sparse_moe.experts",
    projections: &[("w1", "ffn_gate_exps.weight"), ("w2", "ffn_down_exps.weight"), ("w3", "ffn_up_exps.weight")],
};

/// Qwen2-MoE / Qwen3-MoE: written down, gate, up.
pub(crate) const QWEN_MOE_EXPERTS: ExpertTable = ExpertTable {
    hf_module: "mlp.experts",
    projections: &[
        ("down_proj", "ffn_down_exps.weight"),
        ("gate_proj", "ffn_gate_exps.weight"),
        ("up_proj", "ffn_up_exps.weight"),
    ],
};

/// Where one HF expert tensor goes: expert `index` of `count` in the stacked GGUF tensor
/// `gguf`, which is projection `order` of the stacked tensors of block `layer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpertSlice {
    pub gguf: String,
    pub layer: u32,
    pub index: u32,
    pub count: u32,
    pub order: usize,
    /// Every stacked GGUF tensor of block `layer`, in projection order.
    pub layer_tensors: Vec<String>,
}

/// Where one of transformers 5's stacked expert tensors goes: its row parts (of `n_parts`
/// equal ones per expert), each a whole stacked GGUF tensor of block `layer`, as
/// (projection order, GGUF name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FusedSlice {
    pub layer: u32,
    pub count: u32,
    /// Every stacked GGUF tensor of block `layer`, in projection order.
    pub layer_tensors: Vec<String>,
    pub parts: Vec<(usize, String)>,
}

impl ExpertTable {
    /// The parts a transformers 5 stacked expert tensor is, `None` when the name is not one.
    pub(crate) fn hf_fused(&self, hf: &str, n_layer: u32, n_expert: u32) -> Result<Option<FusedSlice>, ArchError> {
        let Some((bid, rest)) = split_block(hf, "model.layers.") else {
            return Ok(None);
        };
        let Some(leaf) = rest.strip_prefix(FUSED_MODULE).and_then(|r| r.strip_prefix('.')) else {
            return Ok(None);
        };
        let Some((_, ggufs)) = FUSED.iter().find(|(h, _)| *h == leaf) else {
            return Ok(None);
        };
        if bid >= n_layer {
            return Err(ArchError::InvalidValue {
                key: hf.into(),
                reason: format!("block {bid} is out of range (block count {n_layer})"),
            });
        }
        let parts = ggufs
            .iter()
            .map(|g| {
                let order =
                    self.projections.iter().position(|(_, p)| p == g).expect("every fused part is a projection");
                (order, format!("blk.{bid}.{g}"))
            })
            .collect();
        Ok(Some(FusedSlice { layer: bid, count: n_expert, layer_tensors: self.layer_tensors(bid), parts }))
    }

    /// The stacked GGUF tensors of block `bid`, in projection order.
    fn layer_tensors(&self, bid: u32) -> Vec<String> {
        self.projections.iter().map(|(_, g)| format!("blk.{bid}.{g}")).collect()
    }

    /// The slice an HF tensor name is, `None` when it is not one of this table's experts.
    pub(crate) fn hf_slice(&self, hf: &str, n_layer: u32, n_expert: u32) -> Result<Option<ExpertSlice>, ArchError> {
        let Some((bid, rest)) = split_block(hf, "model.layers.") else {
            return Ok(None);
        };
        let Some(rest) = rest.strip_prefix(self.hf_module).and_then(|r| r.strip_prefix('.')) else {
            return Ok(None);
        };
        let Some((index, leaf)) = split_block(rest, "") else {
            return Ok(None);
        };
        let Some(order) = self.projections.iter().position(|(h, _)| leaf.strip_suffix(".weight") == Some(*h)) else {
            return Ok(None);
        };
        if bid >= n_layer {
            return Err(ArchError::InvalidValue {
                key: hf.into(),
                reason: format!("block {bid} is out of range (block count {n_layer})"),
            });
        }
        if index >= n_expert {
            return Err(ArchError::InvalidValue {
                key: hf.into(),
                reason: format!("expert {index} is out of range (the config has {n_expert} experts)"),
            });
        }
        Ok(Some(ExpertSlice {
            gguf: format!("blk.{bid}.{}", self.projections[order].1),
            layer: bid,
            index,
            count: n_expert,
            order,
            layer_tensors: self.layer_tensors(bid),
        }))
    }

    /// For a stacked GGUF tensor of this table: the HF names of its experts, in order.
    pub(crate) fn hf_names(&self, gguf: &str, n_layer: u32, n_expert: u32) -> Option<Vec<String>> {
        let (bid, rest) = split_block(gguf, "blk.")?;
        let (leaf, _) = self.projections.iter().find(|(_, g)| *g == rest)?;
        if bid >= n_layer {
            return None;
        }
        Some((0..n_expert).map(|e| format!("model.layers.{bid}.{}.{e}.{leaf}.weight", self.hf_module)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_expert_names_map_to_stacked_slices_and_back() {
        let s = MIXTRAL_EXPERTS.hf_slice("model.layers.1.block_sparse_moe.experts.7.w2.weight", 2, 8).unwrap().unwrap();
        assert_eq!(
            s,
            ExpertSlice {
                gguf: "blk.1.ffn_down_exps.weight".into(),
                layer: 1,
                index: 7,
                count: 8,
                order: 1,
                layer_tensors: vec![
                    "blk.1.ffn_gate_exps.weight".into(),
                    "blk.1.ffn_down_exps.weight".into(),
                    "blk.1.ffn_up_exps.weight".into()
                ],
            }
        );
        let names = MIXTRAL_EXPERTS.hf_names("blk.1.ffn_down_exps.weight", 2, 8).unwrap();
        assert_eq!(names[7], "model.layers.1.block_sparse_moe.experts.7.w2.weight");
        assert!(MIXTRAL_EXPERTS.hf_slice("model.layers.1.block_sparse_moe.gate.weight", 2, 8).unwrap().is_none());
        let q = QWEN_MOE_EXPERTS.hf_slice("model.layers.0.mlp.experts.3.gate_proj.weight", 2, 4).unwrap().unwrap();
        assert_eq!((q.gguf.as_str(), q.order, q.index), ("blk.0.ffn_gate_exps.weight", 1, 3));
        assert!(QWEN_MOE_EXPERTS
            .hf_slice("model.layers.0.mlp.shared_expert.gate_proj.weight", 2, 4)
            .unwrap()
            .is_none());
    }

    #[test]
    fn transformers5_stacked_experts_map_to_row_parts() {
        let f = MIXTRAL_EXPERTS.hf_fused("model.layers.1.mlp.experts.gate_up_proj", 2, 8).unwrap().unwrap();
        assert_eq!(
            f,
            FusedSlice {
                layer: 1,
                count: 8,
                layer_tensors: vec![
                    "blk.1.ffn_gate_exps.weight".into(),
                    "blk.1.ffn_down_exps.weight".into(),
                    "blk.1.ffn_up_exps.weight".into()
                ],
                parts: vec![(0, "blk.1.ffn_gate_exps.weight".into()), (2, "blk.1.ffn_up_exps.weight".into())]
            }
        );
        let d = QWEN_MOE_EXPERTS.hf_fused("model.layers.0.mlp.experts.down_proj", 2, 4).unwrap().unwrap();
        assert_eq!(d.parts, vec![(0, "blk.0.ffn_down_exps.weight".to_string())]);
        assert!(MIXTRAL_EXPERTS.hf_fused("model.layers.0.mlp.experts.0.w1.weight", 2, 8).unwrap().is_none());
        assert!(MIXTRAL_EXPERTS.hf_fused("model.layers.0.mlp.gate.weight", 2, 8).unwrap().is_none());
        assert!(MIXTRAL_EXPERTS.hf_fused("model.layers.2.mlp.experts.down_proj", 2, 8).is_err());
    }

    #[test]
    fn out_of_range_experts_and_blocks_are_errors() {
        let e = QWEN_MOE_EXPERTS.hf_slice("model.layers.0.mlp.experts.4.up_proj.weight", 2, 4).unwrap_err();
        assert!(e.to_string().contains("expert 4 is out of range"), "{e}");
        assert!(QWEN_MOE_EXPERTS.hf_slice("model.layers.2.mlp.experts.0.up_proj.weight", 2, 4).is_err());
    }
}

/// The expert counts of a Mixture-of-Experts config, as llama.cpp's `TextModel` base writes
/// them: `expert_count` from `num_local_experts` (or `num_experts`), `expert_used_count` from
/// `num_experts_per_tok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExpertCounts {
    pub n_expert: u32,
    pub n_used: u32,
}

impl ExpertCounts {
    /// From config.json; `None` for a dense model. A used count above the expert count (or
    /// zero) is an error naming the key.
    pub fn from_config(config: &serde_json::Value) -> Result<Option<Self>, ArchError> {
        use super::hparams::cfg_u32_opt;
        let n_expert = match cfg_u32_opt(config, "num_local_experts")? {
            Some(n) => Some(n),
            None => cfg_u32_opt(config, "num_experts")?,
        };
        let Some(n_expert) = n_expert else {
            return Ok(None);
        };
        let n_used = cfg_u32_opt(config, "num_experts_per_tok")?
            .ok_or_else(|| ArchError::MissingKey { what: "config.json", key: "num_experts_per_tok".into() })?;
        Self::checked(n_expert, n_used, "num_local_experts (num_experts)", "num_experts_per_tok").map(Some)
    }

    /// From `<arch>.expert_count` / `<arch>.expert_used_count`; `None` when there is no
    /// expert count (or it is 0: a dense model).
    pub fn from_metadata(arch: &str, md: &llmtool_formats::Metadata) -> Result<Option<Self>, ArchError> {
        use super::hparams::md_u32_opt;
        let (ck, uk) = (format!("{arch}.expert_count"), format!("{arch}.expert_used_count"));
        let Some(n_expert) = md_u32_opt(md, &ck)?.filter(|&n| n > 0) else {
            return Ok(None);
        };
        let n_used =
            md_u32_opt(md, &uk)?.ok_or_else(|| ArchError::MissingKey { what: "GGUF metadata", key: uk.clone() })?;
        Self::checked(n_expert, n_used, &ck, &uk).map(Some)
    }

    fn checked(n_expert: u32, n_used: u32, count_key: &str, used_key: &str) -> Result<Self, ArchError> {
        if n_expert == 0 {
            return Err(ArchError::InvalidValue { key: count_key.into(), reason: "must be > 0, found 0".into() });
        }
        if n_used == 0 || n_used > n_expert {
            return Err(ArchError::InvalidValue {
                key: used_key.into(),
                reason: format!("{n_used} experts used per token, but {count_key} is {n_expert}"),
            });
        }
        Ok(ExpertCounts { n_expert, n_used })
    }

    /// Writes `<arch>.expert_count` and `<arch>.expert_used_count`.
    pub fn write(&self, arch: &str, md: &mut llmtool_formats::Metadata) {
        use llmtool_formats::MetaValue;
        md.insert(format!("{arch}.expert_count"), MetaValue::U32(self.n_expert));
        md.insert(format!("{arch}.expert_used_count"), MetaValue::U32(self.n_used));
    }
}

/// Whether a GGUF tensor is a Mixture-of-Experts router (`ffn_gate_inp`) or Qwen2-MoE's
/// shared-expert gate (`ffn_gate_inp_shexp`): llama.cpp's converter always stores them F32
/// (`prepare_tensors`: FFN_GATE_INP, FFN_GATE_INP_SHEXP), and llama-quantize never quantizes
/// `ffn_gate_inp` (llama-quant.cpp: "do not quantize expert gating tensors").
pub fn is_router_tensor(gguf: &str) -> bool {
    let s = super::names::gguf_suffix(gguf);
    s == "ffn_gate_inp.weight" || s == "ffn_gate_inp_shexp.weight"
}
