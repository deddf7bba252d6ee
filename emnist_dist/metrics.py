"""Classification metrics for EMNIST, on torchmetrics so they reduce across DDP ranks.

``EvalMetrics`` is updated with each rank's exact shard; ``compute()`` must then be called
on every rank (it all-reduces the metric states; calling it on rank 0 alone would hang).
"""

from __future__ import annotations

import torch
from torchmetrics import MeanMetric, MetricCollection, SumMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

TOP_K = 5


def case_groups(class_names: list[str]) -> torch.Tensor | None:
    """Map each class index to the index of its case-folded name (A and a share one group).

    Returns None when no two classes differ only by case (every split but byclass), where
    case-insensitive accuracy would equal plain accuracy and is not reported.
    """
    folded = [name.lower() for name in class_names]
    if len(set(folded)) == len(folded):
        return None
    groups = {name: i for i, name in enumerate(dict.fromkeys(folded))}
    return torch.tensor([groups[name] for name in folded])


class EvalMetrics:
    """Accuracy (micro), top-5 accuracy (the target among the 5 highest logits), balanced accuracy,
    macro/weighted F1, mean loss, sample count, the confusion matrix and, for byclass,
    case-insensitive accuracy.

    Balanced accuracy is the mean recall over the classes present in the targets (as scikit-learn
    defines it). It comes from the confusion matrix because torchmetrics' macro recall also counts
    classes that were only predicted, never seen, as zero recall.
    """

    def __init__(self, class_names: list[str], device: torch.device | str = "cpu"):
        num_classes = len(class_names)
        metrics = {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "top5_acc": MulticlassAccuracy(num_classes, top_k=min(TOP_K, num_classes), average="micro"),
            "macro_f1": MulticlassF1Score(num_classes, average="macro"),
            "weighted_f1": MulticlassF1Score(num_classes, average="weighted"),
        }
        groups = case_groups(class_names)
        if groups is not None:
            metrics["case_insensitive_acc"] = MulticlassAccuracy(int(groups.max()) + 1, average="micro")
            groups = groups.to(device)
        self.groups = groups
        self.classification = MetricCollection(metrics).to(device)
        self.confusion = MulticlassConfusionMatrix(num_classes).to(device)
        self.loss = MeanMetric().to(device)
        self.num_samples = SumMetric().to(device)

    @torch.no_grad()
    def update(self, logits: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor | None = None) -> None:
        """Add a batch: logits ``(B, C)``, int targets ``(B,)``, optional mean loss of the batch."""
        preds = logits.argmax(dim=1)
        for name, metric in self.classification.items():
            if name == "case_insensitive_acc":
                metric.update(self.groups[preds], self.groups[targets])
            elif name == "top5_acc":
                metric.update(logits, targets)
            else:
                metric.update(preds, targets)
        self.confusion.update(preds, targets)
        if loss is not None:
            self.loss.update(loss.detach().float(), weight=targets.numel())
        self.num_samples.update(torch.tensor(float(targets.numel()), device=targets.device))

    def compute(self) -> dict[str, float]:
        """All-reduced metrics as plain floats (call on every rank)."""
        out = {name: float(value) for name, value in self.classification.compute().items()}
        out["balanced_acc"] = balanced_accuracy(self.confusion.compute())
        if self.loss.update_count:
            out["loss"] = float(self.loss.compute())
        out["num_samples"] = int(self.num_samples.compute())
        return out


def balanced_accuracy(confusion: torch.Tensor) -> float:
    """Mean per-class recall over the classes with support (rows: true class, columns: prediction)."""
    support = confusion.sum(dim=1)
    present = support > 0
    recall = confusion.diagonal()[present].double() / support[present].double()
    return float(recall.mean()) if present.any() else 0.0


def compute_metrics(logits: torch.Tensor, targets: torch.Tensor, class_names: list[str]) -> dict[str, float]:
    """Single-process metrics of logits ``(N, C)`` against targets (same keys as EvalMetrics)."""
    metrics = EvalMetrics(class_names, device=logits.device)
    metrics.update(logits, targets)
    return metrics.compute()
