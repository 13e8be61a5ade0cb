"""The explanation cards of the sampler and inverse-problem tools (Markdown with LaTeX, see
:func:`explorer.ui.text.explanation`)."""

SAMPLER_EXPLANATION = r"""
A denoiser trained to remove Gaussian noise carries a prior: by Miyasawa/Tweedie its residual is a
scaled score, $\hat x(y) - y = \sigma^2 \nabla_y \log p_\sigma(y)$. The sampler climbs that score
from pure noise, removing a fraction $\beta h_t$ of the noise at each step and injecting fresh noise
so that the effective noise level falls on the designed schedule:

$$d_t = \hat x(y_{t-1}) - y_{t-1},\qquad \sigma_t = \frac{\|d_t\|}{\sqrt N},\qquad h_t = \frac{h_0 t}{1 + h_0 (t-1)}$$

$$y_t = y_{t-1} + h_t d_t + \gamma_t z_t,\qquad \gamma_t = \sigma_t\sqrt{(1-\beta h_t)^2 - (1-h_t)^2},\qquad z_t\sim\mathcal N(0, I)$$

The dashed curve is the schedule $\bar\sigma_t = \sigma_0\prod_{s\le t}(1-\beta h_s)$; the solid curves are the
measured $\sigma_t$ of each chain. Smaller $\beta$ injects more noise and needs more steps (and gives
better samples); $\beta = 1$ is deterministic. A chain stops when $\sigma_t \le \sigma_L$.
(Kadkhodaie & Simoncelli, *Solving linear inverse problems using the prior implicit in a denoiser*, 2021.)
"""

INVERSE_EXPLANATION = r"""
A linear measurement keeps $m$ numbers $x_c = M^\top x$ of an image $x$ of $N$ pixels ($M$ is $N\times m$
with orthonormal columns). Everything orthogonal to the columns of $M$ is lost; the **pseudo-inverse**
$M x_c$ fills it with zeros. Algorithm 2 fills it from the prior implicit in the denoiser: each step
moves along the denoiser's residual $f(y) = \hat x(y) - y$ off the measured subspace and towards the
measurements on it,

$$d_t = (I - MM^\top) f(y_{t-1}) + M\,(x_c - M^\top y_{t-1}),\qquad y_t = y_{t-1} + h_t d_t + \gamma_t z_t,$$

with the same step size $h_t$, noise injection $\gamma_t$ (set by $\beta$) and stopping level $\sigma_L$ as
the sampler. Different seeds give different **samples** consistent with the measurements; their
**mean** approximates the MMSE estimate (higher PSNR, blurrier). PSNR $=10\log_{10}(1/\mathrm{MSE})$ dB
and SSIM (Wang et al. 2004) are measured against the original. *Compressive sensing* keeps $m$ random
projections (a random orthonormal basis, the papers' "random basis").

For inpainting, paint the pixels to **hide** with the brush (drag on the image) or rectangles
(drag a box); *Restore* mode paints pixels back. (Kadkhodaie & Simoncelli 2021.)
"""
