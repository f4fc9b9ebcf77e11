//! Keeping memory-mapped inputs out of the resident set while streaming.
//!
//! Reading a model through a memory map faults its pages into this process; a conversion
//! that touches every tensor once would end with the whole file resident. After a tensor
//! has been consumed, `MADV_DONTNEED` drops its pages from this mapping (they stay in the
//! page cache, and a later access simply faults them in again from the unchanged file), so
//! peak RSS stays near the largest tensor instead of the file size.

use memmap2::{Mmap, UncheckedAdvice};

/// Drops the pages of `map[start..start + len]` from the resident set. Best effort: a
/// failure only means the pages stay resident.
pub(crate) fn release_range(map: &Mmap, start: usize, len: usize) {
    if len == 0 || start.checked_add(len).is_none_or(|end| end > map.len()) {
        return;
    }
    // SAFETY: the map is a read-only shared mapping of a file we never write; after
    // MADV_DONTNEED its pages are re-read from that file on access, so every slice that
    // still borrows from the map sees the same bytes.
    let _ = unsafe { map.unchecked_advise_range(UncheckedAdvice::DontNeed, start, len) };
}
