//! What the benchmark and the soak test share: a minimal HTTP/1.1 load client
//! ([`load`]) and process memory from `/proc` ([`proc`]).

pub mod load;
pub mod proc;
