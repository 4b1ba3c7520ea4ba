"""The shared pause of the cyclic garbage collector (`charter._collector.collector_paused`)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from charter import backtest
from charter._collector import collector_paused


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    if enabled:
        gc.enable()
    else:
        gc.disable()


def test_paused_inside_and_resumed_after_even_on_error() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_nested_pauses_resume_only_when_the_outermost_ends() -> None:
    gc.enable()
    with collector_paused():
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner end must not resume it under the outer one
    assert gc.isenabled()


def test_a_collector_disabled_before_stays_disabled() -> None:
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_overlapping_pauses_in_two_threads_resume_once_both_end() -> None:
    gc.enable()
    first_in, second_done = threading.Event(), threading.Event()
    seen: list[bool] = []

    def first() -> None:
        with collector_paused():
            first_in.set()
            second_done.wait(5)
            seen.append(gc.isenabled())  # the other thread ended its pause: still paused here

    worker = threading.Thread(target=first)
    worker.start()
    first_in.wait(5)
    with collector_paused():
        pass
    second_done.set()
    worker.join(5)
    assert seen == [False]
    assert gc.isenabled()


def test_backtest_uses_the_shared_pause() -> None:
    assert backtest.collector_paused is collector_paused
    assert not hasattr(backtest, "_collector_paused")


def test_a_report_is_built_and_rendered_with_the_collector_paused_and_resumed_after(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from charter import report
    from tests.golden.scenario import bind_scenario, build_scenario

    scenario = build_scenario(f"sqlite:///{tmp_path / 'ledger.db'}")
    state = bind_scenario(scenario)
    seen: list[bool] = []
    build_report, render_oscal = report.build_report, report.render_oscal

    def spy_build(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return build_report(*args, **kwargs)

    def spy_oscal(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return render_oscal(*args, **kwargs)

    monkeypatch.setattr(report, "build_report", spy_build)
    monkeypatch.setattr(report, "render_oscal", spy_oscal)
    gc.enable()
    document = report.build(state, "eu-ai-act", scenario.frameworks)
    assert gc.isenabled()
    report.render(document, "oscal", scenario.graph)
    report.render_files(document, ["oscal"], scenario.graph)
    assert seen == [False, False, False]
    assert gc.isenabled()
