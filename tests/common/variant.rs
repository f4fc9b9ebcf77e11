//! Variants of the tiny fixture models for end-to-end tests: HF dirs whose tensors are
//! perturbed by a seeded generator and written with the `safetensors` crate.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

/// SplitMix64: a small seeded generator (perturbations, random strings).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// An HF dir's tensors as f64: name → (PyTorch shape, values). Single-file checkpoints.
pub type Tensors = BTreeMap<String, (Vec<usize>, Vec<f64>)>;

pub fn read_hf(dir: &Path) -> Tensors {
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let d = view.data();
        let vals: Vec<f64> = match view.dtype() {
            Dtype::F32 => d.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
            Dtype::F16 => d.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64()).collect(),
            Dtype::BF16 => d.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f64()).collect(),
            other => panic!("{name}: dtype {other:?}"),
        };
        out.insert(name, (view.shape().to_vec(), vals));
    }
    out
}

/// A copy of the HF dir `src` in `dst` whose tensors are `edit`ed (name, shape, values), then
/// written as f32 with the `safetensors` crate; `config` edits config.json.
pub fn write_variant(
    src: &Path,
    dst: &Path,
    mut edit: impl FnMut(&str, &mut Vec<usize>, &mut Vec<f64>),
    config: impl FnOnce(&mut serde_json::Value),
) {
    std::fs::create_dir_all(dst).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json", "generation_config.json", "chat_template.jinja"] {
        if src.join(f).exists() {
            std::fs::copy(src.join(f), dst.join(f)).unwrap();
        }
    }
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(src.join("config.json")).unwrap()).unwrap();
    config(&mut cfg);
    std::fs::write(dst.join("config.json"), serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let mut data: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, (mut shape, mut vals)) in read_hf(src) {
        edit(&name, &mut shape, &mut vals);
        let bytes = vals.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect();
        data.push((name, shape, bytes));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = data
        .iter()
        .map(|(n, sh, b)| (n.clone(), safetensors::tensor::TensorView::new(Dtype::F32, sh.clone(), b).unwrap()))
        .collect();
    let md = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(md), &dst.join("model.safetensors")).unwrap();
}

/// `src` with every value moved by `scale`·U(-1, 1) (seeded).
pub fn perturbed(src: &Path, dst: &Path, seed: u64, scale: f64) {
    let mut rng = Rng(seed);
    write_variant(src, dst, |_, _, v| v.iter_mut().for_each(|x| *x += scale * rng.unit()), |_| {});
}

/// Safetensors tensors as f32: name → (PyTorch shape, values).
pub type TensorsF32 = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Every tensor of a safetensors file (F32, F16 or BF16) as f32.
pub fn read_st_f32(path: &Path) -> TensorsF32 {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut out = TensorsF32::new();
    for name in st.names() {
        let t = st.tensor(name).unwrap();
        let data: Vec<f32> = match t.dtype() {
            Dtype::F32 => t.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
            Dtype::F16 => {
                t.data().chunks_exact(2).map(|c| half::f16::from_le_bytes(c.try_into().unwrap()).to_f32()).collect()
            }
            Dtype::BF16 => {
                t.data().chunks_exact(2).map(|c| half::bf16::from_le_bytes(c.try_into().unwrap()).to_f32()).collect()
            }
            other => panic!("{name}: unexpected dtype {other:?}"),
        };
        out.insert(name.to_string(), (t.shape().to_vec(), data));
    }
    out
}

/// Writes `tensors` as an F32 safetensors file.
pub fn write_st_f32(path: &Path, tensors: &TensorsF32) {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(n, (shape, d))| (n.clone(), d.iter().flat_map(|x| x.to_le_bytes()).collect(), shape.clone()))
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(n, b, shape)| (n.clone(), safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}
