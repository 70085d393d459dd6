#!/usr/bin/env python3
"""Draw a `sieve explain --json` trace as a picture of the input: each token shaded by how many
layers computed it (dark: every layer; light: dropped early), the question and the specials framed.
For Block-Skim this shows which blocks of a paragraph were skimmed, and after which layer.

    build/sieve explain --model models/minilm-squad -p blockskim:threshold=0.5 \
        "Who won?" --pair "$(cat paragraph.txt)" -o page.html --json trace.json
    .venv/bin/python tools/plot_explain.py trace.json docs/explain/squad-skim.png
"""
import argparse
import json
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import cm, colors  # noqa: E402

CHARS_PER_LINE = 96


def layers_reached(trace):
    """Per token position: the number of layers whose attention it entered."""
    reached = [0] * len(trace["tokens"])
    for layer in trace["layers"]:
        for p in layer["positions"]:
            reached[p] += 1
    return reached


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trace", help="JSON written by sieve explain --json")
    parser.add_argument("out", help="PNG to write")
    args = parser.parse_args()
    with open(args.trace, encoding="utf-8") as f:
        trace = json.load(f)
    tokens = trace["tokens"]
    num_layers = sum(1 for layer in trace["layers"] if layer["positions"]) or 1
    reached = layers_reached(trace)
    context_begin = trace.get("context_begin", 0)

    # Lay the tokens out in lines of a fixed number of monospace characters.
    placed, line, col = [], 0, 0
    for i, token in enumerate(tokens):
        width = len(token) + 1
        if col + width > CHARS_PER_LINE:
            line, col = line + 1, 0
        placed.append((i, line, col, token))
        col += width
    lines = line + 1

    header = f"policy: {trace['policy']}"
    if trace.get("question_answering"):
        header = f"question: {trace['text']}\nanswer: {trace['prediction'] or '(none)'}    " + header
    elif trace.get("prediction"):
        header += f"    prediction: {trace['prediction']}"
    header = "\n".join(textwrap.fill(h, 110) for h in header.split("\n"))

    char_w, line_h = 0.077, 0.30  # inches per character / per line at fontsize 9
    fig_w = CHARS_PER_LINE * char_w + 0.6
    fig_h = lines * line_h + 2.0
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=110)
    ax = fig.add_axes([0.01, 1.0 / fig_h, 0.98, 1 - 1.75 / fig_h])
    ax.set_xlim(0, CHARS_PER_LINE)
    ax.set_ylim(lines, 0)
    ax.axis("off")
    cmap = matplotlib.colormaps["Blues"]
    norm = colors.Normalize(vmin=0, vmax=num_layers)
    for i, ln, c, token in placed:
        shade = cmap(0.15 + 0.75 * norm(reached[i]))
        question = trace.get("question_answering") and i < context_begin
        ax.text(c + 0.1, ln + 0.5, token, family="monospace", fontsize=9, va="center", ha="left",
                color="white" if norm(reached[i]) > 0.6 else "black",
                bbox=dict(boxstyle="square,pad=0.15", facecolor=shade,
                          edgecolor="#d60" if question else "none", linewidth=1.0))
    fig.text(0.01, 1 - 0.12 / fig_h, header, va="top", ha="left", fontsize=9)
    cax = fig.add_axes([0.2, 0.55 / fig_h, 0.6, 0.18 / fig_h])
    steps = colors.ListedColormap([cmap(0.15 + 0.75 * k / num_layers) for k in range(num_layers + 1)])
    bounds = colors.BoundaryNorm([k - 0.5 for k in range(num_layers + 2)], num_layers + 1)
    bar = fig.colorbar(cm.ScalarMappable(norm=bounds, cmap=steps), cax=cax, orientation="horizontal",
                       ticks=range(num_layers + 1))
    bar.set_label("layers that computed the token (orange frame: question and specials, never dropped)", fontsize=8)
    fig.savefig(args.out)
    print(f"wrote {args.out}: {len(tokens)} tokens, {num_layers} layers")


if __name__ == "__main__":
    main()
