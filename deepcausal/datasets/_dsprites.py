"""dSprites designs: a high-dimensional (64×64 image) treatment, IV and proxy versions."""

from __future__ import annotations

import os

import numpy as np

from ._design import Design, check_n
from .hearts import (
    LATENT_SIZES,
    load_archive_images,
    orientation_value,
    position_value,
    render_hearts,
    scale_value,
)

__all__ = [
    "dsprites",
    "dsprites_proxy",
    "dsprites_position_structural",
    "dsprites_area_structural",
    "area_matrix",
]

N_PIXELS = 64 * 64
_AREA_MATRIX_SEED = 0
_LATENT_NAMES = ("scale", "orientation", "posX", "posY")
# Test latent ids: 3 scales × 4 orientations × 7 posX × 7 posY = 588 clean images.
_TEST_SCALES = (0, 3, 5)
_TEST_ORIENTATIONS = (0, 10, 20, 30)
_TEST_POSITIONS = tuple(range(0, 31, 5))
# Outcome-proxy heart of dsprites_proxy: fixed scale, orientation and posX ids; posY copied from A.
_PROXY_W_IDS = (3, 0, 16)
_EVAL_CHUNK = 4096

# Column weights of the default structural function: B[i, j] = |32 − j|/32, flattened row-major.
_B_VEC = np.tile(np.abs(32.0 - np.arange(64)) / 32.0, 64)
_B_VEC.setflags(write=False)


def _as_flat_images(images) -> np.ndarray:
    a = np.asarray(images)
    if a.ndim == 3 and a.shape[1:] == (64, 64):
        a = a.reshape(a.shape[0], N_PIXELS)
    elif a.ndim == 2 and a.shape[1:] == (64, 64):
        a = a.reshape(1, N_PIXELS)
    elif a.ndim == 1 and a.shape[0] == N_PIXELS:
        a = a.reshape(1, N_PIXELS)
    if a.ndim != 2 or a.shape[1] != N_PIXELS:
        raise ValueError(f"images must have shape (n, 4096) or (n, 64, 64), got {np.shape(images)}")
    return a


def _project(images, weights: np.ndarray) -> np.ndarray:
    """images (n, 4096) @ weights in float64, in chunks to bound the float64 copy."""
    a = _as_flat_images(images)
    out = np.empty((a.shape[0],) + weights.shape[1:], dtype=np.float64)
    for lo in range(0, a.shape[0], _EVAL_CHUNK):
        out[lo : lo + _EVAL_CHUNK] = a[lo : lo + _EVAL_CHUNK].astype(np.float64) @ weights
    return out


def dsprites_position_structural(images) -> np.ndarray:
    """Default dSprites structural function f(a) = ((vec(B)ᵀa)² − 3000)/500, B[i, j] = abs(32 − j)/32.

    Varies with the horizontal position and the size of the sprite.

    Parameters
    ----------
    images : array-like of shape (n, 4096) or (n, 64, 64)

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    return (_project(images, _B_VEC) ** 2 - 3000.0) / 500.0


def area_matrix(seed: int = _AREA_MATRIX_SEED) -> np.ndarray:
    """The seeded 4096 × 10 U(0, 1) matrix M of the "area" structural function."""
    return np.random.default_rng(seed).uniform(0.0, 1.0, size=(N_PIXELS, 10))


def dsprites_area_structural(images, matrix=None) -> np.ndarray:
    """Older dSprites structural function f(a) = (mean_k (aᵀM_k)² − 5000)/1000.

    Nearly a function of the sprite's area only.

    Parameters
    ----------
    images : array-like of shape (n, 4096) or (n, 64, 64)
    matrix : array-like of shape (4096, 10), default=None
        M; None uses :func:`area_matrix` (seed 0).

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    m = area_matrix() if matrix is None else _check_matrix(matrix)
    return (np.mean(_project(images, m) ** 2, axis=1) - 5000.0) / 1000.0


def _check_matrix(matrix) -> np.ndarray:
    if isinstance(matrix, (str, os.PathLike)):
        matrix = np.load(os.fspath(matrix), allow_pickle=False)
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != N_PIXELS:
        raise ValueError(f"matrix must have shape (4096, k), got {m.shape}")
    return m


def _structural(structural: str, matrix):
    if structural == "position":
        if matrix is not None:
            raise ValueError("matrix is only used with structural='area'")
        return dsprites_position_structural
    if structural == "area":
        m = area_matrix() if matrix is None else _check_matrix(matrix)
        return lambda images: dsprites_area_structural(images, m)
    raise ValueError(f"structural must be 'position' or 'area', got {structural!r}")


def _test_ids() -> np.ndarray:
    """Latent ids (scale, orientation, posX, posY) of the 588 test images, posY varying fastest."""
    grid = np.meshgrid(_TEST_SCALES, _TEST_ORIENTATIONS, _TEST_POSITIONS, _TEST_POSITIONS, indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=1).astype(np.int64)


def _draw_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    # Draw order posX, posY, scale, orientation; returned as columns (scale, orientation, posX, posY).
    pos_x = rng.integers(0, LATENT_SIZES[3], size=n)
    pos_y = rng.integers(0, LATENT_SIZES[4], size=n)
    scale = rng.integers(0, LATENT_SIZES[1], size=n)
    orient = rng.integers(0, LATENT_SIZES[2], size=n)
    return np.stack([scale, orient, pos_x, pos_y], axis=1).astype(np.int64)


def _images(ids_list, archive):
    """Clean images (float32, (n, 4096)) for each (n, 4) id array in ids_list; one archive pass."""
    ids = np.concatenate(ids_list, axis=0)
    if archive is None:
        imgs = render_hearts(ids[:, 0], ids[:, 1], ids[:, 2], ids[:, 3])
    else:
        imgs = load_archive_images(archive, ids[:, 0], ids[:, 1], ids[:, 2], ids[:, 3])
    flat = imgs.reshape(ids.shape[0], N_PIXELS).astype(np.float32)
    return np.split(flat, np.cumsum([len(i) for i in ids_list])[:-1])


def _latent_values(ids: np.ndarray) -> np.ndarray:
    return np.stack(
        [scale_value(ids[:, 0]), orientation_value(ids[:, 1]), position_value(ids[:, 2])], axis=1
    )


def _add_pixel_noise(rng: np.random.Generator, images: np.ndarray) -> np.ndarray:
    # N(0, 0.1²) per pixel, drawn as float32 in one call.
    return images + np.float32(0.1) * rng.standard_normal(images.shape, dtype=np.float32)


def dsprites(
    n: int = 5000,
    *,
    seed=0,
    structural: str = "position",
    matrix=None,
    archive=None,
) -> Design:
    """dSprites design (IV): the outcome depends on a heart image whose vertical position is hidden.

    The sprite's vertical position posY confounds the image and the outcome; scale, orientation and
    horizontal position move the image independently of posY and are the instruments.

    Parameters
    ----------
    n : int, default=5000
        Number of training images.
    seed : int, SeedSequence or None, default=0
        Seed of ``numpy.random.default_rng``.
    structural : {"position", "area"}, default="position"
        ``"position"``: f(a) = ((vec(B)ᵀa)² − 3000)/500, B[i, j] = abs(32 − j)/32 (varies with position and
        size). ``"area"``: f(a) = (mean_k (aᵀM_k)² − 5000)/1000 with a 4096 × 10 matrix M (nearly a
        function of the sprite area only).
    matrix : array-like of shape (4096, 10), str or path-like, default=None
        M for ``structural="area"`` (an array or a ``.npy`` path); None uses U(0, 1) entries from
        ``default_rng(0)`` (:func:`area_matrix`).
    archive : str or path-like, default=None
        Path of the official ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``; when given, the hearts
        are taken from it instead of being rendered.

    Returns
    -------
    Design
        ``kind="iv"``; roles (labels, not columns): outcome ``"y"`` (n, 1), treatment ``"image"``
        (n, 4096) float32, instruments ``["scale", "orientation", "posX"]`` (latent values), no
        covariates. ``test_X = {"treatment": (588, 4096)}`` clean images; ``structural_function(images)``
        is f. ``info["latents"]`` / ``info["test_latents"]`` hold the ids (scale, orientation, posX,
        posY).

    Notes
    -----
    Draw order posX, posY, scale, orientation ids, pixel noise, outcome noise::

        posX, posY ~ U{0..31},  scale ~ U{0..5},  orientation ~ U{0..39}
        A = render(scale, orientation, posX, posY) + N(0, 0.1²) per pixel
        Z = (0.5 + 0.1·scale, 2π·orientation/39, posX/31)
        y = f(A) + (posY − 15.5) + N(0, 0.5²)

    f is evaluated (in float64) at the noisy image A, as written. Test: 588 clean images with posX, posY
    ∈ {0, 5, …, 30}, scale ∈ {0, 3, 5}, orientation ∈ {0, 10, 20, 30} (ids; posY varies fastest, then
    posX, orientation, scale).

    References
    ----------
    Matthey, Higgins, Hassabis, Lerchner (2017). dSprites: disentanglement testing sprites dataset.
    Xu, Chen, Srinivasan, de Freitas, Doucet, Gretton (2021). Learning deep features in instrumental
    variable regression. ICLR.

    Examples
    --------
    >>> from deepcausal.datasets import dsprites
    >>> d = dsprites(200, seed=0)
    >>> d.arrays["treatment"].shape, d.arrays["instruments"].shape
    ((200, 4096), (200, 3))
    """
    n = check_n(n)
    f = _structural(structural, matrix)
    rng = np.random.default_rng(seed)
    ids = _draw_ids(rng, n)
    test_ids = _test_ids()
    clean, test_images = _images([ids, test_ids], archive)
    a = _add_pixel_noise(rng, clean)
    y = f(a) + (ids[:, 3] - 15.5) + rng.normal(0.0, 0.5, size=n)
    return Design(
        name=f"dsprites_{structural}",
        kind="iv",
        roles={
            "outcome": ["y"],
            "treatment": ["image"],
            "instruments": ["scale", "orientation", "posX"],
            "covariates": [],
        },
        arrays={"outcome": y.reshape(-1, 1), "treatment": a, "instruments": _latent_values(ids)},
        test_X={"treatment": test_images},
        test_truth=f(test_images),
        train=None,
        structural_function=f,
        info={
            "n": n,
            "seed": seed,
            "structural": structural,
            "archive": None if archive is None else os.fspath(archive),
            "latent_names": _LATENT_NAMES,
            "latents": ids,
            "test_latents": test_ids,
        },
    )


def dsprites_proxy(n: int = 5000, *, seed=0, archive=None) -> Design:
    """dSprites design (PCL): the hidden vertical position scales the effect of a heart image.

    The hidden posY multiplies the outcome and is shared by the treatment image A and a second image W
    (same posY, fixed other latents), the outcome proxy; A's scale, orientation and horizontal position
    are the treatment proxy.

    Parameters
    ----------
    n : int, default=5000
        Number of training images.
    seed : int, SeedSequence or None, default=0
        Seed of ``numpy.random.default_rng``.
    archive : str or path-like, default=None
        Path of the official ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``; when given, the hearts
        are taken from it instead of being rendered.

    Returns
    -------
    Design
        ``kind="proxy"``; roles (labels): outcome ``"y"`` (n, 1), treatment ``"image"`` (n, 4096),
        treatment_proxy ``["scale", "orientation", "posX"]`` (n, 3), outcome_proxy ``"proxy_image"``
        (n, 4096), no covariates. Test set and ``structural_function`` as in :func:`dsprites` (default
        f).

    Notes
    -----
    Draw order posX, posY, scale, orientation ids, A's pixel noise, W's pixel noise, outcome noise::

        A = render(scale, orientation, posX, posY) + N(0, 0.1²)
        Z = (0.5 + 0.1·scale, 2π·orientation/39, posX/31)
        W = render(3, 0, 16, posY) + N(0, 0.1²)
        Y = f(A)·(posY − 15.5)²/85.25 + N(0, 0.5²)

    85.25 = E[(posY − 15.5)²], so the dose-response is E[Y | do(A = a)] = f(a).

    References
    ----------
    Xu, Kanagawa, Gretton (2021). Deep proxy causal learning and its application to confounded bandit
    policy evaluation. NeurIPS.

    Examples
    --------
    >>> from deepcausal.datasets import dsprites_proxy
    >>> d = dsprites_proxy(200, seed=0)
    >>> sorted(d.array_kwargs())
    ['A', 'W', 'X', 'Y', 'Z']
    """
    n = check_n(n)
    f = dsprites_position_structural
    rng = np.random.default_rng(seed)
    ids = _draw_ids(rng, n)
    test_ids = _test_ids()
    w_ids = np.empty_like(ids)
    w_ids[:, :3] = _PROXY_W_IDS
    w_ids[:, 3] = ids[:, 3]
    clean_a, clean_w, test_images = _images([ids, w_ids, test_ids], archive)
    a = _add_pixel_noise(rng, clean_a)
    w = _add_pixel_noise(rng, clean_w)
    y = f(a) * (ids[:, 3] - 15.5) ** 2 / 85.25 + rng.normal(0.0, 0.5, size=n)
    return Design(
        name="dsprites_proxy",
        kind="proxy",
        roles={
            "outcome": ["y"],
            "treatment": ["image"],
            "treatment_proxy": ["scale", "orientation", "posX"],
            "outcome_proxy": ["proxy_image"],
            "covariates": [],
        },
        arrays={
            "outcome": y.reshape(-1, 1),
            "treatment": a,
            "treatment_proxy": _latent_values(ids),
            "outcome_proxy": w,
        },
        test_X={"treatment": test_images},
        test_truth=f(test_images),
        train=None,
        structural_function=f,
        info={
            "n": n,
            "seed": seed,
            "archive": None if archive is None else os.fspath(archive),
            "latent_names": _LATENT_NAMES,
            "latents": ids,
            "test_latents": test_ids,
        },
    )
