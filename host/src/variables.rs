//! The host side of `fermyon:spin/variables@2.0.0`, through which a component
//! reads its own variables (resolved at start-up by [`wasi_infer_manifest::variables`]).

pub use wasi_infer_manifest::variables::*;

/// Host bindings of `fermyon:spin/variables@2.0.0` (the interface spin-sdk's
/// `variables::get` calls).
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/fermyon-spin",
        world: "fermyon:spin/variables-host",
    });
}

use bindings::fermyon::spin::variables::{Error as VariableError, Host};

impl Host for ComponentVariables {
    fn get(&mut self, name: String) -> Result<String, VariableError> {
        if !is_valid_name(&name) {
            return Err(VariableError::InvalidName(name));
        }
        ComponentVariables::get(self, &name)
            .map(str::to_string)
            .ok_or(VariableError::Undefined(name))
    }
}
