//! PEFT adapter_config.json (beside a fixed, valid adapter_model.safetensors: the
//! llama_plain fixture's) → `PeftAdapter::open`, and the scaling rules on their own
//! (`ScalingRules::from_config`, `for_module`): a typed error or an adapter; no panic; no
//! single allocation over 64 MiB.
#![no_main]
#[path = "common.rs"]
#[macro_use]
mod common;
#[path = "parse.rs"]
mod parse;

target!(64 << 20, |data| {
    parse::peft_adapter(data);
});
