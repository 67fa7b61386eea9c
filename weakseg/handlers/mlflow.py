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

__all__ = ["MLflowRunHandler", "check_tracking_uri", "find_bundle_parser", "flatten_config_params"]

logger = logging.getLogger("weakseg.engines")

_ID_SEP = "#"
# ids that MONAI's ``--tracking mlflow`` settings add to a config: bookkeeping, not hyper-parameters
_TRACKING_SETTINGS_IDS = ("is_not_rank0", "save_execute_config")


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
    return isinstance(v, (int, float, bool)) or (isinstance(v, str) and not v.startswith(("$", "%", "@")))


def _loggable(v: Any) -> str | None:
    """A resolved config value as an MLflow param: numbers, strings, devices and paths as text, short lists of
    them as JSON; anything else (networks, datasets, transforms) is not a hyper-parameter value: ``None``."""
    import torch

    if v is None or isinstance(v, (bool, int, float)):
        return str(v)
    if isinstance(v, (str, os.PathLike, torch.device, torch.dtype)):
        return str(v)[:500]
    if isinstance(v, (list, tuple)) and len(v) <= 16 and all(x is None or isinstance(x, (bool, int, float, str)) for x in v):
        return json.dumps(list(v))
    return None


def flatten_config_params(config: Mapping, prefix: str = "", skip: Sequence[str] = (),
                          resolved: Mapping[str, Any] | None = None) -> dict[str, str]:
    """
    Flatten a bundle config into MLflow params (``network_def.channels`` -> ``[32, 64, 128, 256]``).

    Literals are logged as they are. ``@id`` references and ``$`` expressions are logged as the value they resolved
    to in the run (``resolved``: config id -> value, e.g. ``ConfigParser.ref_resolver.resolved_content``) when that
    value is a number, string, device, path or short list; an expression that the run never evaluated, or whose
    value is an object (a network, a dataset), is left out. Without ``resolved``, references to literals are
    followed and expressions are left out. So no param ever holds a ``$``/``@`` expression.
    """
    out: dict[str, str] = {}
    resolved = resolved or {}

    def lookup(ref: str) -> Any:
        node: Any = config
        for part in ref.split(_ID_SEP):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return None
        return node

    def walk(node: Any, key: str, cid: str) -> None:
        if any(key == s or key.startswith(s + ".") for s in skip):
            return
        if isinstance(node, str) and node.startswith(("$", "@", "%")):
            value = _resolved_value(resolved, cid)
            if value is _MISSING and node.startswith("@"):
                target = lookup(node[1:])
                value = target if _is_literal(target) or target is None else _MISSING
            text = None if value is _MISSING else _loggable(value)
            if text is not None:
                out[key] = text
            return
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, f"{key}.{k}" if key else str(k), f"{cid}{_ID_SEP}{k}" if cid else str(k))
        elif isinstance(node, list):
            if all(_is_literal(x) for x in node) and len(node) <= 16:
                out[key] = json.dumps(node)
        elif node is None or _is_literal(node):
            out[key] = str(node)

    walk(config, prefix, "")
    return {k: v for k, v in out.items() if k and len(k) <= 250}


_MISSING = object()


def _resolved_value(resolved: Mapping[str, Any], cid: str) -> Any:
    from monai.bundle.utils import ID_SEP_KEY  # the separator of the parser's own ids ("::" in MONAI 1.6)

    return resolved.get(cid.replace(_ID_SEP, ID_SEP_KEY), _MISSING)


def check_tracking_uri(uri: str, timeout: float = 5.0) -> str:
    """Before any data is loaded: an ``http(s)://`` MLflow tracking server must answer ``/health`` within
    ``timeout`` seconds, else a ``ConnectionError`` that names the URI and the way back to the local store. MLflow's
    own retries are bounded for the run (``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` 2, ``MLFLOW_HTTP_REQUEST_TIMEOUT``
    10 s, unless set), so that an outage later costs seconds, not minutes; :class:`MLflowRunHandler` then buffers
    the values and retries. Other URIs (the SQLite store) are returned unchanged."""
    import urllib.request

    if not str(uri).startswith(("http://", "https://")):
        return uri
    try:
        with urllib.request.urlopen(str(uri).rstrip("/") + "/health", timeout=timeout) as r:
            r.read()
    except Exception as err:
        raise ConnectionError(
            f"MLflow tracking server {uri} is not reachable ({err}). Start it, or log to the local SQLite store "
            "instead: unset MLFLOW_TRACKING_URI and drop --tracking_uri (runs then go to <bundle_root>/output/mlruns.db)."
        ) from None
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    return uri


def _exit_on_sigterm() -> None:
    """Turn SIGTERM (what schedulers and containers send) into ``SystemExit(143)`` in the main thread, so that the
    engine's exception handlers and ``atexit`` run and the MLflow run ends as KILLED instead of staying RUNNING.
    A handler that someone else installed is left alone."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        return

    def _on_sigterm(signum, frame):
        logger.error("SIGTERM received: stopping; the MLflow run is ended as KILLED")
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _on_sigterm)


class MLflowRunHandler(MLFlowHandler):
    """
    MONAI's :py:class:`monai.handlers.MLFlowHandler` plus what a default-on tracker needs:

    - ``tags`` (e.g. ``{"data": "synthetic", "method": "supervised"}``) set when the run starts;
    - ``log_bundle_config``: the executed bundle config (files + overrides) saved to
      ``<config_dir>/executed_config.json``, logged as an artifact, and its hyper-parameters logged as params
      (``params_skip`` lists config ids to leave out, e.g. long transform lists);
    - on an exception in the engine the run is ended as ``FAILED`` after logging whatever artifacts exist
      (so a crash never leaves a run ``RUNNING``); Ctrl-C (``KeyboardInterrupt``) and SIGTERM (turned into
      ``SystemExit`` once the run starts) end it as ``KILLED``, as does an interpreter exit with the run still open;
    - ``stale_tag`` (e.g. ``"run_dir"``): when a run starts, earlier runs of the experiment still ``RUNNING``
      with the same value of that tag (a process killed with SIGKILL, which no handler can catch) are ended as
      ``KILLED`` and tagged ``ended_by_run``. A resumed training therefore starts a new MLflow run and closes
      the killed one.
    - ``metric_prefix`` (e.g. ``"test_"``): prepended to the names of the engine's metrics, so that an evaluation
      logs ``test_dice`` or ``val_dice`` according to the split it scored.
    - a tracking outage never stops training: values that cannot be logged are buffered (with their original
      time and step) and retried at the next log after ``retry_interval`` seconds; when the server answers again
      they are logged and the gap is reported; values still unlogged when the run ends are counted in the log;
    - ``system_metrics`` (default on): MLflow's system metrics (CPU, memory, disk, network; GPU with ``pynvml``)
      every ``system_metrics_interval`` seconds while the run is open, when ``psutil`` is installed, by the
      handler that closes the run (``close_on_complete``);
    - MONAI's ``--tracking mlflow`` appends its own ``MLFlowHandler`` to the same engines, logging into the same
      run: when the engine starts, such a handler is detached (with a log line), so every value is logged once.

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
        metric_prefix: str = "",
        system_metrics: bool = True,
        system_metrics_interval: float = 10.0,
        retry_interval: float = 60.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.retry_interval = retry_interval
        self._pending: list = []
        self._retry_at = 0.0
        self._outage_since: float | None = None
        self.system_metrics, self.system_metrics_interval = system_metrics, system_metrics_interval
        self._monitor = None
        self.metric_prefix = metric_prefix
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

    def _default_epoch_log(self, engine: Engine) -> None:
        if not self.metric_prefix:
            return super()._default_epoch_log(engine)
        metrics = engine.state.metrics
        if not metrics:
            return
        step = self.global_epoch_transform(engine.state.epoch)
        self._log_metrics({f"{self.metric_prefix}{k}": v for k, v in metrics.items()}, step=step)
        if self.state_attributes is not None:  # as MONAI's epoch log: the engine's attributes, unprefixed
            self._log_metrics({a: getattr(engine.state, a, None) for a in self.state_attributes}, step=step)

    def _log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        import time

        import mlflow
        from monai.utils import flatten_dict

        if not self.cur_run:
            raise ValueError("Current Run is not Active to log metrics")
        stamp = int(time.time() * 1000)
        self._pending.extend(mlflow.entities.Metric(k, v, stamp, step or 0) for k, v in flatten_dict(metrics).items())
        self._flush()

    def _flush(self, force: bool = False) -> bool:
        """Log the buffered metric values; ``False`` (and the values kept) while the tracking store fails."""
        import time

        if not self._pending or self.cur_run is None:
            return True
        if not force and time.monotonic() < self._retry_at:
            return False
        try:
            while self._pending:
                self.client.log_batch(run_id=self.cur_run.info.run_id, metrics=self._pending[:1000], params=[], tags=[])
                del self._pending[:1000]
        except Exception as err:
            if self._outage_since is None:
                self._outage_since = time.time()
                logger.warning("MLflow logging failed (%s: %s): training continues; values are buffered and retried "
                               "every %.0f s", type(err).__name__, err, self.retry_interval)
            self._retry_at = time.monotonic() + self.retry_interval
            return False
        if self._outage_since is not None:
            logger.warning("MLflow tracking store answers again after %.0f s: buffered values logged",
                           time.time() - self._outage_since)
            self._outage_since = None
        return True

    def _detach_duplicate_loggers(self, engine: Engine) -> None:
        """Remove MLFlowHandlers other than this one (MONAI's ``--tracking mlflow`` adds them) from ``engine``."""
        dup = {}
        for event, handlers in list(engine._event_handlers.items()):
            for h, *_ in handlers:
                owner = getattr(h, "__self__", None)
                if isinstance(owner, MLFlowHandler) and not isinstance(owner, MLflowRunHandler):
                    dup.setdefault(id(owner), (owner, []))[1].append((event, h))
        for owner, pairs in dup.values():
            for event, h in pairs:
                engine.remove_event_handler(h, event)
            logger.warning("another MLFlowHandler (e.g. from --tracking mlflow) was attached to %s besides "
                           "MLflowRunHandler: detached, so that each value is logged once", type(engine).__name__)

    def start(self, engine: Engine) -> None:
        self._detach_duplicate_loggers(engine)
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
        if self.system_metrics and self.close_on_complete and self._monitor is None:
            self._start_system_metrics(run_id)
        if not self._atexit_registered:
            atexit.register(self._end_at_exit)
            self._atexit_registered = True
            _exit_on_sigterm()

    def _start_system_metrics(self, run_id: str) -> None:
        import importlib.util

        if importlib.util.find_spec("psutil") is None:
            logger.info("MLflowRunHandler: psutil is not installed, no system metrics (pip install psutil)")
            return
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        self._monitor = SystemMetricsMonitor(run_id, sampling_interval=self.system_metrics_interval,
                                             tracking_uri=self.client.tracking_uri)
        self._monitor.start()

    def _stop_system_metrics(self) -> None:
        if self._monitor is not None:
            try:
                self._monitor.finish()
            except Exception as err:  # never hide how the run ended
                logger.warning("MLflowRunHandler: system metrics monitor did not stop cleanly: %s", err)
            self._monitor = None

    def close(self) -> None:
        self._stop_system_metrics()
        if self.cur_run is not None and not self._flush(force=True):
            logger.error("MLflow run %s: %d metric values could not be logged (tracking store unreachable)",
                         self.cur_run.info.run_id, len(self._pending))
        super().close()

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
        skip = self.params_skip + _TRACKING_SETTINGS_IDS
        params = flatten_config_params(raw, skip=skip, resolved=parser.ref_resolver.resolved_content)
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
        self._stop_system_metrics()
        if not self._flush(force=True):
            logger.error("MLflow run %s: %d metric values could not be logged (tracking store unreachable since %s); "
                         "the run's charts have a gap there", run_id, len(self._pending), self._outage_since)
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

    def exception_raised(self, engine: Engine, e: BaseException) -> None:
        """End the run as KILLED for an interruption (Ctrl-C, SIGTERM: ``KeyboardInterrupt``, ``SystemExit``), as
        FAILED for any other exception; re-raise unless another exception handler follows (it will re-raise)."""
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            logger.error("training interrupted (%s); MLflow run marked KILLED; the checkpoints of finished epochs "
                         "are kept (--resume True continues)", type(e).__name__)
            self._end("KILLED")
        else:
            logger.error("training failed (%s: %s); MLflow run marked FAILED", type(e).__name__, e)
            self._end("FAILED")
        if len(engine._event_handlers[Events.EXCEPTION_RAISED]) <= 1:
            raise e

    def _end_at_exit(self) -> None:
        if self.cur_run is None:
            return
        try:  # a handler that shares a run it does not close (a validator's) must not re-end a finished run
            running = self.client.get_run(self.cur_run.info.run_id).info.status == "RUNNING"
        except Exception:
            running = True
        if running:
            self._end("KILLED")
        else:
            self.cur_run = None
