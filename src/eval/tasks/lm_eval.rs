//! Items from lm-evaluation-harness's per-sample logs (`lm_eval … --log_samples` writes
//! `samples_<task>_<date>.jsonl`), for `multiple_choice` tasks. One line per document:
//!
//! ```text
//! {"doc_id": 0, "doc": {…}, "target": "2",
//!  "arguments": {"gen_args_0": {"arg_0": "<context>", "arg_1": " True"},
//!                "gen_args_1": {"arg_0": "<context>", "arg_1": " Neither"}, …},
//!  "resps": …, "filtered_resps": …, "acc": 1.0, "acc_norm": 1.0, …}
//! ```
//!
//! (`lm_eval/loggers/evaluation_tracker.py` turns each loglikelihood request's `args =
//! (context, target_delimiter + choice)` into `gen_args_i.arg_j`; older versions wrote the list
//! `[[context, continuation], …]`, also read.) Mapping:
//!
//! - context = `arg_0` (the same for every choice, else the line is refused);
//! - delimiter = the leading whitespace every `arg_1` shares (lm-eval's `target_delimiter`,
//!   usually `" "`), choices = each `arg_1` without it — so scoring `delimiter + choice` is
//!   lm-eval's continuation and `acc_norm` divides by the choice's length as lm-eval does;
//! - label = `target`: an integer (or an integer string, as the logger writes `str(target)`)
//!   is the gold index; another string is the gold choice's text (with or without the
//!   delimiter).
//!
//! `doc`, `resps`, the metrics and the hashes are ignored.

use serde_json::{Map, Value};

use super::file::At;
use super::TaskError;

/// Whether a line object is an lm-eval sample record.
pub fn is_sample(obj: &Map<String, Value>) -> bool {
    obj.contains_key("doc_id") && obj.contains_key("arguments")
}

/// One sample: (context, delimiter, choices, label).
pub struct Sample {
    pub context: String,
    pub delimiter: String,
    pub choices: Vec<String>,
    pub label: usize,
}

fn pair(v: &Value) -> Option<(&str, &str)> {
    match v {
        Value::Object(o) => Some((o.get("arg_0")?.as_str()?, o.get("arg_1")?.as_str()?)),
        Value::Array(a) if a.len() == 2 => Some((a[0].as_str()?, a[1].as_str()?)),
        _ => None,
    }
}

pub fn parse(obj: &Map<String, Value>, at: At) -> Result<Sample, TaskError> {
    let args: Vec<&Value> = match &obj["arguments"] {
        // gen_args_0, gen_args_1, … in index order (not the map's order).
        Value::Object(o) => {
            let mut v = Vec::with_capacity(o.len());
            for i in 0..o.len() {
                let k = format!("gen_args_{i}");
                v.push(o.get(&k).ok_or_else(|| at("arguments", format!("{k} missing ({} requests)", o.len())))?);
            }
            v
        }
        Value::Array(a) => a.iter().collect(),
        _ => return Err(at("arguments", "expected an object of gen_args_N or an array".into())),
    };
    if args.len() < 2 {
        return Err(at(
            "arguments",
            format!("{} requests; a multiple-choice sample has one per choice (≥ 2)", args.len()),
        ));
    }
    if args.len() > super::MAX_CHOICES {
        return Err(at("arguments", format!("{} choices exceed the cap of {}", args.len(), super::MAX_CHOICES)));
    }
    let mut pairs = Vec::with_capacity(args.len());
    for (i, a) in args.iter().enumerate() {
        pairs.push(pair(a).ok_or_else(|| {
            at(&format!("arguments.gen_args_{i}"), "expected a loglikelihood request {arg_0: context, arg_1: continuation} (only multiple_choice tasks are supported)".into())
        })?);
    }
    let context = pairs[0].0;
    if let Some(i) = pairs.iter().position(|p| p.0 != context) {
        return Err(at(&format!("arguments.gen_args_{i}"), "a different context than gen_args_0".into()));
    }
    let ws = |s: &str| s.len() - s.trim_start().len();
    let dlen = pairs.iter().map(|p| ws(p.1)).min().unwrap_or(0);
    // The shared whitespace prefix (all arg_1 start with at least dlen whitespace bytes).
    let first = pairs[0].1;
    let mut d = &first[..dlen];
    while pairs.iter().any(|p| !p.1.starts_with(d)) {
        d = &d[..d.char_indices().last().map_or(0, |(i, _)| i)];
    }
    let choices: Vec<String> = pairs.iter().map(|p| p.1[d.len()..].to_string()).collect();
    if let Some(i) = choices.iter().position(String::is_empty) {
        return Err(at(&format!("arguments.gen_args_{i}"), "the continuation is empty".into()));
    }
    let label = match obj.get("target") {
        Some(Value::Number(n)) => n.as_u64().map(|i| i as usize),
        Some(Value::String(s)) => {
            s.trim().parse::<usize>().ok().or_else(|| choices.iter().position(|c| c == s || format!("{d}{c}") == *s))
        }
        _ => return Err(at("target", "missing (the gold index or choice)".into())),
    };
    let label = label.filter(|&i| i < choices.len()).ok_or_else(|| {
        at("target", format!("{} is neither an index below {} nor a choice", obj["target"], choices.len()))
    })?;
    Ok(Sample { context: context.to_string(), delimiter: d.to_string(), choices, label })
}
