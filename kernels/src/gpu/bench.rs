//! Kernel bandwidth measurement with the data resident on the GPU (used by
//! `examples/gpu_bench.rs`): random f32 are uploaded once, then quantize (f32 → blocks) and
//! dequantize (blocks → f32) dispatches are timed, with GPU timestamps when the adapter has
//! them, else the wall time of submit + wait; the best of `reps` counts.

use super::context::{find, GpuContext, Op};
use super::GpuError;
use crate::GgmlType;
use std::time::Instant;

/// One measured kernel.
#[derive(Debug, Clone)]
pub struct BenchResult {
    pub ty: GgmlType,
    pub op: Op,
    pub elements: usize,
    /// f32 bytes read or written plus block bytes written or read.
    pub bytes_moved: u64,
    /// Best kernel time over the repetitions, seconds.
    pub secs: f64,
    /// "timestamp" (GPU timestamp queries around the pass) or "wall" (submit + wait).
    pub timer: &'static str,
}

impl BenchResult {
    /// Bytes moved per second, in GB/s (10⁹).
    pub fn gbps(&self) -> f64 {
        self.bytes_moved as f64 / self.secs / 1e9
    }
}

/// Measures quantize then dequantize of `ty` over `elements` floats (rounded down to whole
/// block groups) resident on the GPU, best of `reps` each. `fill` gives the input values.
pub fn bench_codec(
    ctx: &GpuContext,
    ty: GgmlType,
    elements: usize,
    reps: usize,
    fill: &mut dyn FnMut(&mut [f32]),
) -> Result<[BenchResult; 2], GpuError> {
    let c = find(ty, "benchmark")?;
    let (_, device, queue) = ctx.raw();
    let per_slice = ctx.groups_per_slice(c)?;
    let n_groups = (elements / c.group_elems()).max(1);
    let elements = n_groups * c.group_elems();
    let mut slices = Vec::new();
    let mut g0 = 0;
    while g0 < n_groups {
        let g = per_slice.min(n_groups - g0);
        let f32_buf = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("bench f32"),
            size: (g * c.group_elems() * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let blk_buf = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("bench blocks"),
            size: (g * c.group_bytes()) as u64,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let mut host = vec![0f32; g * c.group_elems()];
        fill(&mut host);
        queue.write_buffer(&f32_buf, 0, bytemuck::cast_slice(&host));
        slices.push((g, f32_buf, blk_buf, ctx.params(g)));
        g0 += g;
    }
    ctx.wait()?;
    let timestamps = device.features().contains(wgpu::Features::TIMESTAMP_QUERY);
    let bytes_moved = (elements * 4 + elements / ty.block_size() * ty.type_size()) as u64;
    let mut results = Vec::new();
    for op in [Op::Quantize, Op::Dequantize] {
        let pipeline = ctx.pipeline(ty, op)?;
        let binds: Vec<_> = slices
            .iter()
            .map(|(_, f, b, p)| match op {
                Op::Quantize => ctx.bind(&pipeline, op, p, f, b),
                Op::Dequantize => ctx.bind(&pipeline, op, p, b, f),
            })
            .collect();
        let mut best = f64::INFINITY;
        // One warm-up run (shader compilation, first touch), then `reps` timed runs.
        for rep in 0..=reps.max(1) {
            let query = timestamps.then(|| TimestampQuery::new(device));
            let mut enc = device.create_command_encoder(&Default::default());
            {
                let tw = query.as_ref().map(|q| wgpu::ComputePassTimestampWrites {
                    query_set: &q.set,
                    beginning_of_pass_write_index: Some(0),
                    end_of_pass_write_index: Some(1),
                });
                let mut pass =
                    enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: tw });
                pass.set_pipeline(&pipeline);
                for ((g, ..), bind) in slices.iter().zip(&binds) {
                    pass.set_bind_group(0, bind, &[]);
                    let (x, y) = ctx.workgroups(*g);
                    pass.dispatch_workgroups(x, y, 1);
                }
            }
            if let Some(q) = &query {
                q.resolve(&mut enc);
            }
            let t = Instant::now();
            queue.submit([enc.finish()]);
            ctx.wait()?;
            let wall = t.elapsed().as_secs_f64();
            let secs = match &query {
                Some(q) => q.read(ctx)?.unwrap_or(wall),
                None => wall,
            };
            if rep > 0 {
                best = best.min(secs);
            }
        }
        let timer = if timestamps { "timestamp" } else { "wall" };
        results.push(BenchResult { ty, op, elements, bytes_moved, secs: best, timer });
    }
    let dq = results.pop().expect("two results");
    let q = results.pop().expect("two results");
    Ok([q, dq])
}

/// Two GPU timestamps around a compute pass, resolved into a mappable buffer.
struct TimestampQuery {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    read: wgpu::Buffer,
}

impl TimestampQuery {
    fn new(device: &wgpu::Device) -> Self {
        let set = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("bench timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: 2,
        });
        let buf = |usage| {
            device.create_buffer(&wgpu::BufferDescriptor { label: None, size: 16, usage, mapped_at_creation: false })
        };
        let resolve = buf(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC);
        let read = buf(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
        TimestampQuery { set, resolve, read }
    }

    fn resolve(&self, enc: &mut wgpu::CommandEncoder) {
        enc.resolve_query_set(&self.set, 0..2, &self.resolve, 0);
        enc.copy_buffer_to_buffer(&self.resolve, 0, &self.read, 0, 16);
    }

    /// Seconds between the two timestamps, or None if the driver returned nonsense.
    fn read(&self, ctx: &GpuContext) -> Result<Option<f64>, GpuError> {
        let mut raw = [0u8; 16];
        ctx.read(&self.read, 16, &mut raw)?;
        let t0 = u64::from_le_bytes(raw[..8].try_into().expect("8 bytes"));
        let t1 = u64::from_le_bytes(raw[8..].try_into().expect("8 bytes"));
        let period_ns = f64::from(ctx.raw().2.get_timestamp_period());
        Ok((t1 > t0).then(|| (t1 - t0) as f64 * period_ns * 1e-9))
    }
}
