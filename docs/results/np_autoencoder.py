"""Figures and tables of the node-perturbation autoencoder (docs/results/np_autoencoder.md).

Reads the sweep store written by ``neurosim sweep protocols/np_autoencoder_fig3.yaml`` (the
MNIST autoencoder 784-200-2-200-784 of Lansdell, Prakash & Kording 2020, fig. 3) and writes,
beside this file (or to ``--out``):

* ``np_autoencoder_curves.csv``: per method, seed and evaluation, the train and test loss;
* ``np_autoencoder_summary.csv``: per method, the final losses and the digit accuracy of a
  k-nearest-neighbour classifier on the 2-D code (mean and standard error over seeds);
* ``np_autoencoder_feedback.csv``: ‖W − B‖/‖W‖, sign congruence and signal angle of the
  feedback matrices during training (NP and FA);
* ``np_autoencoder_tables.md``: the summary and feedback tables of the results page;
* ``np_autoencoder_loss.png``: loss curves, mean ± s.e. over seeds (fig. 3A);
* ``np_autoencoder_latent.png``: the 2-D bottleneck of test images coloured by digit (fig. 3B);
* ``np_autoencoder_recon.png``: sample test reconstructions (fig. 3C).

The trained networks are rebuilt from each run's protocol and final checkpoint; the images
are MNIST's test set (``NEUROSIM_DATA_DIR``).

    python docs/results/np_autoencoder.py runs/np_autoencoder_fig3.zarr
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

#: test images drawn in the latent-space panels and used for the kNN measure
N_LATENT = 5000
#: neighbours of the kNN digit classifier on the 2-D code
K = 10


def method(protocol: dict) -> str:
    """The fig. 3 name of a run's method: NP, FA (fixed B: rule ``fa``, or node perturbation
    with ``feedback_lr`` 0), DAE (BP with input noise), BP (SGD) or BP (Adam), the paper's
    "backpropagation" and "ADAM" curves."""
    rule = protocol["rule"]["name"]
    if rule == "node_perturbation":
        return "FA" if protocol["rule"]["feedback_lr"] == 0 else "NP"
    if rule == "bp":
        if protocol["training"].get("input_noise"):
            return "DAE"
        return "BP (SGD)" if protocol["optimizer"]["name"] == "sgd" else "BP (Adam)"
    return rule.upper()


ORDER = ("NP", "FA", "BP (Adam)", "DAE", "BP (SGD)")
COLOURS = {"NP": "tab:red", "FA": "tab:blue", "BP (Adam)": "tab:green", "DAE": "tab:purple",
           "BP (SGD)": "tab:olive"}


def runs(path) -> list[dict]:
    """Finished runs of the sweep: method, seed, the run store."""
    from neurosim.analysis.reader import open_sweep

    out = []
    for e in open_sweep(path).entries:
        if e.run is None or e.status != "finished":
            continue
        p = e.run.protocol
        out.append({"method": method(p), "seed": e.seed, "run": e.run, "protocol": p})
    return sorted(out, key=lambda r: (_rank(r["method"]), r["seed"]))


def _rank(name: str) -> tuple:
    return (ORDER.index(name) if name in ORDER else len(ORDER), name)


def network(run):
    """The run's network with its final (checkpointed) parameters."""
    from neurosim import experiment

    exp = experiment.build(run.protocol, device="cpu", data=False)
    state, _ = run.checkpoint()
    exp.load_state(state)
    return exp.net


def encode(net, x, batch: int = 2000):
    """(2-D code, reconstruction) of images ``x``: the bottleneck layer's activity and the
    network's output."""
    codes, recs = [], []
    for i in range(0, len(x), batch):
        out, states = net.forward(x[i:i + batch])
        codes.append(np.asarray(states[1].a).reshape(len(out), -1))
        recs.append(np.asarray(out))
    return np.concatenate(codes), np.concatenate(recs)


def knn_accuracy(code, labels, k: int = K) -> float:
    """Digit accuracy (%) of a k-nearest-neighbour vote on the 2-D code: the first half of
    the images are the reference, the second half are classified (how well the bottleneck
    separates the digits, whatever its scale)."""
    code = (code - code.mean(0)) / (code.std(0) + 1e-12)
    n = len(code) // 2
    ref, q = code[:n], code[n:]
    d = ((q[:, None, :] - ref[None, :, :]) ** 2).sum(-1)
    nn = np.argpartition(d, k, axis=1)[:, :k]
    votes = labels[:n][nn]
    pred = np.array([np.bincount(v, minlength=10).argmax() for v in votes])
    return float((pred == labels[n:]).mean() * 100)


def _se(v):
    v = np.asarray(v, float)
    return float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")


def curves(rs) -> list[dict]:
    rows = []
    for r in rs:
        run = r["run"]
        for ep, tr, te, wall in zip(run.values("epoch"), run.values("train_loss"),
                                    run.values("test_loss"), run.values("wall_time")):
            rows.append({"method": r["method"], "seed": r["seed"], "epoch": float(ep),
                         "train_loss": float(tr), "test_loss": float(te), "wall_s": float(wall)})
    return rows


FEEDBACK = ("fb_relative_error", "fb_sign_congruence", "fb_signal_angle")


def feedback(rs) -> list[dict]:
    """Per method, seed, recorded step and feedback layer: ‖W − B‖/‖W‖, sign congruence and
    the angle between the synthetic and the true ∂L/∂a (rules with feedback matrices)."""
    rows = []
    for r in rs:
        run = r["run"]
        if not run.has("fb_relative_error"):
            continue
        ds = run.ds
        for i, step in enumerate(ds["feedback_step"].values):
            for j, layer in enumerate(ds["feedback_layer"].values):
                vals = {k: float(ds[k].values[i, j]) for k in FEEDBACK}
                if np.isnan(vals["fb_relative_error"]):
                    continue  # the first layer has no feedback matrix
                rows.append({"method": r["method"], "seed": r["seed"], "step": int(step),
                             "layer": int(layer), **vals})
    return rows


def write_csv(rows, path: Path) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for row in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return path


def plot_losses(rs, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for m in dict.fromkeys(r["method"] for r in rs):
        mine = [r["run"] for r in rs if r["method"] == m]
        n = min(x.values("epoch").size for x in mine)
        ep = mine[0].values("epoch")[:n]
        colour = COLOURS.get(m)
        for key, style in (("test_loss", "-"), ("train_loss", "--")):
            v = np.stack([x.values(key)[:n] for x in mine])
            mean = v.mean(0)
            se = v.std(0, ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.zeros_like(mean)
            ax.plot(ep, mean, style, color=colour,
                    label=f"{m} (n={len(v)})" if key == "test_loss" else None)
            ax.fill_between(ep, mean - se, mean + se, color=colour, alpha=0.25, lw=0)
    ax.plot([], [], "k-", label="test")
    ax.plot([], [], "k--", label="train")
    ax.set_xlabel("epoch")
    ax.set_ylabel("reconstruction loss ½‖x̂ − x‖² (per image)")
    ax.set_title("MNIST autoencoder 784-200-2-200-784: mean ± s.e. over seeds", fontsize=10)
    lo = min(min(r["run"].values("test_loss")[1:].min(), r["run"].values("train_loss")[1:].min())
             for r in rs)
    hi = max(r["run"].values("test_loss")[1:].max() for r in rs)
    ax.set_ylim(lo - 1, hi + 1)  # epoch 0 (untrained, ~115) off the top
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_latents(panels, labels, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(3.3 * n, 3.6))
    axes = np.atleast_1d(axes)
    cmap = plt.get_cmap("tab10")
    for ax, (title, code) in zip(axes, panels):
        for d in range(10):
            s = labels == d
            ax.scatter(code[s, 0], code[s, 1], s=2, color=cmap(d), alpha=0.6, lw=0, label=str(d))
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [plt.Line2D([], [], marker="o", ls="", color=cmap(d), label=str(d)) for d in range(10)]
    fig.legend(handles=handles, loc="center right", title="digit", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.93, 1))
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_reconstructions(x, rows, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("input", x.reshape(len(x), -1))] + rows
    n = x.shape[0]
    fig, axes = plt.subplots(len(rows), n, figsize=(0.8 * n + 0.9, 0.85 * len(rows)))
    for i, (name, imgs) in enumerate(rows):
        for j in range(n):
            ax = axes[i, j]
            ax.imshow(imgs[j].reshape(28, 28), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    fig.subplots_adjust(left=0.1, right=0.99, top=0.99, bottom=0.01, wspace=0.05, hspace=0.05)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def summary_markdown(rows) -> str:
    lines = ["| method | seeds | epochs | test loss | train loss | kNN digit accuracy of the code (%) "
             "| wall s per run (shared cores) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['seeds']} | {r['epochs']:g} | {r['test_loss']:.2f} ± "
                     f"{r['test_loss_se']:.2f} | {r['train_loss']:.2f} ± {r['train_loss_se']:.2f} | "
                     f"{r['knn_digit_accuracy']:.1f} ± {r['knn_digit_accuracy_se']:.1f} | "
                     f"{r['wall_s_per_run']:.0f} |")
    return "\n".join(lines) + "\n"


def feedback_markdown(fb) -> str:
    """First and last recorded step, per method and layer: mean over seeds."""
    lines = ["| method | layer | step | ‖W − B‖/‖W‖ | sign congruence | angle synthetic vs true ∂L/∂a (°) |",
             "|---|---|---|---|---|---|"]
    keys = sorted({(r["method"], r["layer"]) for r in fb}, key=lambda k: (_rank(k[0]), k[1]))
    for m, layer in keys:
        mine = [r for r in fb if r["method"] == m and r["layer"] == layer]
        steps = sorted({r["step"] for r in mine})
        for step in (steps[0], steps[-1]):
            at = [r for r in mine if r["step"] == step]
            v = {k: np.median([r[k] for r in at]) if k == "fb_relative_error" else
                 np.mean([r[k] for r in at]) for k in FEEDBACK}
            lines.append(f"| {m} | {layer} | {step} | {v['fb_relative_error']:.2f} | "
                         f"{v['fb_sign_congruence']:.3f} | {v['fb_signal_angle']:.1f} |")
    return "\n".join(lines) + "\n\n(‖W − B‖/‖W‖: median over seeds; the others: mean.)\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store", help="the sweep store (runs/np_autoencoder_fig3.zarr)")
    ap.add_argument("--out", default=str(Path(__file__).parent), help="output directory")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    from neurosim.data import load_dataset

    rs = runs(a.store)
    if not rs:
        raise SystemExit(f"{a.store}: no finished runs")
    p = rs[0]["protocol"]["data"]
    ds = load_dataset("mnist", root=p.get("root"), **(p.get("options") or {}))
    x, labels = ds.x_test[:N_LATENT], ds.labels_test[:N_LATENT]
    # one test image of each digit for the reconstructions
    show = np.array([int(np.flatnonzero(labels == d)[0]) for d in range(10)])

    summary, latents, recons = {}, [], []
    for r in rs:
        code, rec = encode(network(r["run"]), x)
        run = r["run"]
        s = summary.setdefault(r["method"], {"test": [], "train": [], "knn": [], "epochs": [],
                                             "wall": []})
        s["test"].append(float(run.values("test_loss")[-1]))
        s["train"].append(float(run.values("train_loss")[-1]))
        s["knn"].append(knn_accuracy(code, labels))
        s["epochs"].append(float(run.values("epoch")[-1]))
        s["wall"].append(float(run.values("wall_time")[-1]))
        if r["seed"] == min(q["seed"] for q in rs if q["method"] == r["method"]):
            latents.append((f"{r['method']} (seed {r['seed']}): test loss {s['test'][-1]:.1f}", code))
            recons.append((r["method"], rec[show]))
    rows = [{"method": m, "seeds": len(v["test"]), "epochs": v["epochs"][0],
             "test_loss": np.mean(v["test"]), "test_loss_se": _se(v["test"]),
             "train_loss": np.mean(v["train"]), "train_loss_se": _se(v["train"]),
             "knn_digit_accuracy": np.mean(v["knn"]), "knn_digit_accuracy_se": _se(v["knn"]),
             "wall_s_per_run": np.mean(v["wall"])} for m, v in summary.items()]
    fb = feedback(rs)
    tables = summary_markdown(rows) + "\n" + (feedback_markdown(fb) if fb else "")
    (out / "np_autoencoder_tables.md").write_text(tables)
    print(tables)
    for f in (write_csv(curves(rs), out / "np_autoencoder_curves.csv"),
              *([write_csv(fb, out / "np_autoencoder_feedback.csv")] if fb else []),
              write_csv(rows, out / "np_autoencoder_summary.csv"),
              plot_losses(rs, out / "np_autoencoder_loss.png"),
              plot_latents(latents, labels, out / "np_autoencoder_latent.png"),
              plot_reconstructions(x[show], recons, out / "np_autoencoder_recon.png")):
        print(f)


if __name__ == "__main__":
    main()
