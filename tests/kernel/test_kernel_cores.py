"""OMP_NUM_THREADS caps every thread count mlsel picks: torch's in a search, ONNX Runtime's."""

from __future__ import annotations

from mlsel.kernel.cores import thread_budget, usable_cores


def test_thread_budget_keeps_to_omp_num_threads_and_never_exceeds_the_cores(monkeypatch) -> None:
    cores = usable_cores()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert thread_budget() == cores
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert thread_budget() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "64")
    assert thread_budget() == cores  # never more than the cores it may run on
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    assert thread_budget() == cores


def test_a_cpu_search_slot_and_the_onnx_engine_use_the_budget(monkeypatch) -> None:
    from mlsel.metalearn.search.devices import parse_gpus
    from mlsel.trainers.onnx_backbone import thread_budget as onnx_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    slots, _ = parse_gpus("cpu", available=[])
    assert [slot.threads for slot in slots] == [1]
    assert onnx_threads is thread_budget
    monkeypatch.delenv("OMP_NUM_THREADS")
    slots, _ = parse_gpus("cpu", available=[])
    assert [slot.threads for slot in slots] == [usable_cores()]
