"""Figures and tables of the analysis experiments: Fig. 6 (degradation), gradient norms, Fig. 7.

Reference: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016
(arXiv:1512.03385): Fig. 6 (training error dashed, test error solid, plain networks left, ResNets right),
section 3.2 (gradient flow) and Fig. 7 (standard deviations of the 3x3 layer responses).

Every `plot_*` function writes a PNG with matplotlib's Agg backend at a fixed pixel size (`figsize * dpi`,
no tight bounding box), through a temporary file renamed into place. `degradation_table` formats the final
errors of a degradation experiment as markdown with the paper's claim judged, `loss_table` the
cross-entropy and L2 term of its first and last epochs. Labels are model names (`"plain20"`, `"resnet56"`): the
number in a label is its depth, the `plain` prefix picks the panel or line style.

Example:
    >>> curves = {"plain20": {"iteration": [1, 2], "error": [0.9, 0.8], "test_error": [0.9, 0.85]}}
    >>> plot_degradation(curves, "/tmp/fig6.png")  # writes a figure of a finished experiment  # doctest: +SKIP
    '/tmp/fig6.png'
"""

from __future__ import annotations

import os
import re

import numpy as np

from keras_resnet import atomic


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path, dpi):
    """Saves at a fixed pixel size (figsize * dpi; no tight bounding box) via a temporary file."""
    plt = _pyplot()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic.replacing(path, atomic.temporary_name(path, keep_suffix=True), moment="analysis.figure") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")  # published only whole: a kill before the rename leaves the old
        plt.close(fig)
    return path


def _depth_of(label):
    match = re.search(r"(\d+)", label)
    return int(match.group(1)) if match else 0


def _colors(labels):
    depths = sorted({_depth_of(label) for label in labels})
    return {d: f"C{i}" for i, d in enumerate(depths)}


def plot_degradation(curves, path, title=None, figsize=(10, 4), dpi=100):
    """Writes the paper's Fig. 6 as a PNG: plain networks left, ResNets right.

    Training error is dashed, test error solid, against iterations; one colour per depth.

    Args:
        curves: mapping label (e.g. "plain20", "resnet56") -> dict with arrays `iteration`, `error`,
            `test_error` (fractions in 0..1, as in the trainer's log.csv; see `read_log`). Labels starting
            with "plain" go to the left panel, the others to the right.
        path: output PNG path.
        title: optional figure title.
        figsize, dpi: the figure size in inches and its resolution: the PNG is `figsize * dpi` pixels.

    Returns:
        `path`.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=figsize, sharey=True)
    colors = _colors(curves)
    for ax, plain in zip(axes, (True, False)):
        for label, c in sorted(curves.items(), key=lambda kv: _depth_of(kv[0])):
            if label.lower().startswith("plain") != plain:
                continue
            color = colors[_depth_of(label)]
            it = np.asarray(c["iteration"], float)
            ax.plot(it, 100 * np.asarray(c["error"], float), "--", color=color, linewidth=1)
            ax.plot(it, 100 * np.asarray(c["test_error"], float), "-", color=color, linewidth=2,
                    label=f"{'plain' if plain else 'ResNet'}-{_depth_of(label)}")
        ax.set_title("plain networks" if plain else "residual networks")
        ax.set_xlabel("iterations")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(title="dashed: training, solid: test", fontsize=8, title_fontsize=8)
    axes[0].set_ylabel("error (%)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path, dpi)


def degradation_table(results):
    """Markdown table of final training / test errors of a degradation experiment, and the paper's claim.

    Args:
        results: mapping label -> dict with `error` (final training error), `test_error` and `iterations`
            (fractions for the errors).

    Returns:
        str: a markdown table, one row per network (plain first, by depth), followed by one sentence per half
        of the paper's claim where both depths of a kind are present: the deepest plain network above the
        shallowest in training *and* test error (degradation), the deepest ResNet below the shallowest in
        both (the gain from depth), each saying whether it held.

    Example:
        >>> results = {"plain20": {"error": 0.1, "test_error": 0.12, "iterations": 9},
        ...            "plain56": {"error": 0.2, "test_error": 0.22, "iterations": 9}}
        >>> print(degradation_table(results).splitlines()[-1])
        - Plain networks: plain56 has a higher training error than plain20 (20.00% vs 10.00%) and a higher test error than plain20 (22.00% vs 12.00%): degradation holds at 9 iterations.
    """
    lines = ["| network | depth | iterations | training error (%) | test error (%) |",
             "| --- | --- | --- | --- | --- |"]
    order = sorted(results, key=lambda k: (not k.lower().startswith("plain"), _depth_of(k)))
    for label in order:
        r = results[label]
        lines.append(f"| {label} | {_depth_of(label)} | {int(r['iterations'])} | {100 * r['error']:.2f} | "
                     f"{100 * r['test_error']:.2f} |")
    notes = []
    for kind in ("plain", "resnet"):
        labels = [k for k in order if k.lower().startswith(kind)]
        if len(labels) >= 2:
            notes.append(_verdict(kind, results[labels[0]], results[labels[-1]], labels[0], labels[-1]))
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def _verdict(kind, shallow, deep, shallow_label, deep_label):
    """One sentence on one half of the paper's claim: plain (deeper is worse) or ResNet (deeper is better)."""
    def part(key, what):
        d, s = deep[key], shallow[key]
        word = "a higher" if d > s else "a lower" if d < s else "the same"
        link = "as" if d == s else "than"
        return f"{word} {what} {link} {shallow_label} ({100 * d:.2f}% vs {100 * s:.2f}%)"

    if kind == "plain":
        held = deep["error"] > shallow["error"] and deep["test_error"] > shallow["test_error"]
        head, claim = "Plain networks", "degradation"
    else:
        held = deep["error"] < shallow["error"] and deep["test_error"] < shallow["test_error"]
        head, claim = "ResNets", "the gain from depth"
    return (f"- {head}: {deep_label} has {part('error', 'training error')} and {part('test_error', 'test error')}: "
            f"{claim} {'holds' if held else 'does not hold'} at {int(deep['iterations'])} iterations.")


def loss_table(curves, first=5):
    """Markdown table of what each network's loss is made of over its first epochs and at its end.

    Args:
        curves: mapping label -> the arrays of `keras_resnet.analysis.read_log` (`iteration`, `error`,
            `cross_entropy`, `regularization`).
        first: how many first epochs to show (then the last epoch).

    Returns:
        str: a markdown table, one row per network and epoch: iteration, cross-entropy, L2 term, training
        error. A network that left chance shows a cross-entropy falling from about ln(classes).

    Example:
        >>> curves = {"plain20": {"iteration": [10, 20], "error": [0.9, 0.5], "cross_entropy": [2.3, 1.4],
        ...                       "regularization": [0.5, 0.6]}}
        >>> print(loss_table(curves).splitlines()[-1])
        | plain20 | 2 (last) | 20 | 1.4000 | 0.6000 | 50.00 |
    """
    lines = ["| network | epoch | iteration | cross-entropy | L2 term | training error (%) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for label in sorted(curves, key=lambda k: (not k.lower().startswith("plain"), _depth_of(k))):
        c = curves[label]
        n = len(c["iteration"])
        for i in sorted(set(range(min(first, n))) | ({n - 1} if n else set())):
            epoch = f"{i + 1} (last)" if i == n - 1 else str(i + 1)
            lines.append(f"| {label} | {epoch} | {int(c['iteration'][i])} | {float(c['cross_entropy'][i]):.4f} | "
                         f"{float(c['regularization'][i]):.4f} | {100 * float(c['error'][i]):.2f} |")
    return "\n".join(lines) + "\n"


def plot_gradient_norms(panels, path, title=None, figsize=(11, 4), dpi=100):
    """Writes per-layer gradient norms (log scale), input side to output side, one panel per condition.

    Args:
        panels: mapping panel title (e.g. "at initialisation", "after 300 iterations") -> mapping label
            (e.g. "plain56", "resnet56") -> ordered dict layer name -> norm (see `gradient_norms`). Plain
            networks are dashed, ResNets solid, one colour per depth; the x axis is the layer's relative
            position (0 = input, 1 = output) so that depths can share a panel.
        path: output PNG path.
        title: optional figure title.
        figsize, dpi: the PNG is `figsize * dpi` pixels.

    Returns:
        `path`.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=figsize, sharey=True, squeeze=False)
    labels = {label for series in panels.values() for label in series}
    colors = _colors(labels)
    for ax, (panel, series) in zip(axes[0], panels.items()):
        for label, norms in sorted(series.items(), key=lambda kv: (_depth_of(kv[0]), kv[0])):
            values = np.asarray(list(norms.values()), float)
            x = np.linspace(0, 1, len(values)) if len(values) > 1 else np.zeros(1)
            plain = label.lower().startswith("plain")
            ax.plot(x, np.maximum(values, 1e-30), "--" if plain else "-", color=colors[_depth_of(label)],
                    linewidth=1.2, label=f"{'plain' if plain else 'ResNet'}-{_depth_of(label)}")
        ax.set_yscale("log")
        ax.set_title(panel)
        ax.set_xlabel("layer position (input -> output)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("gradient norm of the loss w.r.t. the kernel")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path, dpi)


def plot_layer_responses(responses, path, title=None, figsize=(10, 4), dpi=100):
    """Writes the paper's Fig. 7: std of 3x3 layer responses by layer index (left) and sorted (right).

    Args:
        responses: mapping label (e.g. "plain20", "resnet110") -> ordered dict layer -> std (see
            `layer_responses`). Plain networks dashed, ResNets solid.
        path: output PNG path.
        title: optional figure title.
        figsize, dpi: the PNG is `figsize * dpi` pixels.

    Returns:
        `path`.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=figsize, sharey=True)
    colors = {label: f"C{i}" for i, label in enumerate(
        sorted(responses, key=lambda k: (not k.lower().startswith("plain"), _depth_of(k))))}
    for label in colors:
        values = np.asarray(list(responses[label].values()), float)
        plain = label.lower().startswith("plain")
        style = dict(color=colors[label], linestyle="--" if plain else "-", linewidth=1.2,
                     label=f"{'plain' if plain else 'ResNet'}-{_depth_of(label)}")
        index = np.arange(1, len(values) + 1)
        axes[0].plot(index, values, **style)
        axes[1].plot(index, np.sort(values)[::-1], **style)
    axes[0].set_title("layer index (original)")
    axes[1].set_title("layer index (sorted by magnitude)")
    for ax in axes:
        ax.set_xlabel("layer index")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("std of the 3x3 layer response")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path, dpi)


__all__ = ["degradation_table", "plot_degradation", "plot_gradient_norms", "plot_layer_responses"]
