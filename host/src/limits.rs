//! Every bound the host puts on what a request or a function may use, with
//! safe defaults. A serverless host runs code and inputs it does not trust:
//! whatever one request does, the others keep being served.
//!
//! Where each limit is enforced:
//! - connections, header size, client timeout: [`crate::server`];
//! - body size, the waiting room and its wait: [`crate::app`];
//! - the per-request deadline, memory and tables of an instance:
//!   [`crate::runtime`];
//! - what a function may do with wasi-nn: [`crate::nn::wit`]; how large the
//!   inputs of one inference may be: [`crate::nn::bounds`].

use std::time::Duration;

use crate::nn::BoundDefaults;

const MIB: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once; further clients wait in the kernel's
    /// accept backlog.
    pub max_connections: usize,
    /// Bytes of a request's head (request line and headers); beyond it the
    /// answer is 431.
    pub max_header_bytes: usize,
    /// Bytes of a request body; beyond it the answer is 413. Bodies are read
    /// whole before an instance is taken, so a slow client never holds one.
    pub max_body_bytes: usize,
    /// Time a client has to send a request's head, and then its body (408).
    pub client_timeout: Duration,
    /// Time a function has to answer, counted from its instance's creation:
    /// a function still running then is stopped (epoch interruption) and the
    /// request answered 504.
    pub request_timeout: Duration,
    /// Instances that run at once; further requests wait their turn, in
    /// order. Functions are CPU-bound: more running instances than cores only
    /// share the cores, with more switching and cache misses.
    pub max_running: usize,
    /// Requests that may wait for a running slot; beyond it the answer is 503
    /// with `Retry-After`.
    pub max_waiting: usize,
    /// How long a request may wait for a running slot before it is answered
    /// 503 with `Retry-After`.
    pub max_wait: Duration,
    /// Instance slots in the pooling allocator (at least `max_running`: an
    /// instance lives exactly as long as its request runs).
    pub max_instances: u32,
    /// Linear memory of one instance; a function that grows past it sees its
    /// allocation fail (and usually traps).
    pub max_memory_bytes: usize,
    /// Elements of one table of an instance.
    pub max_table_elements: usize,
    /// Memory an instance slot keeps resident for the next instance, zeroed in
    /// place rather than returned to the kernel.
    pub keep_resident_bytes: usize,
    /// Host resources (streams, tensors, wasi-nn errors, ...) one instance may
    /// hold at once.
    pub max_resources: usize,
    /// Bytes of one tensor a function passes to a model.
    pub max_tensor_bytes: usize,
    /// Bytes of host memory one instance's wasi-nn objects may hold at once
    /// (tensors with their dimensions, the outputs of its computes, errors,
    /// contexts): they live in host memory, outside the instance's own
    /// limit, so a function that hoards them must not grow the host.
    pub max_tensor_bytes_per_instance: usize,
    /// wasi-nn execution contexts one instance may create.
    pub max_execution_contexts: usize,
    /// On SIGTERM/SIGINT, how long in-flight requests have to finish.
    pub shutdown_grace: Duration,
    /// The largest batch of a model whose `model.toml` sets none.
    pub max_batch: u64,
    /// Elements of one input of a model whose `model.toml` bounds neither
    /// them nor every dimension.
    pub max_input_elements: u64,
}

impl Default for Limits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            max_connections: 1024,
            max_header_bytes: 64 << 10,
            max_body_bytes: 16 * MIB,
            client_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            max_running: 2 * cores,
            max_waiting: 256,
            max_wait: Duration::from_secs(10),
            max_instances: 256,
            max_memory_bytes: 512 * MIB,
            max_table_elements: 20_000,
            keep_resident_bytes: 16 * MIB,
            max_resources: 10_000,
            max_tensor_bytes: 64 * MIB,
            max_tensor_bytes_per_instance: 256 * MIB,
            max_execution_contexts: 64,
            shutdown_grace: Duration::from_secs(10),
            max_batch: BoundDefaults::default().max_batch,
            max_input_elements: BoundDefaults::default().max_input_elements,
        }
    }
}

impl Limits {
    /// The server's input bounds, for models that set none of their own.
    pub fn input_bounds(&self) -> BoundDefaults {
        BoundDefaults {
            max_batch: self.max_batch,
            max_input_elements: self.max_input_elements,
        }
    }

    /// Checks that the limits fit together.
    pub fn check(&self) -> Result<(), String> {
        let positive = [
            ("max_connections", self.max_connections),
            ("max_running", self.max_running),
            ("max_body_bytes", self.max_body_bytes),
            ("max_memory_bytes", self.max_memory_bytes),
            ("max_resources", self.max_resources),
            ("max_tensor_bytes", self.max_tensor_bytes),
            ("max_execution_contexts", self.max_execution_contexts),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be at least 1"));
        }
        if self.max_batch == 0 || self.max_input_elements == 0 {
            return Err("max_batch and max_input_elements must be at least 1".into());
        }
        if self.max_running > self.max_instances as usize {
            return Err(format!(
                "max_running ({}) must not exceed max_instances ({})",
                self.max_running, self.max_instances
            ));
        }
        if self.max_tensor_bytes > self.max_tensor_bytes_per_instance {
            return Err(format!(
                "max_tensor_bytes ({}) must not exceed max_tensor_bytes_per_instance ({})",
                self.max_tensor_bytes, self.max_tensor_bytes_per_instance
            ));
        }
        if self.request_timeout.is_zero() || self.client_timeout.is_zero() {
            return Err("timeouts must be longer than zero".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_fit_together_and_misfits_are_named() {
        assert_eq!(Limits::default().check(), Ok(()));
        let limits = Limits {
            max_running: 300,
            ..Limits::default()
        };
        assert!(limits.check().unwrap_err().contains("max_instances"));
        let limits = Limits {
            max_body_bytes: 0,
            ..Limits::default()
        };
        assert!(limits.check().unwrap_err().contains("max_body_bytes"));
    }
}
