"""Reading the neurons: per-neuron MLP activation statistics in both towers (chapters 04–05).

A neuron is one input coordinate of an MLP's ``down_proj`` (language model) or ``fc2`` (vision
tower), found by :func:`mini_unlearn.models.find_mlp_neurons`. A forward *pre*-hook on that module
sees the activations ``h`` of shape ``[batch, tokens, width]``.

Per sample, the tokens are aggregated into one value per neuron — explicitly:

* ``"mean"`` (default): the mean over the sample's real tokens. In the language model the padding
  (``attention_mask == 0``) is left out, and ``language_tokens`` says whether the image
  placeholders count (``"all"``, the default) or only the text — chat template, question and
  answer (``"text"``: what MANU compares across views). In the vision tower every patch (and CLS)
  is a token;
* ``"last"``: the last real token (the position that predicts the answer).

Then :class:`NeuronStats` accumulates, per neuron, the count, sum, sum of absolute values, sum of
squares and the number of values above a threshold τ of those per-sample values — streaming, so
memory does not grow with the data. Means, variances, RMS and firing frequencies follow from them
(MANU's four importance functions, chapter 05). A text-only batch never runs the vision tower: its vision neurons get no
samples (count 0), which :meth:`NeuronStats.mean` reports as NaN rather than 0.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from ..models.anatomy import NeuronSite, find_mlp_neurons
from .. import distributed, validate
from ..models.prompts import question_prompt
from ..models.vlm import VLM

AGGREGATIONS: tuple[str, ...] = ("mean", "last")
LANGUAGE_TOKENS: tuple[str, ...] = ("all", "text")


TAU = 0.1   # MANU's firing threshold (paper and code)
STAT_FIELDS: tuple[str, ...] = ("total", "total_abs", "total_sq", "above", "abs_above")
BATCH_STATISTICS: tuple[str, ...] = ("mean_abs", "abs_above", "std", "rms")
RELEASED_CHUNK = 10   # the released MANU code averages its per-batch statistics in chunks of 10 batches


def batch_statistics(values: torch.Tensor, tau: float = TAU) -> torch.Tensor:
    """``[4, width]``: the released MANU code's statistics of one batch, over its samples (the rows of
    ``values``): mean ``|x|``, the share of ``|x| > τ``, the sample standard deviation (``torch.std``:
    divided by n − 1; NaN for a one-sample batch) and ``sqrt(mean x²)`` — :data:`BATCH_STATISTICS`."""
    values = values.detach().double().cpu()
    if values.shape[0] > 1:
        std = values.std(dim=0)
    else:
        std = torch.full(values.shape[1:], float("nan"), dtype=torch.float64)
    return torch.stack([values.abs().mean(dim=0), (values.abs() > tau).double().mean(dim=0), std,
                        (values ** 2).mean(dim=0).sqrt()])


@dataclass
class BatchAverages:
    """The released MANU code's aggregation: per-batch statistics, averaged over the batches.

    Each :meth:`add` is one batch, the batch with index ``index`` in the whole stream. Its four
    statistics (:func:`batch_statistics`) are averaged over each *chunk* of :data:`RELEASED_CHUNK`
    consecutive batches, and the chunk averages are averaged (the last chunk may hold fewer batches and
    counts as one). A batch is not weighted by its number of samples, so the result depends on the
    batch size. Streaming: ``closed`` sums the statistics of the chunks before the current one (full
    chunks, 10 batches each), ``open`` those of the current chunk, whatever the number of batches.
    """

    tau: float = TAU
    batches: int = 0
    single_sample_batches: int = 0
    open_chunk: int = 0
    closed: torch.Tensor | None = None
    open: torch.Tensor | None = None

    def add(self, values: torch.Tensor, index: int) -> None:
        """Add one batch, ``[samples, width]``."""
        statistics = batch_statistics(values, self.tau)
        if self.open is None:
            self.closed, self.open = torch.zeros_like(statistics), torch.zeros_like(statistics)
        chunk = index // RELEASED_CHUNK
        if chunk != self.open_chunk:          # the current chunk is complete
            self.closed += self.open
            self.open = torch.zeros_like(statistics)
            self.open_chunk = chunk
        self.open += statistics
        self.batches += 1
        self.single_sample_batches += int(values.shape[0] == 1)

    def sum_across_processes(self, width: int) -> None:
        """Merge every process's batches. The launcher deals batches round robin (:func:`..distributed.shard`),
        so a chunk's batches may sit on several processes: a process's current chunk is closed unless it is
        the last chunk of all, then ``closed`` and ``open`` add up across processes."""
        if not distributed.is_distributed():
            return
        zeros = torch.zeros(len(BATCH_STATISTICS), width, dtype=torch.float64)
        closed = self.closed if self.closed is not None else zeros.clone()
        open_ = self.open if self.open is not None else zeros.clone()
        counts = distributed.all_sum(torch.tensor([float(self.batches), float(self.single_sample_batches)],
                                                  dtype=torch.float64))
        self.batches, self.single_sample_batches = int(counts[0].item()), int(counts[1].item())
        last_chunk = max(self.batches - 1, 0) // RELEASED_CHUNK
        if self.open_chunk != last_chunk:
            closed, open_ = closed + open_, zeros.clone()
        self.closed, self.open = distributed.all_sum(closed.clone()), distributed.all_sum(open_.clone())
        self.open_chunk = last_chunk

    def averages(self, width: int, what: str = "this set") -> dict[str, torch.Tensor]:
        """Per neuron, each of :data:`BATCH_STATISTICS` averaged over the chunks of batches (NaN with no batch).

        A one-sample batch has no n − 1 standard deviation: ``torch.std`` gives NaN there, which would make
        the released code's I_var NaN for every neuron of the site (and its selection prune nothing in that
        tower). Refused with a ValueError instead, naming ``batch_size``."""
        if self.batches == 0:
            nan = torch.full((width,), float("nan"), dtype=torch.float64)
            return {name: nan.clone() for name in BATCH_STATISTICS}
        if self.single_sample_batches:
            raise ValueError(f"{what}: {self.single_sample_batches} of its {self.batches} batches hold a single "
                             "sample, which has no n − 1 standard deviation (the released MANU code's I_var is NaN "
                             "then, and it prunes nothing in that tower); choose a batch_size that leaves at least "
                             "2 samples in the last batch")
        chunks = (self.batches - 1) // RELEASED_CHUNK + 1
        in_last_chunk = self.batches - RELEASED_CHUNK * (chunks - 1)
        average = (self.closed / RELEASED_CHUNK + self.open / in_last_chunk) / chunks
        return dict(zip(BATCH_STATISTICS, average))


@dataclass
class NeuronStats:
    """Streaming per-neuron statistics of one site's per-sample values.

    ``count`` samples; per neuron the sum, the sum of ``|x|``, the sum of ``x²``, and how many values
    were above ``tau`` (``above``, ``x > τ``: the paper's frequency) and had ``|x| > τ``
    (``abs_above``: the released code's). Each :meth:`add` is one batch: ``per_batch``
    (:class:`BatchAverages`) keeps the released code's per-batch statistics of the same values.
    """

    site: NeuronSite
    tau: float = TAU
    count: int = 0
    total: torch.Tensor | None = None
    total_abs: torch.Tensor | None = None
    total_sq: torch.Tensor | None = None
    above: torch.Tensor | None = None
    abs_above: torch.Tensor | None = None
    per_batch: BatchAverages | None = field(default=None, repr=False)
    dealt: bool = True        # under a launcher the batches were dealt out (each process saw its share); False:
    #                           every process saw every batch (a sharded model's forward runs on all together)

    def __post_init__(self):
        if self.per_batch is None:
            self.per_batch = BatchAverages(self.tau)

    def add(self, values: torch.Tensor) -> None:
        """Add one batch of ``[samples, width]`` per-sample activations."""
        values = values.detach().double().cpu()
        # the batch's index in the whole stream: a launcher deals batches round robin (distributed.shard)
        index = self.per_batch.batches * distributed.world_size() + distributed.rank() if self.dealt \
            else self.per_batch.batches
        self.per_batch.add(values, index)
        if self.total is None:
            zeros = torch.zeros(values.shape[-1], dtype=torch.float64)
            self.total, self.total_abs, self.total_sq = zeros.clone(), zeros.clone(), zeros.clone()
            self.above, self.abs_above = zeros.clone(), zeros.clone()
        self.count += values.shape[0]
        self.total += values.sum(0)
        self.total_abs += values.abs().sum(0)
        self.total_sq += (values ** 2).sum(0)
        self.above += (values > self.tau).sum(0)
        self.abs_above += (values.abs() > self.tau).sum(0)

    def sum_across_processes(self) -> None:
        """Add every process's sums (:func:`..distributed.all_sum`): each then holds the totals of all
        the samples, as if one process had seen them. A no-op on one process, and when every process saw
        every batch (``dealt=False``)."""
        if not distributed.is_distributed() or not self.dealt:
            return
        sums = torch.stack([self._zeros_if_empty(getattr(self, attr)) for attr in STAT_FIELDS])
        count = torch.tensor([float(self.count)], dtype=torch.float64)
        distributed.all_sum(sums)
        self.count = int(distributed.all_sum(count).item())
        for attr, total in zip(STAT_FIELDS, sums):
            setattr(self, attr, total.clone())
        self.per_batch.sum_across_processes(self.site.width)

    def _zeros_if_empty(self, value: torch.Tensor | None) -> torch.Tensor:
        return value if value is not None else torch.zeros(self.site.width, dtype=torch.float64)

    def sums(self) -> dict[str, torch.Tensor]:
        """The raw sums (zeros when no sample was seen): sum, sum_abs, sum_sq, above, abs_above."""
        return {name: self._zeros_if_empty(getattr(self, attr)) for name, attr in
                (("sum", "total"), ("sum_abs", "total_abs"), ("sum_sq", "total_sq"), ("above", "above"),
                 ("abs_above", "abs_above"))}

    def mean(self) -> torch.Tensor:
        if not self.count:
            return torch.full((self.site.width,), float("nan"), dtype=torch.float64)
        return self.total / self.count

    def mean_abs(self) -> torch.Tensor:
        if not self.count:
            return torch.full((self.site.width,), float("nan"), dtype=torch.float64)
        return self.total_abs / self.count

    def mean_square(self) -> torch.Tensor:
        if not self.count:
            return torch.full((self.site.width,), float("nan"), dtype=torch.float64)
        return self.total_sq / self.count

    def variance(self) -> torch.Tensor:
        """Population variance over samples (``E[x²] − E[x]²``, clamped at 0 against rounding)."""
        return (self.mean_square() - self.mean() ** 2).clamp(min=0)

    def rms(self) -> torch.Tensor:
        return self.mean_square().sqrt()

    def batch_averages(self) -> dict[str, torch.Tensor]:
        """The released MANU code's statistics: per batch, then averaged (:meth:`BatchAverages.averages`)."""
        return self.per_batch.averages(self.site.width, f"site {self.site.name}")


def aggregate_tokens(h: torch.Tensor, mask: torch.Tensor | None, how: str = "mean") -> torch.Tensor:
    """``[batch, tokens, width]`` activations → ``[batch, width]``: mean over real tokens, or the last one.

    ``mask`` (``[batch, tokens]``, 1 = real token) may be None (every token is real). Rows are
    left-padded, so the last real token is the last position.
    """
    validate.one_of(how, "aggregation", AGGREGATIONS)
    if h.dim() == 2:                       # a single sequence without a batch axis
        h = h.unsqueeze(0)
    if how == "last":
        return h[:, -1]
    if mask is None:
        return h.mean(dim=1)
    mask = mask.to(h.dtype).unsqueeze(-1)
    return (h * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


@contextmanager
def recording(model, sites: list[NeuronSite], on_activation):
    """Within the block, ``on_activation(site, h)`` is called with every site's neuron activations."""
    module_of = model.model if isinstance(model, VLM) else model
    handles = []
    for site in sites:
        def hook(_module, args, site=site):
            on_activation(site, args[0])
        handles.append(site.module(module_of).register_forward_pre_hook(hook))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def collect_stats(vlm: VLM, batches, *, sites: list[NeuronSite] | None = None, aggregation: str = "mean",
                  towers: tuple[str, ...] = ("vision", "language"), tau: float = TAU,
                  language_tokens: str = "all") -> dict[str, NeuronStats]:
    """Stream ``batches`` (dicts of model inputs) through the model; per-site :class:`NeuronStats`.

    Keys are the sites' module names. The language model's token mask is the batch's attention mask,
    without the image placeholder tokens when ``language_tokens="text"``. Under a multi-process
    launcher each process streams its share of the batches (:func:`..distributed.shard`) and the
    sums are added across processes: every process returns the statistics of all of them. A sharded
    model (FSDP2) runs every batch on every process instead: its forward pass is a collective, and the
    hooks see whole activations (each block's weights are gathered before it runs).
    """
    validate.one_of(aggregation, "aggregation", AGGREGATIONS)
    validate.one_of(language_tokens, "language_tokens", LANGUAGE_TOKENS, hint="'text': without the image placeholders")
    image_token = vlm.model.config.image_token_id if language_tokens == "text" else None
    unknown = [t for t in towers if t not in ("vision", "language")]
    if unknown:
        raise ValueError(f"unknown tower {unknown}; expected 'vision' and/or 'language'")
    sites = [s for s in (sites or find_mlp_neurons(vlm.model)) if s.tower in towers]
    dealt = distributed.holds_whole(vlm.model)      # a sharded model runs every batch on every process, together
    stats = {site.name: NeuronStats(site, tau, dealt=dealt) for site in sites}
    current_mask: list[torch.Tensor | None] = [None]
    patches: list[list[int] | None] = [None]         # Qwen-VL: each image's patch count

    def on_activation(site, h):
        if site.tower == "vision" and h.dim() == 2 and patches[0] is not None:
            # Qwen-VL's vision tower runs every image's patches as one sequence: one sample per image
            stats[site.name].add(torch.cat([aggregate_tokens(part, None, aggregation)
                                            for part in h.split(patches[0])]))
            return
        mask = current_mask[0] if site.tower == "language" else None
        if mask is not None and mask.shape[:2] != h.shape[:2]:
            mask = None
        stats[site.name].add(aggregate_tokens(h, mask, aggregation))

    model = vlm.model
    was_training = model.training
    model.eval()
    try:
        with recording(model, sites, on_activation), torch.inference_mode():
            for batch in distributed.shard(batches) if dealt else batches:
                batch = {k: v.to(vlm.device) for k, v in batch.items() if k != "labels"}
                mask = batch.get("attention_mask")
                if mask is not None and language_tokens == "text":
                    mask = mask * (batch["input_ids"] != image_token).to(mask.dtype)
                current_mask[0] = mask
                grid = batch.get("image_grid_thw")
                patches[0] = grid.prod(dim=-1).tolist() if grid is not None else None
                model(**batch)
    finally:
        model.train(was_training)
    for site_stats in stats.values():
        site_stats.sum_across_processes()
    return stats


def question_batches(vlm: VLM, questions, batch_size: int = 32):
    """Model inputs for evaluation questions (their prompts and portraits), by modality, in order."""
    for has_image in (True, False):
        chosen = [q for q in questions if (q.image is not None) == has_image]
        for start in range(0, len(chosen), batch_size):
            chunk = chosen[start:start + batch_size]
            images = [q.image.load() for q in chunk] if has_image else None
            yield vlm.encode([question_prompt(q) for q in chunk], images)


def mean_activations(vlm: VLM, questions, *, aggregation: str = "mean", batch_size: int = 32,
                     towers: tuple[str, ...] = ("vision", "language")) -> dict[str, torch.Tensor]:
    """Per site, the mean activation of each neuron over ``questions`` (NaN where the site never ran)."""
    stats = collect_stats(vlm, question_batches(vlm, questions, batch_size), aggregation=aggregation, towers=towers)
    return {name: s.mean() for name, s in stats.items()}


__all__ = ["AGGREGATIONS", "BATCH_STATISTICS", "LANGUAGE_TOKENS", "RELEASED_CHUNK", "TAU", "BatchAverages",
           "NeuronStats", "batch_statistics", "aggregate_tokens", "collect_stats", "mean_activations",
           "question_batches", "recording"]
