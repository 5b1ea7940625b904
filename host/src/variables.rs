//! The host side of Spin's variables interfaces, through which a component
//! reads its own variables (resolved at start-up by
//! [`wasi_infer_manifest::variables`]): `fermyon:spin/variables@2.0.0`
//! (spin-sdk 5, WASIp2) and `spin:variables/variables@3.0.0` (spin-sdk 7,
//! WASIp3, an async function).

pub use wasi_infer_manifest::variables::*;

/// Host bindings of `fermyon:spin/variables@2.0.0` (the interface spin-sdk's
/// `variables::get` calls).
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/fermyon-spin",
        world: "fermyon:spin/variables-host",
    });
}

/// Host bindings of `spin:variables/variables@3.0.0`.
pub mod bindings_v3 {
    wasmtime::component::bindgen!({
        path: "../wit/spin-variables",
        world: "spin:variables/variables-host",
    });
}

use bindings::fermyon::spin::variables::{Error as VariableError, Host};
use bindings_v3::spin::variables::variables as v3;
use wasmtime::component::{Accessor, HasData};

/// A variable's value, or why there is none.
fn lookup(variables: &ComponentVariables, name: String) -> Result<String, VariableError> {
    if !is_valid_name(&name) {
        return Err(VariableError::InvalidName(name));
    }
    variables
        .get(&name)
        .map(str::to_string)
        .ok_or(VariableError::Undefined(name))
}

impl Host for ComponentVariables {
    fn get(&mut self, name: String) -> Result<String, VariableError> {
        lookup(self, name)
    }
}

/// `spin:variables@3.0.0`'s view of an instance: its variables.
pub struct SpinVariables;

impl HasData for SpinVariables {
    type Data<'a> = &'a ComponentVariables;
}

impl v3::Host for &ComponentVariables {}

impl<U> v3::HostWithStore<U> for SpinVariables {
    async fn get(store: &Accessor<U, Self>, name: String) -> Result<String, v3::Error> {
        store.with(|mut view| {
            lookup(view.get(), name).map_err(|error| match error {
                VariableError::InvalidName(n) => v3::Error::InvalidName(n),
                VariableError::Undefined(n) => v3::Error::Undefined(n),
                VariableError::Provider(p) => v3::Error::Provider(p),
                VariableError::Other(o) => v3::Error::Other(o),
            })
        })
    }
}
