"""Every bundle command the documentation shows composes: its config files exist, the run id it names is defined,
and every reference reachable from that id resolves (no training, no data)."""

import ast
import re
import shlex

import pytest
from monai.bundle import ConfigParser

from ..conftest import CONFIGS, REPO

DOCS = ["README.md", "bundle/docs/README.md", "docs/weak_annotations.md"]


def documented_commands() -> list[tuple[str, tuple[str, ...], str]]:
    """(where, config files, run id or the sub-command) of every ``python -m monai.bundle`` line in the docs'
    shell blocks, with backslash continuations joined and the block's VAR="..." assignments substituted."""
    found = []
    for doc in DOCS:
        text = (REPO / doc).read_text()
        for block in re.findall(r"```bash\n(.*?)```", text, re.S):
            block = block.replace("\\\n", " ")
            env = {"B": "bundle"}
            for line in block.splitlines():
                m = re.match(r'^(\w+)="(.*)"\s*$', line.strip())
                if m:
                    env[m.group(1)] = m.group(2)
                    continue
                if "monai.bundle" not in line or "--config_file" not in line:
                    continue
                for k in sorted(env, key=len, reverse=True):
                    line = line.replace("$" + k, env[k])
                tokens = shlex.split(line.split("&&")[-1])
                if "monai.bundle" not in tokens:
                    continue
                cmd = tokens[tokens.index("monai.bundle") + 1]
                run_id = cmd
                if cmd == "run":
                    nxt = tokens[tokens.index("run") + 1]
                    run_id = "run" if nxt.startswith("--") else nxt
                spec = tokens[tokens.index("--config_file") + 1]
                files = tuple(ast.literal_eval(spec)) if spec.startswith("[") else (spec,)
                found.append((f"{doc}: {cmd} {run_id} {' '.join(f.rsplit('/', 1)[-1] for f in files)}", files, run_id))
    return found


COMMANDS = documented_commands()


def test_the_docs_show_every_method():
    """The parser finds the documented commands (a regex that silently matched nothing would pass every case)."""
    configs = {f.rsplit("/", 1)[-1] for _, files, _ in COMMANDS for f in files}
    assert len(COMMANDS) >= 30
    assert {"train.json", "pretrain.json", "train_size.json", "train_size_matched.json", "train_dp.json",
            "train_mlds.json", "train_thesis.json", "train_covid.json", "evaluate.json", "inference.json",
            "multi_gpu_train.json"} <= configs


@pytest.mark.parametrize(("where", "files", "run_id"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_documented_command_composes(where, files, run_id):
    paths = [CONFIGS / f.rsplit("/", 1)[-1] for f in files]
    for f, p in zip(files, paths):
        assert f.startswith("bundle/configs/") and p.is_file(), f"{where}: no config {f}"
    parser = ConfigParser()
    parser.read_meta(str(CONFIGS / "metadata.json"))
    parser.read_config([str(p) for p in paths])
    exports = ("ckpt_export", "onnx_export", "trt_export", "verify_net_in_out")
    target = "network_def" if run_id in exports else run_id
    assert target in parser, f"{where}: '{target}' is not defined by {files}"
    parser.get_parsed_content(target, instantiate=False, eval_expr=False)  # every reference resolves
