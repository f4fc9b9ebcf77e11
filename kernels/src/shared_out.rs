//! An output buffer's pointer shared by parallel tasks that each write a disjoint part of it
//! (cells of a matmul's rows, (row, head) slices of attention): rayon closures need `Sync`,
//! which a raw pointer is not. [`RowsMut`]: the same for a buffer handed out row by row.

#[derive(Clone, Copy)]
pub(crate) struct SharedOut(*mut f32);

// SAFETY: users hand each task a part of the buffer no other task touches, and the buffer
// outlives the parallel section (see each use).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    pub(crate) fn new(out: &mut [f32]) -> Self {
        SharedOut(out.as_mut_ptr())
    }

    /// The pointer (a method, not the field, so that closures capture the whole `Sync`
    /// wrapper).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

/// Rows of one buffer handed to parallel tasks, one row each.
pub(crate) struct RowsMut<T> {
    ptr: *mut T,
    len: usize,
    row_len: usize,
}
// SAFETY: tasks take disjoint rows (see `row`).
unsafe impl<T: Send> Send for RowsMut<T> {}
unsafe impl<T: Send> Sync for RowsMut<T> {}

impl<T> RowsMut<T> {
    pub(crate) fn new(v: &mut [T], row_len: usize) -> Self {
        RowsMut { ptr: v.as_mut_ptr(), len: v.len(), row_len }
    }

    /// Row `t`.
    ///
    /// # Safety
    /// No other live reference to row `t`; the buffer outlives the use.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn row(&self, t: usize) -> &mut [T] {
        assert!((t + 1) * self.row_len <= self.len, "row {t} of a buffer of {} rows", self.len / self.row_len.max(1));
        std::slice::from_raw_parts_mut(self.ptr.add(t * self.row_len), self.row_len)
    }
}
