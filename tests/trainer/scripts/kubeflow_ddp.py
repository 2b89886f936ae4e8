"""A plain DDP training script as written for Kubeflow's PyTorchJob: no modelops imports.

It relies only on what that runtime provides: torchrun (or a single process)
with MASTER_ADDR / MASTER_PORT / RANK / WORLD_SIZE in the environment, read
by init_process_group's env:// rendezvous. Its one concession to modelops is
where rank 0 saves the model: $MODELOPS_OUTPUT_DIR (the contract in
docs/training.md), as TorchScript plus the tensors' signature.

It fits y = x @ W.T + b for a fixed W, b on random data, each rank drawing
its own batches; DDP averages the gradients.
"""

import argparse
import json
import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

TRUE_W = torch.tensor([[1.0, -2.0, 0.5, 3.0], [0.0, 1.0, -1.0, 2.0]])
TRUE_B = torch.tensor([0.5, -1.0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.05)
    args = parser.parse_args()

    dist.init_process_group("gloo")  # env://: MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)  # the same initial weights on every rank
    model = DistributedDataParallel(nn.Linear(4, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    data = torch.Generator().manual_seed(1000 + rank)
    for _ in range(args.steps):
        x = torch.randn(64, 4, generator=data)
        loss = nn.functional.mse_loss(model(x), x @ TRUE_W.T + TRUE_B)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    final = loss.detach().clone()
    dist.all_reduce(final)
    final /= world

    if rank == 0:
        out = os.environ["MODELOPS_OUTPUT_DIR"]
        torch.jit.script(model.module).save(os.path.join(out, "model.pt"))
        signature = {
            "inputs": [{"name": "INPUT__0", "dtype": "fp32", "dims": [4]}],
            "outputs": [{"name": "OUTPUT__0", "dtype": "fp32", "dims": [2]}],
        }
        with open(os.path.join(out, "signature.json"), "w") as f:
            json.dump(signature, f)
        with open(os.path.join(out, "metrics.json"), "w") as f:
            json.dump({"loss": float(final), "worldSize": world, "steps": args.steps}, f)
        print(f"rank 0 of {world}: final loss {float(final):.6f}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
