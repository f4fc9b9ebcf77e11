//! Issue 18: the resource bound of every reader, measured. A counting global allocator
//! records the largest single allocation (and the peak of live bytes) while a reader opens
//! a crafted file: tiny files that claim huge counts or lengths, and valid files packed with
//! the smallest items the format allows (the worst ratio of memory to file bytes). Each
//! reader must stay within `largest ≤ C·n + K` for a file of `n` bytes, the bound stated in
//! SECURITY.md ("Bounds"); `ALLOC_BOUNDS_PRINT=1 cargo test --test alloc_bounds -- --nocapture`
//! prints what each case measured.
//!
//! The tests of this binary share the allocator's counters, which count every thread's
//! allocations, so each test holds one lock for its whole run (`serial`): the cases one
//! test builds must not land in another test's measurement.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(size: usize) {
    LARGEST.fetch_max(size, Relaxed);
    let live = LIVE.fetch_add(size, Relaxed) + size;
    PEAK.fetch_max(live, Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_sub(layout.size(), Relaxed);
        grew(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Taken first by every test: one test at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// What one reader did with one input.
#[derive(Debug, Clone, Copy)]
struct Measured {
    /// Largest single allocation, bytes.
    largest: usize,
    /// Peak of live heap bytes above what was live before, bytes.
    peak: usize,
}

/// Runs `read` (the reader on one input) and measures its allocations; the result of the
/// reader is dropped inside the measurement, so `peak` covers what it returned. The caller
/// holds [`serial`].
fn measure<T>(read: impl FnOnce() -> T) -> Measured {
    let base = LIVE.load(Relaxed);
    LARGEST.store(0, Relaxed);
    PEAK.store(base, Relaxed);
    drop(std::hint::black_box(read()));
    Measured { largest: LARGEST.load(Relaxed), peak: PEAK.load(Relaxed).saturating_sub(base) }
}

/// A reader's stated bound for a file of `n` bytes: at most `c·n + k` bytes in one
/// allocation, and at most `peak_c·n + peak_k` bytes live at once.
#[derive(Clone, Copy)]
struct Bound {
    c: usize,
    k: usize,
    peak_c: usize,
    peak_k: usize,
}

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

/// Measures `read` on `bytes` (written to `name` in a fresh directory when the reader takes
/// a path) and checks the bound; returns the measurement.
fn check<T>(reader: &str, case: &str, bound: Bound, n: usize, read: impl FnOnce() -> T) -> Measured {
    let m = measure(read);
    if std::env::var_os("ALLOC_BOUNDS_PRINT").is_some() {
        println!(
            "{reader:<18} {case:<44} n {n:>9}  largest {:>10} ({:>6.2}·n)  peak {:>10} ({:>6.2}·n)",
            m.largest,
            m.largest as f64 / n.max(1) as f64,
            m.peak,
            m.peak as f64 / n.max(1) as f64
        );
    }
    let limit = bound.c * n + bound.k;
    assert!(
        m.largest <= limit,
        "{reader}, {case}: one allocation of {} bytes from a {n}-byte file, over the bound {}·n + {} = {limit}",
        m.largest,
        bound.c,
        bound.k
    );
    let limit = bound.peak_c * n + bound.peak_k;
    assert!(
        m.peak <= limit,
        "{reader}, {case}: {} bytes live at once from a {n}-byte file, over the bound {}·n + {} = {limit}",
        m.peak,
        bound.peak_c,
        bound.peak_k
    );
    m
}

/// A scratch file holding `bytes`.
fn file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The sizes at which the packed cases are measured: the bound must hold at each (its `k`
/// is fixed, so a reader whose memory grows faster than `c·n` fails at the larger sizes).
const SIZES: [usize; 3] = [1_000, 30_000, 1_000_000];

// ---------------------------------------------------------------------------------------
// GGUF (formats/src/gguf): models, GGUF LoRA adapters, GGUF imatrix files.

mod gguf_bytes {
    /// GGUF value types (ggml `enum gguf_type`).
    pub const U8: u32 = 0;
    pub const STRING: u32 = 8;
    pub const ARRAY: u32 = 9;

    /// Header: magic, version 3, tensor count, key-value count.
    pub fn header(n_tensors: u64, n_kv: u64) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(n_tensors.to_le_bytes());
        b.extend(n_kv.to_le_bytes());
        b
    }

    pub fn string(b: &mut Vec<u8>, s: &[u8]) {
        b.extend((s.len() as u64).to_le_bytes());
        b.extend(s);
    }

    /// A file with one key whose value is an array of `ty` with `count` elements, followed
    /// by `elems` (the elements' bytes, possibly fewer than `count` claims).
    pub fn one_array(ty: u32, count: u64, elems: &[u8]) -> Vec<u8> {
        let mut b = header(0, 1);
        string(&mut b, b"a");
        b.extend(ARRAY.to_le_bytes());
        b.extend(ty.to_le_bytes());
        b.extend(count.to_le_bytes());
        b.extend(elems);
        b
    }
}

const GGUF: Bound = Bound { c: 4, k: 64 * KIB, peak_c: 10, peak_k: 64 * KIB };

/// GGUF files that claim more than they hold, and files packed with the smallest items.
fn gguf_cases() -> Vec<(String, Vec<u8>)> {
    use gguf_bytes::*;
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("claims 2^40 tensors".into(), header(1 << 40, 0)),
        ("claims 2^40 keys".into(), header(0, 1 << 40)),
        ("claims a 2^40-byte key".into(), {
            let mut b = header(0, 1);
            b.extend((1u64 << 40).to_le_bytes());
            b
        }),
        ("claims a 2^30-element u8 array".into(), one_array(U8, 1 << 30, &[0; 16])),
        ("claims a 2^30-element string array".into(), one_array(STRING, 1 << 30, &[0; 16])),
        ("claims 2^30 nested arrays".into(), one_array(ARRAY, 1 << 30, &[0; 16])),
        ("claims a 2^62-byte string value".into(), {
            let mut b = header(0, 1);
            string(&mut b, b"a");
            b.extend(STRING.to_le_bytes());
            b.extend((1u64 << 62).to_le_bytes());
            b
        }),
        ("tensor claiming 2^62-element dims".into(), {
            let mut b = header(1, 0);
            string(&mut b, b"t");
            b.extend(2u32.to_le_bytes());
            b.extend((1u64 << 62).to_le_bytes());
            b.extend((1u64 << 62).to_le_bytes());
            b.extend(0u32.to_le_bytes()); // F32
            b.extend(0u64.to_le_bytes());
            b
        }),
    ];
    for n in SIZES {
        cases.push((format!("{n} u8 elements"), one_array(U8, n as u64, &vec![7; n])));
        // Empty strings: 8 bytes each in the file, a String (24 bytes) each in memory.
        cases.push((format!("{} empty strings", n / 8), one_array(STRING, (n / 8) as u64, &vec![0; n / 8 * 8])));
        // Empty nested arrays: type + count, 12 bytes each.
        let empty = [U8.to_le_bytes().as_slice(), &0u64.to_le_bytes()].concat();
        cases.push((
            format!("{} empty nested arrays", n / 12),
            one_array(ARRAY, (n / 12) as u64, &empty.repeat(n / 12)),
        ));
        // Keys with one-byte u8 values: 8 + key + 4 + 1 bytes each.
        let k = n / 20;
        let mut b = header(0, k as u64);
        for i in 0..k {
            string(&mut b, format!("{i:07}").as_bytes());
            b.extend(U8.to_le_bytes());
            b.push(1);
        }
        cases.push((format!("{k} one-byte keys"), b));
        // Tensors: 1-element F32 tensors, each aligned to 32 bytes of data.
        let t = n / 64;
        let mut b = header(t as u64, 0);
        for i in 0..t {
            string(&mut b, format!("t{i:06}").as_bytes());
            b.extend(1u32.to_le_bytes());
            b.extend(1u64.to_le_bytes());
            b.extend(0u32.to_le_bytes());
            b.extend((i as u64 * 32).to_le_bytes());
        }
        b.resize(b.len().div_ceil(32) * 32 + t * 32, 0);
        cases.push((format!("{t} tensors"), b));
    }
    cases
}

#[test]
fn gguf_reader_allocates_at_most_4n_plus_64k() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    for (case, bytes) in gguf_cases() {
        let p = file(dir.path(), "f.gguf", &bytes);
        let claims = case.starts_with("claims") || case.starts_with("tensor claiming");
        let mut ok = None;
        check("GGUF", &case, GGUF, bytes.len(), || ok = Some(llmtool_formats::gguf::GgufFile::open(&p).is_ok()));
        assert_eq!(ok, Some(!claims), "{case}: opened {ok:?}");
    }
}

#[test]
fn gguf_lora_and_imatrix_readers_stay_within_the_gguf_bound() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    for (case, bytes) in gguf_cases() {
        let p = file(dir.path(), "f.gguf", &bytes);
        check("GGUF LoRA", &case, GGUF, bytes.len(), || llmtool::passes::lora::GgufAdapter::open(&p).is_ok());
        check("imatrix (GGUF)", &case, GGUF, bytes.len(), || llmtool_formats::imatrix::Imatrix::read(&p).is_ok());
    }
}

// ---------------------------------------------------------------------------------------
// safetensors (formats/src/safetensors): the JSON header is read and parsed; the data is mapped.

const SAFETENSORS: Bound = Bound { c: 16, k: 64 * KIB, peak_c: 32, peak_k: 64 * KIB };

fn safetensors(header: &str, data: usize) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend(header.as_bytes());
    b.resize(b.len() + data, 0);
    b
}

#[test]
fn safetensors_reader_allocates_at_most_16n_plus_64k() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut cases = vec![
        ("claims a 2^62-byte header".to_string(), {
            let mut b = (1u64 << 62).to_le_bytes().to_vec();
            b.extend(b"{}");
            b
        }),
        ("claims a 99 MB header".to_string(), {
            let mut b = 99_000_000u64.to_le_bytes().to_vec();
            b.extend(b"{}");
            b
        }),
        (
            "tensor claiming 2^62 elements".to_string(),
            safetensors(r#"{"t":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,4]}}"#, 4),
        ),
    ];
    for n in SIZES {
        let k = n / 60;
        let header = (0..k)
            .map(|i| format!(r#""{i:06}":{{"dtype":"U8","shape":[1],"data_offsets":[{i},{}]}}"#, i + 1))
            .collect::<Vec<_>>()
            .join(",");
        cases.push((format!("{k} one-byte tensors"), safetensors(&format!("{{{header}}}"), k)));
        let meta = (0..n / 12).map(|i| format!(r#""{i:05}":"""#)).collect::<Vec<_>>().join(",");
        cases.push((
            format!("{} metadata entries", n / 12),
            safetensors(&format!(r#"{{"__metadata__":{{{meta}}}}}"#), 0),
        ));
    }
    for (case, bytes) in cases {
        let p = file(dir.path(), "model.safetensors", &bytes);
        let mut ok = None;
        check("safetensors", &case, SAFETENSORS, bytes.len(), || {
            ok = Some(llmtool_formats::safetensors::SafetensorsSet::open_file(&p).is_ok())
        });
        assert_eq!(ok, Some(!case.contains("claim")), "{case}");
    }
}

// ---------------------------------------------------------------------------------------
// Legacy imatrix .dat (formats/src/imatrix.rs).

const IMATRIX_DAT: Bound = Bound { c: 2, k: 64 * KIB, peak_c: 10, peak_k: 64 * KIB };

fn i32s(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn legacy_imatrix_reader_allocates_at_most_2n_plus_64k() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut cases = vec![
        ("claims 2^31-1 entries".to_string(), i32s(&[i32::MAX, 1, b'x' as i32])),
        ("claims a 2^31-1-byte name".to_string(), i32s(&[1, i32::MAX])),
        ("claims 2^31-1 values".to_string(), {
            let mut b = i32s(&[1, 1]);
            b.push(b'x');
            b.extend(i32s(&[1, i32::MAX]));
            b
        }),
    ];
    for n in SIZES {
        // Entries with a 6-byte name and one value: 4 + 6 + 4 + 4 + 4 bytes each.
        let k = n / 22;
        let mut b = i32s(&[k as i32]);
        for i in 0..k {
            b.extend(i32s(&[6]));
            b.extend(format!("{i:06}").as_bytes());
            b.extend(i32s(&[1, 1]));
            b.extend(1f32.to_le_bytes());
        }
        cases.push((format!("{k} one-value entries"), b));
        // One entry holding every value.
        let v = n / 4;
        let mut b = i32s(&[1, 1]);
        b.push(b'x');
        b.extend(i32s(&[1, v as i32]));
        b.extend(vec![0; v * 4]);
        cases.push((format!("one entry of {v} values"), b));
    }
    for (case, bytes) in cases {
        let p = file(dir.path(), "imatrix.dat", &bytes);
        let mut ok = None;
        check("imatrix (.dat)", &case, IMATRIX_DAT, bytes.len(), || {
            ok = Some(llmtool_formats::imatrix::Imatrix::read(&p).is_ok())
        });
        assert_eq!(ok, Some(!case.starts_with("claims")), "{case}");
    }
}

// ---------------------------------------------------------------------------------------
// llama.cpp log-probability files (src/eval/kld.rs).

const LOGITS: Bound = Bound { c: 1, k: 64 * KIB, peak_c: 3, peak_k: 64 * KIB };

#[test]
fn logits_file_reader_allocates_at_most_n_plus_64k() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let header = |n_ctx: i32, n_vocab: i32, n_chunk: i32| {
        let mut b = b"_logits_".to_vec();
        b.extend(i32s(&[n_ctx, n_vocab, n_chunk]));
        b
    };
    let mut cases = vec![
        ("claims 2^31-1 of everything".to_string(), header(i32::MAX, i32::MAX, i32::MAX)),
        ("claims 2^20 chunks of 2^20".to_string(), header(1 << 20, 1 << 10, 1 << 20)),
    ];
    for n_vocab in [10, 1000, 100_000] {
        // n_ctx 8: 8 tokens and 3 scored rows of n_vocab + 4 u16 words (row_words) per chunk.
        let (n_ctx, n_chunk) = (8usize, 2usize);
        let mut b = header(n_ctx as i32, n_vocab as i32, n_chunk as i32);
        let words = n_chunk * 3 * (n_vocab + 4);
        b.resize(b.len() + n_chunk * n_ctx * 4, 0);
        let body = b.len() + words * 2;
        // The reader computes the exact length; make the body match it (row_words may pad).
        let p = file(dir.path(), "probe.logits", &b);
        let need = match llmtool::eval::BaseFile::read(&p) {
            Err(e) => {
                let e = e.to_string();
                e.rsplit("need ").next().and_then(|s| s.trim().parse::<usize>().ok()).unwrap_or(body)
            }
            Ok(_) => body,
        };
        b.resize(need, 0);
        cases.push((format!("2 chunks, n_ctx 8, n_vocab {n_vocab}"), b));
    }
    for (case, bytes) in cases {
        let p = file(dir.path(), "base.logits", &bytes);
        let mut ok = None;
        check("logits file", &case, LOGITS, bytes.len(), || ok = Some(llmtool::eval::BaseFile::read(&p).is_ok()));
        assert_eq!(ok, Some(!case.starts_with("claims")), "{case}");
    }
}

// ---------------------------------------------------------------------------------------
// SentencePiece tokenizer.model (src/tokenizer/spm_model.rs).

const SPM: Bound = Bound { c: 32, k: 64 * KIB, peak_c: 32, peak_k: 64 * KIB };

#[test]
fn tokenizer_model_reader_allocates_at_most_32n_plus_64k() {
    let _serial = serial();
    let mut cases = vec![
        ("claims a 2^62-byte field".to_string(), vec![0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]),
        ("claims a 2^31-byte piece".to_string(), vec![0x0a, 0x06, 0x0a, 0x80, 0x80, 0x80, 0x80, 0x08]),
    ];
    for n in SIZES {
        // Empty pieces: field 1, length 0 — two bytes each.
        cases.push((format!("{} empty pieces", n / 2), [0x0a, 0x00].repeat(n / 2)));
    }
    for (case, bytes) in cases {
        let mut ok = None;
        check("tokenizer.model", &case, SPM, bytes.len(), || {
            ok = Some(llmtool::tokenizer::read_spm_pieces(&bytes).is_ok())
        });
        assert_eq!(ok, Some(!case.starts_with("claims")), "{case}");
    }
}

// ---------------------------------------------------------------------------------------
// JSON inputs: config.json (HF dir), tokenizer.json / tokenizer_config.json, PEFT
// adapter_config.json, task JSONL. serde_json builds a `Value` of the whole file.

const JSON: Bound = Bound { c: 48, k: 512 * KIB, peak_c: 48, peak_k: 8 * MIB };

/// JSON documents packed with the smallest values serde_json turns into the largest ones.
fn dense_json(n: usize) -> Vec<(String, String)> {
    vec![
        (format!("array of {} zeros", n / 2), format!("[{}0]", "0,".repeat(n / 2 - 1))),
        (format!("array of {} empty arrays", n / 3), format!("[{}[]]", "[],".repeat(n / 3 - 1))),
        (
            format!("object of {} keys", n / 10),
            format!("{{{}}}", (0..n / 10).map(|i| format!(r#""{i:05}":0"#)).collect::<Vec<_>>().join(",")),
        ),
        ("127 nested arrays".into(), format!("{}{}", "[".repeat(127), "]".repeat(127))),
        ("10,000 nested arrays".into(), format!("{}{}", "[".repeat(10_000), "]".repeat(10_000))),
    ]
}

#[test]
fn hf_config_json_allocates_at_most_48n_plus_512k() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let hf = dir.path().join("hf");
    std::fs::create_dir_all(&hf).unwrap();
    let mut cases = dense_json(1_000_000);
    cases.extend(dense_json(30_000));
    // Counts that would size tables: refused before anything is allocated for them.
    for key in ["num_hidden_layers", "hidden_size", "num_attention_heads", "vocab_size", "num_local_experts"] {
        cases.push((
            format!("llama claiming {key} 2^40"),
            format!(
                r#"{{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":256,"max_position_embeddings":64,"rms_norm_eps":1e-6,"{key}":1099511627776}}"#
            ),
        ));
    }
    for (case, text) in cases {
        std::fs::write(hf.join("config.json"), &text).unwrap();
        check("config.json", &case, JSON, text.len(), || {
            // The HF dir reader (it fails later, on the missing weights), then the
            // architecture's reading of the parsed config.
            let _ = llmtool_formats::hf::HfDir::open(&hf);
            if let Ok(cfg) = serde_json::from_str::<serde_json::Value>(&text) {
                if let Ok(a) = llmtool::arch::from_hf_config(&cfg) {
                    let _ = a.config_to_metadata(&cfg, &mut llmtool_formats::Metadata::new());
                }
            }
        });
    }
}

/// Ids without a token are padded with `[PAD<id>]` entries (like convert_hf_to_gguf, up to
/// config.json's `vocab_size`): at most one per listed token plus `MAX_UNUSED_IDS` (2^16),
/// so a tiny file may still cost 2^16 padding tokens. That is the tokenizer's `k`.
const TOKENIZER: Bound = Bound { c: 16, k: 4 * MIB, peak_c: 32, peak_k: 4 * MIB };

#[test]
fn tokenizer_json_allocates_at_most_16n_plus_2_16_padding_tokens() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("tok");
    std::fs::create_dir_all(&tok).unwrap();
    let bpe =
        |vocab: &str, merges: &str| format!(r#"{{"model":{{"type":"BPE","vocab":{{{vocab}}},"merges":[{merges}]}}}}"#);
    let mut cases: Vec<(String, String, Option<String>)> = vec![
        ("one token with id 2^22-1".into(), bpe(r#""a":4194303"#, ""), None),
        ("one token with id 65537 (2^16 unused ids)".into(), bpe(r#""a":65537"#, ""), None),
        (
            "config vocab_size 65538 (2^16 unused ids)".into(),
            bpe(r#""a":0,"b":1"#, ""),
            Some(r#"{"vocab_size":65538}"#.into()),
        ),
        ("one token with id 2^22".into(), bpe(r#""a":4194304"#, ""), None),
        ("one token with id 2^63".into(), bpe(r#""a":9223372036854775808"#, ""), None),
        ("config vocab_size 2^22".into(), bpe(r#""a":0"#, ""), Some(r#"{"vocab_size":4194304}"#.into())),
        ("config vocab_size 2^40".into(), bpe(r#""a":0"#, ""), Some(r#"{"vocab_size":1099511627776}"#.into())),
    ];
    for n in SIZES {
        let k = n / 12;
        let vocab = (0..k).map(|i| format!(r#""{i:05}":{i}"#)).collect::<Vec<_>>().join(",");
        cases.push((format!("{k} tokens"), bpe(&vocab, ""), None));
        let m = n / 12;
        let vocab = (0..m + 2)
            .map(|i| format!(r#""{}":{i}"#, ["a", "b"].get(i).copied().unwrap_or(&format!("ab{i}"))))
            .collect::<Vec<_>>()
            .join(",");
        cases.push((format!("{m} merges"), bpe(&vocab, &vec![r#""a b""#; m].join(",")), None));
    }
    for (case, json, config) in cases {
        std::fs::write(tok.join("tokenizer.json"), &json).unwrap();
        match &config {
            Some(c) => std::fs::write(tok.join("config.json"), c).unwrap(),
            None => {
                let _ = std::fs::remove_file(tok.join("config.json"));
            }
        }
        let n = json.len() + config.as_ref().map_or(0, String::len);
        let mut ok = None;
        check("tokenizer.json", &case, TOKENIZER, n, || ok = Some(llmtool::tokenizer::load_tokenizer(&tok).is_ok()));
        if case.contains("2^22") || case.contains("2^40") || case.contains("2^63") {
            assert_eq!(ok, Some(false), "{case}: opened");
        }
    }
}

#[test]
fn peft_adapter_config_allocates_at_most_48n_plus_512k() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("adapter");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/lora/llama_plain/adapter/adapter_model.safetensors"),
        a.join("adapter_model.safetensors"),
    )
    .unwrap();
    let mut cases = dense_json(1_000_000);
    cases.push((
        "the fixture's adapter_config.json".into(),
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/lora/llama_plain/adapter/adapter_config.json"),
        )
        .unwrap(),
    ));
    let patterns = |n: usize| (0..n / 16).map(|i| format!(r#""l{i:06}":8"#)).collect::<Vec<_>>().join(",");
    for n in SIZES {
        cases.push((
            format!("{} rank_pattern entries", n / 16),
            format!(
                r#"{{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":["q_proj"],"rank_pattern":{{{}}}}}"#,
                patterns(n)
            ),
        ));
    }
    // Keys that are regular expressions: at most 256, each within a 64 KiB program.
    let regexes = (0..256).map(|i| format!(r#""layers\\.{i}\\.(q|k|v|o)_proj":8"#)).collect::<Vec<_>>().join(",");
    cases.push((
        "256 regex keys".into(),
        format!(r#"{{"peft_type":"LORA","r":8,"lora_alpha":16,"rank_pattern":{{{regexes}}}}}"#),
    ));
    cases.push((
        "a regex key over the size limit".into(),
        r#"{"peft_type":"LORA","r":8,"rank_pattern":{"\\w{100}":8}}"#.into(),
    ));
    cases.push(("claims r 2^40".into(), r#"{"peft_type":"LORA","r":1099511627776,"lora_alpha":16}"#.into()));
    for (case, text) in cases {
        std::fs::write(a.join("adapter_config.json"), &text).unwrap();
        // The adapter's weights (the fixture's, 36 KB) are read too: n counts both files.
        let n = text.len() + std::fs::metadata(a.join("adapter_model.safetensors")).unwrap().len() as usize;
        check("adapter_config", &case, JSON, n, || llmtool::passes::lora::PeftAdapter::open(&a).is_ok());
    }
}

#[test]
fn task_file_allocates_at_most_48n_plus_512k() {
    let _serial = serial();
    let item = r#"{"context":"p","choices":["a","b"],"label":0}"#;
    let mut cases = vec![];
    for n in SIZES {
        let k = n / (item.len() + 1);
        cases.push((format!("{k} items"), format!("{item}\n").repeat(k)));
        let c = n / 4;
        cases.push((
            format!("an item with {c} choices"),
            format!("{{\"context\":\"p\",\"choices\":[{}\"\"],\"label\":0}}\n", "\"\",".repeat(c - 1)),
        ));
    }
    for (case, text) in dense_json(1_000_000) {
        cases.push((case, text));
    }
    for (case, text) in cases {
        check("task JSONL", &case, JSON, text.len(), || {
            llmtool::eval::tasks::TaskSet::parse(Path::new("t.jsonl"), &text).is_ok()
        });
    }
}

// ---------------------------------------------------------------------------------------
// YAML: mergekit, EVOLVE and build recipes. yaml_serde expands aliases, so a "billion
// laughs" document is the case to bound.

const YAML: Bound = Bound { c: 192, k: 64 * KIB, peak_c: 256, peak_k: 16 * MIB };

/// 9 levels of 9 aliases each to the level below: 9^9 (387 million) leaves if expanded.
fn billion_laughs() -> String {
    let mut s = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        s += &format!("l{i}: &l{i} [{}]\n", vec![format!("*l{}", i - 1); 9].join(", "));
    }
    s
}

fn yaml_cases(list_key: &str, item: &str) -> Vec<(String, String)> {
    let mut cases = vec![
        ("billion laughs".to_string(), billion_laughs()),
        ("10,000 nested lists".to_string(), format!("{}{}", "[".repeat(10_000), "]".repeat(10_000))),
        ("10,000 nested maps".to_string(), format!("{}{}", "{a: ".repeat(10_000), "}".repeat(10_000))),
    ];
    for n in SIZES {
        // One anchored list of n/4 scalars (2 bytes each), then n/16 aliases to it (4 bytes each).
        let (k, a) = (n / 4, n / 16);
        cases.push((
            format!("{a} aliases to a list of {k}"),
            format!("x: &a [{}x]\n{list_key}: [{}*a]\n", "x,".repeat(k - 1), "*a, ".repeat(a - 1)),
        ));
    }
    for n in SIZES {
        cases.push((format!("{} empty flow lists", n / 3), format!("{list_key}: [{}[]]\n", "[],".repeat(n / 3 - 1))));
        let k = n / (item.len() + 3);
        cases.push((format!("{k} list items"), format!("{list_key}:\n{}", format!("  - {item}\n").repeat(k))));
    }
    cases
}

#[test]
fn yaml_configs_allocate_at_most_192n_plus_64k() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    for (case, text) in yaml_cases("models", "{model: a}") {
        check("merge YAML", &case, YAML, text.len(), || {
            llmtool::merge::config::MergeConfig::parse(&text, "m.yml").is_ok()
        });
    }
    for (case, text) in yaml_cases("models", "a") {
        check("EVOLVE YAML", &case, YAML, text.len(), || {
            llmtool::evolve::config::EvolveConfig::parse(&text, "e.yml", Some(dir.path())).is_ok()
        });
    }
    for (case, text) in yaml_cases("steps", "{convert: {outtype: f16}}") {
        let p = file(dir.path(), "r.yml", text.as_bytes());
        check("recipe YAML", &case, YAML, text.len(), || llmtool::build::recipe::Loaded::open(&p, |_| true).is_ok());
    }
}

/// Found by `yaml_configs_allocate_at_most_192n_plus_64k`: yaml_serde expands each alias into
/// a copy of its anchor and bounds only the number of alias jumps, so 15 KB of YAML (a list
/// of 10,000 items and 5,000 aliases to it) made `MergeConfig::parse` hold 745 MB, growing
/// with the square of the file's size. Now the expansion is counted first (src/yaml.rs).
#[test]
fn yaml_alias_expansion_is_bounded() {
    let _serial = serial();
    let text = format!("x: &a [{}x]\nmodels: [{}*a]\n", "x,".repeat(9_999), "*a, ".repeat(4_999));
    let mut err = None;
    let m = measure(|| err = llmtool::merge::config::MergeConfig::parse(&text, "m.yml").err().map(|e| e.to_string()));
    let err = err.expect("refused");
    assert!(err.contains("the document expands to more than"), "{err}");
    assert!(m.peak < 16 * MIB, "{} bytes live at once", m.peak);
    // The same shape within the allowance still parses as YAML (and is then refused as a
    // merge config for what it says, not for its size).
    let small = format!("x: &a [{}x]\nmodels: [{}*a]\n", "x,".repeat(99), "*a, ".repeat(99));
    let err = llmtool::merge::config::MergeConfig::parse(&small, "m.yml").unwrap_err().to_string();
    assert!(!err.contains("expands to more than"), "{err}");
}
