//! Panics (a wasm trap) in the middle of a request, so a test can check that the
//! host answers 500 with a JSON error and keeps serving.

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(request: Request) -> Response {
    panic!("panic-p2 was asked for {}", request.path());
}
