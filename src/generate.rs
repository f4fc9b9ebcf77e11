//! Text generation on the inference core: the prompt runs as one batch, then one token at a
//! time against the KV cache (positions continue), each next token drawn by a [`Sampler`].
//!
//! Stops after `max_tokens`, at an end-of-generation token (llama.cpp's `llama_vocab_is_eog`:
//! EOS, EOT, `<|im_end|>`…), or when the context is full.

use crate::infer::{InferError, InferModel};
use crate::sample::{SampleError, Sampler};
use crate::tokenizer::{Tokenizer, TokenizerError};

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("the prompt is empty (no tokens to start from)")]
    EmptyPrompt,
    #[error("the prompt has {prompt} tokens; the model's context holds {n_ctx}")]
    PromptTooLong { prompt: usize, n_ctx: usize },
    #[error(transparent)]
    Infer(#[from] InferError),
    #[error(transparent)]
    Sample(#[from] SampleError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `max_tokens` were generated.
    Length,
    /// The model produced an end-of-generation token (not included in the output).
    EndOfGeneration,
    /// The model's context length was reached.
    ContextFull,
}

/// What [`generate`] produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// The new tokens (the end-of-generation token excluded).
    pub tokens: Vec<u32>,
    pub stop: StopReason,
}

/// Continues `prompt` by up to `max_tokens` tokens. `on_token` gets each new token with its
/// text bytes as they come (a token may hold part of a UTF-8 character: join the bytes).
/// `n_ctx` caps prompt + generated tokens (the model's training context if larger).
pub fn generate(
    model: &InferModel<'_>,
    tok: &Tokenizer,
    prompt: &[u32],
    max_tokens: usize,
    n_ctx: usize,
    sampler: &mut Sampler,
    mut on_token: impl FnMut(u32, &[u8]),
) -> Result<Generated, GenerateError> {
    if prompt.is_empty() {
        return Err(GenerateError::EmptyPrompt);
    }
    let n_ctx = n_ctx.min(model.cfg.n_ctx_train.max(1));
    if prompt.len() > n_ctx {
        return Err(GenerateError::PromptTooLong { prompt: prompt.len(), n_ctx });
    }
    let cap = n_ctx.min(prompt.len() + max_tokens);
    let mut kv = model.new_cache(cap);
    let n_vocab = model.cfg.n_vocab;
    // The prompt as one batch; only the last position's logits are needed.
    let mut logits = model.forward_from(prompt, &mut kv, 0, prompt.len() - 1)?;
    let mut pos = prompt.len();
    let mut out = Vec::new();
    loop {
        if out.len() == max_tokens {
            return Ok(Generated { tokens: out, stop: StopReason::Length });
        }
        let next = sampler.sample(&logits[..n_vocab])?;
        if tok.is_eog(next) {
            return Ok(Generated { tokens: out, stop: StopReason::EndOfGeneration });
        }
        out.push(next);
        on_token(next, &tok.token_to_piece(next)?);
        if pos == n_ctx {
            return Ok(Generated { tokens: out, stop: StopReason::ContextFull });
        }
        if out.len() == max_tokens {
            return Ok(Generated { tokens: out, stop: StopReason::Length });
        }
        logits = model.forward(&[next], &mut kv, pos)?;
        pos += 1;
    }
}
