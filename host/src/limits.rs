//! Every bound the host puts on what a request or a function may use, with
//! safe defaults. A serverless host runs code and inputs it does not trust:
//! whatever one request does, the others keep being served.
//!
//! Where each limit is enforced:
//! - connections, header size, client, write and idle timeouts:
//!   [`crate::http::server`] (the last two in `connection.rs`);
//! - body size, the budget of buffered bodies (`body_budget.rs`), the waiting
//!   room and its wait: [`crate::app`];
//! - the per-request deadline, memory and tables of an instance:
//!   [`crate::runtime`];
//! - what a function may do with wasi-nn: [`crate::nn::wit`]; how large the
//!   inputs of one inference may be: [`crate::nn::bounds`].

use std::time::Duration;

use tokio::sync::Semaphore;

use crate::nn::BoundDefaults;

const MIB: usize = 1 << 20;

/// The longest any timeout may be: deadlines are instants (`now + timeout`),
/// and an instant centuries away overflows.
pub const LONGEST_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

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
    /// Bytes of request bodies buffered at once, by all requests together
    /// (`--max-buffered-bodies`): without it, the memory held by bodies is
    /// bounded only by connections x body size. A body that cannot get its
    /// bytes within `max_wait` is answered 503 with `Retry-After`.
    pub max_buffered_body_bytes: usize,
    /// Time a client has to send a request's head, and then its body (408).
    /// The head's timer starts when the server begins to wait for a request:
    /// when the connection opens, and again when the previous answer is sent.
    pub client_timeout: Duration,
    /// Time a write to a client may make no progress (`--write-timeout`):
    /// then the connection is closed, so that a client that never reads its
    /// answers does not hold its connection for ever.
    pub write_timeout: Duration,
    /// Time a connection with no request in flight may receive nothing
    /// (`--idle-timeout`) before it is closed. An idle connection is also
    /// bounded by `client_timeout`, whose timer for the next head runs from
    /// the moment it goes idle: the shorter of the two closes it.
    pub idle_timeout: Duration,
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
    /// instance lives exactly as long as its request runs). The pool reserves
    /// several core instances, memories and tables per slot (see
    /// `runtime::pool`), so this also bounds those counts.
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
    /// On SIGTERM/SIGINT, how long the server keeps serving while it reports
    /// not ready, before it closes its listener: time for a load balancer
    /// (Kubernetes' endpoints) to stop sending it new requests.
    pub drain_delay: Duration,
    /// Then, how long in-flight requests have to finish.
    pub shutdown_grace: Duration,
    /// The largest batch of a model whose `model.toml` sets none.
    pub max_batch: u64,
    /// Elements of one input of a model whose `model.toml` bounds neither
    /// them nor every dimension.
    pub max_input_elements: u64,
}

impl Default for Limits {
    /// The defaults for this machine's cores (see [`Limits::for_cores`]).
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::for_cores(cores)
    }
}

/// Instance slots when nothing says otherwise: a pool this large costs only
/// address space until slots are used.
const DEFAULT_MAX_INSTANCES: u32 = 256;

impl Limits {
    /// The defaults on a machine with `cores` cores: two running instances
    /// per core, and at least as many instance slots as that (on more than
    /// 128 cores a fixed 256 slots would refuse its own `max_running`).
    pub fn for_cores(cores: usize) -> Self {
        let max_running = cores.max(1).saturating_mul(2);
        let max_instances = u32::try_from(max_running)
            .unwrap_or(u32::MAX)
            .max(DEFAULT_MAX_INSTANCES);
        Self {
            max_connections: 1024,
            max_header_bytes: 64 << 10,
            max_body_bytes: 16 * MIB,
            max_buffered_body_bytes: 256 * MIB,
            client_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            max_running,
            max_waiting: 256,
            max_wait: Duration::from_secs(10),
            max_instances,
            max_memory_bytes: 512 * MIB,
            max_table_elements: 20_000,
            keep_resident_bytes: 16 * MIB,
            max_resources: 10_000,
            max_tensor_bytes: 64 * MIB,
            max_tensor_bytes_per_instance: 256 * MIB,
            max_execution_contexts: 64,
            drain_delay: Duration::ZERO,
            shutdown_grace: Duration::from_secs(10),
            max_batch: BoundDefaults::default().max_batch,
            max_input_elements: BoundDefaults::default().max_input_elements,
        }
    }

    /// The server's input bounds, for models that set none of their own.
    pub fn input_bounds(&self) -> BoundDefaults {
        BoundDefaults {
            max_batch: self.max_batch,
            max_input_elements: self.max_input_elements,
        }
    }

    /// Checks that the limits fit together, naming the command-line flag of
    /// each limit that does not.
    pub fn check(&self) -> Result<(), String> {
        let positive = [
            ("--max-connections", self.max_connections),
            ("--max-running", self.max_running),
            ("--max-body-size", self.max_body_bytes),
            ("--max-memory", self.max_memory_bytes),
            ("max_resources", self.max_resources),
            ("--max-tensor-size", self.max_tensor_bytes),
            ("--max-execution-contexts", self.max_execution_contexts),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be at least 1"));
        }
        if self.max_batch == 0 || self.max_input_elements == 0 {
            return Err("--max-batch and --max-input-elements must be at least 1".into());
        }
        // Both are counts of a tokio semaphore, which panics past its maximum.
        for (name, count) in [
            ("--max-connections", self.max_connections),
            ("--max-running", self.max_running),
        ] {
            if count > Semaphore::MAX_PERMITS {
                return Err(format!(
                    "{name} {count}: at most {} is possible",
                    Semaphore::MAX_PERMITS
                ));
            }
        }
        if self.max_running > self.max_instances as usize {
            return Err(format!(
                "--max-running ({}) must not exceed --max-instances ({})",
                self.max_running, self.max_instances
            ));
        }
        if self.max_tensor_bytes > self.max_tensor_bytes_per_instance {
            return Err(format!(
                "--max-tensor-size ({}) must not exceed --max-tensor-bytes-per-instance ({})",
                self.max_tensor_bytes, self.max_tensor_bytes_per_instance
            ));
        }
        if self.max_body_bytes > self.max_buffered_body_bytes {
            return Err(format!(
                "--max-buffered-bodies ({}) must be at least --max-body-size ({}): \
                 otherwise the largest body allowed could never be buffered",
                size_text(self.max_buffered_body_bytes),
                size_text(self.max_body_bytes)
            ));
        }
        self.check_timeouts()
    }

    fn check_timeouts(&self) -> Result<(), String> {
        let timeouts = [
            ("--request-timeout", self.request_timeout),
            ("--client-timeout", self.client_timeout),
            ("--write-timeout", self.write_timeout),
            ("--idle-timeout", self.idle_timeout),
            ("--max-wait", self.max_wait),
            ("--shutdown-grace", self.shutdown_grace),
            ("--drain-delay", self.drain_delay),
        ];
        for (name, timeout) in timeouts {
            if timeout > LONGEST_TIMEOUT {
                return Err(format!(
                    "{name} {timeout:?}: at most a year ({LONGEST_TIMEOUT:?}); \
                     a deadline that far away overflows"
                ));
            }
        }
        let must_run = [
            ("--request-timeout", self.request_timeout),
            ("--client-timeout", self.client_timeout),
            ("--write-timeout", self.write_timeout),
            ("--idle-timeout", self.idle_timeout),
        ];
        if let Some((name, _)) = must_run.iter().find(|(_, t)| t.is_zero()) {
            return Err(format!("{name} must be longer than zero"));
        }
        Ok(())
    }
}

/// A size as people read it: `256 MiB`, `64 KiB`, or bytes.
pub fn size_text(bytes: usize) -> String {
    match bytes {
        0 => "0 bytes".to_string(),
        _ if bytes.is_multiple_of(MIB) => format!("{} MiB", bytes / MIB),
        _ if bytes.is_multiple_of(1024) => format!("{} KiB", bytes / 1024),
        _ => format!("{bytes} bytes"),
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
            max_instances: 256,
            ..Limits::default()
        };
        assert!(limits.check().unwrap_err().contains("--max-instances"));
        let limits = Limits {
            max_body_bytes: 0,
            ..Limits::default()
        };
        assert!(limits.check().unwrap_err().contains("--max-body-size"));
    }

    #[test]
    fn the_defaults_start_on_any_number_of_cores() {
        for cores in [0, 1, 2, 64, 128, 129, 256, 1000, 100_000] {
            let limits = Limits::for_cores(cores);
            assert_eq!(limits.check(), Ok(()), "{cores} cores");
            assert_eq!(limits.max_running, 2 * cores.max(1), "{cores} cores");
        }
        assert_eq!(Limits::for_cores(8).max_instances, 256);
        assert_eq!(Limits::for_cores(200).max_instances, 400);
        // Absurd core counts saturate rather than overflow.
        let huge = Limits::for_cores(usize::MAX);
        assert_eq!(huge.max_instances, u32::MAX);
    }

    #[test]
    fn the_buffered_bodies_hold_at_least_one_body() {
        let limits = Limits {
            max_body_bytes: 16 * MIB,
            max_buffered_body_bytes: 8 * MIB,
            ..Limits::default()
        };
        let error = limits.check().unwrap_err();
        assert!(error.contains("--max-buffered-bodies (8 MiB)"), "{error}");
        assert!(error.contains("--max-body-size (16 MiB)"), "{error}");
    }

    #[test]
    fn counts_and_durations_past_what_can_be_represented_are_refused() {
        let limits = Limits {
            max_connections: usize::MAX,
            ..Limits::default()
        };
        assert!(limits.check().unwrap_err().contains("--max-connections"));
        let limits = Limits {
            request_timeout: Duration::from_secs(u64::MAX),
            ..Limits::default()
        };
        assert!(limits.check().unwrap_err().contains("--request-timeout"));
        let limits = Limits {
            client_timeout: Duration::ZERO,
            ..Limits::default()
        };
        assert!(limits.check().unwrap_err().contains("--client-timeout"));
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size_text(256 * MIB), "256 MiB");
        assert_eq!(size_text(64 << 10), "64 KiB");
        assert_eq!(size_text(1_000_000), "1000000 bytes");
    }
}
