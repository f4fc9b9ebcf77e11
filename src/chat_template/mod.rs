//! Chat templates: renders a model's Jinja chat template (GGUF `tokenizer.chat_template`, HF
//! `chat_template.jinja` / tokenizer_config.json `chat_template`) over a list of messages the
//! way transformers' `apply_chat_template` does (`render_jinja_template` in
//! transformers/utils/chat_template_utils.py): Jinja with `trim_blocks` and `lstrip_blocks`,
//! loop controls, `raise_exception(msg)`, `strftime_now(fmt)`, the `tojson` filter, and the
//! variables `messages`, `add_generation_prompt`, `bos_token`, `eos_token` (plus any extra
//! ones the caller passes). Python string methods the templates call (`.strip()`,
//! `.startswith()`, …) come from minijinja-contrib's pycompat layer.

mod limits;
mod rewrite;

use std::path::PathBuf;

use llmtool_formats::{MetaArray, Metadata};
use minijinja::machinery::WhitespaceConfig;
use minijinja::{Environment, Error, ErrorKind, Value};
use serde::Serialize;

use crate::model::{Model, ModelFormat};
use crate::tokenizer::keys;

pub use limits::{
    last_fuel_used, Limit, FUEL, MAX_ITEMS, MAX_OUTPUT, MAX_PRODUCED, MAX_SOURCE, MAX_STRING, MAX_TAG_TOKENS, MAX_WALK,
    RECURSION, RENDER_STACK,
};

/// The file transformers saves an HF tokenizer's chat template in.
pub const CHAT_TEMPLATE_JINJA: &str = "chat_template.jinja";

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Message { role: role.into(), content: content.into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChatTemplateError {
    #[error("GGUF metadata has no {0} (the model has no chat template)")]
    Missing(&'static str),
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("chat template does not compile: {0:#}")]
    Syntax(Error),
    #[error("chat template raised an exception: {0}")]
    Raised(String),
    #[error("rendering the chat template failed: {0:#}")]
    Render(Error),
    /// The template ran into one of its bounds ([`limits`](self::Limit)).
    #[error("{template}: the chat template exceeded its limit on {limit}")]
    Limit { template: String, limit: Limit },
}

/// A compiled chat template with the special-token texts it is rendered with.
pub struct ChatTemplate {
    env: Environment<'static>,
    /// Where the template came from, for errors (a file, or a GGUF metadata key).
    origin: String,
    bos_token: String,
    eos_token: String,
}

const NAME: &str = "chat_template";

impl ChatTemplate {
    /// Compiles `source`; `bos_token` / `eos_token` are the texts the template sees.
    /// The template renders under the bounds of [`limits`](self::Limit): no loader (it reads
    /// no file), fuel, a recursion limit and size checks on everything that can grow.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, ChatTemplateError> {
        Self::with_origin(source, bos_token, eos_token, "chat template")
    }

    /// [`new`](Self::new) naming where `source` came from (for errors).
    pub fn with_origin(
        source: &str,
        bos_token: &str,
        eos_token: &str,
        origin: &str,
    ) -> Result<Self, ChatTemplateError> {
        let origin = origin.to_string();
        if source.len() > MAX_SOURCE {
            return Err(ChatTemplateError::Limit { template: origin, limit: Limit::Source });
        }
        let ws = WhitespaceConfig { keep_trailing_newline: false, lstrip_blocks: true, trim_blocks: true };
        if let Err(limit) = limits::check_tag_sizes(source, ws) {
            return Err(ChatTemplateError::Limit { template: origin, limit });
        }
        let env = on_render_stack(|| Self::compile(source, ws))?;
        Ok(ChatTemplate { env, origin, bos_token: bos_token.to_string(), eos_token: eos_token.to_string() })
    }

    /// The environment with the checked template. Parsing, compiling and dropping the syntax
    /// tree recurse once per level of an expression (operator chains are as deep as they are
    /// long), so this runs on the render stack too.
    fn compile(source: &str, ws: WhitespaceConfig) -> Result<Environment<'static>, ChatTemplateError> {
        let checked = rewrite::rewrite(source, NAME, ws).map_err(ChatTemplateError::Syntax)?;
        let mut env = Environment::new();
        // Debug builds would attach the template's locals to every error, and an error
        // leaves the render thread: a deeply nested local would then be dropped, recursively,
        // on the caller's (smaller) stack.
        env.set_debug(false);
        env.set_trim_blocks(ws.trim_blocks);
        env.set_lstrip_blocks(ws.lstrip_blocks);
        limits::install(&mut env);
        env.add_function("raise_exception", |msg: String| -> Result<Value, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_function("strftime_now", |fmt: String| -> String { strftime_now(&fmt) });
        env.add_template_owned(NAME, checked).map_err(ChatTemplateError::Syntax)?;
        Ok(env)
    }

    /// The default template of GGUF metadata (`tokenizer.chat_template`), with the BOS/EOS
    /// texts of `tokenizer.ggml.bos_token_id` / `eos_token_id` (empty when absent).
    pub fn from_gguf_metadata(md: &Metadata) -> Result<Self, ChatTemplateError> {
        let source = md.get_str(keys::CHAT_TEMPLATE).ok_or(ChatTemplateError::Missing(keys::CHAT_TEMPLATE))?;
        Self::with_metadata_tokens(source, md, keys::CHAT_TEMPLATE)
    }

    /// The template of an opened model: `tokenizer.chat_template`, or for an HF dir whose
    /// tokenizer_config.json has none, its `chat_template.jinja` (where transformers ≥ 4.50
    /// saves it).
    pub fn from_model(model: &Model) -> Result<Self, ChatTemplateError> {
        if model.metadata.get_str(keys::CHAT_TEMPLATE).is_none() && model.format == ModelFormat::HfDir {
            let path = model.path.join(CHAT_TEMPLATE_JINJA);
            match std::fs::read_to_string(&path) {
                Ok(source) => return Self::with_metadata_tokens(&source, &model.metadata, &path.display().to_string()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ChatTemplateError::Read { path, source: e }),
            }
        }
        let mut t = Self::from_gguf_metadata(&model.metadata)?;
        t.origin = Self::metadata_origin(model);
        Ok(t)
    }

    /// Where an opened model's `tokenizer.chat_template` came from: an HF dir's
    /// chat_template.jinja (when that is what model.rs loaded) or tokenizer_config.json, or
    /// the GGUF file's metadata.
    fn metadata_origin(model: &Model) -> String {
        if model.format != ModelFormat::HfDir {
            return format!("{} ({})", model.path.display(), keys::CHAT_TEMPLATE);
        }
        let jinja = model.path.join(CHAT_TEMPLATE_JINJA);
        let from_jinja = std::fs::metadata(&jinja).is_ok_and(|m| m.len() <= MAX_SOURCE as u64)
            && std::fs::read_to_string(&jinja).ok().as_deref() == model.metadata.get_str(keys::CHAT_TEMPLATE);
        if from_jinja {
            jinja.display().to_string()
        } else {
            format!("{} (chat_template)", model.path.join("tokenizer_config.json").display())
        }
    }

    fn with_metadata_tokens(source: &str, md: &Metadata, origin: &str) -> Result<Self, ChatTemplateError> {
        let tokens = md.get_array(keys::TOKENS);
        let text = |kind: &str| -> String {
            let id = md.get(keys::special_key(kind)).and_then(|v| v.as_u64());
            match (tokens, id) {
                (Some(MetaArray::String(t)), Some(id)) => t.get(id as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            }
        };
        Self::with_origin(source, &text("bos"), &text("eos"), origin)
    }

    /// Where the template came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }

    /// Renders the conversation; `add_generation_prompt` appends the assistant turn header.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String, ChatTemplateError> {
        self.render_with(messages, add_generation_prompt, Value::from(()))
    }

    /// Like [`render`](Self::render) with extra template variables (a map, e.g.
    /// `minijinja::context! { tools => … }`); they override the standard ones.
    ///
    /// The render runs on its own thread with a [`RENDER_STACK`]-byte stack: values a
    /// template nests at run time (`{% set ns.l = [ns.l] %}` in a loop) are printed and
    /// dropped recursively, and their depth is bounded only by fuel.
    pub fn render_with(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        extra: Value,
    ) -> Result<String, ChatTemplateError> {
        let (text, used) = on_render_stack(|| self.render_here(messages, add_generation_prompt, extra))?;
        limits::set_fuel_used(used);
        Ok(text)
    }

    /// The render on the current thread: the text and the fuel it took.
    fn render_here(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        extra: Value,
    ) -> Result<(String, u64), ChatTemplateError> {
        let tmpl = self.env.get_template(NAME).map_err(ChatTemplateError::Render)?;
        let base = minijinja::context! {
            messages => Value::from_serialize(messages),
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
        };
        let ctx = if extra.is_undefined() || extra.is_none() {
            base
        } else {
            minijinja::context! { ..extra, ..base }
        };
        limits::begin();
        let mut out = limits::BoundedOutput(Vec::new());
        let result = tmpl.render_captured_to(ctx, &mut out);
        let hit = limits::take_hit();
        match result {
            Ok(captured) => {
                let used = captured.state().fuel_levels().map_or(0, |(used, _)| used);
                let text = String::from_utf8(out.0)
                    .map_err(|e| ChatTemplateError::Render(Error::new(ErrorKind::BadSerialization, e.to_string())))?;
                Ok((text, used))
            }
            Err(e) => {
                let limit = match (hit, e.kind()) {
                    (Some(l), _) => Some(l),
                    (None, ErrorKind::OutOfFuel) => Some(Limit::Fuel),
                    (None, ErrorKind::InvalidOperation) if e.detail() == Some("recursion limit exceeded") => {
                        Some(Limit::Recursion)
                    }
                    _ => None,
                };
                Err(match limit {
                    Some(limit) => ChatTemplateError::Limit { template: self.origin.clone(), limit },
                    None if e.kind() == ErrorKind::InvalidOperation => {
                        ChatTemplateError::Raised(e.detail().unwrap_or_default().to_string())
                    }
                    None => ChatTemplateError::Render(e),
                })
            }
        }
    }
}

/// Runs `work` on a thread of its own with a [`RENDER_STACK`]-byte stack (address space;
/// pages are touched only as deep as the work goes) and returns its result; a panic goes on
/// in the caller.
fn on_render_stack<T: Send>(
    work: impl FnOnce() -> Result<T, ChatTemplateError> + Send,
) -> Result<T, ChatTemplateError> {
    std::thread::scope(|s| {
        let worker =
            std::thread::Builder::new().name("chat-template".into()).stack_size(RENDER_STACK).spawn_scoped(s, work);
        match worker {
            Ok(handle) => handle.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            Err(e) => Err(ChatTemplateError::Render(Error::new(
                ErrorKind::InvalidOperation,
                format!("cannot start the chat template's thread: {e}"),
            ))),
        }
    })
}

/// `strftime_now(fmt)` for the formats chat templates use ("%d %b %Y", "%Y-%m-%d"), in UTC.
fn strftime_now(fmt: &str) -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    const FULL: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&y.to_string()),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('b') => out.push_str(MONTHS[(m - 1) as usize]),
            Some('B') => out.push_str(FULL[(m - 1) as usize]),
            Some('%') => out.push('%'),
            Some(o) => {
                out.push('%');
                out.push(o);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days` algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn raise_exception_is_a_typed_error() {
        let t = ChatTemplate::new("{{ raise_exception('no system role') }}", "", "").unwrap();
        match t.render(&[], false) {
            Err(ChatTemplateError::Raised(m)) => assert_eq!(m, "no system role"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn trims_blocks_like_transformers() {
        let src = "{% for m in messages %}\n  {{ m.role }}:{{ m.content.strip() }}\n{% endfor %}";
        let t = ChatTemplate::new(src, "<s>", "</s>").unwrap();
        assert_eq!(t.render(&[Message::new("user", " hi ")], false).unwrap(), "  user:hi\n");
    }
}
