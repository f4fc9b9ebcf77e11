//! torch's CPU `sort`/`argsort` order, ties included: torch 2.x sorts a (value, index) pair
//! array with `std::sort` (aten `SortingKernel.cpp`, comparator `KeyValueCompAsc`/`Desc`), an
//! unstable introsort whose order among equal values is a function of the input alone. This is
//! libstdc++'s `std::sort` (`bits/stl_algo.h`: `__introsort_loop` with median-of-three
//! `__unguarded_partition_pivot`, `_S_threshold` 16, heap sort past depth 2·⌊log₂ n⌋, then
//! `__final_insertion_sort`; `bits/stl_heap.h` for the heap), written over our own arrays.
//! Checked against torch 2.15 `torch.sort` on tie-heavy inputs (`fixtures/merge/mergekit_runs`).

/// Indices of `keys` in the order torch's `sort(keys, descending)` gives (NaN: last
/// ascending, first descending, as torch's comparators).
pub fn argsort(keys: &[f32], descending: bool) -> Vec<usize> {
    let mut a: Vec<(f32, usize)> = keys.iter().copied().zip(0..).collect();
    let less = |x: &(f32, usize), y: &(f32, usize)| -> bool {
        let (p, q) = (x.0, y.0);
        if descending {
            (p.is_nan() && !q.is_nan()) || p > q
        } else {
            (!p.is_nan() && q.is_nan()) || p < q
        }
    };
    std_sort(&mut a, &less);
    a.into_iter().map(|(_, i)| i).collect()
}

const THRESHOLD: usize = 16;

fn std_sort<T: Copy>(a: &mut [T], less: &impl Fn(&T, &T) -> bool) {
    let n = a.len();
    if n == 0 {
        return;
    }
    introsort_loop(a, 0, n, 2 * n.ilog2() as usize, less);
    if n > THRESHOLD {
        insertion_sort(a, 0, THRESHOLD, less);
        for i in THRESHOLD..n {
            unguarded_linear_insert(a, i, less);
        }
    } else {
        insertion_sort(a, 0, n, less);
    }
}

fn introsort_loop<T: Copy>(
    a: &mut [T],
    first: usize,
    mut last: usize,
    mut depth: usize,
    less: &impl Fn(&T, &T) -> bool,
) {
    while last - first > THRESHOLD {
        if depth == 0 {
            heap_sort(&mut a[first..last], less);
            return;
        }
        depth -= 1;
        let mid = first + (last - first) / 2;
        move_median_to_first(a, first, first + 1, mid, last - 1, less);
        let cut = unguarded_partition(a, first + 1, last, first, less);
        introsort_loop(a, cut, last, depth, less);
        last = cut;
    }
}

fn move_median_to_first<T: Copy>(
    a: &mut [T],
    result: usize,
    x: usize,
    y: usize,
    z: usize,
    less: &impl Fn(&T, &T) -> bool,
) {
    let m = if less(&a[x], &a[y]) {
        if less(&a[y], &a[z]) {
            y
        } else if less(&a[x], &a[z]) {
            z
        } else {
            x
        }
    } else if less(&a[x], &a[z]) {
        x
    } else if less(&a[y], &a[z]) {
        z
    } else {
        y
    };
    a.swap(result, m);
}

fn unguarded_partition<T: Copy>(
    a: &mut [T],
    mut first: usize,
    mut last: usize,
    pivot: usize,
    less: &impl Fn(&T, &T) -> bool,
) -> usize {
    loop {
        while less(&a[first], &a[pivot]) {
            first += 1;
        }
        last -= 1;
        while less(&a[pivot], &a[last]) {
            last -= 1;
        }
        if first >= last {
            return first;
        }
        a.swap(first, last);
        first += 1;
    }
}

fn insertion_sort<T: Copy>(a: &mut [T], first: usize, last: usize, less: &impl Fn(&T, &T) -> bool) {
    if first == last {
        return;
    }
    for i in first + 1..last {
        if less(&a[i], &a[first]) {
            let v = a[i];
            a.copy_within(first..i, first + 1);
            a[first] = v;
        } else {
            unguarded_linear_insert(a, i, less);
        }
    }
}

fn unguarded_linear_insert<T: Copy>(a: &mut [T], mut last: usize, less: &impl Fn(&T, &T) -> bool) {
    let v = a[last];
    let mut next = last - 1;
    while less(&v, &a[next]) {
        a[last] = a[next];
        last = next;
        next -= 1;
    }
    a[last] = v;
}

/// `std::__partial_sort(first, last, last)`: `__make_heap` then `__sort_heap`.
fn heap_sort<T: Copy>(a: &mut [T], less: &impl Fn(&T, &T) -> bool) {
    let len = a.len();
    if len < 2 {
        return;
    }
    let mut parent = (len - 2) / 2;
    loop {
        let v = a[parent];
        adjust_heap(a, parent, len, v, less);
        if parent == 0 {
            break;
        }
        parent -= 1;
    }
    let mut last = len;
    while last > 1 {
        last -= 1;
        // __pop_heap(first, last, last): the top goes to `last`, the old value sifts in.
        let v = a[last];
        a[last] = a[0];
        adjust_heap(a, 0, last, v, less);
    }
}

fn adjust_heap<T: Copy>(a: &mut [T], mut hole: usize, len: usize, v: T, less: &impl Fn(&T, &T) -> bool) {
    let top = hole;
    let mut child = hole;
    while child < (len - 1) / 2 {
        child = 2 * (child + 1);
        if less(&a[child], &a[child - 1]) {
            child -= 1;
        }
        a[hole] = a[child];
        hole = child;
    }
    if len & 1 == 0 && child == (len - 2) / 2 {
        child = 2 * (child + 1);
        a[hole] = a[child - 1];
        hole = child - 1;
    }
    // __push_heap
    let mut parent = hole.wrapping_sub(1) / 2;
    while hole > top && less(&a[parent], &v) {
        a[hole] = a[parent];
        hole = parent;
        parent = hole.wrapping_sub(1) / 2;
    }
    a[hole] = v;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(keys: &[f32], order: &[usize], descending: bool) -> bool {
        order.windows(2).all(|w| if descending { keys[w[0]] >= keys[w[1]] } else { keys[w[0]] <= keys[w[1]] })
    }

    #[test]
    fn orders_and_permutes() {
        let mut s = 12345u64;
        for n in [0usize, 1, 2, 15, 16, 17, 40, 1000] {
            let keys: Vec<f32> = (0..n)
                .map(|_| {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((s >> 33) % 7) as f32
                })
                .collect();
            for desc in [false, true] {
                let o = argsort(&keys, desc);
                let mut seen = o.clone();
                seen.sort_unstable();
                assert_eq!(seen, (0..n).collect::<Vec<_>>());
                assert!(sorted(&keys, &o, desc));
            }
        }
    }

    /// torch 2.15 `torch.sort(w).indices` / `descending=True` for w = `torch.randint(0, 3, (40,))`
    /// with `torch.manual_seed(0)`: the order among ties is std::sort's.
    #[test]
    fn ties_as_torch() {
        let w = [
            2., 0., 2., 0., 1., 0., 1., 1., 1., 0., 2., 2., 0., 0., 1., 2., 0., 0., 2., 0., 2., 2., 2., 2., 2., 2., 1.,
            2., 0., 0., 1., 0., 2., 0., 1., 0., 1., 2., 2., 1.,
        ];
        let asc = [
            9, 19, 17, 16, 28, 13, 12, 29, 31, 33, 5, 35, 3, 1, 39, 30, 34, 26, 36, 4, 6, 7, 14, 8, 11, 0, 38, 37, 2,
            32, 10, 18, 27, 15, 25, 24, 23, 22, 21, 20,
        ];
        let desc = [
            10, 20, 21, 18, 22, 23, 15, 24, 25, 11, 27, 32, 37, 38, 2, 0, 39, 26, 30, 34, 36, 14, 4, 6, 8, 7, 1, 19, 3,
            5, 35, 33, 31, 29, 28, 9, 12, 13, 16, 17,
        ];
        assert_eq!(argsort(&w, false), asc);
        assert_eq!(argsort(&w, true), desc);
    }

    #[test]
    fn heap_sort_sorts() {
        let mut a: Vec<(f32, usize)> = (0..100).map(|i| (((i * 37) % 11) as f32, i)).collect();
        heap_sort(&mut a, &|x: &(f32, usize), y: &(f32, usize)| x.0 < y.0);
        assert!(a.windows(2).all(|w| w[0].0 <= w[1].0));
    }
}
