//! The Open Inference Protocol's tensor datatypes: their names, their element
//! sizes, and which of them wasi-nn can carry. Every other module speaks in
//! [`Datatype`], so the protocol's names and wasi-nn's enum meet only here.

use std::fmt;

use wasi_infer_guest::nn::TensorType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Datatype {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp16,
    Fp32,
    Fp64,
    Bf16,
    Bytes,
}

impl Datatype {
    pub const ALL: [Datatype; 14] = [
        Datatype::Bool,
        Datatype::Uint8,
        Datatype::Uint16,
        Datatype::Uint32,
        Datatype::Uint64,
        Datatype::Int8,
        Datatype::Int16,
        Datatype::Int32,
        Datatype::Int64,
        Datatype::Fp16,
        Datatype::Fp32,
        Datatype::Fp64,
        Datatype::Bf16,
        Datatype::Bytes,
    ];

    /// The protocol's name, exactly (the protocol's names are upper case and
    /// clients send them so; a near miss is refused rather than guessed at).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Datatype::Bool => "BOOL",
            Datatype::Uint8 => "UINT8",
            Datatype::Uint16 => "UINT16",
            Datatype::Uint32 => "UINT32",
            Datatype::Uint64 => "UINT64",
            Datatype::Int8 => "INT8",
            Datatype::Int16 => "INT16",
            Datatype::Int32 => "INT32",
            Datatype::Int64 => "INT64",
            Datatype::Fp16 => "FP16",
            Datatype::Fp32 => "FP32",
            Datatype::Fp64 => "FP64",
            Datatype::Bf16 => "BF16",
            Datatype::Bytes => "BYTES",
        }
    }

    /// Bytes per element; `None` for BYTES, whose elements each carry their
    /// own length.
    pub fn element_size(self) -> Option<usize> {
        match self {
            Datatype::Bool | Datatype::Uint8 | Datatype::Int8 => Some(1),
            Datatype::Uint16 | Datatype::Int16 | Datatype::Fp16 | Datatype::Bf16 => Some(2),
            Datatype::Uint32 | Datatype::Int32 | Datatype::Fp32 => Some(4),
            Datatype::Uint64 | Datatype::Int64 | Datatype::Fp64 => Some(8),
            Datatype::Bytes => None,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(
            self,
            Datatype::Fp16 | Datatype::Fp32 | Datatype::Fp64 | Datatype::Bf16
        )
    }

    /// The wasi-nn type that carries this one to a model, if any. Only types
    /// with the same bytes are mapped: passing INT8 as U8, say, would hand the
    /// model different numbers than the client sent.
    pub fn to_nn(self) -> Option<TensorType> {
        match self {
            Datatype::Uint8 => Some(TensorType::U8),
            Datatype::Int32 => Some(TensorType::I32),
            Datatype::Int64 => Some(TensorType::I64),
            Datatype::Fp16 => Some(TensorType::Fp16),
            Datatype::Fp32 => Some(TensorType::Fp32),
            Datatype::Fp64 => Some(TensorType::Fp64),
            Datatype::Bf16 => Some(TensorType::Bf16),
            _ => None,
        }
    }

    pub fn from_nn(ty: TensorType) -> Self {
        match ty {
            TensorType::U8 => Datatype::Uint8,
            TensorType::I32 => Datatype::Int32,
            TensorType::I64 => Datatype::Int64,
            TensorType::Fp16 => Datatype::Fp16,
            TensorType::Fp32 => Datatype::Fp32,
            TensorType::Fp64 => Datatype::Fp64,
            TensorType::Bf16 => Datatype::Bf16,
        }
    }

    /// The types wasi-nn carries, for error messages.
    pub fn nn_names() -> String {
        Self::ALL
            .into_iter()
            .filter(|t| t.to_nn().is_some())
            .map(Datatype::name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Datatype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_exact() {
        for t in Datatype::ALL {
            assert_eq!(Datatype::parse(t.name()), Some(t));
            assert_eq!(t.to_string(), t.name());
        }
        for bad in [
            "", "fp32", "Fp32", "FLOAT", "FP8", "STRING", " FP32", "INT128",
        ] {
            assert_eq!(Datatype::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn element_sizes() {
        let sizes: Vec<_> = Datatype::ALL.iter().map(|t| t.element_size()).collect();
        assert_eq!(
            sizes,
            [
                Some(1),
                Some(1),
                Some(2),
                Some(4),
                Some(8),
                Some(1),
                Some(2),
                Some(4),
                Some(8),
                Some(2),
                Some(4),
                Some(8),
                Some(2),
                None
            ]
        );
    }

    #[test]
    fn wasi_nn_carries_seven_types_and_they_round_trip() {
        let carried: Vec<_> = Datatype::ALL
            .into_iter()
            .filter(|t| t.to_nn().is_some())
            .collect();
        assert_eq!(
            carried,
            [
                Datatype::Uint8,
                Datatype::Int32,
                Datatype::Int64,
                Datatype::Fp16,
                Datatype::Fp32,
                Datatype::Fp64,
                Datatype::Bf16
            ]
        );
        for t in carried {
            let nn = t.to_nn().unwrap();
            assert_eq!(Datatype::from_nn(nn), t);
            assert_eq!(t.element_size(), Some(nn_size(nn)), "{t}");
        }
        assert_eq!(
            Datatype::nn_names(),
            "UINT8, INT32, INT64, FP16, FP32, FP64, BF16"
        );
    }

    fn nn_size(ty: TensorType) -> usize {
        match ty {
            TensorType::U8 => 1,
            TensorType::Fp16 | TensorType::Bf16 => 2,
            TensorType::Fp32 | TensorType::I32 => 4,
            TensorType::Fp64 | TensorType::I64 => 8,
        }
    }
}
