//! Adapter enumeration and choice, the device, and error capture.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::kernels::Kernels;
use super::GpuError;

/// Workgroup memory the kernels declare (`shaders/*.wgsl`): 16320 bytes, inside the 16352 bytes
/// that even downlevel adapters guarantee.
pub(crate) const WORKGROUP_STORAGE: u32 = 16_320;
/// Invocations per workgroup the kernels use.
const INVOCATIONS: u32 = 64;
/// Storage buffers one kernel binds.
const STORAGE_BUFFERS: u32 = 4;

/// One adapter, as the `adapters` listing and `-v` show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterInfo {
    pub name: String,
    /// `Vulkan`, `Metal`, `Dx12`, `Gl`.
    pub backend: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu` or `Other`.
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub vendor: u32,
    pub device: u32,
    /// A software rasterizer (lavapipe, llvmpipe, WARP): `auto` never takes it unasked.
    pub software: bool,
    /// Why the backend cannot use it, if it cannot (no compute shaders, too small limits).
    pub unusable: Option<String>,
}

impl AdapterInfo {
    fn new(adapter: &wgpu::Adapter) -> Self {
        let i = adapter.get_info();
        let mut info = AdapterInfo {
            name: i.name.clone(),
            backend: format!("{:?}", i.backend),
            device_type: format!("{:?}", i.device_type),
            driver: i.driver.clone(),
            driver_info: i.driver_info.clone(),
            vendor: i.vendor,
            device: i.device,
            software: i.device_type == wgpu::DeviceType::Cpu,
            unusable: None,
        };
        info.unusable = unusable(adapter);
        info
    }

    /// One line: name, backend, device type and driver.
    pub fn describe(&self) -> String {
        let driver = match (self.driver.is_empty(), self.driver_info.is_empty()) {
            (true, true) => String::new(),
            (false, true) => format!(", driver {}", self.driver),
            (true, false) => format!(", driver {}", self.driver_info),
            (false, false) => format!(", driver {} {}", self.driver, self.driver_info),
        };
        format!(
            "{} ({}, {}{driver})",
            self.name, self.backend, self.device_type
        )
    }

    /// Whether `--adapter` `wanted` names this adapter (case-insensitive substring).
    pub fn matches(&self, wanted: &str) -> bool {
        self.name.to_lowercase().contains(&wanted.to_lowercase())
    }

    /// Preference order: hardware before software, native APIs before GL.
    fn rank(&self) -> (u8, u8) {
        let ty = match self.device_type.as_str() {
            "DiscreteGpu" => 0,
            "IntegratedGpu" => 1,
            "VirtualGpu" => 2,
            "Other" => 3,
            _ => 4,
        };
        let api = u8::from(self.backend == "Gl");
        (ty, api)
    }
}

/// Why an adapter cannot run the kernels, checked against its limits rather than assumed.
fn unusable(adapter: &wgpu::Adapter) -> Option<String> {
    let compute = adapter
        .get_downlevel_capabilities()
        .flags
        .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS);
    unusable_reason(compute, &adapter.limits())
}

/// [`unusable`] on plain values, so the check is testable without such an adapter.
pub(crate) fn unusable_reason(compute: bool, l: &wgpu::Limits) -> Option<String> {
    if !compute {
        return Some("no compute shaders".into());
    }
    if l.max_compute_workgroup_storage_size < WORKGROUP_STORAGE {
        return Some(format!(
            "{} bytes of workgroup memory, the kernels need {WORKGROUP_STORAGE}",
            l.max_compute_workgroup_storage_size
        ));
    }
    if l.max_compute_invocations_per_workgroup < INVOCATIONS {
        return Some(format!(
            "{} invocations per workgroup, the kernels need {INVOCATIONS}",
            l.max_compute_invocations_per_workgroup
        ));
    }
    if l.max_storage_buffers_per_shader_stage < STORAGE_BUFFERS {
        return Some(format!(
            "{} storage buffers per stage, the kernels need {STORAGE_BUFFERS}",
            l.max_storage_buffers_per_shader_stage
        ));
    }
    None
}

/// The instance: the native APIs (Vulkan, Metal, DX12) unless `WGPU_BACKEND` says otherwise
/// (GL is opt-in because headless GL drivers rarely run compute well).
fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::PRIMARY;
    wgpu::Instance::new(desc.with_env())
}

fn adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
}

/// Every adapter wgpu finds, best first, with the reason it is unusable where it is.
pub fn list_adapters() -> Vec<AdapterInfo> {
    let mut v: Vec<AdapterInfo> = adapters(&instance()).iter().map(AdapterInfo::new).collect();
    v.sort_by_key(AdapterInfo::rank);
    v
}

/// An open device with the pipelines of every kernel.
pub struct GpuContext {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) limits: wgpu::Limits,
    pub(crate) kernels: Kernels,
    info: AdapterInfo,
    /// Errors no error scope caught (wgpu's default handler would panic on them).
    uncaptured: Arc<Mutex<Vec<String>>>,
    lost: Arc<Mutex<Option<String>>>,
    /// Set after the first failure: later work goes straight to the fallback.
    failed: AtomicBool,
    /// Cap on one activation buffer of a tile, 0 for the default (see [`GpuContext::set_tile_budget`]).
    tile_budget: AtomicU64,
    /// How long one submission may take before it counts as a hang.
    pub(crate) timeout: Duration,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.info)
            .finish_non_exhaustive()
    }
}

impl GpuContext {
    /// Opens the best usable adapter; `wanted` restricts the choice to names containing it.
    /// Software adapters are taken only when `allow_software` or when `wanted` names them.
    pub fn open(wanted: Option<&str>, allow_software: bool) -> Result<Self, GpuError> {
        let instance = instance();
        let mut found: Vec<(AdapterInfo, wgpu::Adapter)> = adapters(&instance)
            .into_iter()
            .map(|a| (AdapterInfo::new(&a), a))
            .collect();
        found.sort_by_key(|(i, _)| i.rank());
        let mut rejected = Vec::new();
        let mut chosen = None;
        for (info, adapter) in found {
            let why = if let Some(w) = wanted.filter(|w| !info.matches(w)) {
                Some(format!("does not match {w:?}"))
            } else if let Some(u) = &info.unusable {
                Some(u.clone())
            } else if info.software && !allow_software && wanted.is_none() {
                Some("software adapter (ask for it with --backend gpu or --adapter)".into())
            } else {
                None
            };
            match why {
                Some(why) => rejected.push(format!("{}: {why}", info.describe())),
                None if chosen.is_none() => chosen = Some((info, adapter)),
                None => {}
            }
        }
        let Some((info, adapter)) = chosen else {
            return Err(GpuError::NoAdapter {
                wanted: wanted.map(str::to_owned),
                available: rejected,
            });
        };
        Self::with_adapter(info, adapter)
    }

    fn with_adapter(info: AdapterInfo, adapter: wgpu::Adapter) -> Result<Self, GpuError> {
        // Ask for everything the adapter offers: larger bindings mean fewer tiles.
        let limits = adapter.limits();
        let desc = wgpu::DeviceDescriptor {
            label: Some("tfci"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
            GpuError::RequestDevice {
                adapter: info.describe(),
                reason: e.to_string(),
            }
        })?;
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&uncaptured);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        let lost = Arc::new(Mutex::new(None));
        let sink = Arc::clone(&lost);
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut v) = sink.lock() {
                *v = Some(format!("{reason:?}: {message}"));
            }
        });
        let kernels = Kernels::new(&device)?;
        Ok(GpuContext {
            device,
            queue,
            limits,
            kernels,
            info,
            uncaptured,
            lost,
            failed: AtomicBool::new(false),
            tile_budget: AtomicU64::new(0),
            timeout: Duration::from_secs(600),
        })
    }

    /// The adapter the device runs on.
    pub fn info(&self) -> &AdapterInfo {
        &self.info
    }

    /// Destroys the device now, releasing its memory. Later work on it fails with a typed error
    /// (and a [`crate::Codec`] falls back to the CPU, saying so); the tests use it as device loss.
    pub fn destroy(&self) {
        self.device.destroy();
    }

    /// Caps one activation buffer (hence the tile size) of every net on this device at `bytes`;
    /// never above the adapter's binding limit. Smaller tiles bound GPU memory more tightly.
    pub fn set_tile_budget(&self, bytes: u64) {
        self.tile_budget.store(bytes.max(1), Ordering::Relaxed);
    }

    pub(crate) fn tile_budget(&self) -> Option<u64> {
        Some(self.tile_budget.load(Ordering::Relaxed)).filter(|&b| b > 0)
    }

    /// Whether an earlier failure disabled this device.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    pub(crate) fn mark_failed(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }

    /// The largest buffer one binding may hold.
    pub(crate) fn max_binding(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// Fails if the device was lost or an error escaped the error scopes.
    pub(crate) fn check(&self) -> Result<(), GpuError> {
        if let Some(m) = self.lost.lock().ok().and_then(|l| l.clone()) {
            return Err(GpuError::DeviceLost(m));
        }
        if let Ok(mut v) = self.uncaptured.lock() {
            if !v.is_empty() {
                let all = v.join("; ");
                v.clear();
                return Err(GpuError::Validation(all));
            }
        }
        Ok(())
    }

    /// Runs `f` inside validation and out-of-memory error scopes.
    pub(crate) fn scoped<T>(&self, f: impl FnOnce() -> Result<T, GpuError>) -> Result<T, GpuError> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let val = pollster::block_on(val.pop());
        let oom = pollster::block_on(oom.pop());
        if let Some(e) = val {
            return Err(GpuError::Validation(e.to_string()));
        }
        if let Some(e) = oom {
            return Err(GpuError::OutOfMemory(e.to_string()));
        }
        let out = out?;
        self.check()?;
        Ok(out)
    }
}
