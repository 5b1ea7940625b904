//! Where a request's time goes inside the function, answered as a standard
//! `Server-Timing` header (`decode;dur=2.1, preprocess;dur=0.9, ...`, in
//! milliseconds), so a client or the benchmark can split a request's latency
//! without a profiler.

use std::time::Instant;

use spin_sdk::http::Response;

pub struct Timings {
    last: Instant,
    laps: Vec<(&'static str, f64)>,
}

impl Timings {
    pub fn start() -> Self {
        Self {
            last: Instant::now(),
            laps: Vec::with_capacity(6),
        }
    }

    /// Ends the stage called `name`, which began where the previous one ended.
    pub fn lap(&mut self, name: &'static str) {
        let now = Instant::now();
        let ms = (now - self.last).as_secs_f64() * 1000.0;
        self.laps.push((name, ms));
        self.last = now;
    }

    /// A 200 with a JSON `body` and the `Server-Timing` header of the stages
    /// so far.
    pub fn json_response(&self, body: Vec<u8>) -> Response {
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .header("server-timing", self.header())
            .body(body)
            .build()
    }

    pub fn header(&self) -> String {
        self.laps
            .iter()
            .map(|(name, ms)| format!("{name};dur={ms:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lists_stages_in_order() {
        let mut t = Timings::start();
        t.lap("decode");
        t.lap("inference");
        let header = t.header();
        let names: Vec<&str> = header
            .split(", ")
            .map(|entry| entry.split(';').next().unwrap())
            .collect();
        assert_eq!(names, ["decode", "inference"]);
        assert!(header.contains("dur="));
    }
}
