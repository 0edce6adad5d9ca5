//! ESANet `PyramidPoolingModule` (`ppm`): per bin, adaptive average pool -> ConvBNAct 1x1
//! (C -> C / n_bins) -> nearest upsampling back; concat with the input -> ConvBNAct 1x1 -> out.
//! Names `features.<i>.1.{conv,bn}`, `final_conv.{conv,bn}`.

use tch::Tensor;
use tch::nn::{self, ModuleT};

use super::blocks::ConvBnAct;

/// Pyramid pooling context module.
#[derive(Debug)]
pub struct PyramidPoolingModule {
    bins: Vec<i64>,
    features: Vec<ConvBnAct>,
    final_conv: ConvBnAct,
}

impl PyramidPoolingModule {
    /// `c_in -> c_out` with the given bins (NYUv2: `[1, 5]`).
    pub fn new(p: &nn::Path<'_>, c_in: i64, c_out: i64, bins: &[i64]) -> Self {
        let red = c_in / bins.len() as i64;
        let f = p / "features";
        let features =
            (0..bins.len()).map(|i| ConvBnAct::new(&(&f / i / "1"), c_in, red, 1)).collect();
        PyramidPoolingModule {
            bins: bins.to_vec(),
            features,
            final_conv: ConvBnAct::new(
                &(p / "final_conv"),
                c_in + red * bins.len() as i64,
                c_out,
                1,
            ),
        }
    }
}

impl ModuleT for PyramidPoolingModule {
    /// # Shapes
    /// - `xs`: `[B, C_in, H, W]` -> `[B, C_out, H, W]`.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let (h, w) = (xs.size()[2], xs.size()[3]);
        let mut outs = vec![xs.shallow_clone()];
        for (bin, f) in self.bins.iter().zip(&self.features) {
            let y = f.forward_t(&xs.adaptive_avg_pool2d([*bin, *bin]), train); // [B, C/n, bin, bin]
            outs.push(y.upsample_nearest2d([h, w], None, None));
        }
        self.final_conv.forward_t(&Tensor::cat(&outs, 1), train)
    }
}
