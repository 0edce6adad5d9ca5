//! Memory layouts: channels-last (NHWC strides) for faster convolutions on GPUs.
//!
//! A tensor keeps its logical shape `[N, C, H, W]`; only its strides change, so every network
//! runs unchanged. cuDNN picks NHWC kernels when the input and the weights are channels-last,
//! which is what tensor cores want under fp16 autocast; convolution and batch-norm outputs stay
//! channels-last, so one conversion at the input is enough. This is PyTorch's
//! `x.to(memory_format=torch.channels_last)`, written with a permute because `tch` does not
//! expose memory formats.
//!
//! ```
//! use mmanet_models::layout::{channels_last, is_channels_last};
//! use tch::{Device, Kind, Tensor};
//!
//! let x = Tensor::randn([2, 3, 4, 5], (Kind::Float, Device::Cpu));
//! let y = channels_last(&x);
//! assert!(is_channels_last(&y));
//! assert_eq!(y.size(), x.size());
//! assert!(y.equal(&x));
//! ```

use tch::{Tensor, nn::VarStore};

/// The same values with channels-last strides (4-D tensors; others are returned as they are).
///
/// # Shapes
/// `t`: `[N, C, H, W]` (or any rank; only rank 4 is converted). Returns the same shape.
pub fn channels_last(t: &Tensor) -> Tensor {
    if t.dim() != 4 || is_channels_last(t) {
        return t.shallow_clone();
    }
    t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Whether a 4-D tensor is dense with NHWC strides.
///
/// # Shapes
/// `t`: `[N, C, H, W]`; other ranks give `false`.
pub fn is_channels_last(t: &Tensor) -> bool {
    if t.dim() != 4 {
        return false;
    }
    let size = t.size();
    let (c, h, w) = (size[1], size[2], size[3]);
    t.stride() == [h * w * c, 1, w * c, c]
}

/// Converts every 4-D variable of `vs` (convolution weights) to channels-last in place; the
/// variables keep their identity, so optimizers and checkpoints see the same tensors.
pub fn to_channels_last(vs: &VarStore) {
    let _guard = tch::no_grad_guard();
    for (_, mut var) in vs.variables() {
        if var.dim() == 4 && !is_channels_last(&var) {
            let converted = channels_last(&var);
            var.set_data(&converted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{self, Module};
    use tch::{Device, Kind};

    #[test]
    fn converted_convolution_gives_the_same_output() {
        tch::manual_seed(0);
        let vs = VarStore::new(Device::Cpu);
        let conv = nn::conv2d(vs.root(), 3, 8, 3, Default::default());
        let x = Tensor::randn([2, 3, 9, 9], (Kind::Float, Device::Cpu));
        let plain = conv.forward(&x);
        to_channels_last(&vs);
        assert!(is_channels_last(&conv.ws));
        let fast = conv.forward(&channels_last(&x));
        let diff = (plain - fast).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "channels-last changed the output by {diff}");
    }

    #[test]
    fn other_ranks_are_untouched() {
        let t = Tensor::ones([2, 3], (Kind::Float, Device::Cpu));
        assert!(!is_channels_last(&t));
        assert_eq!(channels_last(&t).stride(), t.stride());
    }
}
