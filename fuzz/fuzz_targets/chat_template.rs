//! Chat template compile + render under llmtool's limits (src/chat_template/limits.rs). The
//! input is the template source, optionally followed by a NUL and one message per line
//! (`role:content`); without one, a fixed system+user conversation. Any input: output or a
//! typed error, in bounded time (fuel; libFuzzer's -timeout) and memory: no single
//! allocation over 256 MiB (checked strings are at most 16 MiB, minijinja's own string
//! repetition 100 MB); no panic.
#![no_main]
#[path = "common.rs"]
#[macro_use]
mod common;

use llmtool::chat_template::{ChatTemplate, Message};

target!(256 << 20, text |text| {
    let (src, convo) = text.split_once('\0').unwrap_or((text, "system:Be brief.\nuser:Hello\nassistant:Hi\nuser:Bye"));
    let messages: Vec<Message> = convo
        .lines()
        .map(|l| {
            let (r, c) = l.split_once(':').unwrap_or(("user", l));
            Message::new(r, c)
        })
        .collect();
    let Ok(t) = ChatTemplate::new(src, "<s>", "</s>") else { return };
    if let Ok(out) = t.render(&messages, true) {
        assert!(out.len() <= llmtool::chat_template::MAX_OUTPUT);
    }
});
