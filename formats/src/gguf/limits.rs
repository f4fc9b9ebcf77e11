//! Named caps on every count and length read from a GGUF file, and the format constants
//! they derive from.
//!
//! Every count taken from the file is checked twice before anything is allocated: against
//! one of these caps, and against the bytes that remain in the file (each item needs at
//! least `MIN_*_BYTES`). So a lying count can never make us allocate more than the file
//! holds. Sources: ggml `src/gguf.cpp` (`GGUF_MAX_STRING_LENGTH`, `GGUF_MAX_ARRAY_ELEMENTS`,
//! the tensor-info checks), `ggml.h` (`GGML_MAX_DIMS`, `GGML_MAX_NAME`).

/// `"GGUF"` as the first four bytes of the file.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";

/// magic (4) + version (u32) + n_tensors (u64) + n_kv (u64).
pub const FIXED_HEADER_BYTES: u64 = 24;

/// Oldest version we read. v1 used u32 counts and lengths (ggml dropped it as well).
pub const MIN_VERSION: u32 = 2;
/// Newest version defined (ggml `GGUF_VERSION`); v3 only added big-endian files, which we
/// do not support, so v2 and v3 little-endian files are laid out identically.
pub const MAX_VERSION: u32 = 3;

/// ggml `GGUF_MAX_STRING_LENGTH`: 1 GiB for any key, tensor name or string value.
pub const MAX_STRING_LEN: u64 = 1 << 30;

/// ggml `GGUF_MAX_ARRAY_ELEMENTS`: 2^30 elements in one metadata array.
pub const MAX_ARRAY_LEN: u64 = 1 << 30;

/// Nesting depth of arrays of arrays. ggml rejects nested arrays entirely; gguf-py writes
/// them. A top-level array is depth 1; 8 levels is far beyond any real file.
pub const MAX_ARRAY_DEPTH: usize = 8;

/// Largest `general.alignment` accepted (ggml checks only for a non-zero power of two). A
/// writer pads the header to the alignment, so a 61-byte file declaring 2^31 made its
/// write-back allocate 2 GiB (fuzz/artifacts/gguf_reader/oom-608fffb3…); real files use
/// 32, sometimes 64 or a page (4096).
pub const MAX_ALIGNMENT: u64 = 1 << 20;

/// Tensor count cap (the largest MoE checkpoints hold tens of thousands of tensors).
pub const MAX_TENSORS: u64 = 1 << 20;

/// Key-value pair count cap (real files hold a few dozen).
pub const MAX_KV: u64 = 1 << 20;

/// ggml `GGML_MAX_DIMS`.
pub const MAX_DIMS: usize = 4;

/// ggml `GGML_MAX_NAME` (64): gguf.cpp rejects names with `length >= GGML_MAX_NAME`, so a
/// tensor name holds at most 63 bytes (the 64th is ggml's NUL terminator).
pub const MAX_TENSOR_NAME_LEN: usize = 63;

/// Smallest possible key-value pair: key length (8) + 1 key byte + value type (4) + a u8.
pub const MIN_KV_BYTES: u64 = 8 + 1 + 4 + 1;

/// Smallest possible tensor info: name length (8) + n_dims (4) + type (4) + offset (8).
pub const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;

/// Key whose u32 value sets the data alignment (ggml `GGUF_KEY_GENERAL_ALIGNMENT`).
pub const ALIGNMENT_KEY: &str = "general.alignment";

/// ggml type ids that existed once and were removed, with their old names, so that the
/// error for such a file says what it is (ggml `ggml.h` comments).
pub const REMOVED_TYPE_IDS: &[(u32, &str)] = &[
    (4, "Q4_2"),
    (5, "Q4_3"),
    (31, "Q4_0_4_4"),
    (32, "Q4_0_4_8"),
    (33, "Q4_0_8_8"),
    (36, "IQ4_NL_4_4"),
    (37, "IQ4_NL_4_8"),
    (38, "IQ4_NL_8_8"),
];

/// Rounds `x` up to a multiple of `align` (a power of two), `None` on overflow
/// (ggml `GGML_PAD`).
pub fn pad_to(x: u64, align: u64) -> Option<u64> {
    debug_assert!(align.is_power_of_two());
    Some(x.checked_add(align - 1)? & !(align - 1))
}
