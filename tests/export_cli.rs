//! `llmtool export ollama|lmstudio`. The Modelfile is read by a Go judge (tests/ollama/render.go)
//! that follows Ollama's documented Modelfile grammar and renders the TEMPLATE with Go's own
//! text/template over the data Ollama's chat path gives a template; the text must equal what
//! the GGUF's Jinja chat template renders (llmtool's Jinja path, itself checked against
//! transformers in tests/chat_template.rs) for each conversation. Go is required: `.ci/run`
//! installs Debian's golang-go.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{llmtool, llmtool_ok, real_model, root};
use llmtool::chat_template::{ChatTemplate, Message};
use llmtool::model::Model;
use llmtool::tokenizer::Tokenizer;
use serde_json::Value;

/// The Go judge, built once per test binary.
fn judge_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ollama-judge");
        std::fs::create_dir_all(&tmp).unwrap();
        let bin = tmp.join(format!("render-{}", std::process::id()));
        let out = Command::new("go")
            .arg("build")
            .arg("-o")
            .arg(&bin)
            .arg(root().join("tests/ollama/render.go"))
            .env("GOCACHE", tmp.join("cache"))
            .env("GOPATH", tmp.join("gopath"))
            .env("GOPROXY", "off")
            .env("GOFLAGS", "")
            .output()
            .expect("Go is required for the Ollama template tests (.ci/run installs Debian's golang-go)");
        assert!(out.status.success(), "go build render.go:\n{}", String::from_utf8_lossy(&out.stderr));
        bin
    })
}

/// What the Go judge read: the Modelfile's commands and the TEMPLATE's render of each conversation.
struct Read {
    commands: Vec<(String, String)>,
    renders: Vec<String>,
}

impl Read {
    fn all(&self, name: &str) -> Vec<&str> {
        self.commands.iter().filter(|(n, _)| n == name).map(|(_, a)| a.as_str()).collect()
    }
    fn one(&self, name: &str) -> &str {
        let v = self.all(name);
        assert_eq!(v.len(), 1, "one {name} command: {:?}", self.commands);
        v[0]
    }
}

fn judge(modelfile: &Path, convs: &[Vec<Message>]) -> Result<Read, String> {
    let cj = modelfile.with_extension("convs.json");
    std::fs::write(&cj, serde_json::to_vec(convs).unwrap()).unwrap();
    let out = Command::new(judge_bin()).arg(modelfile).arg(&cj).output().unwrap();
    std::fs::remove_file(&cj).unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    Ok(Read {
        commands: v["commands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].as_str().unwrap().to_string(), c["args"].as_str().unwrap().to_string()))
            .collect(),
        renders: v["renders"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect(),
    })
}

fn m(role: &str, content: &str) -> Message {
    Message::new(role, content)
}

/// Conversations unlike the probes the translation is checked on at export time: system +
/// user, multi-turn with assistant replies (with and without a system message), a last
/// assistant message left open (Ollama continues it).
fn conversations() -> Vec<Vec<Message>> {
    vec![
        vec![m("user", "Name three primary colours.")],
        vec![m("system", "Answer in French."), m("user", "Good morning!")],
        vec![
            m("system", "You count sheep."),
            m("user", "One?"),
            m("assistant", "Two."),
            m("user", "Three?"),
            m("assistant", "Four."),
            m("user", "Five?"),
        ],
        vec![m("user", "Hi."), m("assistant", "Hello! How can I help?"), m("user", "Tell me a joke.")],
        vec![m("system", "Be brief."), m("user", "Spell cat."), m("assistant", "C-A")],
    ]
}

/// What the Jinja template renders for `conv` as Ollama would prompt: the generation prompt
/// after a user message; a last assistant message left open (transformers'
/// `continue_final_message`: the text is cut after that message's content); `bos_token` empty
/// when the tokenizer adds BOS itself (Ollama's runner writes it).
fn jinja_prompt(gguf: &Path, conv: &[Message]) -> String {
    let model = Model::open(gguf).unwrap();
    let add_bos = Tokenizer::from_model(&model).unwrap().add_bos();
    let full = ChatTemplate::from_gguf_metadata(&model.metadata).unwrap();
    let src = model.metadata.get_str("tokenizer.chat_template").unwrap();
    let t = ChatTemplate::new(src, if add_bos { "" } else { full.bos_token() }, full.eos_token()).unwrap();
    let last = conv.last().unwrap();
    if last.role == "assistant" {
        let s = t.render(conv, false).unwrap();
        let at = s.rfind(&last.content).expect("the final message is in the render") + last.content.len();
        s[..at].to_string()
    } else {
        t.render(conv, true).unwrap()
    }
}

/// Exports `gguf` for Ollama into `dir` and checks the Modelfile with the Go judge: FROM names
/// the GGUF placed beside it, byte-identical; the TEMPLATE renders every conversation as the
/// Jinja template does. Returns what the judge read.
fn export_and_check(gguf: &Path, dir: &Path, extra: &[&str]) -> Read {
    let mut args = vec!["export", "ollama", gguf.to_str().unwrap(), dir.to_str().unwrap(), "-q"];
    args.extend_from_slice(extra);
    llmtool_ok(&args);
    let convs = conversations();
    let read = judge(&dir.join("Modelfile"), &convs).unwrap_or_else(|e| panic!("{}: {e}", gguf.display()));
    let from = read.one("model");
    let placed = dir.join(from.strip_prefix("./").expect("FROM is relative to the Modelfile"));
    assert_eq!(std::fs::read(&placed).unwrap(), std::fs::read(gguf).unwrap(), "{from} is the input");
    for (conv, got) in convs.iter().zip(&read.renders) {
        assert_eq!(got, &jinja_prompt(gguf, conv), "{}: Go render of {conv:?}", gguf.display());
    }
    read
}

fn modelfile_text(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("Modelfile")).unwrap()
}

/// A fixture model converted to GGUF, optionally with another chat template.
fn fixture_gguf(tmp: &Path, name: &str, template: Option<&str>) -> PathBuf {
    let mut src = root().join("fixtures/models").join(name);
    if let Some(t) = template {
        let copy = tmp.join(format!("{name}-hf"));
        std::fs::create_dir_all(&copy).unwrap();
        for e in std::fs::read_dir(&src).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
        }
        std::fs::write(copy.join("chat_template.jinja"), t).unwrap();
        src = copy;
    }
    let out = tmp.join(format!("{name}-{}.gguf", if template.is_some() { "t" } else { "f" }));
    llmtool_ok(&["convert", src.to_str().unwrap(), out.to_str().unwrap(), "-q", "--force"]);
    out
}

fn family_comment(text: &str) -> String {
    let line = text.lines().find(|l| l.starts_with("# TEMPLATE:")).expect("the template comment");
    line.split('(').nth(1).unwrap().split(')').next().unwrap().to_string()
}

#[test]
fn fixture_families_translate_and_render_like_their_jinja_templates() {
    let tmp = tempfile::tempdir().unwrap();
    // (fixture, family, stop texts): the family's turn markers, then the GGUF's EOS/EOT texts.
    let cases: &[(&str, &str, &[&str])] = &[
        ("llama", "chatml", &["<|im_end|>", "<|im_start|>"]),
        ("qwen2", "chatml", &["<|im_end|>", "<|im_start|>"]),
        ("qwen3", "chatml", &["<|im_end|>", "<|im_start|>"]),
        ("gemma", "gemma", &["<end_of_turn>", "<start_of_turn>", "<eos>"]),
        ("gemma2", "gemma", &["<end_of_turn>", "<start_of_turn>", "<eos>"]),
        ("gemma3", "gemma", &["<end_of_turn>", "<start_of_turn>", "<eos>"]),
        ("phi3", "phi3", &["<|end|>", "<|user|>", "<|assistant|>", "<|endoftext|>"]),
        ("phi4mini", "phi3", &["<|end|>", "<|user|>", "<|assistant|>", "<|endoftext|>"]),
        ("command_r", "command-r", &["<|END_OF_TURN_TOKEN|>", "<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>"]),
        ("cohere2", "command-r", &["<|END_OF_TURN_TOKEN|>", "<|START_OF_TURN_TOKEN|>"]),
    ];
    for &(name, family, stops) in cases {
        let gguf = fixture_gguf(tmp.path(), name, None);
        let dir = tmp.path().join(format!("{name}-ollama"));
        let read = export_and_check(&gguf, &dir, &[]);
        let mut want: Vec<&str> = Vec::new();
        for s in stops {
            if !want.contains(s) {
                want.push(s);
            }
        }
        assert_eq!(read.all("stop"), want, "{name} stops");
        assert_eq!(family_comment(&modelfile_text(&dir)), family, "{name} family");
        assert!(read.all("system").is_empty(), "no SYSTEM unless given");
    }
}

/// Templates of the families' released forms, written for the test from their published formats.
const LLAMA3: &str = "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}";
/// Llama 3.1's system block always carries the knowledge-cutoff lines.
const LLAMA31: &str = "{{- bos_token }}{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}{%- set messages = messages[1:] %}{%- else %}{%- set system_message = '' %}{%- endif %}{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}{{- 'Cutting Knowledge Date: December 2023\\nToday Date: 26 Jul 2024\\n\\n' }}{{- system_message }}{{- '<|eot_id|>' }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}";
/// Gemma 3: the system message heads the first user turn; the assistant is "model".
const GEMMA3: &str = "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}{%- for message in loop_messages -%}{%- if (message['role'] == 'assistant') -%}{%- set role = 'model' -%}{%- else -%}{%- set role = message['role'] -%}{%- endif -%}{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') }}{{ message['content'] | trim }}{{ '<end_of_turn>\\n' }}{%- endfor -%}{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}";
/// Gemma 2 refuses system messages.
const GEMMA2: &str = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}";
/// Mistral v3: the system message goes before the last user message.
const MISTRAL: &str = "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- endif %}{{- bos_token }}{%- for message in loop_messages %}{%- if message['role'] == 'user' %}{%- if loop.last and system_message is defined %}{{- '[INST] ' + system_message + '\\n\\n' + message['content'] + '[/INST]' }}{%- else %}{{- '[INST] ' + message['content'] + '[/INST]' }}{%- endif %}{%- elif message['role'] == 'assistant' %}{{- ' ' + message['content'] + eos_token}}{%- endif %}{%- endfor %}";
/// Qwen2.5: a default system message when the conversation has none.
const QWEN25: &str = "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}{%- endif %}{%- for message in messages %}{%- if message.role != 'system' %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";
/// Qwen3: an assistant message that ends the conversation opens with an empty think block.
const QWEN3: &str = "{%- for message in messages %}{%- if message.role == 'assistant' and loop.last %}{{- '<|im_start|>assistant\n<think>\n\n</think>\n\n' + message.content + '<|im_end|>\n' }}{%- else %}{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}";

#[test]
fn released_family_templates_translate_and_render_alike() {
    let tmp = tempfile::tempdir().unwrap();
    // The llama fixture's tokens carry the templates (the text is what is compared); its EOS
    // text is <|im_end|>, so Mistral's assistant footer is <|im_end|> here.
    let cases: &[(&str, &str, &str)] = &[
        ("llama3", LLAMA3, "llama3"),
        ("llama31", LLAMA31, "llama3"),
        ("gemma3", GEMMA3, "gemma"),
        ("gemma2", GEMMA2, "gemma"),
        ("mistral", MISTRAL, "mistral"),
        ("qwen25", QWEN25, "chatml"),
        ("qwen3", QWEN3, "chatml"),
    ];
    for &(label, template, family) in cases {
        let sub = tmp.path().join(label);
        std::fs::create_dir_all(&sub).unwrap();
        let gguf = fixture_gguf(&sub, "llama", Some(template));
        let dir = sub.join("ollama");
        if label == "gemma2" {
            // Gemma 2 has no system role: its conversations with one are not compared (the
            // export folds a system message into the first user turn, as Gemma 3 does).
            llmtool_ok(&["export", "ollama", gguf.to_str().unwrap(), dir.to_str().unwrap(), "-q"]);
            let convs: Vec<Vec<Message>> =
                conversations().into_iter().filter(|c| c.iter().all(|m| m.role != "system")).collect();
            let read = judge(&dir.join("Modelfile"), &convs).unwrap();
            for (c, got) in convs.iter().zip(&read.renders) {
                assert_eq!(got, &jinja_prompt(&gguf, c), "gemma2 {c:?}");
            }
            let with_system = judge(&dir.join("Modelfile"), &[vec![m("system", "S."), m("user", "U.")]]).unwrap();
            assert_eq!(with_system.renders[0], jinja_prompt(&gguf, &[m("user", "S.\n\nU.")]), "system folded");
        } else {
            export_and_check(&gguf, &dir, &[]);
        }
        assert_eq!(family_comment(&modelfile_text(&dir)), family, "{label}");
    }
    let qwen = modelfile_text(&tmp.path().join("qwen25/ollama"));
    assert!(qwen.contains("You are Qwen, created by Alibaba Cloud."), "the default system message is kept");
    let qwen3 = modelfile_text(&tmp.path().join("qwen3/ollama"));
    assert!(qwen3.contains("{{ if $last }}{{ \"<think>\\n\\n</think>\\n\\n\" }}{{ end }}"), "{qwen3}");
}

#[test]
fn real_smollm2_exports_for_ollama_with_a_system_message() {
    let model = real_model();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("smollm2");
    let read = export_and_check(&model, &dir, &["--system", "You are a pirate.", "--name", "smollm2-pirate"]);
    assert_eq!(read.one("model"), "./smollm2-pirate.gguf");
    assert_eq!(read.one("system"), "You are a pirate.");
    assert_eq!(read.all("stop"), ["<|im_end|>", "<|im_start|>"]);
    let text = modelfile_text(&dir);
    assert_eq!(family_comment(&text), "chatml");
    // SmolLM2's template writes its own system message when the conversation has none.
    assert!(text.contains("You are a helpful AI assistant named SmolLM, trained by Hugging Face"), "{text}");
    // Ollama sends SYSTEM as the first message when the request has none: the prompt is the
    // Jinja template's for that conversation.
    let conv = vec![m("system", read.one("system")), m("user", "Where is the treasure?")];
    let r = judge(&dir.join("Modelfile"), std::slice::from_ref(&conv)).unwrap();
    assert_eq!(r.renders[0], jinja_prompt(&model, &conv));
    // The model card.
    let card = std::fs::read_to_string(dir.join("README.md")).unwrap();
    for want in [
        "| architecture | `llama` |",
        "| quantization | Q4_1 |",
        "`smollm2-pirate.gguf`",
        "ollama create smollm2-pirate -f Modelfile",
    ] {
        assert!(card.contains(want), "card lacks {want:?}:\n{card}");
    }
    // A hard link on one file system, a copy with --copy.
    use std::os::unix::fs::MetadataExt;
    let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
    assert_eq!(ino(&dir.join("smollm2-pirate.gguf")), ino(&model));
    let copied = tmp.path().join("copied");
    llmtool_ok(&["export", "ollama", model.to_str().unwrap(), copied.to_str().unwrap(), "--copy", "-q"]);
    let placed = copied.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert_ne!(ino(&placed), ino(&model));
    assert_eq!(std::fs::metadata(&placed).unwrap().len(), std::fs::metadata(&model).unwrap().len());
    // LM Studio's defaults: the publisher is general.organization, the name the file's stem
    // without its type suffix.
    let lm = tmp.path().join("lm");
    llmtool_ok(&["export", "lmstudio", model.to_str().unwrap(), lm.to_str().unwrap(), "-q"]);
    let want = lm.join("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct-Q4_1.gguf");
    assert_eq!(ino(&want), ino(&model));
}

#[test]
fn bad_inputs_are_clear_errors_and_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let err = |args: &[&str]| -> String {
        let out = llmtool(args);
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let s = |p: &Path| p.to_str().unwrap().to_string();

    // Not a GGUF.
    let txt = t.join("notes.gguf");
    std::fs::write(&txt, "hello").unwrap();
    let e = err(&["export", "ollama", &s(&txt), &s(&t.join("o1"))]);
    assert!(e.contains("not a GGUF file"), "{e}");
    assert!(!t.join("o1").exists());

    // No chat template: an error naming the key, unless --template gives one.
    let hf = t.join("plain-hf");
    std::fs::create_dir_all(&hf).unwrap();
    for e in std::fs::read_dir(root().join("fixtures/models/llama")).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "chat_template.jinja" {
            std::fs::copy(e.path(), hf.join(e.file_name())).unwrap();
        }
    }
    let plain = t.join("plain.gguf");
    llmtool_ok(&["convert", &s(&hf), &s(&plain), "-q"]);
    let e = err(&["export", "ollama", &s(&plain), &s(&t.join("o2"))]);
    assert!(e.contains("tokenizer.chat_template") && e.contains("--template"), "{e}");
    assert!(!t.join("o2").exists());
    let mine = "{{- range .Messages }}{{ .Role }}: {{ .Content }}\n{{ end }}";
    std::fs::write(t.join("mine.tmpl"), mine).unwrap();
    llmtool_ok(&["export", "ollama", &s(&plain), &s(&t.join("o2")), "--template", &s(&t.join("mine.tmpl")), "-q"]);
    let read = judge(&t.join("o2/Modelfile"), &[vec![m("user", "x")]]).unwrap();
    assert_eq!(read.one("template"), mine);
    assert_eq!(read.renders[0], "user: x\n");

    // A template of no known family.
    let odd = fixture_gguf(t, "llama", Some("{% for m in messages %}### {{ m.role }}\n{{ m.content }}\n{% endfor %}"));
    let e = err(&["export", "ollama", &s(&odd), &s(&t.join("o3"))]);
    assert!(e.contains("not one llmtool can translate") && e.contains("--template"), "{e}");
    // A known family's markers used another way.
    let skewed = fixture_gguf(
        &t.join("sk"),
        "llama",
        Some("{% for m in messages %}<|im_start|>{{ m.role }}: {{ m.content }}<|im_end|>{% endfor %}"),
    );
    let e = err(&["export", "ollama", &s(&skewed), &s(&t.join("o3"))]);
    assert!(e.contains("looks like chatml but renders differently"), "{e}");
    assert!(!t.join("o3").exists());

    // An existing directory needs --force; a system message with """ cannot be written.
    let good = fixture_gguf(t, "qwen2", None);
    std::fs::create_dir_all(t.join("o4")).unwrap();
    let e = err(&["export", "ollama", &s(&good), &s(&t.join("o4"))]);
    assert!(e.contains("exists") && e.contains("--force"), "{e}");
    llmtool_ok(&["export", "ollama", &s(&good), &s(&t.join("o4")), "--force", "-q"]);
    assert!(t.join("o4/Modelfile").exists());
    let e = err(&["export", "ollama", &s(&good), &s(&t.join("o5")), "--system", "say \"\"\" twice"]);
    assert!(e.contains("\"\"\""), "{e}");
    assert!(!t.join("o5").exists());
    // The output may not be the directory holding the input, even with --force.
    let e = err(&["export", "ollama", &s(&good), &s(t), "--force"]);
    assert!(e.contains("contains input"), "{e}");
    assert!(good.exists());
    // Nothing half-written: no temp directories are left.
    let leftovers: Vec<_> = std::fs::read_dir(t)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A text the repository ships (this project's README), for perplexity in the build test.
fn text_file(dir: &Path) -> PathBuf {
    let p = dir.join("text.txt");
    std::fs::write(&p, std::fs::read_to_string(root().join("README.md")).unwrap()).unwrap();
    p
}

#[test]
fn lmstudio_layout_and_model_card_from_a_real_build_report() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let text = text_file(t);
    let recipe = t.join("q8.yml");
    std::fs::write(
        &recipe,
        format!(
            "inputs: {{smollm2: {}}}\nsteps:\n  - quantize: {{type: Q8_0}}\n\
             outputs: {{gguf: dist/smol-Q8_0.gguf, ollama: {{dir: dist/ollama, name: smol, system: Be brief.}}, \
             lmstudio: {{root: dist/lm}}}}\n\
             validate: {{text: {}, chunks: 2, ctx: 128}}\nreport: report\n",
            real_model().display(),
            text.display()
        ),
    )
    .unwrap();
    llmtool_ok(&["build", recipe.to_str().unwrap(), "-q"]);
    let report: Value = serde_json::from_slice(&std::fs::read(t.join("report/report.json")).unwrap()).unwrap();
    let out = t.join("dist/smol-Q8_0.gguf");
    let models = t.join("models");
    llmtool_ok(&[
        "export",
        "lmstudio",
        out.to_str().unwrap(),
        models.to_str().unwrap(),
        "--publisher",
        "HuggingFaceTB",
        "--model",
        "SmolLM2-135M-Instruct",
        "--report",
        t.join("report/report.json").to_str().unwrap(),
        "-q",
    ]);
    let dir = models.join("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF");
    let placed = dir.join("SmolLM2-135M-Instruct-Q8_0.gguf");
    assert_eq!(std::fs::read(&placed).unwrap(), std::fs::read(&out).unwrap());
    let card = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    // One table row per report step, with its type, size, PPL and KLD as the report says.
    for (i, (step, quant)) in steps.iter().zip(["Q4_1", "Q8_0"]).enumerate() {
        let f = &step["figures"];
        let mut row = format!(
            "| {}. {} | {quant} | {:.1} | {:.4}",
            step["index"],
            step["description"].as_str().unwrap(),
            step["size_bytes"].as_u64().unwrap() as f64 / 1e6,
            f["ppl"].as_f64().unwrap()
        );
        if i == 1 {
            row = format!(
                "| **1. quantize Q8_0** (this file) | Q8_0 | {:.1} | {:.4} ± {:.4} | {:.6} |",
                step["size_bytes"].as_u64().unwrap() as f64 / 1e6,
                f["ppl"].as_f64().unwrap(),
                f["ppl_uncertainty"].as_f64().unwrap(),
                f["kld_mean"].as_f64().unwrap()
            );
        }
        assert!(card.contains(&row), "card lacks {row:?}:\n{card}");
    }
    for want in [
        "# SmolLM2-135M-Instruct — GGUF Q8_0",
        "| architecture | `llama` |",
        "| quantization | Q8_0 |",
        "~/.lmstudio/models",
        "2 windows of 128 tokens",
    ] {
        assert!(card.contains(want), "card lacks {want:?}:\n{card}");
    }
    // The recipe's Ollama output: a Modelfile and the same card table.
    let read = judge(&t.join("dist/ollama/Modelfile"), &[]).unwrap();
    assert_eq!(read.one("model"), "./smol.gguf");
    assert_eq!(read.one("system"), "Be brief.");
    let ollama_card = std::fs::read_to_string(t.join("dist/ollama/README.md")).unwrap();
    let table =
        |c: &str| c.lines().filter(|l| l.starts_with("| ") && l.contains(". ")).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(table(&ollama_card), table(&card));
    assert_eq!(report["outputs"].as_array().unwrap().len(), 3, "{report}");
    // The recipe's LM Studio output, with the defaults (general.organization, the file's stem).
    let lm_card = std::fs::read_to_string(t.join("dist/lm/HuggingFaceTB/smol-GGUF/README.md")).unwrap();
    assert_eq!(table(&lm_card), table(&card));
    assert!(t.join("dist/lm/HuggingFaceTB/smol-GGUF/smol-Q8_0.gguf").is_file());
    // Parameters: the model's own count.
    let n_params = Model::open(&out).unwrap().n_params();
    assert!(card.contains(&format!("({n_params})")), "{card}");
}

#[test]
fn eval_text_measures_the_card_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let text = text_file(t);
    let model = real_model();
    let q8 = t.join("q8.gguf");
    llmtool_ok(&["quantize", model.to_str().unwrap(), q8.to_str().unwrap(), "--type", "Q8_0", "-q"]);
    let dir = t.join("ollama");
    let args = ["--eval-text", text.to_str().unwrap(), "--eval-chunks", "2", "--eval-ctx", "128"];
    let mut a = vec!["export", "ollama", q8.to_str().unwrap(), dir.to_str().unwrap(), "-q", "--kl-base"];
    a.push(model.to_str().unwrap());
    a.extend_from_slice(&args);
    llmtool_ok(&a);
    let card = std::fs::read_to_string(dir.join("README.md")).unwrap();
    // The same figures from `llmtool perplexity --kl-base`.
    let p = llmtool_ok(&[
        "perplexity",
        q8.to_str().unwrap(),
        "--text",
        text.to_str().unwrap(),
        "--ctx",
        "128",
        "--chunks",
        "2",
        "--kl-base",
        model.to_str().unwrap(),
        "--json",
        "-q",
    ]);
    let j: Value = serde_json::from_slice(&p.stdout).unwrap();
    let (kld, ppl) = (j["kld_mean"].as_f64().unwrap(), j["ppl"].as_f64().unwrap());
    let row = "| **`q8.gguf`** (this file) | Q8_0 |";
    assert!(card.contains(row), "{card}");
    assert!(card.contains(&format!("| {ppl:.4} ± ")), "card PPL {ppl:.4}:\n{card}");
    assert!(card.contains(&format!("| {kld:.6} |")), "card KLD {kld:.6}:\n{card}");
    assert!(card.contains("reference `"), "{card}");
}
