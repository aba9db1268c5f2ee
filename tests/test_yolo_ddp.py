"""Multi-GPU training's promise, kept on the CPU: DistributedDataParallel with an effzoo row.

Two processes (backend gloo, the environment ``torch.distributed.run`` gives the workers
of Ultralytics' multi-GPU training) each build a YOLO11 model with an efficientnet_lite0
row from its yaml, load the same initial state, wrap it in ``DistributedDataParallel``
the way Ultralytics' trainer does, and run three training steps on their half of each
batch of the generated dataset: Ultralytics' own detection loss through
``model(batch)``, the trainer's ``loss.sum() * world_size``, its gradient clipping and
its SGD optimizer. (Ultralytics' trainer itself does not run DDP on the CPU.)

One process replays the same steps without torch.distributed: two replicas, each
running its half with its own batch-norm statistics (batch norm in train mode, no
SyncBatchNorm: what each GPU does), their gradients averaged by hand. The test checks:

- every step's gradients are the same on both ranks and equal the mean of the two
  halves' gradients (what DDP promises), which is not the one-process gradient of the
  whole batch (batch norm sees 2 images per process, not 4);
- the parameters stay identical on both ranks and equal the replay's;
- each rank's batch-norm running statistics are its own half's (rank r == replica r),
  and the two ranks' differ;
- the workers had effzoo's rows registered, and both ended within RUN_TIMEOUT.

SyncBatchNorm and NCCL need CUDA and are not checked here (docs/yolo.md says what was
verified where). This file is also the workers' script: ``python test_yolo_ddp.py DIR``.
"""

from __future__ import annotations

import copy
import inspect
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
import yolo_helpers

pytest.importorskip("ultralytics")
from ultralytics.cfg import get_cfg
from ultralytics.engine.trainer import BaseTrainer
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils import DEFAULT_CFG

import effzoo.yolo  # registers the rows, here and in each worker (this file is its script)

pytestmark = pytest.mark.slow

WORLD = 2  # processes
HALF = 2  # images per process and step (Ultralytics: batch // world_size)
STEPS = 3
NC = 3  # the generated dataset's classes
#: seconds for the whole distributed run (start, three steps, exit); it takes about 15
RUN_TIMEOUT = 180
#: gloo's limit on one collective, so a lost peer fails the run instead of hanging it
COLLECTIVE_TIMEOUT = timedelta(seconds=120)
TOL = dict(rtol=1e-4, atol=1e-6)


def _model_dict() -> dict:
    """yolo11n-efflite0 with a quarter-width, quarter-depth random-init backbone."""
    d = yaml.safe_load(effzoo.yolo.cfg_text("yolo11-efflite0.yaml"))
    assert d["backbone"][0][2] == "EfficientNet"
    d["backbone"][0][3] = [
        "efficientnet_lite0",
        {"width": 0.25, "depth": 0.25, "pretrained": False},
    ]
    d.update(scale="n", yaml_file="yolo11n-efflite0-ddp.yaml")
    return d


def _build() -> DetectionModel:
    """The model as Ultralytics' trainer holds it: its hyperparameters set, in train mode."""
    model = DetectionModel(_model_dict(), nc=NC, verbose=False)
    model.args = get_cfg(DEFAULT_CFG)  # the trainer's set_model_attributes: box/cls/dfl gains
    return model.train()


def _ddp_kwargs() -> dict:
    """The wrapping of Ultralytics 8.4's trainer (``_setup_train``): unused parameters
    searched (no torch.compile) and buffers not broadcast from rank 0 at each forward,
    so every process keeps its own batch-norm statistics."""
    from torch.nn.parallel import DistributedDataParallel

    params = inspect.signature(DistributedDataParallel.__init__).parameters
    buffers = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
    return {"find_unused_parameters": True, buffers: False}


def _optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    """Ultralytics' own SGD (nesterov; decay on weights, not on biases and norms)."""
    return BaseTrainer.build_optimizer(
        SimpleNamespace(), model, name="SGD", lr=0.01, momentum=0.937, decay=5e-4
    )


def _backward(model: torch.nn.Module, batch: dict) -> None:
    """The trainer's step: ``loss, items = self.model(batch)``; ``loss.sum() * world_size``."""
    loss, _ = model(batch)  # a dict in: DetectionModel.forward -> loss(); DDP forwards it so
    (loss.sum() * WORLD).backward()


def _clip_and_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """The trainer's ``optimizer_step`` (no AMP): clip at 10, step, zero the gradients."""
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
    optimizer.step()
    optimizer.zero_grad()


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
        for n, p in model.named_parameters()
        if p.requires_grad
    }


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _buffers(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: b.detach().clone() for n, b in model.named_buffers()}


def _backbone_bn(buffers: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The running means and variances of the backbone's batch norms (layers 0-4, the row)."""
    return {
        k: v
        for k, v in buffers.items()
        if k.split(".")[1] in {"0", "1", "2", "3", "4"} and ".running_" in k
    }


def _batch_norms_train(model: torch.nn.Module) -> bool:
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    return bool(bns) and all(m.training for m in bns)


def _batches(data_yaml: Path) -> list[list[dict[str, torch.Tensor]]]:
    """``STEPS`` batches of ``WORLD * HALF`` training images through Ultralytics' own dataset
    and collate function, preprocessed as DetectionTrainer.preprocess_batch does (img float
    0..1), each split into one half per rank. No augmentation: the replay and the ranks
    must see the same pixels."""
    from ultralytics.data import build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(str(data_yaml))
    cfg = get_cfg(DEFAULT_CFG, {"imgsz": 64})
    dataset = build_yolo_dataset(cfg, data["train"], WORLD * HALF, data, mode="val", stride=32)
    n = len(dataset)
    out = []
    for step in range(STEPS):
        halves = []
        for rank in range(WORLD):
            start = (step * WORLD + rank) * HALF
            items = [dataset[(start + i) % n] for i in range(HALF)]
            batch = dataset.collate_fn(items)
            half = {k: batch[k] for k in ("batch_idx", "cls", "bboxes")}
            half["img"] = batch["img"].float() / 255
            assert half["img"].shape == (HALF, 3, 64, 64) and len(half["cls"]) >= HALF
            halves.append(half)
        out.append(halves)
    return out


# -- the workers ---------------------------------------------------------------------------


def _rank_main(workdir: Path) -> None:
    """One DDP process (RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set by ``_launch``)."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from ultralytics.nn import tasks

    torch.set_num_threads(1)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    assert world == WORLD
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=COLLECTIVE_TIMEOUT)
    try:
        inputs = torch.load(workdir / "inputs.pt", weights_only=True)
        model = _build()  # from the yaml: needs effzoo's rows registered in this process
        model.load_state_dict(inputs["state"], strict=True)
        ddp = DistributedDataParallel(model, **_ddp_kwargs())
        optimizer = _optimizer(model)
        grads, params, buffers, bn_train = [], [], [], []
        for step in range(STEPS):
            _backward(ddp, inputs["batches"][step][rank])
            grads.append(_grads(model))
            bn_train.append(_batch_norms_train(model))
            _clip_and_step(model, optimizer)
            params.append(_params(model))
            buffers.append(_buffers(model))
        dist.barrier()
        result = {
            "registered": effzoo.yolo.registered() and hasattr(tasks.parse_model, "__effzoo__"),
            "layers": [type(m).__name__ for m in model.model[:5]],
            "bn_train": bn_train,
            "grads": grads,
            "params": params,
            "buffers": buffers,
        }
        torch.save(result, workdir / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _launch(workdir: Path) -> list[subprocess.Popen]:
    """One process per rank with the environment ``torch.distributed.run`` gives the
    workers of Ultralytics' multi-GPU training (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_*).
    Started directly, not through the launcher: the launcher puts its workers in
    sessions of their own, out of reach of a timeout that ends only the launcher."""
    from ultralytics.utils.dist import find_free_network_port

    port = find_free_network_port()
    procs = []
    for rank in range(WORLD):
        env = {
            **os.environ,
            **yolo_helpers.HUB_OFFLINE,
            "PYTHONPATH": yolo_helpers.pythonpath(),
            "OMP_NUM_THREADS": "1",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(WORLD),
            "LOCAL_WORLD_SIZE": str(WORLD),
        }
        with open(workdir / f"rank{rank}.log", "w") as log:
            cmd = [sys.executable, __file__, str(workdir)]
            procs.append(
                subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir)
            )
    return procs


def _wait(procs: list[subprocess.Popen], workdir: Path) -> None:
    """Until both ranks end; a rank that fails or a run past RUN_TIMEOUT ends the other."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while any(p.poll() is None for p in procs):
        failed = any(p.poll() not in (None, 0) for p in procs)
        if failed or time.monotonic() > deadline:
            for p in procs:  # the processes this test started, by their handles
                if p.poll() is None:
                    p.kill()
                p.wait()
            break
        time.sleep(0.1)
    codes = [p.returncode for p in procs]
    if codes != [0] * WORLD:
        logs = "\n".join(
            f"--- rank {r} (exit {c}):\n" + (workdir / f"rank{r}.log").read_text(errors="replace")
            for r, c in enumerate(codes)
        )
        late = time.monotonic() > deadline
        pytest.fail(f"the DDP run {'timed out' if late else 'failed'} ({codes}):\n{logs}")


# -- the one-process replay ------------------------------------------------------------------


def _replay(state: dict, batches: list) -> dict:
    """What the two ranks must compute, in one process: a replica per rank (its own
    batch-norm statistics), the halves' gradients averaged by hand, the same steps."""
    replicas = []
    for _ in range(WORLD):
        model = _build()
        model.load_state_dict(state, strict=True)
        replicas.append((model, _optimizer(model)))
    out: dict[str, list] = {"halves": [], "mean": [], "params": [], "buffers": []}
    for step in range(STEPS):
        halves = []
        for rank, (model, _) in enumerate(replicas):
            assert _batch_norms_train(model)
            _backward(model, batches[step][rank])
            halves.append(_grads(model))
        mean = {k: sum(h[k] for h in halves) / WORLD for k in halves[0]}
        for model, optimizer in replicas:
            for n, p in model.named_parameters():
                if p.requires_grad:
                    p.grad = mean[n].clone()
            _clip_and_step(model, optimizer)
        out["halves"].append(halves)
        out["mean"].append(mean)
        out["params"].append([_params(m) for m, _ in replicas])
        out["buffers"].append([_buffers(m) for m, _ in replicas])
    return out


def _whole_batch_grads(state: dict, halves: list[dict]) -> dict[str, torch.Tensor]:
    """One process, the whole batch at once, scaled as the trainer scales one GPU's loss."""
    model = _build()
    model.load_state_dict(state, strict=True)
    whole = {
        "img": torch.cat([h["img"] for h in halves]),
        "batch_idx": torch.cat([h["batch_idx"] + i * HALF for i, h in enumerate(halves)]),
        "cls": torch.cat([h["cls"] for h in halves]),
        "bboxes": torch.cat([h["bboxes"] for h in halves]),
    }
    loss, _ = model(whole)
    loss.sum().backward()
    return _grads(model)


def _assert_close(got: dict, want: dict, what: str, **tol) -> None:
    assert got.keys() == want.keys(), what
    for k in want:
        torch.testing.assert_close(
            got[k], want[k], **(tol or TOL), msg=lambda m, k=k: f"{what} {k}: {m}"
        )


def _differ(a: dict, b: dict) -> bool:
    return any(not torch.allclose(a[k].float(), b[k].float(), **TOL) for k in a)


# -- the test ----------------------------------------------------------------------------------


def test_ddp_gloo_averages_gradients_and_keeps_ranks_in_sync(tmp_path, one_thread):
    torch.manual_seed(0)
    model = _build()
    state = copy.deepcopy(model.state_dict())
    bn_start = _backbone_bn(_buffers(model))
    batches = _batches(yolo_helpers.tiny_dataset())
    torch.save({"state": state, "batches": batches}, tmp_path / "inputs.pt")

    with yolo_helpers.hub_offline():
        procs = _launch(tmp_path)
        try:
            ref = _replay(state, batches)  # while the workers start
            whole = _whole_batch_grads(state, batches[0])
        finally:
            _wait(procs, tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]

    for r, res in enumerate(ranks):
        assert res["registered"], f"rank {r}: effzoo's rows not registered"
        assert res["layers"] == ["BackboneStem"] + ["BackboneStages"] * 4
        assert res["bn_train"] == [True] * STEPS  # batch norm in train mode at every step

    # the halves really differ, and one process on the whole batch is another gradient:
    # batch norm's batch statistics (and the loss's normalisation) are per process
    halves = ref["halves"][0]
    assert _differ(halves[0], halves[1])
    assert _differ(ref["mean"][0], whole)

    for step in range(STEPS):
        g0, g1 = (res["grads"][step] for res in ranks)
        _assert_close(g1, g0, f"step {step}: rank 1 vs rank 0 gradient", rtol=0, atol=0)
        _assert_close(g0, ref["mean"][step], f"step {step}: DDP gradient vs the halves' mean")
        p0, p1 = (res["params"][step] for res in ranks)
        _assert_close(p1, p0, f"step {step}: rank 1 vs rank 0 parameters", rtol=0, atol=0)
        for r, res in enumerate(ranks):
            _assert_close(res["params"][step], ref["params"][step][r], f"step {step} rank {r}")
            # rank r's batch-norm statistics are its own half's (replica r's)
            buffers = res["buffers"][step]
            _assert_close(buffers, ref["buffers"][step][r], f"step {step}: rank {r} buffers")

    # per-process statistics: the ranks' backbone batch norms moved, each its own way
    bn = [_backbone_bn(res["buffers"][-1]) for res in ranks]
    assert bn_start and bn[0].keys() == bn_start.keys()
    assert _differ(bn[0], bn_start) and _differ(bn[1], bn_start)
    assert _differ(bn[0], bn[1])
    # and training moved the backbone's weights
    end = {k: v for k, v in ranks[0]["params"][-1].items() if k.startswith("model.0.")}
    assert end and _differ(end, {k: state[k] for k in end})


def test_sync_batchnorm_needs_timms_converter_for_the_backbone(one_thread):
    """SyncBatchNorm itself needs CUDA to train (not checked here); the conversion runs
    anywhere. The backbone's norms are timm's BatchNormAct2d (norm + activation in one
    layer): torch's converter turns them into plain SyncBatchNorm and drops the
    activation, timm's keeps it (docs/yolo.md, "Multi-GPU (DDP)")."""
    from timm.layers import convert_sync_batchnorm

    torch.manual_seed(0)
    model = _build().eval()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model(x)[0]

    def norms(m: torch.nn.Module) -> set[str]:
        bns = m.model[:5].modules()
        return {
            type(n).__name__ for n in bns if isinstance(n, torch.nn.modules.batchnorm._BatchNorm)
        }

    assert norms(model) == {"BatchNormAct2d"}
    timm_sync = convert_sync_batchnorm(copy.deepcopy(model)).eval()
    assert norms(timm_sync) == {"SyncBatchNormAct"}
    torch_sync = torch.nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(model)).eval()
    assert norms(torch_sync) == {"SyncBatchNorm"}
    with torch.no_grad():  # eval mode: running statistics, no process group needed
        torch.testing.assert_close(timm_sync(x)[0], want, **TOL)
        assert not torch.allclose(torch_sync(x)[0], want, **TOL), "docs/yolo.md's warning is stale"


if __name__ == "__main__":  # a worker of the test above, started by _launch
    _rank_main(Path(sys.argv[1]))
