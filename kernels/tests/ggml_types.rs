//! Our GGML type table against gguf-py's (llama.cpp's Python package).

mod common;

use llmtool_kernels::GgmlType;

#[test]
fn type_ids_names_and_block_geometry_match_gguf_py() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("types.txt");
    common::judge("ggml_types.py", &[out.to_str().unwrap()]);
    let text = std::fs::read_to_string(&out).unwrap();
    let mut seen = 0;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (id, name, block, size): (u32, &str, usize, usize) =
            (f[0].parse().unwrap(), f[1], f[2].parse().unwrap(), f[3].parse().unwrap());
        let ty = GgmlType::from_id(id).unwrap_or_else(|| panic!("gguf-py type {id} {name} unknown to us"));
        assert_eq!(ty.name(), name, "id {id}");
        assert_eq!(ty.block_size(), block, "{name}");
        if ty == GgmlType::Q8_1 {
            // gguf-py keeps the old f32 layout (40 bytes); ggml's block_q8_1 is two f16 + 32
            // bytes = 36, which is what ggml itself reads and writes.
            assert_eq!((size, ty.type_size()), (40, 36));
        } else {
            assert_eq!(ty.type_size(), size, "{name}");
        }
        seen += 1;
    }
    assert_eq!(seen, GgmlType::ALL.len(), "types known to us but not to gguf-py");
}
