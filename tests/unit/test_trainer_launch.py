"""The launcher: torchrun command from the pod environment, worker flags, CPU shares."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from modelops.trainer import cli
from modelops.trainer.launch import (
    LaunchError,
    Topology,
    in_worker,
    parse_cpu_max,
    threads_per_worker,
    topology_from_env,
    torchrun_command,
    worker_environment,
)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


BASE = [
    "--entrypoint", "modelops.trainer.examples.tabular",
    "--dataset", "synthetic://tabular?rows=10",
    "--output", "s3://models/fraud",
    "--checkpoint-dir", "/ckpt",
    "--termination-log", "",
]  # fmt: skip


def test_single_node_uses_the_standalone_rendezvous():
    topology = topology_from_env({})
    assert topology == Topology(1, "1", 0, None, 29500)
    command = torchrun_command(topology, ["--x"], python="/py")
    assert command == [
        "/py", "-m", "torch.distributed.run", "--nproc-per-node", "1", "--standalone",
        "--max-restarts", "0", "-m", "modelops.cli", "train", "--x",
    ]  # fmt: skip


def test_multi_node_uses_the_static_rendezvous_at_master_addr():
    env = {
        "NNODES": "3",
        "NODE_RANK": "2",
        "NPROC_PER_NODE": "4",
        "MASTER_ADDR": "job-0.job",
        "MASTER_PORT": "23456",
    }
    command = torchrun_command(topology_from_env(env), [], python="/py")
    assert command[:5] == ["/py", "-m", "torch.distributed.run", "--nproc-per-node", "4"]
    assert command[5:15] == [
        "--nnodes", "3", "--node-rank", "2", "--master-addr", "job-0.job",
        "--master-port", "23456", "--max-restarts", "0",
    ]  # fmt: skip
    assert "--standalone" not in command


def test_flag_beats_env_and_the_completion_index_is_a_fallback_node_rank():
    env = {"NPROC_PER_NODE": "4", "NNODES": "2", "JOB_COMPLETION_INDEX": "1", "MASTER_ADDR": "m"}
    topology = topology_from_env(env, nproc_per_node="gpu")
    assert (topology.nproc_per_node, topology.node_rank) == ("gpu", 1)


@pytest.mark.parametrize(
    ("env", "nproc", "message"),
    [
        ({"NNODES": "2"}, None, "needs MASTER_ADDR"),
        ({"NNODES": "2", "NODE_RANK": "2", "MASTER_ADDR": "m"}, None, "outside NNODES=2"),
        ({"NNODES": "two"}, None, "not an integer"),
        ({"NNODES": "0"}, None, "must be >= 1"),
        ({}, "0", "positive integer"),
        ({}, "lots", "positive integer"),
    ],
)
def test_inconsistent_environments_are_refused(env, nproc, message):
    with pytest.raises(LaunchError, match=message):
        topology_from_env(env, nproc)


def test_in_worker_needs_rank_and_world_size():
    assert in_worker({"RANK": "0", "WORLD_SIZE": "2"})
    assert not in_worker({"RANK": "0"})
    assert not in_worker({})


def test_worker_argv_reproduces_the_arguments():
    args = parse([
        *BASE, "--model-name", "m", "--hp", "epochs=3", "--hp=offset=-1",
        "--instance-kind", "cpu", "--target", "libtorch", "--keep-checkpoints", "3",
    ])  # fmt: skip
    again = parse(cli.worker_argv(args))
    assert vars(again) == vars(args)
    assert again.hp == ["epochs=3", "offset=-1"]


def test_check_arguments_catches_mistakes_before_starting_torch():
    assert cli.check_arguments(parse(BASE)) is None
    assert "not KEY=VALUE" in cli.check_arguments(parse([*BASE, "--hp", "epochs"]))
    assert "not an integer" in cli.check_arguments(parse([*BASE, "--hp", "epochs=many"]))
    bad_output = parse([*BASE, "--output", "ftp://x/y"])
    assert "not supported" in cli.check_arguments(bad_output)
    assert "invalid model name" in cli.check_arguments(parse([*BASE, "--model-name", ".x"]))


def test_cpu_quota_parsing_and_shares():
    assert parse_cpu_max("400000 100000\n") == 4.0
    assert parse_cpu_max("150000 100000") == 1.5
    assert parse_cpu_max("max 100000") is None
    assert parse_cpu_max("garbage") is None
    assert threads_per_worker(4.0, "2") == 2
    assert threads_per_worker(1.5, "2") == 1
    assert threads_per_worker(16, "gpu") == 16
    topology = topology_from_env({"NPROC_PER_NODE": "2"})
    assert worker_environment(topology, {}, budget=8)["OMP_NUM_THREADS"] == "4"
    assert (
        worker_environment(topology, {"OMP_NUM_THREADS": "7"}, budget=8)["OMP_NUM_THREADS"] == "7"
    )


def test_the_cli_module_does_not_import_torch():
    code = (
        "import sys, modelops.cli, modelops.trainer.cli, modelops.trainer.launch;"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_launcher_refuses_bad_arguments_with_a_termination_message(tmp_path):
    log = tmp_path / "termination-log"
    log.write_text("")
    argv = [*BASE[:-1], str(log), "--hp", "oops"]
    result = subprocess.run(
        [sys.executable, "-m", "modelops.cli", "train", *argv],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "not KEY=VALUE" in result.stderr
    assert '"reason":"InvalidArgument"' in log.read_text()
