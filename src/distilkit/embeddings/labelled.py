"""Classification and clustering by embeddings, scored as MTEB scores them.

Classification: a logistic regression (scikit-learn, seeded) fitted on the frozen embeddings of the training texts
predicts the test texts' labels (accuracy, macro-F1); without a training split, every text is predicted by a model
fitted on the other folds (5-fold, stratified). Clustering: k-means with as many clusters as labels (scikit-learn's
MiniBatchKMeans, seeded, as MTEB) on the test texts' embeddings, scored by the V-measure of the clusters against the
labels (Rosenberg & Hirschberg 2007; 1 = each cluster is one label and each label one cluster).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from distilkit.errors import DistilkitError

SEED = 0


@dataclass
class LabelledTexts:
    name: str
    texts: list[str]
    labels: list[str]
    split: list[str] | None = None  # "train" / "test" / other per text; None: cross-validation over all

    @property
    def test(self) -> np.ndarray:
        return np.ones(len(self.texts), bool) if self.split is None else np.asarray(self.split) == "test"

    def label_ids(self) -> tuple[np.ndarray, list[str]]:
        names = sorted(set(self.labels))
        index = {n: i for i, n in enumerate(names)}
        return np.asarray([index[label] for label in self.labels]), names


def bbc_news_topics() -> LabelledTexts:
    """The bodies of every bbc-news article (the retrieval task's documents, in its order) with their topics:
    fitted on the train split, scored on the test split."""
    from distilkit.data import builtin

    splits = builtin.bbc_news_titled()
    rows = [(s, r) for s in ("train", "dev", "test") for r in splits[s]]
    return LabelledTexts(
        "bbc-news topics (train articles → test articles)",
        [r["body"] for _, r in rows],
        [r["label"] for _, r in rows],
        [s for s, _ in rows],
    )


def classify(vectors: np.ndarray, task: LabelledTexts) -> tuple[np.ndarray, np.ndarray]:
    """(gold, predicted) label ids of the test texts."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    gold, _ = task.label_ids()
    model = LogisticRegression(max_iter=1000, random_state=SEED)
    if task.split is None:
        folds = min(5, int(np.bincount(gold).min()))
        if folds < 2:
            raise DistilkitError(f"{task.name}: every label needs at least 2 texts to be predicted by the others")
        predicted = cross_val_predict(model, vectors, gold, cv=StratifiedKFold(folds, shuffle=True, random_state=SEED))
        return gold, predicted
    train, test = np.asarray(task.split) == "train", task.test
    model.fit(vectors[train], gold[train])
    return gold[test], model.predict(vectors[test])


def cluster(vectors: np.ndarray, task: LabelledTexts) -> tuple[np.ndarray, np.ndarray]:
    """(gold label ids, cluster ids) of the test texts."""
    from sklearn.cluster import MiniBatchKMeans

    gold, names = task.label_ids()
    test = task.test
    kmeans = MiniBatchKMeans(n_clusters=len(names), batch_size=32, n_init="auto", random_state=SEED)
    return gold[test], kmeans.fit_predict(vectors[test])
