//! Test-only GGUF byte builder: writes fields one by one so tests can produce exactly the
//! malformed file they need (the writer under test refuses to). Layout per ggml gguf.cpp.
#![allow(dead_code)]

use std::path::PathBuf;

/// Raw little-endian GGUF bytes under construction.
#[derive(Default, Clone)]
pub struct B {
    pub buf: Vec<u8>,
}

impl B {
    /// "GGUF", version, tensor count, kv count.
    pub fn header(version: u32, n_tensors: u64, n_kv: u64) -> B {
        let mut b = B::default();
        b.bytes(b"GGUF").u32(version).u64(n_tensors).u64(n_kv);
        b
    }
    pub fn len(&self) -> u64 {
        self.buf.len() as u64
    }
    pub fn bytes(&mut self, s: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(s);
        self
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes(&[v])
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
    /// u64 length + bytes.
    pub fn str(&mut self, s: &[u8]) -> &mut Self {
        self.u64(s.len() as u64).bytes(s)
    }
    /// key + type u32 (4) + value.
    pub fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.str(key.as_bytes()).u32(4).u32(v)
    }
    /// name, n_dims, ne, type id, offset.
    pub fn tensor(&mut self, name: &str, ne: &[u64], ty: u32, offset: u64) -> &mut Self {
        self.str(name.as_bytes()).u32(ne.len() as u32);
        for &d in ne {
            self.u64(d);
        }
        self.u32(ty).u64(offset)
    }
    /// Zero bytes up to a multiple of `align`.
    pub fn pad(&mut self, align: u64) -> &mut Self {
        while !self.len().is_multiple_of(align) {
            self.u8(0);
        }
        self
    }
    pub fn zeros(&mut self, n: usize) -> &mut Self {
        self.buf.resize(self.buf.len() + n, 0);
        self
    }
    pub fn finish(&self) -> Vec<u8> {
        self.buf.clone()
    }
}

/// A small valid file: 1 kv, two F32 tensors of 4 and 3 elements (16 and 12 bytes, the
/// second one's offset 32 after padding the first to 32).
pub fn valid_two_tensors() -> Vec<u8> {
    let mut b = B::header(3, 2, 1);
    b.kv_u32("general.quantization_version", 2);
    b.tensor("a", &[4], 0, 0).tensor("b", &[3], 0, 32);
    b.pad(32).bytes(&[1; 16]).pad(32).bytes(&[2; 12]).pad(32);
    b.finish()
}

/// The workspace root (formats/..).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Path of the real test model, fetched by scripts/fetch-models.sh (fails loudly).
pub fn real_model() -> PathBuf {
    let root = workspace_root();
    let out = std::process::Command::new("bash")
        .arg(root.join("scripts/fetch-models.sh"))
        .current_dir(&root)
        .output()
        .expect("run scripts/fetch-models.sh");
    assert!(out.status.success(), "fetch-models.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    let p = String::from_utf8(out.stdout).expect("utf-8 path");
    let p = PathBuf::from(p.trim());
    if p.is_absolute() {
        p
    } else {
        root.join(p)
    }
}
