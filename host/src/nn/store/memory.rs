//! What loaded models cost in memory: the process's resident memory, read
//! before and after a model loads (what the backends really hold, not the
//! size of the model's file), and the budget those costs are charged to.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The process's resident memory, in bytes (`/proc/self/statm`); `None`
/// where there is no such file.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(page_size()))
}

fn page_size() -> u64 {
    #[cfg(unix)]
    {
        // SAFETY: sysconf reads a constant of the system.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if size > 0 {
            return size as u64;
        }
    }
    4096
}

/// The bytes charged by the loaded models together.
#[derive(Clone, Debug, Default)]
pub struct Charges(Arc<AtomicU64>);

impl Charges {
    /// Bytes charged now.
    pub fn total(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Charges `bytes` until the returned charge is dropped.
    pub fn charge(&self, bytes: u64) -> Charge {
        self.0.fetch_add(bytes, Ordering::AcqRel);
        Charge {
            bytes,
            charges: self.clone(),
        }
    }
}

/// A loaded model's bytes, charged while it lives: dropped with the model,
/// when its last request is done with it (not when it is unloaded, which
/// only stops new requests from taking it).
#[derive(Debug)]
pub struct Charge {
    bytes: u64,
    charges: Charges,
}

impl Charge {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.charges.0.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// A size for messages: MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_last_as_long_as_their_models() {
        let charges = Charges::default();
        let a = charges.charge(10);
        let b = charges.charge(5);
        assert_eq!(charges.total(), 15);
        drop(a);
        assert_eq!(charges.total(), 5);
        assert_eq!(b.bytes(), 5);
        drop(b);
        assert_eq!(charges.total(), 0);
    }

    #[test]
    fn resident_memory_grows_with_what_is_touched() {
        let before = resident_bytes().unwrap();
        let block = vec![1u8; 64 << 20];
        let after = resident_bytes().unwrap();
        assert!(block.iter().step_by(4096).all(|&b| b == 1));
        // 64 MiB written: all of it resident, less what the allocator had.
        assert!(after >= before + (32 << 20), "{before} -> {after}");
    }
}
