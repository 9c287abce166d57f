// The parts of a fusionrt IPluginV3 and its creator that do not depend on the op: capability
// interfaces, identity (from the op's contract, ops/*_contract.h), clone / attachToContext, field
// declaration and parsing. A plugin derives from PluginV3Base<itself> and provides
//
//   using Spec = FooContract;                                 // kName, kVersion, kFields
//   static FooConfig parseFields(RawField const*, int32_t);   // the contract's parser
//   Foo(std::string const& layerName, FooConfig const&);
//   void checkInputShapes(std::vector<std::vector<int64_t>> const&) const;  // throws on a mismatch
//
// and the op's other build and runtime methods; PluginCreatorV3<Foo> is then its creator.
#pragma once

#include <NvInferRuntime.h>

#include <exception>
#include <string>
#include <vector>

#include "tensorrt/common/PluginAdapters.h"
#include "tensorrt/logging.h"

namespace fusionrt::trt {

template <typename Derived>
class PluginV3Base : public nvinfer1::IPluginV3,
                     public nvinfer1::IPluginV3OneCore,
                     public nvinfer1::IPluginV3OneBuild,
                     public nvinfer1::IPluginV3OneRuntime {
 public:
  PluginV3Base& operator=(PluginV3Base const&) = delete;
  ~PluginV3Base() override = default;

  // IPluginV3
  nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override {
    switch (type) {
      case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
      case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
      case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
    }
    return nullptr;
  }

  nvinfer1::IPluginV3* clone() noexcept override {
    try {
      return new Derived(static_cast<Derived const&>(*this));
    } catch (std::exception const& e) {
      logException(logName(), "clone", e);
    }
    return nullptr;
  }

  // IPluginV3OneCore
  char const* getPluginName() const noexcept override { return Derived::Spec::kName; }
  char const* getPluginVersion() const noexcept override { return Derived::Spec::kVersion; }
  char const* getPluginNamespace() const noexcept override { return kPluginNamespace; }

  // IPluginV3OneBuild: every fusionrt op has one output.
  int32_t getNbOutputs() const noexcept override { return 1; }

  // Sizes known at build time are checked here, the rest in onShapeChange.
  int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
                          nvinfer1::DynamicPluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept override {
    return checkShapes("configurePlugin", in, nbInputs, nbOutputs);
  }

  // IPluginV3OneRuntime: runtime shapes are all known, the last chance to reject them before enqueue.
  int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
                        nvinfer1::PluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept override {
    return checkShapes("onShapeChange", in, nbInputs, nbOutputs);
  }

  // No per-context resources, so each execution context gets its own copy.
  nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* /*context*/) noexcept override {
    return clone();
  }

 protected:
  explicit PluginV3Base(std::string const& layerName)
      : mLogName(std::string(Derived::Spec::kName) + " '" + layerName + "'") {}
  PluginV3Base(PluginV3Base const&) = default;

  // "FusionrtFoo '<layer>'": errors name the layer, which is what users can find.
  char const* logName() const noexcept { return mLogName.c_str(); }

 private:
  template <typename Tensor>
  int32_t checkShapes(char const* method, Tensor const* inputs, int32_t nbInputs, int32_t nbOutputs) const noexcept {
    try {
      expectOutputs(nbOutputs, 1);
      static_cast<Derived const*>(this)->checkInputShapes(shapesOf(inputs, nbInputs));
      return 0;
    } catch (std::exception const& e) {
      logException(logName(), method, e);
    }
    return -1;
  }

  std::string mLogName;
};

template <typename Plugin>
class PluginCreatorV3 final : public nvinfer1::IPluginCreatorV3One {
 public:
  PluginCreatorV3() : mFieldNames(Plugin::Spec::kFields) {}
  PluginCreatorV3(PluginCreatorV3 const&) = delete;
  PluginCreatorV3& operator=(PluginCreatorV3 const&) = delete;
  ~PluginCreatorV3() override = default;

  char const* getPluginName() const noexcept override { return Plugin::Spec::kName; }
  char const* getPluginVersion() const noexcept override { return Plugin::Spec::kVersion; }
  char const* getPluginNamespace() const noexcept override { return kPluginNamespace; }
  nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override { return mFieldNames.collection(); }

  nvinfer1::IPluginV3* createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc,
                                    nvinfer1::TensorRTPhase /*phase*/) noexcept override {
    try {
      // Build and runtime phases see the same fields: at runtime they are getFieldsToSerialize's.
      std::vector<RawField> const fields = rawFields(fc);
      return new Plugin(name != nullptr ? name : "",
                        Plugin::parseFields(fields.data(), static_cast<int32_t>(fields.size())));
    } catch (std::exception const& e) {
      logException(Plugin::Spec::kName, "createPlugin", e);
    }
    return nullptr;
  }

 private:
  DeclaredFields mFieldNames;
};

}  // namespace fusionrt::trt
