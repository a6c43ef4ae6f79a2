# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2 · Image treatments: DFIV on dSprites
#
# The treatment does not have to be a number. Here it is a 64×64 **image of a heart** (the dSprites
# benchmark), and the outcome depends on the image through an unknown function f. The heart's vertical
# position **posY** is hidden and confounds the outcome; its scale, orientation and horizontal position
# **posX** move the image independently of posY and serve as **instruments**.
#
# The design (`deepcausal.datasets.dsprites`):
#
#     A = render(scale, orientation, posX, posY) + N(0, 0.1²) per pixel      (4,096 numbers)
#     Z = (scale, orientation, posX)                                          (instruments)
#     y = f(A) + (posY − 15.5) + N(0, 0.5²)                                   (posY is not observed)
#     f(a) = ((vec(B)ᵀa)² − 3000)/500,   B[i, j] = |32 − j|/32
#
# DFIV's treatment network for inputs with ≥ 1,024 columns is a spectral-normalised tanh MLP on the
# pixels; nothing else changes.

# %%
# Size switch: the tests set DEEPCAUSAL_NOTEBOOK_SMALL=1 to run this notebook in seconds on tiny data.
import os
SMALL = os.environ.get("DEEPCAUSAL_NOTEBOOK_SMALL") == "1"
print("size:", "small (smoke test)" if SMALL else "full")

import warnings
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm's notice when ipywidgets is absent

import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

torch.set_num_threads(1)

from deepcausal import DFIV
from deepcausal.datasets import dsprites, render_hearts

# %matplotlib inline
plt.rcParams["figure.dpi"] = 90

N = 600 if SMALL else 5000               # training images
EPOCHS = 2 if SMALL else 20              # epochs of every fit
BATCHES = (64, 256) if SMALL else (64, 512)   # batch sizes compared in section 5

# %% [markdown]
# ## 1. The hearts and their latents
#
# Hearts are rendered from four latent ids: scale 0..5, orientation 0..39, posX 0..31 and posY 0..31
# (`deepcausal.datasets.render_hearts`). Each row below varies one latent and keeps the others at a
# middle value.

# %%
base = dict(scale=3, orientation=0, pos_x=16, pos_y=16)
rows = {"scale": [0, 1, 2, 3, 4, 5], "orientation": [0, 5, 10, 15, 20, 30],
        "pos_x": [0, 6, 12, 18, 24, 31], "pos_y": [0, 6, 12, 18, 24, 31]}
fig, axes = plt.subplots(4, 6, figsize=(10, 7))
for r, (name, values) in enumerate(rows.items()):
    ids = {k: np.full(6, v) for k, v in base.items()}
    ids[name] = np.array(values)
    images = render_hearts(ids["scale"], ids["orientation"], ids["pos_x"], ids["pos_y"])
    for c in range(6):
        axes[r, c].imshow(images[c], cmap="gray")
        axes[r, c].set_xticks([]); axes[r, c].set_yticks([])
        axes[r, c].set_title(f"{name}={values[c]}", fontsize=9)
fig.suptitle("rendered hearts: one latent varies per row")
fig.tight_layout()

# %%
d = dsprites(N, seed=0)
print(d)
latents = pd.DataFrame(d.info["latents"], columns=d.info["latent_names"])
Y = d.arrays["outcome"]          # (n, 1)
A = d.arrays["treatment"]        # (n, 4096) noisy images
Z = d.arrays["instruments"]      # (n, 3) scale, orientation, posX values

fig, axes = plt.subplots(1, 6, figsize=(13, 2.8))
for i, ax in enumerate(axes):
    ax.imshow(A[i].reshape(64, 64), cmap="gray")
    ax.set_xticks([]); ax.set_yticks([])
    l = latents.iloc[i]
    ax.set_title(f"y={Y[i, 0]:.1f}\nscale {l['scale']}, orient {l['orientation']}\nposX {l['posX']}, posY {l['posY']}",
                 fontsize=8)
fig.suptitle("training images (with pixel noise), their outcome and latent ids", y=1.08);

# %% [markdown]
# ## 2. The structural function and the confounder
#
# f weighs each pixel by its distance from the vertical centre line (B below), so f grows with the
# heart's size and with how far it is from the centre horizontally. posY does not enter f at all, yet it
# shifts the outcome by posY − 15.5: a network regressing y on the image would learn to read the heart's
# height from the pixels and attribute that shift to the image.

# %%
f_train = d.structural_function(A)        # f at the (noisy) training images
B = np.tile(np.abs(32.0 - np.arange(64)) / 32.0, (64, 1))

fig, axes = plt.subplots(1, 3, figsize=(15, 4))
im = axes[0].imshow(B, cmap="viridis")
axes[0].set_title("pixel weights B of f")
fig.colorbar(im, ax=axes[0])
sc = axes[1].scatter(f_train, Y[:, 0], c=latents["posY"], s=4, cmap="coolwarm")
axes[1].set(xlabel="f(A), the structural part", ylabel="observed y", title="y = f(A) + confounding + noise")
fig.colorbar(sc, ax=axes[1], label="posY (hidden)")
axes[2].scatter(latents["posY"] + np.random.default_rng(0).uniform(-0.3, 0.3, N), Y[:, 0] - f_train, s=3, alpha=0.3)
axes[2].set(xlabel="posY id (hidden)", ylabel="y − f(A)", title="the confounder shifts the outcome")
fig.tight_layout()

print("correlation of posY with the instruments:",
      np.round([np.corrcoef(latents["posY"], latents[c])[0, 1] for c in ("scale", "orientation", "posX")], 3))

# %% [markdown]
# ## 3. Fit DFIV with the image backbone
#
# The arrays interface follows econml: `fit(Y, T, Z=Z)`. The validation set (the 588 clean test images
# and the true f on them) only records the test MSE per epoch.

# %%
test_images, test_truth = d.test_X["treatment"], d.test_truth
start = time.perf_counter()
# One member (n_estimators=1): this section looks inside a single training run; the default averages 5.
est = DFIV(n_estimators=1, n_epochs=EPOCHS, batch_size=256, random_state=0).fit(
    Y, A, Z=Z, validation=(test_images, None, test_truth))
print(f"fit: {time.perf_counter() - start:.1f} s, {EPOCHS} epochs on {N} images")
net = est.nets_["treatment"]
widths = [m.in_features for m in net if hasattr(m, "in_features")] + [net[-2].out_features]
print("treatment network: spectral-normalised tanh MLP", " → ".join(map(str, widths)),
      f"({sum(p.numel() for p in net.parameters()):,} parameters)")

pred_refit = est.predict(test_images)
pred_current = est.predict(test_images, heads="current")
print(f"variance of f on the test images: {test_truth.var():.2f}")
print(f"structural MSE   refit heads: {d.score(pred_refit):.2f}   current heads: {d.score(pred_current):.2f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
lim = [test_truth.min() - 1, test_truth.max() + 1]
axes[0].scatter(test_truth, pred_refit, s=8, alpha=0.6, label=f"refit heads (MSE {d.score(pred_refit):.2f})")
axes[0].scatter(test_truth, pred_current, s=8, alpha=0.6, label=f"current heads (MSE {d.score(pred_current):.2f})")
axes[0].plot(lim, lim, "k--", lw=1)
axes[0].set(xlabel="true f(a)", ylabel="DFIV estimate", title="588 test images: predicted vs true")
axes[0].legend()
h = est.history_
axes[1].plot(h["epoch"], h["val_mse_current"], "o-", label="current heads")
axes[1].plot(h["epoch"], h["val_mse_refit"], "s--", label="refit heads")
axes[1].set(xlabel="epoch", ylabel="structural MSE", yscale="log", title="test MSE during training")
axes[1].legend()
fig.tight_layout()

# %% [markdown]
# ## 4. Current heads vs refit heads
#
# The **current heads** are the linear heads as the proximal solver left them after the last minibatch;
# the **refit heads** are re-solved once on all rows of each stage half by streaming FᵀF and FᵀY
# (`refit_heads=True`, the default for `predict`). If the proximal solver does its job the two are
# close, and the per-epoch curves above show how their gap evolves during training.
#
# ## 5. Batch size and the proximal coefficient
#
# Small batches make each step cheap, but a head solved on a small batch is noisy. We compare, at two
# batch sizes, proximal heads with λ₁ = λ₂ = 0.1 (the default at batch 512; by default λ scales as
# 1/batch size) with the per-batch ridge ablation (all λ = 0,
# each batch refits the heads from scratch), scoring both the current and the refit heads.

# %%
rows = []
for batch in BATCHES:
    for label, lams in (("proximal (λ = 0.1)", dict(lam1=0.1, lam2=0.1, lam12=0.0)),
                        ("per-batch ridge (λ = 0)", dict(lam1=0.0, lam2=0.0, lam12=0.0))):
        start = time.perf_counter()
        m = DFIV(n_estimators=1, early_stopping=False, n_epochs=EPOCHS, batch_size=batch, random_state=0,
                 **lams).fit(Y, A, Z=Z)  # single fits, fixed epochs: the sweep compares solvers
        rows.append({"batch": batch, "heads solver": label,
                     "MSE current": d.score(m.predict(test_images, heads="current")),
                     "MSE refit": d.score(m.predict(test_images)),
                     "fit s": time.perf_counter() - start})
batch_table = pd.DataFrame(rows)
batch_table.round(2)

# %%
fig, ax = plt.subplots(figsize=(9, 4))
labels = [f"batch {r['batch']}\n{r['heads solver']}" for _, r in batch_table.iterrows()]
x = np.arange(len(batch_table))
ax.bar(x - 0.2, batch_table["MSE current"], 0.4, label="current heads")
ax.bar(x + 0.2, batch_table["MSE refit"], 0.4, label="refit heads")
ax.set_xticks(x, labels, fontsize=8)
ax.set(ylabel="structural MSE", title=f"dSprites, n = {N}, {EPOCHS} epochs")
ax.legend();

# %% [markdown]
# How to read it: the refit heads are the best the learned features allow; the current heads show what
# the minibatch solver itself delivers. In this run (one seed, n = 5,000, 20 epochs):
#
# * the smaller batch is better for both solvers, mostly because it takes 8× more gradient steps per epoch
#   (40 instead of 5), at about 3× the time;
# * current and refit heads stay within roughly 5–30% of each other everywhere, and the per-batch ridge
#   ablation (λ = 0) is as good as the proximal heads or better — on this design and budget, the proximal
#   term does not pay off.
#
# That is not the whole story. In notebook 1 (demand, batch 128) λ = 0 made training unstable, and in
# the larger dSprites run of `benchmarks/RESULTS.md` ("DFIV: dSprites batch sizes", n = 10,000) the
# per-batch ridge current heads scored 11.1 against 6.3 for the proximal ones at batch 64. With a single
# seed, differences of the size seen in this table are within the seed-to-seed variation: compare settings
# over several seeds before drawing conclusions.
#
# **Next:** [03_proxy_causal_learning](03_proxy_causal_learning.ipynb): what to do when there is no
# instrument.
