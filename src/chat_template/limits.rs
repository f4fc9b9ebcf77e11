//! The limits a chat template renders under. A template comes with the model (GGUF metadata,
//! an HF dir's tokenizer_config.json or chat_template.jinja): it is code from whoever made the
//! file, so it runs with bounds on work, depth, and on every way it can make memory grow.
//!
//! - work: minijinja fuel ([`FUEL`] instructions per render), recursion ([`RECURSION`], about
//!   50 nested macro calls / recursive loops; minijinja's parser caps syntax nesting at 150);
//! - growth: `~`, `+`, `*` and a lone `in` are rewritten into checked calls (`rewrite.rs`); the filters and
//!   Python string methods that can make a large value from small inputs (`join`, `replace`,
//!   `indent`, `format`, `tojson`, `pprint`, `string`, `list`, `batch`, `slice`, `sum`,
//!   `str.replace`, `str.join`, `str.format`) are checked before they run; every string any of
//!   these produce, and every value a `{{ … }}` emits (into the output or a capture), must be at
//!   most [`MAX_STRING`] bytes, and all of them together at most [`MAX_PRODUCED`] bytes per
//!   render; lists built by `+`/`*`/`list`/`batch`/`slice`/`sum` at most [`MAX_ITEMS`] items
//!   (minijinja's own `range` cap);
//! - output: at most [`MAX_OUTPUT`] bytes (a bounded writer);
//! - source: at most [`MAX_SOURCE`] bytes, and no loader: `include` / `import` / `extends`
//!   find nothing, so a template reads no file and no network.
//!
//! Exceeding one is [`super::ChatTemplateError::Limit`], naming the template and the limit.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::sync::LazyLock;

use minijinja::machinery::{tokenize, Token, WhitespaceConfig};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{from_args, Kwargs, Rest, StringInput, ValueKind};
use minijinja::{filters, Environment, Error, ErrorKind, Expression, State, Value};

use super::rewrite::{ACYCLIC, ADD, CAT, IN, MUL};

/// VM instructions per render. 256 messages through each of the largest fixture templates
/// take under 1/10 of this (about 5,000–7,000) (tests/chat_template_limits.rs `limits_leave_room_for_long_chats`
/// prints the figures).
pub const FUEL: u64 = 500_000;
/// Stack of the render thread (reserved address space; pages are used only as deep as a
/// render goes). Fuel bounds how deep a template can nest values at run time (about one
/// level per 4 instructions: 125,000 levels), and printing or dropping such a value recurses
/// once per level.
pub const RENDER_STACK: usize = 512 << 20;
/// Nesting depth in minijinja's units (a macro call costs about 5, an include 10; its default and
/// maximum is 500): about 50 nested macro calls.
pub const RECURSION: usize = 250;
/// Largest string a checked operation may build or a `{{ … }}` may emit (16 MiB: beyond any
/// context window's worth of text).
pub const MAX_STRING: usize = 16 << 20;
/// All bytes built by checked operations and emitted, per render.
pub const MAX_PRODUCED: u64 = 256 << 20;
/// The rendered prompt.
pub const MAX_OUTPUT: usize = 16 << 20;
/// Items of a list a checked operation builds (minijinja caps `range` at 100,000 too).
pub const MAX_ITEMS: usize = 100_000;
/// Template source.
pub const MAX_SOURCE: usize = 1 << 20;
/// Tokens in one `{{ … }}` or `{% … %}` tag. minijinja's parser bounds bracket nesting
/// (150) but builds operator chains (`a-b-c…`, `x|f|f…`, `--x`, `x.a.a…`) into trees one
/// level deep per operator, which parsing, compiling and dropping walk recursively: a 40 KB
/// chain overflowed an 8 MiB stack. Real templates' longest tags are a few hundred tokens.
pub const MAX_TAG_TOKENS: usize = 10_000;
/// Values visited per render by the cycle check of namespace assignments ([`Limit::Cycle`]).
pub const MAX_WALK: u64 = 10_000_000;

/// Which bound a template ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Source,
    Fuel,
    Recursion,
    String,
    Produced,
    Output,
    Items,
    /// One tag longer than [`MAX_TAG_TOKENS`] tokens.
    Expression,
    /// `{% set ns.attr = value %}` with `ns` inside `value`: printing, comparing or
    /// serializing such a namespace recurses without end.
    Cycle,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Source => write!(f, "source size (at most {MAX_SOURCE} bytes)"),
            Limit::Fuel => write!(
                f,
                "work (at most {FUEL} instructions, and {MAX_WALK} values visited by the cycle check, per render)"
            ),
            Limit::Recursion => write!(f, "recursion (depth {RECURSION}, about 50 nested macro calls)"),
            Limit::String => write!(f, "string size (at most {MAX_STRING} bytes per string)"),
            Limit::Produced => write!(f, "memory (at most {MAX_PRODUCED} bytes of strings built per render)"),
            Limit::Output => write!(f, "output size (at most {MAX_OUTPUT} bytes)"),
            Limit::Items => write!(f, "list size (at most {MAX_ITEMS} items)"),
            Limit::Expression => write!(f, "expression size (at most {MAX_TAG_TOKENS} tokens in one tag)"),
            Limit::Cycle => {
                write!(f, "cycles (a namespace attribute may not be set to a value containing that namespace)")
            }
        }
    }
}

/// Per-thread render state: what has been produced and which limit (if any) was hit.
/// minijinja renders on the calling thread, so a thread-local is per render.
#[derive(Default)]
struct RenderState {
    produced: u64,
    hit: Option<Limit>,
    fuel_used: u64,
    /// Values the cycle check has visited.
    walked: u64,
}

thread_local! {
    static STATE: RefCell<RenderState> = RefCell::default();
}

/// Starts a render: nothing produced, no limit hit.
pub fn begin() {
    STATE.with(|s| *s.borrow_mut() = RenderState::default());
}

/// The limit the last render on this thread ran into, if any.
pub fn take_hit() -> Option<Limit> {
    STATE.with(|s| s.borrow_mut().hit.take())
}

/// Instructions the last successful render on this thread took (of [`FUEL`]).
pub fn last_fuel_used() -> u64 {
    STATE.with(|s| s.borrow().fuel_used)
}

pub(super) fn set_fuel_used(n: u64) {
    STATE.with(|s| s.borrow_mut().fuel_used = n);
}

/// Records `limit` as hit and returns the error that stops the render.
pub fn fail(limit: Limit) -> Error {
    STATE.with(|s| s.borrow_mut().hit = Some(limit));
    Error::new(ErrorKind::InvalidOperation, format!("chat template limit: {limit}"))
}

/// Accounts for a string of `bytes` about to be built.
fn charge(bytes: usize) -> Result<(), Error> {
    if bytes > MAX_STRING {
        return Err(fail(Limit::String));
    }
    let over = STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.produced += bytes as u64;
        s.produced > MAX_PRODUCED
    });
    if over {
        return Err(fail(Limit::Produced));
    }
    Ok(())
}

fn check_items(n: usize) -> Result<(), Error> {
    if n > MAX_ITEMS {
        return Err(fail(Limit::Items));
    }
    Ok(())
}

/// Counts what is written, failing past `limit` bytes (so measuring a huge value costs at
/// most `limit` bytes of work and no memory). `extra` adds per-byte expansion (tojson's HTML
/// escapes).
struct Counter {
    n: usize,
    limit: usize,
    json_escapes: bool,
}

impl Counter {
    fn add(&mut self, bytes: &[u8]) -> bool {
        let extra = if self.json_escapes {
            5 * bytes.iter().filter(|b| matches!(b, b'<' | b'>' | b'&' | b'\'')).count()
        } else {
            0
        };
        self.n = self.n.saturating_add(bytes.len() + extra);
        self.n <= self.limit
    }
}

impl fmt::Write for Counter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.add(s.as_bytes()) {
            Ok(())
        } else {
            Err(fmt::Error)
        }
    }
}

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.add(buf) {
            Ok(buf.len())
        } else {
            Err(std::io::Error::other("over the limit"))
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn counter(json_escapes: bool) -> Counter {
    Counter { n: 0, limit: MAX_STRING, json_escapes }
}

/// Bytes of `v`'s Display (what `~`, `string` and `{{ }}` write), or the String limit.
fn display_len(v: &Value) -> Result<usize, Error> {
    if let Some(s) = v.as_str() {
        return Ok(s.len());
    }
    let mut c = counter(false);
    write!(c, "{v}").map_err(|_| fail(Limit::String))?;
    Ok(c.n)
}

/// Items of a sequence-like value (counting an unsized iterable up to the limit).
fn items(v: &Value) -> Result<Option<usize>, Error> {
    if !matches!(v.kind(), ValueKind::Seq | ValueKind::Iterable | ValueKind::Map) {
        return Ok(None);
    }
    if let Some(n) = v.len() {
        return Ok(Some(n));
    }
    let mut n = 0usize;
    for _ in v.try_iter()? {
        n += 1;
        check_items(n)?;
    }
    Ok(Some(n))
}

/// A one-expression evaluator in a plain environment: the unchecked operator, once the
/// checked function has bounded its result.
struct Op(Expression<'static, 'static>);

static PLAIN: LazyLock<Environment<'static>> = LazyLock::new(Environment::new);
static CAT_OP: LazyLock<Op> = LazyLock::new(|| Op(PLAIN.compile_expression("a ~ b").expect("valid expression")));
static ADD_OP: LazyLock<Op> = LazyLock::new(|| Op(PLAIN.compile_expression("a + b").expect("valid expression")));
static MUL_OP: LazyLock<Op> = LazyLock::new(|| Op(PLAIN.compile_expression("a * b").expect("valid expression")));
static IN_OP: LazyLock<Op> = LazyLock::new(|| Op(PLAIN.compile_expression("a in b").expect("valid expression")));

impl Op {
    fn eval(&self, a: Value, b: Value) -> Result<Value, Error> {
        self.0.eval(minijinja::context! { a => a, b => b })
    }
}

fn cat(a: Value, b: Value) -> Result<Value, Error> {
    charge(display_len(&a)?.saturating_add(display_len(&b)?))?;
    CAT_OP.eval(a, b)
}

fn add(a: Value, b: Value) -> Result<Value, Error> {
    if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
        charge(x.len().saturating_add(y.len()))?;
    } else if let (Some(x), Some(y)) = (items(&a)?, items(&b)?) {
        check_items(x.saturating_add(y))?;
    }
    ADD_OP.eval(a, b)
}

fn mul(a: Value, b: Value) -> Result<Value, Error> {
    let (v, n) = if b.kind() == ValueKind::Number { (&a, &b) } else { (&b, &a) };
    if let Some(n) = n.as_usize() {
        if let Some(s) = v.as_str() {
            charge(s.len().saturating_mul(n))?;
        } else if let Some(len) = items(v)? {
            check_items(len.saturating_mul(n))?;
        }
    }
    MUL_OP.eval(a, b)
}

/// `a in b`: when `b` is a string, minijinja prints `a` to look for it.
fn contains(a: Value, b: Value) -> Result<Value, Error> {
    if b.as_str().is_some() {
        guard_display(std::slice::from_ref(&a))?;
    }
    IN_OP.eval(a, b)
}

/// Upper bound of a printf / `str.format` result: the format string plus, for each
/// placeholder, the longest argument and the largest width/precision written in the format.
fn format_bound(fmt: &str, args: &[Value]) -> Result<usize, Error> {
    let mut longest = 0usize;
    for a in args {
        if a.is_kwargs() {
            for k in a.try_iter()? {
                longest = longest.max(display_len(&a.get_item(&k)?)?);
            }
        } else {
            longest = longest.max(display_len(a)?);
        }
    }
    let widest = fmt
        .split(|c: char| !c.is_ascii_digit())
        .filter(|d| !d.is_empty())
        .map(|d| d.parse::<usize>().unwrap_or(usize::MAX))
        .max()
        .unwrap_or(0);
    let slots = fmt.matches(['%', '{']).count();
    Ok(fmt.len().saturating_add(slots.saturating_mul(longest.saturating_add(widest))))
}

/// minijinja 2.24's format parser reads a printf key (`%(key)s`) and a `str.format` index
/// (`{0[key]}`) one byte at a time and panics (slicing inside a character) when the key holds
/// a non-ASCII character (found by fuzz/fuzz_targets/chat_template.rs). Such keys are refused
/// here, before the parser sees them. `brace`: `str.format` style, else printf style.
fn check_format_keys(fmt: &str, brace: bool) -> Result<(), Error> {
    let b = fmt.as_bytes();
    let (open, key_open, key_close) = if brace { (b'{', b'[', b']') } else { (b'%', b'(', b')') };
    let mut i = 0;
    while i < b.len() {
        if b[i] != open {
            i += 1;
            continue;
        }
        if b.get(i + 1) == Some(&open) {
            i += 2;
            continue;
        }
        // The placeholder: printf's key follows `%` directly; a brace field runs to `}`.
        let end = if brace {
            b[i..].iter().position(|&c| c == b'}').map_or(b.len(), |p| i + p)
        } else {
            (i + 2).min(b.len())
        };
        if let Some(k) = b[i..end].iter().position(|&c| c == key_open) {
            let start = i + k;
            let stop = b[start..].iter().position(|&c| c == key_close).map_or(b.len(), |p| start + p);
            if !b[start..stop].is_ascii() {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "a format key with non-ASCII characters is not supported",
                ));
            }
        }
        i += 1;
    }
    Ok(())
}

/// Result size of `s.replace(old, new)`.
fn replace_bound(s: &str, old: &str, new: &str) -> usize {
    let matches = if old.is_empty() { s.chars().count() + 1 } else { s.matches(old).count() };
    s.len().saturating_add(matches.saturating_mul(new.len()))
}

/// Result size of joining `values` with `sep`.
fn join_bound(values: &Value, sep: usize) -> Result<usize, Error> {
    let mut total = 0usize;
    if let Some(s) = values.as_str() {
        // A string joins its characters.
        return Ok(s.len().saturating_add(s.chars().count().saturating_mul(sep)));
    }
    for v in values.try_iter()? {
        total = total.saturating_add(display_len(&v)?).saturating_add(sep);
        if total > MAX_STRING {
            return Err(fail(Limit::String));
        }
    }
    Ok(total)
}

/// Turning a non-string value into text (what the string filters do to their input first)
/// can be far larger than the value: a list of 100 references to a list of 100 references
/// to a 100,000-item list prints 10^9 numbers. Such a value is measured (up to the string
/// limit) before it is converted.
fn guard_display(args: &[Value]) -> Result<(), Error> {
    for v in args {
        if v.as_str().is_none() && !v.is_kwargs() {
            display_len(v)?;
        }
    }
    Ok(())
}

/// Charges what a filter or method returned (strings: their bytes; lists: their items).
fn post(v: Value) -> Result<Value, Error> {
    if let Some(s) = v.as_str() {
        charge(s.len())?;
    } else if let Some(n) = v.len() {
        check_items(n)?;
    }
    Ok(v)
}

/// The pycompat method callback with the growth checks in front of it.
fn method(state: &State, value: &Value, name: &str, args: &[Value]) -> Result<Value, Error> {
    if let Some(s) = value.as_str() {
        match name {
            "replace" => {
                let (old, new, _): (&str, &str, Option<i32>) = from_args(args)?;
                charge(replace_bound(s, old, new))?;
            }
            "join" => {
                let (values,): (&Value,) = from_args(args)?;
                charge(join_bound(values, s.len())?)?;
            }
            "format" => {
                check_format_keys(s, true)?;
                charge(format_bound(s, args)?)?
            }
            _ => {}
        }
    }
    post(minijinja_contrib::pycompat::unknown_method_callback(state, value, name, args)?)
}

/// Largest integer among a filter's arguments (keyword ones included): a width.
fn widest_arg(args: &[Value]) -> usize {
    let mut w = 0usize;
    for a in args {
        if a.is_kwargs() {
            for k in a.try_iter().into_iter().flatten() {
                w = w.max(a.get_item(&k).ok().and_then(|v| v.as_usize()).unwrap_or(0));
            }
        } else if a.kind() == ValueKind::Number {
            w = w.max(a.as_usize().unwrap_or(0));
        }
    }
    w
}

/// Every tag of `source` has at most [`MAX_TAG_TOKENS`] tokens. A source the lexer
/// refuses passes: the parser reports its syntax error.
pub fn check_tag_sizes(source: &str, ws: WhitespaceConfig) -> Result<(), Limit> {
    let mut in_tag = 0usize;
    for token in tokenize(source, false, SyntaxConfig, ws) {
        let Ok((token, _)) = token else { return Ok(()) };
        match token {
            Token::VariableStart | Token::BlockStart => in_tag = 1,
            Token::VariableEnd | Token::BlockEnd => in_tag = 0,
            _ if in_tag > 0 => {
                in_tag += 1;
                if in_tag > MAX_TAG_TOKENS {
                    return Err(Limit::Expression);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// `{% set obj.attr = value %}` is rewritten to `{% set obj.attr = __llmtool_acyclic(obj,
/// (value)) %}` (`rewrite.rs`): `value` is returned unless `obj` (a namespace, the only
/// object minijinja assigns to) is reachable from it. Such a cycle makes every recursive
/// use of the namespace — printing it, `==`, `tojson`, `pprint` — recurse without end (a
/// stack overflow on any stack). The walk is iterative and visits at most [`MAX_WALK`]
/// values per render (a value reached twice through shared lists is visited twice).
fn acyclic(obj: Value, value: Value) -> Result<Value, Error> {
    let mut pending = vec![value.clone()];
    while let Some(v) = pending.pop() {
        if minijinja::tests::is_sameas(&v, &obj) {
            return Err(fail(Limit::Cycle));
        }
        match v.kind() {
            ValueKind::Seq | ValueKind::Iterable => {
                for item in v.try_iter()? {
                    walk_one()?;
                    pending.push(item);
                }
            }
            ValueKind::Map => {
                for key in v.try_iter()? {
                    walk_one()?;
                    if let Ok(item) = v.get_item(&key) {
                        pending.push(item);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(value)
}

/// Counts one value visited by [`acyclic`] against [`MAX_WALK`] (as work: [`Limit::Fuel`]).
fn walk_one() -> Result<(), Error> {
    let over = STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.walked += 1;
        s.walked > MAX_WALK
    });
    if over {
        return Err(fail(Limit::Fuel));
    }
    Ok(())
}

/// Registers the checked operators, filters and methods, the bounded formatter, fuel and
/// the recursion limit on `env`.
pub fn install(env: &mut Environment<'static>) {
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(RECURSION);
    env.add_function(CAT, cat);
    env.add_function(ADD, add);
    env.add_function(MUL, mul);
    env.add_function(IN, contains);
    env.add_function(ACYCLIC, acyclic);
    env.set_unknown_method_callback(method);
    env.set_formatter(|out, state, value| {
        charge(display_len(value)?)?;
        minijinja::escape_formatter(out, state, value)
    });
    env.add_filter("replace", |state: &State, args: Rest<Value>| {
        guard_display(&args)?;
        let (value, from, to): (StringInput, StringInput, StringInput) = from_args(&args)?;
        charge(replace_bound(value.as_str(), from.as_str(), to.as_str()))?;
        post(filters::replace(state, value, from, to)?)
    });
    env.add_filter("join", |state: &State, args: Rest<Value>| {
        guard_display(args.get(1..).unwrap_or_default())?;
        let (value, joiner): (&Value, Option<StringInput>) = from_args(&args)?;
        charge(join_bound(value, joiner.as_ref().map_or(0, |j| j.as_str().len()))?)?;
        post(filters::join(state, value, joiner)?)
    });
    env.add_filter("indent", |args: Rest<Value>| {
        guard_display(&args[..1.min(args.len())])?;
        let (value, width, first, blank, kwargs): (StringInput, Option<usize>, Option<bool>, Option<bool>, Kwargs) =
            from_args(&args)?;
        let lines = value.as_str().lines().count() + 1;
        charge(value.as_str().len().saturating_add(lines.saturating_mul(widest_arg(&args))))?;
        post(filters::indent(value, width, first, blank, kwargs)?)
    });
    env.add_filter("format", |state: &State, args: Rest<Value>| {
        let (fmt, rest): (&Value, Rest<Value>) = from_args(&args)?;
        if let Some(s) = fmt.as_str() {
            check_format_keys(s, false)?;
            charge(format_bound(s, &rest)?)?;
        }
        post(filters::format(state, fmt, rest)?)
    });
    env.add_filter("tojson", |args: Rest<Value>| {
        let (value, indent, kwargs): (&Value, Option<Value>, Kwargs) = from_args(&args)?;
        let width = widest_arg(args.get(1..).unwrap_or_default()).max(2);
        // The filter builds the indentation string itself (`" ".repeat(indent)`).
        charge(width)?;
        let mut c = counter(true);
        // Pretty with the widest indent bounds every indent the filter may use.
        let pad = vec![b' '; width.min(MAX_STRING)];
        let mut ser =
            serde_json::Serializer::with_formatter(&mut c, serde_json::ser::PrettyFormatter::with_indent(&pad));
        if serde::Serialize::serialize(value, &mut ser).is_err() && c.n > MAX_STRING {
            return Err(fail(Limit::String));
        }
        charge(c.n)?;
        post(filters::tojson(value, indent, kwargs)?)
    });
    env.add_filter("pprint", |value: &Value| {
        let mut c = counter(false);
        write!(c, "{value:#?}").map_err(|_| fail(Limit::String))?;
        charge(c.n)?;
        post(Value::from(filters::pprint(value)))
    });
    env.add_filter("string", |state: &State, value: &Value| {
        charge(display_len(value)?)?;
        post(filters::string(state, value)?)
    });
    // The filters that turn their input into a string before anything else.
    env.add_filter("upper", |args: Rest<Value>| {
        guard_display(&args)?;
        let (v,): (StringInput,) = from_args(&args)?;
        post(filters::upper(v))
    });
    env.add_filter("lower", |args: Rest<Value>| {
        guard_display(&args)?;
        let (v,): (StringInput,) = from_args(&args)?;
        post(filters::lower(v))
    });
    env.add_filter("capitalize", |args: Rest<Value>| {
        guard_display(&args)?;
        let (v,): (StringInput,) = from_args(&args)?;
        post(filters::capitalize(v))
    });
    env.add_filter("title", |args: Rest<Value>| {
        guard_display(&args)?;
        let (v,): (std::borrow::Cow<str>,) = from_args(&args)?;
        post(Value::from(filters::title(v)))
    });
    env.add_filter("trim", |args: Rest<Value>| {
        guard_display(&args)?;
        let (v, chars): (StringInput, Option<std::borrow::Cow<str>>) = from_args(&args)?;
        post(filters::trim(v, chars))
    });
    for name in ["escape", "e"] {
        env.add_filter(name, |state: &State, v: &Value| {
            guard_display(std::slice::from_ref(v))?;
            post(filters::escape(state, v)?)
        });
    }
    env.add_filter("safe", |args: Rest<Value>| {
        guard_display(&args)?;
        let (v,): (String,) = from_args(&args)?;
        post(filters::safe(v))
    });
    env.add_filter("list", |state: &State, value: Value| {
        match value.as_str() {
            Some(s) => check_items(s.chars().count())?,
            None => {
                items(&value)?;
            }
        }
        post(filters::list(state, value)?)
    });
    env.add_filter("batch", |state: &State, value: Value, count: usize, fill: Option<Value>| {
        check_items(count)?;
        post(filters::batch(state, value, count, fill)?)
    });
    env.add_filter("slice", |state: &State, value: Value, count: usize, fill: Option<Value>| {
        check_items(count)?;
        post(filters::slice(state, value, count, fill)?)
    });
    env.add_filter("sum", |state: &State, values: Value| {
        let mut total = 0usize;
        for v in values.try_iter()? {
            if let Some(n) = items(&v)? {
                total = total.saturating_add(n);
                check_items(total)?;
            }
        }
        post(filters::sum(state, values)?)
    });
}

/// An `io::Write` into a buffer that refuses to grow past [`MAX_OUTPUT`].
pub struct BoundedOutput(pub Vec<u8>);

impl std::io::Write for BoundedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_OUTPUT {
            fail(Limit::Output);
            return Err(std::io::Error::other("chat template output limit"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
