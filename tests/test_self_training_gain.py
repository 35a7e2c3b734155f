"""pseudo_label against supervised-only training on the same scarce labels (its own file, so xdist runs it beside the rest)."""

import keras
import numpy as np
import pytest

import zoo
from zoo.text.corpus import split_held_out
from zoo.text.labeled import default_labeled_corpus, scarce_labels

SEEDS = (0, 1, 2, 3)
BATCH_SIZE, EPOCHS = 8, 20
BACKBONE = {"num_layers": 1, "hidden_dim": 64, "num_heads": 2, "intermediate_dim": 128, "sequence_length": 128,
            "precision": "float32"}


def _held_out_accuracies(seed, task):
    """Held-out accuracy supervised-only and self-trained, and the final confident share, for one seed."""
    labeled, labeled_labels, unlabeled = scarce_labels(*task["train"], 0.05, seed=seed)

    def build():
        keras.utils.set_random_seed(seed)
        return zoo.build("bert", objective={"pseudo_label": {
            "classes": task["classes"], "pooling": "mean", "ramp_up_steps": 50,
        }}, seed=seed, **BACKBONE)

    def accuracy(model):
        return model.evaluate(*task["held_out"], verbose=0, return_dict=True)["pseudo_label_accuracy"]

    self_trained = build()
    history = self_trained.fit({"labeled": (labeled, labeled_labels), "unlabeled": unlabeled},
                               batch_size=BATCH_SIZE, epochs=EPOCHS, verbose=0)
    steps = int(self_trained.optimizer.iterations.numpy())
    ratio = self_trained.objectives[0].unlabeled_ratio
    assert steps == EPOCHS * -(-len(unlabeled) // (BATCH_SIZE * ratio))
    # the same labeled texts for as many optimizer steps of BATCH_SIZE labeled texts, reshuffled each pass
    rng = np.random.default_rng(seed)
    passes = -(-steps * BATCH_SIZE // len(labeled))
    order = np.concatenate([rng.permutation(len(labeled)) for _ in range(passes)])[: steps * BATCH_SIZE]
    supervised = build()
    supervised.fit([labeled[i] for i in order], [labeled_labels[i] for i in order], batch_size=BATCH_SIZE,
                   epochs=1, shuffle=False, verbose=0)
    assert int(supervised.optimizer.iterations.numpy()) == steps
    return accuracy(supervised), accuracy(self_trained), history.history["pseudo_label_confident"][-1]


@pytest.mark.slow
def test_self_training_beats_supervised_only_on_scarce_labels():
    """40 labeled docstrings (5%) of 4 packages, 760 unlabeled, 314 held out; seeds 0 to 3.

    Same backbone, head, labeled texts, seeds and optimizer steps (280 of 8
    labeled texts) in both arms; the self-trained arm also sees 56 unlabeled
    texts a step (half their tokens hidden from the student) with the
    teacher's confident labels. The mean over four seeds is what is tested:
    one seed's outcome moves by several points with the vocabulary, which
    the tokenizer trainer draws anew in each fresh cache.
    """
    texts, labels, classes = default_labeled_corpus()
    label_of = dict(zip(texts, labels))
    train, held_out = split_held_out(texts, 0.25)
    task = {"classes": classes, "train": (train, [label_of[t] for t in train]),
            "held_out": (held_out, [label_of[t] for t in held_out])}
    results = [_held_out_accuracies(seed, task) for seed in SEEDS]
    for seed, (supervised, self_trained, confident) in zip(SEEDS, results):
        print(f"seed {seed}: held-out accuracy supervised-only {supervised:.3f}, self-trained {self_trained:.3f} "
              f"(confident share at the end {confident:.2f})")
    supervised, self_trained, confident = np.mean(results, axis=0)
    print(f"mean: supervised-only {supervised:.3f}, self-trained {self_trained:.3f}")
    assert 0.25 < supervised < 0.9 and confident > 0.3  # a real task that 40 labels do not solve; labels were used
    assert self_trained > supervised + 0.03, (
        f"self-trained {self_trained:.3f} is not above supervised-only {supervised:.3f} + 0.03 (mean of seeds {SEEDS})"
    )
