//! The GPU context: one adapter, device and queue, with the codec pipelines created on first
//! use and cached. Inputs longer than one storage binding allows are processed in slices of
//! whole block groups, one dispatch each, reusing the same buffers.

use super::codec::{codec, supported_types, Codec};
use super::special;
use super::GpuError;
use crate::GgmlType;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wgpu::util::DeviceExt;

/// Threads per workgroup in every codec shader (`@workgroup_size(64)`).
const WORKGROUP: u64 = 64;
/// Default cap on one slice's largest buffer (the f32 side): 128 MiB, the usual storage
/// binding limit; the device's own limits lower it further when needed.
pub const DEFAULT_SLICE_BYTES: u64 = 128 << 20;
/// How long one wait for the device may take before it counts as lost.
const POLL_TIMEOUT: Duration = Duration::from_secs(600);

/// Which direction a codec runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Quantize,
    Dequantize,
}

impl Op {
    fn entry(self) -> &'static str {
        match self {
            Op::Quantize => "quantize",
            Op::Dequantize => "dequantize",
        }
    }
}

/// Options of [`GpuContext::with_options`].
#[derive(Debug, Clone, Default)]
pub struct GpuOptions {
    /// Cap on the bytes of one slice's largest buffer (default [`DEFAULT_SLICE_BYTES`]);
    /// tests lower it to exercise slicing on small inputs.
    pub max_slice_bytes: Option<u64>,
}

/// Adapter, device, queue and the cached codec pipelines.
pub struct GpuContext {
    adapter: wgpu::Adapter,
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    slice_cap: u64,
    pipelines: Mutex<HashMap<(GgmlType, Op), Arc<wgpu::ComputePipeline>>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext").field("adapter", &self.info.name).field("slice_cap", &self.slice_cap).finish()
    }
}

/// Drives a wgpu future to completion on this thread.
pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    pollster::block_on(f)
}

impl GpuContext {
    /// Opens the first high-performance Vulkan adapter (see [`GpuContext::with_options`]).
    pub fn new() -> Result<Self, GpuError> {
        Self::with_options(GpuOptions::default())
    }

    /// Opens the first high-performance Vulkan adapter with the adapter's own limits (so
    /// large GPUs get large bindings), or [`GpuError::NoAdapter`].
    pub fn with_options(options: GpuOptions) -> Result<Self, GpuError> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = wgpu::Backends::VULKAN;
        let instance = wgpu::Instance::new(desc);
        let adapter = block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        }))
        .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        let mut features = wgpu::Features::empty();
        if adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            features |= wgpu::Features::TIMESTAMP_QUERY;
        }
        let (device, queue) = block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("llmtool"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| GpuError::RequestDevice { adapter: info.name.clone(), message: e.to_string() })?;
        let binding = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        let cap = options.max_slice_bytes.unwrap_or(DEFAULT_SLICE_BYTES);
        Ok(GpuContext { adapter, device, queue, info, slice_cap: binding.min(cap), pipelines: Mutex::default() })
    }

    /// The adapter's name, backend, device type and driver.
    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// One line naming the adapter: `name (backend, device type, driver)`.
    pub fn describe(&self) -> String {
        let i = &self.info;
        format!("{} ({:?}, {:?}, {} {})", i.name, i.backend, i.device_type, i.driver, i.driver_info)
    }

    /// The wgpu adapter, device and queue (benchmarks drive them directly).
    pub fn raw(&self) -> (&wgpu::Adapter, &wgpu::Device, &wgpu::Queue) {
        (&self.adapter, &self.device, &self.queue)
    }

    /// Largest bytes of one slice's biggest buffer.
    pub fn slice_cap(&self) -> u64 {
        self.slice_cap
    }

    /// True when `ty` has GPU quantize and dequantize kernels.
    pub fn supports(ty: GgmlType) -> bool {
        codec(ty).is_some()
    }

    /// Quantizes `src` (a whole number of `ty` blocks) into GGUF block bytes, byte-identical
    /// to `quant::quantize_reference` (blocks listed by [`super::quantize_cpu_blocks`] are
    /// computed by that reference on the CPU).
    pub fn quantize(&self, ty: GgmlType, src: &[f32]) -> Result<Vec<u8>, GpuError> {
        let c = find(ty, "quantize")?;
        if !src.len().is_multiple_of(ty.block_size()) {
            return Err(GpuError::BadLength {
                ty,
                op: "quantize",
                len: src.len(),
                unit: "elements",
                multiple: ty.block_size(),
            });
        }
        let n_blocks = src.len() / ty.block_size();
        // Blocks with values the GPU may not honour (non-finite, extreme magnitudes) are
        // computed by the CPU reference and patched in (special.rs).
        let cpu_blocks = special::quantize_cpu_blocks(ty, src);
        let mut out = self.run(c, Op::Quantize, bytemuck::cast_slice(src), n_blocks)?;
        special::patch_quantize(ty, src, &cpu_blocks, &mut out)?;
        Ok(out)
    }

    /// Dequantizes GGUF block bytes of `ty` to f32, bit-identical to
    /// `dequant::dequantize_reference`.
    pub fn dequantize(&self, ty: GgmlType, src: &[u8]) -> Result<Vec<f32>, GpuError> {
        let c = find(ty, "dequantize")?;
        if !src.len().is_multiple_of(ty.type_size()) {
            return Err(GpuError::BadLength {
                ty,
                op: "dequantize",
                len: src.len(),
                unit: "bytes",
                multiple: ty.type_size(),
            });
        }
        let n_blocks = src.len() / ty.type_size();
        // Blocks with infinite or NaN f16 scales are decoded by the CPU reference (special.rs).
        let cpu_blocks = special::dequantize_cpu_blocks(ty, src);
        let bytes = self.run(c, Op::Dequantize, src, n_blocks)?;
        let mut out: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        special::patch_dequantize(ty, src, &cpu_blocks, &mut out)?;
        Ok(out)
    }

    /// The pipeline of (`ty`, `op`), created on first use.
    pub(crate) fn pipeline(&self, ty: GgmlType, op: Op) -> Result<Arc<wgpu::ComputePipeline>, GpuError> {
        let c = find(ty, op.entry())?;
        let mut cache = self.pipelines.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = cache.get(&(ty, op)) {
            return Ok(p.clone());
        }
        let label = format!("{}_{}", ty.name(), op.entry());
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(&label),
            source: wgpu::ShaderSource::Wgsl(c.source().into()),
        });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: None,
            module: &module,
            entry_point: Some(op.entry()),
            compilation_options: Default::default(),
            cache: None,
        });
        if let Some(e) = block_on(scope.pop()) {
            return Err(GpuError::Pipeline { label, message: e.to_string() });
        }
        let p = Arc::new(pipeline);
        cache.insert((ty, op), p.clone());
        Ok(p)
    }

    /// Groups per slice for codec `c`: the f32 side of a group is its biggest buffer.
    pub(crate) fn groups_per_slice(&self, c: &Codec) -> Result<usize, GpuError> {
        let group_f32 = (c.group_elems() * 4) as u64;
        let groups = self.slice_cap / group_f32;
        if groups == 0 {
            return Err(GpuError::LimitTooSmall { ty: c.ty, needed: group_f32, limit: self.slice_cap });
        }
        Ok(usize::try_from(groups).unwrap_or(usize::MAX))
    }

    /// Workgroup counts (x, y) covering `n_groups` invocations within the per-dimension limit.
    pub(crate) fn workgroups(&self, n_groups: usize) -> (u32, u32) {
        let max_x = u64::from(self.device.limits().max_compute_workgroups_per_dimension.max(1));
        let wgs = (n_groups as u64).div_ceil(WORKGROUP).max(1);
        let x = wgs.min(max_x);
        (x as u32, wgs.div_ceil(x) as u32)
    }

    /// A uniform with the codec parameters (`n_groups`, `zero` = 0).
    pub(crate) fn params(&self, n_groups: usize) -> wgpu::Buffer {
        let words: [u32; 4] = [n_groups as u32, 0, 0, 0];
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("codec params"),
            contents: bytemuck::cast_slice(&words),
            usage: wgpu::BufferUsages::UNIFORM,
        })
    }

    /// A bind group for one dispatch of `op`.
    pub(crate) fn bind(
        &self,
        pipeline: &wgpu::ComputePipeline,
        op: Op,
        params: &wgpu::Buffer,
        input: &wgpu::Buffer,
        output: &wgpu::Buffer,
    ) -> wgpu::BindGroup {
        let (bi, bo) = match op {
            Op::Quantize => (1, 2),
            Op::Dequantize => (3, 4),
        };
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: params.as_entire_binding() },
                wgpu::BindGroupEntry { binding: bi, resource: input.as_entire_binding() },
                wgpu::BindGroupEntry { binding: bo, resource: output.as_entire_binding() },
            ],
        })
    }

    /// Waits for all submitted work.
    pub(crate) fn wait(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::Wait { submission_index: None, timeout: Some(POLL_TIMEOUT) })
            .map(|_| ())
            .map_err(|e| GpuError::Poll(e.to_string()))
    }

    /// Runs codec `c` in direction `op` over `n_blocks` blocks of `input` (f32 bytes or
    /// block bytes) and returns the output bytes (exactly `n_blocks` blocks' worth).
    fn run(&self, c: &Codec, op: Op, input: &[u8], n_blocks: usize) -> Result<Vec<u8>, GpuError> {
        let (in_group, out_group) = match op {
            Op::Quantize => (c.group_elems() * 4, c.group_bytes()),
            Op::Dequantize => (c.group_bytes(), c.group_elems() * 4),
        };
        let out_block = out_group / c.group_blocks;
        let out_len = n_blocks * out_block;
        let mut out = vec![0u8; out_len];
        if n_blocks == 0 {
            return Ok(out);
        }
        let pipeline = self.pipeline(c.ty, op)?;
        let n_groups = n_blocks.div_ceil(c.group_blocks);
        let per_slice = self.groups_per_slice(c)?.min(n_groups);
        let usage_in = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
        let usage_out = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
        let buf = |label, size: usize, usage| {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: size as u64,
                usage,
                mapped_at_creation: false,
            })
        };
        let in_buf = buf("codec input", per_slice * in_group, usage_in);
        let out_buf = buf("codec output", per_slice * out_group, usage_out);
        let read_buf =
            buf("codec read-back", per_slice * out_group, wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
        let mut g0 = 0;
        while g0 < n_groups {
            let g = per_slice.min(n_groups - g0);
            let in_start = g0 * in_group;
            let in_end = ((g0 + g) * in_group).min(input.len());
            let data = &input[in_start..in_end];
            // The last group may be partial: pad it (its extra blocks' output is dropped).
            let whole = data.len() / in_group * in_group;
            self.queue.write_buffer(&in_buf, 0, &data[..whole]);
            if whole < data.len() {
                let mut tail = data[whole..].to_vec();
                tail.resize(in_group, 0);
                self.queue.write_buffer(&in_buf, whole as u64, &tail);
            }
            let params = self.params(g);
            let bind = self.bind(&pipeline, op, &params, &in_buf, &out_buf);
            let mut enc = self.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &bind, &[]);
                let (x, y) = self.workgroups(g);
                pass.dispatch_workgroups(x, y, 1);
            }
            let out_bytes = (g * out_group) as u64;
            enc.copy_buffer_to_buffer(&out_buf, 0, &read_buf, 0, out_bytes);
            self.queue.submit([enc.finish()]);
            let o_start = g0 * c.group_blocks * out_block;
            let o_end = ((g0 + g) * c.group_blocks).min(n_blocks) * out_block;
            self.read(&read_buf, out_bytes, &mut out[o_start..o_end])?;
            g0 += g;
        }
        Ok(out)
    }

    /// Runs one probe of the shaders' exact-arithmetic helpers (`shaders/probe.wgsl`) over
    /// `input` and returns `n_out` result words; for the tests only (entries `probe_div`:
    /// pairs (a, b) -> bits of a / b; `probe_sqrt`; `probe_to_f16`: f16 bits; `probe_from_f16`:
    /// f16 bits given as f32 values -> f32 bits; `probe_round`: (nearest_int, roundf) per value).
    #[doc(hidden)]
    pub fn probe(&self, entry: &str, input: &[f32], n_out: usize) -> Result<Vec<u32>, GpuError> {
        let label = format!("probe {entry}");
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(&label),
            source: wgpu::ShaderSource::Wgsl(super::codec::probe_source().into()),
        });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        });
        if let Some(e) = block_on(scope.pop()) {
            return Err(GpuError::Pipeline { label, message: e.to_string() });
        }
        let mut out = vec![0u8; n_out * 4];
        if n_out == 0 {
            return Ok(vec![]);
        }
        let in_bytes: &[u8] = bytemuck::cast_slice(input);
        let input_buf = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("probe input"),
            contents: if in_bytes.is_empty() { &[0; 4] } else { in_bytes },
            usage: wgpu::BufferUsages::STORAGE,
        });
        let size = (n_out * 4) as u64;
        let out_buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("probe output"),
            size,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let read_buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("probe read-back"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let params = self.params(n_out);
        let bind = self.bind(&pipeline, Op::Quantize, &params, &input_buf, &out_buf);
        let mut enc = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind, &[]);
            let (x, y) = self.workgroups(n_out);
            pass.dispatch_workgroups(x, y, 1);
        }
        enc.copy_buffer_to_buffer(&out_buf, 0, &read_buf, 0, size);
        self.queue.submit([enc.finish()]);
        self.read(&read_buf, size, &mut out)?;
        Ok(out.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }

    /// Maps the first `bytes` of `buf`, copies `dst.len()` of them out, unmaps.
    pub(crate) fn read(&self, buf: &wgpu::Buffer, bytes: u64, dst: &mut [u8]) -> Result<(), GpuError> {
        let (tx, rx) = std::sync::mpsc::channel();
        buf.map_async(wgpu::MapMode::Read, 0..bytes, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        let mapped = rx.recv().map_err(|e| GpuError::BufferMap { bytes, message: e.to_string() })?;
        mapped.map_err(|e| GpuError::BufferMap { bytes, message: e.to_string() })?;
        {
            let view =
                buf.get_mapped_range(0..bytes).map_err(|e| GpuError::BufferMap { bytes, message: e.to_string() })?;
            dst.copy_from_slice(&view[..dst.len()]);
        }
        buf.unmap();
        Ok(())
    }
}

pub(crate) fn find(ty: GgmlType, op: &'static str) -> Result<&'static Codec, GpuError> {
    codec(ty).ok_or_else(|| GpuError::Unsupported {
        ty,
        op,
        supported: supported_types().iter().map(|t| t.name()).collect::<Vec<_>>().join(", "),
    })
}
