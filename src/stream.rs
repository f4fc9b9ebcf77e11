//! Streaming tensors to a writer with one tensor of look-ahead: a producer thread computes
//! (or faults in) tensor i+1 while the writer writes tensor i, so CPU work and I/O overlap
//! on two cores. A rendezvous channel bounds memory to two tensors in flight — the reason
//! the conversion benchmark's RSS target is "2 × the largest tensor + overhead".

use std::borrow::Cow;
use std::sync::mpsc;

use llmtool_formats::FormatError;

/// Page size used to pre-fault borrowed (memory-mapped) bytes on the producer thread.
const PAGE: usize = 4096;

/// Runs `consume` with a `next(i)` function that returns the bytes of item `i`, produced in
/// order `0..n` by `produce` on a second thread. `next` must be called with `0, 1, 2, …`;
/// `release(i)` is called once item `i` has been consumed (when `i + 1` is asked for).
pub fn with_lookahead<'a, R>(
    n: usize,
    produce: impl Fn(usize) -> Result<Cow<'a, [u8]>, FormatError> + Send + Sync,
    release: impl Fn(usize),
    consume: impl FnOnce(&mut dyn FnMut(usize) -> Result<Cow<'a, [u8]>, FormatError>) -> R,
) -> R {
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<(usize, Result<Cow<'a, [u8]>, FormatError>)>(0);
        let produce = &produce;
        scope.spawn(move || {
            for i in 0..n {
                let item = produce(i);
                if let Ok(Cow::Borrowed(bytes)) = &item {
                    prefault(bytes);
                }
                let failed = item.is_err();
                if tx.send((i, item)).is_err() || failed {
                    return; // the consumer stopped early, or nothing after an error
                }
            }
        });
        let mut next = |i: usize| {
            if i > 0 {
                release(i - 1);
            }
            match rx.recv() {
                Ok((j, item)) if j == i => item,
                Ok((j, _)) => Err(FormatError::Other(format!("internal: asked for tensor {i}, produced {j}"))),
                Err(_) => Err(FormatError::Other(format!("internal: no tensor {i} was produced"))),
            }
        };
        let result = consume(&mut next);
        drop(rx); // unblocks a producer still waiting to hand over an item
        result
    })
}

/// Touches one byte per page so that a memory-mapped slice is resident before it is written.
fn prefault(bytes: &[u8]) {
    let mut acc = 0u8;
    for i in (0..bytes.len()).step_by(PAGE) {
        acc ^= bytes[i];
    }
    std::hint::black_box(acc);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn items_arrive_in_order_and_are_released_after_use() {
        let data: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 10_000]).collect();
        let released = Mutex::new(Vec::new());
        let got = with_lookahead(
            data.len(),
            |i| Ok(Cow::Borrowed(&data[i][..])),
            |i| released.lock().unwrap().push(i),
            |next| (0..5).map(|i| next(i).unwrap()[0]).collect::<Vec<u8>>(),
        );
        assert_eq!(got, [0, 1, 2, 3, 4]);
        assert_eq!(*released.lock().unwrap(), [0, 1, 2, 3]);
    }

    #[test]
    fn an_error_is_passed_on_and_early_stop_does_not_hang() {
        let r = with_lookahead(
            4,
            |i| if i == 1 { Err(FormatError::Other("boom".into())) } else { Ok(Cow::Owned(vec![i as u8])) },
            |_| {},
            |next| {
                assert!(next(0).is_ok());
                next(1).unwrap_err().to_string()
            },
        );
        assert_eq!(r, "boom");
        // The consumer stops after one item while the producer is blocked on the next.
        let first = with_lookahead(100, |i| Ok(Cow::Owned(vec![i as u8])), |_| {}, |next| next(0).unwrap()[0]);
        assert_eq!(first, 0);
    }
}
