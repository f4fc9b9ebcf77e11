//! A model's Jinja chat template (GGUF `tokenizer.chat_template`) as an Ollama `TEMPLATE`: a Go
//! `text/template` over Ollama's chat data (`.Messages` with `.Role` / `.Content`, `.System`;
//! `Template.Execute` in ollama/template/template.go).
//!
//! Jinja cannot be translated in general, so the template is *recognised*: a family is picked
//! by its turn markers (`<|im_start|>` → ChatML, …), each variant llmtool knows of that family
//! is rendered over probe conversations by llmtool's own Jinja path ([`ChatTemplate`]) and the
//! variant's own renderer ([`TurnFormat::render`], the same logic the emitted Go template
//! runs), and the first variant that writes the same text for every probe is emitted. What the
//! model's template adds around the turns — a default system message (Qwen2.5, SmolLM2), a
//! prefix of every system message (Llama 3.1's knowledge-cutoff lines) — is read off the probes.
//! A template that matches no variant is an error: the caller passes its own (`--template`).
//!
//! Ollama's conventions the emitted template follows:
//! - the BOS token is not written: Ollama's runner adds it when tokenizing the prompt, as the
//!   GGUF's `tokenizer.ggml.add_bos_token` says (a template that wrote it would double it);
//!   only a GGUF whose tokenizer does not add it gets the BOS text from the template;
//! - the generation prompt (the assistant header) follows the last message unless that message
//!   is the assistant's, which is left open for the model to continue (Ollama's own templates);
//! - message content is written as is (Go templates have no `trim`; the probes' contents have
//!   no surrounding white space, on which trimming templates agree).

use crate::chat_template::{ChatTemplate, ChatTemplateError, Message};

/// How a family places a system message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemStyle {
    /// A turn of its own, with the system header and footer.
    Turn,
    /// Written before the content of the first user message, then `sep` (Gemma 3).
    FirstUser(&'static str),
    /// Written before the content of the user message that ends the conversation, then `sep`
    /// (Mistral's `[INST]` templates).
    LastUser(&'static str),
}

/// One chat format: the text around each role's messages.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnFormat {
    /// Family name ("chatml", "llama3", …).
    pub family: &'static str,
    /// Written first: the BOS text when the template writes it and the tokenizer does not add
    /// it (empty otherwise).
    pub lead: String,
    /// (header, footer) of a system, user and assistant message.
    pub system: (String, String),
    pub user: (String, String),
    pub assistant: (String, String),
    /// Written after the last message when it is not the assistant's.
    pub generation: String,
    pub system_style: SystemStyle,
    /// Every system turn's content starts with this.
    pub system_prefix: String,
    /// The system turn's content when the conversation has none (after `system_prefix`).
    pub default_system: Option<String>,
    /// Written between the assistant header and the content of an assistant message that ends
    /// the conversation (Qwen3's empty `<think>` block before a continued answer).
    pub open_assistant: String,
    /// Texts that end a turn or start a new one: Ollama stops generating at them.
    pub stops: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "the chat template is not one llmtool can translate (known: ChatML, Llama 3, Gemma, Mistral [INST], Phi-3, \
         Command R); pass an Ollama template with --template FILE"
    )]
    UnknownFamily,
    #[error(
        "the chat template looks like {family} but renders differently from every {family} variant llmtool knows \
         ({detail}); pass an Ollama template with --template FILE"
    )]
    NoVariant { family: &'static str, detail: String },
    #[error(transparent)]
    Jinja(#[from] ChatTemplateError),
}

/// The probe conversations a variant must render exactly as the Jinja template does. Each ends
/// with a user message (the Jinja side renders it with `add_generation_prompt`). Contents are
/// free of surrounding white space and of marker-like text.
pub fn probes() -> Vec<Vec<Message>> {
    let sys = Message::new("system", "You are a terse assistant.");
    let u1 = Message::new("user", "What is the capital of France?");
    let a1 = Message::new("assistant", "Paris.");
    let u2 = Message::new("user", "And of Italy?");
    vec![
        vec![u1.clone()],
        vec![sys.clone(), u1.clone()],
        vec![sys, u1.clone(), a1.clone(), u2.clone()],
        vec![u1, a1, u2],
    ]
}

/// A conversation ending with an assistant message that Ollama leaves open for the model to
/// continue; the Jinja side is rendered as transformers' `continue_final_message` does (without
/// the generation prompt, cut after the final message's content).
pub fn open_probe() -> Vec<Message> {
    vec![Message::new("user", "What is the capital of France?"), Message::new("assistant", "The capital is")]
}

/// [`open_probe`]'s Jinja render, if the template renders it and holds the final content.
fn render_open(tmpl: &ChatTemplate) -> Option<(Vec<Message>, String)> {
    let p = open_probe();
    let last = p.last()?.content.clone();
    let s = tmpl.render(&p, false).ok()?;
    let at = s.rfind(&last)? + last.len();
    Some((p, s[..at].to_string()))
}

/// The result of recognising a template.
#[derive(Debug, Clone)]
pub struct Recognised {
    pub format: TurnFormat,
    /// Set when the Jinja template rejects system messages: the format then folds a system
    /// message into the first user message (as Gemma 3's template does), a choice of llmtool's.
    pub system_rejected: bool,
    /// Set when the template writes the current date (`strftime_now`) into the default system
    /// message or prefix: the Ollama template holds the date of the export (Ollama's templates
    /// have no clock function, ollama template/template.go `funcs`).
    pub dated: bool,
}

/// Recognises the Jinja template `jinja`; `bos` / `eos` are the texts its `bos_token` /
/// `eos_token` stand for. `add_bos`: the tokenizer adds BOS (`tokenizer.ggml.add_bos_token`),
/// so Ollama's runner writes it and the template is compared with `bos_token` empty.
pub fn recognise(jinja: &str, bos: &str, eos: &str, add_bos: bool) -> Result<Recognised, TemplateError> {
    let family = family_of(jinja).ok_or(TemplateError::UnknownFamily)?;
    // Probes are compared with `bos_token` empty; a BOS the template writes is then either
    // Ollama's (the tokenizer adds it) or the Ollama template's first text.
    let mut tmpl = ChatTemplate::new(jinja, "", eos)?;
    let mut lead = String::new();
    if !add_bos && !bos.is_empty() {
        let with_bos = ChatTemplate::new(jinja, bos, eos)?;
        let p = &probes()[0];
        if with_bos.render(p, true)? == format!("{bos}{}", tmpl.render(p, true)?) {
            lead = bos.to_string();
            tmpl = with_bos;
        }
    }
    // Jinja renders of the probes; a template that raises on a system message rejects system
    // messages (Gemma 2), and the probes with one are left out.
    let mut rendered = Vec::new();
    let mut system_rejected = false;
    for p in probes() {
        match tmpl.render(&p, true) {
            Ok(s) => rendered.push((p, s)),
            Err(ChatTemplateError::Raised(_)) if p.iter().any(|m| m.role == "system") => system_rejected = true,
            Err(e) => return Err(e.into()),
        }
    }
    let open = render_open(&tmpl);
    let mut first_diff = String::new();
    for mut v in variants(family, eos) {
        v.lead = lead.clone();
        if system_rejected {
            v.system_style = SystemStyle::FirstUser("\n\n");
        } else {
            fit_system_extras(&mut v, &rendered);
        }
        if let Some((p, want)) = &open {
            fit_open_assistant(&mut v, p, want);
        }
        match rendered.iter().chain(&open).find(|(p, want)| &v.render(p) != want) {
            None => {
                let dated = jinja.contains("strftime_now")
                    && (!v.system_prefix.is_empty() || v.default_system.as_ref().is_some_and(|d| !d.is_empty()));
                return Ok(Recognised { format: v, system_rejected, dated });
            }
            Some((p, want)) if first_diff.is_empty() => {
                first_diff = format!(
                    "for a conversation of {} message(s) the template writes {:?}, the closest variant {:?}",
                    p.len(),
                    want,
                    v.render(p)
                );
            }
            Some(_) => {}
        }
    }
    Err(TemplateError::NoVariant { family, detail: first_diff })
}

/// The family a template's text belongs to, by its turn markers.
pub fn family_of(jinja: &str) -> Option<&'static str> {
    let has = |s: &str| jinja.contains(s);
    if has("<|im_start|>") {
        Some("chatml")
    } else if has("<|start_header_id|>") {
        Some("llama3")
    } else if has("<start_of_turn>") {
        Some("gemma")
    } else if has("<|START_OF_TURN_TOKEN|>") {
        Some("command-r")
    } else if has("<|assistant|>") && has("<|end|>") {
        Some("phi3")
    } else if has("[INST]") {
        Some("mistral")
    } else {
        None
    }
}

/// A family's name for people ("ChatML").
pub fn family_display(family: &str) -> &'static str {
    match family {
        "chatml" => "ChatML",
        "llama3" => "Llama 3",
        "gemma" => "Gemma",
        "command-r" => "Command R",
        "phi3" => "Phi-3",
        "mistral" => "Mistral [INST]",
        _ => "other",
    }
}

fn s(x: &str) -> String {
    x.to_string()
}

fn strings(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|x| s(x)).collect()
}

/// The variants of a family, most common first. `eos`: the EOS text (Mistral's assistant footer).
pub fn variants(family: &'static str, eos: &str) -> Vec<TurnFormat> {
    let base = |system: (&str, &str), user: (&str, &str), assistant: (&str, &str), generation: &str, stops: &[&str]| {
        TurnFormat {
            family,
            lead: String::new(),
            system: (s(system.0), s(system.1)),
            user: (s(user.0), s(user.1)),
            assistant: (s(assistant.0), s(assistant.1)),
            generation: s(generation),
            system_style: SystemStyle::Turn,
            system_prefix: String::new(),
            default_system: None,
            open_assistant: String::new(),
            stops: strings(stops),
        }
    };
    match family {
        // ChatML (SmolLM2, Qwen2/2.5/3, …): `<|im_start|>role\ncontent<|im_end|>\n`.
        "chatml" => vec![base(
            ("<|im_start|>system\n", "<|im_end|>\n"),
            ("<|im_start|>user\n", "<|im_end|>\n"),
            ("<|im_start|>assistant\n", "<|im_end|>\n"),
            "<|im_start|>assistant\n",
            &["<|im_end|>", "<|im_start|>"],
        )],
        // Llama 3.x: `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>`.
        "llama3" => vec![base(
            ("<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>"),
            ("<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>"),
            ("<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"),
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
            &["<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"],
        )],
        // Gemma 1/2/3: the assistant is "model"; Gemma 3's template writes the system message
        // at the head of the first user turn, simpler ones give it a turn of its own.
        "gemma" => {
            let t = base(
                ("<start_of_turn>system\n", "<end_of_turn>\n"),
                ("<start_of_turn>user\n", "<end_of_turn>\n"),
                ("<start_of_turn>model\n", "<end_of_turn>\n"),
                "<start_of_turn>model\n",
                &["<end_of_turn>", "<start_of_turn>"],
            );
            let folded = TurnFormat { system_style: SystemStyle::FirstUser("\n\n"), ..t.clone() };
            vec![folded, t]
        }
        // Phi-3/3.5/4-mini: `<|role|>\ncontent<|end|>\n`.
        "phi3" => vec![base(
            ("<|system|>\n", "<|end|>\n"),
            ("<|user|>\n", "<|end|>\n"),
            ("<|assistant|>\n", "<|end|>\n"),
            "<|assistant|>\n",
            &["<|end|>", "<|user|>", "<|assistant|>"],
        )],
        // Command R / R+: `<|START_OF_TURN_TOKEN|><|ROLE_TOKEN|>content<|END_OF_TURN_TOKEN|>`.
        "command-r" => vec![base(
            ("<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>", "<|END_OF_TURN_TOKEN|>"),
            ("<|START_OF_TURN_TOKEN|><|USER_TOKEN|>", "<|END_OF_TURN_TOKEN|>"),
            ("<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>", "<|END_OF_TURN_TOKEN|>"),
            "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
            &["<|END_OF_TURN_TOKEN|>", "<|START_OF_TURN_TOKEN|>"],
        )],
        // Mistral `[INST] … [/INST]`: the releases differ in the spaces around the markers
        // (v1 `[INST] x [/INST]`, v3 `[INST] x[/INST] y`, Nemo/tekken `[INST]x[/INST]y`) and in
        // where the system message goes (the last user message, the first, or — v7 — a
        // `[SYSTEM_PROMPT]` turn). No generation header: `[/INST]` ends the user turn.
        "mistral" => {
            let eos = if eos.is_empty() { "</s>" } else { eos };
            let mut out = Vec::new();
            for uh in ["[INST] ", "[INST]"] {
                for uf in [" [/INST]", "[/INST]"] {
                    for ah in ["", " "] {
                        let t =
                            base(("[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]"), (uh, uf), (ah, eos), "", &[eos, "[INST]"]);
                        for style in [SystemStyle::LastUser("\n\n"), SystemStyle::FirstUser("\n\n"), SystemStyle::Turn]
                        {
                            out.push(TurnFormat { system_style: style, ..t.clone() });
                        }
                    }
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

/// Reads the text a template writes before a continued assistant message's content off the
/// open probe's render `want`.
fn fit_open_assistant(v: &mut TurnFormat, p: &[Message], want: &str) {
    let plain = v.render(p);
    let content = &p.last().expect("a probe has messages").content;
    let Some(base) = plain.strip_suffix(content.as_str()) else { return };
    if let Some(mid) = want.strip_prefix(base).and_then(|w| w.strip_suffix(content.as_str())) {
        v.open_assistant = mid.to_string();
    }
}

/// Reads a default system message and a system prefix off the probes' Jinja renders
/// (`rendered`: probe, text), for a format whose system message is a turn of its own.
fn fit_system_extras(v: &mut TurnFormat, rendered: &[(Vec<Message>, String)]) {
    if v.system_style != SystemStyle::Turn {
        return;
    }
    let (h, f) = v.system.clone();
    // Compared after the lead (a BOS text both sides start with).
    let lead = v.lead.clone();
    let cut = |x: &str| -> String { x.strip_prefix(lead.as_str()).unwrap_or(x).to_string() };
    let rendered: Vec<(&Vec<Message>, String)> = rendered.iter().map(|(p, w)| (p, cut(w))).collect();
    // A system probe: the text between the system header and the message is the prefix.
    let mut prefix = String::new();
    if let Some((p, want)) = rendered.iter().find(|(p, _)| p.first().is_some_and(|m| m.role == "system")) {
        let plain = cut(&v.render(p));
        let tail = &plain[h.len().min(plain.len())..];
        if plain.starts_with(&h) && want.starts_with(&h) && want.ends_with(tail) && want.len() >= h.len() + tail.len() {
            prefix = want[h.len()..want.len() - tail.len()].to_string();
        }
    }
    // A probe without one: a system turn the template adds is the default (after the prefix).
    let mut default = None;
    if let Some((p, want)) = rendered.iter().find(|(p, _)| p.iter().all(|m| m.role != "system")) {
        let plain = cut(&v.render(p));
        if let Some(added) = want.strip_suffix(plain.as_str()) {
            if let Some(body) = added.strip_prefix(h.as_str()).and_then(|x| x.strip_suffix(f.as_str())) {
                if let Some(d) = body.strip_prefix(prefix.as_str()) {
                    default = Some(d.to_string());
                }
            }
        }
    }
    v.system_prefix = prefix;
    v.default_system = default;
}

impl TurnFormat {
    /// Renders a conversation as the emitted Go template does under Ollama (after Ollama's
    /// `collate`, which the caller applies to multi-part conversations; the probes need none).
    pub fn render(&self, messages: &[Message]) -> String {
        let system: Vec<&str> = messages.iter().filter(|m| m.role == "system").map(|m| m.content.as_str()).collect();
        let system = system.join("\n\n");
        let mut out = self.lead.clone();
        if self.system_style == SystemStyle::Turn && system.is_empty() {
            if let Some(d) = &self.default_system {
                out += &self.system.0;
                out += &self.system_prefix;
                out += d;
                out += &self.system.1;
            }
        }
        let mut pending = system.clone();
        for (i, m) in messages.iter().enumerate() {
            let last = i + 1 == messages.len();
            match m.role.as_str() {
                "system" if self.system_style == SystemStyle::Turn => {
                    out += &self.system.0;
                    out += &self.system_prefix;
                    out += &m.content;
                    out += &self.system.1;
                }
                "user" => {
                    out += &self.user.0;
                    match self.system_style {
                        SystemStyle::FirstUser(sep) if !pending.is_empty() => {
                            out += &pending;
                            out += sep;
                            pending.clear();
                        }
                        SystemStyle::LastUser(sep) if last && !system.is_empty() => {
                            out += &system;
                            out += sep;
                        }
                        _ => {}
                    }
                    out += &m.content;
                    out += &self.user.1;
                }
                "assistant" => {
                    out += &self.assistant.0;
                    if last {
                        out += &self.open_assistant;
                    }
                    out += &m.content;
                    if !last {
                        out += &self.assistant.1;
                    }
                }
                _ => {}
            }
            if last && m.role != "assistant" {
                out += &self.generation;
            }
        }
        out
    }

    /// The Ollama `TEMPLATE`: a Go `text/template` over `.Messages` / `.System` that renders
    /// what [`render`](Self::render) does. Every literal is a quoted Go string in an action, so
    /// the `{{-` that starts each line trims only the template's own line breaks.
    pub fn go_template(&self) -> String {
        let lit = |text: &str| if text.is_empty() { String::new() } else { format!("{{{{ {} }}}}", go_quote(text)) };
        let sys_turn = |content: &str| {
            format!("{}{}{}{}", lit(&self.system.0), lit(&self.system_prefix), content, lit(&self.system.1))
        };
        let mut t = String::new();
        if !self.lead.is_empty() {
            t += &format!("{{{{- {} }}}}\n", go_quote(&self.lead));
        }
        if let (SystemStyle::Turn, Some(d)) = (self.system_style, &self.default_system) {
            t += &format!("{{{{- if not .System }}}}{}{{{{ end }}}}\n", sys_turn(&lit(d)));
        }
        if let SystemStyle::FirstUser(_) = self.system_style {
            t += "{{- $system := .System }}\n";
        }
        t += "{{- range $i, $m := .Messages }}\n";
        t += "{{- $last := eq (len (slice $.Messages $i)) 1 }}\n";
        if self.system_style == SystemStyle::Turn {
            t += &format!("{{{{- if eq .Role \"system\" }}}}{}\n", sys_turn("{{ .Content }}"));
            t += "{{- else if eq .Role \"user\" }}";
        } else {
            t += "{{- if eq .Role \"user\" }}";
        }
        t += &lit(&self.user.0);
        match self.system_style {
            SystemStyle::FirstUser(sep) => {
                t += &format!("{{{{ if $system }}}}{{{{ $system }}}}{}{{{{ $system = \"\" }}}}{{{{ end }}}}", lit(sep))
            }
            SystemStyle::LastUser(sep) => {
                t += &format!("{{{{ if and $last $.System }}}}{{{{ $.System }}}}{}{{{{ end }}}}", lit(sep))
            }
            SystemStyle::Turn => {}
        }
        t += &format!("{{{{ .Content }}}}{}\n", lit(&self.user.1));
        t += &format!("{{{{- else if eq .Role \"assistant\" }}}}{}", lit(&self.assistant.0));
        if !self.open_assistant.is_empty() {
            t += &format!("{{{{ if $last }}}}{}{{{{ end }}}}", lit(&self.open_assistant));
        }
        t += "{{ .Content }}";
        if !self.assistant.1.is_empty() {
            t += &format!("{{{{ if not $last }}}}{}{{{{ end }}}}", lit(&self.assistant.1));
        }
        t += "\n{{- end }}\n";
        if !self.generation.is_empty() {
            t += &format!("{{{{- if and $last (ne .Role \"assistant\") }}}}{}{{{{ end }}}}\n", lit(&self.generation));
        }
        t += "{{- end }}";
        t
    }
}

/// A Go interpreted string literal for `text`. Besides `"` and `\`, every character Go's
/// `strconv.IsPrint` rejects is escaped (control characters, white space other than the ASCII
/// space, format characters): Ollama's Modelfile parser drops unprintable characters
/// (parser/parser.go `ParseFile`), so the TEMPLATE must hold none.
pub fn go_quote(text: &str) -> String {
    let mut q = String::with_capacity(text.len() + 2);
    q.push('"');
    for c in text.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            '\r' => q.push_str("\\r"),
            c if c == ' ' || !(c.is_control() || c.is_whitespace() || is_format_char(c)) => q.push(c),
            c if (c as u32) <= 0xFFFF => q.push_str(&format!("\\u{:04x}", c as u32)),
            c => q.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    q.push('"');
    q
}

/// Unicode format characters (category Cf) found in text: soft hyphen, zero-width and
/// direction marks, word joiners, BOM.
fn is_format_char(c: char) -> bool {
    matches!(c as u32, 0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E
        | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    #[test]
    fn chatml_is_recognised_without_extras() {
        let r = recognise(CHATML, "<|im_start|>", "<|im_end|>", true).unwrap();
        assert_eq!(r.format.family, "chatml");
        assert_eq!(r.format.default_system, None);
        assert_eq!(r.format.system_prefix, "");
    }

    #[test]
    fn a_default_system_message_is_read_off_the_probes() {
        let src = format!(
            "{{% if messages[0]['role'] != 'system' %}}{{{{ '<|im_start|>system\\nBe kind.<|im_end|>\\n' }}}}{{% endif %}}{CHATML}"
        );
        let r = recognise(&src, "", "", false).unwrap();
        assert_eq!(r.format.default_system.as_deref(), Some("Be kind."));
        assert!(r.format.go_template().contains("{{- if not .System }}"));
    }

    #[test]
    fn unknown_and_mismatching_templates_are_errors() {
        assert!(matches!(recognise("{{ messages[0]['content'] }}", "", "", false), Err(TemplateError::UnknownFamily)));
        let odd = "{% for m in messages %}<|im_start|>{{ m.role }}:{{ m.content }}{% endfor %}";
        assert!(matches!(recognise(odd, "", "", false), Err(TemplateError::NoVariant { family: "chatml", .. })));
    }

    #[test]
    fn go_quote_escapes_what_the_modelfile_parser_would_drop() {
        assert_eq!(go_quote("a\"b\\c\n\u{a0}\u{200b}é"), "\"a\\\"b\\\\c\\n\\u00a0\\u200bé\"");
    }
}
