//! The network: a small VGG-style CNN. Two blocks of two 3x3 convolutions
//! (each followed by batch normalisation and ReLU) and a 2x2 max-pool, then
//! a hidden dense layer with dropout and the 10 logits. Convolutions and the
//! hidden layer start from He (Kaiming normal) initialisation, as ReLU
//! networks should.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Initializer, Linear, LinearConfig,
    PaddingConfig2d,
};
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::data::{CLASSES, SIDE};

/// The network's widths.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Widths {
    /// Channels of the first block's convolutions.
    pub block1: usize,
    /// Channels of the second block's convolutions.
    pub block2: usize,
    /// Units of the hidden dense layer.
    pub hidden: usize,
}

#[derive(Module, Debug)]
pub struct Net {
    /// The four convolutions, in order; a max-pool follows the 2nd and 4th.
    pub convs: Vec<Conv2d>,
    /// Their batch normalisations.
    pub norms: Vec<BatchNorm>,
    pub pool: MaxPool2d,
    pub hidden: Linear,
    pub dropout: Dropout,
    pub logits: Linear,
}

/// He initialisation: a normal distribution of variance 2 / fan-in.
fn he() -> Initializer {
    Initializer::KaimingNormal {
        gain: std::f64::consts::SQRT_2,
        fan_out_only: false,
    }
}

impl Net {
    pub fn new(widths: Widths, device: &Device) -> Self {
        let channels = Self::channels(widths);
        let convs = channels
            .iter()
            .map(|&(from, to)| {
                Conv2dConfig::new([from, to], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    // Batch normalisation's shift makes a bias redundant.
                    .with_bias(false)
                    .with_initializer(he())
                    .init(device)
            })
            .collect();
        let norms = channels
            .iter()
            .map(|&(_, to)| BatchNormConfig::new(to).init(device))
            .collect();
        let flat = widths.block2 * (SIDE / 4) * (SIDE / 4);
        Self {
            convs,
            norms,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            hidden: LinearConfig::new(flat, widths.hidden)
                .with_initializer(he())
                .init(device),
            dropout: DropoutConfig::new(0.2).init(),
            logits: LinearConfig::new(widths.hidden, CLASSES).init(device),
        }
    }

    /// (input channels, output channels) of each convolution.
    pub fn channels(widths: Widths) -> [(usize, usize); 4] {
        [
            (1, widths.block1),
            (widths.block1, widths.block1),
            (widths.block1, widths.block2),
            (widths.block2, widths.block2),
        ]
    }

    /// Logits `[batch, 10]` of images `[batch, 1, 28, 28]` (pixel / 255).
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = images;
        for (i, (conv, norm)) in self.convs.iter().zip(&self.norms).enumerate() {
            x = relu(norm.forward(conv.forward(x)));
            if i % 2 == 1 {
                x = self.pool.forward(x);
            }
        }
        let x: Tensor<2> = x.flatten(1, 3);
        let x = self.dropout.forward(relu(self.hidden.forward(x)));
        self.logits.forward(x)
    }
}
