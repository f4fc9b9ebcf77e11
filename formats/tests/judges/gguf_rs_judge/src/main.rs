//! Prints what gguf-rs 0.1.8 reads from each GGUF file given as JSON, one line per file:
//! `{"ok": {...}}`, `{"err": "..."}` or `{"panic": "..."}` (caught, so that malformed inputs
//! can be probed).
use serde_json::json;

fn dump(path: &str) -> serde_json::Value {
    let mut c = match gguf_rs::get_gguf_container_array_size(path, u64::MAX) {
        Ok(c) => c,
        Err(e) => return json!({ "err": e.to_string() }),
    };
    let m = match c.decode() {
        Ok(m) => m,
        Err(e) => return json!({ "err": e.to_string() }),
    };
    let tensors: Vec<_> = m
        .tensors()
        .iter()
        .map(|t| json!({ "name": t.name, "kind": t.kind, "shape": t.shape, "offset": t.offset, "size": t.size }))
        .collect();
    json!({ "ok": {
        "version": m.get_version(),
        "num_kv": m.num_kv(),
        "keys": m.metadata().keys().collect::<Vec<_>>(),
        "data_offset": m.data_offset(),
        "alignment": m.alignment(),
        "tensors": tensors,
    }})
}

fn main() {
    std::panic::set_hook(Box::new(|_| {}));
    for path in std::env::args().skip(1) {
        let v = std::panic::catch_unwind(|| dump(&path)).unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            json!({ "panic": msg.unwrap_or_default() })
        });
        println!("{v}");
    }
}
