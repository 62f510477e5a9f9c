"""MetaSchedule tuning of every task of a compiled model (our primitives and TVM's own kernels).

The database is MetaSchedule's JSON format in one directory per target; `compile` applies it.
Re-running with the same directory resumes: records already there seed the search.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import onnx

from . import cpu_intrinsics, onnx_io, output_paths, parallel_launch, targets
from .compiler import LayerChoices, lower
from .errors import DeviceError, InputError
from .formats import DEFAULT_TERNARY

log = logging.getLogger(__name__)


def _export_func(compiler: str | None) -> str:
    """Name of the builder's export for a preset's cross compiler, or this machine's (None)
    (registered by _register_build)."""
    return f"deepchip.ms.export.{compiler or 'native'}"


def _export(compiler: str | None):
    def export(mod) -> str:
        """Builder export: a .so (cross-compiled for a device without a compiler) with our
        parallel launcher, so candidates are measured on the launcher the model runs on."""
        path = os.path.join(tempfile.mkdtemp(), "tvm_tmp_mod.so")
        parallel_launch.export(mod, path, compiler)
        return path

    return export


BUILD_FUNC = "deepchip.ms.build"  # the builder's build (registered by _register_build)


def _build(mod, target, _params):
    """Builder build: MetaSchedule's default_build without its `import tvm.s_tir.tensor_intrin`.
    A candidate arrives tensorized (the registry of intrinsics is for tensorize, in the tuning
    process); that import took a minute in each builder worker, and the builder starts new
    workers every round."""
    from tvm.driver import build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    return build(RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod), target=target)


def _register_build():
    """What a builder worker needs: our build and the cross compilers' exports. Not our schedule
    rules (a candidate arrives scheduled): the builder starts new workers every round."""
    import tvm

    for compiler in (None, *targets.CROSS_COMPILERS):  # builder workers know no preset: register them all
        tvm.register_global_func(_export_func(compiler), _export(compiler), override=True)
    tvm.register_global_func(BUILD_FUNC, _build, override=True)


def _register():
    _register_build()
    from tvm_deepchip.schedules import load_all

    load_all()  # our schedule rules and tensor intrinsics (records refer to them), in this process


def _valid_indices(repeated):
    """Our sparse kernels gather through index tables: random indices (MetaSchedule's default
    fill) would read out of bounds and kill the runner. The primitives give a valid stand-in for
    each argument of an index type; other arguments keep their random values."""
    from .primitives import valid_dummy

    for args in repeated:
        for t in args:
            dummy = valid_dummy(t.shape, str(t.dtype))
            if dummy is not None:
                t.copyfrom(dummy)
    return repeated


def alloc_local(device, args_info, alloc_repeat):
    from tvm.s_tir.meta_schedule.runner.local_runner import default_alloc_argument

    return _valid_indices(default_alloc_argument(device, args_info, alloc_repeat))


def alloc_rpc(session, device, args_info, alloc_repeat):
    from tvm.s_tir.meta_schedule.runner.rpc_runner import default_alloc_argument

    return _valid_indices(default_alloc_argument(session, device, args_info, alloc_repeat))


def _is_primitive(mod) -> bool:
    from tvm_deepchip.schedules import tagged_block

    return any(tagged_block(f) is not None for f in mod.functions.values())


def _hand_built(mod) -> bool:
    """A delta-list primitive or the 8-bit max pool: a hand-built loop nest (primitives/delta_walk,
    primitives/int8_max_pool) with no knob to tune, and MetaSchedule cannot store it (TVM's JSON
    writer has no default for vector shuffles), so it keeps its own schedule and is not a task."""
    from tvm_deepchip.primitives import int8_max_pool, ternary_conv2d_delta, ternary_dense_delta
    from tvm_deepchip.schedules import tagged_block

    rules = {ternary_conv2d_delta.RULE, ternary_dense_delta.RULE, int8_max_pool.RULE}
    return any((tagged_block(f) or ("", ""))[1] in rules for f in mod.functions.values())


def _estimable(mod) -> bool:
    """Whether MetaSchedule can start a task on `mod`: it first estimates the task's FLOPs
    (tvm::s_tir::EstimateTIRFlops), which has no rule for a vector expression written into a
    hand-built body (bit_dot's and the layouts' te.extern loop nests build Broadcasts) and raises.
    Such a kernel keeps its own schedule, as _hand_built's do. (Which formats a model has depends
    on choose_formats' timings, so the tests met one only now and then.)"""
    from tvm.error import InternalError
    from tvm.s_tir.analysis import estimate_tir_flops

    try:
        estimate_tir_flops(mod)
    except InternalError:
        return False
    return True


def search_strategy(trials: int):
    """MetaSchedule's evolutionary search with a population sized to the budget: its default
    (512 schedules sampled and evolved per task and round) costs minutes of Python per task, which
    a budget of a few trials never uses; 16 per trial reaches the default from 32 trials up."""
    from tvm.s_tir import meta_schedule as ms

    return ms.search_strategy.EvolutionarySearch(population_size=min(512, max(64, 16 * trials)))


XGB_WARMUP = 100  # MetaSchedule's XGBModel scores at random until it holds this many measurements


def cost_model(trials: int) -> str:
    """MetaSchedule's XGBoost cost model where the budget lets it predict. Until it holds
    XGB_WARMUP measurements it scores candidates at random, yet it retrains after every round
    (5-7 s each on 2 cores); the scheduler picks no candidates once `trials` are measured, so a
    budget of at most XGB_WARMUP never leaves the random scores: the random model, untrained."""
    return "xgb" if trials > XGB_WARMUP else "random"


def _own_space(ctx, work_dir, trials: int):
    """Our primitives are searched only through their own (sampled) schedule: TVM's generic
    rules would also annotate the root block for parallel/vectorize/unroll, and its postprocessor
    then fails on loops our schedule already parallelized and vectorized."""
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.logging import get_loggers_from_work_dir

    from tvm_deepchip.schedules import search_space

    return ms.TuneContext(
        mod=ctx.mod, target=ctx.target, space_generator=search_space(ctx.target), search_strategy=search_strategy(trials),
        task_name=ctx.task_name, rand_state=int(ctx.rand_state), num_threads=ctx.num_threads,
        logger=get_loggers_from_work_dir(work_dir, [ctx.task_name])[0],
    )


def seed_defaults(database, contexts, target) -> int:
    """Measure our hand-written default schedule of every primitive task and commit it as a
    tuning record, so the search starts from it and the database never holds anything slower
    than what compile would use without it. Local (x86) tuning only."""
    import numpy as np
    import tvm
    from tvm.s_tir import meta_schedule as ms

    from tvm_deepchip.schedules import schedule_of

    seeded = 0
    for ctx in contexts:
        if not _is_primitive(ctx.mod):
            continue
        try:
            sch = schedule_of(ctx.mod, target)
            lib = tvm.tirx.build(sch.mod, target=target)
            dev = tvm.cpu()
            info = ms.arg_info.ArgInfo.from_prim_func(ctx.mod["main"])
            args = _valid_indices([[tvm.runtime.tensor(np.random.default_rng(0).integers(0, 100, [int(d) for d in a.shape]).astype(str(a.dtype)), dev)
                                   for a in info]])[0]
            secs = lib.time_evaluator(lib.entry_name, dev, number=10, repeat=3)(*args).results
            record = ms.database.TuningRecord(sch.trace, database.commit_workload(ctx.mod), [float(np.median(secs))],
                                              target, info)
            database.commit_tuning_record(record)
            seeded += 1
        except Exception as err:  # noqa: BLE001 - a seed is an optimization; tuning goes on without it
            log.warning("task %s: default schedule not seeded: %s", ctx.task_name, str(err).splitlines()[0][:200])
    return seeded


@contextlib.contextmanager
def _ms_logging():
    """MetaSchedule rebuilds its loggers with logging.config.dictConfig, naming every handler
    already on its logger; a handler someone else attached (pytest's log capture does, on
    loggers that do not propagate) has no name and makes that fail. Detach such handlers while
    MetaSchedule sets up, put them back after."""
    ms_log = logging.getLogger("tvm.s_tir.meta_schedule")
    foreign = [h for h in ms_log.handlers if h.get_name() is None]
    for h in foreign:
        ms_log.removeHandler(h)
    try:
        yield
    finally:
        for h in foreign:
            ms_log.addHandler(h)


@dataclass
class TaskProgress:
    name: str
    trials: int = 0
    failed: int = 0
    best_us: float = float("inf")


def progress_callback(tasks_names: list[str], out=sys.stderr):
    """A MeasureCallback printing trials done and best latency so far per task, and the reason of
    each failed candidate (which MetaSchedule then skips)."""
    from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback
    from tvm.ir.utils import derived_object

    state = [TaskProgress(n) for n in tasks_names]
    start = time.time()

    @derived_object
    class Progress(PyMeasureCallback):
        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
            st = state[task_id]
            for b, r in zip(builder_results, runner_results):
                st.trials += 1
                err = b.error_msg or r.error_msg
                if err:
                    st.failed += 1
                    log.warning("task %s: candidate skipped: %s", st.name, str(err).strip().splitlines()[-1][:200])
                    continue
                secs = [float(x) for x in r.run_secs]
                st.best_us = min(st.best_us, 1e6 * sum(secs) / len(secs))
            done = sum(s.trials for s in state)
            print(
                f"[tune {time.time() - start:6.0f}s] {done} trials | {st.name}: {st.trials} trials, "
                f"best {st.best_us:.1f} us, {st.failed} failed",
                file=out,
                flush=True,
            )

    return Progress(), state


PROBE_BUDGET = 10.0  # seconds for the tracker, the key and one free server to answer before tuning


def probe_device(tracker: str, key: str | None, budget: float = PROBE_BUDGET) -> None:
    """Before any tuning work: the tracker answers, has a server under `key`, and hands out a free
    one that answers, all within `budget` s (remote.connect's bounded probing); else DeviceError
    naming host:port and key. MetaSchedule's runner would retry a dead tracker for minutes."""
    from .remote import connect

    connect(tracker=tracker, key=key, timeout=budget).close()


def make_runner(rpc: str | None = None, tracker: str | None = None, key: str | None = None, timeout: int = 30):
    from tvm.s_tir import meta_schedule as ms

    from .remote import parse_addr

    if tracker is None and rpc is None:
        return ms.runner.LocalRunner(timeout_sec=timeout, f_alloc_argument=alloc_local, initializer=_register)
    if rpc is not None:
        raise DeviceError("MetaSchedule's RPC runner needs a tracker: use --tracker HOST:PORT --key KEY")
    host, port = parse_addr(tracker, "--tracker")
    config = ms.runner.RPCConfig(tracker_host=host, tracker_port=port, tracker_key=key, session_timeout_sec=timeout)
    evaluator = ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=0)
    return ms.runner.RPCRunner(config, evaluator, f_alloc_argument=alloc_rpc)


def tune(
    model,
    target: str = "x86",
    *,
    target_json=None,
    work_dir: str | os.PathLike | None = None,
    trials: int = 64,
    trials_per_task: int | None = None,
    formats: dict | None = None,
    default_ternary: str = DEFAULT_TERNARY,
    tracker: str | None = None,
    key: str | None = None,
    timeout: int = 30,
    seed: int | None = 0,
    choose_formats: bool = True,
    runner=None,
    input_shapes: dict | None = None,
) -> Path:
    """Tune all tasks of `model` for `target`; returns the database directory."""
    from tvm.s_tir import meta_schedule as ms

    from .tuning_db import default_dir, load_format_choices, refuse_foreign

    for what, n in (("--trials", trials), ("--trials-per-task", trials_per_task), ("--timeout", timeout)):
        if n is not None and n < 1:
            raise InputError(f"{what} {n}: must be at least 1")
    if not isinstance(model, onnx.ModelProto):
        model = onnx_io.load_model(model)
    build_target = targets.resolve(target, target_json)
    preset = build_target.preset
    if preset.cross_compiler:
        targets.check_cross_compiler(preset)
    work_dir = Path(work_dir) if work_dir else default_dir(preset)
    output_paths.check_dir(work_dir, "tuning directory")
    refuse_foreign(work_dir, build_target.isa_class)
    if tracker is not None and runner is None:
        probe_device(tracker, key)
    work_dir.mkdir(parents=True, exist_ok=True)
    _register()
    cpu_intrinsics.register()  # before MetaSchedule's first TuneContext imports all of TVM's
    measured = {}
    if choose_formats and not preset.cross_compiler:
        from .format_choice import choose_formats as measure

        measure(model, build_target, work_dir, input_shapes=input_shapes)
        measured = load_format_choices(work_dir)
    choices = LayerChoices(formats or {}, default_ternary)
    mod = lower(model, build_target, choices, measured, input_shapes).mod
    tgt = build_target.tvm
    with _ms_logging():
        extracted = [t for t in ms.relax_integration.extract_tasks(mod, tgt)
                     if not _hand_built(t.dispatched[0]) and _estimable(t.dispatched[0])]
        budget = trials_per_task or trials
        contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
            extracted, str(work_dir / "logs"), strategy=search_strategy(budget), seed=seed
        )
        contexts = [_own_space(c, str(work_dir / "logs"), budget) if _is_primitive(c.mod) else c for c in contexts]
        names = [c.task_name for c in contexts]
        print(f"[tune] {len(contexts)} tasks: {', '.join(names)}", file=sys.stderr, flush=True)
        callback, state = progress_callback(names)
        builder = ms.builder.LocalBuilder(
            f_build=BUILD_FUNC,
            f_export=_export_func(preset.cross_compiler),
            initializer=_register_build,
            timeout_sec=max(timeout, 120),  # a loaded 2-core machine builds slowly; not a failure
        )
        database = ms.database.JSONDatabase(
            str(work_dir / "database_workload.json"), str(work_dir / "database_tuning_record.json"), allow_missing=True
        )
        if tracker is None:
            n = seed_defaults(database, contexts, tgt)
            print(f"[tune] seeded {n} hand-written default schedules as measured records", file=sys.stderr, flush=True)
        ms.tune.tune_tasks(
            tasks=contexts,
            task_weights=weights,
            work_dir=str(work_dir / "logs"),
            max_trials_global=trials,
            max_trials_per_task=trials_per_task,
            num_trials_per_iter=min(16, trials),
            builder=builder,
            runner=runner or make_runner(None, tracker, key, timeout),
            database=database,
            cost_model=cost_model(trials),
            measure_callbacks=ms.measure_callback.MeasureCallback.create("default") + [callback],
        )
    for st in state:
        print(f"[tune] {st.name}: {st.trials} trials, best {st.best_us:.1f} us, {st.failed} failed", file=sys.stderr)
    _check_measured(state, len(database), f"device key {key!r} via tracker {tracker}" if tracker else "this machine")
    return work_dir


def _check_measured(state: list[TaskProgress], records: int, where: str) -> None:
    """DeviceError when no candidate measured: every one failed, or none ran and the log is empty."""
    tried = sum(st.trials for st in state)
    if state and tried == sum(st.failed for st in state) and (tried or not records):
        raise DeviceError(f"tuning on {where}: none of {tried} candidates could be measured "
                          f"(see the skipped candidates' reasons above); the log has {records} records")
