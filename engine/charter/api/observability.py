"""Request ids, structured JSON logs and Prometheus metrics of the service.

Every request gets an id (the client's ``X-Request-Id`` when it is a sane token, a new one
otherwise), returned in the response, written in every log line, and recorded in each ledger entry
the request appends. Metrics follow Prometheus' naming; with several uvicorn workers they are
aggregated across processes through ``PROMETHEUS_MULTIPROC_DIR`` (`charter serve` sets it up).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["APPENDS", "REQUESTS", "VERIFY_RESULTS", "JsonFormatter", "configure_logging", "metrics_text",
           "new_request_id"]

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

REQUESTS = Counter("charter_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram("charter_http_request_duration_seconds", "Time to answer an HTTP request", ["method", "route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
APPENDS = Counter("charter_ledger_appends_total", "Ledger entries appended through the service", ["type"])
VERIFY_RESULTS = Counter("charter_ledger_verify_total", "Ledger verifications run by the service", ["result"])


def new_request_id(given: str | None) -> str:
    """The client's request id when it is a short token of safe characters, a fresh one otherwise."""
    if given and _REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    """One JSON object per log line: time, level, logger, message, and the request's fields."""

    FIELDS = ("request_id", "method", "path", "status", "duration_ms", "principal", "auth")

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        line: dict[str, Any] = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"), "level": record.levelname,
                                "logger": record.name, "message": record.getMessage()}
        for name in self.FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, sort_keys=True)


def configure_logging(level: int = logging.INFO) -> None:
    """Send Charter's service logs to standard error as JSON lines."""
    logger = logging.getLogger("charter.api")
    if any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


class _StateCollector(Collector):
    """Gauges read from the ledger at scrape time (the same in every worker)."""

    def __init__(self, read: Callable[[], tuple[int, dict[str, int]]]) -> None:
        self.read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        size, open_by_stage = self.read()
        yield GaugeMetricFamily("charter_ledger_size", "Entries in the ledger", value=size)
        family = GaugeMetricFamily("charter_open_incidents", "Incidents not closed, by the step they wait for",
                                   labels=["stage"])
        for stage, count in sorted(open_by_stage.items()):
            family.add_metric([stage], count)
        yield family


def metrics_text(read_state: Callable[[], tuple[int, dict[str, int]]]) -> bytes:
    """The Prometheus exposition: request, append and verify counters (across workers), ledger gauges."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        for metric in (REQUESTS, LATENCY, APPENDS, VERIFY_RESULTS):
            registry.register(metric)
    registry.register(_StateCollector(read_state))
    return generate_latest(registry)


class Timer:
    """Seconds since creation."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def seconds(self) -> float:
        """Elapsed seconds."""
        return time.perf_counter() - self.start
