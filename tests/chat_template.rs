//! Chat templates rendered by llmtool against transformers' `apply_chat_template`
//! (fixtures/tokenizer/chat_templates.json, made by fixtures/tokenizer/gen_chat_templates.py):
//! the fixture models' templates, SmolLM2's template from its GGUF, and a synthetic template
//! with the Jinja features chat templates use.

mod common;

use common::{real_model, root};
use llmtool::chat_template::{ChatTemplate, ChatTemplateError, Message};
use llmtool::model::Model;
use serde_json::Value;

fn fixture() -> Value {
    let p = root().join("fixtures/tokenizer/chat_templates.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn conversations(fx: &Value) -> Vec<Vec<Message>> {
    fx["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c.as_array()
                .unwrap()
                .iter()
                .map(|m| Message::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
                .collect()
        })
        .collect()
}

/// Renders every conversation with and without the generation prompt and compares.
fn check(name: &str, t: &ChatTemplate, expected: &Value, convs: &[Vec<Message>]) -> Vec<String> {
    let mut failures = Vec::new();
    let mut i = 0;
    for conv in convs {
        for gen in [false, true] {
            let want = &expected[i];
            i += 1;
            match (t.render(conv, gen), want.get("text").and_then(Value::as_str)) {
                (Ok(got), Some(w)) if got == w => {}
                (Err(ChatTemplateError::Raised(m)), None) if Some(m.as_str()) == want["error"].as_str() => {}
                (got, _) => {
                    failures.push(format!("{name} #{i} gen={gen}:\n  transformers {want}\n  llmtool      {got:?}"))
                }
            }
        }
    }
    failures
}

fn model_metadata(name: &str) -> Model {
    let path = if name == "smollm2" { real_model() } else { root().join("fixtures/models").join(name) };
    Model::open(&path).unwrap()
}

#[test]
fn model_templates_render_like_transformers() {
    let fx = fixture();
    let convs = conversations(&fx);
    let mut failures = Vec::new();
    for (name, rows) in fx["models"].as_object().unwrap() {
        // SmolLM2: tokenizer.chat_template of the GGUF; fixture HF dirs: chat_template.jinja.
        let t = ChatTemplate::from_model(&model_metadata(name)).unwrap();
        assert_eq!(t.bos_token(), rows["bos_token"].as_str().unwrap(), "{name} bos text");
        assert_eq!(t.eos_token(), rows["eos_token"].as_str().unwrap(), "{name} eos text");
        failures.extend(check(name, &t, &rows["template"], &convs));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn synthetic_template_features_render_like_transformers() {
    let fx = fixture();
    let convs = conversations(&fx);
    let mut failures = Vec::new();
    for (name, rows) in fx["models"].as_object().unwrap() {
        let t = ChatTemplate::new(
            fx["synthetic"].as_str().unwrap(),
            rows["bos_token"].as_str().unwrap(),
            rows["eos_token"].as_str().unwrap(),
        )
        .unwrap();
        failures.extend(check(name, &t, &rows["synthetic"], &convs));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn bad_templates_are_typed_errors() {
    assert!(matches!(ChatTemplate::new("{% for %}", "", ""), Err(ChatTemplateError::Syntax(_))));
    let md = llmtool_formats::Metadata::new();
    assert!(matches!(ChatTemplate::from_gguf_metadata(&md), Err(ChatTemplateError::Missing(_))));
}
