"""Cluster quality of a learned representation (paper §6, Fig. 3; appendix K).

    quality = 1 − (1/C Σ_c mean sq. pairwise distance within class c)
                  / (mean sq. pairwise distance over all points)

computed on a 2-D embedding of the representation: PCA to at most 600
dimensions, then t-SNE (perplexity 20, learning rate 100 as in appendix K;
scikit-learn's maintained implementation, optional extra ``analysis``).  0
means classes are as spread as the whole set; 1 means every class collapses
to a point.  ``method="pca"`` embeds with the first two principal components
instead (no scikit-learn needed).

The mean squared distance over pairs i ≠ j of n points is
``2 Σ_i ‖y_i − ȳ‖² / (n − 1)`` (twice the trace of the unbiased covariance),
so no pairwise matrix is formed.
"""

from __future__ import annotations

import numpy as np


def mean_sq_pairwise(Y) -> float:
    """Mean of ‖y_i − y_j‖² over ordered pairs i ≠ j (rows of ``Y``)."""
    Y = np.asarray(Y, dtype=np.float64).reshape(len(Y), -1)
    n = Y.shape[0]
    if n < 2:
        return float("nan")
    c = Y - Y.mean(axis=0)
    return float(2.0 * (c * c).sum() / (n - 1))


def cluster_quality(Y, labels) -> float:
    """1 − mean_c(mean sq. pairwise distance in class c) / overall (paper §6)."""
    Y = np.asarray(Y, dtype=np.float64).reshape(len(Y), -1)
    labels = np.asarray(labels)
    within = [mean_sq_pairwise(Y[labels == c]) for c in np.unique(labels)]
    within = [w for w in within if np.isfinite(w)]
    return float(1.0 - np.mean(within) / mean_sq_pairwise(Y))


def pca(X, n_components: int):
    """Project rows of X on their top principal components (SVD)."""
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    Xc = X - X.mean(axis=0)
    k = int(min(n_components, Xc.shape[0], Xc.shape[1]))
    U, S, _ = np.linalg.svd(Xc, full_matrices=False)
    return U[:, :k] * S[:k]


def embed(X, method: str = "tsne", pca_dims: int = 600, perplexity: float = 20.0,
          learning_rate: float = 100.0, max_iter: int = 1000, seed: int = 0):
    """2-D embedding: PCA to ≤ ``pca_dims``, then t-SNE (or PCA's first two)."""
    Z = pca(X, pca_dims)
    if method == "pca":
        return Z[:, :2]
    if method != "tsne":
        raise ValueError(f"embedding method must be tsne or pca, not {method!r}")
    try:
        from sklearn.manifold import TSNE
    except ImportError:  # pragma: no cover - depends on the install
        raise ImportError("t-SNE needs scikit-learn: python -m pip install -e '.[analysis]' in the "
                          "neurosim source directory (or use method='pca')") from None
    n = Z.shape[0]
    perp = float(min(perplexity, max(1.0, (n - 1) / 3.0)))
    ts = TSNE(n_components=2, perplexity=perp, learning_rate=learning_rate, max_iter=max(250, max_iter),
              init="pca", random_state=seed)
    return ts.fit_transform(Z.astype(np.float32))


def representation_quality(X, labels, **embed_options) -> float:
    """Cluster quality of representation ``X`` (rows = examples) after embedding."""
    return cluster_quality(embed(X, **embed_options), labels)


def layer_representation(net, x, layer: int, batch_size: int = 500):
    """Host array (N, features) of layer ``layer``'s activations a^ℓ on inputs ``x``."""
    outs = []
    for s in range(0, x.shape[0], batch_size):
        _, states = net.forward(x[s : s + batch_size])
        a = states[layer].a
        outs.append(net.backend.to_host(a).reshape(a.shape[0], -1))
    return np.concatenate(outs, axis=0)


def default_layer(net) -> int:
    """The paper's choice: the output of the last convolutional / locally
    connected stage (the input of the first dense layer after them); for
    fully connected networks the last hidden layer."""
    kinds = [L.kind for L in net.layers]
    spatial = [i for i, k in enumerate(kinds) if k not in ("dense", "flatten")]
    if spatial:
        last = max(spatial)
        return last
    return net.hidden_weight_layers[-1]
