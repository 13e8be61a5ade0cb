"""Matrix-free block Krylov methods on a :class:`~explorer.linearization.Linearization`: the top-k
singular triplets of A (block Golub–Kahan) and the top-k eigenpairs of its symmetric part (block
Lanczos), used by :func:`explorer.jacobian.top_singular` and :func:`explorer.jacobian.shrinkage`."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .linearization import Linearization


def _work_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


def _orthonormal_rows(Y: Tensor, basis: Tensor | None, gen: torch.Generator) -> Tensor:
    """Orthonormal rows spanning Y's part orthogonal to the (orthonormal) rows of ``basis``.

    Two rounds of projection + QR (classical Gram–Schmidt twice is enough); directions Y lacks
    (rank deficiency) are filled with random ones so the block keeps its size.
    """
    for _ in range(2):
        if basis is not None:
            Y = Y - (Y @ basis.T) @ basis
        Q, R = torch.linalg.qr(Y.T)
        d = R.diagonal().abs()
        weak = d <= 1e-10 * d.max().clamp_min(torch.finfo(Y.dtype).tiny)
        if weak.any():
            fill = torch.randn(Y.shape[1], int(weak.sum()), generator=gen, dtype=Y.dtype, device="cpu").to(Y.device)
            Q[:, weak] = fill / math.sqrt(Y.shape[1])
        Y = Q.T
    return Y


def _products(lin: Linearization, fn, rows: Tensor) -> Tensor:
    """Apply a batched product of ``lin`` to flat rows (m, N) in the work dtype."""
    out = fn(rows.to(lin.y.dtype).reshape(-1, *lin.shape))
    return out.reshape(len(rows), -1).to(rows.dtype)


def _start(lin: Linearization, block: int, seed: int) -> tuple[torch.Generator, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    omega = torch.randn(block, lin.n, generator=gen, dtype=_work_dtype(lin.y.device)).to(lin.y.device)
    return gen, omega


def _block_size(k: int, n: int, oversample: int | None) -> int:
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and N = {n}, got {k}")
    return min(n, k + (oversample if oversample is not None else max(8, k // 2)))


def _orient(vectors: Tensor) -> Tensor:
    """Fix each vector's arbitrary sign so that its entries sum to ≥ 0."""
    return vectors * torch.where(vectors.sum(dim=1, keepdim=True) < 0, -1.0, 1.0).to(vectors.dtype)


def _project_out(Y: Tensor, K: Tensor) -> Tensor:
    """(I − KᵀK) applied to the rows of Y (K has orthonormal rows), twice for stability."""
    for _ in range(2):
        Y = Y - (Y @ K.T) @ K
    return Y


def _svd_krylov(lin: Linearization, k: int, oversample: int | None, steps: int, tol: float, seed: int,
                callback=None):
    """Block Golub–Kahan (Krylov) SVD with Rayleigh–Ritz and residual-based stopping.

    Orthonormal row blocks K_0 = orth(A Ω), K_{t+1} = orth(A Z_t) ⊥ K_{≤t} with Z_t = orth(W_t),
    W_t = K_t A (the VJPs Aᵀ K_t). With W = K A = P S Qᵀ the Ritz triplets are u = Kᵀp, s, v = q.
    Since A Aᵀ K_j ⊂ span K_{≤j+1}, the residual A v_i − s_i u_i = (I − KᵀK) A v_i involves only
    v_i's part in the last block, d_i = W_tᵀ c_i, and A d_i = (A Z_t)ᵀ (Z_t d_i) uses the JVPs of
    the next step: no extra products. Stops when every ‖A v_i − s_i u_i‖ ≤ tol · s_1 (i ≤ k), or
    after ``steps`` extensions. ``callback(step, steps)`` (if given) follows every block of products.
    """
    b = _block_size(k, lin.n, oversample)
    gen, omega = _start(lin, b, seed)
    K = _orthonormal_rows(_products(lin, lin.jvp, omega), None, gen)
    W = _products(lin, lin.vjp, K)
    for step in range(steps):
        if callback is not None:
            callback(step, steps)
        if len(K) + b > lin.n:
            break
        evals, P = torch.linalg.eigh(W @ W.T)  # W Wᵀ = P S² Pᵀ
        S, P = evals.flip(0)[:k].clamp_min(0).sqrt(), P.flip(1)[:, :k]
        D = (P[-b:] / S.clamp_min(torch.finfo(S.dtype).tiny)).T @ W[-b:]  # rows d_i = W_tᵀ c_i
        Z = _orthonormal_rows(W[-b:], None, gen)
        Y = _project_out(_products(lin, lin.jvp, Z), K)
        if ((D @ Z.T) @ Y).norm(dim=1).max() <= tol * S[0]:
            break
        new = _orthonormal_rows(Y, K, gen)
        K, W = torch.cat([K, new]), torch.cat([W, _products(lin, lin.vjp, new)])
    P, S, Qh = torch.linalg.svd(W, full_matrices=False)
    U, V = P[:, :k].T @ K, Qh[:k]
    sign = torch.where(U.sum(dim=1, keepdim=True) < 0, -1.0, 1.0).to(U.dtype)
    return S[:k], U * sign, V * sign



def _eig_krylov(lin: Linearization, k: int, oversample: int | None, steps: int, tol: float, seed: int,
                callback=None):
    """Block Lanczos for A_s = (A + Aᵀ)/2: K_0 = orth(A_s Ω), K_{t+1} = orth(A_s K_t) ⊥ K_{≤t}, with
    S = K A_s kept. Rayleigh–Ritz T = K A_s Kᵀ = Θ diag(λ) Θᵀ, eigenvectors e = Θᵀ K, the k largest λ
    (algebraic). Residuals A_s e_i − λ_i e_i = (I − KᵀK) Sᵀθ_i need no extra products; stops when all
    are ≤ tol · max|λ|, or after ``steps`` extensions; ``callback(step, steps)`` follows every block."""
    b = _block_size(k, lin.n, oversample)
    gen, omega = _start(lin, b, seed)
    K = _orthonormal_rows(_products(lin, lin.sym, omega), None, gen)
    S = _products(lin, lin.sym, K)
    if callback is not None:
        callback(0, steps)

    def ritz() -> tuple[Tensor, Tensor]:
        T = K @ S.T
        lam, theta = torch.linalg.eigh(0.5 * (T + T.T))
        return lam.flip(0)[:k], theta.flip(1)[:, :k]

    for step in range(steps):
        if len(K) + b > lin.n:
            break
        lam, theta = ritz()
        if _project_out(theta.T @ S, K).norm(dim=1).max() <= tol * lam.abs().max():
            break
        new = _orthonormal_rows(S[-b:], K, gen)
        K, S = torch.cat([K, new]), torch.cat([S, _products(lin, lin.sym, new)])
        if callback is not None:
            callback(step + 1, steps)
    lam, theta = ritz()
    return lam, _orient(theta.T @ K)


def _ritz_svd(K: Tensor, rows: Tensor, k: int, left: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Rayleigh–Ritz singular triplets of A on the space of K's (orthonormal) rows from exact products:
    ``left=False``, rows = K Aᵀ (JVPs A k_j): K is the right space, v = c K and u = A v / s (A v = s u
    exactly); ``left=True``, rows = K A (VJPs Aᵀ k_j): K is the left space, u = c K, v = Aᵀ u / s.
    Either way s_i(ritz) ≤ s_i(A)."""
    C, S, Vh = torch.linalg.svd(rows, full_matrices=False)
    inner, outer = C[:, :k].T @ K, Vh[:k]
    return (S[:k], inner, outer) if left else (S[:k], outer, inner)


def _joint_krylov(lin: Linearization, k: int, block: int, steps: int, tol: float, seed: int, callback=None):
    """The top-k eigenpairs of A_s = (A + Aᵀ)/2 *and* the top-k singular triplets of A from one block
    Lanczos space of A_s.

    K_0 = orth(Ω) (b = ``block`` rows; b < k is allowed: for the same products smaller blocks reach a
    higher polynomial degree), K_{t+1} = orth(A_s K_t) ⊥ K_{≤t}, each block's JVPs J = K Aᵀ and VJPs
    W = K A kept apart. Eigenpairs: Rayleigh–Ritz on T = K A_s Kᵀ, stopping as :func:`_eig_krylov`
    (every residual ≤ tol · max|λ|, or ``steps`` extensions). Singular triplets: Rayleigh–Ritz of A on
    the same space, K as the right space (SVD of J) or as the left one (SVD of W), whichever has the
    larger Σ s_i² (both are lower bounds, s_i ≤ s_i(A)). No product is spent on the SVD, so its accuracy
    depends on A's top singular space lying near A_s's top eigenspace (a nearly symmetric A): check it
    against :func:`_svd_krylov` where that is unknown. ``callback(step, steps)`` follows every block.
    Returns ``(s, U, V), (lam, E)``."""
    if not 1 <= k <= lin.n:
        raise ValueError(f"k must be between 1 and N = {lin.n}, got {k}")
    b = max(1, min(block, lin.n))
    gen, omega = _start(lin, b, seed)
    K = _orthonormal_rows(omega, None, gen)
    Jr, Wr = _products(lin, lin.jvp, K), _products(lin, lin.vjp, K)
    if callback is not None:
        callback(0, steps)

    def ritz() -> tuple[Tensor, Tensor]:
        T = K @ (0.5 * (Jr + Wr)).T
        lam, theta = torch.linalg.eigh(0.5 * (T + T.T))
        return lam.flip(0)[:k], theta.flip(1)[:, :k]

    for step in range(steps):
        if len(K) == lin.n:
            break
        S = 0.5 * (Jr + Wr)
        if len(K) >= k:
            lam, theta = ritz()
            if _project_out(theta.T @ S, K).norm(dim=1).max() <= tol * lam.abs().max():
                break
        new = _orthonormal_rows(S[-b:][:lin.n - len(K)], K, gen)  # the last block may fill the space
        K = torch.cat([K, new])
        Jr, Wr = torch.cat([Jr, _products(lin, lin.jvp, new)]), torch.cat([Wr, _products(lin, lin.vjp, new)])
        if callback is not None:
            callback(step + 1, steps)
    if len(K) < k:
        raise ValueError(f"the Krylov space has {len(K)} < k = {k} dimensions: raise block or steps")
    lam, theta = ritz()
    right, left = _ritz_svd(K, Jr, k, left=False), _ritz_svd(K, Wr, k, left=True)
    s, U, V = left if left[0].square().sum() > right[0].square().sum() else right
    sign = torch.where(U.sum(dim=1, keepdim=True) < 0, -1.0, 1.0).to(U.dtype)
    return (s, U * sign, V * sign), (lam, _orient(theta.T @ K))
