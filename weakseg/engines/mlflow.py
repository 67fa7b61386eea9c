"""MLflow logging that is on by default, never leaves a run RUNNING, and records the executed bundle config."""

from __future__ import annotations

import atexit
import inspect
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events
from monai.handlers import MLFlowHandler

__all__ = ["MLflowRunHandler", "find_bundle_parser", "flatten_config_params"]

logger = logging.getLogger("weakseg.engines")

_ID_SEP = "#"


def find_bundle_parser():
    """
    The ``ConfigParser`` of the MONAI bundle workflow currently running (``python -m monai.bundle run …`` or
    ``monai.bundle.run(...)``), found on the call stack; ``None`` outside a bundle run. Its raw content is the
    executed config: the config files merged with every command-line override.
    """
    from monai.bundle import ConfigParser
    from monai.bundle.workflows import ConfigWorkflow

    frame = inspect.currentframe()
    try:
        while frame is not None:
            obj = frame.f_locals.get("self")
            if isinstance(obj, ConfigWorkflow):
                return obj.parser
            if isinstance(obj, ConfigParser):
                return obj
            frame = frame.f_back
    finally:
        del frame
    return None


def _is_literal(v: Any) -> bool:
    return isinstance(v, (int, float, bool)) or (isinstance(v, str) and not v.startswith(("$", "%")))


def flatten_config_params(config: Mapping, prefix: str = "", skip: Sequence[str] = ()) -> dict[str, str]:
    """
    Flatten the literal values of a raw bundle config into MLflow params (``network_def.channels`` ->
    ``[32, 64, 128, 256]``). ``@id`` references are resolved to the referenced literal; ``$`` expressions
    are kept as their text (they are hyper-parameters too, e.g. an ``$@learning_rate * 0.1``).
    """
    out: dict[str, str] = {}

    def lookup(ref: str) -> Any:
        node: Any = config
        for part in ref.split(_ID_SEP):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return ref
        return node

    def walk(node: Any, key: str) -> None:
        if any(key == s or key.startswith(s + ".") for s in skip):
            return
        if isinstance(node, str) and node.startswith("@"):
            node = lookup(node[1:])
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(node, list) and all(_is_literal(x) for x in node) and len(node) <= 16:
            out[key] = json.dumps(node)
        elif node is None or _is_literal(node):
            out[key] = str(node)
        elif isinstance(node, str):  # expression
            out[key] = node[:500]

    walk(config, prefix)
    return {k: v for k, v in out.items() if k and len(k) <= 250}


class MLflowRunHandler(MLFlowHandler):
    """
    MONAI's :py:class:`monai.handlers.MLFlowHandler` plus what a default-on tracker needs:

    - ``tags`` (e.g. ``{"data": "synthetic", "method": "supervised"}``) set when the run starts;
    - ``log_bundle_config``: the executed bundle config (files + overrides) saved to
      ``<config_dir>/executed_config.json``, logged as an artifact, and its hyper-parameters logged as params
      (``params_skip`` lists config ids to leave out, e.g. long transform lists);
    - on an exception in the engine the run is ended as ``FAILED`` after logging whatever artifacts exist
      (so a crash never leaves a run ``RUNNING``); an interpreter exit with the run still open (Ctrl-C) ends it
      as ``KILLED``;
    - ``stale_tag`` (e.g. ``"run_dir"``): when a run starts, earlier runs of the experiment still ``RUNNING``
      with the same value of that tag (a process killed with SIGKILL, which no handler can catch) are ended as
      ``KILLED`` and tagged ``ended_by_run``. A resumed training therefore starts a new MLflow run and closes
      the killed one.

    Attach it to the trainer *before* any other handler so that its ``EXCEPTION_RAISED`` callback runs first:
    ignite only reaches the first of several exception handlers that re-raise.
    """

    def __init__(
        self,
        *args: Any,
        tags: Mapping[str, Any] | None = None,
        log_bundle_config: bool = False,
        config_dir: str | os.PathLike | None = None,
        params_skip: Sequence[str] = (),
        stale_tag: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.stale_tag = stale_tag
        self.tags = {str(k): str(v) for k, v in (tags or {}).items()}
        self.log_bundle_config = log_bundle_config
        self.config_dir = Path(config_dir) if config_dir else None
        self.params_skip = tuple(params_skip)
        self._atexit_registered = False

    def attach(self, engine: Engine) -> None:
        super().attach(engine)
        if not engine.has_event_handler(self.exception_raised, Events.EXCEPTION_RAISED):
            engine.add_event_handler(Events.EXCEPTION_RAISED, self.exception_raised)
            # run first: MONAI's own exception handlers re-raise and stop the chain
            handlers = engine._event_handlers[Events.EXCEPTION_RAISED]
            handlers.insert(0, handlers.pop())

    def start(self, engine: Engine) -> None:
        super().start(engine)
        if self.cur_run is None:
            return
        run_id = self.cur_run.info.run_id
        for k, v in self.tags.items():
            self.client.set_tag(run_id, k, v)
        if self.stale_tag and self.stale_tag in self.tags:
            self._end_stale_runs(run_id, self.stale_tag, self.tags[self.stale_tag])
        if self.log_bundle_config:
            self._log_bundle_config(run_id)
        if not self._atexit_registered:
            atexit.register(self._end_at_exit)
            self._atexit_registered = True

    def _end_stale_runs(self, run_id: str, tag: str, value: str) -> None:
        # compare the tag here rather than in the filter string: a value may hold any quote character
        runs = self.client.search_runs([self.experiment.experiment_id], filter_string="attributes.status = 'RUNNING'")
        for r in runs:
            if r.info.run_id != run_id and r.data.tags.get(tag) == str(value):
                logger.warning("MLflow run %s (%s) was left RUNNING by a killed process: marking it KILLED",
                               r.info.run_id, r.info.run_name)
                self.client.set_tag(r.info.run_id, "ended_by_run", run_id)
                self.client.set_terminated(r.info.run_id, "KILLED")

    def _log_bundle_config(self, run_id: str) -> None:
        parser = find_bundle_parser()
        if parser is None:
            logger.info("MLflowRunHandler: not inside a bundle run, executed config not logged")
            return
        raw = parser.get()
        params = flatten_config_params(raw, skip=self.params_skip)
        logged = self.client.get_run(run_id).data.params
        params = {k: v for k, v in params.items() if k not in logged}
        if params:
            self._log_params(params)
        out_dir = self.config_dir or Path(os.getcwd())
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "executed_config.json"
        with open(path, "w", encoding="utf-8") as f:
            json.dump(raw, f, indent=2, default=str)
        self.client.log_artifact(run_id, str(path))

    def _end(self, status: str) -> None:
        if self.cur_run is None:
            return
        run_id = self.cur_run.info.run_id
        try:
            for artifact in self._parse_artifacts() if self.artifacts else []:
                self.client.log_artifact(run_id, artifact)
        except Exception as err:  # never hide the original failure
            logger.warning("MLflowRunHandler: could not log artifacts of run %s: %s", run_id, err)
        try:
            self.client.set_terminated(run_id, status)
        finally:
            self.cur_run = None
            self._dispose_sqlite_store()

    def exception_raised(self, engine: Engine, e: Exception) -> None:
        """End the run as FAILED; re-raise unless another exception handler follows (it will re-raise)."""
        logger.error("training failed (%s: %s); MLflow run marked FAILED", type(e).__name__, e)
        self._end("FAILED")
        if len(engine._event_handlers[Events.EXCEPTION_RAISED]) <= 1:
            raise e

    def _end_at_exit(self) -> None:
        if self.cur_run is not None:
            self._end("KILLED")
