// One registration function per op family; module.cpp calls them all.
#pragma once

#include <pybind11/pybind11.h>

namespace fusionrt::bindings {

void bind_concat_layernorm(pybind11::module_& m);
void bind_attention(pybind11::module_& m);
void bind_image_preprocess(pybind11::module_& m);
void bind_numeric_testing(pybind11::module_& m);
void bind_op_contracts(pybind11::module_& m);
void bind_plugin_fields(pybind11::module_& m);
void bind_engine_rules(pybind11::module_& m);
void bind_cuda_device(pybind11::module_& m);
void bind_engine_runner(pybind11::module_& m);  // only in builds with TensorRT

}  // namespace fusionrt::bindings
