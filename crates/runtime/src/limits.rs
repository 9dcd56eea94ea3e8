//! Per-store resource limits: the memory cap of a plugin instance.

use wasmtime::ResourceLimiter;

/// Caps every linear memory and table of one store, and remembers whether a
/// growth was refused so a resulting trap can be reported as "memory limit".
pub struct PluginLimiter {
    max_memory_bytes: usize,
    max_table_elements: usize,
    pub memory_exceeded: bool,
    /// Linear memory the instance holds now, all memories together.
    pub memory_bytes: usize,
}

impl PluginLimiter {
    pub fn new(max_memory_bytes: usize) -> Self {
        Self {
            max_memory_bytes,
            max_table_elements: 100_000,
            memory_exceeded: false,
            memory_bytes: 0,
        }
    }
}

impl ResourceLimiter for PluginLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.max_memory_bytes;
        self.memory_exceeded |= !allowed;
        if allowed {
            self.memory_bytes += desired - current;
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.max_table_elements)
    }
}
