//! How much the pooling allocator reserves for `max_instances` component
//! instances. A Rust component is a handful of core instances, memories and
//! tables, so the pool holds several of each per component instance; the
//! products are checked, since `--max-instances` is the operator's to set.

use crate::limits::Limits;

/// Core instances reserved per component instance.
const CORE_INSTANCES_EACH: u32 = 8;
/// Linear memories reserved per component instance.
const MEMORIES_EACH: u32 = 2;
/// Tables reserved per component instance.
const TABLES_EACH: u32 = 4;

/// The pool's totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSizes {
    pub component_instances: u32,
    pub core_instances: u32,
    pub memories: u32,
    pub tables: u32,
}

impl PoolSizes {
    /// The totals for `limits`, or why they cannot be counted (naming the flag).
    pub fn for_limits(limits: &Limits) -> Result<Self, String> {
        let instances = limits.max_instances;
        let times = |each: u32, what: &str| {
            instances.checked_mul(each).ok_or_else(|| {
                format!(
                    "--max-instances {instances}: the pooling allocator's {what} count \
                     ({instances} x {each}) overflows; at most {} instances",
                    u32::MAX / CORE_INSTANCES_EACH
                )
            })
        };
        Ok(Self {
            component_instances: instances,
            core_instances: times(CORE_INSTANCES_EACH, "core-instance")?,
            memories: times(MEMORIES_EACH, "memory")?,
            tables: times(TABLES_EACH, "table")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_is_several_of_each_per_instance() {
        let limits = Limits {
            max_instances: 256,
            ..Limits::default()
        };
        assert_eq!(
            PoolSizes::for_limits(&limits),
            Ok(PoolSizes {
                component_instances: 256,
                core_instances: 2048,
                memories: 512,
                tables: 1024,
            })
        );
    }

    #[test]
    fn counts_that_overflow_name_the_flag() {
        let limits = Limits {
            max_instances: 1_000_000_000,
            ..Limits::default()
        };
        let error = PoolSizes::for_limits(&limits).unwrap_err();
        assert!(
            error.starts_with(
                "--max-instances 1000000000: the pooling allocator's core-instance count"
            ),
            "{error}"
        );
        let largest = Limits {
            max_instances: u32::MAX / CORE_INSTANCES_EACH,
            ..Limits::default()
        };
        assert!(PoolSizes::for_limits(&largest).is_ok());
        let one_more = Limits {
            max_instances: u32::MAX / CORE_INSTANCES_EACH + 1,
            ..Limits::default()
        };
        assert!(PoolSizes::for_limits(&one_more).is_err());
    }
}
