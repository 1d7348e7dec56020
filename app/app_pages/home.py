"""Overview page: what cnnviz measures, on one zoo model."""

import streamlit as st

import cnnviz
from cnnviz import zoo

st.title("cnnviz")
st.write(
    "See why CNN architectures look the way they do: shapes, parameters, MACs and receptive "
    "fields of real PyTorch models, measured on the meta device."
)
name = st.selectbox(
    "Model", zoo.list_models(), index=zoo.list_models().index("resnet50"), key="model"
)


@st.cache_data(max_entries=32)
def _analysis(model_name: str):
    m = zoo.get_model(model_name, device="meta")
    return cnnviz.analyze(m, m.default_input_size)


a = _analysis(name)
c1, c2, c3, c4 = st.columns(4)
c1.metric("Parameters", f"{a.total_params:,}")
c2.metric("MACs", f"{a.total_macs:,}")
c3.metric("Weighted depth", a.weighted_depth)
c4.metric("Final receptive field", str(a.receptive_field().size))
st.dataframe(a.to_pandas(), hide_index=True)
