"""fastconv under DistributedDataParallel (gloo, CPU, two processes): a step on two halves of a
batch gives the gradients and parameters of one process's step on the whole batch."""

import datetime
import os
import socket
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

import fastconv
from architectures import LeNet5
from helpers import assert_close

WORLD_SIZE = 2
TIMEOUT_S = 120  # for the whole test; spawning imports torch in each process

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo"
)


def batch():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(8, 1, 32, 32, generator=generator), torch.randint(
        0, 10, (8,), generator=generator
    )


def model_and_optimizer():
    torch.manual_seed(0)
    model = LeNet5(fastconv.nn)
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def train_step(network, optimizer, images, labels):
    optimizer.zero_grad()
    F.cross_entropy(network(images), labels).backward()
    optimizer.step()


def gradients_and_parameters(model):
    return {name: (p.grad.clone(), p.detach().clone()) for name, p in model.named_parameters()}


def _worker(rank, port, out_dir):
    """One DDP process: trains on its half of the batch and saves what it ends up with."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)  # two processes on a shared machine
    dist.init_process_group(
        "gloo", rank=rank, world_size=WORLD_SIZE, timeout=datetime.timedelta(seconds=TIMEOUT_S)
    )
    try:
        model, optimizer = model_and_optimizer()
        images, labels = batch()
        mine = slice(rank * len(labels) // WORLD_SIZE, (rank + 1) * len(labels) // WORLD_SIZE)
        train_step(DistributedDataParallel(model), optimizer, images[mine], labels[mine])
        torch.save(gradients_and_parameters(model), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_step_equals_a_single_process_step_on_the_whole_batch(tmp_path):
    # The children import this module (and fastconv) through the parent's sys.path.
    context = mp.start_processes(
        _worker,
        args=(free_port(), str(tmp_path)),
        nprocs=WORLD_SIZE,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not context.join(timeout=1):  # raises if a worker failed
            if time.monotonic() > deadline:
                pytest.fail(f"the DDP workers did not finish within {TIMEOUT_S} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()

    model, optimizer = model_and_optimizer()
    train_step(model, optimizer, *batch())
    expected = gradients_and_parameters(model)
    for rank in range(WORLD_SIZE):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        assert result.keys() == expected.keys()
        for name, (grad, param) in result.items():
            assert_close(
                grad, expected[name][0]
            )  # DDP's average over ranks = the whole batch's mean loss
            assert_close(param, expected[name][1])
