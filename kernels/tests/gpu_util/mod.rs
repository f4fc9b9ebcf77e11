//! Helpers of the GPU tests: locating the real model (also from a carried copy) and a minimal
//! GGUF tensor reader (kernels has no I/O crate; these tests also run on machines that only
//! have the test executable, see scripts/gpu-check.sh).
#![allow(dead_code)]

use llmtool_kernels::GgmlType;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The real model: `$LLMTOOL_MODEL_PATH` if set, else what `scripts/fetch-models.sh` prints.
pub fn real_model() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("LLMTOOL_MODEL_PATH") {
        let p = PathBuf::from(p);
        return if p.is_file() { Ok(p) } else { Err(format!("LLMTOOL_MODEL_PATH={} is not a file", p.display())) };
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("kernels has a parent").to_path_buf();
    let script = root.join("scripts/fetch-models.sh");
    let out =
        Command::new("bash").arg(&script).current_dir(&root).output().map_err(|e| {
            format!("cannot run {} (set LLMTOOL_MODEL_PATH to the gguf instead): {e}", script.display())
        })?;
    if !out.status.success() {
        return Err(format!("fetch-models.sh failed:\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!("fetch-models.sh printed {}, which is not a file", p.display()))
    }
}

/// One tensor of a GGUF file: name, type, element count, data bytes.
pub struct Tensor {
    pub name: String,
    pub ty: GgmlType,
    pub n: usize,
    pub data: Vec<u8>,
}

struct Cur<'a> {
    b: &'a [u8],
    at: usize,
}

impl Cur<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end =
            self.at.checked_add(n).filter(|&e| e <= self.b.len()).ok_or(format!("gguf truncated at {}", self.at))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn str(&mut self) -> Result<String, String> {
        let n = self.u64()? as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    /// Skips a metadata value of GGUF type `t`; returns it as u64 when it is an integer.
    fn value(&mut self, t: u32) -> Result<Option<u64>, String> {
        let fixed = |t: u32| match t {
            0 | 1 | 7 => Some(1),
            2 | 3 => Some(2),
            4..=6 => Some(4),
            10..=12 => Some(8),
            _ => None,
        };
        match t {
            8 => {
                self.str()?;
                Ok(None)
            }
            9 => {
                let (et, n) = (self.u32()?, self.u64()?);
                for _ in 0..n {
                    self.value(et)?;
                }
                Ok(None)
            }
            _ => {
                let n = fixed(t).ok_or(format!("unknown gguf value type {t} at {}", self.at))?;
                let b = self.take(n)?;
                let mut v = [0u8; 8];
                v[..n].copy_from_slice(b);
                Ok(Some(u64::from_le_bytes(v)))
            }
        }
    }
}

/// Reads the named tensors (all of them when `names` is empty) of a GGUF v3 file.
pub fn read_tensors(path: &Path, names: &[&str]) -> Result<Vec<Tensor>, String> {
    let b = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut c = Cur { b: &b, at: 0 };
    if c.take(4)? != b"GGUF" {
        return Err(format!("{}: not a GGUF file", path.display()));
    }
    c.u32()?;
    let (n_tensors, n_kv) = (c.u64()?, c.u64()?);
    let mut alignment = 32u64;
    for _ in 0..n_kv {
        let key = c.str()?;
        let t = c.u32()?;
        let v = c.value(t)?;
        if key == "general.alignment" {
            alignment = v.unwrap_or(32).max(1);
        }
    }
    let mut infos = Vec::new();
    for _ in 0..n_tensors {
        let name = c.str()?;
        let nd = c.u32()?;
        let mut n = 1u64;
        for _ in 0..nd {
            n = n.saturating_mul(c.u64()?);
        }
        let id = c.u32()?;
        let ty = GgmlType::from_id(id).ok_or(format!("{name}: unknown ggml type {id}"))?;
        infos.push((name, ty, n as usize, c.u64()?));
    }
    let base = (c.at as u64).div_ceil(alignment) * alignment;
    let mut out = Vec::new();
    for (name, ty, n, off) in infos {
        if !names.is_empty() && !names.contains(&name.as_str()) {
            continue;
        }
        let bytes = ty.row_bytes(n as u64).ok_or(format!("{name}: {n} elements of {ty}"))? as usize;
        let start = (base + off) as usize;
        let data = b.get(start..start + bytes).ok_or(format!("{name}: data past the end of the file"))?.to_vec();
        out.push(Tensor { name, ty, n, data });
    }
    Ok(out)
}
