"""Timing: what the counted FLOPs cost on this machine's hardware."""

import time

import pandas as pd
import streamlit as st
import torch
from cnnviz_app import caching, widgets

from cnnviz import safety, timing, zoo
from cnnviz.render import timing_plots

st.title("Timing")
st.caption(
    "AlexNet was also a hardware story: it trained on two GPUs, far faster than a CPU could. "
    "Here the counted FLOPs meet a real device: latency, throughput, and the TFLOP/s actually "
    "achieved (FLOPs from cnnviz.analyze divided by the measured time)."
)

gpu = torch.cuda.is_available()
main_dev = timing.resolve_device("auto")
if gpu:
    st.success(f"GPU found: {timing.device_name(main_dev)}.", icon=":material/memory:")
else:
    st.info(
        f"No GPU on this server: timing runs on the {timing.device_name(main_dev)}.",
        icon=":material/memory:",
    )

c1, c2 = st.columns(2)
names = c1.multiselect(
    "Models",
    zoo.list_models(),
    default=["resnet18"],
    key="t_models",
    bind="query-params",
    max_selections=4,
)
for n in names:  # what each picked name is, and where it comes from
    c1.caption(f"**{n}**: {zoo.model_info(n).description} *{zoo.model_info(n).paper}*")
batches = c2.multiselect(
    "Batch sizes", [1, 2, 4, 8, 16, 32, 64], default=[1, 8], key="t_batches", bind="query-params"
)
c3, c4, c5 = st.columns(3)
dtypes = c3.multiselect(
    "dtypes",
    list(timing.supported_dtypes(main_dev)),
    default=["float32"],
    key="t_dtypes",
    bind="query-params",
)
run_time = c4.slider(
    "seconds per configuration",
    0.2,
    3.0,
    0.5,
    0.1,
    key="t_time",
    bind="query-params",
    help="Timed runs continue until this budget (after warm-up).",
)
channels_last = c5.checkbox("channels_last", key="t_cl", bind="query-params")
cuda_graph = c5.checkbox(
    "CUDA graphs",
    key="t_graph",
    disabled=not gpu,
    bind="query-params",
    help="Also time each forward captured once as a CUDA graph and replayed: one launch "
    "per run, so the GPU's own time even where Python cannot issue kernels fast enough "
    "(host-bound rows). Needs a GPU.",
)
both = (
    st.checkbox(
        "Also time on the CPU",
        key="t_cpu",
        disabled=not gpu,
        help="CPU and GPU side by side.",
        bind="query-params",
    )
    if gpu
    else False
)
devices = [main_dev.type] + (["cpu"] if both else [])
n_configs = len(names) * len(batches) * len(dtypes) * len(devices)

MAX_CONFIGS = 24
# One request holds the compute lock that every visitor's timing and ERF runs share, so it
# stops after REQUEST_SECONDS of running (configurations past it are skipped or stopped), and
# each configuration's memory is checked against MEMORY_CAP (CPU RAM; GPU memory on CUDA).
REQUEST_SECONDS = 90
MEMORY_CAP = {"cpu": 2 * 1024**3}
estimate = sum(
    caching.timing_estimate(
        n, dev, tuple(batches), tuple(dtypes), run_time, bool(cuda_graph) and dev == "cuda"
    )
    for dev in devices
    for n in names
)
st.caption(
    f"{n_configs} configuration{'s' * (n_configs != 1)}; about {estimate:.0f} s on this "
    f"machine (estimated from the MACs), and a run stops after {REQUEST_SECONDS} s. Batch sizes "
    f"above {timing.MAX_BATCH} and configurations that would not fit in memory are refused "
    "before anything is allocated."
)
if n_configs > MAX_CONFIGS:
    st.warning(
        f"{n_configs} configurations: pick at most {MAX_CONFIGS} per run.",
        icon=":material/warning:",
    )
elif estimate > REQUEST_SECONDS:
    st.warning(
        f"This run would take about {estimate:.0f} s, more than the {REQUEST_SECONDS} s one "
        "run may take: the configurations past it will be skipped. Pick fewer models, batch "
        "sizes or seconds per configuration to time them all.",
        icon=":material/timer:",
    )
if st.session_state.get("t_cancel"):
    st.info("The run was cancelled; the compute lock is free again.", icon=":material/cancel:")
if st.button(
    "Run", type="primary", key="t_run", disabled=n_configs == 0 or n_configs > MAX_CONFIGS
):
    bar = st.progress(0.0, text="starting…")
    # A click reruns the page, which stops this run at its next progress update (twice a
    # second, between forward passes) and releases the lock.
    stop = st.empty()
    stop.button("Cancel", key="t_cancel", help="Stop timing after the current forward pass.")
    done, spent = [0], [0.0]
    frames = []
    with widgets.user_errors():
        for dev in devices:
            for name in names:
                started = [None]

                def report(i, n, msg, _base=done[0], _dev=dev, _started=started):
                    if not msg.startswith("waiting") and _started[0] is None:
                        _started[0] = time.monotonic()  # the lock is ours: the budget runs
                    bar.progress(min(1.0, (_base + i) / n_configs), text=f"{_dev}: {msg}")

                df = timing.benchmark(
                    name,
                    device=dev,
                    batch_sizes=batches,
                    dtypes=dtypes,
                    channels_last=channels_last,
                    cuda_graph=bool(cuda_graph) and dev == "cuda",
                    min_run_time=run_time,
                    progress=report,
                    time_budget=max(1.0, REQUEST_SECONDS - spent[0]),
                    cap_bytes=MEMORY_CAP.get(dev, safety.DEFAULT_CAP_BYTES),
                )
                if started[0] is not None:
                    spent[0] += time.monotonic() - started[0]
                done[0] += len(df)
                frames.append(df)
        bar.progress(1.0, text="done")
        stop.empty()
        st.session_state["t_results"] = pd.concat(frames, ignore_index=True)

results = st.session_state.get("t_results")
if results is not None:
    with widgets.user_errors():
        cols = [
            "model",
            "device",
            "batch_size",
            "dtype",
            "status",
            "latency_ms",
            "graph_ms",
            "iqr_ms",
            "runs",
            "unstable",
            "throughput",
            "tflops",
            "peak_tflops",
            "peak_memory_bytes",
            "host_ms",
            "bound",
            "note",
        ]
        # columns that no row fills (GPU-only ones on a CPU run) would only show "None"
        view = results[[c for c in cols if c in results and results[c].notna().any()]].copy()
        # FLOP/s in the unit that reads (a CPU's 0.004 TFLOP/s as 4 GFLOP/s), bytes in MiB
        unit, scale = timing_plots.flops_unit(view.get("tflops", []), view.get("peak_tflops", []))
        for col in ("tflops", "peak_tflops"):
            if col in view:
                view[col] = view[col] * scale
        if "peak_memory_bytes" in view:
            view["peak_memory_bytes"] = view["peak_memory_bytes"] / 2**20
        # "%.3g": 3 significant digits (0.457, 13.3, 1230; "%.0f" read "1"): sprintf-js's
        # %g is Number(x.toPrecision(3)), no exponent
        number = st.column_config.NumberColumn
        widgets.table(
            view,
            {
                "latency_ms": number("latency (ms)", format="%.3f"),
                "graph_ms": number(
                    "CUDA graph (ms)", format="%.3f", help="The same forward replayed as a graph"
                ),
                "iqr_ms": number("spread, IQR (ms)", format="%.3f"),
                "runs": number("timed runs"),
                "throughput": number("images/s", format="%.3g"),
                "tflops": number(f"achieved {unit}", format="%.3g"),
                "peak_tflops": number(f"peak {unit}", format="%.3g"),
                "peak_memory_bytes": number("peak memory (MiB)", format="%.1f"),
                "host_ms": number(
                    "host (ms)", format="%.3f", help="Host time to issue one run (CUDA only)"
                ),
            },
        )
        if "unstable" in results and results["unstable"].fillna(False).astype(bool).any():
            n = int(results["unstable"].fillna(False).astype(bool).sum())
            st.warning(
                f"{n} row(s) are **unstable**: their spread (IQR) is over "
                f"{timing.UNSTABLE_IQR_SHARE:.0%} of the median, or fewer than "
                f"{timing.MIN_STABLE_RUNS} timed runs stand behind it. Other work on this "
                "machine moves these numbers: run again, or give the runs more time.",
                icon=":material/warning:",
            )
        if "bound" in results and (results["bound"] == "host").any():
            st.info(
                "Rows bound by **host** spend about as long issuing kernels from Python as "
                "the GPU spends running them, so the GPU waits between kernels. There a "
                "larger batch costs little extra time: throughput climbs with batch size. "
                "Their latency also follows the host's speed from one run to the next; "
                "**CUDA graphs** shows what the GPU itself needs.",
                icon=":material/info:",
            )
        left, right = st.columns(2)
        left.plotly_chart(timing_plots.latency_plot(results), key="t_latency")
        right.plotly_chart(timing_plots.tflops_plot(results), key="t_tflops")
        st.download_button(
            "Download CSV", results.to_csv(index=False), "cnnviz_timing.csv", key="t_csv"
        )
        st.caption(
            f"torch {torch.__version__}; latency is the median of the timed runs, the "
            "spread their interquartile range."
        )


def _ask_for_layers() -> None:
    # Set before the rerun the click starts, so that run draws the expander open already.
    st.session_state["t_layers_asked"] = True


@st.fragment
def layer_section(names: list[str], dtypes: list[str]) -> None:
    """The per-layer breakdown: its model, dtype and button rerun only this part.

    The last table stays (with what it timed) until the next one, through the page's other
    reruns, and the expander opens on it: a rerun that changed what the expander holds drew
    it closed, hiding the table just asked for."""
    layers = st.session_state.get("t_layer_table")
    asked = st.session_state.pop("t_layers_asked", False)
    with st.expander(
        "Per-layer breakdown (one configuration)", expanded=asked or layers is not None
    ):
        st.caption(
            "Each leaf layer's median time beside its MACs from cnnviz.analyze: where the "
            "time goes, and which layers run far from the device's peak."
        )
        p1, p2, p3 = st.columns(3)
        one = p1.selectbox("model", names or ["resnet18"], key="t_layer_model")
        one_dtype = p2.selectbox("dtype", dtypes or ["float32"], key="t_layer_dtype")
        p3.button("Time each layer", key="t_layers", on_click=_ask_for_layers, disabled=not one)
        if asked and one:
            with widgets.user_errors(), st.spinner(f"Timing each layer of {one} (batch 1)…"):
                table = caching.layer_breakdown(one, main_dev.type, one_dtype)
                layers = st.session_state["t_layer_table"] = (one, one_dtype, table)
        if layers is not None:
            model, dtype, table = layers
            widgets.table(
                table,
                {
                    "ms": st.column_config.NumberColumn("time (ms)", format="%.3f"),
                    "macs": st.column_config.NumberColumn("MACs", format="localized"),
                    "gflops_per_s": st.column_config.NumberColumn("GFLOP/s", format="%.1f"),
                },
            )
            st.caption(
                f"{model}, batch 1, {dtype}, median of 5 passes on "
                f"{timing.device_name(main_dev)}. Small layers run far below the device's "
                "peak: their time is mostly launch and memory traffic, not arithmetic."
            )


layer_section(names, dtypes)
