//! Moving a collated batch to the training device.
//!
//! On CUDA, tensors the loader collated into page-locked (pinned) memory are sent with
//! asynchronous copies, so the transfer overlaps the kernels still queued; image inputs can be
//! given channels-last strides on the device (see [`mmanet_models::layout`]). On CPU the batch
//! is returned as it is.

use mmanet_data::Batch;
use mmanet_models::layout::channels_last;
use tch::{Device, Tensor};

/// How [`to_device`] lays out the batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransferOptions {
    /// Give 4-D image inputs channels-last strides on the device.
    pub channels_last: bool,
}

/// `batch` on `device`.
///
/// # Shapes
/// Unchanged: `inputs[m]` `[B, ...]`, `mask` `[B, M]`, `targets` `[B]` or `[B, H, W]`.
pub fn to_device(batch: Batch, device: Device, options: TransferOptions) -> Batch {
    if device == Device::Cpu {
        return batch;
    }
    // Inputs pinned by the loader (`LoaderConfig::pin_memory`) copy asynchronously; pinning
    // here would cost a host copy on the training thread, so other tensors (small, or from
    // loaders without pinning) are copied as they are.
    let send = |t: &Tensor| -> Tensor {
        let pinned = device.is_cuda() && t.is_pinned(device);
        t.to_device_(device, t.kind(), pinned, false)
    };
    let image = |t: &Tensor| -> Tensor {
        let t = send(t);
        if options.channels_last { channels_last(&t) } else { t }
    };
    Batch {
        inputs: batch.inputs.iter().map(image).collect(),
        lengths: batch.lengths.iter().map(|l| l.as_ref().map(send)).collect(),
        mask: send(&batch.mask),
        combos: batch.combos,
        targets: send(&batch.targets),
        indices: batch.indices,
    }
}
