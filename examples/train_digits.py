"""LeNet-5 built from fastconv.nn, trained on the handwritten digits scikit-learn ships (1797 8x8
images, no download), next to the same network built from torch.nn trained from the same seed.
Then fastconv.fully_convolutional turns the trained network into its fully convolutional form,
which reads a canvas of several digits and gives a map of class scores: one per 32x32 window,
every 4 pixels.

    python examples/train_digits.py [--epochs 12] [--out examples_out]

Prints both test accuracies and writes loss_curves.png and class_map.png to --out.
"""

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from tqdm import tqdm  # noqa: E402

import fastconv  # noqa: E402
from architectures import LeNet5  # noqa: E402

IMAGE = 32  # LeNet-5's input size


def load_data(seed: int, limit=None):
    """Train and test images, 32x32 and normalised, as MNIST is for LeNet-5: each 8x8 digit
    enlarged to 28x28 and padded by 2. A stratified quarter of the digits is held out for testing;
    `limit` keeps only the first that many training images (for quick runs)."""
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16  # pixel values 0..16
    images = F.pad(
        F.interpolate(images, size=28, mode="bilinear", align_corners=False), (2, 2, 2, 2)
    )
    labels = torch.tensor(digits.target)
    train, test = train_test_split(
        torch.arange(len(labels)), test_size=0.25, stratify=labels, random_state=seed
    )
    train = train[:limit]
    mean, std = images[train].mean(), images[train].std()
    images = (images - mean) / std
    return (images[train], labels[train]), (images[test], labels[test])


def evaluate(model, images, labels):
    """(mean cross-entropy, accuracy in %)."""
    model.eval()
    with torch.no_grad():
        scores = model(images)
    return F.cross_entropy(scores, labels).item(), 100.0 * (
        scores.argmax(1) == labels
    ).float().mean().item()


def train(nn, name, train_set, test_set, args):
    """LeNet-5 from the namespace `nn`, trained with Adam; everything random drawn from args.seed,
    so the torch.nn and fastconv.nn networks start equal and see the same batches."""
    torch.manual_seed(args.seed)
    model = LeNet5(nn)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    batches = torch.Generator().manual_seed(args.seed)
    images, labels = train_set
    history = {"train": [], "test": []}
    progress = tqdm(range(args.epochs), desc=f"{name:>11}", unit="epoch")
    for _ in progress:
        model.train()
        total = 0.0
        for batch in torch.randperm(len(labels), generator=batches).split(args.batch_size):
            loss = F.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        history["train"].append(total / len(labels))
        test_loss, accuracy = evaluate(model, *test_set)
        history["test"].append(test_loss)
        progress.set_postfix(loss=f"{history['train'][-1]:.3f}", test_accuracy=f"{accuracy:.1f}%")
    return model, history, accuracy


def plot_losses(histories, path: Path):
    fig, ax = plt.subplots(figsize=(6, 4))
    # The first network's curves drawn wide, the second's thin on top: where they agree both show.
    for (name, history), color, width in zip(
        histories.items(), ("tab:blue", "tab:orange"), (5, 1.5)
    ):
        epochs = range(1, len(history["train"]) + 1)
        ax.plot(epochs, history["train"], color=color, linewidth=width, label=f"{name}, train")
        ax.plot(
            epochs,
            history["test"],
            color=color,
            linewidth=width,
            linestyle="--",
            label=f"{name}, test",
        )
    ax.set(
        xlabel="epoch",
        ylabel="mean cross-entropy",
        yscale="log",
        title="LeNet-5 on scikit-learn's digits",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def class_map(lenet, test_set, args):
    """Tiles 2x3 test digits into a 64x96 canvas and runs the trained LeNet-5 made fully
    convolutional on it (its dense layers as 5x5 and 1x1 convolutions with the same weights): a
    9x17 map of class scores, one per 32x32 window, 4 pixels apart.
    The windows at map rows 0 and 8, columns 0, 8 and 16 fall exactly on a digit."""
    images, labels = test_set
    rows, cols = 2, 3
    picks = torch.randperm(len(labels), generator=torch.Generator().manual_seed(args.seed))[
        : rows * cols
    ]
    canvas = (
        images[picks]
        .view(rows, cols, IMAGE, IMAGE)
        .permute(0, 2, 1, 3)
        .reshape(1, 1, rows * IMAGE, cols * IMAGE)
    )
    model = fastconv.fully_convolutional(lenet, (1, 1, IMAGE, IMAGE)).eval()
    with torch.no_grad():
        scores = model(canvas)[0]  # (10, 9, 17)
    predicted = scores.argmax(0)
    step = IMAGE // 4  # map positions from one digit to the next

    def on_digit(i, j):
        return i % step == 0 and j % step == 0

    print(
        f"\nclass map of a {rows}x{cols} canvas of test digits ({rows * IMAGE}x{cols * IMAGE} "
        "pixels), argmax every 4 pixels; [x] marks a window on a digit, the others straddle two:"
    )
    for i, row in enumerate(predicted.tolist()):
        print("  " + " ".join(f"[{c}]" if on_digit(i, j) else f" {c} " for j, c in enumerate(row)))
    print(
        f"at the digits: predicted {predicted[::step, ::step].flatten().tolist()}, true "
        f"{labels[picks].tolist()}"
    )

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7.5))
    top.imshow(canvas[0, 0].numpy(), cmap="gray_r")
    top.set(
        title=f"canvas: {rows}x{cols} test digits, true classes {labels[picks].tolist()}",
        xlabel="x (pixels)",
        ylabel="y (pixels)",
    )
    confidence = scores.softmax(0).max(0).values.numpy()
    image = bottom.imshow(confidence, cmap="viridis", vmin=0, vmax=1)
    for i, row in enumerate(predicted.tolist()):
        for j, c in enumerate(row):
            on = on_digit(i, j)
            # Dark digits on the light (confident) end of the colour map, light ones on the dark
            # end.
            bottom.text(
                j,
                i,
                str(c),
                ha="center",
                va="center",
                fontsize=11 if on else 8,
                weight="bold",
                color="black" if confidence[i, j] > 0.55 else "white",
            )
    window_step = 4  # pixels between neighbouring windows
    bottom.set_xticks(
        range(0, predicted.shape[1], 2),
        [str(window_step * j) for j in range(0, predicted.shape[1], 2)],
    )
    bottom.set_yticks(
        range(predicted.shape[0]), [str(window_step * i) for i in range(predicted.shape[0])]
    )
    bottom.set(
        title="predicted class per 32x32 window (large: a window on a digit)",
        xlabel="window's left edge in the canvas (pixels)",
        ylabel="window's top edge (pixels)",
    )
    fig.colorbar(image, ax=bottom, label="softmax probability of the predicted class", shrink=0.9)
    fig.tight_layout()
    fig.savefig(Path(args.out) / "class_map.png", dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--limit", type=int, default=None, help="train on only this many images (quick runs)"
    )
    parser.add_argument("--out", default="examples_out", help="folder for the PNGs")
    args = parser.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    train_set, test_set = load_data(args.seed, args.limit)
    print(
        f"scikit-learn digits: {len(train_set[1])} training and {len(test_set[1])} test images, "
        "32x32"
    )
    fast, fast_history, fast_accuracy = train(fastconv.nn, "fastconv.nn", train_set, test_set, args)
    _, torch_history, torch_accuracy = train(torch.nn, "torch.nn", train_set, test_set, args)
    plot_losses(
        {"fastconv.nn": fast_history, "torch.nn": torch_history}, Path(args.out) / "loss_curves.png"
    )
    print(
        f"test accuracy: fastconv.nn LeNet-5 {fast_accuracy:.2f}%, torch.nn LeNet-5 "
        f"{torch_accuracy:.2f}% (difference {fast_accuracy - torch_accuracy:+.2f} points)"
    )
    gap = max(abs(a - b) for a, b in zip(fast_history["train"], torch_history["train"]))
    print(f"largest difference between the two training-loss curves: {gap:.1e}")
    class_map(fast, test_set, args)
    print(
        f"wrote {Path(args.out) / 'loss_curves.png'} and {Path(args.out) / 'class_map.png'} "
        f"({time.perf_counter() - start:.0f} s)"
    )
    return {"fastconv": fast_accuracy, "torch": torch_accuracy}


if __name__ == "__main__":
    main()
