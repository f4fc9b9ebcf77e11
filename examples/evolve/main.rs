//! Builds the `merge --evolve` demo inputs from one GGUF model W: `w.gguf` (W as F16),
//! `a.gguf` = W + δ and `b.gguf` = W − δ (F16; δ seeded uniform noise of AMP × the rms of each
//! matrix; 1-D tensors kept). A linear merge of A and B at equal weights is W again.
//!
//! `cargo run --release --example evolve -- MODEL.gguf OUT_DIR [AMP=0.5]`

use std::borrow::Cow;
use std::path::Path;

use llmtool::model::Model;
use llmtool_formats::gguf::{write_gguf, GgufHeader};
use llmtool_formats::{GgmlType, TensorInfo};
use llmtool_kernels::convert;

fn write_variant(w: &Model, path: &Path, sign: f32, amp: f32) -> anyhow::Result<()> {
    let mut infos = Vec::new();
    let mut datas: Vec<Vec<u8>> = Vec::new();
    let mut rng = 0x5eed_u64.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for t in w.tensors.tensor_infos() {
        let bytes = w.tensors.tensor_bytes(&t.name)?;
        if t.ne.len() < 2 {
            infos.push(t.clone());
            datas.push(bytes.into_owned());
            continue;
        }
        let n: u64 = t.ne.iter().product();
        let mut f = vec![0f32; n as usize];
        convert::to_f32(t.ty, &bytes, &mut f)?;
        let rms = (f.iter().map(|x| (x * x) as f64).sum::<f64>() / f.len() as f64).sqrt() as f32;
        for x in &mut f {
            rng ^= rng >> 12;
            rng ^= rng << 25;
            rng ^= rng >> 27;
            let u = ((rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
            *x += sign * amp * rms * u;
        }
        let mut out = Vec::new();
        convert::from_f32(GgmlType::F16, &f, &mut out)?;
        infos.push(TensorInfo::new(t.name.clone(), GgmlType::F16, t.ne.clone()));
        datas.push(out);
    }
    let mut md = w.metadata.clone();
    llmtool::model::set_file_type(&mut md, GgmlType::F16);
    let header = GgufHeader::new(md, infos)?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    write_gguf(&mut file, &header, |i, _| Ok(Cow::Borrowed(&datas[i][..])), |_| {})?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        anyhow::bail!("usage: evolve MODEL.gguf OUT_DIR [AMP=0.5]");
    }
    let amp: f32 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(0.5);
    let w = Model::open(Path::new(&args[1]))?;
    let out = Path::new(&args[2]);
    std::fs::create_dir_all(out)?;
    write_variant(&w, &out.join("w.gguf"), 0.0, 0.0)?;
    write_variant(&w, &out.join("a.gguf"), 1.0, amp)?;
    write_variant(&w, &out.join("b.gguf"), -1.0, amp)?;
    eprintln!("wrote w.gguf, a.gguf = W + δ, b.gguf = W − δ (δ = {amp} × rms) in {}", out.display());
    Ok(())
}
