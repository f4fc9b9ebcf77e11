//! Multiple-choice task files: JSON lines, one item per line, with an optional header line.
//!
//! ```text
//! {"context": "The cat sat on the", "choices": ["mat.", "sky."], "label": 0}
//! ```
//!
//! or, for a family of items sharing a prompt (NLI: premise + hypothesis → a verdict), a first
//! line `{"task": {...}}` with a `template` whose `{field}` placeholders are filled from each
//! item's keys, the shared `choices`, and optional `labels` (names for the choices, so items may
//! say `"label": "entailment"`):
//!
//! ```text
//! {"task": {"name": "nli", "template": "{premise}\nQuestion: {hypothesis} True, False or Neither?\nAnswer:",
//!           "choices": ["True", "Neither", "False"], "labels": ["entailment", "neutral", "contradiction"]}}
//! {"premise": "A man is playing a guitar.", "hypothesis": "A person makes music.", "label": "entailment"}
//! ```
//!
//! A built-in template instead of `template` / `choices` / `labels`: `{"task": "nli"}` (or
//! `{"task": {"builtin": "nli", "name": …}}`) is the three-way entailment prompt of
//! lm-evaluation-harness's ANLI tasks, [`BUILTIN_NLI`]: items give `premise`, `hypothesis` and a
//! `label` of `entailment` / `neutral` / `contradiction` (or 0 / 1 / 2, the ANLI / MNLI / SNLI
//! numbering).
//!
//! Lines of lm-evaluation-harness's per-sample logs (`--log_samples`) are read as items too
//! (see [`super::lm_eval`] for the field mapping), so an exported task can be re-scored here.
//!
//! The continuation scored for a choice is `delimiter + choice` (header `delimiter`, default
//! `" "`: lm-eval-harness's `target_delimiter`). `label` is a 0-based index or a choice / label
//! name. Blank lines are skipped; keys not used are ignored.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::lm_eval;
use super::TaskError;

/// Caps on what one file may ask for (checked before anything is allocated from it).
pub const MAX_CHOICES: usize = 1024;
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// One multiple-choice item.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskItem {
    /// 1-based line in the task file.
    pub line: usize,
    /// The prompt (template already filled in).
    pub context: String,
    /// The answers as written (without the delimiter); their character counts normalize `acc_norm`.
    pub choices: Vec<String>,
    /// Index of the correct choice.
    pub label: usize,
}

/// The items of one task file.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSet {
    /// Header `name`, else the file stem.
    pub name: String,
    pub path: PathBuf,
    /// Put between the context and each choice (lm-eval's `target_delimiter`).
    pub delimiter: String,
    pub items: Vec<TaskItem>,
}

/// The optional first line's `task` object.
#[derive(Debug, Default)]
struct Header {
    name: Option<String>,
    template: Option<String>,
    choices: Option<Vec<String>>,
    labels: Option<Vec<String>>,
    delimiter: Option<String>,
}

const HEADER_KEYS: [&str; 6] = ["name", "template", "choices", "labels", "delimiter", "builtin"];

/// The built-in NLI template (lm-evaluation-harness `anli_r1.yaml`: `doc_to_text`,
/// `doc_to_choice`; label 0 entailment, 1 neutral, 2 contradiction): template, choices, labels.
pub const BUILTIN_NLI: (&str, [&str; 3], [&str; 3]) = (
    "{premise}\nQuestion: {hypothesis} True, False, or Neither?\nAnswer:",
    ["True", "Neither", "False"],
    ["entailment", "neutral", "contradiction"],
);

impl TaskSet {
    /// Reads and checks a task file.
    pub fn read(path: &Path) -> Result<TaskSet, TaskError> {
        let io = |source| TaskError::Io { path: path.to_path_buf(), source };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_FILE_BYTES {
            return Err(TaskError::FileTooLarge { path: path.to_path_buf(), size, cap: MAX_FILE_BYTES });
        }
        let bytes = std::fs::read(path).map_err(io)?;
        let text = String::from_utf8(bytes)
            .map_err(|e| TaskError::NotUtf8 { path: path.to_path_buf(), offset: e.utf8_error().valid_up_to() })?;
        Self::parse(path, &text)
    }

    /// Parses the text of a task file (`path` names it in errors and gives the default name).
    pub fn parse(path: &Path, text: &str) -> Result<TaskSet, TaskError> {
        let mut header: Option<Header> = None;
        let mut items = Vec::new();
        let mut seen_line = false;
        // The delimiter lm-eval sample lines carry (all must agree).
        let mut sample_delimiter: Option<String> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let at = |key: &str, msg: String| TaskError::Line { path: path.to_path_buf(), line, key: key.into(), msg };
            if raw.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(raw).map_err(|e| at("", format!("not valid JSON: {e}")))?;
            let Value::Object(obj) = v else {
                return Err(at("", format!("expected a JSON object, found {}", kind(&v))));
            };
            if let Some(h) = obj.get("task") {
                if seen_line {
                    return Err(at("task", "a header line {\"task\": …} must be the first line".into()));
                }
                header = Some(parse_header(h, &at)?);
                seen_line = true;
                continue;
            }
            seen_line = true;
            if lm_eval::is_sample(&obj) {
                let sm = lm_eval::parse(&obj, &at)?;
                let want = header.as_ref().and_then(|h| h.delimiter.as_ref()).or(sample_delimiter.as_ref());
                if let Some(d) = want.filter(|d| **d != sm.delimiter) {
                    return Err(at(
                        "arguments",
                        format!("the choices' delimiter {:?} differs from the file's {d:?}", sm.delimiter),
                    ));
                }
                sample_delimiter = Some(sm.delimiter);
                items.push(TaskItem { line, context: sm.context, choices: sm.choices, label: sm.label });
                continue;
            }
            items.push(parse_item(&obj, line, header.as_ref().unwrap_or(&Header::default()), &at)?);
        }
        if items.is_empty() {
            return Err(TaskError::Empty { path: path.to_path_buf() });
        }
        let header = header.unwrap_or_default();
        let name = header.name.unwrap_or_else(|| {
            path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "task".into())
        });
        let delimiter = header.delimiter.or(sample_delimiter).unwrap_or_else(|| " ".into());
        Ok(TaskSet { name, path: path.to_path_buf(), delimiter, items })
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(super) type At<'a> = &'a dyn Fn(&str, String) -> TaskError;

fn string_list(v: &Value, key: &str, at: At) -> Result<Vec<String>, TaskError> {
    let Value::Array(a) = v else {
        return Err(at(key, format!("expected an array of strings, found {}", kind(v))));
    };
    if a.len() < 2 {
        return Err(at(key, format!("expected at least 2 choices, found {}", a.len())));
    }
    if a.len() > MAX_CHOICES {
        return Err(at(key, format!("{} entries exceed the cap of {MAX_CHOICES}", a.len())));
    }
    a.iter()
        .enumerate()
        .map(|(j, c)| match c {
            Value::String(s) if !s.is_empty() => Ok(s.clone()),
            Value::String(_) => Err(at(&format!("{key}[{j}]"), "is empty (an empty answer cannot be scored)".into())),
            other => Err(at(&format!("{key}[{j}]"), format!("expected a string, found {}", kind(other)))),
        })
        .collect()
}

fn parse_header(h: &Value, at: At) -> Result<Header, TaskError> {
    let short;
    let h = match h {
        Value::String(b) => {
            short = Value::Object(Map::from_iter([("builtin".to_string(), Value::String(b.clone()))]));
            &short
        }
        h => h,
    };
    let Value::Object(o) = h else {
        return Err(at("task", format!("expected an object, found {}", kind(h))));
    };
    if let Some(k) = o.keys().find(|k| !HEADER_KEYS.contains(&k.as_str())) {
        return Err(at(&format!("task.{k}"), format!("unknown key (known: {})", HEADER_KEYS.join(", "))));
    }
    let string = |k: &str| -> Result<Option<String>, TaskError> {
        match o.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(at(&format!("task.{k}"), format!("expected a string, found {}", kind(v)))),
        }
    };
    let list = |k: &str| o.get(k).map(|v| string_list(v, &format!("task.{k}"), at)).transpose();
    let mut hd = Header {
        name: string("name")?,
        template: string("template")?,
        delimiter: string("delimiter")?,
        choices: list("choices")?,
        labels: list("labels")?,
    };
    if let Some(b) = string("builtin")? {
        if b != "nli" {
            return Err(at("task.builtin", format!("unknown built-in template {b:?} (known: nli)")));
        }
        if let Some(k) = ["template", "choices", "labels"].into_iter().find(|k| o.contains_key(*k)) {
            return Err(at(&format!("task.{k}"), "given with task.builtin, which sets it".into()));
        }
        let (t, c, l) = BUILTIN_NLI;
        hd.template = Some(t.into());
        hd.choices = Some(c.map(String::from).to_vec());
        hd.labels = Some(l.map(String::from).to_vec());
    }
    if let Some(labels) = &hd.labels {
        let n = hd.choices.as_ref().map(Vec::len);
        if n != Some(labels.len()) {
            return Err(at(
                "task.labels",
                format!("{} labels need task.choices of the same length, found {n:?}", labels.len()),
            ));
        }
    }
    if let Some(t) = &hd.template {
        check_template(t, at)?;
    }
    Ok(hd)
}

fn check_template(t: &str, at: At) -> Result<(), TaskError> {
    render(t, &|_| Some(String::new()), at).map(|_| ())
}

/// Fills `{field}` from `lookup`; `{{` and `}}` are literal braces.
fn render(t: &str, lookup: &dyn Fn(&str) -> Option<String>, at: At) -> Result<String, TaskError> {
    let mut out = String::with_capacity(t.len() + 64);
    let mut rest = t;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let c = rest.as_bytes()[i];
        let after = &rest[i + 1..];
        if after.as_bytes().first() == Some(&c) {
            out.push(c as char);
            rest = &after[1..];
            continue;
        }
        if c == b'}' {
            return Err(at(
                "task.template",
                format!("unmatched '}}' at byte {} (write '}}}}' for a brace)", t.len() - rest.len() + i),
            ));
        }
        let Some(end) = after.find('}') else {
            return Err(at("task.template", "unclosed '{' (write '{{' for a brace)".into()));
        };
        let field = &after[..end];
        if field.is_empty() || !field.chars().all(|ch| ch.is_alphanumeric() || ch == '_') {
            return Err(at("task.template", format!("bad placeholder {{{field}}} (letters, digits, '_')")));
        }
        let v = lookup(field).ok_or_else(|| at(field, "missing: the template uses it".into()))?;
        out.push_str(&v);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn parse_item(obj: &Map<String, Value>, line: usize, hd: &Header, at: At) -> Result<TaskItem, TaskError> {
    let context = match &hd.template {
        Some(t) => {
            if obj.contains_key("context") {
                return Err(at("context", "given, but the header's template builds the context".into()));
            }
            let lookup = |f: &str| match obj.get(f) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            };
            // A present key of the wrong type gets its own message.
            for field in placeholders(t) {
                if let Some(v) = obj.get(field) {
                    if !matches!(v, Value::String(_) | Value::Number(_)) {
                        return Err(at(field, format!("expected a string, found {}", kind(v))));
                    }
                }
            }
            render(t, &lookup, at)?
        }
        None => match obj.get("context") {
            Some(Value::String(s)) => s.clone(),
            Some(v) => return Err(at("context", format!("expected a string, found {}", kind(v)))),
            None => return Err(at("context", "missing (or give a header line with a template)".into())),
        },
    };
    let choices = match (obj.get("choices"), &hd.choices) {
        (Some(v), _) => string_list(v, "choices", at)?,
        (None, Some(c)) => c.clone(),
        (None, None) => return Err(at("choices", "missing (per line, or in the header)".into())),
    };
    let label = match obj.get("label") {
        None => return Err(at("label", "missing".into())),
        Some(Value::Number(n)) => {
            let i = n.as_u64().ok_or_else(|| at("label", format!("expected a 0-based index, found {n}")))?;
            if i as usize >= choices.len() || i > usize::MAX as u64 {
                return Err(at("label", format!("index {i} is out of range for {} choices", choices.len())));
            }
            i as usize
        }
        Some(Value::String(s)) => {
            let by_label =
                hd.labels.as_ref().filter(|_| !obj.contains_key("choices")).and_then(|l| l.iter().position(|x| x == s));
            by_label.or_else(|| choices.iter().position(|c| c == s)).ok_or_else(|| {
                let names = hd.labels.as_ref().filter(|_| !obj.contains_key("choices")).unwrap_or(&choices);
                at("label", format!("{s:?} is not one of {names:?}"))
            })?
        }
        Some(v) => return Err(at("label", format!("expected an index or a choice name, found {}", kind(v)))),
    };
    Ok(TaskItem { line, context, choices, label })
}

/// The field names a (checked) template uses.
fn placeholders(t: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find(['{', '}']) {
        let c = rest.as_bytes()[i];
        let after = &rest[i + 1..];
        if after.as_bytes().first() == Some(&c) {
            rest = &after[1..];
            continue;
        }
        match (c, after.find('}')) {
            (b'{', Some(end)) => {
                out.push(&after[..end]);
                rest = &after[end + 1..];
            }
            _ => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TaskSet, TaskError> {
        TaskSet::parse(Path::new("t.jsonl"), text)
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn plain_items() {
        let t = parse("{\"context\": \"A\", \"choices\": [\"x\", \"y\"], \"label\": 1}\n\n{\"context\": \"B\", \"choices\": [\"p\", \"q\", \"r\"], \"label\": \"r\"}\n").unwrap();
        assert_eq!(t.name, "t");
        assert_eq!(t.delimiter, " ");
        assert_eq!(t.items.len(), 2);
        assert_eq!(
            t.items[0],
            TaskItem { line: 1, context: "A".into(), choices: vec!["x".into(), "y".into()], label: 1 }
        );
        assert_eq!(t.items[1].line, 3);
        assert_eq!(t.items[1].label, 2);
    }

    #[test]
    fn header_template_and_labels() {
        let text = r#"{"task": {"name": "nli", "template": "{premise} {{Q}}: {hypothesis}?", "choices": ["Yes", "No"], "labels": ["entailment", "contradiction"], "delimiter": "\n"}}
{"premise": "P1", "hypothesis": "H1", "label": "contradiction", "extra": [1]}
{"premise": "P2", "hypothesis": 7, "label": 0}"#;
        let t = parse(text).unwrap();
        assert_eq!(t.name, "nli");
        assert_eq!(t.delimiter, "\n");
        assert_eq!(t.items[0].context, "P1 {Q}: H1?");
        assert_eq!(t.items[0].label, 1);
        assert_eq!(t.items[0].choices, vec!["Yes", "No"]);
        assert_eq!(t.items[1].context, "P2 {Q}: 7?");
        assert_eq!(t.items[1].label, 0);
    }

    #[test]
    fn errors_name_line_and_key() {
        let e = err("{\"context\": \"A\", \"choices\": [\"x\", \"y\"], \"label\": 0}\n{\"context\": \"A\", \"choices\": [\"x\", \"y\"], \"label\": 2}");
        assert!(e.contains("t.jsonl:2") && e.contains("label") && e.contains("out of range"), "{e}");
        let e = err("{\"context\": \"A\", \"choices\": [\"x\"], \"label\": 0}");
        assert!(e.contains("t.jsonl:1") && e.contains("choices") && e.contains("at least 2"), "{e}");
        let e = err("{\"context\": \"A\", \"choices\": [\"x\", \"\"], \"label\": 0}");
        assert!(e.contains("choices[1]") && e.contains("empty"), "{e}");
        let e = err("{\"choices\": [\"x\", \"y\"], \"label\": 0}");
        assert!(e.contains("context") && e.contains("missing"), "{e}");
        let e = err("{\"context\": \"A\", \"choices\": [\"x\", \"y\"]}");
        assert!(e.contains("label") && e.contains("missing"), "{e}");
        let e = err("{\"context\": \"A\", \"choices\": [\"x\", \"y\"], \"label\": \"z\"}");
        assert!(e.contains("\"z\" is not one of"), "{e}");
        let e = err("{\"context\": \"A\", \"choices\": [\"x\", \"y\"], \"label\": -1}");
        assert!(e.contains("0-based index"), "{e}");
        let e = err("{\"context\": 3, \"choices\": [\"x\", \"y\"], \"label\": 0}");
        assert!(e.contains("context") && e.contains("a number"), "{e}");
        let e = err("[1, 2]");
        assert!(e.contains("expected a JSON object"), "{e}");
        let e = err("{\"context\": \"A\",");
        assert!(e.contains("t.jsonl:1") && e.contains("not valid JSON"), "{e}");
        let e = err("\n\n");
        assert!(e.contains("no items"), "{e}");
    }

    #[test]
    fn header_errors() {
        let e = err("{\"task\": {\"templat\": \"x\"}}\n");
        assert!(e.contains("task.templat") && e.contains("unknown key"), "{e}");
        let e = err("{\"task\": {\"template\": \"{a\"}}\n");
        assert!(e.contains("unclosed"), "{e}");
        let e = err("{\"task\": {\"template\": \"a}\"}}\n");
        assert!(e.contains("unmatched"), "{e}");
        let e = err("{\"task\": {\"choices\": [\"a\", \"b\"], \"labels\": [\"x\"]}}\n");
        assert!(e.contains("task.labels"), "{e}");
        let e =
            err("{\"task\": {\"template\": \"{p} {h}\", \"choices\": [\"a\", \"b\"]}}\n{\"p\": \"x\", \"label\": 0}");
        assert!(e.contains("t.jsonl:2") && e.contains("key h"), "{e}");
        let e = err("{\"context\": \"A\", \"choices\": [\"x\", \"y\"], \"label\": 0}\n{\"task\": {}}");
        assert!(e.contains("first line"), "{e}");
        let e = err("{\"task\": {\"template\": \"{p}\", \"choices\": [\"a\", \"b\"]}}\n{\"p\": [1], \"label\": 0}");
        assert!(e.contains("key p") && e.contains("an array"), "{e}");
    }

    #[test]
    fn builtin_nli_is_the_anli_prompt() {
        let t = parse("{\"task\": \"nli\"}\n{\"premise\": \"P.\", \"hypothesis\": \"H.\", \"label\": \"neutral\"}\n{\"premise\": \"Q.\", \"hypothesis\": \"I.\", \"label\": 2}").unwrap();
        assert_eq!(t.items[0].context, "P.\nQuestion: H. True, False, or Neither?\nAnswer:");
        assert_eq!(t.items[0].choices, vec!["True", "Neither", "False"]);
        assert_eq!((t.items[0].label, t.items[1].label), (1, 2));
        let named = parse("{\"task\": {\"builtin\": \"nli\", \"name\": \"rte3\"}}\n{\"premise\": \"P\", \"hypothesis\": \"H\", \"label\": 0}").unwrap();
        assert_eq!(named.name, "rte3");
        let e = err("{\"task\": \"nil\"}\n{\"premise\": \"P\", \"hypothesis\": \"H\", \"label\": 0}");
        assert!(e.contains("task.builtin") && e.contains("nil"), "{e}");
        let e = err("{\"task\": {\"builtin\": \"nli\", \"choices\": [\"a\", \"b\"]}}\n{\"premise\": \"P\", \"hypothesis\": \"H\", \"label\": 0}");
        assert!(e.contains("task.choices") && e.contains("builtin"), "{e}");
        let e = err("{\"task\": \"nli\"}\n{\"premise\": \"P\", \"label\": 0}");
        assert!(e.contains("key hypothesis") && e.contains("missing"), "{e}");
    }

    fn sample(target: &str, conts: &[&str]) -> String {
        let args: Map<String, Value> = conts
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("gen_args_{i}"), serde_json::json!({"arg_0": "Ctx:", "arg_1": c})))
            .collect();
        serde_json::json!({"doc_id": 0, "doc": {}, "target": serde_json::from_str::<Value>(target).unwrap(),
            "arguments": args, "acc": 1.0})
        .to_string()
    }

    #[test]
    fn lm_eval_samples_map_to_items() {
        let t = parse(&sample("\"1\"", &[" yes", " no"])).unwrap();
        assert_eq!(t.delimiter, " ");
        assert_eq!(
            t.items[0],
            TaskItem { line: 1, context: "Ctx:".into(), choices: vec!["yes".into(), "no".into()], label: 1 }
        );
        assert_eq!(parse(&sample("0", &[" yes", " no"])).unwrap().items[0].label, 0);
        assert_eq!(parse(&sample("\" no\"", &[" yes", " no"])).unwrap().items[0].label, 1);
        assert_eq!(parse(&sample("\"no\"", &[" yes", " no"])).unwrap().items[0].label, 1);
        // No shared delimiter; the old list form of `arguments`.
        let t = parse(&sample("0", &["\nA", " B"])).unwrap();
        assert_eq!((t.delimiter.as_str(), &t.items[0].choices[..]), ("", &["\nA".to_string(), " B".into()][..]));
        let old = "{\"doc_id\": 3, \"target\": 0, \"arguments\": [[\"C\", \" x\"], [\"C\", \" y\"]]}";
        assert_eq!(parse(old).unwrap().items[0].choices, vec!["x", "y"]);
        let e = err(&sample("\"2\"", &[" yes", " no"]));
        assert!(e.contains("key target") && e.contains("neither an index"), "{e}");
        let e = err(&sample("0", &[" yes"]));
        assert!(e.contains("key arguments") && e.contains("≥ 2"), "{e}");
        let e = err("{\"doc_id\": 0, \"target\": 0, \"arguments\": {\"gen_args_0\": {\"arg_0\": \"C\"}, \"gen_args_1\": {\"arg_0\": \"C\", \"arg_1\": \" y\"}}}");
        assert!(e.contains("gen_args_0") && e.contains("multiple_choice"), "{e}");
        let e = err("{\"doc_id\": 0, \"target\": 0, \"arguments\": [[\"C\", \" x\"], [\"D\", \" y\"]]}");
        assert!(e.contains("different context"), "{e}");
        let e = err(&format!("{}\n{}", sample("0", &[" a", " b"]), sample("0", &["\na", "\nb"])));
        assert!(e.contains("t.jsonl:2") && e.contains("delimiter"), "{e}");
    }

    /// The shipped examples: the built-in NLI items and their lm-eval sample-log form are the
    /// same items (so they score the same), and the built-in prompt is nli.jsonl's items.
    #[test]
    fn shipped_nli_examples_agree() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tasks");
        let builtin = TaskSet::read(&dir.join("nli_builtin.jsonl")).unwrap();
        let samples = TaskSet::read(&dir.join("nli_lm_eval_samples.jsonl")).unwrap();
        let plain = TaskSet::read(&dir.join("nli.jsonl")).unwrap();
        assert_eq!(builtin.items.len(), 30);
        assert_eq!(builtin.delimiter, samples.delimiter);
        let strip =
            |t: &TaskSet| t.items.iter().map(|i| (i.context.clone(), i.choices.clone(), i.label)).collect::<Vec<_>>();
        assert_eq!(strip(&builtin), strip(&samples));
        let labels = |t: &TaskSet| t.items.iter().map(|i| i.label).collect::<Vec<_>>();
        assert_eq!(labels(&builtin), labels(&plain));
    }
}
