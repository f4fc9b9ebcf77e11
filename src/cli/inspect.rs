//! `llmtool inspect PATH [--json]`: what a model file or directory holds.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use llmtool_formats::hf::BnbTensor;
use llmtool_formats::MetaValue;
use serde_json::{json, Value};

use crate::model::{Model, ModelFormat};
use crate::tokenizer::TokenizerSummary;

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// A GGUF file or an HF model directory.
    pub path: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: InspectArgs) -> Result<()> {
    let model = Model::open(&args.path).with_context(|| format!("cannot open {}", args.path.display()))?;
    let report = report(&model);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        // A closed pipe (`| head`) ends the listing quietly.
        match print_text(&mut std::io::stdout().lock(), &report) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other?,
        }
    }
    Ok(())
}

/// Everything `inspect` shows, as JSON (the text form is printed from it).
pub fn report(model: &Model) -> Value {
    let arch = model.arch.gguf_arch();
    let prefix = format!("{arch}.");
    let hyper: serde_json::Map<String, Value> = model
        .metadata
        .iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .map(|(k, v)| (k[prefix.len()..].to_string(), meta_to_json(v, 16)))
        .collect();
    let general: serde_json::Map<String, Value> = model
        .metadata
        .iter()
        .filter(|(k, _)| k.starts_with("general."))
        .map(|(k, v)| (k.to_string(), meta_to_json(v, 16)))
        .collect();
    let bnb: std::collections::HashMap<&str, &BnbTensor> =
        model.hf.iter().flat_map(|hf| &hf.bnb).map(|(name, b)| (name.as_str(), b)).collect();
    let tensors: Vec<Value> = model
        .tensors
        .tensor_infos()
        .iter()
        .map(|t| {
            let mut v = json!({"name": t.name, "type": t.ty.name(), "shape": t.shape(), "bytes": t.n_bytes()});
            if let Some(b) = bnb.get(t.name.as_str()) {
                // Stored by bitsandbytes; `type`/`bytes` are what it dequantizes to.
                v["bitsandbytes"] = bnb_json(b);
            }
            v
        })
        .collect();
    let n_params = model.n_params();
    let n_bytes = model.n_tensor_bytes();
    let format = match (&model.format, &model.gguf) {
        (ModelFormat::Gguf, Some(g)) => json!({"kind": "gguf", "version": g.version, "alignment": g.alignment}),
        _ => json!({"kind": "hf"}),
    };
    let mut report = json!({
        "path": model.path.display().to_string(),
        "format": format,
        "architecture": arch,
        "general": general,
        "hyperparameters": hyper,
        "tokenizer": TokenizerSummary::from_metadata(&model.metadata),
        "n_tensors": tensors.len(),
        "n_params": n_params,
        "tensor_bytes": n_bytes,
        "bits_per_weight": if n_params > 0 { n_bytes as f64 * 8.0 / n_params as f64 } else { 0.0 },
        "tensors": tensors,
    });
    if let Some(summary) = bnb_summary(model) {
        report["bitsandbytes"] = summary;
    }
    report
}

fn bnb_json(b: &BnbTensor) -> Value {
    json!({"type": b.type_name(), "blocksize": b.blocksize, "stored_bytes": b.stored_bytes, "hf_name": b.name})
}

/// Counts per bitsandbytes type and what it dequantizes to (e.g. `{"nf4+dq → F16": 14}`);
/// `None` for a checkpoint without bitsandbytes weights.
fn bnb_summary(model: &Model) -> Option<Value> {
    let hf = model.hf.as_ref().filter(|hf| !hf.bnb.is_empty())?;
    let mut types = serde_json::Map::new();
    for (_, b) in &hf.bnb {
        let key = format!("{} → {:?}", b.type_name(), b.dtype);
        let n = types.get(&key).and_then(Value::as_u64).unwrap_or(0);
        types.insert(key, json!(n + 1));
    }
    let stored: u64 = hf.bnb.iter().map(|(_, b)| b.stored_bytes).sum();
    Some(json!({"tensors": hf.bnb.len(), "types": types, "stored_bytes": stored}))
}

/// A metadata value as JSON; arrays longer than `max_items` are summarised.
pub fn meta_to_json(v: &MetaValue, max_items: usize) -> Value {
    match v {
        MetaValue::Array(a) if a.len() > max_items => json!(format!("[{} × {}]", a.len(), a.element_type().name())),
        _ => v.to_json(),
    }
}

fn print_text(out: &mut impl Write, r: &Value) -> std::io::Result<()> {
    let fmt = &r["format"];
    let kind = match fmt["kind"].as_str() {
        Some("gguf") => format!("GGUF v{} (alignment {})", fmt["version"], fmt["alignment"]),
        _ => "Hugging Face model directory".to_string(),
    };
    writeln!(out, "{}: {kind}", r["path"].as_str().unwrap_or(""))?;
    writeln!(out, "architecture: {}", r["architecture"].as_str().unwrap_or("?"))?;
    print_map(out, "general", &r["general"])?;
    print_map(out, "hyper-parameters", &r["hyperparameters"])?;
    if let Some(tok) = r["tokenizer"].as_object() {
        writeln!(out, "tokenizer:")?;
        for (k, v) in tok {
            writeln!(out, "  {k:<24} {}", compact(v))?;
        }
    }
    let n_params = r["n_params"].as_u64().unwrap_or(0);
    let bytes = r["tensor_bytes"].as_u64().unwrap_or(0);
    writeln!(
        out,
        "tensors: {}   parameters: {} ({:.1} M)   data: {:.1} MiB   bits per weight: {:.3}",
        r["n_tensors"],
        n_params,
        n_params as f64 / 1e6,
        bytes as f64 / (1024.0 * 1024.0),
        r["bits_per_weight"].as_f64().unwrap_or(0.0)
    )?;
    if let Some(b) = r["bitsandbytes"].as_object() {
        let types: Vec<String> =
            b["types"].as_object().into_iter().flatten().map(|(k, n)| format!("{n} × {k}")).collect();
        writeln!(
            out,
            "bitsandbytes: {} (stored in {:.1} MiB; dequantized on read, the table shows the dequantized tensors)",
            types.join(", "),
            b["stored_bytes"].as_u64().unwrap_or(0) as f64 / (1024.0 * 1024.0)
        )?;
    }
    writeln!(out, "  {:<40} {:<8} {:<20} {:>12}", "name", "type", "shape", "bytes")?;
    for t in r["tensors"].as_array().into_iter().flatten() {
        let stored = match &t["bitsandbytes"] {
            Value::Object(b) => format!(
                "  ← bnb {}{} ({} bytes stored)",
                b["type"].as_str().unwrap_or("?"),
                b["blocksize"].as_u64().map_or(String::new(), |s| format!(", block {s}")),
                b["stored_bytes"]
            ),
            _ => String::new(),
        };
        writeln!(
            out,
            "  {:<40} {:<8} {:<20} {:>12}{stored}",
            t["name"].as_str().unwrap_or(""),
            t["type"].as_str().unwrap_or(""),
            compact(&t["shape"]),
            t["bytes"]
        )?;
    }
    Ok(())
}

fn print_map(out: &mut impl Write, title: &str, v: &Value) -> std::io::Result<()> {
    if let Some(m) = v.as_object() {
        if m.is_empty() {
            return Ok(());
        }
        writeln!(out, "{title}:")?;
        for (k, v) in m {
            writeln!(out, "  {k:<40} {}", compact(v))?;
        }
    }
    Ok(())
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) if s.len() > 80 => {
            format!("{:?}… ({} chars)", &s[..s.floor_char_boundary(77)], s.chars().count())
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
