"""Layer-level pipeline parallelism over chunk blocks (METHOD.md section 10): every send and recv.

Rank r of P owns the contiguous chunk block `plan_blocks(K, P)[r]` of one sample and a full
replica of the model. For each layer l it waits for the layer-l memory leaving rank r-1's last
chunk, runs layer l over its own chunks (the memory recurrence, METHOD.md 6.1), and passes the
layer-l memory leaving its last chunk on to rank r+1. Forward time is about L+P-1 "boxes" (one
layer over one block) instead of P*L when each rank waits for the whole forward of the one before
("naive" context parallelism, kept here for the benchmark). Every rank is given the same full
sample and computes only its own block: simple and deterministic, at the price of each rank
tokenising the whole sample; rank 0 could instead scatter the blocks (the official code does).

Why the autograd tricks
-----------------------
Each rank calls `loss.backward()` on its *local* loss, so gradients that cross a block boundary
must travel through the graph by hand:

* Receiving is `_RecvMemory`, an autograd Function whose input is a fresh leaf `anchor` that
  requires grad (so autograd records the node at all) and whose outputs are the received
  tensors. Its backward runs once every local use of the received memory has been
  differentiated, and it SENDS that gradient back to rank r-1.
* Sending is `_SendMemory`, an identity Function on the outgoing memory tensors. Its backward
  RECEIVES the gradient of that memory from rank r+1 and adds it to the local one.
* Gradient connector: on the sending rank nothing local uses the memory leaving the last chunk,
  so autograd would never visit `_SendMemory.backward`, rank r would never receive, rank r+1
  would block forever in its send. Adding `0 * sum(sent tensors)` to the last local chunk's
  hidden states (right after layer l, so that node becomes ready exactly when the backward wave
  reaches layer l) puts the send into the loss graph without changing a single value.
* The backward is then the mirrored wavefront: the last rank needs nobody, and rank r waits for
  rank r+1 only at `_SendMemory.backward` of layer l. Autograd runs ready nodes newest first
  (by sequence number), so rank r sends its layer-l+1 gradient before it waits for layer l:
  gradients only ever flow from higher ranks to lower ones, so there is no cycle to deadlock on.

Sends are non-blocking (`isend`) and drained at the end of the forward and after the last
gradient send of the backward: gloo's blocking send would otherwise stall the sender until the
receiver reaches the matching recv. Tags keep layers apart on gloo; NCCL ignores tags, and the
order of sends and receives is the same on both sides of every link, which is what it needs.

Never hanging: `init_pipeline` sets a collective timeout, so a peer that disappears turns into
an error after `timeout_s` at worst. `pipeline_loss` and `pipeline_step` abort the process group
when they raise (`abort_on_error`): the peers' pending receives then fail at once ("connection
closed by peer" on gloo) instead of waiting for the timeout. After an abort the process group is
gone; re-initialise it to continue.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist

from comet_cli.errors import RecipeError
from comet_cli.finetune.pipeline_plan import plan_blocks, slot_counts_at
from comet_models.chunked import Engine
from comet_models.memory import LayerMemory

SCHEDULES = ("wavefront", "naive")
# tag = 4 * layer + slot (+2 for gradients); slot 0 is the global state, 1 the FIFO
_GRAD_TAG = 2


def init_pipeline(backend: str | None = None, timeout_s: float = 300.0) -> None:
    """Initialise the default process group from torchrun's environment, with a timeout.

    backend None picks nccl when CUDA is available, else gloo. The timeout bounds every
    collective and point-to-point wait: a crashed peer becomes an error, never a hang."""
    if dist.is_initialized():
        return
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))


def abort(group=None) -> None:
    """Tear the process group down so that peers blocked on this rank fail instead of waiting."""
    if not dist.is_initialized():
        return
    # NCCL may block in destroy while operations are in flight; abort is the non-blocking path
    abort_fn = getattr(dist.distributed_c10d, "_abort_process_group", None)
    with contextlib.suppress(Exception):
        if abort_fn is not None and dist.get_backend(group) == "nccl":
            abort_fn(group)
            return
        dist.destroy_process_group(group)


@contextlib.contextmanager
def abort_on_error(group=None, enabled: bool = True):
    """Abort the process group if the body raises, then re-raise."""
    try:
        yield
    except BaseException:
        if enabled:
            abort(group)
        raise


@dataclass
class _Link:
    """This rank's place in the pipeline and its in-flight sends (kept alive until waited)."""

    group: object
    rank: int
    world: int
    prev: int | None  # global rank of r-1
    next: int | None  # global rank of r+1
    wire_dtype: torch.dtype
    pending: list = field(default_factory=list)
    trace: list | None = None

    def isend(self, t: torch.Tensor, dst: int, tag: int) -> None:
        t = t.detach().to(self.wire_dtype).contiguous()
        self.pending.append((dist.isend(t, dst, group=self.group, tag=tag), t))

    def recv(self, shapes: list[tuple], tags: list[int], src: int, device) -> list[torch.Tensor]:
        bufs = [torch.empty(s, dtype=self.wire_dtype, device=device) for s in shapes]
        works = [dist.irecv(b, src, group=self.group, tag=t) for b, t in zip(bufs, tags)]
        for w in works:
            w.wait()
        return bufs

    def drain(self) -> None:
        for w, _ in self.pending:
            w.wait()
        self.pending.clear()

    def note(self, event: str, layer: int, start: float, end: float) -> None:
        if self.trace is not None:
            self.trace.append({"rank": self.rank, "event": event, "layer": layer, "start": start, "end": end})


class _RecvMemory(torch.autograd.Function):
    """Forward: receive memory tensors from rank r-1. Backward: send their gradient back to it."""

    @staticmethod
    def forward(ctx, anchor, link, shapes, tags, layer, last):
        t0 = time.time()
        bufs = link.recv(shapes, tags, link.prev, anchor.device)
        link.note("recv_wait", layer, t0, time.time())
        ctx.link, ctx.tags, ctx.layer, ctx.last = link, tags, layer, last
        return tuple(bufs)

    @staticmethod
    def backward(ctx, *grads):
        link = ctx.link
        for g, tag in zip(grads, ctx.tags):
            link.isend(g, link.prev, tag + _GRAD_TAG)
        link.note("grad_sent", ctx.layer, time.time(), time.time())
        # the layer-0 receive is the last gradient this rank sends in the backward
        if ctx.last:
            link.drain()
        return (None,) * 6


class _SendMemory(torch.autograd.Function):
    """Forward: send memory tensors to rank r+1 (identity). Backward: receive their gradient."""

    @staticmethod
    def forward(ctx, link, tags, layer, *tensors):
        for t, tag in zip(tensors, tags):
            link.isend(t, link.next, tag)
        ctx.link, ctx.tags, ctx.layer = link, tags, layer
        ctx.meta = [(t.shape, t.dtype) for t in tensors]
        return tensors

    @staticmethod
    def backward(ctx, *grads):
        link = ctx.link
        t0 = time.time()
        got = link.recv([s for s, _ in ctx.meta], [t + _GRAD_TAG for t in ctx.tags], link.next, grads[0].device)
        link.note("grad_wait", ctx.layer, t0, time.time())
        return (None, None, None) + tuple(g + r.to(d) for g, r, (_, d) in zip(grads, got, ctx.meta))


def _memory_shapes(chunk_sizes, cfg, k: int, batch: int, hidden: int, keep_temp: bool = True) -> list[tuple]:
    """Shapes of the non-empty memory tensors entering chunk k: [global (B,G,H)], [FIFO (B,P,H)]."""
    n_global, n_temp = slot_counts_at(chunk_sizes, cfg, k, keep_temp)
    return [(batch, n, hidden) for n in (n_global, n_temp) if n]


def _memory_tensors(mem: LayerMemory) -> list[torch.Tensor]:
    return [t for t in (mem.global_state, mem.temp_memory) if t is not None and t.shape[1]]


def _as_memory(tensors, shapes_present: tuple[bool, bool]) -> LayerMemory:
    it = iter(tensors)
    return LayerMemory(next(it) if shapes_present[0] else None, next(it) if shapes_present[1] else None)


def _tags(layer: int, n: int) -> list[int]:
    return [4 * layer + i for i in range(n)]


def _rank_world(group) -> tuple[int, int]:
    """(rank, world) in the group; one rank when no process group exists (plain training)."""
    if not dist.is_initialized():
        return 0, 1
    return dist.get_rank(group), dist.get_world_size(group)


def _check_same_sample(input_ids, labels, chunk_sizes, group, device) -> None:
    """Every rank must be given the same sample and chunk plan; compare cheap fingerprints."""
    w = torch.arange(1, input_ids.numel() + 1, dtype=torch.long)
    fp = torch.tensor([len(chunk_sizes), sum(chunk_sizes), hash(tuple(chunk_sizes)) % (1 << 40),
                       int((input_ids.detach().cpu().long().flatten() * w).sum()),
                       int((labels.detach().cpu().long().flatten() * w).sum())], dtype=torch.long, device=device)
    both = torch.cat([fp, -fp])
    dist.all_reduce(both, op=dist.ReduceOp.MAX, group=group)
    if not torch.equal(both[: fp.numel()], -both[fp.numel():]):
        raise RecipeError("pipeline ranks were given different samples or chunk plans; "
                          "every rank must call pipeline_loss with the same input_ids, labels and chunk_sizes")


def pipeline_loss(model, input_ids: torch.Tensor, labels: torch.Tensor, chunk_sizes: list[int],
                  group=None, schedule: str = "wavefront", trace: list | None = None,
                  abort_on_failure: bool = True, keep_temp: bool = True,
                  gate_power: float = 1.0) -> tuple[torch.Tensor, int]:
    """This rank's share of `sequence_loss`: (summed loss over its chunks, its supervised count).

    Every rank passes the same full (B, N) sample; labels already shifted, -100 = unsupervised.
    Call `.backward()` on the returned loss on every rank, then `allreduce_grads`: the summed
    gradients equal those of single-process `sequence_loss(...)[0].backward()`. For a mean loss
    divide by the global count, which every rank knows without communication:
    `int((labels != -100).sum())`. `trace`, if a list, receives timing events (benchmarks).
    keep_temp=False runs without temporary memory and gate_power raises the global gates to a power
    (models.chunked.Engine), on every rank alike.
    Without an initialised process group it runs as one rank (the whole sample, no messages)."""
    if schedule not in SCHEDULES:
        raise RecipeError(f"pipeline schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if sum(chunk_sizes) != input_ids.shape[1] or input_ids.shape != labels.shape:
        raise RecipeError(f"chunk sizes sum to {sum(chunk_sizes)} but the sample has {input_ids.shape[1]} "
                          f"tokens (labels {tuple(labels.shape)}, input_ids {tuple(input_ids.shape)})")
    with abort_on_error(group, abort_on_failure):
        return _pipeline_forward(model, input_ids, labels, chunk_sizes, group, schedule, trace, keep_temp,
                                 gate_power)


def _pipeline_forward(model, input_ids, labels, chunk_sizes, group, schedule, trace, keep_temp=True,
                      gate_power=1.0):
    eng = Engine(model, keep_temp, gate_power)
    cfg, device = eng.cfg, eng.device
    rank, world = _rank_world(group)
    block = plan_blocks(len(chunk_sizes), world)[rank]
    if world > 1:
        _check_same_sample(input_ids, labels, chunk_sizes, group, device)
    batch, hidden, n_layers = input_ids.shape[0], eng.embed.weight.shape[1], len(eng.layers)

    def peer(r):
        return (r if group is None else dist.get_global_rank(group, r)) if 0 <= r < world else None

    link = _Link(group, rank, world, peer(rank - 1), peer(rank + 1), eng.embed.weight.dtype, trace=trace)
    bounds = [0]
    for n in chunk_sizes:
        bounds.append(bounds[-1] + n)

    # local chunk inputs; layouts need only the slot counts entering each chunk (from the plan)
    ids, ctxs = [], []
    for k in block:
        n_global, n_temp = slot_counts_at(chunk_sizes, cfg, k, keep_temp)
        shape_only = LayerMemory(torch.empty(batch, n_global, 0) if n_global else None,
                                 torch.empty(batch, n_temp, 0) if n_temp else None)
        i, c = eng.prepare(input_ids[:, bounds[k]:bounds[k + 1]], [shape_only], closed=True)
        ids.append(i)
        ctxs.append(c)
    hs = [eng.embed(i) for i in ids]

    in_counts = slot_counts_at(chunk_sizes, cfg, block.start, keep_temp)
    in_shapes = _memory_shapes(chunk_sizes, cfg, block.start, batch, hidden, keep_temp) if rank > 0 else []
    out_shapes = _memory_shapes(chunk_sizes, cfg, block.stop, batch, hidden, keep_temp) if rank < world - 1 else []
    present = (in_counts[0] > 0, in_counts[1] > 0)
    anchor = torch.zeros((), device=device, requires_grad=torch.is_grad_enabled())

    def receive(layers) -> list[LayerMemory]:
        if not in_shapes:
            return [LayerMemory(None, None) for _ in layers]
        n = len(in_shapes)
        tags = [t for l in layers for t in _tags(l, n)]
        got = _RecvMemory.apply(anchor, link, in_shapes * len(layers), tags, layers[0], layers[0] == 0)
        return [_as_memory(got[j * n:(j + 1) * n], present) for j in range(len(layers))]

    def send(layers, mems: list[LayerMemory]) -> None:
        if not out_shapes:
            return
        tensors = [t for m in mems for t in _memory_tensors(m)]
        shapes = [tuple(t.shape) for t in tensors]
        if shapes != out_shapes * len(layers):
            raise RuntimeError(f"pipeline plan expected memory shapes {out_shapes} per layer, the model made {shapes}")
        tags = [t for l in layers for t in _tags(l, len(out_shapes))]
        sent = _SendMemory.apply(link, tags, layers[0], *tensors)
        # the gradient connector (see the module docstring): adds exactly zero
        hs[-1] = hs[-1] + 0 * sum(s.sum() for s in sent)

    def run_layer(l: int, mem: LayerMemory) -> LayerMemory:
        t0 = time.time()
        for i in range(len(hs)):
            hs[i], mem = eng.cell(l, hs[i], mem, ctxs[i])
        link.note("forward", l, t0, time.time())
        return mem

    if schedule == "wavefront":
        for l in range(n_layers):
            send([l], [run_layer(l, receive([l])[0])])
    else:
        received = receive(list(range(n_layers)))
        send(list(range(n_layers)), [run_layer(l, received[l]) for l in range(n_layers)])
    t0 = time.time()
    link.drain()
    link.note("send_drain", n_layers - 1, t0, time.time())

    text_labels = [labels[:, bounds[k]:bounds[k + 1]] for k in block]
    total, count = eng.text_loss(hs, ctxs, text_labels)
    if torch.is_grad_enabled() and not total.requires_grad:
        # no supervised token here: keep the graph (and so the gradient sends) alive anyway
        total = total + 0 * sum(h.sum() for h in hs)
    return total, count


def allreduce_grads(model, group=None, bucket_numel: int = 1 << 24) -> None:
    """Sum the gradients of the replicated parameters over the pipeline ranks, in buckets.

    A parameter no rank touched keeps grad None (as in single-process training); one touched
    only by some ranks gets zeros elsewhere, so every rank joins the same collectives."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params or _rank_world(group)[1] == 1:
        return
    device = params[0].device
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=device)
    dist.all_reduce(has, op=dist.ReduceOp.MAX, group=group)
    used = [p for p, h in zip(params, has.tolist()) if h]
    for p in used:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    bucket, size = [], 0
    for p in used + [None]:
        if p is not None and (not bucket or (size + p.numel() <= bucket_numel and p.grad.dtype == bucket[0].grad.dtype)):
            bucket.append(p)
            size += p.numel()
            continue
        if bucket:
            flat = torch.cat([q.grad.reshape(-1) for q in bucket])
            dist.all_reduce(flat, group=group)
            offset = 0
            for q in bucket:
                q.grad.copy_(flat[offset:offset + q.numel()].view_as(q.grad))
                offset += q.numel()
        bucket, size = ([p], p.numel()) if p is not None else ([], 0)


def reduce_loss(loss: torch.Tensor, count: int, group=None) -> tuple[float, int]:
    """(summed loss, supervised count) over all ranks, for logging."""
    t = torch.tensor([float(loss.detach()), float(count)], dtype=torch.float64, device=loss.device)
    if _rank_world(group)[1] > 1:
        dist.all_reduce(t, group=group)
    return float(t[0]), int(t[1])


def pipeline_step(model, input_ids, labels, chunk_sizes, group=None, schedule: str = "wavefront",
                  normalize: bool = True, trace: list | None = None) -> tuple[float, int]:
    """Forward, backward and gradient all-reduce of one sample; aborts the group on any error.

    normalize=True backpropagates the token-mean loss (local sum / global count), so gradients
    match `loss_sum / count` of single-process training; False backpropagates the sum.
    Returns the global (summed loss, count) for logging. The optimizer step is the caller's."""
    with abort_on_error(group):
        loss, count = pipeline_loss(model, input_ids, labels, chunk_sizes, group, schedule, trace,
                                    abort_on_failure=False)
        n_total = max(int((labels != -100).sum()), 1)
        (loss / n_total if normalize else loss).backward()
        allreduce_grads(model, group)
        return reduce_loss(loss, count, group)
