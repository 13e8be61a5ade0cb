"""The filters tool's explanation card (its equations and references)."""

EXPLANATION = r"""
A denoiser maps a noisy image \\(y = x + \sigma z\\) to an estimate \\(\hat x(y)\\). Near \\(y\\) it is linear,
\\(\hat x(y + \delta) \approx \hat x(y) + A\delta\\) with the Jacobian \\(A = \partial \hat x / \partial y\\), and a
**bias-free** network (no additive constants) is *exactly* linear along rays, so

$$\hat x(y) = A_y y, \qquad \hat x_i(y) = \sum_j A_{ij} y_j = \langle a_i, y\rangle .$$

Row \\(a_i\\) of \\(A\\) is the **adaptive filter** that computes pixel \\(i\\): a weighted average of the noisy
pixels. Click a pixel of the noisy image (or of a denoised image) to see it for each denoiser. Large \\(\sigma\\)
gives wide filters (heavy averaging), small \\(\sigma\\) narrow ones; near an edge or a line the filter follows the
structure instead of averaging across it, while Gaussian smoothing uses the same filter everywhere.
The **row sum** \\(\sum_j A_{ij}\\) is the filter's gain on a constant image (≈ 1: the local mean is kept); for a
bias-free network \\(\langle a_i, y\rangle\\) equals \\(\hat x_i\\). The noise level is estimated from the residual,
\\(\hat\sigma = \lVert y - \hat x(y)\rVert / \sqrt{N}\\).

**Classical denoisers at a fixed σ.** Gaussian smoothing, the Wiener filter and Haar shrinkage estimate the noise
level blindly; their filter is the derivative with that estimate \\(\hat\sigma(y)\\) **held constant** (a fixed σ):
the filter the method applies at this noise level (for Gaussian smoothing its Gaussian kernel, largest at the pixel).

(Mohan, Kadkhodaie, Simoncelli & Fernandez-Granda, *Robust and interpretable blind image denoising
via bias-free convolutional neural networks*, ICLR 2020.)
"""
