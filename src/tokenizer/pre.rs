//! Pre-tokenizer names (`tokenizer.ggml.pre`) ⇄ HF `tokenizer.json` pre-tokenizers.
//!
//! llama.cpp's converter (`convert_hf_to_gguf.py`, `get_vocab_base_pre`) names the
//! pre-tokenizer by hashing the token ids of a test text, which needs the tokenizer to run.
//! We derive the name from the pre-tokenizer's JSON structure instead, matching it against
//! the structures below. Each name's regexes are those `llama-vocab.cpp` selects for it
//! (`llm_tokenizer_bpe` constructor), so the JSON we write for a name splits text the way
//! llama.cpp does.

use super::error::TokenizerMetaError;
use serde_json::{json, Value};

/// GPT-2's pattern: the implicit regex of HF `ByteLevel { use_regex: true }` and llama.cpp's
/// `LLAMA_VOCAB_PRE_TYPE_GPT2`.
pub const GPT2_REGEX: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
/// Llama 3's `Split` pattern as in its tokenizer.json (llama.cpp `LLAMA3`, also `dbrx`, `smaug-bpe`).
pub const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's `Split` pattern as in its tokenizer.json (llama.cpp `QWEN2`, also `stablelm2`).
pub const QWEN2_REGEX: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Mistral's tekken pattern (tekken.json `config.pattern`, and the `Split` of the tokenizer.json
/// transformers makes from it; llama.cpp `TEKKEN`).
pub const TEKKEN_REGEX: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// llama.cpp's regex list for the BPE `default` pre-type (no HF original; applied in turn).
pub const DEFAULT_BPE_REGEXES: [&str; 4] = [r"[\p{P}\$\+<=>\^~\|]+", GPT2_REGEX, r"\p{N}+", r"[0-9][0-9][0-9]"];

/// `tokenizer.ggml.pre` names we write and read for the `gpt2` (byte-level BPE) model.
/// The `llama` (SentencePiece-style) model always uses `default`.
pub const KNOWN_BPE_PRE: &[&str] =
    &["default", "gpt-2", "smollm", "starcoder", "command-r", "llama-bpe", "qwen2", "tekken"];

/// Model types of config.json that name the `starcoder` variant of the
/// Digits + ByteLevel pre-tokenizer (same regexes as `smollm` in llama.cpp).
const STARCODER_MODEL_TYPES: &[&str] = &["starcoder2", "gpt_bigcode"];
/// Model types whose Digits + ByteLevel pre-tokenizer llama.cpp names `command-r`
/// (convert_hf_to_gguf_update.py: CohereForAI/c4ai-command-r-v01; Command R7B and A are
/// `cohere2` with the same tokenizer).
const COMMAND_R_MODEL_TYPES: &[&str] = &["cohere", "cohere2"];

/// Derives `tokenizer.ggml.pre` for a byte-level BPE tokenizer.json.
pub fn detect_bpe_pre(tokenizer_json: &Value, config: Option<&Value>) -> Result<&'static str, TokenizerMetaError> {
    let pre = tokenizer_json.get("pre_tokenizer").unwrap_or(&Value::Null);
    let steps = flatten(pre);
    let ty = |v: &Value| v.get("type").and_then(Value::as_str).unwrap_or("").to_string();
    let byte_level_regex =
        |v: &Value| ty(v) == "ByteLevel" && v.get("use_regex").and_then(Value::as_bool).unwrap_or(true);
    let byte_level_plain =
        |v: &Value| ty(v) == "ByteLevel" && v.get("use_regex").and_then(Value::as_bool) == Some(false);
    let split_regex = |v: &Value| -> Option<String> {
        if ty(v) != "Split" || v.get("invert").and_then(Value::as_bool).unwrap_or(false) {
            return None;
        }
        if v.get("behavior").and_then(Value::as_str) != Some("Isolated") {
            return None;
        }
        v.get("pattern")?.get("Regex")?.as_str().map(str::to_string)
    };
    let name = match steps.as_slice() {
        [b] if byte_level_regex(b) => Some("gpt-2"),
        [d, b]
            if ty(d) == "Digits"
                && d.get("individual_digits").and_then(Value::as_bool) == Some(true)
                && byte_level_regex(b) =>
        {
            let model_type = config.and_then(|c| c.get("model_type")).and_then(Value::as_str).unwrap_or("");
            Some(if STARCODER_MODEL_TYPES.contains(&model_type) {
                "starcoder"
            } else if COMMAND_R_MODEL_TYPES.contains(&model_type) {
                "command-r"
            } else {
                "smollm"
            })
        }
        [s, b] if byte_level_plain(b) => match split_regex(s).as_deref() {
            Some(LLAMA3_REGEX) => Some("llama-bpe"),
            Some(QWEN2_REGEX) => Some("qwen2"),
            Some(TEKKEN_REGEX) => Some("tekken"),
            _ => None,
        },
        _ => None,
    };
    name.ok_or_else(|| {
        let mut found = pre.to_string();
        if found.len() > 300 {
            let mut cut = 300;
            while !found.is_char_boundary(cut) {
                cut -= 1;
            }
            found.truncate(cut);
            found.push('…');
        }
        TokenizerMetaError::UnknownPreTokenizer { found, known: KNOWN_BPE_PRE.join(", ") }
    })
}

/// A `Sequence` flattened into its steps; `null` is no step.
fn flatten(v: &Value) -> Vec<&Value> {
    match v.get("type").and_then(Value::as_str) {
        Some("Sequence") => v
            .get("pretokenizers")
            .and_then(Value::as_array)
            .map(|a| a.iter().flat_map(flatten).collect())
            .unwrap_or_default(),
        Some(_) => vec![v],
        None => vec![],
    }
}

/// What a pre name becomes in tokenizer.json for the `gpt2` model.
pub struct BpePreJson {
    pub normalizer: Value,
    pub pre_tokenizer: Value,
    /// HF BPE `ignore_merges`: llama.cpp sets it for the llama3 pre-type (and Llama 3's
    /// tokenizer.json has it).
    pub ignore_merges: bool,
}

fn split(regex: &str) -> Value {
    json!({"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false})
}

/// The tokenizer.json pieces for a `gpt2`-model pre name.
pub fn bpe_pre_json(pre: &str) -> Result<BpePreJson, TokenizerMetaError> {
    let byte_level = |use_regex: bool, trim_offsets: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": trim_offsets, "use_regex": use_regex});
    let (normalizer, pre_tokenizer, ignore_merges) = match pre {
        "gpt-2" => (Value::Null, byte_level(true, true), false),
        "smollm" | "starcoder" => (
            Value::Null,
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true},
                byte_level(true, true),
            ]}),
            false,
        ),
        // Cohere's tokenizer.json: NFC, then Digits + ByteLevel (llama.cpp ignores the NFC).
        "command-r" => (
            json!({"type": "NFC"}),
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true},
                byte_level(true, true),
            ]}),
            false,
        ),
        // transformers integrations/mistral/tokenizer.py MistralConverter: tiktoken takes a
        // word that is a token whole, hence ignore_merges.
        "tekken" => (
            Value::Null,
            json!({"type": "Sequence", "pretokenizers": [split(TEKKEN_REGEX), byte_level(false, true)]}),
            true,
        ),
        "llama-bpe" => (
            Value::Null,
            json!({"type": "Sequence", "pretokenizers": [split(LLAMA3_REGEX), byte_level(false, true)]}),
            true,
        ),
        "qwen2" => (
            json!({"type": "NFC"}),
            json!({"type": "Sequence", "pretokenizers": [split(QWEN2_REGEX), byte_level(false, false)]}),
            false,
        ),
        "default" => {
            let mut steps: Vec<Value> = DEFAULT_BPE_REGEXES.iter().map(|r| split(r)).collect();
            steps.push(byte_level(false, true));
            (Value::Null, json!({"type": "Sequence", "pretokenizers": steps}), false)
        }
        other => {
            return Err(TokenizerMetaError::UnknownPreName {
                found: other.to_string(),
                known: KNOWN_BPE_PRE.join(", "),
            })
        }
    };
    Ok(BpePreJson { normalizer, pre_tokenizer, ignore_merges })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_name_round_trips_through_its_json() {
        for &name in KNOWN_BPE_PRE {
            if name == "default" {
                continue; // llama.cpp-only regex list: written, never derived
            }
            let j = bpe_pre_json(name).unwrap();
            let tok = json!({"pre_tokenizer": j.pre_tokenizer});
            let config = match name {
                "starcoder" => Some(json!({"model_type": "starcoder2"})),
                "command-r" => Some(json!({"model_type": "cohere2"})),
                _ => None,
            };
            assert_eq!(detect_bpe_pre(&tok, config.as_ref()).unwrap(), name);
        }
    }

    #[test]
    fn unknown_structures_are_named_in_the_error() {
        let tok = json!({"pre_tokenizer": {"type": "Whitespace"}});
        let err = detect_bpe_pre(&tok, None).unwrap_err();
        assert!(err.to_string().contains("Whitespace"), "{err}");
        assert!(matches!(bpe_pre_json("falcon"), Err(TokenizerMetaError::UnknownPreName { .. })));
    }
}
