//! Guests that never finish on their own: the host must stop each one (a trap)
//! and answer 500. Should one finish, it answers 200 `{"escaped": true}`.

use std::hint::black_box;
use std::time::Duration;

use serde_json::json;
use spin_sdk::http::Response;

use crate::reply;

/// The size of each allocation of [`alloc`].
const CHUNK_BYTES: usize = 16 << 20;
/// The size of each frame of [`stack`]'s recursion.
const FRAME_BYTES: usize = 1 << 10;
/// How long [`sleep`] waits, in seconds: longer than any request deadline.
const SLEEP_S: u64 = 3600;

pub fn panic() -> ! {
    panic!("hostile: panic as asked")
}

/// Burns CPU forever, without a host call that could stop it.
pub fn spin() -> ! {
    let mut turns = 0u64;
    loop {
        turns = black_box(turns.wrapping_add(1));
    }
}

/// Blocks in the host (a wasi clock wait).
pub fn sleep() -> Response {
    std::thread::sleep(Duration::from_secs(SLEEP_S));
    reply(200, json!({"escaped": true, "slept_s": SLEEP_S}))
}

/// Allocates, and writes to every page, until an allocation fails (an abort).
pub fn alloc() -> ! {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        chunks.push(vec![1u8; CHUNK_BYTES]);
        black_box(&chunks);
    }
}

/// Recurses until the stack runs out.
pub fn stack() -> Response {
    let depth = recurse(0);
    reply(200, json!({"escaped": true, "depth": depth}))
}

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    // A frame that stays alive across the call, so the recursion is no loop.
    let frame = black_box([1u8; FRAME_BYTES]);
    if black_box(depth) == u64::MAX {
        return depth;
    }
    recurse(depth + 1) + u64::from(frame[depth as usize % FRAME_BYTES])
}
