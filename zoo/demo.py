"""Pretrain a tiny BERT with masked LM on the embedded default corpus.

Run ``python -m zoo.demo``: it prints the held-out loss and accuracy before
and after three epochs over the corpus (the docstrings of the running Python's
standard library), then fills in a mask. Takes a few minutes on 2 CPU cores.
"""

from __future__ import annotations


def main(epochs: int = 3) -> dict:
    """Train, print and return the held-out metrics before and after training."""
    import keras
    import numpy as np

    import zoo
    from zoo.text.corpus import default_corpus, split_held_out

    keras.utils.set_random_seed(0)
    train, held_out = split_held_out(default_corpus())
    model = zoo.build("bert", objective="mlm")
    print(f"bert (tiny) + mlm: {model.count_params():,} parameters, {len(train):,} training documents")
    before = model.evaluate(held_out, return_dict=True, verbose=0)
    model.fit(train, batch_size=32, epochs=epochs)
    after = model.evaluate(held_out, return_dict=True, verbose=0)
    for name, metrics in (("before", before), ("after", after)):
        print(f"held-out {name:<6}: loss {metrics['loss']:.3f}, accuracy {metrics['mlm_accuracy']:.3f}")
    query = "Return the [MASK] of the list."
    logits = model.predict([query], verbose=0)["mlm"][0, 0]
    best = [model.tokenizer.id_to_token(int(i)) for i in np.argsort(logits)[::-1][:5]]
    print(f"{query!r}: {', '.join(best)}")
    return {"before": before, "after": after}


if __name__ == "__main__":
    main()
